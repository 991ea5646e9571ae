#!/bin/sh
# SPDX-License-Identifier: MIT
# Run BUILD_DIR/sbxd in the foreground with the default guest and state
# dir, after printing how to talk to it. Extra arguments go to sbxd.
set -eu

if [ $# -lt 1 ]; then
	echo "usage: $0 BUILD_DIR [SBXD_FLAGS...]" >&2
	exit 2
fi
build=$(cd "$1" && pwd)
shift

if [ ! -x "$build/sbxd" ]; then
	echo "run.sh: $build/sbxd is missing; build first: make build" >&2
	exit 2
fi

# The same default as sbxd's: /run/sbxd as root, else $XDG_RUNTIME_DIR/sbxd.
state_dir=${SBXD_STATE_DIR:-}
if [ -z "$state_dir" ]; then
	if [ "$(id -u)" -eq 0 ]; then
		state_dir=/run/sbxd
	elif [ -n "${XDG_RUNTIME_DIR:-}" ]; then
		state_dir=$XDG_RUNTIME_DIR/sbxd
	else
		echo "run.sh: not root and XDG_RUNTIME_DIR is unset; set" \
			"SBXD_STATE_DIR" >&2
		exit 2
	fi
fi
sock=$state_dir/sbxd.sock

cat <<MSG
sbxd: state dir $state_dir, socket $sock
Talk to it from another terminal:
  curl --unix-socket $sock http://sbxd/v1/node
  curl --unix-socket $sock -X POST http://sbxd/v1/sandboxes -d '{"memory_mib":16}'
  curl --unix-socket $sock -X POST http://sbxd/v1/sandboxes/ID/exec -d '{"command":"echo hi"}'
  curl --unix-socket $sock -X DELETE http://sbxd/v1/sandboxes/ID
  $build/sbxctl --socket $sock create
  $build/sbxctl --socket $sock ls
Stop it with Ctrl-C (SIGINT): it drains, a second Ctrl-C forces.
MSG

exec "$build/sbxd" --state-dir "$state_dir" "$@"
