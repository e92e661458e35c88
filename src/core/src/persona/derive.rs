//! Deriving a persona from a device, and deterministic PASID placement.
//!
//! The derived persona is a **pinned** persona of the device: its IDs, header and every
//! capability vfio-pci-core would expose, presented at its physical offset in the device's chain
//! order, each byte with the rule of the field table ([`super::fields`]): read-only registers
//! pinned to the value the device has, device-state registers dynamic (their read-only bits
//! pinned), BARs and ROM emulated at the device's sizes, and every byte outside the header and
//! the presented capabilities hidden. Capabilities vfio-pci-core would hide are listed as hidden
//! entries (the physical PASID always). The **parity** form ([`DeriveOptions::parity`]) keeps
//! vfio-pci's behaviour for development: nothing pinned but the IDs, bytes outside the
//! capabilities forwarded raw, except over capabilities the persona hides.
//!
//! Optionally a synthesized PASID capability is added (see [`place_pasid`]). The same device and
//! options always give the same persona, byte for byte.

use super::super::error::Error;
use super::super::pci::{self, CapWalker, Space};
use super::device::DeviceView;
use super::fields::{self, FieldKind};
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

impl PasidRequest {
    /// The capability the device's own PASID capability supports, if it has one: width,
    /// execute and privileged mode as its PASID Capability register states them.
    #[must_use]
    pub fn device_limit(dump: &[u8]) -> Option<(u8, bool, bool)> {
        let reg = pci::pasid_cap_reg(dump)?;
        Some((
            u8::try_from(reg.width()).unwrap_or(0),
            reg.exec() != 0,
            reg.privileged() != 0,
        ))
    }

    /// This request lowered to what the device's own PASID capability supports (unchanged
    /// for a device without one): what an automatic derive asks for.
    #[must_use]
    pub fn within_device(self, dump: &[u8]) -> Self {
        match Self::device_limit(dump) {
            Some((w, x, p)) => Self {
                width: self.width.min(w),
                exec: self.exec && x,
                privileged: self.privileged && p,
                ..self
            },
            None => self,
        }
    }
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
    /// Write the vfio-pci-parity form (development) instead of a pinned persona.
    pub parity: bool,
}

/// Rule of a type-0 header byte in the parity form: what vfio-pci-core lets a user write
/// (command, status, cache line, latency, BIST, interrupt line) is dynamic, the rest pinned,
/// with nothing in the pin masks (the IDs are pinned by the layout).
fn parity_header_rule(off: usize) -> Rule {
    let writable = matches!(off, 0x04..=0x07 | 0x0c | 0x0d | 0x0f | 0x3c);
    if writable {
        Rule::Dynamic
    } else {
        Rule::Pinned
    }
}

/// Sets the rule of `off` from field `f` (or pinned whole when no field names it), with the
/// device's value `v` under the field's pin mask.
fn set_field_rule(m: &mut PersonaModel, off: usize, f: Option<(&fields::Field, usize)>, v: u8) {
    match f {
        Some((f, k)) => match f.kind {
            FieldKind::Pinned => m.set_pass(off, Rule::Pinned, v, 0xff),
            FieldKind::Dynamic(_) => m.set_pass(off, Rule::Dynamic, v, f.pin_byte(k)),
            FieldKind::Emulated { .. } => {
                let (reset, wmask) = f.emulated_byte(k).unwrap_or((0, 0));
                m.set_emulated(off, reset, wmask);
            }
            // Written by apply_layout.
            FieldKind::Bar | FieldKind::Layout => m.set_pass(off, Rule::Pinned, v, 0xff),
        },
        None => m.set_pass(off, Rule::Pinned, v, 0xff),
    }
}

/// Checks the dump size and returns the config size it implies.
fn dump_size(dump: &[u8]) -> Result<usize, Error> {
    match dump.len() {
        pci::CFG_SIZE | pci::CFG_SIZE_EXT => Ok(dump.len()),
        _ => Err(Error::BadDumpSize),
    }
}

/// Derives the persona of device `dev` (plus PASID if requested) into `m`.
///
/// # Errors
///
/// [`Error::BadDumpSize`] for dumps other than 256 or 4096 bytes, [`Error::BarsUnknown`] for a
/// raw config dump, [`Error::BrokenChain`] for a malformed capability chain,
/// [`Error::TooManyCaps`], the PASID placement errors of [`place_pasid`],
/// [`Error::PasidBeyondDevice`] for a PASID request the device's own PASID capability does not
/// support, and
/// [`Error::Invalid`] if the result would not be a valid persona (e.g. overlapping
/// capabilities or a malformed BAR on the device).
pub fn derive(
    dev: &DeviceView<'_>,
    opts: &DeriveOptions<'_>,
    m: &mut PersonaModel,
) -> Result<(), Error> {
    let dump = dev.config;
    let size = dump_size(dump)?;
    let bars = dev.bars.ok_or(Error::BarsUnknown)?;
    m.clear();
    m.config_size = size;
    m.bars = bars;
    m.ids = Ids::from_dump(dump).ok_or(Error::BadDumpSize)?;
    m.version = opts.version;
    match opts.name {
        Some(n) => m.set_name(n)?,
        None => m.set_name(default_name(&m.ids).as_str())?,
    }
    for off in 0..pci::STD_HEADER_SIZEOF {
        let v = dump.get(off).copied().unwrap_or(0);
        if opts.parity {
            m.set_pass(off, parity_header_rule(off), 0, 0);
        } else {
            let f = fields::field_at(fields::HEADER, off)
                .map(|f| (f, off.saturating_sub(usize::from(f.offset))));
            set_field_rule(m, off, f, v);
        }
    }
    if opts.parity {
        // vfio-pci-core gives unclaimed bytes raw read-write access (some devices keep
        // registers between capabilities), and capability bodies its own per-capability
        // rules: forward both, unverified.
        m.set_rule(pci::STD_HEADER_SIZEOF, size, Rule::Dynamic);
    }
    add_chain(dump, Space::Standard, opts.parity, m)?;
    if size > pci::CFG_SIZE {
        add_chain(dump, Space::Extended, opts.parity, m)?;
    }
    if let Some(req) = opts.pasid {
        if !(1..=pci::PASID_MAX_WIDTH).contains(&req.width) {
            return Err(Error::BadPasidWidth(req.width));
        }
        if let Some((width, exec, privileged)) = PasidRequest::device_limit(dump) {
            if req.width > width || (req.exec && !exec) || (req.privileged && !privileged) {
                return Err(Error::PasidBeyondDevice {
                    width,
                    exec,
                    privileged,
                });
            }
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
    dev: &DeviceView<'_>,
    opts: &DeriveOptions<'_>,
    scratch: &mut PersonaModel,
    out: &mut [u8],
) -> Result<usize, Error> {
    derive(dev, opts, scratch)?;
    scratch.encode(out)
}

/// Adds the physical capabilities of one chain: presented where vfio-pci-core would present
/// them (bodies ruled by the field table, or forwarded raw in the parity form), hidden (their
/// whole extent hidden) where it would not. PASID is always hidden. An ID-0 header (the
/// placeholder some devices put at 0x100 when their first extended capability is elsewhere) is
/// no capability: the persona writes its own head.
fn add_chain(dump: &[u8], space: Space, parity: bool, m: &mut PersonaModel) -> Result<(), Error> {
    for c in CapWalker::new_for(dump, space) {
        let c = c.map_err(Error::BrokenChain)?;
        if c.id == 0 {
            continue;
        }
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
                if !parity {
                    let known = fields::cap_fields(space, c.id);
                    for rel in e.header_len()..usize::from(len) {
                        let at = off.saturating_add(rel);
                        let f = known
                            .and_then(|k| fields::field_at(k.fields, rel))
                            .map(|f| (f, rel.saturating_sub(usize::from(f.offset))));
                        set_field_rule(m, at, f, dump.get(at).copied().unwrap_or(0));
                    }
                }
            }
            None => {
                if space == Space::Standard {
                    e.version = 0;
                }
                if parity {
                    // Never forward raw bytes over a capability the persona hides (S2).
                    let (s, end) = fields::extent(dump, &c);
                    m.set_rule(s, end, Rule::Hidden);
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

/// Region occupied by an extended capability of the dump, for placement: its architected
/// extent ([`fields::ext_extent`]).
fn ext_region(dump: &[u8], c: &pci::FoundCap) -> (usize, usize) {
    fields::ext_extent(dump, usize::from(c.offset), c.id)
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
/// chain head. "Free" means clear of the architected extent of every extended capability in the
/// dump, including those vfio-pci-core hides: an extended capability owns its bytes up to the
/// specification's full length for its type (AER 0x48 with its TLP Prefix Log, SR-IOV 0x40,
/// ...; [`fields::ext_arch_len`]), a type not known here up to the next capability header in
/// address order, an ID-0 placeholder its header.
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
