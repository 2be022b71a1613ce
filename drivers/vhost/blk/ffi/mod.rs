// SPDX-License-Identifier: GPL-2.0

//! The FFI layer: owning wrappers around the C objects vhost-blk uses.
//! It knows nothing of the driver: the C glue's calls into the driver
//! land in `entry.rs`, through data lent by the registrations here
//! ([`lent::LentArc`]), or in a trait the driver implements (a kick
//! poll's [`poll::Kicked`]).

pub(crate) mod bdev;
pub(crate) mod bio;
pub(crate) mod bio_list;
pub(crate) mod cgroup;
pub(crate) mod cpumask;
pub(crate) mod debugfs;
pub(crate) mod eventfd;
pub(crate) mod lent;
pub(crate) mod misc;
pub(crate) mod mm;
pub(crate) mod module;
pub(crate) mod params;
pub(crate) mod poll;
pub(crate) mod rcu;
pub(crate) mod seq;
pub(crate) mod task;
pub(crate) mod uaccess;
pub(crate) mod wake;
pub(crate) mod worker;

/// Whether a notice may be printed now (the module's own rate limit):
/// for notices a semi-trusted caller can repeat at will.
pub(crate) fn notice_ratelimit() -> bool {
    // SAFETY: no preconditions.
    unsafe { glue::vhost_blk_notice_ratelimit() }
}

/// Functions implemented in `glue.c` (prototypes in `glue.h`).
pub(crate) mod glue {
    use super::bdev::BdevInfo;
    use core::ffi::{c_char, c_int, c_uint, c_void};

    /// Declares opaque stand-ins for C structs only handled by pointer.
    macro_rules! opaque {
        ($($name:ident),*) => {$(
            #[repr(C)]
            pub(crate) struct $name {
                _data: [u8; 0],
                _marker: core::marker::PhantomData<(*mut u8, core::marker::PhantomPinned)>,
            }
        )*};
    }
    opaque!(
        cgroup_subsys_state,
        file,
        seq_file,
        task_struct,
        vhost_blk_poll,
        vhost_task
    );

    extern "C" {
        pub(super) fn vhost_blk_misc_register(data: *mut c_void) -> c_int;
        pub(super) fn vhost_blk_misc_deregister();
        pub(super) fn vhost_blk_bdev_fget(fd: c_int, info: *mut BdevInfo) -> *mut file;
        pub(super) fn vhost_blk_bdev_nr_sectors(bdev_file: *mut file) -> u64;
        pub(super) fn vhost_blk_kthread_follow_bdev(
            task: *mut task_struct,
            bdev_file: *mut file,
        ) -> c_int;
        pub(super) fn vhost_blk_rcu_read_lock();
        pub(super) fn vhost_blk_rcu_read_unlock();
        pub(super) fn vhost_blk_sleep_prepare();
        pub(super) fn vhost_blk_sleep_cancel();
        pub(super) fn vhost_blk_cond_resched() -> bool;
        pub(super) fn vhost_blk_poll_start(
            fd: c_int,
            kick: Option<unsafe extern "C" fn(*mut c_void)>,
            data: *mut c_void,
        ) -> *mut vhost_blk_poll;
        pub(super) fn vhost_blk_poll_stop(poll: *mut vhost_blk_poll);
        pub(super) fn vhost_blk_zero_page() -> *mut c_void;
        #[cfg(CONFIG_KASAN)]
        pub(super) static mut vhost_blk_debug_completion_delay_ms: c_uint;
        pub(super) fn vhost_blk_current_mm() -> *mut c_void;
        pub(super) fn vhost_blk_task_cpus(
            task: *mut task_struct,
            buf: *mut c_char,
            len: usize,
        ) -> c_int;
        pub(super) fn vhost_blk_get_user_le16(uaddr: *const c_void, val: *mut u16) -> c_int;
        pub(super) fn vhost_blk_put_user_le16(uaddr: *mut c_void, val: u16) -> c_int;
        pub(super) fn vhost_blk_blkcg_get_current() -> *mut cgroup_subsys_state;
        pub(super) fn vhost_blk_blkcg_put(css: *mut cgroup_subsys_state);
        pub(super) fn vhost_blk_worker_cpus_lock();
        pub(super) fn vhost_blk_worker_cpus_unlock();
        pub(super) fn vhost_blk_notice_ratelimit() -> bool;
        pub(super) static mut vhost_blk_poll_budget_us: c_uint;
        pub(super) static mut vhost_blk_queues_per_worker: c_uint;
        pub(super) static mut vhost_blk_max_workers: c_uint;
        pub(super) static mut vhost_blk_quota_reqs: c_uint;
        pub(super) static mut vhost_blk_quota_kib: c_uint;
        pub(super) static mut vhost_blk_publish_batch: c_uint;
        pub(super) fn vhost_blk_cpuhp_register(data: *mut c_void) -> c_int;
        pub(super) fn vhost_blk_cpuhp_unregister(state: c_int);
        pub(super) fn vhost_blk_reap_register(data: *mut c_void);
        pub(super) fn vhost_blk_reap_schedule();
        pub(super) fn vhost_blk_reap_unregister();
        pub(super) fn vhost_blk_debugfs_init(data: *mut c_void);
        pub(super) fn vhost_blk_debugfs_exit();

        // `include/linux/sched/vhost_task.h`, exported by the kernel.
        pub(super) fn vhost_task_create(
            f: Option<unsafe extern "C" fn(*mut c_void) -> bool>,
            handle_sigkill: Option<unsafe extern "C" fn(*mut c_void)>,
            arg: *mut c_void,
            name: *const c_char,
        ) -> *mut vhost_task;
        pub(super) fn vhost_task_start(vtsk: *mut vhost_task);
        pub(super) fn vhost_task_stop(vtsk: *mut vhost_task);
    }
}
