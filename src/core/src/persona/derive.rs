//! Deriving a persona from a physical config dump, and deterministic PASID placement.
//!
//! The derived persona is the *identity layout*: the device's IDs passed through, every
//! capability vfio-pci-core would expose presented at its physical offset, in the device's
//! chain order, with the header registers vfio-pci-core lets a user write marked writable
//! passthrough and everything vfio-pci-core hides hidden. Optionally a synthesized PASID
//! capability is added (see [`place_pasid`]). The same dump and options always give the same
//! persona, byte for byte.

use super::super::error::Error;
use super::super::pci::{self, CapWalker, Space};
use super::{CapEntry, CapKind, Ids, PersonaModel, Rule, Version};

/// A device-specific PASID offset, for devices whose free-looking config space hides registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasidQuirk {
    /// Vendor ID of the device.
    pub vendor: u16,
    /// Device ID of the device.
    pub device: u16,
    /// Offset at which the PASID capability must be placed.
    pub offset: u16,
}

/// The PASID placement table, consulted after an explicitly requested offset.
///
/// It holds only a test entry today (vendor 0x1234 is QEMU's; device 0xbeef does not exist), so
/// the table path is exercised. Real entries go here with a comment naming the device and why.
pub static PASID_QUIRKS: &[PasidQuirk] = &[PasidQuirk {
    vendor: 0x1234,
    device: 0xbeef,
    offset: 0x200,
}];

/// A request to synthesize a PASID capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasidRequest {
    /// Max PASID width (log2), 1..=20.
    pub width: u8,
    /// Advertise execute permission.
    pub exec: bool,
    /// Advertise privileged mode.
    pub privileged: bool,
    /// Offset stated by the caller; it wins over every other placement rule.
    pub offset: Option<u16>,
}

/// Options of [`derive`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeriveOptions<'a> {
    /// Persona name; `None` gives `vvvv:dddd` from the device's IDs.
    pub name: Option<&'a str>,
    /// Persona version.
    pub version: Version,
    /// Synthesize a PASID capability.
    pub pasid: Option<PasidRequest>,
}

/// Rule of a type-0 header byte in the identity layout: what vfio-pci-core lets a user write
/// (command, status, cache line, latency, BIST, BARs, ROM, interrupt line) is writable
/// passthrough, the rest read-only passthrough. The capability pointer is emulated by
/// [`PersonaModel::apply_layout`].
fn header_rule(off: usize) -> Rule {
    let writable =
        matches!(off, 0x04..=0x07 | 0x0c | 0x0d | 0x0f | 0x10..=0x27 | 0x30..=0x33 | 0x3c);
    if writable {
        Rule::PassRw
    } else {
        Rule::PassRo
    }
}

/// Checks the dump size and returns the config size it implies.
fn dump_size(dump: &[u8]) -> Result<usize, Error> {
    match dump.len() {
        pci::CFG_SIZE | pci::CFG_SIZE_EXT => Ok(dump.len()),
        _ => Err(Error::BadDumpSize),
    }
}

/// Derives the identity persona of `dump` (plus PASID if requested) into `m`.
///
/// # Errors
///
/// [`Error::BadDumpSize`] for dumps other than 256 or 4096 bytes, [`Error::BrokenChain`] for a
/// malformed capability chain, [`Error::TooManyCaps`], the PASID placement errors of
/// [`place_pasid`], and [`Error::Invalid`] if the result would not be a valid persona (e.g.
/// overlapping capabilities on the device).
pub fn derive(dump: &[u8], opts: &DeriveOptions<'_>, m: &mut PersonaModel) -> Result<(), Error> {
    let size = dump_size(dump)?;
    m.clear();
    m.config_size = size;
    m.ids = Ids::from_dump(dump).ok_or(Error::BadDumpSize)?;
    m.version = opts.version;
    match opts.name {
        Some(n) => m.set_name(n)?,
        None => m.set_name(default_name(&m.ids).as_str())?,
    }
    for off in 0..pci::STD_HEADER_SIZEOF {
        m.set_rule(off, off.saturating_add(1), header_rule(off));
    }
    // vfio-pci-core gives unclaimed bytes raw read-write access (some devices keep registers
    // between capabilities), and capability bodies its own per-capability rules: forward both.
    m.set_rule(pci::STD_HEADER_SIZEOF, size, Rule::PassRw);
    add_chain(dump, Space::Standard, m)?;
    if size > pci::CFG_SIZE {
        add_chain(dump, Space::Extended, m)?;
    }
    if let Some(req) = opts.pasid {
        if !(1..=pci::PASID_MAX_WIDTH).contains(&req.width) {
            return Err(Error::BadPasidWidth(req.width));
        }
        let offset = place_pasid(dump, req.offset)?;
        m.push_cap(CapEntry {
            kind: CapKind::Pasid,
            space: Space::Extended,
            id: pci::EXT_CAP_ID_PASID,
            version: pci::PASID_VERSION,
            offset,
            len: 8,
            pasid_width: req.width,
            pasid_exec: req.exec,
            pasid_priv: req.privileged,
            ..CapEntry::default()
        })?;
    }
    m.apply_layout();
    Ok(())
}

/// Derives and encodes in one go; `scratch` is the caller's model storage.
///
/// # Errors
///
/// Those of [`derive`] and [`PersonaModel::encode`].
pub fn derive_blob(
    dump: &[u8],
    opts: &DeriveOptions<'_>,
    scratch: &mut PersonaModel,
    out: &mut [u8],
) -> Result<usize, Error> {
    derive(dump, opts, scratch)?;
    scratch.encode(out)
}

/// Adds the physical capabilities of one chain: presented where vfio-pci-core would present
/// them, hidden (header bytes hidden) where it would not. PASID is always hidden, entirely.
fn add_chain(dump: &[u8], space: Space, m: &mut PersonaModel) -> Result<(), Error> {
    for c in CapWalker::new_for(dump, space) {
        let c = c.map_err(Error::BrokenChain)?;
        let off = usize::from(c.offset);
        let is_pasid = space == Space::Extended && c.id == pci::EXT_CAP_ID_PASID;
        let len = if is_pasid {
            None
        } else {
            pci::cap_len(dump, &c)
        };
        let mut e = CapEntry {
            kind: CapKind::Hidden,
            space,
            id: c.id,
            instance: c.instance,
            version: c.version,
            ..CapEntry::default()
        };
        match len {
            Some(len) => {
                e.kind = CapKind::Physical;
                e.offset = c.offset;
                e.len = len;
            }
            None => {
                let hidden = if is_pasid { pci::PASID_SIZEOF } else { 4 };
                let hdr = match space {
                    Space::Standard => 2,
                    Space::Extended => hidden,
                };
                m.set_rule(off, off.saturating_add(hdr), Rule::Hidden);
                if space == Space::Standard {
                    e.version = 0;
                }
            }
        }
        m.push_cap(e)?;
    }
    Ok(())
}

/// `vvvv:dddd` in lower-case hex.
fn default_name(ids: &Ids) -> NameBuf {
    let mut b = NameBuf([0; 9]);
    let digits = b"0123456789abcdef";
    let v = (u32::from(ids.vendor) << 16) | u32::from(ids.device);
    for (i, slot) in b.0.iter_mut().enumerate() {
        *slot = if i == 4 {
            b':'
        } else {
            // Nibbles from the most significant down, skipping the ':' at index 4.
            let nib_idx = if i < 4 {
                7usize.saturating_sub(i)
            } else {
                8usize.saturating_sub(i)
            };
            let shift = u32::try_from(nib_idx.saturating_mul(4)).unwrap_or(0);
            let nib = v.checked_shr(shift).unwrap_or(0) & 0xf;
            digits
                .get(usize::try_from(nib).unwrap_or(0))
                .copied()
                .unwrap_or(b'0')
        };
    }
    b
}

/// A fixed 9-byte ASCII name.
struct NameBuf([u8; 9]);

impl NameBuf {
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.0).unwrap_or("device")
    }
}

/// Region occupied by an extended capability of the dump, for placement: its vfio length, or
/// just its header when vfio-pci does not know the length.
fn ext_region(dump: &[u8], c: &pci::FoundCap) -> (usize, usize) {
    let len = pci::ext_cap_len(dump, usize::from(c.offset), c.id).unwrap_or(4);
    let start = usize::from(c.offset);
    (start, start.saturating_add(usize::from(len)))
}

/// True when `off..off + 8` is inside extended space, dword aligned and clear of every
/// extended capability of the dump and of the chain head at 0x100.
fn pasid_fits(dump: &[u8], off: usize) -> Result<bool, Error> {
    let end = off.saturating_add(pci::PASID_SIZEOF);
    if off % 4 != 0 || off < pci::CFG_SIZE.saturating_add(4) || end > pci::CFG_SIZE_EXT {
        return Ok(false);
    }
    for c in CapWalker::extended(dump) {
        let c = c.map_err(Error::BrokenChain)?;
        let (s, e) = ext_region(dump, &c);
        if off < e && s < end {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Chooses the PASID capability's offset for the device in `dump`.
///
/// In order: the `requested` offset (an error if it does not fit); the [`PASID_QUIRKS`] entry
/// for the device (an error if it does not fit); 0xff8 when free (where QEMU and
/// cloud-hypervisor put theirs); else the lowest free dword-aligned 8-byte gap at or after the
/// end of the chain's last extended capability, and failing that the lowest free gap after the
/// chain head. "Free" means clear of every extended capability in the dump, including those
/// vfio-pci-core hides; a capability whose length vfio-pci does not know occupies its header.
///
/// # Errors
///
/// [`Error::NoExtendedSpace`] for a 256-byte dump, [`Error::BadPasidOffset`] when a requested
/// or table offset does not fit, [`Error::NoRoomForPasid`] when no gap is left, and
/// [`Error::BrokenChain`].
pub fn place_pasid(dump: &[u8], requested: Option<u16>) -> Result<u16, Error> {
    if dump.len() < pci::CFG_SIZE_EXT {
        return Err(Error::NoExtendedSpace);
    }
    let ids = Ids::from_dump(dump).ok_or(Error::BadDumpSize)?;
    let quirk = PASID_QUIRKS
        .iter()
        .find(|q| q.vendor == ids.vendor && q.device == ids.device)
        .map(|q| q.offset);
    if let Some(off) = requested.or(quirk) {
        return if pasid_fits(dump, usize::from(off))? {
            Ok(off)
        } else {
            Err(Error::BadPasidOffset(off))
        };
    }
    if pasid_fits(dump, usize::from(pci::PASID_DEFAULT_OFFSET))? {
        return Ok(pci::PASID_DEFAULT_OFFSET);
    }
    let mut last_end = pci::CFG_SIZE;
    for c in CapWalker::extended(dump) {
        let c = c.map_err(Error::BrokenChain)?;
        last_end = ext_region(dump, &c).1;
    }
    let from_last = last_end.div_ceil(4).saturating_mul(4);
    for start in [from_last, pci::CFG_SIZE.saturating_add(4)] {
        let mut off = start;
        while off.saturating_add(pci::PASID_SIZEOF) <= pci::CFG_SIZE_EXT {
            if pasid_fits(dump, off)? {
                return u16::try_from(off).map_err(|_| Error::NoRoomForPasid);
            }
            off = off.saturating_add(4);
        }
    }
    Err(Error::NoRoomForPasid)
}
