// SPDX-License-Identifier: GPL-2.0

//! Eventfds: the kick, call and err notifiers of a virtqueue.
//!
//! C header: [`include/linux/eventfd.h`](srctree/include/linux/eventfd.h).

use core::ptr::NonNull;
use kernel::bindings;
use kernel::error::from_err_ptr;
use kernel::prelude::*;

/// A reference on an eventfd context.
///
/// # Invariants
///
/// `ctx` points to a live `struct eventfd_ctx` on which this value holds
/// one reference.
pub(crate) struct EventFd {
    ctx: NonNull<bindings::eventfd_ctx>,
}

// SAFETY: eventfd contexts are refcounted and `eventfd_signal` may be
// called from any thread.
unsafe impl Send for EventFd {}
// SAFETY: the only operation through `&EventFd` is `eventfd_signal`, which
// is thread-safe.
unsafe impl Sync for EventFd {}

impl EventFd {
    /// The eventfd behind file descriptor `fd` of the calling process:
    /// `EBADF` if `fd` is not open, `EINVAL` if it is not an eventfd.
    pub(crate) fn from_fd(fd: i32) -> Result<Self> {
        // SAFETY: no preconditions.
        let ctx = from_err_ptr(unsafe { bindings::eventfd_ctx_fdget(fd) })?;
        match NonNull::new(ctx) {
            // INVARIANT: a context that is not an error carries a reference.
            Some(ctx) => Ok(Self { ctx }),
            None => Err(EINVAL),
        }
    }

    /// Adds 1 to the counter, waking its waiters (`eventfd_signal`).
    pub(crate) fn signal(&self) {
        // SAFETY: the context is live by the type invariant.
        unsafe { bindings::eventfd_signal_mask(self.ctx.as_ptr(), 0) };
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: by the type invariant this value holds one reference,
        // released exactly once, here.
        unsafe { bindings::eventfd_ctx_put(self.ctx.as_ptr()) };
    }
}
