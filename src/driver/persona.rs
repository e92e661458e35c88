// SPDX-License-Identifier: GPL-2.0

//! Personas on a device: the auto persona derived at bind, personas loaded through the firmware
//! loader, the core's check before anything is accepted, and the overlay built for the active one.

use crate::persona_core::{
    overlay::OverlayMap,
    persona::{
        check::{check_with, IommuPasid},
        derive::{derive_blob, DeriveOptions, PasidRequest},
        descriptor,
        model::PersonaModel,
        BarInfo, CapEntry, DeviceView, Ids, PersonaRef, Version, MAX_NAME, NBARS, SPACE,
    },
};
use crate::{
    sys::Firmware,
    vfio::{CoreDevice, PasidStatus},
};
use kernel::{device, prelude::*, str::CString};

/// Subtype of the persona descriptor region (`"PERS"`), under the vendor region type; the
/// region's format is the core's `persona::descriptor`.
pub(crate) const DESC_SUBTYPE: u32 = descriptor::SUBTYPE;
/// Largest blob accepted from the firmware loader (a persona is at most a few KiB).
const MAX_BLOB: usize = 16 * 1024;
/// Largest name@major.minor a user can write.
const MAX_SELECTOR: usize = MAX_NAME + 16;
/// Most reasons written to the kernel log for one refusal (the first differing fields).
const MAX_LOGGED: usize = 4;

/// A validated persona and the overlay built from it for this device.
pub(crate) struct Active {
    /// The canonical blob; the core parsed and checked it.
    blob: KVVec<u8>,
    /// Per-byte lookup of the presented config space.
    pub(crate) map: KBox<OverlayMap>,
    /// The width of the persona's PASID capability, if it has one (read at every attach).
    pasid_width: Option<u8>,
}

impl Active {
    /// Validates `blob` against the device (`view`, `pasid`) and builds its overlay.
    ///
    /// # Errors
    ///
    /// `EINVAL` with the reasons in words in the kernel log (the first fields that differ:
    /// offset, register, device and persona values) when the blob is malformed or the device
    /// cannot present it; `ENOMEM`.
    pub(crate) fn new(
        dev: &device::Device,
        blob: KVVec<u8>,
        view: &DeviceView<'_>,
        pasid: PasidStatus,
    ) -> Result<Self> {
        let p = PersonaRef::parse(&blob).map_err(|e| {
            dev_err!(
                dev,
                "persona refused: malformed blob: {}\n",
                format_args!("{e}")
            );
            EINVAL
        })?;
        if !check_logged(dev, &p, view, pasid, "refused for this device") {
            return Err(EINVAL);
        }
        if p.forwards_interrupt_line() {
            // Its meaning is kept (older derives and the parity form say so), never silently.
            dev_warn!(
                dev,
                "persona {}@{}.{} forwards the interrupt line (0x3c): it shows the host's                  routing and migration does not carry it; derive the persona again to have it                  emulated\n",
                p.name(),
                p.version().major,
                p.version().minor
            );
        }
        let pasid_width = p.pasid().map(|i| i.width);
        let mut map = KBox::init(pin_init::init_zeroed::<OverlayMap>(), GFP_KERNEL)?;
        map.build(&p, view.config).map_err(|e| {
            dev_err!(
                dev,
                "persona refused: its overlay does not build: {}\n",
                format_args!("{e}")
            );
            EINVAL
        })?;
        Ok(Active {
            blob,
            map,
            pasid_width,
        })
    }

    /// Checks the persona again against the device as it is now (`view`: at open, after a
    /// reset) and rebuilds the overlay for it.
    ///
    /// # Errors
    ///
    /// `EIO` with the reasons in words in the kernel log when the device no longer matches.
    pub(crate) fn recheck(
        &mut self,
        dev: &device::Device,
        view: &DeviceView<'_>,
        pasid: PasidStatus,
        when: &str,
    ) -> Result {
        let p = PersonaRef::parse(&self.blob).map_err(|_| EINVAL)?;
        if !check_logged(dev, &p, view, pasid, when) {
            return Err(EIO);
        }
        self.map.build(&p, view.config).map_err(|e| {
            dev_err!(
                dev,
                "persona overlay does not build {}: {}\n",
                when,
                format_args!("{e}")
            );
            EIO
        })
    }

    /// The width of the persona's PASID capability; `None` without one.
    pub(crate) fn pasid_width(&self) -> Option<u8> {
        self.pasid_width
    }

    /// Size each BAR (0..5) and the ROM is presented at.
    pub(crate) fn bar_sizes(&self) -> [u64; NBARS] {
        self.persona()
            .map(|p| p.bars().map(|b| b.size))
            .unwrap_or([0; NBARS])
    }

    /// The parsed persona (the blob was validated when this value was made).
    pub(crate) fn persona(&self) -> Result<PersonaRef<'_>> {
        PersonaRef::parse(&self.blob).map_err(|_| EINVAL)
    }

    /// Size of the descriptor region.
    pub(crate) fn desc_len(&self) -> usize {
        descriptor::region_len(self.blob.len())
    }

    /// Copies bytes of the descriptor region, from `offset`, into `out`; returns how many.
    pub(crate) fn desc_read(&self, offset: usize, out: &mut [u8]) -> Result<usize> {
        let p = self.persona()?;
        let head = descriptor::header(self.blob.len(), &p.digest()).ok_or(EINVAL)?;
        Ok(descriptor::read(&head, &self.blob, offset, out))
    }
}

/// Runs the core's check, logging up to [`MAX_LOGGED`] reasons in words; true when it passes.
fn check_logged(
    dev: &device::Device,
    p: &PersonaRef<'_>,
    view: &DeviceView<'_>,
    pasid: PasidStatus,
    when: &str,
) -> bool {
    let iommu = iommu_pasid(pasid);
    let mut n = 0usize;
    let v = p.version();
    let ok = check_with(p, view, &iommu, &mut |r| {
        n = n.saturating_add(1);
        if n <= MAX_LOGGED {
            dev_err!(
                dev,
                "persona {}@{}.{} {}: {}\n",
                p.name(),
                v.major,
                v.minor,
                when,
                format_args!("{r}")
            );
        }
    });
    if n > MAX_LOGGED {
        dev_err!(
            dev,
            "persona {}@{}.{} {}: {} more reason(s)\n",
            p.name(),
            v.major,
            v.minor,
            when,
            n - MAX_LOGGED
        );
    }
    ok
}

/// The device as the check sees it: its physical config and its BAR/ROM resources.
pub(crate) fn bar_table(res: &[(u64, u64); NBARS]) -> [BarInfo; NBARS] {
    BarInfo::table_from_resources(res)
}

/// What `IOMMU_GET_HW_INFO` would report for the function.
fn iommu_pasid(s: PasidStatus) -> IommuPasid {
    IommuPasid {
        max_pasid_log2: u8::try_from(s.max_pasids.checked_ilog2().unwrap_or(0)).unwrap_or(0),
        exec: s.control & 0x2 != 0,
        privileged: s.control & 0x4 != 0,
    }
}

/// Allocates an empty persona model in place (13 KiB: never on the stack).
fn new_model() -> Result<KBox<PersonaModel>> {
    KBox::init(
        try_init!(PersonaModel {
            name: [0; MAX_NAME],
            name_len: 0,
            version: Version::default(),
            ids: Ids::default(),
            emulated_ids: 0,
            config_size: 0,
            caps <- pin_init::init_array_from_fn(|_| CapEntry::default()),
            n_caps: 0,
            bars: [BarInfo::default(); NBARS],
            rule <- pin_init::init_zeroed(),
            value <- pin_init::init_zeroed(),
            mask <- pin_init::init_zeroed(),
        }),
        GFP_KERNEL,
    )
}

/// The auto persona: the pinned persona of the device, plus a synthesized PASID capability when
/// the device has extended config space and the IOMMU gives it PASIDs.
///
/// # Errors
///
/// `EINVAL` with the reason in words in the kernel log when no persona can be derived.
pub(crate) fn auto_blob(
    dev: &device::Device,
    view: &DeviceView<'_>,
    pasid: PasidStatus,
) -> Result<KVVec<u8>> {
    let iommu = iommu_pasid(pasid);
    let dump = view.config;
    let pasid = (dump.len() == SPACE && iommu.max_pasid_log2 > 0).then_some(
        PasidRequest {
            width: iommu.max_pasid_log2.min(20),
            exec: iommu.exec,
            privileged: iommu.privileged,
            offset: None,
        }
        .within_device(dump),
    );
    let opts = DeriveOptions {
        name: None,
        version: Version { major: 1, minor: 0 },
        pasid,
        parity: false,
    };
    let mut model = new_model()?;
    let mut out = KVVec::from_elem(0u8, MAX_BLOB, GFP_KERNEL)?;
    let n = derive_blob(view, &opts, &mut model, &mut out).map_err(|e| {
        dev_err!(
            dev,
            "auto persona: cannot derive one from this device: {}\n",
            format_args!("{e}")
        );
        EINVAL
    })?;
    out.truncate(n);
    Ok(out)
}

/// A persona selection a user wrote to sysfs.
pub(crate) enum Selector<'a> {
    /// Derive from the device.
    Auto,
    /// A named persona from the firmware loader.
    Named {
        /// `name@major.minor`, validated.
        spec: &'a str,
        /// Name part.
        name: &'a str,
        /// Version part.
        version: Version,
    },
}

/// Parses `auto` or `name@major.minor` (one trailing newline allowed).
///
/// # Errors
///
/// `EINVAL` for anything else: names are `[A-Za-z0-9._:-]`, so a selector can never name a file
/// outside the firmware folder.
pub(crate) fn parse_selector(input: &[u8]) -> Result<Selector<'_>> {
    let input = input.strip_suffix(b"\n").unwrap_or(input);
    if input.len() > MAX_SELECTOR {
        return Err(EINVAL);
    }
    let s = core::str::from_utf8(input).map_err(|_| EINVAL)?;
    if s == "auto" {
        return Ok(Selector::Auto);
    }
    let (name, ver) = s.split_once('@').ok_or(EINVAL)?;
    let name_ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    let (major, minor) = ver.split_once('.').ok_or(EINVAL)?;
    let num = |t: &str| -> Result<u16> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(EINVAL);
        }
        t.parse::<u16>().map_err(|_| EINVAL)
    };
    let version = Version {
        major: num(major)?,
        minor: num(minor)?,
    };
    if !name_ok {
        return Err(EINVAL);
    }
    Ok(Selector::Named {
        spec: s,
        name,
        version,
    })
}

/// Loads `persona-vfio-pci/<name>@<major>.<minor>.bin` and checks it holds that persona.
///
/// # Errors
///
/// `ENOENT` when there is no such file, `EFBIG` when it is too large, `EINVAL` when it holds
/// another persona, `ENOMEM`.
pub(crate) fn load_firmware(core: &CoreDevice, sel: &Selector<'_>) -> Result<KVVec<u8>> {
    let dev = core.as_dev();
    let Selector::Named {
        spec,
        name,
        version,
    } = sel
    else {
        return Err(EINVAL);
    };
    let path = CString::try_from_fmt(fmt!("persona-vfio-pci/{}.bin", spec))?;
    let fw = Firmware::request_nowarn(&path, core).inspect_err(|e| {
        dev_err!(
            dev,
            "persona {}: cannot load {:?} ({:?})\n",
            spec,
            &*path,
            e
        );
    })?;
    let data = fw.data();
    if data.len() > MAX_BLOB {
        dev_err!(
            dev,
            "persona {}: file too large ({} bytes)\n",
            spec,
            data.len()
        );
        return Err(EFBIG);
    }
    let mut blob = KVVec::with_capacity(data.len(), GFP_KERNEL)?;
    blob.extend_from_slice(data, GFP_KERNEL)?;
    if let Ok(p) = PersonaRef::parse(&blob) {
        if p.name() != *name || p.version() != *version {
            dev_err!(
                dev,
                "persona {}: the file holds {}@{}.{}\n",
                spec,
                p.name(),
                p.version().major,
                p.version().minor
            );
            return Err(EINVAL);
        }
    }
    Ok(blob)
}
