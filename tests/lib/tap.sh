# shellcheck shell=sh
# Tiny TAP writer for the project's shell suites (host and guest; busybox sh compatible).
#   tap_begin FILE        start a suite writing FILE (and echo to stdout)
#   tap_ok COND_STATUS "description" [diagnostic]   ok when status is 0
#   tap_skip "description" "reason"
#   tap_diag "text"       a diagnostic line ("# text") in the file and on stdout
#   tap_end               write the plan, return non-zero if anything failed
_tap_n=0 _tap_fail=0 _tap_file=
tap_begin() { _tap_file=$1; _tap_n=0; _tap_fail=0; : >"$_tap_file"; _tap_out "TAP version 13"; }
_tap_out() { printf '%s\n' "$*" | tee -a "$_tap_file"; }
tap_ok() {
	_tap_n=$((_tap_n + 1))
	if [ "$1" = 0 ]; then _tap_out "ok $_tap_n - $2"
	else _tap_out "not ok $_tap_n - $2"; _tap_fail=$((_tap_fail + 1))
		[ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/# /' | tee -a "$_tap_file"
	fi
	return 0
}
# tap_check "description" cmd...: runs cmd, ok when it succeeds; its output becomes the diagnostic.
tap_check() {
	_d=$1; shift
	_o=$("$@" 2>&1); _s=$?
	tap_ok "$_s" "$_d" "$_o"
}
tap_diag() { printf '%s\n' "$*" | sed 's/^/# /' | tee -a "$_tap_file"; }
tap_skip() { _tap_n=$((_tap_n + 1)); _tap_out "ok $_tap_n - $1 # SKIP $2"; }
tap_end() { _tap_out "1..$_tap_n"; [ "$_tap_fail" = 0 ]; }

# tap_kselftest PREFIX cmd...: runs a kselftest-format program (kselftest_harness.h); each of its
# results becomes one result of this suite, named "PREFIX: <its name>". A program that exits
# before its plan is complete, or fails without reporting a failure, adds a failing result.
tap_kselftest() {
	_p=$1; shift
	_log=$(mktemp)
	"$@" >"$_log" 2>&1
	_s=$?
	_plan=$(sed -n 's/^1\.\.\([0-9][0-9]*\).*/\1/p' "$_log" | head -n 1)
	_seen=0 _bad=0
	while IFS= read -r _l; do
		case "$_l" in
		"ok "[0-9]*|"not ok "[0-9]*)
			_seen=$((_seen + 1))
			_st=0; case "$_l" in "not ok "*) _st=1; _bad=1 ;; esac
			_d=$(printf '%s' "$_l" | sed -E 's/^(not )?ok [0-9]+ ?-? ?//')
			case "$_d" in
			*"# SKIP"*|*"# skip"*) tap_skip "$_p: ${_d%%#*}" "$(printf '%s' "$_d" | sed -E 's/.*# [Ss][Kk][Ii][Pp] ?//')" ;;
			*) tap_ok "$_st" "$_p: $_d" "$(grep -E "^# .*(${_d##*.}|FAIL|Assert|Expected)" "$_log" | head -n 5)" ;;
			esac ;;
		esac
	done <"$_log"
	if [ -z "$_plan" ] && [ "$_seen" = 0 ] && [ "$_s" = 4 ]; then
		# KSFT_SKIP before any test: the whole program skipped; its last line says why.
		tap_skip "$_p" "$(grep -v '^\s*$' "$_log" | tail -n 1)"
	elif [ -z "$_plan" ] || [ "$_seen" -lt "$_plan" ]; then
		tap_ok 1 "$_p: ran to completion (saw $_seen of ${_plan:-?} results, exit $_s)" "$(tail -n 8 "$_log")"
	elif [ "$_s" != 0 ] && [ "$_s" != 4 ] && [ "$_bad" = 0 ]; then
		tap_ok 1 "$_p: exited $_s without reporting a failure" "$(tail -n 8 "$_log")"
	fi
	sed 's/^/# /' "$_log" >>"$_tap_file.log"
	rm -f "$_log"
}
