# shellcheck shell=bash
# Common settings for the project's scripts. Sourced, never run.
#
# Everything downloaded or built outside the repository lives in one cache folder, so a fresh clone
# reuses the work of the last one and `git clean` never throws away a 6-minute kernel build.

set -euo pipefail

PVP_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PVP_CACHE=${PVP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/persona-vfio-pci}
PVP_BUILD=${PVP_BUILD:-$PVP_TOP/build}

# Versions the test bed is pinned to.
PVP_KVER_SERIES=7.3                 # Debian package linux-source-$PVP_KVER_SERIES
PVP_BINDGEN_VERSION=0.73.2          # bindgen-cli, installed with cargo --locked
PVP_LLVM=-19                        # kernel build: make LLVM=-19 (empty for the gcc flavour, below)
PVP_LIBCLANG=-19                    # bindgen's libclang, for every flavour (GCC-built ones too)
PVP_TRIXIE_ROOT=$PVP_CACHE/trixie-root
PVP_TOOLS=$PVP_CACHE/tools

export PATH="$PVP_TOOLS/bin:$HOME/.cargo/bin:$PATH"
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm${PVP_LIBCLANG}/lib}

# phase NAME: announce a long step, so a slow run says where it is.
phase() { printf '==> [%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
note() { printf '    %s\n' "$*" >&2; }

# as_root CMD...: run as root, through sudo when we are not root.
as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# The kernel source tree, extracted from Debian's linux-source package into the cache.
pvp_ksrc() {
	local d
	d=$(ls -d "$PVP_CACHE"/src/linux-source-"$PVP_KVER_SERIES" 2>/dev/null | head -n1)
	[ -n "$d" ] || die "no kernel source in $PVP_CACHE/src: run scripts/setup"
	echo "$d"
}

# Kernel flavours: "default" (tests/config over tinyconfig), "debug" (tests/config-debug on top:
# KASAN, kCFI, kmemleak, fault injection) and "gcc" (the default config built with the machine's
# GCC instead of clang, as distributions build their Rust kernels; bindgen still uses libclang).
# PVP_FLAVOUR picks one; everything built against a kernel (the module, the fixtures) goes to a
# folder of that flavour.
PVP_FLAVOUR=${PVP_FLAVOUR:-default}
case "$PVP_FLAVOUR" in default|debug|gcc) ;; *) echo "error: PVP_FLAVOUR must be default, debug or gcc" >&2; exit 2 ;; esac
export PVP_FLAVOUR
# make LLVM= (empty) builds with gcc; the key below carries the flavour, so the two never share a tree.
[ "$PVP_FLAVOUR" = gcc ] && PVP_LLVM=

# The Kconfig fragments of a flavour, in merge order.
pvp_fragments() {
	echo "$PVP_TOP/tests/config"
	[ "$PVP_FLAVOUR" = debug ] && echo "$PVP_TOP/tests/config-debug"
	return 0
}

# The kernel build folder is keyed by the source version, the flavour and the hash of everything
# that shapes the config, so an edited fragment builds a new kernel and an unchanged one is reused.
pvp_kbuild_key() {
	local ver
	ver=$(cat "$PVP_CACHE/src/version" 2>/dev/null || echo unknown)
	# shellcheck disable=SC2046 # one path per line, none with spaces
	printf '%s-%s-%s' "$ver" "$PVP_FLAVOUR" "$(cat $(pvp_fragments) "$PVP_TOP/scripts/build-kernel" | sha256sum | cut -c1-12)"
}
pvp_kbuild() { echo "$PVP_CACHE/kernel/$(pvp_kbuild_key)"; }

# Where the module of this flavour is built (repository-relative), and the TAP prefix of its guest suites.
pvp_module_rel() { if [ "$PVP_FLAVOUR" = default ]; then echo build/module; else echo "build/module-$PVP_FLAVOUR"; fi; }
pvp_tap_prefix() { if [ "$PVP_FLAVOUR" = default ]; then echo guest; else echo "$PVP_FLAVOUR"; fi; }
