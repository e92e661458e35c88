//! The field table: the rule of every register of the type-0 header and of each capability the
//! project knows, and the architected extent of extended capabilities.
//!
//! A field is either **pinned** (read-only contents that vary with firmware and hardware; the
//! persona records them, a VFIO user reads them through vfio-pci-core, writes are dropped and
//! every bit must equal the device's), **dynamic** (device state a user reads and writes through
//! vfio-pci-core: command, status, control registers, MSI/MSI-X address/data/control; the
//! read-only bits in `ro` are still pinned), a **BAR** register (emulated from the persona's BAR
//! table), **layout** (capability headers and the capability pointer, which the persona writes
//! itself) or **emulated** (a register the persona owns outright: served from the overlay's state,
//! never forwarded; today only the Interrupt Line). `lower` marks the bits of a pinned field that a persona may instead emulate with a
//! value no larger than the device's (MSI-X Table Size, PCIe Max Payload Size Supported).
//!
//! Bytes of a known capability that no field covers, and every byte of a capability the table
//! does not know, are pinned. `derive` writes exactly these rules; the text format's README
//! carries the same table (a host test keeps the two in sync).

use super::super::pci::{self, Space};

/// The rule of one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// Read-only, every bit pinned.
    Pinned,
    /// Device state; the bits of the mask are read-only and pinned.
    Dynamic(u32),
    /// A BAR or the ROM base address register: emulated from the persona's BAR table.
    Bar,
    /// Written by the persona's layout (capability pointer, capability headers).
    Layout,
    /// Owned by the persona: emulated with this reset value and write mask, never forwarded.
    Emulated {
        /// Reset value (what a fresh open shows).
        reset: u32,
        /// Writable bits.
        wmask: u32,
    },
}

/// Reset value of the emulated Interrupt Line (0x3c).
///
/// The register is scratch for software (PCI 3.0 6.2.4: POST writes the routing there; nothing
/// in the function reads it), and its only power-on value hardware and QEMU's emulated
/// functions give it is 0 (QEMU's device reset clears it). vfio-pci-core would instead show the
/// host's routing (the host kernel writes its IRQ there), which differs from function to
/// function; a persona shows 0 until its user writes the byte.
pub const INTERRUPT_LINE_RESET: u8 = 0;

/// One register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Register name, as the spec calls it.
    pub name: &'static str,
    /// Offset from the start of the header or capability.
    pub offset: u16,
    /// Width in bytes.
    pub width: u8,
    /// Its rule.
    pub kind: FieldKind,
    /// Bits that may be emulated with a value no larger than the device's.
    pub lower: u32,
}

impl Field {
    /// Pin mask of byte `k` of the field (0xff for pinned fields, the read-only bits for
    /// dynamic ones, 0 otherwise).
    pub fn pin_byte(&self, k: usize) -> u8 {
        match self.kind {
            FieldKind::Pinned => 0xff,
            FieldKind::Dynamic(ro) => {
                let shift = u32::try_from(k.saturating_mul(8)).unwrap_or(32);
                u8::try_from(ro.checked_shr(shift).unwrap_or(0) & 0xff).unwrap_or(0)
            }
            FieldKind::Bar | FieldKind::Layout | FieldKind::Emulated { .. } => 0,
        }
    }

    /// Reset value and write mask of byte `k` of an emulated field (`None` for other rules).
    pub fn emulated_byte(&self, k: usize) -> Option<(u8, u8)> {
        let FieldKind::Emulated { reset, wmask } = self.kind else {
            return None;
        };
        let shift = u32::try_from(k.saturating_mul(8)).unwrap_or(32);
        let b = |v: u32| u8::try_from(v.checked_shr(shift).unwrap_or(0) & 0xff).unwrap_or(0);
        Some((b(reset), b(wmask)))
    }

    /// End (exclusive) of the field, relative to its structure.
    pub fn end(&self) -> usize {
        usize::from(self.offset).saturating_add(usize::from(self.width))
    }

    /// Rule word for documentation: `pinned`, `dynamic`, `dynamic (ro MASK)`, `bar`, `layout`.
    pub fn rule_name(&self) -> &'static str {
        match self.kind {
            FieldKind::Pinned if self.lower != 0 => "pinned, may be emulated lower",
            FieldKind::Pinned => "pinned",
            FieldKind::Dynamic(0) => "dynamic",
            FieldKind::Dynamic(_) if self.lower != 0 => {
                "dynamic, read-only bits pinned, may be emulated lower"
            }
            FieldKind::Dynamic(_) => "dynamic, read-only bits pinned",
            FieldKind::Bar => "emulated from the BAR table",
            FieldKind::Layout => "emulated by the layout",
            FieldKind::Emulated { .. } => "emulated by the persona",
        }
    }
}

const fn f(name: &'static str, offset: u16, width: u8, kind: FieldKind) -> Field {
    Field {
        name,
        offset,
        width,
        kind,
        lower: 0,
    }
}

const fn lower(name: &'static str, offset: u16, width: u8, kind: FieldKind, bits: u32) -> Field {
    Field {
        name,
        offset,
        width,
        kind,
        lower: bits,
    }
}

use FieldKind::{Bar, Dynamic, Layout, Pinned};

/// The type-0 header.
pub static HEADER: &[Field] = &[
    f("vendor ID", 0x00, 2, Pinned),
    f("device ID", 0x02, 2, Pinned),
    f("command", 0x04, 2, Dynamic(0)),
    // Capability list, 66 MHz, fast back-to-back and DEVSEL timing are read-only.
    f("status", 0x06, 2, Dynamic(0x06b0)),
    f("revision ID", 0x08, 1, Pinned),
    f("class code", 0x09, 3, Pinned),
    f("cache line size", 0x0c, 1, Dynamic(0)),
    f("latency timer", 0x0d, 1, Dynamic(0)),
    f("header type", 0x0e, 1, Pinned),
    f("BIST", 0x0f, 1, Dynamic(0x80)),
    f("BAR 0", 0x10, 4, Bar),
    f("BAR 1", 0x14, 4, Bar),
    f("BAR 2", 0x18, 4, Bar),
    f("BAR 3", 0x1c, 4, Bar),
    f("BAR 4", 0x20, 4, Bar),
    f("BAR 5", 0x24, 4, Bar),
    f("CardBus CIS pointer", 0x28, 4, Pinned),
    f("subsystem vendor ID", 0x2c, 2, Pinned),
    f("subsystem ID", 0x2e, 2, Pinned),
    f("expansion ROM base address", 0x30, 4, Bar),
    f("capabilities pointer", 0x34, 1, Layout),
    f("reserved", 0x35, 7, Pinned),
    // Emulated, not forwarded: vfio-pci-core would show the host's routing (see
    // `INTERRUPT_LINE_RESET`). Fully writable, as vfio-pci-core's own (virtual) copy is.
    f(
        "interrupt line",
        0x3c,
        1,
        FieldKind::Emulated {
            reset: INTERRUPT_LINE_RESET as u32,
            wmask: 0xff,
        },
    ),
    f("interrupt pin", 0x3d, 1, Pinned),
    f("min grant", 0x3e, 1, Pinned),
    f("max latency", 0x3f, 1, Pinned),
];

static PM: &[Field] = &[
    f("PM header", 0, 2, Layout),
    f("PM capabilities", 2, 2, Pinned),
    // No_Soft_Reset, data scale.
    f("PM control/status", 4, 2, Dynamic(0x6008)),
    f("PM bridge extensions", 6, 1, Pinned),
    f("PM data", 7, 1, Dynamic(0)),
];

static MSI: &[Field] = &[
    f("MSI header", 0, 2, Layout),
    // Multiple Message Capable, 64-bit, per-vector masking, extended message data capable.
    f("MSI message control", 2, 2, Dynamic(0x038e)),
    f(
        "MSI address, data, mask and pending bits",
        4,
        20,
        Dynamic(0),
    ),
];

static MSIX: &[Field] = &[
    f("MSI-X header", 0, 2, Layout),
    lower("MSI-X message control", 2, 2, Dynamic(0x07ff), 0x07ff),
    f("MSI-X table offset/BIR", 4, 4, Pinned),
    f("MSI-X PBA offset/BIR", 8, 4, Pinned),
];

static EXP: &[Field] = &[
    f("PCIe header", 0, 2, Layout),
    f("PCIe capabilities", 0x02, 2, Pinned),
    lower("device capabilities", 0x04, 4, Pinned, 0x7),
    f("device control", 0x08, 2, Dynamic(0)),
    f("device status", 0x0a, 2, Dynamic(0)),
    f("link capabilities", 0x0c, 4, Pinned),
    f("link control", 0x10, 2, Dynamic(0)),
    f("link status", 0x12, 2, Dynamic(0)),
    f("slot capabilities", 0x14, 4, Pinned),
    f("slot control", 0x18, 2, Dynamic(0)),
    f("slot status", 0x1a, 2, Dynamic(0)),
    f("root control", 0x1c, 2, Dynamic(0)),
    f("root capabilities", 0x1e, 2, Pinned),
    f("root status", 0x20, 4, Dynamic(0)),
    f("device capabilities 2", 0x24, 4, Pinned),
    f("device control 2", 0x28, 2, Dynamic(0)),
    f("device status 2", 0x2a, 2, Dynamic(0)),
    f("link capabilities 2", 0x2c, 4, Pinned),
    f("link control 2", 0x30, 2, Dynamic(0)),
    f("link status 2", 0x32, 2, Dynamic(0)),
    f("slot capabilities 2", 0x34, 4, Pinned),
    f("slot control 2", 0x38, 2, Dynamic(0)),
    f("slot status 2", 0x3a, 2, Dynamic(0)),
];

static VNDR: &[Field] = &[
    f("vendor-specific header", 0, 2, Layout),
    f("vendor-specific length", 2, 1, Pinned),
];

static AER: &[Field] = &[
    f("AER header", 0, 4, Layout),
    f("uncorrectable error status", 0x04, 4, Dynamic(0)),
    f("uncorrectable error mask", 0x08, 4, Dynamic(0)),
    f("uncorrectable error severity", 0x0c, 4, Dynamic(0)),
    f("correctable error status", 0x10, 4, Dynamic(0)),
    f("correctable error mask", 0x14, 4, Dynamic(0)),
    // ECRC generation/check capable, multiple header recording capable, TLP prefix log present,
    // completion timeout prefix/header log capable.
    f(
        "advanced error capabilities and control",
        0x18,
        4,
        Dynamic(0x1aa0),
    ),
    f("header log", 0x1c, 16, Dynamic(0)),
    f("root error command", 0x2c, 4, Dynamic(0)),
    f("root error status", 0x30, 4, Dynamic(0)),
    f("error source identification", 0x34, 4, Dynamic(0)),
    f("TLP prefix log", 0x38, 16, Dynamic(0)),
];

static DSN: &[Field] = &[
    f("DSN header", 0, 4, Layout),
    f("serial number", 4, 8, Pinned),
];

static ATS: &[Field] = &[
    f("ATS header", 0, 4, Layout),
    f("ATS capability", 4, 2, Pinned),
    f("ATS control", 6, 2, Dynamic(0)),
];

static PRI: &[Field] = &[
    f("PRI header", 0, 4, Layout),
    f("PRI control", 0x04, 2, Dynamic(0)),
    // PRG Response PASID Required.
    f("PRI status", 0x06, 2, Dynamic(0x8000)),
    f("outstanding page request capacity", 0x08, 4, Pinned),
    f("outstanding page request allocation", 0x0c, 4, Dynamic(0)),
];

static PASID: &[Field] = &[
    f("PASID header", 0, 4, Layout),
    f("PASID capability", 4, 2, Pinned),
    f("PASID control", 6, 2, Dynamic(0)),
];

static SRIOV: &[Field] = &[
    f("SR-IOV header", 0, 4, Layout),
    f("SR-IOV capabilities", 0x04, 4, Pinned),
    f("SR-IOV control", 0x08, 2, Dynamic(0)),
    f("SR-IOV status", 0x0a, 2, Dynamic(0)),
    f("InitialVFs", 0x0c, 2, Pinned),
    f("TotalVFs", 0x0e, 2, Pinned),
    f("NumVFs", 0x10, 2, Dynamic(0)),
    f("function dependency link", 0x12, 1, Pinned),
    f("reserved", 0x13, 1, Pinned),
    f("first VF offset", 0x14, 2, Dynamic(0)),
    f("VF stride", 0x16, 2, Dynamic(0)),
    f("reserved", 0x18, 2, Pinned),
    f("VF device ID", 0x1a, 2, Pinned),
    f("supported page sizes", 0x1c, 4, Pinned),
    f("system page size", 0x20, 4, Dynamic(0)),
    f("VF BAR 0", 0x24, 4, Dynamic(0xf)),
    f("VF BAR 1", 0x28, 4, Dynamic(0xf)),
    f("VF BAR 2", 0x2c, 4, Dynamic(0xf)),
    f("VF BAR 3", 0x30, 4, Dynamic(0xf)),
    f("VF BAR 4", 0x34, 4, Dynamic(0xf)),
    f("VF BAR 5", 0x38, 4, Dynamic(0xf)),
    f("VF migration state array offset", 0x3c, 4, Pinned),
];

static ARI: &[Field] = &[
    f("ARI header", 0, 4, Layout),
    f("ARI capability", 4, 2, Pinned),
    f("ARI control", 6, 2, Dynamic(0)),
];

static ACS: &[Field] = &[
    f("ACS header", 0, 4, Layout),
    f("ACS capability", 4, 2, Pinned),
    f("ACS control", 6, 2, Dynamic(0)),
];

static LTR: &[Field] = &[
    f("LTR header", 0, 4, Layout),
    f("max snoop latency", 4, 2, Dynamic(0)),
    f("max no-snoop latency", 6, 2, Dynamic(0)),
];

static EXT_VNDR: &[Field] = &[
    f("vendor-specific header", 0, 4, Layout),
    f("vendor-specific header 2", 4, 4, Pinned),
];

/// A capability the table knows: its name and fields.
#[derive(Clone, Copy, Debug)]
pub struct CapFields {
    /// Space of the capability.
    pub space: Space,
    /// Its ID.
    pub id: u16,
    /// Its name.
    pub name: &'static str,
    /// Its registers, in offset order.
    pub fields: &'static [Field],
}

const fn cap(space: Space, id: u16, name: &'static str, fields: &'static [Field]) -> CapFields {
    CapFields {
        space,
        id,
        name,
        fields,
    }
}

/// Every capability the table knows.
pub static CAPS: &[CapFields] = &[
    cap(Space::Standard, 0x01, "Power Management", PM),
    cap(Space::Standard, 0x05, "MSI", MSI),
    cap(Space::Standard, 0x09, "vendor-specific", VNDR),
    cap(Space::Standard, 0x10, "PCI Express", EXP),
    cap(Space::Standard, 0x11, "MSI-X", MSIX),
    cap(Space::Extended, 0x01, "AER", AER),
    cap(Space::Extended, 0x03, "Device Serial Number", DSN),
    cap(Space::Extended, 0x0b, "vendor-specific", EXT_VNDR),
    cap(Space::Extended, 0x0d, "ACS", ACS),
    cap(Space::Extended, 0x0e, "ARI", ARI),
    cap(Space::Extended, 0x0f, "ATS", ATS),
    cap(Space::Extended, 0x10, "SR-IOV", SRIOV),
    cap(Space::Extended, 0x13, "PRI", PRI),
    cap(Space::Extended, 0x18, "LTR", LTR),
    cap(Space::Extended, 0x1b, "PASID", PASID),
    cap(Space::Extended, 0x23, "DVSEC", EXT_VNDR),
];

/// The table's entry for a capability, if it knows it.
pub fn cap_fields(space: Space, id: u16) -> Option<&'static CapFields> {
    CAPS.iter().find(|c| c.space == space && c.id == id)
}

/// The field of `fields` holding byte `rel`.
pub fn field_at(fields: &'static [Field], rel: usize) -> Option<&'static Field> {
    fields
        .iter()
        .find(|x| rel >= usize::from(x.offset) && rel < x.end())
}

/// Name of a capability for messages: the table's name or "capability".
pub fn cap_name(space: Space, id: u16) -> &'static str {
    cap_fields(space, id).map_or("capability", |c| c.name)
}

/// Architected length of the extended capability `id` at `off` of `dump` (its full extent,
/// root-port-only registers included), or `None` when the type's length is not known here.
pub fn ext_arch_len(dump: &[u8], off: usize, id: u16) -> Option<usize> {
    let len = match id {
        // Through the TLP Prefix Log.
        pci::EXT_CAP_ID_ERR => 0x48,
        pci::EXT_CAP_ID_DSN => 0x0c,
        pci::EXT_CAP_ID_PWR => 0x10,
        pci::EXT_CAP_ID_ARI | pci::EXT_CAP_ID_ATS | pci::EXT_CAP_ID_LTR => 8,
        pci::EXT_CAP_ID_PASID => pci::PASID_SIZEOF,
        pci::EXT_CAP_ID_SRIOV => 0x40,
        // Including the root/switch registers.
        pci::EXT_CAP_ID_MCAST => 0x30,
        pci::EXT_CAP_ID_PRI => 0x10,
        // L1 PM Substates.
        0x1e => 0x10,
        // Data Link Feature.
        0x25 => 0x0c,
        _ => usize::from(pci::ext_cap_len(dump, off, id)?),
    };
    let vfio = pci::ext_cap_len(dump, off, id).map_or(0, usize::from);
    Some(len.max(vfio))
}

/// Extent of the extended capability at `off` with `id`: its architected length, or for types
/// not known here, the bytes up to the next extended capability header in address order (or the
/// end of config space). An ID-0 placeholder owns its header only. Clamped to config space.
pub fn ext_extent(dump: &[u8], off: usize, id: u16) -> (usize, usize) {
    let end = if id == 0 {
        off.saturating_add(4)
    } else {
        match ext_arch_len(dump, off, id) {
            Some(l) => off.saturating_add(l),
            None => pci::CapWalker::extended(dump)
                .map_while(Result::ok)
                .map(|c| usize::from(c.offset))
                .filter(|&o| o > off)
                .min()
                .unwrap_or(pci::CFG_SIZE_EXT),
        }
    };
    (off, end.min(pci::CFG_SIZE_EXT))
}

/// Extent of a standard capability at `off`: the length vfio-pci-core gives it, else the bytes
/// up to the next standard capability header in address order (or the end of standard space).
pub fn std_extent(dump: &[u8], off: usize, id: u8) -> (usize, usize) {
    let end = match pci::std_cap_len(dump, off, id) {
        Some(l) => off.saturating_add(usize::from(l)),
        None => pci::CapWalker::standard(dump)
            .map_while(Result::ok)
            .map(|c| usize::from(c.offset))
            .filter(|&o| o > off)
            .min()
            .unwrap_or(pci::CFG_SIZE),
    };
    (off, end.min(pci::CFG_SIZE))
}

/// Extent of the device capability `c` of `dump` (see [`ext_extent`] and [`std_extent`]).
pub fn extent(dump: &[u8], c: &pci::FoundCap) -> (usize, usize) {
    let off = usize::from(c.offset);
    match c.space {
        Space::Standard => std_extent(dump, off, u8::try_from(c.id).unwrap_or(0)),
        Space::Extended => ext_extent(dump, off, c.id),
    }
}
