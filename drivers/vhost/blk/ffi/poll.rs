// SPDX-License-Identifier: GPL-2.0

//! Kick polling: a wait entry on a kick eventfd, as `vhost_poll`.
//!
//! C header: [`include/linux/poll.h`](srctree/include/linux/poll.h).

use super::glue;
use super::worker::Waker;
use core::ffi::c_void;
use core::ptr::NonNull;
use kernel::error::from_err_ptr;
use kernel::prelude::*;

/// A registered kick poll: every signal of the eventfd calls
/// [`Waker::kick`] of its queue.
///
/// # Invariants
///
/// `poll` is a live `struct vhost_blk_poll` whose wait entry is on the
/// eventfd's wait queue with `data` pointing to a [`Waker`] that outlives
/// this value.
pub(crate) struct KickPoll {
    poll: NonNull<glue::vhost_blk_poll>,
}

// SAFETY: the poll may be removed from any thread.
unsafe impl Send for KickPoll {}
// SAFETY: `&KickPoll` allows no operation.
unsafe impl Sync for KickPoll {}

impl KickPoll {
    /// Polls eventfd `fd` for the queue of `waker`: `EBADF` if `fd` is not
    /// open, `EINVAL` if it is not an eventfd.
    ///
    /// # Safety
    ///
    /// `waker` must outlive the returned value.
    pub(crate) unsafe fn start(fd: i32, waker: &Waker) -> Result<Self> {
        let data = (waker as *const Waker).cast_mut().cast::<c_void>();
        // SAFETY: `data` is a `Waker` that the caller guarantees outlives
        // the poll, as `vhost_blk_rs_kick` requires.
        let poll = from_err_ptr(unsafe { glue::vhost_blk_poll_start(fd, data) })?;
        match NonNull::new(poll) {
            // INVARIANT: registered with a waker that outlives it.
            Some(poll) => Ok(Self { poll }),
            None => Err(ENOMEM),
        }
    }
}

impl Drop for KickPoll {
    fn drop(&mut self) {
        // SAFETY: live by the type invariant, removed exactly once. After
        // this returns no wake-up of this poll runs (remove_wait_queue
        // takes the wait-queue lock the wake-ups run under).
        unsafe { glue::vhost_blk_poll_stop(self.poll.as_ptr()) };
    }
}

/// Wake-up of a kick poll; runs under the eventfd's wait-queue lock and
/// must not sleep.
///
/// # Safety
///
/// `data` must point to a live [`Waker`].
#[no_mangle]
unsafe extern "C" fn vhost_blk_rs_kick(data: *mut c_void) {
    // SAFETY: the caller (glue.c, on behalf of `KickPoll`) guarantees it.
    let waker = unsafe { &*data.cast::<Waker>() };
    waker.kick();
}
