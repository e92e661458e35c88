// SPDX-License-Identifier: GPL-2.0

//! Config-space region accesses: the point where the persona overlay serves them.
//!
//! With the identity persona every access goes through vfio-pci-core's own config
//! virtualisation unchanged.

use crate::{
    device::PersonaDevice,
    vfio::{Device, RegionIo},
};
use kernel::prelude::*;

/// A read of the config region.
pub(crate) fn read(dev: &Device<PersonaDevice>, io: &mut RegionIo) -> Result<usize> {
    dev.core().read(io)
}

/// A write to the config region.
pub(crate) fn write(dev: &Device<PersonaDevice>, io: &mut RegionIo) -> Result<usize> {
    dev.core().write(io)
}
