// SPDX-License-Identifier: GPL-2.0

//! Dirty page logging of a device's DMA writes (`vfio_log_ops`): the core's `mig::dirty` keeps
//! the log, the backend says what its DMA writes (see the parent module's notes).

use super::Migration;
use crate::{
    persona_core::mig::dirty::{self, DirtyLog, LogError},
    vfio::{CoreDevice, Io, LogRanges},
};
use kernel::prelude::*;

impl Migration {
    /// `DMA_LOGGING_START`: the user's ranges (merged down to what the log keeps) at
    /// `page_size`, which is used as given or refused (never adjusted).
    pub(crate) fn log_start(
        &mut self,
        core: &CoreDevice<Io>,
        ranges: &mut LogRanges<'_>,
        page_size: u64,
    ) -> Result {
        if self.log.is_active() {
            // Checked before the tree is touched (combining changes it).
            return Err(LogError::AlreadyStarted.into());
        }
        // Refuse a bad page size before the ranges are combined.
        DirtyLog::page_shift_of(page_size)?;
        let max = u32::try_from(dirty::MAX_RANGES).map_err(|_| EINVAL)?;
        if ranges.count() > max {
            ranges.combine(max);
        }
        self.log.start(page_size, ranges.iter())?;
        if let Err(e) = self.backend.log_running(core, &mut self.log) {
            self.log.stop();
            return Err(e);
        }
        Ok(())
    }

    /// `DMA_LOGGING_REPORT` of `[iova, iova + len)`: the dirty spans go to `out`.
    pub(crate) fn log_read_and_clear(
        &mut self,
        core: &CoreDevice<Io>,
        iova: u64,
        len: u64,
        out: impl FnMut(u64, u64),
    ) -> Result {
        if !self.log.is_active() {
            return Err(LogError::NotStarted.into());
        }
        // A device that cannot be read (D3hot) may still have a DMA landing: a logged DMA counts
        // as running until a report reads the device idle, so its pages are reported again
        // rather than forgotten.
        let busy = self.backend.dma_busy(core).unwrap_or(true);
        Ok(self.log.read_and_clear(iova, len, busy, out)?)
    }
}
