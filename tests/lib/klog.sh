# shellcheck shell=sh
# The kernel-log check of the guest suites, in one place (busybox sh compatible).
#   klog_reports          reads a kernel log on stdin, prints every line that is a report
#   klog_leak_scan        on a kernel with kmemleak: scans now and prints the suspected leaks
#   klog_leak_forget      on a kernel with kmemleak: scans and forgets what is suspected so far
#   klog_debug_locks      prints lockdep's debug_locks (1: lockdep still validates; 0: a lockdep
#                         report or a taint switched it off); nothing on a kernel without lockdep
# A report is anything a kernel bug, a sanitizer or a watchdog prints: WARNING, BUG, oops, GPF,
# KASAN, UBSAN, a kCFI failure (permissive kCFI warns instead of dying), lockdep, RCU lockdep, an
# RCU CPU stall, a hung task, a soft or hard lockup, and kmemleak's own line. tests/guest/run-suites
# proves with tests/fixtures/klog that a deliberate report of each kind the kernel can make is
# caught, and that the pattern takes every line of tests/fixtures/klog/reports.txt and no line of
# benign.txt.
# The watchdogs' report lines, as Linux 7.3 prints them:
#   RCU (kernel/rcu/tree_stall.h, tree_exp.h, tasks.h): "rcu: INFO: rcu_sched detected stalls on
#     CPUs/tasks:", "rcu: INFO: rcu_sched self-detected stall on CPU", "... detected expedited
#     stalls on CPUs/tasks: {", "... detected stall, but suppressed full report due to a stuck
#     CSD-lock.", "INFO: rcu_tasks detected stalls on tasks:"
KLOG_RCU_STALL='INFO: [a-z_]+ (self-)?detected (expedited )?stall'
#   hung tasks (kernel/hung_task.c): "INFO: task insmod:123 blocked for more than 2 seconds." (or
#     "blocked in I/O wait for more than")
KLOG_HUNG_TASK='INFO: task .+ blocked.* for more than [0-9]+ seconds'
#   lockups (kernel/watchdog.c): "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [insmod:77]",
#     "CPU1: Watchdog detected hard LOCKUP on cpu 0"
KLOG_LOCKUP='soft lockup|hard LOCKUP'
#   UBSAN (lib/ubsan.c): "UBSAN: shift-out-of-bounds in <file>:<line>:<column>"
KLOG_UBSAN='UBSAN:'
KLOG_PATTERN="WARNING:|BUG:|kernel BUG|Oops|general protection fault|KASAN:|$KLOG_UBSAN|CFI failure|possible (circular|recursive) locking|inconsistent lock state|suspicious RCU usage|lockdep is turned off|circular locking dependency|$KLOG_RCU_STALL|$KLOG_HUNG_TASK|$KLOG_LOCKUP|suspected memory leak"
klog_reports() { grep -E "$KLOG_PATTERN"; }
KLOG_KMEMLEAK=/sys/kernel/debug/kmemleak
# kmemleak reports an object only once a scan finds it unreferenced, older than 5 s and unchanged
# since the previous scan (the first scan of an object only records its checksum): two scans.
klog_leak_scan() {
	[ -w "$KLOG_KMEMLEAK" ] || return 0
	echo scan >"$KLOG_KMEMLEAK" 2>/dev/null
	echo scan >"$KLOG_KMEMLEAK" 2>/dev/null
	grep -A 12 '^unreferenced object' "$KLOG_KMEMLEAK" 2>/dev/null
}
klog_leak_forget() {
	[ -w "$KLOG_KMEMLEAK" ] || return 0
	echo scan >"$KLOG_KMEMLEAK" 2>/dev/null
	echo clear >"$KLOG_KMEMLEAK" 2>/dev/null
}
# Lockdep switches itself off (debug_locks = 0) after its first report, and on a taint that makes
# it unreliable (a KASAN report, a bad page); /proc/lockdep stays. /proc/lockdep_stats says
# " debug_locks:    1" (kernel/locking/lockdep_proc.c).
klog_debug_locks() { sed -n 's/^ *debug_locks: *\([0-9]*\).*/\1/p' /proc/lockdep_stats 2>/dev/null; }
