#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest suite: VFIO migration of persona-vfio-pci with QEMU as the real client (issue 7).
# Debian's QEMU 11.1 (the cached trixie root, run through its own loader and libraries) runs an
# inner guest (this very kernel, a busybox initramfs written here) with an edu bound to
# persona-vfio-pci, assigned through `-object iommufd` + `-device vfio-pci,host=...`. The inner
# guest is booted once, for every phase (the boot is most of the suite's time); its shell is
# driven over the serial port, each QEMU over QMP, both through FIFOs. The inner guest pokes the edu with edu_regs (tests/selftests; no /dev/mem here).
# The inner guest boots the test kernel's uncompressed vmlinux through qboot and the PVH entry
# (CONFIG_PVH; the bzImage only when there is no such vmlinux, said as a diagnostic).
# Persona edu-cross@1.0 on both edus: edu-identity (the golden file) with the subsystem IDs
# emulated and a vendor-specific capability hidden, so that phase 5 can present E1's other layout
# under the same persona without a second inner boot. On the plain edus of phases 1-4 it presents
# what edu-identity does (the same subsystem IDs, no vendor-specific capability to hide).
#   1. QEMU A owns edu E0; the inner guest writes device
#      state: liveness, a factorial input, the DMA registers (64-bit), the IRQ-on-factorial bit.
#   2. A saves to a file (`migrate file:`); A quits; QEMU B owning E1 restores it (`-incoming
#      defer` + migrate-incoming file:); the inner guest, now in B, reads every register back
#      equal, runs a DMA round trip through B's mappings, and writes new state.
#   3. B migrates live over a unix socket (return-path + switchover-ack) to QEMU C owning E0
#      again; the inner guest reads the new state back.
#   4. E1 gets persona edu-cross@1.1 (same layout, another version); a QEMU D owning it is
#      the destination of C: the migration fails with our errno's text (EPROTO, "Protocol
#      error") and C keeps running: status "running", the inner guest answers, state intact.
#   5. Cross-layout: the layout fixture moves E1's MSI behind a vendor-specific capability;
#      under one persona on both, the inner guest's config dump is byte-identical before and
#      after a live migration from C (E0) to a new B owning E1.
# Every wait has a timeout; every QEMU is killed on the way out. Each phase's time and QEMU's
# reported times (total, downtime) are TAP comments; QEMU's own warnings become diagnostics.
# Usage: migration-qemu.sh FILE.tap
# Environment: PVP_TRIXIE_ROOT_GUEST (default /cache/trixie-root), PVP_KBUILD (set by guest-run),
#   PVP_INNER_BOOT_TIMEOUT (seconds, default 900: the bzImage's boot took 110-220 s on a quiet 2-core
#   host and more than 480 s when other guests or builds shared it, as the debug kernel build does in
#   make check; the vmlinux's PVH boot is several times shorter, the ceiling is for a loaded host).
. /repo/tests/lib/tap.sh
. /repo/tests/lib/pci.sh
tap_begin "$1"

drv=persona-vfio-pci
TR=${PVP_TRIXIE_ROOT_GUEST:-/cache/trixie-root}
# The inner guest boots the default flavour's kernel (guest-run sets PVP_INNER_KBUILD), also when
# this outer kernel is the debug one: the driver under test runs out here.
KB=${PVP_INNER_KBUILD:-${PVP_KBUILD:-}}
ER=/repo/build/selftests/edu_regs
G=/repo/tests/personas/golden
FW=/repo/build/firmware
FWD=$FW/persona-vfio-pci
P_OK=edu-cross@1.0
P_BAD=edu-cross@1.1
BOOT_TIMEOUT=${PVP_INNER_BOOT_TIMEOUT:-900}
W=$(mktemp -d /tmp/migration-qemu.XXXXXX)

# The inner kernel is the test kernel (lockdep, KUnit, ...), booted under TCG inside TCG: every
# second counts. Off: KUnit at boot, lockdep's dependency checking, the 512 legacy pty devices
# (16 s of kernel time alone), the PS/2 controller, ACPI (the edu needs none of it).
INNER_CMDLINE="console=ttyS0 quiet panic=-1 no_timer_check acpi=off tsc=reliable kunit.enable=0"
INNER_CMDLINE="$INNER_CMDLINE lockdep.prove_locking=0 pty.legacy_count=0 initcall_blacklist=i8042_init"

# No enable-migration=on: QEMU migrates the device by default only because the driver offers
# device dirty page logging (vfio_log_ops); without it QEMU blocks the migration.
VFIO_MIG_OPT=""

edus=$(find_fn 0x1234 0x11e8)
e0=$(echo "$edus" | sed -n 1p) e1=$(echo "$edus" | sed -n 2p)

QI_DEV_ID=edu
. /repo/tests/lib/qemu-inner.sh
# reg OUTPUT KIND OFF: the value edu_regs printed for "KIND OFF" (r32 0x04 ...).
reg() { printf '%s\n' "$1" | sed -n "s/.*$2 $3 \(0x[0-9a-f]*\).*/\1/p"; }

cleanup() {
	for _n in A B C D; do
		_p=$(pid_of $_n)
		[ -n "$_p" ] && kill -9 "$_p" 2>/dev/null
	done
	for _p in $bg_pids; do kill "$_p" 2>/dev/null; done
	for _b in $e0 $e1; do pvp-bind "$_b" none >/dev/null 2>&1; done
	grep -q '^layout_fixture ' /proc/modules && rmmod layout_fixture
	rm -rf "$W" "$FWD/$P_OK.bin" "$FWD/$P_BAD.bin"
}
finish() {
	cleanup
	tap_diag "time: whole suite $(($(now) - t_suite)) s"
	tap_end
	exit $?
}
trap 'cleanup; exit 1' INT TERM
# fatal DESCRIPTION [DIAG]: a failed step the rest cannot go on without.
fatal() {
	tap_ok 1 "$1" "${2:-}"
	for _n in A B C D; do [ -n "$(pid_of $_n)" ] && qemu_log $_n; done
	for _n in A B C; do
		[ -s "$W/$_n.serial" ] && tap_diag "inner console in $_n (last lines):" &&
			tail -n 15 "$W/$_n.serial" | tr -d '\r' | while IFS= read -r _l; do tap_diag "  $_l"; done
	done
	finish
}

# --- 0. Preconditions ---
if [ -z "$e0" ] || [ -z "$e1" ]; then fatal "two edu functions to test (found: $(echo $edus))"; fi
[ -d "/sys/bus/pci/drivers/$drv" ] || fatal "$drv is registered"
[ -x "$TR/usr/bin/qemu-system-x86_64" ] || fatal "QEMU 11.1 in the trixie root ($TR)"
inner_kernel
[ -f "$QI_KERNEL" ] || fatal "the test kernel for the inner guest ($QI_KERNEL; \$PVP_INNER_KBUILD=$KB)"
[ -x "$ER" ] || fatal "edu_regs is built in build/selftests (make selftests)"
# Personas: edu-cross@1.0 (the golden edu-identity with the subsystem IDs emulated and the
# vendor-specific capability hidden), and the same at version 1.1.
fwp=/sys/module/firmware_class/parameters/path
[ -w "$fwp" ] && [ -z "$(cat "$fwp")" ] && printf '%s' "$FW" >"$fwp"
mkdir -p "$FWD"
sed -e 's/^name = .*/name = "edu-cross"/' \
	-e 's/^emulated = \[\]$/emulated = ["subsystem-vendor", "subsystem-device"]/' "$G/edu-identity.toml" |
	awk '/^# Byte rules/ && !done { print "[[capability]]\nkind = \"hidden\"\nspace = \"standard\"\nid = 0x09\n"; done = 1 }
	{ print }' >"$W/edu-cross.toml"
o=$(vfio-persona compile "$W/edu-cross.toml" -o "$FWD/$P_OK.bin" 2>&1 &&
	sed 's/^version = "1\.0"$/version = "1.1"/' "$W/edu-cross.toml" >"$W/edu-cross-1.1.toml" &&
	vfio-persona compile "$W/edu-cross-1.1.toml" -o "$FWD/$P_BAD.bin" 2>&1)
tap_ok $? "personas $P_OK and $P_BAD (from the golden edu-identity) compile into build/firmware" "$o"
for b in $e0 $e1; do
	pvp-bind "$b" none >/dev/null 2>&1
	o=$(vfio-persona bind "$b" --persona "$P_OK" 2>&1)
	tap_ok $? "$b bound to $drv with persona $P_OK" "$o"
	expect "$b: persona attribute names $P_OK" \
		"$(cut -d' ' -f1 "/sys/bus/pci/devices/$b/persona" 2>/dev/null)" "$P_OK"
done

# The inner initramfs: static busybox and edu_regs (tests/lib/qemu-inner.sh).
inner_initramfs 0x1234:0x11e8 'r() { edu_regs "$E" "$@"; }' "$ER"
tap_ok $? "inner initramfs written ($(wc -c <"$W/inner.cpio") bytes)"
phase_done "preparation"

# --- 1. Boot the inner guest in A (owning E0); it writes device state ---
# B, the destination of the file, owns E1: it starts (and waits) while A boots.
qemu_start A "$e0"
qmp_ready A || fatal "QEMU A (owning $e0) starts and answers QMP" "$(cat "$W/A.log")"
qv=$(grep -F '"QMP"' "$W/A.qmplog" | head -n 1 | sed -n 's/.*"qemu": *{\([^}]*\)}.*/\1/p')
v="$(field "$qv" major).$(field "$qv" minor)"
expect "QEMU A is QEMU 11.1 from $TR (QMP greeting)" "$v" 11.1
qemu_start B "$e1" -incoming defer
qmp_ready B || fatal "QEMU B (owning $e1) starts and answers QMP" "$(cat "$W/B.log")"
wait_for "$W/A.serial" "@@ready" "$BOOT_TIMEOUT" A
ready=$(grep -F "@@ready" "$W/A.serial" | tr -d '\r' | head -n 1)
[ -n "$ready" ] || fatal "inner guest boots in QEMU A within $BOOT_TIMEOUT s" "$(tail -n 5 "$W/A.log")"
tap_ok 0 "inner guest boots in QEMU A owning $e0 (${ready#@@ready })"
nodirty=$(grep -F 'dirty tracking' "$W/A.log")
tap_ok "$([ -z "$nodirty" ]; echo $?)" "QEMU A takes the device as migratable with device dirty tracking (no blocker)" "$nodirty"
qemu_log A
phase_done "inner boot in A"

st_write="r enable w32:0x04:0x5a5aa5a5 w32:0x08:10 idle:0x20:1 w64:0x80:0x1122334455667788"
st_write="$st_write w64:0x88:0x0000cafe00040000 w64:0x90:0x0000000000000800 w32:0x20:0x80"
st_read="r r32:0x00 r32:0x04 r32:0x08 r32:0x20 r64:0x80 r64:0x88 r64:0x90"
o=$(inner A "$st_write")
tap_ok $? "inner guest (A) writes edu state: liveness, factorial 10, DMA registers, IRQ-on-factorial" "$o"
s1=$(inner A "$st_read")
tap_ok $? "inner guest (A) reads the state" "$s1"
expect "A: edu ident 0x00" "$(reg "$s1" r32 0x00)" 0x010000ed
expect "A: liveness reads the complement of 0x5a5aa5a5" "$(reg "$s1" r32 0x04)" 0xa5a55a5a
expect "A: factorial of 10" "$(reg "$s1" r32 0x08)" 0x00375f00
expect "A: status has IRQ-on-factorial only" "$(reg "$s1" r32 0x20)" 0x00000080
expect "A: DMA source, destination, count (64-bit)" \
	"$(reg "$s1" r64 0x80) $(reg "$s1" r64 0x88) $(reg "$s1" r64 0x90)" \
	"0x1122334455667788 0x0000cafe00040000 0x0000000000000800"
phase_done "state written in A"

# check_state NAME SNAPSHOT LABEL: the inner guest in NAME reads the registers back as SNAPSHOT.
check_state() {
	_cq=$1 _cs=$2 _cl=$3
	_s=$(inner "$_cq" "$st_read")
	tap_ok $? "$_cl: the inner guest answers in $_cq" "$_s"
	for _r in "r32 0x00 ident" "r32 0x04 liveness" "r32 0x08 factorial" "r32 0x20 status" \
		"r64 0x80 DMA-source" "r64 0x88 DMA-destination" "r64 0x90 DMA-count"; do
		set -- $_r
		_w=$(reg "$_cs" "$1" "$2")
		expect "$_cl: $3 reads back as written ($2)" "$(reg "$_s" "$1" "$2")" "${_w:-(not in the snapshot)}"
	done
}

# --- 2. Save to a file, restore in B (owning E1) ---
o=$(qmp A migrate "{\"uri\":\"file:$W/state.mig\"}")
tap_ok $? "A: migrate file: accepted" "$o"
m=$(migration_wait A 240)
expect "A: migration to the file completed" "$(field "$m" status)" completed
[ "$(field "$m" status)" = completed ] || fatal "saving to a file worked" "$m $(field "$m" error-desc)"
tap_diag "A -> file: total $(field "$m" total-time) ms, downtime $(field "$m" downtime) ms," \
	"file $(wc -c <"$W/state.mig") bytes"
expect "A: paused after the save (postmigrate)" "$(status A)" postmigrate
qemu_stop A
phase_done "save to file"

# C, the destination of the live migration, owns E0 (free again): it starts while B restores.
qemu_start C "$e0" -incoming defer
o=$(qmp B migrate-incoming "{\"uri\":\"file:$W/state.mig\",\"exit-on-error\":false}")
tap_ok $? "B: migrate-incoming file: accepted" "$o"
m=$(migration_wait B 240)
expect "B: restore from the file completed" "$(field "$m" status)" completed
[ "$(field "$m" status)" = completed ] || fatal "restoring from the file worked" "$m"
for _ in $(seq 30); do [ "$(status B)" = running ] && break; sleep 1; done
expect "B: the VM runs after the restore" "$(status B)" running
qemu_log B
check_state B "$s1" "file restore A($e0) -> B($e1)"
phase_done "restore from file in B"

o=$(inner B "r dma:256")
expect "B: DMA round trip RAM -> edu -> RAM after the restore" "$o" "dma 256 ok"
st_write="r w32:0x20:0 w32:0x04:0x0badf00d w32:0x08:12 idle:0x20:1 w64:0x80:0x0102030405060708"
st_write="$st_write w64:0x88:0x00000000deadbeef w64:0x90:0x0000000000000010"
o=$(inner B "$st_write")
tap_ok $? "inner guest (B) writes new state: liveness, factorial 12, DMA registers, status 0" "$o"
s2=$(inner B "$st_read")
expect "B: liveness and factorial of 12" "$(reg "$s2" r32 0x04) $(reg "$s2" r32 0x08)" "0xf4520ff2 0x1c8cfc00"
phase_done "DMA and new state in B"

# --- 3. Live over a unix socket, B -> C (owning E0 again) ---
qmp_ready C || fatal "QEMU C (owning $e0) starts and answers QMP" "$(cat "$W/C.log")"
o=$(set_caps C && qmp C migrate-incoming "{\"uri\":\"unix:$W/live.sock\",\"exit-on-error\":false}")
tap_ok $? "C: capabilities set, listening on a unix socket" "$o"
o=$(set_caps B && qmp B migrate "{\"uri\":\"unix:$W/live.sock\"}")
tap_ok $? "B: live migrate to C accepted" "$o"
m=$(migration_wait B 240)
expect "B: live migration to C completed" "$(field "$m" status)" completed
[ "$(field "$m" status)" = completed ] || fatal "live migration B -> C worked" "$m"
tap_diag "B -> C live: total $(field "$m" total-time) ms, downtime $(field "$m" downtime) ms," \
	"setup $(field "$m" setup-time) ms"
for _ in $(seq 30); do [ "$(status C)" = running ] && break; sleep 1; done
expect "C: the VM runs after the live migration" "$(status C)" running
expect "B: paused after the migration (postmigrate)" "$(status B)" postmigrate
qemu_stop B
qemu_log C
check_state C "$s2" "live B($e1) -> C($e0)"
phase_done "live migration to C"

# --- 4. A destination with another persona: the migration fails, C keeps running ---
o=$(vfio-persona bind "$e1" --persona "$P_BAD" 2>&1)
tap_ok $? "$e1 now presents $P_BAD" "$o"
qemu_start D "$e1" -incoming defer -trace vfio_load_state_device_data
qmp_ready D || fatal "QEMU D (owning $e1) starts and answers QMP" "$(cat "$W/D.log")"
o=$(set_caps D && qmp D migrate-incoming "{\"uri\":\"unix:$W/bad.sock\",\"exit-on-error\":false}")
tap_ok $? "D: capabilities set, listening on a unix socket" "$o"
o=$(set_caps C && qmp C migrate "{\"uri\":\"unix:$W/bad.sock\"}")
tap_ok $? "C: migrate to D accepted" "$o"
m=$(migration_wait C 240)
expect "C: migration to D ($P_BAD) failed" "$(field "$m" status)" failed
tap_diag "C -> D: $(field "$m" error-desc)"
md=$(migration_wait D 60)
dmsg="$(field "$md" error-desc) $(cat "$W/D.log")"
tap_diag "D: $(field "$md" status): $(field "$md" error-desc)"
tap_ok "$(printf '%s' "$dmsg" | grep -q 'Protocol error'; echo $?)" \
	"D: QEMU reports the failure with the driver's errno text (EPROTO: Protocol error)" "$dmsg"
# QEMU's trace of the device data it wrote to the driver: the write that failed is ours.
trace_d=$(grep -F 'vfio_load_state_device_data' "$W/D.log")
tap_ok "$(printf '%s' "$trace_d" | grep -q "($e1) size [0-9]* ret -71"; echo $?)" \
	"D: the failing write is the device data written to $e1 (ret -71)" "$trace_d"
expect "C: still running after the failed migration" "$(status C)" running
check_state C "$s2" "after the refused migration, C($e0)"
o=$(inner C "r w32:0x08:5 idle:0x20:1 r32:0x08")
expect "C: the edu still computes (factorial of 5)" "$(reg "$o" r32 0x08)" 0x00000078
qemu_stop D
phase_done "refused migration to another persona"

# --- 5. Cross-layout (issue 13): E1 presents another firmware revision's layout ---
# The layout fixture (tests/fixtures/layout) gives E1 other subsystem IDs, a vendor-specific
# capability at 0x40 and MSI at 0x60; persona edu-cross@1.0 presents the plain layout on both.
# The inner guest, still in C (owning E0) after the refused migration, reads its edu's config
# space; C migrates live to a new B (owning E1); the inner guest, now in B, reads the same bytes,
# and the state it wrote.
LFX=${PVP_FIXTURES:-/repo/build/fixtures}/layout/layout_fixture.ko
pvp-bind "$e1" none >/dev/null 2>&1
o=$(insmod "$LFX" bdf="$e1" 2>&1)
tap_ok $? "cross-layout: layout_fixture loaded on $e1" "$o"
expect "cross-layout: $e1's physical config has the vendor-specific capability at 0x40, MSI at 0x60" \
	"$(od -A n -t x1 -j 64 -N 2 "/sys/bus/pci/devices/$e1/config" | tr -d ' \n')" 0960
o=$(vfio-persona bind "$e1" --persona "$P_OK" 2>&1)
tap_ok $? "cross-layout: $e1 bound with persona $P_OK" "$o"
qemu_start B "$e1" -incoming defer
qmp_ready B || fatal "cross-layout: QEMU B (owning $e1) starts and answers QMP" "$(cat "$W/B.log")"
cfg_cmd='busybox od -A n -t x1 -v /sys/bus/pci/devices/$E/config'
# The command register too: enable first, then the dump.
o=$(inner C "r enable w32:0x04:0x13572468 r32:0x04")
expect "cross-layout: C: liveness written" "$(reg "$o" r32 0x04)" 0xeca8db97
c1=$(inner C "$cfg_cmd")
tap_ok $? "cross-layout: the inner guest (C, on $e0) dumps its edu's config space" "$c1"
expect "cross-layout: C: 256 config bytes, subsystem 1af4:1100, MSI at 0x40" \
	"$(echo "$c1" | wc -w) $(echo "$c1" | cut -d' ' -f45-48) $(echo "$c1" | cut -d' ' -f53,65)" \
	"256 f4 1a 00 11 40 05"
o=$(set_caps B && qmp B migrate-incoming "{\"uri\":\"unix:$W/layout.sock\",\"exit-on-error\":false}")
tap_ok $? "cross-layout: B listening on a unix socket" "$o"
o=$(set_caps C && qmp C migrate "{\"uri\":\"unix:$W/layout.sock\"}")
tap_ok $? "cross-layout: C: live migrate to B accepted" "$o"
m=$(migration_wait C 240)
expect "cross-layout: live migration $e0 (plain) -> $e1 (modified) completed" "$(field "$m" status)" completed
[ "$(field "$m" status)" = completed ] || fatal "cross-layout: live migration C -> B worked" "$m $(cat "$W/B.log")"
tap_diag "cross-layout C -> B live: total $(field "$m" total-time) ms, downtime $(field "$m" downtime) ms"
for _ in $(seq 30); do [ "$(status B)" = running ] && break; sleep 1; done
expect "cross-layout: B runs after the migration" "$(status B)" running
qemu_stop C
c2=$(inner B "$cfg_cmd")
rc=$?
if [ $rc = 124 ]; then
	# Seen once at load 17: no answer to the first command after the switchover within
	# inner's then 90 s, the next one answered. Ask once more, saying so, with the console's tail.
	tap_diag "cross-layout: B: no answer within inner's ceiling, asking again; console: $(tail -n 3 "$W/B.serial" | tr -d '\r' | cut -c1-160 | tr '\n' '|')"
	c2=$(inner B "$cfg_cmd")
	rc=$?
fi
tap_ok $rc "cross-layout: the inner guest (B, on $e1) dumps its edu's config space" "$c2"
# Every byte is compared, the Interrupt Line (0x3c) too: the persona emulates it (reset value 0)
# and the config record carries it. Before, vfio-pci-core started it at each host function's own
# IRQ line and nothing carried it over: the inner guest (acpi=off, it never writes it) read 0x0b
# on one edu and 0x0a on the other.
tap_diag "cross-layout: Interrupt Line (0x3c) before $(printf '%s\n' "$c1" | awk '{ print $61 }'), after $(printf '%s\n' "$c2" | awk '{ print $61 }')"
expect "cross-layout: the inner guest's config dump is byte-identical after the migration" "$c2" "$c1"
o=$(inner B "r r32:0x04 w32:0x08:5 idle:0x20:1 r32:0x08")
expect "cross-layout: B: liveness as written, and the edu computes 5!" \
	"$(reg "$o" r32 0x04) $(reg "$o" r32 0x08)" "0xeca8db97 0x00000078"
qemu_stop B
for b in $e0 $e1; do pvp-bind "$b" none >/dev/null 2>&1; done
o=$(rmmod layout_fixture 2>&1)
tap_ok $? "cross-layout: layout_fixture unloaded" "$o"
phase_done "cross-layout live migration"

finish
