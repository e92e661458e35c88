//! Input: persona files (binary blob or TOML text) and device dumps.

use std::path::Path;

use persona_core::persona::format::MAGIC;
use persona_core::persona::{DeviceView, PersonaModel, PersonaRef};

use crate::text;

/// Reads a whole file.
///
/// # Errors
///
/// A message naming the file.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
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
