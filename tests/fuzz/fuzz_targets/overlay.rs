//! Fuzz the overlay: a persona derived from a fuzzed dump (PASID on 4 KiB ones; pinned or
//! parity form), then fuzzed accesses; never panic, never touch a hidden or read-only byte on
//! the device, always issue naturally aligned device accesses. Before the accesses, the
//! pinning promise: the device passes its own persona's check, and every byte reads as the
//! persona's image (hidden 0, emulated reset values, pinned bits the persona's).
#![no_main]

use libfuzzer_sys::fuzz_target;
use persona_core::overlay::{ConfigAccess, OverlayMap, OverlayState};
use persona_core::persona::derive::{derive_blob, DeriveOptions, PasidRequest};
use persona_core::persona::format::MAX_BLOB;
use persona_core::persona::check::{check_with, IommuPasid};
use persona_core::persona::device::BarKind;
use persona_core::persona::{BarInfo, DeviceView, PersonaModel, PersonaRef, Rule, NBARS};

struct Dev {
    mem: Vec<u8>,
    writable: Vec<bool>,
}

impl ConfigAccess for Dev {
    type Error = ();

    fn read(&mut self, offset: u16, size: u8) -> Result<u32, ()> {
        let (o, n) = (usize::from(offset), usize::from(size));
        assert_eq!(o % n, 0);
        let mut b = [0u8; 4];
        b[..n].copy_from_slice(&self.mem[o..o + n]);
        Ok(u32::from_le_bytes(b))
    }

    fn write(&mut self, offset: u16, size: u8, value: u32) -> Result<(), ()> {
        let (o, n) = (usize::from(offset), usize::from(size));
        assert_eq!(o % n, 0);
        assert!(self.writable[o..o + n].iter().all(|&w| w), "write to {o:#x}/{n} not allowed");
        self.mem[o..o + n].copy_from_slice(&value.to_le_bytes()[..n]);
        Ok(())
    }
}

/// Base dumps the fuzzer patches: edu (256 bytes) and nvme-like (4 KiB) with extended
/// capabilities, so short inputs already reach interesting layouts.
fn base(sel: u8) -> Vec<u8> {
    let mut d = vec![0u8; if sel & 1 == 0 { 256 } else { 4096 }];
    let put = |d: &mut Vec<u8>, o: usize, v: &[u8]| d[o..o + v.len()].copy_from_slice(v);
    put(&mut d, 0, &[0x36, 0x1b, 0x10, 0x00, 0, 0, 0x10, 0, 2, 2, 8, 1]);
    put(&mut d, 0x34, &[0x40]);
    put(&mut d, 0x40, &[0x11, 0x60, 0x3f, 0, 0, 0x20, 0, 0, 0, 0x30, 0, 0]);
    put(&mut d, 0x60, &[0x05, 0x80, 0x80, 0x01]);
    put(&mut d, 0x80, &[0x10, 0x00, 0x02, 0x00]);
    if d.len() > 256 {
        put(&mut d, 0x100, &0x1480_0001u32.to_le_bytes());
        put(&mut d, 0x148, &0x1501_001bu32.to_le_bytes());
        put(&mut d, 0x14c, &[0x02, 0x10]);
        put(&mut d, 0x150, &0x1601_0003u32.to_le_bytes());
        put(&mut d, 0x160, &0x0001_007fu32.to_le_bytes());
    }
    d
}

fuzz_target!(|data: &[u8]| {
    // data: selector, patch count, patches (u16 offset, byte), PASID knobs, then 8-byte ops.
    if data.len() < 4 {
        return;
    }
    let mut dump = base(data[0]);
    let npatch = usize::from(data[1] % 16);
    let Some(patches) = data.get(2..2 + 3 * npatch) else { return };
    for p in patches.chunks_exact(3) {
        let off = usize::from(u16::from_le_bytes([p[0], p[1]])) % dump.len();
        dump[off] = p[2];
    }
    let Some(ops) = data.get(2 + 3 * npatch..) else { return };
    if ops.len() < 2 {
        return;
    }
    let dump = &dump[..];
    let want_pasid = dump.len() > 256;
    let opts = DeriveOptions {
        pasid: want_pasid.then_some(PasidRequest { width: 1 + ops[0] % 20, exec: ops[1] & 1 != 0, privileged: ops[1] & 2 != 0, offset: None }),
        parity: ops[1] & 4 != 0,
        ..Default::default()
    };
    let mut bars = [BarInfo::default(); NBARS];
    bars[0] = BarInfo { size: 1 << (4 + ops[1] % 24), kind: BarKind::Mem32, prefetch: false };
    let dev = DeviceView { config: dump, bars: Some(bars) };
    let mut m = Box::<PersonaModel>::default();
    let mut blob = vec![0u8; MAX_BLOB];
    let Ok(n) = derive_blob(&dev, &opts, &mut m, &mut blob) else { return };
    let p = PersonaRef::parse(&blob[..n]).expect("derived persona parses");
    let iommu = IommuPasid { max_pasid_log2: 20, exec: true, privileged: true };
    assert!(check_with(&p, &dev, &iommu, &mut |r| eprintln!("check: {r}")), "a device fails its own persona (reasons above)");
    let mut map = Box::<OverlayMap>::default();
    map.build(&p, dump).expect("derived persona builds on its own dump");
    let mut st = Box::<OverlayState>::default();
    st.reset(&map);
    {
        let mut ro = Dev { mem: dump.to_vec(), writable: vec![false; 4096] };
        for off in 0..p.config_size() {
            let b = p.byte_rule(off).expect("in range");
            let got = map.read(&st, &mut ro, off as u16, 1).expect("read") as u8;
            match b.rule {
                Rule::Hidden => assert_eq!(got, 0, "hidden {off:#x}"),
                Rule::Emulated => assert_eq!(got, b.value, "emulated {off:#x}"),
                Rule::Pinned | Rule::Dynamic => assert_eq!(got & b.mask, b.value, "pinned {off:#x}"),
            }
        }
    }
    // Physical bytes that some dynamic virtual byte maps to may be written.
    let mut writable = vec![false; 4096];
    for off in 0..p.config_size() {
        if m.rule[off] == Rule::Dynamic {
            // Identity layout: virtual == physical.
            writable[off] = true;
        }
    }
    let mut dev = Dev { mem: dump.to_vec(), writable };
    for op in ops[2..].chunks_exact(8) {
        let off = u16::from_le_bytes([op[0], op[1]]) % 4096;
        let size = [1u8, 2, 4, 3][usize::from(op[2] & 3)];
        let val = u32::from_le_bytes([op[3], op[4], op[5], op[6]]);
        if op[7] & 1 != 0 {
            let _ = map.write(&mut st, &mut dev, off, size, val);
        } else {
            let _ = map.read(&st, &mut dev, off, size);
        }
    }
});
