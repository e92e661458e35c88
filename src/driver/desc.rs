// SPDX-License-Identifier: GPL-2.0

//! The persona descriptor region: a read-only device-specific region (vendor type, subtype
//! [`crate::persona::DESC_SUBTYPE`]) registered at every open while a persona is in force, whose bytes
//! are the core's descriptor of that persona (`persona_core::persona::descriptor`).

use crate::{
    device::PersonaDevice,
    vfio::{self, Device, Io, RegionIo}, //
};
use kernel::prelude::*;

/// The descriptor region of a [`PersonaDevice`].
pub(crate) struct DescRegion;

impl vfio::Region<PersonaDevice> for DescRegion {
    fn rw(dev: &Device<PersonaDevice, Io>, io: &mut RegionIo, write: bool) -> Result<usize> {
        if write {
            return Err(EINVAL);
        }
        let state = dev.data().lock_state(dev.core());
        let Some(active) = &state.persona else {
            return Err(EINVAL);
        };
        let off = usize::try_from(io.offset()).map_err(|_| EINVAL)?;
        let mut total = 0usize;
        let mut chunk = [0u8; 64];
        while total < io.len() {
            let want = (io.len() - total).min(chunk.len());
            let n = active.desc_read(off.saturating_add(total), &mut chunk[..want])?;
            if n == 0 {
                break;
            }
            vfio::copy_to_user_at(io, total, &chunk[..n])?;
            total += n;
        }
        io.advance(total);
        Ok(total)
    }
}
