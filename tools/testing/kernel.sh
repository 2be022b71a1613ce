#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build (or find in the cache) the Rust-enabled 6.12 kernel vhost-blk is
# built against and tested in.
#
# Usage: tools/testing/kernel.sh [--print-dir]
#   KFLAVOUR=release (default) or debug (KASAN, lockdep, kmemleak, ...)
#   VHOST_BLK_CACHE=dir (default ~/.cache/vhost-blk)
#
# The tree lives in $VHOST_BLK_CACHE/linux-$KFLAVOUR-$KEY, where KEY hashes
# the Debian source version, the config fragments, the kernel patches, the
# toolchain versions and this recipe. A tree whose build finished is reused
# as is. With --print-dir, print that directory and build nothing.

set -euo pipefail

RECIPE=2
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
flavour=${KFLAVOUR:-release}
cache=${VHOST_BLK_CACHE:-$HOME/.cache/vhost-blk}
tarball=$(ls /usr/src/linux-source-6.12.tar.xz 2>/dev/null || true)

die() { printf 'kernel: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'kernel: %s\n' "$*" >&2; }

case $flavour in
release) fragments=("$here/kconfig/vhost-blk.config") ;;
debug) fragments=("$here/kconfig/vhost-blk.config" "$here/kconfig/debug.config") ;;
*) die "unknown KFLAVOUR '$flavour' (use release or debug)" ;;
esac

[ -n "$tarball" ] || die "/usr/src/linux-source-6.12.tar.xz missing; run 'make deps'"
[ -x /usr/bin/rustc ] || die "/usr/bin/rustc missing (Debian rustc-web); run 'make deps'"
[ -d /usr/lib/rustlib/src/rust/library/core ] || die "no rust-src for /usr/bin/rustc (Debian rust-web-src); run 'make deps'"
PATH="$PATH:$HOME/.cargo/bin" command -v bindgen >/dev/null || die "bindgen not found; run 'make deps'"

patches=()
if [ -d "$top/tools/testing/kernel-patches" ]; then
	while IFS= read -r p; do patches+=("$p"); done < <(ls "$top"/tools/testing/kernel-patches/*.patch 2>/dev/null || true)
fi

key=$({
	echo "recipe $RECIPE flavour $flavour"
	dpkg-query -W -f='${Version}\n' linux-source-6.12
	/usr/bin/rustc --version
	PATH="$PATH:$HOME/.cargo/bin" bindgen --version
	gcc --version | head -1
	[ "$flavour" = release ] || clang --version | head -1
	cat "${fragments[@]}"
	[ ${#patches[@]} -eq 0 ] || cat "${patches[@]}"
} | sha256sum | cut -c1-16)
dir="$cache/linux-$flavour-$key"

if [ "${1:-}" = "--print-dir" ]; then
	echo "$dir"
	exit 0
fi

# One build of a flavour at a time: a second caller waits for the first
# (it would otherwise delete the tree being built as stale).
mkdir -p "$cache"
exec 9>"$cache/.kernel-$flavour.lock"
flock 9

if [ -f "$dir/.vhost-blk-built" ] && [ -f "$dir/arch/x86/boot/bzImage" ]; then
	say "cached $flavour kernel: $dir"
	exit 0
fi

start=$(date +%s)
mkdir -p "$cache"
# Drop stale trees of this flavour: each is several GiB.
for old in "$cache"/linux-"$flavour"-*; do
	[ -e "$old" ] && [ "$old" != "$dir" ] && { say "removing stale $old"; rm -rf "$old"; }
done
rm -rf "$dir"
mkdir -p "$dir"
say "unpacking $(basename "$tarball") into $dir"
tar -xf "$tarball" -C "$dir" --strip-components=1
for p in "${patches[@]}"; do
	say "applying $(basename "$p")"
	patch -d "$dir" -p1 -s <"$p" || die "kernel patch $p does not apply"
done

km() { "$here/kmake" -C "$dir" "$@"; }
log="$dir/build.log"
km -s rustavailable >"$log" 2>&1 ||
	die "Rust is not usable for the kernel: $(grep -m1 -i -E 'error|\*\*\*' "$log" || tail -1 "$log"); run 'make deps'"
km -s allnoconfig >>"$log" 2>&1
(cd "$dir" && scripts/kconfig/merge_config.sh -m -O . .config "${fragments[@]}") >>"$log" 2>&1
km -s olddefconfig >>"$log" 2>&1

# Every option the fragments ask for must have survived olddefconfig.
bad=0
while IFS= read -r line; do
	case $line in
	CONFIG_*=*) want=$line ;;
	"# CONFIG_"*" is not set") want=$line ;;
	*) continue ;;
	esac
	if [[ $want == "# "* ]]; then
		opt=${want#\# }; opt=${opt%% *}
		grep -q "^$opt=" "$dir/.config" && { say "config: $opt is set but should not be"; bad=1; }
	else
		grep -qxF "$want" "$dir/.config" || { say "config: wanted $want, got: $(grep "^${want%%=*}=" "$dir/.config" || echo unset)"; bad=1; }
	fi
done < <(cat "${fragments[@]}")
[ $bad = 0 ] || die "the config fragments did not apply (see above; dependencies missing?)"

jobs=$(($(nproc) + 1))
say "building $flavour kernel with -j$jobs (log: $log)"
if ! km -j"$jobs" bzImage modules >>"$log" 2>&1; then
	grep -E 'error|Error' "$log" | head -20 >&2
	die "kernel build failed; full log: $log"
fi
touch "$dir/.vhost-blk-built"
say "built $flavour kernel in $(( $(date +%s) - start )) s: $dir"
