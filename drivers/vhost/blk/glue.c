// SPDX-License-Identifier: GPL-2.0
/*
 * C glue of vhost_blk.ko: the /dev/vhost-blk misc device and its
 * file_operations, which forward to the Rust device (ffi/misc.rs).
 *
 * 6.12's Rust support has no miscdevice abstraction, so the registration
 * lives here; everything above the file_operations is Rust.
 */
#include <linux/compat.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>

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
