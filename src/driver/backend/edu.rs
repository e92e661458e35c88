// SPDX-License-Identifier: GPL-2.0

//! The migration backend of QEMU's `edu` device (1234:11e8), the reference backend.
//!
//! edu has no save/restore interface, so the driver traps BAR0 (no mmap) and keeps a shadow of
//! what the device cannot give back: the factorial input (a write starts a computation and the
//! register then reads the result, so restore replays the input) and the liveness value (reads
//! return its complement). Status, IRQ status, the DMA command and the DMA source, destination
//! and count (64-bit reads) are read from the frozen device. Restore replays: IRQ-on-factorial
//! off, factorial (waited for), liveness, DMA registers, status, then clears the IRQ status
//! (ack-all); the saved one is raised when the device leaves STOP.
//!
//! The DMA source, destination and count are saved as the frozen device holds them (64-bit
//! reads), not as the user wrote them: edu ignores writes to them while a transfer runs. A
//! restored non-zero IRQ status is raised when the device leaves STOP (a stopped device must
//! not interrupt); until then the IRQ status register reads 0, and a save in between carries it.
//!
//! The backend's BAR accesses (see `CoreDevice::bar_read32`) hold vfio-pci-core's memory_lock
//! and turn memory decoding on for themselves when the guest turned it off, as the core does for
//! the MSI-X table: a save, a quiesce wait and a dirty-log report see the device as it is
//! whatever the guest's COMMAND register says (a BAR that does not decode would read as "idle,
//! nothing pending"). A function in D3hot cannot be reached: `EIO` fails the arc (ERROR), and a
//! dirty-log report counts a logged DMA as still running until a report reads the device idle.
//!
//! # Factorial inputs
//!
//! edu computes a factorial by multiplying `n` times in a thread of its own: an input near
//! `u32::MAX` keeps it busy for seconds, longer than the bounded waits of a quiesce (entering
//! STOP) or a restore, so a user (a guest, the fuzzer) writing one made the next STOP or resume
//! fail with `ETIMEDOUT`. Every input from 34 up gives 0 in edu's 32 bits (34! has 32 factors of
//! 2), so the trap and a restore give edu the input with the same result that it computes at once
//! (the core's `fact_input`): the result a user reads once the busy bit clears is the one it
//! asked for; only the busy time is shorter, and during it the register reads 34 instead of the
//! input (edu's specification has the user wait for the busy bit). The shadow and the record keep
//! the input the user wrote.
//!
//! # A new user
//!
//! edu has no reset: a function or bus reset leaves its registers, a factorial and a DMA running
//! as they were, so without help a new user would find what the previous one left (a busy
//! device, an IRQ raised, its liveness and DMA registers). The open path ([`Backend::open`])
//! therefore plays the reset edu lacks: it waits, bounded, for a factorial and a DMA in flight,
//! then puts every register a user can set back to its value when QEMU creates the device (IRQ on
//! factorial off, IRQ status acknowledged, liveness read 0, factorial read 0, DMA source,
//! destination and count 0) and takes that as the shadow. The DMA command keeps its non-start
//! bits (edu ignores a write without the start bit) and the DMA buffer keeps its bytes (reachable
//! only by DMA). The open path, not the reset paths: the reset callbacks run with
//! vfio-pci-core's `memory_lock` held and cannot reach the BAR, and a reset while open must not
//! change what a user set (the device would not do it either).
//!
//! Limits of this reference backend: the 4 KiB DMA scratch buffer (device address 0x40000) is
//! reachable only by DMA and is not migrated; the non-start bits of the DMA command register
//! read back only while a transfer runs, so a finished command is carried for information
//! only; the factorial input is the one last written, which edu ignores while it computes.
//!
//! # Dirty page logging
//!
//! edu writes RAM only in a DMA transfer with the direction bit (0x98 bit 1) set, and a transfer
//! starts only by a write of the start bit to 0x98. BAR0 is trapped (no mmap, no ioeventfd, and
//! writes are split into the pieces the core would issue, so wide or misaligned writes are seen
//! too): while logging is on, every such start is logged before it reaches the device, with the
//! range `[dst, dst + count)` read back from the device's own registers. A start held in a P2P
//! state is logged when it is issued (at RUNNING); a transfer already running when logging
//! starts is logged then. A transfer takes edu 100 ms, so a logged transfer counts as in flight
//! until the device is seen idle: reports while it runs include it, and the first report after
//! it ends includes it once more (see the core's `mig::dirty`). RAM-to-device transfers read RAM
//! and are not logged.
//!
//! Limits: edu clamps DMA addresses to its `dma_mask` property, which the driver cannot see; it
//! logs `[dst, dst + count)` and, when `dst` is above the default 28-bit mask, the clamped range
//! too. With another mask set by the VMM, a destination outside that mask is not covered. A start written while a transfer runs
//! is logged although edu most likely drops it (conservative). Counts past the top of the IOVA
//! space are cut there.
//!
//! # Record
//!
//! `TAG_EDU` (0x0001_0001, mandatory, 64 bytes): its layout, encoder and validator are the
//! core's `mig::records::edu` ([`EduRecord`]), shared with the tool.

use super::{Backend, Gate, RecordSpec};
use crate::{
    persona_core::mig::{
        dirty::DirtyLog,
        records::{
            edu::{
                self as rec, dma_writes, fact_input, EduRecord, DMA_CMD_BITS, DMA_START,
                DMA_TO_RAM, FACT_ZERO, FLAG_FACT, FLAG_LIVENESS, STATUS_IRQFACT,
            },
            piece,
        },
        stream::{DeviceKind, Limits},
    },
    vfio::{self, CoreDevice, Io, RegionIo},
};
use kernel::{prelude::*, time::Delta};

/// PCI IDs of the device.
const VENDOR: u16 = 0x1234;
/// PCI device ID.
const DEVICE: u16 = 0x11e8;

/// The trapped BAR.
const BAR: u32 = 0;

const REG_LIVENESS: u32 = 0x04;
const REG_FACT: u32 = 0x08;
const REG_STATUS: u32 = 0x20;
const REG_IRQ_STATUS: u32 = 0x24;
const REG_IRQ_RAISE: u32 = 0x60;
const REG_IRQ_ACK: u32 = 0x64;
const REG_DMA_SRC: u32 = 0x80;
const REG_DMA_DST: u32 = 0x88;
const REG_DMA_CNT: u32 = 0x90;
const REG_DMA_CMD: u32 = 0x98;

const STATUS_BUSY: u32 = 1 << 0;
/// The factorial's bit in the IRQ status.
const IRQ_FACT: u32 = 1 << 0;

/// A bounded wait's total sleep (edu's DMA takes 100 ms), its first sleep and its longest one,
/// in microseconds. The sleeps double from the first: edu ends a factorial of the input a
/// restore writes within microseconds (in a thread of QEMU's), and a first sleep of 5 ms made
/// that wait most of an edu migration round trip (restore 7.3 ms against a save of 0.6 ms).
const WAIT_TOTAL_US: i64 = 2_000_000;
const WAIT_FIRST_US: i64 = 10;
const WAIT_STEP_US: i64 = 5_000;

/// The shadow of one edu device.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Edu {
    flags: u32,
    liveness: u32,
    fact: u32,
    dma_src: u64,
    dma_dst: u64,
    dma_cnt: u64,
    /// A DMA start written while DMA was held; issued when DMA is released.
    held_cmd: u32,
    /// A restored IRQ status not raised yet: raised when the device leaves STOP.
    irq_pending: u32,
}

impl Edu {
    /// Before a 4- or 8-byte piece `val` of a trapped write at `off` reaches the device: holds
    /// a DMA start (P2P states) or logs the RAM it will write. Returns whether the piece goes on
    /// to the device. Logging ahead of a write that then fails only over-reports.
    fn before_write(
        &mut self,
        core: &CoreDevice<Io>,
        off: u64,
        val: u64,
        held: bool,
        log: &mut DirtyLog,
    ) -> Result<bool> {
        let lo = u32::try_from(val & u64::from(u32::MAX)).unwrap_or(0);
        if off != u64::from(REG_DMA_CMD) || lo & DMA_START == 0 {
            return Ok(true);
        }
        if held {
            // Held until RUNNING; a second start while one is held is dropped, as edu drops a
            // start while a transfer runs.
            if self.held_cmd == 0 {
                self.held_cmd = lo & DMA_CMD_BITS;
            }
            return Ok(false);
        }
        Self::log_start(core, lo, log)?;
        Ok(true)
    }

    /// After a 4- or 8-byte piece reached the device: the shadow follows only what the device
    /// took (vfio refuses a write while memory decoding is off, for one).
    fn after_write(&mut self, off: u64, len: usize, val: u64) {
        let lo = u32::try_from(val & u64::from(u32::MAX)).unwrap_or(0);
        let Ok(off) = u32::try_from(off) else {
            return;
        };
        match off {
            REG_LIVENESS if len == 4 => {
                self.liveness = lo;
                self.flags |= FLAG_LIVENESS;
            }
            REG_FACT if len == 4 => {
                self.fact = lo;
                self.flags |= FLAG_FACT;
            }
            REG_DMA_SRC => self.dma_src = val,
            REG_DMA_DST => self.dma_dst = val,
            REG_DMA_CNT => self.dma_cnt = val,
            _ => {}
        }
    }

    /// Whether a DMA transfer is running (`EIO`: the device cannot be read, see the module's
    /// notes).
    fn busy(core: &CoreDevice<Io>) -> Result<bool> {
        Ok(core.bar_read32(BAR, REG_DMA_CMD)? & DMA_START != 0)
    }

    /// Logs the RAM a DMA start `cmd` is about to write, before it reaches the device.
    ///
    /// The transfer uses the device's own source, destination and count registers (edu ignores
    /// writes to them while a transfer runs, so the shadow may differ): they are read back with
    /// 64-bit reads. A device seen idle has finished every earlier transfer ([`DirtyLog::settle`]).
    /// A start written while a transfer runs is dropped by edu, unless that transfer ends first:
    /// it is logged either way.
    fn log_start(core: &CoreDevice<Io>, cmd: u32, log: &mut DirtyLog) -> Result {
        if !log.is_active() || cmd & DMA_TO_RAM == 0 {
            return Ok(());
        }
        if !Self::busy(core)? {
            log.settle();
        }
        let dst = core.bar_read64(BAR, REG_DMA_DST)?;
        let cnt = core.bar_read64(BAR, REG_DMA_CNT)?;
        for w in dma_writes(dst, cnt).into_iter().flatten() {
            log.issue(w);
        }
        Ok(())
    }

    /// Waits, bounded, until `done` holds for the value of `reg`.
    fn wait(core: &CoreDevice<Io>, reg: u32, done: impl Fn(u32) -> bool) -> Result {
        let (mut slept, mut step) = (0i64, WAIT_FIRST_US);
        loop {
            if done(core.bar_read32(BAR, reg)?) {
                return Ok(());
            }
            if slept >= WAIT_TOTAL_US {
                return Err(ETIMEDOUT);
            }
            kernel::time::delay::fsleep(Delta::from_micros(step));
            slept = slept.saturating_add(step);
            step = step.saturating_mul(2).min(WAIT_STEP_US);
        }
    }

    /// Waits, bounded, until `reg & mask` reads 0.
    fn wait_clear(core: &CoreDevice<Io>, reg: u32, mask: u32) -> Result {
        Self::wait(core, reg, |v| v & mask == 0)
    }

    /// Waits, bounded, until `reg & mask` reads non-zero.
    fn wait_set(core: &CoreDevice<Io>, reg: u32, mask: u32) -> Result {
        Self::wait(core, reg, |v| v & mask != 0)
    }
}

impl Backend for Edu {
    const IDS: &'static [(u16, u16)] = &[(VENDOR, DEVICE)];
    const KIND: DeviceKind = rec::KIND;
    const RECORDS: &'static [RecordSpec] = &[RecordSpec {
        tag: rec::TAG,
        len: rec::LEN,
        mandatory: true,
    }];
    const TRAPPED_BAR: Option<u32> = Some(BAR);
    const LIMITS: Limits = Limits {
        max_record: 64 * 1024,
        max_total: 1024 * 1024,
    };

    fn new() -> Self {
        Edu::default()
    }

    /// Plays the reset edu lacks (see the module's notes on a new user): waits for work in
    /// flight, then puts the registers a user sets to their values when QEMU creates the device,
    /// and the shadow with them. `ETIMEDOUT` (work that does not end) or `EIO` fails the open.
    fn open(&mut self, core: &CoreDevice<Io>) -> Result {
        Self::wait_clear(core, REG_STATUS, STATUS_BUSY)?;
        Self::wait_clear(core, REG_DMA_CMD, DMA_START)?;
        core.bar_write32(BAR, REG_STATUS, 0)?;
        // Liveness reads the complement of what was written: 0, as at creation.
        core.bar_write32(BAR, REG_LIVENESS, u32::MAX)?;
        // Factorial reads 0, as at creation: the result of FACT_ZERO.
        core.bar_write32(BAR, REG_FACT, FACT_ZERO)?;
        Self::wait_clear(core, REG_STATUS, STATUS_BUSY)?;
        core.bar_write64(BAR, REG_DMA_SRC, 0)?;
        core.bar_write64(BAR, REG_DMA_DST, 0)?;
        core.bar_write64(BAR, REG_DMA_CNT, 0)?;
        core.bar_write32(BAR, REG_IRQ_ACK, u32::MAX)?;
        *self = Edu {
            flags: FLAG_LIVENESS | FLAG_FACT,
            liveness: u32::MAX,
            fact: FACT_ZERO,
            ..Edu::default()
        };
        Ok(())
    }

    /// A trapped user write of BAR0. `gate.held`: DMA starts are held (P2P states);
    /// `gate.frozen`: the device must not change (STOP states), so the write is refused. DMA
    /// writes to RAM that the write starts are logged in `log`.
    ///
    /// The write is split into the pieces vfio-pci-core would issue (see [`piece`]) and each is
    /// seen and forwarded on its own, so a register reached by a wider or misaligned write (16
    /// bytes at 0x90 reach the DMA command at 0x98) is trapped like a direct one. Each piece is
    /// read from the user once and that value is written: a thread changing the buffer
    /// meanwhile cannot slip a start past the hold or the log.
    fn bar_write(
        &mut self,
        core: &CoreDevice<Io>,
        io: &mut RegionIo,
        gate: Gate,
        log: &mut DirtyLog,
    ) -> Result<usize> {
        let held = gate.held;
        if gate.frozen {
            return Err(EBUSY);
        }
        let base = io.offset();
        let total = io.len();
        let mut done = 0usize;
        while done < total {
            let at = u64::try_from(done).map_err(|_| EINVAL)?;
            let off = base.checked_add(at).ok_or(EINVAL)?;
            let n = piece(off, total - done);
            // The piece is read from the user once; the device gets these very bytes.
            let mut b = [0u8; 8];
            let r = b
                .get_mut(..n)
                .ok_or(EINVAL)
                .and_then(|p| vfio::copy_from_user_at(io, done, p))
                .and_then(|()| {
                    let val = u64::from_le_bytes(b);
                    // edu ignores other sizes; so does the shadow.
                    let reg = matches!(n, 4 | 8);
                    if reg && !self.before_write(core, off, val, held, log)? {
                        return Ok(());
                    }
                    // A factorial input reaches edu as one it computes at once (see the
                    // module's notes); the shadow keeps the user's.
                    let dev_val = if off == u64::from(REG_FACT) && n == 4 {
                        u64::from(fact_input(u32::try_from(val).unwrap_or(u32::MAX)))
                    } else {
                        val
                    };
                    core.bar_user_write(BAR, off, n, dev_val)?;
                    if reg {
                        self.after_write(off, n, val);
                    }
                    Ok(())
                });
            match r {
                Ok(()) => done += n,
                Err(e) if done == 0 => return Err(e),
                // A piece failing after others went through (past the end of the BAR, for
                // one): a short write of what reached the device.
                Err(_) => break,
            }
        }
        io.advance(done);
        Ok(done)
    }

    fn dma_busy(&self, core: &CoreDevice<Io>) -> Result<bool> {
        Self::busy(core)
    }

    /// Logging just started: a transfer already running was issued unlogged; log it now (its
    /// registers cannot change while it runs).
    fn log_running(&mut self, core: &CoreDevice<Io>, log: &mut DirtyLog) -> Result {
        let cmd = core.bar_read32(BAR, REG_DMA_CMD)?;
        if cmd & DMA_START == 0 || cmd & DMA_TO_RAM == 0 {
            return Ok(());
        }
        let dst = core.bar_read64(BAR, REG_DMA_DST)?;
        let cnt = core.bar_read64(BAR, REG_DMA_CNT)?;
        for w in dma_writes(dst, cnt).into_iter().flatten() {
            log.issue(w);
        }
        Ok(())
    }

    /// Holds DMA: new starts are held by `bar_write`; waits for a transfer in flight.
    fn hold_dma(&mut self, core: &CoreDevice<Io>) -> Result {
        Self::wait_clear(core, REG_DMA_CMD, DMA_START)
    }

    /// Releases DMA: issues a start held meanwhile, logging it as it is issued.
    fn release_dma(&mut self, core: &CoreDevice<Io>, log: &mut DirtyLog) -> Result {
        let cmd = core::mem::take(&mut self.held_cmd);
        if cmd != 0 {
            Self::log_start(core, cmd, log)?;
            core.bar_write32(BAR, REG_DMA_CMD, cmd)?;
        }
        Ok(())
    }

    /// Freezes: waits for a factorial in flight (DMA is already held and idle).
    ///
    /// edu clears the busy bit before it raises the factorial interrupt (with IRQ-on-factorial
    /// set), from another thread: a computation seen running is waited for until its interrupt
    /// is raised too, or the save would miss an interrupt raised in STOP. (One that ended just
    /// before the first read here, its interrupt still to come, cannot be told from one whose
    /// interrupt the guest already acknowledged: that window stays.)
    fn freeze(&mut self, core: &CoreDevice<Io>) -> Result {
        let status = core.bar_read32(BAR, REG_STATUS)?;
        Self::wait_clear(core, REG_STATUS, STATUS_BUSY)?;
        if status & STATUS_BUSY != 0 && status & STATUS_IRQFACT != 0 {
            Self::wait_set(core, REG_IRQ_STATUS, IRQ_FACT)?;
        }
        Self::wait_clear(core, REG_DMA_CMD, DMA_START)
    }

    /// The device leaves STOP: raises a restored IRQ status.
    fn thaw(&mut self, core: &CoreDevice<Io>) -> Result {
        if self.irq_pending != 0 {
            core.bar_write32(BAR, REG_IRQ_RAISE, self.irq_pending)?;
            self.irq_pending = 0;
        }
        Ok(())
    }

    /// Captures the frozen device into a record payload: the registers the device gives back
    /// are read from it (what it took, not what the user wrote), the rest comes from the shadow.
    fn save(&mut self, core: &CoreDevice<Io>, out: &mut [u8]) -> Result {
        let out: &mut [u8; rec::LEN] = out.try_into().map_err(|_| EINVAL)?;
        let status = core.bar_read32(BAR, REG_STATUS)?;
        let irq = core.bar_read32(BAR, REG_IRQ_STATUS)? | self.irq_pending;
        let cmd = core.bar_read32(BAR, REG_DMA_CMD)?;
        if status & STATUS_BUSY != 0 || cmd & DMA_START != 0 {
            return Err(EBUSY);
        }
        let record = EduRecord {
            flags: self.flags,
            liveness: self.liveness,
            fact: self.fact,
            status: status & STATUS_IRQFACT,
            irq_status: irq,
            dma_cmd: cmd & DMA_CMD_BITS,
            dma_src: core.bar_read64(BAR, REG_DMA_SRC)?,
            dma_dst: core.bar_read64(BAR, REG_DMA_DST)?,
            dma_cnt: core.bar_read64(BAR, REG_DMA_CNT)?,
            held_cmd: self.held_cmd,
        };
        record.encode(out);
        Ok(())
    }

    /// Validates a record payload (the core's decoder); touches nothing.
    fn validate(records: &[u8]) -> Result {
        EduRecord::decode(records)?;
        Ok(())
    }

    /// Replays a validated record on the (stopped) device and takes its shadow. A saved IRQ
    /// status is not raised here, in RESUMING -> STOP: [`Backend::thaw`] raises it.
    fn load(&mut self, core: &CoreDevice<Io>, records: &[u8]) -> Result {
        let s = EduRecord::decode(records)?;
        Self::wait_clear(core, REG_STATUS, STATUS_BUSY)?;
        Self::wait_clear(core, REG_DMA_CMD, DMA_START)?;
        core.bar_write32(BAR, REG_STATUS, 0)?;
        if s.flags & FLAG_FACT != 0 {
            // The input with the same result, computed at once (see the module's notes): a
            // record may carry any input.
            core.bar_write32(BAR, REG_FACT, fact_input(s.fact))?;
            Self::wait_clear(core, REG_STATUS, STATUS_BUSY)?;
        }
        if s.flags & FLAG_LIVENESS != 0 {
            core.bar_write32(BAR, REG_LIVENESS, s.liveness)?;
        }
        core.bar_write64(BAR, REG_DMA_SRC, s.dma_src)?;
        core.bar_write64(BAR, REG_DMA_DST, s.dma_dst)?;
        core.bar_write64(BAR, REG_DMA_CNT, s.dma_cnt)?;
        core.bar_write32(BAR, REG_STATUS, s.status)?;
        core.bar_write32(BAR, REG_IRQ_ACK, u32::MAX)?;
        *self = Edu {
            flags: s.flags,
            liveness: s.liveness,
            fact: s.fact,
            dma_src: s.dma_src,
            dma_dst: s.dma_dst,
            dma_cnt: s.dma_cnt,
            held_cmd: s.held_cmd,
            irq_pending: s.irq_status,
        };
        Ok(())
    }

    /// Forgets a held DMA start and a restored IRQ not raised yet (device reset).
    fn reset(&mut self) {
        self.held_cmd = 0;
        self.irq_pending = 0;
    }
}
