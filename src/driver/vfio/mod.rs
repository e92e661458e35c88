// SPDX-License-Identifier: GPL-2.0

//! Safe abstractions over VFIO and vfio-pci-core, written as a future `rust/kernel/vfio` would be.
//!
//! This folder is the only place in the driver with `unsafe` code or FFI calls. A variant driver
//! implements [`Driver`] on its per-device data and names it in [`declare_vfio_pci_driver!`]
//! (crate::declare_vfio_pci_driver); [`Registration`] registers the shim's `pci_driver`.

pub(crate) mod bindings;
mod device;
mod dirty;
mod driver;
mod error;
mod migration;
#[doc(hidden)]
pub(crate) mod ops;

pub(crate) use device::{
    copy_from_user_at, copy_to_user_at, CoreDevice, Device, PasidStatus, RegionIo,
    CONFIG_REGION_INDEX, REGION_INFO_FLAG_MMAP, VENDOR_REGION_TYPE,
};
pub(crate) use dirty::{DirtyBitmap, LogRanges};
pub(crate) use driver::{Driver, Registration};
pub(crate) use error::rw_result;
pub(crate) use migration::{DataFileOps, NewFile, PollWaiter, POLL_ERR, POLL_IN, POLL_OUT};

/// `struct vfio_device`, for the entry-point signatures only.
#[doc(hidden)]
pub(crate) type RawVfioDevice = bindings::vfio_device;
/// `struct vfio_pci_core_device`, for the entry-point signatures only.
#[doc(hidden)]
pub(crate) type RawCoreDevice = bindings::vfio_pci_core_device;
/// `VFIO_DEVICE_IOEVENTFD`.
pub(crate) const DEVICE_IOEVENTFD: u32 = bindings::PVP_VFIO_DEVICE_IOEVENTFD;
/// `struct vfio_region_info`, for the entry-point signatures only.
#[doc(hidden)]
pub(crate) type RawRegionInfo = bindings::vfio_region_info;
/// `struct vfio_info_cap`, for the entry-point signatures only.
#[doc(hidden)]
pub(crate) type RawInfoCap = bindings::vfio_info_cap;

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
