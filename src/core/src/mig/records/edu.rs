//! Record `TAG_EDU` (0x0001_0001, mandatory): the state of QEMU's `edu` device (1234:11e8), and
//! the RAM an edu DMA transfer writes.
//!
//! 64 bytes, little-endian:
//!
//! ```text
//!   0  u32  flags          bit 0: liveness written, bit 1: factorial written; others 0
//!   4  u32  liveness       the value last written to 0x04
//!   8  u32  factorial      the input last written to 0x08
//!  12  u32  status         0x20, bit 7 (IRQ on factorial) only
//!  16  u32  irq status     0x24
//!  20  u32  dma command    0x98 as read; the start bit must be clear
//!  24  u64  dma source     0x80
//!  32  u64  dma dest       0x88
//!  40  u64  dma count      0x90
//!  48  u32  held command   a DMA start held in a P2P state (0, or bit 0 set, bits 0-2 only)
//!  52  u32  reserved       0
//!  56  u64  reserved       0
//! ```
//!
//! A liveness or factorial value is carried only when its flag says it was written (0
//! otherwise). See the driver's edu backend for how the fields are read from the frozen device
//! and replayed.

use super::super::dirty::Span;
use super::super::stream::DeviceKind;
use super::{put, rd32, rd64, RecordError};

/// The stream's device kind of an edu.
pub const KIND: DeviceKind = DeviceKind::EDU;

/// Record tag of the edu state.
pub const TAG: u32 = 0x0001_0001;

/// Payload length.
pub const LEN: usize = 64;

/// Status register bit: IRQ on factorial completion (the only status bit a record carries).
pub const STATUS_IRQFACT: u32 = 1 << 7;
/// DMA command bit: start (clear in a saved command, set in a held one).
pub const DMA_START: u32 = 1 << 0;
/// DMA command bit: direction device to RAM (a DMA write, which dirties RAM).
pub const DMA_TO_RAM: u32 = 1 << 1;
/// The DMA command bits edu keeps.
pub const DMA_CMD_BITS: u32 = 0x7;
/// `flags`: the liveness value was written.
pub const FLAG_LIVENESS: u32 = 1 << 0;
/// `flags`: the factorial input was written.
pub const FLAG_FACT: u32 = 1 << 1;

/// edu clamps DMA addresses to its `dma_mask` property: 28 bits unless the VMM sets another.
pub const DMA_MASK: u64 = (1 << 28) - 1;

/// The smallest factorial input whose result edu gives as 0: edu computes `n!` in 32 bits, and
/// 34! is the first factorial with 32 factors of 2 (17 + 8 + 4 + 2 + 1), so every `n >= 34`
/// gives 0.
pub const FACT_ZERO: u32 = 34;

/// The input the driver gives edu for a factorial input `n`: one with the same 32-bit result
/// that edu computes at once. edu multiplies `n` times in its own thread, so an input near
/// `u32::MAX` keeps it busy for seconds, past every bounded wait of a quiesce or a restore;
/// every input from [`FACT_ZERO`] up gives 0, as [`FACT_ZERO`] itself does.
pub fn fact_input(n: u32) -> u32 {
    n.min(FACT_ZERO)
}

/// The fields of a `TAG_EDU` record.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct EduRecord {
    /// [`FLAG_LIVENESS`], [`FLAG_FACT`].
    pub flags: u32,
    /// The value last written to the liveness register.
    pub liveness: u32,
    /// The input last written to the factorial register.
    pub fact: u32,
    /// The status register ([`STATUS_IRQFACT`] only).
    pub status: u32,
    /// The IRQ status register.
    pub irq_status: u32,
    /// The DMA command register as read (start bit clear).
    pub dma_cmd: u32,
    /// The DMA source address.
    pub dma_src: u64,
    /// The DMA destination address.
    pub dma_dst: u64,
    /// The DMA byte count.
    pub dma_cnt: u64,
    /// A DMA start held in a P2P state, issued when DMA is released (0: none).
    pub held_cmd: u32,
}

impl EduRecord {
    /// Writes the payload into `out` (reserved fields zero).
    pub fn encode(&self, out: &mut [u8; LEN]) {
        out.fill(0);
        put(out, 0, &self.flags.to_le_bytes());
        put(out, 4, &self.liveness.to_le_bytes());
        put(out, 8, &self.fact.to_le_bytes());
        put(out, 12, &self.status.to_le_bytes());
        put(out, 16, &self.irq_status.to_le_bytes());
        put(out, 20, &self.dma_cmd.to_le_bytes());
        put(out, 24, &self.dma_src.to_le_bytes());
        put(out, 32, &self.dma_dst.to_le_bytes());
        put(out, 40, &self.dma_cnt.to_le_bytes());
        put(out, 48, &self.held_cmd.to_le_bytes());
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
        let r = EduRecord {
            flags: rd32(b, 0),
            liveness: rd32(b, 4),
            fact: rd32(b, 8),
            status: rd32(b, 12),
            irq_status: rd32(b, 16),
            dma_cmd: rd32(b, 20),
            dma_src: rd64(b, 24),
            dma_dst: rd64(b, 32),
            dma_cnt: rd64(b, 40),
            held_cmd: rd32(b, 48),
        };
        if r.flags & !(FLAG_LIVENESS | FLAG_FACT) != 0 {
            return bad(0, "flags");
        }
        if r.flags & FLAG_LIVENESS == 0 && r.liveness != 0 {
            return bad(4, "liveness");
        }
        if r.flags & FLAG_FACT == 0 && r.fact != 0 {
            return bad(8, "factorial");
        }
        if r.status & !STATUS_IRQFACT != 0 {
            return bad(12, "status");
        }
        if r.dma_cmd & !DMA_CMD_BITS != 0 || r.dma_cmd & DMA_START != 0 {
            return bad(20, "dma command");
        }
        if r.held_cmd & !DMA_CMD_BITS != 0 || (r.held_cmd != 0 && r.held_cmd & DMA_START == 0) {
            return bad(48, "held command");
        }
        if rd32(b, 52) != 0 {
            return bad(52, "reserved");
        }
        if rd64(b, 56) != 0 {
            return bad(56, "reserved");
        }
        Ok(r)
    }
}

/// The RAM a device-to-RAM transfer of `cnt` bytes to `dst` writes: `[dst, dst + cnt)`, and the
/// same at `dst` clamped to the default DMA mask when that differs (edu writes there with its
/// default mask; with another mask, at `dst` itself). A transfer past the top of the IOVA space
/// is cut there. Nothing for a count of 0.
pub fn dma_writes(dst: u64, cnt: u64) -> [Option<Span>; 2] {
    let at = |a: u64| Span::new(a, a.saturating_add(cnt));
    let clamped = dst & DMA_MASK;
    [at(dst), if clamped != dst { at(clamped) } else { None }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let r = EduRecord {
            flags: FLAG_LIVENESS,
            liveness: 7,
            status: STATUS_IRQFACT,
            irq_status: 1,
            dma_cmd: DMA_TO_RAM,
            dma_src: 0x40000,
            dma_dst: 0x1000,
            dma_cnt: 16,
            held_cmd: DMA_START | DMA_TO_RAM,
            ..EduRecord::default()
        };
        let mut b = [0u8; LEN];
        r.encode(&mut b);
        assert_eq!(EduRecord::decode(&b), Ok(r));
        assert!(matches!(
            EduRecord::decode(&b[..63]),
            Err(RecordError::Length { want: 64, got: 63 })
        ));
        for (at, v) in [
            (0, 4u8),
            (8, 1),
            (12, 1),
            (20, 1),
            (48, 8),
            (52, 1),
            (60, 1),
        ] {
            let mut c = b;
            if let Some(x) = c.get_mut(at) {
                *x |= v;
            }
            assert!(
                matches!(EduRecord::decode(&c), Err(RecordError::Field { .. })),
                "offset {at}"
            );
        }
    }

    /// edu's computation: `n!` in 32 bits.
    fn edu_fact(n: u32) -> u32 {
        (1..=n).fold(1u32, |acc, k| acc.wrapping_mul(k))
    }

    #[test]
    fn fact_input_keeps_the_result() {
        assert_eq!(edu_fact(FACT_ZERO), 0);
        assert_ne!(edu_fact(FACT_ZERO - 1), 0);
        for n in (0..=4096).chain([u32::MAX / 2, u32::MAX - 1, u32::MAX]) {
            let m = fact_input(n);
            assert!(m <= FACT_ZERO, "{n}");
            if n < 4096 {
                assert_eq!(edu_fact(m), edu_fact(n), "{n}");
            } else {
                // Past 34 the result is 0 whatever the input: one factor of 2^32 is enough.
                assert_eq!(edu_fact(m), 0, "{n}");
            }
        }
        for n in 0..FACT_ZERO {
            assert_eq!(fact_input(n), n);
        }
    }

    #[test]
    fn dma_writes_clamps() {
        assert_eq!(dma_writes(0x1000, 0), [None, None]);
        let [a, b] = dma_writes(0x1000_0000 + 0x10, 8);
        assert_eq!(a, Span::new(0x1000_0010, 0x1000_0018));
        assert_eq!(b, Span::new(0x10, 0x18));
    }
}
