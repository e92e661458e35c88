// SPDX-License-Identifier: GPL-2.0

//! The persona-vfio-pci device: per-device state and the VFIO operations it changes.
//!
//! # Locking
//!
//! Locks are taken in this order: 1. `state` (mutex), 2. `reset_pending` (spinlock).
//!
//! `reset_done` runs with VFIO's and the PCI core's locks held, some of which are also taken
//! around `mmap_lock`; waiting there for `state` could deadlock (ABBA). So `reset_done` only sets
//! `reset_pending` and tries `state`: when it cannot take it, whoever holds `state` runs the reset
//! before unlocking (see [`StateGuard`]). This is the deferred-reset pattern of mlx5 and virtio.

use crate::vfio::{self, CoreDevice, Device, RegionIo};
use kernel::{
    new_mutex,
    new_spinlock,
    prelude::*,
    sync::{lock::mutex::MutexGuard, Mutex, SpinLock},
    uaccess::UserPtr, //
};

/// State that must return to its reset values on open, FLR and `VFIO_DEVICE_RESET`.
pub(crate) struct State {
    /// How many resets this device has seen since bind (for the kernel log and tests).
    pub(crate) resets: u64,
}

impl State {
    fn reset(&mut self) {
        self.resets = self.resets.wrapping_add(1);
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
    fn new(_core: &CoreDevice) -> impl PinInit<Self, Error> {
        try_pin_init!(PersonaDevice {
            state <- new_mutex!(State { resets: 0 }),
            reset_pending <- new_spinlock!(false),
        })
    }

    fn open_device(dev: &Device<Self>) -> Result {
        let state = dev.data().lock_state();
        // vfio_pci_core_enable() resets the function when it can; its reset_done finds `state`
        // held by us and defers to the guard's drop.
        dev.core().enable()?;
        dev.core().finish_enable();
        dev_dbg!(
            dev.core().as_dev(),
            "opened ({} resets so far)\n",
            state.resets
        );
        Ok(())
    }

    fn close_device(dev: &Device<Self>) {
        let _state = dev.data().lock_state();
        dev.core().close_device();
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
        dev.core().write(io)
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
