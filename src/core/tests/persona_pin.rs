//! The pinning promise: derive writes pinned personas, the check refuses every device whose
//! pinned bits, BARs, ROM or capabilities differ, and a device that passes presents the
//! persona's image at every byte that is not dynamic (a model-based property).
#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::needless_range_loop
)]

mod persona_support;

use persona_core::error::{Error, ParseReason};
use persona_core::overlay::ConfigAccess;
use persona_core::pci::{self, CapWalker, Space};
use persona_core::persona::check::{check_with, CheckReason, IommuPasid};
use persona_core::persona::derive::{derive, place_pasid, DeriveOptions, PasidRequest};
use persona_core::persona::device::BarKind;
use persona_core::persona::fields;
use persona_core::persona::format::{FORMAT_VERSION, MAX_BLOB};
use persona_core::persona::{BarInfo, CapKind, DeviceView, PersonaModel, PersonaRef, Rule, NBARS};
use persona_support::*;
use proptest::prelude::*;

const IOMMU: IommuPasid = IommuPasid {
    max_pasid_log2: 20,
    exec: true,
    privileged: true,
};

fn blob_of(m: &PersonaModel) -> Vec<u8> {
    let mut out = vec![0u8; MAX_BLOB];
    let n = m.encode(&mut out).expect("encode");
    out.truncate(n);
    out
}

fn derived(dev: &DeviceView<'_>, opts: &DeriveOptions<'_>) -> Vec<u8> {
    let mut m = Box::<PersonaModel>::default();
    derive(dev, opts, &mut m).expect("derive");
    blob_of(&m)
}

fn reasons(blob: &[u8], dev: &DeviceView<'_>) -> Vec<CheckReason> {
    let p = PersonaRef::parse(blob).unwrap();
    let mut v = Vec::new();
    let ok = check_with(&p, dev, &IOMMU, &mut |r| v.push(r));
    assert_eq!(ok, v.is_empty());
    v
}

/// The nvme with extended capabilities, 64 MSI-X vectors, and the view of it.
fn base() -> Vec<u8> {
    nvme_ext()
}

#[test]
fn derive_pins_read_only_fields_and_hides_the_rest() {
    let d = base();
    let blob = derived(&view(&d), &DeriveOptions::default());
    let p = PersonaRef::parse(&blob).unwrap();
    // MSI-X message control: dynamic with the Table Size bits pinned.
    let b = p.byte_rule(0x42).unwrap();
    assert_eq!((b.rule, b.value, b.mask), (Rule::Dynamic, 0x3f, 0xff));
    let b = p.byte_rule(0x43).unwrap();
    assert_eq!((b.rule, b.mask), (Rule::Dynamic, 0x07));
    // MSI-X table offset: pinned.
    assert_eq!(p.byte_rule(0x44).unwrap().rule, Rule::Pinned);
    assert_eq!(p.byte_rule(0x44).unwrap().mask, 0xff);
    // PCIe device control: dynamic, nothing pinned.
    let b = p.byte_rule(0x88).unwrap();
    assert_eq!((b.rule, b.mask), (Rule::Dynamic, 0));
    // Between capabilities and after the last one: hidden.
    for off in [0x4c, 0x5f, 0xb4, 0xff, 0x190, 0xff0] {
        assert_eq!(p.byte_rule(off).unwrap().rule, Rule::Hidden, "{off:#x}");
    }
    // The DSN serial number is pinned.
    assert_eq!(p.byte_rule(0x154).unwrap().rule, Rule::Pinned);
    // BAR 0 is a 16 KiB 64-bit BAR: emulated, type bits 0x4, address bits writable.
    let bars = p.bars();
    assert_eq!((bars[0].kind, bars[0].size), (BarKind::Mem64, 16 << 10));
    assert_eq!(bars[1].kind, BarKind::Upper);
    let b = p.byte_rule(0x10).unwrap();
    assert_eq!((b.rule, b.value, b.mask), (Rule::Emulated, 0x04, 0x00));
    assert_eq!(p.byte_rule(0x11).unwrap().mask, 0xc0);
    assert_eq!(p.byte_rule(0x14).unwrap().mask, 0xff);
    // The device passes its own persona.
    assert_eq!(reasons(&blob, &view(&d)), vec![]);
}

#[test]
fn raw_dumps_have_no_bar_sizes() {
    let d = base();
    let mut m = Box::<PersonaModel>::default();
    assert_eq!(
        derive(
            &DeviceView::config_only(&d),
            &DeriveOptions::default(),
            &mut m
        ),
        Err(Error::BarsUnknown)
    );
    let blob = derived(&view(&d), &DeriveOptions::default());
    assert_eq!(
        reasons(&blob, &DeviceView::config_only(&d)),
        vec![CheckReason::BarsUnknown]
    );
}

#[test]
fn every_pinned_bit_is_checked_and_named() {
    let d = base();
    let blob = derived(&view(&d), &DeriveOptions::default());
    let p = PersonaRef::parse(&blob).unwrap();
    let mut tried = 0;
    for off in 0..4096 {
        let b = p.byte_rule(off).unwrap();
        if !b.rule.is_pass() || b.mask == 0 {
            continue;
        }
        // The physical offset of this byte is `off`: the derived persona is the identity layout.
        let bit = 1u8 << (b.mask.trailing_zeros());
        let mut e = d.clone();
        e[off] ^= bit;
        let r = reasons(&blob, &view(&e));
        tried += 1;
        assert!(
            r.iter().any(
                |x| matches!(x, CheckReason::Pinned { offset, width, register, .. }
                if usize::from(*offset) <= off && off < usize::from(*offset) + usize::from(*width)
                    && !register.is_empty())
            ),
            "flip at {off:#x}: {r:?}"
        );
    }
    assert!(tried > 50, "{tried}");
    // Names: the MSI-X Table Size, with both values.
    let mut e = d.clone();
    e[0x42] = 0x04;
    let r = reasons(&blob, &view(&e));
    assert_eq!(
        r,
        vec![CheckReason::Pinned {
            offset: 0x42,
            physical: 0x42,
            register: "MSI-X message control",
            cap: Some((Space::Standard, 0x11)),
            width: 2,
            persona: 0x3f,
            device: 0x04,
            mask: 0x07ff,
        }]
    );
}

#[test]
fn dynamic_bits_outside_the_pin_mask_may_differ() {
    let d = base();
    let blob = derived(&view(&d), &DeriveOptions::default());
    let mut e = d.clone();
    e[0x04] = 0x06; // command
    e[0x43] = 0xc0; // MSI-X enable and function mask
    e[0x88] = 0x1f; // PCIe device control
    assert_eq!(reasons(&blob, &view(&e)), vec![]);
}

#[test]
fn bars_and_rom_are_checked() {
    let d = base();
    let mut bars = bars_of(&d);
    bars[6] = mem(BarKind::Mem32, 64 << 10);
    let dev = DeviceView {
        config: &d,
        bars: Some(bars),
    };
    let blob = derived(&dev, &DeriveOptions::default());
    assert_eq!(PersonaRef::parse(&blob).unwrap().rom_size(), 64 << 10);
    let with = |f: &dyn Fn(&mut [BarInfo; NBARS])| {
        let mut b = bars;
        f(&mut b);
        reasons(
            &blob,
            &DeviceView {
                config: &d,
                bars: Some(b),
            },
        )
    };
    // Larger BAR and ROM pass (presented clamped).
    assert_eq!(with(&|b| b[0].size = 1 << 20), vec![]);
    assert_eq!(with(&|b| b[6].size = 1 << 20), vec![]);
    // Smaller, other type, other prefetchability, no ROM: refused, naming the BAR.
    for (what, f) in [
        (
            "smaller",
            &(|b: &mut [BarInfo; NBARS]| b[0].size = 8 << 10) as &dyn Fn(&mut _),
        ),
        ("mem32", &|b: &mut [BarInfo; NBARS]| {
            b[0].kind = BarKind::Mem32;
            b[1] = BarInfo::default();
        }),
        ("prefetch", &|b: &mut [BarInfo; NBARS]| b[0].prefetch = true),
        ("io", &|b: &mut [BarInfo; NBARS]| b[0].kind = BarKind::Io),
    ] {
        let r = with(f);
        assert!(
            matches!(r.as_slice(), [CheckReason::Bar { index: 0, .. }]),
            "{what}: {r:?}"
        );
    }
    let r = with(&|b| b[6] = BarInfo::default());
    assert!(
        matches!(r.as_slice(), [CheckReason::Bar { index: 6, .. }]),
        "{r:?}"
    );
    let r = with(&|b| b[6].size = 32 << 10);
    assert!(
        matches!(r.as_slice(), [CheckReason::Bar { index: 6, .. }]),
        "{r:?}"
    );
}

#[test]
fn bar_registers_present_the_persona_size() {
    let d = base();
    let blob = derived(&view(&d), &DeriveOptions::default());
    let p = PersonaRef::parse(&blob).unwrap();
    // A device with a 1 MiB BAR 0 passes; sizing through config writes shows 16 KiB.
    let mut bars = bars_of(&d);
    bars[0].size = 1 << 20;
    let dev = DeviceView {
        config: &d,
        bars: Some(bars),
    };
    assert!(check_with(&p, &dev, &IOMMU, &mut |_| {}));
    let (map, mut st) = overlay(&p, &d);
    let mut mem = Mem(d.clone());
    map.write(&mut st, &mut mem, 0x10, 4, 0xffff_ffff).unwrap();
    map.write(&mut st, &mut mem, 0x14, 4, 0xffff_ffff).unwrap();
    assert_eq!(map.read(&st, &mut mem, 0x10, 4).unwrap(), 0xffff_c004);
    assert_eq!(map.read(&st, &mut mem, 0x14, 4).unwrap(), 0xffff_ffff);
    // The host's BAR address never shows and the device never sees the write.
    assert_eq!(mem.0, d);
    st.reset(&map);
    assert_eq!(map.read(&st, &mut mem, 0x10, 4).unwrap(), 0x0000_0004);
}

#[test]
fn unlisted_capabilities_are_refused() {
    // A persona of the nvme without extended capabilities, on a device that has them.
    let plain = nvme();
    let blob = derived(&view(&plain), &DeriveOptions::default());
    let r = reasons(&blob, &view(&base()));
    for (id, at) in [(0x01, 0x100), (0x1b, 0x148), (0x03, 0x150), (0x7f, 0x160)] {
        assert!(
            r.iter().any(|x| matches!(x, CheckReason::Unlisted { space: Space::Extended, id: i, physical, .. }
                if *i == id && *physical == at)),
            "{id:#x}: {r:?}"
        );
    }
    // An ATS capability the persona lacks (what `ats=on` adds in QEMU).
    let mut e = base();
    put(&mut e, 0x180, &ext_hdr(0x18, 1, 0x1a0));
    put(&mut e, 0x1a0, &ext_hdr(0x0f, 1, 0));
    let blob = derived(&view(&base()), &DeriveOptions::default());
    let r = reasons(&blob, &view(&e));
    assert!(
        matches!(
            r.as_slice(),
            [CheckReason::Unlisted {
                id: 0x0f,
                physical: 0x1a0,
                ..
            }]
        ),
        "{r:?}"
    );
}

#[test]
fn passthrough_over_a_hidden_capability_is_refused() {
    // Finding S2: a hand-written persona that forwards the physical PASID's bytes.
    let d = base();
    let mut m = Box::<PersonaModel>::default();
    derive(&view(&d), &DeriveOptions::default(), &mut m).unwrap();
    m.set_rule(0x148, 0x150, Rule::Dynamic);
    m.apply_layout();
    let blob = blob_of(&m);
    let r = reasons(&blob, &view(&d));
    assert_eq!(
        r,
        vec![CheckReason::PassOverHidden {
            offset: 0x148,
            physical: 0x148,
            space: Space::Extended,
            id: 0x1b
        }]
    );
    // The same over the hidden unknown capability's body.
    let mut m = Box::<PersonaModel>::default();
    derive(&view(&d), &DeriveOptions::default(), &mut m).unwrap();
    m.set_rule(0x170, 0x174, Rule::Pinned);
    m.apply_layout();
    let r = reasons(&blob_of(&m), &view(&d));
    assert!(
        matches!(r.as_slice(), [CheckReason::PassOverHidden { id: 0x7f, .. }]),
        "{r:?}"
    );
    // The parity form hides those bytes itself.
    let parity = derived(
        &view(&d),
        &DeriveOptions {
            parity: true,
            ..Default::default()
        },
    );
    assert_eq!(reasons(&parity, &view(&d)), vec![]);
    let p = PersonaRef::parse(&parity).unwrap();
    assert_eq!(p.byte_rule(0x14c).unwrap().rule, Rule::Hidden);
    assert_eq!(p.byte_rule(0x170).unwrap().rule, Rule::Hidden);
}

#[test]
fn msix_table_size_may_be_emulated_lower_only() {
    let d = base();
    let mut m = Box::<PersonaModel>::default();
    derive(&view(&d), &DeriveOptions::default(), &mut m).unwrap();
    m.set_emulated(0x42, 0x04, 0);
    m.apply_layout();
    assert_eq!(reasons(&blob_of(&m), &view(&d)), vec![]);
    m.set_emulated(0x42, 0x7f, 0);
    let r = reasons(&blob_of(&m), &view(&d));
    assert!(
        matches!(
            r.as_slice(),
            [CheckReason::Emulated {
                offset: 0x42,
                register: "MSI-X message control",
                persona: 0x7f,
                device: 0x3f
            }]
        ),
        "{r:?}"
    );
    // A field that may not be emulated at all: the table offset.
    let mut m = Box::<PersonaModel>::default();
    derive(&view(&d), &DeriveOptions::default(), &mut m).unwrap();
    m.set_emulated(0x44, 0x00, 0);
    m.apply_layout();
    let r = reasons(&blob_of(&m), &view(&d));
    assert!(
        matches!(
            r.as_slice(),
            [CheckReason::Emulated {
                offset: 0x44,
                register: "MSI-X table offset/BIR",
                ..
            }]
        ),
        "{r:?}"
    );
}

#[test]
fn older_format_is_refused_naming_both_versions() {
    let d = base();
    let mut blob = derived(&view(&d), &DeriveOptions::default());
    blob[8..10].copy_from_slice(&1u16.to_le_bytes());
    let e = PersonaRef::parse(&blob).unwrap_err();
    assert_eq!(e.reason, ParseReason::UnsupportedFormat(1));
    let msg = e.to_string();
    assert!(
        msg.contains("version 1") && msg.contains(&format!("version {FORMAT_VERSION}")),
        "{msg}"
    );
}

/// A chain whose head at 0x100 is an ID-0 header pointing on (what the PASID fixture makes).
#[test]
fn id0_head_and_any_order_derive() {
    let mut d = nvme();
    put(&mut d, 0x100, &ext_hdr(0, 0, 0x200));
    put(&mut d, 0x200, &ext_hdr(0x1b, 1, 0x180));
    put(&mut d, 0x204, &((16u16 << 8) | 2).to_le_bytes());
    put(&mut d, 0x180, &ext_hdr(0x03, 1, 0));
    // Standard chain in another order: PCIe 0x80 -> MSI-X 0x40 -> PM 0x60.
    d[0x34] = 0x80;
    d[0x81] = 0x40;
    d[0x41] = 0x60;
    d[0x61] = 0x00;
    let opts = DeriveOptions {
        pasid: Some(PasidRequest {
            width: 16,
            exec: false,
            privileged: false,
            offset: None,
        }),
        ..Default::default()
    };
    let blob = derived(&view(&d), &opts);
    let p = PersonaRef::parse(&blob).unwrap();
    assert_eq!(reasons(&blob, &view(&d)), vec![]);
    let presented: Vec<_> = p
        .caps()
        .filter(|e| e.kind.is_presented())
        .map(|e| (e.space, e.offset))
        .collect();
    assert!(presented.contains(&(Space::Extended, 0x180)));
    assert_eq!(p.pasid().unwrap().offset, 0xff8);
    // The persona's standard chain keeps the device's order.
    let mut img = vec![0u8; 4096];
    for (off, b) in img.iter_mut().enumerate() {
        let r = p.byte_rule(off).unwrap();
        *b = if r.rule == Rule::Emulated {
            r.value
        } else {
            d[off]
        };
    }
    let order: Vec<u16> = CapWalker::standard(&img)
        .map(|c| c.unwrap().offset)
        .collect();
    assert_eq!(order, vec![0x80, 0x40, 0x60]);
    let ext: Vec<(u16, u16)> = CapWalker::extended(&img)
        .map(|c| c.unwrap())
        .map(|c| (c.offset, c.id))
        .collect();
    assert_eq!(ext, vec![(0x100, 0), (0x180, 0x03), (0xff8, 0x1b)]);
}

#[test]
fn pasid_placement_respects_architected_extents() {
    // AER owns 0x48 bytes (with its TLP Prefix Log) although vfio-pci presents 0x2c.
    let mut d = nvme();
    // Fill 0xff8 with a DSN so the default slot is taken.
    put(&mut d, 0x100, &ext_hdr(0x01, 2, 0xff4));
    put(&mut d, 0xff4, &ext_hdr(0x03, 1, 0));
    // After the last capability (DSN at 0xff4 runs to 0x1000): none. From the head: 0x148.
    assert_eq!(place_pasid(&d, None), Ok(0x148));
    assert_eq!(
        place_pasid(&d, Some(0x12c)),
        Err(Error::BadPasidOffset(0x12c))
    );
}

/// Config access on plain memory.
struct Mem(Vec<u8>);

impl ConfigAccess for Mem {
    type Error = ();

    fn read(&mut self, offset: u16, size: u8) -> Result<u32, ()> {
        let (o, n) = (usize::from(offset), usize::from(size));
        let mut b = [0u8; 4];
        b[..n].copy_from_slice(&self.0[o..o + n]);
        Ok(u32::from_le_bytes(b))
    }

    fn write(&mut self, offset: u16, size: u8, value: u32) -> Result<(), ()> {
        let (o, n) = (usize::from(offset), usize::from(size));
        self.0[o..o + n].copy_from_slice(&value.to_le_bytes()[..n]);
        Ok(())
    }
}

/// Bits of each physical byte that a persona derived from `d` does not pin and whose change
/// keeps `d`'s capability chains: what a device may differ in and still pass.
fn free_bits(p: &PersonaRef<'_>, d: &[u8]) -> Vec<u8> {
    let mut free = vec![0xffu8; d.len()];
    for off in 0..p.config_size() {
        let b = p.byte_rule(off).unwrap();
        if b.rule.is_pass() {
            free[off] &= !b.mask;
        }
    }
    free[pci::STATUS] &= !0x10;
    free[pci::CAPABILITY_LIST] = 0;
    // The extended head decides whether the device has extended capabilities at all (an
    // all-zero head is none; a flipped bit there is a new capability).
    if let Some(head) = free.get_mut(pci::CFG_SIZE..pci::CFG_SIZE + 4) {
        head.fill(0);
    }
    for space in [Space::Standard, Space::Extended] {
        for c in CapWalker::new_for(d, space).map_while(Result::ok) {
            let (s, _) = fields::extent(d, &c);
            let hdr = if space == Space::Standard { 2 } else { 4 };
            for x in &mut free[s..s + hdr] {
                *x = 0;
            }
            // Length-bearing bytes (MSI flags, vendor lengths, VC/ACS/TPH sizes) stay.
            let body_len = if space == Space::Standard { 6 } else { 12 };
            for x in &mut free[s + hdr..(s + hdr + body_len).min(d.len())] {
                *x = 0;
            }
        }
    }
    free
}

fn devices() -> Vec<Vec<u8>> {
    vec![edu(), nvme(), nvme_ext()]
}

prop_compose! {
    fn persona_edit()(kind in 0u8..4, off in 0x40usize..0x1000, len in 1usize..16, v in any::<u8>(), m in any::<u8>()) -> (u8, usize, usize, u8, u8) {
        (kind, off, len, v, m)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// For random personas P and device images D: whenever check(P, D) passes, the overlay's
    /// full read of D equals P's image at every byte that is not dynamic, and every pinned bit
    /// of a dynamic byte too. A device differing only in unpinned bits always passes.
    #[test]
    fn check_pass_means_the_persona_image(
        which in 0usize..3,
        parity in any::<bool>(),
        edits in proptest::collection::vec(persona_edit(), 0..4),
        flips in proptest::collection::vec((0usize..4096, any::<u8>()), 0..6),
        respect in any::<bool>(),
        bar_grow in 0u32..3,
    ) {
        let d = devices()[which].clone();
        let mut m = Box::<PersonaModel>::default();
        derive(&view(&d), &DeriveOptions { parity, ..Default::default() }, &mut m).unwrap();
        let size = m.config_size;
        for &(kind, off, len, v, mk) in &edits {
            let (s, e) = (off % size, (off % size + len).min(size));
            match kind {
                0 => m.set_rule(s, e, Rule::Hidden),
                1 => for o in s..e { m.set_emulated(o, v, mk) },
                2 => for o in s..e { m.set_pass(o, Rule::Pinned, v, mk) },
                _ => for o in s..e { m.set_pass(o, Rule::Dynamic, v, mk) },
            }
        }
        m.apply_layout();
        let mut out = vec![0u8; MAX_BLOB];
        let Ok(n) = m.encode(&mut out) else { return Ok(()); };
        let p = PersonaRef::parse(&out[..n]).unwrap();
        let free = free_bits(&p, &d);
        let mut e = d.clone();
        for &(off, x) in &flips {
            let off = off % e.len();
            e[off] ^= if respect { x & free[off] } else { x };
        }
        let mut bars = bars_of(&d);
        bars[0].size <<= bar_grow;
        let dev = DeviceView { config: &e, bars: Some(bars) };
        let mut why = Vec::new();
        let ok = check_with(&p, &dev, &IOMMU, &mut |r| why.push(r));
        if respect && edits.is_empty() {
            prop_assert!(ok, "unpinned changes refused: {:?}", why);
        }
        if !ok {
            return Ok(());
        }
        let (map, st) = overlay(&p, &e);
        let mut mem = Mem(e.clone());
        for off in 0..p.config_size() {
            let got = u8::try_from(map.read(&st, &mut mem, off as u16, 1).unwrap()).unwrap();
            let b = p.byte_rule(off).unwrap();
            match b.rule {
                Rule::Hidden => prop_assert_eq!(got, 0, "hidden {:#x}", off),
                Rule::Emulated => prop_assert_eq!(got, b.value, "emulated {:#x}", off),
                Rule::Pinned | Rule::Dynamic => {
                    prop_assert_eq!(got & b.mask, b.value, "pinned bits {:#x}", off)
                }
            }
            if b.rule == Rule::Pinned && b.mask == 0xff {
                prop_assert_eq!(got, b.value);
            }
        }
        // Past the persona's config size nothing reads.
        let _ = CapKind::Hidden;
    }

    /// PASID placement never lands inside the architected extent of another extended
    /// capability (unknown types own bytes up to the next capability), and is deterministic.
    #[test]
    fn pasid_never_inside_another_capability(
        caps in proptest::collection::vec((0u16..0x30, 0x41usize..0x3ff), 0..8),
    ) {
        let mut d = nvme();
        let mut offs: Vec<usize> = caps.iter().map(|&(_, o)| o * 4).collect();
        offs.sort_unstable();
        offs.dedup();
        let ids: Vec<u16> = caps.iter().map(|&(id, _)| id.max(1)).collect();
        // Chain them in address order, from 0x100.
        let mut chain = vec![0x100usize];
        chain.extend(offs.iter().copied().filter(|&o| o > 0x100 && o <= 0xffc));
        for (i, &o) in chain.iter().enumerate() {
            let next = chain.get(i + 1).copied().unwrap_or(0);
            let id = if i == 0 { 0x01 } else { ids[i % ids.len().max(1)] };
            put(&mut d, o, &ext_hdr(id, 1, next as u16));
        }
        let r = place_pasid(&d, None);
        prop_assert_eq!(r, place_pasid(&d, None));
        if let Ok(at) = r {
            let at = usize::from(at);
            prop_assert_eq!(at % 4, 0);
            prop_assert!(at + 8 <= 4096);
            for c in CapWalker::extended(&d).map_while(Result::ok) {
                let (s, e) = fields::ext_extent(&d, usize::from(c.offset), c.id);
                prop_assert!(at + 8 <= s || at >= e, "PASID {:#x} inside {:#x} {:#x}..{:#x}", at, c.id, s, e);
            }
        }
    }
}
