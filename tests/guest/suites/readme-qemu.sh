#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest suite: the README's QEMU command line ("Using it with QEMU and libvirt"), taken from
# README.md itself, runs against an edu bound the README's way (vfio-persona bind ... --persona
# auto). Only what a TCG test guest cannot have is swapped: -accel kvm for tcg, -cpu host for
# max, -m 4G for 128M, and the README's "..." for a paused machine (-S: the device is opened,
# bound to iommufd and realized at start-up, before any firmware runs) with a monitor on stdin
# and the trixie root's firmware (qboot; it has no SeaBIOS). The monitor's `info pci` must list
# the assigned edu under the README's id; `quit` ends QEMU with status 0 and nothing on stderr.
# Usage: readme-qemu.sh FILE.tap
# Environment: PVP_TRIXIE_ROOT_GUEST (default /cache/trixie-root).
. /repo/tests/lib/tap.sh
tap_begin "$1"

drv=persona-vfio-pci
TR=${PVP_TRIXIE_ROOT_GUEST:-/cache/trixie-root}
W=$(mktemp -d /tmp/readme-qemu.XXXXXX)
trap 'rm -rf "$W"' EXIT

# The command block of the section, its continuation lines joined.
cmd=$(awk '/^### Using it with QEMU and libvirt/ { s = 1 } s && /^```sh/ { c = 1; next } c && /^```/ { exit } c' /repo/README.md |
	sed -e ':a' -e '/\\$/N; s/\\\n//; ta' | tr -s ' ')
tap_ok "$(case "$cmd" in qemu-system-x86_64*) echo 0 ;; *) echo 1 ;; esac)" \
	"the README's QEMU command line is found" "README.md, section \"Using it with QEMU and libvirt\": got \"$cmd\""
bdf=$(printf '%s\n' "$cmd" | sed -n 's/.*vfio-pci,host=\([0-9a-f:.]*\).*/\1/p')
id=$(printf '%s\n' "$cmd" | sed -n 's/.*vfio-pci,[^ ]*id=\([a-z0-9]*\).*/\1/p')
tap_ok "$([ -n "$bdf" ] && [ -n "$id" ]; echo $?)" "it assigns a host function by address and id (host=$bdf, id=$id)"

# The TCG guest's swaps; each must apply, or the README changed under this suite.
run=$cmd
for s in '-accel kvm|-accel tcg' '-cpu host|-cpu max' '-m 4G|-m 128M'; do
	from=${s%|*} to=${s#*|}
	case " $run " in *" $from "*) run=$(printf '%s\n' "$run" | sed "s/ $from / $to /") ;;
	*) tap_ok 1 "the README's line has \"$from\" (swapped for \"$to\" in this TCG guest)" ;; esac
done
case "$run" in *' ...') run=${run%...} ;; *) tap_ok 1 "the README's line ends with \"...\"" ;; esac

# The function the README names, bound the README's way.
o=$(pvp-bind "$bdf" none 2>&1; vfio-persona bind "$bdf" --persona auto 2>&1)
tap_ok $? "vfio-persona bind $bdf --persona auto" "$o"
tap_ok "$([ "$(basename "$(readlink "/sys/bus/pci/devices/$bdf/driver")")" = $drv ]; echo $?)" "$bdf is bound to $drv"

# QEMU 11.1 of the trixie root, through its own loader and libraries; the README's line as one
# word list (it has no quoting), then the test guest's additions.
libs=$TR/usr/lib/x86_64-linux-gnu:$TR/lib/x86_64-linux-gnu
# shellcheck disable=SC2086 # the README's line, split into its words
set -- ${run#qemu-system-x86_64}
printf 'info pci\nquit\n' | QEMU_MODULE_DIR=$TR/usr/lib/x86_64-linux-gnu/qemu timeout 300 \
	"$TR/lib64/ld-linux-x86-64.so.2" --library-path "$libs" "$TR/usr/bin/qemu-system-x86_64" \
	-L "$TR/usr/share/qemu" -bios "$TR/usr/share/qemu/qboot.rom" "$@" -S -nodefaults -no-user-config -display none -monitor stdio \
	>"$W/out" 2>"$W/err"
rc=$?
tap_ok "$rc" "QEMU ran the README's line and quit (status $rc)" "$(tail -n 20 "$W/err")"
tap_ok "$([ ! -s "$W/err" ]; echo $?)" "QEMU printed nothing on stderr" "$(head -n 20 "$W/err")"
tr -d '\r' <"$W/out" >"$W/pci"
tap_ok "$(grep -A 8 '1234:11e8' "$W/pci" | grep -q "id \"$id\""; echo $?)" \
	"info pci lists the assigned edu (1234:11e8) as id \"$id\"" "$(grep -v '^$' "$W/pci" | head -n 40)"
# QEMU has closed the device: it is free again for the next user.
o=$(vfio-persona access --live "$bdf" r:0:4 2>&1)
tap_ok $? "after QEMU quit, the device opens again (vfio-persona access --live $bdf r:0:4)" "$o"
pvp-bind "$bdf" none >/dev/null 2>&1
tap_end
