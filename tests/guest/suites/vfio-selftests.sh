#!/bin/sh
# Guest suite: the kernel tree's own tools/testing/selftests/vfio against an edu and the nvme
# endpoint, bound first to vfio-pci (the control) and then to persona-vfio-pci. Writes
# guest-vfio-selftests-vfio-pci.tap and guest-vfio-selftests-persona-vfio-pci.tap; the latter
# ends with a parity check: every test that passes on vfio-pci passes on persona-vfio-pci.
. /repo/tests/lib/tap.sh
base=${1%.tap}
ST=$PVP_KBUILD/selftests-vfio
tests="vfio_pci_device_test vfio_iommufd_setup_test vfio_dma_mapping_test vfio_pci_driver_test"

edu=$(grep -l 0x11e8 /sys/bus/pci/devices/*/device | head -n 1); edu=$(basename "${edu%/device}")
nvme=$(grep -l 0x0010 /sys/bus/pci/devices/*/device | head -n 1); nvme=$(basename "${nvme%/device}")
# 2 MiB pages for the hugetlb variants of the DMA mapping test.
echo 64 >/proc/sys/vm/nr_hugepages 2>/dev/null

run_driver() {
	drv=$1
	tap_begin "$base-$drv.tap"
	if [ ! -d "/sys/bus/pci/drivers/$drv" ]; then
		tap_ok 1 "$drv is registered"
		tap_end
		return
	fi
	for dev in $edu $nvme; do
		kind=edu; [ "$dev" = "$nvme" ] && kind=nvme
		if ! out=$(pvp-bind "$dev" "$drv" 2>&1); then
			tap_ok 1 "$kind: bind $dev to $drv" "$out"
			continue
		fi
		for t in $tests; do
			if [ ! -x "$ST/$t" ]; then tap_skip "$kind/$t" "not built"; continue; fi
			VFIO_SELFTESTS_BDF=$dev tap_kselftest "$kind/$t" "$ST/$t" "$dev"
		done
		pvp-bind "$dev" none >/dev/null 2>&1
	done
	tap_end
}

run_driver vfio-pci
run_driver persona-vfio-pci

# Parity: append to the persona file (re-open it without truncating).
p=$base-persona-vfio-pci.tap c=$base-vfio-pci.tap
missing=$(grep '^ok ' "$c" | grep -v '# SKIP' | sed -E 's/^ok [0-9]+ - //' | while IFS= read -r name; do
	grep -qF "ok" "$p" && grep -E '^ok [0-9]+ - ' "$p" | grep -v '# SKIP' | sed -E 's/^ok [0-9]+ - //' | grep -qxF "$name" || echo "$name"
done)
plan=$(grep -c '^\(not \)\{0,1\}ok ' "$p")
sed -i '/^1\.\.[0-9]*$/d' "$p"
n=$((plan + 1))
if [ -z "$missing" ]; then echo "ok $n - parity: every test that passes on vfio-pci passes on persona-vfio-pci" >>"$p"
else echo "not ok $n - parity: every test that passes on vfio-pci passes on persona-vfio-pci" >>"$p"; echo "$missing" | sed 's/^/# only on vfio-pci: /' >>"$p"; fi
echo "1..$n" >>"$p"
grep -q '^not ok' "$p" "$c" && exit 1
exit 0
