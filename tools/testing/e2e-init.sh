#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# PID 1 of the L2 guest (root: L1's filesystem over 9p, read-only): mounts
# what e2e-guest.sh needs, runs it, and powers off.

here=$(dirname "$0")
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# The scripts may live under /tmp (a clone there), which the tmpfs below
# hides: keep their directory reachable at /mnt first.
mount --bind "$here" /mnt || { echo "e2e-init: cannot bind $here on /mnt"; busybox poweroff -f; }
mount -t tmpfs tmpfs /tmp
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
/mnt/e2e-guest.sh
sync
busybox poweroff -f
