//! The binary persona format (what the kernel loads) and its validating, zero-copy parser.
//!
//! # Layout (format version 2, all integers little-endian)
//!
//! ```text
//! header, 184 bytes
//!   0x00  [u8; 8]  magic "PVFPRSNA"
//!   0x08  u16      format version = 2 (version 1 had no BAR table and no pinned values)
//!   0x0a  u16      reserved, 0
//!   0x0c  u32      total length of the blob in bytes
//!   0x10  u16 u16  persona version major, minor
//!   0x14  u16      vendor ID
//!   0x16  u16      device ID
//!   0x18  u16      subsystem vendor ID
//!   0x1a  u16      subsystem ID
//!   0x1c  u32      class code (24 bits; the top byte is 0)
//!   0x20  u8       revision ID
//!   0x21  u8       presented config size: 0 = 256 bytes, 1 = 4096 bytes
//!   0x22  u8       number of capability entries, <= 48
//!   0x23  u8       name length, 1..=32
//!   0x24  u16      number of byte-rule runs, 1..=256
//!   0x26  u16      reserved, 0
//!   0x28  [u8; 32] name: printable ASCII (0x20..=0x7e), zero padded
//!   0x48  7 x 16   BAR 0..5 and the expansion ROM: u64 size, u8 kind (0 unused, 1 io,
//!                  2 mem32, 3 mem64, 4 upper half of the 64-bit BAR before it), u8 flags (bit 0
//!                  prefetchable), 6 reserved bytes
//! capability entries, 16 bytes each
//!   +0  u8   kind: 1 physical, 2 synthesized, 3 PASID, 4 hidden
//!   +1  u8   space: 0 standard, 1 extended
//!   +2  u16  capability ID
//!   +4  u8   instance (physical and hidden entries, else 0)
//!   +5  u8   version (extended capabilities, else 0)
//!   +6  u16  virtual offset (0 for hidden entries)
//!   +8  u16  length (0 for hidden entries)
//!   +10 u8   PASID width (PASID entries, else 0)
//!   +11 u8   PASID flags: bit 0 exec, bit 1 privileged (PASID entries, else 0)
//!   +12 u32  reserved, 0
//! byte-rule runs, 6 bytes each
//!   +0  u16  start offset
//!   +2  u16  length, >= 1
//!   +4  u8   rule: 0 hidden, 1 pinned, 2 dynamic, 3 emulated
//!   +5  u8   reserved, 0
//! data: for each non-hidden run in order, `length` value bytes then `length` mask bytes: the
//!   reset value and write mask of emulated bytes (at most 1024 emulated bytes in total), the
//!   pinned value and pin mask of pinned and dynamic bytes (value bits outside the mask are 0)
//! ```
//!
//! # Canonical form
//!
//! There is exactly one encoding of each persona, so the SHA-256 of the blob identifies it; the
//! parser rejects everything else:
//!
//! - presented entries come first, sorted by (space, offset), then hidden entries sorted by
//!   (space, ID, instance); no entry is duplicated and presented ranges do not overlap;
//! - runs cover the presented config space exactly, in order, and two adjacent runs never have
//!   the same rule (they would be one run);
//! - all reserved fields and padding bytes are zero;
//! - redundant information must agree: emulated ID bytes equal the ID fields, capability
//!   headers are emulated read-only bytes whose chains visit exactly the presented entries, and
//!   a PASID entry's bytes are exactly [`super::pasid_bytes`] of its parameters; the BAR and
//!   ROM registers are emulated with exactly the value and write mask of the BAR table
//!   ([`super::BarInfo::register`]); pinned ID bytes are fully pinned to the ID fields.
//!
//! The parser runs in bounded time: a fixed number of passes over at most 48 entries and 256
//! runs, with per-byte lookups that scan the runs.

use super::super::error::{ParseError, ParseReason};
use super::super::pci::{self, Space};
use super::super::sha256::{Sha256, DIGEST_LEN};
use super::device::{BarInfo, BarKind, NBARS, ROM_INDEX};
use super::{
    pasid_bytes, CapEntry, CapKind, IdField, Ids, PasidInfo, Rule, Version, MAX_CAPS, MAX_EMULATED,
    MAX_NAME, MAX_RUNS, SPACE,
};

/// Magic bytes at the start of every blob.
pub const MAGIC: [u8; 8] = *b"PVFPRSNA";
/// The format version this code reads and writes.
pub const FORMAT_VERSION: u16 = 2;
/// Size of the fixed header (with the BAR table).
pub const HEADER_LEN: usize = BARS_OFF + NBARS * BAR_LEN;
/// Offset of the BAR table in the header.
pub const BARS_OFF: usize = 0x48;
/// Size of one BAR table entry.
pub const BAR_LEN: usize = 16;
/// Size of one capability entry.
pub const CAP_LEN: usize = 16;
/// Size of one run.
pub const RUN_LEN: usize = 6;
/// Largest possible blob.
pub const MAX_BLOB: usize = HEADER_LEN + MAX_CAPS * CAP_LEN + MAX_RUNS * RUN_LEN + 2 * SPACE;

/// Config offsets of the BAR registers and the ROM register, by BAR table index.
pub const BAR_REGS: [usize; NBARS] = [0x10, 0x14, 0x18, 0x1c, 0x20, 0x24, 0x30];

/// Offset of the name in the header.
pub(super) const NAME_OFF: usize = 0x28;

/// One run of bytes sharing a rule, as stored in a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run<'a> {
    /// First config offset of the run.
    pub start: u16,
    /// Number of bytes.
    pub len: u16,
    /// Rule of all bytes in the run.
    pub rule: Rule,
    /// For non-hidden runs: the reset values (emulated) or pinned values.
    pub value: &'a [u8],
    /// For non-hidden runs: the write masks (emulated) or pin masks.
    pub mask: &'a [u8],
    /// Offset of the run's record in the blob (for error reports).
    pub blob_offset: usize,
}

impl Run<'_> {
    /// End (exclusive) of the run.
    pub fn end(&self) -> usize {
        usize::from(self.start).saturating_add(usize::from(self.len))
    }
}

/// The rule of one config byte, with its value and mask (0 when hidden).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRule {
    /// The rule.
    pub rule: Rule,
    /// Reset value (emulated) or pinned value (pinned, dynamic).
    pub value: u8,
    /// Write mask (emulated) or pin mask (pinned, dynamic).
    pub mask: u8,
    /// Offset in the blob of the run holding this byte.
    pub blob_offset: usize,
}

fn le16(b: &[u8], off: usize) -> Result<u16, ParseError> {
    pci::rd16(b, off).ok_or(ParseError::new(off, ParseReason::Truncated))
}

fn le32(b: &[u8], off: usize) -> Result<u32, ParseError> {
    pci::rd32(b, off).ok_or(ParseError::new(off, ParseReason::Truncated))
}

fn byte(b: &[u8], off: usize) -> Result<u8, ParseError> {
    pci::rd8(b, off).ok_or(ParseError::new(off, ParseReason::Truncated))
}

fn fail<T>(offset: usize, reason: ParseReason) -> Result<T, ParseError> {
    Err(ParseError::new(offset, reason))
}

/// A validated, zero-copy view of a persona blob.
///
/// Every accessor is total: after [`PersonaRef::parse`] succeeded, the blob is known to be
/// well-formed and canonical.
#[derive(Clone, Copy, Debug)]
pub struct PersonaRef<'a> {
    blob: &'a [u8],
    n_caps: usize,
    n_runs: usize,
}

/// Iterator over the capability entries of a persona, in blob order.
#[derive(Clone, Debug)]
pub struct CapIter<'a> {
    blob: &'a [u8],
    next: usize,
    end: usize,
}

impl Iterator for CapIter<'_> {
    type Item = CapEntry;

    fn next(&mut self) -> Option<CapEntry> {
        while self.next < self.end {
            let at = self.next;
            self.next = at.saturating_add(CAP_LEN);
            if let Ok(e) = decode_cap(self.blob, at) {
                return Some(e);
            }
        }
        None
    }
}

/// Iterator over the runs of a persona.
#[derive(Clone, Debug)]
pub struct RunIter<'a> {
    blob: &'a [u8],
    rec: usize,
    rec_end: usize,
    data: usize,
}

impl<'a> Iterator for RunIter<'a> {
    type Item = Run<'a>;

    fn next(&mut self) -> Option<Run<'a>> {
        if self.rec >= self.rec_end {
            return None;
        }
        let at = self.rec;
        self.rec = at.saturating_add(RUN_LEN);
        let start = pci::rd16(self.blob, at)?;
        let len = pci::rd16(self.blob, at.saturating_add(2))?;
        let rule = Rule::from_u8(pci::rd8(self.blob, at.saturating_add(4))?)?;
        let (value, mask): (&[u8], &[u8]) = if rule.has_data() {
            let n = usize::from(len);
            let v_end = self.data.checked_add(n)?;
            let m_end = v_end.checked_add(n)?;
            let v = self.blob.get(self.data..v_end)?;
            let m = self.blob.get(v_end..m_end)?;
            self.data = m_end;
            (v, m)
        } else {
            (&[], &[])
        };
        Some(Run {
            start,
            len,
            rule,
            value,
            mask,
            blob_offset: at,
        })
    }
}

fn decode_cap(b: &[u8], at: usize) -> Result<CapEntry, ParseError> {
    let kind =
        CapKind::from_u8(byte(b, at)?).ok_or(ParseError::new(at, ParseReason::BadCapKind))?;
    let space = match byte(b, at.saturating_add(1))? {
        0 => Space::Standard,
        1 => Space::Extended,
        _ => return fail(at.saturating_add(1), ParseReason::BadSpace),
    };
    let flags = byte(b, at.saturating_add(11))?;
    Ok(CapEntry {
        kind,
        space,
        id: le16(b, at.saturating_add(2))?,
        instance: byte(b, at.saturating_add(4))?,
        version: byte(b, at.saturating_add(5))?,
        offset: le16(b, at.saturating_add(6))?,
        len: le16(b, at.saturating_add(8))?,
        pasid_width: byte(b, at.saturating_add(10))?,
        pasid_exec: flags & 1 != 0,
        pasid_priv: flags & 2 != 0,
    })
}

/// Key that orders entries canonically.
pub(super) fn cap_sort_key(e: &CapEntry) -> (u8, u8, u16, u16, u8) {
    let space = match e.space {
        Space::Standard => 0,
        Space::Extended => 1,
    };
    if e.kind.is_presented() {
        (0, space, e.offset, 0, 0)
    } else {
        (1, space, e.id, 0, e.instance)
    }
}

impl<'a> PersonaRef<'a> {
    /// Validates `blob` and returns a view of it.
    ///
    /// # Errors
    ///
    /// Returns the offset in the blob of the first offending field and why it is wrong, for any
    /// blob that is not the canonical encoding of a valid persona.
    pub fn parse(blob: &'a [u8]) -> Result<Self, ParseError> {
        if blob.len() > MAX_BLOB {
            return fail(0, ParseReason::TooLarge);
        }
        if blob.len() < HEADER_LEN {
            return fail(blob.len(), ParseReason::Truncated);
        }
        if blob.get(..8) != Some(&MAGIC[..]) {
            return fail(0, ParseReason::BadMagic);
        }
        let fv = le16(blob, 8)?;
        if fv != FORMAT_VERSION {
            // The length and layout checks below mean nothing for another version: name it.
            return fail(8, ParseReason::UnsupportedFormat(fv));
        }
        if le16(blob, 0x0a)? != 0 {
            return fail(0x0a, ParseReason::NonZeroReserved);
        }
        let total = usize::try_from(le32(blob, 0x0c)?).unwrap_or(usize::MAX);
        if total != blob.len() {
            return fail(0x0c, ParseReason::LengthMismatch);
        }
        if le32(blob, 0x1c)? > 0x00ff_ffff {
            return fail(0x1c, ParseReason::BadClass);
        }
        if byte(blob, 0x21)? > 1 {
            return fail(0x21, ParseReason::BadConfigSize);
        }
        let n_caps = usize::from(byte(blob, 0x22)?);
        if n_caps > MAX_CAPS {
            return fail(0x22, ParseReason::TooManyCaps);
        }
        let name_len = usize::from(byte(blob, 0x23)?);
        if name_len == 0 || name_len > MAX_NAME {
            return fail(0x23, ParseReason::BadName);
        }
        let n_runs = usize::from(le16(blob, 0x24)?);
        if n_runs == 0 || n_runs > MAX_RUNS {
            return fail(0x24, ParseReason::TooManyRuns);
        }
        if le16(blob, 0x26)? != 0 {
            return fail(0x26, ParseReason::NonZeroReserved);
        }
        for i in 0..MAX_NAME {
            let at = NAME_OFF.saturating_add(i);
            let c = byte(blob, at)?;
            let ok = if i < name_len {
                (0x20..=0x7e).contains(&c)
            } else {
                c == 0
            };
            if !ok {
                let reason = if i < name_len {
                    ParseReason::BadName
                } else {
                    ParseReason::NonZeroReserved
                };
                return fail(at, reason);
            }
        }
        let p = PersonaRef {
            blob,
            n_caps,
            n_runs,
        };
        p.check_bar_table()?;
        p.check_caps()?;
        let data = p.check_runs()?;
        let expected = p.data_start().saturating_add(data.saturating_mul(2));
        if blob.len() < expected {
            return fail(blob.len(), ParseReason::Truncated);
        }
        if blob.len() > expected {
            return fail(expected, ParseReason::TrailingBytes);
        }
        p.check_pins()?;
        p.check_ids()?;
        p.check_bar_bytes()?;
        p.check_cap_bytes()?;
        p.check_chain(Space::Standard)?;
        if p.config_size() > pci::CFG_SIZE {
            p.check_chain(Space::Extended)?;
        }
        Ok(p)
    }

    fn caps_start(&self) -> usize {
        HEADER_LEN
    }

    fn runs_start(&self) -> usize {
        HEADER_LEN.saturating_add(self.n_caps.saturating_mul(CAP_LEN))
    }

    fn data_start(&self) -> usize {
        self.runs_start()
            .saturating_add(self.n_runs.saturating_mul(RUN_LEN))
    }

    /// Validates the capability entries one by one and their canonical order.
    fn check_caps(&self) -> Result<(), ParseError> {
        let cfg = self.config_size();
        let mut prev: Option<CapEntry> = None;
        let mut pasids = 0usize;
        for i in 0..self.n_caps {
            let at = self.caps_start().saturating_add(i.saturating_mul(CAP_LEN));
            let e = decode_cap(self.blob, at)?;
            if le32(self.blob, at.saturating_add(12))? != 0 {
                return fail(at.saturating_add(12), ParseReason::NonZeroReserved);
            }
            if !pasid_flags_ok(self.blob, at) {
                return fail(at.saturating_add(11), ParseReason::NonZeroReserved);
            }
            check_entry(&e, at, cfg)?;
            if e.kind == CapKind::Pasid {
                pasids = pasids.saturating_add(1);
                if pasids > 1 {
                    return fail(at, ParseReason::CapOrder);
                }
            }
            if let Some(p) = prev {
                if cap_sort_key(&p) >= cap_sort_key(&e) {
                    return fail(at, ParseReason::CapOrder);
                }
                if p.kind.is_presented()
                    && e.kind.is_presented()
                    && p.space == e.space
                    && p.end() > usize::from(e.offset)
                {
                    return fail(at.saturating_add(6), ParseReason::CapOverlap);
                }
            }
            prev = Some(e);
        }
        // Each physical capability of the device may be named by one entry only, whether it is
        // presented or hidden.
        for (i, a) in self.caps().enumerate() {
            if !matches!(a.kind, CapKind::Physical | CapKind::Hidden) {
                continue;
            }
            let dup = self.caps().skip(i.saturating_add(1)).any(|b| {
                matches!(b.kind, CapKind::Physical | CapKind::Hidden)
                    && (b.space, b.id, b.instance) == (a.space, a.id, a.instance)
            });
            if dup {
                let at = self.caps_start().saturating_add(i.saturating_mul(CAP_LEN));
                return fail(at, ParseReason::CapOrder);
            }
        }
        Ok(())
    }

    /// Validates the runs; returns the number of emulated bytes.
    fn check_runs(&self) -> Result<usize, ParseError> {
        let mut expect_start = 0usize;
        let mut prev_rule: Option<Rule> = None;
        let mut emulated = 0usize;
        let mut data = 0usize;
        for i in 0..self.n_runs {
            let at = self.runs_start().saturating_add(i.saturating_mul(RUN_LEN));
            let start = usize::from(le16(self.blob, at)?);
            let len = usize::from(le16(self.blob, at.saturating_add(2))?);
            let rule_byte = byte(self.blob, at.saturating_add(4))?;
            if byte(self.blob, at.saturating_add(5))? != 0 {
                return fail(at.saturating_add(5), ParseReason::NonZeroReserved);
            }
            if start != expect_start || len == 0 {
                return fail(at, ParseReason::RunGap);
            }
            let rule = Rule::from_u8(rule_byte).ok_or(ParseError::new(
                at.saturating_add(4),
                ParseReason::BadRuleKind,
            ))?;
            if prev_rule == Some(rule) {
                return fail(at.saturating_add(4), ParseReason::RunNotMaximal);
            }
            expect_start = start.saturating_add(len);
            if expect_start > self.config_size() {
                return fail(at.saturating_add(2), ParseReason::RunCoverage);
            }
            if rule == Rule::Emulated {
                emulated = emulated.saturating_add(len);
                if emulated > MAX_EMULATED {
                    return fail(at.saturating_add(2), ParseReason::TooManyEmulated);
                }
            }
            if rule.has_data() {
                data = data.saturating_add(len);
            }
            prev_rule = Some(rule);
        }
        if expect_start != self.config_size() {
            let last = self
                .runs_start()
                .saturating_add(self.n_runs.saturating_sub(1).saturating_mul(RUN_LEN));
            return fail(last.saturating_add(2), ParseReason::RunCoverage);
        }
        Ok(data)
    }

    /// Validates the BAR table: each entry well-formed, reserved bytes zero.
    fn check_bar_table(&self) -> Result<(), ParseError> {
        let bars = self.bars();
        for i in 0..NBARS {
            let at = BARS_OFF.saturating_add(i.saturating_mul(BAR_LEN));
            if BarKind::from_u8(byte(self.blob, at.saturating_add(8))?).is_none() {
                return fail(at.saturating_add(8), ParseReason::BadBar);
            }
            if byte(self.blob, at.saturating_add(9))? & !1 != 0 {
                return fail(at.saturating_add(9), ParseReason::NonZeroReserved);
            }
            for k in 10..BAR_LEN {
                if byte(self.blob, at.saturating_add(k))? != 0 {
                    return fail(at.saturating_add(k), ParseReason::NonZeroReserved);
                }
            }
            if !BarInfo::valid(&bars, i) {
                return fail(at, ParseReason::BadBar);
            }
        }
        Ok(())
    }

    /// Validates that pinned and dynamic bytes have no value bits outside their pin mask.
    fn check_pins(&self) -> Result<(), ParseError> {
        for r in self.runs().filter(|r| r.rule.is_pass()) {
            if r.value.iter().zip(r.mask.iter()).any(|(v, m)| v & !m != 0) {
                return fail(r.blob_offset, ParseReason::PinValue);
            }
        }
        Ok(())
    }

    /// Validates the BAR and ROM registers: emulated exactly as the BAR table says.
    fn check_bar_bytes(&self) -> Result<(), ParseError> {
        let bars = self.bars();
        for (i, &reg) in BAR_REGS.iter().enumerate() {
            let (value, mask) = BarInfo::register(&bars, i);
            for k in 0..4 {
                let b = self
                    .byte_rule(reg.saturating_add(k))
                    .ok_or(ParseError::new(0, ParseReason::RunCoverage))?;
                let ok = b.rule == Rule::Emulated
                    && Some(&b.value) == value.get(k)
                    && Some(&b.mask) == mask.get(k);
                if !ok {
                    return fail(b.blob_offset, ParseReason::BarRegister);
                }
            }
        }
        Ok(())
    }

    /// Validates the ID bytes: pinned whole to the ID value, or emulated read-only with it.
    fn check_ids(&self) -> Result<(), ParseError> {
        let ids = self.ids();
        for f in IdField::ALL {
            let (o, w) = f.range();
            for off in o..o.saturating_add(w) {
                let b = self
                    .byte_rule(off)
                    .ok_or(ParseError::new(0, ParseReason::RunCoverage))?;
                match b.rule {
                    Rule::Pinned if b.mask == 0xff => {
                        if Some(b.value) != ids.byte_at(off) {
                            return fail(b.blob_offset, ParseReason::IdValue);
                        }
                    }
                    Rule::Emulated if b.mask == 0 => {
                        if Some(b.value) != ids.byte_at(off) {
                            return fail(b.blob_offset, ParseReason::IdValue);
                        }
                    }
                    _ => return fail(b.blob_offset, ParseReason::IdRule),
                }
            }
        }
        Ok(())
    }

    /// Validates the bytes of each presented entry: read-only emulated headers, fully emulated
    /// synthesized capabilities, canonical PASID contents.
    fn check_cap_bytes(&self) -> Result<(), ParseError> {
        for (i, e) in self.caps().enumerate() {
            let at = self.caps_start().saturating_add(i.saturating_mul(CAP_LEN));
            if !e.kind.is_presented() {
                continue;
            }
            let base = usize::from(e.offset);
            let hdr = self.emulated_ro(base, e.header_len(), at)?;
            let [h0, h1, h2, _] = hdr;
            let id_ok = match e.space {
                Space::Standard => u16::from(h0) == e.id,
                Space::Extended => u16::from_le_bytes([h0, h1]) == e.id && h2 & 0xf == e.version,
            };
            if !id_ok {
                return fail(at, ParseReason::CapHeader);
            }
            match e.kind {
                CapKind::Synthesized | CapKind::Pasid => {
                    for off in base..e.end() {
                        let b = self
                            .byte_rule(off)
                            .ok_or(ParseError::new(at, ParseReason::RunCoverage))?;
                        if b.rule != Rule::Emulated {
                            return fail(b.blob_offset, ParseReason::SynthNotEmulated);
                        }
                    }
                }
                CapKind::Physical | CapKind::Hidden => {}
            }
            if e.kind == CapKind::Pasid {
                let (val, mask) = pasid_bytes(e.pasid_width, e.pasid_exec, e.pasid_priv);
                // The header's byte 2 high nibble and byte 3 hold the next pointer, checked by
                // the chain walk; everything else must be exactly the canonical contents.
                for (k, (v, m)) in val.iter().zip(mask.iter()).enumerate().skip(4) {
                    let b = self
                        .byte_rule(base.saturating_add(k))
                        .ok_or(ParseError::new(at, ParseReason::RunCoverage))?;
                    if b.value != *v || b.mask != *m {
                        return fail(b.blob_offset, ParseReason::PasidContent);
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads `len` (<= 4) bytes at `off` that must be emulated read-only.
    fn emulated_ro(&self, off: usize, len: usize, at: usize) -> Result<[u8; 4], ParseError> {
        let mut out = [0u8; 4];
        for (k, o) in out.iter_mut().enumerate().take(len) {
            let b = self
                .byte_rule(off.saturating_add(k))
                .ok_or(ParseError::new(at, ParseReason::CapHeader))?;
            if b.rule != Rule::Emulated {
                return fail(b.blob_offset, ParseReason::CapHeader);
            }
            if b.mask != 0 {
                return fail(b.blob_offset, ParseReason::WritableHeader);
            }
            *o = b.value;
        }
        Ok(out)
    }

    /// Walks the chain of `space` through the emulated header bytes and checks that it visits
    /// every presented entry of that space exactly once.
    fn check_chain(&self, space: Space) -> Result<(), ParseError> {
        let total = self
            .caps()
            .filter(|e| e.kind.is_presented() && e.space == space)
            .count();
        let (mut ptr, head_at) = match space {
            Space::Standard => {
                let [p, ..] = self.emulated_ro(pci::CAPABILITY_LIST, 1, 0)?;
                (
                    usize::from(p),
                    self.byte_rule(pci::CAPABILITY_LIST)
                        .map_or(0, |b| b.blob_offset),
                )
            }
            Space::Extended => {
                let head = self.emulated_ro(pci::CFG_SIZE, 4, 0)?;
                let at = self.byte_rule(pci::CFG_SIZE).map_or(0, |b| b.blob_offset);
                let is_cap = self.cap_at(space, pci::CFG_SIZE).is_some();
                if is_cap {
                    (pci::CFG_SIZE, at)
                } else {
                    // Placeholder head: ID 0, version 0, only a next pointer (as vfio-pci does
                    // when the first physical capability is hidden).
                    let h = u32::from_le_bytes(head);
                    if h & 0x000f_ffff != 0 {
                        return fail(at, ParseReason::Chain);
                    }
                    (usize::try_from(h >> 20).unwrap_or(usize::MAX), at)
                }
            }
        };
        let mut visited = 0usize;
        let mut last_at = head_at;
        while ptr != 0 {
            let Some((i, e)) = self.cap_at(space, ptr) else {
                return fail(last_at, ParseReason::Chain);
            };
            visited = visited.saturating_add(1);
            // Presented entries never overlap, so visiting more entries than exist means a loop.
            if visited > total {
                return fail(last_at, ParseReason::Chain);
            }
            last_at = self.caps_start().saturating_add(i.saturating_mul(CAP_LEN));
            ptr = match space {
                Space::Standard => {
                    let [n, ..] = self.emulated_ro(ptr.saturating_add(1), 1, last_at)?;
                    usize::from(n)
                }
                Space::Extended => {
                    let h = u32::from_le_bytes(self.emulated_ro(ptr, 4, last_at)?);
                    usize::try_from(h >> 20).unwrap_or(usize::MAX)
                }
            };
            let _ = e;
        }
        if visited != total {
            return fail(last_at, ParseReason::Chain);
        }
        Ok(())
    }

    /// The presented entry of `space` whose header is at `off`, with its index.
    fn cap_at(&self, space: Space, off: usize) -> Option<(usize, CapEntry)> {
        self.caps().enumerate().find(|(_, e)| {
            e.kind.is_presented() && e.space == space && usize::from(e.offset) == off
        })
    }

    /// The blob this view was parsed from.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.blob
    }

    /// SHA-256 of the blob: the persona's identity.
    pub fn digest(&self) -> [u8; DIGEST_LEN] {
        Sha256::digest(self.blob)
    }

    /// The persona's name.
    pub fn name(&self) -> &'a str {
        let n = usize::from(pci::rd8(self.blob, 0x23).unwrap_or(0));
        self.blob
            .get(NAME_OFF..NAME_OFF.saturating_add(n))
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// The persona's version.
    pub fn version(&self) -> Version {
        Version {
            major: pci::rd16(self.blob, 0x10).unwrap_or(0),
            minor: pci::rd16(self.blob, 0x12).unwrap_or(0),
        }
    }

    /// The identity the persona presents (or expects, for passthrough ID bytes).
    pub fn ids(&self) -> Ids {
        let b = self.blob;
        Ids {
            vendor: pci::rd16(b, 0x14).unwrap_or(0),
            device: pci::rd16(b, 0x16).unwrap_or(0),
            subsystem_vendor: pci::rd16(b, 0x18).unwrap_or(0),
            subsystem_device: pci::rd16(b, 0x1a).unwrap_or(0),
            class: pci::rd32(b, 0x1c).unwrap_or(0),
            revision: pci::rd8(b, 0x20).unwrap_or(0),
        }
    }

    /// True when every byte of ID field `f` is emulated (presented from the persona) rather
    /// than passed through (and required to match the device).
    pub fn id_emulated(&self, f: IdField) -> bool {
        let (o, w) = f.range();
        (o..o.saturating_add(w)).all(|off| {
            self.byte_rule(off)
                .is_some_and(|b| b.rule == Rule::Emulated)
        })
    }

    /// The BAR table: BAR 0..5 and the ROM (index 6).
    pub fn bars(&self) -> [BarInfo; NBARS] {
        let mut out = [BarInfo::default(); NBARS];
        for (i, b) in out.iter_mut().enumerate() {
            let at = BARS_OFF.saturating_add(i.saturating_mul(BAR_LEN));
            let lo = u64::from(pci::rd32(self.blob, at).unwrap_or(0));
            let hi = u64::from(pci::rd32(self.blob, at.saturating_add(4)).unwrap_or(0));
            *b = BarInfo {
                size: (hi << 32) | lo,
                kind: pci::rd8(self.blob, at.saturating_add(8))
                    .and_then(BarKind::from_u8)
                    .unwrap_or_default(),
                prefetch: pci::rd8(self.blob, at.saturating_add(9)).unwrap_or(0) & 1 != 0,
            };
        }
        out
    }

    /// Size of the ROM the persona presents (0: none).
    pub fn rom_size(&self) -> u64 {
        self.bars().get(ROM_INDEX).map_or(0, |b| b.size)
    }

    /// Presented config size: 256 or 4096 bytes.
    pub fn config_size(&self) -> usize {
        if pci::rd8(self.blob, 0x21) == Some(1) {
            pci::CFG_SIZE_EXT
        } else {
            pci::CFG_SIZE
        }
    }

    /// The capability entries in canonical order (presented by offset, then hidden ones).
    pub fn caps(&self) -> CapIter<'a> {
        CapIter {
            blob: self.blob,
            next: self.caps_start(),
            end: self.runs_start(),
        }
    }

    /// The byte-rule runs in offset order.
    pub fn runs(&self) -> RunIter<'a> {
        RunIter {
            blob: self.blob,
            rec: self.runs_start(),
            rec_end: self.data_start(),
            data: self.data_start(),
        }
    }

    /// Number of emulated bytes (the size of the overlay's register state).
    pub fn emulated_len(&self) -> usize {
        self.runs()
            .filter(|r| r.rule == Rule::Emulated)
            .map(|r| usize::from(r.len))
            .fold(0usize, usize::saturating_add)
    }

    /// The rule of config byte `off`, or `None` past the presented config size.
    pub fn byte_rule(&self, off: usize) -> Option<ByteRule> {
        let r = self
            .runs()
            .find(|r| off >= usize::from(r.start) && off < r.end())?;
        let k = off.checked_sub(usize::from(r.start))?;
        Some(ByteRule {
            rule: r.rule,
            value: r.value.get(k).copied().unwrap_or(0),
            mask: r.mask.get(k).copied().unwrap_or(0),
            blob_offset: r.blob_offset,
        })
    }

    /// True when the persona forwards the Interrupt Line (0x3c) to vfio-pci-core instead of
    /// emulating it: what personas derived before the byte became the persona's said (dynamic),
    /// and what the parity form says on purpose. Such a persona keeps its meaning (the user sees
    /// the host's routing, and migration does not carry the byte); the kernel says so in its
    /// log at selection, so the gap is never silent. A persona keeps its promise on that byte
    /// only when it emulates it (what `derive` writes).
    pub fn forwards_interrupt_line(&self) -> bool {
        self.byte_rule(pci::INTERRUPT_LINE)
            .is_some_and(|b| b.rule.is_pass())
    }

    /// The presented entry whose virtual range contains `off`.
    pub fn cap_containing(&self, space: Space, off: usize) -> Option<CapEntry> {
        self.caps().find(|e| e.space == space && e.contains(off))
    }

    /// The synthesized PASID capability, if the persona presents one.
    pub fn pasid(&self) -> Option<PasidInfo> {
        self.caps()
            .find(|e| e.kind == CapKind::Pasid)
            .map(|e| PasidInfo {
                offset: e.offset,
                width: e.pasid_width,
                exec: e.pasid_exec,
                privileged: e.pasid_priv,
            })
    }
}

/// Validates one capability entry on its own.
fn check_entry(e: &CapEntry, at: usize, cfg: usize) -> Result<(), ParseError> {
    let pasid_fields = e.pasid_width != 0 || e.pasid_exec || e.pasid_priv;
    let flags_at = at.saturating_add(10);
    // Flags other than exec and privileged are rejected through the raw byte.
    if e.kind != CapKind::Pasid && pasid_fields {
        return fail(flags_at, ParseReason::NonZeroReserved);
    }
    match e.space {
        Space::Standard => {
            if e.id == 0 || e.id > 0xff {
                return fail(at.saturating_add(2), ParseReason::BadCapId);
            }
            if e.version != 0 {
                return fail(at.saturating_add(5), ParseReason::NonZeroReserved);
            }
        }
        Space::Extended => {
            if e.id == 0 {
                return fail(at.saturating_add(2), ParseReason::BadCapId);
            }
            if e.version > 0xf {
                return fail(at.saturating_add(5), ParseReason::BadCapId);
            }
            if cfg <= pci::CFG_SIZE {
                return fail(at.saturating_add(1), ParseReason::BadSpace);
            }
        }
    }
    match e.kind {
        CapKind::Hidden => {
            if e.offset != 0 || e.len != 0 {
                return fail(at.saturating_add(6), ParseReason::NonZeroReserved);
            }
            return Ok(());
        }
        CapKind::Physical => {
            if e.space == Space::Extended && e.id == pci::EXT_CAP_ID_PASID {
                return fail(at.saturating_add(2), ParseReason::ForbiddenPhysical);
            }
        }
        CapKind::Synthesized => {
            if e.instance != 0 {
                return fail(at.saturating_add(4), ParseReason::NonZeroReserved);
            }
            if e.space == Space::Extended && e.id == pci::EXT_CAP_ID_PASID {
                return fail(at.saturating_add(2), ParseReason::BadPasid);
            }
        }
        CapKind::Pasid => {
            let ok = e.space == Space::Extended
                && e.id == pci::EXT_CAP_ID_PASID
                && e.version == pci::PASID_VERSION
                && e.instance == 0
                && usize::from(e.len) == pci::PASID_SIZEOF
                && (1..=pci::PASID_MAX_WIDTH).contains(&e.pasid_width);
            if !ok {
                return fail(at, ParseReason::BadPasid);
            }
        }
    }
    let (lo, hi) = match e.space {
        Space::Standard => (pci::STD_HEADER_SIZEOF, pci::CFG_SIZE),
        Space::Extended => (pci::CFG_SIZE, pci::CFG_SIZE_EXT),
    };
    let off = usize::from(e.offset);
    if off < lo || off % 4 != 0 || usize::from(e.len) < e.header_len() || e.end() > hi {
        return fail(at.saturating_add(6), ParseReason::CapOutOfRange);
    }
    Ok(())
}

/// Validates the PASID flags byte (only bits 0 and 1 may be set).
pub(super) fn pasid_flags_ok(blob: &[u8], at: usize) -> bool {
    pci::rd8(blob, at.saturating_add(11)).is_some_and(|f| f & !3 == 0)
}
