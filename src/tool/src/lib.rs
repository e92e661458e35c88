//! Library half of the `vfio-persona` tool, so that tests and fuzz targets can drive the commands
//! without spawning the binary.
//!
//! Modules by concern: [`args`] (clap types; build.rs reads it for the man page and
//! completions), [`cli`] (dispatch), [`input`] (persona and dump files), [`offline`] and
//! [`livecmd`] (the commands), [`render`] and [`map`] (text and JSON), [`output`] (stdout).
//! [`text`] is the TOML format, [`live`] the parsing and comparison behind the live commands,
//! [`vfio`] the ioctls, [`stream`] migration stream decoding, [`synth`] test dumps.
//! Dependencies go one way: cli → commands → input/render/output.

#[allow(missing_docs)]
pub mod args;
pub mod cli;
pub mod input;
pub mod live;
pub mod livecmd;
pub mod map;
pub mod offline;
pub mod output;
pub mod render;
pub mod stream;
pub mod synth;
pub mod text;
pub mod vfio;
