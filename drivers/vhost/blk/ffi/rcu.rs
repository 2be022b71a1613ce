// SPDX-License-Identifier: GPL-2.0

//! Read-side sections, objects freed after a grace period, and the barrier
//! that waits for those frees when the module leaves.
//!
//! C header: [`include/linux/rcupdate.h`](srctree/include/linux/rcupdate.h).

use super::glue;
use core::marker::PhantomData;
use kernel::alloc::KBox;
use kernel::bindings;

/// An RCU read-side critical section, ended on drop in the same context
/// (hence neither `Send` nor `Sync`). Never sleeps; may be nested.
pub(crate) struct RcuReadGuard(PhantomData<*mut ()>);

impl RcuReadGuard {
    /// Begins a read-side section.
    pub(crate) fn new() -> Self {
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

/// Objects that may be freed a grace period after their owner lets go
/// ([`free_after_grace_period`]), so that a reader that found them inside
/// an [`RcuReadGuard`] may still use them until its section ends.
///
/// # Safety
///
/// `RCU_OFFSET` is the byte offset, within `Self`, of a
/// `bindings::callback_head` that nothing else uses.
pub(crate) unsafe trait RcuFree: Sized {
    /// Where the object's `callback_head` is (`core::mem::offset_of!`).
    const RCU_OFFSET: usize;
}

/// Drops and frees `obj` once every read-side section that began before
/// this call has ended (`call_rcu`). Never sleeps.
///
/// # Safety
///
/// `obj` comes from [`KBox::into_raw`] (or [`KBox::leak`]), its owner gives
/// it up here, and no
/// reader finds it in a read-side section that begins after this call.
pub(crate) unsafe fn free_after_grace_period<T: RcuFree>(obj: *mut T) {
    // SAFETY: `RCU_OFFSET` is in bounds of the live object (trait safety
    // contract).
    let head = unsafe { obj.cast::<u8>().add(T::RCU_OFFSET) }.cast::<bindings::callback_head>();
    // SAFETY: the head is unused (trait contract) and lives until the
    // callback, which frees the object it belongs to. Module exit waits
    // for the callback ([`RcuBarrier`]).
    unsafe { bindings::call_rcu(head, Some(free_rcu::<T>)) };
}

/// The grace-period callback of [`free_after_grace_period`].
///
/// # Safety
///
/// `head` is the `callback_head` at `T::RCU_OFFSET` of an object given up
/// to [`free_after_grace_period`].
unsafe extern "C" fn free_rcu<T: RcuFree>(head: *mut bindings::callback_head) {
    // SAFETY: `head` lies `RCU_OFFSET` bytes into the object (trait
    // contract), which came from a `KBox` and has no user left.
    let obj = unsafe { head.cast::<u8>().sub(T::RCU_OFFSET) }.cast::<T>();
    // SAFETY: as above; freed once, here.
    drop(unsafe { KBox::from_raw(obj) });
}

/// Waits, when dropped, for the grace-period callbacks that free wake-up
/// targets and completion lists (`rcu_barrier`): the module's last field,
/// so that no callback of its runs after it is unloaded.
pub(crate) struct RcuBarrier;

impl Drop for RcuBarrier {
    fn drop(&mut self) {
        // SAFETY: process context (module exit); no preconditions.
        unsafe { bindings::rcu_barrier() };
    }
}
