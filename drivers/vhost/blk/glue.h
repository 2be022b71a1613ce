/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The interface between the C glue (glue.c) and the Rust part of
 * vhost_blk.ko. Functions named vhost_blk_rs_* are implemented in Rust
 * (ffi/misc.rs); the others in glue.c. The Rust side declares the glue.c
 * functions by hand in ffi/mod.rs, in the style of Rust Binder.
 */
#ifndef _VHOST_BLK_GLUE_H
#define _VHOST_BLK_GLUE_H

#include <linux/types.h>

/* Implemented in Rust. */
int vhost_blk_rs_open(void **devp);
void vhost_blk_rs_release(void *dev);
long vhost_blk_rs_ioctl(void *dev, unsigned int cmd, unsigned long arg);
void vhost_blk_rs_kick(void *data, unsigned long token);

/* Implemented in glue.c. */
struct eventfd_ctx;
struct file;
struct mm_struct;

int vhost_blk_misc_register(void);
void vhost_blk_misc_deregister(void);

struct mm_struct *vhost_blk_mm_get_current(void);
void vhost_blk_mm_put(struct mm_struct *mm);
bool vhost_blk_mm_is_current(const struct mm_struct *mm);

struct eventfd_ctx *vhost_blk_eventfd_get(int fd, int *err);
void vhost_blk_eventfd_signal(struct eventfd_ctx *ctx);
void vhost_blk_eventfd_put(struct eventfd_ctx *ctx);

/**
 * struct vhost_blk_bdev_info - what a backing block device offers
 * @capacity: size in 512-byte sectors
 * @logical_block_size: in bytes
 * @max_discard_sectors: 0 if discard is not supported
 * @max_write_zeroes_sectors: 0 if write-zeroes is not offloaded
 * @read_only: the file lacks write access or the device is read-only
 * @write_cache: the device has a volatile write cache
 * @fua: the device supports FUA
 * @pad: zero
 *
 * Mirrored by BdevInfo in ffi/bdev.rs.
 */
struct vhost_blk_bdev_info {
	u64 capacity;
	u32 logical_block_size;
	u32 max_discard_sectors;
	u32 max_write_zeroes_sectors;
	u8 read_only;
	u8 write_cache;
	u8 fua;
	u8 pad;
};

struct file *vhost_blk_bdev_fget(int fd, struct vhost_blk_bdev_info *info,
				 int *err);
void vhost_blk_fput(struct file *file);

struct bio;
struct task_struct;
struct vhost_blk_poll;
struct vhost_blk_bio_list;

int vhost_blk_bioset_init(void);
void vhost_blk_bioset_exit(void);

struct task_struct *vhost_blk_kthread_run(int (*fn)(void *), void *data,
					  int id, int *err);
int vhost_blk_kthread_stop(struct task_struct *task);
bool vhost_blk_kthread_should_stop(void);
void vhost_blk_wake(struct task_struct *task);
void vhost_blk_sleep_prepare(void);
void vhost_blk_sleep(void);
void vhost_blk_sleep_cancel(void);
void vhost_blk_cond_resched(void);
void vhost_blk_use_mm(struct mm_struct *mm);
void vhost_blk_unuse_mm(struct mm_struct *mm);

struct vhost_blk_poll *vhost_blk_poll_start(int fd, void *data,
					    unsigned long token, int *err);
void vhost_blk_poll_stop(struct vhost_blk_poll *poll);

struct vhost_blk_bio_list *vhost_blk_bio_list_new(void);
void vhost_blk_bio_list_set_task(struct vhost_blk_bio_list *list,
				 struct task_struct *task);
bool vhost_blk_bio_list_empty(struct vhost_blk_bio_list *list);
void vhost_blk_bio_list_free(struct vhost_blk_bio_list *list);
struct bio *vhost_blk_bio_list_take(struct vhost_blk_bio_list *list);
struct bio *vhost_blk_bio_alloc(struct file *bdev_file, unsigned short nr_vecs,
				unsigned int kind, u64 sector, unsigned int bytes,
				struct vhost_blk_bio_list *list,
				unsigned long token);
int vhost_blk_bio_add_user(struct bio *bio, unsigned long uaddr,
			   unsigned int len, bool device_writes);
unsigned int vhost_blk_bio_add_zeroes(struct bio *bio, unsigned int len);
void vhost_blk_bio_submit(struct bio *bio);
struct bio *vhost_blk_bio_next(struct bio *bio);
unsigned long vhost_blk_bio_token(struct bio *bio);
int vhost_blk_bio_errno(struct bio *bio);
void vhost_blk_bio_release(struct bio *bio, bool dirty);

#endif /* _VHOST_BLK_GLUE_H */
