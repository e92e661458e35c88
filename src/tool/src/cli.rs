//! Command-line interface of `vfio-persona`.
//!
//! Personas are read either as binary blobs (recognised by their magic) or as TOML text.
//! Exit codes: 0 yes/ok, 1 no (incompatible personas, failed check, rejected stream), 2 bad input
//! or usage (clap's usage errors already exit 2).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use persona_core::overlay::OverlayMap;
use persona_core::pci::{self, Space};
use persona_core::persona::check::{check_with, BarText, CheckReason, IommuPasid};
use persona_core::persona::derive::{derive, DeriveOptions, PasidRequest};
use persona_core::persona::device::BarKind;
use persona_core::persona::device::ROM_INDEX;
use persona_core::persona::diff::{diff_with, ByteDiff, DiffReason};
use persona_core::persona::format::MAGIC;
use persona_core::persona::{
    BarInfo, CapEntry, CapKind, DeviceView, IdField, PersonaModel, PersonaRef,
};
use serde_json::{json, Value};

use super::{livecmd, stream, text};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "vfio-persona",
    about = "Work with persona-vfio-pci config-space personas"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Derive the pinned persona of a device dump (TOML by default, a blob with --binary).
    Derive(DeriveArgs),
    /// Capture a device dump (config space and BAR/ROM sizes) from sysfs; run as root to read
    /// all 4096 bytes of config space.
    Capture {
        /// PCI address (DDDD:BB:SS.F or BB:SS.F).
        bdf: String,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Compile a TOML persona into the binary blob the kernel loads.
    Compile {
        /// TOML persona.
        input: PathBuf,
        /// Output blob.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Show a persona (blob or TOML): summary, or JSON with --json.
    Show {
        /// Persona file.
        input: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Print the persona as TOML text instead.
        #[arg(long, conflicts_with = "json")]
        text: bool,
    },
    /// Are two personas migration compatible (source A, destination B)? Exit 0 yes, 1 no.
    Diff {
        /// Source persona.
        a: PathBuf,
        /// Destination persona.
        b: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Can the device of a config dump present the persona (exit 0 yes, 1 no)? With --live: is
    /// the config space a VFIO user sees the persona's (exit 0 identical, 1 not)?
    Check(CheckArgs),
    /// Print the config space a VFIO user sees (and the published persona) of a bound device.
    Dump(DumpArgs),
    /// Move a PCI function to persona-vfio-pci through driver_override and select a persona.
    Bind {
        /// PCI address (DDDD:BB:SS.F or BB:SS.F).
        bdf: String,
        /// Persona to select: NAME@MAJOR.MINOR or auto.
        #[arg(long, value_name = "SEL")]
        persona: Option<String>,
        /// Driver to bind to.
        #[arg(long, default_value = "persona-vfio-pci")]
        driver: String,
    },
    /// Open a bound device through VFIO and run config accesses in one session, in order:
    /// r:OFF[:SIZE] (read), w:OFF:SIZE:VALUE (write), reset (VFIO_DEVICE_RESET), sh:COMMAND
    /// (a shell command while the device is open). Exit 1 when a step failed.
    Access {
        /// PCI address of the device.
        #[arg(long, value_name = "BDF")]
        live: String,
        /// Steps.
        #[arg(required = true, value_name = "STEP")]
        steps: Vec<String>,
    },
    /// Decode a saved migration stream. Exit 0 valid, 1 rejected.
    InspectStream {
        /// Stream file.
        input: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `derive` arguments.
#[derive(Debug, Args)]
pub struct DeriveArgs {
    /// Device dump (`vfio-persona capture`); a raw config dump has no BAR sizes and is refused.
    pub dump: PathBuf,
    /// Write the vfio-pci-parity form (nothing pinned but the IDs; for development).
    #[arg(long)]
    pub parity: bool,
    /// Add a synthesized PASID capability; WIDTH defaults to the device's PASID width, else 20.
    #[arg(long, value_name = "WIDTH", num_args = 0..=1, default_missing_value = "0")]
    pub pasid: Option<u8>,
    /// PASID capability offset (overrides placement; implies --pasid).
    #[arg(long, value_name = "OFF", value_parser = parse_num_u16)]
    pub pasid_offset: Option<u16>,
    /// Advertise PASID execute permission.
    #[arg(long)]
    pub pasid_exec: bool,
    /// Advertise PASID privileged mode.
    #[arg(long)]
    pub pasid_priv: bool,
    /// Persona name (default vvvv:dddd).
    #[arg(long)]
    pub name: Option<String>,
    /// Persona version "major.minor" (default 1.0).
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// Output file (default: stdout).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Write the binary blob instead of TOML.
    #[arg(long)]
    pub binary: bool,
}

/// `dump` arguments.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// PCI address of a device bound to a VFIO driver.
    #[arg(long, value_name = "BDF", required = true)]
    pub live: String,
    /// Print JSON (config as one hex string).
    #[arg(long)]
    pub json: bool,
    /// Write the raw config bytes to this file instead of a hexdump.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write the persona blob of the descriptor region to this file.
    #[arg(long, value_name = "FILE")]
    pub blob: Option<PathBuf>,
}

/// `check` arguments: `check PERSONA DUMP` or `check --live BDF [--persona FILE]`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Persona (blob or TOML).
    #[arg(required_unless_present = "live", conflicts_with = "live")]
    pub persona: Option<PathBuf>,
    /// Device dump (`vfio-persona capture`), or a raw config dump (then BAR sizes are unknown,
    /// which is a reason).
    #[arg(required_unless_present = "live", conflicts_with = "live")]
    pub dump: Option<PathBuf>,
    /// Compare the config space a VFIO user sees on this device with the persona.
    #[arg(long, value_name = "BDF")]
    pub live: Option<String>,
    /// With --live: the persona to compare with (default: the one the device publishes).
    #[arg(long = "persona", value_name = "FILE", requires = "live")]
    pub live_persona: Option<PathBuf>,
    /// IOMMU max PASID width (IOMMU_GET_HW_INFO out_max_pasid_log2); 0 = no PASID.
    #[arg(long, default_value_t = 20)]
    pub iommu_pasid_bits: u8,
    /// The IOMMU supports PASID execute permission.
    #[arg(long)]
    pub iommu_pasid_exec: bool,
    /// The IOMMU supports PASID privileged mode.
    #[arg(long)]
    pub iommu_pasid_priv: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_num_u16(s: &str) -> Result<u16, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u16::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("{s:?} is not a 16-bit number"))
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth more than stopping.
fn emit(s: &str) {
    let _ = std::io::stdout().lock().write_all(s.as_bytes());
}

/// `println!` without the panic on a closed stdout.
macro_rules! outln {
    ($($t:tt)*) => {
        emit(&format!("{}\n", format_args!($($t)*)))
    };
}

/// Outcome of a command: `Ok(true)` exit 0, `Ok(false)` exit 1, `Err` exit 2.
type Outcome = Result<bool, String>;

/// Parses the command line and runs it; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match run(&cli.cmd) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(msg) => {
            eprintln!("vfio-persona: {msg}");
            2
        }
    }
}

/// Runs one command.
///
/// # Errors
///
/// A message for bad input (exit code 2).
pub fn run(cmd: &Cmd) -> Outcome {
    match cmd {
        Cmd::Derive(a) => cmd_derive(a),
        Cmd::Capture { bdf, output } => livecmd::capture(bdf, output),
        Cmd::Compile { input, output } => {
            let blob = load_blob(input)?;
            write_out(Some(output), &blob)?;
            Ok(true)
        }
        Cmd::Show { input, json, text } => cmd_show(input, *json, *text),
        Cmd::Diff { a, b, json } => cmd_diff(a, b, *json),
        Cmd::Check(a) => match &a.live {
            Some(bdf) => livecmd::check(bdf, a.live_persona.as_ref(), a.json),
            None if a.live_persona.is_some() => Err("--persona goes with --live".into()),
            None => cmd_check(a),
        },
        Cmd::Dump(a) => livecmd::dump(&a.live, a.json, a.output.as_deref(), a.blob.as_deref()),
        Cmd::Bind {
            bdf,
            persona,
            driver,
        } => livecmd::bind(bdf, persona.as_deref(), driver),
        Cmd::Access { live, steps } => livecmd::access(live, steps),
        Cmd::InspectStream { input, json } => stream::inspect(input, *json),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_out(path: Option<&PathBuf>, data: &[u8]) -> Result<(), String> {
    match path {
        Some(p) => std::fs::write(p, data).map_err(|e| format!("{}: {e}", p.display())),
        None => std::io::stdout()
            .write_all(data)
            .map_err(|e| format!("stdout: {e}")),
    }
}

/// Reads a persona file (blob or TOML) and returns its canonical blob.
///
/// # Errors
///
/// A message with the file name and, for blobs, the offset and reason of the parse error.
pub fn load_blob(path: &Path) -> Result<Vec<u8>, String> {
    let data = read(path)?;
    blob_from_bytes(&data).map_err(|e| format!("{}: {e}", path.display()))
}

/// Turns file contents (blob or TOML) into a validated canonical blob.
///
/// # Errors
///
/// A message saying what is wrong.
pub fn blob_from_bytes(data: &[u8]) -> Result<Vec<u8>, String> {
    if data.starts_with(&MAGIC) {
        PersonaRef::parse(data).map_err(|e| format!("invalid persona blob: {e}"))?;
        return Ok(data.to_vec());
    }
    let s = std::str::from_utf8(data)
        .map_err(|_| "neither a persona blob nor UTF-8 text".to_string())?;
    let mut m = Box::<PersonaModel>::default();
    text::parse(s, &mut m)?;
    text::encode(&m)
}

/// Reads a dump file: a device dump container or a raw config dump.
///
/// # Errors
///
/// A message naming the file when it is neither.
pub fn load_dump(path: &Path) -> Result<Vec<u8>, String> {
    let d = read(path)?;
    DeviceView::parse_dump(&d).map_err(|_| {
        format!(
            "{}: neither a device dump (vfio-persona capture) nor a raw config dump of 256 or \
             4096 bytes ({} bytes)",
            path.display(),
            d.len()
        )
    })?;
    Ok(d)
}

fn cmd_derive(a: &DeriveArgs) -> Outcome {
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
    derive(&dev, &opts, &mut m).map_err(|e| format!("{}: {e}", a.dump.display()))?;
    let blob = text::encode(&m)?;
    if a.binary {
        write_out(a.output.as_ref(), &blob)?;
    } else {
        let p = PersonaRef::parse(&blob).map_err(|e| e.to_string())?;
        write_out(a.output.as_ref(), text::write(&p).as_bytes())?;
    }
    Ok(true)
}

/// Width of the device's own PASID capability, if it has one.
fn device_pasid_width(dump: &[u8]) -> Option<u8> {
    let c = pci::find_cap(dump, Space::Extended, pci::EXT_CAP_ID_PASID, 0).ok()??;
    let reg = pci::PasidCapReg(pci::rd16(dump, usize::from(c.offset) + pci::PASID_CAP)?);
    u8::try_from(reg.width()).ok().filter(|&w| w != 0)
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn space_name(s: Space) -> &'static str {
    match s {
        Space::Standard => "standard",
        Space::Extended => "extended",
    }
}

fn cap_json(e: &CapEntry) -> Value {
    let mut v = json!({
        "kind": e.kind.name(),
        "space": space_name(e.space),
        "id": e.id,
    });
    if matches!(e.kind, CapKind::Physical | CapKind::Hidden) {
        v["instance"] = json!(e.instance);
    }
    if e.space == Space::Extended {
        v["version"] = json!(e.version);
    }
    if e.kind.is_presented() {
        v["offset"] = json!(e.offset);
        v["length"] = json!(e.len);
    }
    if e.kind == CapKind::Pasid {
        v["width"] = json!(e.pasid_width);
        v["exec"] = json!(e.pasid_exec);
        v["privileged"] = json!(e.pasid_priv);
    }
    v
}

fn bar_json(b: &BarInfo) -> Value {
    json!({"kind": b.kind.name(), "size": b.size, "prefetchable": b.prefetch})
}

/// One-line description of a BAR: `mem64 prefetchable 0x4000 bytes`.
pub fn bar_text(b: &BarInfo) -> String {
    BarText(*b).to_string()
}

/// JSON description of a persona (what `show --json` prints).
pub fn persona_json(p: &PersonaRef<'_>) -> Value {
    let ids = p.ids();
    let v = p.version();
    let emulated: Vec<&str> = IdField::ALL
        .into_iter()
        .filter(|f| p.id_emulated(*f))
        .map(IdField::name)
        .collect();
    let runs: Vec<Value> = p
        .runs()
        .map(|r| {
            let mut j = json!({"start": r.start, "end": r.end(), "rule": r.rule.name()});
            if !r.value.is_empty() {
                j["value"] = json!(hexs(r.value));
                j["mask"] = json!(hexs(r.mask));
            }
            j
        })
        .collect();
    json!({
        "name": p.name(),
        "version": format!("{}.{}", v.major, v.minor),
        "digest": hexs(&p.digest()),
        "config_size": p.config_size(),
        "blob_size": p.as_bytes().len(),
        "ids": {
            "vendor": ids.vendor,
            "device": ids.device,
            "revision": ids.revision,
            "class": ids.class,
            "subsystem_vendor": ids.subsystem_vendor,
            "subsystem_device": ids.subsystem_device,
            "emulated": emulated,
        },
        "bars": p.bars().iter().take(ROM_INDEX).map(bar_json).collect::<Vec<_>>(),
        "rom_size": p.rom_size(),
        "capabilities": p.caps().map(|e| cap_json(&e)).collect::<Vec<_>>(),
        "pasid": p.pasid().map(|x| json!({
            "offset": x.offset,
            "width": x.width,
            "exec": x.exec,
            "privileged": x.privileged,
        })),
        "emulated_bytes": p.emulated_len(),
        "runs": runs,
    })
}

fn print_json(v: &Value) -> Result<(), String> {
    let s = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    outln!("{s}");
    Ok(())
}

fn cmd_show(input: &Path, json: bool, as_text: bool) -> Outcome {
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
    outln!("  sha256      {}", hexs(&p.digest()));
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

fn cap_desc(e: &CapEntry) -> String {
    format!(
        "{} {} cap {:#x} at {:#05x}",
        e.kind.name(),
        space_name(e.space),
        e.id,
        e.offset
    )
}

fn diff_text(r: &DiffReason) -> String {
    match r {
        DiffReason::ConfigSize { a, b } => format!("config size {a} -> {b}"),
        DiffReason::Id { field, a, b } => format!("{} {a:#x} -> {b:#x}", field.name()),
        DiffReason::CapRemoved { cap } => format!("removed {}", cap_desc(cap)),
        DiffReason::CapAdded { cap } => format!("added {}", cap_desc(cap)),
        DiffReason::CapMoved { a, b } => format!("moved {} to {:#05x}", cap_desc(a), b.offset),
        DiffReason::CapChanged { a, b } => format!(
            "changed {}: len {:#x} -> {:#x}, version {} -> {}",
            cap_desc(a),
            a.len,
            b.len,
            a.version,
            b.version
        ),
        DiffReason::Byte { offset, what } => match what {
            ByteDiff::Rule { a, b } => {
                format!("byte {offset:#05x}: rule {} -> {}", a.name(), b.name())
            }
            ByteDiff::Value { a, b, read_only } => {
                format!("byte {offset:#05x}: read-only value {a:#04x} -> {b:#04x} (read-only bits {read_only:#04x})")
            }
            ByteDiff::Mask { a, b } => {
                format!("byte {offset:#05x}: write mask {a:#04x} -> {b:#04x}")
            }
            ByteDiff::Mapping => {
                format!("byte {offset:#05x}: passthrough from another device location")
            }
        },
    }
}

fn cmd_diff(a: &Path, b: &Path, json: bool) -> Outcome {
    let (ba, bb) = (load_blob(a)?, load_blob(b)?);
    let pa = PersonaRef::parse(&ba).map_err(|e| e.to_string())?;
    let pb = PersonaRef::parse(&bb).map_err(|e| e.to_string())?;
    let mut reasons = Vec::new();
    let ok = diff_with(&pa, &pb, &mut |r| reasons.push(r));
    if json {
        print_json(&json!({
            "compatible": ok,
            "a": {"name": pa.name(), "digest": hexs(&pa.digest())},
            "b": {"name": pb.name(), "digest": hexs(&pb.digest())},
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

/// One line for a check reason: the core's words, the same as the kernel log's.
pub fn check_text(r: &CheckReason) -> String {
    r.to_string()
}

fn cmd_check(a: &CheckArgs) -> Outcome {
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
    let mut map = Box::<OverlayMap>::default();
    if ok {
        if let Err(e) = map.build(&p, dump) {
            return Err(format!(
                "persona passes the check but its overlay does not build: {e}"
            ));
        }
    }
    if a.json {
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
