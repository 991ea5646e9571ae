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
	DRAIN_N=10 DRAIN_IDLE_MS=200 FORCE_N=20 PEER_N=3 API_S=2
else
	FLOOR_N=1000 START_N=200 EXEC_N=2000 RATE_S=30 DENSITY_N=5000
	DRAIN_N=100 DRAIN_IDLE_MS=1000 FORCE_N=1000 PEER_N=20 API_S=10
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

START_TIME=$(date +%s)
cat /proc/loadavg >"$TMP/load-before"
log "build $BUILD, quick=$QUICK, temp dir $TMP, load $(cut -d' ' -f1-3 /proc/loadavg)"

log "floors: fork+exec, KVM cycle, rate, density"
"$BUILD/floor-exec" --count "$FLOOR_N" "$BUILD/sbx-bench-true" >"$RAW/floor-exec.json"
"$BUILD/floor-kvm" --count "$FLOOR_N" >"$RAW/floor-kvm.json"
"$BUILD/floor-rate" --seconds "$RATE_S" >"$RAW/floor-rate.json"
"$BUILD/floor-density" --count "$DENSITY_N" --reserve-mib "$RESERVE_MIB" \
	>"$RAW/floor-density.json"

# The main sbxd serves start, exec, rate, density, restore and api.
API_PORT=$(free_port)
MAIN_DIR=$TMP/main
"$BUILD/sbxd" --state-dir "$MAIN_DIR" --instance "$INSTANCE" \
	--max-sandboxes "$MAX_SANDBOXES" --listen "tcp:127.0.0.1:$API_PORT" \
	--log-level warn 2>"$TMP/sbxd-main.log" &
SBXD_PID=$!
PIDS="$PIDS $SBXD_PID"
# The serving line is at info level, which warn hides: wait for the socket.
for i in $(seq 200); do
	[ -S "$MAIN_DIR/sbxd.sock" ] && break
	kill -0 "$SBXD_PID" 2>/dev/null || { cat "$TMP/sbxd-main.log" >&2; exit 1; }
	sleep 0.1
done
ADDR="unix:$MAIN_DIR/sbxd.sock"

log "start: $START_N sequential creates"
"$BUILD/sbx-bench" start --addr "$ADDR" --count "$START_N" >"$RAW/start.json"
log "exec: $EXEC_N round trips"
"$BUILD/sbx-bench" exec --addr "$ADDR" --count "$EXEC_N" --warmup 50 \
	>"$RAW/exec.json"
log "rate: 8 clients for $RATE_S s"
"$BUILD/sbx-bench" rate --addr "$ADDR" --clients 8 --seconds "$RATE_S" \
	>"$RAW/rate.json"
log "density: up to $DENSITY_N sandboxes"
"$BUILD/sbx-bench" density --addr "$ADDR" --count "$DENSITY_N" \
	--reserve-mib "$RESERVE_MIB" >"$RAW/density.json"
log "restore: probe the snapshot endpoint"
"$BUILD/sbx-bench" restore --addr "$ADDR" >"$RAW/restore.json"

log "api: wrk on GET /v1/node against sbxd and nginx, $API_S s each"
NGINX_PORT=$(free_port)
NGINX_DIR=$TMP/nginx
mkdir -p "$NGINX_DIR/www/v1"
# nginx's worker runs as the user "nobody", so the file must be world-readable.
chmod 755 "$TMP" "$NGINX_DIR" "$NGINX_DIR/www" "$NGINX_DIR/www/v1"
curl -sf "http://127.0.0.1:$API_PORT/v1/node" >"$NGINX_DIR/www/v1/node"
chmod 644 "$NGINX_DIR/www/v1/node"
cat >"$NGINX_DIR/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/error.log warn;
events { worker_connections 512; }
http {
	access_log off;
	default_type application/json;
	client_body_temp_path $NGINX_DIR/body;
	server {
		listen 127.0.0.1:$NGINX_PORT;
		root $NGINX_DIR/www;
	}
}
EOF
nginx -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" -e "$NGINX_DIR/error.log" &
NGINX_PID=$!
PIDS="$PIDS $NGINX_PID"
for i in $(seq 100); do
	curl -sf -o /dev/null "http://127.0.0.1:$NGINX_PORT/v1/node" && break
	kill -0 "$NGINX_PID" 2>/dev/null || { cat "$NGINX_DIR/error.log" >&2; exit 1; }
	sleep 0.1
done
WRK="wrk -t1 -c8 -d${API_S}s --latency"
$WRK "http://127.0.0.1:$API_PORT/v1/node" >"$RAW/wrk-sbxd.txt"
$WRK "http://127.0.0.1:$NGINX_PORT/v1/node" >"$RAW/wrk-nginx.txt"
wc -c <"$NGINX_DIR/www/v1/node" >"$RAW/api-body-bytes.txt"
kill -TERM "$NGINX_PID"
wait "$NGINX_PID" || true

kill -TERM "$SBXD_PID"
if ! wait "$SBXD_PID"; then
	echo "bench.sh: the main sbxd exited with an error:" >&2
	tail -5 "$TMP/sbxd-main.log" >&2
	exit 1
fi

log "drain: $DRAIN_N sandboxes end one by one, $DRAIN_INTERVAL_MS ms apart"
DRAIN_DIR=$TMP/drain
"$BUILD/sbx-bench" drain --addr "unix:$DRAIN_DIR/sbxd.sock" \
	--count "$DRAIN_N" --interval-ms "$DRAIN_INTERVAL_MS" \
	--idle-ms "$DRAIN_IDLE_MS" --instance "$INSTANCE-drain" \
	--log "$TMP/sbxd-drain.log" -- \
	"$BUILD/sbxd" --state-dir "$DRAIN_DIR" --instance "$INSTANCE-drain" \
	--max-sandboxes "$MAX_SANDBOXES" --drain-poll "$DRAIN_POLL" \
	>"$RAW/drain.json"

log "force: $FORCE_N ignore_stop sandboxes, SHUTDOWN_DRAIN_TIMEOUT=0, SBXD_STOP_GRACE=$STOP_GRACE"
FORCE_DIR=$TMP/force
SHUTDOWN_DRAIN_TIMEOUT=0 SBXD_STOP_GRACE=$STOP_GRACE \
	"$BUILD/sbx-bench" force --addr "unix:$FORCE_DIR/sbxd.sock" \
	--count "$FORCE_N" --instance "$INSTANCE-force" \
	--log "$TMP/sbxd-force.log" -- \
	"$BUILD/sbxd" --state-dir "$FORCE_DIR" --instance "$INSTANCE-force" \
	--max-sandboxes "$MAX_SANDBOXES" --drain-poll "$DRAIN_POLL" \
	>"$RAW/force.json"

log "peer: QEMU microvm vs sbx-vmm, $PEER_N runs each"
# A 64 KiB firmware image: the reset vector at 0xffff0 writes 0 to the
# isa-debug-exit port 0xf4, so QEMU exits with status (0 << 1) | 1 = 1.
$PY - "$TMP/bios.bin" <<'EOF'
import sys
image = bytearray(b"\xf4" * 65536)          # hlt everywhere else
code = bytes([0xb0, 0x00,                  # mov al, 0
              0xba, 0xf4, 0x00,            # mov dx, 0xf4
              0xee,                        # out dx, al
              0xf4, 0xeb, 0xfd])           # hlt; jmp back to hlt
image[0xfff0:0xfff0 + len(code)] = code
open(sys.argv[1], "wb").write(image)
EOF
"$BUILD/sbx-bench" run --count "$PEER_N" --warmup 2 --expect-status 1 -- \
	qemu-system-x86_64 \
	-M microvm,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=off,acpi=off \
	-accel kvm -cpu qemu64,-pni -m 16M -nodefaults -no-user-config \
	-display none -bios "$TMP/bios.bin" \
	-device isa-debug-exit,iobase=0xf4,iosize=4 >"$RAW/peer-qemu.json"
"$BUILD/sbx-bench" run --count "$PEER_N" --warmup 2 -- \
	"$BUILD/sbx-vmm" --guest "$BUILD/sbx-agent" --memory-mib 16 -- exit 0 \
	>"$RAW/peer-sbx-vmm.json"

cat /proc/loadavg >"$TMP/load-after"
END_TIME=$(date +%s)
log "measured in $((END_TIME - START_TIME)) s; writing the report"

REPORT_ARGS=(--raw "$RAW" --root "$ROOT" --build "$BUILD"
	--load-before "$(cat "$TMP/load-before")"
	--load-after "$(cat "$TMP/load-after")"
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
