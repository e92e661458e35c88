//! Record `TAG_CONFIG` (0x0000_0100, mandatory): the persona's emulated config registers.
//!
//! Every migratable device carries it. The payload is [`LEN`] bytes, one per emulated slot of the
//! persona's overlay map (`overlay::OverlayState::as_bytes`), in slot order; slots the persona
//! does not use are zero. Which config offset a slot stands for is the persona's business (its
//! overlay map), so the record itself is validated for its length only here; the destination
//! then refuses a state its persona cannot reach (`overlay::OverlayState::is_reachable`: a bit
//! the guest cannot write off its reset value) before it takes any of it.

use super::super::super::persona::MAX_EMULATED;
use super::RecordError;

/// Record tag of the emulated config registers.
pub const TAG: u32 = 0x0000_0100;

/// Payload length: one byte per emulated slot.
pub const LEN: usize = MAX_EMULATED;

/// The payload of a `TAG_CONFIG` record: the emulated registers' bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ConfigRecord<'a>(pub &'a [u8; LEN]);

impl<'a> ConfigRecord<'a> {
    /// Validates a payload (its length) and returns it typed.
    ///
    /// # Errors
    ///
    /// [`RecordError::Length`] when the payload is not [`LEN`] bytes.
    pub fn decode(payload: &'a [u8]) -> Result<Self, RecordError> {
        let got = payload.len();
        payload
            .try_into()
            .map(ConfigRecord)
            .map_err(|_| RecordError::Length { want: LEN, got })
    }

    /// Writes the payload into `out`.
    pub fn encode(&self, out: &mut [u8; LEN]) {
        out.copy_from_slice(self.0);
    }

    /// The slots that hold a non-zero byte, as `(slot, value)`: what a reader shows (the slot's
    /// config offset is in the persona, not in the stream).
    pub fn nonzero(&self) -> impl Iterator<Item = (usize, u8)> + 'a {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, &b)| b != 0)
            .map(|(i, &b)| (i, b))
    }
}
