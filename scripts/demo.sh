#!/bin/bash
# SPDX-License-Identifier: MIT
# A scripted tour of sbxd for newcomers: start the daemon, create and use
# sandboxes with sbxctl, then send SIGTERM and watch the node drain.
#
# Usage: scripts/demo.sh BUILD_DIR   (make demo runs it on ./build)
#
# Everything runs in a temporary directory that the script removes at the
# end. The script stops only the processes it started, by pid, also when
# it is interrupted with Ctrl-C.
set -u

if [ $# -ne 1 ]; then
	echo "usage: $0 BUILD_DIR (the CMake build directory with sbxd and sbxctl)" >&2
	exit 2
fi
BUILD=$(cd "$1" 2>/dev/null && pwd) || {
	echo "demo: build directory '$1' not found; run 'make build' first" >&2
	exit 2
}
for prog in sbxd sbxctl sbx-vmm sbx-agent; do
	if [ ! -x "$BUILD/$prog" ]; then
		echo "demo: $BUILD/$prog is missing; run 'make build' first" >&2
		exit 2
	fi
done
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "demo: /dev/kvm is not readable and writable; sbxd needs KVM" >&2
	exit 1
fi

WORK=$(mktemp -d /tmp/sbxd-demo.XXXXXX)
STATE="$WORK/state"
LOG="$WORK/sbxd.log"
# A unique instance name keeps our BPF pin directory apart from any other
# sbxd on this machine.
INSTANCE="demo-$$"
PIN_DIR="/sys/fs/bpf/sbxd/$INSTANCE"
export SBXD_SOCKET="$STATE/sbxd.sock"
SBXD_PID=""
EXEC_PID=""
WATCH_PID=""
LOG_SHOWN=0
STEP=0
STEPS=9

if [ -t 1 ]; then
	BOLD=$(printf '\033[1m')
	DIM=$(printf '\033[2m')
	PLAIN=$(printf '\033[0m')
else
	BOLD=""
	DIM=""
	PLAIN=""
fi

# shellcheck disable=SC2317 # called through the EXIT trap
cleanup() {
	trap - EXIT INT TERM
	for pid in "$EXEC_PID" "$WATCH_PID"; do
		if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
			kill "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
		fi
	done
	if [ -n "$SBXD_PID" ] && kill -0 "$SBXD_PID" 2>/dev/null; then
		echo "demo: stopping sbxd (pid $SBXD_PID)"
		kill -TERM "$SBXD_PID" 2>/dev/null
		# A second SIGTERM escalates the drain to the forced phase.
		sleep 1
		kill -TERM "$SBXD_PID" 2>/dev/null
		for _ in $(seq 50); do
			kill -0 "$SBXD_PID" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$SBXD_PID" 2>/dev/null
		wait "$SBXD_PID" 2>/dev/null
	fi
	# sbxd removes its pins on a clean exit; this covers a killed one.
	[ -d "$PIN_DIR" ] && rm -rf "$PIN_DIR"
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted, cleaning up"; exit 130' INT TERM

step() {
	STEP=$((STEP + 1))
	echo
	echo "${BOLD}== [$STEP/$STEPS] $*${PLAIN}"
}

# Print the command on stderr, so that $(ctl ...) captures only its
# output, then run it with sbxctl from the build directory.
ctl() {
	echo "${DIM}\$ sbxctl $*${PLAIN}" >&2
	"$BUILD/sbxctl" "$@"
}

# Print the sbxd log lines written since the last call, prefixed.
show_log() {
	local total
	total=$(wc -l <"$LOG")
	if [ "$total" -gt "$LOG_SHOWN" ]; then
		tail -n +"$((LOG_SHOWN + 1))" "$LOG" | head -n "$((total - LOG_SHOWN))" |
			sed "s/^/  ${DIM}sbxd log |${PLAIN} /"
		LOG_SHOWN=$total
	fi
}

fail() {
	echo "demo: $*" >&2
	show_log
	exit 1
}

step "Start sbxd in a temporary state directory"
echo "${DIM}\$ sbxd --state-dir $STATE --instance $INSTANCE &${PLAIN}"
"$BUILD/sbxd" --state-dir "$STATE" --instance "$INSTANCE" >"$LOG" 2>&1 &
SBXD_PID=$!
echo "sbxd runs as pid $SBXD_PID; its log is $LOG"
for _ in $(seq 100); do
	"$BUILD/sbxctl" node >/dev/null 2>&1 && break
	kill -0 "$SBXD_PID" 2>/dev/null || fail "sbxd exited during startup"
	sleep 0.1
done
"$BUILD/sbxctl" node >/dev/null 2>&1 || fail "sbxd did not respond on $SBXD_SOCKET within 10 s"
echo "sbxctl finds the socket through SBXD_SOCKET=$SBXD_SOCKET"
show_log

step "Create three sandboxes; each returns once its guest is ready"
A=$(ctl create --quiet --meta role=web) || fail "create failed"
echo "$A"
B=$(ctl create --quiet --meta role=worker) || fail "create failed"
echo "$B"
C=$(ctl create --quiet --meta role=sleeper --memory-mib 32) || fail "create failed"
echo "$C"
ctl ls
show_log

step "Run commands in the guests"
ctl exec "$A" -- echo hello from "$A"
ctl exec "$B" -- counter
ctl exec "$B" -- counter
ctl exec "$B" -- counter
echo "The counter lives in guest memory, so it survives between commands."
echo "${DIM}\$ sbxctl exec $C -- sleep 3000 &${PLAIN}"
"$BUILD/sbxctl" exec "$C" -- sleep 3000 >"$WORK/exec.out" 2>&1 &
EXEC_PID=$!
echo "A 3 s sleep now runs in $C in the background."
show_log

step "Look at the node"
ctl ls
ctl node
echo "Start a watch that follows the node until sbxd exits. As root it reads"
echo "the BPF map that sbxd pins for its instance, else it polls the API."
echo "${DIM}\$ sbxctl node --watch --instance $INSTANCE --interval 200ms >watch.out &${PLAIN}"
"$BUILD/sbxctl" node --watch --instance "$INSTANCE" --interval 200ms \
	>"$WORK/watch.out" 2>&1 &
WATCH_PID=$!
sleep 0.5
sed 's/^/  /' "$WORK/watch.out"
show_log

step "Stop $A gracefully and kill $B; $C keeps running"
ctl stop "$A" --grace-ms 2000
ctl kill "$B"
ctl ls
show_log

step "Send SIGTERM to sbxd while $C is still running"
echo "${DIM}\$ kill -TERM $SBXD_PID${PLAIN}"
kill -TERM "$SBXD_PID"
sleep 0.3
show_log
echo "sbxd now admits no new sandboxes but serves everything else, and it"
echo "waits for the live sandbox to end, because no drain timeout is set."

step "Watch the drain"
ctl node
sleep 1
echo "The watch prints a line when the state or a counter changes:"
sed 's/^/  /' "$WORK/watch.out"
echo "A create is rejected with 503 and a Retry-After hint:"
ctl create
echo "(exit status $?)"
echo "Requests to existing sandboxes still work:"
ctl exec "$C" -- echo still serving
wait "$EXEC_PID"
echo "The background sleep in $C finished during the drain, with exit status $?."
sed 's/^/  /' "$WORK/exec.out"
EXEC_PID=""
show_log

step "Stop the last sandbox; the drain can now finish"
ctl stop "$C" --grace-ms 2000
for _ in $(seq 100); do
	kill -0 "$SBXD_PID" 2>/dev/null || break
	sleep 0.1
done

step "sbxd's exit status"
if kill -0 "$SBXD_PID" 2>/dev/null; then
	show_log
	fail "sbxd still runs 10 s after its last sandbox stopped"
fi
wait "$SBXD_PID"
STATUS=$?
SBXD_PID=""
show_log
wait "$WATCH_PID"
echo "The watch ended with exit status $? when sbxd exited:"
WATCH_PID=""
sed 's/^/  /' "$WORK/watch.out"
case $STATUS in
0)
	echo "sbxd exited with 0: every sandbox ended and every closer succeeded."
	if [ -e "$STATE/sbxd.lock" ]; then
		echo "Unexpected: the lock file $STATE/sbxd.lock is still there."
	else
		echo "So it removed its lock file, and the next start is a clean one."
	fi
	;;
1)
	echo "sbxd exited with 1: the shutdown was unclean (a sandbox or a closer"
	echo "failed, see the log above), so it kept its lock file for the next"
	echo "start to see."
	;;
*)
	echo "sbxd exited with $STATUS, a status the drain never returns; see the log above."
	;;
esac
echo
echo "Done. The script removes $WORK on exit."
exit 0
