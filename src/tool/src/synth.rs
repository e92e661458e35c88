//! Synthetic config dumps for the examples in `tests/personas/` (no real device is needed).
//!
//! They are realistic but made up: the layouts follow what QEMU presents for these devices,
//! the values of registers nobody looks at are zero. `cargo test -p vfio-persona` checks that
//! the committed dumps equal these functions; `PERSONA_REGEN=1 cargo test -p vfio-persona`
//! rewrites them.

use persona_core::persona::device::BarKind;
use persona_core::persona::device::DUMP_HEADER;
use persona_core::persona::{BarInfo, DeviceView, NBARS};

fn put(d: &mut [u8], off: usize, v: &[u8]) {
    d[off..off + v.len()].copy_from_slice(v);
}

/// Type-0 header: IDs, status with the capability-list bit, subsystem 1af4:1100 (QEMU's),
/// interrupt pin A.
fn header(d: &mut [u8], vendor: u16, device: u16, rev: u8, class: u32, cap_ptr: u8) {
    put(d, 0, &vendor.to_le_bytes());
    put(d, 2, &device.to_le_bytes());
    put(
        d,
        6,
        &(if cap_ptr != 0 { 0x0010u16 } else { 0 }).to_le_bytes(),
    );
    d[8] = rev;
    put(d, 9, &class.to_le_bytes()[..3]);
    put(d, 0x2c, &0x1af4u16.to_le_bytes());
    put(d, 0x2e, &0x1100u16.to_le_bytes());
    d[0x34] = cap_ptr;
    d[0x3d] = 1;
}

/// QEMU's `edu` device: 1234:11e8 rev 0x10, class 0x00ff00, one 1 MiB BAR, a 64-bit MSI
/// capability at 0x40, 256 bytes of config space.
pub fn edu() -> Vec<u8> {
    let mut d = vec![0u8; 256];
    header(&mut d, 0x1234, 0x11e8, 0x10, 0x00ff00, 0x40);
    put(&mut d, 0x10, &0xfea0_0000u32.to_le_bytes());
    put(&mut d, 0x40, &[0x05, 0x00]);
    put(&mut d, 0x42, &0x0080u16.to_le_bytes());
    d
}

/// An NVMe-like PCIe endpoint, 1b36:0010 rev 2, class 0x010802: a 64-bit BAR, MSI-X (64
/// vectors) at 0x40, PM at 0x60, a PCIe v2 endpoint capability at 0x80, 4 KiB of config space
/// with no extended capabilities.
pub fn nvme() -> Vec<u8> {
    let mut d = vec![0u8; 4096];
    header(&mut d, 0x1b36, 0x0010, 0x02, 0x010802, 0x40);
    put(&mut d, 0x10, &0xfebf_0004u32.to_le_bytes());
    put(&mut d, 0x40, &[0x11, 0x60]);
    put(&mut d, 0x42, &0x003fu16.to_le_bytes());
    put(&mut d, 0x44, &0x0000_2000u32.to_le_bytes());
    put(&mut d, 0x48, &0x0000_3000u32.to_le_bytes());
    put(&mut d, 0x60, &[0x01, 0x80]);
    put(&mut d, 0x62, &0x0003u16.to_le_bytes());
    put(&mut d, 0x64, &0x0008u16.to_le_bytes());
    put(&mut d, 0x80, &[0x10, 0x00]);
    put(&mut d, 0x82, &0x0002u16.to_le_bytes());
    put(&mut d, 0x84, &0x0000_8fc0u32.to_le_bytes());
    d
}

/// The BARs of the synthetic devices: edu's 1 MiB 32-bit BAR 0, the nvme's 16 KiB 64-bit
/// BAR 0 (what QEMU gives them; their BAR registers say the same types).
pub fn bars(config: &[u8]) -> [BarInfo; NBARS] {
    let mut b = [BarInfo::default(); NBARS];
    if config.get(..2) == Some(&[0x34, 0x12][..]) {
        b[0] = BarInfo {
            size: 1 << 20,
            kind: BarKind::Mem32,
            prefetch: false,
        };
    } else {
        b[0] = BarInfo {
            size: 16 << 10,
            kind: BarKind::Mem64,
            prefetch: false,
        };
        b[1].kind = BarKind::Upper;
    }
    b
}

/// A device dump container of `config` with its [`bars`].
pub fn container(config: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; DUMP_HEADER + config.len()];
    let n = DeviceView::encode_dump(config, &bars(config), &mut out).unwrap_or(0);
    out.truncate(n);
    out
}

/// The example dumps: file name and contents (raw config dumps and device dumps).
pub fn all() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("edu.config", edu()),
        ("nvme.config", nvme()),
        ("edu.dump", container(&edu())),
        ("nvme.dump", container(&nvme())),
    ]
}
