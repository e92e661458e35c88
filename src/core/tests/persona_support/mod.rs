//! Synthetic config dumps shared by the persona tests (the same layouts as the example dumps in
//! tests/personas/, which the tool generates).
#![allow(dead_code, clippy::indexing_slicing, clippy::arithmetic_side_effects)]

/// Puts `v` little-endian at `off`.
pub fn put(d: &mut [u8], off: usize, v: &[u8]) {
    d[off..off + v.len()].copy_from_slice(v);
}

/// Type-0 header with the given identity and capability pointer.
pub fn header(d: &mut [u8], vendor: u16, device: u16, rev: u8, class: u32, cap_ptr: u8) {
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

/// QEMU edu (1234:11e8 rev 0x10, class 0x00ff00) with a 64-bit MSI capability at 0x40.
pub fn edu() -> Vec<u8> {
    let mut d = vec![0u8; 256];
    header(&mut d, 0x1234, 0x11e8, 0x10, 0x00ff00, 0x40);
    put(&mut d, 0x10, &0xfea0_0000u32.to_le_bytes());
    d[0x40] = 0x05;
    d[0x41] = 0x00;
    put(&mut d, 0x42, &0x0080u16.to_le_bytes());
    d
}

/// An NVMe-like PCIe endpoint (1b36:0010): MSI-X at 0x40, PM at 0x60, PCIe v2 at 0x80, 4 KiB
/// config space without extended capabilities.
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

/// Extended capability header dword.
pub fn ext_hdr(id: u16, ver: u8, next: u16) -> [u8; 4] {
    (u32::from(id) | (u32::from(ver) << 16) | (u32::from(next) << 20)).to_le_bytes()
}

/// `nvme()` plus extended capabilities: AER at 0x100, a physical PASID (width 16, exec) at
/// 0x148, DSN at 0x150, and an unknown capability 0x7f at 0x160.
pub fn nvme_ext() -> Vec<u8> {
    let mut d = nvme();
    put(&mut d, 0x100, &ext_hdr(0x01, 2, 0x148));
    put(&mut d, 0x148, &ext_hdr(0x1b, 1, 0x150));
    put(&mut d, 0x14c, &((16u16 << 8) | 2).to_le_bytes());
    put(&mut d, 0x150, &ext_hdr(0x03, 1, 0x160));
    put(&mut d, 0x154, &0x1122_3344_5566_7788u64.to_le_bytes());
    put(&mut d, 0x160, &ext_hdr(0x7f, 1, 0));
    d
}
