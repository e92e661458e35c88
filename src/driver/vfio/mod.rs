// SPDX-License-Identifier: GPL-2.0

//! Safe abstractions over VFIO and vfio-pci-core, written as a future `rust/kernel/vfio` would be.
//!
//! Generic: nothing here names this driver, a device or a persona (the driver's own FFI is in
//! `crate::sys`). A variant driver implements [`Operations`] (`#[vtable]`) on its per-device
//! data and names it in [`declare_vfio_pci_driver!`](crate::declare_vfio_pci_driver);
//! [`Registration`] registers the shim's `pci_driver`.
//!
//! # Relation to NVIDIA's `kernel::vfio::pci`
//!
//! The out-of-tree abstraction written for the nvidia-vgpu variant driver has the same shape where
//! the concepts meet, and the same names: an `Operations` trait whose unimplemented operations
//! are vfio-pci-core's own, a `#[repr(C)]` container with the core device at offset 0 that VFIO
//! allocates (`_vfio_alloc_device()` with a `vfio_device_ops` table built in Rust, one per
//! driver type), `CONFIG_REGION_INDEX`, region indexes and offsets decoded from the file position.
//! What this one adds: migration v2 (typed `MigrationState`/`MigrationCaps`, the data fd's
//! [`DataFileOps`] and its Rust `file_operations`), dirty-page logging ([`LogRanges`],
//! [`DirtyBitmap`], a Rust `vfio_log_ops`), PASID attach, device-specific regions ([`Region`]),
//! BAR accesses on the device's behalf under `memory_lock`, and the PCI error callbacks.
//! Where they differ, theirs is the target: a per-device `Registration` in the PCI driver's data
//! (ours registers a module-wide `pci_driver` of the shim, which holds the ID table and the
//! attribute group), and registration and open data as associated types (ours keeps both in the
//! per-device data behind its own lock).

pub(crate) mod bindings;
mod context;
mod device;
mod dirty;
mod driver;
mod error;
mod migration;
#[doc(hidden)]
pub(crate) mod ops;
mod region;

pub(crate) use context::{Io, Open};
pub(crate) use device::{
    copy_from_user_at, copy_to_user_at, CoreDevice, Device, PasidStatus, RegionIo,
    CONFIG_REGION_INDEX, REGION_INFO_FLAG_MMAP, VENDOR_REGION_TYPE,
};
pub(crate) use dirty::{DirtyBitmap, LogRanges};
pub(crate) use driver::{Operations, Registration};
pub(crate) use error::rw_result;
pub(crate) use migration::{DataFileOps, NewFile, PollWaiter, POLL_ERR, POLL_IN, POLL_OUT};
pub(crate) use region::{Region, REGION_INFO_FLAG_READ};

/// `struct vfio_device`, for the entry-point signatures only.
#[doc(hidden)]
pub(crate) type RawVfioDevice = bindings::vfio_device;
/// `VFIO_DEVICE_IOEVENTFD`.
pub(crate) const DEVICE_IOEVENTFD: u32 = bindings::PVP_VFIO_DEVICE_IOEVENTFD;

use kernel::prelude::*;

/// Checks that the opaque `vfio_pci_core_device` bindgen generated for this kernel has the size
/// and alignment the C compiler gives it, as seen through the shim.
///
/// # Errors
///
/// `EINVAL` when they differ: the bindings were generated against another configuration.
pub(crate) fn check_layout() -> Result {
    // SAFETY: Both shim functions take no arguments, touch no state and return a constant.
    let (size, align) = unsafe {
        (
            bindings::pvp_shim_core_device_size(),
            bindings::pvp_shim_core_device_align(),
        )
    };
    let rust_size = core::mem::size_of::<bindings::vfio_pci_core_device>();
    let rust_align = core::mem::align_of::<bindings::vfio_pci_core_device>();
    if size != rust_size || align != rust_align {
        pr_err!(
            "vfio_pci_core_device layout mismatch: C {}/{}, bindings {}/{}\n",
            size,
            align,
            rust_size,
            rust_align
        );
        return Err(EINVAL);
    }
    Ok(())
}
