// SPDX-License-Identifier: GPL-2.0

//! Bios built from the owner's pages, and submitted again when they come
//! back undone.
//!
//! C header: [`include/linux/bio.h`](srctree/include/linux/bio.h).
//!
//! Every bio comes from the module's bioset, whose front pad
//! ([`BioPad`]) says which request it serves and how to submit it again.
//! On completion it is pushed onto its queue's [`BioList`] and the worker
//! is woken; pages are unpinned (and dirtied) by the worker in process
//! context, never in the completion interrupt.

use super::bdev::BdevFile;
use super::bio_list::{BioList, BLK_STS_AGAIN, END_IO};
use super::cgroup::Blkcg;
use super::glue;
use core::marker::PhantomData;
use core::ptr::{addr_of_mut, NonNull};
use kernel::bindings::{self, bio};
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::types::Opaque;

/// `REQ_NOWAIT`: fail with `BLK_STS_AGAIN` rather than wait.
pub(super) const REQ_NOWAIT: u32 = 1 << bindings::req_flag_bits___REQ_NOWAIT;
const REQ_SYNC: u32 = 1 << bindings::req_flag_bits___REQ_SYNC;
const REQ_IDLE: u32 = 1 << bindings::req_flag_bits___REQ_IDLE;
const REQ_FUA: u32 = 1 << bindings::req_flag_bits___REQ_FUA;
const REQ_PREFLUSH: u32 = 1 << bindings::req_flag_bits___REQ_PREFLUSH;
const REQ_NOUNMAP: u32 = 1 << bindings::req_flag_bits___REQ_NOUNMAP;
const REQ_ALLOC_CACHE: u32 = 1 << bindings::req_flag_bits___REQ_ALLOC_CACHE;
/// `BLK_STS_NOTSUPP` (a macro with a cast; `glue.c` asserts the value).
const BLK_STS_NOTSUPP: u8 = 1;

/// What the module keeps in front of each of its bios (the bioset's front
/// pad): written when the bio is allocated, read by the worker.
#[repr(C)]
struct BioPad {
    /// Which request it serves (opaque here).
    token: u64,
    /// Where it was submitted, for a resubmission.
    iter: bindings::bvec_iter,
    /// The cgroup charged for it, or null; the queue holds a reference
    /// for as long as the bio lives.
    blkcg: *mut bindings::cgroup_subsys_state,
    kind: BioKind,
    /// Whether it holds pinned user pages.
    pinned: bool,
    /// Times submitted again with `REQ_NOWAIT` after coming back.
    nowait_retries: u8,
    bio: bio,
}

/// The front pad of `bio`.
///
/// # Safety
///
/// `bio` is a bio of the module's bioset.
unsafe fn pad(bio: NonNull<bio>) -> *mut BioPad {
    // SAFETY: the bioset puts a `BioPad`'s fields before each bio (its
    // front pad is the offset of `bio` in `BioPad`).
    unsafe {
        bio.as_ptr()
            .cast::<u8>()
            .sub(core::mem::offset_of!(BioPad, bio))
    }
    .cast()
}

/// The storage of the module's bioset.
struct BioSetCell(Opaque<bindings::bio_set>);

// SAFETY: initialised before any bio is allocated and torn down after the
// last is freed ([`BioSet`]); the block layer synchronises the rest.
unsafe impl Sync for BioSetCell {}

static BIO_SET: BioSetCell = BioSetCell(Opaque::uninit());

/// The module's bioset, from which every vhost-blk bio is allocated.
///
/// # Invariants
///
/// `BIO_SET` is initialised while this value exists, and only the
/// module's init creates one.
pub(crate) struct BioSet(());

impl BioSet {
    /// Initialises the bioset: a mempool of 64 bios with their vectors,
    /// and a per-CPU cache of small bios.
    pub(crate) fn init() -> Result<Self> {
        let flags = bindings::BIOSET_NEED_BVECS | bindings::BIOSET_PERCPU_CACHE;
        // SAFETY: called once, from module init, before any bio is
        // allocated.
        kernel::error::to_result(unsafe {
            bindings::bioset_init(
                BIO_SET.0.get(),
                64,
                core::mem::offset_of!(BioPad, bio) as _,
                flags as _,
            )
        })?;
        // INVARIANT: initialised above.
        Ok(Self(()))
    }
}

impl Drop for BioSet {
    fn drop(&mut self) {
        // SAFETY: initialised (type invariant) and no bio is outstanding:
        // every device drains before its last reference goes, and devices
        // keep the module loaded while they have bios.
        unsafe { bindings::bioset_exit(BIO_SET.0.get()) };
    }
}

/// What a bio does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum BioKind {
    /// `REQ_OP_READ`: the device writes the pages.
    Read,
    /// `REQ_OP_WRITE`.
    Write,
    /// `REQ_OP_WRITE | REQ_FUA`: durable when it completes (the block
    /// layer adds a post-flush on devices without FUA).
    WriteFua,
    /// An empty `REQ_OP_WRITE | REQ_PREFLUSH`.
    Flush,
    /// `REQ_OP_DISCARD` of a range.
    Discard,
    /// `REQ_OP_WRITE_ZEROES` of a range, which may deallocate.
    WriteZeroes,
    /// `REQ_OP_WRITE_ZEROES | REQ_NOUNMAP` of a range.
    WriteZeroesNoUnmap,
    /// A range still to be written from the zero page: never submitted.
    ZeroRange,
}

impl BioKind {
    /// The operation and flags it is submitted with.
    fn opf(self) -> u32 {
        // Writes go as O_DIRECT writes do: not held back by writeback
        // throttling.
        let write = bindings::req_op_REQ_OP_WRITE | REQ_SYNC | REQ_IDLE;
        match self {
            Self::Read => bindings::req_op_REQ_OP_READ,
            Self::Write => write,
            Self::WriteFua => write | REQ_FUA,
            Self::Flush => bindings::req_op_REQ_OP_WRITE | REQ_PREFLUSH,
            Self::Discard => bindings::req_op_REQ_OP_DISCARD,
            Self::WriteZeroes => bindings::req_op_REQ_OP_WRITE_ZEROES,
            Self::WriteZeroesNoUnmap => bindings::req_op_REQ_OP_WRITE_ZEROES | REQ_NOUNMAP,
            Self::ZeroRange => bindings::req_op_REQ_OP_WRITE,
        }
    }

    /// Whether it carries pages; the others cover a range without any.
    fn has_pages(self) -> bool {
        matches!(self, Self::Read | Self::Write | Self::WriteFua)
    }
}

/// Why a bio submitted with `REQ_NOWAIT` came back undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bounce {
    /// The device would have made the submitter wait (`BLK_STS_AGAIN`: no
    /// free tag, a frozen queue, a split).
    NoRoom,
    /// The device no longer takes `REQ_NOWAIT` (`BLK_STS_NOTSUPP`).
    NowaitRefused,
}

/// The most pages one bio holds (`BIO_MAX_VECS`).
pub(crate) const MAX_VECS: u32 = 256;

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
/// `bio` is a live bio of the module's bioset, with its [`BioPad`] set,
/// owned by this value, whose pages (if any) are pinned.
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
        token: u64,
    ) -> Option<Self> {
        let nr_vecs = if kind.has_pages() {
            nr_vecs.min(MAX_VECS) as u16
        } else {
            0
        };
        let mut opf = kind.opf() | REQ_ALLOC_CACHE;
        if to.nowait {
            opf |= REQ_NOWAIT;
        }
        // SAFETY: the block device outlives the file, which the queue
        // holds for longer than its bios.
        let bdev = unsafe { bindings::file_bdev(to.bdev.as_ptr().cast()) };
        // Small bios come from the bioset's per-CPU cache, as io_uring's
        // do: the worker allocates them, and frees them too
        // ([`DoneBio::release`]), always in process context, as the cache
        // requires. The block layer drops the flag for bios with more
        // vectors than fit inline. The first try does not reclaim: the
        // worker serves other queues. The mempool allocation that may
        // sleep does not fail; the request fails with IOERR if it ever
        // does.
        let alloc = |gfp: bindings::gfp_t| {
            // SAFETY: a live block device and the initialised bioset
            // (devices exist only while the module's `BioSet` does).
            unsafe { bindings::bio_alloc_bioset(bdev, nr_vecs, opf, gfp, BIO_SET.0.get()) }
        };
        let bio = NonNull::new(alloc(bindings::GFP_NOWAIT))
            .or_else(|| NonNull::new(alloc(bindings::GFP_KERNEL)))?;
        let blkcg = to
            .blkcg
            .map_or(core::ptr::null_mut(), |c| c.as_ptr().cast());
        // SAFETY: a fresh bio of the bioset, owned here: its front pad is
        // ours to write, and its fields the submitter's to set.
        unsafe {
            let pad = pad(bio);
            addr_of_mut!((*pad).token).write(token);
            addr_of_mut!((*pad).iter).write(core::mem::zeroed());
            addr_of_mut!((*pad).blkcg).write(blkcg);
            addr_of_mut!((*pad).kind).write(kind);
            addr_of_mut!((*pad).pinned).write(false);
            addr_of_mut!((*pad).nowait_retries).write(0);
            let b = bio.as_ptr();
            (*b).bi_iter.bi_sector = sector;
            if !kind.has_pages() {
                (*b).bi_iter.bi_size = bytes;
            }
            (*b).bi_end_io = END_IO;
            (*b).bi_private = to.list.as_private();
            // Charged to the owner's cgroup, not the shared worker's.
            if !blkcg.is_null() {
                bindings::bio_associate_blkg_from_css(b, blkcg);
            }
        }
        // INVARIANT: a fresh bio with its pad set and no pages.
        Some(Self { bio })
    }

    fn pad(&self) -> *mut BioPad {
        // SAFETY: a bio of the bioset (type invariant).
        unsafe { pad(self.bio) }
    }

    /// Pins the owner's pages of `[uaddr, uaddr + len)` into the bio, one
    /// vector per page, until it is full. Returns the bytes added (0 when
    /// full), or [`PinError::WouldBlock`] if the first page is not present
    /// (or, for the device to write, not writable). Must run under the
    /// owner's mm.
    ///
    /// `FOLL_NOFAULT`: this never faults a page in, so a shared worker
    /// never sleeps on the owner's memory (userfaultfd, FUSE, swap); the
    /// owner's slow path faults the range in and the worker retries. Where
    /// GUP-fast cannot pin a page, GUP falls back to a page-table walk
    /// under the owner's `mmap_lock` taken for reading: only a writer
    /// holding it can delay the worker.
    pub(crate) fn add_user(
        &mut self,
        uaddr: u64,
        len: u32,
        device_writes: bool,
    ) -> Result<u32, PinError> {
        let uaddr = usize::try_from(uaddr).map_err(|_| PinError::WouldBlock)?;
        let mut gup = bindings::FOLL_NOFAULT;
        if device_writes {
            gup |= bindings::FOLL_WRITE;
        }
        // GUP-fast walks `current->mm` unchecked: a worker that adopted no
        // address space has nothing to pin.
        // SAFETY: no preconditions.
        if unsafe { glue::vhost_blk_current_mm() }.is_null() {
            return Err(PinError::WouldBlock);
        }
        let b = self.bio.as_ptr();
        let mut pages = [core::ptr::null_mut::<bindings::page>(); 16];
        let mut done = 0u32;
        // SAFETY: the bio is live and owned, not submitted (type
        // invariant).
        let free_vecs = |b: *mut bio| unsafe { (*b).bi_max_vecs.saturating_sub((*b).bi_vcnt) };
        if free_vecs(b) == 0 {
            return Ok(0);
        }
        while done < len && free_vecs(b) > 0 {
            let addr = uaddr.wrapping_add(done as usize);
            let mut off = addr % PAGE_SIZE;
            let want = (off + (len - done) as usize)
                .div_ceil(PAGE_SIZE)
                .min(pages.len())
                .min(free_vecs(b) as usize);
            // SAFETY: `pages` has room for `want` pointers; the current task
            // has an mm (checked above), the only one pinning reaches.
            let n = unsafe {
                bindings::pin_user_pages_fast(addr - off, want as _, gup as _, pages.as_mut_ptr())
            };
            let Ok(n) = usize::try_from(n) else { break };
            if n == 0 {
                break;
            }
            // SAFETY: owned bio; its pad is ours.
            unsafe { (*self.pad()).pinned = true };
            for &page in &pages[..n] {
                let chunk = (len - done).min((PAGE_SIZE - off) as u32);
                // SAFETY: a vector is free (at most `free_vecs` were
                // pinned); the page is pinned and held by the bio until
                // `release`.
                unsafe { bindings::__bio_add_page(b, page, chunk, off as u32) };
                done += chunk;
                off = 0;
            }
            if n < want {
                break;
            }
        }
        if done == 0 && len != 0 {
            return Err(PinError::WouldBlock);
        }
        Ok(done)
    }

    /// Adds the shared zero page for up to `len` bytes, until the bio is
    /// full; returns the bytes added. Used to write zeroes on devices
    /// without a write-zeroes offload. A bio holds either user pages or
    /// zero pages, never both (the zero page is never unpinned).
    pub(crate) fn add_zeroes(&mut self, len: u32) -> u32 {
        let b = self.bio.as_ptr();
        // SAFETY: owned bio; its pad is ours.
        if unsafe { (*self.pad()).pinned } {
            return 0;
        }
        // SAFETY: no preconditions.
        let zero = unsafe { glue::vhost_blk_zero_page() };
        let mut done = 0u32;
        // SAFETY: the bio is live, owned and not submitted.
        while done < len && unsafe { (*b).bi_vcnt < (*b).bi_max_vecs } {
            let n = (len - done).min(PAGE_SIZE as u32);
            // SAFETY: a vector is free (checked above); the zero page is
            // never freed.
            unsafe { bindings::__bio_add_page(b, zero.cast(), n, 0) };
            done += n;
        }
        done
    }

    /// The token it was created with.
    pub(crate) fn token(&self) -> u64 {
        // SAFETY: the pad was set by `new` (type invariant).
        unsafe { (*self.pad()).token }
    }

    /// For a [`BioKind::ZeroRange`] record: the range left to write,
    /// `(sector, bytes)`.
    pub(crate) fn range(&self) -> (u64, u32) {
        // SAFETY: the bio is live and owned.
        let it = unsafe { &(*self.bio.as_ptr()).bi_iter };
        (it.bi_sector, it.bi_size)
    }

    /// For a [`BioKind::ZeroRange`] record: moves past `bytes` that are
    /// now being written.
    pub(crate) fn advance_range(&mut self, bytes: u32) {
        // SAFETY: the bio is live, owned and not submitted.
        let it = unsafe { &mut (*self.bio.as_ptr()).bi_iter };
        let bytes = bytes.min(it.bi_size);
        it.bi_sector += u64::from(bytes >> bindings::SECTOR_SHIFT);
        it.bi_size -= bytes;
    }

    /// Submits the bio; it comes back through its [`BioList`].
    pub(crate) fn submit(self) {
        let bio = self.bio;
        core::mem::forget(self);
        // SAFETY: the bio is live and complete; its starting point is kept
        // for a resubmission, and ownership passes to the block layer until
        // it completes onto the list.
        unsafe {
            (*pad(bio)).iter = (*bio.as_ptr()).bi_iter;
            bindings::submit_bio(bio.as_ptr());
        }
    }
}

impl Drop for Bio {
    fn drop(&mut self) {
        // SAFETY: an unsubmitted bio owned by this value: unpin its pages
        // and free it, once.
        unsafe { release(self.bio, false) };
    }
}

/// Unpins the bio's user pages, dirtying them if the device wrote them
/// (the page lock is skipped for pages already dirty), and frees it.
/// Sleeps.
///
/// # Safety
///
/// `bio` is a bio of the module owned by the caller, not in flight, and
/// released once.
unsafe fn release(bio: NonNull<bio>, dirty: bool) {
    let b = bio.as_ptr();
    // SAFETY: the caller's bio; its vectors are the pages added by
    // `add_user`, one page each.
    unsafe {
        if (*pad(bio)).pinned {
            for i in 0..usize::from((*b).bi_vcnt) {
                let bv = (*b).bi_io_vec.add(i);
                bindings::unpin_user_pages_dirty_lock(addr_of_mut!((*bv).bv_page), 1, dirty);
            }
        }
        bindings::bio_put(b);
    }
}

/// A completed bio taken from a [`BioList`].
///
/// # Invariants
///
/// `bio` is a completed bio of the module's bioset, with its [`BioPad`]
/// set, owned by this value.
pub(crate) struct DoneBio {
    bio: NonNull<bio>,
}

// SAFETY: a completed bio may be moved to and released on any thread in
// process context.
unsafe impl Send for DoneBio {}

impl DoneBio {
    fn pad(&self) -> &BioPad {
        // SAFETY: a completed bio of the bioset owned here (type
        // invariant): nobody else writes its pad.
        unsafe { &*pad(self.bio) }
    }

    fn bio(&self) -> &bio {
        // SAFETY: completed and owned (type invariant).
        unsafe { self.bio.as_ref() }
    }

    /// The token it was created with.
    pub(crate) fn token(&self) -> u64 {
        self.pad().token
    }

    /// What it did.
    pub(crate) fn kind(&self) -> BioKind {
        self.pad().kind
    }

    /// The range it covered, for the range kinds, as it was submitted:
    /// `(sector, bytes)`.
    pub(crate) fn range(&self) -> (u64, u32) {
        let it = &self.pad().iter;
        (it.bi_sector, it.bi_size)
    }

    /// 0, or the negative errno of its status.
    pub(crate) fn errno(&self) -> i32 {
        // SAFETY: no preconditions.
        unsafe { bindings::blk_status_to_errno(self.bio().bi_status) }
    }

    /// Why it came back undone, if it was submitted with `REQ_NOWAIT` and
    /// the device would have waited: it must then be submitted again
    /// ([`DoneBio::retry_nowait`], [`DoneBio::resubmit`]).
    pub(crate) fn bounce(&self) -> Option<Bounce> {
        let bio = self.bio();
        if bio.bi_opf & REQ_NOWAIT == 0 {
            return None;
        }
        match bio.bi_status {
            BLK_STS_AGAIN => Some(Bounce::NoRoom),
            BLK_STS_NOTSUPP => Some(Bounce::NowaitRefused),
            _ => None,
        }
    }

    /// How many times [`DoneBio::retry_nowait`] submitted it again.
    pub(crate) fn nowait_retries(&self) -> u32 {
        self.pad().nowait_retries.into()
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

    /// Makes the bio ready to be submitted again, as it was, and with
    /// `REQ_NOWAIT` only if `nowait`, and submits it. Its iterator goes
    /// back to where it was submitted, before a partition's offset was
    /// added, so `BIO_REMAPPED` goes too: `submit_bio_noacct()` then remaps
    /// it again instead of sending it to the partition-relative sector of
    /// the whole disk. Completion dropped its cgroup association
    /// (`bio_endio`), so it is charged to the owner's cgroup again.
    fn submit_again(self, nowait: bool) {
        let bio = self.bio;
        core::mem::forget(self);
        // SAFETY: a completed bio owned here, whose pages are still
        // pinned: nobody else touches it until it is submitted, and then
        // ownership passes to the block layer until it completes onto its
        // list.
        unsafe {
            let (b, pad) = (bio.as_ptr(), pad(bio));
            (*b).bi_iter = (*pad).iter;
            (*b).bi_status = 0;
            if nowait {
                (*pad).nowait_retries = (*pad).nowait_retries.saturating_add(1);
            } else {
                (*b).bi_opf &= !REQ_NOWAIT;
            }
            (*b).bi_next = core::ptr::null_mut();
            (*b).bi_flags &= !((1 << bindings::BIO_QUIET) | (1 << bindings::BIO_REMAPPED)) as u16;
            if !(*pad).blkcg.is_null() {
                bindings::bio_associate_blkg_from_css(b, (*pad).blkcg);
            }
            bindings::submit_bio(b);
        }
    }

    /// Unpins its pages, dirtying them if the device wrote them, and frees
    /// it. Sleeps (process context only).
    pub(crate) fn release(self, dirty: bool) {
        let bio = self.bio;
        core::mem::forget(self);
        // SAFETY: owned and completed; released once.
        unsafe { release(bio, dirty) };
    }
}

impl Drop for DoneBio {
    fn drop(&mut self) {
        // SAFETY: owned and completed; released once.
        unsafe { release(self.bio, true) };
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

impl BioStack<DoneBio> {
    /// The completed bios linked from `head` by their `bi_next`.
    ///
    /// # Safety
    ///
    /// Every bio so linked is a completed bio of the module, with its pad
    /// set, owned by nothing else from now on.
    pub(super) unsafe fn from_completed(head: Option<NonNull<bio>>) -> Self {
        // INVARIANT: as the caller promises.
        Self {
            head,
            _owns: PhantomData,
        }
    }
}

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
        unsafe { (*bio.as_ptr()).bi_next = next };
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
            self.head = NonNull::new((*bio.as_ptr()).bi_next);
            (*bio.as_ptr()).bi_next = core::ptr::null_mut();
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
