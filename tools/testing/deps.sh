#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Install everything vhost-blk needs to build and test, from the package
# registries only. Idempotent: when everything is present it only checks
# versions and returns in a second or two.
#
# Usage: tools/testing/deps.sh [--check]
#   --check   install nothing; report what is missing and fail if anything is.

set -euo pipefail

BINDGEN_VERSION=0.73.2
VIRTME_NG_VERSION=1.42
RUSTC_MIN=1.78

APT_PACKAGES=(
	rustc-web rust-web-src rust-web-clippy rustfmt-web
	linux-source-6.12
	clang libclang-dev llvm lld
	flex bison bc libelf-dev libssl-dev cpio xz-utils kmod make gcc
	qemu-system-x86 fio busybox-static dmsetup util-linux
)

check_only=0
[ "${1:-}" = "--check" ] && check_only=1

say() { printf 'deps: %s\n' "$*" >&2; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

export PATH="$HOME/.cargo/bin:$PATH"

missing_apt=()
for p in "${APT_PACKAGES[@]}"; do
	[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] ||
		missing_apt+=("$p")
done

if [ ${#missing_apt[@]} -gt 0 ]; then
	[ $check_only = 1 ] && die "missing Debian packages: ${missing_apt[*]} (run: make deps)"
	[ "$(id -u)" = 0 ] || die "installing ${missing_apt[*]} needs root (apt-get)"
	say "installing Debian packages: ${missing_apt[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Refresh the lists unless they are recent (an hour).
	if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages' -mmin -60 2>/dev/null | head -1)" ]; then
		apt-get update -q >/dev/null || die "apt-get update failed"
	fi
	apt-get install -y -q --no-install-recommends "${missing_apt[@]}" >/dev/null ||
		die "apt-get install ${missing_apt[*]} failed"
fi

# (Outputs are captured before matching: with pipefail, `cmd | grep -q`
# fails when grep exits early and cmd gets SIGPIPE.)
have_bindgen() {
	command -v bindgen >/dev/null || return 1
	[ "$(bindgen --version 2>/dev/null)" = "bindgen $BINDGEN_VERSION" ]
}
if ! have_bindgen; then
	[ $check_only = 1 ] && die "bindgen-cli $BINDGEN_VERSION missing (run: make deps)"
	command -v cargo >/dev/null || die "cargo not found: a Rust toolchain (rustup) is required for the userspace tools"
	say "installing bindgen-cli $BINDGEN_VERSION (cargo install, about 2 min)"
	cargo install -q --locked bindgen-cli --version "$BINDGEN_VERSION" ||
		die "cargo install bindgen-cli $BINDGEN_VERSION failed"
fi

have_vng() {
	command -v vng >/dev/null || return 1
	local info
	info=$(python3 -m pip show virtme-ng 2>/dev/null) || return 1
	[[ $'\n'$info$'\n' == *$'\n'"Version: $VIRTME_NG_VERSION"$'\n'* ]]
}
if ! have_vng; then
	[ $check_only = 1 ] && die "virtme-ng $VIRTME_NG_VERSION missing (run: make deps)"
	say "installing virtme-ng $VIRTME_NG_VERSION (pip)"
	python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "virtme-ng==$VIRTME_NG_VERSION" ||
		die "pip install virtme-ng==$VIRTME_NG_VERSION failed"
fi

# Version checks: the kernel needs Debian's rustc (it ships the core sources).
[ -x /usr/bin/rustc ] || die "/usr/bin/rustc missing: install rustc-web"
rv=$(/usr/bin/rustc --version | awk '{print $2}')
printf '%s\n%s\n' "$RUSTC_MIN" "$rv" | sort -V -C ||
	die "/usr/bin/rustc is $rv; the kernel needs >= $RUSTC_MIN (install rustc-web)"
[ -d /usr/lib/rustlib/src/rust/library/core ] ||
	die "Rust core sources missing under /usr/lib/rustlib/src: install rust-web-src"
[ -x /usr/bin/clippy-driver ] || die "/usr/bin/clippy-driver missing: install rust-web-clippy"
[ -x /usr/bin/rustfmt ] || die "/usr/bin/rustfmt missing: install rustfmt-web"
ls /usr/src/linux-source-6.12.tar.* >/dev/null 2>&1 ||
	die "/usr/src/linux-source-6.12.tar.* missing: install linux-source-6.12"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing: install qemu-system-x86"
command -v vng >/dev/null || die "vng missing on PATH ($PATH): install virtme-ng"

say "ok: rustc $rv, $(bindgen --version), virtme-ng $VIRTME_NG_VERSION, $(qemu-system-x86_64 --version | head -1)"
