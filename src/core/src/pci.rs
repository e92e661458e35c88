//! PCI configuration-space basics: offsets, capability IDs, register layouts, capability lengths
//! and loop-safe walkers for the standard and extended capability chains over a config dump.
//!
//! The constants mirror `include/uapi/linux/pci_regs.h`; the capability lengths mirror
//! `vfio_pci_config.c` (`pci_cap_length[]`, `pci_ext_cap_length[]`, `vfio_cap_len()`,
//! `vfio_ext_cap_len()`), because a persona derived from a device must present exactly what
//! vfio-pci-core would present.

/// Size of conventional PCI config space.
pub const CFG_SIZE: usize = 256;
/// Size of PCI Express (extended) config space.
pub const CFG_SIZE_EXT: usize = 4096;
/// Size of the standard type-0 header, where the first capability may start.
pub const STD_HEADER_SIZEOF: usize = 0x40;

/// Vendor ID register (16 bits).
pub const VENDOR_ID: usize = 0x00;
/// Device ID register (16 bits).
pub const DEVICE_ID: usize = 0x02;
/// Command register (16 bits).
pub const COMMAND: usize = 0x04;
/// Status register (16 bits).
pub const STATUS: usize = 0x06;
/// Status bit: the capability list pointer is valid.
pub const STATUS_CAP_LIST: u16 = 0x10;
/// Revision ID register (8 bits).
pub const REVISION_ID: usize = 0x08;
/// Class code register (24 bits: programming interface, subclass, base class).
pub const CLASS_PROG: usize = 0x09;
/// Cache line size register (8 bits).
pub const CACHE_LINE_SIZE: usize = 0x0c;
/// Latency timer register (8 bits).
pub const LATENCY_TIMER: usize = 0x0d;
/// Header type register (8 bits).
pub const HEADER_TYPE: usize = 0x0e;
/// BIST register (8 bits).
pub const BIST: usize = 0x0f;
/// First base address register.
pub const BASE_ADDRESS_0: usize = 0x10;
/// End (exclusive) of the six base address registers.
pub const BASE_ADDRESS_END: usize = 0x28;
/// Subsystem vendor ID register (16 bits).
pub const SUBSYSTEM_VENDOR_ID: usize = 0x2c;
/// Subsystem ID register (16 bits).
pub const SUBSYSTEM_ID: usize = 0x2e;
/// Expansion ROM base address register (32 bits).
pub const ROM_ADDRESS: usize = 0x30;
/// Capability list pointer (8 bits).
pub const CAPABILITY_LIST: usize = 0x34;
/// Interrupt line register (8 bits).
pub const INTERRUPT_LINE: usize = 0x3c;
/// Interrupt pin register (8 bits).
pub const INTERRUPT_PIN: usize = 0x3d;

/// The Interrupt Pin vfio-pci-core shows a user of a function whose physical pin is `phys`:
/// its own copy `own` once it has one (built when the device is enabled), else 0 when it will
/// present no INTx for a reason known before enable (`intx_absent`: no INTx support built in,
/// the nointx quirk, a VF, an IRQ marked not connected), else `phys`.
///
/// The persona check compares this value, not the physical one: a persona pinning pin 1 on a
/// host where vfio-pci-core shows 0 must be refused. Emulating the persona's pin instead would
/// show an interrupt the user cannot have: vfio-pci-core counts INTx IRQs from its own copy
/// (`VFIO_DEVICE_GET_IRQ_INFO` gives 0 of them), so a VMM would see pin 1 and fail to set up
/// INTx.
///
/// Before the first enable only the reasons known then count: whether an IRQ gets routed is
/// settled at enable (a hot-plugged function has none before), so a function left without one
/// is refused by the check at open, from `own`, with the reason logged.
#[must_use]
pub fn presented_interrupt_pin(phys: u8, own: Option<u8>, intx_absent: bool) -> u8 {
    match own {
        Some(pin) => pin,
        None if intx_absent => 0,
        None => phys,
    }
}

/// Standard capability: Power Management.
pub const CAP_ID_PM: u8 = 0x01;
/// Standard capability: AGP.
pub const CAP_ID_AGP: u8 = 0x02;
/// Standard capability: Vital Product Data.
pub const CAP_ID_VPD: u8 = 0x03;
/// Standard capability: MSI.
pub const CAP_ID_MSI: u8 = 0x05;
/// Standard capability: PCI-X.
pub const CAP_ID_PCIX: u8 = 0x07;
/// Standard capability: HyperTransport.
pub const CAP_ID_HT: u8 = 0x08;
/// Standard capability: vendor specific.
pub const CAP_ID_VNDR: u8 = 0x09;
/// Standard capability: PCI Express.
pub const CAP_ID_EXP: u8 = 0x10;
/// Standard capability: MSI-X.
pub const CAP_ID_MSIX: u8 = 0x11;
/// Standard capability: SATA.
pub const CAP_ID_SATA: u8 = 0x12;
/// Standard capability: Advanced Features.
pub const CAP_ID_AF: u8 = 0x13;

/// Extended capability: AER.
pub const EXT_CAP_ID_ERR: u16 = 0x01;
/// Extended capability: Virtual Channel.
pub const EXT_CAP_ID_VC: u16 = 0x02;
/// Extended capability: Device Serial Number.
pub const EXT_CAP_ID_DSN: u16 = 0x03;
/// Extended capability: Power Budgeting.
pub const EXT_CAP_ID_PWR: u16 = 0x04;
/// Extended capability: Multi-Function VC.
pub const EXT_CAP_ID_MFVC: u16 = 0x08;
/// Extended capability: Virtual Channel (second ID).
pub const EXT_CAP_ID_VC9: u16 = 0x09;
/// Extended capability: vendor specific.
pub const EXT_CAP_ID_VNDR: u16 = 0x0b;
/// Extended capability: Access Control Services.
pub const EXT_CAP_ID_ACS: u16 = 0x0d;
/// Extended capability: Alternative Routing-ID.
pub const EXT_CAP_ID_ARI: u16 = 0x0e;
/// Extended capability: Address Translation Services.
pub const EXT_CAP_ID_ATS: u16 = 0x0f;
/// Extended capability: SR-IOV.
pub const EXT_CAP_ID_SRIOV: u16 = 0x10;
/// Extended capability: Multicast.
pub const EXT_CAP_ID_MCAST: u16 = 0x12;
/// Extended capability: Page Request Interface.
pub const EXT_CAP_ID_PRI: u16 = 0x13;
/// Extended capability: Resizable BAR.
pub const EXT_CAP_ID_REBAR: u16 = 0x15;
/// Extended capability: Dynamic Power Allocation.
pub const EXT_CAP_ID_DPA: u16 = 0x16;
/// Extended capability: TPH Requester.
pub const EXT_CAP_ID_TPH: u16 = 0x17;
/// Extended capability: Latency Tolerance Reporting.
pub const EXT_CAP_ID_LTR: u16 = 0x18;
/// Extended capability: PASID.
pub const EXT_CAP_ID_PASID: u16 = 0x1b;
/// Extended capability: Designated Vendor-Specific.
pub const EXT_CAP_ID_DVSEC: u16 = 0x23;

/// Size of the PASID extended capability: header, capability and control registers.
pub const PASID_SIZEOF: usize = 8;
/// Offset of the PASID capability register inside the capability.
pub const PASID_CAP: usize = 4;
/// Offset of the PASID control register inside the capability.
pub const PASID_CTRL: usize = 6;
/// Version of the PASID capability structure.
pub const PASID_VERSION: u8 = 1;
/// Largest PASID width (log2 of the number of PASIDs) the PCIe spec allows.
pub const PASID_MAX_WIDTH: u8 = 20;
/// Where QEMU and cloud-hypervisor place a synthesized PASID capability by default.
pub const PASID_DEFAULT_OFFSET: u16 = 0xff8;

/// Declares a register as a newtype over an integer with `hi:lo name` bit fields.
///
/// The syntax follows the kernel's `register!`/`bitfield!` so that code reads the same on both
/// sides. Each field gets a getter `name()` and a builder `with_name(v)`; values wider than the
/// field are truncated to it by masking, never by `as`.
#[macro_export]
macro_rules! persona_bitfield {
    ($(#[$meta:meta])* $vis:vis struct $name:ident($ty:ty) {
        $( $(#[$fmeta:meta])* $hi:literal : $lo:literal $field:ident, $with:ident; )*
    }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        $vis struct $name(pub $ty);

        impl $name {
            $(
                $(#[$fmeta])*
                #[inline]
                pub const fn $field(self) -> $ty {
                    (self.0 >> $lo) & ((((1 as $ty) << ($hi - $lo)) << 1).wrapping_sub(1))
                }

                /// Returns a copy with this field set (extra high bits are masked off).
                #[inline]
                pub const fn $with(self, v: $ty) -> Self {
                    let mask: $ty = ((((1 as $ty) << ($hi - $lo)) << 1).wrapping_sub(1)) << $lo;
                    Self((self.0 & !mask) | ((v << $lo) & mask))
                }
            )*
        }
    };
}

persona_bitfield! {
    /// PASID Capability register (offset 4 in the PASID capability).
    pub struct PasidCapReg(u16) {
        /// Execute permission supported.
        1:1 exec, with_exec;
        /// Privileged mode supported.
        2:2 privileged, with_privileged;
        /// Max PASID width (log2).
        12:8 width, with_width;
    }
}

persona_bitfield! {
    /// PASID Control register (offset 6 in the PASID capability).
    pub struct PasidCtrlReg(u16) {
        /// PASID enable.
        0:0 enable, with_enable;
        /// Execute permission enable.
        1:1 exec, with_exec;
        /// Privileged mode enable.
        2:2 privileged, with_privileged;
    }
}

persona_bitfield! {
    /// Extended capability header (first dword of every extended capability).
    pub struct ExtCapHeader(u32) {
        /// Capability ID.
        15:0 id, with_id;
        /// Capability version.
        19:16 version, with_version;
        /// Offset of the next capability (0 ends the chain).
        31:20 next, with_next;
    }
}

/// Reads a byte of a dump; out-of-range reads give `None`.
#[inline]
pub fn rd8(d: &[u8], off: usize) -> Option<u8> {
    d.get(off).copied()
}

/// Reads a little-endian 16-bit value of a dump; out-of-range reads give `None`.
#[inline]
pub fn rd16(d: &[u8], off: usize) -> Option<u16> {
    let b = d.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([*b.first()?, *b.get(1)?]))
}

/// Reads a little-endian 32-bit value of a dump; out-of-range reads give `None`.
#[inline]
pub fn rd32(d: &[u8], off: usize) -> Option<u32> {
    let b = d.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([
        *b.first()?,
        *b.get(1)?,
        *b.get(2)?,
        *b.get(3)?,
    ]))
}

/// Which capability chain an item belongs to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Space {
    /// The standard chain in the first 256 bytes, starting at the pointer at 0x34.
    #[default]
    Standard,
    /// The extended chain in 0x100..0x1000, starting at 0x100.
    Extended,
}

/// One capability found in a dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoundCap {
    /// Chain the capability is on.
    pub space: Space,
    /// Offset of its header.
    pub offset: u16,
    /// Capability ID (8 bits for standard capabilities).
    pub id: u16,
    /// Version (extended capabilities only; 0 for standard ones).
    pub version: u8,
    /// 0-based index among the capabilities with the same ID earlier in chain order.
    pub instance: u8,
}

/// Why a capability walk stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// The chain visits an offset twice.
    Loop(u16),
    /// A pointer leaves the dump or the capability's space.
    OutOfRange(u16),
    /// A pointer is not dword aligned (extended chain only).
    Misaligned(u16),
}

/// Number of distinct capability IDs per chain whose instances a walker counts exactly; later
/// distinct IDs get instance 255 (no real device comes close).
const WALK_IDS: usize = 32;

/// A loop-safe walker over one capability chain of a config dump.
///
/// Every dword offset is visited at most once (a bitmap detects cycles), so a walk takes at most
/// 48 steps on the standard chain and 960 on the extended one. After an error the walker yields
/// nothing more. The walker is about 250 bytes, so it can live on the kernel stack.
#[derive(Clone, Debug)]
pub struct CapWalker<'a> {
    dump: &'a [u8],
    space: Space,
    next: u16,
    seen: [u64; 16],
    ids: [u16; WALK_IDS],
    counts: [u8; WALK_IDS],
    nids: usize,
    done: bool,
}

impl<'a> CapWalker<'a> {
    /// Walks the standard chain. Like Linux, the chain is empty unless the status register's
    /// capability-list bit is set, and the low two bits of every pointer are ignored.
    pub fn standard(dump: &'a [u8]) -> Self {
        let has = rd16(dump, STATUS).is_some_and(|s| s & STATUS_CAP_LIST != 0);
        let first = if has {
            rd8(dump, CAPABILITY_LIST).map_or(0, |p| u16::from(p & 0xfc))
        } else {
            0
        };
        Self::new(dump, Space::Standard, first)
    }

    /// Walks the extended chain starting at 0x100. A dump of 256 bytes, or a header of 0 or
    /// all-ones at 0x100, has no extended capabilities.
    pub fn extended(dump: &'a [u8]) -> Self {
        let first = match rd32(dump, CFG_SIZE) {
            None | Some(0) | Some(u32::MAX) => 0,
            Some(_) => 0x100,
        };
        Self::new(dump, Space::Extended, first)
    }

    /// Walks the chain of `space`.
    pub fn new_for(dump: &'a [u8], space: Space) -> Self {
        match space {
            Space::Standard => Self::standard(dump),
            Space::Extended => Self::extended(dump),
        }
    }

    fn new(dump: &'a [u8], space: Space, first: u16) -> Self {
        Self {
            dump,
            space,
            next: first,
            seen: [0; 16],
            ids: [0; WALK_IDS],
            counts: [0; WALK_IDS],
            nids: 0,
            done: first == 0,
        }
    }

    /// Marks `off` as visited; returns false when it was visited already.
    fn mark(&mut self, off: u16) -> bool {
        let dw = usize::from(off >> 2);
        let bit = 1u64 << (dw % 64);
        match self.seen.get_mut(dw / 64) {
            Some(w) if *w & bit == 0 => {
                *w |= bit;
                true
            }
            _ => false,
        }
    }

    /// Counts one more capability with `id` and returns how many came before it.
    fn instance_of(&mut self, id: u16) -> u8 {
        let n = self.nids.min(WALK_IDS);
        let known = self
            .ids
            .get(..n)
            .and_then(|ids| ids.iter().position(|&x| x == id));
        if let Some(c) = known.and_then(|i| self.counts.get_mut(i)) {
            let inst = *c;
            *c = c.saturating_add(1);
            return inst;
        }
        match (self.ids.get_mut(n), self.counts.get_mut(n)) {
            (Some(slot), Some(c)) => {
                *slot = id;
                *c = 1;
                self.nids = n.saturating_add(1);
                0
            }
            _ => u8::MAX,
        }
    }

    fn fail(&mut self, e: WalkError) -> Option<Result<FoundCap, WalkError>> {
        self.done = true;
        Some(Err(e))
    }

    fn step(&mut self) -> Option<Result<FoundCap, WalkError>> {
        if self.done {
            return None;
        }
        let off = self.next;
        let (lo, hi) = match self.space {
            Space::Standard => (STD_HEADER_SIZEOF, CFG_SIZE),
            Space::Extended => (CFG_SIZE, CFG_SIZE_EXT),
        };
        let o = usize::from(off);
        if o < lo || o >= hi || o.checked_add(4).is_none_or(|e| e > self.dump.len()) {
            return self.fail(WalkError::OutOfRange(off));
        }
        if off % 4 != 0 {
            return self.fail(WalkError::Misaligned(off));
        }
        if !self.mark(off) {
            return self.fail(WalkError::Loop(off));
        }
        let (id, version, next) = match self.space {
            Space::Standard => {
                let id = rd8(self.dump, o).unwrap_or(0);
                let next = rd8(self.dump, o.saturating_add(1)).unwrap_or(0) & 0xfc;
                (u16::from(id), 0, u16::from(next))
            }
            Space::Extended => {
                let h = ExtCapHeader(rd32(self.dump, o).unwrap_or(0));
                let id = u16::try_from(h.id()).unwrap_or(0);
                let ver = u8::try_from(h.version()).unwrap_or(0);
                let next = u16::try_from(h.next()).unwrap_or(0);
                if next != 0 && next % 4 != 0 {
                    // Report the bad pointer after yielding this capability.
                    self.next = next;
                    let inst = self.instance_of(id);
                    return Some(Ok(FoundCap {
                        space: self.space,
                        offset: off,
                        id,
                        version: ver,
                        instance: inst,
                    }));
                }
                (id, ver, next)
            }
        };
        // Linux stops the standard walk at pointers below the header; the extended walk stops
        // at pointers below 0x100. Either means the end of the chain.
        if usize::from(next) < lo {
            self.done = true;
        }
        self.next = next;
        let instance = self.instance_of(id);
        Some(Ok(FoundCap {
            space: self.space,
            offset: off,
            id,
            version,
            instance,
        }))
    }
}

impl Iterator for CapWalker<'_> {
    type Item = Result<FoundCap, WalkError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step()
    }
}

/// The PASID Capability register of the device's own PASID capability, if `dump` has one (0
/// when the register lies past the dump): what the device itself supports.
#[must_use]
pub fn pasid_cap_reg(dump: &[u8]) -> Option<PasidCapReg> {
    let c = find_cap(dump, Space::Extended, EXT_CAP_ID_PASID, 0).ok()??;
    Some(PasidCapReg(
        rd16(dump, usize::from(c.offset).saturating_add(PASID_CAP)).unwrap_or(0),
    ))
}

/// MSI-X capability: the Table Offset/BIR register.
pub const MSIX_TABLE: usize = 4;
/// MSI-X capability: the PBA Offset/BIR register.
pub const MSIX_PBA: usize = 8;

/// Whether BAR `bar` holds the MSI-X table or PBA of the function whose config space is `dump`.
///
/// vfio-pci-core keeps user accesses off the MSI-X table (`vfio_pci_core_do_io_rw`); an access
/// path that bypasses it, such as a backend's trapped BAR, must not serve that BAR. A chain too
/// broken to tell, or a capability past the dump, counts as holding it.
#[must_use]
pub fn msix_uses_bar(dump: &[u8], bar: u32) -> bool {
    let cap = match find_cap(dump, Space::Standard, u16::from(CAP_ID_MSIX), 0) {
        Ok(Some(c)) => usize::from(c.offset),
        Ok(None) => return false,
        Err(_) => return true,
    };
    [MSIX_TABLE, MSIX_PBA]
        .iter()
        .any(|&r| rd32(dump, cap.saturating_add(r)).is_none_or(|v| v & 0x7 == bar))
}

/// Finds instance `instance` of capability `id` on the `space` chain of `dump`.
///
/// # Errors
///
/// Returns the walk error if the chain is broken before the capability is found.
pub fn find_cap(
    dump: &[u8],
    space: Space,
    id: u16,
    instance: u8,
) -> Result<Option<FoundCap>, WalkError> {
    for c in CapWalker::new_for(dump, space) {
        let c = c?;
        if c.id == id && c.instance == instance {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// Length vfio-pci-core gives the standard capability `id` at `off`, or `None` when vfio-pci
/// hides it (unknown ID or length).
pub fn std_cap_len(dump: &[u8], off: usize, id: u8) -> Option<u16> {
    let at = |rel: usize| rd8(dump, off.checked_add(rel)?);
    let len: u16 = match id {
        CAP_ID_PM => 8,
        CAP_ID_AGP => 12,
        CAP_ID_VPD => 8,
        CAP_ID_MSI => {
            let flags = rd16(dump, off.checked_add(2)?)?;
            let mut l = 10u16;
            if flags & 0x0080 != 0 {
                l = l.checked_add(4)?;
            }
            if flags & 0x0100 != 0 {
                l = l.checked_add(10)?;
            }
            l
        }
        CAP_ID_PCIX => {
            let cmd = rd16(dump, off.checked_add(2)?)?;
            if (cmd >> 12) & 3 != 0 {
                24
            } else {
                8
            }
        }
        CAP_ID_HT => {
            if at(3)? & 0xe0 != 0 {
                24
            } else {
                28
            }
        }
        CAP_ID_VNDR => u16::from(at(2)?),
        CAP_ID_EXP => {
            let flags = rd16(dump, off.checked_add(2)?)?;
            let rc_end = (flags >> 4) & 0xf == 0x9;
            match (flags & 0xf == 1, rc_end) {
                (true, true) => 0xc,
                (true, false) => 20,
                (false, true) => 0x2c,
                (false, false) => 0x34,
            }
        }
        CAP_ID_MSIX => 12,
        CAP_ID_SATA => {
            if at(4)? & 0xf == 0xf {
                16
            } else {
                8
            }
        }
        CAP_ID_AF => 6,
        _ => 0,
    };
    // A capability must at least hold its ID and next pointer and fit in standard space.
    let end = off.checked_add(usize::from(len))?;
    (len >= 2 && end <= CFG_SIZE).then_some(len)
}

/// Length vfio-pci-core gives the extended capability `id` at `off`, or `None` when vfio-pci
/// hides it. PASID is reported with its architectural 8 bytes although vfio-pci hides it, so
/// that placement can treat it as occupied.
pub fn ext_cap_len(dump: &[u8], off: usize, id: u16) -> Option<u16> {
    let b = |rel: usize| rd8(dump, off.checked_add(rel)?);
    let d = |rel: usize| rd32(dump, off.checked_add(rel)?);
    let len: u32 = match id {
        EXT_CAP_ID_ERR => 0x2c,
        EXT_CAP_ID_VC | EXT_CAP_ID_VC9 | EXT_CAP_ID_MFVC => vc_cap_len(d(4)?, d(8)?),
        EXT_CAP_ID_DSN => 12,
        EXT_CAP_ID_PWR => 0x10,
        EXT_CAP_ID_VNDR | EXT_CAP_ID_DVSEC => (d(4)? >> 20) & 0xfff,
        EXT_CAP_ID_ACS => {
            if b(4)? & 0x20 != 0 {
                let bits = match b(5)? {
                    0 => 256u32,
                    n => u32::from(n).div_ceil(32).checked_mul(32)?,
                };
                8u32.checked_add(bits / 8)?
            } else {
                8
            }
        }
        EXT_CAP_ID_ARI | EXT_CAP_ID_ATS | EXT_CAP_ID_LTR => 8,
        EXT_CAP_ID_SRIOV => 0x40,
        EXT_CAP_ID_MCAST => 40,
        EXT_CAP_ID_PRI => 16,
        EXT_CAP_ID_REBAR => 4u32.checked_add(u32::from((b(8)? & 0xe0) >> 5).checked_mul(8)?)?,
        EXT_CAP_ID_DPA => 16u32.checked_add(u32::from(b(4)? & 0x1f))?.checked_add(1)?,
        EXT_CAP_ID_TPH => {
            let cap = d(4)?;
            if cap & 0x600 == 0x200 {
                let sts = (cap & 0x07ff_0000) >> 16;
                0xcu32.checked_add(sts.checked_mul(2)?)?.checked_add(2)?
            } else {
                0xc
            }
        }
        EXT_CAP_ID_PASID => 8,
        _ => 0,
    };
    let end = off.checked_add(usize::try_from(len).ok()?)?;
    if len < 4 || end > CFG_SIZE_EXT {
        return None;
    }
    u16::try_from(len).ok()
}

/// Length of a (MF)VC capability from its two port capability registers, as vfio computes it.
fn vc_cap_len(cap1: u32, cap2: u32) -> u32 {
    let evcc = cap1 & 7;
    let phases: u32 = if cap2 & 8 != 0 {
        128
    } else if cap2 & 4 != 0 {
        64
    } else if cap2 & 2 != 0 {
        32
    } else {
        0
    };
    // evcc <= 7 and phases <= 128, so none of this can overflow.
    let mut len = 0x10u32.saturating_add(evcc.saturating_add(1).saturating_mul(0x0c));
    if phases != 0 {
        len = len
            .div_ceil(16)
            .saturating_mul(16)
            .saturating_add(phases.saturating_mul(4) / 8);
    }
    len
}

/// Length of the capability `c` as vfio-pci-core presents it (`None`: vfio-pci hides it).
pub fn cap_len(dump: &[u8], c: &FoundCap) -> Option<u16> {
    let off = usize::from(c.offset);
    match c.space {
        Space::Standard => std_cap_len(dump, off, u8::try_from(c.id).ok()?),
        Space::Extended => ext_cap_len(dump, off, c.id),
    }
}
