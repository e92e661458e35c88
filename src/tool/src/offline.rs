//! The offline commands: `derive`, `compile`, `show`, `map`, `diff` and `check` of a persona
//! against a device dump. Nothing here touches a device.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use persona_core::overlay::OverlayMap;
use persona_core::pci;
use persona_core::persona::check::{check_with, IommuPasid};
use persona_core::persona::derive::{derive as core_derive, DeriveOptions, PasidRequest};
use persona_core::persona::device::{BarKind, ROM_INDEX};
use persona_core::persona::diff::diff_with;
use persona_core::persona::{CapKind, DeviceView, IdField, PersonaModel, PersonaRef};
use serde_json::json;

use crate::args::{CheckArgs, ColorWhen, DeriveArgs, MapArgs};
use crate::input::{load_blob, load_dump};
use crate::output::{emit, print_json, write_out, Outcome};
use crate::render::{bar_text, check_text, diff_text, hex, persona_json, space_name};
use crate::{live, map, outln, text};

/// `derive DUMP [...]`.
///
/// # Errors
///
/// Exit-2 messages.
pub fn derive(a: &DeriveArgs, json: bool) -> Outcome {
    let file = load_dump(&a.dump)?;
    let dev = DeviceView::parse_dump(&file).map_err(|e| e.to_string())?;
    if dev.bars.is_none() {
        return Err(format!(
            "{}: a raw config dump has no BAR sizes, which a persona records; capture a device \
             dump with `vfio-persona capture BDF -o FILE`",
            a.dump.display()
        ));
    }
    let dump = dev.config;
    let version = match &a.version {
        Some(v) => text::parse_version(v)?,
        None => persona_core::persona::Version { major: 1, minor: 0 },
    };
    let pasid = if a.pasid.is_some() || a.pasid_offset.is_some() {
        let width = match a.pasid {
            Some(w) if w != 0 => w,
            _ => device_pasid_width(dump).unwrap_or(pci::PASID_MAX_WIDTH),
        };
        Some(PasidRequest {
            width,
            exec: a.pasid_exec,
            privileged: a.pasid_priv,
            offset: a.pasid_offset,
        })
    } else {
        None
    };
    let opts = DeriveOptions {
        name: a.name.as_deref(),
        version,
        pasid,
        parity: a.parity,
    };
    let mut m = Box::<PersonaModel>::default();
    core_derive(&dev, &opts, &mut m).map_err(|e| format!("{}: {e}", a.dump.display()))?;
    let blob = text::encode(&m)?;
    let p = PersonaRef::parse(&blob).map_err(|e| e.to_string())?;
    let data = if a.binary {
        blob.clone()
    } else {
        text::write(&p).into_bytes()
    };
    if json {
        if let Some(o) = &a.output {
            write_out(Some(o), &data)?;
        }
        print_json(&json!({
            "output": a.output.as_ref().map(|o| o.display().to_string()),
            "format": if a.binary { "blob" } else { "toml" },
            "persona": persona_json(&p),
        }))?;
    } else {
        write_out(a.output.as_deref(), &data)?;
    }
    Ok(true)
}

/// Width of the device's own PASID capability, if it has one.
fn device_pasid_width(dump: &[u8]) -> Option<u8> {
    u8::try_from(pci::pasid_cap_reg(dump)?.width())
        .ok()
        .filter(|&w| w != 0)
}

/// `compile INPUT -o OUTPUT`: OUTPUT a file, or a directory that gets `NAME@MAJOR.MINOR.bin`.
///
/// # Errors
///
/// Exit-2 messages.
pub fn compile(input: &Path, output: &Path, json: bool) -> Outcome {
    let blob = load_blob(input)?;
    let p = PersonaRef::parse(&blob).map_err(|e| e.to_string())?;
    let sel = live::selector(&p);
    let path: PathBuf = if output.is_dir() {
        output.join(format!("{sel}.bin"))
    } else {
        output.to_path_buf()
    };
    write_out(Some(&path), &blob)?;
    if json {
        print_json(&json!({
            "output": path.display().to_string(),
            "selector": sel,
            "digest": hex(&p.digest()),
            "blob_size": blob.len(),
        }))?;
    }
    Ok(true)
}

/// `show INPUT [--text]`.
///
/// # Errors
///
/// Exit-2 messages.
pub fn show(input: &Path, json: bool, as_text: bool) -> Outcome {
    if json && as_text {
        return Err("--text and --json do not go together".into());
    }
    let blob = load_blob(input)?;
    let p = PersonaRef::parse(&blob).map_err(|e| e.to_string())?;
    if json {
        print_json(&persona_json(&p))?;
        return Ok(true);
    }
    if as_text {
        emit(&text::write(&p));
        return Ok(true);
    }
    let ids = p.ids();
    let v = p.version();
    outln!("persona {} {}.{}", p.name(), v.major, v.minor);
    outln!("  sha256      {}", hex(&p.digest()));
    outln!(
        "  config      {} bytes, blob {} bytes, {} emulated bytes",
        p.config_size(),
        blob.len(),
        p.emulated_len()
    );
    outln!(
        "  ids         {:04x}:{:04x} rev {:02x} class {:06x} subsystem {:04x}:{:04x}",
        ids.vendor,
        ids.device,
        ids.revision,
        ids.class,
        ids.subsystem_vendor,
        ids.subsystem_device
    );
    for f in IdField::ALL.into_iter().filter(|f| p.id_emulated(*f)) {
        outln!("  emulated id {}", f.name());
    }
    for (i, b) in p.bars().iter().enumerate() {
        if matches!(b.kind, BarKind::Unused | BarKind::Upper) {
            continue;
        }
        let name = if i == ROM_INDEX {
            "rom".to_string()
        } else {
            format!("bar {i}")
        };
        outln!("  {:<11} {}", name, bar_text(b));
    }
    for e in p.caps() {
        if e.kind.is_presented() {
            outln!(
                "  {:<11} {:<8} id {:#06x} at {:#05x} len {:#x}{}",
                e.kind.name(),
                space_name(e.space),
                e.id,
                e.offset,
                e.len,
                if e.kind == CapKind::Pasid {
                    format!(
                        " width {} exec {} priv {}",
                        e.pasid_width, e.pasid_exec, e.pasid_priv
                    )
                } else if e.kind == CapKind::Physical {
                    format!(" instance {}", e.instance)
                } else {
                    String::new()
                }
            );
        } else {
            outln!(
                "  hidden      {:<8} id {:#06x} instance {}",
                space_name(e.space),
                e.id,
                e.instance
            );
        }
    }
    match p.pasid() {
        Some(x) => outln!("  pasid       offset {:#05x} width {}", x.offset, x.width),
        None => outln!("  pasid       none"),
    }
    Ok(true)
}

/// `map INPUT [--width 16|32] [--color WHEN] [--standard]`.
///
/// # Errors
///
/// Exit-2 messages.
pub fn map(a: &MapArgs, json: bool) -> Outcome {
    let blob = load_blob(&a.input)?;
    let p = PersonaRef::parse(&blob).map_err(|e| e.to_string())?;
    let limit = if a.standard { 256 } else { usize::MAX };
    if json {
        print_json(&map::to_json(&p, limit))?;
        return Ok(true);
    }
    let color = match a.color {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal()
        }
    };
    emit(&map::draw(&p, a.width.bytes(), limit, color));
    Ok(true)
}

/// `diff A B`: exit 0 compatible, 1 not.
///
/// # Errors
///
/// Exit-2 messages.
pub fn diff(a: &Path, b: &Path, json: bool) -> Outcome {
    let (ba, bb) = (load_blob(a)?, load_blob(b)?);
    let pa = PersonaRef::parse(&ba).map_err(|e| e.to_string())?;
    let pb = PersonaRef::parse(&bb).map_err(|e| e.to_string())?;
    let mut reasons = Vec::new();
    let ok = diff_with(&pa, &pb, &mut |r| reasons.push(r));
    if json {
        print_json(&json!({
            "compatible": ok,
            "a": {"name": pa.name(), "digest": hex(&pa.digest())},
            "b": {"name": pb.name(), "digest": hex(&pb.digest())},
            "reasons": reasons.iter().map(diff_text).collect::<Vec<_>>(),
        }))?;
    } else {
        for r in &reasons {
            outln!("{}", diff_text(r));
        }
        outln!("{}", if ok { "compatible" } else { "incompatible" });
    }
    Ok(ok)
}

/// `check PERSONA DUMP`: exit 0 the device can present it, 1 not.
///
/// # Errors
///
/// Exit-2 messages.
pub fn check(a: &CheckArgs, json: bool) -> Outcome {
    let (Some(persona), Some(dump)) = (&a.persona, &a.dump) else {
        return Err("check needs PERSONA and DUMP, or --live BDF".into());
    };
    let blob = load_blob(persona)?;
    let p = PersonaRef::parse(&blob).map_err(|e| e.to_string())?;
    let file = load_dump(dump)?;
    let dev = DeviceView::parse_dump(&file).map_err(|e| e.to_string())?;
    let dump = dev.config;
    let iommu = IommuPasid {
        max_pasid_log2: a.iommu_pasid_bits,
        exec: a.iommu_pasid_exec,
        privileged: a.iommu_pasid_priv,
    };
    let mut reasons = Vec::new();
    let ok = check_with(&p, &dev, &iommu, &mut |r| reasons.push(r));
    // The overlay must also build (it locates every physical capability on the device).
    let mut overlay = Box::<OverlayMap>::default();
    if ok {
        if let Err(e) = overlay.build(&p, dump) {
            return Err(format!(
                "persona passes the check but its overlay does not build: {e}"
            ));
        }
    }
    if json {
        print_json(&json!({
            "ok": ok,
            "persona": p.name(),
            "reasons": reasons.iter().map(check_text).collect::<Vec<_>>(),
        }))?;
    } else {
        for r in &reasons {
            outln!("{}", check_text(r));
        }
        outln!("{}", if ok { "ok" } else { "check failed" });
    }
    Ok(ok)
}
