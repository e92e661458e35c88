// SPDX-License-Identifier: GPL-2.0

//! Device-specific regions (`vfio_pci_core_register_dev_region()`): a region the driver adds to
//! the device's own, served by a [`Region`] implementation through a `vfio_pci_regops` table
//! built here, one per region type.
//!
//! C header: [`include/linux/vfio_pci_core.h`](srctree/include/linux/vfio_pci_core.h)

use super::{
    bindings,
    context::{Io, Open},
    device::{Device, RegionIo},
    driver::Operations,
    error::rw_result,
};
use core::marker::PhantomData;
use kernel::{error::to_result, prelude::*};

/// `VFIO_REGION_INFO_FLAG_READ`: the region may be read.
pub(crate) const REGION_INFO_FLAG_READ: u32 = bindings::VFIO_REGION_INFO_FLAG_READ;

/// A device-specific region of the driver `T`.
pub(crate) trait Region<T: Operations>: 'static {
    /// A `read()` (`write` false) or `write()` of the region; `io` gives the user buffer and the
    /// offset inside the region. Called only while the device is open (VFIO frees the driver's
    /// regions at close).
    fn rw(dev: &Device<T, Io>, io: &mut RegionIo, write: bool) -> Result<usize>;
}

/// The `vfio_pci_regops` of the region `R` of the driver `T`.
struct RegionTable<T, R>(PhantomData<(T, R)>);

impl<T: Operations, R: Region<T>> RegionTable<T, R> {
    const OPS: bindings::vfio_pci_regops = bindings::vfio_pci_regops {
        rw: Some(region_rw::<T, R>),
        release: Some(region_release),
        ..pin_init::zeroed()
    };
}

/// `vfio_pci_regops.rw`.
///
/// # Safety
///
/// `c` is an open device of the driver `T` (regions exist only while it is open); `b`, `n` and
/// `pos` are the callback's arguments.
unsafe extern "C" fn region_rw<T: Operations, R: Region<T>>(
    c: *mut bindings::vfio_pci_core_device,
    b: *mut c_char,
    n: usize,
    pos: *mut kernel::bindings::loff_t,
    write: bool,
) -> isize {
    // SAFETY: The callback's own arguments, valid for its duration.
    let mut io = unsafe { RegionIo::new(b, n, pos) };
    // SAFETY: Regions exist only while the device is open, so `c` is a registered, open container
    // of `T` whose `vfio_device` is at offset 0.
    rw_result(R::rw(
        unsafe { Device::<T, Io>::from_vdev(c.cast()) },
        &mut io,
        write,
    ))
}

/// `vfio_pci_regops.release`: `vfio_pci_core_disable()` calls it for every region at close; the
/// region owns no memory.
extern "C" fn region_release(
    _c: *mut bindings::vfio_pci_core_device,
    _region: *mut bindings::vfio_pci_region,
) {
}

impl<T: Operations> Device<T, Open> {
    /// Adds the device-specific region `R` (`vfio_pci_core_register_dev_region()`) of `size`
    /// bytes, with the region type and subtype and the `VFIO_REGION_INFO_FLAG_*` `flags` that
    /// `VFIO_DEVICE_GET_REGION_INFO` reports, for the current open: the core frees it at close.
    /// Called from [`Operations::open_device`], after `enable()`.
    pub(crate) fn register_region<R: Region<T>>(
        &self,
        ty: u32,
        subtype: u32,
        size: usize,
        flags: u32,
    ) -> Result {
        // SAFETY: By `Device`'s invariants the core device is initialised; the table is a
        // static of this driver and region, and the core frees the region in
        // `vfio_pci_core_disable()` at close.
        to_result(unsafe {
            bindings::vfio_pci_core_register_dev_region(
                self.core.as_raw(),
                ty,
                subtype,
                &RegionTable::<T, R>::OPS,
                size,
                flags,
                core::ptr::null_mut(),
            )
        })
    }
}
