#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# PID 1 of the L2 guest (root: L1's filesystem over 9p, read-only): mounts
# what e2e-guest.sh needs, runs it, and powers off.

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
"$(dirname "$0")/e2e-guest.sh"
sync
busybox poweroff -f
