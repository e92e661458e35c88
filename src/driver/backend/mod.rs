// SPDX-License-Identifier: GPL-2.0

//! Migration backends: what a device needs besides the generic VFIO migration code.
//!
//! The generic code (`crate::migration`) runs the state machine, the data-fd sessions, the
//! stream and the dirty log; it names no device. Everything that depends on the device is a
//! [`Backend`]: which functions it drives (PCI IDs), its stream device kind and records, the BAR
//! it traps, what a new user finds at open, how it holds DMA, freezes, saves, validates, loads
//! and thaws, what its DMA writes to RAM (the dirty-log hooks), and what a reset drops. Dispatch is an enum ([`AnyBackend`]),
//! so there is no allocation and no `dyn`; the selector ([`AnyBackend::for_function`]) picks the
//! backend at bind from the function's vendor and device IDs, and a function no backend claims
//! gets no migration feature (plain vfio-pci behaviour).
//!
//! Record payloads are wire formats: each backend's record layout, encoder and validator live in
//! the core (`persona_core::mig::records::<backend>`), so the tool decodes them too. A backend
//! here holds only the device sequencing (MMIO, waits, the trap).
//!
//! # Adding a backend
//!
//! A second device (say `foo`) is one new file, one selector arm and one ID-table row:
//!
//! 1. The record format, in the core (not the driver): `src/core/src/mig/records/foo.rs` with
//!    its `TAG` (the next free `0x000N_xxxx` block, see the core's `mig::records`), its `KIND`
//!    (a new `stream::DeviceKind` constant, with its arm in `DeviceKind::name`), the payload
//!    layout in the module doc, `encode` and `decode` (the validator), and `pub mod foo;` in
//!    `records/mod.rs`. The tool's `inspect-stream` (`src/tool/src/stream.rs`) gets an arm in
//!    `known_len`, `decode` and `record_name` and renders the fields; the fuzz target
//!    `tests/fuzz/fuzz_targets/records.rs` gets a case.
//! 2. `src/driver/backend/foo.rs`: a type implementing [`Backend`] (copy the shape of
//!    [`edu::Edu`]). Its `RECORDS` lists its records; a large state (a memory BAR, say) is
//!    several records of at most `LIMITS.max_record` bytes each (chunks with consecutive tags;
//!    at most 63 records per backend, the image's bitmap of received records) or fewer, larger
//!    ones with `LIMITS.max_record` raised, and `LIMITS.max_total` raised to fit; the image is a
//!    `KVVec`, so a large state is vmalloc'ed. `save` fills them all from the frozen device and
//!    `load` takes them all, after `validate` accepted them.
//! 3. One selector arm: add `Foo(foo::Foo),` to the `backends!` list at the bottom of this file
//!    (and `mod foo;` next to `mod edu;`). The macro generates the enum variant, the selector
//!    test on `Foo::IDS` and every dispatch arm.
//! 4. One ID-table row in `src/shim/pvp_shim.c` (`pvp_shim_ids`):
//!    `{ PCI_DRIVER_OVERRIDE_DEVICE_VFIO(vendor, device) }`, so management tools pick this
//!    variant for it.
//!
//! Nothing else changes: `migration/`, `device.rs` and `vfio/` ask the backend for the trapped
//! BAR, the kind, the records and the limits.
//!
//! A device whose state is a memory BAR declares it in [`Backend::MEMORY`]: the generic code
//! then carries the BAR as page records (`migration::memory`; PRE_COPY data while the device
//! runs, the changed pages at STOP_COPY), beside the backend's fixed records (the ivshmem
//! backend is the example).
//!
//! What the generic code does not offer yet, and a backend that needs it adds to the trait (with
//! a default, so existing backends do not change): PRE_COPY passes after the first (the driver
//! sees no writes to an mmapped BAR while the device runs, so `precopy_info` reports no dirty
//! bytes and the changes go in STOP_COPY), and a state too large to hold in kernel memory (a
//! memory BAR is copied into a buffer of its size at PRE_COPY and staged in one on the
//! destination; a streaming source reading the device as the user reads the fd would replace
//! it).

mod edu;
mod ivshmem;

use crate::{
    persona_core::mig::{
        dirty::DirtyLog,
        stream::{DeviceKind, Limits},
    },
    vfio::{CoreDevice, Io, RegionIo},
};
use kernel::prelude::*;

/// One record a backend carries in every stream, after the config-register record.
pub(crate) struct RecordSpec {
    /// The record's tag (from the core's `mig::records`).
    pub(crate) tag: u32,
    /// The payload length in bytes (fixed).
    pub(crate) len: usize,
    /// The destination must know the tag.
    pub(crate) mandatory: bool,
}

/// A memory BAR whose contents a backend's streams carry as page records (the core's
/// `mig::records::pages`), besides its fixed records: sent in PRE_COPY while the device runs,
/// and again at STOP_COPY for the pages that changed (`crate::migration` does it).
pub(crate) struct MemorySpec {
    /// The BAR (a memory BAR); the stream carries it at the size it is presented at.
    pub(crate) bar: u32,
    /// The tag of its page records.
    pub(crate) tag: u32,
}

/// What a trapped BAR write may do in the current migration state.
#[derive(Clone, Copy)]
pub(crate) struct Gate {
    /// New DMA is held (P2P and STOP states): a DMA start must be held until RUNNING.
    pub(crate) held: bool,
    /// The device is frozen (STOP states): it must not change, so writes are refused.
    pub(crate) frozen: bool,
}

/// A device's migration backend (see the module's notes).
///
/// Every method that touches the device runs with the device's `state` mutex held, from a VFIO
/// callback of an open device; BAR accesses go through [`CoreDevice`]'s checked accessors,
/// which hold `memory_lock`, turn memory decoding on for the access and put the user's COMMAND
/// back after it, and fail with `EIO` in D3hot. A method that fails an arc leaves the device in
/// ERROR.
pub(crate) trait Backend: Sized + Send {
    /// The `(vendor, device)` IDs of the functions this backend drives.
    const IDS: &'static [(u16, u16)];
    /// The device kind the stream header carries.
    const KIND: DeviceKind;
    /// The backend's records, in stream order (after `TAG_CONFIG`).
    const RECORDS: &'static [RecordSpec];
    /// The BAR whose user writes are trapped ([`Backend::bar_write`]): not mmap-able, no
    /// ioeventfd. `None`: no BAR is trapped.
    const TRAPPED_BAR: Option<u32>;
    /// Largest record and stream a destination accepts (the fixed records; the generic code
    /// adds what [`Backend::MEMORY`] needs).
    const LIMITS: Limits;
    /// A memory BAR the stream carries as page records; `None`: none.
    const MEMORY: Option<MemorySpec> = None;

    /// The size [`Backend::MEMORY`] is presented at, given when a session opens (before
    /// `save` or `load`).
    fn set_memory_len(&mut self, len: u64) {
        let _ = len;
    }

    /// The backend of a function just bound, in RUNNING.
    fn new() -> Self;

    /// A new user opened the device (after vfio-pci-core enabled it, with `state` held): puts
    /// the device and the backend in the state every new user finds, whatever the previous
    /// user left running or set. A function reset does this for most devices, but a backend
    /// whose device keeps state across resets does it here. An error fails the open.
    /// The default does nothing: the function reset at open suffices.
    fn open(&mut self, core: &CoreDevice<Io>) -> Result {
        let _ = core;
        Ok(())
    }

    /// A trapped user write of [`Backend::TRAPPED_BAR`]; returns the bytes written. DMA writes
    /// to RAM the write starts are logged in `log` before they reach the device.
    fn bar_write(
        &mut self,
        core: &CoreDevice<Io>,
        io: &mut RegionIo,
        gate: Gate,
        log: &mut DirtyLog,
    ) -> Result<usize>;

    /// Holds new DMA (entering P2P) and waits for DMA in flight.
    fn hold_dma(&mut self, core: &CoreDevice<Io>) -> Result;

    /// Releases DMA (leaving P2P): issues what was held meanwhile, logging its RAM writes.
    fn release_dma(&mut self, core: &CoreDevice<Io>, log: &mut DirtyLog) -> Result;

    /// Freezes the device (entering STOP, DMA already held): waits for work in flight.
    fn freeze(&mut self, core: &CoreDevice<Io>) -> Result;

    /// Thaws the device (leaving STOP).
    fn thaw(&mut self, core: &CoreDevice<Io>) -> Result;

    /// Captures the frozen device into `out`: the payloads of [`Backend::RECORDS`], in order,
    /// back to back.
    fn save(&mut self, core: &CoreDevice<Io>, out: &mut [u8]) -> Result;

    /// Validates received payloads (laid out as [`Backend::save`] writes them); touches
    /// nothing.
    fn validate(records: &[u8]) -> Result;

    /// Replays validated payloads on the stopped device (RESUMING -> STOP) and takes them as its
    /// state.
    fn load(&mut self, core: &CoreDevice<Io>, records: &[u8]) -> Result;

    /// Dirty logging just started: logs the RAM writes of DMA already running.
    fn log_running(&mut self, core: &CoreDevice<Io>, log: &mut DirtyLog) -> Result;

    /// Whether DMA that writes RAM may be running (`EIO`: the device cannot be read now).
    fn dma_busy(&self, core: &CoreDevice<Io>) -> Result<bool>;

    /// The device was reset (or closed): forgets what was held or pending for it.
    fn reset(&mut self);
}

/// Declares the backends: the [`AnyBackend`] enum, its selector and its dispatch.
macro_rules! backends {
    ($($variant:ident($ty:ty)),+ $(,)?) => {
        /// The backend of one device (enum dispatch over every [`Backend`]).
        pub(crate) enum AnyBackend {
            $(
                #[doc = concat!("`", stringify!($ty), "`.")]
                $variant($ty),
            )+
        }

        impl AnyBackend {
            /// The backend for the function `vendor:device`, if one drives it.
            pub(crate) fn for_function(vendor: u16, device: u16) -> Option<Self> {
                $(
                    if <$ty as Backend>::IDS.contains(&(vendor, device)) {
                        return Some(Self::$variant(<$ty as Backend>::new()));
                    }
                )+
                None
            }

            /// See [`Backend::KIND`].
            pub(crate) fn kind(&self) -> DeviceKind {
                match self { $(Self::$variant(_) => <$ty as Backend>::KIND,)+ }
            }

            /// See [`Backend::RECORDS`].
            pub(crate) fn records(&self) -> &'static [RecordSpec] {
                match self { $(Self::$variant(_) => <$ty as Backend>::RECORDS,)+ }
            }

            /// See [`Backend::TRAPPED_BAR`].
            pub(crate) fn trapped_bar(&self) -> Option<u32> {
                match self { $(Self::$variant(_) => <$ty as Backend>::TRAPPED_BAR,)+ }
            }

            /// See [`Backend::LIMITS`].
            pub(crate) fn limits(&self) -> Limits {
                match self { $(Self::$variant(_) => <$ty as Backend>::LIMITS,)+ }
            }

            /// See [`Backend::MEMORY`].
            pub(crate) fn memory(&self) -> Option<&'static MemorySpec> {
                match self { $(Self::$variant(_) => <$ty as Backend>::MEMORY.as_ref(),)+ }
            }

            /// See [`Backend::set_memory_len`].
            pub(crate) fn set_memory_len(&mut self, len: u64) {
                match self { $(Self::$variant(b) => b.set_memory_len(len),)+ }
            }

            /// See [`Backend::bar_write`].
            pub(crate) fn bar_write(
                &mut self,
                core: &CoreDevice<Io>,
                io: &mut RegionIo,
                gate: Gate,
                log: &mut DirtyLog,
            ) -> Result<usize> {
                match self { $(Self::$variant(b) => b.bar_write(core, io, gate, log),)+ }
            }

            /// See [`Backend::open`].
            pub(crate) fn open(&mut self, core: &CoreDevice<Io>) -> Result {
                match self { $(Self::$variant(b) => b.open(core),)+ }
            }

            /// See [`Backend::hold_dma`].
            pub(crate) fn hold_dma(&mut self, core: &CoreDevice<Io>) -> Result {
                match self { $(Self::$variant(b) => b.hold_dma(core),)+ }
            }

            /// See [`Backend::release_dma`].
            pub(crate) fn release_dma(&mut self, core: &CoreDevice<Io>, log: &mut DirtyLog) -> Result {
                match self { $(Self::$variant(b) => b.release_dma(core, log),)+ }
            }

            /// See [`Backend::freeze`].
            pub(crate) fn freeze(&mut self, core: &CoreDevice<Io>) -> Result {
                match self { $(Self::$variant(b) => b.freeze(core),)+ }
            }

            /// See [`Backend::thaw`].
            pub(crate) fn thaw(&mut self, core: &CoreDevice<Io>) -> Result {
                match self { $(Self::$variant(b) => b.thaw(core),)+ }
            }

            /// See [`Backend::save`].
            pub(crate) fn save(&mut self, core: &CoreDevice<Io>, out: &mut [u8]) -> Result {
                match self { $(Self::$variant(b) => b.save(core, out),)+ }
            }

            /// See [`Backend::validate`].
            pub(crate) fn validate(&self, records: &[u8]) -> Result {
                match self { $(Self::$variant(_) => <$ty as Backend>::validate(records),)+ }
            }

            /// See [`Backend::load`].
            pub(crate) fn load(&mut self, core: &CoreDevice<Io>, records: &[u8]) -> Result {
                match self { $(Self::$variant(b) => b.load(core, records),)+ }
            }

            /// See [`Backend::log_running`].
            pub(crate) fn log_running(&mut self, core: &CoreDevice<Io>, log: &mut DirtyLog) -> Result {
                match self { $(Self::$variant(b) => b.log_running(core, log),)+ }
            }

            /// See [`Backend::dma_busy`].
            pub(crate) fn dma_busy(&self, core: &CoreDevice<Io>) -> Result<bool> {
                match self { $(Self::$variant(b) => b.dma_busy(core),)+ }
            }

            /// See [`Backend::reset`].
            pub(crate) fn reset(&mut self) {
                match self { $(Self::$variant(b) => b.reset(),)+ }
            }
        }
    };
}

// The selector: one arm per backend.
backends! {
    Edu(edu::Edu),
    Ivshmem(ivshmem::Ivshmem),
}
