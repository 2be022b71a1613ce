// SPDX-License-Identifier: GPL-2.0

//! [`UserMemory`] for the kernel: the owner's address space, reached with
//! page faults disabled, and the owner's slow path that faults it in.
//!
//! C header: [`include/linux/uaccess.h`](srctree/include/linux/uaccess.h).
//!
//! A shared worker must never sleep on one owner's memory: a page that is
//! not present may be waiting for userfaultfd (postcopy migration, or a
//! VMM that never answers), for a FUSE server or for swap. So the worker
//! copies with `copy_{from,to}_user_nofault` and `get_user`/`put_user`
//! under `pagefault_disable()`: a page that is not present fails at once,
//! and [`OwnerMemory`] records the range. The queue then waits for its
//! owner's slow path ([`fault_in`], on a thread of the owner) and tries
//! again.

use super::glue;
use crate::vcore::memory::{Fault, UserMemory};
use core::cell::Cell;
use core::ffi::c_void;

/// A range of the owner's address space that a copy or a pin could not
/// reach without faulting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UserRange {
    /// The first user address.
    pub(crate) addr: u64,
    /// Its length in bytes, at least 1.
    pub(crate) len: u64,
    /// Whether the device writes it (the page must be writable).
    pub(crate) write: bool,
}

impl UserRange {
    /// Whether `[addr, addr + len)` shares a byte with this range.
    fn overlaps(&self, addr: u64, len: u64) -> bool {
        let end = self.addr.saturating_add(self.len);
        addr < end && self.addr < addr.saturating_add(len.max(1))
    }
}

/// The address space of the current task (a worker that adopted the
/// owner's mm with [`super::worker::MmSlot`]), reached without faulting.
///
/// A failed access that may be only a page not present is recorded: the
/// caller takes it with [`OwnerMemory::take_stall`] and hands it to the
/// owner's slow path. A failure inside `bad`, a range the slow path could
/// not fault in, is the owner's error and is not recorded.
pub(crate) struct OwnerMemory {
    stall: Cell<Option<UserRange>>,
    bad: Option<UserRange>,
}

impl OwnerMemory {
    /// Access that treats faults inside `bad` as errors.
    pub(crate) fn new(bad: Option<UserRange>) -> Self {
        Self {
            stall: Cell::new(None),
            bad,
        }
    }

    /// A failed access of `[addr, addr + len)`: recorded as a stall unless
    /// it lies in the known bad range (the first stall wins).
    pub(crate) fn would_fault(&self, addr: u64, len: u64, write: bool) -> Fault {
        if self.bad.is_some_and(|b| b.overlaps(addr, len)) {
            return Fault;
        }
        if self.stall.get().is_none() {
            self.stall.set(Some(UserRange {
                addr,
                len: len.max(1),
                write,
            }));
        }
        Fault
    }

    /// Whether an access failed for a page that may only be absent.
    pub(crate) fn stalled(&self) -> bool {
        self.stall.get().is_some()
    }

    /// The range to fault in, if an access failed for it.
    pub(crate) fn take_stall(&self) -> Option<UserRange> {
        self.stall.take()
    }
}

fn uaddr(addr: u64) -> Option<usize> {
    usize::try_from(addr).ok()
}

impl UserMemory for OwnerMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let len = buf.len() as u64;
        let Some(ua) = uaddr(addr) else {
            return Err(Fault);
        };
        // SAFETY: `buf` is valid for writes of its length; the source is
        // a user address, checked by the function, which fails instead of
        // faulting.
        let r = unsafe {
            kernel::bindings::copy_from_user_nofault(
                buf.as_mut_ptr().cast(),
                ua as *const c_void,
                buf.len(),
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(self.would_fault(addr, len, false))
        }
    }

    fn write(&self, addr: u64, buf: &[u8]) -> Result<(), Fault> {
        let len = buf.len() as u64;
        let Some(ua) = uaddr(addr) else {
            return Err(Fault);
        };
        // SAFETY: `buf` is valid for reads of its length; the destination
        // is a user address, checked by the function, which fails instead
        // of faulting.
        let r = unsafe {
            kernel::bindings::copy_to_user_nofault(
                ua as *mut c_void,
                buf.as_ptr().cast(),
                buf.len(),
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(self.would_fault(addr, len, true))
        }
    }

    /// One 16-bit load (`get_user`): a copy could see a concurrent update
    /// half done.
    fn read_u16(&self, addr: u64) -> Result<u16, Fault> {
        let Some(ua) = uaddr(addr) else {
            return Err(Fault);
        };
        let mut v = 0u16;
        // SAFETY: `get_user` checks the user address itself and turns a
        // fault into an error (page faults are disabled around it); `v` is
        // a live, writable u16.
        match unsafe { glue::vhost_blk_get_user_le16(ua as *const c_void, &mut v) } {
            0 => Ok(v),
            _ => Err(self.would_fault(addr, 2, false)),
        }
    }

    /// One 16-bit store (`put_user`), so that the driver never sees half
    /// of a new index.
    fn write_u16(&self, addr: u64, v: u16) -> Result<(), Fault> {
        let Some(ua) = uaddr(addr) else {
            return Err(Fault);
        };
        // SAFETY: `put_user` checks the user address itself and turns a
        // fault into an error (page faults are disabled around it).
        match unsafe { glue::vhost_blk_put_user_le16(ua as *mut c_void, v) } {
            0 => Ok(()),
            _ => Err(self.would_fault(addr, 2, true)),
        }
    }
}

/// What [`fault_in`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultIn {
    /// Every page of the range was present at some point: try again.
    Done,
    /// A page cannot be faulted in (not mapped, or not writable): an
    /// access there is the owner's error.
    Bad,
    /// A signal (or the device stopping) interrupted the wait.
    Interrupted,
}

/// Faults `range` in for the current task, waiting as long as that takes
/// (a userfaultfd or FUSE server, swap), interruptibly. Must run on a
/// thread of the owner (its slow path), whose address space is the
/// owner's.
pub(crate) fn fault_in(range: &UserRange) -> FaultIn {
    const CHUNK: usize = 64;
    const PAGE: u64 = 4096;
    let Some(end) = range.addr.checked_add(range.len) else {
        return FaultIn::Bad;
    };
    let mut page = range.addr & !(PAGE - 1);
    let mut flags = kernel::bindings::FOLL_INTERRUPTIBLE;
    if range.write {
        flags |= kernel::bindings::FOLL_WRITE;
    }
    while page < end {
        let want = ((end - page).div_ceil(PAGE)).min(CHUNK as u64);
        let mut pages = [core::ptr::null_mut::<kernel::bindings::page>(); CHUNK];
        let Ok(start) = usize::try_from(page) else {
            return FaultIn::Bad;
        };
        // SAFETY: `pages` holds `CHUNK` >= `want` entries; the range is in
        // the current task's address space, which the function locks and
        // faults in itself.
        let n = unsafe {
            kernel::bindings::pin_user_pages_unlocked(
                start as _,
                want as _,
                pages.as_mut_ptr(),
                flags,
            )
        };
        if n <= 0 {
            let interrupted = n == -(kernel::bindings::EINTR as isize)
                || n == -(kernel::bindings::ERESTARTSYS as isize);
            return if interrupted {
                FaultIn::Interrupted
            } else {
                FaultIn::Bad
            };
        }
        // SAFETY: the first `n` entries were pinned just now, and only
        // pinned to be faulted in.
        unsafe { kernel::bindings::unpin_user_pages(pages.as_mut_ptr(), n as _) };
        page += n as u64 * PAGE;
    }
    FaultIn::Done
}
