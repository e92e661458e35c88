#!/bin/sh
# Guest suite: the kernel tree's own tools/testing/selftests/vfio against an edu and the nvme
# endpoint, bound first to vfio-pci (the control) and then to persona-vfio-pci. One TAP file (the
# suite's, $1; the programs' own output in $1.log), each line named "DRIVER: DEVICE/PROGRAM: TEST";
# it ends with a parity check: every test that passes on vfio-pci passes on persona-vfio-pci.
#
# What runs where:
# - vfio_pci_device_test, vfio_iommufd_setup_test: both devices. The test skips MSI on a device
#   without an MSI capability (the nvme QEMU makes) and MSI-X without an MSI-X capability (the
#   edu): such a SKIP stands only when the device's config space indeed has no such capability,
#   and then says so; otherwise it is a failure.
# - vfio_dma_mapping_test in three parts, chosen with the harness's variant filters (-v/-V):
#   . every variant but the hugetlb 2 MiB and 1 GiB ones (4 KiB pages, the map limits);
#   . the hugetlb_2mb variants, always: the suite reserves 2 MiB pages at run time first (a
#     failed reservation is a failing line) and, since the pages are there, a variant that
#     skips for want of them is a failure, not a skip;
#   . the hugetlb_1gb variants in the full tier only (PVP_TIER=full, make check-full), just as
#     strict. The test kernels cannot allocate 1 GiB pages at run time (no CONFIG_CONTIG_ALLOC:
#     not even the page size exists then), so the full tier boots this suite with
#     "hugepagesz=1G hugepages=1" (tests/manifest, boot-append); without them the check line
#     fails. In the check tier they are not run at all (the -V filter leaves them out of the plan).
# - vfio_pci_driver_test only on a device the selftests library has a driver for (lib/drivers:
#   igb 8086:10c9, ioat, dsa, NVIDIA falcon GPUs). QEMU makes only the igb; when the guest has
#   one, it runs there after the hugetlb pages are given back (its fixture pins 1 GiB + 2 MiB).
. /repo/tests/lib/tap.sh
ST=$PVP_KBUILD/selftests-vfio
tier=${PVP_TIER:-check}
DMA=vfio_dma_mapping_test
H2=/sys/kernel/mm/hugepages/hugepages-2048kB
H1=/sys/kernel/mm/hugepages/hugepages-1048576kB
# Each hugetlb test maps one page, one test at a time: 2 leave a spare.
N2=2
DRIVERS="vfio-pci persona-vfio-pci"

pci_find() { # VENDOR DEVICE: the first PCI function with these ids
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat "$d/vendor")" = "$1" ] && [ "$(cat "$d/device")" = "$2" ] && { basename "$d"; return; }
	done
}
edu=$(pci_find 0x1234 0x11e8)
nvme=$(pci_find 0x1b36 0x0010)
igb=$(pci_find 0x8086 0x10c9)

# has_cap BDF ID: the function's capability list (config space) has a capability ID (decimal).
has_cap() {
	od -An -tu1 -v -N256 "/sys/bus/pci/devices/$1/config" | awk -v want="$2" '
		{ for (i = 1; i <= NF; i++) b[n++] = $i }
		END {
			if (int(b[6] / 16) % 2 == 0) exit 1
			p = b[52] - b[52] % 4
			for (c = 0; p >= 64 && c < 48; c++) { if (b[p] == want) exit 0; p = b[p + 1] - b[p + 1] % 4 }
			exit 1
		}'
}

# The DMA mapping test's variants whose name ends in _SUFFIX, each after FLAG, from its own
# listing (-l; the address only satisfies its argument parsing).
variants() {
	[ -x "$ST/$DMA" ] || return 0
	"$ST/$DMA" -l 0000:00:00.0 2>&1 | grep -oE "[a-z0-9_]+_$2" | sort -u | sed "s/^/$1 /" | tr '\n' ' '
}
only_2m=$(variants -v hugetlb_2mb) only_1g=$(variants -v hugetlb_1gb)
not_huge="$(variants -V hugetlb_2mb)$(variants -V hugetlb_1gb)"

# hugetlb_strict CMD...: runs CMD (a kselftest program) and prints its output with every test it
# skipped turned into a failure: the pages it needs were reserved, so a skip is a bug here.
hugetlb_strict() {
	_hl=$(mktemp)
	"$@" >"$_hl" 2>&1
	_hs=$?
	sed -E 's/^ok ([0-9]+) (.*) # [Ss][Kk][Ii][Pp] ?(.*)$/not ok \1 \2 - skipped though the pages were reserved: \3/' "$_hl"
	rm -f "$_hl"
	return $_hs
}

# irq_skips KIND BDF CMD...: runs CMD (vfio_pci_device_test) and prints its output; its SKIP of
# MSI or MSI-X stands, saying why, when the device has no such capability, and fails otherwise.
irq_skips() {
	_k=$1 _b=$2
	shift 2
	_il=$(mktemp)
	"$@" >"$_il" 2>&1
	_is=$?
	while IFS= read -r _l; do
		_cap= _what=
		case "$_l" in
		"ok "*"# SKIP MSI-x: not supported"*) _cap=17 _what=MSI-X ;;
		"ok "*"# SKIP MSI: not supported"*) _cap=5 _what=MSI ;;
		esac
		if [ -z "$_cap" ]; then printf '%s\n' "$_l"
		elif has_cap "$_b" "$_cap"; then printf 'not ok %s - skipped, yet %s has an %s capability\n' "$(printf '%s' "${_l#ok }" | sed 's/ # SKIP.*//')" "$_b" "$_what"
		else printf '%s (the %s QEMU makes has no %s capability)\n' "$_l" "$_k" "$_what"
		fi
	done <"$_il"
	rm -f "$_il"
	return $_is
}

run_tests() { # PREFIX BDF
	pre=$1 dev=$2 kind=${1##*: }
	for t in vfio_pci_device_test vfio_iommufd_setup_test; do
		if [ ! -x "$ST/$t" ]; then tap_ok 1 "$pre/$t is built" "$ST/$t is missing"; continue; fi
		tap_kselftest "$pre/$t" irq_skips "$kind" "$dev" "$ST/$t" "$dev"
	done
	if [ ! -x "$ST/$DMA" ]; then tap_ok 1 "$pre/$DMA is built" "$ST/$DMA is missing"; return; fi
	# shellcheck disable=SC2086 # the filter options are words
	tap_kselftest "$pre/$DMA" "$ST/$DMA" $not_huge "$dev"
	# shellcheck disable=SC2086
	tap_kselftest "$pre/$DMA (2 MiB pages)" hugetlb_strict "$ST/$DMA" $only_2m "$dev"
	if [ "$tier" = full ]; then
		# shellcheck disable=SC2086
		tap_kselftest "$pre/$DMA (1 GiB pages)" hugetlb_strict "$ST/$DMA" $only_1g "$dev"
	fi
}

# for_each_binding DEVICE_NAME BDF FUNCTION: FUNCTION "DRIVER: DEVICE_NAME" BDF with the device
# bound to each driver in turn.
for_each_binding() {
	for drv in $DRIVERS; do
		if [ ! -d "/sys/bus/pci/drivers/$drv" ]; then tap_ok 1 "$drv is registered"; continue; fi
		if ! out=$(pvp-bind "$2" "$drv" 2>&1); then
			tap_ok 1 "$drv: bind $1 ($2)" "$out"
			continue
		fi
		"$3" "$drv: $1" "$2"
		pvp-bind "$2" none >/dev/null 2>&1
	done
}

tap=$1
tap_begin "$tap"
[ -n "$edu" ] && [ -n "$nvme" ]
tap_ok $? "the guest has the edu and the nvme" "edu: ${edu:-none}, nvme: ${nvme:-none}"

# 2 MiB pages, reserved now and checked.
tap_ok "$([ -n "$only_2m" ]; echo $?)" "$DMA lists its hugetlb_2mb variants" "$DMA -l: none found"
echo "$N2" 2>/dev/null >"$H2/nr_hugepages"
nr=$(cat "$H2/nr_hugepages" 2>/dev/null) free=$(cat "$H2/free_hugepages" 2>/dev/null)
[ "${nr:-0}" -ge "$N2" ] && [ "${free:-0}" -ge "$N2" ]
tap_ok $? "2 MiB hugetlb pages: $N2 reserved for the hugetlb_2mb variants" \
	"asked for $N2 through $H2/nr_hugepages: nr_hugepages ${nr:-absent}, free_hugepages ${free:-absent}"
# 1 GiB pages (full tier): reserved at boot, checked.
if [ "$tier" = full ]; then
	tap_ok "$([ -n "$only_1g" ]; echo $?)" "$DMA lists its hugetlb_1gb variants" "$DMA -l: none found"
	free=$(cat "$H1/free_hugepages" 2>/dev/null)
	[ "${free:-0}" -ge 1 ]
	tap_ok $? "1 GiB hugetlb page: reserved at boot for the hugetlb_1gb variants (full tier)" \
		"free_hugepages in $H1: ${free:-absent (no 1 GiB page size)}; the full tier boots this suite with \"hugepagesz=1G hugepages=1\" (tests/manifest, boot-append); kernel command line: $(cat /proc/cmdline)"
fi

for d in edu nvme; do
	eval "bdf=\$$d"
	[ -n "$bdf" ] && for_each_binding "$d" "$bdf" run_tests
done

# The pages go back: for the driver test's fixture and whatever runs next in this boot.
echo 0 2>/dev/null >"$H2/nr_hugepages"
[ -e "$H1/nr_hugepages" ] && echo 0 2>/dev/null >"$H1/nr_hugepages"

driver_test() { # PREFIX BDF
	VFIO_SELFTESTS_BDF=$2 tap_kselftest "$1/vfio_pci_driver_test" "$ST/vfio_pci_driver_test" "$2"
}
if [ -n "$igb" ]; then
	for_each_binding igb "$igb" driver_test
else
	tap_diag "vfio_pci_driver_test: not scheduled, no device here has a selftests driver (QEMU's igb would)"
fi
[ "$tier" = full ] || tap_diag "hugetlb_1gb variants: left out in the check tier (make check-full runs them)"

# Parity: every test that passes on vfio-pci passes on persona-vfio-pci.
passed() { grep -E "^ok [0-9]+ - $1: " "$tap" | grep -v '# SKIP' | sed -E "s/^ok [0-9]+ - $1: //"; }
missing=$(passed vfio-pci | while IFS= read -r name; do
	passed persona-vfio-pci | grep -qxF "$name" || echo "$name"
done)
n_c=$(passed vfio-pci | wc -l)
[ -z "$missing" ] && [ "$n_c" -gt 0 ]
tap_ok $? "parity: every test that passes on vfio-pci ($n_c) passes on persona-vfio-pci" \
	"$(printf '%s\n' "${missing:-nothing passed on vfio-pci}" | sed 's/^/only on vfio-pci: /')"
tap_end
