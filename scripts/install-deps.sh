#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian packages that building, running and testing sbxd need.
# Idempotent: prints nothing and runs no apt-get when every package is there.
set -eu

PACKAGES="
build-essential cmake pkg-config clang llvm libclang-rt-dev
liburing-dev libbpf-dev bpftool libelf-dev zlib1g-dev
libjansson-dev libhttp-parser-dev libsystemd-dev libseccomp-dev
systemtap-sdt-dev libcriterion-dev
python3 python3-prometheus-client curl procps util-linux
qemu-system-x86 nginx wrk python3-matplotlib
"

missing=""
for pkg in $PACKAGES; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	case "$status" in
	*"install ok installed"*) ;;
	*) missing="$missing $pkg" ;;
	esac
done

[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "install-deps: not root and no sudo; install as root:$missing" >&2
		exit 1
	fi
	SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
