#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds qemu-system-x86_64 with the vhost-blk-pci series of qemu-patches/
# into a cache keyed by the QEMU source version, the patches, the QEMU
# mutants and this recipe, and prints the binary's path. Beside it in
# build/: tests/qtest/qos-test (the series' qtest, run by qtest.sh),
# qemu-img and qemu-nbd (the selftests' qcow2 disk over NBD),
# storage-daemon/qemu-storage-daemon (the benchmark's and the selftests'
# vhost-user-blk peer), peers/unzeroed/qemu-storage-daemon (the same daemon
# with the changes of tools/testing/qemu-peer/*.diff, the benchmark's peer
# without a cost TCG magnifies; see Documentation/vhost-blk/benchmarks.rst)
# and mutants/NAME/qemu-system-x86_64 for each QEMU mutant
# (tools/testing/mutants/qemu/NAME.diff against the patched tree).
#
#   tools/testing/qemu.sh              build if needed, print the binary
#   tools/testing/qemu.sh --print      print the binary it would build
#   tools/testing/qemu.sh --checkpatch check qemu-patches/ with QEMU's
#       scripts/checkpatch.pl (from the source, downloaded if needed), and
#       that the series' linux-headers/linux/vhost_blk.h is this tree's
#       include/uapi/linux/vhost_blk.h as update-linux-headers.sh imports it
#
# The source is Debian's QEMU 10.0 from bookworm-backports (the orig
# tarball; see ../shared facts: the +ds tarball lacks python wheels, dtc
# and the edk2 blobs, which are provided or disabled here). Cache root:
# $VHOST_BLK_CACHE, default ~/.cache/vhost-blk.

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${VHOST_BLK_CACHE:-$HOME/.cache/vhost-blk}
QEMU_DEB_VERSION=1:10.0.2+ds-2+deb13u1~bpo12+1
QEMU_ORIG=qemu_10.0.2+ds.orig.tar.xz

key=$( {
	echo "$QEMU_DEB_VERSION"
	cat "$0"
	cat "$repo/qemu-patches/series"
	while read -r p; do
		case $p in ''|'#'*) continue ;; esac
		cat "$repo/qemu-patches/$p"
	done <"$repo/qemu-patches/series"
	cat "$repo"/tools/testing/mutants/qemu/*
	cat "$repo"/tools/testing/qemu-peer/*
} | sha256sum | cut -c1-16)
out=$cache/qemu-$key
bin=$out/build/qemu-system-x86_64

if [ "${1:-}" = --print ]; then
	echo "$bin"
	exit 0
fi
if [ "${1:-}" != --checkpatch ] && [ -x "$bin" ]; then
	echo "qemu: cached: $bin" >&2
	echo "$bin"
	exit 0
fi

mkdir -p "$cache/downloads"
tarball=$cache/downloads/$QEMU_ORIG
if [ ! -s "$tarball" ]; then
	src=/etc/apt/sources.list.d/vhost-blk-qemu-src.sources
	if [ ! -e "$src" ]; then
		cat >"$src" <<-EOF
		Types: deb-src
		URIs: http://deb.debian.org/debian
		Suites: bookworm-backports
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
		EOF
		apt-get update -qq
	fi
	(cd "$cache/downloads" &&
		apt-get source --download-only -qq "qemu=$QEMU_DEB_VERSION" >/dev/null 2>&1 ||
		true)
	if [ ! -s "$tarball" ]; then
		echo "qemu: could not download $QEMU_ORIG (qemu=$QEMU_DEB_VERSION from bookworm-backports)" >&2
		exit 1
	fi
fi

if [ "${1:-}" = --checkpatch ]; then
	tools=$cache/qemu-checkpatch-${QEMU_DEB_VERSION//[:~+]/_}
	if [ ! -s "$tools/scripts/checkpatch.pl" ]; then
		mkdir -p "$tools"
		tar -C "$tools" --strip-components=1 -xf "$tarball" --wildcards \
			'*/scripts/checkpatch.pl'
	fi
	status=0
	while read -r p; do
		case $p in ''|'#'*) continue ;; esac
		"$tools/scripts/checkpatch.pl" --no-tree --terse "$repo/qemu-patches/$p" ||
			status=1
	done <"$repo/qemu-patches/series"
	# The header hunk of the series, without its "+", against the UAPI.
	if ! diff -u <(sed 's/_UAPI_LINUX_VHOST_BLK_H/_LINUX_VHOST_BLK_H/' \
		"$repo/include/uapi/linux/vhost_blk.h") \
		<(cat "$repo"/qemu-patches/*.patch |
			awk '/^\+\+\+ b\/linux-headers\/linux\/vhost_blk.h/{on=1; next}
			on && /^(diff|--) /{on=0} on && /^\+/{print substr($0, 2)}'); then
		echo "qemu: the series' linux-headers/linux/vhost_blk.h is not include/uapi/linux/vhost_blk.h" >&2
		status=1
	fi
	exit $status
fi

# Build dependencies (facts: the +ds tarball needs libfdt and a meson
# newer than bookworm's, which goes into a venv in the cache).
pkgs="ninja-build libglib2.0-dev libpixman-1-dev python3-venv libslirp-dev libaio-dev liburing-dev libfdt-dev bzip2 patch"
missing=
for p in $pkgs; do
	dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "qemu: installing$missing" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
venv=$cache/qemu-venv
if ! "$venv/bin/python3" -c 'import mesonbuild' 2>/dev/null; then
	python3 -m venv "$venv"
	"$venv/bin/pip" install -q "meson>=1.5" pycotap
fi

start=$(date +%s)
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
tar -C "$out.tmp" --strip-components=1 -xf "$tarball"
cd "$out.tmp"
while read -r p; do
	case $p in ''|'#'*) continue ;; esac
	echo "qemu: applying $p" >&2
	patch -p1 --quiet --forward <"$repo/qemu-patches/$p"
done <"$repo/qemu-patches/series"
# The +ds tarball has no edk2 blobs; meson still lists them.
for n in aarch64-code arm-code arm-vars i386-code i386-secure-code i386-vars \
	loongarch64-code loongarch64-vars riscv-code riscv-vars x86_64-code \
	x86_64-secure-code; do
	[ -e "pc-bios/edk2-$n.fd.bz2" ] || bzip2 </dev/null >"pc-bios/edk2-$n.fd.bz2"
done
mkdir -p build
cd build
../configure --python="$venv/bin/python3" --target-list=x86_64-softmmu --disable-docs --disable-user \
	--disable-gtk --disable-sdl --disable-vnc --disable-spice \
	--disable-opengl --disable-virglrenderer --disable-xen --enable-tools \
	--disable-install-blobs --enable-kvm --enable-vhost-kernel \
	--enable-linux-aio --enable-linux-io-uring --enable-slirp \
	>configure.log 2>&1 || {
	tail -30 configure.log >&2
	exit 1
}
build() {
	ninja -j"$(nproc)" "$@" >>ninja.log 2>&1 || {
		grep -E "error|Error" ninja.log | head -30 >&2
		exit 1
	}
}
qsd=storage-daemon/qemu-storage-daemon
build qemu-system-x86_64 tests/qtest/qos-test qemu-img qemu-nbd $qsd
for d in "$repo"/tools/testing/qemu-peer/*.diff; do
	patch -d .. -p1 --quiet <"$d" || { echo "qemu: $(basename "$d") does not apply" >&2; exit 1; }
done
build $qsd
mkdir -p peers/unzeroed
cp $qsd peers/unzeroed/
for d in "$repo"/tools/testing/qemu-peer/*.diff; do
	patch -d .. -p1 -R --quiet <"$d"
done
for m in "$repo"/tools/testing/mutants/qemu/*.diff; do
	name=$(basename "$m" .diff)
	echo "qemu: building mutant $name" >&2
	patch -d .. -p1 --quiet <"$m" || { echo "qemu: $name does not apply" >&2; exit 1; }
	build qemu-system-x86_64
	mkdir -p "mutants/$name"
	cp qemu-system-x86_64 "mutants/$name/"
	patch -d .. -p1 -R --quiet <"$m"
done
# The unmutated binaries again.
build qemu-system-x86_64 $qsd
cd "$cache"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "qemu: built in $(($(date +%s) - start)) s: $bin" >&2
echo "$bin"
