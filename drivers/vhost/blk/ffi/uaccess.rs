// SPDX-License-Identifier: GPL-2.0

//! [`UserMemory`] for the kernel: the owner's address space through
//! `copy_from_user`/`copy_to_user`, and `get_user`/`put_user` for the
//! 16-bit ring fields the driver updates concurrently.
//!
//! C header: [`include/linux/uaccess.h`](srctree/include/linux/uaccess.h).

use super::glue;
use crate::vcore::memory::{Fault, UserMemory};
use core::ffi::c_void;
use kernel::uaccess::UserSlice;

/// The address space of the current task (a worker that adopted the
/// owner's mm with [`super::worker::MmUse`]).
pub(crate) struct OwnerMemory;

fn uaddr(addr: u64) -> Result<usize, Fault> {
    usize::try_from(addr).map_err(|_| Fault)
}

impl UserMemory for OwnerMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        UserSlice::new(uaddr(addr)?, buf.len())
            .reader()
            .read_slice(buf)
            .map_err(|_| Fault)
    }

    fn write(&self, addr: u64, buf: &[u8]) -> Result<(), Fault> {
        UserSlice::new(uaddr(addr)?, buf.len())
            .writer()
            .write_slice(buf)
            .map_err(|_| Fault)
    }

    /// One 16-bit load (`get_user`): a copy could see a concurrent update
    /// half done.
    fn read_u16(&self, addr: u64) -> Result<u16, Fault> {
        let p = uaddr(addr)? as *const c_void;
        let mut v = 0u16;
        // SAFETY: `get_user` checks the user address itself and turns a
        // fault into an error; `v` is a live, writable u16.
        match unsafe { glue::vhost_blk_get_user_le16(p, &mut v) } {
            0 => Ok(v),
            _ => Err(Fault),
        }
    }

    /// One 16-bit store (`put_user`), so that the driver never sees half
    /// of a new index.
    fn write_u16(&self, addr: u64, v: u16) -> Result<(), Fault> {
        let p = uaddr(addr)? as *mut c_void;
        // SAFETY: `put_user` checks the user address itself and turns a
        // fault into an error.
        match unsafe { glue::vhost_blk_put_user_le16(p, v) } {
            0 => Ok(()),
            _ => Err(Fault),
        }
    }
}
