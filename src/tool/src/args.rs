// The command line of `vfio-persona`: clap types only. build.rs includes this file to generate
// the man page and the shell completions, so it names nothing outside `clap` and `std`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "vfio-persona",
    version,
    about = "Work with persona-vfio-pci config-space personas",
    long_about = "Work with persona-vfio-pci config-space personas: derive them from devices, \
                  compile them for the kernel, show, compare and check them, draw their config \
                  space, bind devices and look at them through VFIO, decode migration streams.",
    after_help = "Exit status: 0 yes/ok, 1 no (incompatible, check failed, stream rejected), \
                  2 bad input or usage.\nWith --json every command prints one JSON document \
                  on stdout; its shape is described in src/tool/README.md."
)]
pub struct Cli {
    /// Print one JSON document instead of text (every command).
    #[arg(long, global = true)]
    pub json: bool,
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
    /// Compile a TOML persona into the binary blob the kernel loads. When OUTPUT is a
    /// directory, the blob is written there as NAME@MAJOR.MINOR.bin (the name the driver's
    /// firmware request uses).
    Compile {
        /// TOML persona.
        input: PathBuf,
        /// Output blob, or a directory.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Show a persona (blob or TOML): a summary, its TOML text, or JSON.
    Show {
        /// Persona file.
        input: PathBuf,
        /// Print the persona as TOML text instead.
        #[arg(long)]
        text: bool,
    },
    /// Draw a persona's config space, byte by byte: which bytes are emulated, pinned, dynamic
    /// or hidden.
    Map(MapArgs),
    /// Are two personas migration compatible (source A, destination B)? Exit 0 yes, 1 no.
    Diff {
        /// Source persona.
        a: PathBuf,
        /// Destination persona.
        b: PathBuf,
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
    /// Output file (default: stdout; with --json the persona goes only to this file).
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
}

/// `map` arguments.
#[derive(Debug, Args)]
pub struct MapArgs {
    /// Persona file (blob or TOML).
    pub input: PathBuf,
    /// Bytes per row.
    #[arg(long, value_name = "N", value_enum, default_value_t = RowWidth::W16)]
    pub width: RowWidth,
    /// Colour: auto (when stdout is a terminal and NO_COLOR is unset), always or never.
    #[arg(long, value_enum, default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
    /// Draw only the first 256 bytes (the standard header and capabilities).
    #[arg(long)]
    pub standard: bool,
}

/// Bytes per row of the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RowWidth {
    /// 16 bytes per row.
    #[value(name = "16")]
    W16,
    /// 32 bytes per row.
    #[value(name = "32")]
    W32,
}

impl RowWidth {
    /// The number of bytes.
    pub const fn bytes(self) -> usize {
        match self {
            RowWidth::W16 => 16,
            RowWidth::W32 => 32,
        }
    }
}

/// When to colour the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// When stdout is a terminal and NO_COLOR is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Parses a 16-bit number, decimal or 0x-prefixed hex.
///
/// # Errors
///
/// A message naming the text.
pub fn parse_num_u16(s: &str) -> Result<u16, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u16::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("{s:?} is not a 16-bit number"))
}
