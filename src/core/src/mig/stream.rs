//! The migration stream: what the data fd carries, and its streaming encoder and decoder.
//!
//! # Wire format (version 1)
//!
//! All integers are little-endian. A stream is a header, any number of records, and an end
//! record, with no padding or alignment anywhere:
//!
//! ```text
//! header (120 bytes)
//!   off  size  field
//!     0     8  magic                 "PVFIOMIG"
//!     8     2  format version        1
//!    10     2  header length         120
//!    12     2  device kind           1 = QEMU edu, 2 = ivshmem-plain (see DeviceKind)
//!    14     2  header flags          0 (no flag is defined in version 1)
//!    16     4  persona version
//!    20     1  persona name length   1..=64
//!    21     3  reserved              0
//!    24    32  persona digest
//!    56    64  persona name          name bytes, then zero bytes up to 64
//!
//! record (16-byte header, then `length` payload bytes)
//!   off  size  field
//!     0     4  tag                   0 is the end record; others are assigned by backends
//!     4     4  flags                 bit 0: MANDATORY; all other bits 0
//!     8     8  length                payload length in bytes
//!
//! end record (24 bytes, always last)
//!     0     4  tag                   0
//!     4     4  flags                 1 (MANDATORY)
//!     8     8  length                8
//!    16     8  checksum              of every byte of the stream before this field
//! ```
//!
//! The checksum is [`Checksum`]; the header and record headers are
//! covered like payload, so the last 8 bytes of a stream check everything before them.
//!
//! # Compatibility
//!
//! A decoder rejects a stream whose magic, format version, header length or header flags it does
//! not know, and one whose device kind or persona (name, version and digest) differs from the
//! destination's. The header is the first thing the source sends (the PRE_COPY initial bytes),
//! so the destination rejects an incompatible stream at its first write, while the source VM is
//! still running. Records whose tag the destination does not know are skipped when optional and
//! rejected when [`FLAG_MANDATORY`] is set, so a newer source can add optional information
//! without breaking older destinations.
//!
//! # Decoding discipline
//!
//! [`Parser`] accepts the stream in chunks of any size (the data fd is written in whatever
//! pieces the user chooses) and keeps a bounded amount of state. Payload bytes go to a caller
//! [`Sink`], which stages them; the caller applies nothing until [`Parser::feed`] returns
//! [`Progress::Done`], which happens only after the checksum has been verified.

use core::fmt;

use super::checksum::Checksum;

/// The first eight bytes of every stream.
pub const MAGIC: [u8; 8] = *b"PVFIOMIG";

/// The only format version this code reads and writes.
pub const FORMAT_VERSION: u16 = 1;

/// Length of the stream header in bytes.
pub const HEADER_LEN: usize = 120;

/// Maximum length of a persona name in bytes.
pub const NAME_MAX: usize = 64;

/// Length of a record header in bytes.
pub const RECORD_HEADER_LEN: usize = 16;

/// Length of the end record in bytes (header and checksum).
pub const END_RECORD_LEN: usize = 24;

/// Record flag: the destination must understand the record's tag, or reject the stream.
pub const FLAG_MANDATORY: u32 = 1;

/// Tag of the end record. Every other tag is free for backends to assign.
pub const TAG_END: u32 = 0;

/// [`HEADER_LEN`] as the `u16` written in the header.
const HEADER_LEN_U16: u16 = 120;

/// Length of the end record's payload (the checksum).
const END_PAYLOAD_LEN: u64 = 8;

/// Field offsets inside the header, used for error offsets.
mod off {
    pub(super) const VERSION: u64 = 8;
    pub(super) const HEADER_LEN: u64 = 10;
    pub(super) const KIND: u64 = 12;
    pub(super) const FLAGS: u64 = 14;
    pub(super) const PERSONA_VERSION: u64 = 16;
    pub(super) const NAME_LEN: u64 = 20;
    pub(super) const RESERVED: u64 = 21;
    pub(super) const DIGEST: u64 = 24;
    pub(super) const NAME: u64 = 56;
}

/// The kind of device whose state a stream carries.
///
/// Kept as a plain number so that a decoder can report a kind it does not know.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct DeviceKind(pub u16);

impl DeviceKind {
    /// QEMU's `edu` educational PCI device, the reference backend.
    pub const EDU: Self = Self(1);
    /// QEMU's `ivshmem-plain` shared-memory device.
    pub const IVSHMEM: Self = Self(2);

    /// Returns the kind's name, if it is one this code knows.
    pub const fn name(self) -> Option<&'static str> {
        match self {
            Self::EDU => Some("edu"),
            Self::IVSHMEM => Some("ivshmem"),
            _ => None,
        }
    }
}

/// The identity of a persona as carried in the stream: name, version and digest.
///
/// Two personas are the same exactly when all three are equal.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PersonaId {
    /// Name bytes, zero beyond `name_len`.
    name: [u8; NAME_MAX],
    /// Number of used bytes in `name`, `1..=NAME_MAX`.
    name_len: u8,
    /// The persona's version.
    version: u32,
    /// The digest over the persona's canonical encoding.
    digest: [u8; 32],
}

impl PersonaId {
    /// Creates an identity, or returns `None` if `name` is empty or longer than [`NAME_MAX`].
    pub fn new(name: &[u8], version: u32, digest: [u8; 32]) -> Option<Self> {
        let name_len = u8::try_from(name.len()).ok()?;
        if name.is_empty() || name.len() > NAME_MAX {
            return None;
        }
        let mut buf = [0; NAME_MAX];
        buf.get_mut(..name.len())?.copy_from_slice(name);
        Some(Self {
            name: buf,
            name_len,
            version,
            digest,
        })
    }

    /// Returns the persona's name bytes.
    pub fn name(&self) -> &[u8] {
        self.name.get(..usize::from(self.name_len)).unwrap_or(&[])
    }

    /// Returns the persona's version.
    pub const fn version(&self) -> u32 {
        self.version
    }

    /// Returns the persona's digest.
    pub const fn digest(&self) -> &[u8; 32] {
        &self.digest
    }
}

/// What a stream header says: the device kind and the persona.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Identity {
    /// The kind of device the state belongs to.
    pub kind: DeviceKind,
    /// The persona the source device presented.
    pub persona: PersonaId,
}

/// Which errno a stream error maps to; the kernel glue converts it to its error type.
///
/// Several errnos have arch-specific values, so the core names them instead of numbering them.
/// The failing `write()` on the data fd returns it, and QEMU prints it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Errno {
    /// `EINVAL`: the bytes are not a well-formed stream.
    Einval,
    /// `EBADMSG`: well-formed, but the checksum does not match (as for file-system checksums).
    Ebadmsg,
    /// `EOPNOTSUPP`: a newer format, flag or mandatory record this destination does not support.
    Eopnotsupp,
    /// `EPROTO`: a valid stream for another device kind or persona; the destination is
    /// incompatible, not the data corrupt.
    Eproto,
    /// `EFBIG`: larger than the destination's limits.
    Efbig,
}

/// Why a stream was rejected.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Reason {
    /// The first eight bytes are not [`MAGIC`].
    BadMagic,
    /// The format version is not [`FORMAT_VERSION`].
    UnsupportedVersion(u16),
    /// The header length field is not [`HEADER_LEN`].
    BadHeaderLength(u16),
    /// A header flag is set that this version does not define.
    UnsupportedHeaderFlags(u16),
    /// The persona name length is 0 or above [`NAME_MAX`].
    BadNameLength(u8),
    /// A reserved byte or the name padding is not zero.
    NonZeroReserved,
    /// The stream is for another kind of device.
    DeviceKindMismatch {
        /// The destination's device kind.
        expected: DeviceKind,
        /// The stream's device kind.
        found: DeviceKind,
    },
    /// The stream's persona has another name.
    PersonaNameMismatch,
    /// The stream's persona has the same name but another version.
    PersonaVersionMismatch {
        /// The destination persona's version.
        expected: u32,
        /// The stream persona's version.
        found: u32,
    },
    /// The stream's persona has the same name and version but another digest.
    PersonaDigestMismatch,
    /// A record sets flags this version does not define.
    UnsupportedRecordFlags(u32),
    /// A record is longer than the destination allows.
    RecordTooLarge {
        /// The record's length.
        len: u64,
        /// The destination's limit.
        max: u64,
    },
    /// The stream would be longer than the destination allows.
    StreamTooLarge {
        /// The destination's limit on the whole stream.
        max: u64,
    },
    /// A mandatory record has a tag the destination does not know.
    UnknownMandatory(u32),
    /// The end record's flags or length are wrong.
    BadEndRecord,
    /// The checksum in the end record does not match the stream.
    BadChecksum {
        /// The checksum of the bytes received.
        computed: u64,
        /// The checksum the end record carries.
        found: u64,
    },
    /// The stream stopped before its end record.
    Truncated,
    /// Bytes follow the end record.
    TrailingData,
    /// The sink found a record's contents invalid.
    InvalidRecord,
    /// The sink returned no room for payload bytes.
    NoStagingSpace,
}

impl Reason {
    /// Returns the errno this reason maps to.
    pub const fn errno(self) -> Errno {
        match self {
            Reason::BadMagic
            | Reason::BadHeaderLength(_)
            | Reason::BadNameLength(_)
            | Reason::NonZeroReserved
            | Reason::BadEndRecord
            | Reason::Truncated
            | Reason::TrailingData
            | Reason::InvalidRecord
            | Reason::NoStagingSpace => Errno::Einval,
            Reason::BadChecksum { .. } => Errno::Ebadmsg,
            Reason::UnsupportedVersion(_)
            | Reason::UnsupportedHeaderFlags(_)
            | Reason::UnsupportedRecordFlags(_)
            | Reason::UnknownMandatory(_) => Errno::Eopnotsupp,
            Reason::DeviceKindMismatch { .. }
            | Reason::PersonaNameMismatch
            | Reason::PersonaVersionMismatch { .. }
            | Reason::PersonaDigestMismatch => Errno::Eproto,
            Reason::RecordTooLarge { .. } | Reason::StreamTooLarge { .. } => Errno::Efbig,
        }
    }

    /// Returns `true` if the stream is well-formed but meant for an incompatible destination.
    pub const fn is_incompatible(self) -> bool {
        matches!(self.errno(), Errno::Eproto | Errno::Eopnotsupp)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reason::BadMagic => write!(f, "bad magic (not a persona-vfio-pci migration stream)"),
            Reason::UnsupportedVersion(v) => write!(f, "unsupported stream format version {v}"),
            Reason::BadHeaderLength(l) => write!(f, "bad header length {l}"),
            Reason::UnsupportedHeaderFlags(x) => write!(f, "unsupported header flags {x:#x}"),
            Reason::BadNameLength(l) => write!(f, "bad persona name length {l}"),
            Reason::NonZeroReserved => write!(f, "reserved bytes are not zero"),
            Reason::DeviceKindMismatch { expected, found } => write!(
                f,
                "device kind mismatch: stream has {}, device is {}",
                found.0, expected.0
            ),
            Reason::PersonaNameMismatch => write!(f, "persona name mismatch"),
            Reason::PersonaVersionMismatch { expected, found } => write!(
                f,
                "persona version mismatch: stream has {found}, device has {expected}"
            ),
            Reason::PersonaDigestMismatch => write!(f, "persona digest mismatch"),
            Reason::UnsupportedRecordFlags(x) => write!(f, "unsupported record flags {x:#x}"),
            Reason::RecordTooLarge { len, max } => {
                write!(f, "record of {len} bytes exceeds the limit of {max}")
            }
            Reason::StreamTooLarge { max } => write!(f, "stream exceeds the limit of {max} bytes"),
            Reason::UnknownMandatory(t) => write!(f, "unknown mandatory record tag {t:#x}"),
            Reason::BadEndRecord => write!(f, "malformed end record"),
            Reason::BadChecksum { computed, found } => write!(
                f,
                "checksum mismatch: stream says {found:#018x}, data gives {computed:#018x}"
            ),
            Reason::Truncated => write!(f, "stream truncated before its end record"),
            Reason::TrailingData => write!(f, "data after the end record"),
            Reason::InvalidRecord => write!(f, "invalid record contents"),
            Reason::NoStagingSpace => write!(f, "no staging space for record payload"),
        }
    }
}

/// A rejected stream: where and why.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StreamError {
    /// Stream offset of the offending field (or of the first byte not accepted).
    pub offset: u64,
    /// What is wrong there.
    pub reason: Reason,
}

impl StreamError {
    /// Returns the errno this error maps to.
    pub const fn errno(&self) -> Errno {
        self.reason.errno()
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.reason)
    }
}

/// Size limits a destination sets on the streams it accepts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Limits {
    /// Largest accepted record payload, in bytes.
    pub max_record: u64,
    /// Largest accepted stream, in bytes, header and end record included.
    pub max_total: u64,
}

impl Limits {
    /// No limit (for tools reading a file; a kernel destination sets real limits).
    pub const UNLIMITED: Self = Self {
        max_record: u64::MAX,
        max_total: u64::MAX,
    };
}

/// What a destination expects from the header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Expect {
    /// The destination's device kind, or `None` to accept any.
    pub kind: Option<DeviceKind>,
    /// The destination's persona, or `None` to accept any (tools inspecting a stream).
    pub persona: Option<PersonaId>,
}

impl Expect {
    /// Accepts any device kind and persona (the header is still validated and reported).
    pub const ANY: Self = Self {
        kind: None,
        persona: None,
    };

    /// Accepts exactly the stream `id` describes.
    pub const fn exactly(id: &Identity) -> Self {
        Self {
            kind: Some(id.kind),
            persona: Some(id.persona),
        }
    }
}

/// A record header as the decoder saw it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RecordInfo {
    /// Stream offset of the record header.
    pub offset: u64,
    /// The record's tag.
    pub tag: u32,
    /// Whether the destination must understand the tag.
    pub mandatory: bool,
    /// Payload length in bytes.
    pub len: u64,
}

/// What the sink wants done with a record's payload.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Disposition {
    /// The tag is known: pass the payload through [`Sink::stage`].
    Stage,
    /// The tag is known, but the payload is not needed: verify it, but drop it.
    Discard,
    /// The tag is unknown: skip an optional record, reject a mandatory one.
    Unknown,
}

/// The caller's side of decoding: it recognizes records and stages their payload.
///
/// Staged data must not be applied to a device until [`Parser::feed`] returns
/// [`Progress::Done`]: until then the stream may still turn out to be corrupt.
pub trait Sink {
    /// Called once the header is complete and matches the expectation.
    ///
    /// # Errors
    ///
    /// A reason to reject the stream; the default accepts every header.
    fn header(&mut self, id: &Identity) -> Result<(), Reason> {
        let _ = id;
        Ok(())
    }

    /// Called when a record header (other than the end record) is complete.
    ///
    /// # Errors
    ///
    /// A reason to reject the stream, e.g. [`Reason::InvalidRecord`] for a known tag with a length
    /// it cannot have, or a duplicate.
    fn begin_record(&mut self, rec: &RecordInfo) -> Result<Disposition, Reason>;

    /// Returns where to put up to `want` payload bytes (`want > 0`), starting at payload offset
    /// `offset` of the current record (only for [`Disposition::Stage`]).
    ///
    /// The decoder copies `min(want, returned.len())` bytes there and asks again for the rest.
    ///
    /// # Errors
    ///
    /// A reason to reject the stream. An empty slice is rejected as [`Reason::NoStagingSpace`].
    fn stage(&mut self, offset: u64, want: usize) -> Result<&mut [u8], Reason>;

    /// Called when all of a staged or discarded record's payload has been received.
    ///
    /// # Errors
    ///
    /// A reason to reject the stream, e.g. [`Reason::InvalidRecord`] for bad contents.
    fn end_record(&mut self) -> Result<(), Reason> {
        Ok(())
    }
}

/// How far decoding has come after a chunk was accepted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Progress {
    /// The stream is not complete yet.
    NeedMore,
    /// The end record has been received and the checksum verified: the staged state may be
    /// applied.
    Done,
}

/// What the decoder does with the current record's payload.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Payload {
    /// Hand it to [`Sink::stage`].
    Stage,
    /// Checksum it and drop it; `known` says whether [`Sink::end_record`] is called.
    Drop { known: bool },
}

/// Decoder position.
#[derive(Clone, Copy, Debug)]
enum PState {
    /// Collecting the header; `have` bytes are in `Parser::header`.
    Header { have: usize },
    /// Collecting a record header.
    RecordHeader {
        buf: [u8; RECORD_HEADER_LEN],
        have: usize,
    },
    /// Receiving a record's payload.
    Payload { len: u64, done: u64, how: Payload },
    /// Collecting the end record's checksum.
    Checksum { buf: [u8; 8], have: usize },
    /// The end record was verified.
    Done,
    /// An error was returned; it is returned again.
    Failed(StreamError),
}

/// Streaming decoder of the migration stream.
///
/// Feed it the stream in chunks of any size with [`Parser::feed`]; call [`Parser::finish`] when
/// the writer is done (the kernel glue: on leaving RESUMING). After an error, every call returns
/// the same error.
///
/// # Examples
///
/// A destination that knows tag 7, decoding a stream written one byte at a time:
///
/// ```
/// use persona_core::mig::stream::*;
///
/// struct Regs([u8; 4]);
///
/// impl Sink for Regs {
///     fn begin_record(&mut self, rec: &RecordInfo) -> Result<Disposition, Reason> {
///         match (rec.tag, rec.len) {
///             (7, 4) => Ok(Disposition::Stage),
///             (7, _) => Err(Reason::InvalidRecord),
///             _ => Ok(Disposition::Unknown),
///         }
///     }
///     fn stage(&mut self, offset: u64, want: usize) -> Result<&mut [u8], Reason> {
///         let at = usize::try_from(offset).map_err(|_| Reason::InvalidRecord)?;
///         self.0.get_mut(at..at + want).ok_or(Reason::InvalidRecord)
///     }
/// }
///
/// let id = Identity {
///     kind: DeviceKind::EDU,
///     persona: PersonaId::new(b"edu-v1", 1, [0; 32]).unwrap(),
/// };
/// let records = [Record { tag: 7, mandatory: true, payload: &[1, 2, 3, 4] }];
/// let mut stream = [0u8; 256];
/// let n = Writer::new(&id).fill(&records, &mut stream).unwrap();
///
/// let mut parser = Parser::new(Expect::exactly(&id), Limits::UNLIMITED);
/// let mut regs = Regs([0; 4]);
/// let mut last = Progress::NeedMore;
/// for byte in stream[..n].chunks(1) {
///     last = parser.feed(byte, &mut regs).unwrap();
/// }
/// assert_eq!(last, Progress::Done);
/// assert_eq!(regs.0, [1, 2, 3, 4]); // Only now may the registers be applied.
/// ```
#[derive(Clone, Debug)]
pub struct Parser {
    /// What the header must say.
    expect: Expect,
    /// Size limits.
    limits: Limits,
    /// Checksum of the bytes so far (not including the end record's checksum field).
    sum: Checksum,
    /// Bytes accepted so far.
    offset: u64,
    /// Where the decoder is.
    state: PState,
    /// The header bytes.
    header: [u8; HEADER_LEN],
    /// Whether `header` is complete and was accepted (the identity is decoded from it on demand,
    /// which keeps the decoder small).
    header_ok: bool,
}

impl Parser {
    /// Creates a decoder for a destination expecting `expect`, within `limits`.
    pub const fn new(expect: Expect, limits: Limits) -> Self {
        Self {
            expect,
            limits,
            sum: Checksum::new(),
            offset: 0,
            state: PState::Header { have: 0 },
            header: [0; HEADER_LEN],
            header_ok: false,
        }
    }

    /// Starts over, for a new stream, without building a new decoder on the stack.
    pub fn reset(&mut self, expect: Expect, limits: Limits) {
        self.expect = expect;
        self.limits = limits;
        self.sum = Checksum::new();
        self.offset = 0;
        self.state = PState::Header { have: 0 };
        self.header_ok = false;
    }

    /// Returns the number of stream bytes accepted so far; after an error, the error's offset.
    pub const fn offset(&self) -> u64 {
        self.offset
    }

    /// Returns the stream's identity once its header has been received and accepted.
    pub fn identity(&self) -> Option<Identity> {
        if !self.header_ok {
            return None;
        }
        decode_header(&self.header).ok()
    }

    /// Returns `true` once the whole stream has been received and verified.
    pub const fn is_done(&self) -> bool {
        matches!(self.state, PState::Done)
    }

    /// Returns the error the decoder stopped at, if any.
    pub const fn error(&self) -> Option<StreamError> {
        match self.state {
            PState::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Checks that the stream is complete: call it when the writer signals the end.
    ///
    /// # Errors
    ///
    /// The error the decoder stopped at, or [`Reason::Truncated`] (at the current offset) if the
    /// end record has not been received.
    pub const fn finish(&self) -> Result<(), StreamError> {
        match self.state {
            PState::Done => Ok(()),
            PState::Failed(e) => Err(e),
            _ => Err(StreamError {
                offset: self.offset,
                reason: Reason::Truncated,
            }),
        }
    }

    /// Accepts the next chunk of the stream, handing payload bytes to `sink`.
    ///
    /// A chunk may be of any size, including empty. The whole chunk is consumed on success.
    ///
    /// # Errors
    ///
    /// The first problem found, with its stream offset. A header with the wrong persona or device
    /// kind is rejected by the call that completes the header.
    pub fn feed<S: Sink + ?Sized>(
        &mut self,
        chunk: &[u8],
        sink: &mut S,
    ) -> Result<Progress, StreamError> {
        let mut rest = chunk;
        let r = self.feed_inner(&mut rest, sink);
        match r {
            Ok(()) if self.is_done() => Ok(Progress::Done),
            Ok(()) => Ok(Progress::NeedMore),
            Err(reason) => {
                let e = StreamError {
                    offset: self.offset,
                    reason,
                };
                let e = match self.state {
                    PState::Failed(first) => first,
                    _ => e,
                };
                self.state = PState::Failed(e);
                Err(e)
            }
        }
    }

    /// The decoding loop. On error, `self.offset` is the error's offset.
    fn feed_inner<S: Sink + ?Sized>(
        &mut self,
        rest: &mut &[u8],
        sink: &mut S,
    ) -> Result<(), Reason> {
        while !rest.is_empty() {
            match self.state {
                PState::Header { have } => self.on_header(have, rest, sink)?,
                PState::RecordHeader { buf, have } => {
                    self.on_record_header(buf, have, rest, sink)?
                }
                PState::Payload { len, done, how } => {
                    self.on_payload(len, done, how, rest, sink)?
                }
                PState::Checksum { buf, have } => self.on_checksum(buf, have, rest)?,
                PState::Done => return Err(Reason::TrailingData),
                PState::Failed(e) => {
                    self.offset = e.offset;
                    return Err(e.reason);
                }
            }
        }
        // Surface a stored error even for an empty chunk.
        if let PState::Failed(e) = self.state {
            self.offset = e.offset;
            return Err(e.reason);
        }
        Ok(())
    }

    /// Collects header bytes, checking each field as soon as it is complete.
    fn on_header<S: Sink + ?Sized>(
        &mut self,
        have: usize,
        rest: &mut &[u8],
        sink: &mut S,
    ) -> Result<(), Reason> {
        let start = self.offset;
        let piece = take(rest, HEADER_LEN.saturating_sub(have));
        let end = have.saturating_add(piece.len());
        if let Some(dst) = self.header.get_mut(have..end) {
            dst.copy_from_slice(piece);
        }
        self.sum.update(piece);

        // Reject a foreign stream at its first wrong magic byte, and an unknown version as soon
        // as it is known, so that a mismatch is reported at the earliest possible write.
        let got = self.header.get(..end.min(MAGIC.len())).unwrap_or(&[]);
        if MAGIC.get(..got.len()) != Some(got) {
            let bad = got
                .iter()
                .zip(MAGIC.iter())
                .take_while(|(a, b)| a == b)
                .count();
            self.offset = u64::try_from(bad).unwrap_or(0);
            return Err(Reason::BadMagic);
        }
        if end >= 10 {
            let v = u16::from_le_bytes(field(&self.header, 8));
            if v != FORMAT_VERSION {
                self.offset = off::VERSION;
                return Err(Reason::UnsupportedVersion(v));
            }
        }
        if end < HEADER_LEN {
            self.offset = start.saturating_add(len64(piece));
            self.state = PState::Header { have: end };
            return Ok(());
        }

        let id = decode_header(&self.header).map_err(|(at, reason)| {
            self.offset = at;
            reason
        })?;
        self.check_identity(&id)?;
        self.offset = len64(&self.header);
        // A stream must at least have room for its end record.
        self.check_total(self.offset, 0)?;
        sink.header(&id)?;
        self.header_ok = true;
        self.state = PState::RecordHeader {
            buf: [0; RECORD_HEADER_LEN],
            have: 0,
        };
        Ok(())
    }

    /// Compares a complete header with the destination's expectation.
    fn check_identity(&mut self, id: &Identity) -> Result<(), Reason> {
        if let Some(kind) = self.expect.kind {
            if kind != id.kind {
                self.offset = off::KIND;
                return Err(Reason::DeviceKindMismatch {
                    expected: kind,
                    found: id.kind,
                });
            }
        }
        if let Some(p) = &self.expect.persona {
            let (at, reason) = if p.name() != id.persona.name() {
                (off::NAME, Reason::PersonaNameMismatch)
            } else if p.version != id.persona.version {
                let reason = Reason::PersonaVersionMismatch {
                    expected: p.version,
                    found: id.persona.version,
                };
                (off::PERSONA_VERSION, reason)
            } else if p.digest != id.persona.digest {
                (off::DIGEST, Reason::PersonaDigestMismatch)
            } else {
                return Ok(());
            };
            self.offset = at;
            return Err(reason);
        }
        Ok(())
    }

    /// Checks that a record of `len` payload bytes starting at `at`, plus the end record, fits.
    fn check_total(&mut self, at: u64, len: u64) -> Result<(), Reason> {
        let max = self.limits.max_total;
        let end = at
            .checked_add(len)
            .and_then(|e| e.checked_add(len64(&[0; END_RECORD_LEN])));
        match end {
            Some(e) if e <= max => Ok(()),
            _ => {
                self.offset = at;
                Err(Reason::StreamTooLarge { max })
            }
        }
    }

    /// Collects a record header and decides what to do with the record.
    fn on_record_header<S: Sink + ?Sized>(
        &mut self,
        mut buf: [u8; RECORD_HEADER_LEN],
        have: usize,
        rest: &mut &[u8],
        sink: &mut S,
    ) -> Result<(), Reason> {
        let piece = take(rest, RECORD_HEADER_LEN.saturating_sub(have));
        let end = have.saturating_add(piece.len());
        if let Some(dst) = buf.get_mut(have..end) {
            dst.copy_from_slice(piece);
        }
        self.sum.update(piece);
        if end < RECORD_HEADER_LEN {
            self.offset = self.offset.saturating_add(len64(piece));
            self.state = PState::RecordHeader { buf, have: end };
            return Ok(());
        }

        // `self.offset` still points at the start of the record header here.
        let rec_at = self.offset.saturating_sub(u64::try_from(have).unwrap_or(0));
        self.offset = rec_at;
        let tag = u32::from_le_bytes(field(&buf, 0));
        let flags = u32::from_le_bytes(field(&buf, 4));
        let len = u64::from_le_bytes(field(&buf, 8));
        if flags & !FLAG_MANDATORY != 0 {
            self.offset = rec_at.saturating_add(4);
            return Err(Reason::UnsupportedRecordFlags(flags));
        }
        let payload_at = rec_at.saturating_add(len64(&buf));
        if tag == TAG_END {
            if flags != FLAG_MANDATORY || len != END_PAYLOAD_LEN {
                return Err(Reason::BadEndRecord);
            }
            self.offset = payload_at;
            self.state = PState::Checksum {
                buf: [0; 8],
                have: 0,
            };
            return Ok(());
        }
        if len > self.limits.max_record {
            self.offset = rec_at.saturating_add(8);
            return Err(Reason::RecordTooLarge {
                len,
                max: self.limits.max_record,
            });
        }
        self.check_total(payload_at, len)?;
        let mandatory = flags & FLAG_MANDATORY != 0;
        let info = RecordInfo {
            offset: rec_at,
            tag,
            mandatory,
            len,
        };
        let how = match sink.begin_record(&info)? {
            Disposition::Stage => Payload::Stage,
            Disposition::Discard => Payload::Drop { known: true },
            Disposition::Unknown if mandatory => return Err(Reason::UnknownMandatory(tag)),
            Disposition::Unknown => Payload::Drop { known: false },
        };
        self.offset = payload_at;
        self.state = PState::Payload { len, done: 0, how };
        if len == 0 {
            self.end_payload(how, sink)?;
        }
        Ok(())
    }

    /// Receives payload bytes of the current record.
    fn on_payload<S: Sink + ?Sized>(
        &mut self,
        len: u64,
        mut done: u64,
        how: Payload,
        rest: &mut &[u8],
        sink: &mut S,
    ) -> Result<(), Reason> {
        let left = usize::try_from(len.saturating_sub(done)).unwrap_or(usize::MAX);
        let mut piece = take(rest, left);
        match how {
            Payload::Stage => {
                while !piece.is_empty() {
                    let dst = sink.stage(done, piece.len())?;
                    if dst.is_empty() {
                        return Err(Reason::NoStagingSpace);
                    }
                    let n = self.sum.copy_update(dst, piece);
                    piece = piece.get(n..).unwrap_or(&[]);
                    done = done.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
                    self.offset = self.offset.saturating_add(u64::try_from(n).unwrap_or(0));
                }
            }
            Payload::Drop { .. } => {
                self.sum.update(piece);
                done = done.saturating_add(len64(piece));
                self.offset = self.offset.saturating_add(len64(piece));
            }
        }
        self.state = PState::Payload { len, done, how };
        if done >= len {
            self.end_payload(how, sink)?;
        }
        Ok(())
    }

    /// Finishes the current record and waits for the next record header.
    fn end_payload<S: Sink + ?Sized>(&mut self, how: Payload, sink: &mut S) -> Result<(), Reason> {
        if how != (Payload::Drop { known: false }) {
            sink.end_record()?;
        }
        self.state = PState::RecordHeader {
            buf: [0; RECORD_HEADER_LEN],
            have: 0,
        };
        Ok(())
    }

    /// Collects the end record's checksum and verifies it.
    fn on_checksum(
        &mut self,
        mut buf: [u8; 8],
        have: usize,
        rest: &mut &[u8],
    ) -> Result<(), Reason> {
        let piece = take(rest, buf.len().saturating_sub(have));
        let end = have.saturating_add(piece.len());
        if let Some(dst) = buf.get_mut(have..end) {
            dst.copy_from_slice(piece);
        }
        if end < buf.len() {
            self.offset = self.offset.saturating_add(len64(piece));
            self.state = PState::Checksum { buf, have: end };
            return Ok(());
        }
        let at = self.offset.saturating_sub(u64::try_from(have).unwrap_or(0));
        let found = u64::from_le_bytes(buf);
        let computed = self.sum.finish();
        if found != computed {
            self.offset = at;
            return Err(Reason::BadChecksum { computed, found });
        }
        self.offset = at.saturating_add(END_PAYLOAD_LEN);
        self.state = PState::Done;
        Ok(())
    }
}

/// Validates a complete header and returns what it says, or the offset and reason of the first
/// bad field.
fn decode_header(h: &[u8; HEADER_LEN]) -> Result<Identity, (u64, Reason)> {
    let header_len = u16::from_le_bytes(field(h, 10));
    if header_len != HEADER_LEN_U16 {
        return Err((off::HEADER_LEN, Reason::BadHeaderLength(header_len)));
    }
    let kind = DeviceKind(u16::from_le_bytes(field(h, 12)));
    let flags = u16::from_le_bytes(field(h, 14));
    if flags != 0 {
        return Err((off::FLAGS, Reason::UnsupportedHeaderFlags(flags)));
    }
    let version = u32::from_le_bytes(field(h, 16));
    let [name_len] = field::<1>(h, 20);
    if field::<3>(h, 21) != [0; 3] {
        return Err((off::RESERVED, Reason::NonZeroReserved));
    }
    let digest = field::<32>(h, 24);
    let name_field = field::<NAME_MAX>(h, 56);
    let n = usize::from(name_len);
    let (name, pad) = name_field.split_at_checked(n).unwrap_or((&[], &[]));
    if n == 0 || n > NAME_MAX {
        return Err((off::NAME_LEN, Reason::BadNameLength(name_len)));
    }
    if pad.iter().any(|&b| b != 0) {
        let at = off::NAME.saturating_add(u64::from(name_len));
        return Err((at, Reason::NonZeroReserved));
    }
    let persona = PersonaId::new(name, version, digest)
        .ok_or((off::NAME_LEN, Reason::BadNameLength(name_len)))?;
    Ok(Identity { kind, persona })
}

/// Encodes the header for `id`.
fn encode_header(id: &Identity) -> [u8; HEADER_LEN] {
    let mut h = [0; HEADER_LEN];
    let mut w = Put(&mut h);
    w.put(&MAGIC);
    w.put(&FORMAT_VERSION.to_le_bytes());
    w.put(&HEADER_LEN_U16.to_le_bytes());
    w.put(&id.kind.0.to_le_bytes());
    w.put(&0u16.to_le_bytes());
    w.put(&id.persona.version.to_le_bytes());
    w.put(&[id.persona.name_len, 0, 0, 0]);
    w.put(&id.persona.digest);
    w.put(&id.persona.name);
    h
}

/// Sequential writer into a fixed buffer; bytes that do not fit are dropped.
struct Put<'a>(&'a mut [u8]);

impl Put<'_> {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]) {
        let buf = core::mem::take(&mut self.0);
        let n = bytes.len().min(buf.len());
        let (dst, rest) = buf.split_at_mut(n);
        dst.copy_from_slice(bytes.get(..n).unwrap_or(&[]));
        self.0 = rest;
    }
}

/// Reads the `N` bytes at `at` of `buf` (zeros if out of range, which callers never ask for).
fn field<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    buf.get(at..)
        .and_then(|b| b.first_chunk::<N>())
        .copied()
        .unwrap_or([0; N])
}

/// Takes up to `n` bytes off the front of `rest`.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, tail) = rest.split_at_checked(n).unwrap_or((rest, &[]));
    *rest = tail;
    head
}

/// Returns a slice length as `u64`.
fn len64(b: &[u8]) -> u64 {
    u64::try_from(b.len()).unwrap_or(u64::MAX)
}

/// One record for the encoder: tag, mandatory flag and payload.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Record<'a> {
    /// The record's tag (not [`TAG_END`]).
    pub tag: u32,
    /// Whether the destination must understand the tag.
    pub mandatory: bool,
    /// The payload.
    pub payload: &'a [u8],
}

/// Where the encoder takes records from: data the caller holds in its own memory.
///
/// The encoder asks for records by index, possibly several times for the same index (a record is
/// emitted over as many [`Writer::fill`] calls as the reader's buffers need), so `record(i)` must
/// return the same record every time until the stream is complete.
pub trait RecordSource {
    /// Returns record `index`, or `None` after the last record.
    fn record(&self, index: usize) -> Option<Record<'_>>;
}

impl RecordSource for [Record<'_>] {
    fn record(&self, index: usize) -> Option<Record<'_>> {
        self.get(index).copied()
    }
}

impl<const N: usize> RecordSource for [Record<'_>; N] {
    fn record(&self, index: usize) -> Option<Record<'_>> {
        self.get(index).copied()
    }
}

/// Why the encoder stopped. Both are bugs in the caller; the kernel glue reports `EIO`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WriteError {
    /// A record's tag is [`TAG_END`].
    ReservedTag {
        /// Index of the record.
        index: usize,
    },
    /// A record changed length (or disappeared) while being emitted.
    SourceChanged {
        /// Index of the record.
        index: usize,
    },
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::ReservedTag { index } => write!(f, "record {index} uses the end tag"),
            WriteError::SourceChanged { index } => write!(f, "record {index} changed while saved"),
        }
    }
}

/// Encoder position.
#[derive(Clone, Copy, Debug)]
enum WState {
    /// Emitting the header; `Writer::written` bytes of it are out.
    Header,
    /// Emitting record `index`'s header from `buf`.
    RecordHeader {
        index: usize,
        buf: [u8; RECORD_HEADER_LEN],
        at: usize,
    },
    /// Emitting record `index`'s payload, `at` of `len` bytes out.
    Payload { index: usize, len: usize, at: usize },
    /// Between records, waiting for record `next` ([`Writer::fill_until`] stopped here).
    Paused { next: usize },
    /// Emitting the end record from `buf`.
    End {
        buf: [u8; END_RECORD_LEN],
        at: usize,
    },
    /// Complete.
    Done,
    /// Stopped on an error, which is returned again.
    Failed(WriteError),
}

/// Streaming encoder of the migration stream.
///
/// The kernel glue creates it when a saving session opens. In PRE_COPY it emits only the header
/// with [`Writer::fill_header`] (the PRE_COPY initial bytes, so an incompatible destination
/// rejects the stream before the source stops). Once the device state is captured it emits the
/// rest with [`Writer::fill`], in whatever pieces the reader asks for, then the end record.
///
/// # Examples
///
/// ```
/// use persona_core::mig::stream::*;
///
/// let id = Identity {
///     kind: DeviceKind::EDU,
///     persona: PersonaId::new(b"edu-v1", 1, [0; 32]).unwrap(),
/// };
/// let mut w = Writer::new(&id);
///
/// // PRE_COPY: the header is all there is, read in any pieces.
/// let mut buf = [0u8; 100];
/// assert_eq!(w.header_remaining(), HEADER_LEN);
/// assert_eq!(w.fill_header(&mut buf), 100);
/// assert_eq!(w.fill_header(&mut buf), HEADER_LEN - 100);
/// assert_eq!(w.fill_header(&mut buf), 0); // The glue returns -ENOMSG here.
///
/// // STOP_COPY: the device state is captured; the rest follows, then EOF.
/// let state = [Record { tag: 7, mandatory: true, payload: &[1, 2, 3, 4] }];
/// assert_eq!(w.remaining(&state), Some(16 + 4 + 24));
/// let mut total = 0;
/// loop {
///     let n = w.fill(&state, &mut buf).unwrap();
///     if n == 0 {
///         break;
///     }
///     total += n;
/// }
/// assert_eq!(total, 16 + 4 + 24);
/// assert!(w.is_done());
/// ```
#[derive(Clone, Debug)]
pub struct Writer {
    /// The encoded header.
    header: [u8; HEADER_LEN],
    /// Checksum of everything emitted or prepared so far.
    sum: Checksum,
    /// Bytes emitted so far.
    written: u64,
    /// Where the encoder is.
    state: WState,
}

impl Writer {
    /// Creates an encoder for a stream with identity `id`.
    pub fn new(id: &Identity) -> Self {
        let header = encode_header(id);
        let mut sum = Checksum::new();
        sum.update(&header);
        Self {
            header,
            sum,
            written: 0,
            state: WState::Header,
        }
    }

    /// Returns the number of bytes emitted so far.
    pub const fn written(&self) -> u64 {
        self.written
    }

    /// Returns `true` once the end record has been emitted entirely.
    pub const fn is_done(&self) -> bool {
        matches!(self.state, WState::Done)
    }

    /// Returns how many header bytes remain to be emitted (the PRE_COPY `initial_bytes`).
    pub fn header_remaining(&self) -> usize {
        match self.state {
            WState::Header => {
                let w = usize::try_from(self.written).unwrap_or(usize::MAX);
                HEADER_LEN.saturating_sub(w)
            }
            _ => 0,
        }
    }

    /// Emits as many remaining header bytes as fit in `out`; returns how many were written.
    ///
    /// Emits nothing once the header is out: the rest of the stream needs [`Writer::fill`].
    pub fn fill_header(&mut self, out: &mut [u8]) -> usize {
        let n = self.emit_header(out);
        self.written = self.written.saturating_add(u64::try_from(n).unwrap_or(0));
        n
    }

    /// Copies remaining header bytes into `out` without counting them; returns the count.
    fn emit_header(&self, out: &mut [u8]) -> usize {
        if !matches!(self.state, WState::Header) {
            return 0;
        }
        let w = usize::try_from(self.written).unwrap_or(usize::MAX);
        copy_from(out, &self.header, w)
    }

    /// Emits as much of the rest of the stream (header, records of `src`, end record) as fits in
    /// `out`; returns how many bytes were written: less than `out.len()` only at the end of the
    /// stream, and 0 once it is complete (the data fd's EOF) or when `out` is empty.
    ///
    /// # Errors
    ///
    /// [`WriteError`] if `src` misbehaves; the encoder then stays failed.
    pub fn fill<S: RecordSource + ?Sized>(
        &mut self,
        src: &S,
        out: &mut [u8],
    ) -> Result<usize, WriteError> {
        self.fill_to(src, out, None)
    }

    /// As [`Writer::fill`], but stops before record `stop` of `src` (at a record boundary,
    /// without the end record): the part of a stream that is ready before the rest (records a
    /// source sends while the device still runs). A later [`Writer::fill`] or `fill_until` with
    /// a source whose records up to the pause are the same continues there.
    ///
    /// ```
    /// use persona_core::mig::stream::*;
    ///
    /// let id = Identity {
    ///     kind: DeviceKind::EDU,
    ///     persona: PersonaId::new(b"p", 1, [0; 32]).unwrap(),
    /// };
    /// let early = [Record { tag: 9, mandatory: false, payload: &[7; 10] }];
    /// let all = [early[0], Record { tag: 7, mandatory: true, payload: &[1, 2] }];
    /// let mut w = Writer::new(&id);
    /// let mut buf = [0u8; 512];
    /// assert_eq!(w.remaining_until(&early, 1), Some(120 + 16 + 10));
    /// assert_eq!(w.fill_until(&early, &mut buf, 1).unwrap(), 120 + 16 + 10);
    /// assert!(w.is_paused());
    /// assert_eq!(w.fill_until(&early, &mut buf, 1).unwrap(), 0);
    /// assert_eq!(w.remaining(&all), Some(16 + 2 + 24));
    /// assert_eq!(w.fill(&all, &mut buf).unwrap(), 16 + 2 + 24);
    /// assert!(w.is_done());
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Writer::fill`].
    pub fn fill_until<S: RecordSource + ?Sized>(
        &mut self,
        src: &S,
        out: &mut [u8],
        stop: usize,
    ) -> Result<usize, WriteError> {
        self.fill_to(src, out, Some(stop))
    }

    /// Returns `true` while the encoder waits at a record boundary ([`Writer::fill_until`]).
    pub const fn is_paused(&self) -> bool {
        matches!(self.state, WState::Paused { .. })
    }

    /// The body of [`Writer::fill`] and [`Writer::fill_until`].
    fn fill_to<S: RecordSource + ?Sized>(
        &mut self,
        src: &S,
        out: &mut [u8],
        stop: Option<usize>,
    ) -> Result<usize, WriteError> {
        let total = out.len();
        let mut out = out;
        while !out.is_empty() {
            let n = match self.state {
                WState::Header => {
                    let n = self.emit_header(out);
                    if self.header_remaining() <= n {
                        self.start_record(src, 0, stop)?;
                    }
                    n
                }
                WState::RecordHeader { index, buf, at } => {
                    let n = copy_from(out, &buf, at);
                    let at = at.saturating_add(n);
                    self.state = if at < RECORD_HEADER_LEN {
                        WState::RecordHeader { index, buf, at }
                    } else {
                        let len = record_len(src, index).map_err(|e| self.fail(e))?;
                        WState::Payload { index, len, at: 0 }
                    };
                    self.after_payload(src, stop)?;
                    n
                }
                WState::Payload { index, len, at } => {
                    let payload = src
                        .record(index)
                        .map(|r| r.payload)
                        .filter(|p| p.len() == len)
                        .ok_or_else(|| self.fail(WriteError::SourceChanged { index }))?;
                    let n = self.sum.copy_update(out, payload.get(at..).unwrap_or(&[]));
                    self.state = WState::Payload {
                        index,
                        len,
                        at: at.saturating_add(n),
                    };
                    self.after_payload(src, stop)?;
                    n
                }
                WState::End { buf, at } => {
                    let n = copy_from(out, &buf, at);
                    let at = at.saturating_add(n);
                    self.state = if at < END_RECORD_LEN {
                        WState::End { buf, at }
                    } else {
                        WState::Done
                    };
                    n
                }
                WState::Paused { next } => {
                    if stop == Some(next) {
                        break;
                    }
                    self.start_record(src, next, stop)?;
                    0
                }
                WState::Done => break,
                WState::Failed(e) => return Err(e),
            };
            self.written = self.written.saturating_add(u64::try_from(n).unwrap_or(0));
            out = out.get_mut(n..).unwrap_or(&mut []);
        }
        Ok(total.saturating_sub(out.len()))
    }

    /// Returns how many bytes remain to be emitted if the records are those of `src`, or `None` if
    /// the count overflows (the `stop_copy_length` and PRE_COPY sizes the glue reports).
    pub fn remaining<S: RecordSource + ?Sized>(&self, src: &S) -> Option<u64> {
        self.remaining_to(src, None)
    }

    /// Returns how many bytes remain to be emitted before record `stop` of `src` (what
    /// [`Writer::fill_until`] still gives), or `None` if the count overflows.
    pub fn remaining_until<S: RecordSource + ?Sized>(&self, src: &S, stop: usize) -> Option<u64> {
        self.remaining_to(src, Some(stop))
    }

    /// The body of [`Writer::remaining`] and [`Writer::remaining_until`].
    fn remaining_to<S: RecordSource + ?Sized>(&self, src: &S, stop: Option<usize>) -> Option<u64> {
        let end = if stop.is_some() {
            0
        } else {
            len64(&[0; END_RECORD_LEN])
        };
        let rh = len64(&[0; RECORD_HEADER_LEN]);
        let (now, next) = match self.state {
            WState::Header => {
                let h = u64::try_from(self.header_remaining()).ok()?;
                (h, 0)
            }
            WState::RecordHeader { index, at, .. } => {
                let len = u64::try_from(src.record(index)?.payload.len()).ok()?;
                let left = u64::try_from(RECORD_HEADER_LEN.saturating_sub(at)).ok()?;
                (left.checked_add(len)?, index.checked_add(1)?)
            }
            WState::Payload { index, len, at } => (
                u64::try_from(len.saturating_sub(at)).ok()?,
                index.checked_add(1)?,
            ),
            WState::Paused { next } => (0, next),
            WState::End { at, .. } => {
                if stop.is_some() {
                    return Some(0);
                }
                return u64::try_from(END_RECORD_LEN.saturating_sub(at)).ok();
            }
            WState::Done | WState::Failed(_) => return Some(0),
        };
        let mut total = now.checked_add(end)?;
        let mut i = next;
        while let Some(r) = src.record(i).filter(|_| stop.is_none_or(|s| i < s)) {
            let len = u64::try_from(r.payload.len()).ok()?;
            total = total.checked_add(rh)?.checked_add(len)?;
            i = i.checked_add(1)?;
        }
        Some(total)
    }

    /// Prepares record `index` (or the end record after the last one).
    fn start_record<S: RecordSource + ?Sized>(
        &mut self,
        src: &S,
        index: usize,
        stop: Option<usize>,
    ) -> Result<(), WriteError> {
        if stop == Some(index) {
            self.state = WState::Paused { next: index };
            return Ok(());
        }
        let mut buf = [0; RECORD_HEADER_LEN];
        let Some(rec) = src.record(index) else {
            let mut end = [0; END_RECORD_LEN];
            let mut w = Put(&mut end);
            w.put(&TAG_END.to_le_bytes());
            w.put(&FLAG_MANDATORY.to_le_bytes());
            w.put(&END_PAYLOAD_LEN.to_le_bytes());
            self.sum.update(end.get(..RECORD_HEADER_LEN).unwrap_or(&[]));
            let mut w = Put(end.get_mut(RECORD_HEADER_LEN..).unwrap_or(&mut []));
            w.put(&self.sum.finish().to_le_bytes());
            self.state = WState::End { buf: end, at: 0 };
            return Ok(());
        };
        if rec.tag == TAG_END {
            return Err(self.fail(WriteError::ReservedTag { index }));
        }
        let flags = if rec.mandatory { FLAG_MANDATORY } else { 0 };
        let mut w = Put(&mut buf);
        w.put(&rec.tag.to_le_bytes());
        w.put(&flags.to_le_bytes());
        w.put(&len64(rec.payload).to_le_bytes());
        self.sum.update(&buf);
        self.state = WState::RecordHeader { index, buf, at: 0 };
        Ok(())
    }

    /// Moves on to the next record once the current payload is complete.
    fn after_payload<S: RecordSource + ?Sized>(
        &mut self,
        src: &S,
        stop: Option<usize>,
    ) -> Result<(), WriteError> {
        if let WState::Payload { index, len, at } = self.state {
            if at >= len {
                let next = index
                    .checked_add(1)
                    .ok_or_else(|| self.fail(WriteError::SourceChanged { index }))?;
                self.start_record(src, next, stop)?;
            }
        }
        Ok(())
    }

    /// Records a failure and returns it.
    fn fail(&mut self, e: WriteError) -> WriteError {
        self.state = WState::Failed(e);
        e
    }
}

/// Returns the payload length of record `index` of `src`.
fn record_len<S: RecordSource + ?Sized>(src: &S, index: usize) -> Result<usize, WriteError> {
    src.record(index)
        .map(|r| r.payload.len())
        .ok_or(WriteError::SourceChanged { index })
}

/// Copies `buf[at..]` into `out` as far as it fits; returns the count.
fn copy_from(out: &mut [u8], buf: &[u8], at: usize) -> usize {
    let src = buf.get(at..).unwrap_or(&[]);
    let n = src.len().min(out.len());
    if let (Some(d), Some(s)) = (out.get_mut(..n), src.get(..n)) {
        d.copy_from_slice(s);
    }
    n
}

/// Returns the encoded length of a whole stream with the records of `src`, or `None` on
/// overflow.
pub fn encoded_len<S: RecordSource + ?Sized>(src: &S) -> Option<u64> {
    let mut total = len64(&[0; HEADER_LEN]).checked_add(len64(&[0; END_RECORD_LEN]))?;
    let mut i = 0usize;
    while let Some(r) = src.record(i) {
        total = total
            .checked_add(len64(&[0; RECORD_HEADER_LEN]))?
            .checked_add(len64(r.payload))?;
        i = i.checked_add(1)?;
    }
    Some(total)
}
