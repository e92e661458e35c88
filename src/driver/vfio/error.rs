// SPDX-License-Identifier: GPL-2.0

//! Errno conversions at the C boundary, shared by every table's entry points (a leaf module: it
//! imports nothing of this folder, so `ops` and `migration` both use it without importing each
//! other).

use kernel::prelude::*;

/// The return value of a `read`/`write`-like callback: the byte count, or a negative errno.
pub(crate) fn rw_result(r: Result<usize>) -> isize {
    match r {
        Ok(n) => isize::try_from(n).unwrap_or(isize::MAX),
        Err(e) => isize::try_from(e.to_errno()).unwrap_or(EINVAL.to_errno() as isize),
    }
}

/// Converts a `long` the C side returns (value or negative errno) into a `Result`.
pub(super) fn errno_or(r: c_long) -> Result<isize> {
    if r < 0 {
        Err(Error::from_errno(
            i32::try_from(r).unwrap_or(EINVAL.to_errno()),
        ))
    } else {
        Ok(r)
    }
}
