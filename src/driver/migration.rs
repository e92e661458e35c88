// SPDX-License-Identifier: GPL-2.0

//! VFIO migration v2 of persona-vfio-pci: the state loop, the data-transfer sessions, and the
//! backend a device needs to migrate.
//!
//! The state loop steps single arcs with the kernel's `vfio_mig_get_next_state()` and checks
//! that the core's mirror ([`fsm::next_state`]) agrees; each arc runs the core's
//! [`fsm::arc_actions`] in order. A failed arc leaves the device in ERROR, closing its sessions;
//! only a reset (or the last close) brings it back to RUNNING.
//!
//! The stream (see the core's `mig::stream`) is the persona's identity header, then the records:
//!
//! - `TAG_CONFIG` (0x0000_0100, mandatory): the emulated config registers of the persona, one
//!   byte per emulated slot (`persona::MAX_EMULATED` bytes); a state the persona cannot reach
//!   (a read-only bit off its reset value) is refused;
//! - the backend's record (`edu::TAG_EDU` for the edu, see there).
//!
//! Devices with a backend also log their DMA writes to RAM (`vfio_log_ops`, see the core's
//! `mig::dirty` for the log and `edu` for what the edu logs): [`Migration::log_start`],
//! [`Migration::log_read_and_clear`]. Logging is independent of the migration state; a reset or
//! the last close stops it (as pds does), so a later report fails and the user must assume
//! every page dirty.
//!
//! A saving session opened in PRE_COPY offers the header only (the PRE_COPY initial bytes, so a
//! destination with another persona refuses it at its first write, before the source stops),
//! then `-ENOMSG`; the snapshot taken on entering STOP_COPY makes the rest readable, to EOF.
//! A resuming session feeds every write to the decoder and stages the records; nothing reaches
//! the device before RESUMING -> STOP, and then only after the whole stream was verified and
//! every record validated. A resuming session in which no `write()` succeeded (nothing written,
//! or the stream refused at its first write, as a destination with another persona does) fails
//! RESUMING -> STOP with `EINVAL`, as the uAPI asks of incomplete data, but applies nothing and
//! leaves the device in STOP (a state on the requested path) rather than ERROR: the device
//! holds its own state, and no reset is needed to go on. Once bytes were accepted, an incomplete
//! or invalid stream fails RESUMING -> STOP and leaves the device in ERROR.
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

use crate::{
    edu::{self, Edu},
    persona::Active,
    persona_core::{
        mig::{
            dirty::{self, DirtyLog, LogError},
            fsm::{self, Actions, Caps, State as MigState},
            stream::{
                self, DeviceKind, Disposition, Expect, Identity, Limits, Parser, PersonaId, Reason,
                Record, RecordInfo, RecordSource, Sink, Writer,
            },
        },
        persona::MAX_EMULATED,
    },
    vfio::{self, CoreDevice, DataFileOps, LogRanges, NewFile, PollWaiter},
};
use kernel::{
    c_str, new_mutex,
    prelude::*,
    static_lock_class,
    sync::{poll::PollCondVarBox, Arc, Mutex},
    uaccess::{UserPtr, UserSlice},
};

/// Record tag of the emulated config registers.
pub(crate) const TAG_CONFIG: u32 = 0x0000_0100;

/// The migration flags the driver offers for a device with a backend.
pub(crate) const CAPS: Caps = Caps::STOP_COPY.with(Caps::P2P).with(Caps::PRE_COPY);

/// Largest record and stream a destination accepts.
const LIMITS: Limits = Limits {
    max_record: 64 * 1024,
    max_total: 1024 * 1024,
};

/// The device state a stream carries, captured from a frozen device or staged from a stream.
pub(crate) struct Image {
    config: [u8; MAX_EMULATED],
    edu: [u8; edu::RECORD_LEN],
    /// Which records a resuming session received.
    have_config: bool,
    have_edu: bool,
}

impl RecordSource for Image {
    fn record(&self, index: usize) -> Option<Record<'_>> {
        match index {
            0 => Some(Record {
                tag: TAG_CONFIG,
                mandatory: true,
                payload: &self.config,
            }),
            1 => Some(Record {
                tag: edu::TAG_EDU,
                mandatory: true,
                payload: &self.edu,
            }),
            _ => None,
        }
    }
}

/// Which record a resuming session is staging.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Staging {
    None,
    Config,
    Edu,
}

/// The decoder's sink: stages the records into an [`Image`].
struct Stage<'a> {
    image: &'a mut Image,
    cur: &'a mut Staging,
}

impl Sink for Stage<'_> {
    fn begin_record(&mut self, rec: &RecordInfo) -> Result<Disposition, Reason> {
        let len = usize::try_from(rec.len).map_err(|_| Reason::InvalidRecord)?;
        let (seen, want, which) = match rec.tag {
            TAG_CONFIG => (&mut self.image.have_config, MAX_EMULATED, Staging::Config),
            edu::TAG_EDU => (&mut self.image.have_edu, edu::RECORD_LEN, Staging::Edu),
            _ => return Ok(Disposition::Unknown),
        };
        if *seen || len != want {
            return Err(Reason::InvalidRecord);
        }
        *seen = true;
        *self.cur = which;
        Ok(Disposition::Stage)
    }

    fn stage(&mut self, offset: u64, want: usize) -> Result<&mut [u8], Reason> {
        let at = usize::try_from(offset).map_err(|_| Reason::InvalidRecord)?;
        let buf: &mut [u8] = match *self.cur {
            Staging::Config => &mut self.image.config,
            Staging::Edu => &mut self.image.edu,
            Staging::None => return Err(Reason::NoStagingSpace),
        };
        let end = at.checked_add(want).ok_or(Reason::InvalidRecord)?;
        buf.get_mut(at..end.min(buf.len()))
            .ok_or(Reason::InvalidRecord)
    }

    fn end_record(&mut self) -> Result<(), Reason> {
        *self.cur = Staging::None;
        Ok(())
    }
}

/// A saving session.
struct Save {
    writer: Writer,
    /// `None` until the snapshot (PRE_COPY offers the header only).
    image: Option<KBox<Image>>,
}

/// A resuming session.
struct Resume {
    parser: Parser,
    image: KBox<Image>,
    cur: Staging,
    /// A `write()` succeeded: the user delivered part of a stream.
    accepted: bool,
}

/// What a session is doing.
enum Inner {
    Save(KBox<Save>),
    Resume(KBox<Resume>),
    /// Ended by the device (state change, reset, close) or after a fault.
    Closed,
}

/// One data-transfer session, shared by the device and its data fd.
#[pin_data]
pub(crate) struct Session {
    /// A leaf lock: see the module's locking notes.
    #[pin]
    inner: Mutex<Inner>,
    /// Pollers of the data fd, woken when what `poll` answers may change (the snapshot makes
    /// the rest of a saving stream readable; the device ends the session).
    ready: PollCondVarBox,
}

impl Session {
    fn new(inner: Inner) -> Result<Arc<Self>> {
        let ready = PollCondVarBox::new(c_str!("persona_vfio_pci_mig_poll"), static_lock_class!())?;
        Arc::pin_init(
            pin_init!(Session {
                inner <- new_mutex!(inner),
                ready,
            }),
            GFP_KERNEL,
        )
    }

    /// Ends the session: its fd fails every call from now on. Waits for the session's mutex,
    /// which nothing holds for long (see the module's locking notes), so this may run in
    /// `reset_done`.
    fn close(&self) {
        *self.inner.lock() = Inner::Closed;
        self.ready.notify_all();
    }
}

/// Bytes moved between user memory and a session per step.
const CHUNK: usize = 256;

fn stream_errno(e: &stream::StreamError) -> Error {
    match e.errno() {
        stream::Errno::Einval => EINVAL,
        stream::Errno::Ebadmsg => EBADMSG,
        stream::Errno::Eopnotsupp => EOPNOTSUPP,
        stream::Errno::Eproto => EPROTO,
        stream::Errno::Efbig => EFBIG,
    }
}

impl DataFileOps for Session {
    fn read(&self, buf: UserPtr, len: usize) -> Result<usize> {
        let mut bounce = [0u8; CHUNK];
        let mut done = 0usize;
        while done < len {
            let want = (len - done).min(CHUNK);
            // Encode a piece under the session's mutex; copy it out with the mutex dropped.
            let n = {
                let mut inner = self.inner.lock();
                let Inner::Save(save) = &mut *inner else {
                    // Ended meanwhile: the bytes already copied were delivered.
                    return if done > 0 { Ok(done) } else { Err(ENODEV) };
                };
                let Save { writer, image } = &mut **save;
                let n = match image {
                    None => writer.fill_header(&mut bounce[..want]),
                    Some(image) => writer
                        .fill(&**image, &mut bounce[..want])
                        .map_err(|_| EIO)?,
                };
                if n == 0 {
                    if done == 0 && len > 0 && image.is_none() {
                        // PRE_COPY: nothing more until the device stops.
                        return Err(ENOMSG);
                    }
                    break;
                }
                n
            };
            let r = UserSlice::new(buf.wrapping_byte_add(done), n)
                .writer()
                .write_slice(&bounce[..n]);
            if let Err(e) = r {
                // The bytes are gone from the encoder: the stream cannot continue.
                self.close();
                return Err(e);
            }
            done += n;
        }
        Ok(done)
    }

    fn write(&self, buf: UserPtr, len: usize) -> Result<usize> {
        let mut bounce = [0u8; CHUNK];
        let mut done = 0usize;
        while done < len {
            let n = (len - done).min(CHUNK);
            // Copy a piece in with no lock held; decode it under the session's mutex.
            let r = UserSlice::new(buf.wrapping_byte_add(done), n)
                .reader()
                .read_slice(&mut bounce[..n]);
            if let Err(e) = r {
                // The bytes before the fault were taken: say so, as `write()` does.
                if done > 0 {
                    break;
                }
                return Err(e);
            }
            let mut inner = self.inner.lock();
            let Inner::Resume(res) = &mut *inner else {
                return if done > 0 { Ok(done) } else { Err(ENODEV) };
            };
            let res = &mut **res;
            let mut sink = Stage {
                image: &mut res.image,
                cur: &mut res.cur,
            };
            res.parser
                .feed(&bounce[..n], &mut sink)
                .map_err(|e| stream_errno(&e))?;
            done += n;
        }
        if done > 0 {
            // A `write()` succeeded: the user delivered part of a stream.
            if let Inner::Resume(res) = &mut *self.inner.lock() {
                res.accepted = true;
            }
        }
        Ok(done)
    }

    fn precopy_info(&self) -> Result<(u64, u64)> {
        let inner = self.inner.lock();
        match &*inner {
            Inner::Save(save) if save.image.is_none() => {
                let h = u64::try_from(save.writer.header_remaining()).map_err(|_| EINVAL)?;
                Ok((h, 0))
            }
            Inner::Closed => Err(ENODEV),
            _ => Err(EINVAL),
        }
    }

    /// A saving session is readable while it has bytes to give now: in PRE_COPY while header
    /// bytes remain (then `read()` says `ENOMSG` until the snapshot), from STOP_COPY on always
    /// (to a permanent EOF). A resuming session is writable. An ended one is an error.
    fn poll(&self, waiter: &PollWaiter<'_>) -> u32 {
        waiter.wait_on(&self.ready);
        match &*self.inner.lock() {
            Inner::Save(save) if save.image.is_none() && save.writer.header_remaining() == 0 => 0,
            Inner::Save(_) => vfio::POLL_IN,
            Inner::Resume(_) => vfio::POLL_OUT,
            Inner::Closed => vfio::POLL_ERR,
        }
    }
}

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
    /// The device's backend (the edu is the only one).
    pub(crate) edu: Edu,
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
    pub(crate) core: &'a CoreDevice,
    pub(crate) persona: Option<&'a Active>,
    pub(crate) regs: &'a mut crate::persona_core::overlay::OverlayState,
}

impl Migration {
    /// A device in RUNNING with no session.
    pub(crate) fn new() -> Self {
        Migration {
            cur: MigState::Running,
            save: None,
            resume: None,
            held: false,
            frozen: false,
            edu: Edu::default(),
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
        self.edu.drop_held();
        self.log.stop();
    }

    /// A trapped write of the backend's BAR.
    pub(crate) fn bar_write(
        &mut self,
        core: &CoreDevice,
        io: &mut crate::vfio::RegionIo,
    ) -> Result<usize> {
        self.edu
            .write(core, io, self.held, self.frozen, &mut self.log)
    }

    /// `DMA_LOGGING_START`: the user's ranges (merged down to what the log keeps) at
    /// `page_size`, which is used as given or refused (never adjusted).
    pub(crate) fn log_start(
        &mut self,
        core: &CoreDevice,
        ranges: &mut LogRanges<'_>,
        page_size: u64,
    ) -> Result {
        if self.log.is_active() {
            // Checked before the tree is touched (combining changes it).
            return Err(log_errno(LogError::AlreadyStarted));
        }
        // Refuse a bad page size before the ranges are combined.
        DirtyLog::page_shift_of(page_size).map_err(log_errno)?;
        let max = u32::try_from(dirty::MAX_RANGES).map_err(|_| EINVAL)?;
        if ranges.count() > max {
            ranges.combine(max);
        }
        self.log
            .start(page_size, ranges.iter())
            .map_err(log_errno)?;
        if let Err(e) = Edu::log_running(core, &mut self.log) {
            self.log.stop();
            return Err(e);
        }
        Ok(())
    }

    /// `DMA_LOGGING_REPORT` of `[iova, iova + len)`: the dirty spans go to `out`.
    pub(crate) fn log_read_and_clear(
        &mut self,
        core: &CoreDevice,
        iova: u64,
        len: u64,
        out: impl FnMut(u64, u64),
    ) -> Result {
        if !self.log.is_active() {
            return Err(log_errno(LogError::NotStarted));
        }
        // A device that cannot be read (D3hot) may still have a DMA landing: a logged DMA counts
        // as running until a report reads the device idle, so its pages are reported again
        // rather than forgotten.
        let busy = Edu::dma_busy(core).unwrap_or(true);
        self.log
            .read_and_clear(iova, len, busy, out)
            .map_err(log_errno)
    }

    /// Moves to `new` (a uAPI state value) arc by arc; returns the fd the last arc opened.
    pub(crate) fn set_state(&mut self, ctx: &mut Ctx<'_>, new: u32) -> Result<Option<NewFile>> {
        let target = MigState::try_from(new).map_err(|_| EINVAL)?;
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
        core: &CoreDevice,
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
                    self.edu.hold_dma(ctx.core)?;
                }
                Actions::FREEZE => {
                    self.edu.freeze(ctx.core)?;
                    self.frozen = true;
                }
                Actions::OPEN_PRECOPY | Actions::OPEN_SAVE => {
                    let writer = Writer::new(&identity(ctx.persona)?);
                    let save = KBox::new(
                        Save {
                            writer,
                            image: None,
                        },
                        GFP_KERNEL,
                    )?;
                    let s = Session::new(Inner::Save(save))?;
                    file = Some(NewFile::open(ctx.core, s.clone(), false)?);
                    self.save = Some(s);
                }
                Actions::SNAPSHOT => {
                    let mut image = new_image()?;
                    image.config.copy_from_slice(ctx.regs.as_bytes());
                    self.edu.save(ctx.core, &mut image.edu)?;
                    let s = self.save.as_ref().ok_or(EIO)?;
                    match &mut *s.inner.lock() {
                        Inner::Save(save) => save.image = Some(image),
                        _ => return Err(EIO),
                    }
                    // The rest of the stream is readable now.
                    s.ready.notify_all();
                }
                Actions::OPEN_RESUME => {
                    let expect = Expect::exactly(&identity(ctx.persona)?);
                    let res = KBox::new(
                        Resume {
                            parser: Parser::new(expect, LIMITS),
                            image: new_image()?,
                            cur: Staging::None,
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
                    self.edu.thaw(ctx.core)?;
                    self.frozen = false;
                }
                Actions::RELEASE_DMA => {
                    self.held = false;
                    self.edu.release_dma(ctx.core, &mut self.log)?;
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
        let (config, saved) = {
            let inner = s.inner.lock();
            let Inner::Resume(res) = &*inner else {
                return Err(EIO);
            };
            if !res.accepted {
                // No write succeeded: the user gave up resuming, or was told at the first write
                // that the stream is refused. Nothing was delivered; the device stays as it is,
                // and `set_state` fails the request.
                self.nothing_loaded = true;
                return Ok(());
            }
            res.parser.finish().map_err(|e| stream_errno(&e))?;
            if !res.image.have_config || !res.image.have_edu {
                return Err(EINVAL);
            }
            let mut config = KBox::new([0u8; MAX_EMULATED], GFP_KERNEL)?;
            config.copy_from_slice(&res.image.config);
            (config, Edu::decode(&res.image.edu)?)
        };
        let map = &ctx.persona.ok_or(EINVAL)?.map;
        if !crate::persona_core::overlay::OverlayState::is_reachable(map, &config) {
            return Err(EINVAL);
        }
        if !ctx.regs.load(map, &config) {
            return Err(EINVAL);
        }
        self.edu.load(ctx.core, &saved)
    }

    /// The number of bytes a STOP_COPY stream has.
    pub(crate) fn data_size() -> Result<usize> {
        // The stream's size does not depend on the values in it.
        let image = new_image()?;
        let n = stream::encoded_len(&*image).ok_or(EOVERFLOW)?;
        usize::try_from(n).map_err(|_| EOVERFLOW)
    }
}

/// Every refusal of the log is `EINVAL` in the uAPI (as in mlx5 and pds, a second start too).
fn log_errno(_e: LogError) -> Error {
    EINVAL
}

fn new_image() -> Result<KBox<Image>> {
    Ok(KBox::new(
        Image {
            config: [0; MAX_EMULATED],
            edu: [0; edu::RECORD_LEN],
            have_config: false,
            have_edu: false,
        },
        GFP_KERNEL,
    )?)
}

/// The stream identity of a device with the persona `active`.
fn identity(active: Option<&Active>) -> Result<Identity> {
    let p = active.ok_or(EOPNOTSUPP)?.persona()?;
    let v = p.version();
    let version = (u32::from(v.major) << 16) | u32::from(v.minor);
    let persona = PersonaId::new(p.name().as_bytes(), version, p.digest()).ok_or(EINVAL)?;
    Ok(Identity {
        kind: DeviceKind::EDU,
        persona,
    })
}
