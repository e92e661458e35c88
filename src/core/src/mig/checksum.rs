//! The stream checksum: a four-lane, 64-bit Fletcher sum, fused with the copy.
//!
//! The migration stream is large (device state can be many MiB) and every byte of it is copied
//! once between the user's buffer and the driver's staging memory, so the checksum must cost
//! about as much as that copy and no more. A byte-wise CRC does not: it runs at a fraction of
//! memory bandwidth without special instructions the core may not assume. This sum works on
//! 64-bit little-endian words with two wrapping additions per word, and is computed in the same
//! pass as the copy (`Checksum::copy_update`): each word is summed as it is stored.
//!
//! # Definition
//!
//! The covered bytes `B` (of length `L`) are split into 32-byte blocks at stream offsets that are
//! multiples of 32; the last block is padded with zero bytes. Block `k` holds the four words
//! `w[k][0..4]` (little-endian `u64` at block offsets 0, 8, 16 and 24). For each lane `j`, with all
//! arithmetic modulo 2^64:
//!
//! ```text
//! A[j] = sum over k of w[k][j]
//! S[j] = sum over k of (A[j] after block k)
//! ```
//!
//! The checksum is then `fold(L, A[0..4], S[0..4])` (see [`Checksum::finish`]), a mixing step that
//! makes every lane and the length affect all 64 output bits.
//!
//! Any change of a single word changes the `A` sum of its lane, so before the final mixing step
//! every single-byte (indeed every single-word) corruption is detected; `S` makes the sum depend on
//! word order. This is an integrity check against accidental corruption and misuse (a stream
//! written to the wrong device, a truncated file), not a cryptographic authenticator: whoever
//! writes the data fd can produce any valid stream, so every decoded field is validated anyway.

/// Number of parallel lanes (independent words per block).
const LANES: usize = 4;

/// Bytes per block: one 64-bit word per lane.
const BLOCK: usize = LANES * 8;

/// Running state of the stream checksum.
///
/// Bytes may be added in pieces of any size; the result only depends on the concatenation.
#[derive(Clone, Debug)]
pub struct Checksum {
    /// Per-lane sums of the words.
    a: [u64; LANES],
    /// Per-lane sums of `a` (Fletcher's second sum).
    s: [u64; LANES],
    /// The bytes of a block not yet complete.
    tail: [u8; BLOCK],
    /// How many bytes of `tail` are filled (always less than [`BLOCK`]).
    tail_len: usize,
    /// Total number of bytes added so far.
    total: u64,
}

impl Default for Checksum {
    fn default() -> Self {
        Self::new()
    }
}

impl Checksum {
    /// Creates the state for an empty byte string.
    pub const fn new() -> Self {
        Self {
            a: [0; LANES],
            s: [0; LANES],
            tail: [0; BLOCK],
            tail_len: 0,
            total: 0,
        }
    }

    /// Returns how many bytes have been added so far.
    pub const fn len(&self) -> u64 {
        self.total
    }

    /// Returns `true` if no byte has been added yet.
    pub const fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Adds `data` to the checksummed bytes.
    pub fn update(&mut self, data: &[u8]) {
        let mut data = data;
        self.total = self
            .total
            .wrapping_add(u64::try_from(data.len()).unwrap_or(u64::MAX));

        if self.tail_len != 0 {
            // Complete the pending block first, so blocks stay aligned to stream offsets.
            let want = BLOCK.saturating_sub(self.tail_len);
            let (head, rest) = split(data, want);
            if let Some(dst) = self
                .tail
                .get_mut(self.tail_len..self.tail_len.saturating_add(head.len()))
            {
                dst.copy_from_slice(head);
            }
            self.tail_len = self.tail_len.saturating_add(head.len());
            data = rest;
            if self.tail_len < BLOCK {
                return;
            }
            let tail = self.tail;
            self.blocks(&tail);
            self.tail_len = 0;
        }

        let whole = data.len().saturating_sub(data.len() % BLOCK);
        let (body, rest) = split(data, whole);
        self.blocks(body);
        if let Some(dst) = self.tail.get_mut(..rest.len()) {
            dst.copy_from_slice(rest);
            self.tail_len = rest.len();
        }
    }

    /// Copies `src` into `dst` and adds the copied bytes to the checksummed bytes.
    ///
    /// Copies `min(dst.len(), src.len())` bytes and returns that count. Whole blocks are copied
    /// and summed in one pass, each word summed as it is stored, so the bytes are read once and
    /// the sum is of exactly the bytes written (even if `src` changed meanwhile).
    pub fn copy_update(&mut self, dst: &mut [u8], src: &[u8]) -> usize {
        let n = dst.len().min(src.len());
        let (Some(dst), Some(src)) = (dst.get_mut(..n), src.get(..n)) else {
            return 0;
        };
        // A pending block first, through the tail, so blocks stay aligned to stream offsets.
        let head = if self.tail_len == 0 {
            0
        } else {
            BLOCK.saturating_sub(self.tail_len).min(n)
        };
        let (dh, dst) = dst.split_at_mut_checked(head).unwrap_or((&mut [], &mut []));
        let (sh, src) = split(src, head);
        dh.copy_from_slice(sh);
        self.update(dh);
        let whole = dst.len().saturating_sub(dst.len() % BLOCK);
        let (db, dr) = dst
            .split_at_mut_checked(whole)
            .unwrap_or((&mut [], &mut []));
        let (sb, sr) = split(src, whole);
        self.copy_blocks(db, sb);
        dr.copy_from_slice(sr);
        self.update(dr);
        n
    }

    /// Returns the checksum of all bytes added so far (the state is left unchanged).
    pub fn finish(&self) -> u64 {
        let mut last = self.clone();
        if last.tail_len != 0 {
            // Zero-pad the last block; the length mixed in below tells the padding apart.
            if let Some(pad) = last.tail.get_mut(last.tail_len..) {
                pad.fill(0);
            }
            let tail = last.tail;
            last.blocks(&tail);
        }
        let mut h = last.total ^ 0x9e37_79b9_7f4a_7c15;
        for x in last.a.iter().chain(last.s.iter()) {
            h = (h ^ x).wrapping_mul(0xff51_afd7_ed55_8ccd).rotate_left(31);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 29)
    }

    /// Copies whole blocks of `src` into `dst` (as many as both hold) and adds them, with no
    /// pending tail.
    fn copy_blocks(&mut self, dst: &mut [u8], src: &[u8]) {
        let mut a = self.a;
        let mut s = self.s;
        let mut done = 0usize;
        // `next()` rather than zipped chunk iterators: the zips' random-access code leaves
        // objtool warnings (a fall-through) in the kernel build.
        let mut dsts = dst.chunks_exact_mut(BLOCK);
        let mut srcs = src.chunks_exact(BLOCK);
        while let (Some(d), Some(b)) = (dsts.next(), srcs.next()) {
            let mut w = [0u64; LANES];
            let mut words = b.chunks_exact(8);
            for x in w.iter_mut() {
                let Some(c) = words.next() else { break };
                *x = u64::from_le_bytes(c.try_into().unwrap_or_default());
            }
            let mut outs = d.chunks_exact_mut(8);
            let mut ws = w.iter();
            for (a, s) in a.iter_mut().zip(s.iter_mut()) {
                let (Some(c), Some(&x)) = (outs.next(), ws.next()) else {
                    break;
                };
                c.copy_from_slice(&x.to_le_bytes());
                *a = a.wrapping_add(x);
                *s = s.wrapping_add(*a);
            }
            done = done.saturating_add(BLOCK);
        }
        self.a = a;
        self.s = s;
        self.total = self
            .total
            .wrapping_add(u64::try_from(done).unwrap_or(u64::MAX));
    }

    /// Adds whole blocks (`data.len()` must be a multiple of [`BLOCK`]; any rest is ignored).
    fn blocks(&mut self, data: &[u8]) {
        // Work on local copies so the sums stay in registers across the loop.
        let mut a = self.a;
        let mut s = self.s;
        for block in data.chunks_exact(BLOCK) {
            let mut words = block.chunks_exact(8);
            for (a, s) in a.iter_mut().zip(s.iter_mut()) {
                let Some(word) = words.next() else { break };
                let w = u64::from_le_bytes(word.try_into().unwrap_or_default());
                *a = a.wrapping_add(w);
                *s = s.wrapping_add(*a);
            }
        }
        self.a = a;
        self.s = s;
    }
}

/// Returns the checksum of `data` in one call.
pub fn checksum(data: &[u8]) -> u64 {
    let mut c = Checksum::new();
    c.update(data);
    c.finish()
}

/// Splits `data` after `n` bytes, or after all of it when it is shorter.
fn split(data: &[u8], n: usize) -> (&[u8], &[u8]) {
    data.split_at_checked(n).unwrap_or((data, &[]))
}
