// SPDX-License-Identifier: GPL-2.0

//! [`UserMemory`] for the kernel: the owner's address space through
//! `copy_from_user`/`copy_to_user`.
//!
//! C header: [`include/linux/uaccess.h`](srctree/include/linux/uaccess.h).

use crate::vcore::memory::{Fault, UserMemory};
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
}
