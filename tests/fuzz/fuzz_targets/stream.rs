//! Fuzz the migration stream decoder: arbitrary bytes, fed in fuzzer-chosen chunks.
//!
//! Input layout: 4 configuration bytes, then the stream. The configuration picks the chunk sizes,
//! how much room the sink offers per staging call, whether the destination expects a particular
//! persona, and whether the harness fixes up the trailing checksum (so the fuzzer can reach the
//! accepted-stream paths without having to forge checksums).
//!
//! Checked on every input: no panic; decoding in one piece and in the chosen chunks gives the
//! same result and the same staged records; and a stream the decoder accepts, re-encoded from what
//! it decoded, gives back exactly the input (the decoder accepts canonical encodings only).

#![no_main]

use libfuzzer_sys::fuzz_target;
use persona_core::mig::checksum::checksum;
use persona_core::mig::stream::{
    DeviceKind, Disposition, Expect, Identity, Limits, Parser, PersonaId, Progress, Reason, Record,
    RecordInfo, Sink, StreamError, Writer,
};

/// Tags the sink stages.
const STAGED: core::ops::RangeInclusive<u32> = 1..=8;
/// Tags the sink knows but does not need.
const DISCARDED: core::ops::RangeInclusive<u32> = 9..=16;

/// A sink that stages known records in memory and checks the decoder's calls are well ordered.
#[derive(Default)]
struct Staging {
    /// Most bytes handed out per `stage` call (0: all asked for).
    step: usize,
    id: Option<Identity>,
    records: Vec<(u32, bool, Vec<u8>)>,
    cur: Option<(RecordInfo, Vec<u8>)>,
    /// Records whose payload the decoder did not hand over (unknown, or discarded and non-empty).
    skipped: usize,
}

impl Sink for Staging {
    fn header(&mut self, id: &Identity) -> Result<(), Reason> {
        assert!(self.id.is_none(), "header reported twice");
        self.id = Some(*id);
        Ok(())
    }

    fn begin_record(&mut self, rec: &RecordInfo) -> Result<Disposition, Reason> {
        assert!(self.cur.is_none(), "record begun inside a record");
        if STAGED.contains(&rec.tag) {
            let len = usize::try_from(rec.len).map_err(|_| Reason::InvalidRecord)?;
            self.cur = Some((*rec, Vec::with_capacity(len)));
            Ok(Disposition::Stage)
        } else if DISCARDED.contains(&rec.tag) {
            if rec.len != 0 {
                self.skipped += 1;
            }
            self.cur = Some((*rec, Vec::new()));
            Ok(Disposition::Discard)
        } else {
            self.skipped += 1;
            Ok(Disposition::Unknown)
        }
    }

    fn stage(&mut self, offset: u64, want: usize) -> Result<&mut [u8], Reason> {
        let (info, buf) = self.cur.as_mut().expect("stage outside a record");
        assert_eq!(offset, buf.len() as u64, "staging out of order");
        assert!(
            want > 0 && offset + want as u64 <= info.len,
            "staging beyond the record"
        );
        let n = if self.step == 0 {
            want
        } else {
            want.min(self.step)
        };
        let start = buf.len();
        buf.resize(start + n, 0);
        Ok(&mut buf[start..])
    }

    fn end_record(&mut self) -> Result<(), Reason> {
        let (info, buf) = self.cur.take().expect("end outside a record");
        if STAGED.contains(&info.tag) {
            assert_eq!(buf.len() as u64, info.len, "record ended early");
        }
        self.records.push((info.tag, info.mandatory, buf));
        Ok(())
    }
}

/// Decodes `stream` in pieces of the sizes `sizes` yields, in turn (cycled).
fn run(
    stream: &[u8],
    expect: Expect,
    sizes: &[usize],
    step: usize,
) -> (Result<(), StreamError>, Staging) {
    let limits = Limits {
        max_record: 1 << 16,
        max_total: 1 << 20,
    };
    let mut p = Parser::new(expect, limits);
    let mut sink = Staging {
        step,
        ..Staging::default()
    };
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        i += 1;
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        match p.feed(chunk, &mut sink) {
            Ok(Progress::Done) => assert!(p.is_done()),
            Ok(Progress::NeedMore) => assert!(!p.is_done()),
            Err(e) => {
                assert_eq!(p.finish(), Err(e), "error not sticky");
                return (Err(e), sink);
            }
        }
    }
    (p.finish(), sink)
}

fn edu() -> Identity {
    Identity {
        kind: DeviceKind::EDU,
        persona: PersonaId::new(b"edu-v1", 1, [0x11; 32]).expect("valid name"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((cfg, stream)) = data.split_first_chunk::<4>() else {
        return;
    };
    let mut stream = stream.to_vec();
    if cfg[0] & 1 != 0 && stream.len() >= 8 {
        let at = stream.len() - 8;
        let sum = checksum(&stream[..at]);
        stream[at..].copy_from_slice(&sum.to_le_bytes());
    }
    let expect = if cfg[0] & 2 != 0 {
        Expect::exactly(&edu())
    } else {
        Expect::ANY
    };

    // Chunk sizes from a small generator seeded by the configuration.
    let mut x = u32::from(cfg[1]) << 8 | u32::from(cfg[2]) | 1;
    let max = 1usize << (cfg[0] >> 4);
    let sizes: Vec<usize> = (0..16)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            1 + x as usize % max
        })
        .collect();
    let step = usize::from(cfg[3] % 16);

    let (whole, a) = run(&stream, expect, &[usize::MAX], 0);
    let (chunked, b) = run(&stream, expect, &sizes, step);
    assert_eq!(whole, chunked, "result depends on chunking");
    assert_eq!(a.id, b.id);
    assert_eq!(a.records, b.records, "records depend on chunking");

    if whole.is_ok() && a.skipped == 0 {
        // Accepted, and every payload was seen: re-encoding what was decoded gives the input
        // back, byte for byte.
        let id = a.id.expect("accepted stream has a header");
        let recs: Vec<Record<'_>> = a
            .records
            .iter()
            .map(|(tag, mandatory, payload)| Record {
                tag: *tag,
                mandatory: *mandatory,
                payload,
            })
            .collect();
        let mut w = Writer::new(&id);
        let mut out = vec![0u8; stream.len() + 1];
        let n = w.fill(recs.as_slice(), &mut out).expect("valid source");
        assert!(w.is_done());
        assert_eq!(&out[..n], &stream[..], "accepted a non-canonical stream");
    }
});
