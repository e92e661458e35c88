//! The example personas and dumps in tests/personas: dumps match their generator, every
//! example compiles, round-trips through text, and checks/diffs as its comments say; the
//! binary's exit codes.

use std::path::{Path, PathBuf};
use std::process::Command;

use persona_core::persona::device::BarKind;
use persona_core::persona::{BarInfo, DeviceView, PersonaModel, PersonaRef, NBARS};
use vfio_persona::{input, synth, text};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/personas")
}

fn blob(name: &str) -> Vec<u8> {
    input::load_blob(&dir().join(name)).unwrap()
}

#[test]
fn dumps_match_generator() {
    for (name, data) in synth::all() {
        let path = dir().join("dumps").join(name);
        if std::env::var_os("PERSONA_REGEN").is_some() {
            std::fs::write(&path, &data).unwrap();
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            data,
            "{name}: run PERSONA_REGEN=1 cargo test -p vfio-persona"
        );
    }
}

#[test]
fn examples_compile_and_round_trip() {
    let mut n = 0;
    for e in std::fs::read_dir(dir()).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        n += 1;
        let b = input::load_blob(&path).unwrap();
        let p = PersonaRef::parse(&b).unwrap();
        let t = text::write(&p);
        let mut m = Box::<PersonaModel>::default();
        text::parse(&t, &mut m).unwrap();
        assert_eq!(text::encode(&m).unwrap(), b, "{}", path.display());
    }
    assert!(n >= 6);
}

#[test]
fn derive_reproduces_identity_examples() {
    let bin = env!("CARGO_BIN_EXE_vfio-persona");
    for (dump, name, extra) in [
        ("edu.dump", "edu-identity", &[][..]),
        ("nvme.dump", "nvme-identity", &[][..]),
        ("nvme.dump", "nvme-pasid", &["--pasid", "16"][..]),
        ("edu-guest.dump", "edu-identity", &[][..]),
    ] {
        let out = Command::new(bin)
            .args(["derive", "--binary", "--name", name])
            .args(extra)
            .arg(dir().join("dumps").join(dump))
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, blob(&format!("{name}.toml")), "{name}");
    }
}

fn run(args: &[&str]) -> i32 {
    let out = Command::new(env!("CARGO_BIN_EXE_vfio-persona"))
        .current_dir(dir())
        .args(args)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{args:?}"
    );
    out.status.code().unwrap()
}

#[test]
fn exit_codes() {
    assert_eq!(run(&["check", "edu-identity.toml", "dumps/edu.dump"]), 0);
    assert_eq!(run(&["check", "edu-as-11e9.toml", "dumps/edu.dump"]), 0);
    assert_eq!(run(&["check", "edu-no-msi.toml", "dumps/edu.dump"]), 0);
    assert_eq!(
        run(&["check", "nvme-msix-at-c0.toml", "dumps/nvme.dump"]),
        0
    );
    assert_eq!(run(&["check", "nvme-pasid.toml", "dumps/nvme.dump"]), 0);
    assert_eq!(
        run(&[
            "check",
            "nvme-pasid.toml",
            "dumps/nvme.dump",
            "--iommu-pasid-bits",
            "8"
        ]),
        1
    );
    assert_eq!(run(&["check", "edu-identity.toml", "dumps/nvme.dump"]), 1);
    // A raw config dump has no BAR sizes: a reason, exit 1.
    assert_eq!(run(&["check", "edu-identity.toml", "dumps/edu.config"]), 1);
    assert_eq!(
        run(&["diff", "nvme-identity.toml", "nvme-identity.toml"]),
        0
    );
    assert_eq!(run(&["diff", "nvme-identity.toml", "nvme-pasid.toml"]), 1);
    assert_eq!(
        run(&["diff", "nvme-identity.toml", "nvme-msix-at-c0.toml"]),
        1
    );
    assert_eq!(run(&["diff", "edu-identity.toml", "edu-as-11e9.toml"]), 1);
    assert_eq!(run(&["diff", "edu-identity.toml", "edu-no-msi.toml"]), 1);
    assert_eq!(run(&["show", "nvme-pasid.toml", "--json"]), 0);
    // Bad input and usage: 2.
    assert_eq!(run(&["show", "dumps/edu.config"]), 2);
    assert_eq!(run(&["show", "does-not-exist"]), 2);
    assert_eq!(run(&["check", "edu-identity.toml", "README.md"]), 2);
    assert_eq!(run(&["derive", "dumps/edu.dump", "--pasid"]), 2);
    assert_eq!(
        run(&["derive", "dumps/nvme.dump", "--pasid-offset", "0x102"]),
        2
    );
    // A raw config dump cannot be derived from: no BAR sizes.
    assert_eq!(run(&["derive", "dumps/edu.config"]), 2);
    assert_eq!(run(&["frobnicate"]), 2);
    assert_eq!(run(&["derive"]), 2);
}

#[test]
fn truncated_and_corrupt_blobs_exit_2() {
    let b = blob("nvme-pasid.toml");
    let tmp = std::env::temp_dir().join(format!("persona-trunc-{}", std::process::id()));
    for n in [8usize, 71, 72, 100, 183, 184, b.len() - 1] {
        std::fs::write(&tmp, &b[..n]).unwrap();
        assert_eq!(run(&["show", tmp.to_str().unwrap()]), 2, "prefix {n}");
    }
    let mut c = b.clone();
    c[0x30] = 0x01; // a control byte in the name padding
    std::fs::write(&tmp, &c).unwrap();
    assert_eq!(run(&["show", tmp.to_str().unwrap()]), 2);
    let _ = std::fs::remove_file(&tmp);
}

#[test]
fn pasid_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_vfio-persona"))
        .current_dir(dir())
        .args(["show", "--json", "nvme-pasid.toml"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pasid"]["offset"], 0xff8);
    assert_eq!(v["pasid"]["width"], 16);
    let out = Command::new(env!("CARGO_BIN_EXE_vfio-persona"))
        .current_dir(dir())
        .args(["show", "--json", "edu-identity.toml"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["pasid"].is_null());
}

/// Runs the binary in a temporary directory; returns exit code and stdout.
fn run_out(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vfio-persona"))
        .current_dir(dir())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn write_dump(name: &str, config: &[u8], bars: &[BarInfo; NBARS]) -> String {
    let mut out = vec![0u8; 0x80 + config.len()];
    let n = DeviceView::encode_dump(config, bars, &mut out).unwrap();
    let p = std::env::temp_dir().join(format!("persona-{}-{name}", std::process::id()));
    std::fs::write(&p, &out[..n]).unwrap();
    p.to_str().unwrap().to_string()
}

/// Every rule round-trips through derive, compile, show and check; a dump differing in a
/// pinned bit, a BAR size or type, the ROM, or carrying a capability the persona lacks fails
/// `check` with a reason naming it; a larger BAR passes.
#[test]
fn derive_compile_show_check_and_refusals() {
    let tmp = std::env::temp_dir();
    let pid = std::process::id();
    let config = synth::nvme();
    let mut bars = synth::bars(&config);
    bars[6] = BarInfo {
        size: 0x10000,
        kind: BarKind::Mem32,
        prefetch: false,
    };
    let base = write_dump("base", &config, &bars);
    let toml = tmp.join(format!("persona-{pid}.toml"));
    let bin = tmp.join(format!("persona-{pid}.bin"));
    let (t, b) = (toml.to_str().unwrap(), bin.to_str().unwrap());
    assert_eq!(run(&["derive", &base, "-o", t]), 0);
    assert_eq!(run(&["compile", t, "-o", b]), 0);
    let (rc, shown) = run_out(&["show", "--text", b]);
    assert_eq!(rc, 0);
    for rule in [
        "\"pinned\"",
        "\"dynamic\"",
        "\"hidden\"",
        "[[bar]]",
        "rom-size = 0x10000",
    ] {
        assert!(shown.contains(rule), "{rule} missing");
    }
    assert_eq!(std::fs::read_to_string(&toml).unwrap(), shown);
    let (rc, out) = run_out(&["check", b, &base]);
    assert_eq!((rc, out.trim()), (0, "ok"));
    let parity = tmp.join(format!("persona-{pid}-parity.toml"));
    assert_eq!(
        run(&["derive", "--parity", &base, "-o", parity.to_str().unwrap()]),
        0
    );
    assert_eq!(run(&["check", parity.to_str().unwrap(), &base]), 0);

    let refused = |name: &str, cfg: &[u8], bars: &[BarInfo; NBARS], want: &str| {
        let d = write_dump(name, cfg, bars);
        let (rc, out) = run_out(&["check", b, &d]);
        assert_eq!(rc, 1, "{name}: {out}");
        assert!(out.contains(want), "{name}: {want:?} not in {out}");
        let _ = std::fs::remove_file(d);
    };
    let mut c = config.clone();
    c[0x42] = 0x04;
    refused(
        "msix",
        &c,
        &bars,
        "0x042 MSI-X message control of the standard MSI-X capability 0x11 (device offset 0x042): device 0x0004, persona 0x003f",
    );
    let mut c = config.clone();
    c[0x84] ^= 0x01;
    refused("devcap", &c, &bars, "device capabilities");
    let mut c = config.clone();
    c[0x2e] ^= 0x01;
    refused("subsys", &c, &bars, "0x02e subsystem ID");
    let mut small = bars;
    small[0].size = 8 << 10;
    refused(
        "bar-size",
        &config,
        &small,
        "BAR 0: device has mem64 0x2000 bytes",
    );
    let mut other = bars;
    other[0].prefetch = true;
    refused(
        "bar-type",
        &config,
        &other,
        "BAR 0: device has mem64 prefetchable",
    );
    let mut norom = bars;
    norom[6] = BarInfo::default();
    refused("rom", &config, &norom, "ROM: device has unused");
    let mut c = config.clone();
    c[0x100..0x104].copy_from_slice(&0x0001_000fu32.to_le_bytes());
    refused(
        "ats",
        &c,
        &bars,
        "the device has the extended ATS capability 0xf (instance 0) at 0x100",
    );
    let mut large = bars;
    large[0].size = 1 << 20;
    large[6].size = 1 << 20;
    let d = write_dump("large", &config, &large);
    assert_eq!(run_out(&["check", b, &d]), (0, "ok\n".into()));
    let (rc, out) = run_out(&["check", b, "dumps/nvme.config"]);
    assert_eq!(rc, 1);
    assert!(out.contains("BAR sizes are unknown"), "{out}");
    for f in [toml, bin, parity] {
        let _ = std::fs::remove_file(f);
    }
    let _ = std::fs::remove_file(base);
    let _ = std::fs::remove_file(d);
}

/// The text-format README's field table is the core's (regenerate with PERSONA_REGEN=1).
#[test]
fn readme_field_table_in_sync() {
    let path = dir().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (begin, end) = ("<!-- fields:begin -->\n", "<!-- fields:end -->");
    let a = readme.find(begin).expect("fields:begin marker") + begin.len();
    let z = readme.find(end).expect("fields:end marker");
    let table = text::field_table_markdown();
    if std::env::var_os("PERSONA_REGEN").is_some() {
        let new = format!("{}{}{}", &readme[..a], table, &readme[z..]);
        std::fs::write(&path, new).unwrap();
        return;
    }
    assert_eq!(
        &readme[a..z],
        table,
        "run PERSONA_REGEN=1 cargo test -p vfio-persona"
    );
}
