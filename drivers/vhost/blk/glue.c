// SPDX-License-Identifier: GPL-2.0
/*
 * C glue of vhost_blk.ko: the /dev/vhost-blk misc device and its
 * file_operations, which forward to the Rust device (ffi/misc.rs).
 *
 * 6.12's Rust support has no miscdevice abstraction, so the registration
 * lives here; everything above the file_operations is Rust.
 */
#include <linux/blkdev.h>
#include <linux/compat.h>
#include <linux/err.h>
#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/sched/mm.h>

#include "glue.h"

static int vhost_blk_fop_open(struct inode *inode, struct file *file)
{
	void *dev;
	int ret;

	ret = vhost_blk_rs_open(&dev);
	if (ret)
		return ret;
	file->private_data = dev;
	return stream_open(inode, file);
}

static int vhost_blk_fop_release(struct inode *inode, struct file *file)
{
	vhost_blk_rs_release(file->private_data);
	return 0;
}

static long vhost_blk_fop_ioctl(struct file *file, unsigned int cmd,
				unsigned long arg)
{
	return vhost_blk_rs_ioctl(file->private_data, cmd, arg);
}

static const struct file_operations vhost_blk_fops = {
	.owner = THIS_MODULE,
	.open = vhost_blk_fop_open,
	.release = vhost_blk_fop_release,
	.unlocked_ioctl = vhost_blk_fop_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice vhost_blk_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "vhost-blk",
	.fops = &vhost_blk_fops,
	.mode = 0600,
};

int vhost_blk_misc_register(void)
{
	return misc_register(&vhost_blk_misc);
}

void vhost_blk_misc_deregister(void)
{
	misc_deregister(&vhost_blk_misc);
}

/* The owner's address space: a reference on its users (mmget). */
struct mm_struct *vhost_blk_mm_get_current(void)
{
	return get_task_mm(current);
}

void vhost_blk_mm_put(struct mm_struct *mm)
{
	mmput(mm);
}

bool vhost_blk_mm_is_current(const struct mm_struct *mm)
{
	return current->mm == mm;
}

/* Eventfds for kick, call and err. */
struct eventfd_ctx *vhost_blk_eventfd_get(int fd, int *err)
{
	struct eventfd_ctx *ctx = eventfd_ctx_fdget(fd);

	if (IS_ERR(ctx)) {
		*err = PTR_ERR(ctx);
		return NULL;
	}
	return ctx;
}

void vhost_blk_eventfd_signal(struct eventfd_ctx *ctx)
{
	eventfd_signal(ctx);
}

void vhost_blk_eventfd_put(struct eventfd_ctx *ctx)
{
	eventfd_ctx_put(ctx);
}

/* The backing block device: a reference on a file the VMM opened. */
struct file *vhost_blk_bdev_fget(int fd, struct vhost_blk_bdev_info *info,
				 int *err)
{
	struct block_device *bdev;
	struct file *file = fget(fd);

	if (!file) {
		*err = -EBADF;
		return NULL;
	}
	if (!S_ISBLK(file_inode(file)->i_mode)) {
		fput(file);
		*err = -ENOTBLK;
		return NULL;
	}
	bdev = file_bdev(file);
	memset(info, 0, sizeof(*info));
	info->capacity = bdev_nr_sectors(bdev);
	info->logical_block_size = bdev_logical_block_size(bdev);
	info->max_discard_sectors = bdev_max_discard_sectors(bdev);
	info->max_write_zeroes_sectors = bdev_write_zeroes_sectors(bdev);
	info->read_only = !(file->f_mode & FMODE_WRITE) || bdev_read_only(bdev);
	info->write_cache = bdev_write_cache(bdev);
	info->fua = bdev_fua(bdev);
	return file;
}

void vhost_blk_fput(struct file *file)
{
	fput(file);
}
