//! The editable form of a persona, used to build blobs (derive, the tool's text format) and to
//! read them back.
//!
//! A [`PersonaModel`] is about 13 KiB: it holds a rule, a value and a write mask for each of the
//! 4096 config bytes. It must live in caller-provided storage (a `Box` on the host; in the
//! kernel a zero-initialised allocation, since all-zero bytes are a valid empty model). Nothing
//! here returns it by value.

use super::super::error::{Error, ParseError, ParseReason};
use super::super::pci::{self, Space};
use super::device::{BarInfo, NBARS};
use super::format::BAR_REGS;
use super::format::{cap_sort_key, PersonaRef, FORMAT_VERSION, MAGIC, NAME_OFF, RUN_LEN};
use super::{
    pasid_bytes, CapEntry, CapKind, IdField, Ids, Rule, Version, MAX_CAPS, MAX_NAME, MAX_RUNS,
    SPACE,
};

/// An editable persona: identity, capability entries and a rule table for all 4096 bytes.
///
/// Presented capability entries are kept in chain order (per space); [`Self::apply_layout`]
/// writes the emulated headers that encode that order. [`Self::encode`] produces the canonical
/// blob.
#[derive(Clone, Debug)]
pub struct PersonaModel {
    /// Name bytes (printable ASCII), `name_len` of them used.
    pub name: [u8; MAX_NAME],
    /// Length of the name.
    pub name_len: usize,
    /// Persona version.
    pub version: Version,
    /// Identity; bytes of fields in `emulated_ids` are presented from here, the others are
    /// passed through and must match the device.
    pub ids: Ids,
    /// Set of [`IdField::bit`]s of emulated ID fields.
    pub emulated_ids: u8,
    /// Presented config size: 256 or 4096.
    pub config_size: usize,
    /// Capability entries; presented ones in chain order per space.
    pub caps: [CapEntry; MAX_CAPS],
    /// Number of used entries in `caps`.
    pub n_caps: usize,
    /// BAR 0..5 and the ROM the persona presents.
    pub bars: [BarInfo; NBARS],
    /// Rule of each config byte.
    pub rule: [Rule; SPACE],
    /// Reset value (emulated) or pinned value (pinned, dynamic) of each config byte.
    pub value: [u8; SPACE],
    /// Write mask (emulated) or pin mask (pinned, dynamic) of each config byte.
    pub mask: [u8; SPACE],
}

impl Default for PersonaModel {
    fn default() -> Self {
        Self {
            name: [0; MAX_NAME],
            name_len: 0,
            version: Version::default(),
            ids: Ids::default(),
            emulated_ids: 0,
            config_size: pci::CFG_SIZE,
            caps: [CapEntry::default(); MAX_CAPS],
            n_caps: 0,
            bars: [BarInfo::default(); NBARS],
            rule: [Rule::Hidden; SPACE],
            value: [0; SPACE],
            mask: [0; SPACE],
        }
    }
}

/// Cursor over an output buffer that fails instead of panicking.
struct Writer<'a> {
    out: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) -> Result<(), Error> {
        let end = self.pos.checked_add(b.len()).ok_or(Error::BufferTooSmall)?;
        self.out
            .get_mut(self.pos..end)
            .ok_or(Error::BufferTooSmall)?
            .copy_from_slice(b);
        self.pos = end;
        Ok(())
    }

    fn u8(&mut self, v: u8) -> Result<(), Error> {
        self.bytes(&[v])
    }

    fn u16(&mut self, v: u16) -> Result<(), Error> {
        self.bytes(&v.to_le_bytes())
    }

    fn u32(&mut self, v: u32) -> Result<(), Error> {
        self.bytes(&v.to_le_bytes())
    }

    fn patch(&mut self, at: usize, b: &[u8]) -> Result<(), Error> {
        let end = at.checked_add(b.len()).ok_or(Error::BufferTooSmall)?;
        self.out
            .get_mut(at..end)
            .ok_or(Error::BufferTooSmall)?
            .copy_from_slice(b);
        Ok(())
    }
}

fn invalid(offset: usize, reason: ParseReason) -> Error {
    Error::Invalid(ParseError::new(offset, reason))
}

impl PersonaModel {
    /// Resets the model to empty: no name, no capabilities, 256 hidden bytes.
    pub fn clear(&mut self) {
        self.name = [0; MAX_NAME];
        self.name_len = 0;
        self.version = Version::default();
        self.ids = Ids::default();
        self.emulated_ids = 0;
        self.config_size = pci::CFG_SIZE;
        self.caps = [CapEntry::default(); MAX_CAPS];
        self.n_caps = 0;
        self.bars = [BarInfo::default(); NBARS];
        self.rule = [Rule::Hidden; SPACE];
        self.value = [0; SPACE];
        self.mask = [0; SPACE];
    }

    /// Sets the name.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] with [`ParseReason::BadName`] unless `name` is 1..=32 bytes of
    /// printable ASCII.
    pub fn set_name(&mut self, name: &str) -> Result<(), Error> {
        let b = name.as_bytes();
        if b.is_empty() || b.len() > MAX_NAME || !b.iter().all(|c| (0x20..=0x7e).contains(c)) {
            return Err(invalid(NAME_OFF, ParseReason::BadName));
        }
        self.name = [0; MAX_NAME];
        if let Some(dst) = self.name.get_mut(..b.len()) {
            dst.copy_from_slice(b);
        }
        self.name_len = b.len();
        Ok(())
    }

    /// The name.
    pub fn name(&self) -> &str {
        self.name
            .get(..self.name_len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// The used capability entries.
    pub fn caps(&self) -> &[CapEntry] {
        self.caps.get(..self.n_caps).unwrap_or(&[])
    }

    /// Appends a capability entry (chain order is the order of appending).
    ///
    /// # Errors
    ///
    /// [`Error::TooManyCaps`] when the model already holds [`MAX_CAPS`] entries.
    pub fn push_cap(&mut self, e: CapEntry) -> Result<(), Error> {
        let slot = self.caps.get_mut(self.n_caps).ok_or(Error::TooManyCaps)?;
        *slot = e;
        self.n_caps = self.n_caps.saturating_add(1);
        Ok(())
    }

    /// Sets the rule of bytes `start..end` (clamped to 4096); emulated bytes keep their value.
    pub fn set_rule(&mut self, start: usize, end: usize, rule: Rule) {
        let end = end.min(SPACE);
        if let Some(r) = self.rule.get_mut(start.min(end)..end) {
            r.fill(rule);
        }
    }

    /// Makes byte `off` pinned (or dynamic) with value `value` under pin mask `mask`.
    pub fn set_pass(&mut self, off: usize, rule: Rule, value: u8, mask: u8) {
        if let (Some(r), Some(v), Some(m)) = (
            self.rule.get_mut(off),
            self.value.get_mut(off),
            self.mask.get_mut(off),
        ) {
            *r = rule;
            *v = value & mask;
            *m = mask;
        }
    }

    /// Makes byte `off` emulated with reset value `value` and write mask `mask`.
    pub fn set_emulated(&mut self, off: usize, value: u8, mask: u8) {
        if let (Some(r), Some(v), Some(m)) = (
            self.rule.get_mut(off),
            self.value.get_mut(off),
            self.mask.get_mut(off),
        ) {
            *r = Rule::Emulated;
            *v = value;
            *m = mask;
        }
    }

    /// Writes everything the capability entries and ID settings imply: ID byte rules, the
    /// capability pointer, every presented header with next pointers in chain order, the
    /// extended chain head at 0x100, PASID contents, and emulated rules over synthesized
    /// capabilities (keeping their values and masks).
    pub fn apply_layout(&mut self) {
        for f in IdField::ALL {
            let (o, w) = f.range();
            for off in o..o.saturating_add(w) {
                let v = self.ids.byte_at(off).unwrap_or(0);
                if self.emulated_ids & f.bit() != 0 {
                    self.set_emulated(off, v, 0);
                } else {
                    self.set_pass(off, Rule::Pinned, v, 0xff);
                }
            }
        }
        for (i, &reg) in BAR_REGS.iter().enumerate() {
            let (v, m) = BarInfo::register(&self.bars, i);
            for (k, (v, m)) in v.iter().zip(m.iter()).enumerate() {
                self.set_emulated(reg.saturating_add(k), *v, *m);
            }
        }
        for i in 0..self.n_caps {
            let Some(e) = self.caps.get(i).copied() else {
                continue;
            };
            let start = usize::from(e.offset);
            match e.kind {
                CapKind::Synthesized => {
                    for off in start..e.end() {
                        let (v, m) = (self.byte(off).1, self.byte(off).2);
                        self.set_emulated(off, v, m);
                    }
                }
                CapKind::Pasid => {
                    let (v, m) = pasid_bytes(e.pasid_width, e.pasid_exec, e.pasid_priv);
                    for (k, (v, m)) in v.iter().zip(m.iter()).enumerate() {
                        self.set_emulated(start.saturating_add(k), *v, *m);
                    }
                }
                CapKind::Physical | CapKind::Hidden => {}
            }
        }
        self.link_standard();
        if self.config_size > pci::CFG_SIZE {
            self.link_extended();
        }
    }

    fn byte(&self, off: usize) -> (Rule, u8, u8) {
        (
            self.rule.get(off).copied().unwrap_or(Rule::Hidden),
            self.value.get(off).copied().unwrap_or(0),
            self.mask.get(off).copied().unwrap_or(0),
        )
    }

    /// Offsets of presented entries of `space` after index `i` in chain order.
    fn next_presented(&self, space: Space, after: Option<usize>) -> Option<(usize, CapEntry)> {
        let from = after.map_or(0, |a| a.saturating_add(1));
        self.caps()
            .iter()
            .copied()
            .enumerate()
            .skip(from)
            .find(|(_, e)| e.kind.is_presented() && e.space == space)
    }

    fn link_standard(&mut self) {
        let first = self.next_presented(Space::Standard, None);
        let head = first.map_or(0, |(_, e)| e.offset);
        self.set_emulated(pci::CAPABILITY_LIST, u8::try_from(head).unwrap_or(0), 0);
        let mut cur = first;
        while let Some((i, e)) = cur {
            let next = self.next_presented(Space::Standard, Some(i));
            let off = usize::from(e.offset);
            self.set_emulated(off, u8::try_from(e.id).unwrap_or(0), 0);
            let n = next.map_or(0, |(_, n)| u8::try_from(n.offset).unwrap_or(0));
            self.set_emulated(off.saturating_add(1), n, 0);
            cur = next;
        }
    }

    fn link_extended(&mut self) {
        // The chain must start at 0x100: a capability placed there goes first.
        let at_head = self.caps().iter().position(|e| {
            e.kind.is_presented()
                && e.space == Space::Extended
                && usize::from(e.offset) == pci::CFG_SIZE
        });
        if let Some(h) = at_head {
            if let Some((first, _)) = self.next_presented(Space::Extended, None) {
                if first != h {
                    let e = self.caps.get(h).copied().unwrap_or_default();
                    // Rotate the head entry in front of the first extended entry.
                    let mut k = h;
                    while k > first {
                        let prev = self
                            .caps
                            .get(k.saturating_sub(1))
                            .copied()
                            .unwrap_or_default();
                        if let Some(s) = self.caps.get_mut(k) {
                            *s = prev;
                        }
                        k = k.saturating_sub(1);
                    }
                    if let Some(s) = self.caps.get_mut(first) {
                        *s = e;
                    }
                }
            }
        }
        let first = self.next_presented(Space::Extended, None);
        let mut cur = first;
        if first.is_none_or(|(_, e)| usize::from(e.offset) != pci::CFG_SIZE) {
            let next = first.map_or(0, |(_, e)| u32::from(e.offset));
            self.set_ext_header(pci::CFG_SIZE, 0, 0, next);
        }
        while let Some((i, e)) = cur {
            let next = self.next_presented(Space::Extended, Some(i));
            let n = next.map_or(0, |(_, n)| u32::from(n.offset));
            self.set_ext_header(usize::from(e.offset), e.id, e.version, n);
            cur = next;
        }
    }

    fn set_ext_header(&mut self, off: usize, id: u16, version: u8, next: u32) {
        let h = pci::ExtCapHeader(0)
            .with_id(u32::from(id))
            .with_version(u32::from(version))
            .with_next(next);
        for (k, b) in h.0.to_le_bytes().into_iter().enumerate() {
            self.set_emulated(off.saturating_add(k), b, 0);
        }
    }

    /// Encodes the model into its canonical blob in `out`; returns the blob length.
    ///
    /// The encoder validates its own output with [`PersonaRef::parse`], so a successful encode
    /// always yields a blob the kernel accepts.
    ///
    /// # Errors
    ///
    /// [`Error::BufferTooSmall`] if `out` cannot hold the blob, [`Error::Invalid`] if the model
    /// is not a valid persona (e.g. after changing entries without [`Self::apply_layout`]).
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        let size_code: u8 = match self.config_size {
            pci::CFG_SIZE => 0,
            pci::CFG_SIZE_EXT => 1,
            _ => return Err(invalid(0x21, ParseReason::BadConfigSize)),
        };
        if self.name_len == 0 || self.name_len > MAX_NAME {
            return Err(invalid(0x23, ParseReason::BadName));
        }
        let n_caps = u8::try_from(self.n_caps)
            .ok()
            .filter(|&n| usize::from(n) <= MAX_CAPS)
            .ok_or(invalid(0x22, ParseReason::TooManyCaps))?;
        let mut w = Writer { out, pos: 0 };
        w.bytes(&MAGIC)?;
        w.u16(FORMAT_VERSION)?;
        w.u16(0)?;
        w.u32(0)?; // total length, patched below
        w.u16(self.version.major)?;
        w.u16(self.version.minor)?;
        w.u16(self.ids.vendor)?;
        w.u16(self.ids.device)?;
        w.u16(self.ids.subsystem_vendor)?;
        w.u16(self.ids.subsystem_device)?;
        w.u32(self.ids.class)?;
        w.u8(self.ids.revision)?;
        w.u8(size_code)?;
        w.u8(n_caps)?;
        w.u8(u8::try_from(self.name_len).unwrap_or(0))?;
        w.u16(0)?; // run count, patched below
        w.u16(0)?;
        w.bytes(&self.name)?;
        for b in &self.bars {
            w.u32(u32::try_from(b.size & 0xffff_ffff).unwrap_or(0))?;
            w.u32(u32::try_from(b.size >> 32).unwrap_or(0))?;
            w.u8(b.kind as u8)?;
            w.u8(u8::from(b.prefetch))?;
            w.u16(0)?;
            w.u32(0)?;
        }
        self.encode_caps(&mut w)?;
        let runs_at = w.pos;
        let n_runs = self.encode_runs(&mut w)?;
        self.encode_data(&mut w, runs_at, n_runs)?;
        let total = w.pos;
        w.patch(
            0x0c,
            &u32::try_from(total).unwrap_or(u32::MAX).to_le_bytes(),
        )?;
        w.patch(
            0x24,
            &u16::try_from(n_runs).unwrap_or(u16::MAX).to_le_bytes(),
        )?;
        let blob = w.out.get(..total).ok_or(Error::BufferTooSmall)?;
        PersonaRef::parse(blob)?;
        Ok(total)
    }

    fn encode_caps(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        let mut order = [0u8; MAX_CAPS];
        for (i, o) in order.iter_mut().enumerate() {
            *o = u8::try_from(i).unwrap_or(0);
        }
        let order = order.get_mut(..self.n_caps).unwrap_or(&mut []);
        order.sort_unstable_by_key(|&i| {
            self.caps
                .get(usize::from(i))
                .map(cap_sort_key)
                .unwrap_or_default()
        });
        for &i in order.iter() {
            let e = self.caps.get(usize::from(i)).copied().unwrap_or_default();
            let presented = e.kind.is_presented();
            w.u8(e.kind as u8)?;
            w.u8(match e.space {
                Space::Standard => 0,
                Space::Extended => 1,
            })?;
            w.u16(e.id)?;
            w.u8(e.instance)?;
            w.u8(e.version)?;
            w.u16(if presented { e.offset } else { 0 })?;
            w.u16(if presented { e.len } else { 0 })?;
            w.u8(e.pasid_width)?;
            w.u8(u8::from(e.pasid_exec) | (u8::from(e.pasid_priv) << 1))?;
            w.u32(0)?;
        }
        Ok(())
    }

    /// Writes maximal runs over the presented config size; returns how many.
    fn encode_runs(&self, w: &mut Writer<'_>) -> Result<usize, Error> {
        let rules = self.rule.get(..self.config_size).unwrap_or(&[]);
        let mut n = 0usize;
        let mut start = 0usize;
        while start < rules.len() {
            let r = rules.get(start).copied().unwrap_or(Rule::Hidden);
            let len = rules
                .get(start..)
                .unwrap_or(&[])
                .iter()
                .take_while(|&&x| x == r)
                .count();
            n = n.saturating_add(1);
            if n > MAX_RUNS {
                return Err(invalid(0x24, ParseReason::TooManyRuns));
            }
            w.u16(u16::try_from(start).unwrap_or(0))?;
            w.u16(u16::try_from(len).unwrap_or(0))?;
            w.u8(r as u8)?;
            w.u8(0)?;
            start = start.saturating_add(len.max(1));
        }
        Ok(n)
    }

    fn encode_data(&self, w: &mut Writer<'_>, runs_at: usize, n_runs: usize) -> Result<(), Error> {
        let mut start = 0usize;
        for k in 0..n_runs {
            let at = runs_at.saturating_add(k.saturating_mul(RUN_LEN));
            let len = usize::from(pci::rd16(w.out, at.saturating_add(2)).unwrap_or(0));
            let end = start.saturating_add(len);
            match self.rule.get(start) {
                Some(Rule::Emulated) => {
                    w.bytes(self.value.get(start..end).unwrap_or(&[]))?;
                    w.bytes(self.mask.get(start..end).unwrap_or(&[]))?;
                }
                Some(Rule::Pinned | Rule::Dynamic) => {
                    // Canonical: no value bits outside the pin mask.
                    for off in start..end {
                        let (_, v, m) = self.byte(off);
                        w.u8(v & m)?;
                    }
                    w.bytes(self.mask.get(start..end).unwrap_or(&[]))?;
                }
                _ => {}
            }
            start = end;
        }
        Ok(())
    }

    /// Replaces the model's contents with the persona `p`; presented entries end up in chain
    /// order, so `load` followed by [`Self::encode`] gives back the same blob.
    pub fn load(&mut self, p: &PersonaRef<'_>) {
        self.clear();
        let _ = self.set_name(p.name());
        self.version = p.version();
        self.ids = p.ids();
        self.config_size = p.config_size();
        self.bars = p.bars();
        for f in IdField::ALL {
            if p.id_emulated(f) {
                self.emulated_ids |= f.bit();
            }
        }
        for r in p.runs() {
            let s = usize::from(r.start);
            self.set_rule(s, r.end(), r.rule);
            if r.rule.has_data() {
                if let Some(v) = self.value.get_mut(s..r.end()) {
                    v.copy_from_slice(r.value);
                }
                if let Some(m) = self.mask.get_mut(s..r.end()) {
                    m.copy_from_slice(r.mask);
                }
            }
        }
        for e in p.caps() {
            let _ = self.push_cap(e);
        }
        self.sort_chain_order();
    }

    /// Reorders presented entries (which `load` received sorted by offset) into chain order,
    /// following the emulated next pointers; in place, so no temporary table is needed.
    fn sort_chain_order(&mut self) {
        let mut k = 0usize;
        for space in [Space::Standard, Space::Extended] {
            let mut ptr = match space {
                Space::Standard => usize::from(self.byte(pci::CAPABILITY_LIST).1),
                Space::Extended if self.config_size > pci::CFG_SIZE => pci::CFG_SIZE,
                Space::Extended => 0,
            };
            let mut steps = 0usize;
            while ptr != 0 && steps < MAX_CAPS {
                steps = steps.saturating_add(1);
                let found = self.caps().iter().enumerate().skip(k).find(|(_, e)| {
                    e.kind.is_presented() && e.space == space && usize::from(e.offset) == ptr
                });
                let next = match space {
                    Space::Standard => usize::from(self.byte(ptr.saturating_add(1)).1),
                    Space::Extended => {
                        let h = [0usize, 1, 2, 3].map(|i| self.byte(ptr.saturating_add(i)).1);
                        usize::try_from(u32::from_le_bytes(h) >> 20).unwrap_or(0)
                    }
                };
                if let Some((i, _)) = found {
                    self.caps.swap(i, k);
                    k = k.saturating_add(1);
                }
                ptr = next;
            }
        }
        // Hidden entries follow in canonical order already, since they sort after presented
        // ones and only presented ones were moved.
        let (_, rest) = self.caps.split_at_mut(k.min(self.n_caps));
        let rest_len = self.n_caps.saturating_sub(k);
        if let Some(rest) = rest.get_mut(..rest_len) {
            rest.sort_unstable_by_key(cap_sort_key);
        }
    }
}
