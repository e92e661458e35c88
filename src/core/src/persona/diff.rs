//! Migration compatibility of two personas, following QEMU's rule.
//!
//! QEMU migrates its own copy of config space and, on load, fails on any byte that differs
//! where the byte is compared and not writable (`cmask & ~wmask & ~w1cmask`); every capability
//! it adds is fully compared. So a source persona `a` and destination persona `b` are
//! compatible only when:
//!
//! - the IDs are equal and the presented config size is the same;
//! - every presented capability exists in both at the same offset with the same length,
//!   version and (for PASID) parameters;
//! - every byte has the same rule; emulated bytes have the same write mask and the same reset
//!   value in every read-only bit; passthrough bytes map to the same place (the same relative
//!   offset of the same physical capability, or the same physical offset).
//!
//! Passthrough contents come from the device and cannot be compared here; [`super::check`]
//! verifies each device against its persona. Names and versions are labels and never decide.

use super::super::list::FixedList;
use super::super::pci::Space;
use super::{CapEntry, CapKind, IdField, PersonaRef, Rule};

/// What differs about one byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteDiff {
    /// The rules differ.
    Rule {
        /// Rule in `a`.
        a: Rule,
        /// Rule in `b`.
        b: Rule,
    },
    /// Emulated read-only bits differ.
    Value {
        /// Value in `a`.
        a: u8,
        /// Value in `b`.
        b: u8,
        /// Bits that are read-only in both.
        read_only: u8,
    },
    /// Emulated write masks differ.
    Mask {
        /// Mask in `a`.
        a: u8,
        /// Mask in `b`.
        b: u8,
    },
    /// Passthrough bytes come from different places on the device.
    Mapping,
}

/// One reason two personas are not migration compatible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffReason {
    /// The presented config sizes differ.
    ConfigSize {
        /// Size in `a`.
        a: u16,
        /// Size in `b`.
        b: u16,
    },
    /// An ID field differs.
    Id {
        /// The field.
        field: IdField,
        /// Value in `a`.
        a: u32,
        /// Value in `b`.
        b: u32,
    },
    /// A capability of `a` is not presented by `b`.
    CapRemoved {
        /// Its entry in `a`.
        cap: CapEntry,
    },
    /// A capability of `b` is not presented by `a`.
    CapAdded {
        /// Its entry in `b`.
        cap: CapEntry,
    },
    /// A capability is presented at another offset.
    CapMoved {
        /// Entry in `a`.
        a: CapEntry,
        /// Entry in `b`.
        b: CapEntry,
    },
    /// A capability has another length, version or PASID parameters.
    CapChanged {
        /// Entry in `a`.
        a: CapEntry,
        /// Entry in `b`.
        b: CapEntry,
    },
    /// A config byte behaves differently.
    Byte {
        /// Config offset.
        offset: u16,
        /// How.
        what: ByteDiff,
    },
}

/// Up to 64 reasons from [`diff`].
pub type DiffReport = FixedList<DiffReason, 64>;

/// Same capability in two personas: same kind, space and ID; physical ones also the same
/// instance, synthesized ones (several may share an ID) the same offset.
fn same_cap(x: &CapEntry, y: &CapEntry) -> bool {
    x.kind == y.kind
        && x.space == y.space
        && x.id == y.id
        && match x.kind {
            CapKind::Physical | CapKind::Hidden => x.instance == y.instance,
            CapKind::Synthesized => x.offset == y.offset,
            CapKind::Pasid => true,
        }
}

/// Where a passthrough byte of `p` at `off` comes from: (space, ID, instance, relative offset)
/// of its physical capability, or the physical offset itself outside capabilities.
fn mapping(p: &PersonaRef<'_>, off: usize) -> (u8, u16, u8, usize) {
    let space = if off >= 0x100 {
        Space::Extended
    } else {
        Space::Standard
    };
    match p
        .cap_containing(space, off)
        .filter(|e| e.kind == CapKind::Physical)
    {
        Some(e) => (
            if space == Space::Extended { 2 } else { 1 },
            e.id,
            e.instance,
            off.saturating_sub(usize::from(e.offset)),
        ),
        None => (0, 0, 0, off),
    }
}

/// Compares source persona `a` with destination persona `b`, reporting every reason they are
/// not migration compatible to `visit`; returns true when they are compatible.
pub fn diff_with(
    a: &PersonaRef<'_>,
    b: &PersonaRef<'_>,
    visit: &mut dyn FnMut(DiffReason),
) -> bool {
    if a.as_bytes() == b.as_bytes() {
        return true;
    }
    let mut ok = true;
    let mut report = |r: DiffReason| {
        ok = false;
        visit(r);
    };
    if a.config_size() != b.config_size() {
        report(DiffReason::ConfigSize {
            a: u16::try_from(a.config_size()).unwrap_or(u16::MAX),
            b: u16::try_from(b.config_size()).unwrap_or(u16::MAX),
        });
    }
    let (ia, ib) = (a.ids(), b.ids());
    for f in IdField::ALL {
        if ia.get(f) != ib.get(f) {
            report(DiffReason::Id {
                field: f,
                a: ia.get(f),
                b: ib.get(f),
            });
        }
    }
    for x in a.caps().filter(|e| e.kind.is_presented()) {
        match b.caps().find(|y| same_cap(&x, y)) {
            None => report(DiffReason::CapRemoved { cap: x }),
            Some(y) if y.offset != x.offset => report(DiffReason::CapMoved { a: x, b: y }),
            Some(y) if y != x => report(DiffReason::CapChanged { a: x, b: y }),
            Some(_) => {}
        }
    }
    for y in b.caps().filter(|e| e.kind.is_presented()) {
        if !a.caps().any(|x| same_cap(&x, &y)) {
            report(DiffReason::CapAdded { cap: y });
        }
    }
    diff_bytes(a, b, &mut report);
    ok
}

/// Walks both run lists in step, so comparing all 4096 bytes stays linear.
fn diff_bytes(a: &PersonaRef<'_>, b: &PersonaRef<'_>, report: &mut dyn FnMut(DiffReason)) {
    let size = a.config_size().min(b.config_size());
    let (mut ra, mut rb) = (a.runs(), b.runs());
    let (mut cur_a, mut cur_b) = (ra.next(), rb.next());
    for off in 0..size {
        while cur_a.is_some_and(|r| r.end() <= off) {
            cur_a = ra.next();
        }
        while cur_b.is_some_and(|r| r.end() <= off) {
            cur_b = rb.next();
        }
        let (Some(x), Some(y)) = (cur_a, cur_b) else {
            return;
        };
        let offset = u16::try_from(off).unwrap_or(u16::MAX);
        let what = if x.rule != y.rule {
            Some(ByteDiff::Rule {
                a: x.rule,
                b: y.rule,
            })
        } else if x.rule == Rule::Emulated {
            let kx = off.saturating_sub(usize::from(x.start));
            let ky = off.saturating_sub(usize::from(y.start));
            let (vx, mx) = (
                x.value.get(kx).copied().unwrap_or(0),
                x.mask.get(kx).copied().unwrap_or(0),
            );
            let (vy, my) = (
                y.value.get(ky).copied().unwrap_or(0),
                y.mask.get(ky).copied().unwrap_or(0),
            );
            if mx != my {
                Some(ByteDiff::Mask { a: mx, b: my })
            } else if (vx ^ vy) & !mx != 0 {
                Some(ByteDiff::Value {
                    a: vx,
                    b: vy,
                    read_only: !mx,
                })
            } else {
                None
            }
        } else if x.rule.is_pass() && mapping(a, off) != mapping(b, off) {
            Some(ByteDiff::Mapping)
        } else {
            None
        };
        if let Some(what) = what {
            report(DiffReason::Byte { offset, what });
        }
    }
}

/// Like [`diff_with`], collecting up to 64 reasons.
pub fn diff(a: &PersonaRef<'_>, b: &PersonaRef<'_>, out: &mut DiffReport) -> bool {
    diff_with(a, b, &mut |r| out.push(r))
}
