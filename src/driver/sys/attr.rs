// SPDX-License-Identifier: GPL-2.0

//! The entry points of the `persona` sysfs attribute (`/sys/bus/pci/devices/<bdf>/persona`):
//! the shim's `DEVICE_ATTR_RW(persona)` calls them; [`crate::sysfs`] does the work.

use crate::{
    device::PersonaDevice,
    vfio::{rw_result, Device},
};
use kernel::prelude::*;

/// `show` of the `persona` attribute.
///
/// # Safety
///
/// `dev` is the `struct device` of a PCI function bound to this driver (the attribute exists
/// only then) and `buf` is sysfs's page for this call.
#[export_name = "pvp_rs_persona_show"]
unsafe extern "C" fn persona_show(dev: *mut kernel::bindings::device, buf: *mut c_char) -> isize {
    // SAFETY: sysfs passes a writable buffer of PAGE_SIZE bytes, ours for the call.
    let out = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), kernel::page::PAGE_SIZE) };
    // SAFETY: The function is bound to this driver for the duration of the call.
    let dev = unsafe { Device::<PersonaDevice>::from_bound_dev(dev) };
    rw_result(crate::sysfs::persona_show(dev, out))
}

/// `store` of the `persona` attribute.
///
/// # Safety
///
/// `dev` is the `struct device` of a PCI function bound to this driver and `buf` holds `n`
/// readable bytes for this call.
#[export_name = "pvp_rs_persona_store"]
unsafe extern "C" fn persona_store(
    dev: *mut kernel::bindings::device,
    buf: *const c_char,
    n: usize,
) -> isize {
    // SAFETY: sysfs passes `n` readable bytes, unchanged for the call.
    let input = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), n) };
    // SAFETY: The function is bound to this driver for the duration of the call.
    let dev = unsafe { Device::<PersonaDevice>::from_bound_dev(dev) };
    rw_result(crate::sysfs::persona_store(dev, input).map(|()| n))
}
