//! What the check knows about a device: its physical config bytes and its BARs and ROM.
//!
//! The kernel builds a [`DeviceView`] from the `pci_dev` (`pci_read_config_dword`,
//! `pci_resource_len` and `pci_resource_flags`); the tool from a dump file: either a raw config
//! dump (256 or 4096 bytes, BARs unknown) or a *device dump* container that carries both:
//!
//! ```text
//! 0x00  [u8; 8]  magic "PVPDUMP1"
//! 0x08  u32      container version = 1
//! 0x0c  u32      config length: 256 or 4096
//! 0x10  7 x 16   BAR 0..5 and the ROM: u64 size, u8 kind (0 unused, 1 io, 2 mem32, 3 mem64,
//!                4 upper half of the 64-bit BAR before it), u8 flags (bit 0 prefetchable),
//!                6 reserved bytes (0)
//! 0x80  config bytes
//! ```
//!
//! `vfio-persona capture BDF` writes one from sysfs (`config` read as root, `resource`).

use super::super::error::Error;
use super::super::pci;

/// Number of BAR slots a persona records: BAR 0..5 and the expansion ROM (index 6).
pub const NBARS: usize = 7;
/// Index of the expansion ROM in the BAR table.
pub const ROM_INDEX: usize = 6;
/// Magic of a device dump container.
pub const DUMP_MAGIC: [u8; 8] = *b"PVPDUMP1";
/// Size of a device dump container's header (before the config bytes).
pub const DUMP_HEADER: usize = 0x80;

/// `IORESOURCE_IO`.
pub const IORESOURCE_IO: u64 = 0x0000_0100;
/// `IORESOURCE_MEM`.
pub const IORESOURCE_MEM: u64 = 0x0000_0200;
/// `IORESOURCE_PREFETCH`.
pub const IORESOURCE_PREFETCH: u64 = 0x0000_2000;
/// `IORESOURCE_MEM_64`.
pub const IORESOURCE_MEM_64: u64 = 0x0010_0000;

/// Type of a BAR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum BarKind {
    /// Not implemented (size 0).
    #[default]
    Unused = 0,
    /// I/O space.
    Io = 1,
    /// 32-bit memory (also the ROM's kind).
    Mem32 = 2,
    /// 64-bit memory; the next BAR slot is its upper half.
    Mem64 = 3,
    /// The upper half of the 64-bit BAR before it.
    Upper = 4,
}

impl BarKind {
    /// Decodes a kind byte.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(BarKind::Unused),
            1 => Some(BarKind::Io),
            2 => Some(BarKind::Mem32),
            3 => Some(BarKind::Mem64),
            4 => Some(BarKind::Upper),
            _ => None,
        }
    }

    /// Name used by the text format and the tool.
    pub const fn name(self) -> &'static str {
        match self {
            BarKind::Unused => "unused",
            BarKind::Io => "io",
            BarKind::Mem32 => "mem32",
            BarKind::Mem64 => "mem64",
            BarKind::Upper => "upper",
        }
    }
}

/// Size and type of one BAR (or the ROM).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BarInfo {
    /// Size in bytes: 0 for unused and upper slots, else a power of two.
    pub size: u64,
    /// Type.
    pub kind: BarKind,
    /// Prefetchable (memory BARs only).
    pub prefetch: bool,
}

impl BarInfo {
    /// The BAR of a Linux resource (`pci_resource_len`, `pci_resource_flags`); `upper` says the
    /// slot is the upper half of the 64-bit BAR before it.
    pub fn from_resource(len: u64, flags: u64, upper: bool, rom: bool) -> BarInfo {
        if upper {
            return BarInfo {
                kind: BarKind::Upper,
                ..BarInfo::default()
            };
        }
        if len == 0 {
            return BarInfo::default();
        }
        let kind = if rom {
            BarKind::Mem32
        } else if flags & IORESOURCE_IO != 0 {
            BarKind::Io
        } else if flags & IORESOURCE_MEM_64 != 0 {
            BarKind::Mem64
        } else if flags & IORESOURCE_MEM != 0 {
            BarKind::Mem32
        } else {
            return BarInfo::default();
        };
        BarInfo {
            size: len,
            kind,
            prefetch: !rom && kind != BarKind::Io && flags & IORESOURCE_PREFETCH != 0,
        }
    }

    /// The whole table from the seven resources (BAR 0..5, ROM), as the kernel numbers them.
    pub fn table_from_resources(res: &[(u64, u64); NBARS]) -> [BarInfo; NBARS] {
        let mut out = [BarInfo::default(); NBARS];
        let mut upper = false;
        for (i, (slot, &(len, flags))) in out.iter_mut().zip(res.iter()).enumerate() {
            let rom = i == ROM_INDEX;
            *slot = BarInfo::from_resource(len, flags, upper && !rom, rom);
            upper = !rom && !upper && slot.kind == BarKind::Mem64;
        }
        out
    }

    /// The config-register bytes that present this BAR: the reset value (type bits) and the
    /// write mask (the address bits of `size`), for BAR slot `index` (6: ROM). The upper half of
    /// a 64-bit BAR is writable above the BAR's size.
    pub fn register(table: &[BarInfo; NBARS], index: usize) -> ([u8; 4], [u8; 4]) {
        let b = table.get(index).copied().unwrap_or_default();
        let low_mask = |size: u64| -> u32 {
            let m = !size.saturating_sub(1);
            u32::try_from(m & 0xffff_ffff).unwrap_or(0)
        };
        let (value, mask): (u32, u32) = match b.kind {
            BarKind::Unused => (0, 0),
            BarKind::Io => (0x1, low_mask(b.size) & !0x3),
            BarKind::Mem32 if index == ROM_INDEX => (0, (low_mask(b.size) & !0x7ff) | 1),
            BarKind::Mem32 => (u32::from(b.prefetch) << 3, low_mask(b.size) & !0xf),
            BarKind::Mem64 => (0x4 | (u32::from(b.prefetch) << 3), low_mask(b.size) & !0xf),
            BarKind::Upper => {
                let lo = index
                    .checked_sub(1)
                    .and_then(|i| table.get(i))
                    .copied()
                    .unwrap_or_default();
                let m = !lo.size.saturating_sub(1) >> 32;
                (0, u32::try_from(m & 0xffff_ffff).unwrap_or(0))
            }
        };
        (value.to_le_bytes(), mask.to_le_bytes())
    }

    /// True when this is a well-formed persona BAR in slot `index` of `table`.
    pub fn valid(table: &[BarInfo; NBARS], index: usize) -> bool {
        let Some(b) = table.get(index).copied() else {
            return false;
        };
        let pow2 = b.size.is_power_of_two();
        let prev64 = index
            .checked_sub(1)
            .and_then(|i| table.get(i))
            .is_some_and(|p| p.kind == BarKind::Mem64);
        let rom = index == ROM_INDEX;
        let ok = match b.kind {
            BarKind::Unused | BarKind::Upper => b.size == 0 && !b.prefetch,
            BarKind::Io => !rom && pow2 && (4..=0x100).contains(&b.size) && !b.prefetch,
            BarKind::Mem32 if rom => pow2 && (0x800..=1 << 31).contains(&b.size) && !b.prefetch,
            BarKind::Mem32 => pow2 && (16..=1 << 31).contains(&b.size),
            BarKind::Mem64 => !rom && index < 5 && pow2 && b.size >= 16,
        };
        // An upper slot follows a 64-bit BAR and only there; the ROM is never an upper slot.
        ok && ((b.kind == BarKind::Upper) == (prev64 && !rom))
    }
}

/// A device as the check sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceView<'a> {
    /// Physical config bytes (256 or 4096), read with the PCI core's accessors, not through
    /// vfio-pci-core (which hides capabilities).
    pub config: &'a [u8],
    /// BAR 0..5 and the ROM; `None` when unknown (a raw config dump).
    pub bars: Option<[BarInfo; NBARS]>,
}

impl<'a> DeviceView<'a> {
    /// A view of a raw config dump, BARs unknown.
    pub const fn config_only(config: &'a [u8]) -> Self {
        Self { config, bars: None }
    }

    /// Parses a dump file: a device dump container, or a raw config dump of 256 or 4096 bytes.
    ///
    /// # Errors
    ///
    /// [`Error::BadDumpSize`] for anything else.
    pub fn parse_dump(data: &'a [u8]) -> Result<Self, Error> {
        if data.get(..8) != Some(&DUMP_MAGIC[..]) {
            return match data.len() {
                pci::CFG_SIZE | pci::CFG_SIZE_EXT => Ok(Self::config_only(data)),
                _ => Err(Error::BadDumpSize),
            };
        }
        if pci::rd32(data, 8) != Some(1) {
            return Err(Error::BadDumpSize);
        }
        let len = usize::try_from(pci::rd32(data, 12).ok_or(Error::BadDumpSize)?)
            .map_err(|_| Error::BadDumpSize)?;
        if len != pci::CFG_SIZE && len != pci::CFG_SIZE_EXT {
            return Err(Error::BadDumpSize);
        }
        let config = data
            .get(DUMP_HEADER..)
            .filter(|c| c.len() == len)
            .ok_or(Error::BadDumpSize)?;
        let mut bars = [BarInfo::default(); NBARS];
        for (i, b) in bars.iter_mut().enumerate() {
            let at = 0x10usize.saturating_add(i.saturating_mul(16));
            let lo = u64::from(pci::rd32(data, at).ok_or(Error::BadDumpSize)?);
            let hi = u64::from(pci::rd32(data, at.saturating_add(4)).ok_or(Error::BadDumpSize)?);
            let kind = pci::rd8(data, at.saturating_add(8))
                .and_then(BarKind::from_u8)
                .ok_or(Error::BadDumpSize)?;
            let flags = pci::rd8(data, at.saturating_add(9)).ok_or(Error::BadDumpSize)?;
            if flags & !1 != 0 {
                return Err(Error::BadDumpSize);
            }
            *b = BarInfo {
                size: (hi << 32) | lo,
                kind,
                prefetch: flags & 1 != 0,
            };
        }
        Ok(Self {
            config,
            bars: Some(bars),
        })
    }

    /// Writes the device dump container of `config` and `bars` into `out`; returns its length.
    ///
    /// # Errors
    ///
    /// [`Error::BadDumpSize`] for a config of another size, [`Error::BufferTooSmall`].
    pub fn encode_dump(
        config: &[u8],
        bars: &[BarInfo; NBARS],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        if config.len() != pci::CFG_SIZE && config.len() != pci::CFG_SIZE_EXT {
            return Err(Error::BadDumpSize);
        }
        let total = DUMP_HEADER.saturating_add(config.len());
        let out = out.get_mut(..total).ok_or(Error::BufferTooSmall)?;
        out.fill(0);
        let mut put = |at: usize, b: &[u8]| {
            if let Some(d) = out.get_mut(at..at.saturating_add(b.len())) {
                d.copy_from_slice(b);
            }
        };
        put(0, &DUMP_MAGIC);
        put(8, &1u32.to_le_bytes());
        put(12, &u32::try_from(config.len()).unwrap_or(0).to_le_bytes());
        for (i, b) in bars.iter().enumerate() {
            let at = 0x10usize.saturating_add(i.saturating_mul(16));
            put(at, &b.size.to_le_bytes());
            put(at.saturating_add(8), &[b.kind as u8, u8::from(b.prefetch)]);
        }
        put(DUMP_HEADER, config);
        Ok(total)
    }
}
