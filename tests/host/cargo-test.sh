#!/usr/bin/env bash
# Host suite: cargo test over the workspace (the core's unit tests, proptests and the tool's tests),
# one TAP line per test (tests/lib/cargo-tap). Proptests start from a fixed seed
# (PROPTEST_RNG_SEED overrides it), as the fuzz smoke run does: a make check is repeatable, and a
# plain `cargo test` still explores new cases. A cargo that fails without a failing test (a crash,
# a build error) is a failing line too.
source "$(dirname "$0")/../../scripts/lib.sh"
set +e
cd "$PVP_TOP"
PROPTEST_RNG_SEED=${PROPTEST_RNG_SEED:-20261202} cargo test --workspace --color never >"${1%.tap}.out" 2>&1
CARGO_STATUS=$? tests/lib/cargo-tap <"${1%.tap}.out" >"$1"
