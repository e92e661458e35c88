# shellcheck shell=sh
# The kernel-log check of the guest suites, in one place (busybox sh compatible).
#   klog_reports          reads a kernel log on stdin, prints every line that is a report
#   klog_leak_scan        on a kernel with kmemleak: scans now and prints the suspected leaks
#   klog_leak_forget      on a kernel with kmemleak: scans and forgets what is suspected so far
# A report is anything a kernel bug or a sanitizer prints: WARNING, BUG, oops, GPF, KASAN,
# UBSAN, a kCFI failure (permissive kCFI warns instead of dying), lockdep, RCU lockdep, and
# kmemleak's own line. tests/guest/run-suites proves with tests/fixtures/klog that a deliberate
# report of each kind the kernel can make is caught.
KLOG_PATTERN='WARNING:|BUG:|kernel BUG|Oops|general protection fault|KASAN:|UBSAN:|CFI failure|possible (circular|recursive) locking|inconsistent lock state|suspicious RCU usage|lockdep is turned off|circular locking dependency|suspected memory leak'
klog_reports() { grep -E "$KLOG_PATTERN"; }
KLOG_KMEMLEAK=/sys/kernel/debug/kmemleak
klog_leak_scan() {
	[ -w "$KLOG_KMEMLEAK" ] || return 0
	echo scan >"$KLOG_KMEMLEAK" 2>/dev/null
	grep -A 12 '^unreferenced object' "$KLOG_KMEMLEAK" 2>/dev/null
}
klog_leak_forget() {
	[ -w "$KLOG_KMEMLEAK" ] || return 0
	echo scan >"$KLOG_KMEMLEAK" 2>/dev/null
	echo clear >"$KLOG_KMEMLEAK" 2>/dev/null
}
