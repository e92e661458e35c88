#!/usr/bin/env bash
# A suite that dies before its plan (as one does when a command it needs is killed).
. "$(dirname "$(readlink -f "$0")")/../../lib/tap.sh"
tap_begin "$1"
tap_ok 0 "the first line"
exit 3
