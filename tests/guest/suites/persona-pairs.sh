#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest suite: a persona pins every byte a VFIO user sees (issue 10). Pairs of physically
# different functions of one model, made by QEMU properties (scripts/guest-run adds them behind
# their own PCIe root ports):
#   virtio-rng-pci vectors=4 (twice), vectors=8 (MSI-X Table Size 7 instead of 3), vectors=4 with
#   ats=on (an extra ATS extended capability); ivshmem-plain with a 16 MiB and a 32 MiB memdev
#   (BAR 2 size).
# Under one persona, derived from one function of a pair with `vfio-persona capture` + `derive`,
# either both present byte-identical config regions through VFIO (every bit but the unpinned
# bits of dynamic registers, compared here by an independent reader: od over the raw VFIO view)
# and identical region sizes, or the selection is refused and the kernel log names the field.
# `check --live` never says identical where that reader finds a difference. A BAR presented
# smaller cannot be read, written, mmapped or given an ioeventfd past the persona's size.
# Usage: persona-pairs.sh FILE.tap
. /repo/tests/lib/tap.sh
. /repo/tests/lib/pci.sh
tap_begin "$1"

drv=persona-vfio-pci
FW=/repo/build/firmware
FWD=$FW/persona-vfio-pci
T=$(mktemp -d)
VP=vfio-persona

rngs=$(find_fn 0x1af4 0x1044)
shms=$(find_fn 0x1af4 0x1110)

finish() {
	for b in $rngs $shms; do pvp-bind "$b" none >/dev/null 2>&1; done
	rm -rf "$T"
	tap_end
	exit $?
}
expect() { tap_ok "$([ "$2" = "$3" ]; echo $?)" "$1" "got \"$2\", want \"$3\""; }

# hexat FILE OFF N: N bytes at OFF as one hex string.
hexat() { od -A n -t x1 -j $(($2)) -N "$3" "$1" | tr -d ' \n'; }
# msix_size BDF: the MSI-X Table Size field of the physical device ("" without MSI-X).
msix_size() {
	_c=/sys/bus/pci/devices/$1/config
	_p=$((0x$(hexat "$_c" 0x34 1) & 0xfc)) _n=0
	while [ "$_p" -ge 64 ] && [ "$_n" -lt 48 ]; do
		if [ "$(hexat "$_c" "$_p" 1)" = 11 ]; then
			echo $((0x$(hexat "$_c" $((_p + 3)) 1)$(hexat "$_c" $((_p + 2)) 1) & 0x7ff))
			return
		fi
		_p=$((0x$(hexat "$_c" $((_p + 1)) 1) & 0xfc)) _n=$((_n + 1))
	done
}
# has_ext BDF: the physical device has an extended capability at 0x100.
has_ext() { [ "$(hexat "/sys/bus/pci/devices/$1/config" 0x100 4)" != 00000000 ]; }

# Pick the functions by what they are, not by address.
r4a= r4b= r8= rats= s16= s32=
for b in $rngs; do
	m=$(msix_size "$b")
	if has_ext "$b"; then rats=$b
	elif [ "$m" = 7 ]; then r8=$b
	elif [ "$m" = 3 ] && [ -z "$r4a" ]; then r4a=$b
	elif [ "$m" = 3 ]; then r4b=$b
	fi
done
for b in $shms; do
	case $(bar_size "$b" 2) in
	16777216) s16=$b ;;
	33554432) s32=$b ;;
	esac
done
if [ -z "$r4a" ] || [ -z "$r4b" ] || [ -z "$r8" ] || [ -z "$rats" ] || [ -z "$s16" ] || [ -z "$s32" ]; then
	tap_ok 1 "the pair devices are present (scripts/guest-run's default device list)" \
		"rng vectors=4: $r4a $r4b, vectors=8: $r8, ats: $rats; ivshmem 16M: $s16, 32M: $s32"
	finish
fi
tap_ok 0 "pair devices: rng $r4a $r4b (4 vectors) $r8 (8) $rats (ATS), ivshmem $s16 (16M) $s32 (32M)"
if [ ! -d "/sys/bus/pci/drivers/$drv" ]; then
	tap_ok 1 "$drv is registered (/sys/bus/pci/drivers/$drv)" \
		"missing: /sys/bus/pci/drivers/$drv; loaded modules: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"
	finish
fi
fwp=/sys/module/firmware_class/parameters/path
[ -w "$fwp" ] && [ -z "$(cat "$fwp")" ] && printf '%s' "$FW" >"$fwp"
mkdir -p "$FWD"

# persona_of BDF NAME: derives NAME@1.0 from the function (unbound first: sysfs config is the
# device's own either way) and installs its blob; prints nothing, fails like derive.
persona_of() {
	$VP capture "$1" -o "$T/$2.dump" && $VP derive "$T/$2.dump" --name "$2" -o "$T/$2.toml" &&
		$VP compile "$T/$2.toml" -o "$FWD/$2@1.0.bin"
}
# choose BDF SEL: binds BDF to the driver with persona SEL; the exit status of `bind`.
choose() {
	pvp-bind "$1" none >/dev/null 2>&1
	$VP bind "$1" --persona "$2" >"$T/bind.out" 2>&1
}
# view BDF FILE: the config region as a VFIO user reads it.
view() { $VP dump --live "$1" -o "$2" >/dev/null 2>"$T/view.err"; }
# masks TOML: one decimal mask per config byte, the bits two devices presenting the persona must
# share: 255 everywhere but in dynamic ranges, where only the pinned (read-only) bits count.
masks() {
	awk '
	function h2d(h,  i, v) { v = 0; h = tolower(h); sub(/^0x/, "", h)
		for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1
		return v }
	function flush(  i, n, k) {
		if (rule == "dynamic") { n = split(mask, mb, " ")
			for (i = st; i < en; i++) m[i] = (n ? h2d(mb[i - st + 1]) : 0) }
		rule = ""; mask = "" }
	/^config-size = / { size = $3 }
	/^\[\[/ { flush() }
	/^start = / { st = h2d($3) }
	/^end = / { en = h2d($3) }
	/^rule = / { rule = $3; gsub(/"/, "", rule) }
	/^mask = / { mask = $0; sub(/^mask = "/, "", mask); sub(/"$/, "", mask) }
	END { flush(); for (i = 0; i < size; i++) print (i in m ? m[i] : 255) }' "$1"
}
# differ MASKS A B: the offsets (hex) where A and B differ in masked bits; empty when identical.
differ() {
	od -A n -v -t u1 "$2" | tr -s ' ' '\n' | sed '/^$/d' >"$T/a.u"
	od -A n -v -t u1 "$3" | tr -s ' ' '\n' | sed '/^$/d' >"$T/b.u"
	paste "$1" "$T/a.u" "$T/b.u" | awk '{ if (and(xor($2, $3), $1)) printf "%03x ", NR - 1 }'
}
# klog PATTERN: the kernel log has a line with PATTERN since the mark.
mark() { dmesg >"$T/dmesg.0"; }
klog() {
	dmesg | tail -n +$(($(wc -l <"$T/dmesg.0") + 1)) >"$T/dmesg.1"
	grep persona "$T/dmesg.1" | head -n 4 | while IFS= read -r l; do tap_diag "kernel: $l" >/dev/null; done
	grep -F -- "$1" "$T/dmesg.1" >/dev/null
}

# 1. Two identical virtio-rng functions under one persona: byte-identical, same region sizes.
persona_of "$r4a" rng-v4
tap_ok $? "derive rng-v4@1.0 from $r4a (capture + derive + compile)" "$(cat "$T/bind.out" 2>/dev/null)"
masks "$T/rng-v4.toml" >"$T/rng-v4.masks"
for b in $r4a $r4b; do
	choose "$b" rng-v4@1.0
	tap_ok $? "rng-v4@1.0 selected on $b" "$(cat "$T/bind.out")"
	tap_check "rng-v4@1.0 on $b: check --live identical" $VP check --live "$b"
	view "$b" "$T/v-$b.bin"
done
d=$(differ "$T/rng-v4.masks" "$T/v-$r4a.bin" "$T/v-$r4b.bin")
expect "$r4a and $r4b present byte-identical config regions (independent reader)" "$d" ""
sz() { $VP access --live "$1" size:0 size:1 size:2 size:3 size:4 size:5 size:6 2>&1 | tr '\n' ' '; }
expect "$r4a and $r4b present identical region sizes" "$(sz "$r4a")" "$(sz "$r4b")"

# 2. The same persona on the one with 8 vectors: refused, the log names the MSI-X Table Size.
mark
choose "$r8" rng-v4@1.0
rc=$?
tap_ok "$([ $rc != 0 ]; echo $?)" "rng-v4@1.0 on $r8 (MSI-X Table Size 7, not 3) is refused" "$(cat "$T/bind.out")"
tap_ok "$(klog "MSI-X message control"; echo $?)" "the kernel log names the MSI-X message control of $r8" \
	"$(dmesg | tail -n 5)"
# Under its own (auto) persona it presents something else: check --live of rng-v4 on it says so,
# and the independent reader agrees.
pvp-bind "$r8" none >/dev/null 2>&1
$VP bind "$r8" --persona auto >/dev/null 2>&1
view "$r8" "$T/v-r8.bin"
d=$(differ "$T/rng-v4.masks" "$T/v-$r4a.bin" "$T/v-r8.bin")
tap_ok "$([ -n "$d" ]; echo $?)" "the independent reader finds $r8 differs from $r4a (at $d)"
o=$($VP check --live "$r8" --persona "$FWD/rng-v4@1.0.bin" 2>&1)
rc=$?
tap_ok "$([ $rc = 1 ]; echo $?)" "check --live of rng-v4@1.0 on $r8 does not say identical" "$o"

# 3. The same persona on the one with ATS: refused, the log names the ATS capability.
mark
choose "$rats" rng-v4@1.0
rc=$?
tap_ok "$([ $rc != 0 ]; echo $?)" "rng-v4@1.0 on $rats (an extra ATS capability) is refused" "$(cat "$T/bind.out")"
tap_ok "$(klog "ATS capability 0xf"; echo $?)" "the kernel log names the ATS capability of $rats" \
	"$(dmesg | tail -n 5)"

# 4. ivshmem: the 16 MiB persona on the 32 MiB device passes, BAR 2 presented at 16 MiB.
persona_of "$s16" shm-16m
tap_ok $? "derive shm-16m@1.0 from $s16"
masks "$T/shm-16m.toml" >"$T/shm.masks"
for b in $s16 $s32; do
	choose "$b" shm-16m@1.0
	tap_ok $? "shm-16m@1.0 selected on $b" "$(cat "$T/bind.out")"
	tap_check "shm-16m@1.0 on $b: check --live identical (region sizes included)" $VP check --live "$b"
	view "$b" "$T/v-$b.bin"
done
d=$(differ "$T/shm.masks" "$T/v-$s16.bin" "$T/v-$s32.bin")
expect "$s16 and $s32 present byte-identical config regions (independent reader)" "$d" ""
expect "$s16 and $s32 present identical region sizes" "$(sz "$s32")" "$(sz "$s16")"
o=$($VP access --live "$s32" size:2 2>&1)
expect "BAR 2 of $s32 is presented at 16 MiB" "$o" "size 2 0x1000000"
# Sizing BAR 2 through config writes shows the persona's size (the BAR register is emulated).
o=$($VP access --live "$s32" w:0x18:4:0xffffffff w:0x1c:4:0xffffffff r:0x18:4 r:0x1c:4 2>&1 | tail -n 2 | tr '\n' ' ')
expect "sizing BAR 2 of $s32 through config reads 16 MiB" "$o" "r 0x018 4 0xff00000c r 0x01c 4 0xffffffff "
M=0x1000000
o=$($VP access --live "$s32" br:2:0xfffffc:4 bw:2:0xfffffc:4:0x5a5a5a5a br:2:0xfffffc:4 2>&1)
tap_ok $? "$s32: the last dword below 16 MiB reads and writes" "$o"
for step in "br:2:$M:4" "bw:2:$M:4:0x1" "mmap:2:$M:0x1000" "mmap:2:0:0x2000000" "ioeventfd:2:$M:4"; do
	o=$($VP access --live "$s32" "$step" 2>&1)
	tap_ok "$([ $? = 1 ] && echo "$o" | grep -q error; echo $?)" "$s32: $step past the presented 16 MiB is refused" "$o"
done
o=$($VP access --live "$s32" mmap:2:0:0x1000000 ioeventfd:2:0xfffffc:4 2>&1)
tap_ok $? "$s32: mmap of the presented 16 MiB and an ioeventfd inside it work" "$o"

# 5. The 32 MiB persona on the 16 MiB device: refused, the log names BAR 2.
persona_of "$s32" shm-32m
mark
choose "$s16" shm-32m@1.0
rc=$?
tap_ok "$([ $rc != 0 ]; echo $?)" "shm-32m@1.0 on $s16 (a smaller BAR 2) is refused" "$(cat "$T/bind.out")"
tap_ok "$(klog "BAR 2: device has mem64 prefetchable 0x1000000 bytes"; echo $?)" \
	"the kernel log names BAR 2 and both sizes" "$(dmesg | tail -n 5)"
# choose binds first (the auto persona at probe), then selects: auto stays in force.
tap_ok "$(grep -q "^1af4:1110@1.0 " "/sys/bus/pci/devices/$s16/persona"; echo $?)" \
	"after the refusal $s16 keeps the persona it had (auto)" "$(cat "/sys/bus/pci/devices/$s16/persona")"

bad=$(dmesg | grep -E 'WARNING:|BUG:|Oops|general protection fault' | head -n 5)
tap_ok "$([ -z "$bad" ]; echo $?)" "no kernel warning, oops or lockdep report" "$bad"
finish
