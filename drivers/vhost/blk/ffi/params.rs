// SPDX-License-Identifier: GPL-2.0

//! The module's parameters.
//!
//! C header: [`include/linux/moduleparam.h`](srctree/include/linux/moduleparam.h).
//!
//! 6.12's `module!` macro has no `params:`, so the parameters are declared
//! with `module_param_cb` in `glue.c`, which also checks their ranges when
//! they are written. Each getter reads the current value once; callers
//! read a parameter when they need it, so runtime changes take effect at
//! the next scheduling turn or the next device. Documented in
//! `Documentation/vhost-blk/admin-guide.rst`.

use super::glue;
use crate::vcore::sched::Quota;

/// `poll_budget_us`, in nanoseconds: how long a worker polls idle queues
/// before it sleeps; 0 never polls.
pub(crate) fn poll_budget_ns() -> u64 {
    // SAFETY: reads an integer parameter; no preconditions.
    u64::from(unsafe { glue::vhost_blk_param_poll_budget_us() }) * 1000
}

/// `queues_per_worker`: queues a worker serves before another one starts.
pub(crate) fn queues_per_worker() -> u32 {
    // SAFETY: reads an integer parameter; no preconditions.
    unsafe { glue::vhost_blk_param_queues_per_worker() }
}

/// `max_workers`, with 0 resolved to the number of online CPUs.
pub(crate) fn max_workers() -> u32 {
    // SAFETY: reads an integer parameter; no preconditions.
    unsafe { glue::vhost_blk_param_max_workers() }
}

/// `quota_reqs` and `quota_kib`: what one queue may take in one turn.
pub(crate) fn quota() -> Quota {
    // SAFETY: reads integer parameters; no preconditions.
    let (requests, kib) = unsafe {
        (
            glue::vhost_blk_param_quota_reqs(),
            glue::vhost_blk_param_quota_kib(),
        )
    };
    Quota {
        requests,
        bytes: u64::from(kib) * 1024,
    }
}

/// `publish_batch`: requests a turn takes between two publications of its
/// completions; 0 publishes once per turn.
pub(crate) fn publish_batch() -> u32 {
    // SAFETY: reads an integer parameter; no preconditions.
    unsafe { glue::vhost_blk_param_publish_batch() }
}

/// The CPU worker `index` is pinned to under `worker_cpus`: one of its
/// CPUs that are online, round robin. `None` if the list is empty or none
/// of its CPUs is online (the worker then runs unpinned).
pub(crate) fn worker_cpu(index: u32) -> Option<u32> {
    // SAFETY: takes the parameter's mutex; process context.
    let cpu = unsafe { glue::vhost_blk_param_worker_cpu(index) };
    u32::try_from(cpu).ok()
}

/// How many CPUs `worker_cpus` pins workers to: those of its CPUs that are
/// online (kept up to date on CPU hotplug); 0 if it pins none.
pub(crate) fn worker_cpus_count() -> u32 {
    // SAFETY: reads an integer; takes no lock.
    unsafe { glue::vhost_blk_param_worker_cpus_weight() }
}

/// Whether `worker_cpus` pins new workers (it lists an online CPU).
pub(crate) fn worker_cpus_set() -> bool {
    worker_cpus_count() != 0
}
