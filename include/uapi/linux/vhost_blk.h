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
 *      file was opened without write access, the block device itself is
 *      read-only, or @flags has VHOST_BLK_BACKEND_F_READ_ONLY.
 * @flags: VHOST_BLK_BACKEND_F_*; other bits must be 0.
 */
struct vhost_blk_backend {
	__s32 fd;
	__u32 flags;
};

/* Serve the device read-only, whatever the file's access mode. */
#define VHOST_BLK_BACKEND_F_READ_ONLY	(1 << 0)

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
 * (unknown flags), EOPNOTSUPP (a zoned block device: VIRTIO_BLK_F_ZONED
 * is not offered), EBUSY (a virtqueue is running), EPERM (no owner).
 */
#define VHOST_BLK_SET_BACKEND _IOW(VHOST_VIRTIO, 0x50, struct vhost_blk_backend)

/*
 * VHOST_BLK_SET_SERIAL: set the 20-byte serial returned by GET_ID.
 * The default is all zeroes.
 */
#define VHOST_BLK_SET_SERIAL _IOW(VHOST_VIRTIO, 0x51, struct vhost_blk_serial)

/**
 * struct vhost_blk_config - what the attached disk offers, as the device
 *	honours it: the argument of VHOST_BLK_GET_CONFIG. Sizes are in bytes
 *	unless named in sectors (512 bytes); a VMM fills the virtio-blk
 *	config space from these and offers nothing larger.
 * @capacity: size in sectors
 * @flags: VHOST_BLK_CONFIG_F_*
 * @logical_block_size: the logical block size
 * @physical_block_size: the physical block size
 * @alignment_offset: from sector 0 to the first physical block boundary
 *	(whole logical blocks)
 * @min_io_size: the smallest I/O without a read-modify-write
 * @opt_io_size: the preferred I/O size, 0 if none
 * @seg_max: the most data segments of one request
 * @size_max: the largest data segment; seg_max * size_max <= max_transfer
 * @max_transfer: the largest data transfer of one request
 * @max_discard_sectors: the largest DISCARD range (0: no DISCARD)
 * @max_discard_seg: the most ranges of one DISCARD (0: no DISCARD)
 * @discard_sector_alignment: DISCARD ranges align to this, in sectors
 * @max_write_zeroes_sectors: the largest WRITE_ZEROES range
 * @max_write_zeroes_seg: the most ranges of one WRITE_ZEROES
 * @max_queues: the most virtqueues of a device
 * @max_mem_regions: the most regions of a VHOST_SET_MEM_TABLE
 * @reserved: zero
 */
struct vhost_blk_config {
	__u64 capacity;
	__u32 flags;
	__u32 logical_block_size;
	__u32 physical_block_size;
	__u32 alignment_offset;
	__u32 min_io_size;
	__u32 opt_io_size;
	__u32 seg_max;
	__u32 size_max;
	__u32 max_transfer;
	__u32 max_discard_sectors;
	__u32 max_discard_seg;
	__u32 discard_sector_alignment;
	__u32 max_write_zeroes_sectors;
	__u32 max_write_zeroes_seg;
	__u32 max_queues;
	__u32 max_mem_regions;
	__u32 reserved[6];
};

/* Writes, discards and write-zeroes are refused. */
#define VHOST_BLK_CONFIG_F_READ_ONLY		(1 << 0)
/* The disk has a volatile write cache: offer VIRTIO_BLK_F_FLUSH. */
#define VHOST_BLK_CONFIG_F_WRITE_CACHE		(1 << 1)
/* A WRITE_ZEROES with VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP may deallocate. */
#define VHOST_BLK_CONFIG_F_WRITE_ZEROES_MAY_UNMAP	(1 << 2)

/*
 * VHOST_BLK_GET_CONFIG: what the attached disk offers. The capacity is
 * the disk's at the time of the call: requests follow a resize.
 * Errors: EPERM (no owner), ENODEV (no backend attached), EFAULT.
 */
#define VHOST_BLK_GET_CONFIG _IOR(VHOST_VIRTIO, 0x52, struct vhost_blk_config)

/*
 * VHOST_BLK_SET_WRITEBACK: the cache mode the driver chose (virtio's
 * VIRTIO_BLK_F_CONFIG_WCE and the config field "writeback"), a __u32.
 * 1, the default, lets writes complete in the disk's volatile cache, for
 * FLUSH to make durable; 0 makes every write durable on completion, as
 * when the driver did not negotiate FLUSH. It applies to the requests
 * started after it, needs no backend, and lasts until VHOST_RESET_OWNER.
 * Errors: EINVAL (not 0 or 1), EPERM (no owner), EFAULT.
 */
#define VHOST_BLK_SET_WRITEBACK _IOW(VHOST_VIRTIO, 0x53, __u32)

#endif /* _UAPI_LINUX_VHOST_BLK_H */
