//! Migration: the VFIO migration state machine and the migration stream.
//!
//! - [`fsm`] mirrors the kernel's state-machine path table and decides, for each single arc,
//!   which steps the driver takes ([`fsm::next_state`], [`fsm::arc_actions`]).
//! - [`stream`] is the versioned, checksummed stream read from and written to the data fd: a
//!   header naming the persona and device kind, then records, then an end record
//!   ([`stream::Writer`], [`stream::Parser`]).
//! - [`checksum`] is the stream's fast word-wise checksum, fused with the copy.
//! - [`dirty`] is device dirty page logging: tracked ranges, the dirty set and reports.
//! - [`records`] are the payloads the stream carries (config registers, each backend's state),
//!   with their encoders and validators.
//!
//! All of it is pure: no allocation, no I/O, no locks. The kernel glue owns the buffers, copies
//! user memory, and executes the decisions.

pub mod checksum;
pub mod dirty;
pub mod fsm;
pub mod records;
pub mod stream;
