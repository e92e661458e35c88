// SPDX-License-Identifier: GPL-2.0

//! The `default_persona` module parameter, declared by the shim (`module!` has no string
//! parameters).

use crate::vfio::bindings;
use kernel::prelude::*;

/// The `default_persona` module parameter: the persona selected at bind.
pub(crate) fn default_persona() -> &'static CStr {
    // SAFETY: The shim returns its static, NUL-terminated parameter buffer, which lives as long
    // as the module and is written only by the module loader (mode 0444).
    unsafe { CStr::from_char_ptr(bindings::pvp_shim_default_persona()) }
}
