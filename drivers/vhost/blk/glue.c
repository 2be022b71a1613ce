// SPDX-License-Identifier: GPL-2.0
/*
 * C glue of vhost_blk.ko: the /dev/vhost-blk misc device and its
 * file_operations, which forward to the Rust device (ffi/misc.rs).
 *
 * 6.12's Rust support has no miscdevice abstraction, so the registration
 * lives here; everything above the file_operations is Rust.
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/compat.h>
#include <linux/err.h>
#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/kthread.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>

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

/*
 * Worker kthreads. The loop itself is Rust (worker.rs); these wrap the
 * scheduler and kthread primitives, most of them static inline.
 */
struct task_struct *vhost_blk_kthread_run(int (*fn)(void *), void *data,
					  int id, int *err)
{
	struct task_struct *task = kthread_run(fn, data, "vhost-blk-%d", id);

	if (IS_ERR(task)) {
		*err = PTR_ERR(task);
		return NULL;
	}
	return task;
}

/* Returns -EINTR if the thread was stopped before its function ran. */
int vhost_blk_kthread_stop(struct task_struct *task)
{
	return kthread_stop(task);
}

bool vhost_blk_kthread_should_stop(void)
{
	return kthread_should_stop();
}

void vhost_blk_wake(struct task_struct *task)
{
	wake_up_process(task);
}

void vhost_blk_sleep_prepare(void)
{
	set_current_state(TASK_INTERRUPTIBLE);
}

void vhost_blk_sleep(void)
{
	schedule();
}

void vhost_blk_sleep_cancel(void)
{
	__set_current_state(TASK_RUNNING);
}

void vhost_blk_cond_resched(void)
{
	cond_resched();
}

void vhost_blk_use_mm(struct mm_struct *mm)
{
	kthread_use_mm(mm);
}

void vhost_blk_unuse_mm(struct mm_struct *mm)
{
	kthread_unuse_mm(mm);
}

/*
 * Kick polling, as vhost_poll: a wait entry on the kick eventfd whose
 * wake-up calls vhost_blk_rs_kick(), which must not sleep.
 */
struct vhost_blk_poll {
	poll_table table;
	wait_queue_head_t *wqh;
	wait_queue_entry_t wait;
	struct file *file;
	void *data;
	unsigned long token;
};

static void vhost_blk_poll_queue(struct file *file, wait_queue_head_t *wqh,
				 poll_table *pt)
{
	struct vhost_blk_poll *poll = container_of(pt, struct vhost_blk_poll,
						   table);

	poll->wqh = wqh;
	add_wait_queue(wqh, &poll->wait);
}

static int vhost_blk_poll_wakeup(wait_queue_entry_t *wait, unsigned int mode,
				 int sync, void *key)
{
	struct vhost_blk_poll *poll = container_of(wait, struct vhost_blk_poll,
						   wait);

	if (key_to_poll(key) & EPOLLIN)
		vhost_blk_rs_kick(poll->data, poll->token);
	return 0;
}

struct vhost_blk_poll *vhost_blk_poll_start(int fd, void *data,
					    unsigned long token, int *err)
{
	struct vhost_blk_poll *poll;
	__poll_t mask;

	poll = kzalloc(sizeof(*poll), GFP_KERNEL);
	if (!poll) {
		*err = -ENOMEM;
		return NULL;
	}
	poll->file = eventfd_fget(fd);
	if (IS_ERR(poll->file)) {
		*err = PTR_ERR(poll->file);
		kfree(poll);
		return NULL;
	}
	poll->data = data;
	poll->token = token;
	init_waitqueue_func_entry(&poll->wait, vhost_blk_poll_wakeup);
	init_poll_funcptr(&poll->table, vhost_blk_poll_queue);
	mask = vfs_poll(poll->file, &poll->table);
	if (mask & EPOLLIN)
		vhost_blk_rs_kick(data, token);
	return poll;
}

void vhost_blk_poll_stop(struct vhost_blk_poll *poll)
{
	if (poll->wqh)
		remove_wait_queue(poll->wqh, &poll->wait);
	fput(poll->file);
	kfree(poll);
}

/*
 * Bios. Each bio of vhost-blk comes from vhost_blk_bio_set, whose front pad
 * holds an opaque token (which request it serves). Completion only pushes
 * the bio on its worker's list and wakes the worker: unpinning, dirtying
 * and the used ring are done by the worker in process context.
 */
struct vhost_blk_bio {
	unsigned long token;
	bool pinned;
	struct bio bio;
};

struct vhost_blk_bio_list {
	struct bio *head;
	struct task_struct *task;
};

static struct bio_set vhost_blk_bio_set;

int vhost_blk_bioset_init(void)
{
	return bioset_init(&vhost_blk_bio_set, 64,
			   offsetof(struct vhost_blk_bio, bio),
			   BIOSET_NEED_BVECS);
}

void vhost_blk_bioset_exit(void)
{
	bioset_exit(&vhost_blk_bio_set);
}

struct vhost_blk_bio_list *vhost_blk_bio_list_new(void)
{
	return kzalloc(sizeof(struct vhost_blk_bio_list), GFP_KERNEL);
}

void vhost_blk_bio_list_set_task(struct vhost_blk_bio_list *list,
				 struct task_struct *task)
{
	WRITE_ONCE(list->task, task);
}

bool vhost_blk_bio_list_empty(struct vhost_blk_bio_list *list)
{
	return !READ_ONCE(list->head);
}

void vhost_blk_bio_list_free(struct vhost_blk_bio_list *list)
{
	WARN_ON_ONCE(READ_ONCE(list->head));
	kfree(list);
}

static void vhost_blk_bio_end_io(struct bio *bio)
{
	struct vhost_blk_bio_list *list = bio->bi_private;
	struct bio *head = READ_ONCE(list->head);

	do {
		bio->bi_next = head;
	} while (!try_cmpxchg(&list->head, &head, bio));
	wake_up_process(READ_ONCE(list->task));
}

struct bio *vhost_blk_bio_list_take(struct vhost_blk_bio_list *list)
{
	return xchg(&list->head, NULL);
}

/*
 * @kind: 0 read, 1 write, 2 flush (an empty write with PREFLUSH), 3 discard,
 * 4 write-zeroes that may unmap. Kinds 3 and 4 carry no pages and cover
 * @bytes.
 */
struct bio *vhost_blk_bio_alloc(struct file *bdev_file, unsigned short nr_vecs,
				unsigned int kind, u64 sector, unsigned int bytes,
				struct vhost_blk_bio_list *list,
				unsigned long token)
{
	struct vhost_blk_bio *vb;
	blk_opf_t opf;
	struct bio *bio;

	switch (kind) {
	case 0:
		opf = REQ_OP_READ;
		break;
	case 1:
		opf = REQ_OP_WRITE;
		break;
	case 3:
		opf = REQ_OP_DISCARD;
		break;
	case 4:
		opf = REQ_OP_WRITE_ZEROES;
		break;
	default:
		opf = REQ_OP_WRITE | REQ_PREFLUSH;
		break;
	}
	if (kind >= 3)
		nr_vecs = 0;
	bio = bio_alloc_bioset(file_bdev(bdev_file), nr_vecs, opf, GFP_KERNEL,
			       &vhost_blk_bio_set);
	vb = container_of(bio, struct vhost_blk_bio, bio);
	vb->token = token;
	vb->pinned = false;
	bio->bi_iter.bi_sector = sector;
	if (kind >= 3)
		bio->bi_iter.bi_size = bytes;
	bio->bi_end_io = vhost_blk_bio_end_io;
	bio->bi_private = list;
	return bio;
}

/*
 * Pins the owner's pages under [uaddr, uaddr + len) and adds them to @bio,
 * one bvec per page, until the bio is full. Returns the bytes added or a
 * negative errno. Must run under the owner's mm (kthread_use_mm).
 */
int vhost_blk_bio_add_user(struct bio *bio, unsigned long uaddr,
			   unsigned int len, bool device_writes)
{
	unsigned int gup = device_writes ? FOLL_WRITE : 0;
	unsigned int done = 0;

	while (done < len && bio->bi_vcnt < bio->bi_max_vecs) {
		unsigned long addr = uaddr + done;
		unsigned int off = offset_in_page(addr);
		unsigned int n = min_t(unsigned int, len - done, PAGE_SIZE - off);
		struct page *page;

		if (pin_user_pages_fast(addr & PAGE_MASK, 1, gup, &page) != 1)
			return done ? done : -EFAULT;
		container_of(bio, struct vhost_blk_bio, bio)->pinned = true;
		__bio_add_page(bio, page, n, off);
		done += n;
	}
	return done;
}

/*
 * Adds the shared zero page to @bio for up to @len bytes, until the bio is
 * full; returns the bytes added. Used to write zeroes on devices without a
 * write-zeroes offload. These pages are never unpinned.
 */
unsigned int vhost_blk_bio_add_zeroes(struct bio *bio, unsigned int len)
{
	unsigned int done = 0;

	if (container_of(bio, struct vhost_blk_bio, bio)->pinned)
		return 0;
	while (done < len && bio->bi_vcnt < bio->bi_max_vecs) {
		unsigned int n = min_t(unsigned int, len - done, PAGE_SIZE);

		__bio_add_page(bio, ZERO_PAGE(0), n, 0);
		done += n;
	}
	return done;
}

void vhost_blk_bio_submit(struct bio *bio)
{
	submit_bio(bio);
}

struct bio *vhost_blk_bio_next(struct bio *bio)
{
	return bio->bi_next;
}

unsigned long vhost_blk_bio_token(struct bio *bio)
{
	return container_of(bio, struct vhost_blk_bio, bio)->token;
}

int vhost_blk_bio_errno(struct bio *bio)
{
	return blk_status_to_errno(bio->bi_status);
}

/* Unpins the bio's user pages, dirtying them if the device wrote them. */
void vhost_blk_bio_release(struct bio *bio, bool dirty)
{
	struct bvec_iter_all iter;
	struct bio_vec *bv;

	if (container_of(bio, struct vhost_blk_bio, bio)->pinned) {
		bio_for_each_segment_all(bv, bio, iter) {
			if (dirty)
				set_page_dirty_lock(bv->bv_page);
			unpin_user_page(bv->bv_page);
		}
	}
	bio_put(bio);
}
