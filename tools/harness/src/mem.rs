// SPDX-License-Identifier: GPL-2.0

//! Guest memory for the harness: [`ProcessMemory`], the harness's own
//! memory given to the kernel module as a guest's, and the core's test
//! memory and allocator ([`TestMemory`], [`BumpAllocator`]).

use vhost_blk_core::memory::{Fault, MemRegion, UserMemory};
pub use vhost_blk_core::test_utils::memory::{BumpAllocator, TestMemory};

/// Guest memory in this process: an anonymous mapping whose guest physical
/// addresses equal its virtual addresses, so the memory table is one
/// identity region and the kernel reaches it through the harness's mm.
pub struct ProcessMemory {
    base: *mut u8,
    size: usize,
    /// The memfd behind a shared mapping ([`ProcessMemory::new_shared`]).
    memfd: Option<std::fs::File>,
}

// SAFETY: the mapping is plain memory owned by this value; accesses go
// through copies, and the kernel is the only other party.
unsafe impl Send for ProcessMemory {}
// SAFETY: as above; concurrent byte copies are what the protocol expects.
unsafe impl Sync for ProcessMemory {}

impl ProcessMemory {
    /// Maps `size` zeroed bytes.
    pub fn new(size: usize) -> std::io::Result<Self> {
        // SAFETY: an anonymous private mapping, unmapped in `drop`.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self {
            base: p.cast(),
            size,
            memfd: None,
        })
    }

    /// Maps `size` zeroed bytes of a memfd, shared, so that another
    /// process (a vhost-user backend) can map the same memory.
    pub fn new_shared(size: usize) -> std::io::Result<Self> {
        use std::os::fd::{AsRawFd, FromRawFd};

        // SAFETY: a NUL-terminated name and flags; no other pointers.
        let fd = unsafe { libc::memfd_create(c"vhost-blk-guest".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor owned by nobody else.
        let file = unsafe { std::fs::File::from_raw_fd(fd) };
        file.set_len(size as u64)?;
        let p = map_shared(file.as_raw_fd(), size)?;
        Ok(Self {
            base: p,
            size,
            memfd: Some(file),
        })
    }

    /// The memfd of a shared mapping.
    pub fn memfd(&self) -> Option<&std::fs::File> {
        self.memfd.as_ref()
    }

    /// First address.
    pub fn base(&self) -> u64 {
        self.base as u64
    }

    /// One past the last address.
    pub fn end(&self) -> u64 {
        self.base() + self.size as u64
    }

    /// The identity region covering the mapping.
    pub fn region(&self) -> MemRegion {
        MemRegion {
            guest_phys_addr: self.base(),
            size: self.size as u64,
            userspace_addr: self.base(),
        }
    }

    /// A pointer to `len` bytes at guest address `addr`, for handing a
    /// buffer to the kernel (`io_uring`); `None` if out of the mapping.
    pub fn host_ptr(&self, addr: u64, len: usize) -> Option<*mut u8> {
        self.ptr(addr, len).ok()
    }

    /// Sets the protection of the pages holding `[addr, addr + len)` to
    /// `prot` (`libc::PROT_*`), as a VMM may: the device's accesses there
    /// then fault. The harness must not touch them meanwhile.
    pub fn protect(&self, addr: u64, len: usize, prot: i32) -> std::io::Result<()> {
        let page = 4096u64;
        let start = addr & !(page - 1);
        let end = (addr + len as u64).div_ceil(page) * page;
        self.ptr(start, (end - start) as usize)
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: whole pages inside this mapping; no Rust reference into
        // the mapping exists (every access is a copy).
        let r = unsafe { libc::mprotect(start as *mut libc::c_void, (end - start) as usize, prot) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    fn ptr(&self, addr: u64, len: usize) -> Result<*mut u8, Fault> {
        let off = addr.checked_sub(self.base()).ok_or(Fault)? as usize;
        if off.checked_add(len).ok_or(Fault)? > self.size {
            return Err(Fault);
        }
        // SAFETY: `off + len` is within the mapping.
        Ok(unsafe { self.base.add(off) })
    }
}

/// Maps `size` bytes of `fd` shared, readable and writable; the caller
/// unmaps them.
fn map_shared(fd: i32, size: usize) -> std::io::Result<*mut u8> {
    // SAFETY: a new mapping of `fd` at an address of the kernel's choice;
    // no existing memory is affected.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok(p.cast())
}

/// A second mapping of a shared [`ProcessMemory`]'s memfd at another user
/// address: the same bytes, reached through addresses that differ from
/// the guest physical ones. Accessed by guest physical address.
pub struct Alias {
    base: *mut u8,
    size: usize,
    /// The guest physical address of its first byte.
    gpa: u64,
}

impl ProcessMemory {
    /// Maps this memory's memfd a second time (a shared mapping only).
    pub fn alias(&self) -> std::io::Result<Alias> {
        use std::os::fd::AsRawFd;

        let fd = self
            .memfd
            .as_ref()
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        Ok(Alias {
            base: map_shared(fd.as_raw_fd(), self.size)?,
            size: self.size,
            gpa: self.base(),
        })
    }
}

impl Alias {
    /// The user address of guest physical address `gpa`.
    pub fn user_addr(&self, gpa: u64) -> u64 {
        self.base as u64 + (gpa - self.gpa)
    }

    /// Reads `buf.len()` bytes at guest physical address `gpa`.
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let off = gpa.checked_sub(self.gpa).ok_or(Fault)? as usize;
        if off.checked_add(buf.len()).ok_or(Fault)? > self.size {
            return Err(Fault);
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: in bounds (checked above); volatile because the
            // kernel writes this memory concurrently.
            *b = unsafe { self.base.add(off + i).read_volatile() };
        }
        Ok(())
    }
}

impl Drop for Alias {
    fn drop(&mut self) {
        // SAFETY: unmapping what `alias` mapped.
        unsafe { libc::munmap(self.base.cast(), self.size) };
    }
}

impl Drop for ProcessMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping what `new` mapped.
        unsafe { libc::munmap(self.base.cast(), self.size) };
    }
}

impl UserMemory for ProcessMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let p = self.ptr(addr, buf.len())?;
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: in bounds (checked by `ptr`); volatile because the
            // kernel writes this memory concurrently.
            *b = unsafe { p.add(i).read_volatile() };
        }
        Ok(())
    }

    fn write(&self, addr: u64, buf: &[u8]) -> Result<(), Fault> {
        let p = self.ptr(addr, buf.len())?;
        for (i, b) in buf.iter().enumerate() {
            // SAFETY: in bounds; volatile as for `read`.
            unsafe { p.add(i).write_volatile(*b) };
        }
        Ok(())
    }

    /// One 16-bit load where aligned, as a virtio driver reads the ring's
    /// indexes: bytewise, a concurrent update could be seen half done.
    fn read_u16(&self, addr: u64) -> Result<u16, Fault> {
        let p = self.ptr(addr, 2)?;
        if !(p as usize).is_multiple_of(2) {
            let mut b = [0u8; 2];
            self.read(addr, &mut b)?;
            return Ok(u16::from_le_bytes(b));
        }
        // SAFETY: in bounds and aligned; volatile as for `read`.
        Ok(u16::from_le(unsafe { p.cast::<u16>().read_volatile() }))
    }

    /// One 16-bit store where aligned (see `read_u16`).
    fn write_u16(&self, addr: u64, v: u16) -> Result<(), Fault> {
        let p = self.ptr(addr, 2)?;
        if !(p as usize).is_multiple_of(2) {
            return self.write(addr, &v.to_le_bytes());
        }
        // SAFETY: in bounds and aligned; volatile as for `read`.
        unsafe { p.cast::<u16>().write_volatile(v.to_le()) };
        Ok(())
    }
}
