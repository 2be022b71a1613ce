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
RUSTC_MIN=1.78

APT_PACKAGES=(
	rustc-web rust-web-src rust-web-clippy rustfmt-web
	linux-source-6.12
	clang libclang-dev llvm lld
	flex bison bc libelf-dev libssl-dev cpio xz-utils kmod make gcc
	qemu-system-x86 fio busybox-static dmsetup util-linux python3-venv
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

# cargo clippy (make lint's clippy-tools) comes with rustup's default
# profile; a minimal profile lacks it.
if ! cargo clippy --version >/dev/null 2>&1; then
	[ $check_only = 1 ] && die "cargo clippy missing (run: make deps)"
	command -v rustup >/dev/null || die "cargo clippy missing, and no rustup to add it"
	say "installing clippy (rustup component add clippy)"
	rustup component add clippy >/dev/null 2>&1 || die "rustup component add clippy failed"
fi

# virtme-ng goes where pip puts it for python3; where that Python refuses
# pip installs (PEP 668, "externally managed", e.g. Debian's own python3
# first on PATH), into a virtual environment in the cache, which
# tools/testing/vm-run.sh looks in first (vng-venv.sh).
. "$(dirname "$0")/vng-venv.sh"
have_vng() {
	[ "$(vng_path)" != vng ] && return 0
	command -v vng >/dev/null || return 1
	local info
	info=$(python3 -m pip show virtme-ng 2>/dev/null) || return 1
	[[ $'\n'$info$'\n' == *$'\n'"Version: $VIRTME_NG_VERSION"$'\n'* ]]
}
if ! have_vng; then
	[ $check_only = 1 ] && die "virtme-ng $VIRTME_NG_VERSION missing (run: make deps)"
	say "installing virtme-ng $VIRTME_NG_VERSION (pip)"
	if ! out=$(python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
		"virtme-ng==$VIRTME_NG_VERSION" 2>&1); then
		[[ $out == *externally-managed-environment* || $out == *"No module named pip"* ]] ||
			{ printf '%s\n' "$out" >&2; die "pip install virtme-ng==$VIRTME_NG_VERSION failed"; }
		say "python3 takes no pip installs (PEP 668, or no pip): installing into $VNG_VENV"
		rm -rf "$VNG_VENV"
		python3 -m venv "$VNG_VENV" ||
			die "python3 -m venv $VNG_VENV failed (Debian: apt-get install python3-venv)"
		"$VNG_VENV/bin/pip" install -q --disable-pip-version-check "virtme-ng==$VIRTME_NG_VERSION" ||
			{ rm -rf "$VNG_VENV"; die "pip install virtme-ng==$VIRTME_NG_VERSION in $VNG_VENV failed"; }
	fi
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
command -v "$(vng_path)" >/dev/null || die "vng missing on PATH ($PATH): install virtme-ng"

say "ok: rustc $rv, $(bindgen --version), virtme-ng $VIRTME_NG_VERSION, $(qemu-system-x86_64 --version | head -1)"
