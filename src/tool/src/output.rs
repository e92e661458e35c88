//! Output: everything the tool prints on stdout goes through here, so a closed pipe (`| head`)
//! stops the output instead of panicking, and JSON is printed one way.

use std::io::Write as _;

use serde_json::Value;

/// Outcome of a command: `Ok(true)` exit 0, `Ok(false)` exit 1, `Err` exit 2 with the message.
pub type Outcome = Result<bool, String>;

/// Writes `s` to stdout; a write error (closed pipe) is ignored. In the crate's unit tests it
/// goes through `print!`, which the test harness captures.
pub fn emit(s: &str) {
    if cfg!(test) {
        print!("{s}");
        return;
    }
    let _ = std::io::stdout().lock().write_all(s.as_bytes());
}

/// Writes `data` to `path`, or to stdout without one.
///
/// # Errors
///
/// A message naming the file.
pub fn write_out(path: Option<&std::path::Path>, data: &[u8]) -> Result<(), String> {
    match path {
        Some(p) => std::fs::write(p, data).map_err(|e| format!("{}: {e}", p.display())),
        None => std::io::stdout()
            .write_all(data)
            .map_err(|e| format!("stdout: {e}")),
    }
}

/// Prints `v` as pretty JSON and a newline.
///
/// # Errors
///
/// When it cannot be serialised (never for values built with `json!`).
pub fn print_json(v: &Value) -> Result<(), String> {
    let s = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    emit(&s);
    emit("\n");
    Ok(())
}

/// `println!` through [`emit`].
#[macro_export]
macro_rules! outln {
    ($($t:tt)*) => {
        $crate::output::emit(&format!("{}\n", format_args!($($t)*)))
    };
}
