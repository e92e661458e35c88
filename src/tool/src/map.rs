//! `vfio-persona map`: a picture of a persona's config space, one character per byte, saying
//! how the driver serves it (the persona's rule for that byte).
//!
//! ```text
//!        0123 4567 89ab cdef
//! 0x000  EEEE DDPP PPPP PPPP  header
//! 0x040  PPPP PPPP .... ....  msi @0x40
//! *      (0x050-0x0ff hidden)
//! ```
//!
//! Letters carry the meaning, so the picture reads the same without colour (`--color never`,
//! `NO_COLOR`, or output that is not a terminal); colour only adds to it.

use persona_core::persona::fields::cap_name;
use persona_core::persona::{PersonaRef, Rule};
use serde_json::{json, Value};

use crate::render::space_name;

/// The class of a byte in the picture: a rule of the persona, or no rule (past a run table
/// that does not cover it, which the format forbids; shown, never hidden).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Served from the driver's register state.
    Emulated,
    /// Read from the device, writes dropped; the device must hold the persona's value.
    Pinned,
    /// Read and written on the device through vfio-pci-core.
    Dynamic,
    /// Reads 0, writes dropped, the device never touched.
    Hidden,
    /// No run covers the byte.
    Unmapped,
}

impl Class {
    /// All classes, in legend order.
    pub const ALL: [Class; 5] = [
        Class::Emulated,
        Class::Pinned,
        Class::Dynamic,
        Class::Hidden,
        Class::Unmapped,
    ];

    /// Its character in the picture.
    pub const fn letter(self) -> char {
        match self {
            Class::Emulated => 'E',
            Class::Pinned => 'P',
            Class::Dynamic => 'D',
            Class::Hidden => '.',
            Class::Unmapped => '?',
        }
    }

    /// Its name (legend, JSON).
    pub const fn name(self) -> &'static str {
        match self {
            Class::Emulated => "emulated",
            Class::Pinned => "pinned",
            Class::Dynamic => "dynamic",
            Class::Hidden => "hidden",
            Class::Unmapped => "unmapped",
        }
    }

    /// ANSI SGR colour of its letter.
    const fn sgr(self) -> &'static str {
        match self {
            Class::Emulated => "1;35",
            Class::Pinned => "34",
            Class::Dynamic => "32",
            Class::Hidden => "2",
            Class::Unmapped => "1;31",
        }
    }

    fn of(rule: Option<Rule>) -> Self {
        match rule {
            Some(Rule::Emulated) => Class::Emulated,
            Some(Rule::Pinned) => Class::Pinned,
            Some(Rule::Dynamic) => Class::Dynamic,
            Some(Rule::Hidden) => Class::Hidden,
            None => Class::Unmapped,
        }
    }
}

/// The class of every byte of `p`'s config space.
pub fn classify(p: &PersonaRef<'_>) -> Vec<Class> {
    let mut v = vec![Class::Unmapped; p.config_size()];
    for r in p.runs() {
        let end = r.end().min(v.len());
        for c in v.iter_mut().take(end).skip(usize::from(r.start)) {
            *c = Class::of(Some(r.rule));
        }
    }
    v
}

/// Labels of the capabilities whose header lies in `[start, end)`: `msi @0x50`.
fn row_labels(p: &PersonaRef<'_>, start: usize, end: usize) -> Vec<String> {
    let mut l = Vec::new();
    if start == 0 {
        l.push("header".to_string());
    }
    let presented = || p.caps().filter(|e| e.kind.is_presented());
    let ext = 0x100;
    if p.config_size() > ext
        && (start..end).contains(&ext)
        && !presented().any(|e| usize::from(e.offset) == ext)
    {
        l.push("extended header".to_string());
    }
    for e in presented() {
        let o = usize::from(e.offset);
        if o >= start && o < end {
            let name = cap_name(e.space, e.id);
            let name = if name == "capability" {
                format!("{} cap {:#x}", space_name(e.space), e.id)
            } else {
                name.to_string()
            };
            l.push(format!("{name} @{o:#05x}"));
        }
    }
    l
}

/// Draws the picture: `width` bytes per row (16 or 32), `limit` bytes at most, with ANSI colour
/// when `color`. Rows that are wholly hidden and carry no label are folded into one `*` line.
pub fn draw(p: &PersonaRef<'_>, width: usize, limit: usize, color: bool) -> String {
    let width = if width == 32 { 32 } else { 16 };
    let classes = classify(p);
    let n = classes.len().min(limit);
    let v = p.version();
    let mut s = format!(
        "persona {}@{}.{}: {} bytes of config space, {} per row\n",
        p.name(),
        v.major,
        v.minor,
        classes.len(),
        width
    );
    let paint = |c: Class, text: &str| {
        if color {
            format!("\x1b[{}m{text}\x1b[0m", c.sgr())
        } else {
            text.to_string()
        }
    };
    s.push_str("legend:");
    for c in Class::ALL {
        if c == Class::Unmapped && !classes.contains(&c) {
            continue;
        }
        let count = classes.iter().take(n).filter(|&&x| x == c).count();
        s.push_str(&format!(
            "  {} {} ({count})",
            paint(c, &c.letter().to_string()),
            c.name()
        ));
    }
    s.push('\n');
    s.push_str("       ");
    for i in 0..width {
        if i > 0 && i % 4 == 0 {
            s.push(' ');
        }
        s.push(char::from_digit(u32::try_from(i % 16).unwrap_or(0), 16).unwrap_or('?'));
    }
    s.push('\n');
    let mut fold_start: Option<usize> = None;
    let flush = |s: &mut String, from: &mut Option<usize>, to: usize| {
        if let Some(f) = from.take() {
            s.push_str(&format!("*      ({f:#05x}-{:#05x} hidden)\n", to - 1));
        }
    };
    let mut start = 0;
    while start < n {
        let end = (start + width).min(n);
        let row = classes.get(start..end).unwrap_or_default();
        let labels = row_labels(p, start, end);
        if labels.is_empty() && row.iter().all(|&c| c == Class::Hidden) {
            fold_start.get_or_insert(start);
            start = end;
            continue;
        }
        flush(&mut s, &mut fold_start, start);
        s.push_str(&format!("{start:#05x}  "));
        for (i, &c) in row.iter().enumerate() {
            if i > 0 && i % 4 == 0 {
                s.push(' ');
            }
            s.push_str(&paint(c, &c.letter().to_string()));
        }
        if !labels.is_empty() {
            let pad = (width - row.len()) + (width - row.len()) / 4;
            s.push_str(&" ".repeat(pad + 2));
            s.push_str(&labels.join(", "));
        }
        s.push('\n');
        start = end;
    }
    flush(&mut s, &mut fold_start, n);
    s
}

/// The map as JSON: every byte's class as one letter string, the counts and the legend.
pub fn to_json(p: &PersonaRef<'_>, limit: usize) -> Value {
    let classes = classify(p);
    let n = classes.len().min(limit);
    let shown = classes.get(..n).unwrap_or_default();
    let v = p.version();
    let counts: serde_json::Map<String, Value> = Class::ALL
        .iter()
        .map(|c| {
            (
                c.name().to_string(),
                json!(shown.iter().filter(|&&x| x == *c).count()),
            )
        })
        .collect();
    let legend: serde_json::Map<String, Value> = Class::ALL
        .iter()
        .map(|c| (c.letter().to_string(), json!(c.name())))
        .collect();
    json!({
        "persona": format!("{}@{}.{}", p.name(), v.major, v.minor),
        "config_size": classes.len(),
        "length": n,
        "bytes": shown.iter().map(|c| c.letter()).collect::<String>(),
        "counts": counts,
        "legend": legend,
    })
}
