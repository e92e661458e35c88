//! The command line: parse it ([`crate::args`]) and run the command it names. Offline commands
//! are in [`crate::offline`], live ones in [`crate::livecmd`], stream decoding in
//! [`crate::stream`]; this module only dispatches.
//!
//! Exit codes: 0 yes/ok, 1 no (incompatible personas, failed check, rejected stream), 2 bad input
//! or usage (clap's usage errors already exit 2).

use clap::Parser as _;

pub use crate::args::{Cli, Cmd};
use crate::output::Outcome;
use crate::{livecmd, offline, stream};

/// Parses the command line and runs it; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match run(&cli) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(msg) => {
            eprintln!("vfio-persona: {msg}");
            2
        }
    }
}

/// Runs one command line.
///
/// # Errors
///
/// A message for bad input (exit code 2).
pub fn run(cli: &Cli) -> Outcome {
    let json = cli.json;
    match &cli.cmd {
        Cmd::Derive(a) => offline::derive(a, json),
        Cmd::Capture { bdf, output } => livecmd::capture(bdf, output, json),
        Cmd::Compile { input, output } => offline::compile(input, output, json),
        Cmd::Show { input, text } => offline::show(input, json, *text),
        Cmd::Map(a) => offline::map(a, json),
        Cmd::Diff { a, b } => offline::diff(a, b, json),
        Cmd::Check(a) => match &a.live {
            Some(bdf) => livecmd::check(bdf, a.live_persona.as_ref(), json),
            None if a.live_persona.is_some() => Err("--persona goes with --live".into()),
            None => offline::check(a, json),
        },
        Cmd::Dump(a) => livecmd::dump(&a.live, json, a.output.as_deref(), a.blob.as_deref()),
        Cmd::Bind {
            bdf,
            persona,
            driver,
        } => livecmd::bind(bdf, persona.as_deref(), driver, json),
        Cmd::Access { live, steps } => livecmd::access(live, steps, json),
        Cmd::InspectStream { input } => stream::inspect(input, json),
    }
}
