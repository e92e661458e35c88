#!/usr/bin/env bash
# Host suite: the module's GCC path, without a GCC-built kernel. scripts/prepare-kernel gives a
# tree configured like the gcc flavour (tinyconfig + tests/config, the machine's gcc, LLVM empty)
# and prepared with `make modules_prepare` only (scripts, objtool and, in 7.3, the rust/ crates);
# it is cached, and prepared here when it is not yet. Against it the module must build into
# build/module-gcc-prepared: gcc compiles the shim, rustc the crate against the GCC tree's kernel
# crate, bindgen the VFIO bindings with the kernel's own GCC flag filter (Kbuild), then modpost.
#
# There is no vmlinux, so no Module.symvers: modpost cannot resolve one kernel symbol. It says so
# ("Module.symvers is missing"), then calls every undefined symbol an ERROR (naming the first 10,
# counting the rest) and fails the build; KBUILD_MODPOST_WARN=1 turns exactly those into warnings,
# and the .mod.c and .ko are made. The suite builds with it and then does modpost's missing work
# itself: modpost must have complained of nothing but the module's own undefined symbols (as many
# as `nm -u` lists), and each of those must be exported by this kernel: Rust symbols by the GCC
# tree's rust/exports_*_generated.h (what rust/exports.c exports), C ones by an EXPORT_SYMBOL* in
# the kernel source (this architecture's and the common folders), with its namespace imported;
# and, when the default (clang) test kernel is built, by its Module.symvers, the same fragments'
# exports of a real build. The modinfo vermagic is the tree's release, and the .ko's .comment names
# the tree's gcc and rustc. DKMS builds and installs it from dkms.conf against the same tree into a
# staging root, as tests/host/dkms.sh does against the built kernel; it needs KBUILD_MODPOST_WARN=1
# in its environment for the same reason (a packaged kernel's headers carry a Module.symvers).
# PVP_GCC_TREE=DIR points the suite at another kernel tree instead. The clang-built test kernel
# fails four lines there: not GCC, bindgen given flags the GCC filter drops (clang's own, unfiltered
# as they should be), modpost with a Module.symvers to resolve against, clang in .comment.
source "$(dirname "$0")/../../scripts/lib.sh"
set +e
. "$PVP_TOP/tests/lib/tap.sh"
tap_begin "$1"
cd "$PVP_TOP"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mod=persona_vfio_pci

if [ -n "${PVP_GCC_TREE:-}" ]; then
	K=$PVP_GCC_TREE out="PVP_GCC_TREE=$K" rc=0
else
	out=$(scripts/prepare-kernel 2>&1); rc=$?
	K=$(printf '%s\n' "$out" | tail -n 1)
fi
tap_ok $([ "$rc" = 0 ] && [ -f "$K/include/config/auto.conf" ] && [ -x "$K/scripts/mod/modpost" ]; echo $?) \
	"scripts/prepare-kernel: a kernel tree prepared with make modules_prepare (no vmlinux needed)" "$out"
if [ ! -f "$K/include/config/auto.conf" ]; then tap_end; exit; fi
conf=$K/include/config/auto.conf
kver=$(cat "$K/include/config/kernel.release")
tap_diag "tree: $K ($kver, $([ -e "$K/vmlinux" ] && echo "with a vmlinux" || echo "no vmlinux"))"

cc=$(grep -E '^CONFIG_(CC_IS_|CC_VERSION_TEXT|LD_IS_)' "$conf")
tap_ok $(grep -qx 'CONFIG_CC_IS_GCC=y' "$conf" && ! grep -q '^CONFIG_CC_IS_CLANG=' "$conf" &&
	grep -qE '^CONFIG_CC_VERSION_TEXT="?gcc ' "$conf" && grep -qx 'CONFIG_LD_IS_BFD=y' "$conf"; echo $?) \
	"the tree is configured for GCC (CONFIG_CC_IS_GCC=y, gcc's version text, GNU ld)" "$cc"
rust=$(grep -E '^CONFIG_RUST(C_VERSION_TEXT)?=' "$conf"; ls "$K"/rust/libkernel.rmeta "$K"/rust/libmacros.so "$K"/rust/libpin_init.rmeta 2>&1)
tap_ok $(grep -qx 'CONFIG_RUST=y' "$conf" && [ -f "$K/rust/libkernel.rmeta" ] && [ -f "$K/rust/libmacros.so" ] &&
	[ -f "$K/rust/libpin_init.rmeta" ]; echo $?) "the tree has Rust (CONFIG_RUST=y) and its crates' metadata (rust/libkernel.rmeta, libmacros.so, libpin_init.rmeta)" "$rust"

# The build, from an empty folder, so bindgen and modpost run now.
MO=$PVP_BUILD/module-gcc-prepared
rel=${MO#"$PVP_TOP"/}
rm -rf "$MO" && mkdir -p "$MO"
make -s module KDIR="$K" MO="$MO" KBUILD_MODPOST_WARN=1 >"$T/build.log" 2>&1
rc=$?
ko=$MO/$mod.ko
tap_ok $([ "$rc" = 0 ] && [ -f "$ko" ]; echo $?) \
	"make module KDIR=<GCC tree> MO=$rel KBUILD_MODPOST_WARN=1 builds $mod.ko" "$(tail -n 30 "$T/build.log")"
other=$(grep -vE '^(WARNING|ERROR): |^ {9}(Modules may not|You may get|You can set|if you want)' "$T/build.log")
tap_ok $([ "$rc" = 0 ] && [ -z "$other" ]; echo $?) "gcc, rustc and bindgen print no warning (the build's output is modpost's alone)" "$other"

# bindgen: run by this build, with the C flags Kbuild filters for a GCC tree (rust/Makefile's
# bindgen_skip_c_flags out, its BINDGEN_TARGET in), and what the driver names is in its output.
gen=$MO/src/driver/vfio/bindings_generated.rs
bcmd=$MO/src/driver/vfio/.bindings_generated.rs.cmd
rmk=$(cat "$K/source/rust/Makefile" 2>/dev/null || cat "$(pvp_ksrc)/rust/Makefile")
skip=$(printf '%s\n' "$rmk" | sed -n '/^bindgen_skip_c_flags[[:space:]]*:=/,/[^\\]$/p' | sed -e 's/^bindgen_skip_c_flags[[:space:]]*:=//' -e 's/\\$//')
target=$(printf '%s\n' "$rmk" | sed -n 's/^BINDGEN_TARGET_x86[[:space:]]*:=[[:space:]]*//p')
# skipped WORDS...: the words that rust/Makefile's bindgen_skip_c_flags names (its % globbed).
skipped() {
	local w p
	for w in "$@"; do
		for p in $skip; do
			# shellcheck disable=SC2254 # the skip list's % are make wildcards: glob them
			case "$w" in ${p//%/*}) printf ' %s' "$w"; break ;; esac
		done
	done
}
# shellcheck disable=SC2046 # the words of the saved command lines
{
	used=$(skipped $(sed -n 's/^savedcmd_[^ ]* := //p' "$bcmd" 2>/dev/null | sed 's/.* -- //'))
	shim=$(skipped $(sed -n 's/^savedcmd_[^ ]* := //p' "$MO/src/shim/.pvp_shim.o.cmd" 2>/dev/null))
}
tap_ok $([ -s "$gen" ] && [ -f "$bcmd" ] && [ -n "$skip" ] && [ -n "$target" ] && grep -q -- " --target=$target" "$bcmd" &&
	[ -n "$shim" ] && [ -z "$used" ]; echo $?) \
	"bindgen ran with the kernel's GCC filter: --target=${target:-?}, none of the $(echo "$shim" | wc -w) skip-listed flags gcc got for the shim" \
	"generated: $(ls -l "$gen" 2>&1)
skip-listed flags gcc got:${shim:- none (so the filter was not exercised)}
skip-listed flags bindgen got:${used:- none}
$(head -c 3000 "$bcmd" 2>&1)"
tap_diag "skip-listed flags in the shim's gcc command:${shim:- none}"
names=$(git ls-files 'src/driver/*.rs' 'src/driver/**/*.rs' | xargs grep -hE '\bbindings::' | grep -vE '^[[:space:]]*//' |
	grep -oE '\bbindings::(_?vfio_|VFIO_|pvp_|PVP_)[A-Za-z0-9_]*' | sed 's/^bindings:://' | sort -u)
missing=
for n in $names; do
	grep -qE "^[[:space:]]*pub (unsafe )?(fn|struct|union|enum|const|type|static( mut)?) $n\b" "$gen" 2>/dev/null || missing="$missing $n"
done
count=$(echo "$names" | grep -c .)
tap_ok $([ -s "$gen" ] && [ "$count" -ge 20 ] && [ -z "$missing" ]; echo $?) \
	"the GCC tree's bindgen output declares the $count VFIO and shim items the driver names (bindings::vfio_*, VFIO_*, pvp_*)" \
	"missing:${missing:- none}"

# modpost, with nothing to resolve against: it must have run (the .mod.c, the .ko), and have said
# nothing but the missing Module.symvers and the module's undefined symbols, as many as nm lists.
nm -u "$ko" 2>/dev/null | awk '{print $2}' | sort -u >"$T/undef"
nu=$(grep -c . "$T/undef")
grep -E '^(WARNING|ERROR): modpost: ' "$T/build.log" >"$T/modpost"
named=$(sed -n "s/^WARNING: modpost: $mod\.ko: symbol '\(.*\)' undefined!\$/\1/p" "$T/modpost")
nnamed=$(echo "$named" | grep -c .)
suppressed=$(sed -n 's/^WARNING: modpost: suppressed \([0-9]*\) unresolved symbol warnings.*/\1/p' "$T/modpost")
else_said=$(grep -vE "^WARNING: modpost: ($mod\.ko: symbol '.*' undefined!|suppressed [0-9]+ unresolved symbol warnings)" "$T/modpost")
not_undef=$(for s in $named; do grep -qxF "$s" "$T/undef" || echo "$s"; done)
tap_ok $([ -f "$MO/$mod.mod.c" ] && [ -f "$ko" ] && grep -q "WARNING: $K/Module.symvers is missing" "$T/build.log" &&
	[ "$nu" -gt 0 ] && [ $((nnamed + ${suppressed:-0})) = "$nu" ] && [ -z "$else_said" ] && [ -z "$not_undef" ]; echo $?) \
	"modpost ran without Module.symvers ($mod.mod.c, .ko) and reported only the module's $nu undefined symbols ($nnamed named, ${suppressed:-0} counted)" \
	"modpost said besides:${else_said:- nothing}
named but not undefined in the .ko:${not_undef:- none}
$(cat "$T/modpost")"

# What modpost could not check: every undefined symbol is one this kernel exports. Rust's (and the
# C helpers' unless inlined) from the generated lists rust/exports.c includes; C ones from the
# source's EXPORT_SYMBOL*, outside other architectures, tools, samples and scripts. A namespaced
# export needs the module's import_ns; a file that sets DEFAULT_SYMBOL_NAMESPACE is not judged here.
lists="core bindings kernel"
grep -qx 'CONFIG_RUST_INLINE_HELPERS=y' "$conf" || lists="$lists helpers"
for l in $lists; do sed -n 's/^EXPORT_SYMBOL_RUST_GPL(\(.*\));$/\1/p' "$K/rust/exports_${l}_generated.h"; done >"$T/rust-exports"
grep -qx 'CONFIG_RUST_BUILD_ASSERT_ALLOW=y' "$conf" && echo rust_build_error >>"$T/rust-exports"
KSRC=$(readlink -f "$K/source" 2>/dev/null || pvp_ksrc)
mapfile -t dirs < <(cd "$KSRC" && ls -d -- */ | grep -vxE 'arch/|tools/|Documentation/|samples/|scripts/|usr/|LICENSES/|rust/' | sed 's,/$,,'; echo arch/x86)
(cd "$KSRC" && grep -rHoE --include='*.[chS]' \
	'\bEXPORT_SYMBOL(_GPL|_NS|_NS_GPL|_FOR_MODULES)?\([[:space:]]*[A-Za-z_][A-Za-z0-9_]*([[:space:]]*##[[:space:]]*[A-Za-z_][A-Za-z0-9_]*)*([[:space:]]*,[[:space:]]*"[^"]*")?' "${dirs[@]}") |
	sed -E 's/^([^:]*):EXPORT_SYMBOL(_GPL|_NS|_NS_GPL|_FOR_MODULES)?\([[:space:]]*([A-Za-z0-9_#[:space:]]*[A-Za-z0-9_])([[:space:]]*,[[:space:]]*"([^"]*)")?$/\3|\2|\5|\1/' |
	awk -F'|' -v OFS='|' '{ gsub(/[[:space:]]*##[[:space:]]*[A-Za-z0-9_]*/, "*", $1); print }' >"$T/c-exports"
defns=$(cd "$KSRC" && grep -rlE 'DEFAULT_SYMBOL_NAMESPACE' --include='*.c' --include=Makefile --include=Kbuild "${dirs[@]}" | grep -v '^include/')
imports=$(/sbin/modinfo -F import_ns "$ko" 2>/dev/null)
# An export made in a macro (vfio_pci_core_ioread##size) stands for every name of that shape.
match='function re(x) { gsub(/\*/, "[A-Za-z0-9_]*", x); return "^" x "$" } $1 == s || (index($1, "*") && s ~ re($1))'
bad=
while read -r s; do
	grep -qxF "$s" "$T/rust-exports" && continue
	ok=
	while IFS='|' read -r _ kind ns path; do
		d=$(dirname "$path")
		if printf '%s\n' "$defns" | grep -qxF -e "$path" -e "$d/Makefile" -e "$d/Kbuild"; then continue; fi
		if [ "$kind" = _FOR_MODULES ]; then case ",$ns," in *",$mod,"*) ok=1 ;; esac; continue; fi
		if [ -z "$ns" ] || printf '%s\n' "$imports" | grep -qxF "$ns"; then ok=1; fi
	done < <(awk -F'|' -v s="$s" "$match" "$T/c-exports")
	[ -n "$ok" ] || bad="$bad $s($(awk -F'|' -v s="$s" "$match"' {print $4 ($3 == "" ? "" : " ns " $3)}' "$T/c-exports" | head -n 3 | tr '\n' ' '))"
done <"$T/undef"
nrust=$(grep -cxFf "$T/rust-exports" "$T/undef")
tap_ok $([ "$nu" -gt 0 ] && [ -s "$T/rust-exports" ] && [ -s "$T/c-exports" ] && [ -z "$bad" ]; echo $?) \
	"each of the $nu undefined symbols is exported by this kernel: $nrust by rust/exports_*_generated.h, $((nu - nrust)) by EXPORT_SYMBOL* in its source, namespaces imported" \
	"not exported (or namespace not imported; import_ns: $(echo $imports)):${bad:- none}"

# The same symbols against a real build of the same fragments: the default (clang) test kernel's
# Module.symvers, when it is built (its exports are those of this config, not just of the source).
D=$(PVP_FLAVOUR=default pvp_kbuild)
if [ -f "$D/Module.symvers" ]; then
	miss=$(awk 'NR == FNR { have[$2] = 1; ns[$2] = $5; next } !($1 in have) { print $1 }' "$D/Module.symvers" "$T/undef")
	nsmiss=$(awk -v imp=" $(echo $imports) " 'NR == FNR { ns[$2] = $5; next } ($1 in ns) && ns[$1] != "" && index(imp, " " ns[$1] " ") == 0 { print $1 " (" ns[$1] ")" }' "$D/Module.symvers" "$T/undef")
	tap_ok $([ "$nu" -gt 0 ] && [ -z "$miss$nsmiss" ]; echo $?) \
		"each undefined symbol is in the default test kernel's Module.symvers (same fragments, built), its namespace imported" \
		"missing: $(echo $miss)
namespace not imported: $(echo $nsmiss)"
else
	# make check runs this suite after the default kernel's build (tests/manifest): its absence is a
	# broken run, not a missing environment.
	tap_ok 1 "each undefined symbol is in the default test kernel's Module.symvers" "the default test kernel is not built ($D)"
fi

vm=$(/sbin/modinfo -F vermagic "$ko" 2>&1)
tap_ok $(case "$vm" in "$kver "*) echo 0 ;; *) echo 1 ;; esac) "modinfo: the module's vermagic is the GCC tree's release ($kver)" "vermagic: $vm"
cmt=$(readelf -p .comment "$ko" 2>&1 | sed -n 's/^ *\[ *[0-9a-f]*\] *//p' | sort -u)
gccv=$(sed -nE 's/^CONFIG_CC_VERSION_TEXT="?gcc (.*[^"])"?$/\1/p' "$conf")
rustv=$(sed -nE 's/^CONFIG_RUSTC_VERSION_TEXT="?rustc (.*[^"])"?$/\1/p' "$conf")
tap_ok $([ -n "$gccv" ] && printf '%s\n' "$cmt" | grep -qxF "GCC: $gccv" && printf '%s\n' "$cmt" | grep -qxF "rustc version $rustv" &&
	! printf '%s\n' "$cmt" | grep -qi clang; echo $?) \
	"the .ko's .comment names the tree's gcc and rustc and no clang" "tree: gcc ${gccv:-?}, rustc ${rustv:-?}
.comment:
$cmt"

# DKMS from dkms.conf against the prepared tree, staged as in tests/host/dkms.sh.
if ! command -v dkms >/dev/null; then
	tap_ok 1 "dkms build and install against the prepared GCC tree" "dkms is not installed, although scripts/setup installs it"
	tap_end
	exit
fi
name=$(sed -n 's/^PACKAGE_NAME="\(.*\)"$/\1/p' dkms.conf)
ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' dkms.conf)
src=$T/src/$name-$ver
mkdir -p "$src" "$T/tree" "$T/root/lib/modules/$kver"
git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C "$src"
dk() { dkms "$@" -m "$name" -v "$ver" --sourcetree "$T/src" --dkmstree "$T/tree"; }
out=$(dk add 2>&1 && KBUILD_MODPOST_WARN=1 dk build -k "$kver" --kernelsourcedir "$K" 2>&1); rc=$?
tap_ok "$rc" "dkms add and build -k $kver against the prepared GCC tree (KBUILD_MODPOST_WARN=1 in its environment)" "$out
$(find "$T/tree" -name make.log -exec tail -n 20 {} + 2>/dev/null)"
out=$(dk install -k "$kver" --kernelsourcedir "$K" --installtree "$T/root/lib/modules" --no-depmod 2>&1); rc=$?
dko=$T/root/lib/modules/$kver/updates/dkms/$mod.ko
dvm=$(/sbin/modinfo -F vermagic "$dko" 2>&1)
tap_ok $([ "$rc" = 0 ] && [ -f "$dko" ] && [ "$dvm" = "$vm" ]; echo $?) \
	"dkms install stages $mod.ko with the same vermagic as make module's" "$out
vermagic: $dvm"
had=$([ -f "$dko" ] && echo 1)
out=$(dk remove -k "$kver" --installtree "$T/root/lib/modules" --no-depmod 2>&1); rc=$?
tap_ok $([ "$rc" = 0 ] && [ -n "$had" ] && [ ! -e "$dko" ]; echo $?) "dkms remove takes the installed module away" "$out"
tap_end
