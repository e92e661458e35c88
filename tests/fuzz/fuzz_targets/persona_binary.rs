//! Fuzz the kernel's persona parser: any input must parse or fail with an error, and whatever
//! parses must be canonical (load + encode gives the same bytes) and serve the overlay.
#![no_main]

use libfuzzer_sys::fuzz_target;
use persona_core::persona::format::MAX_BLOB;
use persona_core::persona::{PersonaModel, PersonaRef};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = PersonaRef::parse(data) else { return };
    let _ = (p.name(), p.version(), p.ids(), p.pasid(), p.digest());
    let mut m = Box::<PersonaModel>::default();
    m.load(&p);
    let mut out = vec![0u8; MAX_BLOB];
    let n = m.encode(&mut out).expect("a parsed persona re-encodes");
    assert_eq!(&out[..n], data, "non-canonical encoding accepted");
});
