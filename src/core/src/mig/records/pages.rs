//! Page records: a run of a device memory's pages, the bulk of a backend whose state is a memory
//! BAR (the ivshmem backend; any later memory backend reuses the layout with its own tag).
//!
//! A page record may come any number of times in one stream, for any pages: a later record of a
//! page replaces an earlier one (pre-copy sends every page while the device runs, stop-copy
//! sends again the pages that changed since). A destination takes the stream only when every
//! page of its memory was received at least once.
//!
//! Payload, little-endian: a 16-byte prefix, then the pages:
//!
//! ```text
//!   0  u64  offset   byte offset of the first page in the memory, a multiple of PAGE
//!   8  u32  count    pages in the run, 1..=MAX_RUN
//!  12  u32  reserved 0
//!  16  ...  count * PAGE bytes, the pages in order
//! ```
//!
//! The record's length must be exactly `16 + count * PAGE` and the run must lie inside the
//! destination's memory. [`PagesIn`] is the destination's staging state machine (bytes go straight
//! to their page in the staging memory, the prefix checked before any page byte lands).

use super::{put, rd32, rd64, RecordError};

/// Page size of page records: 4 KiB on every architecture.
pub const PAGE: usize = 4096;

/// Most pages one record carries (256 KiB of data).
pub const MAX_RUN: usize = 64;

/// Length of the prefix before the pages.
pub const PREFIX: usize = 16;

/// Longest page record payload.
pub const MAX_LEN: usize = PREFIX + MAX_RUN * PAGE;

/// The prefix of a page record: where its run of pages goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Run {
    /// Index of the first page (byte offset / [`PAGE`]).
    pub first: usize,
    /// Number of pages, `1..=MAX_RUN`.
    pub count: usize,
}

impl Run {
    /// The payload length of a record carrying this run.
    pub const fn payload_len(&self) -> usize {
        PREFIX.saturating_add(self.count.saturating_mul(PAGE))
    }

    /// Writes the prefix of a record carrying this run.
    pub fn encode(&self, out: &mut [u8; PREFIX]) {
        out.fill(0);
        let off = u64::try_from(self.first)
            .unwrap_or(u64::MAX)
            .saturating_mul(PAGE as u64);
        put(out, 0, &off.to_le_bytes());
        put(
            out,
            8,
            &u32::try_from(self.count).unwrap_or(0).to_le_bytes(),
        );
    }

    /// Validates the prefix of a record of `len` payload bytes for a memory of `pages` pages.
    ///
    /// # Errors
    ///
    /// [`RecordError::Length`] when `len` is not the length the prefix's count gives (or the
    /// prefix is short), [`RecordError::Field`] for a misaligned offset, a count of 0 or above
    /// [`MAX_RUN`], a run past the end of the memory or a non-zero reserved field.
    pub fn decode(prefix: &[u8], len: usize, pages: usize) -> Result<Self, RecordError> {
        if prefix.len() < PREFIX {
            return Err(RecordError::Length {
                want: PREFIX,
                got: prefix.len(),
            });
        }
        let bad = |offset, name| Err(RecordError::Field { offset, name });
        let off = rd64(prefix, 0);
        let count = usize::try_from(rd32(prefix, 8)).unwrap_or(usize::MAX);
        if off.checked_rem(PAGE as u64) != Some(0) {
            return bad(0, "offset");
        }
        if count == 0 || count > MAX_RUN {
            return bad(8, "count");
        }
        if rd32(prefix, 12) != 0 {
            return bad(12, "reserved");
        }
        let first =
            usize::try_from(off.checked_div(PAGE as u64).unwrap_or(u64::MAX)).unwrap_or(usize::MAX);
        if first.checked_add(count).is_none_or(|end| end > pages) {
            return bad(0, "offset");
        }
        let run = Run { first, count };
        if len != run.payload_len() {
            return Err(RecordError::Length {
                want: run.payload_len(),
                got: len,
            });
        }
        Ok(run)
    }
}

/// The next run of at most [`MAX_RUN`] consecutive pages at or after `from` (below `pages`) for
/// which `want` holds; `None` when there is none.
pub fn next_run(from: usize, pages: usize, want: impl Fn(usize) -> bool) -> Option<Run> {
    let first = (from..pages).find(|&i| want(i))?;
    let mut count = 1;
    while count < MAX_RUN {
        let next = first.saturating_add(count);
        if next >= pages || !want(next) {
            break;
        }
        count = next.saturating_sub(first).saturating_add(1);
    }
    Some(Run { first, count })
}

/// Where a page record's payload bytes go, for [`PagesIn::stage`].
pub enum Dest<'a> {
    /// Prefix bytes, kept in the state machine.
    Prefix(&'a mut [u8]),
    /// Page bytes: this range of the staging memory.
    Memory(core::ops::Range<usize>),
}

/// The destination's state for the page record being received.
#[derive(Clone, Copy, Debug, Default)]
pub struct PagesIn {
    /// The record's payload length.
    len: usize,
    /// The prefix, as received.
    prefix: [u8; PREFIX],
    /// The run, once the prefix was received and checked.
    run: Option<(usize, usize)>,
}

impl PagesIn {
    /// A page record of `len` payload bytes begins.
    ///
    /// # Errors
    ///
    /// [`RecordError::Length`] for a length no page record has.
    pub fn begin(len: u64) -> Result<Self, RecordError> {
        let got = usize::try_from(len).unwrap_or(usize::MAX);
        let data = got.saturating_sub(PREFIX);
        let pages = data.checked_div(PAGE).unwrap_or(0);
        if !(PREFIX.saturating_add(PAGE)..=MAX_LEN).contains(&got)
            || data.checked_rem(PAGE) != Some(0)
        {
            return Err(RecordError::Length {
                want: PREFIX.saturating_add(pages.clamp(1, MAX_RUN).saturating_mul(PAGE)),
                got,
            });
        }
        Ok(PagesIn {
            len: got,
            prefix: [0; PREFIX],
            run: None,
        })
    }

    /// Where the payload bytes from `offset` go (at most `want` of them) in a memory of `pages`
    /// pages: the prefix first (kept here); once it is complete it is checked, the pages of its
    /// run are marked in `have` (`mark(page)`), and the rest goes to its range of the memory.
    ///
    /// # Errors
    ///
    /// The prefix's [`Run::decode`] error.
    pub fn stage(
        &mut self,
        offset: u64,
        want: usize,
        pages: usize,
        mut mark: impl FnMut(usize),
    ) -> Result<Dest<'_>, RecordError> {
        let at = usize::try_from(offset).unwrap_or(usize::MAX);
        if at < PREFIX {
            let end = PREFIX.min(at.saturating_add(want));
            return Ok(Dest::Prefix(
                self.prefix.get_mut(at..end).unwrap_or(&mut []),
            ));
        }
        let (first, count) = match self.run {
            Some(r) => r,
            None => {
                let run = Run::decode(&self.prefix, self.len, pages)?;
                for p in run.first..run.first.saturating_add(run.count) {
                    mark(p);
                }
                self.run = Some((run.first, run.count));
                (run.first, run.count)
            }
        };
        let base = first.saturating_mul(PAGE);
        let data = count.saturating_mul(PAGE);
        let from = at.saturating_sub(PREFIX);
        let end = data.min(from.saturating_add(want));
        Ok(Dest::Memory(
            base.saturating_add(from.min(end))..base.saturating_add(end),
        ))
    }
}

#[cfg(test)]
// Tests may panic: that is how they fail (as in the crate's integration tests).
#[allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::identity_op
)]
mod tests {
    use super::*;

    #[test]
    fn prefix_round_trip_and_refusals() {
        let run = Run { first: 3, count: 2 };
        let mut p = [0u8; PREFIX];
        run.encode(&mut p);
        assert_eq!(Run::decode(&p, run.payload_len(), 5), Ok(run));
        // Past the end of a 4-page memory.
        assert!(matches!(
            Run::decode(&p, run.payload_len(), 4),
            Err(RecordError::Field { offset: 0, .. })
        ));
        // Wrong record length.
        assert!(matches!(
            Run::decode(&p, run.payload_len() + 1, 5),
            Err(RecordError::Length { .. })
        ));
        let mut q = p;
        q[1] = 1; // offset 0x100: misaligned
        assert!(matches!(
            Run::decode(&q, run.payload_len(), 5),
            Err(RecordError::Field { offset: 0, .. })
        ));
        let mut q = p;
        q[8] = 0;
        assert!(matches!(
            Run::decode(&q, run.payload_len(), 5),
            Err(RecordError::Field { offset: 8, .. })
        ));
        let mut q = p;
        q[8] = 65;
        assert!(Run::decode(&q, PREFIX + 65 * PAGE, 100).is_err());
        let mut q = p;
        q[13] = 1;
        assert!(matches!(
            Run::decode(&q, run.payload_len(), 5),
            Err(RecordError::Field { offset: 12, .. })
        ));
        // An offset whose page index overflows.
        let mut q = p;
        q[..8].copy_from_slice(&(u64::MAX & !4095).to_le_bytes());
        assert!(Run::decode(&q, run.payload_len(), 1 << 40).is_err());
    }

    #[test]
    fn runs_are_maximal_and_bounded() {
        let set = |i: usize| (2..200).contains(&i) && i != 70;
        assert_eq!(
            next_run(0, 300, set),
            Some(Run {
                first: 2,
                count: 64
            })
        );
        assert_eq!(
            next_run(66, 300, set),
            Some(Run {
                first: 66,
                count: 4
            })
        );
        assert_eq!(
            next_run(70, 300, set),
            Some(Run {
                first: 71,
                count: 64
            })
        );
        assert_eq!(
            next_run(199, 300, set),
            Some(Run {
                first: 199,
                count: 1
            })
        );
        assert_eq!(next_run(200, 300, set), None);
        assert_eq!(
            next_run(0, 100, |_| true),
            Some(Run {
                first: 0,
                count: 64
            })
        );
        assert_eq!(
            next_run(64, 100, |_| true),
            Some(Run {
                first: 64,
                count: 36
            })
        );
    }

    #[test]
    fn staging_checks_the_prefix_before_any_page_byte() {
        let run = Run { first: 1, count: 2 };
        let mut rec = [0u8; PREFIX + 2 * PAGE];
        let mut p = [0u8; PREFIX];
        run.encode(&mut p);
        rec[..PREFIX].copy_from_slice(&p);
        for (i, b) in rec[PREFIX..].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        for step in [1usize, 7, 4096, 100_000] {
            let mut mem = [0u8; 4 * PAGE];
            let mut have = [false; 4];
            let mut st = PagesIn::begin(rec.len() as u64).unwrap();
            let mut at = 0usize;
            while at < rec.len() {
                let n = step.min(rec.len() - at);
                let mut done = 0;
                while done < n {
                    let off = (at + done) as u64;
                    let d = st.stage(off, n - done, 4, |pg| have[pg] = true).unwrap();
                    let src = &rec[at + done..at + n];
                    let k = match d {
                        Dest::Prefix(b) => {
                            let k = b.len().min(src.len());
                            b[..k].copy_from_slice(&src[..k]);
                            k
                        }
                        Dest::Memory(r) => {
                            let k = r.len();
                            mem[r].copy_from_slice(&src[..k]);
                            k
                        }
                    };
                    assert!(k > 0);
                    done += k;
                }
                at += n;
            }
            assert_eq!(have, [false, true, true, false]);
            assert_eq!(&mem[PAGE..3 * PAGE], &rec[PREFIX..]);
            assert!(mem[..PAGE].iter().all(|&b| b == 0));
        }
        // A run past the memory is refused when the first page byte arrives.
        let mut st = PagesIn::begin(rec.len() as u64).unwrap();
        if let Ok(Dest::Prefix(b)) = st.stage(0, PREFIX, 2, |_| {}) {
            b.copy_from_slice(&p);
        }
        assert!(st.stage(PREFIX as u64, 1, 2, |_| panic!("marked")).is_err());
        assert!(PagesIn::begin(PREFIX as u64).is_err());
        assert!(PagesIn::begin((PREFIX + PAGE + 1) as u64).is_err());
        assert!(PagesIn::begin((MAX_LEN + PAGE) as u64).is_err());
        assert!(PagesIn::begin(MAX_LEN as u64).is_ok());
    }
}
