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
//! or the stream refused at its first write, as a destination with another persona does)
//! changes nothing and leaves RESUMING without error; once bytes were accepted, an incomplete or
//! invalid stream fails RESUMING -> STOP and leaves the device in ERROR.
//!
//! # Locking
//!
//! The device's `state` mutex is taken before a session's own mutex, never after: file
//! operations take only the session's. The log lives under `state`; a report sets bits in the
//! user's bitmap (pinning user pages, so taking `mmap_lock`) with `state` held, the order that
//! user copies under `state` already set (`mmap` never takes `state`).

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
    vfio::{CoreDevice, DataFileOps, LogRanges, NewFile},
};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
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
    #[pin]
    inner: Mutex<Inner>,
}

impl Session {
    fn new(inner: Inner) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Session {
                inner <- new_mutex!(inner),
            }),
            GFP_KERNEL,
        )
    }

    fn close(&self) {
        *self.inner.lock() = Inner::Closed;
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
        let mut inner = self.inner.lock();
        let Inner::Save(save) = &mut *inner else {
            return Err(ENODEV);
        };
        let Save { writer, image } = &mut **save;
        let mut bounce = [0u8; CHUNK];
        let mut done = 0usize;
        while done < len {
            let want = (len - done).min(CHUNK);
            let n = match image {
                None => writer.fill_header(&mut bounce[..want]),
                Some(image) => writer
                    .fill(&**image, &mut bounce[..want])
                    .map_err(|_| EIO)?,
            };
            if n == 0 {
                break;
            }
            let r = UserSlice::new(buf.wrapping_byte_add(done), n)
                .writer()
                .write_slice(&bounce[..n]);
            if let Err(e) = r {
                // The bytes are gone from the encoder: the stream cannot continue.
                *inner = Inner::Closed;
                return Err(e);
            }
            done += n;
        }
        if done == 0 && len > 0 && image.is_none() {
            // PRE_COPY: nothing more until the device stops.
            return Err(ENOMSG);
        }
        Ok(done)
    }

    fn write(&self, buf: UserPtr, len: usize) -> Result<usize> {
        let mut inner = self.inner.lock();
        let Inner::Resume(res) = &mut *inner else {
            return Err(ENODEV);
        };
        let res = &mut **res;
        let mut bounce = [0u8; CHUNK];
        let mut done = 0usize;
        while done < len {
            let n = (len - done).min(CHUNK);
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
            res.accepted = true;
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
        let busy = Edu::dma_busy(core)?;
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
                    dev_err!(
                        ctx.core.as_dev(),
                        "migration: arc {} -> {} failed ({:?}): device in ERROR\n",
                        cur.name(),
                        mirror.name(),
                        e
                    );
                    self.fail();
                    return Err(e);
                }
            }
            self.cur = mirror;
        }
        Ok(file)
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
                Actions::THAW => self.frozen = false,
                Actions::RELEASE_DMA => {
                    self.held = false;
                    self.edu.release_dma(ctx.core, &mut self.log)?;
                }
                _ => return Err(EINVAL),
            }
        }
        Ok(file)
    }

    /// Applies a verified stream: every record is validated before the device is touched.
    fn load(&mut self, ctx: &mut Ctx<'_>) -> Result {
        let s = self.resume.as_ref().ok_or(EIO)?;
        let inner = s.inner.lock();
        let Inner::Resume(res) = &*inner else {
            return Err(EIO);
        };
        if !res.accepted {
            // No write succeeded: the user gave up resuming, or was told at the first write that
            // the stream is refused. Nothing was delivered; the device stays as it is.
            return Ok(());
        }
        res.parser.finish().map_err(|e| stream_errno(&e))?;
        if !res.image.have_config || !res.image.have_edu {
            return Err(EINVAL);
        }
        let map = &ctx.persona.ok_or(EINVAL)?.map;
        if !crate::persona_core::overlay::OverlayState::is_reachable(map, &res.image.config) {
            return Err(EINVAL);
        }
        let saved = Edu::decode(&res.image.edu)?;
        if !ctx.regs.load(map, &res.image.config) {
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
