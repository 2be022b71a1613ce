// SPDX-License-Identifier: GPL-2.0

//! The list a queue's bios complete onto, and their completion function.
//!
//! C header: [`include/linux/bio.h`](srctree/include/linux/bio.h).
//!
//! A completion runs in any context, often in interrupt: it only pushes
//! its bio onto the list and wakes the worker. Unpinning, dirtying and the
//! used ring are the worker's, in process context.

use super::bio::{BioStack, DoneBio};
#[cfg(CONFIG_KASAN)]
use super::glue;
use super::rcu::{free_after_grace_period, RcuFree, RcuReadGuard};
use super::wake::{WakeSlot, WakeTarget};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use kernel::bindings;
use kernel::prelude::*;
use kernel::types::Opaque;

/// `BLK_STS_AGAIN`: the device would have made a `REQ_NOWAIT` submitter
/// wait (a macro with a cast, which bindgen cannot read; `glue.c` asserts
/// the value).
pub(super) const BLK_STS_AGAIN: u8 = 12;

/// The shared part of a [`BioList`], which completions reach through their
/// bio's `bi_private`: freed a grace period after the list is dropped, as a
/// completion may still be leaving it.
struct ListInner {
    head: AtomicPtr<bindings::bio>,
    /// A bio came back `BLK_STS_AGAIN` since the last take: the disk is
    /// full.
    bounced: AtomicBool,
    wake: WakeSlot,
    rcu: Opaque<bindings::callback_head>,
}

// SAFETY: `rcu` is a `callback_head` used only by `free_after_grace_period`.
unsafe impl RcuFree for ListInner {
    const RCU_OFFSET: usize = core::mem::offset_of!(ListInner, rcu);
}

/// A queue's list of completed bios.
///
/// # Invariants
///
/// `inner` comes from `KBox::into_raw`, is owned by this value, and is
/// freed a grace period after it is dropped.
pub(crate) struct BioList {
    inner: NonNull<ListInner>,
}

// SAFETY: the list is a lock-free stack usable from any thread.
unsafe impl Send for BioList {}
// SAFETY: as above; `take` is an atomic exchange.
unsafe impl Sync for BioList {}

impl BioList {
    /// An empty list that wakes nobody yet.
    pub(crate) fn new() -> Result<Self> {
        let inner = KBox::new(
            ListInner {
                head: AtomicPtr::new(core::ptr::null_mut()),
                bounced: AtomicBool::new(false),
                wake: WakeSlot::new(),
                rcu: Opaque::uninit(),
            },
            GFP_KERNEL,
        )?;
        // INVARIANT: a fresh allocation owned by the new value.
        Ok(Self {
            inner: NonNull::from(KBox::leak(inner)),
        })
    }

    fn inner(&self) -> &ListInner {
        // SAFETY: owned and live (type invariant).
        unsafe { self.inner.as_ref() }
    }

    /// What a bio's `bi_private` holds so that it completes onto this
    /// list with [`END_IO`].
    pub(super) fn as_private(&self) -> *mut core::ffi::c_void {
        self.inner.as_ptr().cast()
    }

    /// Signals `target` on completions (or nobody, with `None`). The list
    /// takes a reference of its own; a target replaced here may still be
    /// signalled by a completion in progress, which keeps it alive until
    /// it is done.
    pub(crate) fn set_wake(&self, target: Option<&WakeTarget>) {
        self.inner().wake.set(target);
    }

    /// Whether no completion is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.inner().head.load(Ordering::Relaxed).is_null()
    }

    /// Whether a bio came back from a full disk (`BLK_STS_AGAIN`) since
    /// the last [`Self::take`]: submitting more now would bounce too. A
    /// hint, read without ordering: the bounced bio itself reaches the
    /// worker through the list.
    pub(crate) fn bounced(&self) -> bool {
        self.inner().bounced.load(Ordering::Relaxed)
    }

    /// Takes every completed bio, and clears [`Self::bounced`]. The flag
    /// is cleared after the bios are taken: a bounce that lands in between
    /// loses its flag (its bio is on the list for the next take), but a
    /// flag is never left set for a bio already taken.
    pub(crate) fn take(&self) -> BioStack<DoneBio> {
        let inner = self.inner();
        let head = inner.head.swap(core::ptr::null_mut(), Ordering::Acquire);
        inner.bounced.store(false, Ordering::Relaxed);
        // SAFETY: completed bios of this module, pushed by `end_io`, linked
        // by `bi_next` and owned by nothing else now.
        unsafe { BioStack::from_completed(NonNull::new(head)) }
    }
}

impl Drop for BioList {
    fn drop(&mut self) {
        let inner = self.inner();
        // Queues drain all bios before dropping their list.
        if !inner.head.load(Ordering::Relaxed).is_null() {
            pr_err!("a completion list was dropped with bios on it\n");
        }
        inner.wake.set(None);
        // SAFETY: owned by this value and given up once; completions still
        // leaving it are inside read-side sections the grace period waits
        // for, and no new one finds it (its queue has no bio out).
        unsafe { free_after_grace_period(self.inner.as_ptr()) };
    }
}

/// The `bi_end_io` of every bio of the module, with a [`BioList`] as its
/// `bi_private`.
pub(super) const END_IO: bindings::bio_end_io_t = Some(end_io);

/// Pushes a completed bio onto its list and wakes the list's worker.
///
/// Once the bio is on the list the worker may complete its request, the
/// queue may drain and drop the list, and the worker may stop and drop its
/// wake-up target: everything from the push on runs inside a read-side
/// section, the list and the target are freed only a grace period after
/// they are dropped, and the module's exit waits for those frees
/// ([`super::rcu::RcuBarrier`]). The bio itself is not touched after the
/// push.
///
/// # Safety
///
/// `bio` is a completed bio of the module, built by `Bio::new` with a live
/// list as its `bi_private`.
unsafe extern "C" fn end_io(bio: *mut bindings::bio) {
    let rcu = RcuReadGuard::new();
    // SAFETY: a list outlives the bios it waits for (function contract);
    // from the push on, the read-side section above keeps it.
    let list = unsafe { &*(*bio).bi_private.cast::<ListInner>() };
    // SAFETY: the bio is ours until the push below.
    let (status, opf) = unsafe { ((*bio).bi_status, (*bio).bi_opf) };
    if status == BLK_STS_AGAIN && opf & super::bio::REQ_NOWAIT != 0 {
        list.bounced.store(true, Ordering::Relaxed);
    }
    let mut head = list.head.load(Ordering::Relaxed);
    loop {
        // SAFETY: not yet on the list: still ours.
        unsafe { (*bio).bi_next = head };
        match list
            .head
            .compare_exchange_weak(head, bio, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => break,
            Err(now) => head = now,
        }
    }
    list.wake.with_in(&rcu, |w| w.signal());
    // Debug kernels only: when a teardown test asks, linger inside the
    // read-side section, then use the list again.
    #[cfg(CONFIG_KASAN)]
    {
        // SAFETY: a parameter of `glue.c`, never borrowed, read whole.
        let ms = unsafe {
            core::ptr::read_volatile(core::ptr::addr_of!(
                glue::vhost_blk_debug_completion_delay_ms
            ))
        };
        if ms != 0 {
            for _ in 0..ms {
                // SAFETY: busy-waits 1 ms (`mdelay`); any context.
                unsafe { bindings::__udelay(1000) };
            }
            list.wake.with_in(&rcu, |w| w.signal());
        }
    }
}
