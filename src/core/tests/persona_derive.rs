//! Derive, encode, parse, check and diff on synthetic dumps.
#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod persona_support;

use persona_core::error::{Error, ParseReason};
use persona_core::pci::Space;
use persona_core::persona::check::{check, CheckReason, CheckReport, IommuPasid};
use persona_core::persona::derive::{derive_blob, place_pasid, DeriveOptions, PasidRequest};
use persona_core::persona::diff::{diff, DiffReason, DiffReport};
use persona_core::persona::format::MAX_BLOB;
use persona_core::persona::{CapKind, DeviceView, PersonaModel, PersonaRef, Rule};
use persona_support::*;

fn derive(dump: &[u8], opts: &DeriveOptions<'_>) -> Vec<u8> {
    let mut m = Box::<PersonaModel>::default();
    let mut out = vec![0u8; MAX_BLOB];
    let n = derive_blob(&view(dump), opts, &mut m, &mut out).expect("derive");
    out.truncate(n);
    out
}

fn pasid(width: u8) -> Option<PasidRequest> {
    Some(PasidRequest {
        width,
        exec: false,
        privileged: false,
        offset: None,
    })
}

#[test]
fn edu_identity() {
    let blob = derive(&edu(), &DeriveOptions::default());
    let p = PersonaRef::parse(&blob).unwrap();
    assert_eq!(p.name(), "1234:11e8");
    assert_eq!(p.config_size(), 256);
    assert_eq!(p.ids().class, 0x00ff00);
    assert_eq!(p.ids().revision, 0x10);
    let caps: Vec<_> = p.caps().collect();
    assert_eq!(caps.len(), 1);
    assert_eq!(
        (caps[0].kind, caps[0].id, caps[0].offset, caps[0].len),
        (CapKind::Physical, 5, 0x40, 14)
    );
    assert_eq!(p.byte_rule(0x34).unwrap().rule, Rule::Emulated);
    assert_eq!(p.byte_rule(0x34).unwrap().value, 0x40);
    assert_eq!(p.byte_rule(0x00).unwrap().rule, Rule::Pinned);
    assert_eq!(p.byte_rule(0x04).unwrap().rule, Rule::Dynamic);
    assert!(p.pasid().is_none());
    assert!(blob.len() < 512, "blob is {} bytes", blob.len());
}

#[test]
fn derive_is_deterministic() {
    for dump in [edu(), nvme(), nvme_ext()] {
        let opts = DeriveOptions {
            pasid: if dump.len() > 256 { pasid(16) } else { None },
            ..Default::default()
        };
        assert_eq!(derive(&dump, &opts), derive(&dump, &opts));
    }
}

#[test]
fn load_encode_round_trip() {
    for dump in [edu(), nvme(), nvme_ext()] {
        let opts = DeriveOptions {
            pasid: if dump.len() > 256 { pasid(8) } else { None },
            ..Default::default()
        };
        let blob = derive(&dump, &opts);
        let p = PersonaRef::parse(&blob).unwrap();
        let mut m = Box::<PersonaModel>::default();
        m.load(&p);
        let mut out = vec![0u8; MAX_BLOB];
        let n = m.encode(&mut out).unwrap();
        assert_eq!(&out[..n], &blob[..]);
    }
}

#[test]
fn pasid_placement_rules() {
    // No extended capabilities: 0xff8.
    assert_eq!(place_pasid(&nvme(), None), Ok(0xff8));
    // Requested offset wins.
    assert_eq!(place_pasid(&nvme(), Some(0x400)), Ok(0x400));
    assert_eq!(
        place_pasid(&nvme(), Some(0x402)),
        Err(Error::BadPasidOffset(0x402))
    );
    assert_eq!(
        place_pasid(&nvme_ext(), Some(0x148)),
        Err(Error::BadPasidOffset(0x148))
    );
    // 256-byte device: no room at all.
    assert_eq!(place_pasid(&edu(), None), Err(Error::NoExtendedSpace));
    // Quirk table entry (test device 1234:beef -> 0x200).
    let mut q = nvme();
    q[2..4].copy_from_slice(&0xbeefu16.to_le_bytes());
    q[0..2].copy_from_slice(&0x1234u16.to_le_bytes());
    assert_eq!(place_pasid(&q, None), Ok(0x200));
    // 0xff8 taken by a vendor capability: lowest gap after the chain's last capability.
    let mut f = nvme();
    put(&mut f, 0x100, &ext_hdr(0x0b, 1, 0xff0));
    put(&mut f, 0x104, &((0x10u32 << 20) | 1).to_le_bytes());
    put(&mut f, 0xff0, &ext_hdr(0x03, 1, 0));
    assert_eq!(place_pasid(&f, None), Ok(0x110));
}

#[test]
fn physical_pasid_is_hidden_and_synthesized_one_is_placed() {
    let blob = derive(
        &nvme_ext(),
        &DeriveOptions {
            pasid: pasid(16),
            ..Default::default()
        },
    );
    let p = PersonaRef::parse(&blob).unwrap();
    let info = p.pasid().unwrap();
    assert_eq!((info.offset, info.width), (0xff8, 16));
    // The physical PASID at 0x148 is hidden, and unlinked from the chain.
    for off in 0x148..0x150 {
        assert_eq!(p.byte_rule(off).unwrap().rule, Rule::Hidden, "{off:#x}");
    }
    let hidden: Vec<_> = p
        .caps()
        .filter(|e| e.kind == CapKind::Hidden)
        .map(|e| e.id)
        .collect();
    assert_eq!(hidden, vec![0x1b, 0x7f]);
    // AER at 0x100 links to DSN at 0x150, DSN to LTR at 0x180, LTR to the PASID at 0xff8.
    let next = |off: usize| {
        let b: Vec<u8> = (0..4)
            .map(|k| p.byte_rule(off + k).unwrap().value)
            .collect();
        u32::from_le_bytes(b.try_into().unwrap()) >> 20
    };
    assert_eq!(next(0x100), 0x150);
    assert_eq!(next(0x150), 0x180);
    assert_eq!(next(0x180), 0xff8);
    assert_eq!(next(0xff8), 0);
}

/// A PASID request beyond the device's own PASID capability (wider, or a mode it lacks) would
/// give a persona the device fails: derive refuses it with the device's limits, and
/// `within_device` (what the kernel's automatic persona asks for) lowers it instead. Found by
/// the overlay fuzzer: a derived persona failed its own device's check.
#[test]
fn pasid_request_beyond_the_device_is_refused_or_lowered() {
    let dump = nvme_ext();
    let mut m = Box::<PersonaModel>::default();
    let mut out = vec![0u8; MAX_BLOB];
    let beyond = [
        PasidRequest {
            width: 17,
            exec: false,
            privileged: false,
            offset: None,
        },
        PasidRequest {
            width: 16,
            exec: false,
            privileged: true,
            offset: None,
        },
    ];
    for req in beyond {
        let opts = DeriveOptions {
            pasid: Some(req),
            ..Default::default()
        };
        let e = derive_blob(&view(&dump), &opts, &mut m, &mut out).unwrap_err();
        assert_eq!(
            e,
            Error::PasidBeyondDevice {
                width: 16,
                exec: true,
                privileged: false
            },
            "{req:?}"
        );
        assert!(e.to_string().contains("privileged not supported"), "{e}");
        let low = req.within_device(&dump);
        assert_eq!((low.width, low.exec, low.privileged), (16, false, false));
        let opts = DeriveOptions {
            pasid: Some(low),
            ..Default::default()
        };
        let n =
            derive_blob(&view(&dump), &opts, &mut m, &mut out).expect("lowered request derives");
        let p = PersonaRef::parse(&out[..n]).unwrap();
        let iommu = IommuPasid {
            max_pasid_log2: 20,
            exec: true,
            privileged: true,
        };
        let mut r = CheckReport::new();
        assert!(
            check(&p, &view(&dump), &iommu, &mut r),
            "{:?}",
            r.iter().collect::<Vec<_>>()
        );
    }
}

#[test]
fn check_reports() {
    let blob = derive(
        &nvme_ext(),
        &DeriveOptions {
            pasid: pasid(16),
            ..Default::default()
        },
    );
    let p = PersonaRef::parse(&blob).unwrap();
    let good = IommuPasid {
        max_pasid_log2: 20,
        exec: true,
        privileged: true,
    };
    let mut r = CheckReport::new();
    assert!(
        check(&p, &view(&nvme_ext()), &good, &mut r),
        "{:?}",
        r.iter().collect::<Vec<_>>()
    );
    // IOMMU narrower than the persona.
    let mut r = CheckReport::new();
    assert!(!check(
        &p,
        &view(&nvme_ext()),
        &IommuPasid {
            max_pasid_log2: 10,
            ..good
        },
        &mut r
    ));
    assert_eq!(
        r.iter().next(),
        Some(CheckReason::PasidTooWide {
            offset: 0xff8,
            persona: 16,
            limit: 10
        })
    );
    // A device without the AER capability and with another device ID.
    let mut other = nvme();
    other[2] = 0x11;
    let mut r = CheckReport::new();
    assert!(!check(&p, &view(&other), &good, &mut r));
    let reasons: Vec<_> = r.iter().collect();
    assert!(
        reasons.iter().any(|x| matches!(
            x,
            CheckReason::Pinned {
                register: "device ID",
                offset: 2,
                ..
            }
        )),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|x| matches!(
            x,
            CheckReason::CapMissing {
                id: 1,
                space: Space::Extended,
                ..
            }
        )),
        "{reasons:?}"
    );
    // A 4 KiB persona on a 256-byte device.
    let mut r = CheckReport::new();
    assert!(!check(&p, &view(&edu()), &good, &mut r));
    assert!(r.iter().any(|x| matches!(
        x,
        CheckReason::ConfigSize {
            persona: 4096,
            device: 256
        }
    )));
}

#[test]
fn diff_rules() {
    let a = derive(&nvme(), &DeriveOptions::default());
    let b = derive(
        &nvme(),
        &DeriveOptions {
            name: Some("renamed"),
            ..Default::default()
        },
    );
    let (pa, pb) = (
        PersonaRef::parse(&a).unwrap(),
        PersonaRef::parse(&b).unwrap(),
    );
    assert_ne!(pa.digest(), pb.digest());
    let mut r = DiffReport::new();
    assert!(diff(&pa, &pb, &mut r), "names never decide");
    // Adding PASID adds a capability and changes the chain head bytes.
    let c = derive(
        &nvme(),
        &DeriveOptions {
            pasid: pasid(16),
            ..Default::default()
        },
    );
    let pc = PersonaRef::parse(&c).unwrap();
    let mut r = DiffReport::new();
    assert!(!diff(&pa, &pc, &mut r));
    let reasons: Vec<_> = r.iter().collect();
    assert!(reasons
        .iter()
        .any(|x| matches!(x, DiffReason::CapAdded { cap } if cap.kind == CapKind::Pasid)));
    assert!(
        reasons
            .iter()
            .any(|x| matches!(x, DiffReason::Byte { offset: 0x102, .. })),
        "{reasons:?}"
    );
    // Moving PASID elsewhere is a moved capability.
    let d = derive(
        &nvme(),
        &DeriveOptions {
            pasid: Some(PasidRequest {
                offset: Some(0x400),
                ..pasid(16).unwrap()
            }),
            ..Default::default()
        },
    );
    let pd = PersonaRef::parse(&d).unwrap();
    let mut r = DiffReport::new();
    assert!(!diff(&pc, &pd, &mut r));
    assert!(r.iter().any(
        |x| matches!(x, DiffReason::CapMoved { a, b } if a.offset == 0xff8 && b.offset == 0x400)
    ));
}

#[test]
fn every_truncation_and_bad_magic_is_rejected() {
    let blob = derive(
        &nvme_ext(),
        &DeriveOptions {
            pasid: pasid(16),
            ..Default::default()
        },
    );
    for n in 0..blob.len() {
        assert!(PersonaRef::parse(&blob[..n]).is_err(), "prefix {n}");
    }
    let mut bad = blob.clone();
    bad[0] ^= 1;
    assert_eq!(
        PersonaRef::parse(&bad).unwrap_err().reason,
        ParseReason::BadMagic
    );
    let mut long = blob.clone();
    long.push(0);
    assert_eq!(
        PersonaRef::parse(&long).unwrap_err().reason,
        ParseReason::LengthMismatch
    );
}

#[test]
fn every_single_byte_change_is_rejected_or_changes_digest() {
    // Canonical form: any accepted mutation must be a different persona; and the parser must
    // never panic.
    let blob = derive(
        &nvme_ext(),
        &DeriveOptions {
            pasid: pasid(16),
            ..Default::default()
        },
    );
    for i in 0..blob.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = blob.clone();
            b[i] ^= flip;
            if let Ok(p) = PersonaRef::parse(&b) {
                let mut m = Box::<PersonaModel>::default();
                m.load(&p);
                let mut out = vec![0u8; MAX_BLOB];
                let n = m.encode(&mut out).unwrap();
                assert_eq!(
                    &out[..n],
                    &b[..],
                    "accepted mutation at {i:#x} is not canonical"
                );
            }
        }
    }
}

#[test]
fn bad_dumps() {
    let mut m = Box::<PersonaModel>::default();
    let mut out = vec![0u8; MAX_BLOB];
    assert_eq!(
        derive_blob(
            &DeviceView::config_only(&[0u8; 100]),
            &DeriveOptions::default(),
            &mut m,
            &mut out
        ),
        Err(Error::BadDumpSize)
    );
    // A standard chain that loops.
    let mut d = edu();
    d[0x41] = 0x40;
    assert!(matches!(
        derive_blob(&view(&d), &DeriveOptions::default(), &mut m, &mut out),
        Err(Error::BrokenChain(_))
    ));
    // Output buffer too small.
    assert_eq!(
        derive_blob(
            &view(&edu()),
            &DeriveOptions::default(),
            &mut m,
            &mut out[..100]
        ),
        Err(Error::BufferTooSmall)
    );
}
