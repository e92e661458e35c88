// SPDX-License-Identifier: GPL-2.0

//! The `persona` sysfs attribute of a bound function: shows the persona in force, selects another
//! while the device is closed. The attribute and its entry points are in the shim and
//! `crate::sys`.

use crate::{
    device::PersonaDevice,
    persona,
    vfio::Device, //
};
use core::fmt::Write;
use kernel::prelude::*;

/// Shows the attribute into `out` (a page): the persona in force, its version and digest;
/// returns the length.
pub(crate) fn persona_show(dev: &Device<PersonaDevice>, out: &mut [u8]) -> Result<usize> {
    let state = dev.data().lock_state(dev.core());
    let mut w = PageWriter { buf: out, len: 0 };
    match &state.persona {
        Some(active) => {
            let p = active.persona()?;
            let v = p.version();
            write!(w, "{}@{}.{} ", p.name(), v.major, v.minor).map_err(|_| EINVAL)?;
            for b in p.digest() {
                write!(w, "{:02x}", b).map_err(|_| EINVAL)?;
            }
            writeln!(w).map_err(|_| EINVAL)?;
        }
        None => writeln!(
            w,
            "none: no persona is in force; the device is presented as vfio-pci presents it, \
             nothing pinned (the kernel log says why)"
        )
        .map_err(|_| EINVAL)?,
    }
    Ok(w.len)
}

/// Stores a write to the attribute: selects that persona (`EBUSY` while the device is open).
pub(crate) fn persona_store(dev: &Device<PersonaDevice>, input: &[u8]) -> Result {
    let sel = persona::parse_selector(input)?;
    let mut state = dev.data().lock_state(dev.core());
    if state.open {
        return Err(EBUSY);
    }
    // The firmware request runs with `state` held (review S7). The device is closed, so this
    // delays only an open (which must see the persona chosen here) and another selection;
    // reset paths only try `state` and leave the reset to this holder. The request
    // (`firmware_request_nowarn`) waits on user space only where the kernel forces the sysfs
    // fallback (`CONFIG_FW_LOADER_USER_HELPER_FALLBACK`, or its sysctl), up to its timeout.
    let r = state.select(dev.core(), &sel);
    dev.data().publish(&state);
    r
}

/// `core::fmt::Write` into a sysfs page.
struct PageWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl core::fmt::Write for PageWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(core::fmt::Error)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(core::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
