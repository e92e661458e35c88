#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest suite: QEMU as the real client of the ivshmem-plain backend (issue 13): live migration of
# a VM between physically different functions under one persona. The guest's two ivshmem-plain
# functions (16 MiB and 32 MiB of shared memory, scripts/guest-run) are bound to persona-vfio-pci
# with ONE persona derived from the 16 MiB function; the inner QEMUs (tests/lib/qemu-inner.sh,
# the machinery of migration-qemu.sh) assign them through `-object iommufd` + `-device vfio-pci`.
#   1. QEMU A owns the 16 MiB function; the inner guest writes a seeded pattern of several MiB
#      into BAR2 (shm_pattern, tests/selftests) and keeps its view of the whole config space
#      (sysfs config, hex-dumped: its `lspci -xxxx`).
#   2. Live A -> B, where B owns the 32 MiB function, then B -> C on the 16 MiB function again.
#      After each: the whole pattern reads back, a new one is written, BAR2 is 16 MiB as the
#      inner guest sees it, and its config dump is byte-identical to the one before.
#   3. A destination whose persona differs (the 32 MiB function with a persona derived from
#      itself) is refused while the source still runs: the source never stops (no STOP event),
#      stays "running", and the inner guest reads its pattern back.
#   4. The control: the same migration (16 MiB -> 32 MiB) with upstream vfio-pci on both ends;
#      what QEMU does is a `# control (vfio-pci): ...` line, and what was seen is asserted.
# QEMU's reported total time and downtime are TAP comments.
# Usage: migration-qemu-ivshmem.sh FILE.tap
# Environment: PVP_TRIXIE_ROOT_GUEST, PVP_KBUILD, PVP_INNER_BOOT_TIMEOUT (as migration-qemu.sh);
#   PVP_IVQ_PATTERN_MIB (the pattern's size, default 16: all of BAR2); PVP_IVQ_CORRUPT=1 flips
#   one word of BAR2 on B before it is checked (a deliberate failure: the check after A -> B
#   must fail).
. /repo/tests/lib/tap.sh
. /repo/tests/lib/pci.sh
tap_begin "$1"

drv=persona-vfio-pci
TR=${PVP_TRIXIE_ROOT_GUEST:-/cache/trixie-root}
# The inner guest boots the default flavour's kernel (PVP_INNER_KBUILD), as in migration-qemu.sh.
KB=${PVP_INNER_KBUILD:-${PVP_KBUILD:-}}
SP=/repo/build/selftests/shm_pattern
FWD=/repo/build/firmware/persona-vfio-pci
VP=vfio-persona
P16=shm-qemu-16m@1.0
P32=shm-qemu-32m@1.0
MIB=${PVP_IVQ_PATTERN_MIB:-16}
BOOT_TIMEOUT=${PVP_INNER_BOOT_TIMEOUT:-900}
W=$(mktemp -d /tmp/migration-qemu-ivshmem.XXXXXX)
INNER_CMDLINE="console=ttyS0 quiet panic=-1 no_timer_check acpi=off tsc=reliable kunit.enable=0"
INNER_CMDLINE="$INNER_CMDLINE lockdep.prove_locking=0 pty.legacy_count=0 initcall_blacklist=i8042_init"
VFIO_MIG_OPT=""
# A pattern pass over 16 MiB took under 0.3 s (BAR2 is mapped straight into the inner guest); the
# first answer in a new destination QEMU took 26 s on the debug kernel (inner's ceiling: 600 s).
. /repo/tests/lib/qemu-inner.sh

s16= s32=
for b in $(find_fn 0x1af4 0x1110); do
	case $(bar_size "$b" 2) in
	16777216) s16=$b ;;
	33554432) s32=$b ;;
	esac
done

cleanup() {
	for _n in A B C D X Y; do
		_p=$(pid_of $_n)
		[ -n "$_p" ] && kill -9 "$_p" 2>/dev/null
	done
	for _p in $bg_pids; do kill "$_p" 2>/dev/null; done
	for _b in $s16 $s32; do pvp-bind "$_b" none >/dev/null 2>&1; done
	rm -rf "$W" "$FWD/$P16.bin" "$FWD/$P32.bin"
}
finish() {
	cleanup
	tap_diag "time: whole suite $(($(now) - t_suite)) s"
	tap_end
	exit $?
}
trap 'cleanup; exit 1' INT TERM
fatal() {
	tap_ok 1 "$1" "${2:-}"
	for _n in A B C D X Y; do [ -n "$(pid_of $_n)" ] && qemu_log $_n; done
	for _n in A B C; do
		[ -s "$W/$_n.serial" ] && tap_diag "inner console in $_n (last lines):" &&
			tail -n 15 "$W/$_n.serial" | tr -d '\r' | while IFS= read -r _l; do tap_diag "  $_l"; done
	done
	finish
}
# bar2_qmp NAME: BAR2's size as QEMU NAME presents it to its guest (query-pci; only the
# assigned function has a BAR 2 in this machine).
bar2_qmp() {
	qmp "$1" query-pci | grep -o '"bar": 2,[^}]*' | head -n 1 | sed -n 's/.*"size": *\([0-9]*\).*/\1/p'
}
# stops NAME FROM: the STOP events QEMU NAME sent after line FROM of its QMP log.
stops() { tail -n +"$(($2 + 1))" "$W/$1.qmplog" | grep -c '"event": *"STOP"'; }
# live SRC DST SOCKET LABEL: live migration SRC -> DST (listening on SOCKET), both with
# return-path and switchover-ack; the outcome of query-migrate is in $m.
live() {
	o=$(set_caps "$2" && qmp "$2" migrate-incoming "{\"uri\":\"unix:$W/$3\",\"exit-on-error\":false}")
	tap_ok $? "$4: $2 listens (return-path, switchover-ack)" "$o"
	o=$(set_caps "$1" && qmp "$1" migrate "{\"uri\":\"unix:$W/$3\"}")
	tap_ok $? "$4: $1 migrate accepted" "$o"
	m=$(migration_wait "$1" 300)
}
# after NAME SEED NEXT LABEL: in QEMU NAME, the inner guest sees BAR2 at 16 MiB, reads the
# pattern SEED back whole, its config dump is the one before ($cfg0), and it writes pattern NEXT.
after() {
	o=$(inner "$1" "p size")
	expect "$4: BAR2 as the inner guest sees it in $1 is 16 MiB" "$o" "size 16777216"
	[ "${PVP_IVQ_CORRUPT:-}" = 1 ] && [ "$1" = B ] &&
		tap_diag "PVP_IVQ_CORRUPT=1: flipping the word at 0x123008 of BAR2 in B: $(inner B "p poke:0x123008")"
	o=$(inner "$1" "p check:$2:$MIB")
	tap_ok $? "$4: the inner guest reads the whole $MIB MiB pattern $2 back in $1" "$o"
	tap_diag "$4: $o"
	c=$(inner "$1" cfg)
	tap_ok "$([ -n "$cfg0" ] && [ "$c" = "$cfg0" ]; echo $?)" \
		"$4: the inner guest's config space dump (${#c} hex digits) is byte-identical to the one before" \
		"before: $cfg0
after:  $c"
	o=$(inner "$1" "p fill:$3:$MIB check:$3:$MIB")
	tap_ok $? "$4: the inner guest writes a new pattern $3 and reads it back in $1" "$o"
}

# --- 0. Preconditions, personas, the inner initramfs ---
[ -n "$s16" ] && [ -n "$s32" ] || fatal "ivshmem-plain functions of 16 MiB and 32 MiB (found: $s16 $s32)"
[ -d "/sys/bus/pci/drivers/$drv" ] || fatal "$drv is registered"
[ -x "$TR/usr/bin/qemu-system-x86_64" ] || fatal "QEMU 11.1 in the trixie root ($TR)"
inner_kernel
[ -f "$QI_KERNEL" ] || fatal "the test kernel for the inner guest ($QI_KERNEL; \$PVP_INNER_KBUILD=$KB)"
[ -x "$SP" ] || fatal "shm_pattern is built in build/selftests (make selftests)"
mkdir -p "$FWD"
# persona_of BDF NAME@1.0: derived from the function itself, compiled into the firmware folder.
persona_of() {
	_nm=${2%@*}
	$VP capture "$1" -o "$W/$_nm.dump" && $VP derive "$W/$_nm.dump" --name "$_nm" -o "$W/$_nm.toml" &&
		$VP compile "$W/$_nm.toml" -o "$FWD/$2.bin"
}
for b in $s16 $s32; do pvp-bind "$b" none >/dev/null 2>&1; done
o=$(persona_of "$s16" "$P16" 2>&1 && persona_of "$s32" "$P32" 2>&1)
tap_ok $? "derive $P16 from the 16 MiB ivshmem $s16 and $P32 from the 32 MiB $s32" "$o"
for b in $s16 $s32; do
	o=$(vfio-persona bind "$b" --persona "$P16" 2>&1)
	tap_ok $? "$b bound to $drv with the one persona $P16" "$o"
done
inner_initramfs 0x1af4:0x1110 'p() { shm_pattern "$E" "$@"; }
cfg() { od -An -v -tx1 "/sys/bus/pci/devices/$E/config" | tr -d " \n"; }' "$SP"
tap_ok $? "inner initramfs written ($(wc -c <"$W/inner.cpio") bytes)"
phase_done "preparation"

# --- 1. A owns the 16 MiB function; the inner guest writes its pattern ---
qemu_start A "$s16"
qmp_ready A || fatal "QEMU A (owning $s16) starts and answers QMP" "$(cat "$W/A.log")"
qemu_start B "$s32" -incoming defer
qmp_ready B || fatal "QEMU B (owning $s32) starts and answers QMP" "$(cat "$W/B.log")"
qa=$(bar2_qmp A) qb=$(bar2_qmp B)
expect "persona: QEMU presents BAR2 at 16 MiB on both ends, 16 MiB $s16 (A) and 32 MiB $s32 (B) (query-pci)" \
	"$qa $qb" "16777216 16777216"
wait_for "$W/A.serial" "@@ready" "$BOOT_TIMEOUT" A
ready=$(grep -F "@@ready" "$W/A.serial" | tr -d '\r' | head -n 1)
[ -n "$ready" ] || fatal "inner guest boots in QEMU A within $BOOT_TIMEOUT s" "$(tail -n 5 "$W/A.log")"
tap_ok 0 "inner guest boots in QEMU A owning the 16 MiB ivshmem $s16 (${ready#@@ready })"
nodirty=$(grep -F 'dirty tracking' "$W/A.log")
tap_ok "$([ -z "$nodirty" ]; echo $?)" "QEMU A takes the ivshmem function as migratable (no blocker)" "$nodirty"
qemu_log A
phase_done "inner boot in A"

o=$(inner A "p size")
expect "A: BAR2 as the inner guest sees it is 16 MiB" "$o" "size 16777216"
o=$(inner A "p enable fill:1:$MIB check:1:$MIB")
tap_ok $? "A: the inner guest writes a $MIB MiB pattern 1 into ivshmem BAR2 and reads it back" "$o"
tap_diag "A: $o"
cfg0=$(inner A cfg)
# 256 bytes: a conventional function in the inner machine (pc).
expect "A: the inner guest dumps its whole config space (hex digits)" "${#cfg0}" 512
tap_diag "A: config $(printf '%s' "$cfg0" | cut -c1-128)..."
phase_done "pattern written in A"

# --- 2. Live A (16 MiB) -> B (32 MiB) ---
n0=$(wc -l <"$W/A.qmplog")
live A B a-b.sock "ivshmem cross-layout 16 MiB -> 32 MiB"
expect "ivshmem cross-layout 16 MiB -> 32 MiB: live migration A -> B completed" "$(field "$m" status)" completed
[ "$(field "$m" status)" = completed ] || fatal "live migration A -> B worked" "$m $(cat "$W/B.log")"
tap_diag "A -> B live: total $(field "$m" total-time) ms, downtime $(field "$m" downtime) ms," \
	"setup $(field "$m" setup-time) ms"
# The probe of step 3: a source that switched over did stop.
tap_ok "$([ "$(stops A "$n0")" -ge 1 ]; echo $?)" "A stopped at the switchover (a STOP event: what step 3 looks for)"
for _ in $(seq 30); do [ "$(status B)" = running ] && break; sleep 1; done
expect "B: the VM runs after the migration" "$(status B)" running
qemu_stop A
qemu_log B
phase_done "live migration A -> B (QEMU)"
# C owns the 16 MiB function (free again); it starts while B is checked.
qemu_start C "$s16" -incoming defer
after B 1 2 "ivshmem cross-layout 16 MiB -> 32 MiB"
cfg0=$c
phase_done "checks in B"

# --- 3. Live B (32 MiB) -> C (16 MiB) ---
qmp_ready C || fatal "QEMU C (owning $s16) starts and answers QMP" "$(cat "$W/C.log")"
live B C b-c.sock "ivshmem cross-layout 32 MiB -> 16 MiB"
expect "ivshmem cross-layout 32 MiB -> 16 MiB: live migration B -> C completed" "$(field "$m" status)" completed
[ "$(field "$m" status)" = completed ] || fatal "live migration B -> C worked" "$m $(cat "$W/C.log")"
tap_diag "B -> C live: total $(field "$m" total-time) ms, downtime $(field "$m" downtime) ms," \
	"setup $(field "$m" setup-time) ms"
for _ in $(seq 30); do [ "$(status C)" = running ] && break; sleep 1; done
expect "C: the VM runs after the migration" "$(status C)" running
qemu_stop B
qemu_log C
phase_done "live migration B -> C (QEMU)"
after C 2 3 "ivshmem cross-layout 32 MiB -> 16 MiB"
cfg0=$c
phase_done "checks in C"

# --- 4. A destination with another persona: refused before the source stops ---
o=$(vfio-persona bind "$s32" --persona "$P32" 2>&1)
tap_ok $? "the 32 MiB $s32 now presents $P32 (derived from itself)" "$o"
qemu_start D "$s32" -incoming defer
qmp_ready D || fatal "QEMU D (owning $s32) starts and answers QMP" "$(cat "$W/D.log")"
n0=$(wc -l <"$W/C.qmplog")
live C D c-d.sock "ivshmem persona $P16 -> $P32"
expect "C -> D ($P32): the migration failed" "$(field "$m" status)" failed
tap_diag "C -> D: $(field "$m" error-desc)"
md=$(migration_wait D 60)
dmsg="$(field "$md" error-desc) $(cat "$W/D.log")"
tap_ok "$(printf '%s' "$dmsg" | grep -q 'Protocol error'; echo $?)" \
	"D: QEMU reports the refusal with the driver's errno text (EPROTO: Protocol error)" "$dmsg"
st=$(stops C "$n0")
expect "C never stopped: refused before the switchover (no STOP event from C)" "$st" 0
expect "C: still running after the refused migration" "$(status C)" running
o=$(inner C "p check:3:$MIB")
tap_ok $? "C: the inner guest still answers, its pattern 3 intact" "$o"
c=$(inner C cfg)
expect "C: its config dump unchanged" "$c" "$cfg0"
qemu_stop D
qemu_stop C
phase_done "refused migration to another persona"

# --- 5. The control: upstream vfio-pci on both ends, 16 MiB -> 32 MiB ---
modprobe vfio-pci 2>/dev/null
o=$(pvp-bind "$s16" vfio-pci 2>&1 && pvp-bind "$s32" vfio-pci 2>&1)
tap_ok $? "control: $s16 and $s32 bound to vfio-pci" "$o"
# Idle VMs (nothing booted): the blocker and the BARs are QEMU's, not the inner guest's.
QI_NO_KERNEL=1
qemu_start X "$s16"
qmp_ready X || fatal "control: QEMU X (vfio-pci, $s16) starts" "$(cat "$W/X.log")"
qemu_start Y "$s32" -incoming defer
qmp_ready Y || fatal "control: QEMU Y (vfio-pci, $s32) starts" "$(cat "$W/Y.log")"
qx=$(bar2_qmp X) qy=$(bar2_qmp Y)
o=$(set_caps Y && qmp Y migrate-incoming "{\"uri\":\"unix:$W/x-y.sock\",\"exit-on-error\":false}")
tap_ok $? "control: Y listens" "$o"
set_caps X >/dev/null
mo=$(qmp X migrate "{\"uri\":\"unix:$W/x-y.sock\"}")
mrc=$?
if [ "$mrc" = 2 ]; then
	outcome="QEMU refuses: $(field "$mo" desc)"
else
	m=$(migration_wait X 300)
	outcome="migrate accepted, $(field "$m" status): $(field "$m" error-desc)"
fi
tap_diag "control (vfio-pci): $outcome; BAR2 as QEMU presents it: $qx bytes on $s16, $qy bytes on $s32"
tap_ok "$([ "$mrc" = 2 ]; echo $?)" "vfio-pci control: QEMU refuses the migration" "$mo"
tap_ok "$([ -n "$qx" ] && [ -n "$qy" ] && [ "$qx" != "$qy" ]; echo $?)" \
	"vfio-pci control: the guest-visible BAR2 size differs between the two ends ($qx vs $qy bytes)"
expect "vfio-pci control: X keeps running" "$(status X)" running
qemu_stop X
qemu_stop Y
phase_done "control with vfio-pci"

finish
