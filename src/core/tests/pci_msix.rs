//! `pci::msix_uses_bar`: which BAR a trapped-BAR backend may not serve.

use persona_core::pci;

/// A 256-byte type-0 header with one MSI-X capability at 0x40 whose table and PBA live in
/// `table_bir` and `pba_bir`.
fn with_msix(table_bir: u32, pba_bir: u32) -> [u8; 256] {
    let mut d = [0u8; 256];
    d[pci::STATUS] = pci::STATUS_CAP_LIST as u8;
    d[pci::CAPABILITY_LIST] = 0x40;
    d[0x40] = pci::CAP_ID_MSIX;
    d[0x42..0x44].copy_from_slice(&3u16.to_le_bytes());
    d[0x44..0x48].copy_from_slice(&(0x2000 | table_bir).to_le_bytes());
    d[0x48..0x4c].copy_from_slice(&(0x3000 | pba_bir).to_le_bytes());
    d
}

#[test]
fn the_table_and_the_pba_bars_are_in_use() {
    let d = with_msix(2, 4);
    assert!(pci::msix_uses_bar(&d, 2));
    assert!(pci::msix_uses_bar(&d, 4));
    for bar in [0, 1, 3, 5] {
        assert!(!pci::msix_uses_bar(&d, bar), "BAR {bar}");
    }
}

#[test]
fn no_msix_uses_no_bar() {
    let mut d = with_msix(0, 0);
    d[0x40] = pci::CAP_ID_MSI;
    assert!(!pci::msix_uses_bar(&d, 0));
    d[pci::STATUS] = 0;
    assert!(!pci::msix_uses_bar(&d, 0));
}

#[test]
fn a_broken_chain_or_a_short_dump_counts_as_in_use() {
    // A capability pointing at itself: the walker reports a loop.
    let mut d = with_msix(0, 0);
    d[0x40] = pci::CAP_ID_MSI;
    d[0x41] = 0x40;
    assert!(pci::msix_uses_bar(&d, 1));
    // The capability's BIR registers past the end of what could be read.
    let d = with_msix(0, 0);
    assert!(pci::msix_uses_bar(&d[..0x46], 1));
}
