// SPDX-License-Identifier: GPL-2.0

//! The errnos of the core's errors: every core error the glue returns is mapped here, once.
//!
//! The core names errnos instead of numbering them (several are arch-specific); these `From`
//! impls turn its error values into kernel errors, so glue code propagates them with `?`.

use crate::persona_core::mig::{
    dirty::LogError,
    records::RecordError,
    stream::{Errno, StreamError},
};
use kernel::prelude::*;

impl From<StreamError> for Error {
    fn from(e: StreamError) -> Self {
        match e.errno() {
            Errno::Einval => EINVAL,
            Errno::Ebadmsg => EBADMSG,
            Errno::Eopnotsupp => EOPNOTSUPP,
            Errno::Eproto => EPROTO,
            Errno::Efbig => EFBIG,
        }
    }
}

/// Every refusal of the log is `EINVAL` in the uAPI (as in mlx5 and pds, a second start too).
impl From<LogError> for Error {
    fn from(_e: LogError) -> Self {
        EINVAL
    }
}

/// A record the destination cannot take is invalid data (`EINVAL`, as the uAPI asks).
impl From<RecordError> for Error {
    fn from(_e: RecordError) -> Self {
        EINVAL
    }
}
