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
tap_check "the IOMMU runs in scalable mode" sh -c 'dmesg | grep -qi "scalable mode\|sm_on\|Scalable" || grep -q . /sys/kernel/debug/iommu/intel/dmar_perf_latency 2>/dev/null'
tap_check "/dev/iommu exists (IOMMUFD)" test -c /dev/iommu
tap_end
