// SPDX-License-Identifier: GPL-2.0

//! What wakes a worker kthread, and the pointers to it that wake-ups read
//! from any context.
//!
//! C header: [`include/linux/rcupdate.h`](srctree/include/linux/rcupdate.h).

use super::glue::{self, vhost_blk_wake};
use super::worker::Kthread;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::prelude::*;

/// A worker's wake-up target: a pending flag set from any context (kick
/// wake-ups, bio completions), the worker's task, and a count of the
/// worker's queues that wait for their turn.
///
/// One reference of a counted C object. Its last reference goes after an
/// RCU grace period, so a wake-up that found it through a [`WakeSlot`] or
/// a [`super::bio::BioList`] under `rcu_read_lock()` may still use it after
/// the pointer changed.
///
/// # Invariants
///
/// `wake` is a live `struct vhost_blk_wake` whose task is null or a live
/// kthread (see [`WakeTarget::set_task`]), and the value owns one
/// reference of it.
pub(crate) struct WakeTarget {
    wake: NonNull<vhost_blk_wake>,
}

// SAFETY: the C object is reference-counted and its fields are atomic;
// wake-ups may come from any thread.
unsafe impl Send for WakeTarget {}
// SAFETY: as above.
unsafe impl Sync for WakeTarget {}

impl WakeTarget {
    /// A target with no task yet.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: no preconditions.
        let wake = unsafe { glue::vhost_blk_wake_new() };
        // INVARIANT: a fresh, zeroed object whose one reference is ours.
        NonNull::new(wake).map(|wake| Self { wake }).ok_or(ENOMEM)
    }

    /// Points wake-ups at `thread`, holding a reference on its task until
    /// the target is freed. Only the first call counts.
    pub(crate) fn set_task(&self, thread: &Kthread) {
        // SAFETY: live (type invariant); the task is alive while `thread`
        // is, and the target takes its own reference on it.
        unsafe { glue::vhost_blk_wake_set_task(self.wake.as_ptr(), thread.task()) };
    }

    /// Clears the pending flag; returns whether it was set.
    pub(crate) fn take(&self) -> bool {
        // SAFETY: live (type invariant).
        unsafe { glue::vhost_blk_wake_take(self.wake.as_ptr()) }
    }

    /// Whether work is pending.
    pub(crate) fn pending(&self) -> bool {
        // SAFETY: live (type invariant).
        unsafe { glue::vhost_blk_wake_pending(self.wake.as_ptr()) }
    }

    /// The C object, for bio lists (which take a reference of their own).
    pub(crate) fn as_ptr(&self) -> *mut vhost_blk_wake {
        self.wake.as_ptr()
    }
}

impl Clone for WakeTarget {
    fn clone(&self) -> Self {
        // SAFETY: live (type invariant): one more reference.
        unsafe { glue::vhost_blk_wake_get(self.wake.as_ptr()) };
        // INVARIANT: the new value owns the reference just taken.
        Self { wake: self.wake }
    }
}

impl Drop for WakeTarget {
    fn drop(&mut self) {
        // SAFETY: the value owns a reference (type invariant: views are
        // never dropped); the object is freed after a grace period if it
        // was the last.
        unsafe { glue::vhost_blk_wake_put(self.wake.as_ptr()) };
    }
}

/// A wake target as a wake-up finds it through a [`WakeSlot`]: it can
/// signal and count, but not be kept (it holds no reference).
///
/// # Invariants
///
/// `wake` is a live `struct vhost_blk_wake` for `'a`: read from a
/// [`WakeSlot`] inside an RCU read-side section that lasts for `'a` and
/// began while the slot held its reference.
pub(crate) struct WakeRef<'a> {
    wake: NonNull<vhost_blk_wake>,
    _life: PhantomData<&'a WakeTarget>,
}

impl WakeRef<'_> {
    /// Marks work pending and wakes the task. Never sleeps.
    pub(crate) fn signal(&self) {
        // SAFETY: live (type invariant), with a live or null task.
        unsafe { glue::vhost_blk_wake_signal(self.wake.as_ptr()) };
    }

    /// Adds `delta` to the count of queues waiting for their turn. The
    /// count is a hint: read and written without ordering.
    pub(crate) fn waiting_add(&self, delta: i32) {
        // SAFETY: live (type invariant).
        unsafe { glue::vhost_blk_wake_waiting_add(self.wake.as_ptr(), delta) };
    }

    /// The count of queues waiting for their turn.
    pub(crate) fn waiting(&self) -> i32 {
        // SAFETY: live (type invariant).
        unsafe { glue::vhost_blk_wake_waiting(self.wake.as_ptr()) }
    }
}

/// An RCU read-side critical section, ended on drop on the same CPU
/// context (hence neither `Send` nor `Sync`).
struct RcuReadGuard(PhantomData<*mut ()>);

impl RcuReadGuard {
    fn new() -> Self {
        // SAFETY: no preconditions; ended by `drop`.
        unsafe { glue::vhost_blk_rcu_read_lock() };
        Self(PhantomData)
    }
}

impl Drop for RcuReadGuard {
    fn drop(&mut self) {
        // SAFETY: begun by `new` in this context.
        unsafe { glue::vhost_blk_rcu_read_unlock() };
    }
}

/// A pointer to a [`WakeTarget`], or to none, that wake-ups read from any
/// context (hard-IRQ included) and that may be repointed at any time: the
/// slot owns a reference of its target, and readers use it only inside an
/// RCU read-side section, so a replaced target outlives them.
///
/// # Invariants
///
/// `ptr` is null or a live `struct vhost_blk_wake` of which the slot owns
/// one reference.
pub(crate) struct WakeSlot {
    ptr: AtomicPtr<vhost_blk_wake>,
}

impl WakeSlot {
    /// A slot pointing nowhere.
    pub(crate) const fn new() -> Self {
        // INVARIANT: null.
        Self {
            ptr: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// Points the slot at `target` (or nowhere), taking a reference of its
    /// own. A wake-up still using the target it pointed at keeps that one
    /// alive until it is done.
    pub(crate) fn set(&self, target: Option<&WakeTarget>) {
        let new = target.map_or(core::ptr::null_mut(), |t| {
            // The slot's reference, kept as the pointer.
            ManuallyDrop::new(t.clone()).as_ptr()
        });
        // INVARIANT: the slot owns the reference taken above.
        let old = self.ptr.swap(new, Ordering::AcqRel);
        if let Some(wake) = NonNull::new(old) {
            // The slot's reference of the old target, given back.
            drop(WakeTarget { wake });
        }
    }

    /// Calls `f` on the target, if the slot has one. `f` runs inside an
    /// RCU read-side section, so it must not sleep.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&WakeRef<'_>) -> R) -> Option<R> {
        let rcu = RcuReadGuard::new();
        let wake = NonNull::new(self.ptr.load(Ordering::Acquire))?;
        // INVARIANT: read inside the read-side section begun above while
        // the slot held its reference, and used only within it: the object
        // is freed no earlier than a grace period after the slot gives that
        // reference back.
        let view = WakeRef {
            wake,
            _life: PhantomData,
        };
        let r = f(&view);
        drop(rcu);
        Some(r)
    }
}

impl Drop for WakeSlot {
    fn drop(&mut self) {
        self.set(None);
    }
}
