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
    match which % 2 {
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
