//! Device dirty page logging (`VFIO_DEVICE_FEATURE_DMA_LOGGING_{START,STOP,REPORT}`): the
//! tracked ranges, the dirty set, and what a report says, as pure fixed-capacity code.
//!
//! A device that knows every DMA write it makes (the edu backend sees each one start through a
//! trapped register write) logs them here while logging is on; the kernel glue walks VFIO's
//! interval tree into [`DirtyLog::start`], tells [`DirtyLog::issue`] about each device-to-RAM
//! write, and turns the spans [`DirtyLog::read_and_clear`] yields into `iova_bitmap_set()` calls.
//!
//! # Model
//!
//! - **Tracked ranges**: up to [`MAX_RANGES`] sorted, disjoint, page-aligned IOVA ranges given at
//!   start (the glue merges VFIO's ranges, smallest gaps first, when there are more). Writes
//!   outside them are not logged, and a report must lie inside their union.
//! - **Page size**: a power of two from 4 KiB ([`MIN_PAGE_SHIFT`]) to 1 GiB ([`MAX_PAGE_SHIFT`]);
//!   any other is refused ([`LogError::BadPageSize`]), never adjusted. A report may use another
//!   page size: the glue's bitmap replicates or merges bits.
//! - **Dirty set**: up to [`DIRTY_CAP`] sorted, disjoint, non-adjacent page-aligned extents. A
//!   write that does not fit makes every tracked page dirty (a conservative overflow); a later
//!   clear turns that back into extents (the tracked ranges minus what was cleared always fit).
//! - **In flight**: a write is logged when it is issued, but the device may make it later (edu's
//!   DMA takes 100 ms). Issued writes stay "in flight" (up to [`INFLIGHT_CAP`]; more makes every
//!   tracked page in flight) until the glue sees the device idle ([`DirtyLog::settle`]): a report
//!   while the device is busy reports them again and does not forget them, so a page written after
//!   a report that cleared it is reported again.
//! - **Read and clear**: a report of `[iova, iova + len)` yields every dirty or in-flight span
//!   clipped to the query, then clears the tracking pages that lie wholly inside it; a page the
//!   query only partly covers stays dirty (its other part may be asked for later).
//!
//! Whenever the log had to be conservative (overflow, a clear that would not fit), it may report
//! pages nobody wrote; it never misses a write it was told about. [`DirtyLog::is_exact`] says
//! whether the log is still exact.

/// Smallest tracking page: 4 KiB.
pub const MIN_PAGE_SHIFT: u32 = 12;
/// Largest tracking page: 1 GiB.
pub const MAX_PAGE_SHIFT: u32 = 30;
/// Tracked ranges kept; VFIO's ranges are merged down to this many.
pub const MAX_RANGES: usize = 8;
/// Dirty extents kept before the log overflows to "every tracked page is dirty".
pub const DIRTY_CAP: usize = 32;
/// Writes remembered as in flight before the log assumes every tracked page is.
pub const INFLIGHT_CAP: usize = 4;

// Clearing a query out of "every tracked page dirty" needs up to MAX_RANGES + 1 extents.
const _: () = assert!(DIRTY_CAP > MAX_RANGES);

/// A non-empty half-open IOVA interval `[start, end)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Span {
    start: u64,
    end: u64,
}

impl Span {
    /// Filler of unused array slots (never exposed).
    const NONE: Span = Span { start: 0, end: 0 };

    /// `[start, end)`, or `None` when it is empty.
    pub const fn new(start: u64, end: u64) -> Option<Span> {
        if start < end {
            Some(Span { start, end })
        } else {
            None
        }
    }

    /// `len` bytes at `start`; `None` when empty or past the end of the IOVA space.
    pub fn from_len(start: u64, len: u64) -> Option<Span> {
        Span::new(start, start.checked_add(len)?)
    }

    /// The inclusive `[start, last]` of an interval tree node; `None` when `last < start` or the
    /// range would end past the IOVA space.
    pub fn from_last(start: u64, last: u64) -> Option<Span> {
        if last < start {
            return None;
        }
        Span::new(start, last.checked_add(1)?)
    }

    /// First address.
    pub const fn start(&self) -> u64 {
        self.start
    }

    /// One past the last address.
    pub const fn end(&self) -> u64 {
        self.end
    }

    /// Length in bytes (never 0: a span is never empty).
    #[allow(clippy::len_without_is_empty)]
    pub const fn len(&self) -> u64 {
        self.end.wrapping_sub(self.start)
    }

    /// The common part of `self` and `other`.
    pub fn intersect(&self, other: &Span) -> Option<Span> {
        Span::new(self.start.max(other.start), self.end.min(other.end))
    }
}

/// Why a logging request is refused. Every case is `EINVAL` in the uAPI.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LogError {
    /// Start while logging is already on (mlx5 and pds refuse it with `EINVAL` too).
    AlreadyStarted,
    /// Report while logging is off.
    NotStarted,
    /// Page size not a power of two, or outside 4 KiB..=1 GiB.
    BadPageSize,
    /// Start with no range.
    NoRanges,
    /// Start with more than [`MAX_RANGES`] ranges (the glue merges them first).
    TooManyRanges,
    /// A range that is empty, unaligned to the page size, unsorted or overlapping; or an empty
    /// report.
    BadRange,
    /// A report that is not inside the tracked ranges.
    UnknownRange,
}

/// Sorted, disjoint, non-adjacent spans, at most `N`.
#[derive(Clone, Copy, Debug)]
struct SpanSet<const N: usize> {
    items: [Span; N],
    len: usize,
}

impl<const N: usize> SpanSet<N> {
    const fn new() -> Self {
        SpanSet {
            items: [Span::NONE; N],
            len: 0,
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Span> + '_ {
        self.items.iter().take(self.len)
    }

    /// Appends `s` after every item; `Err` when full.
    fn push(&mut self, s: Span) -> Result<(), ()> {
        let slot = self.items.get_mut(self.len).ok_or(())?;
        *slot = s;
        self.len = self.len.saturating_add(1);
        Ok(())
    }

    /// The set with `s` added (merged with what it overlaps or touches); `Err` when it does not
    /// fit.
    fn with(&self, s: Span) -> Result<Self, ()> {
        let mut out = Self::new();
        let mut cur = s;
        let mut placed = false;
        for e in self.iter() {
            if placed || e.end < cur.start {
                out.push(*e)?;
            } else if cur.end < e.start {
                out.push(cur)?;
                out.push(*e)?;
                placed = true;
            } else {
                cur = Span {
                    start: cur.start.min(e.start),
                    end: cur.end.max(e.end),
                };
            }
        }
        if !placed {
            out.push(cur)?;
        }
        Ok(out)
    }

    /// The set with `[q.start, q.end)` removed; `Err` when the pieces do not fit.
    fn without(&self, q: &Span) -> Result<Self, ()> {
        let mut out = Self::new();
        for e in self.iter() {
            if e.intersect(q).is_none() {
                out.push(*e)?;
                continue;
            }
            if let Some(left) = Span::new(e.start, q.start.min(e.end)) {
                out.push(left)?;
            }
            if let Some(right) = Span::new(q.end.max(e.start), e.end) {
                out.push(right)?;
            }
        }
        Ok(out)
    }
}

/// The dirty log of one device.
#[derive(Clone, Copy, Debug)]
pub struct DirtyLog {
    active: bool,
    page_shift: u32,
    ranges: SpanSet<MAX_RANGES>,
    dirty: SpanSet<DIRTY_CAP>,
    /// Overflow: every tracked page is dirty (`dirty` is then empty).
    all_dirty: bool,
    inflight: [Span; INFLIGHT_CAP],
    ninflight: usize,
    /// In-flight overflow: every tracked page may be written.
    all_inflight: bool,
    /// Some answer since start may have been conservative.
    lossy: bool,
}

impl Default for DirtyLog {
    fn default() -> Self {
        Self::new()
    }
}

impl DirtyLog {
    /// A log that is off.
    pub const fn new() -> Self {
        DirtyLog {
            active: false,
            page_shift: MIN_PAGE_SHIFT,
            ranges: SpanSet::new(),
            dirty: SpanSet::new(),
            all_dirty: false,
            inflight: [Span::NONE; INFLIGHT_CAP],
            ninflight: 0,
            all_inflight: false,
            lossy: false,
        }
    }

    /// Whether logging is on.
    pub const fn is_active(&self) -> bool {
        self.active
    }

    /// The tracking page size (meaningful while on).
    pub const fn page_size(&self) -> u64 {
        1u64 << self.page_shift
    }

    /// Whether every report since start was exact (no overflow, no clear that did not fit).
    pub const fn is_exact(&self) -> bool {
        !self.lossy
    }

    /// The tracked ranges (empty while off).
    pub fn ranges(&self) -> impl Iterator<Item = Span> + '_ {
        self.ranges.iter().copied()
    }

    /// The shift of a page size the log supports.
    pub fn page_shift_of(page_size: u64) -> Result<u32, LogError> {
        if !page_size.is_power_of_two() {
            return Err(LogError::BadPageSize);
        }
        let shift = page_size.trailing_zeros();
        if !(MIN_PAGE_SHIFT..=MAX_PAGE_SHIFT).contains(&shift) {
            return Err(LogError::BadPageSize);
        }
        Ok(shift)
    }

    /// Starts logging writes into `ranges` at `page_size` granularity, with nothing dirty.
    /// `ranges` come as VFIO's interval tree gives them: `(first, last)` with `last` inclusive,
    /// sorted by start, disjoint, each aligned to `page_size`.
    pub fn start(
        &mut self,
        page_size: u64,
        ranges: impl IntoIterator<Item = (u64, u64)>,
    ) -> Result<(), LogError> {
        if self.active {
            return Err(LogError::AlreadyStarted);
        }
        let shift = Self::page_shift_of(page_size)?;
        let mask = page_size.wrapping_sub(1);
        let mut set = SpanSet::<MAX_RANGES>::new();
        let mut prev_end = None;
        for (first, last) in ranges {
            let r = Span::from_last(first, last).ok_or(LogError::BadRange)?;
            if r.start & mask != 0 || r.end & mask != 0 || prev_end.is_some_and(|e| r.start < e) {
                return Err(LogError::BadRange);
            }
            prev_end = Some(r.end);
            set.push(r).map_err(|()| LogError::TooManyRanges)?;
        }
        if set.len == 0 {
            return Err(LogError::NoRanges);
        }
        *self = DirtyLog {
            active: true,
            page_shift: shift,
            ranges: set,
            ..DirtyLog::new()
        };
        Ok(())
    }

    /// Stops logging and forgets everything; returns whether it was on.
    pub fn stop(&mut self) -> bool {
        let was = self.active;
        *self = DirtyLog::new();
        was
    }

    /// The device was told to write `w` (a device-to-RAM DMA): its tracked pages become dirty and
    /// it is in flight until [`DirtyLog::settle`]. Ignored while logging is off.
    pub fn issue(&mut self, w: Span) {
        if !self.active {
            return;
        }
        self.mark(&w);
        match self.inflight.get_mut(self.ninflight) {
            Some(slot) => {
                *slot = w;
                self.ninflight = self.ninflight.saturating_add(1);
            }
            None => {
                self.all_inflight = true;
                self.lossy = true;
            }
        }
    }

    /// The device was seen idle: every issued write is done. They are marked dirty again (a
    /// report while they were in flight cleared them before they were made).
    pub fn settle(&mut self) {
        let n = self.ninflight;
        self.ninflight = 0;
        for i in 0..n {
            if let Some(w) = self.inflight.get(i).copied() {
                self.mark(&w);
            }
        }
        if core::mem::take(&mut self.all_inflight) {
            self.all_dirty = true;
            self.dirty = SpanSet::new();
        }
    }

    /// `w` widened to whole tracking pages.
    fn pages(&self, w: &Span) -> Span {
        let mask = self.page_size().wrapping_sub(1);
        let start = w.start & !mask;
        // Past the last whole page of the IOVA space nothing is tracked: clip there.
        let end = w.end.checked_add(mask).map_or(!mask, |e| e & !mask);
        Span {
            start,
            end: end.max(start),
        }
    }

    /// Marks the tracked pages `w` touches dirty.
    fn mark(&mut self, w: &Span) {
        if self.all_dirty {
            return;
        }
        let p = self.pages(w);
        for i in 0..self.ranges.len {
            let Some(r) = self.ranges.items.get(i).copied() else {
                break;
            };
            let Some(x) = p.intersect(&r) else {
                continue;
            };
            match self.dirty.with(x) {
                Ok(set) => self.dirty = set,
                Err(()) => {
                    self.all_dirty = true;
                    self.dirty = SpanSet::new();
                    self.lossy = true;
                    return;
                }
            }
        }
    }

    /// Whether `q` lies inside the union of the tracked ranges.
    fn covered(&self, q: &Span) -> bool {
        let mut pos = q.start;
        for r in self.ranges.iter() {
            if r.end <= pos {
                continue;
            }
            if r.start > pos {
                return false;
            }
            pos = r.end;
            if pos >= q.end {
                return true;
            }
        }
        false
    }

    /// Reports the dirty and in-flight spans inside `[iova, iova + len)` to `out` (as `(start,
    /// len)`, clipped to the query, in no particular order, possibly overlapping), then clears the
    /// tracking pages wholly inside the query. `busy`: the device may still be making issued
    /// writes; when it is not, they are settled first.
    pub fn read_and_clear(
        &mut self,
        iova: u64,
        len: u64,
        busy: bool,
        mut out: impl FnMut(u64, u64),
    ) -> Result<(), LogError> {
        if !self.active {
            return Err(LogError::NotStarted);
        }
        let q = Span::from_len(iova, len).ok_or(LogError::BadRange)?;
        if !self.covered(&q) {
            return Err(LogError::UnknownRange);
        }
        if !busy {
            self.settle();
        }
        let mut emit = |s: &Span| {
            if let Some(x) = s.intersect(&q) {
                out(x.start, x.len());
            }
        };
        if self.all_dirty || (busy && self.all_inflight) {
            self.ranges.iter().for_each(&mut emit);
        } else {
            self.dirty.iter().for_each(&mut emit);
            if busy {
                for w in self.inflight.iter().take(self.ninflight) {
                    let p = self.pages(w);
                    for r in self.ranges.iter() {
                        if let Some(x) = p.intersect(r) {
                            emit(&x);
                        }
                    }
                }
            }
        }
        self.clear(&q);
        Ok(())
    }

    /// Clears the tracking pages wholly inside `q`.
    fn clear(&mut self, q: &Span) {
        let mask = self.page_size().wrapping_sub(1);
        let start = q.start.checked_add(mask).map(|s| s & !mask);
        let Some(inner) = start.and_then(|s| Span::new(s, q.end & !mask)) else {
            return;
        };
        if self.all_dirty {
            // Every tracked page minus the query: at most MAX_RANGES + 1 extents, which fit.
            let mut all = SpanSet::<DIRTY_CAP>::new();
            for r in self.ranges.iter() {
                if all.push(*r).is_err() {
                    return;
                }
            }
            if let Ok(set) = all.without(&inner) {
                self.dirty = set;
                self.all_dirty = false;
            }
            return;
        }
        match self.dirty.without(&inner) {
            Ok(set) => self.dirty = set,
            // Splitting an extent did not fit: it stays dirty, which is only conservative.
            Err(()) => self.lossy = true,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::panic,
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing
    )]
    extern crate std;
    use super::*;
    use std::vec::Vec;

    const P: u64 = 4096;

    fn sp(a: u64, b: u64) -> Span {
        Span::new(a, b).unwrap()
    }

    /// `spans` as interval tree nodes (inclusive last).
    fn tree(spans: &[Span]) -> Vec<(u64, u64)> {
        spans.iter().map(|s| (s.start(), s.end() - 1)).collect()
    }

    fn report(log: &mut DirtyLog, iova: u64, len: u64, busy: bool) -> Vec<(u64, u64)> {
        let mut v = Vec::new();
        log.read_and_clear(iova, len, busy, |s, l| v.push((s, l)))
            .unwrap();
        // Spans may overlap or touch: merge them.
        v.sort_unstable();
        let mut m: Vec<(u64, u64)> = Vec::new();
        for (s, l) in v {
            match m.last_mut() {
                Some((ms, ml)) if s <= *ms + *ml => *ml = (*ml).max(s + l - *ms),
                _ => m.push((s, l)),
            }
        }
        m
    }

    #[test]
    fn spans() {
        assert_eq!(Span::new(1, 1), None);
        assert_eq!(Span::from_len(u64::MAX, 1), None);
        assert_eq!(
            Span::from_len(u64::MAX - 1, 1),
            Some(sp(u64::MAX - 1, u64::MAX))
        );
        assert_eq!(Span::from_last(0, u64::MAX), None);
        assert_eq!(Span::from_last(5, 4), None);
        assert_eq!(Span::from_last(0, 4095), Some(sp(0, 4096)));
        assert_eq!(sp(0, 10).intersect(&sp(10, 20)), None);
        assert_eq!(sp(0, 11).intersect(&sp(10, 20)), Some(sp(10, 11)));
    }

    #[test]
    fn page_sizes() {
        for bad in [0, 1, 2048, 4095, 4097, 12288, 1 << 31, 1 << 40, u64::MAX] {
            assert_eq!(
                DirtyLog::page_shift_of(bad),
                Err(LogError::BadPageSize),
                "{bad}"
            );
        }
        assert_eq!(DirtyLog::page_shift_of(4096), Ok(12));
        assert_eq!(DirtyLog::page_shift_of(1 << 30), Ok(30));
    }

    #[test]
    fn start_checks() {
        let mut log = DirtyLog::new();
        assert_eq!(log.start(P, tree(&[])), Err(LogError::NoRanges));
        assert_eq!(log.start(P, tree(&[sp(1, P)])), Err(LogError::BadRange));
        assert_eq!(log.start(P, tree(&[sp(0, P + 1)])), Err(LogError::BadRange));
        assert_eq!(
            log.start(P, tree(&[sp(P, 2 * P), sp(0, P)])),
            Err(LogError::BadRange)
        );
        assert_eq!(
            log.start(P, tree(&[sp(0, 2 * P), sp(P, 3 * P)])),
            Err(LogError::BadRange)
        );
        let many: Vec<Span> = (0..=MAX_RANGES as u64)
            .map(|i| sp(2 * i * P, (2 * i + 1) * P))
            .collect();
        assert_eq!(log.start(P, tree(&many)), Err(LogError::TooManyRanges));
        assert_eq!(log.start(P, tree(&many[..MAX_RANGES])), Ok(()));
        log.stop();
        // Nodes no tree should hold: last before first, and one reaching 2^64.
        assert_eq!(log.start(P, [(P, P - 1)]), Err(LogError::BadRange));
        assert_eq!(log.start(P, [(0, u64::MAX)]), Err(LogError::BadRange));
        assert_eq!(
            log.start(3 * P, tree(&[sp(0, 3 * P)])),
            Err(LogError::BadPageSize)
        );
        assert!(!log.is_active());
        // Adjacent ranges are fine.
        log.start(P, tree(&[sp(0, P), sp(P, 2 * P)])).unwrap();
        assert_eq!(
            log.start(P, tree(&[sp(0, P)])),
            Err(LogError::AlreadyStarted)
        );
        assert!(log.stop());
        assert!(!log.stop());
        assert_eq!(
            log.read_and_clear(0, P, false, |_, _| ()),
            Err(LogError::NotStarted)
        );
    }

    #[test]
    fn issue_report_clear() {
        let mut log = DirtyLog::new();
        log.start(P, tree(&[sp(0x10_0000, 0x20_0000)])).unwrap();
        // Inside the range, across a page boundary: two pages.
        log.issue(sp(0x10_0ff0, 0x10_1010));
        // Outside every range: not logged.
        log.issue(sp(0, 0x1000));
        assert_eq!(
            report(&mut log, 0x10_0000, 0x10_0000, false),
            [(0x10_0000, 2 * P)]
        );
        assert!(report(&mut log, 0x10_0000, 0x10_0000, false).is_empty());
        assert_eq!(
            log.read_and_clear(0x0f_f000, 0x2000, false, |_, _| ()),
            Err(LogError::UnknownRange)
        );
        assert_eq!(
            log.read_and_clear(0x10_0000, 0, false, |_, _| ()),
            Err(LogError::BadRange)
        );
        assert!(log.is_exact());
    }

    #[test]
    fn partial_query_keeps_partial_pages() {
        let mut log = DirtyLog::new();
        log.start(P, tree(&[sp(0, 16 * P)])).unwrap();
        log.issue(sp(P, 3 * P));
        // Half of page 1 and all of page 2: both reported, only page 2 cleared.
        assert_eq!(
            report(&mut log, P + 2048, 2 * P - 2048, false),
            [(P + 2048, 2 * P - 2048)]
        );
        assert_eq!(report(&mut log, 0, 16 * P, false), [(P, P)]);
    }

    #[test]
    fn inflight_reported_until_idle() {
        let mut log = DirtyLog::new();
        log.start(P, tree(&[sp(0, 16 * P)])).unwrap();
        log.issue(sp(4 * P, 5 * P));
        // Busy: reported, and still pending afterwards.
        assert_eq!(report(&mut log, 0, 16 * P, true), [(4 * P, P)]);
        assert_eq!(report(&mut log, 0, 16 * P, true), [(4 * P, P)]);
        // Idle: reported once more (the write may have landed after the last report), then gone.
        assert_eq!(report(&mut log, 0, 16 * P, false), [(4 * P, P)]);
        assert!(report(&mut log, 0, 16 * P, false).is_empty());
    }

    #[test]
    fn overflow_is_conservative_then_recovers() {
        let mut log = DirtyLog::new();
        log.start(P, tree(&[sp(0, 1024 * P), sp(2048 * P, 2050 * P)]))
            .unwrap();
        for i in 0..=DIRTY_CAP as u64 {
            log.issue(sp(2 * i * P, 2 * i * P + 1));
        }
        log.settle();
        assert!(!log.is_exact());
        // Everything tracked in the query is reported.
        assert_eq!(report(&mut log, 0, 8 * P, false), [(0, 8 * P)]);
        // The cleared part is gone, the rest is still all dirty.
        assert_eq!(report(&mut log, 0, 1024 * P, true), [(8 * P, 1016 * P)]);
        assert_eq!(report(&mut log, 2048 * P, 2 * P, true), [(2048 * P, 2 * P)]);
        assert!(report(&mut log, 0, 1024 * P, false).is_empty());
        assert!(report(&mut log, 2048 * P, 2 * P, false).is_empty());
        // The gap between the ranges is not tracked.
        assert_eq!(
            log.read_and_clear(0, 2050 * P, false, |_, _| ()),
            Err(LogError::UnknownRange)
        );
    }

    #[test]
    fn inflight_overflow() {
        let mut log = DirtyLog::new();
        log.start(P, tree(&[sp(0, 64 * P)])).unwrap();
        for i in 0..=INFLIGHT_CAP as u64 {
            log.issue(sp(i * P, i * P + 1));
        }
        assert_eq!(report(&mut log, 0, 64 * P, true), [(0, 64 * P)]);
        assert_eq!(report(&mut log, 0, 64 * P, false), [(0, 64 * P)]);
        assert!(report(&mut log, 0, 64 * P, false).is_empty());
    }

    #[test]
    fn large_pages_and_top_of_space() {
        const M2: u64 = 1 << 21;
        let mut log = DirtyLog::new();
        // The highest range a 2 MiB page allows: its end is the last page boundary.
        let last = sp(0u64.wrapping_sub(2 * M2), 0u64.wrapping_sub(M2));
        log.start(M2, tree(&[last])).unwrap();
        log.issue(sp(last.start() + 5, u64::MAX));
        assert_eq!(
            report(&mut log, last.start(), M2, false),
            [(last.start(), M2)]
        );
    }
}
