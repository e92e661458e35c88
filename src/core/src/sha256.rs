//! SHA-256 (FIPS 180-4), small and allocation-free, for persona digests.
//!
//! A persona's identity is the SHA-256 of its canonical binary encoding. The kernel has a SHA-256
//! library, but the host crate must compute the same digest without it, so this is a plain
//! implementation: about 200 bytes of state, and a 64-byte message schedule kept as a rolling
//! 16-word window so that no function needs more than a few hundred bytes of stack.

/// Length of a digest in bytes.
pub const DIGEST_LEN: usize = 32;

/// Round constants: the first 32 bits of the fractional parts of the cube roots of the first 64
/// primes.
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// Initial hash value: the first 32 bits of the fractional parts of the square roots of the
/// first 8 primes.
const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Incremental SHA-256 hasher.
#[derive(Clone, Debug)]
pub struct Sha256 {
    h: [u32; 8],
    buf: [u8; 64],
    buf_len: usize,
    total: u64,
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha256 {
    /// Creates a hasher with the initial state.
    pub const fn new() -> Self {
        Self {
            h: H0,
            buf: [0; 64],
            buf_len: 0,
            total: 0,
        }
    }

    /// Hashes `data` in one call.
    pub fn digest(data: &[u8]) -> [u8; DIGEST_LEN] {
        let mut s = Self::new();
        s.update(data);
        s.finish()
    }

    /// Feeds more message bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        // Byte counts wrap only after 2^64 bytes, far beyond anything hashed here.
        self.total = self
            .total
            .wrapping_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
        while !data.is_empty() {
            let room = 64usize.saturating_sub(self.buf_len);
            let take = room.min(data.len());
            let (head, rest) = data.split_at(take);
            if let Some(dst) = self
                .buf
                .get_mut(self.buf_len..self.buf_len.saturating_add(take))
            {
                dst.copy_from_slice(head);
            }
            self.buf_len = self.buf_len.saturating_add(take);
            data = rest;
            if self.buf_len == 64 {
                let block = self.buf;
                self.compress(&block);
                self.buf_len = 0;
            }
        }
    }

    /// Pads the message and returns the digest.
    pub fn finish(mut self) -> [u8; DIGEST_LEN] {
        let bits = self.total.wrapping_mul(8);
        self.update_padding(&[0x80]);
        while self.buf_len != 56 {
            self.update_padding(&[0]);
        }
        self.update_padding(&bits.to_be_bytes());
        let mut out = [0u8; DIGEST_LEN];
        let mut words = out.chunks_exact_mut(4);
        for h in self.h {
            if let Some(o) = words.next() {
                o.copy_from_slice(&h.to_be_bytes());
            }
        }
        out
    }

    /// Like [`Self::update`] but without counting the bytes as message.
    fn update_padding(&mut self, data: &[u8]) {
        let total = self.total;
        self.update(data);
        self.total = total;
    }

    fn compress(&mut self, block: &[u8; 64]) {
        let mut w = [0u32; 16];
        let mut words = block.chunks_exact(4);
        for wi in w.iter_mut() {
            if let Some(c) = words.next() {
                *wi = c.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
            }
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = self.h;
        for k in K {
            let wt = w[0];
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = h
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(k)
                .wrapping_add(wt);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            h = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
            // Slide the schedule window: W[t+16] from W[t], W[t+1], W[t+9], W[t+14].
            let x1 = w[1];
            let x14 = w[14];
            let ss0 = x1.rotate_right(7) ^ x1.rotate_right(18) ^ (x1 >> 3);
            let ss1 = x14.rotate_right(17) ^ x14.rotate_right(19) ^ (x14 >> 10);
            let next = ss1.wrapping_add(w[9]).wrapping_add(ss0).wrapping_add(wt);
            w.rotate_left(1);
            w[15] = next;
        }
        for (s, v) in self.h.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *s = s.wrapping_add(v);
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]
mod tests {
    use super::Sha256;

    fn hex(d: &[u8; 32]) -> [u8; 64] {
        let mut out = [0u8; 64];
        for (o, b) in out.chunks_exact_mut(2).zip(d.iter()) {
            let digits = b"0123456789abcdef";
            o[0] = digits[usize::from(b >> 4)];
            o[1] = digits[usize::from(b & 15)];
        }
        out
    }

    #[test]
    fn known_vectors() {
        let cases: [(&[u8], &[u8; 64]); 3] = [
            (
                b"",
                b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                b"abc",
                b"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                b"248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            ),
        ];
        for (msg, want) in cases {
            assert_eq!(&hex(&Sha256::digest(msg)), want);
        }
    }

    #[test]
    fn million_a_incremental() {
        let mut s = Sha256::new();
        let chunk = [b'a'; 1000];
        for _ in 0..1000 {
            s.update(&chunk);
        }
        assert_eq!(
            &hex(&s.finish()),
            b"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn chunking_does_not_matter() {
        let data: [u8; 200] = core::array::from_fn(|i| (i * 7) as u8);
        let whole = Sha256::digest(&data);
        for split in [1usize, 55, 56, 63, 64, 65, 128, 199] {
            let mut s = Sha256::new();
            s.update(&data[..split]);
            s.update(&data[split..]);
            assert_eq!(s.finish(), whole);
        }
    }
}
