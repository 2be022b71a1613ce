// SPDX-License-Identifier: GPL-2.0

//! Worker kthreads, their wake-ups, and borrowing the owner's mm.
//!
//! C header: [`include/linux/kthread.h`](srctree/include/linux/kthread.h).

use super::glue::{self, task_struct};
use super::mm::OwnerMm;
use core::ffi::{c_int, c_void};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use kernel::error::Error;
use kernel::prelude::*;

/// A running kthread.
///
/// A kthread stopped before it first runs never calls its function
/// (`kthread()` checks `KTHREAD_SHOULD_STOP` first), so whatever `data`
/// carries for the function would be lost. `kthread_stop` then returns
/// `-EINTR`, and the wrapper hands `data` to `reclaim` instead.
///
/// # Invariants
///
/// `task` is a kthread started by `kthread_run` that has not been stopped;
/// its function returns only once `kthread_should_stop()` is true, and
/// never returns `-EINTR`. `reclaim(data)` is safe to call once if the
/// function never ran.
pub(crate) struct Kthread {
    task: NonNull<task_struct>,
    data: *mut c_void,
    reclaim: unsafe fn(*mut c_void),
}

// SAFETY: kthread_stop and wake_up_process may be called from any thread.
unsafe impl Send for Kthread {}
// SAFETY: `&Kthread` only allows `wake_up_process`, which is thread-safe.
unsafe impl Sync for Kthread {}

impl Kthread {
    /// Starts `vhost-blk-<id>` running `f(data)`.
    ///
    /// # Safety
    ///
    /// `f` must be safe to call with `data` on the new thread, must return
    /// only once [`should_stop`] is true, and must never return `-EINTR`.
    /// `reclaim(data)` must be safe to call once, on any thread, if `f`
    /// never runs. If this fails, neither is called.
    pub(crate) unsafe fn run(
        f: unsafe extern "C" fn(*mut c_void) -> c_int,
        data: *mut c_void,
        reclaim: unsafe fn(*mut c_void),
        id: i32,
    ) -> Result<Self> {
        let mut err = 0;
        // SAFETY: `err` is valid for writes; the caller vouches for `f`.
        let task = unsafe { glue::vhost_blk_kthread_run(Some(f), data, id, &mut err) };
        match NonNull::new(task) {
            // INVARIANT: a started kthread whose function obeys kthread_stop,
            // with the caller's promises about `f` and `reclaim`.
            Some(task) => Ok(Self {
                task,
                data,
                reclaim,
            }),
            None => Err(Error::from_errno(err)),
        }
    }

    /// The task, for wake-ups.
    pub(crate) fn task(&self) -> *mut task_struct {
        self.task.as_ptr()
    }
}

impl Drop for Kthread {
    fn drop(&mut self) {
        // SAFETY: the task is a running kthread (type invariant) and is
        // stopped exactly once, here; this waits for its function to return.
        let ret = unsafe { glue::vhost_blk_kthread_stop(self.task.as_ptr()) };
        if ret == EINTR.to_errno() {
            // SAFETY: the function never ran (it never returns -EINTR, by
            // the type invariant), so `data` was never consumed.
            unsafe { (self.reclaim)(self.data) };
        }
    }
}

/// Whether the current kthread was asked to stop.
pub(crate) fn should_stop() -> bool {
    // SAFETY: no preconditions; called from a kthread's function.
    unsafe { glue::vhost_blk_kthread_should_stop() }
}

/// Sleeps unless `pending()` holds or the kthread must stop, without losing
/// a wake-up that races with the check.
pub(crate) fn sleep_unless(pending: impl Fn() -> bool) {
    // SAFETY: setting the current task's state has no preconditions.
    unsafe { glue::vhost_blk_sleep_prepare() };
    if !pending() && !should_stop() {
        // SAFETY: scheduling away is allowed here: process context, no
        // spinlocks held.
        unsafe { glue::vhost_blk_sleep() };
    }
    // SAFETY: no preconditions.
    unsafe { glue::vhost_blk_sleep_cancel() };
}

/// Yields the CPU if a reschedule is due.
pub(crate) fn cond_resched() {
    // SAFETY: process context with no spinlocks held (callers' contract).
    unsafe { glue::vhost_blk_cond_resched() };
}

/// The owner's mm, adopted by the current kthread for as long as this
/// guard lives (`kthread_use_mm`), so that user copies and pinning reach
/// the owner's address space.
///
/// # Invariants
///
/// The current kthread uses `mm` until the guard is dropped.
pub(crate) struct MmUse<'a> {
    mm: &'a OwnerMm,
}

impl<'a> MmUse<'a> {
    /// Adopts `mm`.
    ///
    /// # Safety
    ///
    /// Must be called from a kthread that uses no other mm, and the guard
    /// must be dropped on that same kthread.
    pub(crate) unsafe fn new(mm: &'a OwnerMm) -> Self {
        // SAFETY: the caller guarantees a kthread without an mm; `mm` holds
        // a reference, so the mm is live.
        unsafe { glue::vhost_blk_use_mm(mm.as_ptr()) };
        // INVARIANT: adopted above.
        Self { mm }
    }
}

impl Drop for MmUse<'_> {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the kthread uses this mm.
        unsafe { glue::vhost_blk_unuse_mm(self.mm.as_ptr()) };
    }
}

/// Wakes a device's worker: one pending bit per virtqueue, set from any
/// context (kick wake-ups run under the eventfd's wait-queue lock).
///
/// # Invariants
///
/// `task` is null or a live kthread task: it is set when the worker
/// starts and cleared before the worker is stopped, after every source of
/// wake-ups (kick polls, in-flight bios) is gone.
pub(crate) struct Waker {
    pending: AtomicU32,
    task: AtomicPtr<task_struct>,
}

impl Waker {
    /// A waker with no worker.
    pub(crate) const fn new() -> Self {
        Self {
            pending: AtomicU32::new(0),
            task: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// Points wake-ups at `worker` (or nowhere).
    ///
    /// # Safety
    ///
    /// The task must stay alive until the waker is pointed elsewhere, and
    /// it may be pointed elsewhere only when no wake-up can run.
    pub(crate) unsafe fn set_task(&self, task: *mut task_struct) {
        // INVARIANT: the caller guarantees the lifetime rules.
        self.task.store(task, Ordering::Release);
    }

    /// Marks queue `q` pending and wakes the worker. Never sleeps.
    pub(crate) fn kick(&self, q: u32) {
        self.pending.fetch_or(1 << (q % 32), Ordering::AcqRel);
        self.wake();
    }

    /// Marks queue `q` pending without a wake-up (from the worker itself).
    pub(crate) fn kick_quiet(&self, q: u32) {
        self.pending.fetch_or(1 << (q % 32), Ordering::AcqRel);
    }

    /// Wakes the worker. Never sleeps.
    pub(crate) fn wake(&self) {
        let task = self.task.load(Ordering::Acquire);
        if !task.is_null() {
            // SAFETY: by the type invariant a non-null task is alive.
            unsafe { glue::vhost_blk_wake(task) };
        }
    }

    /// Takes the pending bits.
    pub(crate) fn take(&self) -> u32 {
        self.pending.swap(0, Ordering::AcqRel)
    }

    /// Whether any queue is pending.
    pub(crate) fn any(&self) -> bool {
        self.pending.load(Ordering::Acquire) != 0
    }
}
