#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds the L2 guest's root for the end-to-end check: an uncompressed
# initramfs with busybox, bash and blkdiscard (and the libraries they
# load), a static fio,
# e2e-guest.sh and e2e-demo.sh; its /init mounts the pseudo file systems,
# runs the guest script and powers off.
#
#   e2e-initramfs.sh OUT FIO
#
# A root in memory costs nothing to read: inside TCG inside TCG, L1's
# root over 9p cost minutes (Debian's fio alone, with its 60 libraries,
# took about 150 s to start).

set -euo pipefail
[ $# = 2 ] || { echo "usage: $0 OUT FIO" >&2; exit 2; }
out=$1 fio=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/bin "$root"/dev "$root"/proc "$root"/sys "$root"/tmp "$root"/mnt "$root"/etc
ln -s bin "$root/sbin"
mkdir -p "$root/usr"
ln -s ../bin "$root/usr/bin"
ln -s ../bin "$root/usr/sbin"
cp /bin/busybox "$root/bin/busybox"
for a in $(/bin/busybox --list); do
	[ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
done
cp "$fio" "$root/bin/fio"
# util-linux's blkdiscard (busybox's has no -z, BLKZEROOUT).
rm -f "$root/bin/blkdiscard"
cp /usr/sbin/blkdiscard "$root/bin/blkdiscard"
# The guest script is bash.
cp /bin/bash "$root/bin/bash"
for lib in $( (ldd /bin/bash; ldd /usr/sbin/blkdiscard) | grep -o '/[^ )]*' | sort -u); do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done
cp "$here/e2e-guest.sh" "$here/e2e-demo.sh" "$root/"
cat >"$root/init" <<'EOF'
#!/bin/sh
# PID 1 of the L2 guest: pseudo file systems, the guest script, power off.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
export PATH=/bin
/e2e-guest.sh
sync
poweroff -f
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet) >"$out"
