#!/usr/bin/env bash
# Host suite: formatting, clippy (workspace and the kernel module with CLIPPY=1) and the unsafe
# policy: `unsafe` appears only in the FFI folders (src/driver/vfio/, src/driver/sys/), and every
# unsafe block has a SAFETY comment.
source "$(dirname "$0")/../../scripts/lib.sh"
set +e
. "$PVP_TOP/tests/lib/tap.sh"
tap_begin "$1"
cd "$PVP_TOP"
KSRC=$(pvp_ksrc)

mapfile -t rs < <(git ls-files 'src/driver/*.rs' 'src/driver/**/*.rs')
tap_check "rustfmt (kernel .rustfmt.toml) is clean on src/driver" rustfmt --config-path "$KSRC/.rustfmt.toml" --edition 2021 --check "${rs[@]}"
tap_check "cargo fmt --check is clean" cargo fmt --all -- --check
tap_check "cargo clippy --workspace --all-targets has no warnings" cargo clippy --quiet --workspace --all-targets -- -D warnings
mkdir -p build/module-clippy
clip=$(make -s -C "$(pvp_kbuild)" M="$PVP_TOP" MO="$PVP_TOP/build/module-clippy" LLVM="$PVP_LLVM" CLIPPY=1 modules 2>&1); crc=$?
tap_ok $([ "$crc" = 0 ] && ! printf '%s' "$clip" | grep -qE '^(warning|error)'; echo $?) "the module builds with CLIPPY=1 and no warnings" "$clip"

# The FFI folders: the generic VFIO abstraction src/driver/vfio/, the driver's own FFI
# src/driver/sys/ and the tool's ioctl module.
ffi='^(src/driver/vfio/|src/driver/sys/|src/tool/src/vfio\.rs$)'
outside=$(git ls-files '*.rs' | grep -Ev "$ffi" | xargs grep -nE '\bunsafe\b' 2>/dev/null | grep -vE '^\S+:[0-9]+:\s*(//|//!|///)' | grep -v 'forbid(unsafe_code)\|deny(unsafe_code)\|unsafe_code =')
tap_ok $([ -z "$outside" ]; echo $?) "no unsafe code outside the FFI folders (src/driver/vfio/, src/driver/sys/, src/tool/src/vfio.rs)" "$outside"
nosafety=$(git ls-files '*.rs' | grep -E "$ffi" | while read -r f; do
	grep -n 'unsafe {' "$f" | while IFS=: read -r l _; do
		s=$((l > 6 ? l - 6 : 1)); sed -n "${s},${l}p" "$f" | grep -q 'SAFETY' || echo "$f:$l"; done; done)
tap_ok $([ -z "$nosafety" ]; echo $?) "every unsafe block in the FFI folders has a SAFETY comment" "$nosafety"
tap_check "no import cycles between the driver's files (scripts/import-cycles)" scripts/import-cycles src/driver/persona_vfio_pci_main.rs
tap_check "no import cycles between the core's files (scripts/import-cycles)" scripts/import-cycles src/core/src/lib.rs
tap_check "no import cycles between the tool's files (scripts/import-cycles)" scripts/import-cycles src/tool/src/lib.rs
core_crate=$(grep -rn 'crate::' src/core/src | grep -v '^\S*:\s*//')
tap_ok $([ -z "$core_crate" ]; echo $?) "the core never names crate:: (it is also a module of the kernel crate)" "$core_crate"
tap_end
