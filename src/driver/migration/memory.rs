// SPDX-License-Identifier: GPL-2.0

//! Device memory carried as page records (the core's `mig::records::pages`), for a backend whose
//! state is a memory BAR ([`crate::backend::Backend::MEMORY`]).
//!
//! Source: entering PRE_COPY reads every page of the BAR while the device runs into [`Pages`]
//! (the PRE_COPY data) and keeps a digest of each page as sent; entering STOP_COPY reads the
//! frozen BAR again, compares each page's digest and sends the pages that differ ([`changed`];
//! every page when there was no PRE_COPY). Destination: the page records are staged into a
//! buffer the size of the memory ([`Staged`]), checked page run by page run before any byte
//! lands, and written to the BAR at RESUMING -> STOP only once the whole stream was verified and
//! every page received ([`load`]). Every BAR access goes through `CoreDevice::bar_read_block` /
//! `bar_write_block` (`memory_lock` held, decoding on, `EIO` in D3hot), [`pages::MAX_RUN`]
//! pages per lock hold.

use crate::{
    backend::MemorySpec,
    persona_core::mig::{
        records::pages::{self, next_run, Dest, PagesIn, PAGE, PREFIX},
        stream::{Reason, Record},
    },
    vfio::{CoreDevice, Io},
};
use kernel::prelude::*;

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

    /// Page records of the runs `want` selects among `pages` pages, read from the BAR;
    /// `digests`, when given, receives the digest of every page read.
    fn read(
        core: &CoreDevice<Io>,
        spec: &MemorySpec,
        pages: usize,
        want: impl Fn(usize) -> bool,
        mut digests: Option<&mut [u64]>,
    ) -> Result<Self> {
        let (mut records, mut bytes) = (0usize, 0usize);
        let mut at = 0;
        while let Some(run) = next_run(at, pages, &want) {
            records += 1;
            bytes = bytes.checked_add(run.payload_len()).ok_or(EOVERFLOW)?;
            at = run.first + run.count;
        }
        let mut out = Pages {
            tag: spec.tag,
            buf: KVVec::from_elem(0u8, bytes, GFP_KERNEL)?,
            spans: KVVec::with_capacity(records, GFP_KERNEL)?,
        };
        let (mut at, mut pos) = (0usize, 0usize);
        while let Some(run) = next_run(at, pages, &want) {
            let len = run.payload_len();
            let rec = out.buf.get_mut(pos..pos + len).ok_or(EINVAL)?;
            let (prefix, data) = rec.split_at_mut(PREFIX);
            let prefix: &mut [u8; PREFIX] = prefix.try_into().map_err(|_| EINVAL)?;
            run.encode(prefix);
            core.bar_read_block(spec.bar, page_off(run.first)?, data)?;
            if let Some(d) = digests.as_deref_mut() {
                for (i, page) in data.chunks_exact(PAGE).enumerate() {
                    if let Some(slot) = d.get_mut(run.first + i) {
                        *slot = pages::digest(page);
                    }
                }
            }
            out.spans.push((pos, len), GFP_KERNEL)?;
            pos += len;
            at = run.first + run.count;
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

/// PRE_COPY: every page of the running device, and the digest of each as read.
pub(super) fn precopy(
    core: &CoreDevice<Io>,
    spec: &MemorySpec,
    pages: usize,
) -> Result<(Pages, KVVec<u64>)> {
    let mut digests = KVVec::from_elem(0u64, pages, GFP_KERNEL)?;
    let p = Pages::read(core, spec, pages, |_| true, Some(&mut digests))?;
    Ok((p, digests))
}

/// STOP_COPY: the pages of the frozen device whose digest is not the one sent in PRE_COPY
/// (every page without `digests`).
pub(super) fn changed(
    core: &CoreDevice<Io>,
    spec: &MemorySpec,
    pages: usize,
    digests: Option<&[u64]>,
) -> Result<Pages> {
    let Some(sent) = digests.filter(|d| d.len() == pages) else {
        return Pages::read(core, spec, pages, |_| true, None);
    };
    // Re-hash in runs of MAX_RUN pages (one lock hold each), then read the changed ones.
    let mut dirty = KVVec::from_elem(false, pages, GFP_KERNEL)?;
    let mut scratch = KVVec::from_elem(0u8, pages::MAX_RUN * PAGE, GFP_KERNEL)?;
    let mut at = 0;
    while let Some(run) = next_run(at, pages, |_| true) {
        let data = scratch.get_mut(..run.count * PAGE).ok_or(EINVAL)?;
        core.bar_read_block(spec.bar, page_off(run.first)?, data)?;
        for (i, page) in data.chunks_exact(PAGE).enumerate() {
            let p = run.first + i;
            if sent.get(p) != Some(&pages::digest(page)) {
                if let Some(d) = dirty.get_mut(p) {
                    *d = true;
                }
            }
        }
        at = run.first + run.count;
    }
    Pages::read(
        core,
        spec,
        pages,
        |i| dirty.get(i).copied().unwrap_or(true),
        None,
    )
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
    let step = pages::MAX_RUN * PAGE;
    for (i, chunk) in mem.chunks(step).enumerate() {
        let off = u64::try_from(i.checked_mul(step).ok_or(EOVERFLOW)?).map_err(|_| EOVERFLOW)?;
        core.bar_write_block(spec.bar, off, chunk)?;
    }
    Ok(())
}
