// SPDX-License-Identifier: GPL-2.0

//! A reference of an [`Arc`] lent to C as a `void *`, for the data of a
//! C registration (misc device, debugfs file, hotplug state, work item,
//! kick poll) whose callbacks come back into Rust (`entry.rs`, or a
//! trait's method).

use core::ffi::c_void;
use core::marker::PhantomData;
use kernel::sync::Arc;
use kernel::types::ForeignOwnable;

/// One reference of an `Arc<T>`, held by C as a pointer until this value
/// is dropped. The registration that holds it must be gone by then, so
/// that no callback still uses the pointer: a registration holding one
/// undoes itself in its `Drop`, before its fields (this one) drop.
///
/// # Invariants
///
/// `ptr` came from `Arc<T>::into_foreign` and is reclaimed once, on drop.
pub(crate) struct LentArc<T: Send + Sync + 'static> {
    ptr: *const c_void,
    _arc: PhantomData<Arc<T>>,
}

// SAFETY: it owns a reference of an `Arc<T>`, which is `Send` for
// `T: Send + Sync`.
unsafe impl<T: Send + Sync> Send for LentArc<T> {}
// SAFETY: `&LentArc` only hands out the pointer.
unsafe impl<T: Send + Sync> Sync for LentArc<T> {}

impl<T: Send + Sync> LentArc<T> {
    /// Lends one reference of `arc`.
    pub(crate) fn new(arc: Arc<T>) -> Self {
        // INVARIANT: from `into_foreign`.
        Self {
            ptr: arc.into_foreign(),
            _arc: PhantomData,
        }
    }

    /// The pointer C holds.
    pub(crate) fn as_ptr(&self) -> *mut c_void {
        self.ptr.cast_mut()
    }
}

impl<T: Send + Sync> Drop for LentArc<T> {
    fn drop(&mut self) {
        // SAFETY: from `into_foreign` (type invariant), reclaimed once;
        // the registration that lent it is gone (the type's contract).
        drop(unsafe { <Arc<T> as ForeignOwnable>::from_foreign(self.ptr) });
    }
}
