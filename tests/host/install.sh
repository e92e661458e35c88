#!/usr/bin/env bash
# Host suite: `make install DESTDIR=<tmp>` (against the cached test kernel) leaves the module, the
# compiled personas, the tool with its man pages and completions there, and depmod in that root
# lists persona_vfio_pci under the driver's vfio_pci: aliases (what libvirt reads to pick a
# variant driver); `make uninstall` takes every file away again. The alias check is shown to fail
# on a copy of the module whose .modinfo (the alias table) was stripped.
source "$(dirname "$0")/../../scripts/lib.sh"
set +e
. "$PVP_TOP/tests/lib/tap.sh"
tap_begin "$1"
cd "$PVP_TOP"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
D=$T/root
P=/usr/local
kver=$(cat "$(pvp_kbuild)/include/config/kernel.release")

out=$(make -s install DESTDIR="$D" 2>&1); rc=$?
tap_ok "$rc" "make install DESTDIR=<tmp> succeeds" "$out"

ko=$D/lib/modules/$kver/updates/persona_vfio_pci.ko
tap_ok $([ -f "$ko" ] && cmp -s "$ko" build/module/persona_vfio_pci.ko; echo $?) \
	"the module is at /lib/modules/$kver/updates/persona_vfio_pci.ko (modules_install)" "$(find "$D/lib/modules" -name '*.ko')"

# Every example persona, compiled, under the name the driver's firmware request uses.
bad=
n=0
for t in tests/personas/*.toml; do
	sel=$(build/bin/vfio-persona compile --json "$t" -o "$T/one.bin" | sed -n 's/^  "selector": "\(.*\)",\{0,1\}$/\1/p')
	f=$D/lib/firmware/persona-vfio-pci/$sel.bin
	n=$((n + 1))
	if [ -z "$sel" ]; then bad="$bad no selector for $t;"
	elif [ ! -f "$f" ]; then bad="$bad missing $sel.bin;"
	elif ! cmp -s "$T/one.bin" "$f"; then bad="$bad $sel.bin is not $t compiled;"
	fi
done
have=$(ls "$D/lib/firmware/persona-vfio-pci" 2>/dev/null | wc -l)
tap_ok $([ -z "$bad" ] && [ "$have" = "$n" ]; echo $?) \
	"the $n example personas are compiled under /lib/firmware/persona-vfio-pci/NAME@M.m.bin" "$bad have=$have"

out=$("$D$P/bin/vfio-persona" --version 2>&1); rc=$?
tap_ok $([ "$rc" = 0 ] && echo "$out" | grep -q '^vfio-persona '; echo $?) "$P/bin/vfio-persona runs (--version)" "$out"

# One man page per command, each naming its command; the main page lists them all.
cmds=$("$D$P/bin/vfio-persona" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z-]*\) .*/\1/p' | grep -vx help)
bad=
for c in $cmds; do
	m=$D$P/share/man/man1/vfio-persona-$c.1
	grep -q "^\.TH vfio-persona-$c 1" "$m" 2>/dev/null || bad="$bad $c"
	grep -qF "vfio\-persona\-${c//-/\\-}(1)" "$D$P/share/man/man1/vfio-persona.1" || bad="$bad main-page:$c"
done
tap_ok $([ -n "$cmds" ] && [ -z "$bad" ]; echo $?) "man pages: vfio-persona.1 and one per command ($(echo $cmds | wc -w))" "missing:$bad"
if command -v man >/dev/null; then
	out=$(MANWIDTH=80 man -l "$D$P/share/man/man1/vfio-persona-map.1" 2>&1)
	tap_ok $(echo "$out" | grep -q -- '--width' ; echo $?) "man -l renders vfio-persona-map.1 with its options" "$out"
else
	tap_skip "man -l renders vfio-persona-map.1" "man is not installed"
fi

# Completions: each shell's file completes every command.
bad=
for f in bash-completion/completions/vfio-persona zsh/site-functions/_vfio-persona fish/vendor_completions.d/vfio-persona.fish; do
	for c in $cmds; do grep -q -- "$c" "$D$P/share/$f" 2>/dev/null || bad="$bad $f:$c"; done
done
tap_ok $([ -z "$bad" ]; echo $?) "bash, zsh and fish completions name every command" "missing:$bad"
out=$(bash -c "source '$D$P/share/bash-completion/completions/vfio-persona' && complete -p vfio-persona" 2>&1)
tap_ok $(echo "$out" | grep -q 'vfio-persona$'; echo $?) "the bash completion loads and registers for vfio-persona" "$out"

# depmod -b <root> <kver>: every vfio_pci: alias of the module lands in modules.alias.
# alias_check ROOT: 0 when modules.alias there lists each of the built module's vfio_pci aliases
# for persona_vfio_pci (and there is at least one).
want=$(/sbin/modinfo -F alias build/module/persona_vfio_pci.ko | grep '^vfio_pci:')
alias_check() {
	local root=$1 a out
	out=$(/sbin/depmod -b "$root" "$kver" 2>&1) || { echo "depmod failed: $out"; return 1; }
	[ -n "$want" ] || { echo "the built module has no vfio_pci: alias"; return 1; }
	for a in $want; do
		grep -qxF "alias $a persona_vfio_pci" "$root/lib/modules/$kver/modules.alias" || { echo "no 'alias $a persona_vfio_pci' in modules.alias"; return 1; }
	done
}
out=$(alias_check "$D"; echo "rc=$?"; grep vfio_pci "$D/lib/modules/$kver/modules.alias")
tap_ok $(echo "$out" | grep -q '^rc=0$'; echo $?) "depmod -b <root> $kver lists persona_vfio_pci under its vfio_pci: aliases ($(echo "$want" | wc -w))" "$out"
# The same check on a root whose module lost its alias table must fail.
S=$T/stripped
mkdir -p "$S/lib/modules/$kver/updates"
objcopy --remove-section .modinfo "$ko" "$S/lib/modules/$kver/updates/persona_vfio_pci.ko" 2>/dev/null
out=$(alias_check "$S"; echo "rc=$?")
tap_ok $(echo "$out" | grep -q '^rc=1$'; echo $?) "self-test: the alias check fails for a module without its alias table (.modinfo stripped)" "$out"

out=$(make -s uninstall DESTDIR="$D" 2>&1); rc=$?
left=$(cd "$D" && find . -type f ! -path "./lib/modules/$kver/modules.*" | sort)
tap_ok $([ "$rc" = 0 ] && [ -z "$left" ] && ! grep -q persona_vfio_pci "$D/lib/modules/$kver/modules.alias"; echo $?) \
	"make uninstall removes every installed file and depmod forgets the aliases" "rc=$rc $out
left: $left"
tap_end
