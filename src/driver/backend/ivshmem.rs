// SPDX-License-Identifier: GPL-2.0

//! The migration backend of QEMU's `ivshmem-plain` (1af4:1110): a device whose state is a
//! memory BAR, standing in for the GPU and accelerator class (device memory behind a BAR).
//!
//! The function has a 256-byte register BAR0 (interrupt mask 0x00, interrupt status 0x04, read
//! clears it; IV position 0x08, read-only; doorbell 0x0c, write-only) and a 64-bit prefetchable
//! BAR2 whose contents are the shared memory (its memory backend). ivshmem-plain has no
//! doorbell peers, no interrupts and no DMA: everything it holds is BAR2 and the two
//! registers. No BAR is trapped: the user may mmap BAR2 (and BAR0), so the driver never sees
//! the guest's writes.
//!
//! # Design: pre-copy by copy, stop-copy by comparison
//!
//! BAR2 is the backend's `Backend::MEMORY`; the generic code (`migration::memory`) carries it:
//!
//! - **Entering PRE_COPY** (`RUNNING -> PRE_COPY`, also `RUNNING_P2P -> PRE_COPY_P2P`), while
//!   the device runs, the driver reads every page of BAR2 (at the size the persona presents)
//!   into kernel memory as page records, and keeps them until the session ends. The PRE_COPY
//!   data fd offers the stream header and those records: `VFIO_MIG_GET_PRECOPY_INFO` counts them
//!   as `initial_bytes`, falling to 0 as the user reads them; `dirty_bytes` is 0 (the driver
//!   cannot see writes to an mmapped BAR while the device runs, see below).
//! - **Entering STOP_COPY** (the device stopped), the driver compares BAR2 with the copy sent,
//!   word by word and without copying (a page stops being read at its first differing word),
//!   then reads and sends the pages that differ: for an idle device, none. The STOP_COPY data
//!   are the config registers, `TAG_IVSHMEM` (the registers) and the changed pages; the
//!   downtime is one read-only pass over BAR2 plus the changed pages. A save without PRE_COPY
//!   (`STOP -> STOP_COPY`) sends every page.
//! - **Resuming**, page records are staged into a buffer of the destination's presented BAR2
//!   size, each run checked (aligned, inside the memory, length) before a byte of it lands; a
//!   page sent twice keeps the later copy. At `RESUMING -> STOP`, after the whole stream was
//!   verified and every page of the memory received, the registers and then BAR2 are written.
//!
//! Every BAR access holds vfio-pci-core's `memory_lock` with memory decoding on (as the edu
//! backend's do), 1 MiB per hold, in 8-byte accesses; a function in D3hot fails the arc (`EIO`,
//! ERROR).
//!
//! ## Next step: tracking writes instead of comparing
//!
//! The comparison still reads all of BAR2 during the downtime, and the destination writes all
//! of it there too (under TCG about 0.35 ms per MiB each with the guest idle, ten times that
//! beside the benchmark's two nested QEMUs). Tracking would make STOP_COPY read only the pages
//! written: the driver serves BAR2's mmap itself (a `vm_operations_struct` whose fault handler
//! maps one page at a time, as vfio-pci-core's BAR fault handler does, write-protected while a
//! saving session is in PRE_COPY), records the page in a bitmap on the write fault and makes it
//! writable; PRE_COPY re-sends the recorded pages (so `dirty_bytes` reports them and falls for an
//! idle guest) and re-protects them (`zap_vma_ptes` of the page, then fault again). STOP must
//! then also revoke or write-protect the mapping, which closes the gap below (a write after
//! STOP would fault and could be refused). It needs the core's mmap path replaced for BAR2
//! (`vfio_pci_core_mmap` and its `vma_list` bookkeeping for reset and D3hot zapping) and a
//! per-page fault under TCG costs far more than reading a page, so it only pays for BARs much
//! larger than what a guest writes per migration. The destination's half would move out of the
//! downtime by writing each staged run to BAR2 while RESUMING, which gives up "BAR2 untouched
//! until the stream verified" (a refused stream would leave BAR2 partly written; the device is
//! not running then, but a user resuming it without a reset would see that).
//!
//! # What it guarantees, and what it cannot
//!
//! - A write the user makes through the mmap (or `write()`) before the device reaches
//!   STOP_COPY is in the stream: if it came after the page was read for PRE_COPY, the page
//!   differs from the copy sent at STOP_COPY and is sent again; the comparison is exact.
//! - ivshmem has no DMA and no peers here, so nothing writes BAR2 once the user stopped: the
//!   device does not change itself during STOP_COPY.
//! - The driver cannot stop the user: a write through an mmap after the device entered STOP
//!   (which a VMM must not make) may be missed. `STOP` does not revoke mappings.
//! - `dirty_bytes` stays 0 in PRE_COPY: without a trap or a hardware dirty log, changes are
//!   found at STOP_COPY only. A guest rewriting its memory fast therefore gets a longer
//!   downtime, not a wrong state; `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE` in PRE_COPY counts the
//!   PRE_COPY data not read yet and the fixed records, not the changes to come.
//! - The source holds a copy of BAR2 from PRE_COPY until the session ends, and the
//!   destination a staging buffer of its size: memory the size of the BAR on each side.
//! - Shared memory: a peer VM writing the same memory backend (ivshmem's purpose) is outside
//!   this device's state; only what this function's BAR2 reads is migrated.
//!
//! # Records
//!
//! `TAG_IVSHMEM` (0x0002_0001, mandatory, 32 bytes: memory length, page size, interrupt mask
//! and status) and `TAG_IVSHMEM_PAGES` (0x0002_0002, mandatory, repeated): their layouts,
//! encoders and validators are the core's `mig::records::{ivshmem, pages}`.

use super::{Backend, Gate, MemorySpec, RecordSpec};
use crate::{
    persona_core::mig::{
        dirty::DirtyLog,
        records::ivshmem::{self as rec, IvshmemRecord},
        stream::{DeviceKind, Limits},
    },
    vfio::{CoreDevice, Io, RegionIo},
};
use kernel::prelude::*;

/// PCI IDs of the device (Red Hat, Inc.'s virtio vendor ID; ivshmem's device ID).
const VENDOR: u16 = 0x1af4;
/// PCI device ID.
const DEVICE: u16 = 0x1110;

/// The register BAR.
const REGS: u32 = 0;
/// The memory BAR.
const MEM: u32 = 2;

const REG_INTR_MASK: u32 = 0x00;
const REG_INTR_STATUS: u32 = 0x04;

/// The state of one ivshmem-plain function.
#[derive(Default)]
pub(crate) struct Ivshmem {
    /// BAR2's presented size (from the session that opened last).
    mem_len: u64,
}

impl Backend for Ivshmem {
    const IDS: &'static [(u16, u16)] = &[(VENDOR, DEVICE)];
    const KIND: DeviceKind = rec::KIND;
    const RECORDS: &'static [RecordSpec] = &[RecordSpec {
        tag: rec::TAG,
        len: rec::LEN,
        mandatory: true,
    }];
    const TRAPPED_BAR: Option<u32> = None;
    const LIMITS: Limits = Limits {
        max_record: 64 * 1024,
        max_total: 1024 * 1024,
    };
    const MEMORY: Option<MemorySpec> = Some(MemorySpec {
        bar: MEM,
        tag: rec::TAG_PAGES,
    });

    fn new() -> Self {
        Ivshmem::default()
    }

    fn set_memory_len(&mut self, len: u64) {
        self.mem_len = len;
    }

    /// Never called: no BAR is trapped.
    fn bar_write(
        &mut self,
        _core: &CoreDevice<Io>,
        _io: &mut RegionIo,
        _gate: Gate,
        _log: &mut DirtyLog,
    ) -> Result<usize> {
        Err(EINVAL)
    }

    /// No DMA.
    fn hold_dma(&mut self, _core: &CoreDevice<Io>) -> Result {
        Ok(())
    }

    /// No DMA.
    fn release_dma(&mut self, _core: &CoreDevice<Io>, _log: &mut DirtyLog) -> Result {
        Ok(())
    }

    /// Nothing runs in the device: stopped once the user stops writing it.
    fn freeze(&mut self, _core: &CoreDevice<Io>) -> Result {
        Ok(())
    }

    fn thaw(&mut self, _core: &CoreDevice<Io>) -> Result {
        Ok(())
    }

    /// Reads the registers. The interrupt status clears on read, so the value read is written
    /// back: a source that resumes keeps it.
    fn save(&mut self, core: &CoreDevice<Io>, out: &mut [u8]) -> Result {
        let out: &mut [u8; rec::LEN] = out.try_into().map_err(|_| EINVAL)?;
        let intr_mask = core.bar_read32(REGS, REG_INTR_MASK)?;
        let intr_status = core.bar_read32(REGS, REG_INTR_STATUS)?;
        core.bar_write32(REGS, REG_INTR_STATUS, intr_status)?;
        IvshmemRecord {
            mem_len: self.mem_len,
            intr_mask,
            intr_status,
        }
        .encode(out);
        Ok(())
    }

    fn validate(records: &[u8]) -> Result {
        IvshmemRecord::decode(records)?;
        Ok(())
    }

    /// Writes the registers, after checking that the stream's memory is this device's size
    /// (the page records were checked against it while staged; this refuses a record that
    /// says otherwise before the device is touched). BAR2 is written by the generic code next.
    fn load(&mut self, core: &CoreDevice<Io>, records: &[u8]) -> Result {
        let r = IvshmemRecord::decode(records)?;
        if r.mem_len != self.mem_len {
            return Err(EINVAL);
        }
        core.bar_write32(REGS, REG_INTR_MASK, r.intr_mask)?;
        core.bar_write32(REGS, REG_INTR_STATUS, r.intr_status)
    }

    /// No DMA: nothing to log.
    fn log_running(&mut self, _core: &CoreDevice<Io>, _log: &mut DirtyLog) -> Result {
        Ok(())
    }

    fn dma_busy(&self, _core: &CoreDevice<Io>) -> Result<bool> {
        Ok(false)
    }

    fn reset(&mut self) {}
}
