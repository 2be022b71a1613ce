// SPDX-License-Identifier: GPL-2.0

//! Memory for tests: [`TestMemory`], a plain buffer standing for the
//! owner's address space, and [`BumpAllocator`], which hands out guest
//! buffers in it.
//!
//! The device side (the core's [`UserMemory`]) and the driver side
//! ([`super::driver`]) reach memory through the same byte-level trait, so
//! the same driver code runs against this buffer in host tests or, in the
//! harness, against a process's memory that the kernel module reads.

use std::cell::RefCell;
use std::vec;
use std::vec::Vec;

use crate::memory::{Fault, MemRegion, UserMemory};

/// A buffer mapped at user (and guest physical) address `base`: an
/// identity memory table, as in Linux `tools/virtio/virtio_test.c`.
pub struct TestMemory {
    base: u64,
    bytes: RefCell<Vec<u8>>,
}

impl TestMemory {
    /// `size` zeroed bytes at address `base`.
    pub fn new(base: u64, size: usize) -> Self {
        Self {
            base,
            bytes: RefCell::new(vec![0; size]),
        }
    }

    /// The region describing this memory, with guest address == user
    /// address.
    pub fn region(&self) -> MemRegion {
        MemRegion {
            guest_phys_addr: self.base,
            size: self.bytes.borrow().len() as u64,
            userspace_addr: self.base,
        }
    }

    /// First address.
    pub fn base(&self) -> u64 {
        self.base
    }

    fn range(&self, addr: u64, len: usize) -> Result<std::ops::Range<usize>, Fault> {
        let off = addr.checked_sub(self.base).ok_or(Fault)?;
        let off = usize::try_from(off).map_err(|_| Fault)?;
        let end = off.checked_add(len).ok_or(Fault)?;
        if end > self.bytes.borrow().len() {
            return Err(Fault);
        }
        Ok(off..end)
    }
}

impl UserMemory for TestMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let r = self.range(addr, buf.len())?;
        buf.copy_from_slice(&self.bytes.borrow()[r]);
        Ok(())
    }

    fn write(&self, addr: u64, buf: &[u8]) -> Result<(), Fault> {
        let r = self.range(addr, buf.len())?;
        self.bytes.borrow_mut()[r].copy_from_slice(buf);
        Ok(())
    }
}

/// Hands out aligned, non-overlapping guest buffers from `[start, end)`.
pub struct BumpAllocator {
    next: u64,
    end: u64,
}

impl BumpAllocator {
    /// An allocator over `[start, end)`.
    pub fn new(start: u64, end: u64) -> Self {
        Self { next: start, end }
    }

    /// `len` bytes aligned to `align` (a power of two).
    ///
    /// # Panics
    ///
    /// When the space is exhausted: a bug in the test that sized it.
    pub fn alloc(&mut self, len: u64, align: u64) -> u64 {
        let addr = (self.next + align - 1) & !(align - 1);
        assert!(addr + len <= self.end, "test guest memory exhausted");
        self.next = addr + len;
        addr
    }
}
