//! The TOML text format of personas: what operators write and review.
//!
//! Every key is described in `tests/personas/README.md`. In short: `format` (the text format
//! version, [`TEXT_FORMAT`]), `name`, `version` (`"major.minor"`), `config-size` (256 or 4096),
//! `rom-size`, an `[ids]` table (with `emulated`, the list of ID fields presented from the file
//! instead of pinned), `[[bar]]` entries (size and type of each BAR), `[[capability]]` entries
//! in chain order, and `[[bytes]]` ranges giving the rule of every other byte, with the pinned
//! values and pin masks of pinned and dynamic bytes.
//!
//! Bytes the capability entries, BARs and IDs already determine (ID bytes, BAR and ROM
//! registers, the capability pointer, the extended chain head, capability headers, synthesized
//! contents) are *implied*: whatever a `[[bytes]]` range says about them is overridden. The
//! writer exploits that to keep ranges long: an implied byte joins the range before it.

use std::fmt::Write as _;

use persona_core::pci::{self, Space};
use persona_core::persona::device::BarKind;
use persona_core::persona::device::ROM_INDEX;
use persona_core::persona::format::MAX_BLOB;
use persona_core::persona::{
    BarInfo, CapEntry, CapKind, IdField, PersonaModel, PersonaRef, Rule, Version,
};

/// The text format version this tool reads and writes (the `format` key). Version 1 had no
/// `format` key, no BARs and passthrough rules without pinned values.
pub const TEXT_FORMAT: u32 = 2;
use serde::Deserialize;

/// Top level of a persona file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TextPersona {
    format: u32,
    name: String,
    version: String,
    config_size: usize,
    #[serde(default)]
    rom_size: u64,
    ids: TextIds,
    #[serde(default)]
    bar: Vec<TextBar>,
    #[serde(default)]
    capability: Vec<TextCap>,
    #[serde(default)]
    bytes: Vec<TextBytes>,
}

/// `[ids]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TextIds {
    vendor: u16,
    device: u16,
    revision: u8,
    class: u32,
    subsystem_vendor: u16,
    subsystem_device: u16,
    #[serde(default)]
    emulated: Vec<String>,
}

/// One `[[bar]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TextBar {
    index: usize,
    kind: String,
    size: u64,
    #[serde(default)]
    prefetchable: bool,
}

/// One `[[capability]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TextCap {
    kind: String,
    space: Option<String>,
    id: Option<u16>,
    instance: Option<u8>,
    version: Option<u8>,
    offset: Option<u16>,
    length: Option<u16>,
    width: Option<u8>,
    exec: Option<bool>,
    privileged: Option<bool>,
    data: Option<String>,
    mask: Option<String>,
}

/// One `[[bytes]]` range.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TextBytes {
    start: usize,
    end: usize,
    rule: String,
    value: Option<String>,
    mask: Option<String>,
}

/// Parses `"a.b"` into a version.
pub fn parse_version(s: &str) -> Result<Version, String> {
    let (a, b) = s
        .split_once('.')
        .ok_or_else(|| format!("version {s:?}: expected \"major.minor\""))?;
    let major = a.parse().map_err(|_| format!("version {s:?}: bad major"))?;
    let minor = b.parse().map_err(|_| format!("version {s:?}: bad minor"))?;
    Ok(Version { major, minor })
}

/// Parses hex bytes like `"0a 0b 0c"` or `"0a0b0c"`.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return Err(format!("hex bytes {s:?}: odd number of digits"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            digits
                .get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| format!("hex bytes {s:?}: bad digits at {i}"))
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_rule(s: &str) -> Result<Rule, String> {
    [Rule::Hidden, Rule::Pinned, Rule::Dynamic, Rule::Emulated]
        .into_iter()
        .find(|r| r.name() == s)
        .ok_or_else(|| match s {
            "passthrough-ro" | "passthrough-rw" => format!(
                "rule {s:?} is text format 1; format {TEXT_FORMAT} has pinned and dynamic with \
                 pinned values (re-derive the persona)"
            ),
            _ => format!("unknown rule {s:?} (hidden, pinned, dynamic, emulated)"),
        })
}

fn parse_bar(m: &mut PersonaModel, b: &TextBar) -> Result<(), String> {
    if b.index >= ROM_INDEX {
        return Err(format!("bar index {}: 0..5 (the ROM is rom-size)", b.index));
    }
    let kind = [BarKind::Io, BarKind::Mem32, BarKind::Mem64]
        .into_iter()
        .find(|k| k.name() == b.kind)
        .ok_or_else(|| {
            format!(
                "bar {}: unknown kind {:?} (io, mem32, mem64)",
                b.index, b.kind
            )
        })?;
    if m.bars[b.index].kind != BarKind::Unused {
        return Err(format!(
            "bar {} listed twice or inside a 64-bit BAR",
            b.index
        ));
    }
    m.bars[b.index] = BarInfo {
        size: b.size,
        kind,
        prefetch: b.prefetchable,
    };
    if kind == BarKind::Mem64 {
        let up = m
            .bars
            .get_mut(b.index + 1)
            .filter(|_| b.index + 1 < ROM_INDEX)
            .ok_or_else(|| format!("bar {}: a 64-bit BAR needs the next slot", b.index))?;
        if up.kind != BarKind::Unused {
            return Err(format!("bar {}: the next slot is taken", b.index));
        }
        up.kind = BarKind::Upper;
    }
    if !BarInfo::valid(&m.bars, b.index) {
        return Err(format!(
            "bar {}: size {:#x} is not a valid {} BAR size",
            b.index, b.size, b.kind
        ));
    }
    Ok(())
}

fn parse_space(s: Option<&str>) -> Result<Space, String> {
    match s {
        Some("standard") => Ok(Space::Standard),
        Some("extended") => Ok(Space::Extended),
        Some(o) => Err(format!("unknown space {o:?} (standard, extended)")),
        None => Err("capability needs a space".into()),
    }
}

fn space_name(s: Space) -> &'static str {
    match s {
        Space::Standard => "standard",
        Space::Extended => "extended",
    }
}

/// Parses persona text into `m` (validated: the result encodes).
///
/// # Errors
///
/// A message naming the offending key or value.
pub fn parse(text: &str, m: &mut PersonaModel) -> Result<(), String> {
    let probe: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    match probe.get("format").and_then(toml::Value::as_integer) {
        Some(f) if f == i64::from(TEXT_FORMAT) => {}
        Some(f) => {
            return Err(format!(
                "text format {f}: this tool reads format {TEXT_FORMAT} only"
            ))
        }
        None => {
            return Err(format!(
                "no `format` key: text format 1 (no BARs, unpinned passthrough); this tool \
                 reads format {TEXT_FORMAT} only (re-derive the persona)"
            ))
        }
    }
    let t: TextPersona = toml::from_str(text).map_err(|e| e.to_string())?;
    if t.format != TEXT_FORMAT {
        return Err(format!(
            "text format {}: this tool reads {TEXT_FORMAT}",
            t.format
        ));
    }
    m.clear();
    m.set_name(&t.name)
        .map_err(|_| format!("name {:?}: 1 to 32 printable ASCII characters", t.name))?;
    m.version = parse_version(&t.version)?;
    if t.config_size != pci::CFG_SIZE && t.config_size != pci::CFG_SIZE_EXT {
        return Err(format!(
            "config-size {}: must be 256 or 4096",
            t.config_size
        ));
    }
    m.config_size = t.config_size;
    m.ids.vendor = t.ids.vendor;
    m.ids.device = t.ids.device;
    m.ids.revision = t.ids.revision;
    m.ids.class = t.ids.class;
    m.ids.subsystem_vendor = t.ids.subsystem_vendor;
    m.ids.subsystem_device = t.ids.subsystem_device;
    if t.ids.class > 0xff_ffff {
        return Err(format!("ids.class {:#x}: 24 bits at most", t.ids.class));
    }
    for name in &t.ids.emulated {
        let f = IdField::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| format!("ids.emulated: unknown field {name:?}"))?;
        m.emulated_ids |= f.bit();
    }
    for b in &t.bar {
        parse_bar(m, b)?;
    }
    if t.rom_size != 0 {
        m.bars[ROM_INDEX] = BarInfo {
            size: t.rom_size,
            kind: BarKind::Mem32,
            prefetch: false,
        };
        if !BarInfo::valid(&m.bars, ROM_INDEX) {
            return Err(format!(
                "rom-size {:#x}: a power of two from 2 KiB",
                t.rom_size
            ));
        }
    }
    let mut covered = vec![false; m.config_size];
    for (i, b) in t.bytes.iter().enumerate() {
        apply_bytes(m, b, &mut covered).map_err(|e| format!("bytes[{i}]: {e}"))?;
    }
    for (i, c) in t.capability.iter().enumerate() {
        let e = cap_entry(c).map_err(|e| format!("capability[{i}]: {e}"))?;
        m.push_cap(e)
            .map_err(|_| "too many capabilities".to_string())?;
        if e.kind == CapKind::Synthesized {
            synth_data(m, &e, c).map_err(|e| format!("capability[{i}]: {e}"))?;
        }
    }
    m.apply_layout();
    let mut out = vec![0u8; MAX_BLOB];
    m.encode(&mut out)
        .map(|_| ())
        .map_err(|e| format!("invalid persona: {e}"))
}

fn apply_bytes(m: &mut PersonaModel, b: &TextBytes, covered: &mut [bool]) -> Result<(), String> {
    if b.start >= b.end || b.end > m.config_size {
        return Err(format!(
            "range {:#x}..{:#x} is empty or beyond config-size",
            b.start, b.end
        ));
    }
    if covered[b.start..b.end].iter().any(|&c| c) {
        return Err(format!(
            "range {:#x}..{:#x} overlaps an earlier range",
            b.start, b.end
        ));
    }
    covered[b.start..b.end].fill(true);
    let rule = parse_rule(&b.rule)?;
    let n = b.end - b.start;
    let hex_or = |v: &Option<String>, fill: u8| -> Result<Vec<u8>, String> {
        match v {
            Some(s) => parse_hex(s),
            None => Ok(vec![fill; n]),
        }
    };
    match rule {
        Rule::Hidden => {
            if b.value.is_some() || b.mask.is_some() {
                return Err("hidden ranges have no value or mask".into());
            }
            m.set_rule(b.start, b.end, rule);
        }
        Rule::Emulated => {
            let value = parse_hex(b.value.as_deref().ok_or("emulated range needs value")?)?;
            let mask = hex_or(&b.mask, 0)?;
            if value.len() != n || mask.len() != n {
                return Err(format!("value and mask must have {n} bytes"));
            }
            for k in 0..n {
                m.set_emulated(b.start + k, value[k], mask[k]);
            }
        }
        Rule::Pinned | Rule::Dynamic => {
            // Pinned: every bit pinned unless a mask says otherwise, so the value is required.
            // Dynamic: nothing pinned unless a mask says which read-only bits are.
            let (value, mask) = if rule == Rule::Pinned {
                let v = parse_hex(b.value.as_deref().ok_or("pinned range needs value")?)?;
                (v, hex_or(&b.mask, 0xff)?)
            } else {
                (hex_or(&b.value, 0)?, hex_or(&b.mask, 0)?)
            };
            if value.len() != n || mask.len() != n {
                return Err(format!("value and mask must have {n} bytes"));
            }
            for k in 0..n {
                if value[k] & !mask[k] != 0 {
                    return Err(format!(
                        "byte {:#x}: value {:#04x} has bits outside the pin mask {:#04x}",
                        b.start + k,
                        value[k],
                        mask[k]
                    ));
                }
                m.set_pass(b.start + k, rule, value[k], mask[k]);
            }
        }
    }
    Ok(())
}

fn cap_entry(c: &TextCap) -> Result<CapEntry, String> {
    let kind = [
        CapKind::Physical,
        CapKind::Synthesized,
        CapKind::Pasid,
        CapKind::Hidden,
    ]
    .into_iter()
    .find(|k| k.name() == c.kind)
    .ok_or_else(|| {
        format!(
            "unknown kind {:?} (physical, synthesized, pasid, hidden)",
            c.kind
        )
    })?;
    let need =
        |v: Option<u16>, what: &str| v.ok_or_else(|| format!("{} capability needs {what}", c.kind));
    let pasid_keys = c.width.is_some() || c.exec.is_some() || c.privileged.is_some();
    if kind != CapKind::Pasid && pasid_keys {
        return Err("width, exec and privileged are only for pasid".into());
    }
    if kind != CapKind::Synthesized && (c.data.is_some() || c.mask.is_some()) {
        return Err("data and mask are only for synthesized capabilities".into());
    }
    let mut e = CapEntry {
        kind,
        ..CapEntry::default()
    };
    if kind == CapKind::Pasid {
        if c.space.is_some()
            || c.id.is_some()
            || c.instance.is_some()
            || c.version.is_some()
            || c.length.is_some()
        {
            return Err("pasid takes only offset, width, exec and privileged".into());
        }
        e.space = Space::Extended;
        e.id = pci::EXT_CAP_ID_PASID;
        e.version = pci::PASID_VERSION;
        e.offset = need(c.offset, "offset")?;
        e.len = 8;
        e.pasid_width = c.width.ok_or("pasid needs width")?;
        e.pasid_exec = c.exec.unwrap_or(false);
        e.pasid_priv = c.privileged.unwrap_or(false);
        return Ok(e);
    }
    e.space = parse_space(c.space.as_deref())?;
    e.id = need(c.id, "id")?;
    e.version = c.version.unwrap_or(0);
    match kind {
        CapKind::Hidden => {
            if c.offset.is_some() || c.length.is_some() {
                return Err("hidden capabilities have no offset or length".into());
            }
            e.instance = c.instance.unwrap_or(0);
        }
        CapKind::Physical => {
            e.instance = c.instance.unwrap_or(0);
            e.offset = need(c.offset, "offset")?;
            e.len = need(c.length, "length")?;
        }
        _ => {
            if c.instance.is_some() {
                return Err("synthesized capabilities have no instance".into());
            }
            e.offset = need(c.offset, "offset")?;
            e.len = need(c.length, "length")?;
        }
    }
    Ok(e)
}

fn synth_data(m: &mut PersonaModel, e: &CapEntry, c: &TextCap) -> Result<(), String> {
    let body = usize::from(e.len)
        .checked_sub(e.header_len())
        .ok_or("length is shorter than the header")?;
    let data = match &c.data {
        Some(s) => parse_hex(s)?,
        None => vec![0; body],
    };
    let mask = match &c.mask {
        Some(s) => parse_hex(s)?,
        None => vec![0; body],
    };
    if data.len() != body || mask.len() != body {
        return Err(format!(
            "data and mask must have {body} bytes (length minus header)"
        ));
    }
    let start = usize::from(e.offset) + e.header_len();
    for k in 0..body {
        m.set_emulated(start + k, data[k], mask[k]);
    }
    Ok(())
}

/// Bytes whose contents the capability entries and IDs determine.
fn implied(m: &PersonaModel) -> Vec<bool> {
    let mut v = vec![false; m.config_size];
    for f in IdField::ALL {
        let (o, w) = f.range();
        v[o..o + w].fill(true);
    }
    v[pci::CAPABILITY_LIST] = true;
    v[0x10..0x28].fill(true);
    v[0x30..0x34].fill(true);
    if m.config_size > pci::CFG_SIZE {
        v[pci::CFG_SIZE..pci::CFG_SIZE + 4].fill(true);
    }
    for e in m.caps().iter().filter(|e| e.kind.is_presented()) {
        let s = usize::from(e.offset);
        let end = match e.kind {
            CapKind::Physical => s + e.header_len(),
            _ => e.end(),
        };
        if end <= v.len() {
            v[s..end].fill(true);
        }
    }
    v
}

/// Writes persona `p` as text, with a comment header carrying its digest.
pub fn write(p: &PersonaRef<'_>) -> String {
    let mut m = Box::<PersonaModel>::default();
    m.load(p);
    let mut s = String::new();
    let digest: String = p.digest().iter().map(|b| format!("{b:02x}")).collect();
    let v = m.version;
    let _ = writeln!(s, "# persona-vfio-pci persona");
    let _ = writeln!(s, "# sha256 of the binary encoding: {digest}");
    let _ = writeln!(s, "format = {TEXT_FORMAT}");
    let _ = writeln!(s, "name = {:?}", m.name());
    let _ = writeln!(s, "version = \"{}.{}\"", v.major, v.minor);
    let _ = writeln!(s, "config-size = {}", m.config_size);
    let _ = writeln!(s, "rom-size = {:#x}", m.bars[ROM_INDEX].size);
    let ids = m.ids;
    let _ = writeln!(s, "\n[ids]");
    let _ = writeln!(s, "vendor = {:#06x}", ids.vendor);
    let _ = writeln!(s, "device = {:#06x}", ids.device);
    let _ = writeln!(s, "revision = {:#04x}", ids.revision);
    let _ = writeln!(s, "class = {:#08x}", ids.class);
    let _ = writeln!(s, "subsystem-vendor = {:#06x}", ids.subsystem_vendor);
    let _ = writeln!(s, "subsystem-device = {:#06x}", ids.subsystem_device);
    let emulated: Vec<String> = IdField::ALL
        .into_iter()
        .filter(|f| m.emulated_ids & f.bit() != 0)
        .map(|f| format!("{:?}", f.name()))
        .collect();
    let _ = writeln!(s, "emulated = [{}]", emulated.join(", "));
    for (i, b) in m.bars.iter().enumerate().take(ROM_INDEX) {
        if matches!(b.kind, BarKind::Unused | BarKind::Upper) {
            continue;
        }
        let _ = writeln!(s, "\n[[bar]]");
        let _ = writeln!(s, "index = {i}");
        let _ = writeln!(s, "kind = {:?}", b.kind.name());
        let _ = writeln!(s, "size = {:#x}", b.size);
        if b.prefetch {
            let _ = writeln!(s, "prefetchable = true");
        }
    }
    for e in m.caps() {
        write_cap(&mut s, &m, e);
    }
    let _ = writeln!(
        s,
        "\n# Byte rules. Ranges may cover implied bytes (emulated IDs, capability headers, the\n\
         # capability pointer, the extended chain head, BAR and ROM registers, synthesized\n\
         # contents): those always follow [ids], [[bar]] and [[capability]]. Pinned and dynamic\n\
         # bytes carry the value the device must have under their pin mask."
    );
    write_bytes(&mut s, &m);
    s
}

fn write_cap(s: &mut String, m: &PersonaModel, e: &CapEntry) {
    let _ = writeln!(s, "\n[[capability]]");
    let _ = writeln!(s, "kind = {:?}", e.kind.name());
    if e.kind == CapKind::Pasid {
        let _ = writeln!(s, "offset = {:#05x}", e.offset);
        let _ = writeln!(s, "width = {}", e.pasid_width);
        let _ = writeln!(s, "exec = {}", e.pasid_exec);
        let _ = writeln!(s, "privileged = {}", e.pasid_priv);
        return;
    }
    let _ = writeln!(s, "space = {:?}", space_name(e.space));
    let _ = writeln!(s, "id = {:#04x}", e.id);
    if matches!(e.kind, CapKind::Physical | CapKind::Hidden) {
        let _ = writeln!(s, "instance = {}", e.instance);
    }
    if e.space == Space::Extended {
        let _ = writeln!(s, "version = {}", e.version);
    }
    if e.kind.is_presented() {
        let _ = writeln!(s, "offset = {:#05x}", e.offset);
        let _ = writeln!(s, "length = {}", e.len);
    }
    if e.kind == CapKind::Synthesized {
        let body = usize::from(e.offset) + e.header_len()..e.end();
        let _ = writeln!(s, "data = {:?}", hex(&m.value[body.clone()]));
        if m.mask[body.clone()].iter().any(|&b| b != 0) {
            let _ = writeln!(s, "mask = {:?}", hex(&m.mask[body]));
        }
    }
}

fn write_bytes(s: &mut String, m: &PersonaModel) {
    let imp = implied(m);
    // Give each implied emulated byte the rule of the byte before it (or after it, at the
    // start), so that ranges stay long; parsing overrides implied bytes anyway.
    let mut eff: Vec<Option<Rule>> = (0..m.config_size)
        .map(|i| (!imp[i] || m.rule[i] != Rule::Emulated).then_some(m.rule[i]))
        .collect();
    let joined: Vec<bool> = eff.iter().map(Option::is_none).collect();
    let first = eff.iter().flatten().next().copied().unwrap_or(Rule::Hidden);
    let mut last = first;
    for r in eff.iter_mut() {
        match r {
            Some(x) => last = *x,
            None => *r = Some(last),
        }
    }
    let mut start = 0;
    while start < eff.len() {
        let rule = eff[start].unwrap_or(Rule::Hidden);
        let mut end = start + 1;
        while end < eff.len() && eff[end] == Some(rule) {
            end += 1;
        }
        let _ = writeln!(s, "\n[[bytes]]");
        let _ = writeln!(s, "start = {start:#05x}");
        let _ = writeln!(s, "end = {end:#05x}");
        let _ = writeln!(s, "rule = {:?}", rule.name());
        // An implied byte joined to a passthrough range says nothing of its own (parsing
        // overrides it): value and mask 0.
        let (value, mask): (Vec<u8>, Vec<u8>) = (start..end)
            .map(|i| {
                if joined[i] && rule.is_pass() {
                    (0, 0)
                } else {
                    (m.value[i], m.mask[i])
                }
            })
            .unzip();
        match rule {
            Rule::Emulated => {
                let _ = writeln!(s, "value = {:?}", hex(&value));
                if mask.iter().any(|&b| b != 0) {
                    let _ = writeln!(s, "mask = {:?}", hex(&mask));
                }
            }
            Rule::Pinned => {
                let _ = writeln!(s, "value = {:?}", hex(&value));
                if mask.iter().any(|&b| b != 0xff) {
                    let _ = writeln!(s, "mask = {:?}", hex(&mask));
                }
            }
            Rule::Dynamic => {
                if mask.iter().any(|&b| b != 0) {
                    let _ = writeln!(s, "value = {:?}", hex(&value));
                    let _ = writeln!(s, "mask = {:?}", hex(&mask));
                }
            }
            Rule::Hidden => {}
        }
        start = end;
    }
}

/// Encodes a model into a blob.
///
/// # Errors
///
/// A message when the model is not a valid persona.
pub fn encode(m: &PersonaModel) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; MAX_BLOB];
    let n = m
        .encode(&mut out)
        .map_err(|e| format!("invalid persona: {e}"))?;
    out.truncate(n);
    Ok(out)
}

/// The field table of `persona_core::persona::fields` as Markdown: one table per known
/// capability, the rule of each register. The README carries it; a host test keeps it in sync.
pub fn field_table_markdown() -> String {
    use persona_core::persona::fields::{self, Field};
    let mut s = String::new();
    let table = |s: &mut String, title: &str, fs: &[Field]| {
        let _ = writeln!(s, "\n**{title}**\n");
        let _ = writeln!(s, "| offset | width | register | rule |");
        let _ = writeln!(s, "|---|---|---|---|");
        for f in fs {
            let rule = match f.kind {
                fields::FieldKind::Dynamic(ro) if ro != 0 => {
                    format!("{} (read-only bits {ro:#x})", f.rule_name())
                }
                fields::FieldKind::Emulated { reset, wmask } => {
                    format!(
                        "{} (reset value {reset:#04x}, write mask {wmask:#04x})",
                        f.rule_name()
                    )
                }
                _ => f.rule_name().to_string(),
            };
            let rule = if f.lower != 0 {
                format!("{rule}; bits {:#x} may be emulated lower", f.lower)
            } else {
                rule
            };
            let _ = writeln!(
                s,
                "| {:#04x} | {} | {} | {rule} |",
                f.offset, f.width, f.name
            );
        }
    };
    table(&mut s, "Type-0 header", fields::HEADER);
    for c in fields::CAPS {
        let title = format!(
            "{} {} capability {:#04x}",
            space_name(c.space),
            c.name,
            c.id
        );
        table(&mut s, &title, c.fields);
    }
    s
}
