//! The live commands' host-testable parts: argument parsing, PCI addresses, the descriptor
//! region's format, access steps, the `persona` attribute, and the comparison of a VFIO view
//! with a persona on views rendered by the core's overlay from the example dumps (the synthetic
//! ones and the real ones captured in the test guest).

use std::path::{Path, PathBuf};

use clap::Parser as _;
use persona_core::overlay::{ConfigAccess, OverlayMap, OverlayState};
use persona_core::persona::PersonaRef;
use persona_core::sha256::Sha256;
use vfio_persona::cli::{self, Cli, Cmd};
use vfio_persona::input::load_blob;
use vfio_persona::live::{self, Mismatch, Op};
use vfio_persona::livecmd::{self, LiveView};
use vfio_persona::render;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/personas")
}

fn blob(path: &str) -> Vec<u8> {
    load_blob(&dir().join(path)).unwrap()
}

fn dump(name: &str) -> Vec<u8> {
    std::fs::read(dir().join("dumps").join(name)).unwrap()
}

/// Physical config space: what vfio-pci-core would give for passthrough bytes.
struct Phys<'a>(&'a mut [u8]);

impl ConfigAccess for Phys<'_> {
    type Error = ();
    fn read(&mut self, offset: u16, size: u8) -> Result<u32, ()> {
        let mut v = [0u8; 4];
        let o = usize::from(offset);
        v[..usize::from(size)].copy_from_slice(&self.0[o..o + usize::from(size)]);
        Ok(u32::from_le_bytes(v))
    }
    fn write(&mut self, offset: u16, size: u8, value: u32) -> Result<(), ()> {
        let o = usize::from(offset);
        self.0[o..o + usize::from(size)].copy_from_slice(&value.to_le_bytes()[..usize::from(size)]);
        Ok(())
    }
}

/// What a VFIO user reads from a device presenting `p` after reset: the overlay over `phys`,
/// read in dwords over a region of the device's config size.
fn render(p: &PersonaRef<'_>, phys: &mut [u8]) -> Vec<u8> {
    let mut map = Box::<OverlayMap>::default();
    map.build(p, phys).unwrap();
    let mut st = Box::<OverlayState>::default();
    st.reset(&map);
    let n = phys.len();
    let mut acc = Phys(phys);
    let mut out = Vec::new();
    for off in (0..n).step_by(4) {
        let v = map.read(&st, &mut acc, off as u16, 4).unwrap();
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

const CASES: &[(&str, &str)] = &[
    ("edu-identity.toml", "edu.config"),
    ("edu-no-msi.toml", "edu.config"),
    ("edu-as-11e9.toml", "edu.config"),
    ("nvme-identity.toml", "nvme.config"),
    ("nvme-pasid.toml", "nvme.config"),
    ("nvme-msix-at-c0.toml", "nvme.config"),
    ("golden/edu-identity.toml", "edu-guest.bin"),
    ("golden/edu-hidden-msi.toml", "edu-guest.bin"),
    ("golden/edu-ids-11e9.toml", "edu-guest.bin"),
    ("golden/nvme-msix-moved.toml", "nvme-guest.bin"),
];

#[test]
fn overlay_views_compare_identical() {
    for (persona, d) in CASES {
        let b = blob(persona);
        let p = PersonaRef::parse(&b).unwrap();
        let mut phys = dump(d);
        let view = render(&p, &mut phys);
        let m = live::compare(&p, &view);
        assert!(m.is_empty(), "{persona}: {:?}", m);
    }
}

#[test]
fn raw_device_differs_from_changed_personas() {
    // Reading the device itself (as vfio-pci would present it) is not the persona.
    for (persona, d, what) in [
        ("golden/edu-hidden-msi.toml", "edu-guest.bin", "byte 0x034"),
        ("golden/edu-ids-11e9.toml", "edu-guest.bin", "byte 0x002"),
        ("golden/edu-ids-11e9.toml", "edu-guest.bin", "byte 0x00c"),
        (
            "golden/nvme-msix-moved.toml",
            "nvme-guest.bin",
            "byte 0x034",
        ),
        (
            "nvme-pasid.toml",
            "nvme-guest.bin",
            "extended capability chain",
        ),
        // The host's BAR address: the persona presents the BAR register emulated.
        ("golden/edu-identity.toml", "edu-guest.bin", "byte 0x013"),
    ] {
        let b = blob(persona);
        let p = PersonaRef::parse(&b).unwrap();
        let m = live::compare(&p, &dump(d));
        assert!(
            m.iter().any(|m| m.text().contains(what)),
            "{persona}: {what} not in {:?}",
            m.iter().map(Mismatch::text).collect::<Vec<_>>()
        );
    }
    // The identity persona of the same device is the device.
    // A persona of the synthetic nvme on the real one: pinned values differ (MSI-X Table
    // Size 64 against 65, the PCIe capability registers), through the overlay too.
    let b = blob("nvme-pasid.toml");
    let p = PersonaRef::parse(&b).unwrap();
    let mut phys = dump("nvme-guest.bin");
    let m = live::compare(&p, &render(&p, &mut phys));
    assert!(
        m.iter()
            .any(|m| matches!(m, Mismatch::Byte { offset: 0x42, .. })),
        "{m:?}"
    );
}

#[test]
fn every_fixed_byte_is_checked() {
    let b = blob("golden/nvme-msix-moved.toml");
    let p = PersonaRef::parse(&b).unwrap();
    let mut phys = dump("nvme-guest.bin");
    let view = render(&p, &mut phys);
    let mut flagged = 0;
    let expected = live::expected_image(&p, view.len());
    for off in (0..view.len()).filter(|o| *o < 0x110 || o % 61 == 0 || *o == 0xfff) {
        assert_eq!(expected[off], live::expected_byte(&p, off), "{off:#x}");
        let mut v = view.clone();
        v[off] ^= 0x01;
        let m = live::compare(&p, &v);
        match live::expected_byte(&p, off) {
            (_, mask) if mask & 1 != 0 => {
                assert!(
                    m.iter()
                        .any(|m| matches!(m, Mismatch::Byte { offset, .. } if *offset == off)),
                    "flip at {off:#x} not reported"
                );
                flagged += 1;
            }
            // A passthrough byte may change freely, unless it moves a chain (status bit).
            _ => assert!(
                m.iter().all(|m| matches!(m, Mismatch::Chain { .. })),
                "{off:#x}: {m:?}"
            ),
        }
    }
    // Hidden old MSI-X location, headers, 0x34, IDs, past-end bytes...
    assert!(flagged > 12 + 2 + 1 + 10);
}

#[test]
fn chains_are_compared() {
    let b = blob("golden/nvme-msix-moved.toml");
    let p = PersonaRef::parse(&b).unwrap();
    let mut phys = dump("nvme-guest.bin");
    let mut view = render(&p, &mut phys);
    // A status register without the capability-list bit hides the whole chain.
    view[6] &= !0x10;
    let m = live::compare(&p, &view);
    assert!(
        m.iter().any(|m| matches!(m, Mismatch::Chain { .. })),
        "{m:?}"
    );
    // The capability-list bit is pinned too: the byte is reported, and only it.
    assert!(m
        .iter()
        .all(|m| !matches!(m, Mismatch::Byte { offset, .. } if *offset != 6)));
}

#[test]
fn short_region_is_reported() {
    let b = blob("golden/nvme-msix-moved.toml");
    let p = PersonaRef::parse(&b).unwrap();
    let mut phys = dump("nvme-guest.bin");
    let view = render(&p, &mut phys);
    let m = live::compare(&p, &view[..256]);
    assert!(m.contains(&Mismatch::RegionSize {
        region: 256,
        persona: 4096
    }));
}

#[test]
fn descriptor_round_trip_and_rejections() {
    let b = blob("golden/edu-identity.toml");
    let d = live::encode_descriptor(&b);
    assert_eq!(&d[..8], b"PVPDESC1");
    assert_eq!(d.len(), 48 + b.len());
    let got = live::parse_descriptor(&d, d.len() as u64).unwrap();
    assert_eq!(got.blob, b);
    assert_eq!(got.digest, Sha256::digest(&b));
    assert_eq!(
        render::hex(&got.digest),
        render::hex(&PersonaRef::parse(&b).unwrap().digest())
    );

    let n = d.len() as u64;
    let l = d.len();
    // (byte to flip or length to keep, region size, expected reason)
    let cases: [(&str, usize, u64, &str); 7] = [
        ("flip", 0, n, "magic"),
        ("flip", 8, n, "version"),
        ("flip", 20, n, "digest"),
        ("flip", l - 1, n, "digest"),
        ("flip", usize::MAX, n + 4, "region size"),
        ("keep", 100, n, "runs past"),
        ("keep", 20, 20, "header"),
    ];
    for (how, at, size, want) in cases {
        let mut x = d.clone();
        match how {
            "flip" if at < x.len() => x[at] ^= 0x02,
            "keep" => x.truncate(at),
            _ => {}
        }
        let e = live::parse_descriptor(&x, size).unwrap_err();
        assert!(e.contains(want), "{want}: {e}");
    }
    // A consistent descriptor around an invalid blob.
    let mut junk = b.clone();
    junk[9] ^= 0xff;
    let dj = live::encode_descriptor(&junk);
    let e = live::parse_descriptor(&dj, dj.len() as u64).unwrap_err();
    assert!(e.contains("invalid"), "{e}");
}

fn view(config: Vec<u8>, published: Option<&[u8]>) -> LiveView {
    LiveView {
        bdf: "0000:01:00.0".into(),
        cdev: "vfio0".into(),
        config,
        descriptor: published.map(|b| {
            let d = live::encode_descriptor(b);
            live::parse_descriptor(&d, d.len() as u64)
        }),
        regions: Vec::new(),
    }
}

#[test]
fn check_view_uses_the_published_persona_and_flags_another() {
    let id = blob("golden/edu-identity.toml");
    let hid = blob("golden/edu-hidden-msi.toml");
    let p = PersonaRef::parse(&hid).unwrap();
    let mut phys = dump("edu-guest.bin");
    let cfg = render(&p, &mut phys);

    let c = livecmd::check_view(&view(cfg.clone(), Some(&hid)), None, None).unwrap();
    assert_eq!(c.persona, "edu-hidden-msi@1.0");
    assert!(c.descriptor.is_empty() && c.mismatches.is_empty());

    // Compared with another persona than the published one: both the descriptor and bytes.
    let c = livecmd::check_view(&view(cfg.clone(), Some(&hid)), Some(&id), None).unwrap();
    assert!(
        c.descriptor[0].contains("publishes edu-hidden-msi@1.0"),
        "{:?}",
        c.descriptor
    );
    assert!(!c.mismatches.is_empty());

    // No descriptor region: only with --persona, and then it is a reason.
    assert!(livecmd::check_view(&view(cfg.clone(), None), None, None).is_err());
    let c = livecmd::check_view(&view(cfg, None), Some(&hid), None).unwrap();
    assert!(c.mismatches.is_empty());
    assert_eq!(c.descriptor.len(), 1);
}

#[test]
fn bdfs() {
    assert_eq!(live::normalize_bdf("01:00.0").unwrap(), "0000:01:00.0");
    assert_eq!(live::normalize_bdf("0000:0A:1f.7").unwrap(), "0000:0a:1f.7");
    for bad in [
        "",
        "1:00.0",
        "01:00",
        "01:20.0",
        "01:00.8",
        "0000:01:00.0.1",
        "x0:00.0",
        "../x",
    ] {
        assert!(live::normalize_bdf(bad).is_err(), "{bad}");
    }
}

#[test]
fn access_steps() {
    assert_eq!(
        live::parse_op("r:0x40").unwrap(),
        Op::Read {
            offset: 0x40,
            size: 4
        }
    );
    assert_eq!(
        live::parse_op("r:6:2").unwrap(),
        Op::Read { offset: 6, size: 2 }
    );
    assert_eq!(
        live::parse_op("w:0x4:2:0x0107").unwrap(),
        Op::Write {
            offset: 4,
            size: 2,
            value: 0x107
        }
    );
    assert_eq!(live::parse_op("reset").unwrap(), Op::Reset);
    assert_eq!(live::parse_op("size:2").unwrap(), Op::Size { region: 2 });
    assert_eq!(
        live::parse_op("br:2:0x1000000:4").unwrap(),
        Op::RegionRead {
            region: 2,
            offset: 0x100_0000,
            size: 4
        }
    );
    assert_eq!(
        live::parse_op("bw:0:8:8:0x1122").unwrap(),
        Op::RegionWrite {
            region: 0,
            offset: 8,
            size: 8,
            value: 0x1122
        }
    );
    assert_eq!(
        live::parse_op("mmap:2:0:0x1000").unwrap(),
        Op::Mmap {
            region: 2,
            offset: 0,
            len: 0x1000
        }
    );
    assert_eq!(
        live::parse_op("ioeventfd:0:4:4").unwrap(),
        Op::Ioeventfd {
            region: 0,
            offset: 4,
            size: 4
        }
    );
    for bad in ["br:2:0:3", "bw:2:0:4", "mmap:x:0:1", "size"] {
        assert!(live::parse_op(bad).is_err(), "{bad}");
    }
    assert_eq!(
        live::parse_op("sh:cat a:b").unwrap(),
        Op::Shell("cat a:b".into())
    );
    for bad in [
        "r",
        "r:x",
        "r:0:3",
        "r:4094:4",
        "w:0:1:0x100",
        "w:0:2",
        "x:0",
        "w:0:4:1:2",
    ] {
        assert!(live::parse_op(bad).is_err(), "{bad}");
    }
}

#[test]
fn selectors_and_attribute() {
    for ok in ["auto", "edu-identity@1.0", "a.b_c:d@65535.0"] {
        live::check_selector(ok).unwrap();
    }
    for bad in [
        "",
        "edu",
        "edu@1",
        "edu@1.x",
        "@1.0",
        "a/b@1.0",
        "e@65536.0",
        "e@1.0 x",
    ] {
        assert!(live::check_selector(bad).is_err(), "{bad}");
    }
    let d = "ab".repeat(32);
    let (sel, dig) = live::parse_persona_attr(&format!("edu@1.0 {d}\n")).unwrap();
    assert_eq!(sel, "edu@1.0");
    assert_eq!(dig, [0xab; 32]);
    assert!(live::parse_persona_attr("edu@1.0").is_none());
    assert!(live::parse_persona_attr(&format!("edu@1.0 {d} x")).is_none());
    assert!(live::parse_persona_attr("edu@1.0 abc").is_none());
}

#[test]
fn hexdump_rows() {
    let h = render::hexdump(&[0u8; 20]);
    assert_eq!(h.lines().count(), 2);
    assert!(h.starts_with("000: 00 00"));
    assert!(h
        .lines()
        .nth(1)
        .unwrap()
        .starts_with("010: 00 00 00 00\n".trim_end()));
}

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("vfio-persona").chain(args.iter().copied()))
}

#[test]
fn live_arguments() {
    match parse(&["check", "--live", "01:00.0"]).unwrap().cmd {
        Cmd::Check(a) => {
            assert_eq!(a.live.as_deref(), Some("01:00.0"));
            assert!(a.persona.is_none() && a.live_persona.is_none());
        }
        c => panic!("{c:?}"),
    }
    let c = parse(&["check", "--live", "01:00.0", "--persona", "x.bin", "--json"]).unwrap();
    assert!(c.json);
    match c.cmd {
        Cmd::Check(a) => {
            assert_eq!(a.live_persona.as_deref(), Some(Path::new("x.bin")));
        }
        c => panic!("{c:?}"),
    }
    assert!(matches!(
        parse(&["check", "p.toml", "d.bin"]).unwrap().cmd,
        Cmd::Check(_)
    ));
    // Offline and live do not mix; --persona needs --live; offline needs both files.
    assert!(parse(&["check", "p.toml", "d.bin", "--live", "01:00.0"]).is_err());
    let c = parse(&["check", "--persona", "x.bin", "p.toml", "d.bin"]);
    assert!(c.is_err() || cli::run(&c.unwrap()).is_err());
    assert!(parse(&["check", "p.toml"]).is_err());

    assert!(matches!(
        parse(&["dump", "--live", "01:00.0", "--json"]).unwrap().cmd,
        Cmd::Dump(_)
    ));
    assert!(parse(&["dump"]).is_err());

    match parse(&["bind", "01:00.0", "--persona", "auto"])
        .unwrap()
        .cmd
    {
        Cmd::Bind {
            bdf,
            persona,
            driver,
        } => {
            assert_eq!(bdf, "01:00.0");
            assert_eq!(persona.as_deref(), Some("auto"));
            assert_eq!(driver, "persona-vfio-pci");
        }
        c => panic!("{c:?}"),
    }
    assert!(parse(&["bind"]).is_err());
    assert!(parse(&["access", "--live", "01:00.0"]).is_err());
    assert!(matches!(
        parse(&["access", "--live", "01:00.0", "r:0", "reset"])
            .unwrap()
            .cmd,
        Cmd::Access { .. }
    ));
}

#[test]
fn live_commands_fail_cleanly_without_devices() {
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_vfio-persona"))
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        (o.status.code(), err)
    };
    // A PCI address no machine has.
    for args in [
        &["dump", "--live", "ffff:ff:1f.7"][..],
        &["check", "--live", "ffff:ff:1f.7"],
        &["bind", "ffff:ff:1f.7"],
        &["access", "--live", "ffff:ff:1f.7", "r:0"],
    ] {
        let (code, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}");
        assert!(
            err.contains("no PCI function ffff:ff:1f.7"),
            "{args:?}: {err}"
        );
    }
    let (code, err) = run(&["bind", "nonsense"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("not a PCI address"), "{err}");
    let (code, err) = run(&["bind", "00:00.0", "--persona", "edu"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("NAME@MAJOR.MINOR"), "{err}");
    let (code, _) = run(&["access", "--live", "00:00.0", "q:1"]);
    assert_eq!(code, Some(2));
}
