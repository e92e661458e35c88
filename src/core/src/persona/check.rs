//! Checking a persona against a device: can this device present this persona?
//!
//! One function, [`check_with`], decides for the kernel (at selection, at every open and after
//! every reset), for `vfio-persona check DUMP` and for `check --live`. The device is a
//! [`DeviceView`]: its physical config bytes (read with `pci_read_config_*`, not through
//! vfio-pci-core, so that capabilities vfio hides are visible) and its BARs and ROM; PASID
//! support comes from the IOMMU (`IOMMU_GET_HW_INFO`). Every problem becomes a [`CheckReason`]
//! naming the offsets, the register and both values; the device is suitable when there is none.
//!
//! What is checked:
//!
//! - every pinned bit (pinned and dynamic bytes, under their pin mask) equals the device's, at
//!   the physical offset the byte maps to;
//! - every BAR and the ROM: same type (io/mem32/mem64, prefetchable) and at least the persona's
//!   size (a larger one is presented at the persona's size); unknown BARs are a reason;
//! - every capability of the device is presented or hidden by the persona (an unlisted one is
//!   refused: its bytes would otherwise change what the user sees across devices);
//! - no passthrough byte outside a presented physical capability lands on a device capability
//!   the persona hides, nor on the physical PASID capability (finding S2);
//! - emulated bytes over read-only fields of presented physical capabilities only where the
//!   field table allows a lower value (MSI-X Table Size, Max Payload Size Supported), and only
//!   with a value no larger than the device's;
//! - per physical capability entry: the device has it (same space, ID and instance), with the
//!   same version, at least the presented length (exactly, for MSI), and a length vfio-pci-core
//!   knows;
//! - PASID against the IOMMU and the device.

use core::fmt;

use super::super::list::FixedList;
use super::super::overlay::CapCache;
use super::super::pci::{self, CapWalker, Space};
use super::device::{BarInfo, BarKind, DeviceView, NBARS, ROM_INDEX};
use super::fields::{self, Field, FieldKind};
use super::{CapEntry, CapKind, PersonaRef, Rule};

/// What the IOMMU reports about PASID for the device (`IOMMU_GET_HW_INFO`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IommuPasid {
    /// `out_max_pasid_log2`; 0 means no PASID support.
    pub max_pasid_log2: u8,
    /// `IOMMU_HW_CAP_PCI_PASID_EXEC`.
    pub exec: bool,
    /// `IOMMU_HW_CAP_PCI_PASID_PRIV`.
    pub privileged: bool,
}

/// One reason a device cannot present a persona.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckReason {
    /// The dump is not 256 or 4096 bytes.
    BadDump,
    /// The persona presents more config space than the device has.
    ConfigSize {
        /// Persona's config size.
        persona: u16,
        /// Device's config size.
        device: u16,
    },
    /// The device's BAR sizes and types are unknown (a raw config dump).
    BarsUnknown,
    /// A BAR or the ROM (index 6) is smaller than the persona's or of another type.
    Bar {
        /// BAR index, 6 for the ROM.
        index: u8,
        /// The persona's BAR.
        persona: BarInfo,
        /// The device's BAR.
        device: BarInfo,
    },
    /// Pinned bits of a register differ from the device's.
    Pinned {
        /// Virtual offset of the register (or of the dword, for registers the table does not
        /// name).
        offset: u16,
        /// Physical offset it maps to.
        physical: u16,
        /// Register name from the field table ("unknown" outside known registers).
        register: &'static str,
        /// The capability holding it (`None`: the header or bytes outside capabilities).
        cap: Option<(Space, u16)>,
        /// Width in bytes (at most 8).
        width: u8,
        /// The persona's value (pinned bits only).
        persona: u64,
        /// The device's value.
        device: u64,
        /// The pin mask.
        mask: u64,
    },
    /// An emulated read-only field of a presented physical capability that may not be
    /// emulated, or is emulated with a value larger than the device's.
    Emulated {
        /// Virtual offset of the register.
        offset: u16,
        /// Register name.
        register: &'static str,
        /// The persona's value.
        persona: u32,
        /// The device's value.
        device: u32,
    },
    /// The device has a capability the persona neither presents nor hides.
    Unlisted {
        /// Space of the capability.
        space: Space,
        /// Its ID.
        id: u16,
        /// Instance.
        instance: u8,
        /// Its offset on the device.
        physical: u16,
    },
    /// A passthrough byte lands on a device capability the persona hides, or on the physical
    /// PASID capability (finding S2): the user would reach it raw.
    PassOverHidden {
        /// Virtual offset of the byte.
        offset: u16,
        /// Physical offset it maps to.
        physical: u16,
        /// Space of the device capability.
        space: Space,
        /// Its ID.
        id: u16,
    },
    /// A presented physical capability is not on the device.
    CapMissing {
        /// Virtual offset in the persona.
        offset: u16,
        /// Space of the capability.
        space: Space,
        /// Capability ID.
        id: u16,
        /// Instance.
        instance: u8,
    },
    /// The device's capability has a different version.
    CapVersion {
        /// Virtual offset in the persona.
        offset: u16,
        /// Version in the persona.
        persona: u8,
        /// Version on the device.
        device: u8,
    },
    /// The device's capability is shorter than presented (or, for MSI, of another length).
    CapLength {
        /// Virtual offset in the persona.
        offset: u16,
        /// Length in the persona.
        persona: u16,
        /// Length on the device.
        device: u16,
    },
    /// vfio-pci-core does not know the length of the device's capability and hides it.
    CapNotExposed {
        /// Virtual offset in the persona.
        offset: u16,
        /// Physical offset on the device.
        physical: u16,
    },
    /// The IOMMU does not support PASID for this device.
    PasidUnsupported {
        /// Offset of the persona's PASID capability.
        offset: u16,
    },
    /// The persona's PASID width exceeds what the IOMMU or the device allows.
    PasidTooWide {
        /// Offset of the persona's PASID capability.
        offset: u16,
        /// Width in the persona.
        persona: u8,
        /// Largest allowed width.
        limit: u8,
    },
    /// The persona advertises PASID execute permission the IOMMU or device lacks.
    PasidExec {
        /// Offset of the persona's PASID capability.
        offset: u16,
    },
    /// The persona advertises PASID privileged mode the IOMMU or device lacks.
    PasidPriv {
        /// Offset of the persona's PASID capability.
        offset: u16,
    },
    /// A capability chain of the dump is broken, so the device cannot be checked.
    BrokenChain {
        /// Space of the broken chain.
        space: Space,
        /// Offset where the walk stopped.
        offset: u16,
    },
}

fn space_name(s: Space) -> &'static str {
    match s {
        Space::Standard => "standard",
        Space::Extended => "extended",
    }
}

/// `standard MSI-X capability 0x11`.
struct CapLabel(Space, u16);

impl fmt::Display for CapLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} capability {:#x}",
            space_name(self.0),
            fields::cap_name(self.0, self.1),
            self.1
        )
    }
}

/// `mem64 prefetchable 0x4000 bytes`, `unused`.
pub struct BarText(pub BarInfo);

impl fmt::Display for BarText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if matches!(b.kind, BarKind::Unused | BarKind::Upper) {
            return f.write_str(b.kind.name());
        }
        write!(
            f,
            "{}{} {:#x} bytes",
            b.kind.name(),
            if b.prefetch { " prefetchable" } else { "" },
            b.size
        )
    }
}

/// The words of a reason, the same in the kernel log and the tool.
impl fmt::Display for CheckReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CheckReason::BadDump => f.write_str("bad dump"),
            CheckReason::ConfigSize { persona, device } => write!(
                f,
                "persona presents {persona} bytes of config space, device has {device}"
            ),
            CheckReason::BrokenChain { space, offset } => write!(
                f,
                "{} capability chain of the device is broken at {offset:#05x}",
                space_name(space)
            ),
            CheckReason::BarsUnknown => f.write_str(
                "BAR sizes are unknown (a raw config dump): capture a device dump with \
                 `vfio-persona capture`",
            ),
            CheckReason::Bar {
                index,
                persona,
                device,
            } => {
                if usize::from(index) == ROM_INDEX {
                    f.write_str("ROM")?;
                } else {
                    write!(f, "BAR {index}")?;
                }
                write!(
                    f,
                    ": device has {}, persona presents {} (a device BAR must be of the same type \
                     and at least as large)",
                    BarText(device),
                    BarText(persona)
                )
            }
            CheckReason::Pinned {
                offset,
                physical,
                register,
                cap,
                width,
                persona,
                device,
                mask,
            } => {
                let w = usize::from(width).saturating_mul(2).saturating_add(2);
                write!(f, "{offset:#05x} {register}")?;
                if let Some((s, id)) = cap {
                    write!(f, " of the {}", CapLabel(s, id))?;
                }
                write!(
                    f,
                    " (device offset {physical:#05x}): device {device:#0w$x}, persona \
                     {persona:#0w$x} (pinned bits {mask:#0w$x})"
                )
            }
            CheckReason::Emulated {
                offset,
                register,
                persona,
                device,
            } => write!(
                f,
                "{offset:#05x} {register}: the persona emulates {persona:#x} over the device's \
                 read-only {device:#x}, which only a lower MSI-X Table Size or Max Payload Size \
                 Supported may do"
            ),
            CheckReason::Unlisted {
                space,
                id,
                instance,
                physical,
            } => write!(
                f,
                "the device has the {} (instance {instance}) at {physical:#05x}, which the \
                 persona neither presents nor hides",
                CapLabel(space, id)
            ),
            CheckReason::PassOverHidden {
                offset,
                physical,
                space,
                id,
            } => write!(
                f,
                "passthrough byte {offset:#05x} lands on device offset {physical:#05x}, inside \
                 the {} the persona hides",
                CapLabel(space, id)
            ),
            CheckReason::CapMissing {
                offset,
                space,
                id,
                instance,
            } => write!(
                f,
                "{} instance {instance} (at {offset:#05x}) is not on the device",
                CapLabel(space, id)
            ),
            CheckReason::CapVersion {
                offset,
                persona,
                device,
            } => write!(
                f,
                "capability at {offset:#05x}: version {device} on the device, persona expects \
                 {persona}"
            ),
            CheckReason::CapLength {
                offset,
                persona,
                device,
            } => write!(
                f,
                "capability at {offset:#05x}: {device:#x} bytes on the device, persona presents \
                 {persona:#x}"
            ),
            CheckReason::CapNotExposed { offset, physical } => write!(
                f,
                "capability at {offset:#05x} (device offset {physical:#05x}) has a length \
                 vfio-pci does not know"
            ),
            CheckReason::PasidUnsupported { offset } => {
                write!(f, "PASID at {offset:#05x}: the IOMMU has no PASID support")
            }
            CheckReason::PasidTooWide {
                offset,
                persona,
                limit,
            } => write!(f, "PASID at {offset:#05x}: width {persona} exceeds {limit}"),
            CheckReason::PasidExec { offset } => {
                write!(f, "PASID at {offset:#05x}: exec not supported")
            }
            CheckReason::PasidPriv { offset } => {
                write!(f, "PASID at {offset:#05x}: privileged mode not supported")
            }
        }
    }
}

/// Up to 32 reasons from [`check`].
pub type CheckReport = FixedList<CheckReason, 32>;

/// Checks persona `p` against the device `dev` (with what `iommu` allows), reporting each
/// problem to `visit`; returns true when there is none.
pub fn check_with(
    p: &PersonaRef<'_>,
    dev: &DeviceView<'_>,
    iommu: &IommuPasid,
    visit: &mut dyn FnMut(CheckReason),
) -> bool {
    let mut ok = true;
    let mut report = |r: CheckReason| {
        ok = false;
        visit(r);
    };
    let dump = dev.config;
    if dump.len() != pci::CFG_SIZE && dump.len() != pci::CFG_SIZE_EXT {
        report(CheckReason::BadDump);
        return false;
    }
    if p.config_size() > dump.len() {
        report(CheckReason::ConfigSize {
            persona: u16::try_from(p.config_size()).unwrap_or(u16::MAX),
            device: u16::try_from(dump.len()).unwrap_or(u16::MAX),
        });
        return false;
    }
    let mut broken = false;
    for space in [Space::Standard, Space::Extended] {
        if let Some(Err(e)) = CapWalker::new_for(dump, space).find(|c| c.is_err()) {
            let offset = match e {
                pci::WalkError::Loop(o)
                | pci::WalkError::OutOfRange(o)
                | pci::WalkError::Misaligned(o) => o,
            };
            report(CheckReason::BrokenChain { space, offset });
            broken = true;
        }
    }
    check_bars(p, dev, &mut report);
    // Bytes of a missing capability map nowhere; the pin check skips them.
    check_caps(p, dump, &mut report);
    check_unlisted(p, dump, &mut report);
    if !broken {
        check_pins(p, dump, &mut report);
        check_emulated(p, dump, &mut report);
    }
    check_pasid(p, dump, iommu, &mut report);
    ok
}

/// Like [`check_with`], collecting up to 32 reasons.
pub fn check(
    p: &PersonaRef<'_>,
    dev: &DeviceView<'_>,
    iommu: &IommuPasid,
    out: &mut CheckReport,
) -> bool {
    check_with(p, dev, iommu, &mut |r| out.push(r))
}

fn check_bars(p: &PersonaRef<'_>, dev: &DeviceView<'_>, report: &mut dyn FnMut(CheckReason)) {
    let Some(device) = dev.bars else {
        report(CheckReason::BarsUnknown);
        return;
    };
    let persona = p.bars();
    for i in 0..NBARS {
        let (Some(pb), Some(db)) = (persona.get(i).copied(), device.get(i).copied()) else {
            continue;
        };
        if matches!(pb.kind, BarKind::Unused | BarKind::Upper) {
            continue;
        }
        if pb.kind != db.kind || pb.prefetch != db.prefetch || db.size < pb.size {
            report(CheckReason::Bar {
                index: u8::try_from(i).unwrap_or(u8::MAX),
                persona: pb,
                device: db,
            });
        }
    }
}

/// Checks the physical entries; false when one is missing (then byte checks make no sense).
fn check_caps(p: &PersonaRef<'_>, dump: &[u8], report: &mut dyn FnMut(CheckReason)) -> bool {
    let mut all = true;
    for e in p.caps().filter(|e| e.kind == CapKind::Physical) {
        let found = pci::find_cap(dump, e.space, e.id, e.instance)
            .ok()
            .flatten();
        let Some(c) = found else {
            report(CheckReason::CapMissing {
                offset: e.offset,
                space: e.space,
                id: e.id,
                instance: e.instance,
            });
            all = false;
            continue;
        };
        if e.space == Space::Extended && c.version != e.version {
            report(CheckReason::CapVersion {
                offset: e.offset,
                persona: e.version,
                device: c.version,
            });
        }
        let exact = e.space == Space::Standard && e.id == u16::from(pci::CAP_ID_MSI);
        match pci::cap_len(dump, &c) {
            None => {
                report(CheckReason::CapNotExposed {
                    offset: e.offset,
                    physical: c.offset,
                });
                all = false;
            }
            Some(len) if len < e.len || (exact && len != e.len) => {
                report(CheckReason::CapLength {
                    offset: e.offset,
                    persona: e.len,
                    device: len,
                });
                all = false;
            }
            Some(_) => {}
        }
    }
    all
}

/// Every device capability must be named by a physical or hidden entry.
fn check_unlisted(p: &PersonaRef<'_>, dump: &[u8], report: &mut dyn FnMut(CheckReason)) {
    for space in [Space::Standard, Space::Extended] {
        if space == Space::Extended && p.config_size() <= pci::CFG_SIZE {
            // The persona presents no extended space: nothing of it reaches the user.
            continue;
        }
        for c in CapWalker::new_for(dump, space).map_while(Result::ok) {
            if c.id == 0 {
                // An ID-0 header is a placeholder (a hidden first extended capability).
                continue;
            }
            let named = p.caps().any(|e| {
                matches!(e.kind, CapKind::Physical | CapKind::Hidden)
                    && (e.space, e.id, e.instance) == (c.space, c.id, c.instance)
            });
            if !named {
                report(CheckReason::Unlisted {
                    space,
                    id: c.id,
                    instance: c.instance,
                    physical: c.offset,
                });
            }
        }
    }
}

/// Where a virtual byte's rule comes from: the presented physical entry holding it (if any).
fn entry_of(p: &PersonaRef<'_>, off: usize) -> Option<CapEntry> {
    let space = if off >= pci::CFG_SIZE {
        Space::Extended
    } else {
        Space::Standard
    };
    p.cap_containing(space, off)
        .filter(|e| e.kind == CapKind::Physical)
}

/// The field holding virtual byte `off`: (field start, width, name) and the capability.
fn unit_of(p: &PersonaRef<'_>, off: usize) -> (usize, usize, &'static str, Option<(Space, u16)>) {
    let dword = |base: usize| {
        let start = base.saturating_add(off.saturating_sub(base) & !3);
        (start, 4usize)
    };
    if off < pci::STD_HEADER_SIZEOF {
        if let Some(f) = fields::field_at(fields::HEADER, off) {
            return unit_from(f, 0, off, None);
        }
        let (s, w) = dword(0);
        return (s, w, "header", None);
    }
    match entry_of(p, off) {
        Some(e) => {
            let base = usize::from(e.offset);
            let cap = Some((e.space, e.id));
            let rel = off.saturating_sub(base);
            if let Some(f) =
                fields::cap_fields(e.space, e.id).and_then(|c| fields::field_at(c.fields, rel))
            {
                return unit_from(f, base, off, cap);
            }
            let (s, w) = dword(base);
            (s, w, fields::cap_name(e.space, e.id), cap)
        }
        None => {
            let (s, w) = dword(0);
            (s, w, "bytes outside the capabilities", None)
        }
    }
}

fn unit_from(
    f: &'static Field,
    base: usize,
    off: usize,
    cap: Option<(Space, u16)>,
) -> (usize, usize, &'static str, Option<(Space, u16)>) {
    let start = base.saturating_add(usize::from(f.offset));
    if f.width <= 8 {
        return (start, usize::from(f.width), f.name, cap);
    }
    let s = start.saturating_add(off.saturating_sub(start) & !3);
    (s, 4, f.name, cap)
}

/// Every pinned bit equals the device's; no passthrough byte reaches a hidden capability.
fn check_pins(p: &PersonaRef<'_>, dump: &[u8], report: &mut dyn FnMut(CheckReason)) {
    let mut map = CapCache::default();
    // Extents of device capabilities a passthrough byte must not reach (S2).
    let mut forbidden = FixedList::<(usize, usize, Space, u16), 32>::new();
    for space in [Space::Standard, Space::Extended] {
        for c in CapWalker::new_for(dump, space).map_while(Result::ok) {
            let hidden = p.caps().any(|e| {
                e.kind == CapKind::Hidden
                    && (e.space, e.id, e.instance) == (c.space, c.id, c.instance)
            });
            let pasid = space == Space::Extended && c.id == pci::EXT_CAP_ID_PASID;
            if hidden || pasid {
                let (s, e) = fields::extent(dump, &c);
                forbidden.push((s, e, space, c.id));
            }
        }
    }
    let mut skip_to = 0usize;
    let mut s2_done = false;
    for r in p.runs().filter(|r| r.rule.is_pass()) {
        for k in 0..usize::from(r.len) {
            let off = usize::from(r.start).saturating_add(k);
            let Ok(phys) = map.physical_of(p, dump, off) else {
                continue;
            };
            if !s2_done && entry_of(p, off).is_none() {
                if let Some((_, _, space, id)) =
                    forbidden.iter().find(|&(s, e, _, _)| phys >= s && phys < e)
                {
                    report(CheckReason::PassOverHidden {
                        offset: u16::try_from(off).unwrap_or(u16::MAX),
                        physical: u16::try_from(phys).unwrap_or(u16::MAX),
                        space,
                        id,
                    });
                    // One reason says it; the rest of the run would repeat it.
                    s2_done = true;
                }
            }
            if off < skip_to {
                continue;
            }
            let v = r.value.get(k).copied().unwrap_or(0);
            let m = r.mask.get(k).copied().unwrap_or(0);
            let d = dump.get(phys).copied().unwrap_or(0);
            if (v ^ d) & m == 0 {
                continue;
            }
            let (start, width, register, cap) = unit_of(p, off);
            let (mut pv, mut dv, mut mk) = (0u64, 0u64, 0u64);
            for j in (0..width).rev() {
                let o = start.saturating_add(j);
                let b = p.byte_rule(o);
                let (bv, bm) = match b {
                    Some(b) if b.rule.is_pass() => (b.value, b.mask),
                    _ => (0, 0),
                };
                let ph = map.physical_of(p, dump, o).unwrap_or(o);
                pv = (pv << 8) | u64::from(bv);
                mk = (mk << 8) | u64::from(bm);
                dv = (dv << 8) | u64::from(dump.get(ph).copied().unwrap_or(0));
            }
            let phys0 = map.physical_of(p, dump, start).unwrap_or(start);
            report(CheckReason::Pinned {
                offset: u16::try_from(start).unwrap_or(u16::MAX),
                physical: u16::try_from(phys0).unwrap_or(u16::MAX),
                register,
                cap,
                width: u8::try_from(width).unwrap_or(0),
                persona: pv,
                device: dv & mk,
                mask: mk,
            });
            skip_to = start.saturating_add(width);
        }
    }
}

/// Emulated bytes over read-only fields of presented physical capabilities.
fn check_emulated(p: &PersonaRef<'_>, dump: &[u8], report: &mut dyn FnMut(CheckReason)) {
    for e in p.caps().filter(|e| e.kind == CapKind::Physical) {
        let Ok(Some(c)) = pci::find_cap(dump, e.space, e.id, e.instance) else {
            continue;
        };
        let (base, pbase) = (usize::from(e.offset), usize::from(c.offset));
        let known = fields::cap_fields(e.space, e.id);
        let body = e.header_len()..usize::from(e.len);
        let mut rel = body.start;
        while rel < body.end {
            let f = known.and_then(|k| fields::field_at(k.fields, rel));
            let (fstart, fwidth, ro, lower, name) = match f {
                Some(f) => {
                    let ro = match f.kind {
                        FieldKind::Pinned => u32::MAX,
                        FieldKind::Dynamic(ro) => ro,
                        FieldKind::Bar | FieldKind::Layout | FieldKind::Emulated { .. } => 0,
                    };
                    (
                        usize::from(f.offset),
                        usize::from(f.width),
                        ro,
                        f.lower,
                        f.name,
                    )
                }
                None => (rel, 1, u32::MAX, 0, fields::cap_name(e.space, e.id)),
            };
            let fend = fstart.saturating_add(fwidth).min(body.end);
            rel = fend.max(rel.saturating_add(1));
            let emulated = (fstart..fend).any(|r| {
                p.byte_rule(base.saturating_add(r))
                    .is_some_and(|b| b.rule == Rule::Emulated)
            });
            if !emulated || ro == 0 {
                continue;
            }
            let (mut pv, mut dv) = (0u32, 0u32);
            for j in (fstart..fend.min(fstart.saturating_add(4))).rev() {
                let b = p.byte_rule(base.saturating_add(j));
                pv = (pv << 8) | u32::from(b.map_or(0, |b| b.value));
                dv = (dv << 8) | u32::from(dump.get(pbase.saturating_add(j)).copied().unwrap_or(0));
            }
            let fixed = ro & !lower;
            let ok = lower != 0 && (pv ^ dv) & fixed == 0 && pv & lower <= dv & lower;
            if !ok {
                report(CheckReason::Emulated {
                    offset: u16::try_from(base.saturating_add(fstart)).unwrap_or(u16::MAX),
                    register: name,
                    persona: pv & ro,
                    device: dv & ro,
                });
            }
        }
    }
}

fn check_pasid(
    p: &PersonaRef<'_>,
    dump: &[u8],
    iommu: &IommuPasid,
    report: &mut dyn FnMut(CheckReason),
) {
    let Some(pasid) = p.pasid() else { return };
    let offset = pasid.offset;
    if iommu.max_pasid_log2 == 0 {
        report(CheckReason::PasidUnsupported { offset });
        return;
    }
    let mut limit = iommu.max_pasid_log2.min(pci::PASID_MAX_WIDTH);
    let (mut exec, mut privileged) = (iommu.exec, iommu.privileged);
    if let Some(reg) = pci::pasid_cap_reg(dump) {
        limit = limit.min(u8::try_from(reg.width()).unwrap_or(0));
        exec &= reg.exec() != 0;
        privileged &= reg.privileged() != 0;
    }
    if pasid.width > limit {
        report(CheckReason::PasidTooWide {
            offset,
            persona: pasid.width,
            limit,
        });
    }
    if pasid.exec && !exec {
        report(CheckReason::PasidExec { offset });
    }
    if pasid.privileged && !privileged {
        report(CheckReason::PasidPriv { offset });
    }
}
