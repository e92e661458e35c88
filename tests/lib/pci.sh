# Sourced by the guest suites: PCI functions by ID.

# find_fn VENDOR DEVICE: the addresses (0000:bb:dd.f) of the functions with these IDs (0x-prefixed,
# as sysfs prints them), one per line, in sysfs order.
find_fn() {
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat "$d/vendor")" = "$1" ] && [ "$(cat "$d/device")" = "$2" ] && basename "$d"
	done
}
