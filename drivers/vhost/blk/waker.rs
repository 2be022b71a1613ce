// SPDX-License-Identifier: GPL-2.0

//! A virtqueue's wake-ups: guest kicks, and the turn-taking hint between
//! the queues of one worker.

use crate::ffi::wake::{WakeSlot, WakeTarget};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A virtqueue's wake-ups: a pending flag set from any context, and the
/// [`WakeTarget`] of the worker serving the queue. Also counts the
/// queue's kicks, and remembers whether the guest kicked it since its
/// last turn started (a neighbour's turn ends early while it waits).
///
/// Not a lock: a kick runs under the eventfd's wait-queue lock, and can
/// run in hard-IRQ context (a VMM may hand `VHOST_SET_VRING_KICK` an
/// eventfd that a driver signals from its interrupt handler, as vfio does
/// for MSI). 6.12's Rust `SpinLock` leaves interrupts on, so a lock taken
/// there and in process context could deadlock; the target is reached
/// through a [`WakeSlot`] instead, which any context may read and which
/// may be repointed at any time.
pub(crate) struct Waker {
    pending: AtomicBool,
    /// Kicked by the guest, and its turn has not started since.
    waiting: AtomicBool,
    target: WakeSlot,
    kicks: AtomicU64,
}

impl Waker {
    /// A waker with no worker.
    pub(crate) const fn new() -> Self {
        Self {
            pending: AtomicBool::new(false),
            waiting: AtomicBool::new(false),
            target: WakeSlot::new(),
            kicks: AtomicU64::new(0),
        }
    }

    /// Points wake-ups at `target` (or nowhere, with `None`). The worker's
    /// count of waiting queues stays right if the queue's waiting mark was
    /// dropped first ([`Self::forget_waiting`]) and no kick can come
    /// between the two, as when the queue's kick poll is gone.
    pub(crate) fn set_target(&self, target: Option<&WakeTarget>) {
        self.target.set(target);
    }

    /// A guest kick: counts it, marks the queue pending and waiting, and
    /// wakes the worker. Never sleeps.
    pub(crate) fn kick(&self) {
        self.kicks.fetch_add(1, Ordering::Relaxed);
        let newly_waiting = !self.waiting.swap(true, Ordering::AcqRel);
        let woken = self.target.with(|t| {
            // A turn already running may take the mark back before this
            // counts it: the count is then briefly one low, which reads as
            // nobody waiting.
            if newly_waiting {
                t.waiting_add(1);
            }
            self.kick_quiet();
            t.signal();
        });
        if woken.is_none() {
            // No worker yet: the queue is served when it starts.
            self.kick_quiet();
        }
    }

    /// Marks the queue pending without a wake-up (from the worker itself).
    pub(crate) fn kick_quiet(&self) {
        self.pending.store(true, Ordering::Release);
    }

    /// Wakes the worker. Never sleeps.
    pub(crate) fn wake(&self) {
        self.target.with(|t| t.signal());
    }

    /// Takes the pending flag.
    pub(crate) fn take(&self) -> bool {
        self.pending.swap(false, Ordering::AcqRel)
    }

    /// The queue's turn starts: it no longer waits. Every change of
    /// `waiting` to true (in [`Waker::kick`]) is paired with one back to
    /// false here or in [`Waker::forget_waiting`], and the target does not
    /// change in between, so the worker's count settles right even when
    /// the two race.
    pub(crate) fn turn_starts(&self) {
        if self.waiting.swap(false, Ordering::AcqRel) {
            self.target.with(|t| t.waiting_add(-1));
        }
    }

    /// Drops the waiting mark: for a queue that is not served, or one
    /// leaving its worker (then called before [`Waker::set_target`]
    /// clears the target, once no kick can run).
    pub(crate) fn forget_waiting(&self) {
        self.turn_starts();
    }

    /// Whether the guest kicked another queue of the same worker that
    /// waits for its turn while this one takes its own.
    pub(crate) fn others_waiting(&self) -> bool {
        let mine = i32::from(self.waiting.load(Ordering::Acquire));
        // The count less this queue's own mark. A count caught in a race
        // (briefly one off) only shortens or lengthens one turn.
        self.target.with(|t| t.waiting() > mine).unwrap_or(false)
    }

    /// Whether the queue is pending.
    pub(crate) fn any(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Kicks received.
    pub(crate) fn kicks(&self) -> u64 {
        self.kicks.load(Ordering::Relaxed)
    }
}
