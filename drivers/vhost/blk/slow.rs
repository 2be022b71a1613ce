// SPDX-License-Identifier: GPL-2.0

//! A device's slow path: the work that may have to wait on its owner,
//! done on a thread of the owner.
//!
//! The shared workers never wait on an owner (`vq.rs`): a page of guest
//! memory that is not present, or a device with no room for a bio, stalls
//! only the queue concerned, and its worker goes on with the others. The
//! device's slow path, a `vhost_task` of the VMM created by
//! `VHOST_SET_OWNER` (so its time counts to the VMM, in the VMM's
//! cgroups), faults the memory in or submits the bio, waiting as long as
//! that takes, and hands the queue back to its worker. It dies with the
//! VMM; the device stops it when it is reset or closed (a stop waits for
//! what it is doing: a fault on the owner's memory ends when the owner
//! resolves it or is killed, a submission when the device has room).

use crate::ffi::task::{TaskWaker, TaskWork, VhostTask};
use crate::queue::Queue;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::fmt;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::Arc;

/// What the slow path serves: the queues of one device.
pub(crate) struct SlowPath {
    queues: KVec<Arc<Queue>>,
    /// The device is stopping it: take nothing more.
    stopping: AtomicBool,
}

impl TaskWork for SlowPath {
    fn run(&self) {
        for q in self.queues.iter() {
            q.run_slow_path(&self.stopping);
        }
    }

    fn killed(&self) {
        // The owner is exiting; its file's release stops the queues and
        // lets go of what waited here.
    }
}

/// A device's running slow path.
pub(crate) struct SlowThread {
    task: VhostTask<SlowPath>,
}

impl SlowThread {
    /// Starts the slow path of device `id` serving `queues`, as a thread
    /// of the calling process (the owner).
    pub(crate) fn start(id: u32, queues: &[Arc<Queue>]) -> Result<Self> {
        let mut list = KVec::with_capacity(queues.len(), GFP_KERNEL)?;
        for q in queues {
            list.push(q.clone(), GFP_KERNEL)?;
        }
        let name = CString::try_from_fmt(fmt!("vhost-blk-s{id}"))?;
        let work = SlowPath {
            queues: list,
            stopping: AtomicBool::new(false),
        };
        let task = VhostTask::start(work, &name)?;
        Ok(Self { task })
    }

    /// What the queues kick it with.
    pub(crate) fn waker(&self) -> Arc<TaskWaker> {
        self.task.waker()
    }
}

impl Drop for SlowThread {
    fn drop(&mut self) {
        // Whatever it has not taken stays with the queues; what it is
        // doing, it finishes.
        self.task.work().stopping.store(true, Ordering::Release);
    }
}
