// SPDX-License-Identifier: GPL-2.0

//! The C-ABI entry points of the variant driver's tables, generic over its [`Operations`], and the
//! tables built in Rust.
//!
//! Built here, one per driver type (`Vtable::<T>`): `vfio_device_ops` (each slot the driver's
//! entry point when it implements the operation, else vfio-pci-core's own function) and
//! `vfio_log_ops`; the data fd's `file_operations` and a device region's `vfio_pci_regops` are
//! built next to their types (`migration.rs`, `region.rs`). The shim keeps only what Rust cannot
//! express out of tree: the `pci_driver` with its ID table and the `persona` attribute group
//! (`DEVICE_ATTR_RW`, no Rust sysfs abstraction yet), and the callbacks taking a C enum
//! (`vfio_migration_ops`, `error_detected`): kCFI hashes a C enum parameter by the enum's name,
//! which a Rust function can only match with `#[cfi_encoding]`, unstable and not available to an
//! out-of-tree module. [`declare_vfio_pci_driver!`] defines the `pvp_rs_*` symbols those C tables
//! call, each a one-line call into the generic function of the same name here. Errors become
//! errnos here and nowhere else.
//!
//! C header: [`include/linux/vfio_pci_core.h`](srctree/include/linux/vfio_pci_core.h)

use super::{
    bindings,
    context::{DeviceContext, Io, Normal, Open},
    device::{CoreDevice, Device, RegionIo},
    dirty::{DirtyBitmap, LogRanges},
    driver::Operations,
    error::rw_result,
};
use crate::persona_core::mig::fsm::State as MigrationState;
use core::marker::PhantomData;
use kernel::{
    error::{from_err_ptr, from_result},
    prelude::*,
};

/// Defines the `pvp_rs_*` symbols the C shim's tables call, dispatching to the driver `$t`.
#[macro_export]
macro_rules! declare_vfio_pci_driver {
    ($t:ty) => {
        $crate::declare_vfio_pci_driver!(@ops $t;
            probe(pdev: *mut kernel::bindings::pci_dev) -> kernel::ffi::c_int;
            remove(pdev: *mut kernel::bindings::pci_dev) -> ();
            sriov_configure(pdev: *mut kernel::bindings::pci_dev, n: kernel::ffi::c_int)
                -> kernel::ffi::c_int;
            reset_prepare(pdev: *mut kernel::bindings::pci_dev) -> ();
            reset_done(pdev: *mut kernel::bindings::pci_dev) -> ();
            error_detected(pdev: *mut kernel::bindings::pci_dev, state: kernel::ffi::c_uint) -> ();
            migration_set_state(v: *mut $crate::vfio::RawVfioDevice, new: u32)
                -> *mut kernel::bindings::file;
            migration_get_state(v: *mut $crate::vfio::RawVfioDevice, state: *mut u32)
                -> kernel::ffi::c_int;
            migration_get_data_size(v: *mut $crate::vfio::RawVfioDevice,
                len: *mut kernel::ffi::c_ulong) -> kernel::ffi::c_int;
        );
    };
    (@ops $t:ty; $($name:ident($($a:ident: $at:ty),*) -> $ret:ty;)*) => {
        $(
            $crate::vfio_pci_entry!($name, $t, ($($a: $at),*), $ret);
        )*
    };
}

/// Defines one entry point: `pvp_rs_<name>` calling `ops::<name>::<T>`.
#[doc(hidden)]
#[macro_export]
macro_rules! vfio_pci_entry {
    ($name:ident, $t:ty, ($($a:ident: $at:ty),*), $ret:ty) => {
        const _: () = {
            /// The C entry point of this operation.
            ///
            /// # Safety
            ///
            /// Called only through the shim's tables, by the PCI or VFIO core.
            #[export_name = concat!("pvp_rs_", stringify!($name))]
            unsafe extern "C" fn entry($($a: $at),*) -> $ret {
                // SAFETY: Only the shim's tables call this symbol, with the arguments the PCI or
                // VFIO core passed to the callback of the same name, as `ops` requires.
                unsafe { $crate::vfio::ops::$name::<$t>($($a),*) }
            }
        };
    };
}

/// The tables of the driver `T`, built at compile time.
pub(crate) struct Vtable<T>(PhantomData<T>);

impl<T: Operations> Vtable<T> {
    /// `vfio_device_ops`: the driver's entry point where it implements the operation, else
    /// vfio-pci-core's (or the iommufd physical-device helper's) own function.
    pub(super) const OPS: bindings::vfio_device_ops = bindings::vfio_device_ops {
        // VFIO only reads the name (`char *` in C for historical reasons).
        name: kernel::str::as_char_ptr_in_const_context(T::NAME).cast_mut(),
        init: Some(init::<T>),
        release: Some(release::<T>),
        open_device: Some(open_device::<T>),
        close_device: if T::HAS_CLOSE_DEVICE {
            Some(close_device::<T>)
        } else {
            Some(bindings::vfio_pci_core_close_device)
        },
        ioctl: if T::HAS_IOCTL {
            Some(ioctl::<T>)
        } else {
            Some(bindings::vfio_pci_core_ioctl)
        },
        device_feature: Some(bindings::vfio_pci_core_ioctl_feature),
        get_region_info_caps: if T::HAS_REGION_INFO {
            Some(get_region_info_caps::<T>)
        } else {
            Some(bindings::vfio_pci_ioctl_get_region_info)
        },
        read: if T::HAS_READ {
            Some(read::<T>)
        } else {
            Some(bindings::vfio_pci_core_read)
        },
        write: if T::HAS_WRITE {
            Some(write::<T>)
        } else {
            Some(bindings::vfio_pci_core_write)
        },
        mmap: if T::HAS_MMAP_ALLOWED {
            Some(mmap::<T>)
        } else {
            Some(bindings::vfio_pci_core_mmap)
        },
        request: Some(bindings::vfio_pci_core_request),
        match_: Some(bindings::vfio_pci_core_match),
        match_token_uuid: Some(bindings::vfio_pci_core_match_token_uuid),
        bind_iommufd: Some(bindings::vfio_iommufd_physical_bind),
        unbind_iommufd: Some(bindings::vfio_iommufd_physical_unbind),
        attach_ioas: Some(bindings::vfio_iommufd_physical_attach_ioas),
        detach_ioas: Some(bindings::vfio_iommufd_physical_detach_ioas),
        pasid_attach_ioas: if T::HAS_PASID_ATTACH_IOAS {
            Some(pasid_attach_ioas::<T>)
        } else {
            Some(bindings::vfio_iommufd_physical_pasid_attach_ioas)
        },
        pasid_detach_ioas: Some(bindings::vfio_iommufd_physical_pasid_detach_ioas),
        ..pin_init::zeroed()
    };

    /// `vfio_log_ops`, installed only for devices whose driver offers dirty logging.
    const LOG_OPS: bindings::vfio_log_ops = bindings::vfio_log_ops {
        log_start: Some(log_start::<T>),
        log_stop: Some(log_stop::<T>),
        log_read_and_clear: Some(log_read_and_clear::<T>),
    };
}

/// Recovers our container from a `vfio_device` VFIO passes to a callback.
///
/// # Safety
///
/// `v` is a `vfio_device` allocated by `probe::<T>()` whose `init` succeeded and whose `release`
/// has not run, and the calling callback is one VFIO makes only where the context `C` holds (see
/// `super::context`), for all of `'a`.
unsafe fn dev<'a, T: Operations, C: DeviceContext>(
    v: *mut bindings::vfio_device,
) -> &'a Device<T, C> {
    // SAFETY: The caller's promise is `from_vdev`'s.
    unsafe { Device::<T, C>::from_vdev(v) }
}

/// Our container behind a bound PCI function's driver data.
///
/// # Safety
///
/// `pdev` is bound to this driver, so `probe::<T>()` set its driver data to a registered device.
unsafe fn drvdata<'a, T: Operations>(pdev: *mut kernel::bindings::pci_dev) -> &'a Device<T> {
    // SAFETY: The driver data of a bound function is its core device, whose `vfio_device` is at
    // offset 0 and stays valid until `remove` drops the last probe reference.
    unsafe { dev::<T, Normal>(bindings::pvp_shim_drvdata(pdev).cast()) }
}

/// `pci_driver.probe`: allocate through VFIO (which runs `init`), then register with VFIO.
///
/// # Safety
///
/// `pdev` is the function the PCI core is probing.
pub(crate) unsafe fn probe<T: Operations>(pdev: *mut kernel::bindings::pci_dev) -> c_int {
    const {
        // kvzalloc() aligns to at least 8 bytes; the container must not need more.
        assert!(core::mem::align_of::<Device<T>>() <= 8);
        assert!(core::mem::offset_of!(Device<T>, core) == 0);
    }
    from_result(|| {
        let size = core::mem::size_of::<Device<T>>();
        // SAFETY: `pdev` is valid during probe; VFIO allocates `size` bytes (the whole container,
        // whose core device is at offset 0, as asserted above), zeroed, with this driver's
        // table, and runs its `init`; it returns an ERR_PTR on failure.
        let vdev = from_err_ptr(unsafe {
            bindings::_vfio_alloc_device(size, &raw mut (*pdev).dev, &Vtable::<T>::OPS)
        })?;
        // The `vfio_device` is at offset 0 of the core device.
        let core = vdev.cast::<bindings::vfio_pci_core_device>();
        // SAFETY: vfio-pci-core requires the driver data to be the core device.
        unsafe { bindings::pvp_shim_set_drvdata(pdev, core) };
        // SAFETY: `init` succeeded, so `core` is a container of this driver.
        let flags = T::migration_flags(unsafe { dev::<T, Normal>(core.cast()) }).0;
        if T::HAS_MIGRATION_SET_STATE && flags != 0 {
            // SAFETY: Not registered yet: nothing reads the migration fields concurrently.
            unsafe { bindings::pvp_shim_enable_migration(core, flags) };
            // SAFETY: `init` succeeded, so `core` is a container of this driver.
            let dev = unsafe { dev::<T, Normal>(core.cast()) };
            if T::HAS_LOG_START && T::dirty_logging(dev) {
                // SAFETY: Not registered yet, as above.
                unsafe { dev.core().set_log_ops(&Vtable::<T>::LOG_OPS) };
            }
        }
        // SAFETY: `core` is fully initialised and is the function's driver data.
        let r = kernel::error::to_result(unsafe { bindings::vfio_pci_core_register_device(core) });
        if let Err(e) = r {
            // SAFETY: Drops the allocation reference; VFIO then calls `release`.
            unsafe { bindings::pvp_shim_put_device(core) };
            return Err(e);
        }
        Ok(0)
    })
}

/// `pci_driver.remove`: unregister (waits for users to close), then drop the probe reference.
///
/// # Safety
///
/// `pdev` is bound to this driver.
pub(crate) unsafe fn remove<T: Operations>(pdev: *mut kernel::bindings::pci_dev) {
    // SAFETY: A bound function's driver data is the core device `probe` registered.
    unsafe {
        let core = bindings::pvp_shim_drvdata(pdev);
        bindings::vfio_pci_core_unregister_device(core);
        bindings::pvp_shim_put_device(core);
    }
}

/// `pci_driver.sriov_configure`.
///
/// # Safety
///
/// `pdev` is bound to this driver.
pub(crate) unsafe fn sriov_configure<T: Operations>(
    pdev: *mut kernel::bindings::pci_dev,
    n: c_int,
) -> c_int {
    // SAFETY: `pdev` is bound to this driver.
    let dev = unsafe { drvdata::<T>(pdev) };
    from_result(|| dev.core().sriov_configure(n))
}

/// `pci_error_handlers.reset_prepare`.
///
/// # Safety
///
/// `pdev` is bound to this driver.
pub(crate) unsafe fn reset_prepare<T: Operations>(pdev: *mut kernel::bindings::pci_dev) {
    if T::HAS_RESET_PREPARE {
        // SAFETY: `pdev` is bound to this driver.
        T::reset_prepare(unsafe { drvdata::<T>(pdev) })
    }
}

/// `pci_error_handlers.reset_done`.
///
/// # Safety
///
/// `pdev` is bound to this driver.
pub(crate) unsafe fn reset_done<T: Operations>(pdev: *mut kernel::bindings::pci_dev) {
    if T::HAS_RESET_DONE {
        // SAFETY: `pdev` is bound to this driver.
        T::reset_done(unsafe { drvdata::<T>(pdev) })
    }
}

/// `pci_channel_io_normal` (`include/linux/pci.h`): an error the function recovers from without
/// losing its state (non-fatal AER); the other values are a frozen or dead channel.
const PCI_CHANNEL_IO_NORMAL: c_uint = 1;

/// `pci_error_handlers.error_detected`, through the shim's trampoline (which then calls
/// vfio-pci-core's own handler, signalling the user's error eventfd).
///
/// # Safety
///
/// `pdev` is bound to this driver.
pub(crate) unsafe fn error_detected<T: Operations>(
    pdev: *mut kernel::bindings::pci_dev,
    state: c_uint,
) {
    if T::HAS_ERROR_DETECTED {
        // SAFETY: `pdev` is bound to this driver.
        T::error_detected(
            unsafe { drvdata::<T>(pdev) },
            state != PCI_CHANNEL_IO_NORMAL,
        )
    }
}

/// `vfio_device_ops.init`: core initialisation, then the driver's data, in place.
///
/// # Safety
///
/// `v` is the `vfio_device` of a fresh, zeroed allocation of `size_of::<Device<T>>()` bytes.
unsafe extern "C" fn init<T: Operations>(v: *mut bindings::vfio_device) -> c_int {
    from_result(|| {
        // SAFETY: `v` is a freshly allocated vfio_device of a vfio-pci-core container.
        kernel::error::to_result(unsafe { bindings::vfio_pci_core_init_dev(v) })?;
        let dev = v.cast::<Device<T>>();
        // SAFETY: The core half is initialised now; the container is `Device<T>`.
        let core = unsafe { CoreDevice::from_raw(v.cast()) };
        // SAFETY: `data` is uninitialised memory inside the allocation, which never moves.
        let r = unsafe { pin_init::raw_try_init(&raw mut (*dev).data, T::new(core)) };
        if let Err(e) = r {
            // SAFETY: Undo the core initialisation; `release` will not run after a failed init.
            unsafe { bindings::vfio_pci_core_release_dev(v) };
            return Err(e);
        }
        Ok(0)
    })
}

/// `vfio_device_ops.release`: drop the driver's data, then the core's.
///
/// # Safety
///
/// `v` passed `init` and this is its last reference going away.
unsafe extern "C" fn release<T: Operations>(v: *mut bindings::vfio_device) {
    let dev = v.cast::<Device<T>>();
    // SAFETY: `data` was initialised by `init` and nothing uses it any more.
    unsafe { core::ptr::drop_in_place(&raw mut (*dev).data) };
    // SAFETY: The core half was initialised by `init`.
    unsafe { bindings::vfio_pci_core_release_dev(v) };
}

/// `vfio_device_ops.open_device`.
///
/// # Safety
///
/// `v` is a registered device of this driver.
unsafe extern "C" fn open_device<T: Operations>(v: *mut bindings::vfio_device) -> c_int {
    // SAFETY: `v` is a registered device of this driver.
    let dev = unsafe { dev::<T, Open>(v) };
    from_result(|| {
        if T::HAS_OPEN_DEVICE {
            T::open_device(dev)?;
        } else {
            dev.core().enable()?;
            dev.core().finish_enable();
        }
        Ok(0)
    })
}

/// `vfio_device_ops.close_device`.
///
/// # Safety
///
/// `v` is a registered device of this driver.
unsafe extern "C" fn close_device<T: Operations>(v: *mut bindings::vfio_device) {
    // SAFETY: `v` is a registered device of this driver.
    T::close_device(unsafe { dev::<T, Open>(v) })
}

/// `vfio_device_ops.read`.
///
/// # Safety
///
/// `v` is a registered device of this driver; `b`, `n` and `pos` are the callback's arguments.
unsafe extern "C" fn read<T: Operations>(
    v: *mut bindings::vfio_device,
    b: *mut c_char,
    n: usize,
    pos: *mut kernel::bindings::loff_t,
) -> isize {
    // SAFETY: The callback's own arguments, valid for its duration.
    let mut io = unsafe { RegionIo::new(b, n, pos) };
    // SAFETY: `v` is a registered device of this driver.
    rw_result(T::read(unsafe { dev::<T, Io>(v) }, &mut io))
}

/// `vfio_device_ops.write`.
///
/// # Safety
///
/// `v` is a registered device of this driver; `b`, `n` and `pos` are the callback's arguments.
unsafe extern "C" fn write<T: Operations>(
    v: *mut bindings::vfio_device,
    b: *const c_char,
    n: usize,
    pos: *mut kernel::bindings::loff_t,
) -> isize {
    // SAFETY: The callback's own arguments; the buffer is only ever read from on this path.
    let mut io = unsafe { RegionIo::new(b.cast_mut(), n, pos) };
    // SAFETY: `v` is a registered device of this driver.
    rw_result(T::write(unsafe { dev::<T, Io>(v) }, &mut io))
}

/// `vfio_device_ops.ioctl`.
///
/// # Safety
///
/// `v` is a registered device of this driver.
unsafe extern "C" fn ioctl<T: Operations>(
    v: *mut bindings::vfio_device,
    cmd: c_uint,
    arg: c_ulong,
) -> c_long {
    // SAFETY: `v` is a registered device of this driver.
    let dev = unsafe { dev::<T, Io>(v) };
    match T::ioctl(dev, cmd, arg) {
        Ok(r) => c_long::try_from(r).unwrap_or(c_long::MAX),
        Err(e) => c_long::try_from(e.to_errno()).unwrap_or(EINVAL.to_errno() as c_long),
    }
}

/// `vfio_device_ops.get_region_info_caps`.
///
/// # Safety
///
/// `v` is a registered device of this driver; `info` and `caps` are the callback's arguments.
unsafe extern "C" fn get_region_info_caps<T: Operations>(
    v: *mut bindings::vfio_device,
    info: *mut bindings::vfio_region_info,
    caps: *mut bindings::vfio_info_cap,
) -> c_int {
    from_result(|| {
        // SAFETY: `v` is a registered device of this driver.
        let dev = unsafe { dev::<T, Io>(v) };
        // SAFETY: `info`/`caps` are forwarded as given.
        unsafe { dev.core().region_info(info, caps) }?;
        // SAFETY: VFIO passes a valid `info` for the duration of the call, filled in by now.
        let info = unsafe { &mut *info };
        T::region_info(dev, info.index, &mut info.flags, &mut info.size);
        Ok(0)
    })
}

/// `vfio_device_ops.mmap`.
///
/// # Safety
///
/// `v` is a registered device of this driver; `vma` is the callback's mapping.
unsafe extern "C" fn mmap<T: Operations>(
    v: *mut bindings::vfio_device,
    vma: *mut kernel::bindings::vm_area_struct,
) -> c_int {
    // SAFETY: `vma` is the mapping being set up; the shim reads its page offset.
    let index = unsafe { bindings::pvp_shim_vma_region_index(vma) };
    let (mut offset, mut len) = (0u64, 0u64);
    // SAFETY: As above; the shim reads the mapping's offset and size.
    unsafe { bindings::pvp_shim_vma_range(vma, &mut offset, &mut len) };
    // SAFETY: `v` is a registered device of this driver.
    if let Err(e) = T::mmap_allowed(unsafe { dev::<T, Io>(v) }, index, offset, len) {
        return e.to_errno();
    }
    // SAFETY: Forwarded as VFIO gave them; the core validates the mapping.
    unsafe { bindings::vfio_pci_core_mmap(v, vma) }
}

/// `vfio_device_ops.pasid_attach_ioas`.
///
/// # Safety
///
/// The callback's arguments, forwarded unchanged.
unsafe extern "C" fn pasid_attach_ioas<T: Operations>(
    v: *mut bindings::vfio_device,
    pasid: u32,
    pt: *mut u32,
) -> c_int {
    // SAFETY: VFIO passes a valid in/out `pt_id` for the duration of the call.
    let Some(pt) = (unsafe { pt.as_mut() }) else {
        return EINVAL.to_errno();
    };
    // SAFETY: `v` is a registered device of this driver.
    from_result(|| T::pasid_attach_ioas(unsafe { dev::<T, Io>(v) }, pasid, pt).map(|()| 0))
}

/// `vfio_migration_ops.migration_set_state` (through the shim's enum trampoline).
///
/// # Safety
///
/// `v` is a registered device of this driver.
pub(crate) unsafe fn migration_set_state<T: Operations>(
    v: *mut bindings::vfio_device,
    new: u32,
) -> *mut kernel::bindings::file {
    if !T::HAS_MIGRATION_SET_STATE {
        return EOPNOTSUPP.to_ptr();
    }
    // The uAPI value is checked here: the driver sees only states the uAPI defines.
    let Ok(new) = MigrationState::try_from(new) else {
        return EINVAL.to_ptr();
    };
    // SAFETY: `v` is a registered device of this driver.
    match T::migration_set_state(unsafe { dev::<T, Io>(v) }, new) {
        Ok(Some(f)) => f.into_raw(),
        Ok(None) => core::ptr::null_mut(),
        Err(e) => e.to_ptr(),
    }
}

/// `vfio_migration_ops.migration_get_state` (through the shim's enum trampoline).
///
/// # Safety
///
/// `v` is a registered device of this driver; `state` is valid for writes.
pub(crate) unsafe fn migration_get_state<T: Operations>(
    v: *mut bindings::vfio_device,
    state: *mut u32,
) -> c_int {
    from_result(|| {
        if !T::HAS_MIGRATION_GET_STATE {
            return Err(EOPNOTSUPP);
        }
        // SAFETY: `v` is a registered device of this driver.
        let s = T::migration_get_state(unsafe { dev::<T, Io>(v) })?;
        // SAFETY: The shim passes a valid local.
        unsafe { *state = s.value() };
        Ok(0)
    })
}

/// `vfio_migration_ops.migration_get_data_size`.
///
/// # Safety
///
/// `v` is a registered device of this driver; `len` is valid for writes.
pub(crate) unsafe fn migration_get_data_size<T: Operations>(
    v: *mut bindings::vfio_device,
    len: *mut c_ulong,
) -> c_int {
    from_result(|| {
        if !T::HAS_MIGRATION_DATA_SIZE {
            return Err(EOPNOTSUPP);
        }
        // SAFETY: `v` is a registered device of this driver.
        let n = T::migration_data_size(unsafe { dev::<T, Io>(v) })?;
        // SAFETY: VFIO passes a valid pointer for the duration of the call.
        unsafe { *len = c_ulong::try_from(n).map_err(|_| EOVERFLOW)? };
        Ok(0)
    })
}

/// `vfio_log_ops.log_start`.
///
/// # Safety
///
/// `v` is a registered device of this driver; `ranges` is VFIO's tree of `n` ranges and
/// `page_size` a valid in/out pointer, both for the duration of the call.
unsafe extern "C" fn log_start<T: Operations>(
    v: *mut bindings::vfio_device,
    ranges: *mut kernel::bindings::rb_root_cached,
    n: u32,
    page_size: *mut u64,
) -> c_int {
    from_result(|| {
        if !T::HAS_LOG_START {
            return Err(EOPNOTSUPP);
        }
        // SAFETY: VFIO passes a valid in/out page size for the duration of the call.
        let page_size = unsafe { page_size.as_mut() }.ok_or(EINVAL)?;
        // SAFETY: VFIO's tree for this call, which nothing else touches until it returns.
        let mut ranges = unsafe { LogRanges::new(ranges, n) };
        // SAFETY: `v` is a registered device of this driver.
        T::log_start(unsafe { dev::<T, Io>(v) }, &mut ranges, page_size).map(|()| 0)
    })
}

/// `vfio_log_ops.log_stop`.
///
/// # Safety
///
/// `v` is a registered device of this driver.
unsafe extern "C" fn log_stop<T: Operations>(v: *mut bindings::vfio_device) -> c_int {
    if !T::HAS_LOG_STOP {
        return 0;
    }
    // SAFETY: `v` is a registered device of this driver.
    from_result(|| T::log_stop(unsafe { dev::<T, Io>(v) }).map(|()| 0))
}

/// `vfio_log_ops.log_read_and_clear`.
///
/// # Safety
///
/// `v` is a registered device of this driver; `dirty` is the bitmap VFIO allocated for
/// `[iova, iova + len)`, valid for the duration of the call.
unsafe extern "C" fn log_read_and_clear<T: Operations>(
    v: *mut bindings::vfio_device,
    iova: c_ulong,
    len: c_ulong,
    dirty: *mut kernel::bindings::iova_bitmap,
) -> c_int {
    from_result(|| {
        if !T::HAS_LOG_READ_AND_CLEAR {
            return Err(EINVAL);
        }
        let iova = u64::try_from(iova).map_err(|_| EINVAL)?;
        let len = u64::try_from(len).map_err(|_| EINVAL)?;
        // SAFETY: VFIO's bitmap for this call and range.
        let mut bitmap = unsafe { DirtyBitmap::new(dirty, iova, len) };
        // SAFETY: `v` is a registered device of this driver.
        T::log_read_and_clear(unsafe { dev::<T, Io>(v) }, iova, len, &mut bitmap).map(|()| 0)
    })
}
