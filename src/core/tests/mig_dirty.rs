//! The dirty log against a page-set model, on random sequences of writes, reports and restarts.
#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::BTreeSet;

use persona_core::mig::dirty::{DirtyLog, LogError, Span, DIRTY_CAP, MAX_RANGES};
use proptest::prelude::*;

/// The obvious model: sets of page numbers.
struct Model {
    shift: u32,
    tracked: BTreeSet<u64>,
    dirty: BTreeSet<u64>,
    inflight: Vec<BTreeSet<u64>>,
}

impl Model {
    /// Pages `[start, end)` touches.
    fn touched(&self, start: u64, end: u64) -> BTreeSet<u64> {
        ((start >> self.shift)..=((end - 1) >> self.shift)).collect()
    }

    /// Pages wholly inside `[start, end)`.
    fn inside(&self, start: u64, end: u64) -> BTreeSet<u64> {
        let ps = 1u64 << self.shift;
        ((start.div_ceil(ps))..(end / ps)).collect()
    }

    fn issue(&mut self, start: u64, end: u64) {
        let p: BTreeSet<u64> = self
            .touched(start, end)
            .intersection(&self.tracked)
            .copied()
            .collect();
        self.dirty.extend(&p);
        self.inflight.push(p);
    }

    fn settle(&mut self) {
        for p in self.inflight.drain(..) {
            self.dirty.extend(p);
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// A device write: page, offset selector, length in pages, length selector.
    Issue(u64, u8, u64, u8),
    /// A report: page, offset selector, length in pages, length selector, busy.
    Report(u64, u8, u64, u8, bool),
    /// A report inside one tracked range: range index, first page, offset selector, pages,
    /// length selector, busy.
    ReportIn(usize, u64, u8, u64, u8, bool),
    Settle,
    /// Stop, then start again with the same ranges.
    Restart,
    DoubleStart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u64..160, 0u8..4, 0u64..6, 0u8..4).prop_map(|(p, o, l, s)| Op::Issue(p, o, l, s)),
        3 => (0u64..160, 0u8..4, 0u64..40, 0u8..4, any::<bool>())
            .prop_map(|(p, o, l, s, b)| Op::Report(p, o, l, s, b)),
        5 => (0usize..MAX_RANGES, 0u64..24, 0u8..4, 0u64..24, 0u8..4, any::<bool>())
            .prop_map(|(r, p, o, l, s, b)| Op::ReportIn(r, p, o, l, s, b)),
        2 => Just(Op::Settle),
        1 => Just(Op::Restart),
        1 => Just(Op::DoubleStart),
    ]
}

/// An offset inside a page: its start, 1, the middle, or the last byte.
fn sub(sel: u8, ps: u64) -> u64 {
    [0, 1, ps / 2, ps - 1][usize::from(sel % 4)]
}

fn ranges() -> impl Strategy<Value = Vec<(u64, u64)>> {
    // (gap before, length), in pages.
    proptest::collection::vec((0u64..12, 1u64..24), 1..=MAX_RANGES)
}

/// `spans` as VFIO's interval tree gives them (inclusive last).
fn tree(spans: &[Span]) -> Vec<(u64, u64)> {
    spans.iter().map(|s| (s.start(), s.end() - 1)).collect()
}

fn spans_of(shift: u32, rs: &[(u64, u64)]) -> Vec<Span> {
    let mut at = 0u64;
    rs.iter()
        .map(|&(gap, len)| {
            at += gap;
            let s = Span::new(at << shift, (at + len) << shift).unwrap();
            at += len;
            s
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(
        shift in prop_oneof![Just(12u32), Just(13u32), Just(16u32)],
        rs in ranges(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let ps = 1u64 << shift;
        let spans = spans_of(shift, &rs);
        let mut log = DirtyLog::new();
        log.start(ps, tree(&spans)).unwrap();
        let mut m = Model {
            shift,
            tracked: spans.iter().flat_map(|s| (s.start() >> shift)..(s.end() >> shift)).collect(),
            dirty: BTreeSet::new(),
            inflight: Vec::new(),
        };
        for op in ops {
            match op {
                Op::Issue(p, o, l, s) => {
                    let start = (p << shift) + sub(o, ps);
                    let len = (l << shift) + sub(s, ps);
                    let Some(w) = Span::from_len(start, len) else { continue };
                    log.issue(w);
                    m.issue(w.start(), w.end());
                }
                Op::Report(..) | Op::ReportIn(..) => {
                    let (start, len, busy) = match op {
                        Op::Report(p, o, l, s, busy) => {
                            ((p << shift) + sub(o, ps), (l << shift) + sub(s, ps), busy)
                        }
                        Op::ReportIn(r, p, o, l, s, busy) => {
                            let r = spans[r % spans.len()];
                            let pages = (r.end() - r.start()) >> shift;
                            let start = r.start() + ((p % pages) << shift) + sub(o, ps);
                            let end = (start + (l << shift) + sub(s, ps)).min(r.end());
                            (start, end.saturating_sub(start), busy)
                        }
                        _ => unreachable!(),
                    };
                    let mut got = Vec::new();
                    let r = log.read_and_clear(start, len, busy, |a, n| got.push((a, n)));
                    if len == 0 {
                        prop_assert_eq!(r, Err(LogError::BadRange));
                        continue;
                    }
                    let end = start + len;
                    let q = m.touched(start, end);
                    if !q.is_subset(&m.tracked) {
                        prop_assert_eq!(r, Err(LogError::UnknownRange));
                        prop_assert!(got.is_empty());
                        continue;
                    }
                    prop_assert_eq!(r, Ok(()));
                    if !busy {
                        m.settle();
                    }
                    let mut want: BTreeSet<u64> = m.dirty.intersection(&q).copied().collect();
                    if busy {
                        for p in &m.inflight {
                            want.extend(p.intersection(&q));
                        }
                    }
                    let mut seen = BTreeSet::new();
                    for (a, n) in got {
                        prop_assert!(n > 0 && a >= start && a + n <= end,
                            "span {:#x}+{:#x} outside the query {:#x}..{:#x}", a, n, start, end);
                        seen.extend(m.touched(a, a + n));
                    }
                    prop_assert!(seen.is_subset(&m.tracked));
                    prop_assert!(want.is_subset(&seen), "missed pages: want {:?} got {:?}",
                        want, seen);
                    if log.is_exact() {
                        prop_assert_eq!(&seen, &want);
                    }
                    for p in m.inside(start, end) {
                        m.dirty.remove(&p);
                    }
                }
                Op::Settle => {
                    log.settle();
                    m.settle();
                }
                Op::Restart => {
                    prop_assert!(log.stop());
                    prop_assert_eq!(log.read_and_clear(0, ps, false, |_, _| ()),
                        Err(LogError::NotStarted));
                    log.start(ps, tree(&spans)).unwrap();
                    prop_assert!(log.is_exact());
                    m.dirty.clear();
                    m.inflight.clear();
                }
                Op::DoubleStart => {
                    prop_assert_eq!(log.start(ps, tree(&spans)), Err(LogError::AlreadyStarted));
                }
            }
        }
    }
}

/// Many scattered writes overflow the dirty set: reports stay supersets, and after a full
/// clear the log is empty again.
#[test]
fn overflow_then_full_clear() {
    let ps = 4096u64;
    let mut log = DirtyLog::new();
    log.start(ps, [(0, 4 * DIRTY_CAP as u64 * ps - 1)]).unwrap();
    for i in 0..(DIRTY_CAP as u64 + 3) {
        log.issue(Span::from_len(3 * i * ps, 1).unwrap());
    }
    log.settle();
    assert!(!log.is_exact());
    let mut got = Vec::new();
    log.read_and_clear(0, 4 * DIRTY_CAP as u64 * ps, false, |a, n| got.push((a, n)))
        .unwrap();
    assert_eq!(got, [(0, 4 * DIRTY_CAP as u64 * ps)]);
    let mut again = 0;
    log.read_and_clear(0, 4 * DIRTY_CAP as u64 * ps, false, |_, _| again += 1)
        .unwrap();
    assert_eq!(again, 0);
}
