// SPDX-License-Identifier: GPL-2.0

//! Bios built from the owner's pages, and the list their completions come
//! back on.
//!
//! C header: [`include/linux/bio.h`](srctree/include/linux/bio.h).
//!
//! Every bio comes from the module's bioset, carries an opaque token (which
//! request it serves) and, on completion, is pushed by `glue.c` onto its
//! queue's [`BioList`] and the worker is woken. Pages are unpinned (and
//! dirtied) by the worker in process context, never in the completion
//! interrupt.

use super::bdev::BdevFile;
use super::cgroup::Blkcg;
use super::glue::{self, bio, vhost_blk_bio_list};
use super::wake::WakeTarget;
use core::marker::PhantomData;
use core::ptr::NonNull;
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
        // every device drains before its last reference goes, and devices
        // keep the module loaded while they have bios.
        unsafe { glue::vhost_blk_bioset_exit() };
    }
}

/// Waits, when dropped, for the grace-period callbacks that free wake-up
/// targets and completion lists (`rcu_barrier`): the module's last field,
/// so that no callback of its runs after it is unloaded.
pub(crate) struct RcuBarrier;

impl Drop for RcuBarrier {
    fn drop(&mut self) {
        // SAFETY: process context (module exit); no preconditions.
        unsafe { glue::vhost_blk_rcu_barrier() };
    }
}

/// What a bio does (`enum vhost_blk_bio_kind` of `glue.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum BioKind {
    /// `REQ_OP_READ`: the device writes the pages.
    Read = 0,
    /// `REQ_OP_WRITE`.
    Write = 1,
    /// `REQ_OP_WRITE | REQ_FUA`: durable when it completes (the block
    /// layer adds a post-flush on devices without FUA).
    WriteFua = 2,
    /// An empty `REQ_OP_WRITE | REQ_PREFLUSH`.
    Flush = 3,
    /// `REQ_OP_DISCARD` of a range.
    Discard = 4,
    /// `REQ_OP_WRITE_ZEROES` of a range, which may deallocate.
    WriteZeroes = 5,
    /// `REQ_OP_WRITE_ZEROES | REQ_NOUNMAP` of a range.
    WriteZeroesNoUnmap = 6,
    /// A range still to be written from the zero page: never submitted.
    ZeroRange = 7,
}

impl BioKind {
    fn from_raw(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Read,
            1 => Self::Write,
            2 => Self::WriteFua,
            3 => Self::Flush,
            4 => Self::Discard,
            5 => Self::WriteZeroes,
            6 => Self::WriteZeroesNoUnmap,
            7 => Self::ZeroRange,
            _ => return None,
        })
    }
}

/// Why a bio submitted with `REQ_NOWAIT` came back undone
/// (`enum vhost_blk_bio_bounce` of `glue.h`, whose `NONE` is 0 and whose
/// other values are 1 and 2, in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bounce {
    /// The device would have made the submitter wait: no free tag, a
    /// frozen queue, a split.
    NoRoom,
    /// The device no longer takes `REQ_NOWAIT`.
    NowaitRefused,
}

/// `struct vhost_blk_bio_args` of `glue.h`.
#[repr(C)]
pub(crate) struct BioArgs {
    bdev_file: *mut glue::file,
    list: *mut vhost_blk_bio_list,
    blkcg: *mut glue::cgroup_subsys_state,
    token: core::ffi::c_ulong,
    sector: u64,
    bytes: u32,
    nr_vecs: u16,
    kind: u8,
    nowait: bool,
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

    /// Signals `target` on completions (or nobody, with `None`). The list
    /// takes a reference of its own; a target replaced here may still be
    /// signalled by a completion in progress, which keeps it alive until
    /// it is done (its last reference goes after a grace period).
    pub(crate) fn set_wake(&self, target: Option<&WakeTarget>) {
        let wake = target.map_or(core::ptr::null_mut(), |t| t.as_ptr());
        // SAFETY: the list is live; `wake` is null or a live target, of
        // which the C side takes its own reference.
        unsafe { glue::vhost_blk_bio_list_set_wake(self.list.as_ptr(), wake) };
    }

    /// Whether no completion is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        // SAFETY: the list is live.
        unsafe { glue::vhost_blk_bio_list_empty(self.list.as_ptr()) }
    }

    /// Whether a bio came back from a full disk (`BLK_STS_AGAIN`) since
    /// the last [`Self::take`]: submitting more now would bounce too.
    pub(crate) fn bounced(&self) -> bool {
        // SAFETY: the list is live.
        unsafe { glue::vhost_blk_bio_list_bounced(self.list.as_ptr()) }
    }

    /// Takes every completed bio, and clears [`Self::bounced`].
    pub(crate) fn take(&self) -> BioStack<DoneBio> {
        // SAFETY: the list is live; the bios taken are completed bios of
        // this module, now owned by the caller, linked by `bi_next`.
        let head = unsafe { glue::vhost_blk_bio_list_take(self.list.as_ptr()) };
        // INVARIANT: completed bios, owned by nothing else now.
        BioStack {
            head: NonNull::new(head),
            _owns: PhantomData,
        }
    }
}

impl Drop for BioList {
    fn drop(&mut self) {
        // SAFETY: owned by this value, freed once (after a grace period,
        // as completions may still be leaving it). Queues drain all bios
        // before dropping their list; glue.c warns if one is left.
        unsafe { glue::vhost_blk_bio_list_free(self.list.as_ptr()) };
    }
}

/// Why pages could not be added to a bio without waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PinError {
    /// The first page is not present (or not writable for the device to
    /// write), or the owner's `mmap_lock` is taken: the owner's slow path
    /// must fault the range in.
    WouldBlock,
}

/// A bio being built, not yet submitted.
///
/// # Invariants
///
/// `bio` is a live bio of the module's bioset, owned by this value, whose
/// pages (if any) are pinned.
#[repr(transparent)]
pub(crate) struct Bio {
    bio: NonNull<bio>,
}

// SAFETY: a bio being built may be moved to and released on any thread.
unsafe impl Send for Bio {}

/// Where a new bio goes and who pays for it.
#[derive(Clone, Copy)]
pub(crate) struct BioTarget<'a> {
    /// The backing device.
    pub(crate) bdev: &'a BdevFile,
    /// The list it completes onto.
    pub(crate) list: &'a BioList,
    /// The cgroup charged for it.
    pub(crate) blkcg: Option<&'a Blkcg>,
    /// Whether it is submitted with `REQ_NOWAIT`.
    pub(crate) nowait: bool,
}

impl Bio {
    /// A bio of `kind` for up to `nr_vecs` pages at `sector` (or, for the
    /// range kinds, covering `bytes` without pages), completing onto the
    /// target's list with `token`. Waits for memory rather than failing
    /// (the bioset is a mempool); `None` only if the block layer refuses
    /// the allocation all the same.
    pub(crate) fn new(
        to: &BioTarget<'_>,
        kind: BioKind,
        nr_vecs: u32,
        sector: u64,
        bytes: u32,
        token: usize,
    ) -> Option<Self> {
        let args = BioArgs {
            bdev_file: to.bdev.as_ptr(),
            list: to.list.list.as_ptr(),
            blkcg: to.blkcg.map_or(core::ptr::null_mut(), |c| c.as_ptr()),
            token: token as _,
            sector,
            bytes,
            nr_vecs: nr_vecs.min(MAX_VECS) as u16,
            kind: kind as u8,
            nowait: to.nowait,
        };
        // SAFETY: `args` is a valid `struct vhost_blk_bio_args`: a live
        // block device file and a live list, both outliving the bio (queues
        // drain bios before dropping either), and a cgroup reference the
        // queue holds as long (the bio takes its own reference of it).
        let bio = unsafe { glue::vhost_blk_bio_alloc(&args) };
        // INVARIANT: a fresh bio with no pages, if any.
        NonNull::new(bio).map(|bio| Self { bio })
    }

    /// Pins the owner's pages of `[uaddr, uaddr + len)` into the bio until
    /// it is full, without faulting and without waiting. Returns the bytes
    /// added (0 when full). Must run under the owner's mm.
    pub(crate) fn add_user(
        &mut self,
        uaddr: u64,
        len: u32,
        device_writes: bool,
    ) -> Result<u32, PinError> {
        let addr = usize::try_from(uaddr).map_err(|_| PinError::WouldBlock)?;
        // SAFETY: the bio is live and not submitted; pinning reaches only
        // the current mm.
        let r = unsafe {
            glue::vhost_blk_bio_add_user(self.bio.as_ptr(), addr as _, len, device_writes)
        };
        u32::try_from(r).map_err(|_| PinError::WouldBlock)
    }

    /// Adds the shared zero page for up to `len` bytes, until the bio is
    /// full; returns the bytes added. A bio holds either user pages or
    /// zero pages, never both (glue.c refuses to mix them).
    pub(crate) fn add_zeroes(&mut self, len: u32) -> u32 {
        // SAFETY: the bio is live and not submitted.
        unsafe { glue::vhost_blk_bio_add_zeroes(self.bio.as_ptr(), len) }
    }

    /// The token it was created with.
    pub(crate) fn token(&self) -> usize {
        // SAFETY: live by the type invariant.
        unsafe { glue::vhost_blk_bio_token(self.bio.as_ptr()) as usize }
    }

    /// For a [`BioKind::ZeroRange`] record: the range left to write,
    /// `(sector, bytes)`.
    pub(crate) fn range(&self) -> (u64, u32) {
        range_of(self.bio)
    }

    /// For a [`BioKind::ZeroRange`] record: moves past `bytes` that are
    /// now being written.
    pub(crate) fn advance_range(&mut self, bytes: u32) {
        // SAFETY: the bio is live, not submitted, and owned.
        unsafe { glue::vhost_blk_bio_advance_range(self.bio.as_ptr(), bytes) };
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

fn range_of(bio: NonNull<bio>) -> (u64, u32) {
    let (mut sector, mut bytes) = (0u64, 0u32);
    // SAFETY: `bio` is a live bio of the module (callers' invariants);
    // the out-pointers are valid for writes.
    unsafe { glue::vhost_blk_bio_range(bio.as_ptr(), &mut sector, &mut bytes) };
    (sector, bytes)
}

/// A completed bio taken from a [`BioList`].
///
/// # Invariants
///
/// `bio` is a completed bio of the module's bioset, owned by this value.
pub(crate) struct DoneBio {
    bio: NonNull<bio>,
}

// SAFETY: a completed bio may be moved to and released on any thread in
// process context.
unsafe impl Send for DoneBio {}

impl DoneBio {
    /// The token it was created with.
    pub(crate) fn token(&self) -> usize {
        // SAFETY: live by the type invariant.
        unsafe { glue::vhost_blk_bio_token(self.bio.as_ptr()) as usize }
    }

    /// What it did.
    pub(crate) fn kind(&self) -> Option<BioKind> {
        // SAFETY: live by the type invariant.
        BioKind::from_raw(unsafe { glue::vhost_blk_bio_kind(self.bio.as_ptr()) })
    }

    /// The range it covered, for the range kinds: `(sector, bytes)`.
    pub(crate) fn range(&self) -> (u64, u32) {
        range_of(self.bio)
    }

    /// 0, or the negative errno of its status.
    pub(crate) fn errno(&self) -> i32 {
        // SAFETY: live by the type invariant.
        unsafe { glue::vhost_blk_bio_errno(self.bio.as_ptr()) }
    }

    /// Why it came back undone, if it was submitted with `REQ_NOWAIT` and
    /// the device would have waited: it must then be submitted again
    /// ([`DoneBio::retry_nowait`], [`DoneBio::resubmit`]).
    pub(crate) fn bounce(&self) -> Option<Bounce> {
        // SAFETY: live by the type invariant.
        match unsafe { glue::vhost_blk_bio_bounce(self.bio.as_ptr()) } {
            1 => Some(Bounce::NoRoom),
            2 => Some(Bounce::NowaitRefused),
            _ => None,
        }
    }

    /// How many times [`DoneBio::retry_nowait`] submitted it again.
    pub(crate) fn nowait_retries(&self) -> u32 {
        // SAFETY: live by the type invariant.
        unsafe { glue::vhost_blk_bio_nowait_retries(self.bio.as_ptr()) }
    }

    /// Submits it again as it was, still with `REQ_NOWAIT`: never waits;
    /// if the device still has no room, it comes back again. It comes back
    /// through its list.
    pub(crate) fn retry_nowait(self) {
        self.submit_again(true);
    }

    /// Submits it again as it was, without `REQ_NOWAIT`: may wait for the
    /// device (a free tag, a throttle). It comes back through its list.
    pub(crate) fn resubmit(self) {
        self.submit_again(false);
    }

    fn submit_again(self, nowait: bool) {
        let bio = self.bio;
        core::mem::forget(self);
        // SAFETY: a completed bio owned by this value, whose pages are
        // still pinned; rearmed, it is a complete bio again, and ownership
        // passes to the block layer until it completes onto its list.
        unsafe {
            glue::vhost_blk_bio_rearm(bio.as_ptr(), nowait);
            glue::vhost_blk_bio_submit(bio.as_ptr());
        }
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

/// Turns an owned bio wrapper into its pointer and back, for [`BioStack`].
///
/// # Safety
///
/// `into_raw` must hand over ownership of a live bio of the module's
/// bioset, and `from_raw` must be given only pointers from `into_raw` of
/// the same type.
pub(crate) unsafe trait OwnedBio {
    /// Gives up ownership of the bio.
    fn into_raw(self) -> NonNull<bio>;
    /// Takes ownership back.
    ///
    /// # Safety
    ///
    /// `bio` must come from [`OwnedBio::into_raw`] of this type and not
    /// have been taken back since.
    unsafe fn from_raw(bio: NonNull<bio>) -> Self;
}

/// Implements [`OwnedBio`] for wrappers that are exactly their pointer.
macro_rules! owned_bio {
    ($($t:ident),*) => {$(
        // SAFETY: ownership moves with the pointer; `from_raw` restores the
        // value `into_raw` took apart.
        unsafe impl OwnedBio for $t {
            fn into_raw(self) -> NonNull<bio> {
                let bio = self.bio;
                core::mem::forget(self);
                bio
            }

            unsafe fn from_raw(bio: NonNull<bio>) -> Self {
                // INVARIANT: the caller hands back what `into_raw` gave up.
                Self { bio }
            }
        }
    )*};
}
owned_bio!(Bio, DoneBio);

/// Owned bios linked by their `bi_next`, last in first out: completed bios
/// taken from a list, bios waiting to be submitted again, zero ranges
/// waiting to be written. Needs no memory of its own.
///
/// # Invariants
///
/// Every bio reachable from `head` through `bi_next` is owned by this
/// value, as a `B`, and by nothing else.
pub(crate) struct BioStack<B: OwnedBio> {
    head: Option<NonNull<bio>>,
    _owns: PhantomData<B>,
}

// SAFETY: the bios are owned and may be moved between threads as `B` may.
unsafe impl<B: OwnedBio + Send> Send for BioStack<B> {}

impl<B: OwnedBio> BioStack<B> {
    /// An empty stack.
    pub(crate) const fn new() -> Self {
        Self {
            head: None,
            _owns: PhantomData,
        }
    }

    /// Whether it holds nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// Adds `b` on top.
    pub(crate) fn push(&mut self, b: B) {
        let bio = b.into_raw();
        let next = self.head.map_or(core::ptr::null_mut(), |h| h.as_ptr());
        // SAFETY: `bio` is live and now owned by this stack.
        unsafe { glue::vhost_blk_bio_set_next(bio.as_ptr(), next) };
        // INVARIANT: `bio` links the rest, all owned here.
        self.head = Some(bio);
    }

    /// Takes the top one.
    pub(crate) fn pop(&mut self) -> Option<B> {
        let bio = self.head?;
        // SAFETY: an owned bio of this stack; its `bi_next` links the rest,
        // and is cleared: the block layer links a submitted bio's requests
        // through it.
        unsafe {
            self.head = NonNull::new(glue::vhost_blk_bio_next(bio.as_ptr()));
            glue::vhost_blk_bio_set_next(bio.as_ptr(), core::ptr::null_mut());
        }
        // SAFETY: pushed as a `B` (or taken from a list as one), and no
        // longer reachable from the stack.
        Some(unsafe { B::from_raw(bio) })
    }

    /// The top one, left in place.
    pub(crate) fn peek_mut(&mut self) -> Option<&mut B>
    where
        B: TopRef,
    {
        let head = self.head.as_mut()?;
        Some(B::top_ref(head))
    }
}

/// Bio wrappers that are exactly their pointer, so that the top of a
/// [`BioStack`] can be borrowed in place.
pub(crate) trait TopRef: OwnedBio {
    /// The wrapper over `bio`, borrowed.
    fn top_ref(bio: &mut NonNull<bio>) -> &mut Self;
}

impl TopRef for Bio {
    fn top_ref(bio: &mut NonNull<bio>) -> &mut Self {
        // SAFETY: `Bio` is `repr(transparent)` over a `NonNull<bio>`, so
        // it has the same layout; the stack owns the bio, and the
        // borrow keeps the stack from being used meanwhile.
        unsafe { &mut *(bio as *mut NonNull<bio>).cast::<Bio>() }
    }
}

impl<B: OwnedBio> Iterator for BioStack<B> {
    type Item = B;

    fn next(&mut self) -> Option<B> {
        self.pop()
    }
}

impl<B: OwnedBio> Drop for BioStack<B> {
    fn drop(&mut self) {
        // Release whatever the owner did not consume.
        while let Some(b) = self.pop() {
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
