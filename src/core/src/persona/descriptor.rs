//! The persona descriptor region: how a bound device publishes the persona in force.
//!
//! The driver registers a read-only device-specific VFIO region of type
//! `VFIO_REGION_TYPE_PCI_VENDOR_TYPE | vendor ID` and subtype [`SUBTYPE`] (`"PERS"`). Its
//! contents, little-endian:
//!
//! ```text
//!   off  size  field
//!     0     8  magic            "PVPDESC1"
//!     8     4  format version   1
//!    12     4  blob length      n
//!    16    32  digest           SHA-256 of the blob (the persona's identity)
//!    48     n  blob             the persona's canonical binary encoding (see `format`)
//! ```
//!
//! The region is exactly `48 + n` bytes. [`read`] is the driver's side (the bytes at an offset),
//! [`parse`] the reader's (every field checked, the digest against the blob).

use core::fmt;

use super::super::sha256::{Sha256, DIGEST_LEN};

/// Region subtype: `"PERS"` as a big-endian `u32`.
pub const SUBTYPE: u32 = u32::from_be_bytes(*b"PERS");
/// Magic at the start of the region.
pub const MAGIC: [u8; 8] = *b"PVPDESC1";
/// Format version of the region.
pub const VERSION: u32 = 1;
/// Length of the header before the blob.
pub const HEADER_LEN: usize = 48;

/// The header for a blob of `blob_len` bytes with digest `digest`; `None` when the length does
/// not fit the header's `u32`.
pub fn header(blob_len: usize, digest: &[u8; DIGEST_LEN]) -> Option<[u8; HEADER_LEN]> {
    let len = u32::try_from(blob_len).ok()?;
    let mut h = [0u8; HEADER_LEN];
    h.get_mut(..8)?.copy_from_slice(&MAGIC);
    h.get_mut(8..12)?.copy_from_slice(&VERSION.to_le_bytes());
    h.get_mut(12..16)?.copy_from_slice(&len.to_le_bytes());
    h.get_mut(16..HEADER_LEN)?.copy_from_slice(digest);
    Some(h)
}

/// The region's size for a blob of `blob_len` bytes.
pub fn region_len(blob_len: usize) -> usize {
    HEADER_LEN.saturating_add(blob_len)
}

/// Copies the region's bytes from `offset` into `out` (`head` from [`header`], then `blob`);
/// returns how many (fewer than `out.len()` at the end of the region, 0 past it).
pub fn read(head: &[u8; HEADER_LEN], blob: &[u8], offset: usize, out: &mut [u8]) -> usize {
    let mut done = 0usize;
    for (i, b) in out.iter_mut().enumerate() {
        let at = offset.saturating_add(i);
        let v = match at.checked_sub(HEADER_LEN) {
            None => head.get(at).copied(),
            Some(k) => blob.get(k).copied(),
        };
        match v {
            Some(v) => *b = v,
            None => break,
        }
        done = i.saturating_add(1);
    }
    done
}

/// Why a region's contents are not a descriptor.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DescError {
    /// Fewer bytes than the header.
    Short(usize),
    /// The magic is not `PVPDESC1`.
    BadMagic([u8; 8]),
    /// A format version this code does not read.
    Version(u32),
    /// The region's size is not header plus blob length.
    Size {
        /// The region's size.
        region: u64,
        /// Header plus the stated blob length.
        want: u64,
    },
    /// The stated blob runs past the bytes read.
    Truncated {
        /// The stated blob length.
        blob: usize,
        /// Bytes read.
        read: usize,
    },
    /// The stated digest is not the blob's SHA-256.
    Digest {
        /// The stated digest.
        stated: [u8; DIGEST_LEN],
        /// The blob's SHA-256.
        actual: [u8; DIGEST_LEN],
    },
}

impl fmt::Display for DescError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = |f: &mut fmt::Formatter<'_>, b: &[u8]| -> fmt::Result {
            b.iter().try_for_each(|x| write!(f, "{x:02x}"))
        };
        match self {
            Self::Short(n) => write!(f, "{n} bytes, shorter than its 48-byte header"),
            Self::BadMagic(m) => {
                write!(f, "bad magic ")?;
                hex(f, m)
            }
            Self::Version(v) => write!(f, "format version {v}, this tool reads {VERSION}"),
            Self::Size { region, want } => write!(
                f,
                "region size {region} but header plus blob length is {want}"
            ),
            Self::Truncated { blob, read } => {
                write!(f, "blob of {blob} bytes runs past the {read} read")
            }
            Self::Digest { stated, actual } => {
                write!(f, "digest ")?;
                hex(f, stated)?;
                write!(f, " is not the blob's SHA-256 ")?;
                hex(f, actual)
            }
        }
    }
}

/// A descriptor read from a region: the stated digest (checked) and the blob (not parsed).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Descriptor<'a> {
    /// The blob's SHA-256, as the region states it.
    pub digest: [u8; DIGEST_LEN],
    /// The persona blob.
    pub blob: &'a [u8],
}

/// Parses a region's contents (`region`: what reading it from offset 0 gave, `region_size`: its
/// size from the region info). The blob is not parsed as a persona here.
///
/// # Errors
///
/// The first field that is wrong, in layout order.
pub fn parse(region: &[u8], region_size: u64) -> Result<Descriptor<'_>, DescError> {
    let head = region
        .get(..HEADER_LEN)
        .ok_or(DescError::Short(region.len()))?;
    let le32 = |at: usize| {
        let mut v = [0u8; 4];
        if let Some(s) = head.get(at..at.saturating_add(4)) {
            v.copy_from_slice(s);
        }
        u32::from_le_bytes(v)
    };
    let mut magic = [0u8; 8];
    magic.copy_from_slice(head.get(..8).unwrap_or(&[0; 8]));
    if magic != MAGIC {
        return Err(DescError::BadMagic(magic));
    }
    let version = le32(8);
    if version != VERSION {
        return Err(DescError::Version(version));
    }
    let len = usize::try_from(le32(12)).unwrap_or(usize::MAX);
    let want = u64::try_from(region_len(len)).unwrap_or(u64::MAX);
    if region_size != want {
        return Err(DescError::Size {
            region: region_size,
            want,
        });
    }
    let blob = region
        .get(HEADER_LEN..HEADER_LEN.saturating_add(len))
        .ok_or(DescError::Truncated {
            blob: len,
            read: region.len(),
        })?;
    let mut digest = [0u8; DIGEST_LEN];
    digest.copy_from_slice(head.get(16..HEADER_LEN).unwrap_or(&[0; DIGEST_LEN]));
    let actual = Sha256::digest(blob);
    if actual != digest {
        return Err(DescError::Digest {
            stated: digest,
            actual,
        });
    }
    Ok(Descriptor { digest, blob })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_and_parse_agree() {
        let blob = [1u8, 2, 3, 4, 5];
        let digest = Sha256::digest(&blob);
        let head = header(blob.len(), &digest).unwrap_or([0; HEADER_LEN]);
        let mut region = [0u8; 53];
        assert_eq!(read(&head, &blob, 0, &mut region), 53);
        let mut tail = [0u8; 8];
        assert_eq!(read(&head, &blob, 50, &mut tail), 3);
        assert_eq!(read(&head, &blob, 60, &mut tail), 0);
        assert_eq!(
            parse(&region, 53),
            Ok(Descriptor {
                digest,
                blob: &blob
            })
        );
        assert!(matches!(parse(&region, 54), Err(DescError::Size { .. })));
        assert!(matches!(
            parse(region.get(..50).unwrap_or(&[]), 53),
            Err(DescError::Truncated { .. })
        ));
        let mut bad = region;
        if let Some(b) = bad.get_mut(50) {
            *b ^= 1;
        }
        assert!(matches!(parse(&bad, 53), Err(DescError::Digest { .. })));
        if let Some(b) = bad.get_mut(8) {
            *b = 2;
        }
        assert_eq!(parse(&bad, 53), Err(DescError::Version(2)));
        assert_eq!(SUBTYPE, 0x5045_5253);
    }
}
