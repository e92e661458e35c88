//! The records a migration stream carries, with their encoders and validators.
//!
//! The stream's framing (header, record headers, end record, checksum) is [`super::stream`]; the
//! payloads are defined here, one module per record family, so the kernel (which writes and
//! applies them) and the tool (which decodes them for `inspect-stream`) share one definition:
//!
//! - [`config`]: `TAG_CONFIG`, the persona's emulated config registers (every device);
//! - [`edu`]: `TAG_EDU`, the state of QEMU's `edu` (its migration backend);
//! - [`ivshmem`]: `TAG_IVSHMEM` and `TAG_IVSHMEM_PAGES`, the registers and the shared memory of
//!   QEMU's `ivshmem-plain`;
//! - [`pages`]: the layout of a run of memory pages (repeatable records), for backends whose
//!   state is a memory BAR, and the per-page digest their sources keep.
//!
//! Tags are assigned here and nowhere else: `0x0000_01xx` for records every device carries,
//! `0x0001_xxxx` for the first backend, `0x0002_xxxx` for the next, and so on. A record module
//! gives its tag, its payload length, an encoder from a typed value and a validator that returns
//! the typed value or a [`RecordError`]; a validator touches nothing, so the kernel validates
//! every record before it changes the device.
//!
//! [`piece`] is how vfio-pci-core splits a BAR access, which a backend trapping a BAR follows.

pub mod config;
pub mod edu;
pub mod ivshmem;
pub mod pages;

use core::fmt;

/// Why a record payload was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RecordError {
    /// The payload is not the record's length.
    Length {
        /// The record's length.
        want: usize,
        /// The payload's length.
        got: usize,
    },
    /// A field holds a value the record cannot carry.
    Field {
        /// Byte offset of the field in the payload.
        offset: usize,
        /// The field's name.
        name: &'static str,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length { want, got } => {
                write!(f, "payload of {got} bytes, the record has {want}")
            }
            Self::Field { offset, name } => write!(f, "invalid {name} at payload offset {offset}"),
        }
    }
}

/// Reads the little-endian `u32` at `at` of `b` (0 past the end; callers check the length).
pub(crate) fn rd32(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    if let Some(s) = at.checked_add(4).and_then(|end| b.get(at..end)) {
        v.copy_from_slice(s);
    }
    u32::from_le_bytes(v)
}

/// Reads the little-endian `u64` at `at` of `b` (0 past the end; callers check the length).
pub(crate) fn rd64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    if let Some(s) = at.checked_add(8).and_then(|end| b.get(at..end)) {
        v.copy_from_slice(s);
    }
    u64::from_le_bytes(v)
}

/// Writes `v` at `at` of `b` (nothing past the end; callers size `b`).
pub(crate) fn put(b: &mut [u8], at: usize, v: &[u8]) {
    if let Some(d) = at.checked_add(v.len()).and_then(|end| b.get_mut(at..end)) {
        d.copy_from_slice(v);
    }
}

/// The size of the piece vfio-pci-core's BAR access loop makes at `off` with `left` bytes to go:
/// the widest naturally aligned access of 8, 4, 2 or 1 bytes that fits.
///
/// A backend that traps a BAR splits a user write the same way, so a register reached by a wider
/// or misaligned write is seen like a direct one.
///
/// ```
/// use persona_core::mig::records::piece;
/// assert_eq!(piece(0x90, 16), 8);
/// assert_eq!(piece(0x94, 16), 4);
/// assert_eq!(piece(0x95, 3), 1);
/// assert_eq!(piece(0x96, 3), 2);
/// ```
pub fn piece(off: u64, left: usize) -> usize {
    if left >= 8 && off % 8 == 0 {
        8
    } else if left >= 4 && off % 4 == 0 {
        4
    } else if left >= 2 && off % 2 == 0 {
        2
    } else {
        1
    }
}
