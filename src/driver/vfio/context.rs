// SPDX-License-Identifier: GPL-2.0

//! Device contexts (type-state): what a device reference may be used for, by where it was
//! borrowed. A callback receives its device in the context VFIO guarantees for that callback,
//! and the methods that need more than the device being bound exist only in that context.
//! `Open` and `Io` dereference to [`Normal`], so everything a bound device offers stays
//! available in them.
//!
//! The names follow NVIDIA's `kernel::vfio::pci` (`Normal`, `Open`); its per-callback I/O
//! contexts (`Read`, `Write`, `Ioctl`, `Mmap`, `GetRegionInfo`) are one context here, [`Io`],
//! because what they allow is the same: the device is open.

/// A device context. Sealed: only this module defines contexts.
pub(crate) trait DeviceContext: private::Sealed + Send + Sync + 'static {}

/// A bound, registered device, in any callback: its config space and resources may be read,
/// but it may not be open (`reset_done`, sysfs, probe).
pub(crate) struct Normal;

/// The device inside `open_device` or `close_device`: VFIO holds the device set lock and runs
/// no other callback of the device, so it may be enabled, set up and disabled
/// (`vfio_pci_core_enable()` and its pairs) and given device-specific regions.
pub(crate) struct Open;

/// The device inside a callback VFIO makes only while it is open (read, write, ioctl, mmap,
/// region info, PASID attach, migration and dirty-log operations): its BARs are mapped and may
/// be accessed, and the core's own region and ioctl paths may be delegated to.
pub(crate) struct Io;

mod private {
    pub(crate) trait Sealed {}

    impl Sealed for super::Normal {}
    impl Sealed for super::Open {}
    impl Sealed for super::Io {}
}

impl DeviceContext for Normal {}
impl DeviceContext for Open {}
impl DeviceContext for Io {}
