//! The live commands: `dump --live`, `check --live`, `bind` and `access`, on a device bound to
//! persona-vfio-pci (or any VFIO PCI driver, for `dump` and `access`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use persona_core::persona::check::{check_with, IommuPasid};
use persona_core::persona::device::ROM_INDEX;
use persona_core::persona::{BarInfo, DeviceView, PersonaRef};
use persona_core::sha256::Sha256;
use serde_json::{json, Value};

use crate::input::load_blob;
use crate::live::{self, Descriptor, Mismatch, Op};
pub use crate::output::Outcome;
use crate::output::{emit as out, print_json};
use crate::render::{bar_json, check_text, hex, hexdump};
use crate::vfio::{self, Device, Region};

/// What a VFIO user sees of a device: its config region and the published persona.
pub struct LiveView {
    /// The normalised PCI address.
    pub bdf: String,
    /// The `vfioN` name.
    pub cdev: String,
    /// The whole config region.
    pub config: Vec<u8>,
    /// The descriptor region: `None` when the device has none, else its parse result.
    pub descriptor: Option<Result<Descriptor, String>>,
    /// Sizes of the BAR 0..5 and ROM regions (`VFIO_DEVICE_GET_REGION_INFO`).
    pub regions: Vec<u64>,
}

/// Reads the physical device from sysfs: `config` (all of it only as root) and `resource`, as
/// a device dump container.
///
/// # Errors
///
/// A message when the files cannot be read or config space is incomplete (not root).
pub fn capture_bytes(bdf: &str) -> Result<Vec<u8>, String> {
    let dir = vfio::sysfs_dev(bdf);
    let config = std::fs::read(dir.join("config"))
        .map_err(|e| format!("{bdf}: reading sysfs config: {e}"))?;
    if config.len() != 256 && config.len() != 4096 {
        return Err(format!(
            "{bdf}: sysfs config gave {} bytes; read it as root to get all of config space",
            config.len()
        ));
    }
    let res = std::fs::read_to_string(dir.join("resource"))
        .map_err(|e| format!("{bdf}: reading sysfs resource: {e}"))?;
    let bars = BarInfo::table_from_resources(&live::parse_resource(&res)?);
    let mut out = vec![0u8; 0x80 + config.len()];
    let n = DeviceView::encode_dump(&config, &bars, &mut out).map_err(|e| e.to_string())?;
    out.truncate(n);
    Ok(out)
}

/// `capture BDF -o FILE`.
///
/// # Errors
///
/// Exit-2 messages.
pub fn capture(bdf: &str, output: &Path, json: bool) -> Outcome {
    let bdf = live::normalize_bdf(bdf)?;
    let dump = capture_bytes(&bdf)?;
    std::fs::write(output, &dump).map_err(|e| format!("{}: {e}", output.display()))?;
    if json {
        let dev = DeviceView::parse_dump(&dump).map_err(|e| e.to_string())?;
        let bars = dev.bars.unwrap_or_default();
        print_json(&json!({
            "bdf": bdf,
            "output": output.display().to_string(),
            "config_size": dev.config.len(),
            "bars": bars.iter().take(ROM_INDEX).map(bar_json).collect::<Vec<_>>(),
            "rom_size": bars.get(ROM_INDEX).map_or(0, |b| b.size),
        }))?;
    }
    Ok(true)
}

/// Reads the descriptor region of an open device, if it has one.
fn read_descriptor(d: &Device, bdf: &str) -> Result<Option<Result<Descriptor, String>>, String> {
    let vendor = std::fs::read_to_string(vfio::sysfs_dev(bdf).join("vendor"))
        .ok()
        .and_then(|s| u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok())
        .ok_or_else(|| format!("{bdf}: cannot read its vendor ID"))?;
    let Some(r) = d.find_region(live::REGION_TYPE_PCI_VENDOR | vendor, live::DESC_SUBTYPE)? else {
        return Ok(None);
    };
    let size = usize::try_from(r.size).unwrap_or(0).min(1 << 20);
    let data = match d.read(&r, 0, size) {
        Ok(b) => b,
        Err(e) => return Ok(Some(Err(format!("reading it: {e}")))),
    };
    Ok(Some(live::parse_descriptor(&data, r.size)))
}

/// Opens `bdf` through VFIO and reads what a user sees.
///
/// # Errors
///
/// A message for a missing device, a device without VFIO, or a failed access.
pub fn read_live(bdf: &str) -> Result<LiveView, String> {
    let bdf = live::normalize_bdf(bdf)?;
    let d = Device::open(&bdf)?;
    let cfg = d.region(vfio::CONFIG_REGION_INDEX)?;
    let config = d.read_all(&cfg)?;
    let descriptor = read_descriptor(&d, &bdf)?;
    let regions = (0..7)
        .map(|i| d.region(i).map(|r| r.size).unwrap_or(0))
        .collect();
    Ok(LiveView {
        bdf,
        cdev: d.cdev.clone(),
        config,
        descriptor,
        regions,
    })
}

fn persona_summary(desc: &Option<Result<Descriptor, String>>) -> Value {
    match desc {
        None => Value::Null,
        Some(Err(e)) => json!({"error": e}),
        Some(Ok(d)) => match PersonaRef::parse(&d.blob) {
            Ok(p) => json!({
                "name": p.name(),
                "version": format!("{}.{}", p.version().major, p.version().minor),
                "selector": live::selector(&p),
                "digest": hex(&d.digest),
                "blob_size": d.blob.len(),
            }),
            Err(e) => json!({"error": e.to_string()}),
        },
    }
}

/// `dump --live BDF [--json] [--raw -o FILE] [--blob FILE]`.
///
/// # Errors
///
/// Exit-2 messages.
pub fn dump(bdf: &str, json: bool, output: Option<&Path>, blob_out: Option<&Path>) -> Outcome {
    let v = read_live(bdf)?;
    if let Some(p) = output {
        std::fs::write(p, &v.config).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = blob_out {
        match &v.descriptor {
            Some(Ok(d)) => {
                std::fs::write(p, &d.blob).map_err(|e| format!("{}: {e}", p.display()))?
            }
            _ => return Err(format!("{}: no valid persona descriptor region", v.bdf)),
        }
    }
    let persona = persona_summary(&v.descriptor);
    if json {
        let j = json!({
            "bdf": v.bdf,
            "vfio": v.cdev,
            "config_size": v.config.len(),
            "config": hex(&v.config),
            "persona": persona,
        });
        print_json(&j)?;
    } else if output.is_none() {
        let mut s = format!(
            "device {} ({}), config region {} bytes\n",
            v.bdf,
            v.cdev,
            v.config.len()
        );
        match (&v.descriptor, &persona) {
            (None, _) => s.push_str("persona: no descriptor region\n"),
            (Some(Err(e)), _) => s.push_str(&format!("persona: bad descriptor region: {e}\n")),
            (Some(Ok(_)), p) => s.push_str(&format!(
                "persona {} sha256 {}\n",
                p["selector"].as_str().unwrap_or("?"),
                p["digest"].as_str().unwrap_or("?")
            )),
        }
        s.push_str(&hexdump(&v.config));
        out(&s);
    }
    // A descriptor region that is there but wrong is a failed check, not bad input.
    Ok(!matches!(v.descriptor, Some(Err(_))))
}

/// The result of comparing a live view with a persona.
pub struct LiveCheck {
    /// The persona compared with (selector).
    pub persona: String,
    /// Its digest.
    pub digest: [u8; 32],
    /// Problems with the descriptor region (missing, invalid, another persona).
    pub descriptor: Vec<String>,
    /// Differences in config space and region sizes.
    pub mismatches: Vec<Mismatch>,
    /// The core check of the persona against the physical device (the kernel's verdict).
    pub physical: Vec<String>,
}

/// Compares a live view with `blob` (or, without one, with the published persona).
///
/// # Errors
///
/// When there is nothing to compare with, or the blob is invalid.
pub fn check_view(
    v: &LiveView,
    blob: Option<&[u8]>,
    physical: Option<&DeviceView<'_>>,
) -> Result<LiveCheck, String> {
    let mut descriptor = Vec::new();
    let blob = match (blob, &v.descriptor) {
        (Some(b), _) => b,
        (None, Some(Ok(d))) => &d.blob,
        (None, Some(Err(e))) => {
            return Err(format!(
                "{}: bad persona descriptor region ({e}); give --persona",
                v.bdf
            ))
        }
        (None, None) => {
            return Err(format!(
                "{}: no persona descriptor region (not bound to persona-vfio-pci?); give --persona",
                v.bdf
            ))
        }
    };
    let p = PersonaRef::parse(blob).map_err(|e| format!("invalid persona: {e}"))?;
    let digest = Sha256::digest(blob);
    match &v.descriptor {
        None => descriptor.push("the device has no persona descriptor region".into()),
        Some(Err(e)) => descriptor.push(format!("bad persona descriptor region: {e}")),
        Some(Ok(d)) if d.digest != digest => {
            let other = PersonaRef::parse(&d.blob)
                .map(|q| live::selector(&q))
                .unwrap_or_default();
            descriptor.push(format!(
                "the descriptor region publishes {other} ({}), not {} ({})",
                hex(&d.digest),
                live::selector(&p),
                hex(&digest)
            ));
        }
        Some(Ok(_)) => {}
    }
    let mut mismatches = live::compare(&p, &v.config);
    mismatches.extend(live::compare_regions(&p, &v.regions));
    let mut phys = Vec::new();
    if let Some(dev) = physical {
        // PASID is the IOMMU's to allow; the kernel checked it at selection.
        let iommu = IommuPasid {
            max_pasid_log2: 20,
            exec: true,
            privileged: true,
        };
        check_with(&p, dev, &iommu, &mut |r| {
            phys.push(format!("device: {}", check_text(&r)));
        });
    }
    Ok(LiveCheck {
        persona: live::selector(&p),
        digest,
        descriptor,
        mismatches,
        physical: phys,
    })
}

/// `check --live BDF [--persona FILE] [--json]`.
///
/// # Errors
///
/// Exit-2 messages.
pub fn check(bdf: &str, persona: Option<&PathBuf>, json: bool) -> Outcome {
    let blob = persona.map(|p| load_blob(p)).transpose()?;
    let v = read_live(bdf)?;
    // The physical device as the kernel's check sees it (sysfs, as root).
    let dump = capture_bytes(&v.bdf)?;
    let dev = DeviceView::parse_dump(&dump).map_err(|e| e.to_string())?;
    let c = check_view(&v, blob.as_deref(), Some(&dev))?;
    let ok = c.descriptor.is_empty() && c.mismatches.is_empty() && c.physical.is_empty();
    let reasons: Vec<String> = c
        .descriptor
        .iter()
        .cloned()
        .chain(c.physical.iter().cloned())
        .chain(c.mismatches.iter().map(Mismatch::text))
        .collect();
    if json {
        let j = json!({
            "ok": ok,
            "bdf": v.bdf,
            "persona": c.persona,
            "digest": hex(&c.digest),
            "reasons": reasons,
        });
        print_json(&j)?;
    } else {
        let mut s = String::new();
        for r in &reasons {
            s.push_str(r);
            s.push('\n');
        }
        s.push_str(&format!(
            "{} {} {}\n",
            v.bdf,
            c.persona,
            if ok { "identical" } else { "differs" }
        ));
        out(&s);
    }
    Ok(ok)
}

/// `access --live BDF OP...`: one open session running reads, writes, resets and shell
/// commands in order. Exit 1 when a device access or a shell command failed. Each step prints
/// one line as it runs; with `json`, the lines are collected into one document at the end (a
/// shell command's output then goes into it too, not to stdout).
///
/// # Errors
///
/// Exit-2 messages (bad steps, device missing).
pub fn access(bdf: &str, steps: &[String], json: bool) -> Outcome {
    let ops = steps
        .iter()
        .map(|s| live::parse_op(s))
        .collect::<Result<Vec<Op>, String>>()?;
    let bdf = live::normalize_bdf(bdf)?;
    let d = Device::open(&bdf)?;
    let cfg: Region = d.region(vfio::CONFIG_REGION_INDEX)?;
    let mut ok = true;
    let mut done = Vec::new();
    for (op, step) in ops.iter().zip(steps) {
        let (line, good, shell_out) = access_step(&d, &cfg, op, json)?;
        ok &= good;
        if json {
            let mut j = json!({"step": step, "ok": good, "result": line});
            if let Some(o) = shell_out {
                j["output"] = json!(o);
            }
            done.push(j);
        } else if !line.is_empty() {
            out(&format!("{line}\n"));
        }
    }
    if json {
        print_json(&json!({"bdf": bdf, "vfio": d.cdev, "ok": ok, "steps": done}))?;
    }
    Ok(ok)
}

/// Runs one access step: its result line (empty for a shell command that succeeded), whether
/// it succeeded, and with `capture` a shell command's output.
fn access_step(
    d: &Device,
    cfg: &Region,
    op: &Op,
    capture: bool,
) -> Result<(String, bool, Option<String>), String> {
    let r = match op {
        Op::Read { offset, size } => match d.read(cfg, u64::from(*offset), usize::from(*size)) {
            Ok(b) if b.len() == usize::from(*size) => {
                let mut v = [0u8; 4];
                v[..b.len()].copy_from_slice(&b);
                let w = usize::from(*size) * 2;
                (
                    format!("r {offset:#05x} {size} 0x{:0w$x}", u32::from_le_bytes(v)),
                    true,
                )
            }
            Ok(b) => (
                format!("r {offset:#05x} {size} short read ({} bytes)", b.len()),
                false,
            ),
            Err(e) => (format!("r {offset:#05x} {size} error: {e}"), false),
        },
        Op::Write {
            offset,
            size,
            value,
        } => {
            let b = value.to_le_bytes();
            match d.write(cfg, u64::from(*offset), &b[..usize::from(*size)]) {
                Ok(n) if n == usize::from(*size) => {
                    (format!("w {offset:#05x} {size} {value:#x}"), true)
                }
                Ok(n) => (
                    format!("w {offset:#05x} {size} short write ({n} bytes)"),
                    false,
                ),
                Err(e) => (format!("w {offset:#05x} {size} error: {e}"), false),
            }
        }
        Op::Size { region } => match d.region(*region) {
            Ok(r) => (format!("size {region} {:#x}", r.size), true),
            Err(e) => (format!("size {region} error: {e}"), false),
        },
        Op::RegionRead {
            region,
            offset,
            size,
        } => {
            let r = d.region(*region)?;
            match d.read(&r, *offset, usize::from(*size)) {
                Ok(b) if b.len() == usize::from(*size) => {
                    let mut v = [0u8; 8];
                    v[..b.len()].copy_from_slice(&b);
                    (
                        format!(
                            "br {region} {offset:#x} {size} {:#x}",
                            u64::from_le_bytes(v)
                        ),
                        true,
                    )
                }
                Ok(b) => (
                    format!(
                        "br {region} {offset:#x} {size} short read ({} bytes)",
                        b.len()
                    ),
                    false,
                ),
                Err(e) => (format!("br {region} {offset:#x} {size} error: {e}"), false),
            }
        }
        Op::RegionWrite {
            region,
            offset,
            size,
            value,
        } => {
            let r = d.region(*region)?;
            let b = value.to_le_bytes();
            match d.write(&r, *offset, &b[..usize::from(*size)]) {
                Ok(n) if n == usize::from(*size) => {
                    (format!("bw {region} {offset:#x} {size} {value:#x}"), true)
                }
                Ok(n) => (
                    format!("bw {region} {offset:#x} {size} short write ({n} bytes)"),
                    false,
                ),
                Err(e) => (format!("bw {region} {offset:#x} {size} error: {e}"), false),
            }
        }
        Op::Mmap {
            region,
            offset,
            len,
        } => {
            let r = d.region(*region)?;
            let len_us = usize::try_from(*len).map_err(|_| "mmap length".to_string())?;
            match d.try_mmap(&r, *offset, len_us) {
                Ok(()) => (format!("mmap {region} {offset:#x} {len:#x} ok"), true),
                Err(e) => (
                    format!("mmap {region} {offset:#x} {len:#x} error: {e}"),
                    false,
                ),
            }
        }
        Op::Ioeventfd {
            region,
            offset,
            size,
        } => match d.try_ioeventfd(*region, *offset, u32::from(*size)) {
            Ok(()) => (format!("ioeventfd {region} {offset:#x} {size} ok"), true),
            Err(e) => (
                format!("ioeventfd {region} {offset:#x} {size} error: {e}"),
                false,
            ),
        },
        Op::Reset => match d.reset() {
            Ok(()) => ("reset".to_string(), true),
            Err(e) => (format!("reset error: {e}"), false),
        },
        Op::Shell(c) => {
            let _ = std::io::stdout().flush();
            let mut cmd = std::process::Command::new("sh");
            cmd.arg("-c").arg(c);
            let (status, output) = if capture {
                match cmd.output() {
                    Ok(o) => {
                        let mut t = String::from_utf8_lossy(&o.stdout).into_owned();
                        t.push_str(&String::from_utf8_lossy(&o.stderr));
                        (Ok(o.status), Some(t))
                    }
                    Err(e) => (Err(e), None),
                }
            } else {
                (cmd.status(), None)
            };
            return Ok(match status {
                Ok(s) if s.success() => (String::new(), true, output),
                Ok(s) => (format!("sh {c:?}: {s}"), false, output),
                Err(e) => (format!("sh {c:?}: {e}"), false, output),
            });
        }
    };
    Ok((r.0, r.1, None))
}

fn driver_of(dev: &Path) -> Option<String> {
    std::fs::read_link(dev.join("driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// Writes `val` to sysfs attribute `path` (no create, no truncate), as one write.
fn sysfs_write(path: &Path, val: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(val.as_bytes())
}

/// `bind BDF [--persona SEL] [--driver DRV]`: moves the function to the driver through
/// `driver_override` and selects the persona.
///
/// # Errors
///
/// Exit-2 messages for a missing device or driver, a failed bind, a refused persona.
pub fn bind(bdf: &str, persona: Option<&str>, driver: &str, json: bool) -> Outcome {
    let bdf = live::normalize_bdf(bdf)?;
    if let Some(s) = persona {
        live::check_selector(s)?;
    }
    let dev = vfio::sysfs_dev(&bdf);
    if !dev.exists() {
        return Err(format!("no PCI function {bdf}"));
    }
    let drv_dir = Path::new("/sys/bus/pci/drivers").join(driver);
    if !drv_dir.exists() {
        return Err(format!(
            "driver {driver} is not registered ({} missing): load its module first",
            drv_dir.display()
        ));
    }
    let w = |p: &Path, v: &str| sysfs_write(p, v).map_err(|e| format!("{}: {e}", p.display()));
    if driver_of(&dev).as_deref() != Some(driver) {
        if driver_of(&dev).is_some() {
            w(&dev.join("driver").join("unbind"), &bdf)?;
        }
        w(&dev.join("driver_override"), driver)?;
        // drivers_probe fails when no driver takes the device; the check below says so.
        let _ = sysfs_write(Path::new("/sys/bus/pci/drivers_probe"), &bdf);
        let now = driver_of(&dev);
        if now.as_deref() != Some(driver) {
            return Err(format!(
                "{bdf} did not bind to {driver} (bound to {}); see dmesg",
                now.as_deref().unwrap_or("nothing")
            ));
        }
    }
    let attr = dev.join("persona");
    if let Some(sel) = persona {
        if !attr.exists() {
            return Err(format!(
                "{bdf} is bound to {driver}, which has no persona attribute ({} missing)",
                attr.display()
            ));
        }
        if let Err(e) = sysfs_write(&attr, sel) {
            let code = e.raw_os_error().unwrap_or(0);
            let now = std::fs::read_to_string(&attr).unwrap_or_default();
            return Err(format!(
                "{bdf}: persona {sel} refused: {e}: {}; still in force: {}",
                live::persona_errno_text(code),
                now.trim()
            ));
        }
    }
    let now = std::fs::read_to_string(&attr)
        .ok()
        .map(|s| s.trim().to_string());
    if json {
        print_json(&json!({"bdf": bdf, "driver": driver, "persona": now}))?;
    } else {
        match now {
            Some(s) => out(&format!("{bdf} {driver} {s}\n")),
            None => out(&format!("{bdf} {driver}\n")),
        }
    }
    Ok(true)
}
