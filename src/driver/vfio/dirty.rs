// SPDX-License-Identifier: GPL-2.0

//! VFIO device dirty page logging (`vfio_log_ops`): the IOVA ranges of a
//! `VFIO_DEVICE_FEATURE_DMA_LOGGING_START` and the user's bitmap of a `..._REPORT`.
//!
//! VFIO validates both before the driver sees them: the ranges are page-aligned, do not overlap
//! and end at or below `ULONG_MAX`; the report's page size is a power of two of at least 4 KiB
//! and its range does not overflow. The driver keeps its own state and lock (VFIO serialises
//! nothing here).
//!
//! C header: [`include/linux/vfio.h`](srctree/include/linux/vfio.h)

use super::{bindings, device::CoreDevice};
use core::marker::PhantomData;

/// The IOVA ranges a user asked to log: VFIO's interval tree, lent for one `log_start` call.
pub(crate) struct LogRanges<'a> {
    root: *mut kernel::bindings::rb_root_cached,
    count: u32,
    _call: PhantomData<&'a mut kernel::bindings::rb_root_cached>,
}

impl LogRanges<'_> {
    /// # Safety
    ///
    /// `root` is the interval tree VFIO passed to the current `log_start`, holding `count` nodes;
    /// nothing else touches it until the value is dropped.
    pub(super) unsafe fn new(root: *mut kernel::bindings::rb_root_cached, count: u32) -> Self {
        LogRanges {
            root,
            count,
            _call: PhantomData,
        }
    }

    /// Number of ranges.
    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    /// Merges neighbouring ranges, smallest gaps first, until at most `max` (at least 1) remain
    /// (`vfio_combine_iova_ranges()`): the merged ranges also cover the gaps between them.
    pub(crate) fn combine(&mut self, max: u32) {
        if max == 0 || self.count <= max {
            return;
        }
        // SAFETY: By the type invariants the tree holds `count` nodes and is ours to change;
        // the helper removes merged nodes from the tree and frees nothing (VFIO owns them).
        unsafe { bindings::vfio_combine_iova_ranges(self.root, self.count, max) };
        self.count = max;
    }

    /// The ranges in IOVA order, as `(first, last)` with `last` inclusive.
    pub(crate) fn iter(&self) -> LogRangeIter<'_> {
        // SAFETY: By the type invariants `root` is a valid tree for the borrow.
        let node = unsafe {
            kernel::bindings::interval_tree_iter_first(self.root, 0, kernel::ffi::c_ulong::MAX)
        };
        LogRangeIter {
            node,
            _tree: PhantomData,
        }
    }
}

/// Iterator over [`LogRanges`].
pub(crate) struct LogRangeIter<'a> {
    node: *mut kernel::bindings::interval_tree_node,
    _tree: PhantomData<&'a LogRanges<'a>>,
}

impl Iterator for LogRangeIter<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        if self.node.is_null() {
            return None;
        }
        // SAFETY: `node` is a node of the borrowed tree, which nothing changes meanwhile.
        let (start, last) = unsafe { ((*self.node).start, (*self.node).last) };
        // SAFETY: As above; the helper returns the next overlapping node or null.
        self.node = unsafe {
            kernel::bindings::interval_tree_iter_next(self.node, 0, kernel::ffi::c_ulong::MAX)
        };
        Some((u64::try_from(start).ok()?, u64::try_from(last).ok()?))
    }
}

/// The user's bitmap of one `log_read_and_clear` call, covering `[iova, iova + len)` at the
/// report's page size.
pub(crate) struct DirtyBitmap<'a> {
    raw: *mut kernel::bindings::iova_bitmap,
    iova: u64,
    len: u64,
    _call: PhantomData<&'a mut kernel::bindings::iova_bitmap>,
}

impl DirtyBitmap<'_> {
    /// # Safety
    ///
    /// `raw` is the bitmap VFIO passed to the current `log_read_and_clear` for `[iova, iova +
    /// len)`, valid until the value is dropped.
    pub(super) unsafe fn new(raw: *mut kernel::bindings::iova_bitmap, iova: u64, len: u64) -> Self {
        DirtyBitmap {
            raw,
            iova,
            len,
            _call: PhantomData,
        }
    }

    /// Sets the bits of every page `[iova, iova + len)` touches (`iova_bitmap_set()`), clipped
    /// to the bitmap's range: the helper writes user memory by bit position and would otherwise
    /// set bits past the user's bitmap.
    pub(crate) fn set(&mut self, iova: u64, len: u64) {
        let start = iova.max(self.iova);
        let end = iova
            .saturating_add(len)
            .min(self.iova.saturating_add(self.len));
        if start >= end {
            return;
        }
        let (Ok(at), Ok(n)) = (
            kernel::ffi::c_ulong::try_from(start),
            usize::try_from(end - start),
        ) else {
            return;
        };
        // SAFETY: By the type invariants `raw` is live; `[at, at + n)` is non-empty and inside
        // the range the bitmap was allocated for. The helper pins and writes the user's pages
        // (and may sleep), which the `log_read_and_clear` context allows.
        unsafe { kernel::bindings::iova_bitmap_set(self.raw, at, n) }
    }
}

impl CoreDevice {
    /// Installs the driver's `vfio_log_ops`; before registration only.
    ///
    /// # Safety
    ///
    /// The device is not registered yet, so nothing reads `log_ops` concurrently.
    pub(super) unsafe fn set_log_ops(&self, ops: &'static bindings::vfio_log_ops) {
        // SAFETY: Per the function's contract; `ops` outlives the device.
        unsafe { bindings::pvp_shim_set_log_ops(self.as_raw(), ops) }
    }
}
