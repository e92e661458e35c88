#!/bin/sh
# Guest suite: config space reads and writes from several threads racing VFIO_DEVICE_RESET on
# persona-vfio-pci, with a persona holding a 4-byte emulated register: no torn emulated value,
# no I/O error, and (run-suites checks the kernel log) no lockdep report.
. /repo/tests/lib/tap.sh
tap_begin "$1"
drv=persona-vfio-pci
FWD=/repo/build/firmware/persona-vfio-pci
edu=$(grep -l 0x11e8 /sys/bus/pci/devices/*/device | head -n 1)
edu=$(basename "$(dirname "$edu")")
# Not registered is the product missing (issue 21), never a skip: a failing line, the plan, exit 1.
if [ ! -d "/sys/bus/pci/drivers/$drv" ]; then
	tap_ok 1 "$drv is registered (/sys/bus/pci/drivers/$drv)" \
		"missing: /sys/bus/pci/drivers/$drv; loaded modules: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"
	tap_end
	exit 1
fi
mkdir -p "$FWD"
tap_check "compile edu-regs@1.0" vfio-persona compile /repo/tests/personas/concurrency/edu-regs.toml -o "$FWD/edu-regs@1.0.bin"
tap_check "bind $edu with persona edu-regs@1.0" vfio-persona bind "$edu" --persona edu-regs@1.0
PVP_BDF=$edu PVP_REG=60 PVP_RESET=5a5a5a5a tap_kselftest "race" /repo/build/selftests/persona_concurrency_test
tap_check "unbind $edu" pvp-bind "$edu" none
tap_end
