#!/usr/bin/env bash
# Host suite: the test runner itself (scripts/check, scripts/schedule, tests/lib/tap-count). Every
# result the manifest expects exists or fails naming its suite: a suite that exits before its
# plan, a TAP file deleted, a guest whose init fails (a real boot), a `not ok # TODO` and a suite
# the manifest forgot each make the run fail, with a line that names the suite and why; a run of
# complete suites passes. Each case runs scripts/check (what make check runs) on a manifest of its
# own, with the fixture suites of tests/host/check-runner/, into build/test-results-runner/.
source "$(dirname "$0")/../../scripts/lib.sh"
set +e
. "$PVP_TOP/tests/lib/tap.sh"
tap_begin "$1"
FX=$PVP_TOP/tests/host/check-runner
OUT=$PVP_BUILD/test-results-runner
rm -rf "$OUT"; mkdir -p "$OUT"
unset PVP_ONLY PVP_FLAVOURS PVP_MANIFEST PVP_TIER PVP_GUEST_SUITE_DIR PVP_HOST_SUITE_DIR

# run_case NAME MANIFEST-LINES [ENV=VALUE...]: scripts/check on those manifest lines, with the
# fixture host suites they name linked into a folder of their own (and the guest suites into
# another); sets rc and out (everything it printed).
run_case() {
	local name=$1 lines=$2 d=$OUT/$1 s
	shift 2
	mkdir -p "$d/host" "$d/guest"
	printf '%s\n' "$lines" >"$d/manifest"
	while read -r s kind _; do
		[ -n "$s" ] || continue
		if [ "$kind" = host ]; then ln -sf "$FX/$s.sh" "$d/host/$s.sh"; else ln -sf "$PVP_TOP/tests/guest/suites/$s.sh" "$d/guest/$s.sh"; fi
	done <<<"$lines"
	out=$(env PVP_DEPS_READY=1 PVP_MANIFEST="$d/manifest" PVP_RESULTS="$d/results" PVP_HOST_SUITE_DIR="$d/host" \
		PVP_GUEST_SUITE_DIR="$d/guest" "$@" "$PVP_TOP/scripts/check" 2>&1)
	rc=$?
}
last() { printf '%s\n' "$out" | tail -n 1; }

run_case complete "complete host host=5 - - -"
tap_ok $([ "$rc" = 0 ] && last | grep -qx '4 passed, 0 failed, 0 skipped'; echo $?) \
	"a run of complete suites passes (2 results + the manifest's 2)" "rc=$rc $(last)"

run_case exits-early "complete host host=5 - - -
exits-early host host=5 - - -"
tap_ok $([ "$rc" != 0 ] && printf '%s\n' "$out" | grep -q 'host-exits-early.tap: ended before its plan (exited 3)' &&
	grep -q '^not ok 2 - host suite exits-early: ended before its plan' "$OUT/exits-early/results/host-exits-early.tap" &&
	last | grep -qx '5 passed, 1 failed, 0 skipped'; echo $?) \
	"a suite that exits before its plan fails the run, named, with its exit status" "rc=$rc $(printf '%s\n' "$out" | tail -n 8)"

run_case deletes-tap "deletes-tap host host=5 - - -"
tap_ok $([ "$rc" != 0 ] && printf '%s\n' "$out" | grep -q 'host-deletes-tap.tap: no results (exited 0 without writing it)' &&
	last | grep -qx '2 passed, 1 failed, 0 skipped'; echo $?) \
	"a deleted TAP file fails the run, named" "rc=$rc $(printf '%s\n' "$out" | tail -n 8)"

run_case known-failure "known-failure host host=5 - - -"
tap_ok $([ "$rc" != 0 ] && last | grep -qx '3 passed, 1 failed, 0 skipped'; echo $?) \
	"not ok # TODO is a failure, not a pass" "rc=$rc $(printf '%s\n' "$out" | tail -n 8)"

# The manifest forgets a suite that exists: the completeness line fails, naming it.
run_case forgotten "complete host host=5 - - -"
ln -sf "$FX/exits-early.sh" "$OUT/forgotten/host/exits-early.sh"
out=$(env PVP_DEPS_READY=1 PVP_MANIFEST="$OUT/forgotten/manifest" PVP_RESULTS="$OUT/forgotten/results" PVP_HOST_SUITE_DIR="$OUT/forgotten/host" \
	PVP_GUEST_SUITE_DIR="$OUT/forgotten/guest" "$PVP_TOP/scripts/check" 2>&1); rc=$?
tap_ok $([ "$rc" != 0 ] && grep -q '^# no line: host suite exits-early' "$OUT/forgotten/results/run-manifest.tap"; echo $?) \
	"a suite without a line in the manifest fails the run, named" "rc=$rc $(cat "$OUT/forgotten/results/run-manifest.tap" 2>&1)"

# A real guest boot whose init cannot load the module: no suite runs, so no TAP file is written;
# the run must fail naming the suite and the init's own message.
run_case init-fails "module guest default/x=10 - - -" PVP_GUEST_MODULE=/repo/build/no-such-module.ko
tap_ok $([ "$rc" != 0 ] && printf '%s\n' "$out" | grep -q "guest-module.tap: no results (the guest's init failed (pvp-init: insmod /repo/build/no-such-module.ko failed))" &&
	printf '%s\n' "$out" | grep -q "guest-kernel-log-x.tap: no results"; echo $?) \
	"a guest whose init fails fails the run, naming each suite of the boot and the init's message" "rc=$rc $(printf '%s\n' "$out" | tail -n 12)"

# A job whose prerequisite failed does not run; its results fail, naming the job that failed.
run_case blocked "exits-early host host=5 - - -
complete host host=5 - exits-early -"
tap_ok $([ "$rc" != 0 ] && printf '%s\n' "$out" | grep -q 'host-complete.tap: no results (not run: host-exits-early failed)'; echo $?) \
	"a suite whose prerequisite failed is a failing line naming the prerequisite" "rc=$rc $(printf '%s\n' "$out" | tail -n 8)"
tap_end
