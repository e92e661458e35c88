//! The records of QEMU's `ivshmem-plain` (1af4:1110): `TAG_IVSHMEM` (0x0002_0001, mandatory),
//! its registers and memory size, and `TAG_IVSHMEM_PAGES` (0x0002_0002, mandatory, repeated),
//! its shared memory (BAR2) as [`super::pages`] records.
//!
//! `TAG_IVSHMEM`, 32 bytes, little-endian:
//!
//! ```text
//!   0  u64  memory length   bytes of BAR2 the stream carries (the size it is presented at):
//!                           a non-zero multiple of the page size
//!   8  u32  page size       4096 (pages::PAGE)
//!  12  u32  interrupt mask  BAR0 0x00
//!  16  u32  interrupt status BAR0 0x04
//!  20  u32  reserved        0
//!  24  u64  reserved        0
//! ```
//!
//! The memory length is checked against the destination's presented BAR2 size by the driver
//! (the page records must cover exactly its pages). The IV position register (0x08) is the
//! device's peer number, read-only and not part of the state; the doorbell (0x0c) is write-only.

use super::super::stream::DeviceKind;
use super::{pages::PAGE, put, rd32, rd64, RecordError};

/// The stream's device kind of an ivshmem-plain.
pub const KIND: DeviceKind = DeviceKind::IVSHMEM;

/// Record tag of the registers and memory size.
pub const TAG: u32 = 0x0002_0001;

/// Record tag of the memory's page records ([`super::pages`]).
pub const TAG_PAGES: u32 = 0x0002_0002;

/// Payload length of `TAG_IVSHMEM`.
pub const LEN: usize = 32;

/// The fields of a `TAG_IVSHMEM` record.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct IvshmemRecord {
    /// Bytes of BAR2 the stream carries.
    pub mem_len: u64,
    /// The interrupt mask register.
    pub intr_mask: u32,
    /// The interrupt status register.
    pub intr_status: u32,
}

impl IvshmemRecord {
    /// Writes the payload into `out` (reserved fields zero).
    pub fn encode(&self, out: &mut [u8; LEN]) {
        out.fill(0);
        put(out, 0, &self.mem_len.to_le_bytes());
        put(out, 8, &u32::try_from(PAGE).unwrap_or(0).to_le_bytes());
        put(out, 12, &self.intr_mask.to_le_bytes());
        put(out, 16, &self.intr_status.to_le_bytes());
    }

    /// Validates a payload and returns its fields; touches nothing.
    ///
    /// # Errors
    ///
    /// [`RecordError::Length`] for a payload that is not [`LEN`] bytes, [`RecordError::Field`]
    /// for the first field holding a value the record cannot carry.
    pub fn decode(b: &[u8]) -> Result<Self, RecordError> {
        if b.len() != LEN {
            return Err(RecordError::Length {
                want: LEN,
                got: b.len(),
            });
        }
        let bad = |offset, name| Err(RecordError::Field { offset, name });
        let r = IvshmemRecord {
            mem_len: rd64(b, 0),
            intr_mask: rd32(b, 12),
            intr_status: rd32(b, 16),
        };
        if r.mem_len == 0 || r.mem_len.checked_rem(PAGE as u64) != Some(0) {
            return bad(0, "memory length");
        }
        if usize::try_from(rd32(b, 8)).ok() != Some(PAGE) {
            return bad(8, "page size");
        }
        if rd32(b, 20) != 0 {
            return bad(20, "reserved");
        }
        if rd64(b, 24) != 0 {
            return bad(24, "reserved");
        }
        Ok(r)
    }
}

#[cfg(test)]
// Tests may panic: that is how they fail (as in the crate's integration tests).
#[allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::identity_op
)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let r = IvshmemRecord {
            mem_len: 16 << 20,
            intr_mask: 0xffff_ffff,
            intr_status: 1,
        };
        let mut b = [0u8; LEN];
        r.encode(&mut b);
        assert_eq!(IvshmemRecord::decode(&b), Ok(r));
        assert!(matches!(
            IvshmemRecord::decode(&b[..31]),
            Err(RecordError::Length { want: 32, got: 31 })
        ));
        for (at, v) in [(0, 1u8), (9, 1), (20, 1), (31, 1)] {
            let mut c = b;
            c[at] ^= v;
            assert!(
                matches!(IvshmemRecord::decode(&c), Err(RecordError::Field { .. })),
                "offset {at}"
            );
        }
        let mut z = b;
        z[..8].fill(0);
        assert!(matches!(
            IvshmemRecord::decode(&z),
            Err(RecordError::Field { offset: 0, .. })
        ));
    }
}
