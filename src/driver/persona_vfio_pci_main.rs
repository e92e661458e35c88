// SPDX-License-Identifier: GPL-2.0

//! persona-vfio-pci: a vfio-pci-core variant driver that presents a versioned persona.
//!
//! This crate root is a table of contents. Every `unsafe` and every FFI call is in [`vfio`] (the
//! generic VFIO abstraction) or [`sys`] (the driver's own FFI: firmware, its module parameter and
//! sysfs attribute); the rest is safe Rust, one concern a file: [`device`] holds the per-device
//! state and its locking, [`ops`] the VFIO operations the driver changes (each dispatching to
//! one of the others), [`config`] the config-space path, [`desc`] the descriptor region,
//! [`pasid`] PASID attach, [`sysfs`] the `persona` attribute, [`persona`] loading and checking
//! personas, [`migration`] VFIO migration and dirty logging (device-independent), [`backend`]
//! what each migratable device needs, [`error`] the errnos of the core's errors.

use kernel::prelude::*;

mod backend;
mod config;
mod desc;
mod device;
mod error;
mod migration;
mod ops;
mod pasid;
mod persona;
mod sys;
mod sysfs;
mod vfio;

/// The core crate (`src/core`), compiled into the module: every decision the driver makes.
#[path = "../core/src"]
#[deny(unsafe_code)]
#[allow(dead_code, unreachable_pub, clippy::all)]
mod persona_core {
    pub mod error;
    pub mod list;
    pub mod mig;
    pub mod overlay;
    pub mod pci;
    pub mod persona;
    pub mod sha256;
}

module! {
    type: PersonaVfioPci,
    name: "persona_vfio_pci",
    authors: ["persona-vfio-pci developers"],
    description: "vfio-pci-core variant driver with versioned config-space personas",
    license: "GPL",
}

declare_vfio_pci_driver!(device::PersonaDevice);

/// The module: holds the PCI driver registration for its lifetime.
struct PersonaVfioPci {
    _registration: vfio::Registration,
}

impl kernel::Module for PersonaVfioPci {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        vfio::check_layout()?;
        let registration = vfio::Registration::new()?;
        pr_info!("loaded\n");
        Ok(PersonaVfioPci {
            _registration: registration,
        })
    }
}

impl Drop for PersonaVfioPci {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
