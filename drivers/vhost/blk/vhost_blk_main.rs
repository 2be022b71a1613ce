// SPDX-License-Identifier: GPL-2.0

//! vhost-blk: an in-kernel virtio-blk backend.
//!
//! `/dev/vhost-blk` speaks the vhost ioctls of `include/uapi/linux/vhost.h`
//! and the vhost-blk ioctls of `include/uapi/linux/vhost_blk.h`. See
//! `Documentation/vhost-blk/` for the design.
//!
//! The crate is layered: `vcore` is pure, `unsafe`-free logic shared with
//! the host-side cargo build; `ffi` holds owning wrappers of C objects and
//! knows nothing of the driver; the device (`dev`, `queue`, `waker`, `vq`,
//! `slow`) and the shared workers (`worker`) are built on both, without
//! `unsafe`; `entry` holds the functions the C glue calls into the driver.

use kernel::prelude::*;

#[forbid(unsafe_code)]
mod dev;
mod entry;
mod ffi;
#[forbid(unsafe_code)]
mod queue;
#[forbid(unsafe_code)]
mod slow;
#[forbid(unsafe_code)]
mod vq;
#[forbid(unsafe_code)]
mod waker;
#[forbid(unsafe_code)]
mod worker;
#[forbid(unsafe_code)]
mod worker_cpus;
// The core is a library shared with the cargo build, where its items are
// `pub` API used by the host tests and the harness; not all of it is used
// by the module itself.
#[forbid(unsafe_code)]
#[allow(unreachable_pub, dead_code)]
#[path = "core/mod.rs"]
mod vcore;

module! {
    type: VhostBlkModule,
    name: "vhost_blk",
    author: "The vhost-blk developers",
    description: "In-kernel virtio-blk backend (vhost-blk)",
    license: "GPL",
}

// Fields drop in order: the device node and the statistics file go
// before the bioset the devices allocate from (open devices pin the
// module, so none is left, and with them no worker).
struct VhostBlkModule {
    _misc: entry::Misc,
    _cpu_online: entry::CpuOnline,
    _reap: entry::Reap,
    _stats: entry::Stats,
    // After everything that holds workers.
    _leaks: worker::LeakCheck,
    _bioset: ffi::bio::BioSet,
    // Last: waits for the grace periods after which completions' lists
    // and wake-up targets are freed.
    _rcu: ffi::rcu::RcuBarrier,
}

impl kernel::Module for VhostBlkModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let bioset = ffi::bio::BioSet::init()?;
        let pool = queue::Pool::new()?;
        let stats = entry::register_stats(pool.clone());
        let cpu_online = entry::register_cpu_online(pool.clone())?;
        let reap = entry::register_reap(pool.clone());
        let misc = entry::register_misc(pool)?;
        pr_info!("registered /dev/vhost-blk\n");
        Ok(Self {
            _misc: misc,
            _cpu_online: cpu_online,
            _reap: reap,
            _stats: stats,
            _leaks: worker::LeakCheck,
            _bioset: bioset,
            _rcu: ffi::rcu::RcuBarrier,
        })
    }
}
