// SPDX-License-Identifier: GPL-2.0

//! The variant-driver trait ([`Operations`]) and the PCI driver registration.
//!
//! C header: [`include/linux/vfio_pci_core.h`](srctree/include/linux/vfio_pci_core.h)

use super::{
    bindings,
    context::{Io, Open},
    device::{Device, RegionIo},
    dirty::{DirtyBitmap, LogRanges},
    migration::{DataFileOps, NewFile},
};
use crate::persona_core::mig::fsm::{Caps as MigrationCaps, State as MigrationState};
use kernel::{
    error::{to_result, VTABLE_DEFAULT_ERROR},
    prelude::*,
};

/// The operations of a vfio-pci-core variant driver (NVIDIA's `kernel::vfio::pci::Operations`,
/// plus what this abstraction adds: migration, dirty-page logging, PASID, device regions and the
/// PCI error callbacks).
///
/// `Self` is the per-device data that lives behind the core device in the container VFIO
/// allocates. Every operation is optional (`#[vtable]`): one the driver does not implement is
/// vfio-pci-core's own function, put straight into the `vfio_device_ops` table (see
/// `ops::Vtable`), or nothing at all for the hooks and the callbacks vfio-pci has not; an
/// implementation overrides only what it changes and usually delegates the rest to the
/// [`CoreDevice`](super::CoreDevice) method of the same name.
#[vtable]
pub(crate) trait Operations: Sized + Send + Sync + 'static {
    /// The name of the VFIO driver (`vfio_device_ops.name`).
    const NAME: &'static CStr;

    /// The session behind a migration data fd (any [`DataFileOps`] type when the driver offers
    /// no migration).
    type DataFile: DataFileOps;

    /// Initialises the per-device data in place, inside VFIO's allocation (its `init` callback,
    /// after vfio-pci-core's own initialisation).
    fn new(core: &super::CoreDevice) -> impl PinInit<Self, Error>;

    /// First open of the device file (`open_device`); without it,
    /// `vfio_pci_core_enable()` then `vfio_pci_core_finish_enable()`.
    fn open_device(_dev: &Device<Self, Open>) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Last close of the device file (`close_device`); without it,
    /// `vfio_pci_core_close_device()`.
    fn close_device(_dev: &Device<Self, Open>) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `read()` on the device file; `io` says which region and where.
    fn read(_dev: &Device<Self, Io>, _io: &mut RegionIo) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `write()` on the device file; `io` says which region and where.
    fn write(_dev: &Device<Self, Io>, _io: &mut RegionIo) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `ioctl()` on the device file, for the commands VFIO's own core does not handle.
    fn ioctl(_dev: &Device<Self, Io>, _cmd: u32, _arg: usize) -> Result<isize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Attaches `pasid` of the device to the IOAS or HWPT `pt_id` (a second attach replaces);
    /// `pt_id` is updated to the HWPT used.
    fn pasid_attach_ioas(_dev: &Device<Self, Io>, _pasid: u32, _pt_id: &mut u32) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The `VFIO_MIGRATION_*` flags of the device, asked once before it is registered; none (the
    /// default) offers no migration: VFIO then reports the feature as unsupported. Asked only
    /// when the driver implements [`Operations::migration_set_state`].
    fn migration_flags(_dev: &Device<Self>) -> MigrationCaps {
        MigrationCaps(0)
    }

    /// Moves the device to the migration state `new`; returns the data fd the last arc opened,
    /// if any. Called only when [`Operations::migration_flags`] offered migration, and only with
    /// a state the uAPI defines (the entry point refuses other values with `EINVAL`).
    fn migration_set_state(
        _dev: &Device<Self, Io>,
        _new: MigrationState,
    ) -> Result<Option<NewFile>> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The current migration state.
    fn migration_get_state(_dev: &Device<Self, Io>) -> Result<MigrationState> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The number of bytes STOP_COPY would produce now (`VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`).
    fn migration_data_size(_dev: &Device<Self, Io>) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Whether the device offers dirty page logging (`vfio_log_ops`), asked once before it is
    /// registered and only when [`Operations::migration_flags`] offered migration and the
    /// driver implements [`Operations::log_start`]; `false` (the default): VFIO reports the
    /// `DMA_LOGGING_*` features as unsupported.
    fn dirty_logging(_dev: &Device<Self>) -> bool {
        false
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_START`: log the device's DMA writes into `ranges` at
    /// `*page_size` granularity; `*page_size` may be changed to the one used. Must refuse a
    /// second start without a stop in between (VFIO does not track it).
    fn log_start(
        _dev: &Device<Self, Io>,
        _ranges: &mut LogRanges<'_>,
        _page_size: &mut u64,
    ) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP` (also called when a start could not be reported
    /// to the user); stopping a log that is off is not an error.
    fn log_stop(_dev: &Device<Self, Io>) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT`: sets in `dirty` the pages of `[iova, iova +
    /// len)` written since the last report of them, and forgets them.
    fn log_read_and_clear(
        _dev: &Device<Self, Io>,
        _iova: u64,
        _len: u64,
        _dirty: &mut DirtyBitmap<'_>,
    ) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Whether `len` bytes at `offset` of region `index` may be mapped with `mmap()` (trapped
    /// regions may not, nor bytes past a BAR presented smaller); the error is returned to the
    /// user, and `vfio_pci_core_mmap()` maps what is allowed. Called under `mmap_lock`.
    fn mmap_allowed(_dev: &Device<Self, Io>, _index: u64, _offset: u64, _len: u64) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Adjusts the flags and size `VFIO_DEVICE_GET_REGION_INFO` reports for region `index`,
    /// after the core filled them in.
    fn region_info(_dev: &Device<Self, Io>, _index: u32, _flags: &mut u32, _size: &mut u64) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The PCI core is about to reset the function (`pci_error_handlers.reset_prepare`). The
    /// driver's work is usually in [`Operations::reset_done`]: the callback is installed either
    /// way, which tells the PCI core the driver knows (without it every reset, one per open
    /// among them, logs a "resetting" warning). Called with the device lock held, and by VFIO
    /// with its locks held: the same rules as `reset_done`.
    fn reset_prepare(_dev: &Device<Self>) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The PCI core finished resetting the function (FLR, `VFIO_DEVICE_RESET`, bus reset).
    ///
    /// Called with VFIO's locks held: an implementation must not wait for a lock that is held
    /// across calls into VFIO (use the deferred-reset pattern).
    fn reset_done(_dev: &Device<Self>) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// AER reported an error on the function (`pci_error_handlers.error_detected`); `frozen`
    /// when its channel is frozen or dead (a fatal error), after which the PCI core resets the
    /// link without calling [`Operations::reset_done`]. The same rules as `reset_done`.
    /// vfio-pci-core's own handler runs after it either way.
    fn error_detected(_dev: &Device<Self>, _frozen: bool) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
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
