/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * vhost-blk: an in-kernel virtio-blk backend.
 *
 * /dev/vhost-blk speaks the standard vhost ioctls of <linux/vhost.h>
 * (VHOST_GET_FEATURES ... VHOST_GET_BACKEND_FEATURES) with their usual
 * numbers and semantics, plus the device-specific ioctls below. Their
 * numbers (0x50..0x5f on VHOST_VIRTIO) collide with nothing in 6.12's
 * <linux/vhost.h>.
 *
 * See Documentation/vhost-blk/uapi.rst.
 */
#ifndef _UAPI_LINUX_VHOST_BLK_H
#define _UAPI_LINUX_VHOST_BLK_H

#include <linux/types.h>
#include <linux/vhost.h>

/**
 * struct vhost_blk_backend - argument of VHOST_BLK_SET_BACKEND
 * @fd: a file descriptor of an open host block device, or -1 to detach
 *      the current one. The device is read-only for the guest when the
 *      file was opened without write access or the block device itself is
 *      read-only.
 * @flags: must be 0.
 */
struct vhost_blk_backend {
	__s32 fd;
	__u32 flags;
};

/**
 * struct vhost_blk_serial - argument of VHOST_BLK_SET_SERIAL
 * @serial: the ID string VIRTIO_BLK_T_GET_ID returns; NUL-padded, not
 *          necessarily NUL-terminated (as in the virtio specification).
 */
struct vhost_blk_serial {
	__u8 serial[20];
};

/*
 * VHOST_BLK_SET_BACKEND: attach (fd >= 0) or detach (fd == -1) the host
 * block device that serves every virtqueue of this vhost-blk device.
 * Errors: EBADF (not an open fd), ENOTBLK (not a block device), EINVAL
 * (non-zero flags), EBUSY (a virtqueue is running), EPERM (no owner).
 */
#define VHOST_BLK_SET_BACKEND _IOW(VHOST_VIRTIO, 0x50, struct vhost_blk_backend)

/*
 * VHOST_BLK_SET_SERIAL: set the 20-byte serial returned by GET_ID.
 * The default is all zeroes.
 */
#define VHOST_BLK_SET_SERIAL _IOW(VHOST_VIRTIO, 0x51, struct vhost_blk_serial)

#endif /* _UAPI_LINUX_VHOST_BLK_H */
