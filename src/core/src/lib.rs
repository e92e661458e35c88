//! persona-core: every decision persona-vfio-pci makes, as pure, allocation-free code.
//!
//! The crate is built twice: as a normal `no_std` crate on the host (unit tests, proptest,
//! cargo-fuzz, the `vfio-persona` tool) and as a `#[path]` module inside the kernel module, whose
//! glue only moves bytes between VFIO and these functions. To keep both builds identical this
//! file holds nothing but the module list (the kernel glue repeats it), and no module refers to
//! another through `crate::`: paths are relative (`super::`).
//!
//! The persona half:
//!
//! - [`pci`]: config-space constants, register layouts, capability lengths and chain walkers;
//! - [`persona`]: the persona model, its binary format and parser, derive, check and diff;
//! - [`overlay`]: serving config reads and writes as a persona says;
//! - [`sha256`]: the digest that identifies a persona;
//! - [`list`]: fixed-capacity report lists;
//! - [`error`]: error types.
//!
//! The migration half lives in [`mig`].

#![no_std]
#![forbid(unsafe_code)]

pub mod error;
pub mod list;
pub mod mig;
pub mod overlay;
pub mod pci;
pub mod persona;
pub mod sha256;
