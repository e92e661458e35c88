#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest side of `make bench`, each figure against a baseline in the same guest run:
#  - config-region access latency per byte class on an edu bound to persona-vfio-pci against an
#    identical edu bound to vfio-pci (build/bench/cfg_latency, interleaved);
#  - PASID attach, replace and detach on an nvme function with the PASID fixture, on vfio-pci and
#    on persona-vfio-pci in alternating blocks (build/bench/pasid_attach);
#  - save and load throughput of the ivshmem-plain backend (16 MiB BAR 2) against memcpy from
#    and to the same BAR in the same rounds (build/bench/mem_tput);
#  - the migration round trip of persona-vfio-pci on an edu against the kernel's mtty sample
#    (samples/vfio-mdev/mtty.c), both through their vfio cdev and iommufd, interleaved by
#    build/bench/mig_roundtrip.
# Prints the tables; exits non-zero with a message when a device cannot be set up (no timing is
# ever judged). PARTS (default all: "cfg pasid mem mig") runs only those parts.
# Usage: guest-bench.sh [ROUNDS [WARMUP [CFG_ROUNDS [PARTS]]]]
rounds=${1:-500} warmup=${2:-20} cfg_rounds=${3:-20000} parts=${4:-cfg pasid mem mig}
want() { case " $parts " in *" $1 "*) return 0 ;; esac; return 1; }
BENCH=/repo/build/bench/mig_roundtrip
CFG=/repo/build/bench/cfg_latency
drv=persona-vfio-pci
# A fixed uuid for the mtty mdev: the guest is fresh on every run.
uuid=6d0c1c6e-70e5-4b7c-9f0a-2b6e5d1e0b01

die() { echo "bench: $*" >&2; exit 1; }
[ -x "$BENCH" ] || die "$BENCH is not built (make bench-progs)"

edus=
for d in /sys/bus/pci/devices/*; do
	[ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ] && edus="$edus $(basename "$d")"
done
set -- $edus
[ $# -ge 2 ] || die "two edu functions (1234:11e8) are needed in the guest, found: $edus"
edu=$1 base=$2

# Config path: edu $base on vfio-pci (baseline) against edu $edu on persona-vfio-pci.
modprobe vfio-pci 2>/dev/null
if want cfg; then
	[ -x "$CFG" ] || die "$CFG is not built (make bench-progs)"
	pvp-bind "$base" vfio-pci >/dev/null || die "cannot bind $base to vfio-pci"
	pvp-bind "$edu" "$drv" >/dev/null || die "cannot bind $edu to $drv"
	"$CFG" -n "$cfg_rounds" "$base" "$edu" || die "the config latency bench failed"
	pvp-bind "$base" none >/dev/null 2>&1
	pvp-bind "$edu" none >/dev/null 2>&1
fi

# PASID: the fixture gives the first nvme function a PASID capability; the two drivers take
# turns on it, four blocks each.
if want pasid; then
	PA=/repo/build/bench/pasid_attach
	FX=${PVP_FIXTURES:-/repo/build/fixtures}/pasid/pasid_fixture.ko
	nvme=
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat "$d/vendor")" = 0x1b36 ] && [ "$(cat "$d/device")" = 0x0010 ] && { nvme=$(basename "$d"); break; }
	done
	[ -n "$nvme" ] || die "no nvme function (1b36:0010) for the PASID bench"
	[ -x "$PA" ] || die "$PA is not built (make bench-progs)"
	pvp-bind "$nvme" none >/dev/null 2>&1
	insmod "$FX" || die "the PASID fixture does not load"
	pout= nl='
'
	for blk in 1 2 3 4; do
		for d in vfio-pci "$drv"; do
			pvp-bind "$nvme" "$d" >/dev/null || die "cannot bind $nvme to $d"
			o=$("$PA" -n "${PVP_BENCH_PASID_ROUNDS:-500}" -w 50 "$d" "$nvme") || die "the PASID bench failed on $d: $o"
			pout="$pout$o$nl"
			pvp-bind "$nvme" none >/dev/null 2>&1
		done
	done
	rmmod pasid_fixture
	printf '%s' "$pout" | awk -v drv="$drv" '
		$1 == "pasid" { sub(/:$/, "", $3); k = $2 SUBSEP $3; n[k]++; v[k, n[k]] = $5 }
		function med(k,   i, j, t, m, a) {
			m = n[k]; for (i = 1; i <= m; i++) a[i] = v[k, i]
			for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
			return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
		}
		END {
			split("attach replace detach", ops, " ")
			for (o = 1; o <= 3; o++) {
				b = med(ops[o] SUBSEP "vfio-pci"); x = med(ops[o] SUBSEP drv)
				printf "pasid %s: baseline %d ns, device %d ns, ratio %.2f (median of 4 block medians)\n", ops[o], b, x, b ? x / b : 0
			}
		}'
fi

# Memory backend: the 16 MiB ivshmem-plain function on persona-vfio-pci (its auto persona).
if want mem; then
	MT=/repo/build/bench/mem_tput
	[ -x "$MT" ] || die "$MT is not built (make bench-progs)"
	shm=
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x1110 ] || continue
		sed -n 3p "$d/resource" | { read -r s e _; [ $((e - s + 1)) = 16777216 ]; } && { shm=$(basename "$d"); break; }
	done
	[ -n "$shm" ] || die "no 16 MiB ivshmem-plain function (1af4:1110) for the memory bench"
	pvp-bind "$shm" "$drv" >/dev/null || die "cannot bind $shm to $drv"
	"$MT" -n "${PVP_BENCH_MEM_ROUNDS:-10}" "$shm" || die "the memory backend bench failed"
	pvp-bind "$shm" none >/dev/null 2>&1
fi

want mig || exit 0

# Baseline: an mtty mdev with two ports (the larger of mtty's two types).
modprobe mtty || die "modprobe mtty failed (CONFIG_SAMPLE_VFIO_MDEV_MTTY=m in tests/config)"
types=/sys/class/mdev_bus/mtty/mdev_supported_types
[ -d "$types" ] || die "mtty registered no mdev types ($types missing)"
type=$(ls "$types" | grep -- '-2$' | head -n1)
[ -n "$type" ] || type=$(ls "$types" | head -n1)
[ -n "$type" ] || die "no mdev type under $types"
echo "$uuid" >"$types/$type/create" || die "cannot create an mdev of type $type"
mcdev=$(ls /sys/bus/mdev/devices/$uuid/vfio-dev 2>/dev/null | head -n1)
[ -n "$mcdev" ] || die "the mtty mdev $uuid has no vfio cdev (CONFIG_VFIO_DEVICE_CDEV)"

# Ours: the edu bound to persona-vfio-pci (its persona derived at bind).
ecdev=$(pvp-bind "$edu" "$drv") || die "cannot bind $edu to $drv"
[ -n "$ecdev" ] || die "$edu on $drv has no vfio cdev"

echo "mtty: mdev $uuid (type $type, $mcdev); $drv: edu $edu ($ecdev, persona $(cat /sys/bus/pci/devices/$edu/persona 2>/dev/null | head -n1))"
"$BENCH" -n "$rounds" -w "$warmup" "mtty=/dev/vfio/devices/$mcdev" "$drv=/dev/vfio/devices/$ecdev"
rc=$?
echo 1 >/sys/bus/mdev/devices/$uuid/remove 2>/dev/null
pvp-bind "$edu" none >/dev/null 2>&1
exit $rc
