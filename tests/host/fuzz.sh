#!/usr/bin/env bash
# Host suite: a short run of every fuzz target (kernel parsers: persona blob, text, stream,
# overlay). A crash, a panic or a timeout in any of them fails the suite.
source "$(dirname "$0")/../../scripts/lib.sh"
set +e
. "$PVP_TOP/tests/lib/tap.sh"
tap_begin "$1"
out=$("$PVP_TOP/scripts/fuzz" short 2>&1)
n=0
while read -r t execs st; do
	case "$st" in ok|FAILED) ;; *) continue ;; esac
	n=$((n + 1))
	tap_ok $([ "$st" = ok ] && [ "${execs:-0}" -gt 0 ]; echo $?) "fuzz $t: no crash in $execs runs" "$(tail -n 20 "$PVP_BUILD/fuzz/$t.log" 2>/dev/null)"
done <<<"$out"
[ "$n" -gt 0 ] || tap_ok 1 "fuzz targets ran" "$out"
tap_end
