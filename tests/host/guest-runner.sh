#!/usr/bin/env bash
# Host suite: scripts/guest-run keeps its contract (what reviewers rely on to try things by hand).
source "$(dirname "$0")/../../scripts/lib.sh"
set +e
. "$PVP_TOP/tests/lib/tap.sh"
tap_begin "$1"
GR=$PVP_TOP/scripts/guest-run
krel=$(cat "$(pvp_kbuild)/include/config/kernel.release")

# One boot for the contract of a command that runs to its end (each boot costs 15-30 s under TCG):
# sections marked "@@ NAME" in its output, each checked on its own; its last word is `exit 7`.
sec() { printf '%s\n' "$out" | awk -v s="@@ $1" '$0 == s { on = 1; next } /^@@ / { on = 0 } on'; }
out=$(PVP_FUZZ_SEED=4242 "$GR" --devices "-device igb" -- '
echo "@@ uname"; uname -r
echo "@@ ids"; cat /sys/bus/pci/devices/*/device
echo "@@ tools"; command -v vfio-persona && command -v pvp-bind && command -v vfio_pci_device_test &&
	test -f /repo/build/module/persona_vfio_pci.ko && echo "tools: all there"
echo "@@ monitor"; pvp-monitor "info status"; echo "rc=$?"; pvp-monitor "device_del nosuch"; echo "rc=$?"
pvp-monitor "{\"execute\":\"query-pci\"}" | grep -o "\"qdev_id\": \"edu[12]\"" | sort -u | tr "\n" " "; echo
echo "@@ knob"; echo "PVP_FUZZ_SEED=$PVP_FUZZ_SEED"
echo "@@ end"; exit 7' 2>&1); rc=$?
o=$(sec uname)
tap_ok $([ "$o" = "$krel" ]; echo $?) "guest-run -- uname -r prints the test kernel's release ($krel)" "$out"
o=$(sec ids)
tap_ok $(echo "$o" | grep -qx 0x10c9; echo $?) "--devices adds an igb (0x10c9) to the guest" "$o"
tap_ok $([ "$rc" = 7 ]; echo $?) "the command's exit status is guest-run's (7)" "rc=$rc $out"
o=$(sec tools)
tap_ok $(echo "$o" | grep -qx 'tools: all there'; echo $?) "the project's tools are on PATH in the guest" "$o"
o=$(sec knob)
tap_ok $([ "$o" = PVP_FUZZ_SEED=4242 ]; echo $?) "a suite's knob set on the host reaches the guest (PVP_FUZZ_SEED=4242)" "$o"
o=$(sec monitor)
tap_ok $(echo "$o" | grep -q '^VM status: running' && echo "$o" | grep -q "^Error: Device 'nosuch' not found" &&
	[ "$(echo "$o" | grep -c '^rc=0$')" = 1 ] && echo "$o" | grep -q '^rc=1$' && echo "$o" | grep -q '"qdev_id": "edu1" "qdev_id": "edu2"'; echo $?) \
	"pvp-monitor drives this guest's QEMU: HMP text, HMP errors fail, QMP JSON, the devices have ids" "$o"

out=$("$GR" --timeout 120 -- 'pvp-monitor quit; echo "quit rc=$?"; sleep 30' 2>&1); rc=$?
tap_ok $([ "$rc" = 125 ] && echo "$out" | grep -q 'stopped before the command finished'; echo $?) \
	"a QEMU told to quit through pvp-monitor ends the run (125, no hang)" "rc=$rc $out"

start=$(date +%s)
out=$("$GR" --timeout 12 -- sleep 600 2>&1); rc=$?
took=$(( $(date +%s) - start ))
tap_ok $([ "$rc" = 125 ] && echo "$out" | grep -q 'timed out after 12s'; echo $?) "a hung guest fails with 'timed out' (rc=$rc after ${took}s)" "$out"

out=$("$GR" --timeout 120 -- 'echo 1 >/proc/sys/kernel/sysrq; echo c >/proc/sysrq-trigger; sleep 60' 2>&1); rc=$?
tap_ok $([ "$rc" = 125 ] && echo "$out" | grep -q 'kernel panicked'; echo $?) "a panicking guest fails with 'kernel panicked'" "$out"
# No guest boots in a second under TCG: the boot watchdog must stop it, start it once more, and
# then fail saying why (a real early-boot hang is retried once, never waited out).
out=$(PVP_BOOT_TIMEOUT=1 "$GR" --timeout 300 -- true 2>&1); rc=$?
tap_ok $([ "$rc" = 125 ] && [ "$(echo "$out" | grep -c 'starting it once more')" = 1 ] &&
	echo "$out" | grep -q 'no sign of booting within 1s, twice'; echo $?) \
	"a guest that shows no sign of booting is started once more, then fails saying so" "rc=$rc $out"
tap_end
