//! Tests of the migration stream codec: round trips under any chunking, and rejection of every
//! truncation, every single-byte corruption, foreign personas and unknown mandatory records.

// Tests may panic: that is how they fail.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use persona_core::mig::checksum::{checksum, Checksum};
use persona_core::mig::stream::{
    encoded_len, DeviceKind, Disposition, Errno, Expect, Identity, Limits, Parser, PersonaId,
    Progress, Reason, Record, RecordInfo, Sink, StreamError, WriteError, Writer, END_RECORD_LEN,
    HEADER_LEN, NAME_MAX, RECORD_HEADER_LEN,
};
use proptest::prelude::*;

fn ident(name: &str, version: u32, digest_byte: u8) -> Identity {
    Identity {
        kind: DeviceKind::EDU,
        persona: PersonaId::new(name.as_bytes(), version, [digest_byte; 32]).unwrap(),
    }
}

fn edu() -> Identity {
    ident("edu-v1", 3, 0xab)
}

/// An owned record for tests.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    tag: u32,
    mandatory: bool,
    payload: Vec<u8>,
}

fn as_records(recs: &[Rec]) -> Vec<Record<'_>> {
    recs.iter()
        .map(|r| Record {
            tag: r.tag,
            mandatory: r.mandatory,
            payload: &r.payload,
        })
        .collect()
}

/// Encodes `recs` into output buffers of the sizes `sizes` yields, in turn.
fn encode_chunked(id: &Identity, recs: &[Rec], sizes: &[usize]) -> Vec<u8> {
    let src = as_records(recs);
    let mut w = Writer::new(id);
    let mut out = Vec::new();
    let expected = encoded_len(src.as_slice()).unwrap();
    assert_eq!(w.remaining(src.as_slice()), Some(expected));
    let mut i = 0;
    loop {
        let size = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(4096)
            .max(1);
        i += 1;
        let mut buf = vec![0u8; size];
        let n = w.fill(src.as_slice(), &mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
        assert_eq!(w.written(), out.len() as u64);
        assert_eq!(
            w.remaining(src.as_slice()),
            Some(expected - out.len() as u64)
        );
        if n == 0 {
            break;
        }
        assert!(n == size || w.is_done());
    }
    assert!(w.is_done());
    assert_eq!(out.len() as u64, expected);
    out
}

fn encode(id: &Identity, recs: &[Rec]) -> Vec<u8> {
    encode_chunked(id, recs, &[1 << 20])
}

/// A sink that knows some tags, stages their payload, and records what it saw.
#[derive(Default)]
struct TestSink {
    known: Vec<u32>,
    /// Stage known tags through slices of at most this many bytes (0: the whole record).
    stage_step: usize,
    records: Vec<Rec>,
    skipped: Vec<RecordInfo>,
    header: Option<Identity>,
    cur: Option<(RecordInfo, Vec<u8>)>,
}

impl TestSink {
    fn knowing(known: &[u32]) -> Self {
        Self {
            known: known.to_vec(),
            ..Self::default()
        }
    }
}

impl Sink for TestSink {
    fn header(&mut self, id: &Identity) -> Result<(), Reason> {
        assert!(self.header.is_none());
        self.header = Some(*id);
        Ok(())
    }

    fn begin_record(&mut self, rec: &RecordInfo) -> Result<Disposition, Reason> {
        assert!(self.cur.is_none());
        if self.known.contains(&rec.tag) {
            // Like a real sink, refuse lengths it has no room for (corrupted length fields).
            if rec.len > 1 << 20 {
                return Err(Reason::InvalidRecord);
            }
            self.cur = Some((*rec, vec![0; rec.len as usize]));
            Ok(Disposition::Stage)
        } else {
            self.skipped.push(*rec);
            Ok(Disposition::Unknown)
        }
    }

    fn stage(&mut self, offset: u64, want: usize) -> Result<&mut [u8], Reason> {
        let (_, buf) = self.cur.as_mut().unwrap();
        let start = offset as usize;
        let mut end = start + want;
        if self.stage_step != 0 {
            end = end.min(start + self.stage_step);
        }
        Ok(&mut buf[start..end])
    }

    fn end_record(&mut self) -> Result<(), Reason> {
        let (info, payload) = self.cur.take().unwrap();
        self.records.push(Rec {
            tag: info.tag,
            mandatory: info.mandatory,
            payload,
        });
        Ok(())
    }
}

/// Feeds `stream` in chunks of the sizes `sizes` yields, in turn; returns the last result.
fn decode_chunked(
    parser: &mut Parser,
    sink: &mut TestSink,
    stream: &[u8],
    sizes: &[usize],
) -> Result<Progress, StreamError> {
    let mut rest = stream;
    let mut i = 0;
    let mut last = Ok(Progress::NeedMore);
    while !rest.is_empty() {
        let size = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(4096)
            .max(1);
        i += 1;
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        last = parser.feed(chunk, sink);
        last?;
        if tail.is_empty() {
            break;
        }
        assert_eq!(last, Ok(Progress::NeedMore), "Done before the last byte");
    }
    last
}

fn sample_records() -> Vec<Rec> {
    vec![
        Rec {
            tag: 0x10,
            mandatory: true,
            payload: (0..37u8).collect(),
        },
        Rec {
            tag: 0x7777,
            mandatory: false,
            payload: vec![9; 13],
        },
        Rec {
            tag: 0x11,
            mandatory: true,
            payload: vec![],
        },
        Rec {
            tag: 0x12,
            mandatory: false,
            payload: (0..70u8).rev().collect(),
        },
    ]
}

fn known_sample() -> Vec<u32> {
    vec![0x10, 0x11, 0x12]
}

fn decode_all(stream: &[u8], expect: Expect) -> (Result<Progress, StreamError>, TestSink) {
    let mut p = Parser::new(expect, Limits::UNLIMITED);
    let mut sink = TestSink::knowing(&known_sample());
    let r = decode_chunked(&mut p, &mut sink, stream, &[stream.len().max(1)]);
    (r, sink)
}

#[test]
fn round_trip_skips_unknown_optional() {
    let recs = sample_records();
    let stream = encode(&edu(), &recs);
    assert_eq!(
        stream.len(),
        HEADER_LEN + 4 * RECORD_HEADER_LEN + 37 + 13 + 70 + END_RECORD_LEN
    );
    let mut p = Parser::new(Expect::exactly(&edu()), Limits::UNLIMITED);
    let mut sink = TestSink::knowing(&known_sample());
    assert_eq!(p.feed(&stream, &mut sink), Ok(Progress::Done));
    assert!(p.is_done());
    assert_eq!(p.finish(), Ok(()));
    assert_eq!(p.offset(), stream.len() as u64);
    assert_eq!(p.identity(), Some(edu()));
    assert_eq!(sink.header, Some(edu()));
    let kept: Vec<Rec> = recs.iter().filter(|r| r.tag != 0x7777).cloned().collect();
    assert_eq!(sink.records, kept);
    assert_eq!(sink.skipped.len(), 1);
    let skipped = sink.skipped[0];
    assert_eq!(
        (skipped.tag, skipped.mandatory, skipped.len),
        (0x7777, false, 13)
    );
    assert_eq!(skipped.offset, (HEADER_LEN + RECORD_HEADER_LEN + 37) as u64);
}

#[test]
fn empty_stream_round_trips() {
    let stream = encode(&edu(), &[]);
    assert_eq!(stream.len(), HEADER_LEN + END_RECORD_LEN);
    let (r, sink) = decode_all(&stream, Expect::exactly(&edu()));
    assert_eq!(r, Ok(Progress::Done));
    assert!(sink.records.is_empty());
}

#[test]
fn wire_format_is_as_documented() {
    let id = ident("ab", 0x0102_0304, 0x5a);
    let recs = vec![Rec {
        tag: 0x0a0b_0c0d,
        mandatory: true,
        payload: vec![0xee; 3],
    }];
    let s = encode(&id, &recs);
    assert_eq!(&s[0..8], b"PVFIOMIG");
    assert_eq!(&s[8..10], &[1, 0]);
    assert_eq!(&s[10..12], &[120, 0]);
    assert_eq!(&s[12..14], &[1, 0]);
    assert_eq!(&s[14..16], &[0, 0]);
    assert_eq!(&s[16..20], &[4, 3, 2, 1]);
    assert_eq!(&s[20..24], &[2, 0, 0, 0]);
    assert_eq!(&s[24..56], &[0x5a; 32]);
    assert_eq!(&s[56..58], b"ab");
    assert!(s[58..120].iter().all(|&b| b == 0));
    assert_eq!(&s[120..124], &[0x0d, 0x0c, 0x0b, 0x0a]);
    assert_eq!(&s[124..128], &[1, 0, 0, 0]);
    assert_eq!(&s[128..136], &3u64.to_le_bytes());
    assert_eq!(&s[136..139], &[0xee; 3]);
    assert_eq!(&s[139..143], &[0; 4]);
    assert_eq!(&s[143..147], &[1, 0, 0, 0]);
    assert_eq!(&s[147..155], &8u64.to_le_bytes());
    assert_eq!(&s[155..163], &checksum(&s[..155]).to_le_bytes());
    assert_eq!(s.len(), 163);
}

#[test]
fn header_comes_first_for_precopy() {
    // PRE_COPY: only the header is available; it is emitted alone, in any pieces.
    let recs = sample_records();
    let src = as_records(&recs);
    let mut w = Writer::new(&edu());
    assert_eq!(w.header_remaining(), HEADER_LEN);
    let mut out = vec![0u8; 50];
    assert_eq!(w.fill_header(&mut out), 50);
    assert_eq!(w.header_remaining(), HEADER_LEN - 50);
    let mut big = vec![0u8; 1000];
    assert_eq!(w.fill_header(&mut big), HEADER_LEN - 50);
    assert_eq!(w.header_remaining(), 0);
    assert_eq!(
        w.fill_header(&mut big),
        0,
        "nothing beyond the header in PRE_COPY"
    );
    let mut stream = out.clone();
    stream.extend_from_slice(&big[..HEADER_LEN - 50]);

    // A destination with another persona rejects it as soon as the header is in.
    let other = ident("edu-v1", 3, 0xac);
    let mut p = Parser::new(Expect::exactly(&other), Limits::UNLIMITED);
    let mut sink = TestSink::default();
    let e = p.feed(&stream, &mut sink).unwrap_err();
    assert_eq!(e.reason, Reason::PersonaDigestMismatch);

    // STOP_COPY: the rest follows.
    loop {
        let n = w.fill(src.as_slice(), &mut big).unwrap();
        if n == 0 {
            break;
        }
        stream.extend_from_slice(&big[..n]);
    }
    assert_eq!(stream, encode(&edu(), &recs));
}

#[test]
fn persona_and_kind_mismatch_rejected_at_header_completion() {
    let stream = encode(&edu(), &sample_records());
    let cases = [
        (ident("edu-v2", 3, 0xab), Reason::PersonaNameMismatch, 56),
        (ident("edu-v", 3, 0xab), Reason::PersonaNameMismatch, 56),
        (
            ident("edu-v1", 4, 0xab),
            Reason::PersonaVersionMismatch {
                expected: 4,
                found: 3,
            },
            16,
        ),
        (ident("edu-v1", 3, 0xaa), Reason::PersonaDigestMismatch, 24),
        (
            Identity {
                kind: DeviceKind(7),
                ..edu()
            },
            Reason::DeviceKindMismatch {
                expected: DeviceKind(7),
                found: DeviceKind::EDU,
            },
            12,
        ),
    ];
    for (dest, reason, at) in cases {
        let mut p = Parser::new(Expect::exactly(&dest), Limits::UNLIMITED);
        let mut sink = TestSink::default();
        // One byte short of the header: nothing to complain about yet.
        assert_eq!(
            p.feed(&stream[..HEADER_LEN - 1], &mut sink),
            Ok(Progress::NeedMore)
        );
        let e = p.feed(&stream[HEADER_LEN - 1..], &mut sink).unwrap_err();
        assert_eq!(e, StreamError { offset: at, reason });
        assert_eq!(e.errno(), Errno::Eproto);
        assert!(e.reason.is_incompatible());
        assert!(sink.header.is_none(), "sink never sees a foreign header");
        // The error is sticky.
        assert_eq!(p.feed(&[], &mut sink), Err(e));
        assert_eq!(p.feed(&stream, &mut sink), Err(e));
        assert_eq!(p.finish(), Err(e));
        assert_eq!(p.error(), Some(e));
    }
}

#[test]
fn any_persona_is_reported() {
    let id = ident("some-other-persona", 77, 1);
    let stream = encode(&id, &[]);
    let (r, sink) = decode_all(&stream, Expect::ANY);
    assert_eq!(r, Ok(Progress::Done));
    assert_eq!(sink.header, Some(id));
    assert_eq!(sink.header.unwrap().persona.name(), b"some-other-persona");
    assert_eq!(sink.header.unwrap().persona.version(), 77);
    assert_eq!(sink.header.unwrap().persona.digest(), &[1; 32]);
}

#[test]
fn bad_magic_rejected_at_first_byte() {
    let stream = encode(&edu(), &[]);
    let mut p = Parser::new(Expect::ANY, Limits::UNLIMITED);
    let mut sink = TestSink::default();
    let e = p.feed(b"X", &mut sink).unwrap_err();
    assert_eq!(
        e,
        StreamError {
            offset: 0,
            reason: Reason::BadMagic
        }
    );
    assert_eq!(e.errno(), Errno::Einval);
    // A wrong fifth byte is reported at offset 4, as soon as it arrives.
    let mut bad = stream.clone();
    bad[4] ^= 0x20;
    let mut p = Parser::new(Expect::ANY, Limits::UNLIMITED);
    assert_eq!(p.feed(&bad[..4], &mut sink), Ok(Progress::NeedMore));
    let e = p.feed(&bad[4..5], &mut sink).unwrap_err();
    assert_eq!(e.offset, 4);
}

#[test]
fn unsupported_version_rejected_early() {
    let mut stream = encode(&edu(), &[]);
    stream[8] = 2;
    let mut p = Parser::new(Expect::ANY, Limits::UNLIMITED);
    let mut sink = TestSink::default();
    assert_eq!(p.feed(&stream[..9], &mut sink), Ok(Progress::NeedMore));
    let e = p.feed(&stream[9..10], &mut sink).unwrap_err();
    assert_eq!(
        e,
        StreamError {
            offset: 8,
            reason: Reason::UnsupportedVersion(2)
        }
    );
    assert_eq!(e.errno(), Errno::Eopnotsupp);
}

#[test]
fn malformed_header_fields() {
    let base = encode(&edu(), &[]);
    let case = |at: usize, v: u8| {
        let mut s = base.clone();
        s[at] = v;
        decode_all(&s, Expect::ANY).0.unwrap_err()
    };
    assert_eq!(case(10, 121).reason, Reason::BadHeaderLength(121));
    assert_eq!(case(14, 1).reason, Reason::UnsupportedHeaderFlags(1));
    assert_eq!(case(20, 0).reason, Reason::BadNameLength(0));
    assert_eq!(case(20, 65).reason, Reason::BadNameLength(65));
    assert_eq!(case(22, 1).reason, Reason::NonZeroReserved);
    let e = case(56 + 6, b'x');
    assert_eq!((e.offset, e.reason), (62, Reason::NonZeroReserved));
    assert_eq!(PersonaId::new(b"", 1, [0; 32]), None);
    assert_eq!(PersonaId::new(&[b'a'; NAME_MAX + 1], 1, [0; 32]), None);
    assert!(PersonaId::new(&[b'a'; NAME_MAX], 1, [0; 32]).is_some());
}

#[test]
fn unknown_mandatory_rejected() {
    let recs = vec![
        Rec {
            tag: 0x10,
            mandatory: true,
            payload: vec![1, 2, 3],
        },
        Rec {
            tag: 0x9999,
            mandatory: true,
            payload: vec![4; 5],
        },
    ];
    let stream = encode(&edu(), &recs);
    let (r, sink) = decode_all(&stream, Expect::exactly(&edu()));
    let e = r.unwrap_err();
    let at = (HEADER_LEN + RECORD_HEADER_LEN + 3) as u64;
    assert_eq!(
        e,
        StreamError {
            offset: at,
            reason: Reason::UnknownMandatory(0x9999)
        }
    );
    assert_eq!(e.errno(), Errno::Eopnotsupp);
    assert_eq!(sink.records.len(), 1);
}

#[test]
fn reserved_record_flags_rejected() {
    let mut stream = encode(&edu(), &sample_records());
    stream[HEADER_LEN + 4] |= 2;
    let e = decode_all(&stream, Expect::ANY).0.unwrap_err();
    assert_eq!(e.reason, Reason::UnsupportedRecordFlags(3));
    assert_eq!(e.offset, (HEADER_LEN + 4) as u64);
}

#[test]
fn limits_enforced() {
    let recs = sample_records();
    let stream = encode(&edu(), &recs);
    let mut sink = TestSink::knowing(&known_sample());

    let mut p = Parser::new(
        Expect::ANY,
        Limits {
            max_record: 36,
            max_total: u64::MAX,
        },
    );
    let e = p.feed(&stream, &mut sink).unwrap_err();
    assert_eq!(e.reason, Reason::RecordTooLarge { len: 37, max: 36 });
    assert_eq!(e.errno(), Errno::Efbig);

    let len = stream.len() as u64;
    let mut p = Parser::new(
        Expect::ANY,
        Limits {
            max_record: u64::MAX,
            max_total: len,
        },
    );
    assert_eq!(
        p.feed(&stream, &mut TestSink::knowing(&known_sample())),
        Ok(Progress::Done)
    );

    let mut p = Parser::new(
        Expect::ANY,
        Limits {
            max_record: u64::MAX,
            max_total: len - 1,
        },
    );
    let e = p
        .feed(&stream, &mut TestSink::knowing(&known_sample()))
        .unwrap_err();
    assert_eq!(e.reason, Reason::StreamTooLarge { max: len - 1 });
    // The last record is the one that does not fit, detected at its header.
    assert_eq!(e.offset, len - 24 - 70 - 16 + 16);

    // A huge length is rejected before any payload arrives.
    let mut s = encode(&edu(), &recs);
    s[HEADER_LEN + 8..HEADER_LEN + 16].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut p = Parser::new(Expect::ANY, Limits::UNLIMITED);
    let e = p
        .feed(
            &s[..HEADER_LEN + 16],
            &mut TestSink::knowing(&known_sample()),
        )
        .unwrap_err();
    assert_eq!(e.reason, Reason::StreamTooLarge { max: u64::MAX });
}

#[test]
fn reset_accepts_a_valid_stream_after_garbage() {
    let stream = encode(&edu(), &sample_records());
    let mut p = Parser::new(Expect::exactly(&edu()), Limits::UNLIMITED);
    let mut sink = TestSink::knowing(&known_sample());
    let mut bad = stream.clone();
    bad[HEADER_LEN + 30] ^= 0x40;
    assert!(p.feed(&bad, &mut sink).is_err());
    p.reset(Expect::exactly(&edu()), Limits::UNLIMITED);
    assert_eq!(p.identity(), None);
    let mut sink = TestSink::knowing(&known_sample());
    assert_eq!(p.feed(&stream, &mut sink), Ok(Progress::Done));
    assert_eq!(p.identity(), Some(edu()));
}

#[test]
fn trailing_data_rejected() {
    let mut stream = encode(&edu(), &sample_records());
    stream.push(0);
    let (r, _) = decode_all(&stream, Expect::ANY);
    let e = r.unwrap_err();
    assert_eq!(e.reason, Reason::TrailingData);
    assert_eq!(e.offset, stream.len() as u64 - 1);
    // Also when the extra byte comes in its own write.
    let stream = encode(&edu(), &sample_records());
    let mut p = Parser::new(Expect::ANY, Limits::UNLIMITED);
    let mut sink = TestSink::knowing(&known_sample());
    assert_eq!(p.feed(&stream, &mut sink), Ok(Progress::Done));
    assert_eq!(p.feed(&[], &mut sink), Ok(Progress::Done));
    assert_eq!(
        p.feed(&[0], &mut sink).unwrap_err().reason,
        Reason::TrailingData
    );
}

#[test]
fn every_truncation_is_rejected() {
    let stream = encode(&edu(), &sample_records());
    for cut in 0..stream.len() {
        for sizes in [&[usize::MAX][..], &[1], &[7, 3]] {
            let mut p = Parser::new(Expect::exactly(&edu()), Limits::UNLIMITED);
            let mut sink = TestSink::knowing(&known_sample());
            let r = decode_chunked(&mut p, &mut sink, &stream[..cut], sizes);
            assert_eq!(r, Ok(Progress::NeedMore), "cut {cut}");
            let e = p.finish().unwrap_err();
            assert_eq!(
                e,
                StreamError {
                    offset: cut as u64,
                    reason: Reason::Truncated
                }
            );
        }
    }
}

#[test]
fn every_single_byte_change_is_rejected() {
    let stream = encode(&edu(), &sample_records());
    for at in 0..stream.len() {
        for x in 1..=255u8 {
            let mut s = stream.clone();
            s[at] ^= x;
            let mut p = Parser::new(Expect::exactly(&edu()), Limits::UNLIMITED);
            let mut sink = TestSink::knowing(&known_sample());
            let r = p.feed(&s, &mut sink);
            let finished = p.finish();
            assert!(
                r.is_err() || finished.is_err(),
                "byte {at} ^ {x:#x} accepted"
            );
        }
    }
}

#[test]
fn bad_checksum_reports_ebadmsg() {
    let mut stream = encode(&edu(), &sample_records());
    let at = HEADER_LEN + RECORD_HEADER_LEN + 5;
    stream[at] ^= 1;
    let e = decode_all(&stream, Expect::exactly(&edu())).0.unwrap_err();
    assert!(matches!(e.reason, Reason::BadChecksum { .. }));
    assert_eq!(e.offset, (stream.len() - 8) as u64);
    assert_eq!(e.errno(), Errno::Ebadmsg);
}

#[test]
fn bad_end_record() {
    let stream = encode(&edu(), &[]);
    for (at, v) in [(HEADER_LEN + 4, 0u8), (HEADER_LEN + 8, 9)] {
        let mut s = stream.clone();
        s[at] = v;
        let e = decode_all(&s, Expect::ANY).0.unwrap_err();
        assert_eq!(e.reason, Reason::BadEndRecord);
        assert_eq!(e.offset, HEADER_LEN as u64);
    }
}

/// A sink that rejects things, to check its errors surface with offsets.
struct Picky {
    fail_at: u8,
}

impl Sink for Picky {
    fn header(&mut self, _: &Identity) -> Result<(), Reason> {
        if self.fail_at == 0 {
            return Err(Reason::InvalidRecord);
        }
        Ok(())
    }
    fn begin_record(&mut self, _: &RecordInfo) -> Result<Disposition, Reason> {
        match self.fail_at {
            1 => Err(Reason::InvalidRecord),
            _ => Ok(Disposition::Stage),
        }
    }
    fn stage(&mut self, _: u64, _: usize) -> Result<&mut [u8], Reason> {
        Ok(&mut [])
    }
}

#[test]
fn sink_errors_surface() {
    let stream = encode(&edu(), &sample_records());
    for (fail_at, reason, offset) in [
        (0, Reason::InvalidRecord, HEADER_LEN as u64),
        (1, Reason::InvalidRecord, HEADER_LEN as u64),
        (
            2,
            Reason::NoStagingSpace,
            (HEADER_LEN + RECORD_HEADER_LEN) as u64,
        ),
    ] {
        let mut p = Parser::new(Expect::ANY, Limits::UNLIMITED);
        let e = p.feed(&stream, &mut Picky { fail_at }).unwrap_err();
        assert_eq!(e, StreamError { offset, reason });
    }
}

/// A source that changes under the writer.
struct Shifty {
    calls: std::cell::Cell<usize>,
    data: Vec<u8>,
}

impl persona_core::mig::stream::RecordSource for Shifty {
    fn record(&self, index: usize) -> Option<Record<'_>> {
        let c = self.calls.get();
        self.calls.set(c + 1);
        (index == 0).then(|| Record {
            tag: 1,
            mandatory: true,
            payload: &self.data[..if c < 2 { 10 } else { 9 }],
        })
    }
}

#[test]
fn writer_rejects_misbehaving_sources() {
    let bad = [Record {
        tag: 0,
        mandatory: true,
        payload: &[],
    }];
    let mut w = Writer::new(&edu());
    let mut out = [0u8; 4096];
    assert_eq!(
        w.fill(&bad, &mut out),
        Err(WriteError::ReservedTag { index: 0 })
    );
    assert_eq!(
        w.fill(&bad, &mut out),
        Err(WriteError::ReservedTag { index: 0 })
    );

    let shifty = Shifty {
        calls: 0.into(),
        data: vec![0; 10],
    };
    let mut w = Writer::new(&edu());
    let mut small = [0u8; HEADER_LEN + 20];
    let r1 = w.fill(&shifty, &mut small);
    let r2 = w.fill(&shifty, &mut small);
    assert!(
        r1 == Err(WriteError::SourceChanged { index: 0 })
            || r2 == Err(WriteError::SourceChanged { index: 0 })
    );
}

#[test]
fn staging_in_tiny_pieces() {
    let recs = sample_records();
    let stream = encode(&edu(), &recs);
    for step in [1, 2, 3, 8, 31] {
        let mut p = Parser::new(Expect::ANY, Limits::UNLIMITED);
        let mut sink = TestSink::knowing(&known_sample());
        sink.stage_step = step;
        assert_eq!(p.feed(&stream, &mut sink), Ok(Progress::Done));
        assert_eq!(sink.records.len(), 3);
    }
}

#[test]
fn errno_mapping_is_total() {
    let reasons = [
        Reason::BadMagic,
        Reason::Truncated,
        Reason::BadChecksum {
            computed: 0,
            found: 1,
        },
        Reason::UnknownMandatory(5),
        Reason::PersonaNameMismatch,
        Reason::StreamTooLarge { max: 1 },
    ];
    let errnos = [
        Errno::Einval,
        Errno::Einval,
        Errno::Ebadmsg,
        Errno::Eopnotsupp,
        Errno::Eproto,
        Errno::Efbig,
    ];
    for (r, e) in reasons.iter().zip(errnos) {
        assert_eq!(r.errno(), e);
        assert!(!format!("{r}").is_empty());
    }
}

#[test]
fn checksum_copy_equals_update() {
    let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    let mut a = Checksum::new();
    a.update(&data);
    let mut b = Checksum::new();
    let mut dst = vec![0u8; data.len()];
    assert_eq!(b.copy_update(&mut dst, &data), data.len());
    assert_eq!(dst, data);
    assert_eq!(a.finish(), b.finish());
    assert_eq!(a.finish(), checksum(&data));
    // Trailing zeros change the checksum (the length is mixed in).
    let mut z = data.clone();
    z.push(0);
    assert_ne!(checksum(&z), checksum(&data));
    assert_ne!(checksum(&[]), checksum(&[0]));
}

fn arb_records() -> impl Strategy<Value = Vec<Rec>> {
    prop::collection::vec(
        (
            1u32..=u32::MAX,
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 0..600),
        )
            .prop_map(|(tag, mandatory, payload)| Rec {
                tag,
                mandatory,
                payload,
            }),
        0..6,
    )
}

fn arb_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1usize..8, 1usize..200, 100usize..5000], 1..20)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any records, encoded into any pieces and decoded from any pieces, come back unchanged.
    #[test]
    fn round_trip_any_chunking(recs in arb_records(), out_sizes in arb_sizes(), in_sizes in arb_sizes()) {
        let stream = encode_chunked(&edu(), &recs, &out_sizes);
        prop_assert_eq!(&stream, &encode(&edu(), &recs));
        let tags: Vec<u32> = recs.iter().map(|r| r.tag).collect();
        let mut p = Parser::new(Expect::exactly(&edu()), Limits::UNLIMITED);
        let mut sink = TestSink::knowing(&tags);
        let r = decode_chunked(&mut p, &mut sink, &stream, &in_sizes);
        prop_assert_eq!(r, Ok(Progress::Done));
        prop_assert_eq!(p.finish(), Ok(()));
        prop_assert_eq!(sink.records, recs);
    }

    /// With no tag known, optional records are skipped and the first mandatory one is refused.
    #[test]
    fn unknown_tags(recs in arb_records(), in_sizes in arb_sizes()) {
        let stream = encode(&edu(), &recs);
        let mut p = Parser::new(Expect::exactly(&edu()), Limits::UNLIMITED);
        let mut sink = TestSink::knowing(&[]);
        let r = decode_chunked(&mut p, &mut sink, &stream, &in_sizes);
        match recs.iter().find(|r| r.mandatory) {
            None => prop_assert_eq!(r, Ok(Progress::Done)),
            Some(m) => prop_assert_eq!(r.map_err(|e| e.reason), Err(Reason::UnknownMandatory(m.tag))),
        }
        prop_assert!(sink.records.is_empty());
    }

    /// A random corruption (several bytes) or truncation is always rejected.
    #[test]
    fn corruption_rejected(
        recs in arb_records(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        in_sizes in arb_sizes(),
    ) {
        let mut stream = encode(&edu(), &recs);
        let orig = stream.clone();
        for (i, x) in &edits {
            let at = i.index(stream.len());
            stream[at] ^= x;
        }
        prop_assume!(stream != orig);
        let tags: Vec<u32> = recs.iter().map(|r| r.tag).collect();
        let mut p = Parser::new(Expect::exactly(&edu()), Limits::UNLIMITED);
        let mut sink = TestSink::knowing(&tags);
        let r = decode_chunked(&mut p, &mut sink, &stream, &in_sizes);
        prop_assert!(r.is_err() || p.finish().is_err());
    }

    /// The checksum does not depend on how the bytes are split.
    #[test]
    fn checksum_any_split(data in prop::collection::vec(any::<u8>(), 0..3000), cuts in arb_sizes()) {
        let mut c = Checksum::new();
        let mut rest = &data[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = cuts[i % cuts.len()].min(rest.len());
            i += 1;
            if i % 2 == 0 {
                c.update(&rest[..n]);
            } else {
                let mut dst = vec![0; n];
                c.copy_update(&mut dst, &rest[..n]);
                prop_assert_eq!(&dst[..], &rest[..n]);
            }
            rest = &rest[n..];
        }
        prop_assert_eq!(c.len(), data.len() as u64);
        prop_assert_eq!(c.finish(), checksum(&data));
    }

    /// Arbitrary bytes never panic the decoder, whatever the chunking.
    #[test]
    fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..400), in_sizes in arb_sizes(), with_magic in any::<bool>()) {
        let mut data = data;
        if with_magic {
            let head = encode(&edu(), &[]);
            let mut v = head[..HEADER_LEN].to_vec();
            v.extend_from_slice(&data);
            data = v;
        }
        let limits = Limits { max_record: 1 << 16, max_total: 1 << 20 };
        let mut p = Parser::new(Expect::ANY, limits);
        let mut sink = TestSink::knowing(&[1, 2, 3]);
        let _ = decode_chunked(&mut p, &mut sink, &data, &in_sizes);
        let _ = p.finish();
    }
}

/// A stream written in two parts (`fill_until` the first records in pieces, then `fill` the
/// rest, as a PRE_COPY then STOP_COPY source does) is byte for byte the stream written at once,
/// whatever the piece size and wherever the pause falls; `remaining_until` counts down the first
/// part to 0.
#[test]
fn paused_stream_equals_one_shot() {
    let recs = vec![
        Rec {
            tag: 0x2_0002,
            mandatory: true,
            payload: (0..300u32).map(|i| i as u8).collect(),
        },
        Rec {
            tag: 0x2_0002,
            mandatory: true,
            payload: vec![7; 40],
        },
        Rec {
            tag: 0x100,
            mandatory: true,
            payload: vec![1; 9],
        },
        Rec {
            tag: 0x2_0001,
            mandatory: true,
            payload: vec![2; 32],
        },
    ];
    let all = as_records(&recs);
    let mut one = vec![0u8; 4096];
    let n = Writer::new(&edu()).fill(&all[..], &mut one).unwrap();
    one.truncate(n);
    for stop in 0..=all.len() {
        for piece in [1usize, 5, 16, 4096] {
            let mut w = Writer::new(&edu());
            let mut out = Vec::new();
            let mut buf = vec![0u8; piece];
            // The source has every record: the pause, not its end, stops the first part.
            let early = &all[..];
            let want = w.remaining_until(early, stop).unwrap();
            loop {
                let k = w.fill_until(early, &mut buf, stop).unwrap();
                if k == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..k]);
            }
            assert_eq!(out.len() as u64, want, "stop {stop} piece {piece}");
            assert!(w.is_paused(), "stop {stop} piece {piece}");
            assert_eq!(w.remaining_until(early, stop), Some(0));
            assert_eq!(w.remaining(&all[..]), Some((one.len() - out.len()) as u64));
            loop {
                let k = w.fill(&all[..], &mut buf).unwrap();
                if k == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..k]);
            }
            assert!(w.is_done());
            assert_eq!(out, one, "stop {stop} piece {piece}");
        }
    }
}
