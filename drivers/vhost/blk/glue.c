// SPDX-License-Identifier: GPL-2.0
/*
 * C glue of vhost_blk.ko: what 6.12's Rust support cannot reach or has no
 * abstraction for. The /dev/vhost-blk misc device and its file_operations,
 * the statistics file, CPU hotplug and the reaping work call into the
 * driver through the vhost_blk_rs_* functions of entry.rs; kick polls,
 * bio building and completion, worker kthreads, user copies, module
 * parameters and static inlines are wrapped here for the ffi/ layer.
 * Prototypes and shared structs are in glue.h.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/cgroup.h>
#include <linux/compat.h>
#include <linux/cpu.h>
#include <linux/cpuhotplug.h>
#include <linux/cpumask.h>
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/err.h>
#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/kthread.h>
#include <linux/lockdep.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/rcupdate.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/sysfs.h>
#include <linux/workqueue.h>

#include "glue.h"

static_assert(sizeof(struct vhost_blk_bdev_info) == VHOST_BLK_BDEV_INFO_SIZE);

#if !IS_ENABLED(CONFIG_VHOST_TASK)
#error "vhost-blk needs CONFIG_VHOST_TASK (selected by CONFIG_VHOST) for its slow path"
#endif

/* What vhost_blk_rs_open() gets: the module's worker pool. */
static void *vhost_blk_misc_data;

static int vhost_blk_fop_open(struct inode *inode, struct file *file)
{
	void *dev;
	int ret;

	ret = vhost_blk_rs_open(vhost_blk_misc_data, &dev);
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

static void vhost_blk_fop_show_fdinfo(struct seq_file *m, struct file *file)
{
	vhost_blk_rs_show_fdinfo(file->private_data, m);
}

static const struct file_operations vhost_blk_fops = {
	.owner = THIS_MODULE,
	.open = vhost_blk_fop_open,
	.release = vhost_blk_fop_release,
	.unlocked_ioctl = vhost_blk_fop_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.show_fdinfo = vhost_blk_fop_show_fdinfo,
	.llseek = noop_llseek,
};

static struct miscdevice vhost_blk_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "vhost-blk",
	.fops = &vhost_blk_fops,
	.mode = 0600,
};

int vhost_blk_misc_register(void *data)
{
	vhost_blk_misc_data = data;
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

/* Eventfds for kick, call and err; ERR_PTR on failure. */
struct eventfd_ctx *vhost_blk_eventfd_get(int fd)
{
	return eventfd_ctx_fdget(fd);
}

void vhost_blk_eventfd_signal(struct eventfd_ctx *ctx)
{
	eventfd_signal(ctx);
}

void vhost_blk_eventfd_put(struct eventfd_ctx *ctx)
{
	eventfd_ctx_put(ctx);
}

/*
 * The backing block device: a reference on a file the VMM opened; ERR_PTR
 * on failure.
 */
struct file *vhost_blk_bdev_fget(int fd, struct vhost_blk_bdev_info *info)
{
	struct block_device *bdev;
	struct file *file = fget(fd);

	if (!file)
		return ERR_PTR(-EBADF);
	if (!S_ISBLK(file_inode(file)->i_mode)) {
		fput(file);
		return ERR_PTR(-ENOTBLK);
	}
	bdev = file_bdev(file);
	memset(info, 0, sizeof(*info));
	info->capacity = bdev_nr_sectors(bdev);
	info->logical_block_size = bdev_logical_block_size(bdev);
	info->max_discard_sectors = bdev_max_discard_sectors(bdev);
	info->max_write_zeroes_sectors = bdev_write_zeroes_sectors(bdev);
	info->dma_alignment = bdev_dma_alignment(bdev);
	info->virt_boundary_mask = queue_virt_boundary(bdev_get_queue(bdev));
	info->max_sectors = queue_max_sectors(bdev_get_queue(bdev));
	info->read_only = !(file->f_mode & FMODE_WRITE) || bdev_read_only(bdev);
	info->write_cache = bdev_write_cache(bdev);
	info->nowait = bdev_nowait(bdev);
	info->major = MAJOR(bdev->bd_dev);
	info->minor = MINOR(bdev->bd_dev);
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
					  int id, int cpu)
{
	struct task_struct *task = kthread_create(fn, data, "vhost-blk-%d", id);

	if (IS_ERR(task))
		return task;
	/*
	 * @cpu was online when vhost_blk_param_worker_cpu() chose it; if it
	 * has gone offline since, the worker runs unpinned, as it would had
	 * the CPU gone offline under it.
	 */
	if (cpu >= 0 && vhost_blk_kthread_pin(task, cpu))
		pr_notice_ratelimited("worker_cpus: CPU %d went offline; vhost-blk-%d runs unpinned\n",
				      cpu, id);
	wake_up_process(task);
	return task;
}

/*
 * Pins @task to @cpu. Fails (and leaves the task alone) if @cpu is not
 * online.
 */
int vhost_blk_kthread_pin(struct task_struct *task, int cpu)
{
	if (cpu < 0 || cpu >= nr_cpu_ids)
		return -EINVAL;
	return set_cpus_allowed_ptr(task, cpumask_of(cpu));
}

/*
 * Moves @task to the CPUs of the NUMA node of @bdev_file's queue, where the
 * device's completions are likely to arrive. Returns the node, or
 * NUMA_NO_NODE (and leaves the task alone) if the node is unknown.
 */
int vhost_blk_kthread_follow_bdev(struct task_struct *task,
				  struct file *bdev_file)
{
	int node = bdev_get_queue(file_bdev(bdev_file))->node;
	const struct cpumask *mask;

	if (node == NUMA_NO_NODE)
		return NUMA_NO_NODE;
	mask = cpumask_of_node(node);
	if (!cpumask_intersects(mask, cpu_online_mask) ||
	    set_cpus_allowed_ptr(task, mask))
		return NUMA_NO_NODE;
	return node;
}

int vhost_blk_task_pid(struct task_struct *task)
{
	return task_pid_nr(task);
}

u64 vhost_blk_now_ns(void)
{
	return ktime_get_ns();
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

/*
 * What wakes a worker: a flag that work is pending, set from any context
 * (kick wake-ups, bio completions), and the worker's task. The worker
 * clears the flag before each pass and sleeps only while it is clear.
 * @waiting counts the worker's queues that the guest kicked and that wait
 * for their turn: a hint, read and written without ordering.
 *
 * Counted: the worker holds a reference, and so does each queue and each
 * bio list it points at the worker. Wake-ups (kicks and completions)
 * read those pointers under rcu_read_lock(), so a pointer may be changed
 * at any time: the last reference is dropped through call_rcu(), after
 * every wake-up that could still see it. The module waits for those
 * callbacks when it unloads (vhost_blk_rcu_barrier).
 */
struct vhost_blk_wake {
	struct task_struct *task;
	atomic_t pending;
	atomic_t waiting;
	refcount_t ref;
	struct rcu_head rcu;
};

struct vhost_blk_wake *vhost_blk_wake_new(void)
{
	struct vhost_blk_wake *wake = kzalloc(sizeof(*wake), GFP_KERNEL);

	if (wake)
		refcount_set(&wake->ref, 1);
	return wake;
}

static void vhost_blk_wake_free_rcu(struct rcu_head *rcu)
{
	struct vhost_blk_wake *wake = container_of(rcu, struct vhost_blk_wake,
						   rcu);

	if (wake->task)
		put_task_struct(wake->task);
	kfree(wake);
}

void vhost_blk_wake_get(struct vhost_blk_wake *wake)
{
	refcount_inc(&wake->ref);
}

void vhost_blk_wake_put(struct vhost_blk_wake *wake)
{
	if (refcount_dec_and_test(&wake->ref))
		call_rcu(&wake->rcu, vhost_blk_wake_free_rcu);
}

void vhost_blk_rcu_read_lock(void)
{
	rcu_read_lock();
}

void vhost_blk_rcu_read_unlock(void)
{
	rcu_read_unlock();
}

/*
 * Points @wake at @task, taking a reference on it; only the first call
 * counts (a task signalled may not be swapped out under the signal).
 */
void vhost_blk_wake_set_task(struct vhost_blk_wake *wake,
			     struct task_struct *task)
{
	get_task_struct(task);
	if (cmpxchg(&wake->task, NULL, task))
		put_task_struct(task);
}

void vhost_blk_wake_signal(struct vhost_blk_wake *wake)
{
	struct task_struct *task;

	/*
	 * Fully ordered, pairing with the barrier of set_current_state() in
	 * the sleeper. If work was already pending, whoever set it wakes the
	 * worker, or the worker has yet to take it: either way it will look
	 * again, so a burst of completions costs one wake-up, not one each.
	 */
	if (atomic_xchg(&wake->pending, 1))
		return;
	task = READ_ONCE(wake->task);
	if (task)
		wake_up_process(task);
}

bool vhost_blk_wake_take(struct vhost_blk_wake *wake)
{
	return atomic_xchg(&wake->pending, 0);
}

bool vhost_blk_wake_pending(struct vhost_blk_wake *wake)
{
	return atomic_read(&wake->pending);
}

void vhost_blk_wake_waiting_add(struct vhost_blk_wake *wake, int delta)
{
	atomic_add(delta, &wake->waiting);
}

int vhost_blk_wake_waiting(struct vhost_blk_wake *wake)
{
	return atomic_read(&wake->waiting);
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

bool vhost_blk_cond_resched(void)
{
	return cond_resched();
}

unsigned int vhost_blk_online_cpus(void)
{
	return num_online_cpus();
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
 * wake-up calls kick(data), which must not sleep.
 */
struct vhost_blk_poll {
	poll_table table;
	wait_queue_head_t *wqh;
	wait_queue_entry_t wait;
	struct file *file;
	void (*kick)(void *data);
	void *data;
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
		poll->kick(poll->data);
	return 0;
}

struct vhost_blk_poll *vhost_blk_poll_start(int fd, void (*kick)(void *),
					    void *data)
{
	struct vhost_blk_poll *poll;
	struct file *file;
	__poll_t mask;

	poll = kzalloc(sizeof(*poll), GFP_KERNEL);
	if (!poll)
		return ERR_PTR(-ENOMEM);
	file = eventfd_fget(fd);
	if (IS_ERR(file)) {
		kfree(poll);
		return ERR_CAST(file);
	}
	poll->file = file;
	poll->kick = kick;
	poll->data = data;
	init_waitqueue_func_entry(&poll->wait, vhost_blk_poll_wakeup);
	init_poll_funcptr(&poll->table, vhost_blk_poll_queue);
	mask = vfs_poll(poll->file, &poll->table);
	if (mask & EPOLLIN)
		kick(data);
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
 * says which request it serves and how to submit it again. Completion only
 * pushes the bio on its queue's list and wakes the worker: unpinning,
 * dirtying and the used ring are done by the worker in process context.
 */
struct vhost_blk_bio {
	unsigned long token;
	/* Where it was submitted, for a resubmission. */
	struct bvec_iter iter;
	struct cgroup_subsys_state *blkcg;
	u8 kind;
	bool pinned;
	/* Times submitted again with REQ_NOWAIT after coming back. */
	u8 nowait_retries;
	struct bio bio;
};

static inline struct vhost_blk_bio *to_vb(struct bio *bio)
{
	return container_of(bio, struct vhost_blk_bio, bio);
}

/*
 * A queue's completed bios. The list is freed after a grace period:
 * completions use it under rcu_read_lock() (vhost_blk_bio_end_io).
 */
struct vhost_blk_bio_list {
	struct bio *head;
	/* A bio came back BLK_STS_AGAIN since the last take: the disk is full. */
	bool bounced;
	struct vhost_blk_wake __rcu *wake;
	struct rcu_head rcu;
};

static struct bio_set vhost_blk_bio_set;

int vhost_blk_bioset_init(void)
{
	return bioset_init(&vhost_blk_bio_set, 64,
			   offsetof(struct vhost_blk_bio, bio),
			   BIOSET_NEED_BVECS | BIOSET_PERCPU_CACHE);
}

void vhost_blk_bioset_exit(void)
{
	bioset_exit(&vhost_blk_bio_set);
}

struct vhost_blk_bio_list *vhost_blk_bio_list_new(void)
{
	return kzalloc(sizeof(struct vhost_blk_bio_list), GFP_KERNEL);
}

/*
 * Points completions at @wake (or nowhere), with a reference of the
 * list's own. A target replaced here may still be signalled by a
 * completion in progress: its last reference goes after a grace period.
 */
void vhost_blk_bio_list_set_wake(struct vhost_blk_bio_list *list,
				 struct vhost_blk_wake *wake)
{
	struct vhost_blk_wake *old;

	if (wake)
		vhost_blk_wake_get(wake);
	old = unrcu_pointer(xchg(&list->wake, RCU_INITIALIZER(wake)));
	if (old)
		vhost_blk_wake_put(old);
}

bool vhost_blk_bio_list_empty(struct vhost_blk_bio_list *list)
{
	return !READ_ONCE(list->head);
}

void vhost_blk_bio_list_free(struct vhost_blk_bio_list *list)
{
	WARN_ON_ONCE(READ_ONCE(list->head));
	vhost_blk_bio_list_set_wake(list, NULL);
	kfree_rcu(list, rcu);
}

/* Waits for the grace-period callbacks above: the module is leaving. */
void vhost_blk_rcu_barrier(void)
{
	rcu_barrier();
}

#ifdef CONFIG_KASAN
/*
 * Debug kernels only: a completion lingers this long after it has handed
 * its bio to the worker, then uses the list again. It widens the window in
 * which teardown could free the list or the worker's wake-up target under
 * a running completion, so that the teardown tests would catch it.
 */
static unsigned int debug_completion_delay_ms;
module_param(debug_completion_delay_ms, uint, 0644);
MODULE_PARM_DESC(debug_completion_delay_ms,
		 "Debug kernels only: ms each bio completion busy-waits after waking the worker, to test teardown (default 0)");
#endif

/*
 * Runs in any context, often in interrupt. Once the bio is on the list the
 * worker may complete its request, the queue may drain and be freed, and
 * the worker may stop: everything after the push runs under
 * rcu_read_lock(), and the list and the wake target are freed only after
 * a grace period.
 */
static void vhost_blk_bio_end_io(struct bio *bio)
{
	struct vhost_blk_bio_list *list = bio->bi_private;
	struct vhost_blk_wake *wake;
	struct bio *head;

	rcu_read_lock();
	/* No room, as vhost_blk_bio_bounce() tells it. */
	if (bio->bi_status == BLK_STS_AGAIN && (bio->bi_opf & REQ_NOWAIT))
		WRITE_ONCE(list->bounced, true);
	head = READ_ONCE(list->head);
	do {
		bio->bi_next = head;
	} while (!try_cmpxchg(&list->head, &head, bio));
	wake = rcu_dereference(list->wake);
	if (wake)
		vhost_blk_wake_signal(wake);
#ifdef CONFIG_KASAN
	if (unlikely(READ_ONCE(debug_completion_delay_ms))) {
		mdelay(READ_ONCE(debug_completion_delay_ms));
		wake = rcu_dereference(list->wake);
		if (wake)
			vhost_blk_wake_signal(wake);
	}
#endif
	rcu_read_unlock();
}

/*
 * The flag is cleared after the bios are taken: a bounce that lands in
 * between loses its flag (its bio is on the list for the next take),
 * but a flag is never left set for a bio already taken.
 */
struct bio *vhost_blk_bio_list_take(struct vhost_blk_bio_list *list)
{
	struct bio *head = xchg(&list->head, NULL);

	WRITE_ONCE(list->bounced, false);
	return head;
}

/*
 * Whether a bio bounced off a full disk since the last take. A hint, read
 * without ordering: the bounced bio itself reaches the worker through the
 * list.
 */
bool vhost_blk_bio_list_bounced(struct vhost_blk_bio_list *list)
{
	return READ_ONCE(list->bounced);
}

static const blk_opf_t vhost_blk_bio_opf[VHOST_BLK_BIO_NR_KINDS] = {
	[VHOST_BLK_BIO_READ] = REQ_OP_READ,
	/* As O_DIRECT writes: not held back by writeback throttling. */
	[VHOST_BLK_BIO_WRITE] = REQ_OP_WRITE | REQ_SYNC | REQ_IDLE,
	[VHOST_BLK_BIO_WRITE_FUA] = REQ_OP_WRITE | REQ_SYNC | REQ_IDLE | REQ_FUA,
	[VHOST_BLK_BIO_FLUSH] = REQ_OP_WRITE | REQ_PREFLUSH,
	[VHOST_BLK_BIO_DISCARD] = REQ_OP_DISCARD,
	[VHOST_BLK_BIO_WRITE_ZEROES] = REQ_OP_WRITE_ZEROES,
	[VHOST_BLK_BIO_WRITE_ZEROES_NOUNMAP] = REQ_OP_WRITE_ZEROES | REQ_NOUNMAP,
	/* Never submitted. */
	[VHOST_BLK_BIO_ZERO_RANGE] = REQ_OP_WRITE,
};

static bool vhost_blk_kind_has_pages(unsigned int kind)
{
	return kind == VHOST_BLK_BIO_READ || kind == VHOST_BLK_BIO_WRITE ||
	       kind == VHOST_BLK_BIO_WRITE_FUA;
}

/*
 * A bio as @args says, or NULL for an unknown kind. The range kinds carry
 * no pages and cover @args->bytes.
 */
struct bio *vhost_blk_bio_alloc(const struct vhost_blk_bio_args *args)
{
	unsigned short nr_vecs = args->nr_vecs;
	struct vhost_blk_bio *vb;
	blk_opf_t opf;
	struct bio *bio;

	if (args->kind >= VHOST_BLK_BIO_NR_KINDS)
		return NULL;
	opf = vhost_blk_bio_opf[args->kind];
	if (args->nowait)
		opf |= REQ_NOWAIT;
	if (!vhost_blk_kind_has_pages(args->kind))
		nr_vecs = 0;
	/*
	 * Small bios come from the bioset's per-CPU cache, as io_uring's do:
	 * the worker allocates them, and frees them too (vhost_blk_bio_release),
	 * always in process context, as the cache requires. The block layer
	 * drops the flag for bios with more vectors than fit inline.
	 */
	bio = bio_alloc_bioset(file_bdev(args->bdev_file), nr_vecs,
			       opf | REQ_ALLOC_CACHE, GFP_NOWAIT,
			       &vhost_blk_bio_set);
	/*
	 * Without reclaim first: the worker serves other queues. A mempool
	 * allocation that may sleep does not fail; the request fails with
	 * IOERR if it ever does.
	 */
	if (!bio)
		bio = bio_alloc_bioset(file_bdev(args->bdev_file), nr_vecs,
				       opf | REQ_ALLOC_CACHE, GFP_KERNEL,
				       &vhost_blk_bio_set);
	if (!bio)
		return NULL;
	vb = to_vb(bio);
	vb->token = args->token;
	vb->kind = args->kind;
	vb->pinned = false;
	vb->nowait_retries = 0;
	vb->blkcg = args->blkcg;
	bio->bi_iter.bi_sector = args->sector;
	if (!vhost_blk_kind_has_pages(args->kind))
		bio->bi_iter.bi_size = args->bytes;
	bio->bi_end_io = vhost_blk_bio_end_io;
	bio->bi_private = args->list;
	/* Charge the owner's cgroup, not the shared worker's. */
	if (args->blkcg)
		bio_associate_blkg_from_css(bio, args->blkcg);
	return bio;
}

/*
 * Pins the owner's pages under [uaddr, uaddr + len) and adds them to @bio,
 * one bvec per page, until the bio is full. Returns the bytes added (0 if
 * it was full), or -EFAULT if the first page is not present (or, for the
 * device to write, not writable). FOLL_NOFAULT: this never faults a page
 * in, so a shared worker never sleeps on the owner's memory (userfaultfd,
 * FUSE, swap); the worker's slow path faults the range in and retries.
 * (Where GUP-fast cannot pin a page, GUP falls back to a page-table walk
 * under the owner's mmap_lock, taken for reading: only a writer holding
 * it can delay the worker.) Must run under the owner's mm (kthread_use_mm).
 */
int vhost_blk_bio_add_user(struct bio *bio, unsigned long uaddr,
			   unsigned int len, bool device_writes)
{
	unsigned int gup = FOLL_NOFAULT | (device_writes ? FOLL_WRITE : 0);
	struct page *pages[16];
	unsigned int done = 0;
	long i, n;

	if (bio->bi_vcnt >= bio->bi_max_vecs)
		return 0;
	while (done < len && bio->bi_vcnt < bio->bi_max_vecs) {
		unsigned long addr = uaddr + done;
		unsigned int off = offset_in_page(addr);
		unsigned long want = DIV_ROUND_UP(off + (len - done), PAGE_SIZE);

		want = min3(want, (unsigned long)ARRAY_SIZE(pages),
			    (unsigned long)(bio->bi_max_vecs - bio->bi_vcnt));
		n = pin_user_pages_fast(addr & PAGE_MASK, want, gup, pages);
		if (n <= 0)
			break;
		to_vb(bio)->pinned = true;
		for (i = 0; i < n; i++) {
			unsigned int chunk = min_t(unsigned int, len - done,
						   PAGE_SIZE - off);

			__bio_add_page(bio, pages[i], chunk, off);
			done += chunk;
			off = 0;
		}
		if (n < want)
			break;
	}
	if (!done && len)
		return -EFAULT;
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

	if (to_vb(bio)->pinned)
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
	to_vb(bio)->iter = bio->bi_iter;
	submit_bio(bio);
}

/*
 * Why @bio, submitted with REQ_NOWAIT, came back undone: an enum
 * vhost_blk_bio_bounce.
 */
static_assert(VHOST_BLK_BOUNCE_NO_ROOM == 1 &&
	      VHOST_BLK_BOUNCE_NOWAIT_REFUSED == 2,
	      "mirrored as 1 and 2 by Bounce in ffi/bio.rs");

unsigned int vhost_blk_bio_bounce(struct bio *bio)
{
	if (!(bio->bi_opf & REQ_NOWAIT))
		return VHOST_BLK_BOUNCE_NONE;
	if (bio->bi_status == BLK_STS_AGAIN)
		return VHOST_BLK_BOUNCE_NO_ROOM;
	if (bio->bi_status == BLK_STS_NOTSUPP)
		return VHOST_BLK_BOUNCE_NOWAIT_REFUSED;
	return VHOST_BLK_BOUNCE_NONE;
}

/* How many times @bio was submitted again with REQ_NOWAIT. */
unsigned int vhost_blk_bio_nowait_retries(struct bio *bio)
{
	return to_vb(bio)->nowait_retries;
}

/*
 * Makes a completed bio ready to be submitted again, as it was, and with
 * REQ_NOWAIT only if @nowait. Its iterator goes back to where it was
 * submitted, before a partition's offset was added, so BIO_REMAPPED
 * goes too: submit_bio_noacct() then remaps it again instead of sending
 * it to the partition-relative sector of the whole disk. Completion
 * dropped its cgroup association (bio_endio), so it is charged to the
 * owner's cgroup again.
 */
void vhost_blk_bio_rearm(struct bio *bio, bool nowait)
{
	struct vhost_blk_bio *vb = to_vb(bio);

	bio->bi_iter = vb->iter;
	bio->bi_status = BLK_STS_OK;
	if (nowait) {
		if (vb->nowait_retries < U8_MAX)
			vb->nowait_retries++;
	} else {
		bio->bi_opf &= ~REQ_NOWAIT;
	}
	bio->bi_next = NULL;
	bio_clear_flag(bio, BIO_QUIET);
	bio_clear_flag(bio, BIO_REMAPPED);
	if (vb->blkcg)
		bio_associate_blkg_from_css(bio, vb->blkcg);
}

struct bio *vhost_blk_bio_next(struct bio *bio)
{
	return bio->bi_next;
}

void vhost_blk_bio_set_next(struct bio *bio, struct bio *next)
{
	bio->bi_next = next;
}

/*
 * Ring indexes, flags and event indexes are shared with a driver that runs
 * concurrently: each is read and written as one 16-bit access, never as a
 * byte copy that the other side could see half done (vhost_get_avail_idx,
 * vhost_put_used_idx). Page faults are disabled: a page that is not
 * present fails with -EFAULT and the worker's slow path faults it in.
 */
int vhost_blk_get_user_le16(const void __user *uaddr, u16 *val)
{
	__le16 raw;
	int ret;

	pagefault_disable();
	ret = get_user(raw, (const __le16 __user *)uaddr);
	pagefault_enable();
	if (!ret)
		*val = le16_to_cpu(raw);
	return ret;
}

int vhost_blk_put_user_le16(void __user *uaddr, u16 val)
{
	int ret;

	pagefault_disable();
	ret = put_user(cpu_to_le16(val), (__le16 __user *)uaddr);
	pagefault_enable();
	return ret;
}

unsigned long vhost_blk_bio_token(struct bio *bio)
{
	return to_vb(bio)->token;
}

unsigned int vhost_blk_bio_kind(struct bio *bio)
{
	return to_vb(bio)->kind;
}

/*
 * The range a bio without pages covers: for a submitted one, as it was
 * submitted; for a zero-range record, what is left of it.
 */
void vhost_blk_bio_range(struct bio *bio, u64 *sector, u32 *bytes)
{
	struct bvec_iter *iter = to_vb(bio)->kind == VHOST_BLK_BIO_ZERO_RANGE ?
				 &bio->bi_iter : &to_vb(bio)->iter;

	*sector = iter->bi_sector;
	*bytes = iter->bi_size;
}

/* Moves a zero-range record past @bytes that are now being written. */
void vhost_blk_bio_advance_range(struct bio *bio, u32 bytes)
{
	bytes = min(bytes, bio->bi_iter.bi_size);
	bio->bi_iter.bi_sector += bytes >> SECTOR_SHIFT;
	bio->bi_iter.bi_size -= bytes;
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

	if (to_vb(bio)->pinned) {
		/* Skips the page lock for pages already dirty. */
		bio_for_each_segment_all(bv, bio, iter)
			unpin_user_pages_dirty_lock(&bv->bv_page, 1, dirty);
	}
	bio_put(bio);
}

void vhost_blk_task_hold(struct task_struct *task)
{
	get_task_struct(task);
}

void vhost_blk_task_release(struct task_struct *task)
{
	put_task_struct(task);
}

void vhost_blk_task_wake(struct task_struct *task)
{
	wake_up_process(task);
}

struct task_struct *vhost_blk_current(void)
{
	return current;
}

/*
 * A closed device whose bios are still in flight keeps the module loaded
 * until its worker has torn it down.
 */
void vhost_blk_module_get(void)
{
	__module_get(THIS_MODULE);
}

void vhost_blk_module_put(void)
{
	module_put(THIS_MODULE);
}

/*
 * The owner's block cgroup, to which the bios of its device are charged
 * although a shared worker submits them.
 */
struct cgroup_subsys_state *vhost_blk_blkcg_get_current(void)
{
#ifdef CONFIG_BLK_CGROUP
	return task_get_css(current, io_cgrp_id);
#else
	return NULL;
#endif
}

void vhost_blk_blkcg_put(struct cgroup_subsys_state *css)
{
	css_put(css);
}

/*
 * Module parameters. The Rust side reads them through the getters below;
 * each is read once per use, so runtime changes apply from the next
 * scheduling turn or the next device. Documented in
 * Documentation/vhost-blk/admin-guide.rst.
 */
/*
 * The kernel_param_ops of unsigned parameter @name: a write outside
 * @min..@max fails with -EINVAL.
 */
#define VHOST_BLK_UINT_PARAM_OPS(name, min, max)                           \
	static int name##_set(const char *val, const struct kernel_param *kp) \
	{                                                                  \
		return param_set_uint_minmax(val, kp, min, max);           \
	}                                                                  \
	static const struct kernel_param_ops name##_ops = {                \
		.set = name##_set,                                         \
		.get = param_get_uint,                                     \
	}

static unsigned int poll_budget_us;
VHOST_BLK_UINT_PARAM_OPS(poll_budget_us, 0, 1000000);
module_param_cb(poll_budget_us, &poll_budget_us_ops, &poll_budget_us, 0644);
__MODULE_PARM_TYPE(poll_budget_us, "uint");
MODULE_PARM_DESC(poll_budget_us,
		 "Microseconds a worker keeps polling idle queues, with guest notifications off, before it sleeps; 0 sleeps at once (default 0, max 1000000)");

static unsigned int queues_per_worker = 1;
VHOST_BLK_UINT_PARAM_OPS(queues_per_worker, 1, 1024);
module_param_cb(queues_per_worker, &queues_per_worker_ops, &queues_per_worker,
		0644);
__MODULE_PARM_TYPE(queues_per_worker, "uint");
MODULE_PARM_DESC(queues_per_worker,
		 "Virtqueues a worker serves before another worker starts, up to max_workers; 1 gives each queue its own worker (default 1, 1-1024)");

static unsigned int max_workers;
VHOST_BLK_UINT_PARAM_OPS(max_workers, 0, 1024);
module_param_cb(max_workers, &max_workers_ops, &max_workers, 0644);
__MODULE_PARM_TYPE(max_workers, "uint");
MODULE_PARM_DESC(max_workers,
		 "Most worker threads; beyond it queues share the least loaded worker; 0 is one per online CPU (default 0, max 1024)");

static unsigned int quota_reqs = 64;
VHOST_BLK_UINT_PARAM_OPS(quota_reqs, 1, 32768);
module_param_cb(quota_reqs, &quota_reqs_ops, &quota_reqs, 0644);
__MODULE_PARM_TYPE(quota_reqs, "uint");
MODULE_PARM_DESC(quota_reqs,
		 "Requests a queue may start in one scheduling turn (default 64, 1-32768)");

static unsigned int quota_kib = 512;
VHOST_BLK_UINT_PARAM_OPS(quota_kib, 4, 1048576);
module_param_cb(quota_kib, &quota_kib_ops, &quota_kib, 0644);
__MODULE_PARM_TYPE(quota_kib, "uint");
MODULE_PARM_DESC(quota_kib,
		 "KiB of data a queue may start in one scheduling turn (default 512, 4-1048576)");

/*
 * A turn that publishes between batches lets a driver waiting for an
 * interrupt get its first completions, and post new requests, while the
 * worker still serves the rest of the turn, instead of the two taking
 * turns; the price is more interrupts (core/sched.rs, publish_mid_turn).
 */
static unsigned int publish_batch = 8;
VHOST_BLK_UINT_PARAM_OPS(publish_batch, 0, 32768);
module_param_cb(publish_batch, &publish_batch_ops, &publish_batch, 0644);
__MODULE_PARM_TYPE(publish_batch, "uint");
MODULE_PARM_DESC(publish_batch,
		 "Requests a queue's turn starts between two publications of completions (each with an interrupt if the guest wants one); 0 publishes once per turn (default 8, 0-32768)");

/* worker_cpus: a cpulist; empty means no pinning. */
static DEFINE_MUTEX(vhost_blk_cpus_lock);
static struct cpumask vhost_blk_worker_cpus;
/*
 * How many of its CPUs are online, for readers that take no lock; kept up
 * to date by the CPU-hotplug callbacks below.
 */
static unsigned int vhost_blk_worker_cpus_weight;

/*
 * Recounts worker_cpus's online CPUs into its weight, leaving out @leaving
 * if it is one (nr_cpu_ids: none). The caller holds vhost_blk_cpus_lock.
 */
static void __vhost_blk_worker_cpus_recount(unsigned int leaving)
{
	unsigned int n;

	lockdep_assert_held(&vhost_blk_cpus_lock);
	n = cpumask_weight_and(&vhost_blk_worker_cpus, cpu_online_mask);
	if (leaving < nr_cpu_ids && cpu_online(leaving) &&
	    cpumask_test_cpu(leaving, &vhost_blk_worker_cpus))
		n--;
	WRITE_ONCE(vhost_blk_worker_cpus_weight, n);
}

static void vhost_blk_worker_cpus_recount(unsigned int leaving)
{
	mutex_lock(&vhost_blk_cpus_lock);
	__vhost_blk_worker_cpus_recount(leaving);
	mutex_unlock(&vhost_blk_cpus_lock);
}

static int worker_cpus_set(const char *val, const struct kernel_param *kp)
{
	cpumask_var_t mask;
	int ret = 0;

	if (!zalloc_cpumask_var(&mask, GFP_KERNEL))
		return -ENOMEM;
	/* No CPU comes or goes between the check and the new weight. */
	cpus_read_lock();
	if (cpulist_parse(val, mask)) {
		pr_err("worker_cpus: '%s' is not a CPU list\n", val);
		ret = -EINVAL;
		goto out;
	}
	if (!cpumask_subset(mask, cpu_online_mask)) {
		/* Name only the offending CPUs; @mask is not kept. */
		cpumask_andnot(mask, mask, cpu_online_mask);
		pr_err("worker_cpus: CPUs %*pbl are not online\n",
		       cpumask_pr_args(mask));
		ret = -EINVAL;
		goto out;
	}
	mutex_lock(&vhost_blk_cpus_lock);
	cpumask_copy(&vhost_blk_worker_cpus, mask);
	__vhost_blk_worker_cpus_recount(nr_cpu_ids);
	mutex_unlock(&vhost_blk_cpus_lock);
out:
	cpus_read_unlock();
	free_cpumask_var(mask);
	return ret;
}

static int worker_cpus_get(char *buf, const struct kernel_param *kp)
{
	int n;

	mutex_lock(&vhost_blk_cpus_lock);
	n = sysfs_emit(buf, "%*pbl\n", cpumask_pr_args(&vhost_blk_worker_cpus));
	mutex_unlock(&vhost_blk_cpus_lock);
	return n;
}

static const struct kernel_param_ops worker_cpus_ops = {
	.set = worker_cpus_set,
	.get = worker_cpus_get,
};

module_param_cb(worker_cpus, &worker_cpus_ops, NULL, 0644);
__MODULE_PARM_TYPE(worker_cpus, "cpulist");
MODULE_PARM_DESC(worker_cpus,
		 "CPUs to pin workers to, e.g. 2-3: worker n runs on the n-th CPU of the list, round robin; empty leaves placement to the scheduler, on the backing device's NUMA node where known (default empty)");

u32 vhost_blk_param_poll_budget_us(void)
{
	return READ_ONCE(poll_budget_us);
}

u32 vhost_blk_param_queues_per_worker(void)
{
	return READ_ONCE(queues_per_worker);
}

u32 vhost_blk_param_max_workers(void)
{
	unsigned int n = READ_ONCE(max_workers);

	return n ? n : num_online_cpus();
}

u32 vhost_blk_param_quota_reqs(void)
{
	return READ_ONCE(quota_reqs);
}

u32 vhost_blk_param_quota_kib(void)
{
	return READ_ONCE(quota_kib);
}

u32 vhost_blk_param_publish_batch(void)
{
	return READ_ONCE(publish_batch);
}

/*
 * How many CPUs worker_cpus lists that are online; 0 if it is empty or
 * none of them is. Takes no lock.
 */
u32 vhost_blk_param_worker_cpus_weight(void)
{
	return READ_ONCE(vhost_blk_worker_cpus_weight);
}

/*
 * The CPU for worker @index under worker_cpus: the (@index mod n)-th of the
 * n CPUs of the list that are online. -1 if the list is empty, or if none
 * of its CPUs is online (taken offline after the list was set): the
 * worker then runs unpinned rather than not at all.
 */
int vhost_blk_param_worker_cpu(u32 index)
{
	unsigned int n;
	int cpu = -1;

	mutex_lock(&vhost_blk_cpus_lock);
	n = cpumask_weight_and(&vhost_blk_worker_cpus, cpu_online_mask);
	if (n) {
		unsigned int nth = cpumask_nth_and(index % n,
						   &vhost_blk_worker_cpus,
						   cpu_online_mask);

		/* nr_cpu_ids if a CPU went offline since they were counted. */
		if (nth < nr_cpu_ids)
			cpu = nth;
	} else if (!cpumask_empty(&vhost_blk_worker_cpus)) {
		pr_notice_ratelimited("worker_cpus: none of CPUs %*pbl is online; new workers run unpinned\n",
				      cpumask_pr_args(&vhost_blk_worker_cpus));
	}
	mutex_unlock(&vhost_blk_cpus_lock);
	return cpu;
}

/*
 * CPU hotplug. The scheduler unpins a worker whose CPU goes offline; when
 * the CPU is back, vhost_blk_rs_cpu_online() pins it there again. Both
 * callbacks keep the weight of worker_cpus counting online CPUs only.
 * The callbacks run with CPU hotplug locked: the pool's lock, taken by
 * vhost_blk_rs_cpu_online(), is never held while taking cpus_read_lock().
 */
static void *vhost_blk_cpuhp_data;

static int vhost_blk_cpu_online(unsigned int cpu)
{
	vhost_blk_worker_cpus_recount(nr_cpu_ids);
	vhost_blk_rs_cpu_online(vhost_blk_cpuhp_data, cpu);
	return 0;
}

/* @cpu is still in cpu_online_mask while this state goes down. */
static int vhost_blk_cpu_offline(unsigned int cpu)
{
	vhost_blk_worker_cpus_recount(cpu);
	return 0;
}

/*
 * Registers the callbacks, with @data for vhost_blk_rs_cpu_online();
 * returns the dynamic state to unregister, or a negative errno.
 */
int vhost_blk_cpuhp_register(void *data)
{
	int state;

	vhost_blk_cpuhp_data = data;
	state = cpuhp_setup_state_nocalls(CPUHP_AP_ONLINE_DYN,
					  "vhost_blk:online",
					  vhost_blk_cpu_online,
					  vhost_blk_cpu_offline);
	if (state < 0) {
		pr_err("cannot register a CPU-hotplug state: %d\n",
		       state);
		return state;
	}
	/* A CPU may have gone since worker_cpus was set at load time. */
	cpus_read_lock();
	vhost_blk_worker_cpus_recount(nr_cpu_ids);
	cpus_read_unlock();
	return state;
}

/* Waits for running callbacks to return. */
void vhost_blk_cpuhp_unregister(int state)
{
	cpuhp_remove_state_nocalls(state);
}

/*
 * A worker that let go of the last queue it served (that of a closed
 * device, once its bios were back) cannot stop itself: a work item has
 * the pool (@data of vhost_blk_reap_register) stop it.
 */
static DEFINE_SPINLOCK(vhost_blk_reap_lock);
static void *vhost_blk_reap_data;

static void vhost_blk_reap_fn(struct work_struct *work)
{
	vhost_blk_rs_reap(READ_ONCE(vhost_blk_reap_data));
}

static DECLARE_WORK(vhost_blk_reap_work, vhost_blk_reap_fn);

void vhost_blk_reap_register(void *data)
{
	spin_lock(&vhost_blk_reap_lock);
	WRITE_ONCE(vhost_blk_reap_data, data);
	spin_unlock(&vhost_blk_reap_lock);
}

void vhost_blk_reap_schedule(void)
{
	spin_lock(&vhost_blk_reap_lock);
	if (vhost_blk_reap_data)
		schedule_work(&vhost_blk_reap_work);
	spin_unlock(&vhost_blk_reap_lock);
}

/* No reaping runs or starts after this returns. */
void vhost_blk_reap_unregister(void)
{
	spin_lock(&vhost_blk_reap_lock);
	WRITE_ONCE(vhost_blk_reap_data, NULL);
	spin_unlock(&vhost_blk_reap_lock);
	cancel_work_sync(&vhost_blk_reap_work);
}

/*
 * debugfs: <debugfs>/vhost-blk/stats, written by Rust
 * (vhost_blk_rs_stats_show) in the format of admin-guide.rst.
 */
static struct dentry *vhost_blk_debugfs_dir;

static int vhost_blk_stats_show(struct seq_file *m, void *v)
{
	return vhost_blk_rs_stats_show(m, m->private);
}
DEFINE_SHOW_ATTRIBUTE(vhost_blk_stats);

/* @data is what vhost_blk_rs_stats_show() gets: the worker pool. */
void vhost_blk_debugfs_init(void *data)
{
	vhost_blk_debugfs_dir = debugfs_create_dir("vhost-blk", NULL);
	debugfs_create_file("stats", 0400, vhost_blk_debugfs_dir, data,
			    &vhost_blk_stats_fops);
}

/* Waits for readers of the stats file to leave. */
void vhost_blk_debugfs_exit(void)
{
	debugfs_remove(vhost_blk_debugfs_dir);
}

void vhost_blk_seq_write(struct seq_file *m, const char *s, size_t len)
{
	seq_write(m, s, len);
}

int vhost_blk_task_cpus(struct task_struct *task, char *buf, size_t len)
{
	return scnprintf(buf, len, "%*pbl", cpumask_pr_args(task->cpus_ptr));
}
