// SPDX-License-Identifier: GPL-2.0

//! Config-space region accesses, served by the core's overlay for the persona in force.
//!
//! A user access is split the way vfio-pci-core splits it (naturally aligned pieces of 4, 2 or 1
//! bytes); the overlay serves each piece. Passthrough bytes still go through vfio-pci-core's own
//! config virtualisation (BARs, MSI/MSI-X, PM, command register), at their possibly relocated
//! physical offset; emulated registers are served from the per-device state; hidden bytes never
//! reach the device.
//!
//! The common case takes one call: a run of whole pieces that the persona passes through
//! unchanged (`OverlayMap::passthrough`), at consecutive physical offsets aligned like the
//! virtual ones, goes to vfio-pci-core as one access straight between the user's buffer and the
//! device; vfio-pci-core splits it into the same pieces. Only pieces the overlay changes take
//! the per-piece path below.
//!
//! An access passed through whole, and a read of one piece whose bytes pass through in place
//! or are emulated (or are emulated and hidden alone), does not even take the device's `state`
//! lock: the pass words and the emulated bytes' values (`PersonaDevice::fast`) say so under a
//! seqcount, which is odd while they change (a persona selected, an open, a reset and its
//! re-check, a config write that changed an emulated byte) and while a deferred reset is
//! pending or running; then, and for every other access, the locked path below decides.
//! vfio-pci-core serialises its own config state.
//!
//! vfio-pci-core only takes user buffers, so on the per-piece path the user's buffer doubles as
//! the bounce buffer: a passthrough read lands in it before the piece's final value is written
//! over it, and a passthrough write forwards the user's own bytes (the overlay tells which, see
//! `ConfigAccess::write_from`).

use crate::{
    device::{Fast, PersonaDevice},
    persona_core::overlay::{chunk, ConfigAccess, OverlayError},
    vfio::{self, CoreDevice, Device, Io, RegionIo},
};
use kernel::prelude::*;

/// vfio-pci-core's config path for one piece of a user access.
struct CoreConfig<'a> {
    core: &'a CoreDevice<Io>,
    io: &'a RegionIo,
    /// Where the piece starts in the user's buffer.
    at: usize,
}

impl ConfigAccess for CoreConfig<'_> {
    type Error = Error;

    fn read(&mut self, offset: u16, size: u8) -> Result<u32> {
        let n = usize::from(size);
        let user = self.io.user().wrapping_byte_add(self.at);
        if self.core.config_rw_user(user, n, offset, false)? != n {
            return Err(EIO);
        }
        let mut b = [0u8; 4];
        vfio::copy_from_user_at(self.io, self.at, b.get_mut(..n).ok_or(EINVAL)?)?;
        Ok(u32::from_le_bytes(b))
    }

    fn write(&mut self, _offset: u16, _size: u8, _value: u32) -> Result {
        // The overlay forwards only the user's own bytes, through `write_from`.
        Err(EINVAL)
    }

    fn write_from(&mut self, offset: u16, size: u8, _value: u32, at: u8) -> Result {
        let n = usize::from(size);
        let user = self
            .io
            .user()
            .wrapping_byte_add(self.at.saturating_add(usize::from(at)));
        if self.core.config_rw_user(user, n, offset, true)? != n {
            return Err(EIO);
        }
        Ok(())
    }
}

fn overlay_error(e: OverlayError<Error>) -> Error {
    match e {
        OverlayError::Access(_) => EINVAL,
        OverlayError::Device(e) => e,
    }
}

/// A read (`write` false) or write of the config region.
fn access(dev: &Device<PersonaDevice, Io>, io: &mut RegionIo, write: bool) -> Result<usize> {
    // The common cases without `state` (see the module): every piece passed straight through;
    // a read of one piece beside emulated bytes (capability IDs and next pointers), one device
    // read as vfio-pci makes it, then the emulated bytes over it; a read of emulated and hidden
    // bytes alone (BARs), no device access.
    let len = io.len();
    let off = usize::try_from(io.offset()).map_err(|_| EINVAL)?;
    match dev.data().fast(off, len, write) {
        Some(Fast::Span(phys)) => {
            if dev.core().config_rw_user(io.user(), len, phys, write)? != len {
                return Err(EIO);
            }
            io.advance(len);
            return Ok(len);
        }
        Some(Fast::Piece(phys, emu, values)) => {
            if dev.core().config_rw_user(io.user(), len, phys, false)? != len {
                return Err(EIO);
            }
            // Each run of emulated bytes in one user copy (an ID and a next pointer: one).
            let mut k = 0usize;
            while k < len {
                if emu & (1 << k) == 0 {
                    k += 1;
                    continue;
                }
                let mut e = k + 1;
                while e < len && emu & (1 << e) != 0 {
                    e += 1;
                }
                let at = off % 4;
                let v = values.get(at + k..at + e).ok_or(EINVAL)?;
                vfio::copy_to_user_at(io, k, v)?;
                k = e;
            }
            io.advance(len);
            return Ok(len);
        }
        Some(Fast::Value(values)) => {
            let at = off % 4;
            vfio::copy_to_user_at(io, 0, values.get(at..at + len).ok_or(EINVAL)?)?;
            io.advance(len);
            return Ok(len);
        }
        None => {}
    }
    let mut guard = dev.data().lock_state(dev.core());
    let state = &mut *guard;
    if state.stale {
        // The device no longer matches the persona (after a reset): nothing until close.
        return Err(EIO);
    }
    let Some(active) = &state.persona else {
        drop(guard);
        return if write {
            dev.core().write(io)
        } else {
            dev.core().read(io)
        };
    };
    if off
        .checked_add(len)
        .is_none_or(|end| end > state.dump.len())
    {
        return Err(EINVAL);
    }
    let mut done = 0usize;
    while done < len {
        // The run of whole pieces from `done` passed through unchanged, as one access.
        let mut run = 0usize;
        let mut start = None;
        while done + run < len {
            let pos = off + done + run;
            let n = chunk(pos, len - done - run);
            let (Ok(p), Ok(n8)) = (u16::try_from(pos), u8::try_from(n)) else {
                break;
            };
            let Some(phys) = active.map.passthrough(p, n8, write) else {
                break;
            };
            let phys = usize::from(phys);
            match start {
                // Aligned like the virtual offset, so vfio-pci-core splits the run alike.
                None if phys % 4 == pos % 4 => start = Some(phys),
                Some(s) if s + run == phys => {}
                _ => break,
            }
            run += n;
        }
        if let Some(phys) = start {
            let user = io.user().wrapping_byte_add(done);
            let phys = u16::try_from(phys).map_err(|_| EINVAL)?;
            if dev.core().config_rw_user(user, run, phys, write)? != run {
                return Err(EIO);
            }
            done += run;
            continue;
        }
        let pos = off + done;
        let n = chunk(pos, len - done);
        let pos16 = u16::try_from(pos).map_err(|_| EINVAL)?;
        let n8 = u8::try_from(n).map_err(|_| EINVAL)?;
        let mut acc = CoreConfig {
            core: dev.core(),
            io,
            at: done,
        };
        let mut b = [0u8; 4];
        if write {
            // The piece is fetched twice (review S6): here for the overlay's decision and the
            // emulated bytes, and again by vfio-pci-core for the bytes the overlay forwards. A
            // user changing its buffer in between only changes what it writes to bytes the
            // persona lets it write; vfio-pci-core applies its own checks to what it reads, and
            // emulated and hidden bytes come from this copy alone.
            vfio::copy_from_user_at(io, done, &mut b[..n])?;
            let r = active
                .map
                .write(&mut state.regs, &mut acc, pos16, n8, u32::from_le_bytes(b));
            // Whether or not a device write failed, its emulated bytes may have changed.
            dev.data().publish_emu(state, pos / 4);
            r.map_err(overlay_error)?;
        } else {
            let v = active
                .map
                .read(&state.regs, &mut acc, pos16, n8)
                .map_err(overlay_error)?;
            vfio::copy_to_user_at(io, done, &v.to_le_bytes()[..n])?;
        }
        done += n;
    }
    io.advance(len);
    Ok(len)
}

/// A read of the config region.
pub(crate) fn read(dev: &Device<PersonaDevice, Io>, io: &mut RegionIo) -> Result<usize> {
    access(dev, io, false)
}

/// A write to the config region.
pub(crate) fn write(dev: &Device<PersonaDevice, Io>, io: &mut RegionIo) -> Result<usize> {
    access(dev, io, true)
}
