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
int vhost_blk_rs_open(void *data, void **devp);
void vhost_blk_rs_release(void *dev);
long vhost_blk_rs_ioctl(void *dev, unsigned int cmd, unsigned long arg);
struct seq_file;
int vhost_blk_rs_stats_show(struct seq_file *m, void *data);
void vhost_blk_rs_show_fdinfo(void *dev, struct seq_file *m);
void vhost_blk_rs_cpu_online(void *data, unsigned int cpu);
void vhost_blk_rs_reap(void *data);

/* Implemented in glue.c. */
struct eventfd_ctx;
struct file;
struct mm_struct;

int vhost_blk_misc_register(void *data);
void vhost_blk_misc_deregister(void);

struct mm_struct *vhost_blk_mm_get_current(void);
void vhost_blk_mm_put(struct mm_struct *mm);
bool vhost_blk_mm_is_current(const struct mm_struct *mm);

struct eventfd_ctx *vhost_blk_eventfd_get(int fd);
void vhost_blk_eventfd_signal(struct eventfd_ctx *ctx);
void vhost_blk_eventfd_put(struct eventfd_ctx *ctx);

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
 * @pad: zero
 * @major: device number, major part
 * @minor: device number, minor part
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
	u8 pad;
	u32 major;
	u32 minor;
};

#define VHOST_BLK_BDEV_INFO_SIZE 48

struct file *vhost_blk_bdev_fget(int fd, struct vhost_blk_bdev_info *info);
void vhost_blk_fput(struct file *file);

struct bio;
struct cgroup_subsys_state;
struct task_struct;
struct vhost_blk_poll;
struct vhost_blk_bio_list;

int vhost_blk_bioset_init(void);
void vhost_blk_bioset_exit(void);

struct task_struct *vhost_blk_kthread_run(int (*fn)(void *), void *data,
					  int id, int cpu);
int vhost_blk_kthread_stop(struct task_struct *task);
int vhost_blk_kthread_pin(struct task_struct *task, int cpu);
bool vhost_blk_kthread_should_stop(void);
int vhost_blk_kthread_follow_bdev(struct task_struct *task,
				  struct file *bdev_file);
int vhost_blk_task_pid(struct task_struct *task);
int vhost_blk_task_cpus(struct task_struct *task, char *buf, size_t len);
u64 vhost_blk_now_ns(void);

struct vhost_blk_wake;
struct vhost_blk_wake *vhost_blk_wake_new(void);
void vhost_blk_wake_get(struct vhost_blk_wake *wake);
void vhost_blk_wake_put(struct vhost_blk_wake *wake);
void vhost_blk_wake_set_task(struct vhost_blk_wake *wake,
			     struct task_struct *task);
void vhost_blk_wake_signal(struct vhost_blk_wake *wake);
bool vhost_blk_wake_take(struct vhost_blk_wake *wake);
bool vhost_blk_wake_pending(struct vhost_blk_wake *wake);
void vhost_blk_wake_waiting_add(struct vhost_blk_wake *wake, int delta);
int vhost_blk_wake_waiting(struct vhost_blk_wake *wake);
void vhost_blk_rcu_read_lock(void);
void vhost_blk_rcu_read_unlock(void);
void vhost_blk_sleep_prepare(void);
void vhost_blk_sleep(void);
void vhost_blk_sleep_cancel(void);
bool vhost_blk_cond_resched(void);
unsigned int vhost_blk_online_cpus(void);
void vhost_blk_use_mm(struct mm_struct *mm);
void vhost_blk_unuse_mm(struct mm_struct *mm);

struct vhost_blk_poll *vhost_blk_poll_start(int fd, void (*kick)(void *),
					    void *data);
void vhost_blk_poll_stop(struct vhost_blk_poll *poll);

struct vhost_blk_bio_list *vhost_blk_bio_list_new(void);
void vhost_blk_bio_list_set_wake(struct vhost_blk_bio_list *list,
				 struct vhost_blk_wake *wake);
bool vhost_blk_bio_list_empty(struct vhost_blk_bio_list *list);
void vhost_blk_bio_list_free(struct vhost_blk_bio_list *list);
struct bio *vhost_blk_bio_list_take(struct vhost_blk_bio_list *list);
bool vhost_blk_bio_list_bounced(struct vhost_blk_bio_list *list);
void vhost_blk_rcu_barrier(void);

/**
 * enum vhost_blk_bio_kind - what a bio of vhost-blk does
 * @VHOST_BLK_BIO_READ: REQ_OP_READ into the owner's pages
 * @VHOST_BLK_BIO_WRITE: REQ_OP_WRITE of the owner's pages (or zero pages)
 * @VHOST_BLK_BIO_WRITE_FUA: the same, durable when it completes
 * @VHOST_BLK_BIO_FLUSH: an empty REQ_OP_WRITE with REQ_PREFLUSH
 * @VHOST_BLK_BIO_DISCARD: REQ_OP_DISCARD of a range
 * @VHOST_BLK_BIO_WRITE_ZEROES: REQ_OP_WRITE_ZEROES, which may deallocate
 * @VHOST_BLK_BIO_WRITE_ZEROES_NOUNMAP: REQ_OP_WRITE_ZEROES | REQ_NOUNMAP
 * @VHOST_BLK_BIO_ZERO_RANGE: a range still to be written from the zero
 *	page; never submitted, it only records the range
 * @VHOST_BLK_BIO_NR_KINDS: the number of kinds; any other is refused
 *
 * Mirrored by BioKind in ffi/bio.rs.
 */
enum vhost_blk_bio_kind {
	VHOST_BLK_BIO_READ,
	VHOST_BLK_BIO_WRITE,
	VHOST_BLK_BIO_WRITE_FUA,
	VHOST_BLK_BIO_FLUSH,
	VHOST_BLK_BIO_DISCARD,
	VHOST_BLK_BIO_WRITE_ZEROES,
	VHOST_BLK_BIO_WRITE_ZEROES_NOUNMAP,
	VHOST_BLK_BIO_ZERO_RANGE,
	VHOST_BLK_BIO_NR_KINDS,
};

/**
 * enum vhost_blk_bio_bounce - why a REQ_NOWAIT bio came back undone
 * @VHOST_BLK_BOUNCE_NONE: it did not; it is complete, with its status
 * @VHOST_BLK_BOUNCE_NO_ROOM: the device would have made the submitter
 *	wait (BLK_STS_AGAIN: no free tag, a frozen queue, a split)
 * @VHOST_BLK_BOUNCE_NOWAIT_REFUSED: the device no longer takes
 *	REQ_NOWAIT (BLK_STS_NOTSUPP)
 *
 * Mirrored by Bounce in ffi/bio.rs.
 */
enum vhost_blk_bio_bounce {
	VHOST_BLK_BOUNCE_NONE,
	VHOST_BLK_BOUNCE_NO_ROOM,
	VHOST_BLK_BOUNCE_NOWAIT_REFUSED,
};

/**
 * struct vhost_blk_bio_args - how to allocate a bio
 * @bdev_file: the backing device
 * @list: where it completes
 * @blkcg: the cgroup charged for it, or NULL
 * @token: which request it serves (opaque to C)
 * @sector: the first sector
 * @bytes: the size of the range kinds (no pages)
 * @nr_vecs: pages it may hold
 * @kind: an enum vhost_blk_bio_kind
 * @nowait: submit with REQ_NOWAIT (the device must support it)
 *
 * Mirrored by BioArgs in ffi/bio.rs.
 */
struct vhost_blk_bio_args {
	struct file *bdev_file;
	struct vhost_blk_bio_list *list;
	struct cgroup_subsys_state *blkcg;
	unsigned long token;
	u64 sector;
	u32 bytes;
	u16 nr_vecs;
	u8 kind;
	bool nowait;
};

struct bio *vhost_blk_bio_alloc(const struct vhost_blk_bio_args *args);
int vhost_blk_bio_add_user(struct bio *bio, unsigned long uaddr,
			   unsigned int len, bool device_writes);
unsigned int vhost_blk_bio_add_zeroes(struct bio *bio, unsigned int len);
void vhost_blk_bio_submit(struct bio *bio);
void vhost_blk_bio_rearm(struct bio *bio, bool nowait);
unsigned int vhost_blk_bio_bounce(struct bio *bio);
unsigned int vhost_blk_bio_nowait_retries(struct bio *bio);
struct bio *vhost_blk_bio_next(struct bio *bio);
void vhost_blk_bio_set_next(struct bio *bio, struct bio *next);
int vhost_blk_get_user_le16(const void __user *uaddr, u16 *val);
int vhost_blk_put_user_le16(void __user *uaddr, u16 val);
unsigned long vhost_blk_bio_token(struct bio *bio);
unsigned int vhost_blk_bio_kind(struct bio *bio);
void vhost_blk_bio_range(struct bio *bio, u64 *sector, u32 *bytes);
void vhost_blk_bio_advance_range(struct bio *bio, u32 bytes);
int vhost_blk_bio_errno(struct bio *bio);
void vhost_blk_bio_release(struct bio *bio, bool dirty);

void vhost_blk_task_hold(struct task_struct *task);
void vhost_blk_task_release(struct task_struct *task);
void vhost_blk_task_wake(struct task_struct *task);
struct task_struct *vhost_blk_current(void);
void vhost_blk_module_get(void);
void vhost_blk_module_put(void);

struct cgroup_subsys_state *vhost_blk_blkcg_get_current(void);
void vhost_blk_blkcg_put(struct cgroup_subsys_state *css);

u32 vhost_blk_param_poll_budget_us(void);
u32 vhost_blk_param_queues_per_worker(void);
u32 vhost_blk_param_max_workers(void);
u32 vhost_blk_param_quota_reqs(void);
u32 vhost_blk_param_publish_batch(void);
u32 vhost_blk_param_quota_kib(void);
u32 vhost_blk_param_worker_cpus_weight(void);
int vhost_blk_param_worker_cpu(u32 index);
int vhost_blk_cpuhp_register(void *data);
void vhost_blk_cpuhp_unregister(int state);

void vhost_blk_reap_register(void *data);
void vhost_blk_reap_schedule(void);
void vhost_blk_reap_unregister(void);

void vhost_blk_debugfs_init(void *data);
void vhost_blk_debugfs_exit(void);
void vhost_blk_seq_write(struct seq_file *m, const char *s, size_t len);

#endif /* _VHOST_BLK_GLUE_H */
