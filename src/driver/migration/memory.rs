// SPDX-License-Identifier: GPL-2.0

//! Device memory carried as page records (the core's `mig::records::pages`), for a backend whose
//! state is a memory BAR ([`crate::backend::Backend::MEMORY`]).
//!
//! Source: entering PRE_COPY reads every page of the BAR while the device runs into [`Pages`]
//! (the PRE_COPY data, kept until the session ends); entering STOP_COPY compares the frozen BAR
//! with that copy word by word, without copying, and reads and sends only the pages that differ
//! ([`changed`]; every page when there was no PRE_COPY). Destination: the page records are staged
//! into a buffer the size of the memory ([`Staged`]), checked page run by page run before any
//! byte lands, and written to the BAR at RESUMING -> STOP only once the whole stream was verified
//! and every page received ([`load`]). Every BAR access goes through `CoreDevice::with_bar`
//! (`memory_lock` held, decoding on, `EIO` in D3hot; 8-byte accesses), [`HOLD`] pages per lock
//! hold.

use crate::{
    backend::MemorySpec,
    persona_core::mig::{
        records::pages::{self, next_run, Dest, PagesIn, Run, PAGE, PREFIX},
        stream::{Reason, Record},
    },
    vfio::{CoreDevice, Io},
};
use kernel::prelude::*;

/// Pages of the BAR one `memory_lock` hold covers (1 MiB): each hold costs the lock, the
/// config-space check of memory decoding and its restore, as much as copying a few hundred KiB
/// under TCG; other users of the BAR wait for at most this much.
const HOLD: usize = 4 * pages::MAX_RUN;

/// Page records ready to send: each record's payload (prefix, then its pages) back to back.
pub(super) struct Pages {
    tag: u32,
    buf: KVVec<u8>,
    /// Start and length of each record's payload in `buf`.
    spans: KVVec<(usize, usize)>,
}

impl Pages {
    /// The number of records.
    pub(super) fn count(&self) -> usize {
        self.spans.len()
    }

    /// Record `i`.
    pub(super) fn record(&self, i: usize) -> Option<Record<'_>> {
        let &(at, len) = self.spans.get(i)?;
        Some(Record {
            tag: self.tag,
            mandatory: true,
            payload: self.buf.get(at..at.checked_add(len)?)?,
        })
    }

    /// Record `i`'s run (for a memory of `pages` pages) and its pages' bytes.
    fn run(&self, i: usize, pages: usize) -> Option<(Run, &[u8])> {
        let payload = self.record(i)?.payload;
        let run = Run::decode(payload, payload.len(), pages).ok()?;
        Some((run, payload.get(PREFIX..)?))
    }

    /// Page records of the runs `want` selects among `pages` pages, read from the BAR.
    fn read(
        core: &CoreDevice<Io>,
        spec: &MemorySpec,
        pages: usize,
        want: impl Fn(usize) -> bool,
    ) -> Result<Self> {
        let (mut records, mut bytes) = (0usize, 0usize);
        let mut at = 0;
        while let Some(run) = next_run(at, pages, &want) {
            records += 1;
            bytes = bytes.checked_add(run.payload_len()).ok_or(EOVERFLOW)?;
            at = run.first + run.count;
        }
        // Allocated whole up front: the copies append within capacity, under the lock.
        let mut out = Pages {
            tag: spec.tag,
            buf: KVVec::with_capacity(bytes, GFP_KERNEL)?,
            spans: KVVec::with_capacity(records, GFP_KERNEL)?,
        };
        let mut next = next_run(0, pages, &want);
        while next.is_some() {
            core.with_bar(spec.bar, |bar| {
                let mut held = 0;
                while let Some(run) = next {
                    if held > 0 && held + run.count > HOLD {
                        break;
                    }
                    let mut prefix = [0u8; PREFIX];
                    run.encode(&mut prefix);
                    let pos = out.buf.len();
                    if out.buf.spare_capacity_mut().len() < run.payload_len() {
                        return Err(EINVAL);
                    }
                    // Within capacity (checked above): no allocation under the lock.
                    out.buf.extend_from_slice(&prefix, GFP_KERNEL)?;
                    bar.read_append(page_off(run.first)?, run.count * PAGE, &mut out.buf)?;
                    out.spans
                        .push_within_capacity((pos, run.payload_len()))
                        .map_err(|_| EINVAL)?;
                    held += run.count;
                    next = next_run(run.first + run.count, pages, &want);
                }
                Ok(())
            })?;
        }
        Ok(out)
    }
}

/// The byte offset of page `i`.
fn page_off(i: usize) -> Result<u64> {
    u64::try_from(i)
        .ok()
        .and_then(|i| i.checked_mul(PAGE as u64))
        .ok_or(EOVERFLOW)
}

/// The pages of a memory BAR of `len` bytes (presented size), or `EINVAL` for a size that is
/// not a non-zero multiple of the page size.
pub(super) fn pages_of(len: u64) -> Result<usize> {
    if len == 0 || len % PAGE as u64 != 0 {
        return Err(EINVAL);
    }
    usize::try_from(len / PAGE as u64).map_err(|_| EINVAL)
}

/// PRE_COPY: every page of the running device.
pub(super) fn precopy(core: &CoreDevice<Io>, spec: &MemorySpec, pages: usize) -> Result<Pages> {
    Pages::read(core, spec, pages, |_| true)
}

/// STOP_COPY: the pages of the frozen device that differ from the copy PRE_COPY sent, `pre`
/// (every page without it, and every page `pre` does not carry).
pub(super) fn changed(
    core: &CoreDevice<Io>,
    spec: &MemorySpec,
    pages: usize,
    pre: Option<&Pages>,
) -> Result<Pages> {
    let Some(pre) = pre else {
        return Pages::read(core, spec, pages, |_| true);
    };
    // Compare in holds of about HOLD pages: a page of a run `pre` carries is clean until a word
    // of it differs; any other page is sent.
    let mut dirty = KVVec::from_elem(true, pages, GFP_KERNEL)?;
    let mut i = 0;
    while i < pre.count() {
        core.with_bar(spec.bar, |bar| {
            let mut held = 0;
            while let Some((run, data)) = pre.run(i, pages) {
                if held > 0 && held + run.count > HOLD {
                    break;
                }
                let d = dirty
                    .get_mut(run.first..run.first + run.count)
                    .ok_or(EINVAL)?;
                d.fill(false);
                bar.differs(page_off(run.first)?, data, PAGE, |k| {
                    if let Some(p) = d.get_mut(k) {
                        *p = true;
                    }
                })?;
                held += run.count;
                i += 1;
            }
            Ok(())
        })?;
        // A record that is not a run of this memory: its pages stay dirty, the next one is
        // compared.
        if i < pre.count() && pre.run(i, pages).is_none() {
            i += 1;
        }
    }
    Pages::read(core, spec, pages, |i| dirty.get(i).copied().unwrap_or(true))
}

/// The most bytes of page records a stream of a memory of `pages` pages carries: every page
/// twice (PRE_COPY, then all changed at STOP_COPY), with record headers.
pub(super) fn stream_allowance(pages: usize) -> Option<u64> {
    let runs = pages.div_ceil(pages::MAX_RUN);
    let once = pages
        .checked_mul(PAGE)?
        .checked_add(runs.checked_mul(PREFIX + 16)?)?;
    u64::try_from(once.checked_mul(2)?).ok()
}

/// The bytes of page records that carry every page once (a STOP_COPY without PRE_COPY).
pub(super) fn full_len(pages: usize) -> Option<usize> {
    let runs = pages.div_ceil(pages::MAX_RUN);
    pages
        .checked_mul(PAGE)?
        .checked_add(runs.checked_mul(PREFIX + 16)?)
}

/// A memory staged from page records.
pub(crate) struct Staged {
    tag: u32,
    /// The memory, as received so far; allocated at the first page record (a stream refused
    /// in its header costs no allocation of the memory's size).
    pub(super) buf: KVVec<u8>,
    /// The memory's length in bytes.
    len: usize,
    /// Which pages were received.
    have: KVVec<bool>,
    /// The page record being received.
    cur: Option<PagesIn>,
}

impl Staged {
    /// Staging for `pages` pages, page records tagged `tag`.
    pub(super) fn new(tag: u32, pages: usize) -> Result<Self> {
        Ok(Staged {
            tag,
            buf: KVVec::new(),
            len: pages.checked_mul(PAGE).ok_or(EOVERFLOW)?,
            have: KVVec::from_elem(false, pages, GFP_KERNEL)?,
            cur: None,
        })
    }

    /// Whether `tag` is this memory's page record.
    pub(super) fn is_pages(&self, tag: u32) -> bool {
        tag == self.tag
    }

    /// A page record of `len` payload bytes begins.
    pub(super) fn begin(&mut self, len: u64) -> Result<(), Reason> {
        self.cur = Some(PagesIn::begin(len).map_err(|_| Reason::InvalidRecord)?);
        if self.buf.is_empty() {
            self.buf =
                KVVec::from_elem(0u8, self.len, GFP_KERNEL).map_err(|_| Reason::NoStagingSpace)?;
        }
        Ok(())
    }

    /// Where payload bytes from `offset` go (see the core's `PagesIn::stage`).
    pub(super) fn stage(&mut self, offset: u64, want: usize) -> Result<&mut [u8], Reason> {
        let pages = self.have.len();
        let have = &mut self.have;
        let cur = self.cur.as_mut().ok_or(Reason::NoStagingSpace)?;
        let dest = cur
            .stage(offset, want, pages, |p| {
                if let Some(h) = have.get_mut(p) {
                    *h = true;
                }
            })
            .map_err(|_| Reason::InvalidRecord)?;
        match dest {
            Dest::Prefix(b) => Ok(b),
            Dest::Memory(r) => self.buf.get_mut(r).ok_or(Reason::InvalidRecord),
        }
    }

    /// The page record ended.
    pub(super) fn end(&mut self) {
        self.cur = None;
    }

    /// Whether every page was received.
    pub(super) fn complete(&self) -> bool {
        self.have.iter().all(|&h| h)
    }
}

/// RESUMING -> STOP: writes a verified, complete memory to the BAR.
pub(super) fn load(core: &CoreDevice<Io>, spec: &MemorySpec, mem: &[u8]) -> Result {
    let step = HOLD * PAGE;
    for (i, chunk) in mem.chunks(step).enumerate() {
        let off = u64::try_from(i.checked_mul(step).ok_or(EOVERFLOW)?).map_err(|_| EOVERFLOW)?;
        core.with_bar(spec.bar, |bar| bar.write(off, chunk))?;
    }
    Ok(())
}
