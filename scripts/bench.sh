#!/bin/bash
# SPDX-License-Identifier: MIT
# Run every benchmark scenario against a private sbxd, the floor programs
# and the peers (QEMU, nginx), then write the results JSON, the tables in
# docs/benchmarks.md and the plots. Everything listens on 127.0.0.1 only.
set -euo pipefail

usage() {
	cat <<EOF
usage: scripts/bench.sh BUILD_DIR [--quick] [--out DIR]

Runs the scenarios of docs/benchmarks.md with the programs in BUILD_DIR.
  --quick    every scenario small, in under a minute; targets not asserted
  --out DIR  write the JSON (and, with --quick, the plots) to DIR instead
             of bench/results; docs/ is then left alone
A full run without --out writes bench/results/latest.json and regenerates
the tables in docs/benchmarks.md and the docs/bench-*.svg plots.
EOF
}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
QUICK=0
OUT=""
BUILD=""

while [ $# -gt 0 ]; do
	case "$1" in
	--quick) QUICK=1 ;;
	--out)
		[ $# -ge 2 ] || { echo "bench.sh: --out needs a directory" >&2; exit 2; }
		OUT=$2
		shift
		;;
	-h | --help) usage; exit 0 ;;
	-*) echo "bench.sh: unknown flag $1; see --help" >&2; exit 2 ;;
	*)
		[ -z "$BUILD" ] || { echo "bench.sh: one BUILD_DIR only, got $1 too" >&2; exit 2; }
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

for prog in sbxd sbx-vmm sbx-agent sbx-bench sbx-bench-true floor-exec \
	floor-kvm floor-rate floor-density; do
	if [ ! -x "$BUILD/$prog" ]; then
		echo "bench.sh: $BUILD/$prog is missing; build first: cmake --build $BUILD" >&2
		exit 1
	fi
done
for tool in qemu-system-x86_64 nginx wrk; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "bench.sh: $tool is not installed; run scripts/install-deps.sh" >&2
		exit 1
	fi
done
if ! $PY -c 'import matplotlib' 2>/dev/null; then
	echo "bench.sh: $PY lacks matplotlib; run scripts/install-deps.sh" >&2
	exit 1
fi
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "bench.sh: /dev/kvm is missing or not read-write for this user" >&2
	exit 1
fi

if [ "$QUICK" = 1 ]; then
	FLOOR_N=100 START_N=20 EXEC_N=200 RATE_S=3 DENSITY_N=50
	DRAIN_N=10 DRAIN_IDLE_MS=200 FORCE_N=20 PEER_N=3 API_S=2 SETTLE_S=1
else
	FLOOR_N=1000 START_N=200 EXEC_N=2000 RATE_S=30 DENSITY_N=5000
	DRAIN_N=100 DRAIN_IDLE_MS=1000 FORCE_N=1000 PEER_N=20 API_S=10
	SETTLE_S=10
fi
DRAIN_INTERVAL_MS=20
DRAIN_POLL=10ms
STOP_GRACE=1s
RESERVE_MIB=2048
# Live plus starting sandboxes sbxd admits: above the density count.
MAX_SANDBOXES=$((DENSITY_N + 500))

TMP=$(mktemp -d /tmp/sbx-bench-XXXXXX)
RAW=$TMP/raw
mkdir -p "$RAW"
INSTANCE="sbx-bench-$$"
PIDS=""

cleanup() {
	local pid
	for pid in $PIDS; do
		if kill -0 "$pid" 2>/dev/null; then
			kill -KILL "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		fi
	done
	# An sbxd killed above left its BPF pins; remove only this run's.
	rm -rf "/sys/fs/bpf/sbxd/$INSTANCE" "/sys/fs/bpf/sbxd/$INSTANCE-drain" \
		"/sys/fs/bpf/sbxd/$INSTANCE-force" 2>/dev/null || true
	rmdir /sys/fs/bpf/sbxd 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() {
	printf 'bench: %s\n' "$*" >&2
}

free_port() {
	$PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for_line FILE TEXT PID: wait until FILE contains TEXT, or fail when
# PID exits or 20 s pass.
wait_for_line() {
	local i
	for i in $(seq 200); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || break
		sleep 0.1
	done
	echo "bench.sh: no '$2' in $1:" >&2
	tail -5 "$1" >&2
	return 1
}

start_main_sbxd() {
	local i
	API_PORT=$(free_port)
	MAIN_DIR=$TMP/main
	"$BUILD/sbxd" --state-dir "$MAIN_DIR" --instance "$INSTANCE" \
		--max-sandboxes "$MAX_SANDBOXES" \
		--listen "tcp:127.0.0.1:$API_PORT" \
		--log-level warn 2>"$TMP/sbxd-main.log" &
	SBXD_PID=$!
	PIDS="$PIDS $SBXD_PID"
	# warn hides the info-level serving line, so wait for the socket.
	for i in $(seq 200); do
		[ -S "$MAIN_DIR/sbxd.sock" ] && break
		if ! kill -0 "$SBXD_PID" 2>/dev/null; then
			cat "$TMP/sbxd-main.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	ADDR="unix:$MAIN_DIR/sbxd.sock"
}

stop_main_sbxd() {
	kill -TERM "$SBXD_PID"
	if ! wait "$SBXD_PID"; then
		echo "bench.sh: the main sbxd exited with an error:" >&2
		tail -5 "$TMP/sbxd-main.log" >&2
		exit 1
	fi
}

run_floors() {
	log "floors: fork+exec and KVM cycle, $FLOOR_N each"
	"$BUILD/floor-exec" --count "$FLOOR_N" "$BUILD/sbx-bench-true" \
		>"$RAW/floor-exec.json"
	"$BUILD/floor-kvm" --count "$FLOOR_N" >"$RAW/floor-kvm.json"
}

run_start() {
	log "start: $START_N sequential creates"
	"$BUILD/sbx-bench" start --addr "$ADDR" --count "$START_N" \
		>"$RAW/start.json"
}

run_exec() {
	log "exec: $EXEC_N round trips"
	"$BUILD/sbx-bench" exec --addr "$ADDR" --count "$EXEC_N" --warmup 50 \
		>"$RAW/exec.json"
}

run_restore() {
	log "restore: $START_N restores from one snapshot, against cold creates"
	"$BUILD/sbx-bench" restore --addr "$ADDR" --count "$START_N" \
		>"$RAW/restore.json"
}

run_api() {
	local nginx_port nginx_dir nginx_pid i
	local wrk="wrk -t1 -c8 -d${API_S}s --latency"

	log "api: wrk on GET /v1/node against sbxd and nginx, $API_S s each"
	nginx_port=$(free_port)
	nginx_dir=$TMP/nginx
	mkdir -p "$nginx_dir/www/v1"
	# nginx's worker runs as the user "nobody", so the file must be
	# world-readable.
	chmod 755 "$TMP" "$nginx_dir" "$nginx_dir/www" "$nginx_dir/www/v1"
	curl -sf "http://127.0.0.1:$API_PORT/v1/node" >"$nginx_dir/www/v1/node"
	chmod 644 "$nginx_dir/www/v1/node"
	cat >"$nginx_dir/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $nginx_dir/nginx.pid;
error_log $nginx_dir/error.log warn;
events { worker_connections 512; }
http {
	access_log off;
	default_type application/json;
	client_body_temp_path $nginx_dir/body;
	server {
		listen 127.0.0.1:$nginx_port;
		root $nginx_dir/www;
	}
}
NGINX
	nginx -p "$nginx_dir" -c "$nginx_dir/nginx.conf" \
		-e "$nginx_dir/error.log" &
	nginx_pid=$!
	PIDS="$PIDS $nginx_pid"
	for i in $(seq 100); do
		curl -sf -o /dev/null "http://127.0.0.1:$nginx_port/v1/node" &&
			break
		if ! kill -0 "$nginx_pid" 2>/dev/null; then
			cat "$nginx_dir/error.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	$wrk "http://127.0.0.1:$API_PORT/v1/node" >"$RAW/wrk-sbxd.txt"
	$wrk "http://127.0.0.1:$nginx_port/v1/node" >"$RAW/wrk-nginx.txt"
	# A reference without the per-request work of /v1/node.
	$wrk "http://127.0.0.1:$API_PORT/healthz" >"$RAW/wrk-sbxd-healthz.txt"
	wc -c <"$nginx_dir/www/v1/node" >"$RAW/api-body-bytes.txt"
	kill -TERM "$nginx_pid"
	wait "$nginx_pid" || true
}

run_peer() {
	log "peer: QEMU microvm vs sbx-vmm, $PEER_N runs each"
	# A 64 KiB firmware image: the reset vector at 0xffff0 writes 0 to
	# the isa-debug-exit port 0xf4, so QEMU exits with status
	# (0 << 1) | 1 = 1.
	$PY - "$TMP/bios.bin" <<'FIRMWARE'
import sys
image = bytearray(b"\xf4" * 65536)          # hlt everywhere else
code = bytes([0xb0, 0x00,                  # mov al, 0
              0xba, 0xf4, 0x00,            # mov dx, 0xf4
              0xee,                        # out dx, al
              0xf4, 0xeb, 0xfd])           # hlt; jmp back to hlt
image[0xfff0:0xfff0 + len(code)] = code
open(sys.argv[1], "wb").write(image)
FIRMWARE
	"$BUILD/sbx-bench" run --count "$PEER_N" --warmup 2 \
		--expect-status 1 -- qemu-system-x86_64 \
		-M microvm,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=off,acpi=off \
		-accel kvm -cpu qemu64,-pni -m 16M -nodefaults -no-user-config \
		-display none -bios "$TMP/bios.bin" \
		-device isa-debug-exit,iobase=0xf4,iosize=4 \
		>"$RAW/peer-qemu.json"
	"$BUILD/sbx-bench" run --count "$PEER_N" --warmup 2 -- \
		"$BUILD/sbx-vmm" --guest "$BUILD/sbx-agent" --memory-mib 16 \
		-- exit 0 >"$RAW/peer-sbx-vmm.json"
}

run_drain() {
	log "drain: $DRAIN_N sandboxes end one by one," \
		"$DRAIN_INTERVAL_MS ms apart"
	"$BUILD/sbx-bench" drain --addr "unix:$TMP/drain/sbxd.sock" \
		--count "$DRAIN_N" --interval-ms "$DRAIN_INTERVAL_MS" \
		--idle-ms "$DRAIN_IDLE_MS" --instance "$INSTANCE-drain" \
		--log "$TMP/sbxd-drain.log" -- \
		"$BUILD/sbxd" --state-dir "$TMP/drain" \
		--instance "$INSTANCE-drain" --max-sandboxes "$MAX_SANDBOXES" \
		--drain-poll "$DRAIN_POLL" >"$RAW/drain.json"
}

run_force() {
	log "force: $FORCE_N ignore_stop sandboxes," \
		"SHUTDOWN_DRAIN_TIMEOUT=0, SBXD_STOP_GRACE=$STOP_GRACE"
	SHUTDOWN_DRAIN_TIMEOUT=0 SBXD_STOP_GRACE=$STOP_GRACE \
		"$BUILD/sbx-bench" force --addr "unix:$TMP/force/sbxd.sock" \
		--count "$FORCE_N" --instance "$INSTANCE-force" \
		--log "$TMP/sbxd-force.log" -- \
		"$BUILD/sbxd" --state-dir "$TMP/force" \
		--instance "$INSTANCE-force" --max-sandboxes "$MAX_SANDBOXES" \
		--drain-poll "$DRAIN_POLL" >"$RAW/force.json"
}

run_rate() {
	log "rate: floor loops, then 8 clients, $RATE_S s each"
	"$BUILD/floor-rate" --seconds "$RATE_S" >"$RAW/floor-rate.json"
	"$BUILD/sbx-bench" rate --addr "$ADDR" --clients 8 \
		--seconds "$RATE_S" >"$RAW/rate.json"
}

run_density() {
	log "density: floor, then sbxd, up to $DENSITY_N each"
	"$BUILD/floor-density" --count "$DENSITY_N" \
		--reserve-mib "$RESERVE_MIB" >"$RAW/floor-density.json"
	# The kernel is still freeing the floor's VMs for a while.
	sleep "$SETTLE_S"
	"$BUILD/sbx-bench" density --addr "$ADDR" --count "$DENSITY_N" \
		--reserve-mib "$RESERVE_MIB" >"$RAW/density.json"
}

START_TIME=$(date +%s)
cat /proc/loadavg >"$TMP/load-before"
# Other users' busiest processes, as a note on how noisy the run is.
ps -eo pcpu=,comm= --sort=-pcpu | head -5 | awk '{printf "%s %s%%; ", $2, $1}' \
	>"$TMP/busy-before"
log "build $BUILD, quick=$QUICK, temp dir $TMP," \
	"load $(cut -d' ' -f1-3 /proc/loadavg)"

# Latency scenarios first and the ones that create thousands of VMs last,
# because tearing those VMs down keeps the host busy afterwards.
run_floors
start_main_sbxd
run_start
run_exec
run_api
run_restore
run_peer
run_drain
run_force
run_rate
run_density
stop_main_sbxd

cat /proc/loadavg >"$TMP/load-after"
END_TIME=$(date +%s)
log "measured in $((END_TIME - START_TIME)) s; writing the report"

REPORT_ARGS=(--raw "$RAW" --root "$ROOT" --build "$BUILD"
	--load-before "$(cat "$TMP/load-before")"
	--load-after "$(cat "$TMP/load-after")"
	--busy-before "$(cat "$TMP/busy-before")"
	--seconds "$((END_TIME - START_TIME))"
	--drain-poll-ms 10 --stop-grace-ms 1000)
if [ "$QUICK" = 1 ]; then
	REPORT_ARGS+=(--quick --json "${OUT:-$ROOT/bench/results}/quick.json"
		--plots "${OUT:-$TMP}")
elif [ -n "$OUT" ]; then
	REPORT_ARGS+=(--json "$OUT/latest.json" --plots "$OUT")
else
	REPORT_ARGS+=(--json "$ROOT/bench/results/latest.json"
		--plots "$ROOT/docs" --docs "$ROOT/docs/benchmarks.md")
fi
mkdir -p "${OUT:-$ROOT/bench/results}"
$PY "$ROOT/bench/report.py" "${REPORT_ARGS[@]}"
