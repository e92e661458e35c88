// SPDX-License-Identifier: GPL-2.0

//! The variant-driver trait and the PCI driver registration.

use super::{
    bindings,
    device::{Device, RegionIo},
    dirty::{DirtyBitmap, LogRanges},
    migration::{DataFileOps, NewFile},
};
use crate::persona_core::mig::fsm::{Caps as MigrationCaps, State as MigrationState};
use kernel::{error::to_result, prelude::*, uaccess::UserPtr};

/// A vfio-pci-core variant driver.
///
/// `Self` is the per-device data that lives behind the core device in the container VFIO
/// allocates. Every operation has a default that behaves exactly like vfio-pci, so an
/// implementation overrides only what it changes. The C shim's tables reach these methods through
/// the entry points [`declare_vfio_pci_driver!`](crate::declare_vfio_pci_driver) generates.
pub(crate) trait Driver: Sized + Send + Sync + 'static {
    /// The session behind a migration data fd (any [`DataFileOps`] type when the driver offers
    /// no migration).
    type DataFile: DataFileOps;

    /// Initialises the per-device data in place, inside VFIO's allocation (its `init` callback,
    /// after vfio-pci-core's own initialisation).
    fn new(core: &super::CoreDevice) -> impl PinInit<Self, Error>;

    /// First open of the device file (`open_device`).
    fn open_device(dev: &Device<Self>) -> Result {
        dev.core().enable()?;
        dev.core().finish_enable();
        Ok(())
    }

    /// Last close of the device file (`close_device`).
    fn close_device(dev: &Device<Self>) {
        dev.core().close_device();
    }

    /// `read()` on the device file; `io` says which region and where.
    fn read(dev: &Device<Self>, io: &mut RegionIo) -> Result<usize> {
        dev.core().read(io)
    }

    /// `write()` on the device file; `io` says which region and where.
    fn write(dev: &Device<Self>, io: &mut RegionIo) -> Result<usize> {
        dev.core().write(io)
    }

    /// `ioctl()` on the device file, for the commands VFIO's own core does not handle.
    fn ioctl(dev: &Device<Self>, cmd: u32, arg: usize) -> Result<isize> {
        dev.core().ioctl(cmd, arg)
    }

    /// `VFIO_DEVICE_FEATURE` for the features VFIO's own core does not handle.
    fn device_feature(dev: &Device<Self>, flags: u32, arg: UserPtr, argsz: usize) -> Result {
        dev.core().device_feature(flags, arg, argsz)
    }

    /// Attaches `pasid` of the device to the IOAS or HWPT `pt_id` (a second attach replaces);
    /// `pt_id` is updated to the HWPT used.
    fn pasid_attach_ioas(dev: &Device<Self>, pasid: u32, pt_id: &mut u32) -> Result {
        dev.core().pasid_attach_ioas(pasid, pt_id)
    }

    /// Detaches `pasid` of the device.
    fn pasid_detach_ioas(dev: &Device<Self>, pasid: u32) {
        dev.core().pasid_detach_ioas(pasid)
    }

    /// A read or write of the persona descriptor region.
    fn desc_rw(_dev: &Device<Self>, _io: &mut RegionIo, _write: bool) -> Result<usize> {
        Err(EINVAL)
    }

    /// The `VFIO_MIGRATION_*` flags of the device, asked once before it is registered; none (the
    /// default) offers no migration: VFIO then reports the feature as unsupported.
    fn migration_flags(_dev: &Device<Self>) -> MigrationCaps {
        MigrationCaps(0)
    }

    /// Moves the device to the migration state `new`; returns the data fd the last arc opened,
    /// if any. Called only when [`Driver::migration_flags`] offered migration, and only with a
    /// state the uAPI defines (the entry point refuses other values with `EINVAL`).
    fn migration_set_state(_dev: &Device<Self>, _new: MigrationState) -> Result<Option<NewFile>> {
        Err(EOPNOTSUPP)
    }

    /// The current migration state.
    fn migration_get_state(_dev: &Device<Self>) -> Result<MigrationState> {
        Err(EOPNOTSUPP)
    }

    /// The number of bytes STOP_COPY would produce now (`VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`).
    fn migration_data_size(_dev: &Device<Self>) -> Result<usize> {
        Err(EOPNOTSUPP)
    }

    /// Whether the device offers dirty page logging (`vfio_log_ops`), asked once before it is
    /// registered and only when [`Driver::migration_flags`] offered migration; `false` (the
    /// default): VFIO reports the `DMA_LOGGING_*` features as unsupported.
    fn dirty_logging(_dev: &Device<Self>) -> bool {
        false
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_START`: log the device's DMA writes into `ranges` at
    /// `*page_size` granularity; `*page_size` may be changed to the one used. Must refuse a
    /// second start without a stop in between (VFIO does not track it).
    fn log_start(_dev: &Device<Self>, _ranges: &mut LogRanges<'_>, _page_size: &mut u64) -> Result {
        Err(EOPNOTSUPP)
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP` (also called when a start could not be reported
    /// to the user); stopping a log that is off is not an error.
    fn log_stop(_dev: &Device<Self>) -> Result {
        Ok(())
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT`: sets in `dirty` the pages of `[iova, iova +
    /// len)` written since the last report of them, and forgets them.
    fn log_read_and_clear(
        _dev: &Device<Self>,
        _iova: u64,
        _len: u64,
        _dirty: &mut DirtyBitmap<'_>,
    ) -> Result {
        Err(EINVAL)
    }

    /// Whether `len` bytes at `offset` of region `index` may be mapped with `mmap()` (trapped
    /// regions may not, nor bytes past a BAR presented smaller); the error is returned to the
    /// user. Called under `mmap_lock`.
    fn mmap_allowed(_dev: &Device<Self>, _index: u64, _offset: u64, _len: u64) -> Result {
        Ok(())
    }

    /// Adjusts the flags and size `VFIO_DEVICE_GET_REGION_INFO` reports for region `index`,
    /// after the core filled them in.
    fn region_info(_dev: &Device<Self>, _index: u32, _flags: &mut u32, _size: &mut u64) {}

    /// The PCI core is about to reset the function (`pci_error_handlers.reset_prepare`). The
    /// default does nothing: the driver's work is in [`Driver::reset_done`]. Having the callback
    /// at all tells the PCI core the driver knows (without it every reset, one per open among
    /// them, logs a "resetting" warning). Called with the device lock held, and by VFIO with
    /// its locks held: the same rules as `reset_done`.
    fn reset_prepare(_dev: &Device<Self>) {}

    /// The PCI core finished resetting the function (FLR, `VFIO_DEVICE_RESET`, bus reset).
    ///
    /// Called with VFIO's locks held: an implementation must not wait for a lock that is held
    /// across calls into VFIO (use the deferred-reset pattern).
    fn reset_done(_dev: &Device<Self>) {}

    /// AER reported an error on the function (`pci_error_handlers.error_detected`); `frozen`
    /// when its channel is frozen or dead (a fatal error), after which the PCI core resets the
    /// link without calling [`Driver::reset_done`]. The same rules as `reset_done`.
    fn error_detected(_dev: &Device<Self>, _frozen: bool) {}
}

/// The registration of the shim's `pci_driver`; unregisters (unbinding every device) on drop.
pub(crate) struct Registration(());

impl Registration {
    /// Registers the driver; devices bind to it through `driver_override`.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: The shim registers its own static `pci_driver`; `Drop` unregisters it, and at
        // most one `Registration` exists because only module init creates one.
        to_result(unsafe { bindings::pvp_shim_register_driver() })?;
        Ok(Registration(()))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: `self` exists only after a successful registration.
        unsafe { bindings::pvp_shim_unregister_driver() }
    }
}
