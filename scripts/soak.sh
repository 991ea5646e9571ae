#!/bin/bash
# SPDX-License-Identifier: MIT
# Start a private sbxd, run sbx-soak against it, drain it with SIGTERM and
# check that it exits 0. Everything it makes is removed at the end.
set -euo pipefail

usage() {
	cat <<EOF
usage: scripts/soak.sh BUILD_DIR [--cycles N] [--concurrency C]

Starts BUILD_DIR/sbxd with a temporary state dir and its own --instance,
runs BUILD_DIR/sbx-soak against it (create, exec, delete cycles with leak
checks), then sends SIGTERM and expects sbxd to exit 0.
  --cycles N       create/exec/delete cycles; default 10000
  --concurrency C  cycles in flight at once; default 8
Exit status: 0 when sbx-soak passed and sbxd exited 0, 1 otherwise, 2 for
bad arguments.
EOF
}

BUILD=""
CYCLES=10000
CONCURRENCY=8
READY_TIMEOUT_S=10
EXIT_TIMEOUT_S=60

while [ $# -gt 0 ]; do
	case "$1" in
	--cycles | --concurrency)
		if [ $# -lt 2 ]; then
			echo "soak.sh: $1 needs a value" >&2
			exit 2
		fi
		if [ "$1" = --cycles ]; then CYCLES=$2; else CONCURRENCY=$2; fi
		shift
		;;
	-h | --help) usage; exit 0 ;;
	-*) echo "soak.sh: unknown flag $1; see --help" >&2; exit 2 ;;
	*)
		if [ -n "$BUILD" ]; then
			echo "soak.sh: one BUILD_DIR only, got $1 too" >&2
			exit 2
		fi
		BUILD=$1
		;;
	esac
	shift
done
if [ -z "$BUILD" ]; then
	usage >&2
	exit 2
fi
BUILD=$(cd "$BUILD" && pwd)
for prog in sbxd sbx-vmm sbx-agent sbx-soak; do
	if [ ! -x "$BUILD/$prog" ]; then
		echo "soak.sh: $BUILD/$prog is missing; build first: make build" >&2
		exit 1
	fi
done

TMP=$(mktemp -d /tmp/sbx-soak-XXXXXX)
# mktemp's random suffix keeps the BPF pin dir apart from other sbxds.
INSTANCE=soak-${TMP##*-}
STATE=$TMP/state
LOG=$TMP/sbxd.log
SBXD_PID=""

cleanup() {
	if [ -n "$SBXD_PID" ] && kill -0 "$SBXD_PID" 2>/dev/null; then
		echo "soak.sh: sbxd pid $SBXD_PID still runs; sending SIGKILL" >&2
		kill -KILL "$SBXD_PID" 2>/dev/null || true
		wait "$SBXD_PID" 2>/dev/null || true
	fi
	# A clean exit removes the pins; an unclean one leaves them.
	rm -rf "/sys/fs/bpf/sbxd/$INSTANCE" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

log_tail() {
	echo "soak.sh: last lines of the sbxd log:" >&2
	tail -n 30 "$LOG" >&2 || true
}

"$BUILD/sbxd" --state-dir "$STATE" --instance "$INSTANCE" >"$LOG" 2>&1 &
SBXD_PID=$!

waited=0
until grep -q "serving on unix:$STATE/sbxd.sock" "$LOG" 2>/dev/null; do
	if ! kill -0 "$SBXD_PID" 2>/dev/null; then
		echo "soak.sh: sbxd exited before it served" >&2
		log_tail
		exit 1
	fi
	if [ "$waited" -ge $((READY_TIMEOUT_S * 10)) ]; then
		echo "soak.sh: sbxd did not serve within ${READY_TIMEOUT_S}s" >&2
		log_tail
		exit 1
	fi
	sleep 0.1
	waited=$((waited + 1))
done
echo "soak.sh: sbxd pid $SBXD_PID, state dir $STATE, instance $INSTANCE"

soak_status=0
"$BUILD/sbx-soak" --state-dir "$STATE" --instance "$INSTANCE" \
	--cycles "$CYCLES" --concurrency "$CONCURRENCY" || soak_status=$?

kill -TERM "$SBXD_PID"
waited=0
while kill -0 "$SBXD_PID" 2>/dev/null; do
	# kill -0 succeeds on a zombie too, so stop once sbxd is one.
	case $(ps -o stat= -p "$SBXD_PID" 2>/dev/null) in
	Z*) break ;;
	esac
	if [ "$waited" -ge $((EXIT_TIMEOUT_S * 10)) ]; then
		echo "soak.sh: sbxd did not exit within ${EXIT_TIMEOUT_S}s of" \
			"SIGTERM" >&2
		log_tail
		exit 1
	fi
	sleep 0.1
	waited=$((waited + 1))
done
sbxd_status=0
wait "$SBXD_PID" || sbxd_status=$?
SBXD_PID=""

if [ "$sbxd_status" -ne 0 ]; then
	echo "soak.sh: sbxd exited with status $sbxd_status after SIGTERM," \
		"expected 0" >&2
	log_tail
fi
if [ "$soak_status" -ne 0 ]; then
	echo "soak.sh: sbx-soak failed with status $soak_status" >&2
	[ "$sbxd_status" -ne 0 ] || log_tail
fi
if [ "$soak_status" -ne 0 ] || [ "$sbxd_status" -ne 0 ]; then
	exit 1
fi
echo "soak.sh: passed: sbx-soak found no leak and sbxd exited 0"
