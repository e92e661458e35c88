// SPDX-License-Identifier: GPL-2.0

//! VFIO migration v2: the migration data fd and the kernel's state-machine helper.
//!
//! A driver keeps each data-transfer session as an [`Arc`] of its own type implementing
//! [`DataFileOps`]; [`NewFile::open`] makes the anon-inode file VFIO hands to the user, whose
//! private data holds another reference to the session (and one to the `vfio_device`, for the
//! kernel's PRECOPY_INFO checks), dropped when the user closes the fd. The driver ends a session
//! by marking it closed in its own state: the file may outlive it, and then fails every call.

use super::{bindings, device::CoreDevice};
use kernel::{
    error::{from_err_ptr, to_result},
    prelude::*,
    sync::Arc,
    uaccess::{UserPtr, UserSlice},
};

/// The operations of a migration data fd, implemented by a driver's session type.
pub(crate) trait DataFileOps: Send + Sync + 'static {
    /// `read()`: copies up to `len` bytes of the stream to `buf`; 0 at the end of the stream.
    fn read(&self, buf: UserPtr, len: usize) -> Result<usize>;

    /// `write()`: accepts up to `len` bytes of the stream from `buf`.
    fn write(&self, buf: UserPtr, len: usize) -> Result<usize>;

    /// `VFIO_MIG_GET_PRECOPY_INFO`: `(initial_bytes, dirty_bytes)`.
    fn precopy_info(&self) -> Result<(u64, u64)>;
}

/// What the file's private data points to.
struct FilePriv<F> {
    /// A referenced `vfio_device` (see [`NewFile::open`]).
    vdev: *mut bindings::vfio_device,
    session: Arc<F>,
}

/// A new data fd's file, to be handed to VFIO as the result of `migration_set_state`.
///
/// Dropping it without handing it over releases the file (and with it the session reference).
pub(crate) struct NewFile(*mut kernel::bindings::file);

// SAFETY: A `struct file` reference may be handed over and dropped from any thread.
unsafe impl Send for NewFile {}

impl NewFile {
    /// Opens a data fd for `session` of the device `core`: readable (a saving session) or
    /// writable (a resuming one).
    pub(crate) fn open<F: DataFileOps>(
        core: &CoreDevice,
        session: Arc<F>,
        writable: bool,
    ) -> Result<Self> {
        let vdev = core.vdev();
        let priv_ = KBox::new(FilePriv { vdev, session }, GFP_KERNEL)?;
        let raw = KBox::into_raw(priv_);
        // SAFETY: `vdev` is a live, initialised vfio_device (by `CoreDevice`'s invariants); the
        // reference is dropped in `release`, or below on failure.
        unsafe { bindings::pvp_shim_vdev_get(vdev) };
        // SAFETY: The shim's file operations hand `raw` back to `read`/`write`/`ioctl`/`release`
        // of `F`, which is what `T::DataFile` is for the entry points.
        let filp = unsafe { bindings::pvp_shim_mig_file(raw.cast(), writable) };
        match from_err_ptr(filp) {
            Ok(filp) => Ok(NewFile(filp)),
            Err(e) => {
                // SAFETY: The file was not created, so `raw` and the device reference are ours.
                unsafe {
                    drop(KBox::from_raw(raw));
                    bindings::pvp_shim_vdev_put(vdev);
                }
                Err(e)
            }
        }
    }

    /// Gives the file reference to the caller (VFIO installs it as a new fd).
    pub(super) fn into_raw(self) -> *mut kernel::bindings::file {
        let f = self.0;
        core::mem::forget(self);
        f
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        // SAFETY: `self.0` is a file reference we own.
        unsafe { bindings::pvp_shim_fput(self.0) }
    }
}

/// # Safety
///
/// `p` is the private data of a file made by [`NewFile::open::<F>`] that is not released yet.
unsafe fn priv_of<'a, F>(p: *mut c_void) -> &'a FilePriv<F> {
    // SAFETY: Per the function's contract.
    unsafe { &*p.cast::<FilePriv<F>>() }
}

/// `read()` on a data fd.
///
/// # Safety
///
/// `p` is the private data of a live file made by [`NewFile::open::<F>`].
pub(crate) unsafe fn mig_read<F: DataFileOps>(
    p: *mut c_void,
    buf: *mut c_char,
    len: usize,
) -> isize {
    // SAFETY: Per the function's contract.
    let fp = unsafe { priv_of::<F>(p) };
    super::ops::rw_result(fp.session.read(UserPtr::from_ptr(buf.cast()), len))
}

/// `write()` on a data fd.
///
/// # Safety
///
/// `p` is the private data of a live file made by [`NewFile::open::<F>`].
pub(crate) unsafe fn mig_write<F: DataFileOps>(
    p: *mut c_void,
    buf: *const c_char,
    len: usize,
) -> isize {
    // SAFETY: Per the function's contract.
    let fp = unsafe { priv_of::<F>(p) };
    let user = UserPtr::from_ptr(buf.cast_mut().cast());
    super::ops::rw_result(fp.session.write(user, len))
}

/// Bytes of `struct vfio_precopy_info` up to and including `dirty_bytes`.
const PRECOPY_INFO_LEN: usize = core::mem::size_of::<bindings::vfio_precopy_info>();

/// `ioctl()` on a data fd: `VFIO_MIG_GET_PRECOPY_INFO` only.
///
/// # Safety
///
/// `p` is the private data of a live file made by [`NewFile::open::<F>`].
pub(crate) unsafe fn mig_ioctl<F: DataFileOps>(
    p: *mut c_void,
    cmd: c_uint,
    arg: c_ulong,
) -> c_long {
    // SAFETY: Per the function's contract.
    let fp = unsafe { priv_of::<F>(p) };
    let r = (|| -> Result {
        let mut info = bindings::vfio_precopy_info::default();
        // SAFETY: `fp.vdev` is referenced by the file; the helper treats `arg` as an untrusted
        // user pointer and writes only `info`.
        to_result(unsafe { bindings::pvp_shim_check_precopy_ioctl(fp.vdev, cmd, arg, &mut info) })?;
        let (initial, dirty) = fp.session.precopy_info()?;
        info.initial_bytes = initial;
        info.dirty_bytes = dirty;
        let mut out = [0u8; PRECOPY_INFO_LEN];
        out[0..4].copy_from_slice(&info.argsz.to_ne_bytes());
        out[4..8].copy_from_slice(&info.flags.to_ne_bytes());
        out[8..16].copy_from_slice(&initial.to_ne_bytes());
        out[16..24].copy_from_slice(&dirty.to_ne_bytes());
        let user = UserPtr::from_addr(arg);
        UserSlice::new(user, out.len()).writer().write_slice(&out)
    })();
    match r {
        Ok(()) => 0,
        Err(e) => c_long::try_from(e.to_errno()).unwrap_or(-22),
    }
}

/// `release()` of a data fd: drops the file's session and device references.
///
/// # Safety
///
/// `p` is the private data of a file made by [`NewFile::open::<F>`], released now.
pub(crate) unsafe fn mig_release<F: DataFileOps>(p: *mut c_void) {
    // SAFETY: The file is going away: its private data is ours again.
    let fp = unsafe { KBox::from_raw(p.cast::<FilePriv<F>>()) };
    let vdev = fp.vdev;
    drop(fp);
    // SAFETY: Drops the reference `open` took.
    unsafe { bindings::pvp_shim_vdev_put(vdev) };
}

impl CoreDevice {
    /// The next single arc from `cur` towards `new`, by the kernel's `vfio_mig_get_next_state()`
    /// (uAPI state values).
    pub(crate) fn mig_next_state(&self, cur: u32, new: u32) -> Result<u32> {
        let mut next = 0u32;
        // SAFETY: The device is initialised; the helper reads its migration flags only.
        to_result(unsafe { bindings::pvp_shim_mig_next_state(self.vdev(), cur, new, &mut next) })?;
        Ok(next)
    }

    /// Reads the 32-bit register at `off` of BAR `bar` (the device must be open).
    pub(crate) fn bar_read32(&self, bar: u32, off: u32) -> Result<u32> {
        self.check_bar(bar, off)?;
        let mut v = 0u32;
        // SAFETY: The BAR map exists while the device is open; `off` is inside the BAR.
        to_result(unsafe { bindings::pvp_shim_bar_read32(self.as_raw(), bar, off, &mut v) })?;
        Ok(v)
    }

    /// Reads the 64-bit register at `off` of BAR `bar` (the device must be open).
    pub(crate) fn bar_read64(&self, bar: u32, off: u32) -> Result<u64> {
        self.check_bar(bar, off)?;
        if off % 8 != 0 {
            return Err(EINVAL);
        }
        let mut v = 0u64;
        // SAFETY: As for `bar_read32`.
        to_result(unsafe { bindings::pvp_shim_bar_read64(self.as_raw(), bar, off, &mut v) })?;
        Ok(v)
    }

    /// Writes the 32-bit register at `off` of BAR `bar` (the device must be open).
    pub(crate) fn bar_write32(&self, bar: u32, off: u32, v: u32) -> Result {
        self.check_bar(bar, off)?;
        // SAFETY: As for `bar_read32`.
        to_result(unsafe { bindings::pvp_shim_bar_write32(self.as_raw(), bar, off, v) })
    }

    /// Writes the 64-bit register at `off` of BAR `bar` (the device must be open).
    pub(crate) fn bar_write64(&self, bar: u32, off: u32, v: u64) -> Result {
        self.check_bar(bar, off)?;
        if off % 8 != 0 {
            return Err(EINVAL);
        }
        // SAFETY: As for `bar_read32`.
        to_result(unsafe { bindings::pvp_shim_bar_write64(self.as_raw(), bar, off, v) })
    }

    /// A user's write of `len` (1, 2, 4 or 8) bytes of `val` at `off` of the memory BAR `bar`,
    /// made as vfio-pci-core makes it (`vfio_pci_core_iowrite*()`: only while memory decoding is
    /// on, under the core's memory lock; 8 bytes as the core's `iowrite64`) but from a value the
    /// driver holds, so user memory is read once: a trap decides on the bytes that reach the
    /// device.
    pub(crate) fn bar_user_write(&self, bar: u32, off: u64, len: usize, val: u64) -> Result {
        // SAFETY: The device is initialised; the shim reads the function's resource length.
        let bar_len = unsafe { bindings::pvp_shim_bar_len(self.as_raw(), bar) };
        let n = u64::try_from(len).map_err(|_| EINVAL)?;
        if !matches!(len, 1 | 2 | 4 | 8) || off % n != 0 || off.saturating_add(n) > bar_len {
            return Err(EINVAL);
        }
        // SAFETY: The device is initialised; the map is an ERR_PTR when the BAR has none.
        let io = from_err_ptr(unsafe { bindings::pvp_shim_bar_iomap(self.as_raw(), bar) })?;
        let at = io
            .cast::<u8>()
            .wrapping_add(usize::try_from(off).map_err(|_| EINVAL)?)
            .cast::<c_void>();
        let b = val.to_le_bytes();
        let raw = self.as_raw();
        // SAFETY: `at` is inside the BAR's map (checked above) and naturally aligned; the core's
        // helpers take its memory lock and check memory decoding themselves.
        to_result(unsafe {
            match len {
                1 => bindings::vfio_pci_core_iowrite8(raw, true, b[0], at),
                2 => bindings::vfio_pci_core_iowrite16(
                    raw,
                    true,
                    u16::from_le_bytes([b[0], b[1]]),
                    at,
                ),
                4 => bindings::vfio_pci_core_iowrite32(
                    raw,
                    true,
                    u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                    at,
                ),
                _ => bindings::vfio_pci_core_iowrite64(raw, true, val, at),
            }
        })
    }

    fn check_bar(&self, bar: u32, off: u32) -> Result {
        // SAFETY: The device is initialised; the shim reads the function's resource length.
        let len = unsafe { bindings::pvp_shim_bar_len(self.as_raw(), bar) };
        if off % 4 != 0 || u64::from(off) + 8 > len {
            return Err(EINVAL);
        }
        Ok(())
    }
}
