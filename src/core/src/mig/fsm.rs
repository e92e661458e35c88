//! The VFIO migration state machine: the kernel's path table, mirrored, and what each arc means
//! for this driver.
//!
//! A VFIO user asks for a target state; the kernel helper `vfio_mig_get_next_state()` breaks the
//! request into single arcs, which the driver executes one at a time. [`next_state`] is an exact
//! mirror of that helper (the same table and the same skipping of states the device does not
//! support), so the path can be tested on the host and compared with the real helper in KUnit.
//! [`arc_actions`] is the driver's own decision for each single arc: which steps the kernel glue
//! performs, as a small set of [`Actions`], with no side effects here.
//!
//! # Device model behind the actions
//!
//! The driver tracks three things for a device: whether new DMA is held (the P2P quiescent
//! states), whether the device is frozen (the STOP states: no DMA, no interrupts, no internal
//! state change), and which data-transfer session is open (saving or resuming). Each state
//! implies one combination, and each arc's actions move from the combination of its source to the
//! combination of its destination:
//!
//! | state          | DMA held | frozen | session                          |
//! |----------------|----------|--------|----------------------------------|
//! | `Running`      | no       | no     | none                             |
//! | `RunningP2p`   | yes      | no     | none                             |
//! | `Stop`         | yes      | yes    | none                             |
//! | `PreCopy`      | no       | no     | saving, header only              |
//! | `PreCopyP2p`   | yes      | no     | saving, header only              |
//! | `StopCopy`     | yes      | yes    | saving, with the device snapshot |
//! | `Resuming`     | yes      | yes    | resuming                         |

use core::fmt;

/// Migration capability flags, as in `VFIO_DEVICE_FEATURE_MIGRATION` (`vfio_device::migration_flags`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Caps(pub u32);

impl Caps {
    /// `VFIO_MIGRATION_STOP_COPY`: the mandatory STOP, STOP_COPY and RESUMING states.
    pub const STOP_COPY: Self = Self(1 << 0);
    /// `VFIO_MIGRATION_P2P`: the RUNNING_P2P state (and PRE_COPY_P2P with [`Caps::PRE_COPY`]).
    pub const P2P: Self = Self(1 << 1);
    /// `VFIO_MIGRATION_PRE_COPY`: the PRE_COPY state (and PRE_COPY_P2P with [`Caps::P2P`]).
    pub const PRE_COPY: Self = Self(1 << 2);

    /// Returns the union of `self` and `other`.
    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Returns `true` if every flag of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

/// A device migration state, with the values of `enum vfio_device_mig_state`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u32)]
pub enum State {
    /// `VFIO_DEVICE_STATE_ERROR`: failed; only a device reset leaves it.
    Error = 0,
    /// `VFIO_DEVICE_STATE_STOP`: the device changes no internal or external state.
    Stop = 1,
    /// `VFIO_DEVICE_STATE_RUNNING`: fully operational.
    Running = 2,
    /// `VFIO_DEVICE_STATE_STOP_COPY`: stopped, and its state can be read out.
    StopCopy = 3,
    /// `VFIO_DEVICE_STATE_RESUMING`: stopped, and loading a new state.
    Resuming = 4,
    /// `VFIO_DEVICE_STATE_RUNNING_P2P`: running, but starts no new (peer-to-peer) DMA.
    RunningP2p = 5,
    /// `VFIO_DEVICE_STATE_PRE_COPY`: running, with a saving session open.
    PreCopy = 6,
    /// `VFIO_DEVICE_STATE_PRE_COPY_P2P`: P2P quiescent, with a saving session open.
    PreCopyP2p = 7,
}

impl State {
    /// All states, in the order of their uAPI values.
    pub const ALL: [State; 8] = [
        State::Error,
        State::Stop,
        State::Running,
        State::StopCopy,
        State::Resuming,
        State::RunningP2p,
        State::PreCopy,
        State::PreCopyP2p,
    ];

    /// Returns the uAPI value of the state.
    pub const fn value(self) -> u32 {
        self as u32
    }

    /// Returns the capability flags a device needs for this state (`state_flags_table`).
    ///
    /// `Error` needs every flag, so it is never a valid current or target state.
    pub const fn required_caps(self) -> Caps {
        match self {
            State::Stop | State::Running | State::StopCopy | State::Resuming => Caps::STOP_COPY,
            State::PreCopy => Caps::STOP_COPY.with(Caps::PRE_COPY),
            State::PreCopyP2p => Caps::STOP_COPY.with(Caps::P2P).with(Caps::PRE_COPY),
            State::RunningP2p => Caps::STOP_COPY.with(Caps::P2P),
            State::Error => Caps(u32::MAX),
        }
    }

    /// Returns `true` if a device with `caps` supports this state.
    pub const fn supported(self, caps: Caps) -> bool {
        caps.contains(self.required_caps())
    }

    /// Returns the state's name as in the uAPI, without the `VFIO_DEVICE_STATE_` prefix.
    pub const fn name(self) -> &'static str {
        match self {
            State::Error => "ERROR",
            State::Stop => "STOP",
            State::Running => "RUNNING",
            State::StopCopy => "STOP_COPY",
            State::Resuming => "RESUMING",
            State::RunningP2p => "RUNNING_P2P",
            State::PreCopy => "PRE_COPY",
            State::PreCopyP2p => "PRE_COPY_P2P",
        }
    }
}

impl TryFrom<u32> for State {
    type Error = FsmError;

    /// Converts a uAPI value; values beyond `PRE_COPY_P2P` are [`FsmError::InvalidTarget`].
    fn try_from(v: u32) -> Result<Self, FsmError> {
        State::ALL
            .iter()
            .copied()
            .find(|s| s.value() == v)
            .ok_or(FsmError::InvalidTarget)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why no next state exists. The kernel helper returns `-EINVAL` for all of them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FsmError {
    /// The current state is `Error` or not supported by the device (the helper `WARN_ON`s).
    InvalidCurrent,
    /// The target state is `Error`, out of range or not supported by the device.
    InvalidTarget,
    /// No path leads from the current state to the target (`STOP_COPY -> PRE_COPY*`).
    Blocked,
}

impl fmt::Display for FsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FsmError::InvalidCurrent => "current migration state is invalid for this device",
            FsmError::InvalidTarget => "requested migration state is invalid for this device",
            FsmError::Blocked => "requested migration state is not reachable",
        })
    }
}

/// `vfio_from_fsm_table`: `TABLE[cur][new]` is the next step from `cur` towards `new`, assuming
/// every optional state is supported. Rows and columns are in uAPI order (ERROR, STOP, RUNNING,
/// STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P); entries transcribed from
/// `drivers/vfio/vfio_main.c`.
const TABLE: [[State; 8]; 8] = {
    use State::{
        Error as E, PreCopy as PC, PreCopyP2p as PCP, Resuming as RS, Running as RN,
        RunningP2p as RP, Stop as ST, StopCopy as SC,
    };
    [
        // from ERROR
        [E, E, E, E, E, E, E, E],
        // from STOP      to: ERROR STOP RUNNING STOP_COPY RESUMING RUNNING_P2P PRE_COPY PRE_COPY_P2P
        [E, ST, RP, SC, RS, RP, RP, RP],
        // from RUNNING
        [E, RP, RN, RP, RP, RP, PC, RP],
        // from STOP_COPY
        [E, ST, ST, SC, ST, ST, E, E],
        // from RESUMING
        [E, ST, ST, ST, RS, ST, ST, ST],
        // from RUNNING_P2P
        [E, ST, RN, ST, ST, RP, RN, PCP],
        // from PRE_COPY
        [E, RN, RN, PCP, RN, RN, PC, PCP],
        // from PRE_COPY_P2P
        [E, RP, RP, SC, RP, RP, PC, PCP],
    ]
};

/// Looks up [`TABLE`] without indexing that could panic.
fn table(cur: State, new: State) -> State {
    let row = usize::try_from(cur.value()).ok().and_then(|i| TABLE.get(i));
    let col = usize::try_from(new.value()).ok();
    match (row, col) {
        (Some(row), Some(col)) => row.get(col).copied().unwrap_or(State::Error),
        _ => State::Error,
    }
}

/// Returns the next single arc's destination on the way from `cur` to `new`, exactly as the
/// kernel's `vfio_mig_get_next_state()` does for a device with migration flags `caps`.
///
/// When `cur == new` the result is `cur`: the caller's loop stops there and executes no arc.
///
/// # Errors
///
/// - [`FsmError::InvalidCurrent`] if `cur` is `Error` or needs a capability `caps` lacks;
/// - [`FsmError::InvalidTarget`] if `new` is `Error` or needs a capability `caps` lacks;
/// - [`FsmError::Blocked`] if the table leads to `Error` (`STOP_COPY` to a `PRE_COPY` state).
///
/// # Examples
///
/// The loop a driver's `migration_set_state` runs, here from RUNNING to STOP_COPY:
///
/// ```
/// use persona_core::mig::fsm::{arc_actions, next_state, Actions, Caps, State};
///
/// let caps = Caps::STOP_COPY.with(Caps::P2P).with(Caps::PRE_COPY);
/// let (mut cur, target) = (State::Running, State::StopCopy);
/// let mut arcs = Vec::new();
/// while cur != target {
///     let next = next_state(cur, target, caps)?;
///     let actions = arc_actions(cur, next).expect("next_state only yields real arcs");
///     // The glue executes `actions.iter()` here; on failure the device goes to ERROR.
///     arcs.push((next, actions));
///     cur = next;
/// }
/// assert_eq!(
///     arcs,
///     [
///         (State::RunningP2p, Actions::HOLD_DMA),
///         (State::Stop, Actions::FREEZE),
///         (State::StopCopy, Actions::OPEN_SAVE.with(Actions::SNAPSHOT)),
///     ]
/// );
/// # Ok::<(), persona_core::mig::fsm::FsmError>(())
/// ```
pub fn next_state(cur: State, new: State, caps: Caps) -> Result<State, FsmError> {
    if !cur.supported(caps) {
        return Err(FsmError::InvalidCurrent);
    }
    if !new.supported(caps) {
        return Err(FsmError::InvalidTarget);
    }
    let mut next = table(cur, new);
    // Skip states the device does not support: the driver sees one arc from `cur` to the next
    // supported state. The C loop is bounded by the table's structure; bound it explicitly too.
    for _ in 0..State::ALL.len() {
        if next == State::Error || next.supported(caps) {
            break;
        }
        next = table(next, new);
    }
    if next == State::Error || !next.supported(caps) {
        return Err(FsmError::Blocked);
    }
    Ok(next)
}

/// One step of work the kernel glue performs on a single arc.
///
/// The glue executes the steps of an arc in the order of the constants below (the order of
/// [`Actions::ORDER`]): stop before snapshot, load before closing, thaw before releasing DMA. If a
/// step fails, the arc fails and the glue moves the device to `ERROR`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
pub struct Actions(pub u16);

impl Actions {
    /// No action: the empty set.
    pub const NONE: Self = Self(0);
    /// Hold DMA: start no new DMA and wait (bounded) for DMA in flight to complete.
    pub const HOLD_DMA: Self = Self(1 << 0);
    /// Freeze the device: wait (bounded) for work in flight, then change no internal or external
    /// state and raise no interrupt until thawed.
    pub const FREEZE: Self = Self(1 << 1);
    /// Open a saving session for PRE_COPY: its initial bytes are the stream header only; the
    /// device state follows after [`Actions::SNAPSHOT`]. Returns a new data fd.
    pub const OPEN_PRECOPY: Self = Self(1 << 2);
    /// Open a saving session in STOP_COPY. Returns a new data fd.
    pub const OPEN_SAVE: Self = Self(1 << 3);
    /// Capture the frozen device's state into the open saving session's records, after which the
    /// data fd reads through to the end record and EOF.
    pub const SNAPSHOT: Self = Self(1 << 4);
    /// Open a resuming session: reset the stream decoder and the staged state. Returns a new
    /// data fd.
    pub const OPEN_RESUME: Self = Self(1 << 5);
    /// Apply the staged state to the device. Fails unless the decoder reached its verified end.
    pub const LOAD: Self = Self(1 << 6);
    /// Terminate the saving session: later reads or writes on its fd fail.
    pub const CLOSE_SAVE: Self = Self(1 << 7);
    /// Terminate the resuming session: later reads or writes on its fd fail.
    pub const CLOSE_RESUME: Self = Self(1 << 8);
    /// Thaw the device: it may change state and raise interrupts again (DMA may still be held).
    pub const THAW: Self = Self(1 << 9);
    /// Release DMA: allow DMA again, including starts held while DMA was held.
    pub const RELEASE_DMA: Self = Self(1 << 10);

    /// Every action, in execution order.
    pub const ORDER: [Actions; 11] = [
        Actions::HOLD_DMA,
        Actions::FREEZE,
        Actions::OPEN_PRECOPY,
        Actions::OPEN_SAVE,
        Actions::SNAPSHOT,
        Actions::OPEN_RESUME,
        Actions::LOAD,
        Actions::CLOSE_SAVE,
        Actions::CLOSE_RESUME,
        Actions::THAW,
        Actions::RELEASE_DMA,
    ];

    /// Returns the union of `self` and `other`.
    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Returns `true` if every action of `other` is in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Returns `true` if the set is empty (the arc changes nothing the driver tracks).
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Returns `true` if the arc returns a new data fd to the user.
    pub const fn returns_fd(self) -> bool {
        self.0 & (Self::OPEN_PRECOPY.0 | Self::OPEN_SAVE.0 | Self::OPEN_RESUME.0) != 0
    }

    /// Returns the actions of the set one at a time, in execution order.
    pub fn iter(self) -> impl Iterator<Item = Actions> {
        Self::ORDER.into_iter().filter(move |a| self.contains(*a))
    }

    /// Returns the name of a single action (`"?"` for a set of several or none).
    pub const fn name(self) -> &'static str {
        match self {
            Actions::HOLD_DMA => "hold-dma",
            Actions::FREEZE => "freeze",
            Actions::OPEN_PRECOPY => "open-precopy",
            Actions::OPEN_SAVE => "open-save",
            Actions::SNAPSHOT => "snapshot",
            Actions::OPEN_RESUME => "open-resume",
            Actions::LOAD => "load",
            Actions::CLOSE_SAVE => "close-save",
            Actions::CLOSE_RESUME => "close-resume",
            Actions::THAW => "thaw",
            Actions::RELEASE_DMA => "release-dma",
            _ => "?",
        }
    }
}

/// Returns what the driver does on the single arc `cur -> next`, or `None` if the arc is not one
/// [`next_state`] ever produces (including `cur == next` and any arc touching `Error`).
///
/// Arcs that exist only when an optional state is missing (`RUNNING -> STOP` without P2P, say)
/// combine the actions of the skipped arcs.
pub fn arc_actions(cur: State, next: State) -> Option<Actions> {
    use State::*;
    let a = match (cur, next) {
        // Into and out of the P2P quiescent states.
        (Running, RunningP2p) | (PreCopy, PreCopyP2p) => Actions::HOLD_DMA,
        (RunningP2p, Running) | (PreCopyP2p, PreCopy) => Actions::RELEASE_DMA,
        (RunningP2p, Stop) => Actions::FREEZE,
        (Stop, RunningP2p) => Actions::THAW,
        // Without P2P the same changes happen in one arc.
        (Running, Stop) => Actions::HOLD_DMA.with(Actions::FREEZE),
        (Stop, Running) => Actions::THAW.with(Actions::RELEASE_DMA),
        // The saving group.
        (Running, PreCopy) | (RunningP2p, PreCopyP2p) => Actions::OPEN_PRECOPY,
        (Stop, StopCopy) => Actions::OPEN_SAVE.with(Actions::SNAPSHOT),
        (PreCopyP2p, StopCopy) => Actions::FREEZE.with(Actions::SNAPSHOT),
        (PreCopy, StopCopy) => Actions::HOLD_DMA
            .with(Actions::FREEZE)
            .with(Actions::SNAPSHOT),
        (PreCopy, Running) | (PreCopyP2p, RunningP2p) | (StopCopy, Stop) => Actions::CLOSE_SAVE,
        // Resuming.
        (Stop, Resuming) => Actions::OPEN_RESUME,
        (Resuming, Stop) => Actions::LOAD.with(Actions::CLOSE_RESUME),
        _ => return None,
    };
    Some(a)
}
