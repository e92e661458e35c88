#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest suite: VFIO migration v2 of persona-vfio-pci on the two edu functions (both bound to
# persona-vfio-pci).
#   1. persona_migration_test, both ways (same persona): the feature and its flags, the state grid
#      from every state a user can ask for, save on one edu and resume on the other in chunked
#      reads and writes with PRECOPY_INFO; the nvme offers no migration feature (no backend).
#   2. persona_migration_fault_test, once: the ERROR row, reset / data-fd close / device close in
#      every state, resets racing with saves and resumes, 10000 mutated or truncated streams
#      refused (PVP_SEED reproduces them) then the valid one accepted, DMA held in RUNNING_P2P,
#      BAR0 writes refused while stopped or spanning registers, PRECOPY_INFO and MIG_DATA_SIZE;
#      and a test per review finding: C1 save/quiesce with memory decoding off, C2 unbind with a
#      data fd open, C3 the ERROR row without WARNING, C5 no session lock across user copies
#      (lockdep), C6 trapped write wakes low power, C7 ignored write not saved, C8 empty resume,
#      C9 bounded failure log, C10 poll, C11 no interrupt entering STOP.
#   3. Its persona_mismatch test with B on another persona than A (built here into
#      build/firmware/persona-vfio-pci/mig-*.bin): another name, another version, the same name
#      and version with another digest. B refuses the header at the first write with EPROTO.
#   4. No kernel warning, oops or lockdep report.
# Usage: migration.sh FILE.tap
. /repo/tests/lib/tap.sh
. /repo/tests/lib/klog.sh
. /repo/tests/lib/pci.sh
tap_begin "$1"

ST=/repo/build/selftests
FWD=/repo/build/firmware/persona-vfio-pci
G=/repo/tests/personas/golden
drv=persona-vfio-pci

edus=$(find_fn 0x1234 0x11e8)
e0=$(echo "$edus" | sed -n 1p) e1=$(echo "$edus" | sed -n 2p)
n0=$(find_fn 0x1b36 0x0010 | sed -n 1p)

for t in persona_migration_test persona_migration_fault_test; do
	if [ ! -x "$ST/$t" ]; then
		tap_ok 1 "$t is built in build/selftests (make selftests)"
		tap_end
		exit 1
	fi
done
# The kernel log from the start, kept whole: a thousand resets push early lines out of dmesg.
K=$(mktemp)
cat /dev/kmsg >"$K" 2>/dev/null &
kmsg=$!

tap_ok $([ -n "$e0" ] && [ -n "$e1" ]; echo $?) "two edu functions to test (found: $(echo $edus))"
tap_check "bind $e0 to $drv" pvp-bind "$e0" "$drv"
tap_check "bind $e1 to $drv" pvp-bind "$e1" "$drv"
[ -n "$n0" ] && tap_check "bind $n0 to $drv" pvp-bind "$n0" "$drv"
tap_kselftest "migration $e0 -> $e1" env PVP_BDF_A="$e0" PVP_BDF_B="$e1" PVP_BDF_NOMIG="$n0" \
	"$ST/persona_migration_test"
# no_backend (the nvme offers no migration) ran in the first direction; not this one's plan.
tap_kselftest "migration $e1 -> $e0" env PVP_BDF_A="$e1" PVP_BDF_B="$e0" \
	"$ST/persona_migration_test" -T no_backend
# With the review's finding tests, named by finding (fault.C1_... to fault.C11_...; the C5 lockdep
# test maps the nvme's BAR0, and skips once an earlier report has turned lockdep off).
tap_kselftest "migration faults $e0 -> $e1" env PVP_BDF_A="$e0" PVP_BDF_B="$e1" \
	PVP_BDF_NOMIG="$n0" "$ST/persona_migration_fault_test" -T persona_mismatch
# The fuzzing summary (seed, counts per mutation) as comments.
grep -E 'stream_fuzz:(seed|[0-9]+ streams refused|  [a-z])' "$1.log" | tail -n 19 |
	sed 's/^.*stream_fuzz:/# /' | tee -a "$1"

# persona SEL DEV: selects the persona of DEV (closed) through sysfs.
persona() { (echo -n "$1" >"/sys/bus/pci/devices/$2/persona") 2>&1; }
# compile FROM NAME VERSION: FROM renamed, as $FWD/NAME@VERSION.bin.
compile() {
	sed -e "s/^name = .*/name = \"$2\"/" -e "s/^version = .*/version = \"$3\"/" "$1" >"$T/p.toml" &&
		vfio-persona compile "$T/p.toml" -o "$FWD/$2@$3.bin"
}
# mismatch KIND SEL_A SEL_B: A and B on those personas, then the persona_mismatch test.
mismatch() {
	o=$(persona "$2" "$e0" && persona "$3" "$e1")
	tap_ok $? "persona mismatch ($1): $e0 on $2, $e1 on $3" "$o"
	echo "# $e0: $(cat "/sys/bus/pci/devices/$e0/persona"); $e1: $(cat "/sys/bus/pci/devices/$e1/persona")"
	tap_kselftest "persona mismatch ($1) $e0 -> $e1" env PVP_BDF_A="$e0" PVP_BDF_B="$e1" \
		PVP_MISMATCH="$1" "$ST/persona_migration_fault_test" -t persona_mismatch
}
T=$(mktemp -d)
mkdir -p "$FWD"
o=$(compile "$G/edu-identity.toml" mig-a 1.0 && compile "$G/edu-identity.toml" mig-b 1.0 &&
	compile "$G/edu-identity.toml" mig-a 1.1 2>&1)
tap_ok $? "personas mig-a@1.0, mig-b@1.0, mig-a@1.1 compile into build/firmware" "$o"
mismatch name mig-a@1.0 mig-b@1.0
mismatch version mig-a@1.0 mig-a@1.1
# The same name and version, another content (edu-ids-11e9's IDs): another digest. A keeps the
# blob it loaded before the file changes.
o=$(persona mig-a@1.0 "$e0" && compile "$G/edu-ids-11e9.toml" mig-a 1.0 2>&1 && persona mig-a@1.0 "$e1")
tap_ok $? "persona mismatch (digest): $e0 and $e1 on two different mig-a@1.0" "$o"
echo "# $e0: $(cat "/sys/bus/pci/devices/$e0/persona"); $e1: $(cat "/sys/bus/pci/devices/$e1/persona")"
tap_kselftest "persona mismatch (digest) $e0 -> $e1" env PVP_BDF_A="$e0" PVP_BDF_B="$e1" \
	PVP_MISMATCH=digest "$ST/persona_migration_fault_test" -t persona_mismatch
rm -f "$FWD"/mig-a@1.0.bin "$FWD"/mig-a@1.1.bin "$FWD"/mig-b@1.0.bin
rm -rf "$T"
for b in $e0 $e1; do persona auto "$b" >/dev/null; done

sleep 1
kill "$kmsg"
bad=$( (cat "$K"; dmesg) | klog_reports | head -n 3)
tap_ok "$([ -z "$bad" ]; echo $?)" "no kernel warning, oops or lockdep report ($(wc -l <"$K") log records)" "$bad"
rm -f "$K"
for b in $e0 $e1 $n0; do pvp-bind "$b" none >/dev/null 2>&1; done
tap_end
