#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds a static fio for the L2 guest's initramfs (tools/testing/
# e2e-initramfs.sh) into the cache, and prints its path.
#
#   tools/testing/fio.sh            build if needed, print the binary
#   tools/testing/fio.sh --print    print the binary it would build
#
# Debian's fio links some 60 libraries (ceph, gluster, ICU...): started
# from L1's root over 9p inside TCG inside TCG it took about 150 s. This
# one is Debian's source, built static with libaio and zlib only. Cache
# root: $VHOST_BLK_CACHE, default ~/.cache/vhost-blk.

set -euo pipefail

cache=${VHOST_BLK_CACHE:-$HOME/.cache/vhost-blk}
FIO_DEB_VERSION=3.33-3
key=$( { echo "$FIO_DEB_VERSION"; cat "$0"; } | sha256sum | cut -c1-16)
out=$cache/fio-$key
bin=$out/fio

if [ "${1:-}" = --print ]; then
	echo "$bin"
	exit 0
fi
if [ -x "$bin" ]; then
	echo "fio: cached: $bin" >&2
	echo "$bin"
	exit 0
fi

say() { echo "fio: $*" >&2; }
pkgs="libaio-dev zlib1g-dev make gcc"
missing=
for p in $pkgs; do
	dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	say "installing$missing"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

dl=$cache/downloads/fio-$FIO_DEB_VERSION
if ! ls "$dl"/fio_*.orig.tar.* >/dev/null 2>&1; then
	src=/etc/apt/sources.list.d/vhost-blk-bookworm-src.sources
	if [ ! -e "$src" ]; then
		cat >"$src" <<-EOF
		Types: deb-src
		URIs: http://deb.debian.org/debian
		Suites: bookworm
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
		EOF
		apt-get update -qq
	fi
	mkdir -p "$dl"
	(cd "$dl" && apt-get source --download-only -qq "fio=$FIO_DEB_VERSION" >/dev/null 2>&1 || true)
	ls "$dl"/fio_*.orig.tar.* >/dev/null 2>&1 ||
		{ say "could not download fio=$FIO_DEB_VERSION's source"; exit 1; }
fi

start=$(date +%s)
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
tar -C "$out.tmp" --strip-components=1 -xf "$(ls "$dl"/fio_*.orig.tar.* | head -1)"
cd "$out.tmp"
./configure --build-static --disable-native --disable-optimizations \
	--extra-cflags=-O2 >configure.log 2>&1 || { tail -20 configure.log >&2; exit 1; }
grep -q "Linux AIO support.*yes" configure.log || { say "configure found no libaio"; exit 1; }
make -j"$(($(nproc) + 1))" fio >make.log 2>&1 || { grep -E "error" make.log | head -20 >&2; exit 1; }
mkdir -p "$out"
strip -o "$out/fio.tmp" fio
mv "$out/fio.tmp" "$bin"
cd "$cache"
rm -rf "$out.tmp"
say "built in $(($(date +%s) - start)) s: $bin"
echo "$bin"
