// SPDX-License-Identifier: GPL-2.0

//! The persona-vfio-pci device: per-device state and its locking (the VFIO operations that use
//! them are in `crate::ops`).
//!
//! # Locking
//!
//! `state` (a mutex) is the one lock. It is held across user copies, and across a dirty log
//! report, which pins the user's bitmap pages (`mmap_lock`); nothing that holds `mmap_lock`
//! takes `state`.
//!
//! `reset_done` runs with VFIO's and the PCI core's locks held, some of which are also taken
//! around `mmap_lock`; waiting there for `state` could deadlock (ABBA). So `reset_done` only sets
//! `reset_pending` and tries `state`: when it cannot take it, whoever holds `state` runs the reset
//! when it unlocks (see [`StateGuard`]). This is the deferred-reset pattern of mlx5 and virtio,
//! with the flag an atomic rather than a second lock: a second lock per access costs as much as
//! the access itself under lockdep.
//!
//! A config access the persona passes straight through, or a one-piece read of passed-through,
//! emulated and hidden bytes (`crate::config`), takes no lock: it reads the pass words and the
//! emulated bytes' values, a lock-free copy of what such an access needs from the overlay and
//! the registers, under the seqcount `pass_seq`. `state`'s holder makes the count odd before it
//! claims a deferred reset and even again once the words match the state after it (re-check
//! and `stale` included), and around a config write's change of an emulated byte; a reader
//! that sees it odd, or changed, or `reset_pending` set, takes `state` like every other access.
//! So no access acts on the state of before a reset that finished before the access began, nor
//! reads an emulated byte a finished write changed.
//!
//! # The persona is checked again
//!
//! At every open (after `vfio_pci_core_enable()`, which resets the function) and after every
//! reset while open, the driver reads the physical config space and the BAR/ROM resources again
//! and runs the core's check of the persona in force: firmware can change under a bound device.
//! An open whose device no longer matches fails with `EIO` and a kernel-log line naming the
//! field. A reset that leaves an open device not matching marks it **stale**: config and BAR/ROM
//! accesses (read, write, new mmaps) fail with `EIO` until the device is closed, and the kernel
//! log names the field. The re-check neither takes vfio-pci-core's `memory_lock` nor blocks in
//! `reset_done` (it runs wherever the deferred reset runs, with `state` held); mappings made
//! before the reset stay, as vfio-pci-core's own do.
//!
//! # BARs presented smaller
//!
//! A device BAR larger than the persona's is presented at the persona's size everywhere a user
//! sees it: `VFIO_DEVICE_GET_REGION_INFO` (size, and no mmap flag for a size below a page),
//! `read`/`write` (past it: `EINVAL`; across it: truncated), `mmap` (past it: `EINVAL`) and
//! `VFIO_DEVICE_IOEVENTFD` (past it: `EINVAL`). The sizes live in atomics, so `mmap` (under
//! `mmap_lock`) never takes `state`.

use crate::{
    backend::AnyBackend,
    migration::Migration,
    persona::{self, Active, Selector},
    persona_core::{
        overlay::{self, OverlayState, PASS_WORDS},
        pci,
        persona::{BarInfo, DeviceView, NBARS, SPACE},
    },
    vfio::{CoreDevice, RegionIo},
};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Full, Relaxed, Release},
        barrier::smp_mb,
        lock::mutex::MutexGuard,
        Mutex,
    },
    uaccess::{UserPtr, UserSlice}, //
};

/// Region indexes of BAR 0..5 and the ROM (`VFIO_PCI_BAR0_REGION_INDEX`..`ROM`).
const BAR_REGIONS: u64 = 7;
/// Bits of a region offset below the region index (`VFIO_PCI_OFFSET_SHIFT`).
const OFFSET_SHIFT: u32 = 40;
/// Bytes of `struct vfio_device_ioeventfd` the clamp reads (argsz, flags, offset).
const IOEVENTFD_HEAD: usize = 16;

/// Per-device state behind `PersonaDevice::state`.
pub(crate) struct State {
    /// How many resets this device has seen since bind (for the kernel log and tests).
    pub(crate) resets: u64,
    /// The function's physical config space, read at bind, at every open and after resets.
    pub(crate) dump: KVVec<u8>,
    /// The function's BARs and ROM (`pci_resource_len`/`flags`), read with `dump`.
    pub(crate) bars: [BarInfo; NBARS],
    /// The device no longer matches the persona (after a reset while open): config and BAR
    /// accesses fail with `EIO` until close.
    pub(crate) stale: bool,
    /// The persona in force; `None` only when none could be derived (plain vfio-pci behaviour).
    pub(crate) persona: Option<Active>,
    /// Emulated registers of the persona in force.
    pub(crate) regs: KBox<OverlayState>,
    /// A user has the device open: the persona cannot change.
    pub(crate) open: bool,
    /// Migration, for devices with a backend; `None`: no migration feature.
    pub(crate) mig: Option<Migration>,
    /// The overlay, `regs` or `stale` changed: the pass words are published again at unlock.
    /// Whoever changes `regs` other than through a config write sets it (a config write
    /// publishes the dword it changed, `PersonaDevice::publish_emu`).
    pub(crate) pass_dirty: bool,
}

impl State {
    /// Returns every emulated register to the persona's reset value (open, selection).
    pub(crate) fn reset(&mut self) {
        self.reset_as(false);
    }

    /// After a reset of the function: as [`State::reset`], except that the emulated Interrupt
    /// Line keeps the user's value (`OverlayState::reset_function` says why).
    fn reset_function(&mut self) {
        self.reset_as(true);
    }

    fn reset_as(&mut self, function: bool) {
        self.resets = self.resets.wrapping_add(1);
        if let Some(mig) = &mut self.mig {
            mig.reset();
        }
        if let Some(active) = &self.persona {
            if function {
                self.regs.reset_function(&active.map);
            } else {
                self.regs.reset(&active.map);
            }
        }
        // The emulated bytes' published values.
        self.pass_dirty = true;
    }

    /// Reads the physical config space and the BAR/ROM resources again.
    fn refresh(&mut self, core: &CoreDevice) -> Result {
        let n = core.read_physical_config(&mut self.dump)?;
        if n != self.dump.len() {
            return Err(EIO);
        }
        // The check compares the Interrupt Pin a user is shown, which vfio-pci-core virtualises
        // (0 without INTx), not the physical one (`pci::presented_interrupt_pin` says why).
        let (own, absent) = core.interrupt_pin_facts();
        if let Some(pin) = self.dump.get_mut(pci::INTERRUPT_PIN) {
            *pin = pci::presented_interrupt_pin(*pin, own, absent);
        }
        self.bars = persona::bar_table(&core.resources());
        Ok(())
    }

    /// Checks the persona in force against the device as it is now; `when` says why.
    pub(crate) fn recheck(&mut self, core: &CoreDevice, when: &str) -> Result {
        if self.persona.is_none() {
            return Ok(());
        }
        self.pass_dirty = true;
        let dev = core.as_dev();
        if let Err(e) = self.refresh(core) {
            dev_err!(
                dev,
                "persona {}: cannot read the device's config space\n",
                when
            );
            return Err(e);
        }
        let view = DeviceView {
            config: &self.dump,
            bars: Some(self.bars),
        };
        match &mut self.persona {
            Some(active) => active.recheck(dev, &view, core.pasid_status(), when),
            None => Ok(()),
        }
    }

    /// After a reset of an open device: re-check; a device that no longer matches goes stale.
    fn after_reset(&mut self, core: &CoreDevice, stale: &Atomic<bool>) {
        if !self.open || self.persona.is_none() {
            return;
        }
        let now = self
            .recheck(core, "no longer matches after a reset")
            .is_err();
        if now {
            dev_err!(
                core.as_dev(),
                "config and BAR accesses fail with EIO until the device is closed\n"
            );
        }
        self.stale = now;
        stale.store(now, Release);
    }

    /// `PersonaDevice::pasid_width`'s value for the persona in force.
    fn pasid_width(&self) -> u32 {
        self.persona
            .as_ref()
            .and_then(Active::pasid_width)
            .map_or(NO_PASID, u32::from)
    }

    /// Size each BAR region (0..5) and the ROM is presented at: the persona's, or the device's
    /// (`u64::MAX`: no clamp) without a persona.
    fn presented_sizes(&self) -> [u64; NBARS] {
        match &self.persona {
            Some(a) => a.bar_sizes(),
            None => [u64::MAX; NBARS],
        }
    }

    fn new(core: &CoreDevice) -> Result<Self> {
        let mut dump = KVVec::from_elem(0u8, SPACE, GFP_KERNEL)?;
        let n = core.read_physical_config(&mut dump)?;
        dump.truncate(n);
        let bars = persona::bar_table(&core.resources());
        let id = |at: usize| {
            u16::from_le_bytes([
                dump.get(at).copied().unwrap_or(0),
                dump.get(at + 1).copied().unwrap_or(0),
            ])
        };
        let dev = core.as_dev();
        // A trapped BAR write bypasses vfio-pci-core's MSI-X table exclusion (review C6): a
        // backend that would trap the BAR holding the table or the PBA is not used, and the
        // function binds without migration.
        let mig = AnyBackend::for_function(id(0), id(2))
            .filter(|b| match b.trapped_bar() {
                Some(bar) if pci::msix_uses_bar(&dump, bar) => {
                    dev_warn!(
                        dev,
                        "its MSI-X table or PBA is in BAR {}, which the migration backend traps: \
                         migration off\n",
                        bar
                    );
                    false
                }
                _ => true,
            })
            .map(Migration::new);
        let mut state = State {
            resets: 0,
            dump,
            bars,
            stale: false,
            persona: None,
            regs: KBox::init(pin_init::init_zeroed::<OverlayState>(), GFP_KERNEL)?,
            open: false,
            mig,
            pass_dirty: true,
        };
        let wanted = crate::sys::default_persona().to_bytes();
        let sel = persona::parse_selector(wanted).unwrap_or(Selector::Auto);
        if let Err(e) = state.select(core, &sel) {
            dev_warn!(
                dev,
                "default persona {:?} not usable ({:?}); using auto\n",
                crate::sys::default_persona(),
                e
            );
            if state.select(core, &Selector::Auto).is_err() {
                dev_warn!(
                    dev,
                    "no persona is in force (the reason is logged above): presenting the device \
                     as vfio-pci does, nothing pinned\n"
                );
            }
        }
        Ok(state)
    }

    /// Makes `sel` the persona in force; on failure the previous one stays.
    pub(crate) fn select(&mut self, core: &CoreDevice, sel: &Selector<'_>) -> Result {
        let dev = core.as_dev();
        // The device as it is now: firmware may have changed it since bind.
        let _ = self.refresh(core);
        let view = DeviceView {
            config: &self.dump,
            bars: Some(self.bars),
        };
        let blob = match sel {
            Selector::Auto => persona::auto_blob(dev, &view, core.pasid_status())?,
            Selector::Named { .. } => persona::load_firmware(core, sel)?,
        };
        let active = Active::new(dev, blob, &view, core.pasid_status())?;
        self.persona = Some(active);
        self.pass_dirty = true;
        self.reset();
        Ok(())
    }
}

/// Per-device data of persona-vfio-pci, behind the vfio-pci-core device.
#[pin_data]
pub(crate) struct PersonaDevice {
    /// Emulated state; see the module's locking notes.
    #[pin]
    state: Mutex<State>,
    /// A reset finished while `state` was held; the holder runs it when it unlocks.
    reset_pending: Atomic<bool>,
    /// The device has a migration backend (`state.mig` is `Some`); fixed at bind, so that
    /// `mmap` (under `mmap_lock`) never takes `state`, which is held across user copies.
    pub(crate) migratable: bool,
    /// The BAR the backend traps, fixed at bind for the same reason.
    pub(crate) trapped_bar: Option<u32>,
    /// Size BAR 0..5 and the ROM are presented at (`u64::MAX`: the device's); written with
    /// `state` held when the persona changes, read without it (mmap).
    bar_size: [Atomic<u64>; NBARS],
    /// Mirror of `State::stale`, for paths that do not take `state` (mmap).
    pub(crate) stale: Atomic<bool>,
    /// PASID width of the persona in force (`NO_PASID`: it has no PASID capability), written
    /// with `state` held when the persona changes, read without it (PASID attach).
    pasid_width: Atomic<u32>,
    /// The overlay's pass words (`OverlayMap::pass_word`, all 0 when stale, without a
    /// persona and past the device's config space): what a config access served without
    /// `state` needs, readable without it.
    pass: [Atomic<u32>; PASS_WORDS],
    /// The emulated bytes' current values of each dword (`OverlayMap::emu_word`), with `pass`.
    emu: [Atomic<u32>; PASS_WORDS],
    /// Seqcount of `pass` and `emu`: odd while `state`'s holder rewrites them or runs a
    /// deferred reset.
    pass_seq: Atomic<u32>,
}

/// `pasid_width` of a persona without PASID.
const NO_PASID: u32 = u32::MAX;

/// A config access served without `state` (`PersonaDevice::fast`).
pub(crate) enum Fast {
    /// Every piece passed through: one access at this physical offset.
    Span(u16),
    /// A read of one piece at this physical offset, then the bytes the mask names (bit k: byte
    /// k of the piece) from the dword's emulated bytes.
    Piece(u16, u8, [u8; 4]),
    /// A read of one piece of emulated and hidden bytes: the dword's emulated bytes (0 where
    /// hidden), no device access.
    Value([u8; 4]),
}

/// `state` locked; on drop, runs any deferred reset before unlocking.
pub(crate) struct StateGuard<'a> {
    dev: &'a PersonaDevice,
    core: &'a CoreDevice,
    guard: Option<MutexGuard<'a, State>>,
}

impl core::ops::Deref for StateGuard<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        // INVARIANT: `guard` is `Some` until `drop`.
        self.guard.as_deref().unwrap_or_else(|| unreachable!())
    }
}

impl core::ops::DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        // INVARIANT: `guard` is `Some` until `drop`.
        self.guard.as_deref_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for StateGuard<'_> {
    /// Runs every deferred reset, then unlocks.
    ///
    /// `reset_done` sets `reset_pending`, then (after a full barrier) tries `state`; the holder
    /// unlocks, then (after a full barrier) looks at the flag. With a barrier on each side, one of
    /// the two sees the other's write (the store-buffering pattern the barriers forbid): either
    /// `reset_done`'s `try_lock` finds `state` free and it resets by itself, or the holder sees
    /// the flag, takes `state` back and resets. Whoever runs it claims the flag with `xchg`, so a
    /// reset is run once; if `state` is busy again, its new holder does the same on its unlock.
    fn drop(&mut self) {
        loop {
            if let Some(state) = self.guard.as_deref_mut() {
                let dev = self.dev;
                if state.pass_dirty || dev.reset_pending.load(Relaxed) {
                    // Odd from before a deferred reset is claimed until the pass words are
                    // new: a reader without `state` never acts on words a reset is replacing.
                    dev.pass_seq.fetch_add(1, Full);
                    while dev.reset_pending.xchg(false, Full) {
                        state.reset_function();
                        state.after_reset(self.core, &dev.stale);
                    }
                    dev.publish_pass(state);
                    state.pass_dirty = false;
                    dev.pass_seq.fetch_add(1, Release);
                }
            }
            drop(self.guard.take());
            smp_mb(Full);
            if !self.dev.reset_pending.load(Relaxed) {
                return;
            }
            match self.dev.state.try_lock() {
                Some(g) => self.guard = Some(g),
                // Its holder sees the flag when it unlocks.
                None => return,
            }
        }
    }
}

impl PersonaDevice {
    /// Initialises the per-device data in place (VFIO's `init`): the state of the function as
    /// it is at bind, with the default persona selected.
    pub(crate) fn init(core: &CoreDevice) -> impl PinInit<Self, Error> {
        let state = State::new(core);
        let migratable = state.as_ref().is_ok_and(|s| s.mig.is_some());
        let trapped_bar = state
            .as_ref()
            .ok()
            .and_then(|s| s.mig.as_ref())
            .and_then(|m| m.backend.trapped_bar());
        let sizes = state
            .as_ref()
            .map_or([u64::MAX; NBARS], |s| s.presented_sizes());
        let width = state.as_ref().map_or(NO_PASID, State::pasid_width);
        try_pin_init!(PersonaDevice {
            state <- new_mutex!(state?),
            reset_pending: Atomic::new(false),
            migratable,
            trapped_bar,
            bar_size: sizes.map(Atomic::new),
            stale: Atomic::new(false),
            pasid_width: Atomic::new(width),
            // Published at the first unlock (`pass_dirty`); no access comes before an open.
            pass <- pin_init::init_array_from_fn(|_| Atomic::new(0)),
            emu <- pin_init::init_array_from_fn(|_| Atomic::new(0)),
            pass_seq: Atomic::new(0),
        })
    }

    /// A reset of the function finished (`reset_done`, or a frozen channel): resets the state
    /// now, or, when `state` is held, leaves it to the holder (see the module's locking notes).
    pub(crate) fn function_reset(&self, core: &CoreDevice) {
        let this = self;
        this.reset_pending.store(true, Relaxed);
        // Pairs with the barrier after the unlock in `StateGuard::drop`.
        smp_mb(Full);
        let Some(state) = this.state.try_lock() else {
            // The holder of `state` sees the flag when it unlocks.
            return;
        };
        // Runs the deferred reset (the flag we just set) and unlocks.
        drop(StateGuard {
            dev: this,
            core,
            guard: Some(state),
        });
    }

    /// Locks the per-device state of the device whose core half is `core`.
    pub(crate) fn lock_state<'a>(&'a self, core: &'a CoreDevice) -> StateGuard<'a> {
        StateGuard {
            dev: self,
            core,
            guard: Some(self.state.lock()),
        }
    }

    /// Publishes the presented BAR sizes and the PASID width of the persona in force (with
    /// `state` held).
    pub(crate) fn publish(&self, state: &State) {
        for (a, v) in self.bar_size.iter().zip(state.presented_sizes()) {
            a.store(v, Release);
        }
        self.pasid_width.store(state.pasid_width(), Release);
    }

    /// The PASID width the persona in force advertises; `None` when it has no PASID capability.
    pub(crate) fn pasid_width(&self) -> Option<u32> {
        Some(self.pasid_width.load(Acquire)).filter(|&w| w != NO_PASID)
    }

    /// Rewrites the pass words from the overlay in force (with `state` held, `pass_seq` odd).
    fn publish_pass(&self, state: &State) {
        let map = match &state.persona {
            Some(a) if !state.stale => Some(&a.map),
            _ => None,
        };
        // Past the device's config space an access fails (the locked path says `EINVAL`).
        let words = state.dump.len() / 4;
        for (d, (w, e)) in self.pass.iter().zip(self.emu.iter()).enumerate() {
            let map = map.filter(|_| d < words);
            w.store(map.map_or(0, |m| m.pass_word(d)), Relaxed);
            e.store(map.map_or(0, |m| m.emu_word(&state.regs, d)), Relaxed);
        }
    }

    /// After a config write on the locked path to config dword `d`: publishes the dword's
    /// emulated bytes again when the write changed them (with `state` held).
    pub(crate) fn publish_emu(&self, state: &State, d: usize) {
        // A pending full publish (at unlock) covers it; a stale device's words stay 0.
        if state.pass_dirty || state.stale || d >= state.dump.len() / 4 {
            return;
        }
        let (Some(active), Some(e)) = (&state.persona, self.emu.get(d)) else {
            return;
        };
        let v = active.map.emu_word(&state.regs, d);
        if e.load(Relaxed) == v {
            return;
        }
        self.pass_seq.fetch_add(1, Full);
        e.store(v, Relaxed);
        self.pass_seq.fetch_add(1, Release);
    }

    /// How a config access of `len` bytes at `off` can be served without `state`, read from the
    /// pass words under `pass_seq`: [`Fast::Span`] when the persona passes every piece of it
    /// straight through (`overlay::pass_span`), [`Fast::Piece`] for a read of one piece beside
    /// emulated bytes, [`Fast::Value`] for one of emulated and hidden bytes alone
    /// (`overlay::pass_piece`). `None` sends the access to the locked path, which also sees a
    /// deferred reset run first.
    pub(crate) fn fast(&self, off: usize, len: usize, write: bool) -> Option<Fast> {
        // Each load of a kernel atomic is a call or two; an access within one dword (every
        // access of a VMM's config path) loads its pass word once, after the count.
        let seq = self.pass_seq.load(Acquire);
        if seq % 2 != 0 || self.reset_pending.load(Relaxed) {
            return None;
        }
        // Acquire: the count's second load below stays after these (as `smp_rmb` would keep
        // it), pairing with the writer's ordered increments.
        let load = |d: usize| self.pass.get(d).map_or(0, |w| w.load(Acquire));
        let d = off / 4;
        let w = load(d);
        if w == 0 {
            return None;
        }
        let word = |e: usize| if e == d { w } else { load(e) };
        let fast = match overlay::pass_span(word, off, len, write) {
            Some(phys) => Fast::Span(phys),
            None if !write => {
                let (phys, mask) = overlay::pass_piece(w, off, len)?;
                let values = self.emu.get(d)?.load(Acquire).to_le_bytes();
                match phys {
                    Some(phys) => Fast::Piece(phys, mask, values),
                    None => Fast::Value(values),
                }
            }
            None => return None,
        };
        if self.pass_seq.load(Relaxed) != seq {
            return None;
        }
        Some(fast)
    }

    /// The size region `index` is presented at, if it is a BAR or the ROM.
    pub(crate) fn clamp(&self, index: u64) -> Option<u64> {
        let i = usize::try_from(index).ok()?;
        self.bar_size.get(i).map(|a| a.load(Acquire))
    }

    /// Bounds a BAR/ROM access: `EIO` when stale, `EINVAL` past the presented size, else the
    /// access truncated to it.
    pub(crate) fn bound_bar_io(&self, io: &mut RegionIo) -> Result {
        let index = io.region_index();
        let Some(limit) = self.clamp(index) else {
            return Ok(());
        };
        if self.stale.load(Relaxed) {
            return Err(EIO);
        }
        let off = io.offset();
        if off >= limit {
            return Err(EINVAL);
        }
        io.limit(usize::try_from(limit - off).unwrap_or(usize::MAX));
        Ok(())
    }
}

/// Refuses a `VFIO_DEVICE_IOEVENTFD` on the backend's trapped BAR (`EOPNOTSUPP`) or whose
/// access ends past a BAR's presented size (`EINVAL`).
///
/// vfio-pci-core reads the argument again; a user racing to change it between the two reads can
/// only reach what vfio-pci-core bounds by the device's own BAR.
pub(crate) fn ioeventfd_bounds(this: &PersonaDevice, arg: usize) -> Result {
    let mut head = [0u8; IOEVENTFD_HEAD];
    UserSlice::new(UserPtr::from_addr(arg), IOEVENTFD_HEAD)
        .reader()
        .read_slice(&mut head)?;
    let flags = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let mut o = [0u8; 8];
    o.copy_from_slice(&head[8..16]);
    let offset = u64::from_le_bytes(o);
    if this.trapped_bar.map(u64::from) == Some(offset >> OFFSET_SHIFT) {
        // An ioeventfd writes BAR registers from the kernel, past the trap: DMA starts would
        // escape the P2P hold and the dirty log of the trapped BAR. Other BARs of a migratable
        // device take them (a memory BAR's backend finds such writes as it finds the user's).
        return Err(EOPNOTSUPP);
    }
    let size: u64 = match flags & 0xf {
        1 => 1,
        2 => 2,
        4 => 4,
        8 => 8,
        // vfio-pci-core refuses the rest itself.
        _ => return Ok(()),
    };
    let index = offset >> OFFSET_SHIFT;
    if index >= BAR_REGIONS {
        return Ok(());
    }
    let Some(limit) = this.clamp(index) else {
        return Ok(());
    };
    let off = offset & ((1u64 << OFFSET_SHIFT) - 1);
    match off.checked_add(size) {
        Some(end) if end <= limit => Ok(()),
        _ => Err(EINVAL),
    }
}
