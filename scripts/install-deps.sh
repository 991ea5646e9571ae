#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian packages that building, running and testing sbxd need,
# and create the unprivileged user that a confined sbx-vmm runs as.
# Idempotent: prints nothing and runs no apt-get when every package and
# the sbx-vmm user are there.
set -eu

PACKAGES="
build-essential cmake pkg-config clang llvm libclang-rt-dev
liburing-dev libbpf-dev bpftool libelf-dev zlib1g-dev
libjansson-dev libhttp-parser-dev libsystemd-dev libseccomp-dev
systemtap-sdt-dev libcriterion-dev
python3 python3-prometheus-client curl procps util-linux
qemu-system-x86 nginx wrk python3-matplotlib
"

# A confined sbx-vmm started as root becomes this unprivileged user.
VMM_USER=sbx-vmm

# Create VMM_USER unless it exists. Not fatal without root: sbx-vmm needs
# the user only when it runs as root.
ensure_vmm_user() {
	getent passwd "$VMM_USER" >/dev/null 2>&1 && return 0
	if [ "$(id -u)" -eq 0 ]; then
		run=""
	elif command -v sudo >/dev/null 2>&1; then
		run=sudo
	else
		echo "install-deps: not root and no sudo; create the user as root:" \
			"useradd --system --no-create-home --shell /usr/sbin/nologin $VMM_USER" >&2
		return 0
	fi
	echo "install-deps: creating system user $VMM_USER"
	# useradd lives in /usr/sbin, which a non-login PATH may lack.
	$run env PATH="$PATH:/usr/sbin:/sbin" useradd --system --no-create-home \
		--shell /usr/sbin/nologin "$VMM_USER"
}

ensure_vmm_user

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
