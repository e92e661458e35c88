#!/bin/sh
# Guest suite: the module as DKMS built it (build/dkms/persona_vfio_pci.ko, from the host suite
# host-dkms that scripts/check runs before booting the guest; build/dkms-debug and build/dkms-gcc for those kernels) loads in the test guest, binds an
# edu and presents its persona; then the regular build is loaded again for the suites after this.
. /repo/tests/lib/tap.sh
tap_begin "$1"
mod=persona_vfio_pci
ko=${PVP_MODULE_DIR:-/repo/build/module}/$mod.ko
# Built for this kernel's flavour: build/dkms, build/dkms-debug (as build/module, build/module-debug).
dk=/repo/build/dkms${ko#/repo/build/module}
# The module DKMS built is the product as a DKMS user gets it: missing is a failure (issue 21).
if [ ! -f "$dk" ]; then
	tap_ok 1 "the DKMS-built module for this kernel exists ($dk)" \
		"missing: $dk (scripts/check builds it through the host suite host-dkms, one per kernel flavour; by hand: PVP_DKMS_OUT=build/dkms tests/host/dkms.sh FILE.tap)"
	tap_end
	exit 1
fi
edu=$(grep -l 0x11e8 /sys/bus/pci/devices/*/device | head -n 1)
edu=$(basename "${edu%/device}")
tap_check "rmmod $mod (the regular build)" rmmod $mod
tap_check "insmod the DKMS-built module" insmod "$dk"
tap_check "it registers the persona-vfio-pci driver" test -d /sys/bus/pci/drivers/persona-vfio-pci
out=$(vfio-persona bind "$edu" --persona auto 2>&1)
tap_ok $? "vfio-persona bind $edu --persona auto" "$out"
out=$(vfio-persona check --live "$edu" 2>&1)
tap_ok $? "check --live: VFIO shows the persona in force, identical" "$out"
tap_check "rmmod the DKMS-built module" rmmod $mod
tap_check "insmod the regular build again" insmod "$ko"
tap_end
