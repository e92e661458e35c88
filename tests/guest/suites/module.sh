#!/bin/sh
# Guest suite: the test bed itself. The module loads (init loaded it), unloads and loads again;
# the IOMMU is in scalable mode; the guest has the devices later suites rely on.
. /repo/tests/lib/tap.sh
tap_begin "$1"
mod=persona_vfio_pci
ko=${PVP_MODULE_DIR:-/repo/build/module}/$mod.ko

tap_check "$mod is loaded at boot" grep -q "^$mod " /proc/modules
tap_check "vfio_pci_core and vfio_pci are loaded" sh -c 'grep -q "^vfio_pci_core " /proc/modules && grep -q "^vfio_pci " /proc/modules'
tap_check "the module logged its load" sh -c "dmesg | grep -q '$mod: loaded'"
tap_check "rmmod $mod" rmmod $mod
tap_check "$mod is gone from /proc/modules" sh -c "! grep -q '^$mod ' /proc/modules"
tap_check "the module logged its unload" sh -c "dmesg | grep -q '$mod: unloaded'"
tap_check "insmod $mod again" insmod $ko
tap_check "$mod is loaded again" grep -q "^$mod " /proc/modules

n_edu=$(grep -l 0x11e8 /sys/bus/pci/devices/*/device | wc -l)
tap_ok $([ "$n_edu" -ge 2 ]; echo $?) "two edu devices (1234:11e8) present (found $n_edu)"
nvme=$(grep -l 0x0010 /sys/bus/pci/devices/*/device | head -n1)
nvme=${nvme%/device}
tap_ok $([ -n "$nvme" ] && [ "$(cat "$nvme/vendor")" = 0x1b36 ]; echo $?) "an nvme endpoint (1b36:0010) is present"
tap_ok $([ -n "$nvme" ] && [ "$(stat -c %s "$nvme/config")" = 4096 ]; echo $?) "the nvme endpoint has 4 KiB (extended) config space"
tap_check "an IOMMU is registered" sh -c 'ls /sys/class/iommu/ | grep -q dmar'
# Scalable mode, from what only scalable mode shows: the kernel sets the Translation Table Mode
# bit 10 (DMA_RTADDR_SMT) of each IOMMU's Root Table Address register when, and only when, it runs
# that IOMMU in scalable mode (iommu_set_root_entry, drivers/iommu/intel/iommu.c); the Intel
# IOMMU debugfs (CONFIG_INTEL_IOMMU_DEBUGFS, in tests/config) prints the register as the IOMMU
# holds it. With intel_iommu=on,sm_off the bit is 0 although the hardware's ecap still offers
# scalable mode (SMTS), so neither ecap nor a log line can stand in for it. Every IOMMU counts.
# sm_rtaddr: each IOMMU's RTADDR as the dump shows it; fails unless there is one and each has bit 10.
sm_rtaddr() {
	_r=/sys/kernel/debug/iommu/intel/iommu_regset
	_l=$(awk '/^IOMMU: /{ name = $2 } $1 == "RTADDR" { print name, $3 }' "$_r" 2>&1) || { echo "cannot read $_r: $_l"; return 1; }
	[ -n "$_l" ] || { echo "no RTADDR line in $_r"; return 1; }
	_bad=0
	while read -r _n _v; do
		echo "$_n: RTADDR $_v, ecap $(cat "/sys/class/iommu/$_n/intel-iommu/ecap" 2>/dev/null)"
		[ $(((_v >> 10) & 1)) = 1 ] || { echo "$_n: RTADDR bit 10 (TTM scalable) is 0: legacy-mode tables"; _bad=1; }
	done <<EOF2
$_l
EOF2
	return $_bad
}
o=$(sm_rtaddr 2>&1)
rc=$?
tap_ok $rc "the IOMMU runs in scalable mode (Root Table Address register: TTM scalable, on every IOMMU)" "$o"
[ $rc = 0 ] && tap_diag "$o"
tap_check "/dev/iommu exists (IOMMUFD)" test -c /dev/iommu
tap_end
