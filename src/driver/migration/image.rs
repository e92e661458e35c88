// SPDX-License-Identifier: GPL-2.0

//! The device state a stream carries: the [`Image`] a saving session encodes and a resuming
//! session stages into, record by record.
//!
//! An image holds the `TAG_CONFIG` record (the persona's emulated registers) and the records of
//! the device's backend ([`crate::backend::Backend::RECORDS`]), each a fixed-length payload; the
//! backend's payloads sit back to back in one buffer, as the backend saves and loads them.

use super::memory::Staged;
use crate::{
    backend::RecordSpec,
    persona_core::mig::{
        records::config,
        stream::{Disposition, Reason, Record, RecordInfo, RecordSource, Sink},
    },
};
use kernel::prelude::*;

/// The device state a stream carries, captured from a frozen device or staged from a stream.
pub(crate) struct Image {
    /// The `TAG_CONFIG` payload.
    pub(super) config: [u8; config::LEN],
    /// The backend's payloads, back to back in `specs` order.
    pub(super) backend: KVVec<u8>,
    /// The backend's records.
    specs: &'static [RecordSpec],
    /// Which records a resuming session received: bit 0 `TAG_CONFIG`, bit `1 + i` the
    /// backend's record `i`.
    have: u64,
    /// A resuming session's staged memory, for a backend with `Backend::MEMORY`.
    pub(super) memory: Option<Staged>,
}

/// `Stage::cur` while a page record of the memory is staged.
const MEMORY_RECORD: usize = usize::MAX;

impl Image {
    /// An image of zeroes for a backend with the records `specs`.
    pub(super) fn new(specs: &'static [RecordSpec]) -> Result<KBox<Self>> {
        let len = specs
            .iter()
            .try_fold(0usize, |n, s| n.checked_add(s.len))
            .ok_or(EOVERFLOW)?;
        if specs.len() >= 64 {
            return Err(EINVAL);
        }
        Ok(KBox::new(
            Image {
                config: [0; config::LEN],
                backend: KVVec::from_elem(0u8, len, GFP_KERNEL)?,
                specs,
                have: 0,
                memory: None,
            },
            GFP_KERNEL,
        )?)
    }

    /// Where record `index` (0: `TAG_CONFIG`, `1 + i`: the backend's `i`) is in `backend`.
    fn span(&self, index: usize) -> Option<core::ops::Range<usize>> {
        let i = index.checked_sub(1)?;
        let mut at = 0usize;
        for s in self.specs.get(..i)? {
            at = at.checked_add(s.len)?;
        }
        let end = at.checked_add(self.specs.get(i)?.len)?;
        Some(at..end)
    }

    /// The payload of record `index`.
    fn payload_mut(&mut self, index: usize) -> Option<&mut [u8]> {
        if index == 0 {
            return Some(&mut self.config);
        }
        let span = self.span(index)?;
        self.backend.get_mut(span)
    }

    /// The number of records the image holds (`TAG_CONFIG` and the backend's).
    pub(super) fn count(&self) -> usize {
        self.specs.len().saturating_add(1)
    }

    /// Whether a resuming session received every record.
    pub(super) fn complete(&self) -> bool {
        let n = self.specs.len().saturating_add(1);
        (0..n).all(|i| self.have & (1u64 << i) != 0)
            && self.memory.as_ref().is_none_or(|m| m.complete())
    }
}

impl RecordSource for Image {
    fn record(&self, index: usize) -> Option<Record<'_>> {
        if index == 0 {
            return Some(Record {
                tag: config::TAG,
                mandatory: true,
                payload: &self.config,
            });
        }
        let spec = self.specs.get(index.checked_sub(1)?)?;
        Some(Record {
            tag: spec.tag,
            mandatory: spec.mandatory,
            payload: self.backend.get(self.span(index)?)?,
        })
    }
}

/// The decoder's sink: stages the records into an [`Image`]. `cur` is the record being staged
/// (its index, as in [`Image`]'s `have`).
pub(super) struct Stage<'a> {
    pub(super) image: &'a mut Image,
    pub(super) cur: &'a mut Option<usize>,
}

impl Sink for Stage<'_> {
    fn begin_record(&mut self, rec: &RecordInfo) -> Result<Disposition, Reason> {
        if let Some(m) = self.image.memory.as_mut().filter(|m| m.is_pages(rec.tag)) {
            // Page records repeat (a later one replaces the pages of an earlier one).
            m.begin(rec.len)?;
            *self.cur = Some(MEMORY_RECORD);
            return Ok(Disposition::Stage);
        }
        let len = usize::try_from(rec.len).map_err(|_| Reason::InvalidRecord)?;
        let (index, want) = if rec.tag == config::TAG {
            (0, config::LEN)
        } else {
            match self.image.specs.iter().position(|s| s.tag == rec.tag) {
                Some(i) => (i + 1, self.image.specs.get(i).map_or(0, |s| s.len)),
                None => return Ok(Disposition::Unknown),
            }
        };
        let bit = 1u64 << index;
        if self.image.have & bit != 0 || len != want {
            return Err(Reason::InvalidRecord);
        }
        self.image.have |= bit;
        *self.cur = Some(index);
        Ok(Disposition::Stage)
    }

    fn stage(&mut self, offset: u64, want: usize) -> Result<&mut [u8], Reason> {
        let at = usize::try_from(offset).map_err(|_| Reason::InvalidRecord)?;
        let index = (*self.cur).ok_or(Reason::NoStagingSpace)?;
        if index == MEMORY_RECORD {
            let m = self.image.memory.as_mut().ok_or(Reason::NoStagingSpace)?;
            return m.stage(offset, want);
        }
        let buf = self
            .image
            .payload_mut(index)
            .ok_or(Reason::NoStagingSpace)?;
        let end = at.checked_add(want).ok_or(Reason::InvalidRecord)?;
        let end = end.min(buf.len());
        buf.get_mut(at..end).ok_or(Reason::InvalidRecord)
    }

    fn end_record(&mut self) -> Result<(), Reason> {
        if *self.cur == Some(MEMORY_RECORD) {
            if let Some(m) = self.image.memory.as_mut() {
                m.end();
            }
        }
        *self.cur = None;
        Ok(())
    }
}
