//! Errors of the persona half of the crate.
//!
//! Every failure is a value with enough information to explain it without strings: the binary
//! parser reports the byte offset in the blob and a [`ParseReason`]; the other operations use
//! [`Error`]. The kernel glue maps them to errnos in one place.

use core::fmt;

use super::pci::WalkError;

/// Why a persona blob was rejected by [`super::persona::PersonaRef::parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseReason {
    /// The blob ends before a field that must be there.
    Truncated,
    /// The blob is larger than [`super::persona::MAX_BLOB`].
    TooLarge,
    /// The magic bytes are not `PVFPRSNA`.
    BadMagic,
    /// The format version is not one this parser knows.
    UnsupportedFormat(u16),
    /// The length field does not equal the blob length.
    LengthMismatch,
    /// A reserved field or padding byte is not zero.
    NonZeroReserved,
    /// The name is empty, longer than 32 bytes or not printable ASCII.
    BadName,
    /// The presented config size is neither 256 nor 4096 bytes.
    BadConfigSize,
    /// The class code does not fit in 24 bits.
    BadClass,
    /// More capability entries than [`super::persona::MAX_CAPS`].
    TooManyCaps,
    /// More byte-rule runs than [`super::persona::MAX_RUNS`].
    TooManyRuns,
    /// Unknown capability entry kind.
    BadCapKind,
    /// Unknown capability space (neither standard nor extended).
    BadSpace,
    /// A capability ID does not fit its space (standard IDs are one byte, extended ones 16 bits).
    BadCapId,
    /// A capability's offset or length is outside its space or not dword aligned.
    CapOutOfRange,
    /// Two presented capabilities overlap.
    CapOverlap,
    /// Capability entries are not in canonical order, or an entry is duplicated.
    CapOrder,
    /// A physical entry names a capability the persona may never pass through (PASID).
    ForbiddenPhysical,
    /// A synthesized PASID entry has a width outside 1..=20 or unknown flags.
    BadPasid,
    /// A byte-rule run does not start where the previous one ended, or is empty.
    RunGap,
    /// Two adjacent runs have the same rule (the encoding would not be canonical).
    RunNotMaximal,
    /// Unknown byte-rule kind.
    BadRuleKind,
    /// The runs do not end exactly at the presented config size.
    RunCoverage,
    /// More emulated bytes than [`super::persona::MAX_EMULATED`].
    TooManyEmulated,
    /// An emulated byte carries write-mask bits but the rule requires it to be read-only.
    WritableHeader,
    /// A header ID byte is neither read-only passthrough nor read-only emulated.
    IdRule,
    /// An emulated header ID byte disagrees with the ID field of the persona.
    IdValue,
    /// A capability header byte is not emulated with the expected value.
    CapHeader,
    /// The capability chain encoded in the emulated headers does not match the entries.
    Chain,
    /// A passthrough byte lies inside a synthesized capability.
    SynthNotEmulated,
    /// A PASID capability's emulated bytes differ from its canonical contents.
    PasidContent,
    /// Bytes after the end of the encoded data.
    TrailingBytes,
    /// A BAR table entry is malformed (size, kind, or a 64-bit BAR without its upper slot).
    BadBar,
    /// A BAR or ROM register is not emulated exactly as the BAR table says.
    BarRegister,
    /// A pinned or dynamic byte has value bits outside its pin mask.
    PinValue,
}

/// A rejected persona blob: where and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Offset in the blob of the field that is wrong.
    pub offset: usize,
    /// What is wrong with it.
    pub reason: ParseReason,
}

impl ParseError {
    /// Creates an error for the field at `offset`.
    pub const fn new(offset: usize, reason: ParseReason) -> Self {
        Self { offset, reason }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            ParseReason::UnsupportedFormat(v) => write!(
                f,
                "persona binary format version {v}; this code reads version {} only (re-derive \
                 or recompile the persona)",
                super::persona::format::FORMAT_VERSION
            ),
            r => write!(f, "offset {:#x}: {:?}", self.offset, r),
        }
    }
}

/// Errors of deriving, encoding and overlaying personas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The output buffer is too small.
    BufferTooSmall,
    /// A config dump is neither 256 nor 4096 bytes long.
    BadDumpSize,
    /// The persona being built is inconsistent; the encoder's own parse says why.
    Invalid(ParseError),
    /// PASID was requested but the device has no extended config space.
    NoExtendedSpace,
    /// The requested PASID offset is misaligned, outside extended space or overlaps a capability.
    BadPasidOffset(u16),
    /// No free 8-byte gap is left in extended config space for the PASID capability.
    NoRoomForPasid,
    /// The PASID width is outside 1..=20.
    BadPasidWidth(u8),
    /// The requested PASID capability promises more than the device's own PASID capability
    /// supports (wider, or execute / privileged mode it lacks): the device would fail it.
    PasidBeyondDevice {
        /// The device's own maximum PASID width.
        width: u8,
        /// The device supports execute permission.
        exec: bool,
        /// The device supports privileged mode.
        privileged: bool,
    },
    /// The device has more capabilities than a persona can hold.
    TooManyCaps,
    /// A capability the persona presents is not on the device.
    CapNotFound {
        /// True for an extended capability.
        extended: bool,
        /// Capability ID.
        id: u16,
        /// Instance number (0 = first with that ID in chain order).
        instance: u8,
    },
    /// A capability the persona presents is shorter on the device.
    CapTooShort {
        /// Virtual offset of the capability in the persona.
        offset: u16,
    },
    /// A capability chain in a config dump is broken (loop, bad pointer).
    BrokenChain(WalkError),
    /// A config access has a size other than 1, 2 or 4, or runs past the end of config space.
    BadAccess {
        /// Offset of the access.
        offset: u16,
        /// Size of the access in bytes.
        size: u8,
    },
    /// The device's BAR sizes are unknown (a raw config dump): a persona cannot be derived.
    BarsUnknown,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(e) => write!(f, "invalid persona: {e}"),
            Error::BadDumpSize => f.write_str("config space is neither 256 nor 4096 bytes"),
            Error::BrokenChain(WalkError::Loop(o)) => {
                write!(f, "capability chain loops at {o:#05x}")
            }
            Error::BrokenChain(WalkError::OutOfRange(o)) => {
                write!(f, "capability chain points out of range at {o:#05x}")
            }
            Error::BrokenChain(WalkError::Misaligned(o)) => {
                write!(f, "capability chain pointer {o:#05x} is not dword aligned")
            }
            Error::NoRoomForPasid => {
                f.write_str("no free 8-byte gap for a PASID capability in extended space")
            }
            Error::BadPasidOffset(o) => write!(
                f,
                "PASID offset {o:#05x} is not free (inside another capability or misaligned)"
            ),
            Error::PasidBeyondDevice {
                width,
                exec,
                privileged,
            } => write!(
                f,
                "the requested PASID capability exceeds the device's own (width {width}, \
                 execute {}, privileged {})",
                if *exec { "supported" } else { "not supported" },
                if *privileged {
                    "supported"
                } else {
                    "not supported"
                }
            ),
            Error::TooManyCaps => f.write_str("more than 48 capabilities"),
            Error::BarsUnknown => f.write_str("the device's BAR sizes are unknown"),
            other => write!(f, "{other:?}"),
        }
    }
}

impl core::error::Error for ParseError {}

impl core::error::Error for Error {}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Self {
        Error::Invalid(e)
    }
}
