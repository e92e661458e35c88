//! The ABI document (src/core/ABI/testing/*) and the code agree: every layout table's fields
//! (name, offset, size) are where the core's encoders write them, cover the layout without gap
//! or overlap, and every documented constant is the core's value. A field or constant the code
//! has and the document lacks fails too.

// Tests may panic: that is how they fail.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::collections::BTreeMap;
use std::path::Path;

use persona_core::mig::checksum::checksum;
use persona_core::mig::records::{config, edu, edu::EduRecord};
use persona_core::mig::stream::{
    self, DeviceKind, Identity, PersonaId, Record, Writer, FLAG_MANDATORY, TAG_END,
};
use persona_core::persona::{descriptor, MAX_EMULATED};

/// One row of a layout table: offset, size (`None` for "n"), field name.
#[derive(Debug, Clone)]
struct Field {
    offset: usize,
    size: Option<usize>,
    name: String,
}

/// Tables of the ABI files: "layout: NAME" -> fields, "constants: NAME" -> name -> value text.
#[derive(Default)]
struct Doc {
    layouts: BTreeMap<String, Vec<Field>>,
    constants: BTreeMap<String, BTreeMap<String, String>>,
}

fn num(s: &str) -> Option<usize> {
    match s.strip_prefix("0x") {
        Some(h) => usize::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Reads every "(layout: X)" and "(constants: X)" table of the files in ABI/testing.
fn read_doc() -> Doc {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ABI/testing");
    let mut doc = Doc::default();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i].trim();
            let tag = |key: &str| {
                l.find(&format!("({key}: ")).map(|p| {
                    l[p + key.len() + 3..]
                        .trim_end_matches("):")
                        .trim_end_matches(')')
                        .to_string()
                })
            };
            let (layout, consts) = (tag("layout"), tag("constants"));
            if layout.is_none() && consts.is_none() {
                i += 1;
                continue;
            }
            // An RST simple table: rule, heading, rule, rows, rule.
            let mut rules = 0;
            i += 1;
            let mut rows = Vec::new();
            while i < lines.len() && rules < 3 {
                let t = lines[i].trim();
                if t.starts_with("===") {
                    rules += 1;
                } else if rules == 2 && !t.is_empty() {
                    rows.push(t.to_string());
                }
                i += 1;
            }
            assert_eq!(rules, 3, "{}: unterminated table after {l:?}", f.display());
            if let Some(name) = layout {
                let mut fields = Vec::new();
                for r in rows {
                    let c: Vec<&str> = r.split_whitespace().collect();
                    // Continuation lines of the meaning column start with a word, not a number.
                    let Some(offset) = num(c[0]) else { continue };
                    let size = if c[1] == "n" {
                        None
                    } else {
                        Some(num(c[1]).unwrap())
                    };
                    fields.push(Field {
                        offset,
                        size,
                        name: c[2].to_string(),
                    });
                }
                assert!(
                    doc.layouts.insert(name.clone(), fields).is_none(),
                    "layout {name} twice"
                );
            } else if let Some(name) = consts {
                let m = rows
                    .iter()
                    .map(|r| {
                        let c: Vec<&str> = r.split_whitespace().collect();
                        (c[0].to_string(), c[1].to_string())
                    })
                    .collect();
                assert!(
                    doc.constants.insert(name.clone(), m).is_none(),
                    "constants {name} twice"
                );
            }
        }
    }
    doc
}

/// Checks a documented layout against `bytes` written by the code, where `want` gives each
/// field's expected bytes (by name) and `len` the layout's length (variable-size fields run to
/// the end).
fn check_layout(doc: &Doc, name: &str, bytes: &[u8], want: &[(&str, Vec<u8>)], len: usize) {
    let fields = doc
        .layouts
        .get(name)
        .unwrap_or_else(|| panic!("the ABI document has no layout {name}"));
    let documented: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    let coded: Vec<&str> = want.iter().map(|w| w.0).collect();
    assert_eq!(documented, coded, "{name}: documented fields vs the code's");
    let mut at = 0;
    for (f, (_, w)) in fields.iter().zip(want) {
        assert_eq!(
            f.offset, at,
            "{name}.{}: documented at {}, the previous field ends at {at}",
            f.name, f.offset
        );
        let size = f.size.unwrap_or(w.len());
        assert_eq!(
            size,
            w.len(),
            "{name}.{}: documented size {size}, the code writes {}",
            f.name,
            w.len()
        );
        assert_eq!(
            &bytes[at..at + size],
            &w[..],
            "{name}.{}: the bytes at {at}..{} are not the field",
            f.name,
            at + size
        );
        at += size;
    }
    assert_eq!(
        at, len,
        "{name}: the fields cover {at} bytes, the code's layout is {len}"
    );
}

fn le32(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}
fn le64(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

#[test]
fn descriptor_region() {
    let doc = read_doc();
    let blob = b"a persona blob of 29 bytes...";
    let digest: [u8; 32] = core::array::from_fn(|i| 0xd0 ^ i as u8);
    let head = descriptor::header(blob.len(), &digest).unwrap();
    let mut region = head.to_vec();
    region.extend_from_slice(blob);
    assert_eq!(region.len(), descriptor::region_len(blob.len()));
    check_layout(
        &doc,
        "descriptor",
        &region,
        &[
            ("magic", descriptor::MAGIC.to_vec()),
            ("version", le32(descriptor::VERSION)),
            ("blob_length", le32(blob.len() as u32)),
            ("digest", digest.to_vec()),
            ("blob", blob.to_vec()),
        ],
        region.len(),
    );
    let c = &doc.constants["descriptor"];
    let want = [
        ("SUBTYPE", format!("{:#x}", descriptor::SUBTYPE)),
        (
            "MAGIC",
            String::from_utf8(descriptor::MAGIC.to_vec()).unwrap(),
        ),
        ("VERSION", descriptor::VERSION.to_string()),
        ("HEADER_LEN", descriptor::HEADER_LEN.to_string()),
    ];
    check_constants("descriptor", c, &want);
}

fn check_constants(name: &str, doc: &BTreeMap<String, String>, want: &[(&str, String)]) {
    let documented: Vec<&String> = doc.keys().collect();
    let mut coded: Vec<String> = want.iter().map(|w| w.0.to_string()).collect();
    coded.sort();
    assert_eq!(
        documented,
        coded.iter().collect::<Vec<_>>(),
        "{name}: documented constants vs the code's"
    );
    for (k, v) in want {
        let d = &doc[*k];
        let same = match (num(d), num(v)) {
            (Some(a), Some(b)) => a == b,
            _ => d == v,
        };
        assert!(same, "{name}.{k}: documented {d}, the code has {v}");
    }
}

#[test]
fn migration_stream_and_records() {
    let doc = read_doc();
    let digest: [u8; 32] = core::array::from_fn(|i| 0x40 + i as u8);
    let id = Identity {
        kind: DeviceKind(0x0102),
        persona: PersonaId::new(b"abi-doc", 0x0003_0004, digest).unwrap(),
    };
    let payload = [0xa5u8; 5];
    let recs = [Record {
        tag: 0x5566_7788,
        mandatory: true,
        payload: &payload,
    }];
    let mut w = Writer::new(&id);
    let mut s = vec![0u8; 4096];
    let mut n = 0;
    loop {
        let k = w.fill(recs.as_slice(), &mut s[n..]).unwrap();
        if k == 0 {
            break;
        }
        n += k;
    }
    s.truncate(n);

    let mut name = b"abi-doc".to_vec();
    name.resize(stream::NAME_MAX, 0);
    check_layout(
        &doc,
        "stream-header",
        &s,
        &[
            ("magic", stream::MAGIC.to_vec()),
            (
                "format_version",
                stream::FORMAT_VERSION.to_le_bytes().to_vec(),
            ),
            (
                "header_length",
                (stream::HEADER_LEN as u16).to_le_bytes().to_vec(),
            ),
            ("device_kind", 0x0102u16.to_le_bytes().to_vec()),
            ("header_flags", vec![0, 0]),
            ("persona_version", le32(0x0003_0004)),
            ("name_length", vec![7]),
            ("reserved", vec![0; 3]),
            ("persona_digest", digest.to_vec()),
            ("persona_name", name),
        ],
        stream::HEADER_LEN,
    );
    let rec = &s[stream::HEADER_LEN..];
    let rec_want = [
        ("tag", le32(0x5566_7788)),
        ("flags", le32(FLAG_MANDATORY)),
        ("length", le64(payload.len() as u64)),
    ];
    check_layout(
        &doc,
        "record-header",
        rec,
        &rec_want,
        stream::RECORD_HEADER_LEN,
    );
    assert_eq!(&rec[stream::RECORD_HEADER_LEN..][..payload.len()], &payload);
    let end_at = stream::HEADER_LEN + stream::RECORD_HEADER_LEN + payload.len();
    let end = &s[end_at..];
    check_layout(
        &doc,
        "end-record",
        end,
        &[
            ("tag", le32(TAG_END)),
            ("flags", le32(FLAG_MANDATORY)),
            ("length", le64(8)),
            ("checksum", le64(checksum(&s[..s.len() - 8]))),
        ],
        stream::END_RECORD_LEN,
    );
    assert_eq!(s.len(), end_at + stream::END_RECORD_LEN);

    // Record 0x100: the registers, one byte per slot.
    let regs: [u8; config::LEN] = core::array::from_fn(|i| i as u8);
    let mut out = [0u8; config::LEN];
    config::ConfigRecord(&regs).encode(&mut out);
    check_layout(
        &doc,
        "config-record",
        &out,
        &[("registers", regs.to_vec())],
        config::LEN,
    );

    // Record 0x10001: every field a distinct value, so a swapped offset shows.
    let r = EduRecord {
        flags: 0x0000_0003,
        liveness: 0x1111_2222,
        fact: 0x0000_000c,
        status: 0x0000_0080,
        irq_status: 0x3333_4444,
        dma_cmd: 0x0000_0006,
        dma_src: 0x0123_4567,
        dma_dst: 0x0765_4321,
        dma_cnt: 0x0000_1000,
        held_cmd: 0x0000_0001,
    };
    let mut out = [0u8; edu::LEN];
    r.encode(&mut out);
    check_layout(
        &doc,
        "edu-record",
        &out,
        &[
            ("flags", le32(r.flags)),
            ("liveness", le32(r.liveness)),
            ("factorial", le32(r.fact)),
            ("status", le32(r.status)),
            ("irq_status", le32(r.irq_status)),
            ("dma_cmd", le32(r.dma_cmd)),
            ("dma_src", le64(r.dma_src)),
            ("dma_dst", le64(r.dma_dst)),
            ("dma_count", le64(r.dma_cnt)),
            ("held_cmd", le32(r.held_cmd)),
            ("reserved", le32(0)),
            ("reserved2", le64(0)),
        ],
        edu::LEN,
    );

    let want = [
        ("MAGIC", String::from_utf8(stream::MAGIC.to_vec()).unwrap()),
        ("FORMAT_VERSION", stream::FORMAT_VERSION.to_string()),
        ("HEADER_LEN", stream::HEADER_LEN.to_string()),
        ("NAME_MAX", stream::NAME_MAX.to_string()),
        ("RECORD_HEADER_LEN", stream::RECORD_HEADER_LEN.to_string()),
        ("END_RECORD_LEN", stream::END_RECORD_LEN.to_string()),
        ("FLAG_MANDATORY", FLAG_MANDATORY.to_string()),
        ("TAG_END", TAG_END.to_string()),
        ("TAG_CONFIG", format!("{:#x}", config::TAG)),
        ("CONFIG_LEN", config::LEN.to_string()),
        ("TAG_EDU", format!("{:#x}", edu::TAG)),
        ("EDU_LEN", edu::LEN.to_string()),
        ("KIND_EDU", edu::KIND.0.to_string()),
    ];
    check_constants("stream", &doc.constants["stream"], &want);
    assert_eq!(config::LEN, MAX_EMULATED);
}

#[test]
fn every_table_is_checked() {
    let doc = read_doc();
    let layouts: Vec<&String> = doc.layouts.keys().collect();
    assert_eq!(
        layouts,
        [
            "config-record",
            "descriptor",
            "edu-record",
            "end-record",
            "record-header",
            "stream-header"
        ]
    );
    let consts: Vec<&String> = doc.constants.keys().collect();
    assert_eq!(consts, ["descriptor", "stream"]);
}

#[test]
fn selector_name_length() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("ABI/testing/sysfs-bus-pci-drivers-persona-vfio-pci");
    let text = std::fs::read_to_string(f)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let at = text
        .find("Names are 1 to ")
        .expect("the attribute's name grammar");
    let n: usize = text[at + 15..].split(' ').next().unwrap().parse().unwrap();
    assert_eq!(
        n,
        persona_core::persona::MAX_NAME,
        "documented longest name vs MAX_NAME"
    );
}
