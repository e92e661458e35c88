#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest side of `make bench`'s QEMU ivshmem figures: QEMU's reported total time and downtime of a
# live migration (unix socket, return-path and switchover-ack) of an idle inner VM owning an
# ivshmem-plain function bound to persona-vfio-pci, for device state (BAR2) of 16, 64 and 256 MiB,
# against the same migration of the same VM without the device, measured in the same run.
# The inner VMs boot nothing (qboot finds no boot device and halts): their RAM is untouched,
# so what differs from the baseline is the device. The ivshmem backend carries every page of
# BAR2 whatever it holds, so the memory's content does not change the figures.
# Pairs (the persona derived from the source): 16 MiB -> 32 MiB (guest-run's two functions),
# 64 MiB -> 64 MiB and 256 MiB -> 256 MiB (scripts/bench adds those four functions with
# guest-run --devices). Sizes whose functions are missing are reported as such and skipped.
# Prints one line per size:
#   qemu-ivshmem SIZE MiB: total T ms, downtime D ms; baseline (no device) total TB ms, downtime DB ms
# and exits non-zero when a migration cannot run (no timing is judged).
# Usage: guest-ivshmem-bench.sh [SIZES (MiB, default "16 64 256")]
. /repo/tests/lib/tap.sh
. /repo/tests/lib/pci.sh
sizes=${1:-16 64 256}
TR=${PVP_TRIXIE_ROOT_GUEST:-/cache/trixie-root}
KB=${PVP_KBUILD:-}
FWD=/repo/build/firmware/persona-vfio-pci
W=$(mktemp -d /tmp/ivshmem-bench.XXXXXX)
INNER_CMDLINE=
VFIO_MIG_OPT=""
QI_NO_KERNEL=1
. /repo/tests/lib/qemu-inner.sh
tap_begin "$W/bench.tap" >/dev/null

die() { echo "bench: $*" >&2; cleanup; exit 1; }
cleanup() {
	for _n in S D; do
		_p=$(pid_of $_n)
		[ -n "$_p" ] && kill -9 "$_p" 2>/dev/null
	done
	for _p in $bg_pids; do kill "$_p" 2>/dev/null; done
	for _b in $(find_fn 0x1af4 0x1110); do pvp-bind "$_b" none >/dev/null 2>&1; done
	rm -f "$FWD"/shm-bench-*.bin
	rm -rf "$W"
}
[ -x "$TR/usr/bin/qemu-system-x86_64" ] || die "no QEMU in the trixie root ($TR)"

# The functions by BAR2 size, in sysfs order: "SIZE_MIB BDF" lines.
fns=$(for b in $(find_fn 0x1af4 0x1110); do echo "$(($(bar_size "$b" 2) >> 20)) $b"; done)
# pair SIZE: "SRC DST" for SIZE MiB: the first function of that size, and a second one of that
# size or, failing that, the smallest larger one.
pair() {
	_src=$(echo "$fns" | awk -v s="$1" '$1 == s { print $2; exit }')
	_dst=$(echo "$fns" | awk -v s="$1" -v x="$_src" '$1 >= s && $2 != x' | sort -n | head -n 1 | cut -d' ' -f2)
	[ -n "$_src" ] && [ -n "$_dst" ] && echo "$_src $_dst"
}

# migrate SRC DST: one live migration of an idle VM between QEMUs S (owning SRC) and D (owning
# DST; "-" for none); prints "TOTAL DOWNTIME" (ms), fails when it does not complete.
migrate() {
	qemu_start S "$1"
	qemu_start D "$2" -incoming defer
	qmp_ready S && qmp_ready D || { echo "QEMU does not start: $(cat "$W/S.log" "$W/D.log")"; return 1; }
	sleep 2
	# No bandwidth cap (QEMU's default caps it at 128 MiB/s): the figure is the device's.
	for _q in S D; do
		set_caps $_q >/dev/null
		qmp $_q migrate-set-parameters '{"max-bandwidth":107374182400}' >/dev/null
	done
	qmp D migrate-incoming "{\"uri\":\"unix:$W/b.sock\",\"exit-on-error\":false}" >/dev/null &&
		qmp S migrate "{\"uri\":\"unix:$W/b.sock\"}" >/dev/null
	_m=$(migration_wait S 600)
	qemu_stop S >/dev/null
	qemu_stop D >/dev/null
	[ "$(field "$_m" status)" = completed ] || { echo "did not complete: $_m"; return 1; }
	echo "$(field "$_m" total-time) $(field "$_m" downtime)"
}

# Baseline: the same VM without the device.
base=$(migrate - -) || die "the baseline migration (no device) failed: $base"
mkdir -p "$FWD"
rc=0
for s in $sizes; do
	p=$(pair "$s")
	if [ -z "$p" ]; then
		echo "qemu-ivshmem $s MiB: skipped: no pair of ivshmem-plain functions of $s MiB (found: $(echo $fns))"
		rc=1
		continue
	fi
	set -- $p
	for b in $1 $2; do pvp-bind "$b" none >/dev/null 2>&1; done
	n=shm-bench-${s}m
	vfio-persona capture "$1" -o "$W/$n.dump" >/dev/null && vfio-persona derive "$W/$n.dump" --name "$n" -o "$W/$n.toml" >/dev/null &&
		vfio-persona compile "$W/$n.toml" -o "$FWD/$n@1.0.bin" >/dev/null || die "cannot derive a persona from $1"
	for b in $1 $2; do vfio-persona bind "$b" --persona "$n@1.0" >/dev/null 2>&1 || die "cannot bind $b with $n@1.0"; done
	r=$(migrate "$1" "$2") || die "the $s MiB migration $1 -> $2 failed: $r"
	set -- $r $base
	echo "qemu-ivshmem $s MiB: total $1 ms, downtime $2 ms; baseline (no device) total $3 ms, downtime $4 ms ($p)"
	for b in $p; do pvp-bind "$b" none >/dev/null 2>&1; done
done
cleanup
exit $rc
