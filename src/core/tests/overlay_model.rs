//! The overlay against a byte-at-a-time reference model, on random access sequences.
#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod persona_support;

use persona_core::overlay::{
    chunk, pass_piece, pass_span, ConfigAccess, OverlayError, OverlayMap, OverlayState, PASS_WORDS,
};
use persona_core::pci::{self, Space};
use persona_core::persona::derive::{derive, DeriveOptions, PasidRequest};
use persona_core::persona::format::MAX_BLOB;
use persona_core::persona::{CapKind, PersonaModel, PersonaRef, Rule};
use persona_support::*;
use proptest::prelude::*;

/// A device whose config space is plain memory; it insists on naturally aligned accesses,
/// which is what the overlay promises to issue.
struct Dev {
    mem: Vec<u8>,
    /// The value of the write being served (what the user's buffer holds).
    user: u32,
}

/// An accessor whose every device access fails.
struct NoDevice;

impl ConfigAccess for NoDevice {
    type Error = ();

    fn read(&mut self, _: u16, _: u8) -> Result<u32, ()> {
        Err(())
    }

    fn write(&mut self, _: u16, _: u8, _: u32) -> Result<(), ()> {
        Err(())
    }
}

impl ConfigAccess for Dev {
    type Error = ();

    fn read(&mut self, offset: u16, size: u8) -> Result<u32, ()> {
        let (o, n) = (usize::from(offset), usize::from(size));
        assert_eq!(o % n, 0, "unaligned device read {o:#x}/{n}");
        let mut b = [0u8; 4];
        b[..n].copy_from_slice(&self.mem[o..o + n]);
        Ok(u32::from_le_bytes(b))
    }

    fn write(&mut self, offset: u16, size: u8, value: u32) -> Result<(), ()> {
        let (o, n) = (usize::from(offset), usize::from(size));
        assert_eq!(o % n, 0, "unaligned device write {o:#x}/{n}");
        self.mem[o..o + n].copy_from_slice(&value.to_le_bytes()[..n]);
        Ok(())
    }

    /// The kernel glue forwards the user's buffer from byte `at` instead of `value`: both must
    /// be the same bytes, or the device would see something else than the model.
    fn write_from(&mut self, offset: u16, size: u8, value: u32, at: u8) -> Result<(), ()> {
        let (n, at) = (usize::from(size), usize::from(at));
        let user = self.user.to_le_bytes();
        assert!(at + n <= 4, "write_from past the access: at {at} size {n}");
        assert_eq!(
            &user[at..at + n],
            &value.to_le_bytes()[..n],
            "write_from bytes differ"
        );
        self.write(offset, size, value)
    }
}

/// A persona exercising every rule: nvme_ext's identity layout with the PCIe capability moved
/// from 0x80 to 0xc0, PASID synthesized, the device ID emulated, a hidden range, a read-only
/// passthrough range and emulated registers with partial write masks.
fn persona() -> (Vec<u8>, Box<PersonaModel>) {
    let dump = nvme_ext();
    let mut m = Box::<PersonaModel>::default();
    let opts = DeriveOptions {
        pasid: Some(PasidRequest {
            width: 12,
            exec: true,
            privileged: false,
            offset: None,
        }),
        parity: true,
        ..Default::default()
    };
    derive(&view(&dump), &opts, &mut m).unwrap();
    // Relocate PCIe (0x80, 0x34 bytes) to 0xc0.
    let i = m
        .caps()
        .iter()
        .position(|e| e.id == u16::from(pci::CAP_ID_EXP))
        .unwrap();
    m.caps[i].offset = 0xc0;
    m.set_rule(0x80, 0xc0, Rule::Dynamic);
    m.set_rule(0xc0, 0xf4, Rule::Dynamic);
    m.emulated_ids |= persona_core::persona::IdField::Device.bit();
    m.ids.device = 0x5845;
    m.set_rule(0x200, 0x210, Rule::Hidden);
    m.set_rule(0x210, 0x220, Rule::Pinned);
    for k in 0..8 {
        m.set_emulated(0x300 + k, 0xa0 + k as u8, [0xff, 0x0f, 0, 0xf0][k % 4]);
    }
    m.apply_layout();
    let mut out = vec![0u8; MAX_BLOB];
    let n = m.encode(&mut out).expect("encode");
    out.truncate(n);
    (out, m)
}

/// Byte-at-a-time reference.
struct Reference<'a> {
    m: &'a PersonaModel,
    phys: Vec<usize>,
    state: Vec<u8>,
    dev: Vec<u8>,
}

impl<'a> Reference<'a> {
    fn new(m: &'a PersonaModel, dump: &[u8]) -> Self {
        let mut phys: Vec<usize> = (0..4096).collect();
        for e in m.caps().iter().filter(|e| e.kind == CapKind::Physical) {
            let base = pci::find_cap(dump, e.space, e.id, e.instance)
                .unwrap()
                .unwrap()
                .offset;
            for k in 0..usize::from(e.len) {
                phys[usize::from(e.offset) + k] = usize::from(base) + k;
            }
        }
        let _ = Space::Standard;
        Self {
            m,
            phys,
            state: m.value.to_vec(),
            dev: dump.to_vec(),
        }
    }

    fn read(&self, off: usize) -> u8 {
        if off >= self.m.config_size {
            return 0;
        }
        match self.m.rule[off] {
            Rule::Hidden => 0,
            Rule::Pinned | Rule::Dynamic => self.dev[self.phys[off]],
            Rule::Emulated => self.state[off],
        }
    }

    fn write(&mut self, off: usize, b: u8) {
        if off >= self.m.config_size {
            return;
        }
        match self.m.rule[off] {
            Rule::Hidden | Rule::Pinned => {}
            Rule::Dynamic => self.dev[self.phys[off]] = b,
            Rule::Emulated => {
                let mask = self.m.mask[off];
                self.state[off] = (self.state[off] & !mask) | (b & mask);
            }
        }
    }
}

fn access() -> impl Strategy<Value = (bool, u16, u8, u32)> {
    let offset = prop_oneof![
        0u16..0x100,
        0xb0u16..0x110,
        0x140u16..0x170,
        0x1f8u16..0x228,
        0x2fcu16..0x30c,
        0xff0u16..0xffc,
        0u16..0xffd
    ];
    (
        any::<bool>(),
        offset,
        prop_oneof![Just(1u8), Just(2u8), Just(4u8)],
        any::<u32>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn overlay_matches_reference(ops in proptest::collection::vec(access(), 1..64)) {
        let (blob, m) = persona();
        let p = PersonaRef::parse(&blob).unwrap();
        let dump = nvme_ext();
        let (map, mut st) = overlay(&p, &dump);
        let mut dev = Dev { mem: dump.clone(), user: 0 };
        let mut reference = Reference::new(&m, &dump);
        for (write, off, size, val) in ops {
            let (o, n) = (usize::from(off), usize::from(size));
            if write {
                dev.user = val;
                map.write(&mut st, &mut dev, off, size, val).unwrap();
                for k in 0..n {
                    reference.write(o + k, val.to_le_bytes()[k]);
                }
            } else {
                let got = map.read(&st, &mut dev, off, size).unwrap();
                let mut want = [0u8; 4];
                for (k, w) in want.iter_mut().enumerate().take(n) {
                    *w = reference.read(o + k);
                }
                prop_assert_eq!(got, u32::from_le_bytes(want), "read {:#x}/{}", off, size);
            }
            prop_assert_eq!(&dev.mem, &reference.dev);
        }
    }
}

#[test]
fn presented_layout_reads() {
    let (blob, _) = persona();
    let p = PersonaRef::parse(&blob).unwrap();
    let dump = nvme_ext();
    let (map, mut st) = overlay(&p, &dump);
    let mut dev = Dev {
        mem: dump.clone(),
        user: 0,
    };
    let rd = |map: &OverlayMap, st: &OverlayState, dev: &mut Dev, off: u16, size: u8| {
        map.read(st, dev, off, size).unwrap()
    };
    // Emulated device ID, passthrough vendor ID, in one dword read spanning both.
    assert_eq!(rd(&map, &st, &mut dev, 0, 4), 0x5845_1b36);
    // The PCIe capability now at 0xc0, its flags read from 0x82 on the device.
    assert_eq!(rd(&map, &st, &mut dev, 0xc0, 1), 0x10);
    assert_eq!(rd(&map, &st, &mut dev, 0xc2, 2), 0x0002);
    // PM's next pointer now leads to 0xc0.
    assert_eq!(rd(&map, &st, &mut dev, 0x61, 1), 0xc0);
    // PASID at 0xff8: header, capability register with width 12 and exec.
    assert_eq!(rd(&map, &st, &mut dev, 0xff8, 4), 0x0001_001b);
    assert_eq!(rd(&map, &st, &mut dev, 0xffc, 2), (12 << 8) | 2);
    // Control is emulated: enable and exec writable, privileged not; never reaches the device.
    dev.user = 0xffff;
    map.write(&mut st, &mut dev, 0xffe, 2, 0xffff).unwrap();
    assert_eq!(rd(&map, &st, &mut dev, 0xffe, 2), 0x0003);
    assert_eq!(&dev.mem[0xff8..], &dump[0xff8..]);
    st.reset(&map);
    assert_eq!(rd(&map, &st, &mut dev, 0xffe, 2), 0);
    // The physical PASID at 0x148 reads as zeros.
    assert_eq!(rd(&map, &st, &mut dev, 0x148, 4), 0);
    // Bad accesses are errors, not panics.
    assert!(matches!(
        map.read(&st, &mut dev, 0xffe, 4),
        Err(OverlayError::Access(_))
    ));
    assert!(matches!(
        map.read(&st, &mut dev, 0, 3),
        Err(OverlayError::Access(_))
    ));
}

/// Records every device access the overlay makes.
#[derive(Default)]
struct Recorder {
    mem: Vec<u8>,
    log: Vec<(bool, u16, u8, u32, u8)>,
}

impl ConfigAccess for Recorder {
    type Error = ();

    fn read(&mut self, offset: u16, size: u8) -> Result<u32, ()> {
        let (o, n) = (usize::from(offset), usize::from(size));
        let mut b = [0u8; 4];
        b[..n].copy_from_slice(&self.mem[o..o + n]);
        let v = u32::from_le_bytes(b);
        self.log.push((false, offset, size, v, 0));
        Ok(v)
    }

    fn write(&mut self, offset: u16, size: u8, value: u32) -> Result<(), ()> {
        self.log.push((true, offset, size, value, 0));
        Ok(())
    }

    fn write_from(&mut self, offset: u16, size: u8, value: u32, at: u8) -> Result<(), ()> {
        self.log.push((true, offset, size, value, at));
        Ok(())
    }
}

/// `passthrough` says `Some(phys)` exactly when the overlay would serve the access with one
/// device access at `phys` of the same size and the caller's own value (so the kernel glue may
/// make that access itself, straight to and from the user's buffer), at every aligned access of
/// the persona exercising every rule.
#[test]
fn passthrough_is_exactly_one_unchanged_device_access() {
    let (blob, _m) = persona();
    let p = PersonaRef::parse(&blob).unwrap();
    let dump = nvme_ext();
    let (map, mut st) = overlay(&p, &dump);
    let (mut some, mut none) = (0, 0);
    for size in [1u8, 2, 4] {
        for off in (0..4096u16).step_by(usize::from(size)) {
            for write in [false, true] {
                let mut dev = Recorder {
                    mem: dump.clone(),
                    ..Default::default()
                };
                let value = 0x8765_4321u32 & (u32::MAX >> (32 - 8 * u32::from(size)));
                let got = if write {
                    map.write(&mut st, &mut dev, off, size, value).unwrap();
                    None
                } else {
                    Some(map.read(&st, &mut dev, off, size).unwrap())
                };
                st.reset(&map);
                match map.passthrough(off, size, write) {
                    Some(phys) => {
                        some += 1;
                        let want = if write {
                            (true, phys, size, value, 0)
                        } else {
                            let v = got.unwrap();
                            (false, phys, size, v, 0)
                        };
                        assert_eq!(dev.log, vec![want], "{off:#x}/{size} write {write}");
                    }
                    None => {
                        none += 1;
                        let one_plain = dev.log.len() == 1 && dev.log[0].2 == size;
                        assert!(
                            !one_plain || dev.log[0].0 != write,
                            "{off:#x}/{size} write {write}: one plain access {:?} but passthrough None",
                            dev.log
                        );
                    }
                }
            }
        }
    }
    assert!(some > 1000 && none > 100, "both cases seen: {some} {none}");
}

/// `pass_span` over the maps' pass words (the copy the kernel glue reads without its lock) says
/// `Some(phys)` only for an access whose every naturally aligned piece `passthrough` serves at
/// `phys` plus the piece's place, so one device access at `phys` is the overlay's own answer;
/// and it finds the common case (whole dwords passed through in place).
#[test]
fn pass_span_is_passthrough_of_every_piece() {
    let (blob, _m) = persona();
    let p = PersonaRef::parse(&blob).unwrap();
    let dump = nvme_ext();
    let mut map = Box::<OverlayMap>::default();
    map.build(&p, &dump).unwrap();
    let words: Vec<u32> = (0..PASS_WORDS).map(|d| map.pass_word(d)).collect();
    let (mut some, mut none) = (0, 0);
    for len in [1usize, 2, 3, 4, 5, 7, 8, 12, 64, 256] {
        for off in 0..4096usize {
            for write in [false, true] {
                let got = pass_span(|d| words[d], off, len, write);
                if off + len > 4096 {
                    assert_eq!(got, None, "{off:#x}+{len} past the space");
                    continue;
                }
                let mut pos = off;
                let mut all = true;
                while pos < off + len {
                    let n = chunk(pos, off + len - pos);
                    let want = map.passthrough(pos as u16, n as u8, write);
                    if let Some(phys) = got {
                        assert_eq!(
                            want,
                            Some(phys + (pos - off) as u16),
                            "{off:#x}+{len} write {write}: piece {pos:#x}/{n}"
                        );
                    }
                    // In place: the pass words must find it.
                    all &= want == Some(pos as u16);
                    pos += n;
                }
                if all {
                    assert_eq!(
                        got,
                        Some(off as u16),
                        "{off:#x}+{len} write {write} in place"
                    );
                }
                if got.is_some() {
                    some += 1;
                } else {
                    none += 1;
                }
            }
        }
    }
    assert!(some > 1000 && none > 1000, "both cases seen: {some} {none}");
    // The relocated PCIe capability (0x80 on the device, 0xc0 presented) passes in one span.
    assert_eq!(pass_span(|d| words[d], 0xc4, 8, false), Some(0x84));
}

/// `pass_piece` on the pass words says `Some((phys, emulated bytes))` only for a piece whose
/// value, as the overlay serves it, is the device's bytes at `phys` (none when `phys` is
/// `None`) with the emulated bytes taken from `emu_word` of the registers as they are, after
/// the emulated registers were written to; and it finds pieces mixing both (capability IDs and
/// next pointers beside passed-through flags), and pieces of emulated and hidden bytes alone.
#[test]
fn pass_piece_is_the_overlay_read() {
    let (_, mut m) = persona();
    // Beside pinned bytes (0x210..0x220): a hidden byte, a writable emulated byte, a constant.
    m.set_rule(0x211, 0x212, Rule::Hidden);
    m.set_emulated(0x215, 0x3c, 0xff);
    m.set_emulated(0x219, 0x5a, 0);
    m.apply_layout();
    let mut blob = vec![0u8; MAX_BLOB];
    let n = m.encode(&mut blob).expect("encode");
    blob.truncate(n);
    let p = PersonaRef::parse(&blob).unwrap();
    let dump = nvme_ext();
    let (map, mut st) = overlay(&p, &dump);
    let mut dev = Dev {
        mem: dump.clone(),
        user: 0,
    };
    let words: Vec<u32> = (0..PASS_WORDS).map(|d| map.pass_word(d)).collect();
    let (mut plain, mut mixed, mut value, mut writable) = (0, 0, 0, 0);
    // At the reset values, then with every writable bit of the emulated registers (and the
    // device's dynamic bytes) changed: `emu_word` follows the registers.
    for round in 0..2 {
        if round == 1 {
            for off in (0..4096u16).step_by(4) {
                let v = u32::from(off).wrapping_mul(0x9e37_79b9) ^ 0xa5a5_5a5a;
                dev.user = v;
                map.write(&mut st, &mut dev, off, 4, v).unwrap();
            }
        }
        let emu: Vec<u32> = (0..PASS_WORDS).map(|d| map.emu_word(&st, d)).collect();
        for len in [1usize, 2, 4] {
            for off in (0..4096usize).step_by(len) {
                let Some((phys, from_emu)) = pass_piece(words[off / 4], off, len) else {
                    continue;
                };
                let want = map.read(&st, &mut dev, off as u16, len as u8).unwrap();
                let c = emu[off / 4].to_le_bytes();
                let mut got = [0u8; 4];
                for k in 0..len {
                    // A device byte read is one the overlay reads too: never a hidden one.
                    assert!(
                        phys.is_none()
                            || from_emu & (1 << k) != 0
                            || map.passthrough((off + k) as u16, 1, false).is_some(),
                        "{off:#x}/{len}: byte {k} read from the device"
                    );
                    got[k] = if from_emu & (1 << k) != 0 {
                        c[off % 4 + k]
                    } else {
                        dev.mem[usize::from(phys.expect("a device byte")) + k]
                    };
                }
                assert_eq!(
                    u32::from_le_bytes(got),
                    want,
                    "{off:#x}/{len} round {round}"
                );
                match phys {
                    None => {
                        // No device access: the overlay serves it without one either.
                        assert_eq!(
                            map.read(&st, &mut NoDevice, off as u16, len as u8),
                            Ok(want),
                            "{off:#x}/{len}"
                        );
                        value += 1;
                        let mut fresh = Box::<OverlayState>::default();
                        fresh.reset(&map);
                        if want
                            != map
                                .read(&fresh, &mut NoDevice, off as u16, len as u8)
                                .unwrap()
                        {
                            writable += 1;
                        }
                    }
                    Some(_) if from_emu != 0 => mixed += 1,
                    Some(_) => plain += 1,
                }
            }
        }
    }
    assert!(
        plain > 100 && mixed > 0 && value > 100 && writable > 0,
        "every case seen: {plain} {mixed} {value} {writable}"
    );
}
