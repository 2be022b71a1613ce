// SPDX-License-Identifier: GPL-2.0
/*
 * C glue of vhost_blk.ko: only what 6.12's Rust cannot do. The
 * /dev/vhost-blk misc device and its file_operations, the statistics file,
 * CPU hotplug, the reaping work and the worker_cpus parameter call into
 * the driver through the vhost_blk_rs_* functions of entry.rs; kick polls
 * (vfs_poll and a wait-queue callback), 16-bit user accesses, module
 * parameters, and static inlines and macros with no Rust helper are
 * wrapped here for the ffi/ layer, which calls every exported function
 * directly. Prototypes and shared structs are in glue.h.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/blkdev.h>
#include <linux/cgroup.h>
#include <linux/compat.h>
#include <linux/cpu.h>
#include <linux/cpuhotplug.h>
#include <linux/debugfs.h>
#include <linux/err.h>
#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/kthread.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/ratelimit.h>
#include <linux/rcupdate.h>
#include <linux/sched/mm.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
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

/* A reference on a block device file the VMM opened; ERR_PTR on failure. */
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
	info->zoned = bdev_is_zoned(bdev);
	info->major = MAJOR(bdev->bd_dev);
	info->minor = MINOR(bdev->bd_dev);
	info->physical_block_size = bdev_physical_block_size(bdev);
	info->alignment_offset = bdev_alignment_offset(bdev);
	info->io_min = bdev_io_min(bdev);
	info->io_opt = bdev_io_opt(bdev);
	info->discard_granularity = bdev_discard_granularity(bdev);
	return file;
}

/* Its size now, in sectors: it follows a resize. */
u64 vhost_blk_bdev_nr_sectors(struct file *bdev_file)
{
	return bdev_nr_sectors(file_bdev(bdev_file));
}

/*
 * Moves @task to the CPUs of the NUMA node of @bdev_file's queue, where
 * its completions are likely to arrive (cpumask macros). Returns the node,
 * or NUMA_NO_NODE (and leaves the task alone) if the node is unknown.
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

/*
 * Fields of task_struct: bindgen's layout of it differs from the
 * compiler's, so Rust never reads them itself.
 */
struct mm_struct *vhost_blk_current_mm(void)
{
	return current->mm;
}

int vhost_blk_task_cpus(struct task_struct *task, char *buf, size_t len)
{
	return scnprintf(buf, len, "%*pbl", cpumask_pr_args(task->cpus_ptr));
}

/* Read-side sections for wake-ups and completions (ffi/rcu.rs). */
void vhost_blk_rcu_read_lock(void)
{
	rcu_read_lock();
}

void vhost_blk_rcu_read_unlock(void)
{
	rcu_read_unlock();
}

void vhost_blk_sleep_prepare(void)
{
	set_current_state(TASK_INTERRUPTIBLE);
}

void vhost_blk_sleep_cancel(void)
{
	__set_current_state(TASK_RUNNING);
}

bool vhost_blk_cond_resched(void)
{
	return cond_resched();
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
 * Bios are built, submitted and completed in Rust (ffi/bio.rs,
 * ffi/bio_list.rs). What it cannot reach: the zero page (a macro), the
 * values of two status macros with casts, and the debug knob below.
 */
static_assert(BLK_STS_AGAIN == 12 && BLK_STS_NOTSUPP == 1,
	      "mirrored by BLK_STS_AGAIN and BLK_STS_NOTSUPP in ffi/bio*.rs");

struct page *vhost_blk_zero_page(void)
{
	return ZERO_PAGE(0);
}

#ifdef CONFIG_KASAN
/*
 * Debug kernels only: a completion lingers this long after it has handed
 * its bio to the worker, then uses the list again (ffi/bio_list.rs). It
 * widens the window in which teardown could free the list or the worker's
 * wake-up target under a running completion, so that the teardown tests
 * would catch it.
 */
unsigned int vhost_blk_debug_completion_delay_ms;
module_param_named(debug_completion_delay_ms,
		   vhost_blk_debug_completion_delay_ms, uint, 0644);
MODULE_PARM_DESC(debug_completion_delay_ms,
		 "Debug kernels only: ms each bio completion busy-waits after waking the worker, to test teardown (default 0)");
#endif

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

/* The owner's block cgroup, charged for the bios a shared worker submits. */
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
 * Module parameters. The Rust side reads the variables (ffi/params.rs);
 * each is read once per use, so runtime changes apply from the next
 * scheduling turn or the next device. Documented in
 * Documentation/vhost-blk/admin-guide.rst. The kernel_param_ops of
 * unsigned parameter @name: a write outside @min..@max fails with -EINVAL.
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

unsigned int vhost_blk_poll_budget_us;
VHOST_BLK_UINT_PARAM_OPS(poll_budget_us, 0, 1000000);
module_param_cb(poll_budget_us, &poll_budget_us_ops, &vhost_blk_poll_budget_us, 0644);
__MODULE_PARM_TYPE(poll_budget_us, "uint");
MODULE_PARM_DESC(poll_budget_us,
		 "Microseconds a worker keeps polling idle queues, with guest notifications off, before it sleeps; 0 sleeps at once (default 0, max 1000000)");

unsigned int vhost_blk_queues_per_worker = 1;
VHOST_BLK_UINT_PARAM_OPS(queues_per_worker, 1, 1024);
module_param_cb(queues_per_worker, &queues_per_worker_ops, &vhost_blk_queues_per_worker,
		0644);
__MODULE_PARM_TYPE(queues_per_worker, "uint");
MODULE_PARM_DESC(queues_per_worker,
		 "Virtqueues a worker serves before another worker starts, up to max_workers; 1 gives each queue its own worker (default 1, 1-1024)");

unsigned int vhost_blk_max_workers;
VHOST_BLK_UINT_PARAM_OPS(max_workers, 0, 1024);
module_param_cb(max_workers, &max_workers_ops, &vhost_blk_max_workers, 0644);
__MODULE_PARM_TYPE(max_workers, "uint");
MODULE_PARM_DESC(max_workers,
		 "Most worker threads; beyond it queues share the least loaded worker; 0 is one per online CPU (default 0, max 1024)");

unsigned int vhost_blk_quota_reqs = 64;
VHOST_BLK_UINT_PARAM_OPS(quota_reqs, 1, 32768);
module_param_cb(quota_reqs, &quota_reqs_ops, &vhost_blk_quota_reqs, 0644);
__MODULE_PARM_TYPE(quota_reqs, "uint");
MODULE_PARM_DESC(quota_reqs,
		 "Requests a queue may start in one scheduling turn (default 64, 1-32768)");

unsigned int vhost_blk_quota_kib = 512;
VHOST_BLK_UINT_PARAM_OPS(quota_kib, 4, 1048576);
module_param_cb(quota_kib, &quota_kib_ops, &vhost_blk_quota_kib, 0644);
__MODULE_PARM_TYPE(quota_kib, "uint");
MODULE_PARM_DESC(quota_kib,
		 "KiB of data a queue may start in one scheduling turn (default 512, 4-1048576)");

/*
 * A turn that publishes between batches lets a driver waiting for an
 * interrupt get its first completions, and post new requests, while the
 * worker still serves the rest of the turn, instead of the two taking
 * turns; the price is more interrupts (core/sched.rs, publish_mid_turn).
 */
unsigned int vhost_blk_publish_batch = 8;
VHOST_BLK_UINT_PARAM_OPS(publish_batch, 0, 32768);
module_param_cb(publish_batch, &publish_batch_ops, &vhost_blk_publish_batch, 0644);
__MODULE_PARM_TYPE(publish_batch, "uint");
MODULE_PARM_DESC(publish_batch,
		 "Requests a queue's turn starts between two publications of completions (each with an interrupt if the guest wants one); 0 publishes once per turn (default 8, 0-32768)");

/*
 * worker_cpus: a cpulist; empty means no pinning. Its list and policy are
 * Rust's (worker_cpus.rs), used under vhost_blk_cpus_lock, which nests
 * inside CPU hotplug's lock and the pool's. No CPU comes or goes while
 * the list is written.
 */
static DEFINE_MUTEX(vhost_blk_cpus_lock);

void vhost_blk_worker_cpus_lock(void)
{
	mutex_lock(&vhost_blk_cpus_lock);
}

void vhost_blk_worker_cpus_unlock(void)
{
	mutex_unlock(&vhost_blk_cpus_lock);
}

static void vhost_blk_worker_cpus_recount(int leaving)
{
	mutex_lock(&vhost_blk_cpus_lock);
	vhost_blk_rs_worker_cpus_recount(leaving);
	mutex_unlock(&vhost_blk_cpus_lock);
}

static int worker_cpus_set(const char *val, const struct kernel_param *kp)
{
	int ret;

	cpus_read_lock();
	mutex_lock(&vhost_blk_cpus_lock);
	ret = vhost_blk_rs_worker_cpus_set(val);
	mutex_unlock(&vhost_blk_cpus_lock);
	cpus_read_unlock();
	return ret;
}

static int worker_cpus_get(char *buf, const struct kernel_param *kp)
{
	int ret;

	mutex_lock(&vhost_blk_cpus_lock);
	ret = vhost_blk_rs_worker_cpus_get(buf);
	mutex_unlock(&vhost_blk_cpus_lock);
	return ret;
}

/* For notices a semi-trusted caller can repeat at will. */
static DEFINE_RATELIMIT_STATE(vhost_blk_notice_rs, DEFAULT_RATELIMIT_INTERVAL,
			      DEFAULT_RATELIMIT_BURST);

bool vhost_blk_notice_ratelimit(void)
{
	return __ratelimit(&vhost_blk_notice_rs);
}

static const struct kernel_param_ops worker_cpus_ops = {
	.set = worker_cpus_set,
	.get = worker_cpus_get,
};

module_param_cb(worker_cpus, &worker_cpus_ops, NULL, 0644);
__MODULE_PARM_TYPE(worker_cpus, "cpulist");
MODULE_PARM_DESC(worker_cpus,
		 "CPUs to pin workers to, e.g. 2-3: worker n runs on the n-th CPU of the list, round robin; empty leaves placement to the scheduler, on the backing device's NUMA node where known (default empty)");

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
	vhost_blk_worker_cpus_recount(-1);
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
	vhost_blk_worker_cpus_recount(-1);
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
