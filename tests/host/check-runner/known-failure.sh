#!/usr/bin/env bash
# A suite whose only failure is marked TODO: still a failure.
. "$(dirname "$(readlink -f "$0")")/../../lib/tap.sh"
tap_begin "$1"
tap_ok 0 "passes"
_tap_out "not ok 2 - fails, marked as known # TODO"
_tap_n=2
tap_end
