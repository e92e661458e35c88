#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest suite: the cross-layout case of migration (issue 13). The second edu is made to present
# another firmware revision's config layout by the test-only fixture tests/fixtures/layout
# (other subsystem IDs, a vendor-specific capability at 0x40 ahead of MSI, MSI moved from 0x40
# to 0x60), and one persona maps the one guest-visible layout onto both physical ones:
#   1. the persona: derived from the plain edu (capture + derive), then two statements a
#      derive cannot make: the subsystem IDs are presented from the persona (emulated), and a
#      vendor-specific capability, where a device has one, is hidden. The derive as it is must
#      be refused on the modified edu, naming exactly those two fields;
#   2. the fixture loaded: the modified edu's physical layout is the other one (sysfs config);
#   3. both edus on the persona: check --live identical on each; persona_layout_test: physical
#      config spaces differ, config regions through VFIO byte-identical (whole region in 4- and
#      1-byte reads, every dword offset below 4 KiB), MSI delivered to an eventfd on each;
#   4. persona_migration_test plain -> modified and modified -> plain (STOP_COPY and resume,
#      device state read back equal);
#   5. the persona derived from the modified edu is refused on the plain one, for the two
#      reasons it must be (the subsystem vendor ID it pins, the vendor-specific capability the
#      plain edu lacks) and not for MSI's offset; it is accepted on the modified edu itself;
#   6. the fixture unloaded: the edu is back to the plain layout. No kernel warning.
# Usage: migration-layout.sh FILE.tap
. /repo/tests/lib/tap.sh
. /repo/tests/lib/klog.sh
. /repo/tests/lib/pci.sh
tap_begin "$1"

ST=/repo/build/selftests
FX=${PVP_FIXTURES:-/repo/build/fixtures}/layout/layout_fixture.ko
FW=/repo/build/firmware
FWD=$FW/persona-vfio-pci
VP=vfio-persona
drv=persona-vfio-pci
T=$(mktemp -d)

edus=$(find_fn 0x1234 0x11e8)
e0=$(echo "$edus" | sed -n 1p) e1=$(echo "$edus" | sed -n 2p)

finish() {
	for b in $e0 $e1; do pvp-bind "$b" none >/dev/null 2>&1; done
	grep -q '^layout_fixture ' /proc/modules && rmmod layout_fixture
	rm -f "$FWD"/edu-cross@1.0.bin "$FWD"/edu-plain@1.0.bin "$FWD"/edu-layout-b@1.0.bin
	rm -rf "$T"
	tap_end
	exit $?
}
expect() { tap_ok "$([ "$2" = "$3" ]; echo $?)" "$1" "got \"$2\", want \"$3\""; }
# hexat BDF OFF N: N bytes of the function's config space (sysfs) at OFF, as one hex string.
hexat() { od -A n -t x1 -j $(($2)) -N "$3" "/sys/bus/pci/devices/$1/config" | tr -d ' \n'; }
# layout BDF: subsystem IDs, capability pointer, and the chain as "ID@OFFSET" items.
layout() {
	_p=$((0x$(hexat "$1" 0x34 1) & 0xfc)) _n=0 _s="sub $(hexat "$1" 0x2c 4) ptr $(hexat "$1" 0x34 1):"
	while [ "$_p" -ge 64 ] && [ "$_n" -lt 48 ]; do
		_s="$_s $(hexat "$1" "$_p" 1)@$(printf %02x "$_p")"
		_p=$((0x$(hexat "$1" $((_p + 1)) 1) & 0xfc)) _n=$((_n + 1))
	done
	echo "$_s"
}
# choose BDF SEL: binds BDF to the driver (auto persona), then selects SEL; bind's exit status.
choose() {
	pvp-bind "$1" none >/dev/null 2>&1
	$VP bind "$1" --persona "$2" >"$T/bind.out" 2>&1
}
# refusal: the kernel's lines about a persona since the mark.
mark() { dmesg >"$T/dmesg.0"; }
refusal() { dmesg | tail -n +$(($(wc -l <"$T/dmesg.0") + 1)) | grep 'persona '; }

for t in persona_layout_test persona_migration_test; do
	if [ ! -x "$ST/$t" ]; then
		tap_ok 1 "$t is built in build/selftests (make selftests)"
		finish
	fi
done
if [ ! -f "$FX" ]; then
	tap_ok 1 "the layout fixture is built (make fixtures)" "missing: $FX"
	finish
fi
tap_ok $([ -n "$e0" ] && [ -n "$e1" ]; echo $?) "cross-layout: two edu functions (found: $(echo $edus))"
grep -q '^layout_fixture ' /proc/modules && rmmod layout_fixture
for b in $e0 $e1; do pvp-bind "$b" none >/dev/null 2>&1; done
fwp=/sys/module/firmware_class/parameters/path
[ -w "$fwp" ] && [ -z "$(cat "$fwp")" ] && printf '%s' "$FW" >"$fwp"
mkdir -p "$FWD"
plain=$(layout "$e0")
expect "cross-layout: without the fixture both edus have the same layout" "$(layout "$e1")" "$plain"
tap_diag "plain layout: $plain"

# 1. The persona, from the plain edu: the derive, then the two statements.
o=$($VP capture "$e0" -o "$T/plain.dump" 2>&1 && $VP derive "$T/plain.dump" --name edu-plain -o "$T/plain.toml" 2>&1 &&
	$VP compile "$T/plain.toml" -o "$FWD/edu-plain@1.0.bin" 2>&1)
tap_ok $? "cross-layout: derive edu-plain@1.0 from the plain edu $e0" "$o"
sed -e 's/^name = .*/name = "edu-cross"/' \
	-e 's/^emulated = \[\]$/emulated = ["subsystem-vendor", "subsystem-device"]/' "$T/plain.toml" |
	awk '/^# Byte rules/ && !done {
		print "# Firmware revisions differ here: a vendor-specific capability, where a device"
		print "# has one, is not presented."
		print "[[capability]]\nkind = \"hidden\"\nspace = \"standard\"\nid = 0x09\ninstance = 0\n"
		done = 1 }
	{ print }' >"$T/cross.toml"
o=$($VP compile "$T/cross.toml" -o "$FWD/edu-cross@1.0.bin" 2>&1)
tap_ok $? "cross-layout: edu-cross@1.0 = edu-plain with emulated subsystem IDs and a hidden vendor-specific capability" \
	"$o$(diff "$T/plain.toml" "$T/cross.toml")"

# 2. The fixture on the second edu.
o=$(insmod "$FX" bdf="$e1" 2>&1)
tap_ok $? "cross-layout: layout_fixture loaded on $e1" "$o$(dmesg | tail -n 3)"
tap_diag "$(dmesg | grep 'layout_fixture:' | tail -n 1)"
expect "cross-layout: $e1's physical layout is the other firmware revision's" "$(layout "$e1")" \
	"sub 34120200 ptr 40: 09@40 05@60"
expect "cross-layout: $e1's moved MSI has the plain edu's Message Control" \
	"$(hexat "$e1" 0x62 2)" "$(hexat "$e0" 0x42 2)"

# The derive as it is pins the subsystem IDs and lists no vendor-specific capability: refused
# on the modified edu for those two reasons, and for nothing about MSI's offset.
mark
choose "$e1" edu-plain@1.0
rc=$?
r=$(refusal)
tap_ok "$([ $rc != 0 ]; echo $?)" "cross-layout: edu-plain@1.0 as derived is refused on the modified $e1" "$(cat "$T/bind.out")"
tap_ok "$(echo "$r" | grep -q 'subsystem vendor ID (device offset 0x02c): device 0x1234, persona 0x1af4'; echo $?)" \
	"cross-layout: the refusal names the subsystem vendor ID it pins" "$r"
tap_ok "$(echo "$r" | grep -q 'vendor-specific capability 0x9 (instance 0) at 0x040, which the persona neither presents nor hides'; echo $?)" \
	"cross-layout: the refusal names the unlisted vendor-specific capability" "$r"
tap_ok "$(echo "$r" | grep -qi 'msi'; [ $? != 0 ]; echo $?)" "cross-layout: the refusal says nothing of MSI (a moved capability is no reason)" "$r"

# 3. Both on edu-cross@1.0.
for b in $e0 $e1; do
	choose "$b" edu-cross@1.0
	tap_ok $? "cross-layout: edu-cross@1.0 selected on $b" "$(cat "$T/bind.out"; dmesg | grep persona | tail -n 4)"
	tap_check "cross-layout: edu-cross@1.0 on $b: check --live identical" $VP check --live "$b"
done
n0=$(cat "$1.log" 2>/dev/null | wc -l)
tap_kselftest "cross-layout $e0 (plain) / $e1 (modified)" env PVP_BDF_A="$e0" PVP_BDF_B="$e1" \
	"$ST/persona_layout_test"
# What it saw, as comments (the .log file of the suite keeps earlier runs: only this one's lines).
tail -n +$((n0 + 1)) "$1.log" | grep -E ':(physical: |config region|.*MSI delivered)' |
	sed 's/^# # [^:]*:[0-9]*:/# /' | tee -a "$1"

# 4. Migration both ways.
# no_backend (a function without a migration backend) is the migration suite's, not these runs'.
tap_kselftest "cross-layout migration $e0 (plain) -> $e1 (modified)" env PVP_BDF_A="$e0" PVP_BDF_B="$e1" \
	"$ST/persona_migration_test" -T no_backend
tap_kselftest "cross-layout migration $e1 (modified) -> $e0 (plain)" env PVP_BDF_A="$e1" PVP_BDF_B="$e0" \
	"$ST/persona_migration_test" -T no_backend

# 5. The persona of the modified edu's own layout on the plain edu: refused, for the subsystem
# vendor ID and the vendor-specific capability, which the plain edu cannot present; MSI's
# offset is no reason. On the modified edu itself it is accepted.
pvp-bind "$e1" none >/dev/null 2>&1
o=$($VP capture "$e1" -o "$T/b.dump" 2>&1 && $VP derive "$T/b.dump" --name edu-layout-b -o "$T/b.toml" 2>&1 &&
	$VP compile "$T/b.toml" -o "$FWD/edu-layout-b@1.0.bin" 2>&1)
tap_ok $? "cross-layout: derive edu-layout-b@1.0 from the modified $e1" "$o"
choose "$e1" edu-layout-b@1.0
tap_ok $? "cross-layout: edu-layout-b@1.0 selected on $e1 (its own layout)" "$(cat "$T/bind.out")"
# The comparison is not vacuous: with $e1 on its own layout's persona and $e0 still on
# edu-cross@1.0, the config regions differ and the test says where.
o=$(env PVP_BDF_A="$e0" PVP_BDF_B="$e1" "$ST/persona_layout_test" -t cross_layout_config_regions_identical 2>&1)
rc=$?
d=$(echo "$o" | grep -o 'byte 0x[0-9a-f]* differs' | sed 's/byte \(.*\) differs/\1/' | sort -u | head -n 8 | tr '\n' ' ')
tap_ok "$([ $rc != 0 ] && [ -n "$d" ]; echo $?)" \
	"cross-layout: with $e1 on edu-layout-b@1.0 the config-region comparison fails (at $d)" "$(echo "$o" | tail -n 12)"
mark
choose "$e0" edu-layout-b@1.0
rc=$?
r=$(refusal)
tap_ok "$([ $rc != 0 ]; echo $?)" "cross-layout: edu-layout-b@1.0 is refused on the plain $e0" "$(cat "$T/bind.out")"
tap_ok "$(echo "$r" | grep -q 'subsystem vendor ID (device offset 0x02c): device 0x1af4, persona 0x1234'; echo $?)" \
	"cross-layout: the refusal names the subsystem vendor ID" "$r"
tap_ok "$(echo "$r" | grep -q 'vendor-specific capability 0x9 instance 0 (at 0x040) is not on the device'; echo $?)" \
	"cross-layout: the refusal names the vendor-specific capability the plain edu lacks" "$r"
tap_ok "$(echo "$r" | grep -qi 'msi'; [ $? != 0 ]; echo $?)" "cross-layout: the refusal says nothing of MSI at 0x60 (found at 0x40)" "$r"
tap_diag "refusal: $(echo "$r" | sed 's/.*refused for this device: //' | tr '\n' ';')"

# 6. The fixture unloaded: the plain layout again.
for b in $e0 $e1; do pvp-bind "$b" none >/dev/null 2>&1; done
o=$(rmmod layout_fixture 2>&1)
tap_ok $? "cross-layout: layout_fixture unloaded" "$o"
expect "cross-layout: $e1 is back to the plain layout" "$(layout "$e1")" "$plain"

bad=$(dmesg | klog_reports | head -n 3)
tap_ok "$([ -z "$bad" ]; echo $?)" "cross-layout: no kernel warning, oops or lockdep report" "$bad"
finish
