//! Rendering: personas, capabilities, BARs, diff and check reasons as text and JSON values, and
//! the byte helpers every command shares.

use persona_core::pci::Space;
use persona_core::persona::check::{BarText, CheckReason};
use persona_core::persona::device::ROM_INDEX;
use persona_core::persona::diff::{ByteDiff, DiffReason};
use persona_core::persona::{BarInfo, CapEntry, CapKind, IdField, PersonaRef};
use serde_json::{json, Value};

/// Lower-case hex of `b`, no separators.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A hexdump: `OFF: 16 bytes` per line.
pub fn hexdump(data: &[u8]) -> String {
    let mut s = String::new();
    for (i, row) in data.chunks(16).enumerate() {
        let bytes: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
        s.push_str(&format!("{:03x}: {}\n", i * 16, bytes.join(" ")));
    }
    s
}

/// `standard` or `extended`.
pub fn space_name(s: Space) -> &'static str {
    match s {
        Space::Standard => "standard",
        Space::Extended => "extended",
    }
}

/// JSON of one capability entry.
pub fn cap_json(e: &CapEntry) -> Value {
    let mut v = json!({
        "kind": e.kind.name(),
        "space": space_name(e.space),
        "id": e.id,
    });
    if matches!(e.kind, CapKind::Physical | CapKind::Hidden) {
        v["instance"] = json!(e.instance);
    }
    if e.space == Space::Extended {
        v["version"] = json!(e.version);
    }
    if e.kind.is_presented() {
        v["offset"] = json!(e.offset);
        v["length"] = json!(e.len);
    }
    if e.kind == CapKind::Pasid {
        v["width"] = json!(e.pasid_width);
        v["exec"] = json!(e.pasid_exec);
        v["privileged"] = json!(e.pasid_priv);
    }
    v
}

/// JSON of one BAR.
pub fn bar_json(b: &BarInfo) -> Value {
    json!({"kind": b.kind.name(), "size": b.size, "prefetchable": b.prefetch})
}

/// One-line description of a BAR: `mem64 prefetchable 0x4000 bytes`.
pub fn bar_text(b: &BarInfo) -> String {
    BarText(*b).to_string()
}

/// JSON description of a persona (what `show --json` prints).
pub fn persona_json(p: &PersonaRef<'_>) -> Value {
    let ids = p.ids();
    let v = p.version();
    let emulated: Vec<&str> = IdField::ALL
        .into_iter()
        .filter(|f| p.id_emulated(*f))
        .map(IdField::name)
        .collect();
    let runs: Vec<Value> = p
        .runs()
        .map(|r| {
            let mut j = json!({"start": r.start, "end": r.end(), "rule": r.rule.name()});
            if !r.value.is_empty() {
                j["value"] = json!(hex(r.value));
                j["mask"] = json!(hex(r.mask));
            }
            j
        })
        .collect();
    json!({
        "name": p.name(),
        "version": format!("{}.{}", v.major, v.minor),
        "digest": hex(&p.digest()),
        "config_size": p.config_size(),
        "blob_size": p.as_bytes().len(),
        "ids": {
            "vendor": ids.vendor,
            "device": ids.device,
            "revision": ids.revision,
            "class": ids.class,
            "subsystem_vendor": ids.subsystem_vendor,
            "subsystem_device": ids.subsystem_device,
            "emulated": emulated,
        },
        "bars": p.bars().iter().take(ROM_INDEX).map(bar_json).collect::<Vec<_>>(),
        "rom_size": p.rom_size(),
        "capabilities": p.caps().map(|e| cap_json(&e)).collect::<Vec<_>>(),
        "pasid": p.pasid().map(|x| json!({
            "offset": x.offset,
            "width": x.width,
            "exec": x.exec,
            "privileged": x.privileged,
        })),
        "emulated_bytes": p.emulated_len(),
        "runs": runs,
    })
}

/// Short description of a capability entry for diff lines.
pub fn cap_desc(e: &CapEntry) -> String {
    format!(
        "{} {} cap {:#x} at {:#05x}",
        e.kind.name(),
        space_name(e.space),
        e.id,
        e.offset
    )
}

/// One line for a diff reason.
pub fn diff_text(r: &DiffReason) -> String {
    match r {
        DiffReason::ConfigSize { a, b } => format!("config size {a} -> {b}"),
        DiffReason::Id { field, a, b } => format!("{} {a:#x} -> {b:#x}", field.name()),
        DiffReason::CapRemoved { cap } => format!("removed {}", cap_desc(cap)),
        DiffReason::CapAdded { cap } => format!("added {}", cap_desc(cap)),
        DiffReason::CapMoved { a, b } => format!("moved {} to {:#05x}", cap_desc(a), b.offset),
        DiffReason::CapChanged { a, b } => format!(
            "changed {}: len {:#x} -> {:#x}, version {} -> {}",
            cap_desc(a),
            a.len,
            b.len,
            a.version,
            b.version
        ),
        DiffReason::Byte { offset, what } => match what {
            ByteDiff::Rule { a, b } => {
                format!("byte {offset:#05x}: rule {} -> {}", a.name(), b.name())
            }
            ByteDiff::Value { a, b, read_only } => {
                format!("byte {offset:#05x}: read-only value {a:#04x} -> {b:#04x} (read-only bits {read_only:#04x})")
            }
            ByteDiff::Mask { a, b } => {
                format!("byte {offset:#05x}: write mask {a:#04x} -> {b:#04x}")
            }
            ByteDiff::Mapping => {
                format!("byte {offset:#05x}: passthrough from another device location")
            }
        },
    }
}

/// One line for a check reason: the core's words, the same as the kernel log's.
pub fn check_text(r: &CheckReason) -> String {
    r.to_string()
}
