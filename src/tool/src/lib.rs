//! Library half of the `vfio-persona` tool: the TOML text format and the commands, so that tests
//! and fuzz targets can drive them without spawning the binary.

pub mod cli;
pub mod live;
pub mod livecmd;
pub mod stream;
pub mod synth;
pub mod text;
pub mod vfio;
