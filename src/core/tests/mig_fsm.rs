//! Tests of the migration state machine mirror and the per-arc actions.

// Tests may panic: that is how they fail.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use persona_core::mig::fsm::{arc_actions, next_state, Actions, Caps, FsmError, State};

const SC: Caps = Caps::STOP_COPY;
const P2P: Caps = Caps::P2P;
const PRE: Caps = Caps::PRE_COPY;

/// Parses one cell of an expected grid.
fn cell(s: &str) -> Result<State, FsmError> {
    Ok(match s {
        "ST" => State::Stop,
        "RN" => State::Running,
        "SC" => State::StopCopy,
        "RS" => State::Resuming,
        "RP" => State::RunningP2p,
        "PC" => State::PreCopy,
        "PP" => State::PreCopyP2p,
        "!" => return Err(FsmError::InvalidCurrent),
        "-" => return Err(FsmError::InvalidTarget),
        "x" => return Err(FsmError::Blocked),
        _ => panic!("bad cell {s}"),
    })
}

/// Checks `next_state` against a hand-written grid: one row per current state and one column per
/// target state, both in uAPI order (ERROR STOP RUNNING STOP_COPY RESUMING RUNNING_P2P PRE_COPY
/// PRE_COPY_P2P).
fn check_grid(caps: Caps, grid: &str) {
    let rows: Vec<&str> = grid
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(rows.len(), 8);
    for (cur, row) in State::ALL.iter().zip(rows) {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells.len(), 8, "row {row}");
        for (new, c) in State::ALL.iter().zip(cells) {
            assert_eq!(
                next_state(*cur, *new, caps),
                cell(c),
                "caps {caps:?}: {cur} -> {new}"
            );
        }
    }
}

#[test]
fn grid_all_features() {
    check_grid(
        SC.with(P2P).with(PRE),
        "
        !  !  !  !  !  !  !  !
        -  ST RP SC RS RP RP RP
        -  RP RN RP RP RP PC RP
        -  ST ST SC ST ST x  x
        -  ST ST ST RS ST ST ST
        -  ST RN ST ST RP RN PP
        -  RN RN PP RN RN PC PP
        -  RP RP SC RP RP PC PP
        ",
    );
}

#[test]
fn grid_stop_copy_only() {
    check_grid(
        SC,
        "
        !  !  !  !  !  !  !  !
        -  ST RN SC RS -  -  -
        -  ST RN ST ST -  -  -
        -  ST ST SC ST -  -  -
        -  ST ST ST RS -  -  -
        !  !  !  !  !  !  !  !
        !  !  !  !  !  !  !  !
        !  !  !  !  !  !  !  !
        ",
    );
}

#[test]
fn grid_p2p() {
    check_grid(
        SC.with(P2P),
        "
        !  !  !  !  !  !  !  !
        -  ST RP SC RS RP -  -
        -  RP RN RP RP RP -  -
        -  ST ST SC ST ST -  -
        -  ST ST ST RS ST -  -
        -  ST RN ST ST RP -  -
        !  !  !  !  !  !  !  !
        !  !  !  !  !  !  !  !
        ",
    );
}

#[test]
fn grid_precopy() {
    check_grid(
        SC.with(PRE),
        "
        !  !  !  !  !  !  !  !
        -  ST RN SC RS -  RN -
        -  ST RN ST ST -  PC -
        -  ST ST SC ST -  x  -
        -  ST ST ST RS -  ST -
        !  !  !  !  !  !  !  !
        -  RN RN SC RN -  PC -
        !  !  !  !  !  !  !  !
        ",
    );
}

#[test]
fn no_stop_copy_means_nothing_is_valid() {
    for caps in [Caps(0), P2P, PRE, P2P.with(PRE)] {
        for cur in State::ALL {
            for new in State::ALL {
                assert_eq!(next_state(cur, new, caps), Err(FsmError::InvalidCurrent));
            }
        }
    }
}

#[test]
fn unknown_flag_bits_do_not_matter_except_all_ones() {
    // The kernel compares masked flags, so bits it does not know change nothing, unless every bit
    // of the 32 is set: then even ERROR's "all flags" requirement is met, as in the C code.
    for base in [SC, SC.with(P2P), SC.with(PRE), SC.with(P2P).with(PRE)] {
        let noisy = base.with(Caps(0xfff0_0000));
        for cur in State::ALL {
            for new in State::ALL {
                assert_eq!(next_state(cur, new, base), next_state(cur, new, noisy));
            }
        }
    }
    let all = Caps(u32::MAX);
    assert_eq!(
        next_state(State::Error, State::Error, all),
        Err(FsmError::Blocked)
    );
}

#[test]
fn state_values_round_trip() {
    for s in State::ALL {
        assert_eq!(State::try_from(s.value()), Ok(s));
    }
    assert_eq!(State::try_from(8), Err(FsmError::InvalidTarget));
    assert_eq!(State::try_from(u32::MAX), Err(FsmError::InvalidTarget));
}

/// The legal single arcs and what the driver does on each (hand-written from the uAPI text).
fn expected_arcs() -> Vec<(State, State, Actions)> {
    use State::*;
    let a = |list: &[Actions]| list.iter().fold(Actions::NONE, |acc, x| acc.with(*x));
    vec![
        (Running, RunningP2p, a(&[Actions::HOLD_DMA])),
        (RunningP2p, Running, a(&[Actions::RELEASE_DMA])),
        (RunningP2p, Stop, a(&[Actions::FREEZE])),
        (Stop, RunningP2p, a(&[Actions::THAW])),
        (Running, Stop, a(&[Actions::HOLD_DMA, Actions::FREEZE])),
        (Stop, Running, a(&[Actions::THAW, Actions::RELEASE_DMA])),
        (PreCopy, PreCopyP2p, a(&[Actions::HOLD_DMA])),
        (PreCopyP2p, PreCopy, a(&[Actions::RELEASE_DMA])),
        (Running, PreCopy, a(&[Actions::OPEN_PRECOPY])),
        (RunningP2p, PreCopyP2p, a(&[Actions::OPEN_PRECOPY])),
        (Stop, StopCopy, a(&[Actions::OPEN_SAVE, Actions::SNAPSHOT])),
        (
            PreCopyP2p,
            StopCopy,
            a(&[Actions::FREEZE, Actions::SNAPSHOT]),
        ),
        (
            PreCopy,
            StopCopy,
            a(&[Actions::HOLD_DMA, Actions::FREEZE, Actions::SNAPSHOT]),
        ),
        (PreCopy, Running, a(&[Actions::CLOSE_SAVE])),
        (PreCopyP2p, RunningP2p, a(&[Actions::CLOSE_SAVE])),
        (StopCopy, Stop, a(&[Actions::CLOSE_SAVE])),
        (Stop, Resuming, a(&[Actions::OPEN_RESUME])),
        (Resuming, Stop, a(&[Actions::LOAD, Actions::CLOSE_RESUME])),
    ]
}

#[test]
fn arc_actions_match_table_exactly() {
    let arcs = expected_arcs();
    for cur in State::ALL {
        for next in State::ALL {
            let want = arcs
                .iter()
                .find(|(c, n, _)| *c == cur && *n == next)
                .map(|(_, _, a)| *a);
            assert_eq!(arc_actions(cur, next), want, "{cur} -> {next}");
        }
    }
}

/// Every arc `next_state` produces, over all capability sets, and no other.
#[test]
fn produced_arcs_are_exactly_the_legal_ones() {
    let mut produced = std::collections::HashSet::new();
    for caps in [SC, SC.with(P2P), SC.with(PRE), SC.with(P2P).with(PRE)] {
        for cur in State::ALL {
            for new in State::ALL {
                if let Ok(next) = next_state(cur, new, caps) {
                    if next != cur {
                        produced.insert((cur, next));
                    }
                }
            }
        }
    }
    let legal: std::collections::HashSet<_> =
        expected_arcs().iter().map(|(c, n, _)| (*c, *n)).collect();
    assert_eq!(produced, legal);
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Session {
    None,
    Saving { snapshot: bool },
    Resuming,
}

/// The driver-tracked condition each state implies (the table in the `fsm` module docs).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Model {
    dma_held: bool,
    frozen: bool,
    session: Session,
}

fn model(s: State) -> Model {
    let (dma_held, frozen, session) = match s {
        State::Running => (false, false, Session::None),
        State::RunningP2p => (true, false, Session::None),
        State::Stop => (true, true, Session::None),
        State::PreCopy => (false, false, Session::Saving { snapshot: false }),
        State::PreCopyP2p => (true, false, Session::Saving { snapshot: false }),
        State::StopCopy => (true, true, Session::Saving { snapshot: true }),
        State::Resuming => (true, true, Session::Resuming),
        State::Error => panic!("no model for ERROR"),
    };
    Model {
        dma_held,
        frozen,
        session,
    }
}

/// Applies one action, checking its precondition.
fn apply(m: Model, a: Actions) -> Model {
    let mut m = m;
    match a {
        Actions::HOLD_DMA => {
            assert!(!m.dma_held);
            m.dma_held = true;
        }
        Actions::FREEZE => {
            assert!(m.dma_held && !m.frozen, "freeze needs DMA held first");
            m.frozen = true;
        }
        Actions::OPEN_PRECOPY | Actions::OPEN_SAVE => {
            assert_eq!(m.session, Session::None);
            m.session = Session::Saving { snapshot: false };
        }
        Actions::SNAPSHOT => {
            assert!(m.frozen, "snapshot needs a frozen device");
            assert_eq!(m.session, Session::Saving { snapshot: false });
            m.session = Session::Saving { snapshot: true };
        }
        Actions::OPEN_RESUME => {
            assert!(m.frozen);
            assert_eq!(m.session, Session::None);
            m.session = Session::Resuming;
        }
        Actions::LOAD => {
            assert!(m.frozen);
            assert_eq!(m.session, Session::Resuming);
        }
        Actions::CLOSE_SAVE => {
            assert!(matches!(m.session, Session::Saving { .. }));
            m.session = Session::None;
        }
        Actions::CLOSE_RESUME => {
            assert_eq!(m.session, Session::Resuming);
            m.session = Session::None;
        }
        Actions::THAW => {
            assert!(m.frozen);
            m.frozen = false;
        }
        Actions::RELEASE_DMA => {
            assert!(m.dma_held && !m.frozen, "release DMA only after thawing");
            m.dma_held = false;
        }
        other => panic!("not a single action: {other:?}"),
    }
    m
}

/// Walking every request step by step, with every capability set, executing each arc's actions
/// in order on the model always lands on the model of the arc's destination.
#[test]
fn actions_move_between_state_models() {
    for caps in [SC, SC.with(P2P), SC.with(PRE), SC.with(P2P).with(PRE)] {
        for start in State::ALL.into_iter().filter(|s| s.supported(caps)) {
            for target in State::ALL {
                let mut cur = start;
                let mut steps = 0;
                while cur != target {
                    let Ok(next) = next_state(cur, target, caps) else {
                        break;
                    };
                    let actions = arc_actions(cur, next).expect("arc has actions");
                    assert!(!actions.is_empty());
                    let m = actions.iter().fold(model(cur), apply);
                    assert_eq!(m, model(next), "{caps:?}: {cur} -> {next} ({actions:?})");
                    // A new fd is returned exactly when a session starts.
                    assert_eq!(
                        actions.returns_fd(),
                        model(cur).session == Session::None && model(next).session != Session::None
                    );
                    cur = next;
                    steps += 1;
                    assert!(steps <= 6, "path too long");
                }
            }
        }
    }
}

#[test]
fn action_names_and_order() {
    for a in Actions::ORDER {
        assert_ne!(a.name(), "?");
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![a]);
    }
    assert_eq!(Actions::NONE.name(), "?");
    let all = Actions::ORDER.iter().fold(Actions::NONE, |x, a| x.with(*a));
    assert_eq!(all.iter().collect::<Vec<_>>(), Actions::ORDER.to_vec());
}
