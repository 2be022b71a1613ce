/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The interface between the C glue (glue.c) and the Rust part of
 * vhost_blk.ko. Functions named vhost_blk_rs_* are implemented in Rust
 * (entry.rs); the others in glue.c. The Rust side declares the glue.c
 * functions by hand in ffi/mod.rs, in the style of Rust Binder.
 */
#ifndef _VHOST_BLK_GLUE_H
#define _VHOST_BLK_GLUE_H

#include <linux/types.h>

/* Implemented in Rust. */
int vhost_blk_rs_open(void *data, void **devp);
void vhost_blk_rs_release(void *dev);
long vhost_blk_rs_ioctl(void *dev, unsigned int cmd, unsigned long arg);
struct seq_file;
int vhost_blk_rs_stats_show(struct seq_file *m, void *data);
void vhost_blk_rs_show_fdinfo(void *dev, struct seq_file *m);
void vhost_blk_rs_cpu_online(void *data, unsigned int cpu);
void vhost_blk_rs_reap(void *data);
int vhost_blk_rs_worker_cpus_set(const char *val);
int vhost_blk_rs_worker_cpus_get(char *buf);
void vhost_blk_rs_worker_cpus_recount(int leaving);

/* Implemented in glue.c. */
struct file;

int vhost_blk_misc_register(void *data);
void vhost_blk_misc_deregister(void);

/**
 * struct vhost_blk_bdev_info - what a backing block device offers
 * @capacity: size in 512-byte sectors
 * @logical_block_size: in bytes
 * @max_discard_sectors: 0 if discard is not supported
 * @max_write_zeroes_sectors: 0 if write-zeroes is not offloaded
 * @dma_alignment: mask every buffer's address and length must clear
 * @virt_boundary_mask: 0, or the mask that two buffers of one bio must
 *	meet at (no gap between them)
 * @max_sectors: the largest bio the device takes without splitting
 * @read_only: the file lacks write access or the device is read-only
 * @write_cache: the device has a volatile write cache
 * @nowait: the device takes REQ_NOWAIT bios
 * @major: device number, major part
 * @minor: device number, minor part
 * @physical_block_size: in bytes
 * @alignment_offset: bytes from sector 0 to a physical block boundary
 * @io_min: the smallest I/O without a read-modify-write, in bytes
 * @io_opt: the preferred I/O size in bytes, 0 if none
 * @discard_granularity: in bytes
 * @zoned: a zoned device (writes must follow each zone's write pointer)
 * @pad2: zero
 *
 * Mirrored by BdevInfo in ffi/bdev.rs, which asserts the same size.
 */
struct vhost_blk_bdev_info {
	u64 capacity;
	u32 logical_block_size;
	u32 max_discard_sectors;
	u32 max_write_zeroes_sectors;
	u32 dma_alignment;
	u32 virt_boundary_mask;
	u32 max_sectors;
	u8 read_only;
	u8 write_cache;
	u8 nowait;
	u8 zoned;
	u32 major;
	u32 minor;
	u32 physical_block_size;
	u32 alignment_offset;
	u32 io_min;
	u32 io_opt;
	u32 discard_granularity;
	u32 pad2;
};

#define VHOST_BLK_BDEV_INFO_SIZE 72

struct file *vhost_blk_bdev_fget(int fd, struct vhost_blk_bdev_info *info);
u64 vhost_blk_bdev_nr_sectors(struct file *bdev_file);

struct cgroup_subsys_state;
struct task_struct;
struct vhost_blk_poll;

struct mm_struct *vhost_blk_current_mm(void);
int vhost_blk_task_cpus(struct task_struct *task, char *buf, size_t len);
int vhost_blk_kthread_follow_bdev(struct task_struct *task,
				  struct file *bdev_file);

void vhost_blk_rcu_read_lock(void);
void vhost_blk_rcu_read_unlock(void);
void vhost_blk_sleep_prepare(void);
void vhost_blk_sleep_cancel(void);
bool vhost_blk_cond_resched(void);

struct vhost_blk_poll *vhost_blk_poll_start(int fd, void (*kick)(void *),
					    void *data);
void vhost_blk_poll_stop(struct vhost_blk_poll *poll);

struct page;
struct page *vhost_blk_zero_page(void);
#ifdef CONFIG_KASAN
extern unsigned int vhost_blk_debug_completion_delay_ms;
#endif
int vhost_blk_get_user_le16(const void __user *uaddr, u16 *val);
int vhost_blk_put_user_le16(void __user *uaddr, u16 val);

struct cgroup_subsys_state *vhost_blk_blkcg_get_current(void);
void vhost_blk_blkcg_put(struct cgroup_subsys_state *css);

void vhost_blk_worker_cpus_lock(void);
void vhost_blk_worker_cpus_unlock(void);
bool vhost_blk_notice_ratelimit(void);

/* Module parameters, read by ffi/params.rs. */
extern unsigned int vhost_blk_poll_budget_us;
extern unsigned int vhost_blk_queues_per_worker;
extern unsigned int vhost_blk_max_workers;
extern unsigned int vhost_blk_quota_reqs;
extern unsigned int vhost_blk_quota_kib;
extern unsigned int vhost_blk_publish_batch;

int vhost_blk_cpuhp_register(void *data);
void vhost_blk_cpuhp_unregister(int state);

void vhost_blk_reap_register(void *data);
void vhost_blk_reap_schedule(void);
void vhost_blk_reap_unregister(void);

void vhost_blk_debugfs_init(void *data);
void vhost_blk_debugfs_exit(void);

#endif /* _VHOST_BLK_GLUE_H */
