# Sourced by the guest suites: PCI functions by ID.

# find_fn VENDOR DEVICE: the addresses (0000:bb:dd.f) of the functions with these IDs (0x-prefixed,
# as sysfs prints them), one per line, in sysfs order.
find_fn() {
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat "$d/vendor")" = "$1" ] && [ "$(cat "$d/device")" = "$2" ] && basename "$d"
	done
}

# bar_size BDF N: size of BAR N in bytes from sysfs resource (0 when the BAR is absent).
bar_size() {
	sed -n "$(($2 + 1))p" "/sys/bus/pci/devices/$1/resource" |
		{ read -r s e _; [ "$s" = 0x0000000000000000 ] && [ "$e" = "$s" ] && echo 0 || echo $((e - s + 1)); }
}
