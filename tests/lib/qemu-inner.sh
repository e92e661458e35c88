# shellcheck shell=sh
# Sourced by the guest suites whose client is QEMU itself (migration-qemu, migration-qemu-ivshmem):
# inner QEMUs from the cached trixie root, each owning one host function through
# `-object iommufd` + `-device vfio-pci`, driven over QMP and their inner guest's serial console,
# both through FIFOs; and the inner guest's initramfs (busybox plus the suite's helpers).
# The caller sources tests/lib/tap.sh first and sets:
#   W     a private folder (FIFOs, logs, the initramfs)
#   TR    the trixie root (QEMU, its loader and libraries, qboot)
#   KB    the kernel build folder (its vmlinux boots the inner guest, through the PVH entry)
#   INNER_CMDLINE  the inner kernel's command line
#   VFIO_MIG_OPT   extra vfio-pci options (",x=y"; may be empty)
#   INNER_MEM      the inner guest's RAM (default 128M)
# Every wait has a timeout.

now() { date +%s; }
t_suite=$(now) t_phase=$t_suite
# inner_kernel: sets QI_KERNEL, the image the inner guest boots, and names it in a diagnostic:
# the uncompressed vmlinux, entered through its PVH note (CONFIG_PVH), with no decompression and
# no real-mode setup, which under TCG inside TCG make the bzImage's boot several times longer.
# Without a vmlinux built with CONFIG_PVH (a build folder from before tests/config had it), the
# bzImage, and the diagnostic says it is the slow fallback.
inner_kernel() {
	if [ -f "$KB/vmlinux" ] && grep -qx 'CONFIG_PVH=y' "$KB/.config" 2>/dev/null; then
		QI_KERNEL=$KB/vmlinux
		tap_diag "inner kernel: $QI_KERNEL (PVH entry)"
	else
		QI_KERNEL=$KB/arch/x86/boot/bzImage
		tap_diag "inner kernel: $QI_KERNEL, the slow fallback: $KB has no vmlinux built with CONFIG_PVH=y"
	fi
}
# phase_done NAME: the phase's wall time as a TAP comment.
phase_done() {
	_t=$(now)
	tap_diag "time: $1: $((_t - t_phase)) s (suite so far $((_t - t_suite)) s; slowest inner answer $(cat "$W/slowest" 2>/dev/null || echo -) s)"
	t_phase=$_t
}
expect() { tap_ok "$([ "$2" = "$3" ]; echo $?)" "$1" "got \"$2\", want \"$3\""; }

# --- QEMU processes, their FIFOs and logs (all under $W) ---
libs=$TR/usr/lib/x86_64-linux-gnu:$TR/lib/x86_64-linux-gnu
bg_pids=
# pid_of NAME: the QEMU's process id.
pid_of() { eval "echo \${qpid_$1:-}"; }
# alive NAME: the QEMU runs (a zombie waiting to be reaped does not).
alive() {
	_p=$(pid_of "$1")
	[ -n "$_p" ] && [ -r "/proc/$_p/stat" ] && [ "$(cut -d' ' -f3 "/proc/$_p/stat" 2>/dev/null)" != Z ]
}
# qemu_start NAME BDF [QEMU ARGS...]: an inner QEMU owning BDF ("-": no device), in the
# background, booting the inner guest ($QI_KERNEL: call inner_kernel first; with QI_NO_KERNEL
# set: nothing to boot, an idle VM).
# Serial and QMP are FIFO pairs ($W/NAME.ser.in/.out, $W/NAME.qmp.in/.out); what QEMU writes is
# copied to $W/NAME.serial and $W/NAME.qmplog, its stderr goes to $W/NAME.log.
qemu_start() {
	_n=$1 _b=$2
	shift 2
	[ "$_b" = - ] || set -- -object iommufd,id=iommufd0 \
		-device "vfio-pci,host=$_b,id=${QI_DEV_ID:-dev0},iommufd=iommufd0$VFIO_MIG_OPT" "$@"
	[ -n "${QI_NO_KERNEL:-}" ] ||
		set -- -kernel "$QI_KERNEL" -initrd "$W/inner.cpio" -append "$INNER_CMDLINE" "$@"
	for _f in ser qmp; do
		rm -f "$W/$_n.$_f.in" "$W/$_n.$_f.out"
		mkfifo "$W/$_n.$_f.in" "$W/$_n.$_f.out"
	done
	: >"$W/$_n.serial"
	: >"$W/$_n.qmplog"
	: >"$W/$_n.log"
	rm -f "$W/$_n.stuck"
	QEMU_MODULE_DIR=$TR/usr/lib/x86_64-linux-gnu/qemu \
		"$TR/lib64/ld-linux-x86-64.so.2" --library-path "$libs" "$TR/usr/bin/qemu-system-x86_64" \
		-L "$TR/usr/share/qemu" -name "$_n" \
		-accel tcg,tb-size=64 -machine pc -cpu max -smp 1 -m "${INNER_MEM:-128M}" \
		-nodefaults -no-user-config -display none -no-reboot \
		-bios "$TR/usr/share/qemu/qboot.rom" \
		-serial "pipe:$W/$_n.ser" \
		-qmp "pipe:$W/$_n.qmp" \
		"$@" >>"$W/$_n.log" 2>&1 &
	eval "qpid_$_n=$!"
	cat "$W/$_n.ser.out" >>"$W/$_n.serial" 2>/dev/null &
	bg_pids="$bg_pids $!"
	cat "$W/$_n.qmp.out" >>"$W/$_n.qmplog" 2>/dev/null &
	bg_pids="$bg_pids $!"
}
# wait_for FILE TEXT SECONDS [NAME]: until FILE contains TEXT; gives up early when QEMU NAME is gone.
# The first looks come soon after one another (a QMP answer takes tens of milliseconds, and most
# waits are for one), then every half second.
wait_for() {
	_end=$(($(now) + $3)) _nap=0.05
	while ! grep -qF -- "$2" "$1" 2>/dev/null; do
		if [ -n "${4:-}" ] && ! alive "$4"; then
			sleep 1
			grep -qF -- "$2" "$1" 2>/dev/null
			return
		fi
		[ "$(now)" -lt "$_end" ] || return 1
		sleep "$_nap"
		case $_nap in 0.05) _nap=0.1 ;; 0.1) _nap=0.2 ;; *) _nap=0.5 ;; esac
	done
}
# next_id: a number never used before in this run (callers run in subshells, so it lives in a file).
echo 0 >"$W/last-id"
next_id() {
	_i=$(($(cat "$W/last-id") + 1))
	echo "$_i" >"$W/last-id"
	echo "$_i"
}
# qmp NAME COMMAND [ARGUMENTS-JSON]: sends one QMP command, prints its response line;
# status 1 when none came within 60 s, 2 when it is an error.
qmp() {
	_id=c$(next_id) _a=
	[ -n "${3:-}" ] && _a=",\"arguments\":$3"
	alive "$1" || { echo "(QEMU $1 is not running)"; return 1; }
	# Read-write opens of a FIFO never block, even if QEMU is gone.
	printf '{"execute":"%s"%s,"id":"%s"}\n' "$2" "$_a" "$_id" 1<>"$W/$1.qmp.in"
	if ! wait_for "$W/$1.qmplog" "\"$_id\"" 60 "$1"; then
		echo "(no QMP answer from $1 to $2 within 60 s)"
		return 1
	fi
	_r=$(grep -F "\"$_id\"" "$W/$1.qmplog" | head -n 1)
	echo "$_r"
	case "$_r" in *'"error"'*) return 2 ;; esac
	return 0
}
# qmp_ready NAME: waits for the QMP greeting and leaves capabilities negotiation.
qmp_ready() {
	wait_for "$W/$1.qmplog" '"QMP"' 120 "$1" && qmp "$1" qmp_capabilities >/dev/null
}
# field JSON NAME: a string or number member of a QMP answer ("status", "error-desc", ...).
field() {
	printf '%s\n' "$1" | sed -n "s/.*\"$2\": *\"\([^\"]*\)\".*/\1/p;t;s/.*\"$2\": *\([0-9][0-9]*\).*/\1/p" |
		head -n 1
}
# status NAME: the VM's run state.
status() { field "$(qmp "$1" query-status)" status; }
# migration_wait NAME SECONDS: polls query-migrate until it ends; prints the last answer.
migration_wait() {
	_end=$(($(now) + $2))
	while :; do
		_m=$(qmp "$1" query-migrate) || { echo "$_m"; return 1; }
		case "$(field "$_m" status)" in
		completed | failed | cancelled) echo "$_m"; return 0 ;;
		esac
		[ "$(now)" -lt "$_end" ] || { echo "$_m"; return 1; }
		sleep 0.25
	done
}
# qemu_stop NAME: quit over QMP, then kill if it lingers; its stderr becomes diagnostics.
qemu_stop() {
	_p=$(pid_of "$1")
	[ -n "$_p" ] || return 0
	alive "$1" && qmp "$1" quit >/dev/null
	for _ in $(seq 100); do alive "$1" || break; sleep 0.1; done
	alive "$1" && { kill -9 "$_p" 2>/dev/null; tap_diag "QEMU $1 did not quit; killed"; }
	wait "$_p" 2>/dev/null
	eval "qpid_$1="
	qemu_log "$1"
}
# qemu_log NAME: QEMU's stderr (its warnings) as TAP diagnostics, once (QEMU appends to it).
qemu_log() {
	[ -s "$W/$1.log" ] || return 0
	tap_diag "QEMU $1 said:"
	sed "s/^[[:space:]]*/  /" "$W/$1.log" | head -n 40 | while IFS= read -r _l; do tap_diag "$_l"; done
	: >"$W/$1.log"
}
# set_caps NAME: return-path and switchover-ack (the destination acknowledges the device's
# initial data before the source stops).
set_caps() {
	qmp "$1" migrate-set-capabilities \
		'{"capabilities":[{"capability":"return-path","state":true},{"capability":"switchover-ack","state":true}]}'
}

# --- the inner guest's shell over its serial port ---
# inner NAME CMD: runs CMD in the inner guest (in the QEMU NAME); prints its one-line output,
# status: the command's, 124 when no answer came within $INNER_WAIT s (default 600). The wait
# polls, so a healthy guest costs no more than its answer: the ceiling is for a loaded host, where
# the first command in a freshly started destination QEMU (every inner code path translated anew,
# TCG inside TCG) was seen to take more than 90 s, and 214 s in a cold make check with two
# guests and a kernel build sharing two cores. A guest that missed the ceiling once is not
# waited for again (each later command fails at once) until that answer has come.
inner() {
	ser_n=$(next_id)
	alive "$1" || { echo "(QEMU $1 is not running)"; return 124; }
	if [ -s "$W/$1.stuck" ] && ! grep -qF "@@$(cat "$W/$1.stuck") " "$W/$1.serial"; then
		echo "(the inner guest in $1 has not yet answered command $(cat "$W/$1.stuck"), which timed out)"
		return 124
	fi
	rm -f "$W/$1.stuck"
	_t0=$(now)
	_wait=${INNER_WAIT:-600}
	printf '%s %s\n' "$ser_n" "$2" 1<>"$W/$1.ser.in"
	if ! wait_for "$W/$1.serial" "@@$ser_n " "$_wait" "$1"; then
		echo "$ser_n" >"$W/$1.stuck"
		echo "(no answer from the inner guest in $1 within $_wait s; QEMU $1: $(status "$1");" \
			"console's last lines: $(tail -n 3 "$W/$1.serial" | tr -d '\r' | cut -c1-160 | tr '\n' '|'))"
		return 124
	fi
	# The slowest answer of the run, for phase_done's comment.
	_dt=$(($(now) - _t0))
	[ "$_dt" -le "$(cat "$W/slowest" 2>/dev/null || echo 0)" ] || echo "$_dt" >"$W/slowest"
	# The serial port delivers the line a few bytes at a time (a long one takes seconds in a
	# nested TCG guest): read it once its end mark " @@." is in.
	_end=$(($(now) + 60))
	while ! grep -F "@@$ser_n " "$W/$1.serial" | head -n 1 | grep -qF ' @@.'; do
		[ "$(now)" -lt "$_end" ] || break
		sleep 0.2
	done
	_l=$(grep -F "@@$ser_n " "$W/$1.serial" | head -n 1 | tr -d '\r')
	case "$_l" in
	*' @@.'*) ;;
	*) echo "(the inner guest's answer in $1 did not end within 60 s: $_l)"; return 124 ;;
	esac
	_rc=$(echo "$_l" | sed -n 's/^.*@@[0-9]* rc=\([0-9]*\).*/\1/p')
	echo "$_l" | sed 's/^.*@@[0-9]* rc=[0-9]* \{0,1\}//; s/ \{0,1\}@@\.$//'
	return "${_rc:-1}"
}

# inner_initramfs VENDOR:DEVICE PRELUDE PROGRAM...: writes $W/inner.cpio: static busybox, the
# PROGRAMs (in /bin), and an init that names the first function with these IDs $E, runs the
# shell text PRELUDE (the suite's helper functions), then reads "ID COMMAND" lines from the
# console and answers "@@ID rc=STATUS OUTPUT @@." on one line (the mark ends a whole line).
# It prints "@@ready dev=BDF" first.
inner_initramfs() {
	_ids=$1 _pre=$2
	shift 2
	rm -rf "$W/root"
	mkdir -p "$W/root/bin" "$W/root/dev" "$W/root/proc" "$W/root/sys"
	cp /bin/busybox "$W/root/bin/busybox"
	for _a in sh mount cat stty sleep echo dmesg od tr md5sum; do ln -s busybox "$W/root/bin/$_a"; done
	for _a in "$@"; do cp "$_a" "$W/root/bin/"; done
	mknod "$W/root/dev/console" c 5 1
	{
		cat <<'INIT'
#!/bin/busybox sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
stty -echo 2>/dev/null
E=
for d in /sys/bus/pci/devices/*; do
INIT
		printf '	[ "$(cat "$d/vendor"):$(cat "$d/device")" = %s ] && E=${d##*/}
' "$_ids"
		printf 'done
%s
' "$_pre"
		cat <<'INIT'
set -f
echo "@@ready dev=$E"
while read -r id cmd; do
	[ -n "$id" ] || continue
	out=$(eval "$cmd" 2>&1)
	echo "@@$id rc=$?" $out @@.
done
echo "@@eof"
INIT
	} >"$W/root/init"
	chmod 755 "$W/root/init"
	(cd "$W/root" && find . | cpio -o -H newc 2>/dev/null) >"$W/inner.cpio"
	[ -s "$W/inner.cpio" ]
}
