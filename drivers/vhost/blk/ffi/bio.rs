// SPDX-License-Identifier: GPL-2.0

//! Bios built from the owner's pages, and the list their completions come
//! back on.
//!
//! C header: [`include/linux/bio.h`](srctree/include/linux/bio.h).
//!
//! Every bio comes from the module's bioset, carries an opaque token (which
//! request it serves) and, on completion, is pushed by `glue.c` onto its
//! device's [`BioList`] and the worker is woken. Pages are unpinned (and
//! dirtied) by the worker in process context, never in the completion
//! interrupt.

use super::bdev::BdevFile;
use super::cgroup::Blkcg;
use super::glue::{self, bio, vhost_blk_bio_list};
use super::worker::WakeTarget;
use core::ptr::NonNull;
use kernel::error::Error;
use kernel::prelude::*;

/// The module's bioset, from which every vhost-blk bio is allocated.
///
/// # Invariants
///
/// The bioset in `glue.c` is initialised while this value exists, and only
/// the module's init creates one.
pub(crate) struct BioSet(());

impl BioSet {
    /// Initialises the bioset.
    pub(crate) fn init() -> Result<Self> {
        // SAFETY: called once, from module init.
        kernel::error::to_result(unsafe { glue::vhost_blk_bioset_init() })?;
        // INVARIANT: initialised above.
        Ok(Self(()))
    }
}

impl Drop for BioSet {
    fn drop(&mut self) {
        // SAFETY: initialised (type invariant) and no bio is outstanding:
        // every device drains before its file is released, and open files
        // pin the module.
        unsafe { glue::vhost_blk_bioset_exit() };
    }
}

/// What a bio does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum BioKind {
    /// `REQ_OP_READ`: the device writes the pages.
    Read = 0,
    /// `REQ_OP_WRITE`.
    Write = 1,
    /// An empty `REQ_OP_WRITE | REQ_PREFLUSH`.
    Flush = 2,
    /// `REQ_OP_DISCARD` of a range.
    Discard = 3,
    /// `REQ_OP_WRITE_ZEROES` of a range, which may deallocate.
    WriteZeroesUnmap = 4,
    /// `REQ_OP_WRITE | REQ_FUA`: durable when it completes (the block
    /// layer adds a post-flush on devices without FUA).
    WriteFua = 5,
}

/// The most pages one bio holds (`BIO_MAX_VECS`).
pub(crate) const MAX_VECS: u32 = 256;

/// A queue's list of completed bios.
///
/// # Invariants
///
/// `list` is a live `struct vhost_blk_bio_list` owned by this value.
pub(crate) struct BioList {
    list: NonNull<vhost_blk_bio_list>,
}

// SAFETY: the list is a lock-free stack usable from any thread.
unsafe impl Send for BioList {}
// SAFETY: as above; `take` is an atomic exchange.
unsafe impl Sync for BioList {}

impl BioList {
    /// An empty list that wakes nobody yet.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: no preconditions.
        let list = unsafe { glue::vhost_blk_bio_list_new() };
        // INVARIANT: a fresh allocation owned by the new value.
        NonNull::new(list).map(|list| Self { list }).ok_or(ENOMEM)
    }

    /// Signals `target` on completions (or nobody, with `None`).
    ///
    /// # Safety
    ///
    /// `target` must stay alive until replaced, and may be replaced only
    /// when no bio of this list is in flight.
    pub(crate) unsafe fn set_wake(&self, target: Option<&WakeTarget>) {
        let wake = target.map_or(core::ptr::null_mut(), |t| t.as_ptr());
        // SAFETY: the list is live; the caller guarantees the target rules.
        unsafe { glue::vhost_blk_bio_list_set_wake(self.list.as_ptr(), wake) };
    }

    /// Whether no completion is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        // SAFETY: the list is live.
        unsafe { glue::vhost_blk_bio_list_empty(self.list.as_ptr()) }
    }

    /// Takes every completed bio.
    pub(crate) fn take(&self) -> DoneBios {
        // SAFETY: the list is live; the bios taken are completed bios of
        // this module, now owned by the caller.
        let head = unsafe { glue::vhost_blk_bio_list_take(self.list.as_ptr()) };
        DoneBios {
            next: NonNull::new(head),
        }
    }
}

impl Drop for BioList {
    fn drop(&mut self) {
        // SAFETY: owned by this value, freed once. Devices drain all bios
        // before dropping their list; glue.c warns if one is left.
        unsafe { glue::vhost_blk_bio_list_free(self.list.as_ptr()) };
    }
}

/// A bio being built, not yet submitted.
///
/// # Invariants
///
/// `bio` is a live bio of the module's bioset, owned by this value, whose
/// pages (if any) are pinned.
pub(crate) struct Bio {
    bio: NonNull<bio>,
}

impl Bio {
    /// A bio of `kind` for up to `nr_vecs` pages at `sector` of `bdev`
    /// (or, for the range kinds, covering `bytes` without pages),
    /// completing onto `list` with `token`, charged to `blkcg` if given.
    /// Waits for memory rather than failing (the bioset is a mempool);
    /// `None` only if the block layer refuses the allocation all the same.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        bdev: &BdevFile,
        nr_vecs: u32,
        kind: BioKind,
        sector: u64,
        bytes: u32,
        list: &BioList,
        token: usize,
        blkcg: Option<&Blkcg>,
    ) -> Option<Self> {
        let nr = nr_vecs.min(MAX_VECS) as u16;
        // SAFETY: `bdev` is a live block device file and `list` a live
        // list, both outliving the bio (devices drain bios before dropping
        // either); the bio takes its own reference of `blkcg`.
        let bio = unsafe {
            glue::vhost_blk_bio_alloc(
                bdev.as_ptr(),
                nr,
                kind as u32,
                sector,
                bytes,
                list.list.as_ptr(),
                token as _,
                blkcg.map_or(core::ptr::null_mut(), |c| c.as_ptr()),
            )
        };
        // INVARIANT: a fresh bio with no pages, if any.
        NonNull::new(bio).map(|bio| Self { bio })
    }

    /// Pins the owner's pages of `[uaddr, uaddr + len)` into the bio until
    /// it is full. Returns the bytes added (0 when full); `EFAULT` if no
    /// page could be pinned. Must run under the owner's mm.
    pub(crate) fn add_user(&mut self, uaddr: u64, len: u32, device_writes: bool) -> Result<u32> {
        let addr = usize::try_from(uaddr).map_err(|_| EFAULT)?;
        // SAFETY: the bio is live and not submitted; pinning reaches only
        // the current mm.
        let r = unsafe {
            glue::vhost_blk_bio_add_user(self.bio.as_ptr(), addr as _, len, device_writes)
        };
        if r < 0 {
            Err(Error::from_errno(r))
        } else {
            Ok(r as u32)
        }
    }

    /// Adds the shared zero page for up to `len` bytes, until the bio is
    /// full; returns the bytes added. A bio holds either user pages or
    /// zero pages, never both (glue.c refuses to mix them).
    pub(crate) fn add_zeroes(&mut self, len: u32) -> u32 {
        // SAFETY: the bio is live and not submitted.
        unsafe { glue::vhost_blk_bio_add_zeroes(self.bio.as_ptr(), len) }
    }

    /// Submits the bio; it comes back through its [`BioList`].
    pub(crate) fn submit(self) {
        let bio = self.bio;
        core::mem::forget(self);
        // SAFETY: the bio is live and complete; ownership passes to the
        // block layer until it completes onto the list.
        unsafe { glue::vhost_blk_bio_submit(bio.as_ptr()) };
    }
}

impl Drop for Bio {
    fn drop(&mut self) {
        // SAFETY: an unsubmitted bio owned by this value: unpin its pages
        // and free it, once.
        unsafe { glue::vhost_blk_bio_release(self.bio.as_ptr(), false) };
    }
}

/// A completed bio taken from a [`BioList`].
///
/// # Invariants
///
/// `bio` is a completed bio of the module's bioset, owned by this value.
pub(crate) struct DoneBio {
    bio: NonNull<bio>,
}

impl DoneBio {
    /// The token it was created with.
    pub(crate) fn token(&self) -> usize {
        // SAFETY: live by the type invariant.
        unsafe { glue::vhost_blk_bio_token(self.bio.as_ptr()) as usize }
    }

    /// 0, or the negative errno of its status.
    pub(crate) fn errno(&self) -> i32 {
        // SAFETY: live by the type invariant.
        unsafe { glue::vhost_blk_bio_errno(self.bio.as_ptr()) }
    }

    /// Unpins its pages, dirtying them if the device wrote them, and frees
    /// it. Sleeps (process context only).
    pub(crate) fn release(self, dirty: bool) {
        let bio = self.bio;
        core::mem::forget(self);
        // SAFETY: owned and completed; released once.
        unsafe { glue::vhost_blk_bio_release(bio.as_ptr(), dirty) };
    }
}

impl Drop for DoneBio {
    fn drop(&mut self) {
        // SAFETY: owned and completed; released once.
        unsafe { glue::vhost_blk_bio_release(self.bio.as_ptr(), true) };
    }
}

/// Completed bios taken from a list, in no particular order, linked by
/// their `bi_next`.
///
/// # Invariants
///
/// Every bio reachable from `next` through `bi_next` is a completed bio of
/// the module's bioset, owned by this value and by nothing else.
pub(crate) struct DoneBios {
    next: Option<NonNull<bio>>,
}

impl Iterator for DoneBios {
    type Item = DoneBio;

    fn next(&mut self) -> Option<DoneBio> {
        let bio = self.next?;
        // SAFETY: a completed bio of the list; its `bi_next` links the rest.
        self.next = NonNull::new(unsafe { glue::vhost_blk_bio_next(bio.as_ptr()) });
        // INVARIANT: completed and now owned by the item.
        Some(DoneBio { bio })
    }
}

impl Drop for DoneBios {
    fn drop(&mut self) {
        // Release whatever the caller did not consume.
        for b in self.by_ref() {
            drop(b);
        }
    }
}

/// Runs `f` inside a block plug: the bios it submits reach the driver as
/// one batch when it returns (`blk_start_plug`/`blk_finish_plug`), as
/// io_uring does for a batch of submissions. A sleep inside `f` flushes
/// the plug early, as for any plugged task.
pub(crate) fn with_plug<R>(f: impl FnOnce() -> R) -> R {
    let mut plug = core::mem::MaybeUninit::<kernel::bindings::blk_plug>::uninit();
    // SAFETY: `plug` lives in this frame and does not move; it is finished
    // below, on this task, before the frame returns.
    unsafe { kernel::bindings::blk_start_plug(plug.as_mut_ptr()) };
    let r = f();
    // SAFETY: started above on this task and not yet finished.
    unsafe { kernel::bindings::blk_finish_plug(plug.as_mut_ptr()) };
    r
}
