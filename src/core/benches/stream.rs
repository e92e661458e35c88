//! Throughput of the migration stream codec against plain memcpy of the same bytes.
//!
//! A 64 MiB synthetic device state in 1 MiB records is encoded into 1 MiB output pieces (as the
//! data fd's `read()` would ask for them) and decoded back from 1 MiB input pieces into staging
//! memory. Each is compared with copying the same bytes in the same pieces with
//! `copy_from_slice`. Runs are interleaved and the median of each is reported; the goal is a
//! ratio of at least 0.8.
//!
//! Run with `cargo bench -p persona-core --bench stream`. Set `PERSONA_BENCH_REPS` to change the
//! number of repetitions (default 15).

// A benchmark may panic on a broken invariant; that is how it reports it.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use persona_core::mig::stream::{
    DeviceKind, Disposition, Expect, Identity, Limits, Parser, PersonaId, Progress, Reason, Record,
    RecordInfo, Sink, Writer,
};

const MIB: usize = 1 << 20;
const STATE: usize = 64 * MIB;
const RECORD: usize = MIB;
const CHUNK: usize = MIB;

/// Stages every record at its place in one big destination buffer.
struct Staging<'a> {
    dest: &'a mut [u8],
    base: usize,
}

impl Sink for Staging<'_> {
    fn begin_record(&mut self, rec: &RecordInfo) -> Result<Disposition, Reason> {
        // Records carry their index in the tag (1-based).
        self.base = (rec.tag as usize - 1) * RECORD;
        Ok(Disposition::Stage)
    }

    fn stage(&mut self, offset: u64, want: usize) -> Result<&mut [u8], Reason> {
        let start = self.base + offset as usize;
        Ok(&mut self.dest[start..start + want])
    }
}

fn identity() -> Identity {
    Identity {
        kind: DeviceKind::EDU,
        persona: PersonaId::new(b"bench", 1, [7; 32]).unwrap(),
    }
}

fn encode(records: &[Record<'_>], out: &mut [u8]) -> usize {
    let mut w = Writer::new(&identity());
    let mut total = 0;
    for piece in out.chunks_mut(CHUNK) {
        total += w.fill(records, piece).unwrap();
    }
    assert!(w.is_done());
    total
}

fn decode(stream: &[u8], dest: &mut [u8]) {
    let id = identity();
    let mut p = Parser::new(Expect::exactly(&id), Limits::UNLIMITED);
    let mut sink = Staging { dest, base: 0 };
    let mut last = Progress::NeedMore;
    for piece in stream.chunks(CHUNK) {
        last = p.feed(piece, &mut sink).unwrap();
    }
    assert_eq!(last, Progress::Done);
}

fn memcpy(src: &[u8], dst: &mut [u8]) {
    for (d, s) in dst.chunks_mut(CHUNK).zip(src.chunks(CHUNK)) {
        d.copy_from_slice(black_box(s));
    }
}

fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn gibs(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / (1u64 << 30) as f64
}

fn main() {
    // cargo bench passes `--bench`; `cargo test --benches` passes nothing: run once, briefly.
    let reps: usize = std::env::var("PERSONA_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if std::env::args().any(|a| a == "--bench") {
            15
        } else {
            1
        });

    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let state: Vec<u8> = (0..STATE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let records: Vec<Record<'_>> = state
        .chunks(RECORD)
        .enumerate()
        .map(|(i, payload)| Record {
            tag: u32::try_from(i + 1).unwrap(),
            mandatory: true,
            payload,
        })
        .collect();
    let len = persona_core::mig::stream::encoded_len(records.as_slice()).unwrap() as usize;
    let mut stream = vec![0u8; len];
    let mut dest = vec![0u8; STATE];
    let mut copy = vec![0u8; len];

    // Warm up: fault in every page and check the round trip once.
    assert_eq!(encode(&records, &mut stream), len);
    decode(&stream, &mut dest);
    assert!(dest == state, "round trip");
    memcpy(&stream, &mut copy);

    let (mut enc, mut dec, mut cpy_e, mut cpy_d) = (vec![], vec![], vec![], vec![]);
    for _ in 0..reps {
        cpy_e.push(time(|| memcpy(&state, &mut copy[..STATE])));
        enc.push(time(|| {
            black_box(encode(&records, &mut stream));
        }));
        cpy_d.push(time(|| memcpy(&stream, &mut copy)));
        dec.push(time(|| decode(&stream, &mut dest)));
    }
    black_box((&copy, &dest));

    // The machine may be shared: compare each codec run with the memcpy run just before it, and
    // report the median of those ratios next to the median throughputs.
    let ratio = |codec: &[Duration], copy: &[Duration]| {
        let mut r: Vec<f64> = codec
            .iter()
            .zip(copy)
            .map(|(c, m)| m.as_secs_f64() / c.as_secs_f64())
            .collect();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    let (re, rd) = (ratio(&enc, &cpy_e), ratio(&dec, &cpy_d));
    // Best-of ratios: the least disturbed run of each, a check on the medians.
    let best = |codec: &[Duration], copy: &[Duration]| {
        copy.iter().min().unwrap().as_secs_f64() / codec.iter().min().unwrap().as_secs_f64()
    };
    let (be, bd) = (best(&enc, &cpy_e), best(&dec, &cpy_d));
    let (enc, dec, cpy_e, cpy_d) = (median(enc), median(dec), median(cpy_e), median(cpy_d));
    let (e, ce) = (gibs(STATE, enc), gibs(STATE, cpy_e));
    let (d, cd) = (gibs(len, dec), gibs(len, cpy_d));
    println!(
        "stream encode: {e:.2} GiB/s, memcpy: {ce:.2} GiB/s, ratio {re:.2} (best-of ratio {be:.2})"
    );
    println!(
        "stream decode: {d:.2} GiB/s, memcpy: {cd:.2} GiB/s, ratio {rd:.2} (best-of ratio {bd:.2})"
    );
    println!(
        "({} MiB state in {} KiB records and pieces, median of {reps})",
        STATE / MIB,
        RECORD / 1024
    );
}
