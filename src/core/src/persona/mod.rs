//! Personas: the complete definition of the config space a VFIO user sees.
//!
//! A persona has a name and a version, the device identity (vendor, device, subsystem IDs,
//! class code, revision), the standard and extended capability chains and a rule for every byte
//! of config space. Each capability entry is one of
//!
//! - **physical**: the device's capability with this ID and instance number (0 = first with that
//!   ID in chain order), wherever the device has it, presented at a fixed virtual offset;
//! - **synthesized**: contents given by the persona (emulated bytes);
//! - **PASID**: a synthesized PASID capability described by width, exec and privileged flags;
//! - **hidden**: a physical capability that must not appear in the chain.
//!
//! Byte rules ([`Rule`]) say how each byte behaves: hidden (reads 0, writes dropped),
//! passthrough read-only, passthrough writable (writes go to vfio-pci-core, which still applies
//! its own virtualization), or emulated (a value with a write mask; the value in the persona is
//! also the reset value, and a mask of 0 makes it read-only).
//!
//! Passthrough bytes inside a physical capability's virtual range map to the same relative
//! offset of that capability on the device; every other passthrough byte maps to itself.
//! Capability headers (ID and next pointer), the capability pointer at 0x34 and the extended
//! chain head at 0x100 are always emulated and read-only, so the chains a user walks are exactly
//! the ones the persona describes, whatever the device's own layout.
//!
//! The persona's identity is the SHA-256 of its canonical binary encoding ([`format`]): two
//! personas are equal exactly when their digests are.
//!
//! Versions are `major.minor`, two `u16`s. The persona's author bumps `minor` for changes that
//! keep migration compatibility and `major` for those that do not; the code itself never trusts
//! version numbers and compares contents ([`diff`]).
//!
//! # Example
//!
//! ```
//! use persona_core::persona::derive::{derive_blob, DeriveOptions, PasidRequest};
//! use persona_core::persona::format::MAX_BLOB;
//! use persona_core::persona::{BarInfo, DeviceView, PersonaModel, PersonaRef, NBARS};
//!
//! // A 4 KiB config dump of a device without capabilities or BARs.
//! let mut dump = vec![0u8; 4096];
//! dump[..4].copy_from_slice(&[0x36, 0x1b, 0x10, 0x00]);
//! let dev = DeviceView { config: &dump, bars: Some([BarInfo::default(); NBARS]) };
//! let opts = DeriveOptions {
//!     pasid: Some(PasidRequest { width: 16, exec: false, privileged: false, offset: None }),
//!     ..DeriveOptions::default()
//! };
//! let mut scratch = Box::<PersonaModel>::default();
//! let mut blob = vec![0u8; MAX_BLOB];
//! let n = derive_blob(&dev, &opts, &mut scratch, &mut blob)?;
//! let p = PersonaRef::parse(&blob[..n])?;
//! assert_eq!(p.name(), "1b36:0010");
//! assert_eq!(p.pasid().map(|x| (x.offset, x.width)), Some((0xff8, 16)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod check;
pub mod derive;
pub mod descriptor;
pub mod device;
pub mod diff;
pub mod fields;
pub mod format;
pub mod model;

pub use device::{BarInfo, DeviceView, NBARS};
pub use format::PersonaRef;
pub use model::PersonaModel;

use super::pci::Space;

/// Longest persona name in bytes (printable ASCII).
pub const MAX_NAME: usize = 32;
/// Most capability entries (presented and hidden) in one persona.
pub const MAX_CAPS: usize = 48;
/// Most byte-rule runs in one persona.
pub const MAX_RUNS: usize = 256;
/// Most emulated bytes in one persona; they are the size of the overlay's register state.
pub const MAX_EMULATED: usize = 1024;
/// Size of the persona's config-space rule table: the whole of PCIe config space.
pub const SPACE: usize = 4096;

/// How one byte of presented config space behaves.
///
/// Every non-hidden byte carries a value and a mask in the persona: for emulated bytes the reset
/// value and the write mask; for pinned and dynamic bytes the value the device must have in the
/// bits of the pin mask (the bits the [`check`] verifies against the device at selection, at
/// every open and after every reset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Rule {
    /// Reads 0, writes are dropped; the device is never accessed.
    #[default]
    Hidden = 0,
    /// Read-only passthrough: reads come from the device (through vfio-pci-core), writes are
    /// dropped; every bit of the pin mask must equal the persona's value on the device.
    Pinned = 1,
    /// Device state: reads and writes go to the device through vfio-pci-core, which applies
    /// its own rules; the read-only bits in the pin mask must still equal the persona's value.
    Dynamic = 2,
    /// Served from the overlay's register state: value plus write mask.
    Emulated = 3,
}

impl Rule {
    /// Decodes a rule byte of the binary format.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Rule::Hidden),
            1 => Some(Rule::Pinned),
            2 => Some(Rule::Dynamic),
            3 => Some(Rule::Emulated),
            _ => None,
        }
    }

    /// True for the two passthrough rules.
    pub const fn is_pass(self) -> bool {
        matches!(self, Rule::Pinned | Rule::Dynamic)
    }

    /// True when the persona stores a value and a mask for bytes of this rule.
    pub const fn has_data(self) -> bool {
        !matches!(self, Rule::Hidden)
    }

    /// Name used by the text format and the tool.
    pub const fn name(self) -> &'static str {
        match self {
            Rule::Hidden => "hidden",
            Rule::Pinned => "pinned",
            Rule::Dynamic => "dynamic",
            Rule::Emulated => "emulated",
        }
    }
}

/// Kind of a capability entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum CapKind {
    /// The device's capability (by ID and instance) presented at a virtual offset.
    #[default]
    Physical = 1,
    /// Contents given by the persona's emulated bytes.
    Synthesized = 2,
    /// A synthesized PASID capability described by its parameters.
    Pasid = 3,
    /// A physical capability that is not presented.
    Hidden = 4,
}

impl CapKind {
    /// Decodes a kind byte of the binary format.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(CapKind::Physical),
            2 => Some(CapKind::Synthesized),
            3 => Some(CapKind::Pasid),
            4 => Some(CapKind::Hidden),
            _ => None,
        }
    }

    /// True for entries that occupy a virtual range (everything but hidden ones).
    pub const fn is_presented(self) -> bool {
        !matches!(self, CapKind::Hidden)
    }

    /// Name used by the text format and the tool.
    pub const fn name(self) -> &'static str {
        match self {
            CapKind::Physical => "physical",
            CapKind::Synthesized => "synthesized",
            CapKind::Pasid => "pasid",
            CapKind::Hidden => "hidden",
        }
    }
}

/// One capability entry of a persona.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CapEntry {
    /// What the entry is.
    pub kind: CapKind,
    /// Which chain it is on.
    pub space: Space,
    /// Capability ID (standard IDs fit in 8 bits).
    pub id: u16,
    /// Instance on the device (physical and hidden entries; 0 otherwise).
    pub instance: u8,
    /// Capability version (extended capabilities; 0 for standard ones).
    pub version: u8,
    /// Virtual offset of the header (0 for hidden entries).
    pub offset: u16,
    /// Presented length in bytes (0 for hidden entries).
    pub len: u16,
    /// PASID only: max PASID width (log2), 1..=20.
    pub pasid_width: u8,
    /// PASID only: execute permission supported.
    pub pasid_exec: bool,
    /// PASID only: privileged mode supported.
    pub pasid_priv: bool,
}

impl CapEntry {
    /// End (exclusive) of the entry's virtual range.
    pub fn end(&self) -> usize {
        usize::from(self.offset).saturating_add(usize::from(self.len))
    }

    /// True when virtual offset `off` is inside the entry's range.
    pub fn contains(&self, off: usize) -> bool {
        self.kind.is_presented() && off >= usize::from(self.offset) && off < self.end()
    }

    /// Length of the capability header: ID and next pointer, or the extended header dword.
    pub fn header_len(&self) -> usize {
        match self.space {
            Space::Standard => 2,
            Space::Extended => 4,
        }
    }
}

/// Persona version: `major.minor`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Incremented for migration-incompatible changes.
    pub major: u16,
    /// Incremented for compatible changes.
    pub minor: u16,
}

/// Device identity a persona presents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ids {
    /// Vendor ID (0x00).
    pub vendor: u16,
    /// Device ID (0x02).
    pub device: u16,
    /// Revision ID (0x08).
    pub revision: u8,
    /// Class code (0x09..0x0c): base class << 16 | subclass << 8 | programming interface.
    pub class: u32,
    /// Subsystem vendor ID (0x2c).
    pub subsystem_vendor: u16,
    /// Subsystem ID (0x2e).
    pub subsystem_device: u16,
}

/// One identity field of the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdField {
    /// Vendor ID.
    Vendor,
    /// Device ID.
    Device,
    /// Revision ID.
    Revision,
    /// Class code.
    Class,
    /// Subsystem vendor ID.
    SubsystemVendor,
    /// Subsystem ID.
    SubsystemDevice,
}

impl IdField {
    /// All fields, in header order.
    pub const ALL: [IdField; 6] = [
        IdField::Vendor,
        IdField::Device,
        IdField::Revision,
        IdField::Class,
        IdField::SubsystemVendor,
        IdField::SubsystemDevice,
    ];

    /// Config-space offset and width in bytes.
    pub const fn range(self) -> (usize, usize) {
        match self {
            IdField::Vendor => (0x00, 2),
            IdField::Device => (0x02, 2),
            IdField::Revision => (0x08, 1),
            IdField::Class => (0x09, 3),
            IdField::SubsystemVendor => (0x2c, 2),
            IdField::SubsystemDevice => (0x2e, 2),
        }
    }

    /// Bit of this field in an emulated-ID set.
    pub const fn bit(self) -> u8 {
        match self {
            IdField::Vendor => 1,
            IdField::Device => 2,
            IdField::Revision => 4,
            IdField::Class => 8,
            IdField::SubsystemVendor => 16,
            IdField::SubsystemDevice => 32,
        }
    }

    /// Name used by the text format and the tool.
    pub const fn name(self) -> &'static str {
        match self {
            IdField::Vendor => "vendor",
            IdField::Device => "device",
            IdField::Revision => "revision",
            IdField::Class => "class",
            IdField::SubsystemVendor => "subsystem-vendor",
            IdField::SubsystemDevice => "subsystem-device",
        }
    }

    /// The field whose bytes include config offset `off`, if any.
    pub fn at(off: usize) -> Option<IdField> {
        Self::ALL.into_iter().find(|f| {
            let (o, w) = f.range();
            off >= o && off < o.saturating_add(w)
        })
    }
}

impl Ids {
    /// Value of one field.
    pub fn get(&self, f: IdField) -> u32 {
        match f {
            IdField::Vendor => u32::from(self.vendor),
            IdField::Device => u32::from(self.device),
            IdField::Revision => u32::from(self.revision),
            IdField::Class => self.class,
            IdField::SubsystemVendor => u32::from(self.subsystem_vendor),
            IdField::SubsystemDevice => u32::from(self.subsystem_device),
        }
    }

    /// The byte at config offset `off` if it belongs to an ID field.
    pub fn byte_at(&self, off: usize) -> Option<u8> {
        let f = IdField::at(off)?;
        let (o, _) = f.range();
        let shift = off.checked_sub(o)?.checked_mul(8)?;
        let v = self.get(f).checked_shr(u32::try_from(shift).ok()?)?;
        Some(v.to_le_bytes()[0])
    }

    /// Reads the IDs out of a config dump.
    pub fn from_dump(d: &[u8]) -> Option<Ids> {
        use super::pci::{rd16, rd32, rd8};
        Some(Ids {
            vendor: rd16(d, 0)?,
            device: rd16(d, 2)?,
            revision: rd8(d, 8)?,
            class: rd32(d, 8)? >> 8,
            subsystem_vendor: rd16(d, 0x2c)?,
            subsystem_device: rd16(d, 0x2e)?,
        })
    }
}

/// The PASID capability a persona presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PasidInfo {
    /// Virtual offset of the capability header.
    pub offset: u16,
    /// Max PASID width (log2).
    pub width: u8,
    /// Execute permission supported.
    pub exec: bool,
    /// Privileged mode supported.
    pub privileged: bool,
}

/// The eight bytes of a PASID capability: header without next pointer, capability register,
/// control register (reset value 0), and the control register's write mask.
pub fn pasid_bytes(width: u8, exec: bool, privileged: bool) -> ([u8; 8], [u8; 8]) {
    use super::pci::{PasidCapReg, PasidCtrlReg, EXT_CAP_ID_PASID, PASID_VERSION};
    let cap = PasidCapReg(0)
        .with_exec(u16::from(exec))
        .with_privileged(u16::from(privileged))
        .with_width(u16::from(width));
    let wmask = PasidCtrlReg(0)
        .with_enable(1)
        .with_exec(u16::from(exec))
        .with_privileged(u16::from(privileged));
    let [id0, id1] = EXT_CAP_ID_PASID.to_le_bytes();
    let [c0, c1] = cap.0.to_le_bytes();
    let [m0, m1] = wmask.0.to_le_bytes();
    (
        [id0, id1, PASID_VERSION, 0, c0, c1, 0, 0],
        [0, 0, 0, 0, 0, 0, m0, m1],
    )
}
