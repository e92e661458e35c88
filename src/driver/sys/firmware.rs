// SPDX-License-Identifier: GPL-2.0

//! The firmware loader, for persona files.
//!
//! The kernel crate's `firmware` module needs `CONFIG_RUST_FW_LOADER_ABSTRACTIONS`, which a
//! distribution kernel may not set; the C API is always there with `CONFIG_FW_LOADER`.

use crate::vfio::CoreDevice;
use core::ptr::{self, NonNull};
use kernel::{error::to_result, prelude::*, str::CStr};

/// A loaded firmware file; released on drop.
///
/// # Invariants
///
/// `self.0` points to a `struct firmware` returned by the firmware loader and not yet released.
pub(crate) struct Firmware(NonNull<kernel::bindings::firmware>);

impl Firmware {
    /// Loads `name` (relative to the firmware search path) for the function of `core`, without
    /// the loader's own warning when it is missing.
    ///
    /// # Errors
    ///
    /// `ENOENT` when there is no such file; the loader's other errors.
    pub(crate) fn request_nowarn(name: &CStr, core: &CoreDevice) -> Result<Self> {
        let mut fw: *const kernel::bindings::firmware = ptr::null();
        // SAFETY: `fw` is a valid out-pointer, `name` is NUL-terminated and the function's device
        // is live for the duration of the call.
        to_result(unsafe {
            kernel::bindings::firmware_request_nowarn(&mut fw, name.as_char_ptr(), core.raw_dev())
        })?;
        // INVARIANT: On success the loader returned a firmware we now own.
        NonNull::new(fw.cast_mut()).map(Firmware).ok_or(EINVAL)
    }

    /// The file's contents.
    pub(crate) fn data(&self) -> &[u8] {
        // SAFETY: By the type invariants the firmware is live; `data`/`size` describe its bytes,
        // which stay valid and unchanged until it is released in `drop`.
        unsafe {
            let fw = self.0.as_ptr();
            if (*fw).data.is_null() || (*fw).size == 0 {
                return &[];
            }
            core::slice::from_raw_parts((*fw).data, (*fw).size)
        }
    }
}

impl Drop for Firmware {
    fn drop(&mut self) {
        // SAFETY: By the type invariants the firmware was not released yet.
        unsafe { kernel::bindings::release_firmware(self.0.as_ptr()) };
    }
}
