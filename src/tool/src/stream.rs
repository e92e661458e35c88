//! `vfio-persona inspect-stream`: decode a saved migration stream and report what it holds.
//!
//! The stream is read in pieces and decoded with the kernel's own decoder
//! ([`persona_core::mig::stream::Parser`]), accepting any persona and device kind, so what this
//! prints is what a destination would see before it compares the identity with its own. Records
//! whose tag the core defines (`persona_core::mig::records`) are decoded with the kernel's own
//! validators and their fields shown; others are listed only.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::render::hex;
use persona_core::mig::records::{
    self, config::ConfigRecord, edu::EduRecord, ivshmem::IvshmemRecord, RecordError,
};
use persona_core::mig::stream::{
    Disposition, Errno, Expect, Identity, Limits, Parser, Progress, Reason, RecordInfo, Sink,
    StreamError, FORMAT_VERSION,
};

/// Size of the pieces the file is read and decoded in.
const PIECE: usize = 1 << 16;

/// Collects what the decoder reports: every record header, and the payload of each record the
/// core defines (the others are discarded).
#[derive(Default)]
struct Report {
    /// The header, once accepted.
    id: Option<Identity>,
    /// Every record header, in stream order, with the payload of a known record.
    records: Vec<(RecordInfo, Option<Vec<u8>>)>,
}

/// The payload length of a record the core defines, by tag.
fn known_len(tag: u32) -> Option<usize> {
    match tag {
        records::config::TAG => Some(records::config::LEN),
        records::edu::TAG => Some(records::edu::LEN),
        records::ivshmem::TAG => Some(records::ivshmem::LEN),
        _ => None,
    }
}

/// A known record, decoded with the core's validator.
enum Decoded<'a> {
    /// `TAG_CONFIG`.
    Config(ConfigRecord<'a>),
    /// `TAG_EDU`.
    Edu(EduRecord),
    /// `TAG_IVSHMEM`.
    Ivshmem(IvshmemRecord),
}

/// Decodes `payload` of a record with tag `tag`; `None` for a tag the core does not define.
fn decode(tag: u32, payload: &[u8]) -> Option<Result<Decoded<'_>, RecordError>> {
    match tag {
        records::config::TAG => Some(ConfigRecord::decode(payload).map(Decoded::Config)),
        records::edu::TAG => Some(EduRecord::decode(payload).map(Decoded::Edu)),
        records::ivshmem::TAG => Some(IvshmemRecord::decode(payload).map(Decoded::Ivshmem)),
        _ => None,
    }
}

impl Sink for Report {
    fn header(&mut self, id: &Identity) -> Result<(), Reason> {
        self.id = Some(*id);
        Ok(())
    }

    fn begin_record(&mut self, rec: &RecordInfo) -> Result<Disposition, Reason> {
        // Every record is listed, mandatory or not; a known one of a length it can have is
        // staged for decoding (one of another length is shown as invalid, not refused here).
        let known = known_len(rec.tag).filter(|&n| u64::try_from(n).ok() == Some(rec.len));
        match known {
            Some(n) => {
                self.records.push((*rec, Some(vec![0; n])));
                Ok(Disposition::Stage)
            }
            None => {
                self.records.push((*rec, None));
                Ok(Disposition::Discard)
            }
        }
    }

    fn stage(&mut self, offset: u64, want: usize) -> Result<&mut [u8], Reason> {
        let buf = self
            .records
            .last_mut()
            .and_then(|(_, p)| p.as_mut())
            .ok_or(Reason::NoStagingSpace)?;
        let at = usize::try_from(offset).map_err(|_| Reason::InvalidRecord)?;
        let end = at.saturating_add(want).min(buf.len());
        buf.get_mut(at..end).ok_or(Reason::InvalidRecord)
    }
}

/// How a decode ended.
enum Outcome {
    /// Complete, checksum verified; carries the checksum.
    Valid(u64),
    /// Decodable, but rejected for a reason that is not malformed input.
    Rejected(StreamError),
}

/// Decodes the migration stream in `path` and prints a summary (JSON when `json` is set).
///
/// Returns `Ok(true)` when the stream is complete and valid, and `Ok(false)` when it decodes but
/// is rejected: a checksum mismatch, or a format version, flag or record this decoder does not
/// support (a newer writer).
///
/// # Errors
///
/// A message for input that is not a readable stream at all: an unreadable file, bad magic, a
/// malformed header or record, truncation, or data after the end record.
pub fn inspect(path: &Path, json: bool) -> Result<bool, String> {
    let shown = path.display();
    let mut file = File::open(path).map_err(|e| format!("{shown}: {e}"))?;
    let mut parser = Parser::new(Expect::ANY, Limits::UNLIMITED);
    let mut report = Report::default();
    let mut buf = vec![0u8; PIECE];
    // The last 8 bytes seen: after a complete stream, the checksum.
    let mut last8 = [0u8; 8];
    let mut total: u64 = 0;
    let mut fed: Result<Progress, StreamError> = Ok(Progress::NeedMore);
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("{shown}: {e}")),
        };
        let piece = buf.get(..n).unwrap_or_default();
        total = total.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        remember_tail(&mut last8, piece);
        fed = parser.feed(piece, &mut report);
        if fed.is_err() {
            break;
        }
    }

    let outcome = match fed.and_then(|_| parser.finish()) {
        Ok(()) => Outcome::Valid(u64::from_le_bytes(last8)),
        Err(e) if is_rejection(e.reason) => Outcome::Rejected(e),
        Err(e) => return Err(format!("{shown}: not a valid migration stream: {e}")),
    };
    let text = if json {
        render_json(&report, total, &outcome)
    } else {
        render_text(&shown.to_string(), &report, total, &outcome)
    };
    crate::output::emit(&text);
    Ok(matches!(outcome, Outcome::Valid(_)))
}

/// Keeps the last 8 bytes of everything passed through `piece`s.
fn remember_tail(last8: &mut [u8; 8], piece: &[u8]) {
    let mut joined = last8.to_vec();
    joined.extend_from_slice(
        piece
            .get(piece.len().saturating_sub(8)..)
            .unwrap_or_default(),
    );
    let start = joined.len().saturating_sub(8);
    if let Some(tail) = joined.get(start..) {
        last8.copy_from_slice(tail);
    }
}

/// Returns `true` for errors that mean "decodable, but not acceptable", as opposed to malformed.
fn is_rejection(reason: Reason) -> bool {
    matches!(reason, Reason::BadChecksum { .. }) || reason.is_incompatible()
}

/// Returns the errno name an error maps to in the kernel.
fn errno_name(e: Errno) -> &'static str {
    match e {
        Errno::Einval => "EINVAL",
        Errno::Ebadmsg => "EBADMSG",
        Errno::Eopnotsupp => "EOPNOTSUPP",
        Errno::Eproto => "EPROTO",
        Errno::Efbig => "EFBIG",
    }
}

/// The persona name for display: UTF-8 shown as is, other bytes escaped.
fn name_text(name: &[u8]) -> String {
    match std::str::from_utf8(name) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_owned(),
        _ => name.escape_ascii().to_string(),
    }
}

/// The human-readable summary.
fn render_text(path: &str, report: &Report, total: u64, outcome: &Outcome) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "stream:         {path} ({total} bytes)");
    match &report.id {
        Some(id) => {
            let _ = writeln!(s, "format version: {FORMAT_VERSION}");
            let kind = id.kind.name().unwrap_or("unknown");
            let _ = writeln!(s, "device kind:    {} ({kind})", id.kind.0);
            let p = &id.persona;
            let _ = writeln!(
                s,
                "persona:        {} version {}",
                name_text(p.name()),
                p.version()
            );
            let _ = writeln!(s, "persona digest: {}", hex(p.digest()));
        }
        None => {
            let _ = writeln!(s, "header:         not accepted");
        }
    }
    let _ = writeln!(s, "records:        {}", report.records.len());
    for (r, payload) in &report.records {
        let kind = if r.mandatory {
            "mandatory"
        } else {
            "optional "
        };
        let _ = writeln!(
            s,
            "  at {:>10}  tag {:#010x}  {kind}  {} bytes{}",
            r.offset,
            r.tag,
            r.len,
            record_name(r.tag)
                .map(|n| format!("  ({n})"))
                .unwrap_or_default()
        );
        render_record_text(&mut s, r, payload.as_deref());
    }
    match outcome {
        Outcome::Valid(sum) => {
            let _ = writeln!(s, "checksum:       {sum:#018x} ok");
            let _ = writeln!(s, "result:         valid");
        }
        Outcome::Rejected(e) => {
            let errno = errno_name(e.errno());
            let _ = writeln!(s, "result:         rejected ({errno}): {e}");
        }
    }
    s
}

/// The name of a record the core defines.
fn record_name(tag: u32) -> Option<&'static str> {
    match tag {
        records::config::TAG => Some("config registers"),
        records::edu::TAG => Some("edu state"),
        records::ivshmem::TAG => Some("ivshmem registers"),
        // Listed by name and length (a run of memory pages); not decoded.
        records::ivshmem::TAG_PAGES => Some("ivshmem pages"),
        _ => None,
    }
}

/// The decoded fields of a known record, indented under its line.
fn render_record_text(s: &mut String, r: &RecordInfo, payload: Option<&[u8]>) {
    let decoded = match payload {
        Some(p) => decode(r.tag, p),
        // Known tag, but a length it cannot have.
        None => known_len(r.tag).map(|want| {
            Err(RecordError::Length {
                want,
                got: usize::try_from(r.len).unwrap_or(usize::MAX),
            })
        }),
    };
    match decoded {
        None => {}
        Some(Err(e)) => {
            let _ = writeln!(s, "      invalid: {e}");
        }
        Some(Ok(Decoded::Config(c))) => {
            let slots: Vec<String> = c.nonzero().map(|(i, b)| format!("{i}={b:#04x}")).collect();
            let _ = writeln!(
                s,
                "      non-zero slots: {}",
                if slots.is_empty() {
                    "none".to_owned()
                } else {
                    slots.join(" ")
                }
            );
        }
        Some(Ok(Decoded::Edu(e))) => {
            let _ = writeln!(
                s,
                "      flags {:#x}  liveness {:#010x}  factorial {:#x}  status {:#x}  irq status {:#x}",
                e.flags, e.liveness, e.fact, e.status, e.irq_status
            );
            let _ = writeln!(
                s,
                "      dma command {:#x}  source {:#x}  dest {:#x}  count {:#x}  held command {:#x}",
                e.dma_cmd, e.dma_src, e.dma_dst, e.dma_cnt, e.held_cmd
            );
        }
        Some(Ok(Decoded::Ivshmem(i))) => {
            let _ = writeln!(
                s,
                "      memory {} bytes  interrupt mask {:#x}  interrupt status {:#x}",
                i.mem_len, i.intr_mask, i.intr_status
            );
        }
    }
}

/// The decoded fields of a known record as JSON (`null` for an unknown tag).
fn record_json(r: &RecordInfo, payload: Option<&[u8]>) -> serde_json::Value {
    let decoded = match payload {
        Some(p) => decode(r.tag, p),
        None => known_len(r.tag).map(|want| {
            Err(RecordError::Length {
                want,
                got: usize::try_from(r.len).unwrap_or(usize::MAX),
            })
        }),
    };
    match decoded {
        None => serde_json::Value::Null,
        Some(Err(e)) => serde_json::json!({ "invalid": e.to_string() }),
        Some(Ok(Decoded::Config(c))) => {
            let slots: serde_json::Map<String, serde_json::Value> = c
                .nonzero()
                .map(|(i, b)| (i.to_string(), serde_json::json!(b)))
                .collect();
            serde_json::json!({ "config_nonzero_slots": slots })
        }
        Some(Ok(Decoded::Edu(e))) => serde_json::json!({
            "edu": {
                "flags": e.flags,
                "liveness": e.liveness,
                "factorial": e.fact,
                "status": e.status,
                "irq_status": e.irq_status,
                "dma_command": e.dma_cmd,
                "dma_source": e.dma_src,
                "dma_dest": e.dma_dst,
                "dma_count": e.dma_cnt,
                "held_command": e.held_cmd,
            }
        }),
        Some(Ok(Decoded::Ivshmem(i))) => serde_json::json!({
            "ivshmem": {
                "memory_len": i.mem_len,
                "intr_mask": i.intr_mask,
                "intr_status": i.intr_status,
            }
        }),
    }
}

/// The JSON summary.
fn render_json(report: &Report, total: u64, outcome: &Outcome) -> String {
    let persona = report.id.as_ref().map(|id| {
        serde_json::json!({
            "name": name_text(id.persona.name()),
            "version": id.persona.version(),
            "digest": hex(id.persona.digest()),
        })
    });
    let records: Vec<_> = report
        .records
        .iter()
        .map(|(r, payload)| {
            serde_json::json!({
                "offset": r.offset,
                "tag": r.tag,
                "mandatory": r.mandatory,
                "len": r.len,
                "name": record_name(r.tag),
                "decoded": record_json(r, payload.as_deref()),
            })
        })
        .collect();
    let (valid, checksum, error) = match outcome {
        Outcome::Valid(sum) => (true, Some(format!("{sum:#018x}")), None),
        Outcome::Rejected(e) => (
            false,
            None,
            Some(serde_json::json!({
                "offset": e.offset,
                "reason": e.reason.to_string(),
                "errno": errno_name(e.errno()),
            })),
        ),
    };
    let v = serde_json::json!({
        "valid": valid,
        "bytes": total,
        "format_version": report.id.map(|_| FORMAT_VERSION),
        "device_kind": report.id.map(|id| id.kind.0),
        "device_kind_name": report.id.and_then(|id| id.kind.name()),
        "persona": persona,
        "records": records,
        "checksum": checksum,
        "error": error,
    });
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use persona_core::mig::stream::{DeviceKind, PersonaId, Record, Writer, HEADER_LEN};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn stream() -> Vec<u8> {
        let id = Identity {
            kind: DeviceKind::EDU,
            persona: PersonaId::new(b"edu-v1", 2, [0xcd; 32]).expect("name"),
        };
        let recs = [
            Record {
                tag: 0x10,
                mandatory: true,
                payload: &[1, 2, 3],
            },
            Record {
                tag: 0x20,
                mandatory: false,
                payload: &[0; 100_000],
            },
        ];
        let mut w = Writer::new(&id);
        let mut out = vec![0u8; 200_000];
        let n = w.fill(&recs, &mut out).expect("encode");
        assert!(w.is_done());
        out.truncate(n);
        out
    }

    /// Writes `bytes` to a fresh temporary file and inspects it.
    fn inspect_bytes(bytes: &[u8], json: bool) -> Result<bool, String> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "persona-inspect-{}-{}.bin",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, bytes).expect("write temp file");
        let r = inspect(&path, json);
        let _ = std::fs::remove_file(&path);
        r
    }

    #[test]
    fn valid_stream() {
        let s = stream();
        assert_eq!(inspect_bytes(&s, false), Ok(true));
        assert_eq!(inspect_bytes(&s, true), Ok(true));
    }

    #[test]
    fn corrupt_or_newer_streams_are_rejected() {
        let mut s = stream();
        s[HEADER_LEN + 20] ^= 1;
        assert_eq!(inspect_bytes(&s, false), Ok(false), "bad checksum");
        let mut s = stream();
        s[8] = 2;
        assert_eq!(inspect_bytes(&s, true), Ok(false), "newer format");
    }

    #[test]
    fn malformed_streams_are_errors() {
        let s = stream();
        let e = inspect_bytes(&s[..s.len() - 1], false).unwrap_err();
        assert!(e.contains("truncated"), "{e}");
        assert!(inspect_bytes(b"not a stream", false).is_err());
        assert!(inspect_bytes(b"", true).is_err());
        let mut s = stream();
        s.push(0);
        assert!(inspect_bytes(&s, false).is_err());
        let missing = std::env::temp_dir()
            .join("persona-no-such-dir")
            .join("stream");
        assert!(inspect(&missing, false).is_err());
    }

    #[test]
    fn known_records_are_decoded() {
        let id = Identity {
            kind: DeviceKind::EDU,
            persona: PersonaId::new(b"edu-v1", 2, [0xcd; 32]).expect("name"),
        };
        let mut config = [0u8; records::config::LEN];
        config[3] = 0x46;
        let mut edu = [0u8; records::edu::LEN];
        EduRecord {
            flags: records::edu::FLAG_LIVENESS,
            liveness: 0x1234,
            dma_cnt: 16,
            ..EduRecord::default()
        }
        .encode(&mut edu);
        let mut bad = edu;
        bad[52] = 1;
        let recs = [
            Record {
                tag: records::config::TAG,
                mandatory: true,
                payload: &config,
            },
            Record {
                tag: records::edu::TAG,
                mandatory: true,
                payload: &edu,
            },
            Record {
                tag: records::edu::TAG,
                mandatory: true,
                payload: &bad,
            },
        ];
        let mut w = Writer::new(&id);
        let mut out = vec![0u8; 4096];
        let n = w.fill(&recs[..], &mut out).expect("encode");
        out.truncate(n);
        let mut report = Report::default();
        let mut p = Parser::new(Expect::ANY, Limits::UNLIMITED);
        assert_eq!(p.feed(&out, &mut report), Ok(Progress::Done));
        let text = render_text("f", &report, 7, &Outcome::Valid(1));
        assert!(text.contains("non-zero slots: 3=0x46"), "{text}");
        assert!(text.contains("liveness 0x00001234"), "{text}");
        assert!(
            text.contains("invalid: invalid reserved at payload offset 52"),
            "{text}"
        );
        let v: serde_json::Value =
            serde_json::from_str(&render_json(&report, 7, &Outcome::Valid(1))).expect("JSON");
        assert_eq!(
            v["records"][0]["decoded"]["config_nonzero_slots"]["3"],
            0x46
        );
        assert_eq!(v["records"][1]["decoded"]["edu"]["liveness"], 0x1234);
        assert_eq!(v["records"][1]["name"], "edu state");
        assert!(v["records"][2]["decoded"]["invalid"].is_string());
    }

    #[test]
    fn ivshmem_records_are_decoded_and_pages_named() {
        let id = Identity {
            kind: DeviceKind::IVSHMEM,
            persona: PersonaId::new(b"shm", 1, [0x11; 32]).expect("name"),
        };
        let mut regs = [0u8; records::ivshmem::LEN];
        IvshmemRecord {
            mem_len: 16 << 20,
            intr_mask: 0xf0,
            intr_status: 1,
        }
        .encode(&mut regs);
        let run = records::pages::Run { first: 2, count: 1 };
        let mut page = vec![0u8; run.payload_len()];
        let mut prefix = [0u8; records::pages::PREFIX];
        run.encode(&mut prefix);
        page[..prefix.len()].copy_from_slice(&prefix);
        let recs = [
            Record {
                tag: records::ivshmem::TAG_PAGES,
                mandatory: true,
                payload: &page,
            },
            Record {
                tag: records::ivshmem::TAG,
                mandatory: true,
                payload: &regs,
            },
        ];
        let mut w = Writer::new(&id);
        let mut out = vec![0u8; 8192];
        let n = w.fill(&recs[..], &mut out).expect("encode");
        out.truncate(n);
        let mut report = Report::default();
        let mut p = Parser::new(Expect::ANY, Limits::UNLIMITED);
        assert_eq!(p.feed(&out, &mut report), Ok(Progress::Done));
        let text = render_text("f", &report, 7, &Outcome::Valid(1));
        assert!(text.contains("ivshmem pages"), "{text}");
        assert!(
            text.contains("memory 16777216 bytes  interrupt mask 0xf0  interrupt status 0x1"),
            "{text}"
        );
        let v: serde_json::Value =
            serde_json::from_str(&render_json(&report, 7, &Outcome::Valid(1))).expect("JSON");
        assert_eq!(
            v["records"][1]["decoded"]["ivshmem"]["memory_len"],
            16 << 20
        );
        assert_eq!(v["records"][0]["name"], "ivshmem pages");
    }

    #[test]
    fn json_summary() {
        let mut report = Report::default();
        let mut p = Parser::new(Expect::ANY, Limits::UNLIMITED);
        assert_eq!(p.feed(&stream(), &mut report), Ok(Progress::Done));
        let text = render_json(&report, 7, &Outcome::Valid(0xabc));
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(v["valid"], true);
        assert_eq!(v["device_kind_name"], "edu");
        assert_eq!(v["persona"]["name"], "edu-v1");
        assert_eq!(v["persona"]["version"], 2);
        assert_eq!(v["persona"]["digest"], "cd".repeat(32));
        assert_eq!(v["records"][1]["len"], 100_000);
        assert_eq!(v["records"][1]["mandatory"], false);
        assert_eq!(v["checksum"], "0x0000000000000abc");
        assert!(v["error"].is_null());
        let text = render_text("f", &report, 7, &Outcome::Valid(1));
        assert!(text.contains("edu-v1 version 2"), "{text}");
        assert!(text.contains("tag 0x00000010  mandatory"), "{text}");
    }
}
