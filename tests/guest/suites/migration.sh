#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest suite: VFIO migration v2 of persona-vfio-pci on the two edu functions (both bound to
# persona-vfio-pci, same persona), through persona_migration_test: the feature and its flags, the
# 8x8 state grid, save on one edu and resume on the other with chunked reads and writes,
# PRECOPY_INFO, mutated streams refused then a valid one accepted; and the nvme offers no
# migration feature (no backend).
# Usage: migration.sh FILE.tap
. /repo/tests/lib/tap.sh
tap_begin "$1"

ST=/repo/build/selftests
drv=persona-vfio-pci

find_fn() {
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat "$d/vendor")" = "$1" ] && [ "$(cat "$d/device")" = "$2" ] && basename "$d"
	done
}
edus=$(find_fn 0x1234 0x11e8)
e0=$(echo "$edus" | sed -n 1p) e1=$(echo "$edus" | sed -n 2p)
n0=$(find_fn 0x1b36 0x0010 | sed -n 1p)

if [ ! -x "$ST/persona_migration_test" ]; then
	tap_ok 1 "persona_migration_test is built in build/selftests (make selftests)"
	tap_end
	exit 1
fi
tap_ok $([ -n "$e0" ] && [ -n "$e1" ]; echo $?) "two edu functions to test (found: $(echo $edus))"
tap_check "bind $e0 to $drv" pvp-bind "$e0" "$drv"
tap_check "bind $e1 to $drv" pvp-bind "$e1" "$drv"
[ -n "$n0" ] && tap_check "bind $n0 to $drv" pvp-bind "$n0" "$drv"
tap_kselftest "migration $e0 -> $e1" env PVP_BDF_A="$e0" PVP_BDF_B="$e1" PVP_BDF_NOMIG="$n0" \
	"$ST/persona_migration_test"
tap_kselftest "migration $e1 -> $e0" env PVP_BDF_A="$e1" PVP_BDF_B="$e0" \
	"$ST/persona_migration_test"
for b in $e0 $e1 $n0; do pvp-bind "$b" none >/dev/null 2>&1; done
tap_end
