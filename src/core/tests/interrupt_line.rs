//! The Interrupt Line (0x3c) is the persona's: derived emulated with a fixed reset value, never
//! forwarded, kept across a function reset, carried by the config record; a persona that still
//! forwards it says so. The Interrupt Pin (0x3d) is checked as vfio-pci-core presents it.
#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod persona_support;

use persona_core::mig::records::config::{ConfigRecord, LEN};
use persona_core::overlay::{ConfigAccess, OverlayMap, OverlayState};
use persona_core::pci;
use persona_core::persona::check::{check_with, CheckReason, IommuPasid};
use persona_core::persona::derive::{derive_blob, DeriveOptions};
use persona_core::persona::fields::INTERRUPT_LINE_RESET;
use persona_core::persona::format::MAX_BLOB;
use persona_core::persona::{PersonaModel, PersonaRef, Rule};
use persona_support::*;

/// Config space as plain memory that counts the accesses reaching it.
struct Dev {
    mem: Vec<u8>,
    touched_line: usize,
}

impl ConfigAccess for Dev {
    type Error = ();

    fn read(&mut self, offset: u16, size: u8) -> Result<u32, ()> {
        let (o, n) = (usize::from(offset), usize::from(size));
        if (o..o + n).contains(&pci::INTERRUPT_LINE) {
            self.touched_line += 1;
        }
        let mut b = [0u8; 4];
        b[..n].copy_from_slice(&self.mem[o..o + n]);
        Ok(u32::from_le_bytes(b))
    }

    fn write(&mut self, offset: u16, size: u8, value: u32) -> Result<(), ()> {
        let (o, n) = (usize::from(offset), usize::from(size));
        if (o..o + n).contains(&pci::INTERRUPT_LINE) {
            self.touched_line += 1;
        }
        self.mem[o..o + n].copy_from_slice(&value.to_le_bytes()[..n]);
        Ok(())
    }
}

fn blob_of(dump: &[u8], parity: bool) -> Vec<u8> {
    let mut m = Box::<PersonaModel>::default();
    let mut out = vec![0u8; MAX_BLOB];
    let opts = DeriveOptions {
        parity,
        ..DeriveOptions::default()
    };
    let n = derive_blob(&view(dump), &opts, &mut m, &mut out).unwrap();
    out.truncate(n);
    out
}

/// Two edus whose host routing differs, as two hosts' functions do.
fn edus() -> (Vec<u8>, Vec<u8>) {
    let (mut a, mut b) = (edu(), edu());
    a[pci::INTERRUPT_LINE] = 0x0b;
    b[pci::INTERRUPT_LINE] = 0x0a;
    (a, b)
}

#[test]
fn derive_emulates_interrupt_line_with_the_fixed_reset_value() {
    let (a, b) = edus();
    let (pa, pb) = (blob_of(&a, false), blob_of(&b, false));
    // The host's routing is not part of the persona: both functions derive the same one.
    assert_eq!(pa, pb);
    let p = PersonaRef::parse(&pa).unwrap();
    let r = p.byte_rule(pci::INTERRUPT_LINE).unwrap();
    assert_eq!(r.rule, Rule::Emulated);
    assert_eq!((r.value, r.mask), (INTERRUPT_LINE_RESET, 0xff));
    assert_eq!(INTERRUPT_LINE_RESET, 0);
    assert!(!p.forwards_interrupt_line());
}

#[test]
fn a_persona_forwarding_interrupt_line_says_so() {
    let (a, _) = edus();
    // The parity form forwards it on purpose, as personas derived before did.
    let pa = blob_of(&a, true);
    let p = PersonaRef::parse(&pa).unwrap();
    assert_eq!(
        p.byte_rule(pci::INTERRUPT_LINE).unwrap().rule,
        Rule::Dynamic
    );
    assert!(p.forwards_interrupt_line());
}

#[test]
fn interrupt_line_is_served_by_the_overlay_and_migrates() {
    let (a, b) = edus();
    let blob = blob_of(&a, false);
    let p = PersonaRef::parse(&blob).unwrap();
    let (mut map_a, mut map_b) = (Box::<OverlayMap>::default(), Box::<OverlayMap>::default());
    map_a.build(&p, &a).unwrap();
    map_b.build(&p, &b).unwrap();
    let (mut st_a, mut st_b) = (
        Box::<OverlayState>::default(),
        Box::<OverlayState>::default(),
    );
    st_a.reset(&map_a);
    st_b.reset(&map_b);
    let mut dev_a = Dev {
        mem: a.clone(),
        touched_line: 0,
    };
    let mut dev_b = Dev {
        mem: b.clone(),
        touched_line: 0,
    };
    let line = pci::INTERRUPT_LINE as u16;
    // A fresh open shows the persona's value on both, not 0x0b and 0x0a.
    assert_eq!(map_a.read(&st_a, &mut dev_a, line, 1).unwrap(), 0);
    assert_eq!(map_b.read(&st_b, &mut dev_b, line, 1).unwrap(), 0);
    // A dword read of 0x3c..0x40: line from the overlay, pin, grant and latency from the device.
    let dw = map_a.read(&st_a, &mut dev_a, 0x3c, 4).unwrap();
    assert_eq!(dw & 0xff, 0);
    assert_eq!(dw >> 8, u32::from_le_bytes([a[0x3d], a[0x3e], a[0x3f], 0]));
    // A write lands in the overlay only.
    map_a.write(&mut st_a, &mut dev_a, line, 1, 0x2a).unwrap();
    assert_eq!(map_a.read(&st_a, &mut dev_a, line, 1).unwrap(), 0x2a);
    assert_eq!(dev_a.mem[pci::INTERRUPT_LINE], 0x0b);
    assert_eq!(
        dev_a.touched_line, 0,
        "the device saw an interrupt line access"
    );
    // A function reset keeps it (as vfio-pci-core's vconfig does); an open resets it.
    st_a.reset_function(&map_a);
    assert_eq!(map_a.read(&st_a, &mut dev_a, line, 1).unwrap(), 0x2a);
    // The config record carries it: B shows A's value after the load.
    let mut rec = [0u8; LEN];
    ConfigRecord(st_a.as_bytes()).encode(&mut rec);
    let got = ConfigRecord::decode(&rec).unwrap();
    assert!(st_b.load(&map_b, got.0));
    assert_eq!(map_b.read(&st_b, &mut dev_b, line, 1).unwrap(), 0x2a);
    assert_eq!(dev_b.touched_line, 0);
    st_a.reset(&map_a);
    assert_eq!(map_a.read(&st_a, &mut dev_a, line, 1).unwrap(), 0);
}

#[test]
fn function_reset_returns_every_other_emulated_register() {
    // BAR 0's register is emulated too: a function reset returns it, the line stays.
    let (a, _) = edus();
    let blob = blob_of(&a, false);
    let p = PersonaRef::parse(&blob).unwrap();
    let (map, mut st) = overlay(&p, &a);
    let mut dev = Dev {
        mem: a.clone(),
        touched_line: 0,
    };
    let bar0 = map.read(&st, &mut dev, 0x10, 4).unwrap();
    map.write(&mut st, &mut dev, 0x10, 4, 0xfebf_0000).unwrap();
    map.write(&mut st, &mut dev, 0x3c, 1, 0x05).unwrap();
    assert_ne!(map.read(&st, &mut dev, 0x10, 4).unwrap(), bar0);
    st.reset_function(&map);
    assert_eq!(map.read(&st, &mut dev, 0x10, 4).unwrap(), bar0);
    assert_eq!(map.read(&st, &mut dev, 0x3c, 1).unwrap(), 0x05);
}

/// The check's input at 0x3d as the driver gives it: what vfio-pci-core presents.
fn presented(dump: &[u8], own: Option<u8>, absent: bool) -> Vec<u8> {
    let mut d = dump.to_vec();
    d[pci::INTERRUPT_PIN] = pci::presented_interrupt_pin(d[pci::INTERRUPT_PIN], own, absent);
    d
}

fn pin_reasons(blob: &[u8], dump: &[u8]) -> Vec<CheckReason> {
    let p = PersonaRef::parse(blob).unwrap();
    let iommu = IommuPasid {
        max_pasid_log2: 20,
        exec: true,
        privileged: true,
    };
    let mut v = Vec::new();
    check_with(&p, &view(dump), &iommu, &mut |r| v.push(r));
    v
}

#[test]
fn interrupt_pin_is_checked_as_vfio_pci_core_presents_it() {
    let (a, _) = edus();
    assert_eq!(a[pci::INTERRUPT_PIN], 1);
    let blob = blob_of(&a, false);
    // vfio-pci-core's own copy wins; before it has one, no INTx means 0, else the physical pin.
    assert_eq!(pci::presented_interrupt_pin(1, Some(0), false), 0);
    assert_eq!(pci::presented_interrupt_pin(1, Some(1), true), 1);
    assert_eq!(pci::presented_interrupt_pin(1, None, true), 0);
    assert_eq!(pci::presented_interrupt_pin(1, None, false), 1);
    // A host presenting the pin: accepted.
    assert!(pin_reasons(&blob, &presented(&a, Some(1), false)).is_empty());
    assert!(pin_reasons(&blob, &presented(&a, None, false)).is_empty());
    // The same physical function on a host where vfio-pci-core shows 0 (nointx, no IRQ routed):
    // refused, naming the interrupt pin, although its physical pin is the persona's.
    for (own, absent) in [(Some(0), false), (None, true)] {
        let r = pin_reasons(&blob, &presented(&a, own, absent));
        assert!(
            r.iter().any(|r| matches!(
                r,
                CheckReason::Pinned {
                    offset: 0x3d,
                    register: "interrupt pin",
                    ..
                }
            )),
            "{own:?} {absent}: {r:?}"
        );
    }
}
