// SPDX-License-Identifier: GPL-2.0

//! persona-vfio-pci: a vfio-pci-core variant driver that presents a versioned persona.
//!
//! This crate root is a table of contents: every behaviour lives in a module below, every
//! `unsafe` and every FFI call in [`vfio`].

use kernel::prelude::*;

mod vfio;

module! {
    type: PersonaVfioPci,
    name: "persona_vfio_pci",
    authors: ["persona-vfio-pci developers"],
    description: "vfio-pci-core variant driver with versioned config-space personas",
    license: "GPL",
}

/// The module: its lifetime is the driver registration's.
struct PersonaVfioPci;

impl kernel::Module for PersonaVfioPci {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        vfio::check_layout()?;
        pr_info!("loaded\n");
        Ok(PersonaVfioPci)
    }
}

impl Drop for PersonaVfioPci {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
