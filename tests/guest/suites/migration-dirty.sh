#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest suite: device dirty page logging (VFIO_DEVICE_FEATURE_DMA_LOGGING_*) of persona-vfio-pci
# on both edu functions, through persona_dirty_test: the edu's device-to-RAM DMAs into IOAS-mapped
# buffers against the reported bits, page by page; RAM-to-device and untracked DMAs not logged;
# read-clears, in-flight DMAs, the uAPI errors, logging across migration states; VFIO's debugfs
# lists dirty tracking for the edu only; the nvme (no migration backend) offers no logging.
# Usage: migration-dirty.sh FILE.tap
. /repo/tests/lib/tap.sh
. /repo/tests/lib/pci.sh
tap_begin "$1"

ST=/repo/build/selftests
drv=persona-vfio-pci

edus=$(find_fn 0x1234 0x11e8)
e0=$(echo "$edus" | sed -n 1p) e1=$(echo "$edus" | sed -n 2p)
n0=$(find_fn 0x1b36 0x0010 | sed -n 1p)

if [ ! -x "$ST/persona_dirty_test" ]; then
	tap_ok 1 "persona_dirty_test is built in build/selftests (make selftests)"
	tap_end
	exit 1
fi
tap_ok $([ -n "$e0" ]; echo $?) "an edu function to test (found: $(echo $edus))"
for b in $e0 $e1 $n0; do tap_check "bind $b to $drv" pvp-bind "$b" "$drv"; done

# VFIO's debugfs lists the migration features of a device with migration ops
# (vfio/<bdf>/migration/features): dirty tracking must be among them for the edu; the nvme has a
# directory but no migration at all.
D=/sys/kernel/debug/vfio
if [ -d "$D/$e0" ]; then
	f=$(cat "$D/$e0/migration/features" 2>&1)
	tap_ok $(echo "$f" | grep -qx dirty-tracking; echo $?) "debugfs: $e0 offers dirty-tracking" \
		"features: $f"
	if [ -n "$n0" ]; then
		tap_ok $([ -d "$D/$n0" ] && [ ! -e "$D/$n0/migration" ]; echo $?) \
			"debugfs: $n0 has no migration features (so no dirty-tracking)" "$(ls "$D/$n0" 2>&1)"
	fi
else
	tap_skip "debugfs: dirty-tracking listed for the edu only" "no $D/$e0"
fi

for b in $e0 $e1; do
	tap_kselftest "dirty $b" env PVP_BDF_A="$b" PVP_BDF_NOLOG="$n0" "$ST/persona_dirty_test"
done
for b in $e0 $e1 $n0; do pvp-bind "$b" none >/dev/null 2>&1; done
tap_end
