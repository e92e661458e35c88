#!/usr/bin/env bash
# A suite whose TAP file is gone when it ends, although it passed.
. "$(dirname "$(readlink -f "$0")")/../../lib/tap.sh"
tap_begin "$1"
tap_ok 0 "passes"
tap_end
rm -f "$1"
