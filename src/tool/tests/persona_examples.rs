//! The example personas and dumps in tests/personas: dumps match their generator, every
//! example compiles, round-trips through text, and checks/diffs as its comments say; the
//! binary's exit codes.

use std::path::{Path, PathBuf};
use std::process::Command;

use persona_core::persona::{PersonaModel, PersonaRef};
use vfio_persona::{cli, synth, text};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/personas")
}

fn blob(name: &str) -> Vec<u8> {
    cli::load_blob(&dir().join(name)).unwrap()
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
        let b = cli::load_blob(&path).unwrap();
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
        ("edu.config", "edu-identity", &[][..]),
        ("nvme.config", "nvme-identity", &[][..]),
        ("nvme.config", "nvme-pasid", &["--pasid", "16"][..]),
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
    assert_eq!(run(&["check", "edu-identity.toml", "dumps/edu.config"]), 0);
    assert_eq!(run(&["check", "edu-as-11e9.toml", "dumps/edu.config"]), 0);
    assert_eq!(run(&["check", "edu-no-msi.toml", "dumps/edu.config"]), 0);
    assert_eq!(
        run(&["check", "nvme-msix-at-c0.toml", "dumps/nvme.config"]),
        0
    );
    assert_eq!(run(&["check", "nvme-pasid.toml", "dumps/nvme.config"]), 0);
    assert_eq!(
        run(&[
            "check",
            "nvme-pasid.toml",
            "dumps/nvme.config",
            "--iommu-pasid-bits",
            "8"
        ]),
        1
    );
    assert_eq!(run(&["check", "edu-identity.toml", "dumps/nvme.config"]), 1);
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
    assert_eq!(run(&["derive", "dumps/edu.config", "--pasid"]), 2);
    assert_eq!(
        run(&["derive", "dumps/nvme.config", "--pasid-offset", "0x102"]),
        2
    );
    assert_eq!(run(&["frobnicate"]), 2);
    assert_eq!(run(&["derive"]), 2);
}

#[test]
fn truncated_and_corrupt_blobs_exit_2() {
    let b = blob("nvme-pasid.toml");
    let tmp = std::env::temp_dir().join(format!("persona-trunc-{}", std::process::id()));
    for n in [8usize, 71, 72, 100, b.len() - 1] {
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
