#!/usr/bin/env bash
# Host suite: DKMS builds and installs the module from dkms.conf against the test kernel's build
# tree, everything staged (source tree, DKMS tree and install tree in a temporary folder; nothing
# under /usr/src, /var/lib/dkms or /lib/modules): dkms add, build, install, status, and depmod in
# the staging root lists the module's vfio_pci: aliases; dkms remove takes it away again.
# With PVP_DKMS_OUT=DIR the DKMS-built module is also copied there (scripts/check puts it in
# build/dkms for the guest suite guest-dkms, which loads it in the test guest).
source "$(dirname "$0")/../../scripts/lib.sh"
set +e
. "$PVP_TOP/tests/lib/tap.sh"
tap_begin "$1"
cd "$PVP_TOP"
# scripts/setup installs dkms: its absence is the project's setup failing, never a skip (issue 21).
if ! command -v dkms >/dev/null; then
	tap_ok 1 "dkms is installed (scripts/setup installs it)" "no dkms on PATH ($PATH)"
	tap_end
	exit 1
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
K=$(pvp_kbuild)
kver=$(cat "$K/include/config/kernel.release")
name=$(sed -n 's/^PACKAGE_NAME="\(.*\)"$/\1/p' dkms.conf)
ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' dkms.conf)
mod=$(sed -n 's/^BUILT_MODULE_NAME\[0\]="\(.*\)"$/\1/p' dkms.conf)
tap_ok $([ "$name" = persona-vfio-pci ] && [ -n "$ver" ] && [ "$mod" = persona_vfio_pci ] &&
	grep -q '^MAKE\[0\]=".*KDIR=${kernel_source_dir}' dkms.conf && grep -q '^AUTOINSTALL="yes"' dkms.conf; echo $?) \
	"dkms.conf names the package, the module, builds with KDIR=\${kernel_source_dir} and autoinstalls" "$(cat dkms.conf)"

# The source as DKMS would get it: the repository's files, nothing built.
src=$T/src/$name-$ver
mkdir -p "$src" "$T/tree" "$T/root/lib/modules/$kver"
git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C "$src"
dk() { dkms "$@" -m "$name" -v "$ver" --sourcetree "$T/src" --dkmstree "$T/tree"; }

out=$(dk add 2>&1); rc=$?
tap_ok "$rc" "dkms add" "$out"
out=$(dk build -k "$kver" --kernelsourcedir "$K" 2>&1); rc=$?
log=$(find "$T/tree" -name make.log -exec tail -n 20 {} + 2>/dev/null)
tap_ok "$rc" "dkms build -k $kver against the test kernel's build tree" "$out
$log"
out=$(dk install -k "$kver" --kernelsourcedir "$K" --installtree "$T/root/lib/modules" --no-depmod 2>&1); rc=$?
ko=$T/root/lib/modules/$kver/updates/dkms/$mod.ko
tap_ok $([ "$rc" = 0 ] && [ -f "$ko" ]; echo $?) "dkms install puts $mod.ko in <root>/lib/modules/$kver/updates/dkms" "$out"
if [ -n "${PVP_DKMS_OUT:-}" ] && [ -f "$ko" ]; then mkdir -p "$PVP_DKMS_OUT" && cp "$ko" "$PVP_DKMS_OUT/"; fi
vm=$(/sbin/modinfo -F vermagic "$ko" 2>&1)
tap_ok $(echo "$vm" | grep -q "^$kver "; echo $?) "the DKMS-built module is for $kver (vermagic)" "$vm"
out=$(dkms status -m "$name" -v "$ver" -k "$kver" --sourcetree "$T/src" --dkmstree "$T/tree" 2>&1)
tap_ok $(echo "$out" | grep -q 'installed'; echo $?) "dkms status says installed" "$out"
want=$(/sbin/modinfo -F alias "$ko" | grep '^vfio_pci:')
/sbin/depmod -b "$T/root" "$kver" 2>/dev/null
bad=
for a in $want; do grep -qxF "alias $a $mod" "$T/root/lib/modules/$kver/modules.alias" || bad="$bad $a"; done
tap_ok $([ -n "$want" ] && [ -z "$bad" ]; echo $?) "depmod -b <root> lists the DKMS-built module under its vfio_pci: aliases" "missing:$bad"
out=$(dk remove -k "$kver" --installtree "$T/root/lib/modules" --no-depmod 2>&1); rc=$?
tap_ok $([ "$rc" = 0 ] && [ ! -e "$ko" ]; echo $?) "dkms remove takes the module away" "$out"
tap_end
