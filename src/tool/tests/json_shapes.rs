//! `--json` on every command, and the documented shape (src/tool/README.md, "JSON output") is
//! the printed one: for each command that runs on the host, the document's top-level keys and
//! their types are exactly the documented ones. The live commands (capture, dump, check --live,
//! bind, access) need a device; their shapes are checked in the guest's persona suite only as far
//! as it uses them, and here only that they accept --json.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{CommandFactory as _, Parser as _};
use persona_core::mig::records::config;
use persona_core::mig::stream::{DeviceKind, Identity, PersonaId, Record, Writer};
use serde_json::Value;
use vfio_persona::args::Cli;

fn personas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/personas")
}

/// The documented shapes: command heading -> key -> allowed types.
fn documented() -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let body = doc
        .split("## JSON output")
        .nth(1)
        .expect("a JSON output section");
    let mut all = BTreeMap::new();
    let mut cur: Option<String> = None;
    for line in body.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            cur = Some(h.trim().to_string());
            all.insert(h.trim().to_string(), BTreeMap::new());
        } else if let (Some(c), Some(item)) = (&cur, line.strip_prefix("- ")) {
            let (key, rest) = item.split_once(':').expect("key: type");
            let ty = rest.split_whitespace().next().unwrap_or("");
            all.get_mut(c).unwrap().insert(
                key.trim().to_string(),
                ty.split('|').map(str::to_string).collect(),
            );
        }
    }
    all
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "obj",
    }
}

/// Runs the tool in tests/personas with --json; returns the exit code and the parsed document.
fn run_json(args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_vfio-persona"))
        .current_dir(personas())
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

fn assert_shape(doc: &BTreeMap<String, BTreeMap<String, Vec<String>>>, cmd: &str, v: &Value) {
    let want = doc
        .get(cmd)
        .unwrap_or_else(|| panic!("README.md documents no JSON shape for {cmd}"));
    let obj = v.as_object().expect("a JSON object");
    let got: Vec<&String> = obj.keys().collect();
    let wanted: Vec<&String> = want.keys().collect();
    assert_eq!(got, wanted, "{cmd}: printed keys vs documented keys");
    for (k, types) in want {
        let t = type_of(&obj[k]);
        assert!(
            types.iter().any(|x| x == t),
            "{cmd}: key {k} is {t}, documented {types:?}"
        );
    }
}

#[test]
fn every_command_accepts_json() {
    let mut cmd = Cli::command();
    cmd.build();
    let doc = documented();
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = sub.get_name();
        assert!(
            sub.get_arguments().any(|a| a.get_long() == Some("json")),
            "{name} has no --json"
        );
        assert!(
            doc.contains_key(name),
            "README.md documents no JSON shape for {name}"
        );
    }
    // The flag is global: before or after the command's own arguments.
    assert!(
        Cli::try_parse_from(["vfio-persona", "--json", "show", "x"])
            .unwrap()
            .json
    );
    assert!(
        Cli::try_parse_from(["vfio-persona", "bind", "01:00.0", "--json"])
            .unwrap()
            .json
    );
    assert!(
        Cli::try_parse_from([
            "vfio-persona",
            "access",
            "--live",
            "01:00.0",
            "r:0",
            "--json"
        ])
        .unwrap()
        .json
    );
}

#[test]
fn offline_documents_match_their_documented_shape() {
    let doc = documented();
    let tmp = std::env::temp_dir().join(format!("pvp-json-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let t = |n: &str| tmp.join(n).to_str().unwrap().to_string();

    let (c, v) = run_json(&["show", "nvme-pasid.toml"]);
    assert_eq!(c, 0);
    assert_shape(&doc, "show", &v);
    let (c, v) = run_json(&["map", "nvme-pasid.toml"]);
    assert_eq!(c, 0);
    assert_shape(&doc, "map", &v);
    let (c, v) = run_json(&["diff", "nvme-identity.toml", "nvme-pasid.toml"]);
    assert_eq!(c, 1);
    assert_shape(&doc, "diff", &v);
    let (c, v) = run_json(&["check", "edu-identity.toml", "dumps/edu.dump"]);
    assert_eq!(c, 0);
    assert_shape(&doc, "check", &v);
    let (c, v) = run_json(&["compile", "edu-identity.toml", "-o", &t("")]);
    assert_eq!(c, 0);
    assert_shape(&doc, "compile", &v);
    assert_eq!(v["selector"], "edu-identity@1.0");
    assert!(tmp.join("edu-identity@1.0.bin").is_file());
    let (c, v) = run_json(&["derive", "dumps/edu.dump", "-o", &t("d.toml")]);
    assert_eq!(c, 0);
    assert_shape(&doc, "derive", &v);
    assert_shape(&doc, "show", &v["persona"]);
    assert!(tmp.join("d.toml").is_file());
    let (c, v) = run_json(&["derive", "dumps/edu.dump"]);
    assert_eq!(c, 0);
    assert!(v["output"].is_null());
    // A stream with a config record and a record the decoder does not know (skipped), as a
    // source writes it.
    let id = Identity {
        kind: DeviceKind::EDU,
        persona: PersonaId::new(b"edu-identity", 1 << 16, [0xab; 32]).unwrap(),
    };
    let regs = [0u8; config::LEN];
    let recs = [
        Record {
            tag: config::TAG,
            mandatory: true,
            payload: &regs,
        },
        Record {
            tag: 0x7777,
            mandatory: false,
            payload: &[1, 2, 3],
        },
    ];
    let mut w = Writer::new(&id);
    let mut buf = vec![0u8; 8192];
    let n = w.fill(recs.as_slice(), &mut buf).unwrap();
    assert!(w.is_done());
    std::fs::write(tmp.join("s.bin"), &buf[..n]).unwrap();
    let (c, v) = run_json(&["inspect-stream", &t("s.bin")]);
    assert_eq!(c, 0);
    assert_shape(&doc, "inspect-stream", &v);
    assert_eq!(v["records"].as_array().map(Vec::len), Some(2));

    // capture reads sysfs; on a host with a PCI function and root (all of config space), its
    // document is checked too.
    let first = std::fs::read_dir("/sys/bus/pci/devices")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned());
    if let Some(bdf) = first {
        let out = Command::new(env!("CARGO_BIN_EXE_vfio-persona"))
            .args(["capture", &bdf, "-o", &t("c.dump"), "--json"])
            .output()
            .unwrap();
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_shape(&doc, "capture", &v);
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
