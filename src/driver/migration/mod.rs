// SPDX-License-Identifier: GPL-2.0

//! VFIO migration v2 of persona-vfio-pci: the state loop (here), the data-transfer sessions
//! ([`session`]), the device state a stream carries ([`image`]) and dirty page logging ([`log`]).
//! What depends on the device is its backend (`crate::backend`): this code names no device.
//!
//! The state loop steps single arcs with the kernel's `vfio_mig_get_next_state()` and checks
//! that the core's mirror ([`fsm::next_state`]) agrees; each arc runs the core's
//! [`fsm::arc_actions`] in order. A failed arc leaves the device in ERROR, closing its sessions;
//! only a reset (or the last close) brings it back to RUNNING.
//!
//! The stream (see the core's `mig::stream`) is the persona's identity header, then the records:
//!
//! - `TAG_CONFIG` (0x0000_0100, mandatory): the emulated config registers of the persona, one
//!   byte per emulated slot (the core's `mig::records::config`); a state the persona cannot
//!   reach (a read-only bit off its reset value) is refused;
//! - the backend's records (`Backend::RECORDS`; their formats are in the core's
//!   `mig::records`);
//! - for a backend with a memory BAR (`Backend::MEMORY`), its pages as page records: every page
//!   in PRE_COPY (read when the session opens, while the device runs), before the records
//!   above, and the pages changed since after them at STOP_COPY ([`memory`]).
//!
//! Devices with a backend also log their DMA writes to RAM (`vfio_log_ops`, see the core's
//! `mig::dirty` for the log and the backend for what it logs): [`Migration::log_start`],
//! [`Migration::log_read_and_clear`]. Logging is independent of the migration state; a reset or
//! the last close stops it (as pds does), so a later report fails and the user must assume
//! every page dirty.
//!
//! A saving session opened in PRE_COPY offers the header only (the PRE_COPY initial bytes, so a
//! destination with another persona refuses it at its first write, before the source stops),
//! and the memory's page records for a backend with one, then `-ENOMSG`; the snapshot taken on entering STOP_COPY makes the rest readable, to EOF.
//! A resuming session feeds every write to the decoder and stages the records; nothing reaches
//! the device before RESUMING -> STOP, and then only after the whole stream was verified and
//! every record validated. A resuming session in which no `write()` succeeded (nothing written,
//! or the stream refused at its first write, as a destination with another persona does) fails
//! RESUMING -> STOP with `EINVAL`, as the uAPI asks of incomplete data, but applies nothing and
//! leaves the device in STOP (a state on the requested path) rather than ERROR: the device
//! holds its own state, and no reset is needed to go on. Once bytes were accepted, an incomplete
//! or invalid stream fails RESUMING -> STOP and leaves the device in ERROR.
//!
//! # Resets
//!
//! A reset of the function (the user's `VFIO_DEVICE_RESET` or hot reset, an FLR it writes, a
//! reset through sysfs, AER recovery) ends the sessions and returns the device state to RUNNING,
//! as the uAPI defines a reset and as mlx5 and pds do; that holds in RESUMING too (review S3):
//! the staged records are dropped, the data fd answers `ENODEV`, and a following
//! SET_STATE(STOP) is the arc RUNNING -> STOP, which succeeds with nothing loaded. The user
//! learns of the reset from that `ENODEV` or from reading the device state; SET_STATE carries no
//! expected current state, so refusing that STOP could tell the user nothing more. A function
//! without a reset method (vfio-pci-core's `reset_works` false, S5) fails `VFIO_DEVICE_RESET`,
//! but ERROR is still left: the last close ends every session and returns the device to
//! RUNNING for the next user.
//!
//! A failed arc is logged at error level the first, second, fourth, eighth... time for a device
//! (with the count), the others at debug level: a user repeating failures cannot flood the log.
//!
//! # Locking
//!
//! The device's `state` mutex is taken before a session's own mutex, never after: file
//! operations take only the session's. The log lives under `state`; a report sets bits in the
//! user's bitmap (pinning user pages, so taking `mmap_lock`) with `state` held, the order that
//! user copies under `state` already set (`mmap` never takes `state`). The backend's device
//! accesses take vfio-pci-core's `memory_lock` for write under `state`, one access at a time (the
//! order config writes already set); reset paths hold `memory_lock` and only try `state`.
//!
//! A session's mutex is a leaf held for in-memory work only: never across a user copy (data fd
//! `read()`/`write()` encode into or decode from a bounce buffer under it and copy with it
//! dropped), never across a device access (`load` copies the staged records out first), never
//! while sleeping on anything else. That is how sessions end without blocking in `reset_done`:
//! it runs with vfio-pci-core's `memory_lock` held for write and the PCI device locks held,
//! takes `state` only with a try-lock (the holder of `state` otherwise runs the reset, see
//! `device`), and then waits for a session's mutex only as long as a holder takes to copy at
//! most a bounce buffer in memory. A user copy that faults on a BAR mapping (which waits for
//! `memory_lock`) or on a userfaultfd page holds no lock a reset needs.

mod image;
mod log;
mod memory;
mod session;

pub(crate) use session::Session;

use crate::{
    backend::{AnyBackend, Gate, MemorySpec},
    persona::Active,
    persona_core::{
        mig::{
            dirty::DirtyLog,
            fsm::{self, Actions, Caps, State as MigState},
            records::config,
            stream::{self, Expect, Identity, Limits, Parser, PersonaId, Writer},
        },
        overlay::OverlayState,
    },
    vfio::{CoreDevice, Io, NewFile, RegionIo},
};
use image::Image;
use kernel::{prelude::*, sync::Arc};
use session::{Inner, Resume, Save};

/// `limits` raised for a stream carrying a memory of `pages` pages as page records.
fn with_memory(limits: Limits, pages: usize) -> Option<Limits> {
    let max_record = u64::try_from(crate::persona_core::mig::records::pages::MAX_LEN).ok()?;
    Some(Limits {
        max_record: limits.max_record.max(max_record),
        max_total: limits
            .max_total
            .checked_add(memory::stream_allowance(pages)?)?,
    })
}

/// The migration flags the driver offers for a device with a backend.
pub(crate) const CAPS: Caps = Caps::STOP_COPY.with(Caps::P2P).with(Caps::PRE_COPY);

/// The migration state of a device with a backend.
pub(crate) struct Migration {
    /// The current state.
    pub(crate) cur: MigState,
    save: Option<Arc<Session>>,
    resume: Option<Arc<Session>>,
    /// New DMA is held (P2P and STOP states).
    held: bool,
    /// The device is frozen (STOP states).
    frozen: bool,
    /// The device's backend.
    pub(crate) backend: AnyBackend,
    /// Dirty page logging of the backend's DMA writes.
    pub(crate) log: DirtyLog,
    /// Failed arcs of this device since bind (see the module's notes on logging).
    failures: u64,
    /// The last LOAD applied nothing (no data was accepted): the arc completes, the request
    /// fails.
    nothing_loaded: bool,
}

/// What an arc works on besides the migration state.
pub(crate) struct Ctx<'a> {
    pub(crate) core: &'a CoreDevice<Io>,
    pub(crate) persona: Option<&'a Active>,
    pub(crate) regs: &'a mut OverlayState,
}

impl Migration {
    /// A device with the backend `backend`, in RUNNING with no session.
    pub(crate) fn new(backend: AnyBackend) -> Self {
        Migration {
            cur: MigState::Running,
            save: None,
            resume: None,
            held: false,
            frozen: false,
            backend,
            log: DirtyLog::new(),
            failures: 0,
            nothing_loaded: false,
        }
    }

    /// Ends both sessions (their fds then fail every call).
    fn close_sessions(&mut self) {
        if let Some(s) = self.save.take() {
            s.close();
        }
        if let Some(s) = self.resume.take() {
            s.close();
        }
    }

    /// Device reset or last close: back to RUNNING, sessions closed, held DMA dropped, dirty
    /// logging stopped.
    pub(crate) fn reset(&mut self) {
        self.close_sessions();
        self.cur = MigState::Running;
        self.held = false;
        self.frozen = false;
        self.backend.reset();
        self.log.stop();
    }

    /// A trapped write of the backend's BAR.
    pub(crate) fn bar_write(&mut self, core: &CoreDevice<Io>, io: &mut RegionIo) -> Result<usize> {
        let gate = Gate {
            held: self.held,
            frozen: self.frozen,
        };
        self.backend.bar_write(core, io, gate, &mut self.log)
    }

    /// Moves to `target` arc by arc; returns the fd the last arc opened.
    pub(crate) fn set_state(
        &mut self,
        ctx: &mut Ctx<'_>,
        target: MigState,
    ) -> Result<Option<NewFile>> {
        if target == MigState::Error {
            return Err(EINVAL);
        }
        if self.cur == MigState::Error {
            // ERROR has no arcs: only a reset (or the last close) leaves it. The kernel's
            // helper must not be asked (`vfio_mig_get_next_state()` WARN_ONs for ERROR as the
            // current state, which a user could repeat at will), so refuse here, as pds does.
            return Err(EINVAL);
        }
        let mut file = None;
        while self.cur != target {
            let cur = self.cur;
            let next = ctx.core.mig_next_state(cur.value(), target.value())?;
            let mirror = fsm::next_state(cur, target, CAPS).map_err(|_| EINVAL)?;
            if mirror.value() != next {
                dev_err!(
                    ctx.core.as_dev(),
                    "migration: kernel steps {} -> {} via {}, the core via {}\n",
                    cur.name(),
                    target.name(),
                    next,
                    mirror.name()
                );
                self.fail();
                return Err(EIO);
            }
            let actions = fsm::arc_actions(cur, mirror).ok_or(EINVAL)?;
            match self.step(ctx, actions) {
                Ok(Some(f)) => file = Some(f),
                Ok(None) => {}
                Err(e) => {
                    self.log_failure(ctx.core, cur, mirror, e, "device in ERROR");
                    self.fail();
                    return Err(e);
                }
            }
            self.cur = mirror;
            if core::mem::take(&mut self.nothing_loaded) {
                // RESUMING -> STOP with no data accepted: nothing was applied; the device stays
                // in STOP with its own state, and the request fails (incomplete data).
                self.log_failure(ctx.core, cur, mirror, EINVAL, "no data: nothing loaded");
                return Err(EINVAL);
            }
        }
        Ok(file)
    }

    /// Logs a failed arc: the 1st, 2nd, 4th, 8th... failure of the device at error level, with
    /// the count; the others at debug level (a user can fail arcs at will).
    fn log_failure(
        &mut self,
        core: &CoreDevice<Io>,
        from: MigState,
        to: MigState,
        e: Error,
        what: &str,
    ) {
        self.failures = self.failures.saturating_add(1);
        if self.failures.is_power_of_two() {
            dev_err!(
                core.as_dev(),
                "migration: arc {} -> {} failed ({:?}): {} ({} failed arcs since bind; only \
                 the 1st, 2nd, 4th, 8th... are logged)\n",
                from.name(),
                to.name(),
                e,
                what,
                self.failures
            );
        } else {
            dev_dbg!(
                core.as_dev(),
                "migration: arc {} -> {} failed ({:?}): {}\n",
                from.name(),
                to.name(),
                e,
                what
            );
        }
    }

    fn fail(&mut self) {
        self.close_sessions();
        self.cur = MigState::Error;
    }

    /// Runs one arc's actions in order.
    fn step(&mut self, ctx: &mut Ctx<'_>, actions: Actions) -> Result<Option<NewFile>> {
        let mut file = None;
        for a in actions.iter() {
            match a {
                Actions::HOLD_DMA => {
                    self.held = true;
                    self.backend.hold_dma(ctx.core)?;
                }
                Actions::FREEZE => {
                    self.backend.freeze(ctx.core)?;
                    self.frozen = true;
                }
                Actions::OPEN_PRECOPY | Actions::OPEN_SAVE => {
                    let writer = Writer::new(&self.identity(ctx.persona)?);
                    let pre = match self.memory_pages(ctx)? {
                        // PRE_COPY data: the memory as the running device has it.
                        Some((spec, pages)) if a == Actions::OPEN_PRECOPY => Some(Arc::new(
                            memory::precopy(ctx.core, spec, pages)?,
                            GFP_KERNEL,
                        )?),
                        _ => None,
                    };
                    let save = KBox::new(
                        Save {
                            writer,
                            image: None,
                            pre,
                            post: None,
                        },
                        GFP_KERNEL,
                    )?;
                    let s = Session::new(Inner::Save(save))?;
                    file = Some(NewFile::open(ctx.core, s.clone(), false)?);
                    self.save = Some(s);
                }
                Actions::SNAPSHOT => {
                    let mut image = Image::new(self.backend.records())?;
                    image.config.copy_from_slice(ctx.regs.as_bytes());
                    self.backend.save(ctx.core, &mut image.backend)?;
                    let mem = self.memory_pages(ctx)?;
                    let s = self.save.as_ref().ok_or(EIO)?;
                    let post = match mem {
                        Some((spec, pages)) => {
                            // What PRE_COPY sent, shared out of the session: its mutex is
                            // not held across device accesses.
                            let pre = match &*s.inner.lock() {
                                Inner::Save(save) => save.pre.clone(),
                                _ => return Err(EIO),
                            };
                            Some(memory::changed(ctx.core, spec, pages, pre.as_deref())?)
                        }
                        None => None,
                    };
                    match &mut *s.inner.lock() {
                        Inner::Save(save) => {
                            save.image = Some(image);
                            save.post = post;
                        }
                        _ => return Err(EIO),
                    }
                    // The rest of the stream is readable now.
                    s.ready.notify_all();
                }
                Actions::OPEN_RESUME => {
                    let expect = Expect::exactly(&self.identity(ctx.persona)?);
                    let mut image = Image::new(self.backend.records())?;
                    let mut limits = self.backend.limits();
                    if let Some((spec, pages)) = self.memory_pages(ctx)? {
                        image.memory = Some(memory::Staged::new(spec.tag, pages)?);
                        limits = with_memory(limits, pages).ok_or(EOVERFLOW)?;
                    }
                    let res = KBox::new(
                        Resume {
                            parser: Parser::new(expect, limits),
                            image,
                            cur: None,
                            accepted: false,
                        },
                        GFP_KERNEL,
                    )?;
                    let s = Session::new(Inner::Resume(res))?;
                    file = Some(NewFile::open(ctx.core, s.clone(), true)?);
                    self.resume = Some(s);
                }
                Actions::LOAD => self.load(ctx)?,
                Actions::CLOSE_SAVE => {
                    if let Some(s) = self.save.take() {
                        s.close();
                    }
                }
                Actions::CLOSE_RESUME => {
                    if let Some(s) = self.resume.take() {
                        s.close();
                    }
                }
                Actions::THAW => {
                    self.backend.thaw(ctx.core)?;
                    self.frozen = false;
                }
                Actions::RELEASE_DMA => {
                    self.held = false;
                    self.backend.release_dma(ctx.core, &mut self.log)?;
                }
                _ => return Err(EINVAL),
            }
        }
        Ok(file)
    }

    /// Applies a verified stream: every record is validated before the device is touched. The
    /// staged records are copied out of the session first: the session's mutex is not held
    /// across device accesses (see the module's locking notes).
    fn load(&mut self, ctx: &mut Ctx<'_>) -> Result {
        let s = self.resume.as_ref().ok_or(EIO)?;
        let (config, saved, mem) = {
            let mut inner = s.inner.lock();
            let Inner::Resume(res) = &mut *inner else {
                return Err(EIO);
            };
            if !res.accepted {
                // No write succeeded: the user gave up resuming, or was told at the first write
                // that the stream is refused. Nothing was delivered; the device stays as it is,
                // and `set_state` fails the request.
                self.nothing_loaded = true;
                return Ok(());
            }
            res.parser.finish()?;
            if !res.image.complete() {
                return Err(EINVAL);
            }
            let mut config = KBox::new([0u8; config::LEN], GFP_KERNEL)?;
            config.copy_from_slice(&res.image.config);
            self.backend.validate(&res.image.backend)?;
            let mut saved = KVVec::with_capacity(res.image.backend.len(), GFP_KERNEL)?;
            saved.extend_from_slice(&res.image.backend, GFP_KERNEL)?;
            // The staged memory moves out (the session ends with this arc).
            let mem = res.image.memory.take().map(|m| m.buf);
            (config, saved, mem)
        };
        let map = &ctx.persona.ok_or(EINVAL)?.map;
        if !OverlayState::is_reachable(map, &config) {
            return Err(EINVAL);
        }
        if !ctx.regs.load(map, &config) {
            return Err(EINVAL);
        }
        self.backend.load(ctx.core, &saved)?;
        match (self.backend.memory(), mem) {
            (Some(spec), Some(mem)) => memory::load(ctx.core, spec, &mem),
            (None, None) => Ok(()),
            _ => Err(EIO),
        }
    }

    /// The memory BAR the backend's stream carries (`Backend::MEMORY`) and its pages at the
    /// size it is presented at (the persona's, at most the device's); tells the backend that
    /// size. `None`: the backend carries no memory.
    fn memory_pages(&mut self, ctx: &Ctx<'_>) -> Result<Option<(&'static MemorySpec, usize)>> {
        let Some(spec) = self.backend.memory() else {
            return Ok(None);
        };
        let i = usize::try_from(spec.bar).map_err(|_| EINVAL)?;
        let persona = ctx.persona.ok_or(EOPNOTSUPP)?.bar_sizes();
        let dev = ctx.core.resources().get(i).map_or(0, |r| r.0);
        let len = persona.get(i).copied().unwrap_or(0).min(dev);
        let pages = memory::pages_of(len)?;
        self.backend.set_memory_len(len);
        Ok(Some((spec, pages)))
    }

    /// The number of bytes a STOP_COPY stream has (with a memory: at most, every page once;
    /// in PRE_COPY, the PRE_COPY data not read yet plus the fixed records: the pages that
    /// change meanwhile are not known before STOP_COPY).
    pub(crate) fn data_size(&mut self, ctx: &Ctx<'_>) -> Result<usize> {
        // The stream's size does not depend on the values in it.
        let image = Image::new(self.backend.records())?;
        let n = stream::encoded_len(&*image).ok_or(EOVERFLOW)?;
        let n = usize::try_from(n).map_err(|_| EOVERFLOW)?;
        let Some((_, pages)) = self.memory_pages(ctx)? else {
            return Ok(n);
        };
        let pre = match self.save.as_ref().map(|s| s.precopy_remaining()) {
            Some(Some(left)) => left,
            _ => memory::full_len(pages).ok_or(EOVERFLOW)?,
        };
        n.checked_add(pre).ok_or(EOVERFLOW)
    }

    /// The stream identity of a device with the persona `active`.
    fn identity(&self, active: Option<&Active>) -> Result<Identity> {
        let p = active.ok_or(EOPNOTSUPP)?.persona()?;
        let v = p.version();
        let version = (u32::from(v.major) << 16) | u32::from(v.minor);
        let persona = PersonaId::new(p.name().as_bytes(), version, p.digest()).ok_or(EINVAL)?;
        Ok(Identity {
            kind: self.backend.kind(),
            persona,
        })
    }
}
