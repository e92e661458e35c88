#!/usr/bin/env bash
# A suite that finishes: two passing lines and its plan.
. "$(dirname "$(readlink -f "$0")")/../../lib/tap.sh"
tap_begin "$1"
tap_ok 0 "one"
tap_ok 0 "two"
tap_end
