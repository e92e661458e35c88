// SPDX-License-Identifier: GPL-2.0

//! The data-transfer sessions behind a migration data fd: a saving session encodes the stream
//! (the header in PRE_COPY, the rest once the snapshot is taken), a resuming one decodes and
//! stages it. The session's mutex is a leaf (see the locking notes of the parent module): user
//! copies go through a bounce buffer with it dropped.

use super::{
    image::{Image, Stage},
    memory::Pages,
};
use crate::{
    persona_core::mig::stream::{Parser, Record, RecordSource, Writer},
    vfio::{self, DataFileOps, PollWaiter},
};
use kernel::{
    c_str, new_mutex,
    prelude::*,
    static_lock_class,
    sync::{poll::PollCondVarBox, Arc, Mutex},
    uaccess::{UserPtr, UserSlice},
};

/// A saving session.
pub(super) struct Save {
    pub(super) writer: Writer,
    /// `None` until the snapshot (PRE_COPY offers the header and `pre` only).
    pub(super) image: Option<KBox<Image>>,
    /// The memory's page records read in PRE_COPY (`Backend::MEMORY`), sent first; shared with
    /// the snapshot, which compares the stopped device with them.
    pub(super) pre: Option<Arc<Pages>>,
    /// The memory's page records read at the snapshot, sent after `image`'s records.
    pub(super) post: Option<Pages>,
}

impl Save {
    /// The records the PRE_COPY part of the stream has (`pre`'s).
    fn early(&self) -> usize {
        self.pre.as_deref().map_or(0, Pages::count)
    }

    /// PRE_COPY bytes not read yet: the header's rest and `pre`'s records.
    pub(super) fn initial_remaining(&self) -> Result<usize> {
        match self.pre.as_deref() {
            None => Ok(self.writer.header_remaining()),
            Some(p) => self
                .writer
                .remaining_until(&Early(p), p.count())
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(EOVERFLOW),
        }
    }
}

/// The PRE_COPY records: `pre`'s.
struct Early<'a>(&'a Pages);

impl RecordSource for Early<'_> {
    fn record(&self, index: usize) -> Option<Record<'_>> {
        self.0.record(index)
    }
}

/// The whole stream's records: `pre`'s, the image's, then `post`'s.
struct Full<'a> {
    pre: Option<&'a Pages>,
    image: &'a Image,
    post: Option<&'a Pages>,
}

impl RecordSource for Full<'_> {
    fn record(&self, index: usize) -> Option<Record<'_>> {
        let npre = self.pre.map_or(0, Pages::count);
        if index < npre {
            return self.pre?.record(index);
        }
        let i = index - npre;
        if let Some(r) = self.image.record(i) {
            return Some(r);
        }
        self.post?.record(i.checked_sub(self.image.count())?)
    }
}

/// A resuming session.
pub(super) struct Resume {
    pub(super) parser: Parser,
    pub(super) image: KBox<Image>,
    /// The record being staged (see [`Stage`]).
    pub(super) cur: Option<usize>,
    /// A `write()` succeeded: the user delivered part of a stream.
    pub(super) accepted: bool,
}

/// What a session is doing.
pub(super) enum Inner {
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
    pub(super) inner: Mutex<Inner>,
    /// Pollers of the data fd, woken when what `poll` answers may change (the snapshot makes
    /// the rest of a saving stream readable; the device ends the session).
    pub(super) ready: PollCondVarBox,
}

impl Session {
    pub(super) fn new(inner: Inner) -> Result<Arc<Self>> {
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
    pub(super) fn close(&self) {
        *self.inner.lock() = Inner::Closed;
        self.ready.notify_all();
    }
}

impl Session {
    /// A saving session in PRE_COPY with memory: the PRE_COPY bytes not read yet; `None`
    /// otherwise.
    pub(super) fn precopy_remaining(&self) -> Option<usize> {
        match &*self.inner.lock() {
            Inner::Save(save) if save.image.is_none() && save.pre.is_some() => {
                save.initial_remaining().ok()
            }
            _ => None,
        }
    }
}

/// Bytes moved between user memory and a session per step.
const CHUNK: usize = 256;
/// Largest bounce buffer a large `read()` or `write()` allocates: each piece costs a lock of the
/// session's mutex (under lockdep in the test kernels), a user copy and a pass of the codec's
/// state machine, too much per 256 bytes for a memory BAR of many MiB.
const BIG_CHUNK: usize = 64 * 1024;

/// The bounce buffer for a transfer of `len` bytes: `big`, allocated up to [`BIG_CHUNK`], for a
/// transfer larger than `small`, else (or when the allocation fails) `small`.
fn bounce<'a>(len: usize, small: &'a mut [u8; CHUNK], big: &'a mut KVVec<u8>) -> &'a mut [u8] {
    if len > CHUNK && big.resize(len.min(BIG_CHUNK), 0, GFP_KERNEL).is_ok() {
        big
    } else {
        small
    }
}

#[vtable]
impl DataFileOps for Session {
    fn read(&self, buf: UserPtr, len: usize) -> Result<usize> {
        let mut small = [0u8; CHUNK];
        let mut big = KVVec::new();
        let bounce = bounce(len, &mut small, &mut big);
        let mut done = 0usize;
        while done < len {
            let want = (len - done).min(bounce.len());
            // Encode a piece under the session's mutex; copy it out with the mutex dropped.
            let n = {
                let mut inner = self.inner.lock();
                let Inner::Save(save) = &mut *inner else {
                    // Ended meanwhile: the bytes already copied were delivered.
                    return if done > 0 { Ok(done) } else { Err(ENODEV) };
                };
                let early = save.early();
                let Save {
                    writer,
                    image,
                    pre,
                    post,
                    ..
                } = &mut **save;
                let n = match (&*image, pre.as_deref()) {
                    (None, None) => writer.fill_header(&mut bounce[..want]),
                    (None, Some(p)) => writer
                        .fill_until(&Early(p), &mut bounce[..want], early)
                        .map_err(|_| EIO)?,
                    (Some(image), None) if post.is_none() => writer
                        .fill(&**image, &mut bounce[..want])
                        .map_err(|_| EIO)?,
                    (Some(image), _) => {
                        let full = Full {
                            pre: pre.as_deref(),
                            image,
                            post: post.as_ref(),
                        };
                        writer.fill(&full, &mut bounce[..want]).map_err(|_| EIO)?
                    }
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
        let mut small = [0u8; CHUNK];
        let mut big = KVVec::new();
        let bounce = bounce(len, &mut small, &mut big);
        let mut done = 0usize;
        let mut step = bounce.len();
        while done < len {
            let n = (len - done).min(step);
            // Copy a piece in with no lock held; decode it under the session's mutex.
            let r = UserSlice::new(buf.wrapping_byte_add(done), n)
                .reader()
                .read_slice(&mut bounce[..n]);
            if r.is_err() && n > CHUNK {
                // Take what comes before the fault in small pieces, as the small buffer does.
                step = CHUNK;
                continue;
            }
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
            res.parser.feed(&bounce[..n], &mut sink)?;
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
                let h = u64::try_from(save.initial_remaining()?).map_err(|_| EINVAL)?;
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
            Inner::Save(save)
                if save.image.is_none() && save.initial_remaining().ok() == Some(0) =>
            {
                0
            }
            Inner::Save(_) => vfio::POLL_IN,
            Inner::Resume(_) => vfio::POLL_OUT,
            Inner::Closed => vfio::POLL_ERR,
        }
    }
}
