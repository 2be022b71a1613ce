// SPDX-License-Identifier: GPL-2.0

//! Threads of the owner: `vhost_task`s.
//!
//! C header: [`include/linux/sched/vhost_task.h`](srctree/include/linux/sched/vhost_task.h).
//!
//! A `vhost_task` is a thread of the process that creates it (the VMM,
//! in its ioctl): it shares the process's address space, counts in its
//! cgroups and limits, and dies with it. vhost-blk gives each device one,
//! its slow path, for the work that may wait on the owner: faulting in
//! guest memory, submitting to a device that has no room.

use super::glue::{self, task_struct, vhost_task};
use core::ffi::c_void;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::Arc;
use kernel::types::ForeignOwnable;

/// What a [`VhostTask`] runs.
pub(crate) trait TaskWork: Send + Sync + 'static {
    /// Does what is pending: called on the thread after a
    /// [`TaskWaker::kick`]. Runs in process context on the owner's
    /// thread, and may sleep.
    fn run(&self);
    /// The owner was killed: the thread is exiting and will not call
    /// [`TaskWork::run`] again.
    fn killed(&self);
}

/// Kicks a [`VhostTask`] from anywhere: marks work pending and wakes the
/// thread. Never sleeps.
///
/// # Invariants
///
/// `task` is null or a task on which this value holds a reference.
pub(crate) struct TaskWaker {
    task: AtomicPtr<task_struct>,
    pending: AtomicBool,
}

// SAFETY: the pointer is only used to wake the task, from any thread.
unsafe impl Send for TaskWaker {}
// SAFETY: as above; the fields are atomics.
unsafe impl Sync for TaskWaker {}

impl TaskWaker {
    /// Asks the thread to run its work soon.
    pub(crate) fn kick(&self) {
        self.pending.store(true, Ordering::SeqCst);
        let task = self.task.load(Ordering::Acquire);
        if !task.is_null() {
            // SAFETY: a task this value holds a reference on (type
            // invariant); waking one that has exited does nothing.
            unsafe { kernel::bindings::wake_up_process(task.cast()) };
        }
    }

    /// Records the calling thread, once, with a reference on it.
    fn set_current(&self) {
        if !self.task.load(Ordering::Acquire).is_null() {
            return;
        }
        // SAFETY: no preconditions.
        let me = unsafe { kernel::bindings::get_current() }.cast::<task_struct>();
        // SAFETY: `me` is the live current task.
        unsafe { kernel::bindings::get_task_struct(me.cast()) };
        // INVARIANT: the reference taken above is kept if the pointer is
        // stored; this is the only thread that stores it.
        self.task.store(me, Ordering::Release);
    }
}

impl Drop for TaskWaker {
    fn drop(&mut self) {
        let task = *self.task.get_mut();
        if !task.is_null() {
            // SAFETY: the reference this value holds (type invariant).
            unsafe { kernel::bindings::put_task_struct(task.cast()) };
        }
    }
}

/// What the thread shares with its handle.
struct Shared<T> {
    work: T,
    waker: Arc<TaskWaker>,
}

/// A running `vhost_task`.
///
/// # Invariants
///
/// `vtsk` is a started `vhost_task` that has not been stopped, whose
/// argument is `arg`, one reference of `shared` (from `into_foreign`),
/// taken back when it is stopped.
pub(crate) struct VhostTask<T: TaskWork> {
    vtsk: NonNull<vhost_task>,
    shared: Arc<Shared<T>>,
    /// The task's argument: `shared`, from `into_foreign`.
    arg: *const c_void,
}

// SAFETY: the task may be kicked and stopped from any thread.
unsafe impl<T: TaskWork> Send for VhostTask<T> {}
// SAFETY: `&VhostTask` allows kicking and reading the work, both safe to
// do concurrently.
unsafe impl<T: TaskWork> Sync for VhostTask<T> {}

impl<T: TaskWork> VhostTask<T> {
    /// Starts a thread of the calling process, named `name`, running
    /// `work` whenever it is kicked.
    pub(crate) fn start(work: T, name: &CStr) -> Result<Self> {
        let waker = Arc::new(
            TaskWaker {
                task: AtomicPtr::new(core::ptr::null_mut()),
                pending: AtomicBool::new(false),
            },
            GFP_KERNEL,
        )?;
        let shared = Arc::new(Shared { work, waker }, GFP_KERNEL)?;
        let arg = shared.clone().into_foreign();
        // SAFETY: the functions are valid for `arg`, a reference of
        // `Arc<Shared<T>>` that outlives the task (taken back in `drop`,
        // after the task is stopped, or below if it is never created);
        // `name` is a NUL-terminated string, copied by the callee.
        let vtsk = unsafe {
            glue::vhost_task_create(
                Some(task_fn::<T>),
                Some(task_killed::<T>),
                arg.cast_mut(),
                name.as_char_ptr().cast(),
            )
        };
        let vtsk = match kernel::error::from_err_ptr(vtsk).map(NonNull::new) {
            Ok(Some(vtsk)) => vtsk,
            r => {
                // SAFETY: no task was created, so nothing else uses `arg`.
                drop(unsafe { <Arc<Shared<T>> as ForeignOwnable>::from_foreign(arg) });
                return Err(r.err().unwrap_or(ENOMEM));
            }
        };
        // SAFETY: created above and not started yet.
        unsafe { glue::vhost_task_start(vtsk.as_ptr()) };
        // INVARIANT: started, with `arg` from `shared`.
        Ok(Self { vtsk, shared, arg })
    }

    /// The work the thread runs.
    pub(crate) fn work(&self) -> &T {
        &self.shared.work
    }

    /// What kicks the thread, for those who have no handle.
    pub(crate) fn waker(&self) -> Arc<TaskWaker> {
        self.shared.waker.clone()
    }
}

impl<T: TaskWork> Drop for VhostTask<T> {
    fn drop(&mut self) {
        // SAFETY: started and not yet stopped (type invariant); this
        // waits for the thread to leave `task_fn` for good: for as long as
        // the work it is doing takes (a fault on the owner's memory ends
        // when the owner resolves it or is killed).
        unsafe { glue::vhost_task_stop(self.vtsk.as_ptr()) };
        // SAFETY: the reference passed as the task's argument, which no
        // thread uses any more; taken back once.
        drop(unsafe { <Arc<Shared<T>> as ForeignOwnable>::from_foreign(self.arg) });
    }
}

/// The thread's function, called in a loop until the task stops.
///
/// # Safety
///
/// `data` must be the argument of a live [`VhostTask<T>`].
unsafe extern "C" fn task_fn<T: TaskWork>(data: *mut c_void) -> bool {
    // SAFETY: the caller guarantees `data`, which the handle keeps alive
    // until the task has stopped.
    let shared = unsafe { <Arc<Shared<T>> as ForeignOwnable>::borrow(data) };
    shared.waker.set_current();
    // Called with the task state set for sleeping, so that a kick after
    // this check is not lost: the thread then does not sleep.
    if !shared.waker.pending.swap(false, Ordering::SeqCst) {
        return false;
    }
    // SAFETY: no preconditions.
    unsafe { glue::vhost_blk_sleep_cancel() };
    shared.work.run();
    true
}

/// The task's handler for the owner being killed.
///
/// # Safety
///
/// As for [`task_fn`].
unsafe extern "C" fn task_killed<T: TaskWork>(data: *mut c_void) {
    // SAFETY: as in `task_fn`.
    let shared = unsafe { <Arc<Shared<T>> as ForeignOwnable>::borrow(data) };
    shared.work.killed();
}
