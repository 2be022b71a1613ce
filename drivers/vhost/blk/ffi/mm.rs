// SPDX-License-Identifier: GPL-2.0

//! The owner's address space.
//!
//! C header: [`include/linux/sched/mm.h`](srctree/include/linux/sched/mm.h).

use core::ptr::NonNull;
use kernel::bindings;
use kernel::prelude::*;

/// A reference on the address space of the process that called
/// `VHOST_SET_OWNER` (`get_task_mm`/`mmput`).
///
/// # Invariants
///
/// `mm` points to a live `struct mm_struct` on which this value holds one
/// `mm_users` reference.
pub(crate) struct OwnerMm {
    mm: NonNull<bindings::mm_struct>,
}

// SAFETY: an `mm_users` reference may be dropped from any thread, and the
// pointer is only compared or passed to functions safe on any thread.
unsafe impl Send for OwnerMm {}
// SAFETY: `&OwnerMm` only allows comparisons with `current->mm`.
unsafe impl Sync for OwnerMm {}

impl OwnerMm {
    /// A reference on `current`'s mm; `EINVAL` for a kernel thread, which
    /// has none.
    pub(crate) fn current() -> Result<Self> {
        // SAFETY: no preconditions; `current` is live while it runs.
        let mm = unsafe { bindings::get_task_mm(bindings::get_current()) };
        // INVARIANT: a non-NULL result carries an `mm_users` reference.
        NonNull::new(mm).map(|mm| Self { mm }).ok_or(EINVAL)
    }

    /// The mm, for `kthread_use_mm`.
    pub(crate) fn as_ptr(&self) -> *mut bindings::mm_struct {
        self.mm.as_ptr()
    }

    /// Whether the calling task runs in this address space.
    pub(crate) fn is_current(&self) -> bool {
        // SAFETY: no preconditions.
        core::ptr::eq(
            unsafe { super::glue::vhost_blk_current_mm() }.cast(),
            self.mm.as_ptr(),
        )
    }
}

impl Drop for OwnerMm {
    fn drop(&mut self) {
        // SAFETY: by the type invariant this value holds one reference,
        // released exactly once, here.
        unsafe { bindings::mmput(self.mm.as_ptr()) };
    }
}
