//! Fuzz the TOML text parser: never panic; whatever parses encodes, and text round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use persona_core::persona::{PersonaModel, PersonaRef};
use vfio_persona::text;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let mut m = Box::<PersonaModel>::default();
    if text::parse(s, &mut m).is_err() {
        return;
    }
    let blob = text::encode(&m).expect("parsed text encodes");
    let p = PersonaRef::parse(&blob).expect("encoded blob parses");
    let t = text::write(&p);
    let mut m2 = Box::<PersonaModel>::default();
    text::parse(&t, &mut m2).expect("written text parses");
    assert_eq!(text::encode(&m2).expect("encodes"), blob);
});
