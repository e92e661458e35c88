// SPDX-License-Identifier: GPL-2.0

//! VFIO migration v2: the migration data fd and the kernel's state-machine helper.
//!
//! A driver keeps each data-transfer session as an [`Arc`] of its own type implementing
//! [`DataFileOps`]; [`NewFile::open`] makes the anon-inode file VFIO hands to the user, whose
//! private data holds another reference to the session, dropped when the user closes the fd.
//!
//! The file holds nothing of the device: no `vfio_device` reference (which would keep the
//! device, and with it its place in the `vfio_device_set`, alive after `remove()`: a zombie the
//! next device probed on the slot or bus would share its set with) and no pointer it follows.
//! The device side owns the sessions, as mlx5 and pds own their migration files: the driver
//! ends a session by marking it closed in its own state (on every state change that ends it,
//! on reset and in `close_device`, which VFIO runs before `remove()` can finish), and the file,
//! which may outlive the device, then fails every call with `ENODEV` touching only the session.
//! What the file needs of the device (whether the user opted in to PRECOPY_INFOv2) is copied
//! into it when it is made, while the device is open.
//!
//! C header: [`include/linux/vfio.h`](srctree/include/linux/vfio.h)

use super::{bindings, context::Io, device::CoreDevice, error::rw_result};
use core::marker::PhantomData;
use kernel::{
    error::{from_err_ptr, to_result},
    prelude::*,
    sync::{poll::PollCondVar, poll::PollTable, Arc},
    uaccess::{UserPtr, UserSlice},
};

/// The operations of a migration data fd, implemented by a driver's session type. Every one is
/// required; `#[vtable]` supplies the module that owns the file (`file_operations.owner`).
#[vtable]
pub(crate) trait DataFileOps: Send + Sync + 'static {
    /// `read()`: copies up to `len` bytes of the stream to `buf`; 0 at the end of the stream.
    fn read(&self, buf: UserPtr, len: usize) -> Result<usize>;

    /// `write()`: accepts up to `len` bytes of the stream from `buf`.
    fn write(&self, buf: UserPtr, len: usize) -> Result<usize>;

    /// `VFIO_MIG_GET_PRECOPY_INFO`: `(initial_bytes, dirty_bytes)`.
    fn precopy_info(&self) -> Result<(u64, u64)>;

    /// `poll()`: registers with `waiter` the condition variables whose notification changes the
    /// answer, then returns the events ready now ([`POLL_IN`], [`POLL_OUT`], [`POLL_ERR`]).
    fn poll(&self, waiter: &PollWaiter<'_>) -> u32;
}

/// `poll()` events of a data fd: readable (`POLLIN | POLLRDNORM`). The values are the uapi
/// `poll.h` ones of the architecture built for; `.poll` returns `EPOLL*` `__poll_t` bits, which
/// equal them wherever that header is the generic one (x86, arm64, riscv among others).
pub(crate) const POLL_IN: u32 = kernel::bindings::POLLIN | kernel::bindings::POLLRDNORM;
/// Writable.
pub(crate) const POLL_OUT: u32 = kernel::bindings::POLLOUT | kernel::bindings::POLLWRNORM;
/// The session is over: every call fails.
pub(crate) const POLL_ERR: u32 = kernel::bindings::POLLERR | kernel::bindings::POLLHUP;

/// The file and poll table of one `poll()` call on a data fd.
pub(crate) struct PollWaiter<'a> {
    file: &'a kernel::fs::File,
    table: PollTable<'a>,
}

impl PollWaiter<'_> {
    /// Wakes this poller when `cv` is notified.
    pub(crate) fn wait_on(&self, cv: &PollCondVar) {
        self.table.register_wait(self.file, cv);
    }
}

/// What the file's private data points to: the session only (see the module's notes).
struct FilePriv<F> {
    session: Arc<F>,
    /// The user opted in to PRECOPY_INFOv2 when the file was made (then `flags` is an output).
    precopy_v2: bool,
}

/// A new data fd's file, to be handed to VFIO as the result of `migration_set_state`.
///
/// Dropping it without handing it over releases the file (and with it the session reference).
pub(crate) struct NewFile(*mut kernel::bindings::file);

// SAFETY: A `struct file` reference may be handed over and dropped from any thread.
unsafe impl Send for NewFile {}

impl NewFile {
    /// Opens a data fd for `session` of the device `core`: readable (a saving session) or
    /// writable (a resuming one), while the device is open (a migration state change).
    pub(crate) fn open<F: DataFileOps>(
        core: &CoreDevice<Io>,
        session: Arc<F>,
        writable: bool,
    ) -> Result<Self> {
        // SAFETY: `vdev` is a live, initialised vfio_device (by `CoreDevice`'s invariants); the
        // shim reads one byte of it.
        let precopy_v2 = unsafe { bindings::pvp_shim_precopy_info_v2(core.vdev()) };
        let priv_ = KBox::new(
            FilePriv {
                session,
                precopy_v2,
            },
            GFP_KERNEL,
        )?;
        let raw = KBox::into_raw(priv_);
        let flags = if writable {
            kernel::bindings::O_WRONLY
        } else {
            kernel::bindings::O_RDONLY
        };
        // SAFETY: The name is a static C string and the table a static of `FileTable::<F>`,
        // whose operations take `raw` back as `FilePriv<F>` (released in its `release`).
        let filp = unsafe {
            bindings::anon_inode_getfile(
                c"[persona_vfio_pci_mig]".as_char_ptr(),
                &FileTable::<F>::FOPS,
                raw.cast(),
                flags as c_int,
            )
        };
        match from_err_ptr(filp) {
            Ok(filp) => {
                // SAFETY: `filp` is the new file, ours; a stream: not seekable, no position.
                unsafe { kernel::bindings::stream_open((*filp).f_inode, filp) };
                Ok(NewFile(filp))
            }
            Err(e) => {
                // SAFETY: The file was not created, so `raw` is ours again.
                drop(unsafe { KBox::from_raw(raw) });
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
        unsafe { kernel::bindings::fput(self.0) }
    }
}

/// The `file_operations` of a data fd whose session is `F`, built at compile time.
struct FileTable<F>(PhantomData<F>);

impl<F: DataFileOps> FileTable<F> {
    /// The table `NewFile::open::<F>` gives `anon_inode_getfile()`.
    const FOPS: kernel::bindings::file_operations = kernel::bindings::file_operations {
        owner: kernel::module::this_module::<F::OwnerModule>().as_ptr(),
        read: Some(mig_read::<F>),
        write: Some(mig_write::<F>),
        unlocked_ioctl: Some(mig_ioctl::<F>),
        #[cfg(CONFIG_COMPAT)]
        compat_ioctl: Some(bindings::compat_ptr_ioctl),
        poll: Some(mig_poll::<F>),
        release: Some(mig_release::<F>),
        ..pin_init::zeroed()
    };
}

/// # Safety
///
/// `filp` is a live file made by [`NewFile::open::<F>`], not released yet, for all of `'a`.
unsafe fn priv_of<'a, F>(filp: *mut kernel::bindings::file) -> &'a FilePriv<F> {
    // SAFETY: Per the function's contract, the private data is the `FilePriv<F>` `open` gave.
    unsafe { &*(*filp).private_data.cast::<FilePriv<F>>() }
}

/// `read()` on a data fd.
///
/// # Safety
///
/// `filp` is a live file made by [`NewFile::open::<F>`]; `buf` is the call's user buffer.
unsafe extern "C" fn mig_read<F: DataFileOps>(
    filp: *mut kernel::bindings::file,
    buf: *mut c_char,
    len: usize,
    _pos: *mut kernel::bindings::loff_t,
) -> isize {
    // SAFETY: Per the function's contract.
    let fp = unsafe { priv_of::<F>(filp) };
    rw_result(fp.session.read(UserPtr::from_ptr(buf.cast()), len))
}

/// `write()` on a data fd.
///
/// # Safety
///
/// `filp` is a live file made by [`NewFile::open::<F>`]; `buf` is the call's user buffer.
unsafe extern "C" fn mig_write<F: DataFileOps>(
    filp: *mut kernel::bindings::file,
    buf: *const c_char,
    len: usize,
    _pos: *mut kernel::bindings::loff_t,
) -> isize {
    // SAFETY: Per the function's contract.
    let fp = unsafe { priv_of::<F>(filp) };
    let user = UserPtr::from_ptr(buf.cast_mut().cast());
    rw_result(fp.session.write(user, len))
}

/// Bytes of `struct vfio_precopy_info` up to and including `dirty_bytes`.
const PRECOPY_INFO_LEN: usize = core::mem::size_of::<bindings::vfio_precopy_info>();

/// `ioctl()` on a data fd: `VFIO_MIG_GET_PRECOPY_INFO` only. The checks are those of the
/// kernel's `vfio_check_precopy_ioctl()`, made without the device (see the module's notes).
///
/// # Safety
///
/// `filp` is a live file made by [`NewFile::open::<F>`].
unsafe extern "C" fn mig_ioctl<F: DataFileOps>(
    filp: *mut kernel::bindings::file,
    cmd: c_uint,
    arg: c_ulong,
) -> c_long {
    // SAFETY: Per the function's contract.
    let fp = unsafe { priv_of::<F>(filp) };
    let r = (|| -> Result {
        if cmd != bindings::PVP_VFIO_MIG_GET_PRECOPY_INFO {
            return Err(ENOTTY);
        }
        let user = UserPtr::from_addr(arg);
        let mut head = [0u8; PRECOPY_INFO_LEN];
        UserSlice::new(user, head.len())
            .reader()
            .read_slice(&mut head)?;
        let argsz = u32::from_ne_bytes([head[0], head[1], head[2], head[3]]);
        if usize::try_from(argsz).map_err(|_| EINVAL)? < PRECOPY_INFO_LEN {
            return Err(EINVAL);
        }
        // v1 keeps the user's flags as they were (bug compatibility); v2 makes them an output.
        let flags = if fp.precopy_v2 {
            0
        } else {
            u32::from_ne_bytes([head[4], head[5], head[6], head[7]])
        };
        let (initial, dirty) = fp.session.precopy_info()?;
        let mut out = [0u8; PRECOPY_INFO_LEN];
        out[0..4].copy_from_slice(&argsz.to_ne_bytes());
        out[4..8].copy_from_slice(&flags.to_ne_bytes());
        out[8..16].copy_from_slice(&initial.to_ne_bytes());
        out[16..24].copy_from_slice(&dirty.to_ne_bytes());
        UserSlice::new(user, out.len()).writer().write_slice(&out)
    })();
    match r {
        Ok(()) => 0,
        Err(e) => c_long::try_from(e.to_errno()).unwrap_or(EINVAL.to_errno() as c_long),
    }
}

/// `poll()` on a data fd.
///
/// # Safety
///
/// `filp` is a live file made by [`NewFile::open::<F>`], and `table` the poll table of the
/// current `poll` call (or null).
unsafe extern "C" fn mig_poll<F: DataFileOps>(
    filp: *mut kernel::bindings::file,
    table: *mut kernel::bindings::poll_table,
) -> kernel::bindings::__poll_t {
    // SAFETY: Per the function's contract.
    let fp = unsafe { priv_of::<F>(filp) };
    let waiter = PollWaiter {
        // SAFETY: VFS holds a reference to `filp` for the duration of its `poll` call.
        file: unsafe { kernel::fs::File::from_raw_file(filp) },
        // SAFETY: `table` is null or the call's valid poll table, for the call.
        table: unsafe { PollTable::from_raw(table) },
    };
    fp.session.poll(&waiter)
}

/// `release()` of a data fd: drops the file's session reference.
///
/// # Safety
///
/// `filp` is a file made by [`NewFile::open::<F>`], released now.
unsafe extern "C" fn mig_release<F: DataFileOps>(
    _inode: *mut kernel::bindings::inode,
    filp: *mut kernel::bindings::file,
) -> c_int {
    // SAFETY: The file is going away: its private data, from `KBox::into_raw` in `open`, is
    // ours again.
    drop(unsafe { KBox::from_raw((*filp).private_data.cast::<FilePriv<F>>()) });
    0
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
}

impl CoreDevice<Io> {
    // BAR registers for a backend (save, load, quiesce waits, the dirty log, a held DMA
    // start): these are the driver's accesses on the device's behalf, made as vfio-pci-core
    // makes its own accesses to the MSI-X table for the user (`vfio_pci_memory_lock_and_enable`):
    // under `memory_lock` held for write, so no reset, COMMAND or power-state change and no
    // runtime suspend or resume (all under it for write) runs meanwhile, with memory decoding
    // turned on for the access if the user turned it off, and COMMAND put back after. A save
    // therefore does not depend on the guest's COMMAND register: with decoding off it reads the
    // device as it is (a DMA the guest started before clearing decoding is seen running and
    // waited for, and is in the dirty log until seen done). A function in D3hot or below cannot
    // be reached: `EIO`, which a backend must treat as "cannot quiesce / cannot save" (the arc
    // fails, the device goes to ERROR), never as "idle". The lock is taken and dropped around
    // each access, so waits between polls hold nothing of the core. Never call these with
    // `memory_lock` held: not from `reset_done` (the core holds it around resets), which is why
    // resets only drop driver state. 64 bits go through the core's `ioread64`/`iowrite64` (right
    // for memory and I/O BARs, unlike `readq`/`writeq` on an iomap cookie).
    //
    // `memory_lock` keeps out vfio-pci-core's own resets, not the PCI core's: a sysfs `reset`
    // (`pci_reset_function()`), a bus reset through sysfs and AER recovery save the config
    // space, clear COMMAND, reset and restore it without that lock. An access in that window
    // would reach a function mid-reset, and its COMMAND read-modify-write could put back the
    // cleared COMMAND after the restore, leaving memory decoding off under a user that
    // turned it on (every user BAR read then gave 0; seen after the faults suite's flr race).
    // Those paths all hold the function's config access lock (`pci_dev_lock()` and the bus and
    // slot variants) for the whole save, reset and restore, so each access also holds it
    // (`pci_cfg_access_lock()`, which waits for a reset in progress): an access runs wholly
    // before or wholly after a reset. It only blocks user config accesses meanwhile; the
    // resets that take `memory_lock` first only try the config lock (`pci_dev_trylock()`,
    // `pci_bus_trylock()`), the order used here, and no reset path waits for `state` (see
    // `device`), which a backend holds around these accesses.

    /// The address of the register at `off` of BAR `bar` in vfio-pci-core's map of it, for the
    /// core's accessors: `len` bytes, naturally aligned, inside the BAR.
    fn bar_reg(&self, bar: u32, off: u64, len: u64) -> Result<*mut c_void> {
        // SAFETY: The device is initialised; the shim reads the function's resource length.
        let bar_len = unsafe { bindings::pvp_shim_bar_len(self.as_raw(), bar) };
        if !matches!(len, 1 | 2 | 4 | 8) || off % len != 0 || off.saturating_add(len) > bar_len {
            return Err(EINVAL);
        }
        // SAFETY: The device is initialised; the core maps the BAR on first use (the device is
        // open: every caller runs under a VFIO callback of an open device) and returns an
        // ERR_PTR when it cannot.
        let io = from_err_ptr(unsafe { bindings::pvp_shim_bar_iomap(self.as_raw(), bar) })?;
        Ok(io
            .cast::<u8>()
            .wrapping_add(usize::try_from(off).map_err(|_| EINVAL)?)
            .cast::<c_void>())
    }

    /// Runs `access` (one MMIO through the core's accessors without their own locking) with
    /// `memory_lock` held for write and memory decoding on (see the notes above).
    fn device_access(
        &self,
        access: impl FnOnce(*mut bindings::vfio_pci_core_device) -> c_int,
    ) -> Result {
        /// `PCI_D3hot` (`pci_power_t`).
        const PCI_D3HOT: kernel::bindings::pci_power_t = 3;
        let raw = self.as_raw();
        // SAFETY: By the type invariants `pdev` is the bound function.
        let pdev = unsafe { bindings::pvp_shim_pdev(raw) };
        // SAFETY: The core device is initialised, so its `memory_lock` is; not held by this task
        // (see the notes above). Released below on every path.
        unsafe { bindings::pvp_shim_memory_write_lock(raw) };
        // SAFETY: `pdev` is valid. Blocks config access for the reset paths that do not take
        // `memory_lock` (see the notes above); taken after `memory_lock`, as vfio-pci-core's own
        // resets do (`pci_try_reset_function()` under it); released below on every path.
        unsafe { kernel::bindings::pci_cfg_access_lock(pdev) };
        // SAFETY: `pdev` is valid; `current_state` changes only under `memory_lock` held for
        // write (the core's power-state changes), which we hold.
        let r = if unsafe { (*pdev).current_state } >= PCI_D3HOT {
            Err(EIO)
        } else {
            let mut cmd = 0u16;
            let mem = kernel::bindings::PCI_COMMAND_MEMORY as u16;
            let at = kernel::bindings::PCI_COMMAND as c_int;
            // SAFETY: `pdev` is valid; COMMAND is a config register every function has.
            to_result(unsafe { kernel::bindings::pci_read_config_word(pdev, at, &mut cmd) })
                .and_then(|()| {
                    if cmd & mem == 0 {
                        // SAFETY: As above; COMMAND is put back below.
                        to_result(unsafe {
                            kernel::bindings::pci_write_config_word(pdev, at, cmd | mem)
                        })?;
                    }
                    let r = to_result(access(raw));
                    if cmd & mem == 0 {
                        // SAFETY: As above: the user's COMMAND again.
                        unsafe { kernel::bindings::pci_write_config_word(pdev, at, cmd) };
                    }
                    r
                })
        };
        // SAFETY: Taken above.
        unsafe { kernel::bindings::pci_cfg_access_unlock(pdev) };
        // SAFETY: Taken above.
        unsafe { bindings::pvp_shim_memory_write_unlock(raw) };
        r
    }

    /// Reads the 32-bit register at `off` of BAR `bar` (see the notes above).
    pub(crate) fn bar_read32(&self, bar: u32, off: u32) -> Result<u32> {
        let at = self.bar_reg(bar, u64::from(off), 4)?;
        let mut v = 0u32;
        // SAFETY: `at` is a naturally aligned register inside the BAR's map (`bar_reg`), and
        // `device_access` holds `memory_lock` with decoding on and the function in D0-D2, which
        // is what the core's `test_mem` check would have ensured.
        self.device_access(|raw| unsafe {
            bindings::vfio_pci_core_ioread32(raw, false, &mut v, at)
        })?;
        Ok(v)
    }

    /// Reads the 64-bit register at `off` of BAR `bar` (as `bar_read32`).
    pub(crate) fn bar_read64(&self, bar: u32, off: u32) -> Result<u64> {
        let at = self.bar_reg(bar, u64::from(off), 8)?;
        let mut v = 0u64;
        // SAFETY: As for `bar_read32`.
        self.device_access(|raw| unsafe {
            bindings::vfio_pci_core_ioread64(raw, false, &mut v, at)
        })?;
        Ok(v)
    }

    /// Writes the 32-bit register at `off` of BAR `bar` (as `bar_read32`).
    pub(crate) fn bar_write32(&self, bar: u32, off: u32, v: u32) -> Result {
        let at = self.bar_reg(bar, u64::from(off), 4)?;
        // SAFETY: As for `bar_read32`.
        self.device_access(|raw| unsafe { bindings::vfio_pci_core_iowrite32(raw, false, v, at) })
    }

    /// Writes the 64-bit register at `off` of BAR `bar` (as `bar_read32`).
    pub(crate) fn bar_write64(&self, bar: u32, off: u32, v: u64) -> Result {
        let at = self.bar_reg(bar, u64::from(off), 8)?;
        // SAFETY: As for `bar_read32`.
        self.device_access(|raw| unsafe { bindings::vfio_pci_core_iowrite64(raw, false, v, at) })
    }

    /// The length of the memory BAR `bar` and vfio-pci-core's map of it, for [`BarWindow`]'s
    /// copies: a memory BAR (an I/O BAR's map is a port cookie, which they must not be given).
    fn bar_map(&self, bar: u32) -> Result<(u64, *mut u8)> {
        /// `IORESOURCE_MEM`.
        const IORESOURCE_MEM: u64 = 0x200;
        let (bar_len, flags) = self
            .resources()
            .get(usize::try_from(bar).map_err(|_| EINVAL)?)
            .copied()
            .ok_or(EINVAL)?;
        if flags & IORESOURCE_MEM == 0 {
            return Err(EINVAL);
        }
        // SAFETY: As in `bar_reg`: the device is open, the core maps the BAR on first use.
        let io = from_err_ptr(unsafe { bindings::pvp_shim_bar_iomap(self.as_raw(), bar) })?;
        Ok((bar_len, io.cast::<u8>()))
    }

    /// Runs `f` with the memory BAR `bar` as a [`BarWindow`], under one `memory_lock` hold with
    /// decoding on, as `bar_read32` makes its access (`EIO` in D3hot, `f` not run). Callers keep
    /// what `f` moves small (about a MiB): other BAR users wait meanwhile; `f` must not
    /// allocate or take the device's locks.
    pub(crate) fn with_bar(&self, bar: u32, f: impl FnOnce(&BarWindow<'_>) -> Result) -> Result {
        let (len, base) = self.bar_map(bar)?;
        let mut r = Err(EIO);
        self.device_access(|_| {
            // INVARIANT: `base` maps `len` bytes of a memory BAR; `device_access` holds
            // `memory_lock` with decoding on and the function in D0-D2 while `w` lives.
            let w = BarWindow {
                base,
                len,
                _held: PhantomData,
            };
            r = f(&w);
            0
        })?;
        r
    }

    /// A user's write of `len` (1, 2, 4 or 8) bytes of `val` at `off` of the memory BAR `bar`,
    /// made as vfio-pci-core makes it (`vfio_pci_core_iowrite*()`: only while memory decoding is
    /// on, under the core's memory lock; 8 bytes as the core's `iowrite64`) but from a value the
    /// driver holds, so user memory is read once: a trap decides on the bytes that reach the
    /// device.
    pub(crate) fn bar_user_write(&self, bar: u32, off: u64, len: usize, val: u64) -> Result {
        let at = self.bar_reg(bar, off, u64::try_from(len).map_err(|_| EINVAL)?)?;
        let b = val.to_le_bytes();
        let raw = self.as_raw();
        // SAFETY: `at` is a naturally aligned register of `len` bytes inside the BAR's map
        // (`bar_reg`); the core's helpers take its memory lock and check memory decoding and
        // power state themselves.
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

    /// Resumes the function from runtime suspend and holds it active until the returned
    /// reference is dropped (`pm_runtime_resume_and_get()`, as vfio-pci-core does around every
    /// region access): a device in low power wakes up, signalling the user's wake-up eventfd.
    pub(crate) fn pm_active(&self) -> Result<PmActive<'_>> {
        // SAFETY: By the type invariants `pdev` is the bound function.
        to_result(unsafe { bindings::pvp_shim_pm_get(self.as_raw()) }).map_err(|_| EIO)?;
        Ok(PmActive(self))
    }
}

/// A memory BAR's map while [`CoreDevice::with_bar`] holds it: bounds-checked copies and
/// comparisons in 8-byte accesses (where offset and length are multiples of 8; `memcpy_fromio`
/// and `memcpy_toio` otherwise, which x86 makes 4 bytes at a time).
///
/// # Invariants
///
/// `base` maps `len` bytes of a memory BAR, readable and writable with MMIO accessors: `memory_lock`
/// is held with decoding on and the function in D0-D2 for `'a`.
pub(crate) struct BarWindow<'a> {
    base: *mut u8,
    len: u64,
    _held: PhantomData<&'a ()>,
}

/// The access width of [`BarWindow`]'s copies.
const WORD: usize = 8;

impl BarWindow<'_> {
    /// The address of `n` bytes at `off`, inside the BAR; whether 8-byte accesses fit them.
    fn at(&self, off: u64, n: usize) -> Result<(*mut u8, bool)> {
        let end = off
            .checked_add(u64::try_from(n).map_err(|_| EINVAL)?)
            .ok_or(EINVAL)?;
        if end > self.len {
            return Err(EINVAL);
        }
        let off = usize::try_from(off).map_err(|_| EINVAL)?;
        let p = self.base.wrapping_add(off);
        Ok((p, (p as usize | n) % WORD == 0))
    }

    /// Appends `n` bytes at `off` of the BAR to `out`, within its capacity (`EINVAL` when it has
    /// less room): no zero-fill before the copy, and no allocation under the lock.
    pub(crate) fn read_append(&self, off: u64, n: usize, out: &mut KVVec<u8>) -> Result {
        let (src, words) = self.at(off, n)?;
        let room = out.spare_capacity_mut();
        if room.len() < n {
            return Err(EINVAL);
        }
        let dst = room.as_mut_ptr().cast::<u8>();
        if words {
            let src = src.cast::<u64>();
            for i in 0..n / WORD {
                // SAFETY: `src` is 8-aligned and `n` bytes of it are inside the BAR's map (`at`),
                // accessible by the type invariants; a volatile 8-byte read is one MMIO read, as
                // `readq` makes it. `dst` has room for `n` bytes, written unaligned.
                unsafe {
                    dst.cast::<u64>()
                        .add(i)
                        .write_unaligned(src.add(i).read_volatile())
                };
            }
        } else {
            // SAFETY: As above, the BAR's part by `at`, `dst`'s room checked.
            unsafe { kernel::bindings::memcpy_fromio(dst.cast(), src.cast(), n) };
        }
        // SAFETY: The `n` bytes after the length were just written.
        unsafe { out.inc_len(n) };
        Ok(())
    }

    /// Calls `mark(i)` for each `unit`-byte piece `i` of `expect` that differs from the BAR's bytes
    /// at `off`: a piece stops being read at its first differing word, nothing is copied.
    pub(crate) fn differs(
        &self,
        off: u64,
        expect: &[u8],
        unit: usize,
        mut mark: impl FnMut(usize),
    ) -> Result {
        let (base, words) = self.at(off, expect.len())?;
        if !words || unit == 0 || unit % WORD != 0 {
            return Err(EINVAL);
        }
        let (per, total) = (unit / WORD, expect.len() / WORD);
        let (io, mem) = (base.cast::<u64>(), expect.as_ptr().cast::<u64>());
        let mut j = 0;
        while j < total {
            let end = total.min(j + per);
            while j < end {
                // SAFETY: As in `read_append`: `io` is 8-aligned, word `j` inside the map (`at`
                // checked `expect`'s length from `off`), accessible by the type invariants;
                // word `j` of `expect` is inside it, read unaligned (plain loads: a `[u8; 8]`
                // copy would be a `memcpy` call per word).
                let (got, want) =
                    unsafe { (io.add(j).read_volatile(), mem.add(j).read_unaligned()) };
                if got != want {
                    mark(j / per);
                    break;
                }
                j += 1;
            }
            j = end;
        }
        Ok(())
    }

    /// Copies `data` to `off` of the BAR.
    pub(crate) fn write(&self, off: u64, data: &[u8]) -> Result {
        let n = data.len();
        let (dst, words) = self.at(off, n)?;
        if words {
            let (dst, src) = (dst.cast::<u64>(), data.as_ptr().cast::<u64>());
            for i in 0..n / WORD {
                // SAFETY: As in `read_append`: 8-aligned, inside the map, accessible; one MMIO
                // write of 8 bytes, as `writeq` makes it. Word `i` of `data` is inside it, read
                // unaligned.
                unsafe { dst.add(i).write_volatile(src.add(i).read_unaligned()) };
            }
        } else {
            // SAFETY: As above; `data` is valid for `n` bytes of reads.
            unsafe { kernel::bindings::memcpy_toio(dst.cast(), data.as_ptr().cast(), n) };
        }
        Ok(())
    }
}

/// A runtime PM reference of the function (see [`CoreDevice::pm_active`]).
pub(crate) struct PmActive<'a>(&'a CoreDevice<Io>);

impl Drop for PmActive<'_> {
    fn drop(&mut self) {
        // SAFETY: Drops the reference `pm_active` took.
        unsafe { bindings::pvp_shim_pm_put(self.0.as_raw()) }
    }
}
