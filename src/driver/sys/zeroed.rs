// SPDX-License-Identifier: GPL-2.0

//! `Zeroable` for the core crate's large table types, so they are allocated zeroed in place
//! instead of being built on the kernel stack and moved.

use crate::persona_core::{
    overlay::{OverlayMap, OverlayState},
    persona::Rule,
};
use pin_init::Zeroable;

// SAFETY: `OverlayMap` holds only integer arrays and an integer; the core documents all-zero
// memory as its empty value.
unsafe impl Zeroable for OverlayMap {}

// SAFETY: `OverlayState` holds only an integer array; all-zero is every register at 0.
unsafe impl Zeroable for OverlayState {}

// SAFETY: `Rule` is `repr(u8)` and 0 is its `Hidden` variant.
unsafe impl Zeroable for Rule {}
