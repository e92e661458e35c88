//! `vfio-persona inspect-stream`: decode a saved migration stream and report what it holds.
//!
//! Placeholder: the migration-stream helper replaces the body of [`inspect`].

use std::path::Path;

/// Decodes the migration stream in `path` and prints a summary (JSON when `json` is set).
///
/// Returns `Ok(true)` when the stream is complete and valid, `Ok(false)` when it decodes but is
/// rejected, and `Err` with a message for unreadable input.
///
/// # Errors
///
/// Always, for now: the decoder is not wired in yet.
pub fn inspect(path: &Path, json: bool) -> Result<bool, String> {
    let _ = json;
    Err(format!("{}: inspect-stream is not implemented yet", path.display()))
}
