// SPDX-License-Identifier: GPL-2.0

//! The owner's block cgroup.
//!
//! C header: [`include/linux/cgroup.h`](srctree/include/linux/cgroup.h).
//!
//! Shared workers submit bios for many owners, so the worker's own cgroup
//! says nothing about whom the I/O is for. Each device records its owner's
//! io cgroup at `VHOST_SET_OWNER`, and every bio is associated with it
//! (`bio_associate_blkg_from_css`), so io.max limits and io.stat accounting
//! apply to the VM that asked for the I/O.

use super::glue::{self, cgroup_subsys_state};
use core::ptr::NonNull;

/// A reference on the io cgroup of the task that created it.
///
/// # Invariants
///
/// `css` points to a live `struct cgroup_subsys_state` of the io
/// controller on which this value holds one reference.
pub(crate) struct Blkcg {
    css: NonNull<cgroup_subsys_state>,
}

// SAFETY: css references may be used and dropped from any thread.
unsafe impl Send for Blkcg {}
// SAFETY: `&Blkcg` only hands out the pointer, for bio association, which
// is thread-safe.
unsafe impl Sync for Blkcg {}

impl Blkcg {
    /// The current task's io cgroup, or `None` if the kernel has no block
    /// cgroups.
    pub(crate) fn current() -> Option<Self> {
        // SAFETY: no preconditions; returns a referenced css or null.
        let css = unsafe { glue::vhost_blk_blkcg_get_current() };
        // INVARIANT: a css with a reference taken for us.
        NonNull::new(css).map(|css| Self { css })
    }

    /// The css, for `glue.c`.
    pub(crate) fn as_ptr(&self) -> *mut cgroup_subsys_state {
        self.css.as_ptr()
    }
}

impl Drop for Blkcg {
    fn drop(&mut self) {
        // SAFETY: the reference held by this value (type invariant), put
        // once.
        unsafe { glue::vhost_blk_blkcg_put(self.css.as_ptr()) };
    }
}
