// SPDX-License-Identifier: GPL-2.0

//! The persona-vfio-pci device: per-device state and the VFIO operations it changes.
//!
//! # Locking
//!
//! Locks are taken in this order: 1. `state` (mutex), 2. `reset_pending` (spinlock).
//! `state` is held across user copies, and across a dirty log report, which pins the user's
//! bitmap pages (`mmap_lock`); nothing that holds `mmap_lock` takes `state`.
//!
//! `reset_done` runs with VFIO's and the PCI core's locks held, some of which are also taken
//! around `mmap_lock`; waiting there for `state` could deadlock (ABBA). So `reset_done` only sets
//! `reset_pending` and tries `state`: when it cannot take it, whoever holds `state` runs the reset
//! before unlocking (see [`StateGuard`]). This is the deferred-reset pattern of mlx5 and virtio.
//!
//! # The persona is checked again
//!
//! At every open (after `vfio_pci_core_enable()`, which resets the function) and after every
//! reset while open, the driver reads the physical config space and the BAR/ROM resources again
//! and runs the core's check of the persona in force: firmware can change under a bound device.
//! An open whose device no longer matches fails with `EIO` and a kernel-log line naming the
//! field. A reset that leaves an open device not matching marks it **stale**: config and BAR/ROM
//! accesses (read, write, new mmaps) fail with `EIO` until the device is closed, and the kernel
//! log names the field. The re-check neither takes vfio-pci-core's `memory_lock` nor blocks in
//! `reset_done` (it runs wherever the deferred reset runs, with `state` held); mappings made
//! before the reset stay, as vfio-pci-core's own do.
//!
//! # BARs presented smaller
//!
//! A device BAR larger than the persona's is presented at the persona's size everywhere a user
//! sees it: `VFIO_DEVICE_GET_REGION_INFO` (size, and no mmap flag for a size below a page),
//! `read`/`write` (past it: `EINVAL`; across it: truncated), `mmap` (past it: `EINVAL`) and
//! `VFIO_DEVICE_IOEVENTFD` (past it: `EINVAL`). The sizes live in atomics, so `mmap` (under
//! `mmap_lock`) never takes `state`.

use crate::{
    backend::AnyBackend,
    migration::{self, Migration, Session},
    persona::{self, Active, Selector},
    persona_core::{
        mig::fsm::{Caps, State as MigState},
        overlay::OverlayState,
        persona::{BarInfo, DeviceView, NBARS, SPACE},
    },
    vfio::{self, CoreDevice, Device, DirtyBitmap, LogRanges, RegionIo},
};
use core::fmt::Write;
use kernel::{
    new_mutex,
    new_spinlock,
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        lock::mutex::MutexGuard,
        Mutex, SpinLock,
    },
    uaccess::{UserPtr, UserSlice}, //
};

/// Region indexes of BAR 0..5 and the ROM (`VFIO_PCI_BAR0_REGION_INDEX`..`ROM`).
const BAR_REGIONS: u64 = 7;
/// Bits of a region offset below the region index (`VFIO_PCI_OFFSET_SHIFT`).
const OFFSET_SHIFT: u32 = 40;
/// Bytes of `struct vfio_device_ioeventfd` the clamp reads (argsz, flags, offset).
const IOEVENTFD_HEAD: usize = 16;

/// Per-device state behind `PersonaDevice::state`.
pub(crate) struct State {
    /// How many resets this device has seen since bind (for the kernel log and tests).
    pub(crate) resets: u64,
    /// The function's physical config space, read at bind, at every open and after resets.
    pub(crate) dump: KVVec<u8>,
    /// The function's BARs and ROM (`pci_resource_len`/`flags`), read with `dump`.
    pub(crate) bars: [BarInfo; NBARS],
    /// The device no longer matches the persona (after a reset while open): config and BAR
    /// accesses fail with `EIO` until close.
    pub(crate) stale: bool,
    /// The persona in force; `None` only when none could be derived (plain vfio-pci behaviour).
    pub(crate) persona: Option<Active>,
    /// Emulated registers of the persona in force.
    pub(crate) regs: KBox<OverlayState>,
    /// A user has the device open: the persona cannot change.
    pub(crate) open: bool,
    /// Migration, for devices with a backend; `None`: no migration feature.
    pub(crate) mig: Option<Migration>,
}

impl State {
    /// Returns every emulated register to the persona's reset value.
    fn reset(&mut self) {
        self.resets = self.resets.wrapping_add(1);
        if let Some(mig) = &mut self.mig {
            mig.reset();
        }
        if let Some(active) = &self.persona {
            self.regs.reset(&active.map);
        }
    }

    /// Reads the physical config space and the BAR/ROM resources again.
    fn refresh(&mut self, core: &CoreDevice) -> Result {
        let n = core.read_physical_config(&mut self.dump)?;
        if n != self.dump.len() {
            return Err(EIO);
        }
        self.bars = persona::bar_table(&core.resources());
        Ok(())
    }

    /// Checks the persona in force against the device as it is now; `when` says why.
    fn recheck(&mut self, core: &CoreDevice, when: &str) -> Result {
        if self.persona.is_none() {
            return Ok(());
        }
        let dev = core.as_dev();
        if let Err(e) = self.refresh(core) {
            dev_err!(
                dev,
                "persona {}: cannot read the device's config space\n",
                when
            );
            return Err(e);
        }
        let view = DeviceView {
            config: &self.dump,
            bars: Some(self.bars),
        };
        match &mut self.persona {
            Some(active) => active.recheck(dev, &view, core.pasid_status(), when),
            None => Ok(()),
        }
    }

    /// After a reset of an open device: re-check; a device that no longer matches goes stale.
    fn after_reset(&mut self, core: &CoreDevice, stale: &Atomic<bool>) {
        if !self.open || self.persona.is_none() {
            return;
        }
        let now = self
            .recheck(core, "no longer matches after a reset")
            .is_err();
        if now {
            dev_err!(
                core.as_dev(),
                "config and BAR accesses fail with EIO until the device is closed\n"
            );
        }
        self.stale = now;
        stale.store(now, Release);
    }

    /// Size each BAR region (0..5) and the ROM is presented at: the persona's, or the device's
    /// (`u64::MAX`: no clamp) without a persona.
    fn presented_sizes(&self) -> [u64; NBARS] {
        match &self.persona {
            Some(a) => a.bar_sizes(),
            None => [u64::MAX; NBARS],
        }
    }

    fn new(core: &CoreDevice) -> Result<Self> {
        let mut dump = KVVec::from_elem(0u8, SPACE, GFP_KERNEL)?;
        let n = core.read_physical_config(&mut dump)?;
        dump.truncate(n);
        let bars = persona::bar_table(&core.resources());
        let id = |at: usize| {
            u16::from_le_bytes([
                dump.get(at).copied().unwrap_or(0),
                dump.get(at + 1).copied().unwrap_or(0),
            ])
        };
        let mig = AnyBackend::for_function(id(0), id(2)).map(Migration::new);
        let mut state = State {
            resets: 0,
            dump,
            bars,
            stale: false,
            persona: None,
            regs: KBox::init(pin_init::init_zeroed::<OverlayState>(), GFP_KERNEL)?,
            open: false,
            mig,
        };
        let dev = core.as_dev();
        let wanted = vfio::default_persona().to_bytes();
        let sel = persona::parse_selector(wanted).unwrap_or(Selector::Auto);
        if let Err(e) = state.select(core, &sel) {
            dev_warn!(
                dev,
                "default persona {:?} not usable ({:?}); using auto\n",
                vfio::default_persona(),
                e
            );
            if state.select(core, &Selector::Auto).is_err() {
                dev_warn!(
                    dev,
                    "no persona is in force (the reason is logged above): presenting the device \
                     as vfio-pci does, nothing pinned\n"
                );
            }
        }
        Ok(state)
    }

    /// Makes `sel` the persona in force; on failure the previous one stays.
    fn select(&mut self, core: &CoreDevice, sel: &Selector<'_>) -> Result {
        let dev = core.as_dev();
        // The device as it is now: firmware may have changed it since bind.
        let _ = self.refresh(core);
        let view = DeviceView {
            config: &self.dump,
            bars: Some(self.bars),
        };
        let blob = match sel {
            Selector::Auto => persona::auto_blob(dev, &view, core.pasid_status())?,
            Selector::Named { .. } => persona::load_firmware(core, sel)?,
        };
        let active = Active::new(dev, blob, &view, core.pasid_status())?;
        self.persona = Some(active);
        self.reset();
        Ok(())
    }
}

/// Per-device data of persona-vfio-pci, behind the vfio-pci-core device.
#[pin_data]
pub(crate) struct PersonaDevice {
    /// Emulated state; see the module's locking notes.
    #[pin]
    state: Mutex<State>,
    /// A reset finished while `state` was held; the holder resets before unlocking.
    #[pin]
    reset_pending: SpinLock<bool>,
    /// The device has a migration backend (`state.mig` is `Some`); fixed at bind, so that
    /// `mmap` (under `mmap_lock`) never takes `state`, which is held across user copies.
    migratable: bool,
    /// The BAR the backend traps, fixed at bind for the same reason.
    trapped_bar: Option<u32>,
    /// Size BAR 0..5 and the ROM are presented at (`u64::MAX`: the device's); written with
    /// `state` held when the persona changes, read without it (mmap).
    bar_size: [Atomic<u64>; NBARS],
    /// Mirror of `State::stale`, for paths that do not take `state` (mmap).
    stale: Atomic<bool>,
}

/// `state` locked; on drop, runs any deferred reset before unlocking.
pub(crate) struct StateGuard<'a> {
    dev: &'a PersonaDevice,
    core: &'a CoreDevice,
    guard: Option<MutexGuard<'a, State>>,
}

impl core::ops::Deref for StateGuard<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        // INVARIANT: `guard` is `Some` until `drop`.
        self.guard.as_deref().unwrap_or_else(|| unreachable!())
    }
}

impl core::ops::DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        // INVARIANT: `guard` is `Some` until `drop`.
        self.guard.as_deref_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        loop {
            let mut pending = self.dev.reset_pending.lock();
            if *pending {
                *pending = false;
                drop(pending);
                if let Some(state) = self.guard.as_deref_mut() {
                    state.reset();
                    state.after_reset(self.core, &self.dev.stale);
                }
                continue;
            }
            // Unlock `state` while `reset_pending` is still held: a `reset_done` that failed its
            // `try_lock` before this point has set the flag and we saw it; one that comes after
            // finds `state` free and resets by itself.
            drop(self.guard.take());
            drop(pending);
            return;
        }
    }
}

impl PersonaDevice {
    /// Locks the per-device state of the device whose core half is `core`.
    pub(crate) fn lock_state<'a>(&'a self, core: &'a CoreDevice) -> StateGuard<'a> {
        StateGuard {
            dev: self,
            core,
            guard: Some(self.state.lock()),
        }
    }

    /// Publishes the presented BAR sizes of the persona in force (with `state` held).
    fn publish(&self, state: &State) {
        for (a, v) in self.bar_size.iter().zip(state.presented_sizes()) {
            a.store(v, Release);
        }
    }

    /// The size region `index` is presented at, if it is a BAR or the ROM.
    fn clamp(&self, index: u64) -> Option<u64> {
        let i = usize::try_from(index).ok()?;
        self.bar_size.get(i).map(|a| a.load(Acquire))
    }

    /// Bounds a BAR/ROM access: `EIO` when stale, `EINVAL` past the presented size, else the
    /// access truncated to it.
    fn bound_bar_io(&self, io: &mut RegionIo) -> Result {
        let index = io.region_index();
        let Some(limit) = self.clamp(index) else {
            return Ok(());
        };
        if self.stale.load(Relaxed) {
            return Err(EIO);
        }
        let off = io.offset();
        if off >= limit {
            return Err(EINVAL);
        }
        io.limit(usize::try_from(limit - off).unwrap_or(usize::MAX));
        Ok(())
    }
}

impl vfio::Driver for PersonaDevice {
    type DataFile = Session;

    fn new(core: &CoreDevice) -> impl PinInit<Self, Error> {
        let state = State::new(core);
        let migratable = state.as_ref().is_ok_and(|s| s.mig.is_some());
        let trapped_bar = state
            .as_ref()
            .ok()
            .and_then(|s| s.mig.as_ref())
            .and_then(|m| m.backend.trapped_bar());
        let sizes = state
            .as_ref()
            .map_or([u64::MAX; NBARS], |s| s.presented_sizes());
        try_pin_init!(PersonaDevice {
            state <- new_mutex!(state?),
            reset_pending <- new_spinlock!(false),
            migratable,
            trapped_bar,
            bar_size: sizes.map(Atomic::new),
            stale: Atomic::new(false),
        })
    }

    fn open_device(dev: &Device<Self>) -> Result {
        let mut state = dev.data().lock_state(dev.core());
        // vfio_pci_core_enable() resets the function when it can; its reset_done finds `state`
        // held by us and defers to the guard's drop.
        dev.core().enable()?;
        // Firmware can change under a bound device: the persona must still fit it.
        if let Err(e) = state.recheck(dev.core(), "refused at open") {
            dev.core().disable();
            return Err(e);
        }
        state.stale = false;
        dev.data().stale.store(false, Release);
        if let Some(active) = &state.persona {
            let vendor = u32::from(u16::from_le_bytes([
                state.dump.first().copied().unwrap_or(0),
                state.dump.get(1).copied().unwrap_or(0),
            ]));
            let ty = vfio::VENDOR_REGION_TYPE | vendor;
            if let Err(e) =
                dev.core()
                    .register_desc_region(ty, persona::DESC_SUBTYPE, active.desc_len())
            {
                dev.core().disable();
                return Err(e);
            }
        }
        if let Some(mig) = &mut state.mig {
            // The backend's device as every new user finds it (edu keeps its registers and its
            // running work across resets and users).
            if let Err(e) = mig.backend.open(dev.core()) {
                dev_err!(
                    dev.core().as_dev(),
                    "open refused: the device cannot be put in its initial state ({:?})\n",
                    e
                );
                dev.core().disable();
                return Err(e);
            }
        }
        dev.core().finish_enable();
        state.open = true;
        state.reset();
        Ok(())
    }

    fn close_device(dev: &Device<Self>) {
        let mut state = dev.data().lock_state(dev.core());
        state.open = false;
        if let Some(mig) = &mut state.mig {
            mig.reset();
        }
        dev.core().close_device();
    }

    fn pasid_attach_ioas(dev: &Device<Self>, pasid: u32, pt_id: &mut u32) -> Result {
        let width = {
            let state = dev.data().lock_state(dev.core());
            let info = state
                .persona
                .as_ref()
                .and_then(|a| a.persona().ok())
                .and_then(|p| p.pasid());
            // A persona without PASID presents no PASID capability: the device has none.
            info.ok_or(EOPNOTSUPP)?.width
        };
        // PASID 0 is the RID's (vfio would otherwise attach the RID through the PASID path), and
        // a PASID must fit the width the persona advertises.
        if pasid == 0 || u64::from(pasid) >= 1u64 << width {
            return Err(EINVAL);
        }
        dev.core().pasid_attach_ioas(pasid, pt_id)
    }

    fn persona_show(dev: &Device<Self>, out: &mut [u8]) -> Result<usize> {
        let state = dev.data().lock_state(dev.core());
        let mut w = PageWriter { buf: out, len: 0 };
        match &state.persona {
            Some(active) => {
                let p = active.persona()?;
                let v = p.version();
                write!(w, "{}@{}.{} ", p.name(), v.major, v.minor).map_err(|_| EINVAL)?;
                for b in p.digest() {
                    write!(w, "{:02x}", b).map_err(|_| EINVAL)?;
                }
                writeln!(w).map_err(|_| EINVAL)?;
            }
            None => writeln!(
                w,
                "none: no persona is in force; the device is presented as vfio-pci presents it, \
                 nothing pinned (the kernel log says why)"
            )
            .map_err(|_| EINVAL)?,
        }
        Ok(w.len)
    }

    fn persona_store(dev: &Device<Self>, input: &[u8]) -> Result {
        let sel = persona::parse_selector(input)?;
        let mut state = dev.data().lock_state(dev.core());
        if state.open {
            return Err(EBUSY);
        }
        let r = state.select(dev.core(), &sel);
        dev.data().publish(&state);
        r
    }

    fn desc_rw(dev: &Device<Self>, io: &mut RegionIo, write: bool) -> Result<usize> {
        if write {
            return Err(EINVAL);
        }
        let state = dev.data().lock_state(dev.core());
        let Some(active) = &state.persona else {
            return Err(EINVAL);
        };
        let off = usize::try_from(io.offset()).map_err(|_| EINVAL)?;
        let mut total = 0usize;
        let mut chunk = [0u8; 64];
        while total < io.len() {
            let want = (io.len() - total).min(chunk.len());
            let n = active.desc_read(off.saturating_add(total), &mut chunk[..want])?;
            if n == 0 {
                break;
            }
            vfio::copy_to_user_at(io, total, &chunk[..n])?;
            total += n;
        }
        io.advance(total);
        Ok(total)
    }

    fn read(dev: &Device<Self>, io: &mut RegionIo) -> Result<usize> {
        if io.region_index() == vfio::CONFIG_REGION_INDEX {
            return crate::config::read(dev, io);
        }
        dev.data().bound_bar_io(io)?;
        dev.core().read(io)
    }

    fn write(dev: &Device<Self>, io: &mut RegionIo) -> Result<usize> {
        if io.region_index() == vfio::CONFIG_REGION_INDEX {
            return crate::config::write(dev, io);
        }
        dev.data().bound_bar_io(io)?;
        if dev.data().trapped_bar.map(u64::from) == Some(io.region_index()) {
            // The trap bypasses vfio_pci_rw(): resume from runtime suspend as it does, before
            // `state` (the resume takes the core's memory_lock and may signal the user).
            let _pm = dev.core().pm_active()?;
            let mut state = dev.data().lock_state(dev.core());
            if let Some(mig) = &mut state.mig {
                return mig.bar_write(dev.core(), io);
            }
        }
        dev.core().write(io)
    }

    fn migration_flags(dev: &Device<Self>) -> Caps {
        if dev.data().migratable {
            migration::CAPS
        } else {
            Caps(0)
        }
    }

    fn migration_set_state(dev: &Device<Self>, new: MigState) -> Result<Option<vfio::NewFile>> {
        let mut guard = dev.data().lock_state(dev.core());
        let state = &mut *guard;
        let mig = state.mig.as_mut().ok_or(EOPNOTSUPP)?;
        let mut ctx = migration::Ctx {
            core: dev.core(),
            persona: state.persona.as_ref(),
            regs: &mut state.regs,
        };
        mig.set_state(&mut ctx, new)
    }

    fn migration_get_state(dev: &Device<Self>) -> Result<MigState> {
        let state = dev.data().lock_state(dev.core());
        Ok(state.mig.as_ref().ok_or(EOPNOTSUPP)?.cur)
    }

    fn migration_data_size(dev: &Device<Self>) -> Result<usize> {
        let state = dev.data().lock_state(dev.core());
        state.mig.as_ref().ok_or(EOPNOTSUPP)?.data_size()
    }

    fn dirty_logging(dev: &Device<Self>) -> bool {
        dev.data().migratable
    }

    fn log_start(dev: &Device<Self>, ranges: &mut LogRanges<'_>, page_size: &mut u64) -> Result {
        let mut state = dev.data().lock_state(dev.core());
        let mig = state.mig.as_mut().ok_or(EOPNOTSUPP)?;
        mig.log_start(dev.core(), ranges, *page_size)
    }

    fn log_stop(dev: &Device<Self>) -> Result {
        let mut state = dev.data().lock_state(dev.core());
        if let Some(mig) = &mut state.mig {
            mig.log.stop();
        }
        Ok(())
    }

    fn log_read_and_clear(
        dev: &Device<Self>,
        iova: u64,
        len: u64,
        dirty: &mut DirtyBitmap<'_>,
    ) -> Result {
        let mut state = dev.data().lock_state(dev.core());
        let mig = state.mig.as_mut().ok_or(EINVAL)?;
        mig.log_read_and_clear(dev.core(), iova, len, |at, n| dirty.set(at, n))
    }

    fn ioctl(dev: &Device<Self>, cmd: u32, arg: usize) -> Result<isize> {
        if cmd == vfio::DEVICE_IOEVENTFD {
            if dev.data().migratable {
                // An ioeventfd writes BAR registers from the kernel, past the trap: DMA starts
                // would escape the P2P hold and the dirty log of the trapped BAR.
                return Err(EOPNOTSUPP);
            }
            ioeventfd_bounds(dev.data(), arg)?;
        }
        dev.core().ioctl(cmd, arg)
    }

    fn mmap_allowed(dev: &Device<Self>, index: u64, offset: u64, len: u64) -> Result {
        let this = dev.data();
        if this.trapped_bar.map(u64::from) == Some(index) {
            return Err(EINVAL);
        }
        let Some(limit) = this.clamp(index) else {
            return Ok(());
        };
        if this.stale.load(Relaxed) {
            return Err(EIO);
        }
        match offset.checked_add(len) {
            Some(end) if end <= limit => Ok(()),
            _ => Err(EINVAL),
        }
    }

    fn region_info(dev: &Device<Self>, index: u32, flags: &mut u32, size: &mut u64) {
        let this = dev.data();
        if this.trapped_bar == Some(index) {
            // The BAR is trapped: QEMU falls back to read/write.
            *flags &= !vfio::REGION_INFO_FLAG_MMAP;
        }
        if let Some(limit) = this.clamp(u64::from(index)) {
            if limit < *size {
                *size = limit;
                if limit < kernel::page::PAGE_SIZE as u64 {
                    // Not even a page is presented: nothing to map.
                    *flags &= !vfio::REGION_INFO_FLAG_MMAP;
                }
            }
        }
    }

    fn device_feature(dev: &Device<Self>, flags: u32, arg: UserPtr, argsz: usize) -> Result {
        dev.core().device_feature(flags, arg, argsz)
    }

    /// A fatal error freezes the channel, and the PCI core then resets the link below the port
    /// without calling `reset_done`: the function's state is gone as after any reset, so the
    /// driver ends what it had the same way (sessions closed, their fds `ENODEV`, migration back
    /// to RUNNING, the persona checked again). A non-fatal error changes nothing.
    fn error_detected(dev: &Device<Self>, frozen: bool) {
        if frozen {
            Self::reset_done(dev);
        }
    }

    fn reset_done(dev: &Device<Self>) {
        let this = dev.data();
        let mut pending = this.reset_pending.lock();
        *pending = true;
        let Some(state) = this.state.try_lock() else {
            // The holder of `state` sees the flag before it unlocks.
            return;
        };
        drop(pending);
        // Runs the deferred reset (the flag we just set) and unlocks.
        drop(StateGuard {
            dev: this,
            core: dev.core(),
            guard: Some(state),
        });
    }
}

/// Refuses a `VFIO_DEVICE_IOEVENTFD` whose access ends past a BAR's presented size.
///
/// vfio-pci-core reads the argument again; a user racing to change it between the two reads can
/// only reach what vfio-pci-core bounds by the device's own BAR.
fn ioeventfd_bounds(this: &PersonaDevice, arg: usize) -> Result {
    let mut head = [0u8; IOEVENTFD_HEAD];
    UserSlice::new(UserPtr::from_addr(arg), IOEVENTFD_HEAD)
        .reader()
        .read_slice(&mut head)?;
    let flags = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let mut o = [0u8; 8];
    o.copy_from_slice(&head[8..16]);
    let offset = u64::from_le_bytes(o);
    let size: u64 = match flags & 0xf {
        1 => 1,
        2 => 2,
        4 => 4,
        8 => 8,
        // vfio-pci-core refuses the rest itself.
        _ => return Ok(()),
    };
    let index = offset >> OFFSET_SHIFT;
    if index >= BAR_REGIONS {
        return Ok(());
    }
    let Some(limit) = this.clamp(index) else {
        return Ok(());
    };
    let off = offset & ((1u64 << OFFSET_SHIFT) - 1);
    match off.checked_add(size) {
        Some(end) if end <= limit => Ok(()),
        _ => Err(EINVAL),
    }
}

/// `core::fmt::Write` into a sysfs page.
struct PageWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl core::fmt::Write for PageWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(core::fmt::Error)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(core::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
