// SPDX-License-Identifier: GPL-2.0

//! What wakes a worker kthread, and the pointers to it that wake-ups read
//! from any context.
//!
//! C header: [`include/linux/rcupdate.h`](srctree/include/linux/rcupdate.h).

use super::rcu::{free_after_grace_period, RcuFree, RcuReadGuard};
use super::worker::Kthread;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, Ordering};
use kernel::bindings;
use kernel::prelude::*;
use kernel::types::Opaque;

/// The counted object behind [`WakeTarget`]: freed a grace period after
/// its last reference goes, so that a wake-up that found it under an
/// [`RcuReadGuard`] may still use it after the pointer it followed changed.
///
/// # Invariants
///
/// `task` is null or a task of which the object holds a reference, set
/// once. `refs` counts the [`WakeTarget`]s and [`WakeSlot`]s that point
/// here.
struct Wake {
    task: AtomicPtr<bindings::task_struct>,
    pending: AtomicBool,
    waiting: AtomicI32,
    refs: Opaque<bindings::refcount_t>,
    rcu: Opaque<bindings::callback_head>,
}

// SAFETY: `rcu` is a `callback_head` used only by `free_after_grace_period`.
unsafe impl RcuFree for Wake {
    const RCU_OFFSET: usize = core::mem::offset_of!(Wake, rcu);
}

impl Wake {
    /// Marks work pending and wakes the task. Never sleeps.
    fn signal(&self) {
        // Fully ordered (an exchange), pairing with the barrier of
        // set_current_state() in the sleeper. If work was already pending,
        // whoever set it wakes the worker, or the worker has yet to take
        // it: either way it looks again, so a burst of completions costs
        // one wake-up, not one each.
        if self.pending.swap(true, Ordering::SeqCst) {
            return;
        }
        let task = self.task.load(Ordering::Acquire);
        if !task.is_null() {
            // SAFETY: the object holds a reference on its task (type
            // invariant), and is live while `self` is borrowed.
            unsafe { bindings::wake_up_process(task) };
        }
    }
}

impl Drop for Wake {
    fn drop(&mut self) {
        let task = *self.task.get_mut();
        if !task.is_null() {
            // SAFETY: the object's reference on its task (type invariant),
            // given back once.
            unsafe { bindings::put_task_struct(task) };
        }
    }
}

/// A worker's wake-up target: a pending flag set from any context (kick
/// wake-ups, bio completions), the worker's task, and a count of the
/// worker's queues that wait for their turn.
///
/// One reference of a counted object. Its last reference goes after an
/// RCU grace period, so a wake-up that found it through a [`WakeSlot`]
/// under an RCU read-side section may still use it after the slot changed.
///
/// # Invariants
///
/// `wake` is a live [`Wake`] from `KBox::into_raw`, and the value owns one
/// of its references.
pub(crate) struct WakeTarget {
    wake: NonNull<Wake>,
}

// SAFETY: the object is reference-counted and its fields are atomic;
// wake-ups may come from any thread.
unsafe impl Send for WakeTarget {}
// SAFETY: as above.
unsafe impl Sync for WakeTarget {}

impl WakeTarget {
    /// A target with no task yet.
    pub(crate) fn new() -> Result<Self> {
        let wake = KBox::new(
            Wake {
                task: AtomicPtr::new(core::ptr::null_mut()),
                pending: AtomicBool::new(false),
                waiting: AtomicI32::new(0),
                // SAFETY: no preconditions.
                refs: Opaque::new(unsafe { bindings::REFCOUNT_INIT(1) }),
                rcu: Opaque::uninit(),
            },
            GFP_KERNEL,
        )?;
        // INVARIANT: a fresh object whose one reference is ours.
        Ok(Self {
            wake: NonNull::from(KBox::leak(wake)),
        })
    }

    fn wake(&self) -> &Wake {
        // SAFETY: live while this value holds its reference (type
        // invariant).
        unsafe { self.wake.as_ref() }
    }

    /// Points wake-ups at `thread`, holding a reference on its task until
    /// the target is freed. Only the first call counts: a task being
    /// signalled is never swapped out under the signal.
    pub(crate) fn set_task(&self, thread: &Kthread) {
        let task = thread.task().cast::<bindings::task_struct>();
        // SAFETY: the task is alive while `thread` is; the reference taken
        // here is the object's (or given back below).
        unsafe { bindings::get_task_struct(task) };
        let set = self.wake().task.compare_exchange(
            core::ptr::null_mut(),
            task,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if set.is_err() {
            // SAFETY: the reference taken above, not kept.
            unsafe { bindings::put_task_struct(task) };
        }
    }

    /// Clears the pending flag; returns whether it was set.
    pub(crate) fn take(&self) -> bool {
        self.wake().pending.swap(false, Ordering::SeqCst)
    }

    /// Whether work is pending.
    pub(crate) fn pending(&self) -> bool {
        self.wake().pending.load(Ordering::Acquire)
    }
}

impl Clone for WakeTarget {
    fn clone(&self) -> Self {
        // SAFETY: live (type invariant): one more reference.
        unsafe { bindings::refcount_inc(self.wake().refs.get()) };
        // INVARIANT: the new value owns the reference just taken.
        Self { wake: self.wake }
    }
}

impl Drop for WakeTarget {
    fn drop(&mut self) {
        // SAFETY: the value owns a reference (type invariant).
        if unsafe { bindings::refcount_dec_and_test(self.wake().refs.get()) } {
            // SAFETY: the last reference: nobody finds the object from now
            // on but a wake-up already inside a read-side section, which
            // the grace period waits for.
            unsafe { free_after_grace_period(self.wake.as_ptr()) };
        }
    }
}

/// A wake target as a wake-up finds it through a [`WakeSlot`]: it can
/// signal and count, but not be kept (it holds no reference).
///
/// # Invariants
///
/// `wake` is live for `'a`: read from a [`WakeSlot`] inside an RCU
/// read-side section that lasts for `'a` and began while the slot held its
/// reference.
pub(crate) struct WakeRef<'a> {
    wake: &'a Wake,
}

impl WakeRef<'_> {
    /// Marks work pending and wakes the task. Never sleeps.
    pub(crate) fn signal(&self) {
        self.wake.signal();
    }

    /// Adds `delta` to the count of queues waiting for their turn. The
    /// count is a hint: read and written without ordering.
    pub(crate) fn waiting_add(&self, delta: i32) {
        self.wake.waiting.fetch_add(delta, Ordering::Relaxed);
    }

    /// The count of queues waiting for their turn.
    pub(crate) fn waiting(&self) -> i32 {
        self.wake.waiting.load(Ordering::Relaxed)
    }
}

/// A pointer to a [`WakeTarget`], or to none, that wake-ups read from any
/// context (hard-IRQ included) and that may be repointed at any time: the
/// slot owns a reference of its target, and readers use it only inside an
/// RCU read-side section, so a replaced target outlives them.
///
/// # Invariants
///
/// `ptr` is null or the object of a [`WakeTarget`] of which the slot owns
/// one reference.
pub(crate) struct WakeSlot {
    ptr: AtomicPtr<Wake>,
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
            ManuallyDrop::new(t.clone()).wake.as_ptr()
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
        self.with_in(&rcu, f)
    }

    /// [`Self::with`] inside the caller's read-side section `_rcu`, for
    /// callers already in one (a completion): no section of its own.
    pub(crate) fn with_in<R>(
        &self,
        _rcu: &RcuReadGuard,
        f: impl FnOnce(&WakeRef<'_>) -> R,
    ) -> Option<R> {
        let wake = NonNull::new(self.ptr.load(Ordering::Acquire))?;
        // SAFETY: read inside the read-side section `_rcu` while the slot
        // held its reference, and used only while `_rcu` is borrowed, so
        // within that section: the object is freed no earlier than a grace
        // period after the slot gives that reference back.
        let wake = unsafe { wake.as_ref() };
        // INVARIANT: as said above, for the borrow of the closure's call.
        let view = WakeRef { wake };
        Some(f(&view))
    }
}

impl Drop for WakeSlot {
    fn drop(&mut self) {
        self.set(None);
    }
}
