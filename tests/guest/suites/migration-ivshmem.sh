#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest suite: VFIO migration v2 of the ivshmem-plain backend (BAR2 carried as page records,
# PRE_COPY while running, the changed pages at STOP_COPY) on the guest's two ivshmem-plain
# functions, 16 MiB and 32 MiB of shared memory: physically different BAR2 sizes.
#   1. A persona derived from the 16 MiB function (shm-mig-16m) is selected on both: the 32 MiB
#      one presents BAR2 at 16 MiB (its clamp); a persona derived from the 32 MiB one is refused
#      on the 16 MiB function at selection.
#   2. persona_ivshmem_test both ways (16 MiB -> 32 MiB and back): every arc, PRE_COPY with
#      PRECOPY_INFO falling to 0, STOP_COPY carrying exactly the pages written since (none when
#      idle), the whole memory compared on the destination after resumes in 1 B to 1 MiB
#      chunks, STOP_COPY without PRE_COPY, reset and close in every state, mutated streams.
#   3. No kernel warning, oops or lockdep report.
# Usage: migration-ivshmem.sh FILE.tap
. /repo/tests/lib/tap.sh
. /repo/tests/lib/klog.sh
. /repo/tests/lib/pci.sh
tap_begin "$1"

ST=/repo/build/selftests
FWD=/repo/build/firmware/persona-vfio-pci
VP=vfio-persona
T=$(mktemp -d)
mkdir -p "$FWD"

if [ ! -x "$ST/persona_ivshmem_test" ]; then
	tap_ok 1 "persona_ivshmem_test is built in build/selftests (make selftests)"
	tap_end
	exit 1
fi
K=$(mktemp)
cat /dev/kmsg >"$K" 2>/dev/null &
kmsg=$!

s16= s32=
for b in $(find_fn 0x1af4 0x1110); do
	case $(bar_size "$b" 2) in
	16777216) s16=$b ;;
	33554432) s32=$b ;;
	esac
done
tap_ok $([ -n "$s16" ] && [ -n "$s32" ]; echo $?) "ivshmem-plain functions of 16 MiB ($s16) and 32 MiB ($s32)"

# persona_of BDF NAME: derive NAME@1.0 from BDF into the firmware folder.
persona_of() {
	$VP capture "$1" -o "$T/$2.dump" && $VP derive "$T/$2.dump" --name "$2" -o "$T/$2.toml" &&
		$VP compile "$T/$2.toml" -o "$FWD/$2@1.0.bin"
}
choose() {
	pvp-bind "$1" none >/dev/null 2>&1
	$VP bind "$1" --persona "$2" >"$T/bind.out" 2>&1
}
for b in $s16 $s32; do pvp-bind "$b" none >/dev/null 2>&1; done
o=$(persona_of "$s16" shm-mig-16m 2>&1 && persona_of "$s32" shm-mig-32m 2>&1)
tap_ok $? "derive shm-mig-16m@1.0 from $s16 and shm-mig-32m@1.0 from $s32" "$o"
choose "$s16" shm-mig-32m@1.0
rc=$?
tap_ok "$([ $rc != 0 ]; echo $?)" "shm-mig-32m@1.0 on $s16 (BAR2 smaller than the persona's) is refused at selection" "$(cat "$T/bind.out")"
for b in $s16 $s32; do
	choose "$b" shm-mig-16m@1.0
	tap_ok $? "shm-mig-16m@1.0 selected on $b" "$(cat "$T/bind.out")"
done

# The suite's log grows across runs: what this run adds starts after line $seen.
seen=$(cat "$1.log" 2>/dev/null | wc -l)
tap_kselftest "ivshmem migration 16M $s16 -> 32M $s32 (persona 16M)" \
	env PVP_BDF_A="$s16" PVP_BDF_B="$s32" PVP_MUTATIONS=${PVP_MUTATIONS:-10000} "$ST/persona_ivshmem_test"
# What the first run measured, as comments: stream sizes per chunk, mutation counts.
tail -n +$((seen + 1)) "$1.log" | grep -E '# .*(PRE_COPY|BAR2 presented|mutations|whole stream)' |
	sed 's/^.*\.c:[0-9]*:[a-z_]*:/# /' | head -n 40 | tee -a "$1"
tap_kselftest "ivshmem migration 32M $s32 -> 16M $s16 (persona 16M)" \
	env PVP_BDF_A="$s32" PVP_BDF_B="$s16" PVP_MUTATIONS=1000 PVP_DATA_MUTATIONS=5 \
	"$ST/persona_ivshmem_test"

rm -f "$FWD"/shm-mig-16m@1.0.bin "$FWD"/shm-mig-32m@1.0.bin
rm -rf "$T"
sleep 1
kill "$kmsg"
bad=$( (cat "$K"; dmesg) | klog_reports | head -n 3)
tap_ok "$([ -z "$bad" ]; echo $?)" "no kernel warning, oops or lockdep report ($(wc -l <"$K") log records)" "$bad"
rm -f "$K"
for b in $s16 $s32; do pvp-bind "$b" none >/dev/null 2>&1; done
tap_end
