//! The config-space overlay: serving a user's config reads and writes as a persona says.
//!
//! At open time the glue builds an [`OverlayMap`] from the persona and the device's physical
//! config dump: one 16-bit entry per config byte saying whether it is hidden, passed through
//! (and to which physical offset, after relocation) or emulated (and which slot of the register
//! state holds it). The emulated registers live in an [`OverlayState`], which
//! [`OverlayState::reset`] returns to the persona's reset values (on open and selection) and
//! [`OverlayState::reset_function`] after a reset of the function (every register but the
//! Interrupt Line).
//!
//! Each access then costs a few table lookups: an access whose bytes are all passthrough to
//! contiguous physical bytes becomes one device access, anything else is split into runs and
//! naturally aligned 1/2/4-byte device accesses (the same split vfio-pci-core does), so hidden
//! and read-only bytes never reach the device and writable neighbours are written without
//! read-modify-write.
//!
//! Both structures are plain integer arrays, so all-zero memory is a valid (empty) value and
//! the kernel can allocate them zeroed; they never need to be moved or returned by value.

use super::error::Error;
use super::pci::{self, Space};
use super::persona::{CapKind, PersonaRef, Rule, MAX_EMULATED, SPACE};

/// Physical config access through vfio-pci-core (or a test double).
pub trait ConfigAccess {
    /// Error of a failed device access.
    type Error;

    /// Reads `size` (1, 2 or 4) bytes at physical `offset`, little-endian in the low bits.
    ///
    /// # Errors
    ///
    /// Whatever the device access reports.
    fn read(&mut self, offset: u16, size: u8) -> Result<u32, Self::Error>;

    /// Writes the low `size` (1, 2 or 4) bytes of `value` at physical `offset`.
    ///
    /// # Errors
    ///
    /// Whatever the device access reports.
    fn write(&mut self, offset: u16, size: u8, value: u32) -> Result<(), Self::Error>;

    /// Like [`ConfigAccess::write`], also telling that the bytes written are the user's own,
    /// unchanged, starting at byte `at` of the access being served.
    ///
    /// The overlay only ever forwards a user's bytes as they are, so an accessor that can only
    /// write from the user's buffer (vfio-pci-core's config path takes a user pointer) forwards
    /// that part of the buffer instead of `value`.
    ///
    /// # Errors
    ///
    /// Whatever the device access reports.
    fn write_from(&mut self, offset: u16, size: u8, value: u32, at: u8) -> Result<(), Self::Error> {
        let _ = at;
        self.write(offset, size, value)
    }
}

/// Error of an overlay access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverlayError<E> {
    /// The access itself is invalid (size or range).
    Access(Error),
    /// The device access failed.
    Device(E),
}

const KIND_SHIFT: u16 = 14;
const INDEX_MASK: u16 = 0x0fff;

/// Per-byte lookup table and emulated-register metadata for one persona on one device.
#[derive(Clone, Debug)]
pub struct OverlayMap {
    /// Bits 15:14 rule, bits 11:0 physical offset (passthrough) or state slot (emulated).
    entry: [u16; SPACE],
    /// Write mask of each emulated slot.
    wmask: [u8; MAX_EMULATED],
    /// Reset value of each emulated slot.
    reset: [u8; MAX_EMULATED],
    /// Number of used emulated slots.
    slots: u16,
}

/// The emulated registers' current values.
#[derive(Clone, Debug)]
pub struct OverlayState {
    value: [u8; MAX_EMULATED],
}

impl Default for OverlayMap {
    fn default() -> Self {
        Self {
            entry: [0; SPACE],
            wmask: [0; MAX_EMULATED],
            reset: [0; MAX_EMULATED],
            slots: 0,
        }
    }
}

impl Default for OverlayState {
    fn default() -> Self {
        Self {
            value: [0; MAX_EMULATED],
        }
    }
}

impl OverlayState {
    /// Returns every emulated register to its reset value.
    pub fn reset(&mut self, map: &OverlayMap) {
        self.value.copy_from_slice(&map.reset);
    }

    /// After a reset of the function (FLR, `VFIO_DEVICE_RESET`, one the PCI core made): every
    /// emulated register returns to its reset value except an emulated Interrupt Line, which
    /// keeps what the user wrote. vfio-pci-core builds its own copy of that byte only when the
    /// device is opened and keeps it across resets, and on bare metal the PCI core restores it
    /// around a reset; the register holds software's routing, no function state.
    pub fn reset_function(&mut self, map: &OverlayMap) {
        let keep = map
            .emulated_slot(pci::INTERRUPT_LINE)
            .and_then(|s| self.value.get(s).copied().map(|v| (s, v)));
        self.reset(map);
        if let Some((s, v)) = keep {
            if let Some(d) = self.value.get_mut(s) {
                *d = v;
            }
        }
    }

    /// Returns the registers' bytes, one per emulated slot (the migration record).
    pub fn as_bytes(&self) -> &[u8; MAX_EMULATED] {
        &self.value
    }

    /// Returns `true` if `bytes` is a state `map` can reach: every bit a guest cannot write
    /// holds its reset value (so unused slots are zero).
    pub fn is_reachable(map: &OverlayMap, bytes: &[u8; MAX_EMULATED]) -> bool {
        bytes
            .iter()
            .zip(map.reset.iter().zip(map.wmask.iter()))
            .all(|(&b, (&r, &m))| (b ^ r) & !m == 0)
    }

    /// Takes the registers' bytes from `bytes`, if [`OverlayState::is_reachable`] accepts them;
    /// returns whether it did.
    pub fn load(&mut self, map: &OverlayMap, bytes: &[u8; MAX_EMULATED]) -> bool {
        if !Self::is_reachable(map, bytes) {
            return false;
        }
        self.value.copy_from_slice(bytes);
        true
    }
}

fn rule_of(e: u16) -> Rule {
    Rule::from_u8(u8::try_from(e >> KIND_SHIFT).unwrap_or(0)).unwrap_or(Rule::Hidden)
}

fn index_of(e: u16) -> usize {
    usize::from(e & INDEX_MASK)
}

fn check_access(offset: u16, size: u8) -> Result<(usize, usize), Error> {
    let off = usize::from(offset);
    let n = usize::from(size);
    if !matches!(size, 1 | 2 | 4) || off.saturating_add(n) > SPACE {
        return Err(Error::BadAccess { offset, size });
    }
    Ok((off, n))
}

/// Largest naturally aligned access size (4, 2, 1) at `phys` that fits in `left` bytes: how
/// vfio-pci-core splits a config access, and how the kernel glue splits a user's access before
/// handing each piece to the overlay.
pub fn chunk(phys: usize, left: usize) -> usize {
    if left >= 4 && phys % 4 == 0 {
        4
    } else if left >= 2 && phys % 2 == 0 {
        2
    } else {
        1
    }
}

impl OverlayMap {
    /// Builds the table for persona `p` on the device whose physical config is `dump`.
    ///
    /// Physical capabilities are located in the dump by space, ID and instance; bytes past the
    /// persona's config size are hidden.
    ///
    /// # Errors
    ///
    /// [`Error::BadDumpSize`], [`Error::CapNotFound`] for a presented capability the device
    /// lacks, [`Error::CapTooShort`] when it would run past the dump. A persona that passed
    /// [`super::persona::check`] never fails here.
    pub fn build(&mut self, p: &PersonaRef<'_>, dump: &[u8]) -> Result<(), Error> {
        if dump.len() != pci::CFG_SIZE && dump.len() != pci::CFG_SIZE_EXT {
            return Err(Error::BadDumpSize);
        }
        self.entry.fill(0);
        self.wmask.fill(0);
        self.reset.fill(0);
        self.slots = 0;
        let mut cache = CapCache::default();
        let mut slot = 0usize;
        for r in p.runs() {
            for k in 0..usize::from(r.len) {
                let off = usize::from(r.start).saturating_add(k);
                let payload = match r.rule {
                    Rule::Hidden => 0,
                    Rule::Pinned | Rule::Dynamic => cache.physical_of(p, dump, off)?,
                    Rule::Emulated => {
                        if let (Some(m), Some(v)) =
                            (self.wmask.get_mut(slot), self.reset.get_mut(slot))
                        {
                            *m = r.mask.get(k).copied().unwrap_or(0);
                            *v = r.value.get(k).copied().unwrap_or(0);
                        }
                        let s = slot;
                        slot = slot.saturating_add(1);
                        s
                    }
                };
                let payload = u16::try_from(payload).unwrap_or(0) & INDEX_MASK;
                if let Some(e) = self.entry.get_mut(off) {
                    *e = (u16::from(r.rule as u8) << KIND_SHIFT) | payload;
                }
            }
        }
        self.slots = u16::try_from(slot).unwrap_or(0);
        Ok(())
    }

    /// Number of emulated bytes.
    pub fn emulated_len(&self) -> usize {
        usize::from(self.slots)
    }

    /// The state slot of config byte `off` when it is emulated.
    pub fn emulated_slot(&self, off: usize) -> Option<usize> {
        match self.at(off) {
            (Rule::Emulated, slot) => Some(slot),
            _ => None,
        }
    }

    /// Rule and payload of config byte `off`.
    fn at(&self, off: usize) -> (Rule, usize) {
        let e = self.entry.get(off).copied().unwrap_or(0);
        (rule_of(e), index_of(e))
    }

    /// Serves a config read of `size` (1, 2 or 4) bytes at `offset`.
    ///
    /// # Errors
    ///
    /// [`OverlayError::Access`] for a bad size or range, [`OverlayError::Device`] when a device
    /// read fails.
    pub fn read<A: ConfigAccess>(
        &self,
        st: &OverlayState,
        acc: &mut A,
        offset: u16,
        size: u8,
    ) -> Result<u32, OverlayError<A::Error>> {
        let (off, n) = check_access(offset, size).map_err(OverlayError::Access)?;
        if let Some(phys) = self.contiguous_pass(off, n, false) {
            return acc.read(phys, size).map_err(OverlayError::Device);
        }
        let mut bytes = [0u8; 4];
        let mut i = 0usize;
        while i < n {
            let (rule, idx) = self.at(off.saturating_add(i));
            let run = self.pass_run(off, i, n);
            match rule {
                Rule::Hidden => i = i.saturating_add(1),
                Rule::Emulated => {
                    if let Some(b) = bytes.get_mut(i) {
                        *b = st.value.get(idx).copied().unwrap_or(0);
                    }
                    i = i.saturating_add(1);
                }
                Rule::Pinned | Rule::Dynamic => {
                    let c = chunk(idx, run);
                    let v = acc
                        .read(
                            u16::try_from(idx).unwrap_or(0),
                            u8::try_from(c).unwrap_or(1),
                        )
                        .map_err(OverlayError::Device)?;
                    for (k, b) in v.to_le_bytes().into_iter().take(c).enumerate() {
                        if let Some(dst) = bytes.get_mut(i.saturating_add(k)) {
                            *dst = b;
                        }
                    }
                    i = i.saturating_add(c);
                }
            }
        }
        Ok(u32::from_le_bytes(bytes))
    }

    /// Serves a config write of the low `size` (1, 2 or 4) bytes of `value` at `offset`.
    ///
    /// # Errors
    ///
    /// [`OverlayError::Access`] for a bad size or range, [`OverlayError::Device`] when a device
    /// write fails (bytes before the failing chunk have been written).
    pub fn write<A: ConfigAccess>(
        &self,
        st: &mut OverlayState,
        acc: &mut A,
        offset: u16,
        size: u8,
        value: u32,
    ) -> Result<(), OverlayError<A::Error>> {
        let (off, n) = check_access(offset, size).map_err(OverlayError::Access)?;
        if let Some(phys) = self.contiguous_pass(off, n, true) {
            return acc
                .write_from(phys, size, value, 0)
                .map_err(OverlayError::Device);
        }
        let bytes = value.to_le_bytes();
        let mut i = 0usize;
        while i < n {
            let (rule, idx) = self.at(off.saturating_add(i));
            match rule {
                Rule::Hidden | Rule::Pinned => i = i.saturating_add(1),
                Rule::Emulated => {
                    let m = self.wmask.get(idx).copied().unwrap_or(0);
                    let b = bytes.get(i).copied().unwrap_or(0);
                    if let Some(v) = st.value.get_mut(idx) {
                        *v = (*v & !m) | (b & m);
                    }
                    i = i.saturating_add(1);
                }
                Rule::Dynamic => {
                    let c = chunk(idx, self.pass_run(off, i, n));
                    let mut v = 0u32;
                    for k in (0..c).rev() {
                        v = (v << 8)
                            | u32::from(bytes.get(i.saturating_add(k)).copied().unwrap_or(0));
                    }
                    acc.write_from(
                        u16::try_from(idx).unwrap_or(0),
                        u8::try_from(c).unwrap_or(1),
                        v,
                        u8::try_from(i).unwrap_or(0),
                    )
                    .map_err(OverlayError::Device)?;
                    i = i.saturating_add(c);
                }
            }
        }
        Ok(())
    }

    /// The physical offset a whole naturally aligned access of `size` bytes at `offset` goes to
    /// unchanged, if it is one: every byte passed through (dynamic when `write`; pinned or
    /// dynamic for a read), at consecutive physical offsets, the physical offset aligned like the
    /// access. [`OverlayMap::read`] and [`OverlayMap::write`] then make exactly one device access
    /// at that offset with the caller's value, so a caller may make it itself, straight from and
    /// to its own buffer.
    #[must_use]
    pub fn passthrough(&self, offset: u16, size: u8, write: bool) -> Option<u16> {
        let (off, n) = check_access(offset, size).ok()?;
        if off.checked_rem(n) != Some(0) {
            return None;
        }
        self.contiguous_pass(off, n, write)
    }

    /// Length of the run of bytes starting at access byte `i` (of `n`) that share byte `i`'s
    /// passthrough rule and map to consecutive physical offsets.
    fn pass_run(&self, off: usize, i: usize, n: usize) -> usize {
        let (rule, phys) = self.at(off.saturating_add(i));
        let mut len = 1usize;
        while i.saturating_add(len) < n {
            let (r, p) = self.at(off.saturating_add(i).saturating_add(len));
            if r != rule || p != phys.saturating_add(len) {
                break;
            }
            len = len.saturating_add(1);
        }
        len
    }

    /// The physical offset when the whole access is one naturally aligned passthrough run
    /// (writable when `write`), the common case served with a single device access.
    fn contiguous_pass(&self, off: usize, n: usize, write: bool) -> Option<u16> {
        let (rule, phys) = self.at(off);
        let ok = if write {
            rule == Rule::Dynamic
        } else {
            rule.is_pass()
        };
        if !ok || phys.checked_rem(n) != Some(0) {
            return None;
        }
        let same = (1..n).all(|k| {
            let (r, p) = self.at(off.saturating_add(k));
            r.is_pass() && (!write || r == Rule::Dynamic) && p == phys.saturating_add(k)
        });
        if same {
            u16::try_from(phys).ok()
        } else {
            None
        }
    }
}

/// Number of [`OverlayMap::pass_word`] summaries: one per config dword.
pub const PASS_WORDS: usize = SPACE / 4;
/// Bits of a pass word holding the physical dword.
const PASS_DWORD_MASK: u32 = 0x3ff;
/// Shift of the 4 read bits (one per byte of the dword) of a pass word.
const PASS_READ_SHIFT: u32 = 16;
/// Shift of the 4 write bits of a pass word.
const PASS_WRITE_SHIFT: u32 = 20;
/// Shift of the 4 emulated bits of a pass word.
const PASS_EMU_SHIFT: u32 = 24;
/// Shift of the 4 hidden bits of a pass word.
const PASS_HIDDEN_SHIFT: u32 = 28;

impl OverlayMap {
    /// A summary of config dword `d` made of plain integers, so that the kernel glue can keep
    /// a copy readable without its lock: bits 9:0 a physical dword `P`, bit 16 + k set when
    /// byte k of the dword passes through unchanged to physical byte `4 * P + k` (pinned or
    /// dynamic), bit 20 + k when it does so for a write too (dynamic), bit 24 + k when the byte
    /// is emulated (its value is byte k of [`OverlayMap::emu_word`]), bit 28 + k when it is
    /// hidden (reads as 0). 0: some byte of the dword is passed through elsewhere and the
    /// dword has nothing else.
    ///
    /// `P` is the dword of the first byte that passes through at its own place in a dword;
    /// bytes mapped elsewhere are left out, so [`pass_span`] on these words never says more
    /// than [`OverlayMap::passthrough`] does.
    #[must_use]
    pub fn pass_word(&self, d: usize) -> u32 {
        let base = d.saturating_mul(4);
        let mut dword = None;
        let mut word = 0u32;
        for k in 0..4u32 {
            let ku = usize::try_from(k).unwrap_or(0);
            let (rule, phys) = self.at(base.saturating_add(ku));
            match rule {
                Rule::Emulated => word |= 1u32.wrapping_shl(PASS_EMU_SHIFT.wrapping_add(k)),
                Rule::Hidden => word |= 1u32.wrapping_shl(PASS_HIDDEN_SHIFT.wrapping_add(k)),
                Rule::Pinned | Rule::Dynamic => {
                    if phys % 4 != ku {
                        continue;
                    }
                    let p = *dword.get_or_insert(phys / 4);
                    if phys / 4 != p {
                        continue;
                    }
                    word |= 1u32.wrapping_shl(PASS_READ_SHIFT.wrapping_add(k));
                    if rule == Rule::Dynamic {
                        word |= 1u32.wrapping_shl(PASS_WRITE_SHIFT.wrapping_add(k));
                    }
                }
            }
        }
        word | dword.map_or(0, |p| u32::try_from(p).unwrap_or(0) & PASS_DWORD_MASK)
    }

    /// The current values of the emulated bytes of config dword `d` (see
    /// [`OverlayMap::pass_word`]), little-endian; 0 in every other byte. It changes only when
    /// `st` does: a write to one of its emulated bytes, a reset or a load.
    #[must_use]
    pub fn emu_word(&self, st: &OverlayState, d: usize) -> u32 {
        let base = d.saturating_mul(4);
        let mut b = [0u8; 4];
        for (k, v) in b.iter_mut().enumerate() {
            let (rule, slot) = self.at(base.saturating_add(k));
            if rule == Rule::Emulated {
                *v = st.value.get(slot).copied().unwrap_or(0);
            }
        }
        u32::from_le_bytes(b)
    }
}

/// A read of one naturally aligned piece (`len` 1, 2 or 4 at `off`) from its pass word `word`,
/// when every byte of it passes through in place or is emulated, or every byte is emulated or
/// hidden: the physical offset to read the whole piece at (`None`: no device read at all) and
/// which of its bytes (bit k: byte k of the piece) then take their value from the dword's
/// [`OverlayMap::emu_word`] (a hidden byte's is 0). A piece mixing passed-through and hidden
/// bytes is not served here, since hidden bytes never reach the device. The device's byte
/// behind an emulated one is read along with its neighbours, in one device read as vfio-pci
/// would make, and its value discarded.
#[must_use]
pub fn pass_piece(word: u32, off: usize, len: usize) -> Option<(Option<u16>, u8)> {
    if !matches!(len, 1 | 2 | 4) || off.checked_rem(len) != Some(0) || off >= SPACE {
        return None;
    }
    let k = u32::try_from(off % 4).ok()?;
    let ones: u32 = match len {
        4 => 0xf,
        2 => 0x3,
        _ => 0x1,
    };
    let read = (word >> PASS_READ_SHIFT.wrapping_add(k)) & ones;
    let emu = (word >> PASS_EMU_SHIFT.wrapping_add(k)) & ones;
    let hidden = (word >> PASS_HIDDEN_SHIFT.wrapping_add(k)) & ones;
    if read | emu | hidden != ones {
        return None;
    }
    if read == 0 {
        return Some((None, u8::try_from(ones).ok()?));
    }
    if hidden != 0 {
        return None;
    }
    let phys = usize::try_from(word & PASS_DWORD_MASK)
        .ok()?
        .checked_mul(4)?
        .checked_add(off % 4)?;
    Some((
        Some(u16::try_from(phys).ok()?),
        u8::try_from(emu & !read).ok()?,
    ))
}

/// The physical offset a whole access of `len` bytes at `off` goes to unchanged, from the pass
/// words `word(d)` ([`OverlayMap::pass_word`]): every naturally aligned piece of the access
/// passes through, at consecutive physical offsets. vfio-pci-core then splits the one access at
/// that offset into the same pieces, each served as [`OverlayMap::passthrough`] says.
#[must_use]
pub fn pass_span(
    mut word: impl FnMut(usize) -> u32,
    off: usize,
    len: usize,
    write: bool,
) -> Option<u16> {
    let shift = if write {
        PASS_WRITE_SHIFT
    } else {
        PASS_READ_SHIFT
    };
    let end = off.checked_add(len).filter(|&e| e <= SPACE && len > 0)?;
    let mut start = None;
    let mut pos = off;
    while pos < end {
        let n = chunk(pos, end.saturating_sub(pos));
        let w = word(pos / 4);
        let k = pos % 4;
        // The piece's bytes, all passing through to the same physical dword.
        let ones = match n {
            4 => 0xf,
            2 => 0x3,
            _ => 0x1,
        };
        let bits = ones << shift.wrapping_add(u32::try_from(k).ok()?);
        if w & bits != bits {
            return None;
        }
        let phys = usize::try_from(w & PASS_DWORD_MASK)
            .ok()?
            .checked_mul(4)?
            .checked_add(k)?;
        let rel = pos.checked_sub(off)?;
        let s = *start.get_or_insert(phys.checked_sub(rel)?);
        if s.checked_add(rel)? != phys {
            return None;
        }
        pos = pos.checked_add(n)?;
    }
    start.and_then(|s| u16::try_from(s).ok())
}

/// The last physical capability resolved while building, so that each capability's chain walk
/// happens once per run of bytes rather than once per byte.
#[derive(Default)]
pub(crate) struct CapCache {
    /// Virtual range and physical base of the cached capability.
    hit: Option<(usize, usize, usize)>,
    /// Virtual range known to hold no physical capability (identity mapping).
    miss: Option<(usize, usize)>,
}

impl CapCache {
    /// Physical offset a passthrough byte at virtual `off` maps to.
    pub(crate) fn physical_of(
        &mut self,
        p: &PersonaRef<'_>,
        dump: &[u8],
        off: usize,
    ) -> Result<usize, Error> {
        if let Some((vs, ve, pb)) = self.hit {
            if off >= vs && off < ve {
                return Ok(pb.saturating_add(off.saturating_sub(vs)));
            }
        }
        let space = if off >= pci::CFG_SIZE {
            Space::Extended
        } else {
            Space::Standard
        };
        if let Some((ms, me)) = self.miss {
            if off >= ms && off < me {
                return Ok(off);
            }
        }
        let Some(e) = p
            .cap_containing(space, off)
            .filter(|e| e.kind == CapKind::Physical)
        else {
            // Identity mapping up to the next physical capability of this space.
            let end = p
                .caps()
                .filter(|e| e.kind == CapKind::Physical && e.space == space)
                .map(|e| usize::from(e.offset))
                .filter(|&s| s > off)
                .min()
                .unwrap_or(usize::MAX);
            // Never across the standard/extended boundary.
            let space_end = match space {
                Space::Standard => pci::CFG_SIZE,
                Space::Extended => pci::CFG_SIZE_EXT,
            };
            self.miss = Some((off, end.min(space_end)));
            return Ok(off);
        };
        let c = pci::find_cap(dump, e.space, e.id, e.instance)
            .map_err(Error::BrokenChain)?
            .ok_or(Error::CapNotFound {
                extended: e.space == Space::Extended,
                id: e.id,
                instance: e.instance,
            })?;
        let base = usize::from(c.offset);
        if base.saturating_add(usize::from(e.len)) > dump.len() {
            return Err(Error::CapTooShort { offset: e.offset });
        }
        self.hit = Some((usize::from(e.offset), e.end(), base));
        Ok(base.saturating_add(off.saturating_sub(usize::from(e.offset))))
    }
}
