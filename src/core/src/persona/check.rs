//! Checking a persona against a device: can this device present this persona?
//!
//! The device is described by its physical config dump (read with `pci_read_config_*`, not
//! through vfio-pci-core, so that capabilities vfio hides are visible) and by what the IOMMU
//! reports about PASID (`IOMMU_GET_HW_INFO`). Every problem becomes a [`CheckReason`] with the
//! offsets involved; the device is suitable when there are none.
//!
//! "At least as capable" means, per physical capability entry: the device has that capability
//! (same space, ID and instance); extended capabilities have the same version; the length
//! vfio-pci-core gives the device's capability is at least the presented length (exactly equal
//! for MSI, whose length encodes the 64-bit and per-vector-masking flags the guest reads through
//! passthrough); and vfio-pci-core knows the length at all (otherwise it hides the capability).

use super::super::list::FixedList;
use super::super::pci::{self, CapWalker, Space};
use super::{CapKind, IdField, Ids, PersonaRef};

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
    /// A passthrough ID field differs from the device's.
    IdMismatch {
        /// The field.
        field: IdField,
        /// Value the persona expects.
        persona: u32,
        /// Value the device has.
        device: u32,
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
    /// A synthesized capability covers a device capability the persona neither presents
    /// elsewhere nor hides: that capability would silently disappear.
    Shadowed {
        /// Virtual offset of the synthesized capability.
        offset: u16,
        /// Offset of the device's capability.
        physical: u16,
        /// Space of the device's capability.
        space: Space,
        /// ID of the device's capability.
        id: u16,
    },
    /// A capability chain of the dump is broken, so the device cannot be checked.
    BrokenChain {
        /// Space of the broken chain.
        space: Space,
        /// Offset where the walk stopped.
        offset: u16,
    },
}

/// Up to 32 reasons from [`check`].
pub type CheckReport = FixedList<CheckReason, 32>;

/// Checks persona `p` against the device described by `dump` and `iommu`, reporting each
/// problem to `visit`; returns true when there is none.
pub fn check_with(
    p: &PersonaRef<'_>,
    dump: &[u8],
    iommu: &IommuPasid,
    visit: &mut dyn FnMut(CheckReason),
) -> bool {
    let mut ok = true;
    let mut report = |r: CheckReason| {
        ok = false;
        visit(r);
    };
    if dump.len() != pci::CFG_SIZE && dump.len() != pci::CFG_SIZE_EXT {
        report(CheckReason::BadDump);
        return false;
    }
    if p.config_size() > dump.len() {
        report(CheckReason::ConfigSize {
            persona: u16::try_from(p.config_size()).unwrap_or(u16::MAX),
            device: u16::try_from(dump.len()).unwrap_or(u16::MAX),
        });
    }
    check_ids(p, dump, &mut report);
    for space in [Space::Standard, Space::Extended] {
        if let Some(Err(e)) = CapWalker::new_for(dump, space).find(|c| c.is_err()) {
            let offset = match e {
                pci::WalkError::Loop(o)
                | pci::WalkError::OutOfRange(o)
                | pci::WalkError::Misaligned(o) => o,
            };
            report(CheckReason::BrokenChain { space, offset });
        }
    }
    check_caps(p, dump, &mut report);
    check_pasid(p, dump, iommu, &mut report);
    check_shadowing(p, dump, &mut report);
    ok
}

/// Like [`check_with`], collecting up to 32 reasons.
pub fn check(p: &PersonaRef<'_>, dump: &[u8], iommu: &IommuPasid, out: &mut CheckReport) -> bool {
    check_with(p, dump, iommu, &mut |r| out.push(r))
}

fn check_ids(p: &PersonaRef<'_>, dump: &[u8], report: &mut dyn FnMut(CheckReason)) {
    let Some(dev) = Ids::from_dump(dump) else {
        return;
    };
    let ids = p.ids();
    for f in IdField::ALL {
        if !p.id_emulated(f) && ids.get(f) != dev.get(f) {
            report(CheckReason::IdMismatch {
                field: f,
                persona: ids.get(f),
                device: dev.get(f),
            });
        }
    }
}

fn check_caps(p: &PersonaRef<'_>, dump: &[u8], report: &mut dyn FnMut(CheckReason)) {
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
            None => report(CheckReason::CapNotExposed {
                offset: e.offset,
                physical: c.offset,
            }),
            Some(len) if len < e.len || (exact && len != e.len) => report(CheckReason::CapLength {
                offset: e.offset,
                persona: e.len,
                device: len,
            }),
            Some(_) => {}
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
    if let Ok(Some(c)) = pci::find_cap(dump, Space::Extended, pci::EXT_CAP_ID_PASID, 0) {
        let reg = pci::PasidCapReg(
            pci::rd16(dump, usize::from(c.offset).saturating_add(pci::PASID_CAP)).unwrap_or(0),
        );
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

fn check_shadowing(p: &PersonaRef<'_>, dump: &[u8], report: &mut dyn FnMut(CheckReason)) {
    for s in p
        .caps()
        .filter(|e| matches!(e.kind, CapKind::Synthesized | CapKind::Pasid))
    {
        for c in CapWalker::new_for(dump, s.space).map_while(Result::ok) {
            let start = usize::from(c.offset);
            let len = pci::cap_len(dump, &c).map_or(c_header(s.space), usize::from);
            let overlaps = start < s.end() && usize::from(s.offset) < start.saturating_add(len);
            let accounted = p.caps().any(|e| {
                matches!(e.kind, CapKind::Physical | CapKind::Hidden)
                    && (e.space, e.id, e.instance) == (c.space, c.id, c.instance)
            });
            if overlaps && !accounted {
                report(CheckReason::Shadowed {
                    offset: s.offset,
                    physical: c.offset,
                    space: c.space,
                    id: c.id,
                });
            }
        }
    }
}

fn c_header(space: Space) -> usize {
    match space {
        Space::Standard => 2,
        Space::Extended => 4,
    }
}
