// SPDX-License-Identifier: GPL-2.0

//! PASID attach: a PASID of the device reaches an IOAS only within what the persona in force
//! advertises (its PASID capability and width); detach is vfio's own.

use crate::{
    device::PersonaDevice,
    vfio::{Device, Io}, //
};
use kernel::prelude::*;

/// Attaches `pasid` of the device to the IOAS or HWPT `pt_id` when the persona in force
/// advertises PASID and `pasid` fits its width; `EOPNOTSUPP` without PASID, `EINVAL` for PASID 0
/// or one too wide.
///
/// The width is the one published when the persona was selected (the persona cannot change
/// while the device is open), so an attach neither takes `state` nor parses the persona.
pub(crate) fn attach_ioas(dev: &Device<PersonaDevice, Io>, pasid: u32, pt_id: &mut u32) -> Result {
    // A persona without PASID presents no PASID capability: the device has none.
    let width = dev.data().pasid_width().ok_or(EOPNOTSUPP)?;
    // PASID 0 is the RID's (vfio would otherwise attach the RID through the PASID path), and
    // a PASID must fit the width the persona advertises.
    if pasid == 0 || u64::from(pasid) >= 1u64.checked_shl(width).unwrap_or(u64::MAX) {
        return Err(EINVAL);
    }
    dev.core().pasid_attach_ioas(pasid, pt_id)
}
