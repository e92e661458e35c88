//! The pure half of the live commands: PCI addresses, the persona descriptor region's format,
//! the comparison of what a VFIO user sees with a persona, config access scripts and hexdumps.
//!
//! Nothing here touches a device, so every function is tested on the host with synthetic
//! inputs; [`super::vfio`] does the system calls.

use persona_core::pci::{self, CapWalker, Space};
use persona_core::persona::{descriptor, PersonaRef, Rule};
use persona_core::sha256::{Sha256, DIGEST_LEN};

/// Normalises a PCI address: `01:00.0` becomes `0000:01:00.0`; hex digits are lowercased.
///
/// # Errors
///
/// A message when `s` is not `[DDDD:]BB:SS.F`.
pub fn normalize_bdf(s: &str) -> Result<String, String> {
    let bad = || format!("{s:?} is not a PCI address (DDDD:BB:SS.F or BB:SS.F)");
    let parts: Vec<&str> = s.split(':').collect();
    let (dom, bus, rest) = match parts.as_slice() {
        [b, r] => ("0000", *b, *r),
        [d, b, r] => (*d, *b, *r),
        _ => return Err(bad()),
    };
    let (slot, func) = rest.split_once('.').ok_or_else(bad)?;
    let hex = |t: &str, n: usize| t.len() == n && t.bytes().all(|c| c.is_ascii_hexdigit());
    let slot_ok = hex(slot, 2) && u8::from_str_radix(slot, 16).is_ok_and(|v| v < 32);
    let func_ok = func.len() == 1 && matches!(func.as_bytes().first(), Some(b'0'..=b'7'));
    if !hex(dom, 4) || !hex(bus, 2) || !slot_ok || !func_ok {
        return Err(bad());
    }
    Ok(format!("{dom}:{bus}:{slot}.{func}").to_ascii_lowercase())
}

/// Region type of the descriptor region without the vendor ID (`VFIO_REGION_TYPE_PCI_VENDOR_TYPE`).
pub const REGION_TYPE_PCI_VENDOR: u32 = 1 << 31;
/// Subtype of the descriptor region: `"PERS"` as a big-endian u32.
pub const DESC_SUBTYPE: u32 = descriptor::SUBTYPE;
/// Magic at the start of the descriptor region.
pub const DESC_MAGIC: [u8; 8] = descriptor::MAGIC;
/// Format version of the descriptor region this tool reads.
pub const DESC_VERSION: u32 = descriptor::VERSION;
/// Size of the descriptor header before the blob.
pub const DESC_HEADER: usize = descriptor::HEADER_LEN;

/// The persona published by the descriptor region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// Digest the region states (checked to be the blob's SHA-256).
    pub digest: [u8; DIGEST_LEN],
    /// The persona blob (checked to parse).
    pub blob: Vec<u8>,
}

/// Parses the descriptor region's contents (`region` is what reading the region from offset 0
/// gave, `region_size` its size from the region info), with the core's
/// [`descriptor::parse`], and checks that the blob parses as a persona.
///
/// # Errors
///
/// A message saying what is wrong: magic, version, length, size, digest or blob.
pub fn parse_descriptor(region: &[u8], region_size: u64) -> Result<Descriptor, String> {
    let d = descriptor::parse(region, region_size).map_err(|e| e.to_string())?;
    PersonaRef::parse(d.blob).map_err(|e| format!("the published blob is invalid: {e}"))?;
    Ok(Descriptor {
        digest: d.digest,
        blob: d.blob.to_vec(),
    })
}

/// Builds descriptor region contents (the inverse of [`parse_descriptor`]; for tests).
pub fn encode_descriptor(blob: &[u8]) -> Vec<u8> {
    let head = descriptor::header(blob.len(), &Sha256::digest(blob))
        .unwrap_or([0; descriptor::HEADER_LEN]);
    let mut v = Vec::with_capacity(descriptor::region_len(blob.len()));
    v.extend_from_slice(&head);
    v.extend_from_slice(blob);
    v
}

/// `name@major.minor` of a persona.
pub fn selector(p: &PersonaRef<'_>) -> String {
    let v = p.version();
    format!("{}@{}.{}", p.name(), v.major, v.minor)
}

/// One capability of a chain as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainCap {
    /// Header offset.
    pub offset: u16,
    /// Capability ID.
    pub id: u16,
    /// Version (extended only).
    pub version: u8,
}

/// Walks one chain of a config image; `Err` carries a description of the break.
pub fn walk_chain(cfg: &[u8], space: Space) -> Result<Vec<ChainCap>, String> {
    let mut out = Vec::new();
    for c in CapWalker::new_for(cfg, space) {
        match c {
            Ok(c) => out.push(ChainCap {
                offset: c.offset,
                id: c.id,
                version: c.version,
            }),
            Err(e) => return Err(format!("{e:?}")),
        }
    }
    Ok(out)
}

fn chain_text(c: &[ChainCap]) -> String {
    if c.is_empty() {
        return "(empty)".into();
    }
    c.iter()
        .map(|c| format!("{:#x}@{:#05x}", c.id, c.offset))
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// What the persona says a VFIO user reads at `off` right after open (and after a reset, but
/// for an emulated Interrupt Line written before it, which a reset keeps), as a value and the
/// mask of the bits it fixes: emulated bytes (IDs, BAR registers, capability headers and
/// contents, registers), hidden bytes (0) and bytes past the presented config size (0) are
/// fixed whole; pinned and dynamic bytes in their pin mask (for a pinned persona, every
/// read-only bit). Mask 0: nothing fixed (device state).
pub fn expected_byte(p: &PersonaRef<'_>, off: usize) -> (u8, u8) {
    match p.byte_rule(off) {
        None => (0, 0xff),
        Some(b) => match b.rule {
            Rule::Hidden => (0, 0xff),
            Rule::Emulated => (b.value, 0xff),
            Rule::Pinned | Rule::Dynamic => (b.value, b.mask),
        },
    }
}

/// [`expected_byte`] for offsets `0..len`, walking the persona's runs once.
pub fn expected_image(p: &PersonaRef<'_>, len: usize) -> Vec<(u8, u8)> {
    // Past the persona's runs (its config size): 0.
    let mut img = vec![(0u8, 0xffu8); len];
    for r in p.runs() {
        for k in 0..usize::from(r.len) {
            let off = usize::from(r.start).saturating_add(k);
            let Some(slot) = img.get_mut(off) else {
                break;
            };
            let v = r.value.get(k).copied().unwrap_or(0);
            let m = r.mask.get(k).copied().unwrap_or(0);
            *slot = match r.rule {
                Rule::Hidden => (0, 0xff),
                Rule::Emulated => (v, 0xff),
                Rule::Pinned | Rule::Dynamic => (v, m),
            };
        }
    }
    img
}

/// Parses sysfs `resource`: the first seven lines (BAR 0..5, ROM) as (length, flags).
///
/// # Errors
///
/// A message for a line that is not three hex numbers.
pub fn parse_resource(text: &str) -> Result<[(u64, u64); 7], String> {
    let mut out = [(0u64, 0u64); 7];
    let mut lines = text.lines();
    for (i, slot) in out.iter_mut().enumerate() {
        let line = lines
            .next()
            .ok_or_else(|| format!("resource: {i} lines, expected at least 7"))?;
        let n: Vec<u64> = line
            .split_whitespace()
            .map(|t| u64::from_str_radix(t.trim_start_matches("0x"), 16))
            .collect::<Result<_, _>>()
            .map_err(|_| format!("resource line {i}: {line:?}"))?;
        let [start, end, flags] = n[..] else {
            return Err(format!("resource line {i}: {line:?}"));
        };
        let len = if end == 0 && start == 0 {
            0
        } else {
            end.wrapping_sub(start).wrapping_add(1)
        };
        *slot = (len, flags);
    }
    Ok(out)
}

/// One difference between the config space read through VFIO and the persona.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// The config region is smaller than what the persona presents.
    RegionSize {
        /// Region size.
        region: usize,
        /// Persona config size.
        persona: usize,
    },
    /// A byte the persona fixes reads differently (in the bits of `mask`).
    Byte {
        /// Config offset.
        offset: usize,
        /// What VFIO gave.
        read: u8,
        /// What the persona says.
        expected: u8,
        /// The bits the persona fixes.
        mask: u8,
        /// The persona's rule for the byte ("beyond" past its config size).
        rule: &'static str,
    },
    /// A BAR or ROM region's size is not the persona's.
    Region {
        /// VFIO region index (6: ROM).
        index: usize,
        /// Size from `VFIO_DEVICE_GET_REGION_INFO`.
        size: u64,
        /// The persona's size.
        persona: u64,
    },
    /// A capability chain differs from the persona's.
    Chain {
        /// Which chain.
        space: Space,
        /// The chain as read.
        read: String,
        /// The persona's chain.
        expected: String,
    },
}

impl Mismatch {
    /// One-line description.
    pub fn text(&self) -> String {
        match self {
            Mismatch::RegionSize { region, persona } => {
                format!("config region is {region} bytes, the persona presents {persona}")
            }
            Mismatch::Byte {
                offset,
                read,
                expected,
                mask,
                rule,
            } => format!(
                "byte {offset:#05x}: reads {read:#04x} through VFIO, the persona ({rule}) says {expected:#04x} in bits {mask:#04x}"
            ),
            Mismatch::Region {
                index,
                size,
                persona,
            } => format!(
                "region {index} ({}) is {size:#x} bytes through VFIO, the persona presents {persona:#x}",
                if *index == 6 { "ROM".to_string() } else { format!("BAR {index}") }
            ),
            Mismatch::Chain {
                space,
                read,
                expected,
            } => format!(
                "{} capability chain: {read} through VFIO, the persona's is {expected}",
                match space {
                    Space::Standard => "standard",
                    Space::Extended => "extended",
                }
            ),
        }
    }
}

/// The persona's chain of `space`: its presented entries in the order its emulated headers
/// link them, found by walking an image that holds the persona's bytes over `cfg`'s (the
/// status register's capability-list bit is passed through, so it comes from `cfg`).
fn persona_chain(p: &PersonaRef<'_>, cfg: &[u8], space: Space) -> Result<Vec<ChainCap>, String> {
    let len = p.config_size().max(cfg.len());
    let mut img: Vec<u8> = expected_image(p, len)
        .into_iter()
        .enumerate()
        .map(|(off, (v, m))| (v & m) | (cfg.get(off).copied().unwrap_or(0) & !m))
        .collect();
    if p.caps()
        .any(|e| e.kind.is_presented() && e.space == Space::Standard)
    {
        if let Some(s) = img.get_mut(pci::STATUS) {
            *s |= 0x10;
        }
    }
    let mut chain = walk_chain(&img, space)?;
    // The placeholder head of an extended chain whose first capability is elsewhere.
    if space == Space::Extended
        && chain
            .first()
            .is_some_and(|c| c.id == 0 && c.offset == 0x100)
        && !p
            .caps()
            .any(|e| e.kind.is_presented() && e.space == Space::Extended && e.offset == 0x100)
    {
        chain.remove(0);
    }
    Ok(chain)
}

/// Compares the region sizes a VFIO user sees (`sizes`: BAR 0..5 and ROM) with persona `p`:
/// each is the persona's BAR size (a larger device BAR is clamped; an unused one is 0).
pub fn compare_regions(p: &PersonaRef<'_>, sizes: &[u64]) -> Vec<Mismatch> {
    let bars = p.bars();
    sizes
        .iter()
        .zip(bars.iter())
        .enumerate()
        .filter(|(_, (&size, b))| size != b.size)
        .map(|(index, (&size, b))| Mismatch::Region {
            index,
            size,
            persona: b.size,
        })
        .collect()
}

/// Compares the config space a VFIO user read (`cfg`, the whole config region, right after
/// open or reset) with persona `p`.
///
/// Every bit the persona fixes must equal its value (see [`expected_byte`]): every byte but
/// the unpinned bits of dynamic registers. Both capability chains (IDs, offsets, versions,
/// next pointers) must be the persona's. Returns the differences; empty means identical.
pub fn compare(p: &PersonaRef<'_>, cfg: &[u8]) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let expected = expected_image(p, cfg.len());
    if cfg.len() < p.config_size() {
        out.push(Mismatch::RegionSize {
            region: cfg.len(),
            persona: p.config_size(),
        });
    }
    for (off, (&read, &(expected, mask))) in cfg.iter().zip(expected.iter()).enumerate() {
        if (read ^ expected) & mask != 0 {
            let rule = p
                .byte_rule(off)
                .map_or("beyond its config size", |b| b.rule.name());
            out.push(Mismatch::Byte {
                offset: off,
                read,
                expected,
                mask,
                rule,
            });
        }
    }
    let spaces: &[Space] = if p.config_size() > pci::CFG_SIZE {
        &[Space::Standard, Space::Extended]
    } else {
        &[Space::Standard]
    };
    for &space in spaces {
        let want = match persona_chain(p, cfg, space) {
            Ok(c) => c,
            Err(e) => {
                out.push(Mismatch::Chain {
                    space,
                    read: String::new(),
                    expected: format!("broken ({e})"),
                });
                continue;
            }
        };
        let mut got = walk_chain(cfg, space);
        if let Ok(c) = got.as_mut() {
            if space == Space::Extended
                && c.first().is_some_and(|c| c.id == 0 && c.offset == 0x100)
                && want.first().is_none_or(|w| w.offset != 0x100)
            {
                c.remove(0);
            }
        }
        match got {
            Ok(g) if g == want => {}
            Ok(g) => out.push(Mismatch::Chain {
                space,
                read: chain_text(&g),
                expected: chain_text(&want),
            }),
            Err(e) => out.push(Mismatch::Chain {
                space,
                read: format!("broken ({e})"),
                expected: chain_text(&want),
            }),
        }
    }
    out
}

/// One step of an `access` script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read `size` bytes at `offset` and print them.
    Read {
        /// Config offset.
        offset: u16,
        /// 1, 2 or 4.
        size: u8,
    },
    /// Write the low `size` bytes of `value` at `offset`.
    Write {
        /// Config offset.
        offset: u16,
        /// 1, 2 or 4.
        size: u8,
        /// Value, little-endian.
        value: u32,
    },
    /// `VFIO_DEVICE_RESET`.
    Reset,
    /// Print the size of region `region` (`VFIO_DEVICE_GET_REGION_INFO`).
    Size {
        /// Region index.
        region: u32,
    },
    /// Read `size` bytes at `offset` of region `region` (a BAR).
    RegionRead {
        /// Region index.
        region: u32,
        /// Offset in the region.
        offset: u64,
        /// 1, 2, 4 or 8.
        size: u8,
    },
    /// Write the low `size` bytes of `value` at `offset` of region `region`.
    RegionWrite {
        /// Region index.
        region: u32,
        /// Offset in the region.
        offset: u64,
        /// 1, 2, 4 or 8.
        size: u8,
        /// Value, little-endian.
        value: u64,
    },
    /// Try to mmap `len` bytes at `offset` of region `region`.
    Mmap {
        /// Region index.
        region: u32,
        /// Offset in the region (page aligned).
        offset: u64,
        /// Length.
        len: u64,
    },
    /// Try to register an ioeventfd of `size` bytes at `offset` of region `region`.
    Ioeventfd {
        /// Region index.
        region: u32,
        /// Offset in the region.
        offset: u64,
        /// 1, 2, 4 or 8.
        size: u8,
    },
    /// Run a shell command while the device is open.
    Shell(String),
}

fn num(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parses one `access` step: `r:OFF[:SIZE]`, `w:OFF:SIZE:VALUE`, `reset` or `sh:COMMAND`.
/// Numbers are decimal or `0x` hex; SIZE is 1, 2 or 4 (default 4 for reads).
///
/// # Errors
///
/// A message for a malformed step or an access outside 0..4096 or not within one dword-sized
/// window of `size` bytes.
pub fn parse_op(s: &str) -> Result<Op, String> {
    if s == "reset" {
        return Ok(Op::Reset);
    }
    if let Some(op) = parse_region_op(s)? {
        return Ok(op);
    }
    if let Some(c) = s.strip_prefix("sh:") {
        return Ok(Op::Shell(c.to_string()));
    }
    let bad = || format!("{s:?}: expected r:OFF[:SIZE], w:OFF:SIZE:VALUE, reset or sh:COMMAND");
    let parts: Vec<&str> = s.split(':').collect();
    let (kind, offset, size, value) = match parts.as_slice() {
        ["r", o] => ("r", num(o), Some(4), None),
        ["r", o, z] => ("r", num(o), num(z), None),
        ["w", o, z, v] => ("w", num(o), num(z), num(v)),
        _ => return Err(bad()),
    };
    let (Some(offset), Some(size)) = (offset, size) else {
        return Err(bad());
    };
    if !matches!(size, 1 | 2 | 4) || offset.saturating_add(size) > 4096 {
        return Err(format!("{s:?}: size must be 1, 2 or 4 within 0..4096"));
    }
    let (offset, size) = (
        u16::try_from(offset).map_err(|_| bad())?,
        u8::try_from(size).map_err(|_| bad())?,
    );
    match (kind, value) {
        ("r", _) => Ok(Op::Read { offset, size }),
        (_, Some(value)) => {
            if size < 4 && value >> (u32::from(size) * 8) != 0 {
                return Err(format!("{s:?}: value does not fit in {size} bytes"));
            }
            Ok(Op::Write {
                offset,
                size,
                value,
            })
        }
        _ => Err(bad()),
    }
}

fn num64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Region steps: `size:R`, `br:R:OFF:SIZE`, `bw:R:OFF:SIZE:VALUE`, `mmap:R:OFF:LEN`,
/// `ioeventfd:R:OFF:SIZE` (R a region index, 0..5 the BARs, 6 the ROM).
fn parse_region_op(s: &str) -> Result<Option<Op>, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let bad = || {
        format!("{s:?}: expected size:R, br:R:OFF:SIZE, bw:R:OFF:SIZE:VALUE, mmap:R:OFF:LEN or ioeventfd:R:OFF:SIZE")
    };
    let region = |t: &str| num(t).ok_or_else(bad);
    let size = |t: &str| {
        num(t)
            .filter(|z| matches!(z, 1 | 2 | 4 | 8))
            .and_then(|z| u8::try_from(z).ok())
            .ok_or_else(bad)
    };
    let n64 = |t: &str| num64(t).ok_or_else(bad);
    Ok(Some(match parts.as_slice() {
        ["size", r] => Op::Size { region: region(r)? },
        ["br", r, o, z] => Op::RegionRead {
            region: region(r)?,
            offset: n64(o)?,
            size: size(z)?,
        },
        ["bw", r, o, z, v] => Op::RegionWrite {
            region: region(r)?,
            offset: n64(o)?,
            size: size(z)?,
            value: n64(v)?,
        },
        ["mmap", r, o, l] => Op::Mmap {
            region: region(r)?,
            offset: n64(o)?,
            len: n64(l)?,
        },
        ["ioeventfd", r, o, z] => Op::Ioeventfd {
            region: region(r)?,
            offset: n64(o)?,
            size: size(z)?,
        },
        [k, ..] if matches!(*k, "size" | "br" | "bw" | "mmap" | "ioeventfd") => return Err(bad()),
        _ => return Ok(None),
    }))
}

/// What an errno from writing the `persona` attribute means.
pub fn persona_errno_text(errno: i32) -> &'static str {
    match errno {
        libc::EBUSY => "the device is open (a VFIO user holds it); close it first",
        libc::EINVAL => {
            "the persona is malformed or does not fit this device; the reason is in the kernel log (dmesg | grep persona_vfio_pci)"
        }
        libc::ENOENT => {
            "no such persona: persona-vfio-pci/NAME@VERSION.bin is not in the firmware search path (compile it with `vfio-persona compile`)"
        }
        _ => "see the kernel log (dmesg | grep persona_vfio_pci)",
    }
}

/// Checks a persona selector: `auto` or `name@major.minor`.
///
/// # Errors
///
/// A message for anything else.
pub fn check_selector(s: &str) -> Result<(), String> {
    if s == "auto" {
        return Ok(());
    }
    let bad = || format!("{s:?}: a persona is `auto` or NAME@MAJOR.MINOR");
    let (name, ver) = s.split_once('@').ok_or_else(bad)?;
    let (major, minor) = ver.split_once('.').ok_or_else(bad)?;
    let n = |t: &str| {
        !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()) && t.parse::<u16>().is_ok()
    };
    let name_ok = !name.is_empty()
        && name.len() <= persona_core::persona::MAX_NAME
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'));
    if !name_ok || !n(major) || !n(minor) {
        return Err(bad());
    }
    Ok(())
}

/// Parses the `persona` attribute: `name@major.minor <digest>`.
pub fn parse_persona_attr(s: &str) -> Option<(String, [u8; DIGEST_LEN])> {
    let mut it = s.split_whitespace();
    let sel = it.next()?.to_string();
    let d = it.next()?;
    if it.next().is_some() || d.len() != 2 * DIGEST_LEN {
        return None;
    }
    let mut digest = [0u8; DIGEST_LEN];
    for (i, b) in digest.iter_mut().enumerate() {
        *b = u8::from_str_radix(d.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some((sel, digest))
}
