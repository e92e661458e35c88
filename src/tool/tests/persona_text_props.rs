//! Round trips binary -> text -> binary -> text on random personas.

use persona_core::persona::derive::{derive, DeriveOptions, PasidRequest};
use persona_core::persona::{DeviceView, PersonaModel, PersonaRef, Rule};
use proptest::prelude::*;
use vfio_persona::{synth, text};

fn rule() -> impl Strategy<Value = Rule> {
    prop_oneof![
        Just(Rule::Hidden),
        Just(Rule::Pinned),
        Just(Rule::Dynamic),
        Just(Rule::Emulated)
    ]
}

fn edit() -> impl Strategy<Value = (u16, u8, Rule, u8, u8)> {
    (0u16..4096, 1u8..24, rule(), any::<u8>(), any::<u8>())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn text_binary_text(
        nvme in any::<bool>(),
        pasid in proptest::option::of((1u8..=20, any::<bool>(), any::<bool>())),
        ids in (any::<u16>(), any::<u8>(), 0u8..64),
        edits in proptest::collection::vec(edit(), 0..24),
        version in (any::<u16>(), any::<u16>()),
        parity in any::<bool>(),
    ) {
        let dump = if nvme { synth::nvme() } else { synth::edu() };
        let mut m = Box::<PersonaModel>::default();
        let opts = DeriveOptions {
            name: Some("prop test"),
            version: persona_core::persona::Version { major: version.0, minor: version.1 },
            pasid: pasid.filter(|_| nvme).map(|(width, exec, privileged)| PasidRequest { width, exec, privileged, offset: None }),
            parity,
        };
        let dev = DeviceView { config: &dump, bars: Some(synth::bars(&dump)) };
        derive(&dev, &opts, &mut m).unwrap();
        m.ids.device = ids.0;
        m.ids.revision = ids.1;
        m.emulated_ids = ids.2;
        for (start, len, r, v, mask) in edits {
            let s = usize::from(start) % m.config_size;
            let e = (s + usize::from(len)).min(m.config_size);
            for off in s..e {
                match r {
                    Rule::Emulated => m.set_emulated(off, v ^ off as u8, mask),
                    Rule::Hidden => m.set_rule(off, off + 1, r),
                    _ => m.set_pass(off, r, v ^ off as u8, mask),
                }
            }
        }
        m.apply_layout();
        let Ok(blob) = text::encode(&m) else {
            // Too many runs or emulated bytes: not a persona; nothing to round-trip.
            return Ok(());
        };
        let p = PersonaRef::parse(&blob).unwrap();
        let t1 = text::write(&p);
        let mut m2 = Box::<PersonaModel>::default();
        text::parse(&t1, &mut m2).map_err(|e| TestCaseError::fail(format!("{e}\n{t1}")))?;
        let blob2 = text::encode(&m2).unwrap();
        prop_assert_eq!(&blob2, &blob);
        let t2 = text::write(&PersonaRef::parse(&blob2).unwrap());
        prop_assert_eq!(t2, t1);
    }
}
