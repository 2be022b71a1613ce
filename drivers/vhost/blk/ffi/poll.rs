// SPDX-License-Identifier: GPL-2.0

//! Kick polling: a wait entry on a kick eventfd, as `vhost_poll`.
//!
//! C header: [`include/linux/poll.h`](srctree/include/linux/poll.h).

use super::glue;
use super::lent::LentArc;
use core::ffi::c_void;
use core::ptr::NonNull;
use kernel::error::from_err_ptr;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::types::ForeignOwnable;

/// What a kick poll calls on each signal of its eventfd.
pub(crate) trait Kicked: Send + Sync + 'static {
    /// The eventfd was signalled. Runs under the eventfd's wait-queue lock,
    /// possibly in hard-IRQ context (a VMM may hand over an eventfd that a
    /// driver signals from its interrupt handler): must not sleep.
    fn kick(&self);
}

/// A registered kick poll: every signal of the eventfd calls
/// [`Kicked::kick`] of its `T`.
///
/// # Invariants
///
/// `poll` is a live `struct vhost_blk_poll` whose wait entry is on the
/// eventfd's wait queue, calling `kick_poll_wakeup::<T>` with the pointer
/// `_data` lends.
pub(crate) struct KickPoll<T: Kicked> {
    poll: NonNull<glue::vhost_blk_poll>,
    /// The `T` the wake-ups use; given back when the fields drop, after
    /// `drop` removed the entry.
    _data: LentArc<T>,
}

// SAFETY: the poll may be removed from any thread, and the lent `T` is
// `Send + Sync`.
unsafe impl<T: Kicked> Send for KickPoll<T> {}
// SAFETY: `&KickPoll` allows no operation.
unsafe impl<T: Kicked> Sync for KickPoll<T> {}

impl<T: Kicked> KickPoll<T> {
    /// Polls eventfd `fd` for `target`, which the poll keeps alive: `EBADF`
    /// if `fd` is not open, `EINVAL` if it is not an eventfd. An eventfd
    /// already signalled kicks at once.
    pub(crate) fn start(fd: i32, target: Arc<T>) -> Result<Self> {
        let data = LentArc::new(target);
        // SAFETY: the wake-up takes `data` as the `T` it is; it stays lent
        // until the entry is removed (`drop`), and on failure nothing was
        // registered and `data` is reclaimed here.
        let poll = from_err_ptr(unsafe {
            glue::vhost_blk_poll_start(fd, Some(kick_poll_wakeup::<T>), data.as_ptr())
        })?;
        match NonNull::new(poll) {
            // INVARIANT: registered above with `data`.
            Some(poll) => Ok(Self { poll, _data: data }),
            None => Err(ENOMEM),
        }
    }
}

impl<T: Kicked> Drop for KickPoll<T> {
    fn drop(&mut self) {
        // SAFETY: live by the type invariant, removed exactly once. After
        // this returns no wake-up of this poll runs (remove_wait_queue
        // takes the wait-queue lock the wake-ups run under), so `_data`
        // may be given back.
        unsafe { glue::vhost_blk_poll_stop(self.poll.as_ptr()) };
    }
}

/// Wake-up of a kick poll.
///
/// # Safety
///
/// `data` must be the pointer of a [`LentArc<T>`] that is still lent.
unsafe extern "C" fn kick_poll_wakeup<T: Kicked>(data: *mut c_void) {
    // SAFETY: lent by the poll until its entry is removed (the caller's
    // guarantee), so the `T` is alive for this call.
    let target = unsafe { <Arc<T> as ForeignOwnable>::borrow(data) };
    target.kick();
}
