// SPDX-License-Identifier: GPL-2.0

//! The driver's own FFI: what persona-vfio-pci needs of the kernel that is not VFIO, kept out of
//! the generic [`crate::vfio`] abstraction.
//!
//! Like `crate::vfio`, this folder may hold `unsafe` (every block with `// SAFETY:`); the rest of
//! the driver is safe Rust. Each piece would go away with a kernel-crate abstraction:
//! [`Firmware`] with `kernel::firmware` (needs `CONFIG_RUST_FW_LOADER_ABSTRACTIONS`), the
//! `default_persona` parameter with string parameters in `module!`, the `persona` attribute's
//! entry points with a Rust sysfs-attribute abstraction (the attribute itself is the shim's
//! `DEVICE_ATTR_RW`), and the `Zeroable` impls if the core derived them.

mod attr;
mod firmware;
mod param;
mod zeroed;

pub(crate) use firmware::Firmware;
pub(crate) use param::default_persona;
