// SPDX-License-Identifier: GPL-2.0

//! The vfio-pci-core device and the container VFIO allocates around it.
//!
//! C header: [`include/linux/vfio_pci_core.h`](srctree/include/linux/vfio_pci_core.h)

use super::{
    bindings,
    context::{DeviceContext, Io, Normal, Open},
    error::errno_or,
};
use core::marker::PhantomData;
use kernel::{device, error::to_result, prelude::*, types::Opaque, uaccess::UserPtr};

/// A `struct vfio_pci_core_device`, as a variant driver sees it.
///
/// # Invariants
///
/// The wrapped structure was initialised by `vfio_pci_core_init_dev()` and is not released yet,
/// and its `vdev` member sits at offset 0 (a `static_assert` in the shim checks it). A reference
/// in the context `Ctx` is borrowed only where that context holds (see [`super::context`]).
#[repr(transparent)]
pub(crate) struct CoreDevice<Ctx: DeviceContext = Normal>(
    Opaque<bindings::vfio_pci_core_device>,
    PhantomData<Ctx>,
);

/// Implements `Deref` from a context to [`Normal`]: a device in any context is a bound device.
macro_rules! deref_to_normal {
    ($($ctx:ty),*) => {$(
        impl core::ops::Deref for CoreDevice<$ctx> {
            type Target = CoreDevice;

            fn deref(&self) -> &CoreDevice {
                // SAFETY: The contexts differ only in a zero-sized marker (`repr(transparent)`),
                // and a device in any context satisfies `Normal`'s invariants.
                unsafe { &*core::ptr::from_ref(self).cast::<CoreDevice>() }
            }
        }

        impl<T> core::ops::Deref for Device<T, $ctx> {
            type Target = Device<T>;

            fn deref(&self) -> &Device<T> {
                // SAFETY: As above: `Device<T, Ctx>` is `repr(C)` and differs between contexts
                // only in its core device's zero-sized marker.
                unsafe { &*core::ptr::from_ref(self).cast::<Device<T>>() }
            }
        }
    )*};
}
deref_to_normal!(Open, Io);

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

    /// The offset inside the region.
    pub(crate) fn offset(&self) -> u64 {
        self.position() & ((1u64 << OFFSET_SHIFT) - 1)
    }

    /// Number of bytes asked for.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Asks for at most `n` bytes (a BAR presented smaller than the device's).
    pub(crate) fn limit(&mut self, n: usize) {
        self.count = self.count.min(n);
    }

    /// The user buffer's address.
    pub(crate) fn user(&self) -> UserPtr {
        UserPtr::from_ptr(self.buf.cast())
    }

    /// Moves the file position forward by `done` bytes after a successful access.
    pub(crate) fn advance(&mut self, done: usize) {
        let done =
            kernel::bindings::loff_t::try_from(done).unwrap_or(kernel::bindings::loff_t::MAX);
        // SAFETY: By the type's construction, `pos` is valid for the duration of the callback.
        unsafe { *self.pos = (*self.pos).saturating_add(done) };
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

    pub(super) fn as_raw(&self) -> *mut bindings::vfio_pci_core_device {
        self.0.get()
    }

    pub(super) fn vdev(&self) -> *mut bindings::vfio_device {
        // `vdev` is the first member of `vfio_pci_core_device` (checked in the shim).
        self.as_raw().cast()
    }

    /// The generic device of the PCI function, for logging and sysfs.
    pub(crate) fn as_dev(&self) -> &device::Device {
        // SAFETY: By the type invariants the core device is initialised, so `pdev` is its PCI
        // function. A `CoreDevice` is reached only from the callbacks of a bound function (probe,
        // remove, reset_done, sysfs) and of its registered vfio device (file operations of an
        // open device, which `remove()` waits for); nothing else keeps the vfio device (a data fd
        // holds only its session), so the function is bound, and alive, for the borrow. The
        // vfio device does not hold a reference to `pdev`: `release` must not use this.
        unsafe {
            let pdev = bindings::pvp_shim_pdev(self.as_raw());
            device::Device::from_raw(&raw mut (*pdev).dev)
        }
    }

    /// The `struct device` of the PCI function, for the C APIs the kernel crate does not wrap
    /// (valid as long as [`CoreDevice::as_dev`]'s borrow would be).
    pub(crate) fn raw_dev(&self) -> *mut kernel::bindings::device {
        // SAFETY: By the type invariants `pdev` is the bound function.
        unsafe { &raw mut (*bindings::pvp_shim_pdev(self.as_raw())).dev }
    }

    /// Reads the function's physical config space (as the PCI core sees it) into `out`;
    /// returns its size (256 or 4096, at most `out.len()`).
    pub(crate) fn read_physical_config(&self, out: &mut [u8]) -> Result<usize> {
        // SAFETY: By the type invariants `pdev` is the bound function.
        let pdev = unsafe { bindings::pvp_shim_pdev(self.as_raw()) };
        // SAFETY: `pdev` is valid; `cfg_size` is set at enumeration and never changes after.
        let size = usize::try_from(unsafe { (*pdev).cfg_size }).map_err(|_| EINVAL)?;
        let size = size.min(out.len());
        for (i, chunk) in out[..size].chunks_exact_mut(4).enumerate() {
            let mut v = 0u32;
            let off = c_int::try_from(i * 4).map_err(|_| EINVAL)?;
            // SAFETY: `pdev` is valid and `off` is a dword inside its config space.
            to_result(unsafe { kernel::bindings::pci_read_config_dword(pdev, off, &mut v) })?;
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        Ok(size)
    }

    /// vfio-pci-core's own Interrupt Pin (`None` while the device is not enabled) and whether
    /// it will present no INTx: the facts `pci::presented_interrupt_pin` decides from. Call with
    /// the driver's state held, which open and close hold around enable and disable.
    pub(crate) fn interrupt_pin_facts(&self) -> (Option<u8>, bool) {
        // SAFETY: By the type invariants the core device is initialised; vconfig is allocated
        // and freed only in enable/disable, which the caller's lock excludes.
        let own = unsafe { bindings::pvp_shim_vconfig_pin(self.as_raw()) };
        // SAFETY: By the type invariants `pdev` is the bound function; the shim only reads.
        let absent = unsafe { bindings::pvp_shim_intx_absent(self.as_raw()) };
        (u8::try_from(own).ok(), absent)
    }

    /// Length and flags (`pci_resource_len`, `pci_resource_flags`) of BAR 0..5 and the ROM.
    pub(crate) fn resources(&self) -> [(u64, u64); 7] {
        let mut out = [(0u64, 0u64); 7];
        for (i, slot) in out.iter_mut().enumerate() {
            let (mut len, mut flags) = (0u64, 0u64);
            let i = c_int::try_from(i).unwrap_or(0);
            // SAFETY: By the type invariants `pdev` is the bound function; `i` is a standard
            // resource index (0..=PCI_ROM_RESOURCE) and the shim only reads its resource.
            unsafe {
                bindings::pvp_shim_resource(
                    bindings::pvp_shim_pdev(self.as_raw()),
                    i,
                    &mut len,
                    &mut flags,
                )
            };
            *slot = (len, flags);
        }
        out
    }

    /// PASID as the IOMMU gives it to this function.
    pub(crate) fn pasid_status(&self) -> PasidStatus {
        let (mut max, mut status) = (0u32, 0 as c_int);
        // SAFETY: By the type invariants `pdev` is the bound function; the shim only reads.
        unsafe {
            bindings::pvp_shim_pasid_info(
                bindings::pvp_shim_pdev(self.as_raw()),
                &mut max,
                &mut status,
            )
        };
        PasidStatus {
            max_pasids: max,
            control: u16::try_from(status).unwrap_or(0),
        }
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

impl CoreDevice<Open> {
    /// `vfio_pci_core_enable()`: enables the function, resets it if it can, builds vconfig.
    /// Returns the device in the [`Io`] context: once enabled, its BARs may be accessed for the
    /// rest of the open (a backend puts its device in its initial state there).
    pub(crate) fn enable(&self) -> Result<&CoreDevice<Io>> {
        // SAFETY: By the type invariants the core device is initialised; the `Open` context is
        // the first-open callback, under the device set lock, as the core requires.
        to_result(unsafe { bindings::vfio_pci_core_enable(self.as_raw()) })?;
        // SAFETY: The contexts differ only in a zero-sized marker (`repr(transparent)`); the
        // device is now enabled, which is all `Io` requires beyond `Normal`.
        Ok(unsafe { &*core::ptr::from_ref(self).cast::<CoreDevice<Io>>() })
    }

    /// `vfio_pci_core_finish_enable()`: the second half of opening, after variant set-up.
    pub(crate) fn finish_enable(&self) {
        // SAFETY: By the type invariants the core device is initialised; in the `Open` context
        // VFIO holds the device set lock, as this function requires.
        unsafe { bindings::vfio_pci_core_finish_enable(self.as_raw()) }
    }

    /// `vfio_pci_core_disable()`: undoes `enable` when a variant's set-up fails.
    pub(crate) fn disable(&self) {
        // SAFETY: By the type invariants the core device is initialised.
        unsafe { bindings::vfio_pci_core_disable(self.as_raw()) }
    }

    /// `vfio_pci_core_close_device()`: the core's half of the last close.
    pub(crate) fn close_device(&self) {
        // SAFETY: By the type invariants the core device is initialised.
        unsafe { bindings::vfio_pci_core_close_device(self.vdev()) }
    }
}

impl CoreDevice<Io> {
    /// A read or write of `len` bytes of the config region at physical offset `phys`, through
    /// vfio-pci-core's own config virtualisation, with `buf` the user's buffer.
    pub(crate) fn config_rw_user(
        &self,
        buf: UserPtr,
        len: usize,
        phys: u16,
        write: bool,
    ) -> Result<usize> {
        let mut pos = kernel::bindings::loff_t::try_from(
            (CONFIG_REGION_INDEX << OFFSET_SHIFT) | u64::from(phys),
        )
        .map_err(|_| EINVAL)?;
        let p = buf.as_mut_ptr().cast::<c_char>();
        // SAFETY: `pos` lives for the call; the core treats `p` as an untrusted user pointer of
        // `len` bytes and accesses config space only.
        let n = unsafe {
            if write {
                bindings::vfio_pci_core_write(self.vdev(), p, len, &mut pos)
            } else {
                bindings::vfio_pci_core_read(self.vdev(), p, len, &mut pos)
            }
        };
        usize::try_from(n)
            .map_err(|_| Error::from_errno(i32::try_from(n).unwrap_or(EINVAL.to_errno())))
    }

    /// `vfio_pci_core_read()` on any region.
    pub(crate) fn read(&self, io: &mut RegionIo) -> Result<usize> {
        // SAFETY: `io` carries the user buffer and position of the current read callback.
        let n = unsafe { bindings::vfio_pci_core_read(self.vdev(), io.buf, io.count, io.pos) };
        usize::try_from(n)
            .map_err(|_| Error::from_errno(i32::try_from(n).unwrap_or(EINVAL.to_errno())))
    }

    /// `vfio_pci_core_write()` on any region.
    pub(crate) fn write(&self, io: &mut RegionIo) -> Result<usize> {
        // SAFETY: `io` carries the user buffer and position of the current write callback.
        let n = unsafe { bindings::vfio_pci_core_write(self.vdev(), io.buf, io.count, io.pos) };
        usize::try_from(n)
            .map_err(|_| Error::from_errno(i32::try_from(n).unwrap_or(EINVAL.to_errno())))
    }

    /// `vfio_pci_core_ioctl()`.
    pub(crate) fn ioctl(&self, cmd: u32, arg: usize) -> Result<isize> {
        // SAFETY: The core validates `cmd` and treats `arg` as an untrusted user pointer/value.
        let r = unsafe { bindings::vfio_pci_core_ioctl(self.vdev(), cmd, arg) };
        errno_or(r)
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

    /// `vfio_iommufd_physical_pasid_attach_ioas()`.
    pub(crate) fn pasid_attach_ioas(&self, pasid: u32, pt_id: &mut u32) -> Result {
        // SAFETY: The device is bound to an iommufd (VFIO calls this op only then, under the
        // device set lock); `pt_id` is a valid in/out pointer for the call.
        to_result(unsafe {
            bindings::vfio_iommufd_physical_pasid_attach_ioas(self.vdev(), pasid, pt_id)
        })
    }
}

/// PASID support of a function, from its IOMMU and its physical PASID capability.
#[derive(Clone, Copy)]
pub(crate) struct PasidStatus {
    /// PASIDs the IOMMU driver gives the function (0: none).
    pub(crate) max_pasids: u32,
    /// The physical PASID Control register (enable, exec, priv), as the IOMMU driver set it.
    pub(crate) control: u16,
}

/// Writes `data` to the user buffer of `io`, `at` bytes in.
///
/// First without faulting (`copy_to_user_nofault`): the config path writes a few bytes into a
/// buffer the user just handed in, whose page is nearly always present, and the plain copy's
/// `might_fault` check costs more than the copy under lockdep. A fault falls back to the plain
/// copy, which may sleep.
pub(crate) fn copy_to_user_at(io: &RegionIo, at: usize, data: &[u8]) -> Result {
    let user = io.user().wrapping_byte_add(at);
    // SAFETY: `data` is valid for reads of `data.len()` bytes; the callee checks the user range
    // and handles faults on it.
    let n = unsafe {
        kernel::bindings::copy_to_user_nofault(
            user.as_mut_ptr().cast(),
            data.as_ptr().cast(),
            data.len(),
        )
    };
    if n == 0 {
        return Ok(());
    }
    kernel::uaccess::UserSlice::new(user, data.len())
        .writer()
        .write_slice(data)
}

/// Reads `out.len()` bytes from the user buffer of `io`, `at` bytes in (first without
/// faulting, as [`copy_to_user_at`]).
pub(crate) fn copy_from_user_at(io: &RegionIo, at: usize, out: &mut [u8]) -> Result {
    let user = io.user().wrapping_byte_add(at);
    // SAFETY: `out` is valid for writes of `out.len()` bytes; the callee checks the user range
    // and handles faults on it.
    let n = unsafe {
        kernel::bindings::copy_from_user_nofault(
            out.as_mut_ptr().cast(),
            user.as_const_ptr().cast(),
            out.len(),
        )
    };
    if n == 0 {
        return Ok(());
    }
    kernel::uaccess::UserSlice::new(user, out.len())
        .reader()
        .read_slice(out)
}

/// `VFIO_REGION_INFO_FLAG_MMAP`: the region may be mapped.
pub(crate) const REGION_INFO_FLAG_MMAP: u32 = bindings::VFIO_REGION_INFO_FLAG_MMAP;

/// Region type of device-specific regions: `VFIO_REGION_TYPE_PCI_VENDOR_TYPE`, or'ed with the
/// PCI vendor ID.
pub(crate) const VENDOR_REGION_TYPE: u32 = bindings::VFIO_REGION_TYPE_PCI_VENDOR_TYPE;

/// The container VFIO allocates for each device: the core device first, the variant's own
/// per-device data after it.
///
/// # Invariants
///
/// `core` satisfies [`CoreDevice`]'s invariants and `data` is initialised, from the successful
/// return of the `init` callback until the `release` callback. A `Device<T, Ctx>` is borrowed only
/// where the context `Ctx` holds. VFIO allocates it and never moves it; the data is initialised
/// in place (`init`) and dropped in place (`release`), so it may be pinned.
#[repr(C)]
pub(crate) struct Device<T, Ctx: DeviceContext = Normal> {
    pub(super) core: CoreDevice<Ctx>,
    pub(super) data: T,
}

impl<T, Ctx: DeviceContext> Device<T, Ctx> {
    /// The vfio-pci-core half, in the same context.
    pub(crate) fn core(&self) -> &CoreDevice<Ctx> {
        &self.core
    }

    /// The variant's per-device data.
    pub(crate) fn data(&self) -> &T {
        &self.data
    }

    /// # Safety
    ///
    /// `vdev` is the `vfio_device` of a container of this type for which `init` succeeded and
    /// `release` has not run, for all of `'a`, borrowed where `Ctx` holds for all of `'a`.
    pub(super) unsafe fn from_vdev<'a>(vdev: *mut bindings::vfio_device) -> &'a Self {
        // SAFETY: The vfio_device is at offset 0 of the core device, which is at offset 0 of
        // `Device<T, Ctx>` (`repr(C)`, first field); validity is the caller's promise.
        unsafe { &*vdev.cast::<Self>() }
    }
}

impl<T> Device<T> {
    /// The container behind the `struct device` of a bound PCI function, for callbacks the
    /// driver core makes on the function (a sysfs attribute of the driver).
    ///
    /// # Safety
    ///
    /// `dev` is the device of a PCI function bound to a driver whose per-device data is `T`, and
    /// stays bound for all of `'a` (the driver core removes a driver's attributes before it
    /// unbinds, and waits for their callbacks).
    pub(crate) unsafe fn from_bound_dev<'a>(dev: *mut kernel::bindings::device) -> &'a Self {
        // SAFETY: The driver data of a bound function is its core device (set by `probe`), whose
        // `vfio_device` is at offset 0 and stays valid until `remove` drops the probe reference.
        unsafe { Self::from_vdev(bindings::pvp_shim_dev_drvdata(dev).cast()) }
    }
}
