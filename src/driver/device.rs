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

use crate::{
    backend::AnyBackend,
    migration::{self, Migration, Session},
    persona::{self, Active, Selector},
    persona_core::{
        mig::fsm::{Caps, State as MigState},
        overlay::OverlayState,
        persona::SPACE,
    },
    vfio::{self, CoreDevice, Device, DirtyBitmap, LogRanges, RegionIo},
};
use core::fmt::Write;
use kernel::{
    new_mutex,
    new_spinlock,
    prelude::*,
    sync::{lock::mutex::MutexGuard, Mutex, SpinLock},
    uaccess::UserPtr, //
};

/// Per-device state behind `PersonaDevice::state`.
pub(crate) struct State {
    /// How many resets this device has seen since bind (for the kernel log and tests).
    pub(crate) resets: u64,
    /// The function's physical config space, read at bind.
    pub(crate) dump: KVVec<u8>,
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

    fn new(core: &CoreDevice) -> Result<Self> {
        let mut dump = KVVec::from_elem(0u8, SPACE, GFP_KERNEL)?;
        let n = core.read_physical_config(&mut dump)?;
        dump.truncate(n);
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
            if let Err(e) = state.select(core, &Selector::Auto) {
                dev_warn!(
                    dev,
                    "no persona ({:?}): presenting the device as vfio-pci does\n",
                    e
                );
            }
        }
        Ok(state)
    }

    /// Makes `sel` the persona in force; on failure the previous one stays.
    fn select(&mut self, core: &CoreDevice, sel: &Selector<'_>) -> Result {
        let dev = core.as_dev();
        let blob = match sel {
            Selector::Auto => persona::auto_blob(&self.dump, core.pasid_status())?,
            Selector::Named { .. } => persona::load_firmware(core, sel)?,
        };
        let active = Active::new(dev, blob, &self.dump, core.pasid_status())?;
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
}

/// `state` locked; on drop, runs any deferred reset before unlocking.
pub(crate) struct StateGuard<'a> {
    dev: &'a PersonaDevice,
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
    /// Locks the per-device state.
    pub(crate) fn lock_state(&self) -> StateGuard<'_> {
        StateGuard {
            dev: self,
            guard: Some(self.state.lock()),
        }
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
        try_pin_init!(PersonaDevice {
            state <- new_mutex!(state?),
            reset_pending <- new_spinlock!(false),
            migratable,
            trapped_bar,
        })
    }

    fn open_device(dev: &Device<Self>) -> Result {
        let mut state = dev.data().lock_state();
        // vfio_pci_core_enable() resets the function when it can; its reset_done finds `state`
        // held by us and defers to the guard's drop.
        dev.core().enable()?;
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
        dev.core().finish_enable();
        state.open = true;
        state.reset();
        Ok(())
    }

    fn close_device(dev: &Device<Self>) {
        let mut state = dev.data().lock_state();
        state.open = false;
        if let Some(mig) = &mut state.mig {
            mig.reset();
        }
        dev.core().close_device();
    }

    fn pasid_attach_ioas(dev: &Device<Self>, pasid: u32, pt_id: &mut u32) -> Result {
        let width = {
            let state = dev.data().lock_state();
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
        let state = dev.data().lock_state();
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
            None => writeln!(w, "none").map_err(|_| EINVAL)?,
        }
        Ok(w.len)
    }

    fn persona_store(dev: &Device<Self>, input: &[u8]) -> Result {
        let sel = persona::parse_selector(input)?;
        let mut state = dev.data().lock_state();
        if state.open {
            return Err(EBUSY);
        }
        state.select(dev.core(), &sel)
    }

    fn desc_rw(dev: &Device<Self>, io: &mut RegionIo, write: bool) -> Result<usize> {
        if write {
            return Err(EINVAL);
        }
        let state = dev.data().lock_state();
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
        dev.core().read(io)
    }

    fn write(dev: &Device<Self>, io: &mut RegionIo) -> Result<usize> {
        if io.region_index() == vfio::CONFIG_REGION_INDEX {
            return crate::config::write(dev, io);
        }
        if dev.data().trapped_bar.map(u64::from) == Some(io.region_index()) {
            // The trap bypasses vfio_pci_rw(): resume from runtime suspend as it does, before
            // `state` (the resume takes the core's memory_lock and may signal the user).
            let _pm = dev.core().pm_active()?;
            let mut state = dev.data().lock_state();
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
        let mut guard = dev.data().lock_state();
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
        let state = dev.data().lock_state();
        Ok(state.mig.as_ref().ok_or(EOPNOTSUPP)?.cur)
    }

    fn migration_data_size(dev: &Device<Self>) -> Result<usize> {
        let state = dev.data().lock_state();
        state.mig.as_ref().ok_or(EOPNOTSUPP)?.data_size()
    }

    fn dirty_logging(dev: &Device<Self>) -> bool {
        dev.data().migratable
    }

    fn log_start(dev: &Device<Self>, ranges: &mut LogRanges<'_>, page_size: &mut u64) -> Result {
        let mut state = dev.data().lock_state();
        let mig = state.mig.as_mut().ok_or(EOPNOTSUPP)?;
        mig.log_start(dev.core(), ranges, *page_size)
    }

    fn log_stop(dev: &Device<Self>) -> Result {
        let mut state = dev.data().lock_state();
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
        let mut state = dev.data().lock_state();
        let mig = state.mig.as_mut().ok_or(EINVAL)?;
        mig.log_read_and_clear(dev.core(), iova, len, |at, n| dirty.set(at, n))
    }

    fn ioctl(dev: &Device<Self>, cmd: u32, arg: usize) -> Result<isize> {
        if cmd == vfio::DEVICE_IOEVENTFD && dev.data().migratable {
            // An ioeventfd writes BAR registers from the kernel, past the trap: DMA starts would
            // escape the P2P hold and the dirty log of the trapped BAR.
            return Err(EOPNOTSUPP);
        }
        dev.core().ioctl(cmd, arg)
    }

    fn mmap_allowed(dev: &Device<Self>, index: u64) -> bool {
        dev.data().trapped_bar.map(u64::from) != Some(index)
    }

    fn region_info_flags(dev: &Device<Self>, index: u32, flags: &mut u32) {
        if dev.data().trapped_bar == Some(index) {
            // The BAR is trapped: QEMU falls back to read/write.
            *flags &= !vfio::REGION_INFO_FLAG_MMAP;
        }
    }

    fn device_feature(dev: &Device<Self>, flags: u32, arg: UserPtr, argsz: usize) -> Result {
        dev.core().device_feature(flags, arg, argsz)
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
            guard: Some(state),
        });
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
