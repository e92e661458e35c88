// SPDX-License-Identifier: GPL-2.0

//! The VFIO operations of persona-vfio-pci (the pds `vfio_dev.c`): each one takes the device's
//! state (`crate::device`) and dispatches to the concern it belongs to: the config path
//! (`crate::config`), the descriptor region (`crate::desc`), PASID (`crate::pasid`), migration
//! and dirty logging (`crate::migration`), the presented BAR sizes and resets (`crate::device`).
//! This is the only module that names them all, so none of them names another (no import
//! cycles: `scripts/import-cycles`).

use crate::{
    desc::DescRegion,
    device::{ioeventfd_bounds, PersonaDevice},
    migration::{self, Session},
    persona,
    persona_core::mig::fsm::{Caps, State as MigState},
    vfio::{self, CoreDevice, Device, DirtyBitmap, Io, LogRanges, Open, RegionIo},
};
use kernel::{
    prelude::*,
    sync::atomic::{Relaxed, Release}, //
};

#[vtable]
impl vfio::Operations for PersonaDevice {
    const NAME: &'static CStr = c"persona-vfio-pci";

    type DataFile = Session;

    fn new(core: &CoreDevice) -> impl PinInit<Self, Error> {
        PersonaDevice::init(core)
    }

    fn open_device(dev: &Device<Self, Open>) -> Result {
        let mut state = dev.data().lock_state(dev.core());
        // vfio_pci_core_enable() resets the function when it can; its reset_done finds `state`
        // held by us and defers to the guard's drop.
        let io = dev.core().enable()?;
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
            if let Err(e) = dev.register_region::<DescRegion>(
                ty,
                persona::DESC_SUBTYPE,
                active.desc_len(),
                vfio::REGION_INFO_FLAG_READ,
            ) {
                dev.core().disable();
                return Err(e);
            }
        }
        if let Some(mig) = &mut state.mig {
            // The backend's device as every new user finds it (edu keeps its registers and its
            // running work across resets and users).
            if let Err(e) = mig.backend.open(io) {
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

    fn close_device(dev: &Device<Self, Open>) {
        let mut state = dev.data().lock_state(dev.core());
        state.open = false;
        if let Some(mig) = &mut state.mig {
            mig.reset();
        }
        dev.core().close_device();
    }

    fn pasid_attach_ioas(dev: &Device<Self, Io>, pasid: u32, pt_id: &mut u32) -> Result {
        crate::pasid::attach_ioas(dev, pasid, pt_id)
    }

    fn read(dev: &Device<Self, Io>, io: &mut RegionIo) -> Result<usize> {
        if io.region_index() == vfio::CONFIG_REGION_INDEX {
            return crate::config::read(dev, io);
        }
        dev.data().bound_bar_io(io)?;
        dev.core().read(io)
    }

    fn write(dev: &Device<Self, Io>, io: &mut RegionIo) -> Result<usize> {
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

    fn migration_set_state(dev: &Device<Self, Io>, new: MigState) -> Result<Option<vfio::NewFile>> {
        let mut guard = dev.data().lock_state(dev.core());
        let state = &mut *guard;
        let mig = state.mig.as_mut().ok_or(EOPNOTSUPP)?;
        // A resume loads the emulated registers.
        state.pass_dirty = true;
        let mut ctx = migration::Ctx {
            core: dev.core(),
            persona: state.persona.as_ref(),
            regs: &mut state.regs,
        };
        mig.set_state(&mut ctx, new)
    }

    fn migration_get_state(dev: &Device<Self, Io>) -> Result<MigState> {
        let state = dev.data().lock_state(dev.core());
        Ok(state.mig.as_ref().ok_or(EOPNOTSUPP)?.cur)
    }

    fn migration_data_size(dev: &Device<Self, Io>) -> Result<usize> {
        let mut guard = dev.data().lock_state(dev.core());
        let state = &mut *guard;
        let mig = state.mig.as_mut().ok_or(EOPNOTSUPP)?;
        let ctx = migration::Ctx {
            core: dev.core(),
            persona: state.persona.as_ref(),
            regs: &mut state.regs,
        };
        mig.data_size(&ctx)
    }

    fn dirty_logging(dev: &Device<Self>) -> bool {
        dev.data().migratable
    }

    fn log_start(
        dev: &Device<Self, Io>,
        ranges: &mut LogRanges<'_>,
        page_size: &mut u64,
    ) -> Result {
        let mut state = dev.data().lock_state(dev.core());
        let mig = state.mig.as_mut().ok_or(EOPNOTSUPP)?;
        mig.log_start(dev.core(), ranges, *page_size)
    }

    fn log_stop(dev: &Device<Self, Io>) -> Result {
        let mut state = dev.data().lock_state(dev.core());
        if let Some(mig) = &mut state.mig {
            mig.log.stop();
        }
        Ok(())
    }

    fn log_read_and_clear(
        dev: &Device<Self, Io>,
        iova: u64,
        len: u64,
        dirty: &mut DirtyBitmap<'_>,
    ) -> Result {
        let mut state = dev.data().lock_state(dev.core());
        let mig = state.mig.as_mut().ok_or(EINVAL)?;
        mig.log_read_and_clear(dev.core(), iova, len, |at, n| dirty.set(at, n))
    }

    fn ioctl(dev: &Device<Self, Io>, cmd: u32, arg: usize) -> Result<isize> {
        if cmd == vfio::DEVICE_IOEVENTFD {
            ioeventfd_bounds(dev.data(), arg)?;
        }
        dev.core().ioctl(cmd, arg)
    }

    fn mmap_allowed(dev: &Device<Self, Io>, index: u64, offset: u64, len: u64) -> Result {
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

    fn region_info(dev: &Device<Self, Io>, index: u32, flags: &mut u32, size: &mut u64) {
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
        dev.data().function_reset(dev.core());
    }
}
