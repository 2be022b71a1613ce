// SPDX-License-Identifier: GPL-2.0

//! The FFI layer: owning wrappers around the C objects vhost-blk uses.
//! It knows nothing of the driver: the C glue's calls into the driver
//! land in `entry.rs`, through data lent by the registrations here
//! ([`lent::LentArc`]), or in a trait the driver implements (a kick
//! poll's [`poll::Kicked`]).

pub(crate) mod bdev;
pub(crate) mod bio;
pub(crate) mod cgroup;
pub(crate) mod debugfs;
pub(crate) mod eventfd;
pub(crate) mod lent;
pub(crate) mod misc;
pub(crate) mod mm;
pub(crate) mod module;
pub(crate) mod params;
pub(crate) mod poll;
pub(crate) mod seq;
pub(crate) mod task;
pub(crate) mod uaccess;
pub(crate) mod wake;
pub(crate) mod worker;

/// Functions implemented in `glue.c` (prototypes in `glue.h`).
pub(crate) mod glue {
    use super::bdev::BdevInfo;
    use core::ffi::{c_char, c_int, c_uint, c_ulong, c_void};

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
        bio,
        cgroup_subsys_state,
        eventfd_ctx,
        file,
        mm_struct,
        seq_file,
        task_struct,
        vhost_blk_bio_list,
        vhost_blk_poll,
        vhost_blk_wake,
        vhost_task
    );

    extern "C" {
        pub(super) fn vhost_blk_misc_register(data: *mut c_void) -> c_int;
        pub(super) fn vhost_blk_misc_deregister();
        pub(super) fn vhost_blk_mm_get_current() -> *mut mm_struct;
        pub(super) fn vhost_blk_mm_put(mm: *mut mm_struct);
        pub(super) fn vhost_blk_mm_is_current(mm: *const mm_struct) -> bool;
        pub(super) fn vhost_blk_eventfd_get(fd: c_int) -> *mut eventfd_ctx;
        pub(super) fn vhost_blk_eventfd_signal(ctx: *mut eventfd_ctx);
        pub(super) fn vhost_blk_eventfd_put(ctx: *mut eventfd_ctx);
        pub(super) fn vhost_blk_bdev_fget(fd: c_int, info: *mut BdevInfo) -> *mut file;
        pub(super) fn vhost_blk_fput(file: *mut file);
        pub(super) fn vhost_blk_bioset_init() -> c_int;
        pub(super) fn vhost_blk_bioset_exit();
        pub(super) fn vhost_blk_kthread_run(
            f: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
            data: *mut c_void,
            id: c_int,
            cpu: c_int,
        ) -> *mut task_struct;
        pub(super) fn vhost_blk_kthread_stop(task: *mut task_struct) -> c_int;
        pub(super) fn vhost_blk_kthread_pin(task: *mut task_struct, cpu: c_int) -> c_int;
        pub(super) fn vhost_blk_kthread_should_stop() -> bool;
        pub(super) fn vhost_blk_kthread_follow_bdev(
            task: *mut task_struct,
            bdev_file: *mut file,
        ) -> c_int;
        pub(super) fn vhost_blk_task_pid(task: *mut task_struct) -> c_int;
        pub(super) fn vhost_blk_task_cpus(
            task: *mut task_struct,
            buf: *mut c_char,
            len: usize,
        ) -> c_int;
        pub(super) fn vhost_blk_now_ns() -> u64;
        pub(super) fn vhost_blk_wake_new() -> *mut vhost_blk_wake;
        pub(super) fn vhost_blk_wake_get(wake: *mut vhost_blk_wake);
        pub(super) fn vhost_blk_wake_put(wake: *mut vhost_blk_wake);
        pub(super) fn vhost_blk_wake_set_task(wake: *mut vhost_blk_wake, task: *mut task_struct);
        pub(super) fn vhost_blk_wake_signal(wake: *mut vhost_blk_wake);
        pub(super) fn vhost_blk_wake_take(wake: *mut vhost_blk_wake) -> bool;
        pub(super) fn vhost_blk_wake_pending(wake: *mut vhost_blk_wake) -> bool;
        pub(super) fn vhost_blk_wake_waiting_add(wake: *mut vhost_blk_wake, delta: c_int);
        pub(super) fn vhost_blk_wake_waiting(wake: *mut vhost_blk_wake) -> c_int;
        pub(super) fn vhost_blk_rcu_read_lock();
        pub(super) fn vhost_blk_rcu_read_unlock();
        pub(super) fn vhost_blk_sleep_prepare();
        pub(super) fn vhost_blk_sleep();
        pub(super) fn vhost_blk_sleep_cancel();
        pub(super) fn vhost_blk_cond_resched() -> bool;
        pub(super) fn vhost_blk_online_cpus() -> core::ffi::c_uint;
        pub(super) fn vhost_blk_use_mm(mm: *mut mm_struct);
        pub(super) fn vhost_blk_unuse_mm(mm: *mut mm_struct);
        pub(super) fn vhost_blk_poll_start(
            fd: c_int,
            kick: Option<unsafe extern "C" fn(*mut c_void)>,
            data: *mut c_void,
        ) -> *mut vhost_blk_poll;
        pub(super) fn vhost_blk_poll_stop(poll: *mut vhost_blk_poll);
        pub(super) fn vhost_blk_bio_list_new() -> *mut vhost_blk_bio_list;
        pub(super) fn vhost_blk_bio_list_set_wake(
            list: *mut vhost_blk_bio_list,
            wake: *mut vhost_blk_wake,
        );
        pub(super) fn vhost_blk_bio_list_empty(list: *mut vhost_blk_bio_list) -> bool;
        pub(super) fn vhost_blk_bio_list_free(list: *mut vhost_blk_bio_list);
        pub(super) fn vhost_blk_bio_list_take(list: *mut vhost_blk_bio_list) -> *mut bio;
        pub(super) fn vhost_blk_bio_list_bounced(list: *mut vhost_blk_bio_list) -> bool;
        pub(super) fn vhost_blk_rcu_barrier();
        pub(super) fn vhost_blk_bio_alloc(args: *const super::bio::BioArgs) -> *mut bio;
        pub(super) fn vhost_blk_bio_add_user(
            bio: *mut bio,
            uaddr: c_ulong,
            len: c_uint,
            device_writes: bool,
        ) -> c_int;
        pub(super) fn vhost_blk_bio_add_zeroes(bio: *mut bio, len: c_uint) -> c_uint;
        pub(super) fn vhost_blk_bio_submit(bio: *mut bio);
        pub(super) fn vhost_blk_bio_rearm(bio: *mut bio, nowait: bool);
        pub(super) fn vhost_blk_bio_bounce(bio: *mut bio) -> c_uint;
        pub(super) fn vhost_blk_bio_nowait_retries(bio: *mut bio) -> c_uint;
        pub(super) fn vhost_blk_bio_next(bio: *mut bio) -> *mut bio;
        pub(super) fn vhost_blk_bio_set_next(bio: *mut bio, next: *mut bio);
        pub(super) fn vhost_blk_get_user_le16(uaddr: *const c_void, val: *mut u16) -> c_int;
        pub(super) fn vhost_blk_put_user_le16(uaddr: *mut c_void, val: u16) -> c_int;
        pub(super) fn vhost_blk_bio_token(bio: *mut bio) -> c_ulong;
        pub(super) fn vhost_blk_bio_kind(bio: *mut bio) -> c_uint;
        pub(super) fn vhost_blk_bio_range(bio: *mut bio, sector: *mut u64, bytes: *mut u32);
        pub(super) fn vhost_blk_bio_advance_range(bio: *mut bio, bytes: u32);
        pub(super) fn vhost_blk_bio_errno(bio: *mut bio) -> c_int;
        pub(super) fn vhost_blk_bio_release(bio: *mut bio, dirty: bool);
        pub(super) fn vhost_blk_task_hold(task: *mut task_struct);
        pub(super) fn vhost_blk_task_release(task: *mut task_struct);
        pub(super) fn vhost_blk_task_wake(task: *mut task_struct);
        pub(super) fn vhost_blk_current() -> *mut task_struct;
        pub(super) fn vhost_blk_module_get();
        pub(super) fn vhost_blk_module_put();
        pub(super) fn vhost_blk_blkcg_get_current() -> *mut cgroup_subsys_state;
        pub(super) fn vhost_blk_blkcg_put(css: *mut cgroup_subsys_state);
        pub(super) fn vhost_blk_param_poll_budget_us() -> u32;
        pub(super) fn vhost_blk_param_queues_per_worker() -> u32;
        pub(super) fn vhost_blk_param_max_workers() -> u32;
        pub(super) fn vhost_blk_param_quota_reqs() -> u32;
        pub(super) fn vhost_blk_param_publish_batch() -> u32;
        pub(super) fn vhost_blk_param_quota_kib() -> u32;
        pub(super) fn vhost_blk_param_worker_cpus_weight() -> u32;
        pub(super) fn vhost_blk_param_worker_cpu(index: u32) -> c_int;
        pub(super) fn vhost_blk_cpuhp_register(data: *mut c_void) -> c_int;
        pub(super) fn vhost_blk_cpuhp_unregister(state: c_int);
        pub(super) fn vhost_blk_reap_register(data: *mut c_void);
        pub(super) fn vhost_blk_reap_schedule();
        pub(super) fn vhost_blk_reap_unregister();
        pub(super) fn vhost_blk_debugfs_init(data: *mut c_void);
        pub(super) fn vhost_blk_debugfs_exit();
        pub(super) fn vhost_blk_seq_write(m: *mut seq_file, s: *const c_char, len: usize);

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
