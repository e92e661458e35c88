//! Fuzz the migration record decoders (`persona_core::mig::records`): arbitrary payloads.
//!
//! Input layout: 1 byte picking the record family, then the payload. Checked on every input: no
//! panic; a payload a validator accepts encodes back to exactly the input (the record has one
//! encoding), and a refused one names a field inside the payload.

#![no_main]

use libfuzzer_sys::fuzz_target;
use persona_core::mig::records::{
    config::{self, ConfigRecord},
    edu::{self, EduRecord},
    ivshmem::{self, IvshmemRecord},
    pages::{self, Dest, PagesIn, Run},
    RecordError,
};

fn check_refusal(e: RecordError, len: usize, want: usize) {
    match e {
        RecordError::Length { want: w, got } => {
            assert_eq!(w, want);
            assert_eq!(got, len);
            assert_ne!(got, want, "right length refused as a length error");
        }
        RecordError::Field { offset, .. } => {
            assert_eq!(len, want, "field error for a payload of the wrong length");
            assert!(offset < want, "field outside the payload");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    match which % 4 {
        2 => match IvshmemRecord::decode(payload) {
            Ok(r) => {
                let mut out = [0u8; ivshmem::LEN];
                r.encode(&mut out);
                assert_eq!(&out[..], payload, "accepted a non-canonical ivshmem record");
            }
            Err(e) => check_refusal(e, payload.len(), ivshmem::LEN),
        },
        3 => {
            // A page record prefix for a memory of 1..=256 pages (the prefix's first byte of the
            // input picks it), the record length from the next two bytes.
            let Some((&[m, l0, l1], prefix)) = payload.split_first_chunk::<3>() else {
                return;
            };
            let mem = usize::from(m) + 1;
            let len = pages::PREFIX + usize::from(u16::from_le_bytes([l0, l1])) * 8;
            match Run::decode(prefix, len, mem) {
                Ok(run) => {
                    assert!(run.count >= 1 && run.count <= pages::MAX_RUN);
                    assert!(run.first + run.count <= mem, "run past the memory");
                    assert_eq!(run.payload_len(), len);
                    let mut out = [0u8; pages::PREFIX];
                    run.encode(&mut out);
                    assert_eq!(&out[..], &prefix[..pages::PREFIX]);
                    // Staged: every page byte lands inside the run's pages.
                    let mut st = PagesIn::begin(len as u64).expect("a valid length refused");
                    if let Ok(Dest::Prefix(b)) = st.stage(0, pages::PREFIX, mem, |_| {}) {
                        b.copy_from_slice(&prefix[..pages::PREFIX]);
                    }
                    let mut marked = 0usize;
                    match st.stage(pages::PREFIX as u64 + 5, 1 << 20, mem, |p| {
                        assert!(p >= run.first && p < run.first + run.count);
                        marked += 1;
                    }) {
                        Ok(Dest::Memory(r)) => {
                            assert!(r.start >= run.first * pages::PAGE);
                            assert!(r.end <= (run.first + run.count) * pages::PAGE);
                        }
                        _ => panic!("a valid run not staged"),
                    }
                    assert_eq!(marked, run.count);
                }
                Err(RecordError::Length { .. }) => {}
                Err(RecordError::Field { offset, .. }) => assert!(offset < pages::PREFIX),
            }
        }
        0 => match EduRecord::decode(payload) {
            Ok(r) => {
                let mut out = [0u8; edu::LEN];
                r.encode(&mut out);
                assert_eq!(&out[..], payload, "accepted a non-canonical edu record");
            }
            Err(e) => check_refusal(e, payload.len(), edu::LEN),
        },
        _ => match ConfigRecord::decode(payload) {
            Ok(r) => {
                let mut out = [0u8; config::LEN];
                r.encode(&mut out);
                assert_eq!(&out[..], payload);
                assert!(r.nonzero().all(|(i, b)| payload[i] == b && b != 0));
            }
            Err(e) => check_refusal(e, payload.len(), config::LEN),
        },
    }
});
