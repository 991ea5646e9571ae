#!/bin/sh
# SPDX-License-Identifier: MIT
# Build the libFuzzer harnesses in a clang tree, replay the saved
# regressions, then fuzz each harness for a while from a temporary copy of
# its seed corpus. Exits 1 on a finding or a failed regression, 77 when
# clang is missing. docs/fuzzing.md describes the harnesses.
set -eu

usage() {
	cat <<'EOF'
usage: scripts/fuzz.sh [--seconds N] [--build-dir DIR] [--keep] [HARNESS...]

  --seconds N      fuzz each harness for N seconds (default 60)
  --build-dir DIR  clang build tree to configure and use
                   (default: build-fuzz in the repository)
  --keep           keep the temporary corpora and logs even without a finding
  HARNESS          http, json, elf, control or snapshot (default: all five)
EOF
}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_EACH=60
BUILD="$ROOT/build-fuzz"
KEEP=0
ALL="http json elf control snapshot"
HARNESSES=""

while [ $# -gt 0 ]; do
	case "$1" in
	--seconds)
		[ $# -ge 2 ] || { echo "fuzz: --seconds needs a value" >&2; exit 2; }
		SECONDS_EACH=$2
		shift 2
		;;
	--build-dir)
		[ $# -ge 2 ] || { echo "fuzz: --build-dir needs a value" >&2; exit 2; }
		BUILD=$2
		shift 2
		;;
	--keep)
		KEEP=1
		shift
		;;
	-h|--help)
		usage
		exit 0
		;;
	-*)
		echo "fuzz: unknown option $1; see scripts/fuzz.sh --help" >&2
		exit 2
		;;
	*)
		case " $ALL " in
		*" $1 "*) HARNESSES="$HARNESSES $1" ;;
		*)
			echo "fuzz: unknown harness '$1'; expected one of: $ALL" >&2
			exit 2
			;;
		esac
		shift
		;;
	esac
done
[ -n "$HARNESSES" ] || HARNESSES=$ALL
case "$SECONDS_EACH" in
''|*[!0-9]*|0)
	echo "fuzz: invalid --seconds '$SECONDS_EACH': expected a whole number of seconds above 0" >&2
	exit 2
	;;
esac

if ! command -v clang >/dev/null 2>&1; then
	echo "skipped: fuzzing needs clang (apt-get install clang)"
	exit 77
fi

WORK=$(mktemp -d /tmp/sbx-fuzz.XXXXXX)
FAILED=0
cleanup() {
	if [ "$FAILED" -eq 0 ] && [ "$KEEP" -eq 0 ]; then
		rm -rf "$WORK"
	else
		echo "fuzz: corpora, logs and crash inputs kept in $WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A missing libFuzzer runtime fails here with a clear message, not later
# in the middle of the build.
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n)\n{ return 0; }\n' \
	>"$WORK/probe.c"
if ! clang -fsanitize=fuzzer "$WORK/probe.c" -o "$WORK/probe" \
	>"$WORK/probe.log" 2>&1; then
	cat "$WORK/probe.log" >&2
	echo "fuzz: clang cannot link libFuzzer; install libclang-rt-dev (scripts/install-deps.sh does)" >&2
	FAILED=1
	exit 1
fi

echo "fuzz: configuring $BUILD with clang"
if ! CC=clang cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DSBX_FUZZ=ON -DSBX_SANITIZE=ON >"$WORK/configure.log" 2>&1; then
	cat "$WORK/configure.log" >&2
	echo "fuzz: cmake configure of $BUILD failed" >&2
	FAILED=1
	exit 1
fi

TARGETS=""
for h in $HARNESSES; do
	TARGETS="$TARGETS fuzz_$h"
done
# sbx-agent is an ELF seed; sbx-vmm writes the snapshot seeds.
case " $HARNESSES " in *" elf "*|*" snapshot "*) TARGETS="$TARGETS sbx-agent" ;; esac
case " $HARNESSES " in *" snapshot "*) TARGETS="$TARGETS sbx-vmm" ;; esac
echo "fuzz: building$TARGETS"
# shellcheck disable=SC2086
if ! cmake --build "$BUILD" -j"$(nproc)" --target $TARGETS \
	>"$WORK/build.log" 2>&1; then
	tail -n 40 "$WORK/build.log" >&2
	echo "fuzz: build failed; the full log is $WORK/build.log" >&2
	FAILED=1
	exit 1
fi

# Write snapshot seeds into $1, or print why there are none.
snapshot_seeds() {
	if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
		echo "fuzz: snapshot: no usable /dev/kvm, so no snapshot seed; fuzzing from nothing"
		return 0
	fi
	# The VMM's own tests cover --snapshot-to, so a failure here only
	# costs the seeds.
	if ! /usr/bin/python3 "$ROOT/tests/fuzz/snapshot_seeds.py" \
		"$BUILD/sbx-vmm" "$1"; then
		echo "fuzz: snapshot: writing seeds with $BUILD/sbx-vmm --snapshot-to failed; fuzzing without them" >&2
	fi
}

# Print the executions of one libFuzzer log.
executions() {
	sed -n 's/^stat::number_of_executed_units: *//p' "$1" | tail -n 1
}

for h in $HARNESSES; do
	bin="$BUILD/fuzz/fuzz_$h"
	dir="$WORK/$h"
	mkdir -p "$dir/corpus" "$dir/artifacts"
	set -- -timeout=25 -print_final_stats=1 -artifact_prefix="$dir/artifacts/"
	[ -f "$ROOT/tests/fuzz/dict/$h.dict" ] &&
		set -- "$@" -dict="$ROOT/tests/fuzz/dict/$h.dict"
	# sbx-vmm logs every ignored control packet to stderr.
	[ "$h" = control ] && set -- "$@" -close_fd_mask=2

	regressions=$(find "$ROOT/tests/fuzz/regressions/$h" -type f \
		! -name '*.md' 2>/dev/null | sort)
	if [ -n "$regressions" ]; then
		count=$(echo "$regressions" | wc -l)
		# shellcheck disable=SC2086
		if "$bin" "$@" $regressions >"$dir/regressions.log" 2>&1; then
			echo "fuzz: $h: $count saved regression inputs pass"
		else
			tail -n 60 "$dir/regressions.log"
			echo "fuzz: $h: a saved regression input still fails; see above and $dir/regressions.log"
			FAILED=1
		fi
	fi

	if [ -d "$ROOT/tests/fuzz/corpus/$h" ]; then
		cp -r "$ROOT/tests/fuzz/corpus/$h/." "$dir/corpus/"
	fi
	[ "$h" = elf ] && cp "$BUILD/sbx-agent" "$dir/corpus/sbx-agent"
	[ "$h" = snapshot ] && snapshot_seeds "$dir/corpus"

	rc=0
	"$bin" "$@" -max_total_time="$SECONDS_EACH" "$dir/corpus" \
		>"$dir/fuzz.log" 2>&1 || rc=$?
	runs=$(executions "$dir/fuzz.log")
	crashes=$(find "$dir/artifacts" -type f | sort)
	if [ "$rc" -ne 0 ] || [ -n "$crashes" ]; then
		grep -v '^#[0-9]' "$dir/fuzz.log" | tail -n 60
		echo "fuzz: $h: FINDING after ${runs:-?} executions (exit $rc); input:"
		echo "${crashes:-  none saved; see $dir/fuzz.log}" | sed 's/^/  /'
		FAILED=1
	else
		echo "fuzz: $h: ${runs:-?} executions in $SECONDS_EACH s, no finding"
	fi
done

[ "$FAILED" -eq 0 ] || exit 1
