// SPDX-License-Identifier: GPL-2.0

//! The vfio-pci-core device and the container VFIO allocates around it.

use super::bindings;
use kernel::{device, error::to_result, prelude::*, types::Opaque, uaccess::UserPtr};

/// A `struct vfio_pci_core_device`, as a variant driver sees it.
///
/// # Invariants
///
/// The wrapped structure was initialised by `vfio_pci_core_init_dev()` and is not released yet,
/// and its `vdev` member sits at offset 0 (a `static_assert` in the shim checks it).
#[repr(transparent)]
pub(crate) struct CoreDevice(Opaque<bindings::vfio_pci_core_device>);

/// One `read()` or `write()` on the device file: the user buffer, its length and the position,
/// whose top bits select the region (`VFIO_PCI_OFFSET_SHIFT`).
pub(crate) struct RegionIo {
    buf: *mut c_char,
    count: usize,
    pos: *mut kernel::bindings::loff_t,
}

/// Bits of the file position below the region index.
const OFFSET_SHIFT: u32 = 40;

/// Region index of PCI config space (`VFIO_PCI_CONFIG_REGION_INDEX`).
pub(crate) const CONFIG_REGION_INDEX: u64 = bindings::VFIO_PCI_CONFIG_REGION_INDEX as u64;

impl RegionIo {
    /// # Safety
    ///
    /// `pos` is valid for reads and writes for the duration of the VFIO `read`/`write` callback
    /// this value is built in, and `buf` is the user pointer that callback received.
    pub(super) unsafe fn new(
        buf: *mut c_char,
        count: usize,
        pos: *mut kernel::bindings::loff_t,
    ) -> Self {
        Self { buf, count, pos }
    }

    fn position(&self) -> u64 {
        // SAFETY: By the type's construction, `pos` is valid for the duration of the callback.
        let pos = unsafe { *self.pos };
        // A negative position has no region; map it to an index no region has.
        u64::try_from(pos).unwrap_or(u64::MAX)
    }

    /// The region index this access addresses.
    pub(crate) fn region_index(&self) -> u64 {
        self.position() >> OFFSET_SHIFT
    }
}

impl CoreDevice {
    /// # Safety
    ///
    /// `ptr` points to a core device that satisfies the type invariants for `'a`.
    pub(super) unsafe fn from_raw<'a>(ptr: *mut bindings::vfio_pci_core_device) -> &'a Self {
        // SAFETY: `CoreDevice` is a transparent wrapper; validity is the caller's promise.
        unsafe { &*ptr.cast() }
    }

    fn as_raw(&self) -> *mut bindings::vfio_pci_core_device {
        self.0.get()
    }

    fn vdev(&self) -> *mut bindings::vfio_device {
        // `vdev` is the first member of `vfio_pci_core_device` (checked in the shim).
        self.as_raw().cast()
    }

    /// The generic device of the PCI function, for logging and sysfs.
    pub(crate) fn as_dev(&self) -> &device::Device {
        // SAFETY: By the type invariants the core device is initialised, so `pdev` is the bound
        // PCI function, which outlives its vfio device (the vfio device holds a reference).
        unsafe {
            let pdev = bindings::pvp_shim_pdev(self.as_raw());
            device::Device::from_raw(&raw mut (*pdev).dev)
        }
    }

    /// `vfio_pci_core_enable()`: enables the function, resets it if it can, builds vconfig.
    pub(crate) fn enable(&self) -> Result {
        // SAFETY: By the type invariants the core device is initialised.
        to_result(unsafe { bindings::vfio_pci_core_enable(self.as_raw()) })
    }

    /// `vfio_pci_core_finish_enable()`: the second half of opening, after variant set-up.
    pub(crate) fn finish_enable(&self) {
        // SAFETY: By the type invariants the core device is initialised; VFIO calls open with the
        // device set lock held, as this function requires.
        unsafe { bindings::vfio_pci_core_finish_enable(self.as_raw()) }
    }

    /// `vfio_pci_core_close_device()`: the core's half of the last close.
    pub(crate) fn close_device(&self) {
        // SAFETY: By the type invariants the core device is initialised.
        unsafe { bindings::vfio_pci_core_close_device(self.vdev()) }
    }

    /// `vfio_pci_core_read()` on any region.
    pub(crate) fn read(&self, io: &mut RegionIo) -> Result<usize> {
        // SAFETY: `io` carries the user buffer and position of the current read callback.
        let n = unsafe { bindings::vfio_pci_core_read(self.vdev(), io.buf, io.count, io.pos) };
        usize::try_from(n).map_err(|_| Error::from_errno(i32::try_from(n).unwrap_or(-22)))
    }

    /// `vfio_pci_core_write()` on any region.
    pub(crate) fn write(&self, io: &mut RegionIo) -> Result<usize> {
        // SAFETY: `io` carries the user buffer and position of the current write callback.
        let n = unsafe { bindings::vfio_pci_core_write(self.vdev(), io.buf, io.count, io.pos) };
        usize::try_from(n).map_err(|_| Error::from_errno(i32::try_from(n).unwrap_or(-22)))
    }

    /// `vfio_pci_core_ioctl()`.
    pub(crate) fn ioctl(&self, cmd: u32, arg: usize) -> Result<isize> {
        // SAFETY: The core validates `cmd` and treats `arg` as an untrusted user pointer/value.
        let r = unsafe { bindings::vfio_pci_core_ioctl(self.vdev(), cmd, arg) };
        errno_or(r)
    }

    /// `vfio_pci_core_ioctl_feature()`: the device features the core handles.
    pub(crate) fn device_feature(&self, flags: u32, arg: UserPtr, argsz: usize) -> Result {
        // SAFETY: The core treats `arg` as an untrusted user pointer of `argsz` bytes.
        to_result(unsafe {
            bindings::vfio_pci_core_ioctl_feature(self.vdev(), flags, arg.as_mut_ptr(), argsz)
        })
    }

    /// `vfio_pci_ioctl_get_region_info()`: region info and its capability chain.
    ///
    /// # Safety
    ///
    /// `info` and `caps` are the pointers VFIO passed to the current `get_region_info_caps`.
    pub(super) unsafe fn region_info(
        &self,
        info: *mut bindings::vfio_region_info,
        caps: *mut bindings::vfio_info_cap,
    ) -> Result {
        // SAFETY: Forwarded from VFIO's callback per the function's contract.
        to_result(unsafe { bindings::vfio_pci_ioctl_get_region_info(self.vdev(), info, caps) })
    }

    /// `vfio_pci_core_request()`: asks the user to release the device.
    pub(crate) fn request(&self, count: u32) {
        // SAFETY: By the type invariants the core device is initialised.
        unsafe { bindings::vfio_pci_core_request(self.vdev(), count) }
    }

    /// `vfio_pci_core_sriov_configure()`.
    pub(crate) fn sriov_configure(&self, nr_virtfn: i32) -> Result<i32> {
        // SAFETY: By the type invariants the core device is initialised.
        let r = unsafe { bindings::vfio_pci_core_sriov_configure(self.as_raw(), nr_virtfn) };
        if r < 0 {
            Err(Error::from_errno(r))
        } else {
            Ok(r)
        }
    }
}

/// Converts a `long` the C side returns (value or negative errno) into a `Result`.
pub(super) fn errno_or(r: c_long) -> Result<isize> {
    if r < 0 {
        Err(Error::from_errno(i32::try_from(r).unwrap_or(-22)))
    } else {
        Ok(r)
    }
}

/// The container VFIO allocates for each device: the core device first, the variant's own
/// per-device data after it.
///
/// # Invariants
///
/// `core` satisfies [`CoreDevice`]'s invariants and `data` is initialised, from the successful
/// return of the `init` callback until the `release` callback.
#[repr(C)]
#[pin_data]
pub(crate) struct Device<T> {
    #[pin]
    pub(super) core: CoreDevice,
    #[pin]
    pub(super) data: T,
}

impl<T> Device<T> {
    /// The vfio-pci-core half.
    pub(crate) fn core(&self) -> &CoreDevice {
        &self.core
    }

    /// The variant's per-device data.
    pub(crate) fn data(&self) -> &T {
        &self.data
    }

    /// # Safety
    ///
    /// `vdev` is the `vfio_device` of a container of this type for which `init` succeeded and
    /// `release` has not run, for all of `'a`.
    pub(super) unsafe fn from_vdev<'a>(vdev: *mut bindings::vfio_device) -> &'a Self {
        // SAFETY: The vfio_device is at offset 0 of the core device, which is at offset 0 of
        // `Device<T>` (`repr(C)`, first field); validity is the caller's promise.
        unsafe { &*vdev.cast::<Self>() }
    }
}
