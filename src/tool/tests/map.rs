//! `vfio-persona map`: the picture agrees with the persona byte by byte, reads without colour,
//! and folds only rows that are wholly hidden.

use std::path::{Path, PathBuf};
use std::process::Command;

use persona_core::persona::{PersonaRef, Rule};
use vfio_persona::input::load_blob;
use vfio_persona::map::{classify, draw, Class};

fn personas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/personas")
}

fn map_out(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vfio-persona"))
        .current_dir(personas())
        .arg("map")
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Rebuilds the class of every byte from the picture's rows (folded rows are hidden).
fn parse_picture(pic: &str, width: usize, size: usize) -> Vec<char> {
    let mut v = vec!['?'; size];
    for line in pic.lines() {
        if let Some(rest) = line.strip_prefix("*      (") {
            let (a, b) = rest.split_once('-').unwrap();
            let a = usize::from_str_radix(a.trim_start_matches("0x"), 16).unwrap();
            let b = usize::from_str_radix(&b[2..5], 16).unwrap();
            v[a..=b].fill('.');
        } else if let Some(off) = line.strip_prefix("0x").and_then(|l| l.get(..3)) {
            let off = usize::from_str_radix(off, 16).unwrap();
            let cells: String = line[7..]
                .chars()
                .filter(|c| !c.is_whitespace())
                .take(width)
                .collect();
            for (i, c) in cells.chars().enumerate() {
                v[off + i] = c;
            }
        }
    }
    v
}

#[test]
fn picture_matches_the_persona_byte_by_byte() {
    for (file, width) in [
        ("nvme-pasid.toml", 16),
        ("edu-identity.toml", 32),
        ("nvme-msix-at-c0.toml", 32),
    ] {
        let blob = load_blob(&personas().join(file)).unwrap();
        let p = PersonaRef::parse(&blob).unwrap();
        let w = width.to_string();
        let pic = map_out(&[file, "--width", &w, "--color", "never"]);
        let got = parse_picture(&pic, width, p.config_size());
        for (off, c) in got.iter().enumerate() {
            let want = match p.byte_rule(off).map(|r| r.rule) {
                Some(Rule::Emulated) => 'E',
                Some(Rule::Pinned) => 'P',
                Some(Rule::Dynamic) => 'D',
                Some(Rule::Hidden) => '.',
                None => '?',
            };
            assert_eq!(
                *c, want,
                "{file}: byte {off:#x} drawn {c}, persona says {want}"
            );
        }
        // The legend counts the emulated bytes the persona declares.
        let emulated = classify(&p)
            .iter()
            .filter(|&&c| c == Class::Emulated)
            .count();
        assert_eq!(emulated, p.emulated_len(), "{file}");
        assert!(pic.contains(&format!("E emulated ({emulated})")), "{pic}");
        // Every drawn row is `width` cells.
        for line in pic.lines().filter(|l| l.starts_with("0x")) {
            let n = line[7..]
                .split("  ")
                .next()
                .unwrap()
                .chars()
                .filter(|c| !c.is_whitespace())
                .count();
            assert_eq!(n, width.min(p.config_size()), "{line}");
        }
    }
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    // Not a terminal (a pipe): no escape codes by default, nor with --color never.
    assert!(!map_out(&["edu-identity.toml"]).contains('\x1b'));
    assert!(!map_out(&["edu-identity.toml", "--color", "never"]).contains('\x1b'));
    let c = map_out(&["edu-identity.toml", "--color", "always"]);
    assert!(c.contains("\x1b["));
    // Without the escapes the coloured picture is the plain one: colour adds nothing to read.
    let mut plain = String::new();
    let mut it = c.chars();
    while let Some(ch) = it.next() {
        if ch == '\x1b' {
            for d in it.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            plain.push(ch);
        }
    }
    assert_eq!(plain, map_out(&["edu-identity.toml"]));
}

#[test]
fn folds_hidden_rows_and_labels_capabilities() {
    let blob = load_blob(&personas().join("nvme-pasid.toml")).unwrap();
    let p = PersonaRef::parse(&blob).unwrap();
    let pic = draw(&p, 16, usize::MAX, false);
    assert!(pic.contains("PASID @0xff8"), "{pic}");
    assert!(pic.contains("header"));
    // Folded ranges are all hidden, and no labelled row is folded.
    let classes = classify(&p);
    for line in pic.lines().filter(|l| l.starts_with('*')) {
        let r = &line[8..line.len() - 8];
        let (a, b) = r.split_once('-').unwrap();
        let a = usize::from_str_radix(&a[2..], 16).unwrap();
        let b = usize::from_str_radix(&b[2..], 16).unwrap();
        assert!(classes[a..=b].iter().all(|&c| c == Class::Hidden), "{line}");
    }
    // --standard draws the first 256 bytes only.
    let s = draw(&p, 16, 256, false);
    assert!(!s.contains("0x100"));
}
