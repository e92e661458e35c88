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
pub(crate) fn attach_ioas(dev: &Device<PersonaDevice, Io>, pasid: u32, pt_id: &mut u32) -> Result {
    let width = {
        let state = dev.data().lock_state(dev.core());
        let info = state
            .persona
            .as_ref()
            .and_then(|a| a.persona().ok())
            .and_then(|p| p.pasid());
        // A persona without PASID presents no PASID capability: the device has none.
        info.ok_or(EOPNOTSUPP)?.width
    };
    // PASID 0 is the RID's (vfio would otherwise attach the RID through the PASID path), and
    // a PASID must fit the width the persona advertises.
    if pasid == 0 || u64::from(pasid) >= 1u64 << width {
        return Err(EINVAL);
    }
    dev.core().pasid_attach_ioas(pasid, pt_id)
}
