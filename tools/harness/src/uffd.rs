// SPDX-License-Identifier: GPL-2.0

//! userfaultfd(2) for the selftests: guest memory whose missing pages
//! nobody ever fills, so that whoever faults on them waits until the
//! process dies, as a VMM doing post-copy migration or a hostile VMM can
//! make vhost wait.
//!
//! Only what the tests need: `MISSING` mode over an untouched anonymous
//! mapping, reading the fault messages to see where and by which thread
//! a fault happened, and resolving them with the zero page. The
//! structures and ioctl numbers are those of
//! `include/uapi/linux/userfaultfd.h`, written out here because the libc
//! crate lacks most of them.

use std::fs::File;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Duration;

use vhost_blk_core::memory::MemRegion;
use vhost_blk_core::uapi::{ioc, IOC_READ, IOC_WRITE};

/// The ioctl type of userfaultfd.
const UFFDIO: u32 = 0xaa;
/// The API version `UFFDIO_API` negotiates.
const UFFD_API: u64 = 0xaa;
/// Fault messages carry the faulting thread's id.
const UFFD_FEATURE_THREAD_ID: u64 = 1 << 8;
/// Report faults on pages that are not present.
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
/// `uffd_msg.event` of a page fault.
const UFFD_EVENT_PAGEFAULT: u8 = 0x12;
/// `uffd_msg.arg.pagefault.flags`: the access was a write.
const UFFD_PAGEFAULT_FLAG_WRITE: u64 = 1;
/// The size of `struct uffd_msg`.
const MSG_SIZE: usize = 32;

/// `struct uffdio_api`.
#[repr(C)]
struct UffdioApi {
    /// The API version, [`UFFD_API`].
    api: u64,
    /// Features asked for (in) and offered (out).
    features: u64,
    /// The ioctls available (out).
    ioctls: u64,
}

/// `struct uffdio_register` (with its `struct uffdio_range` inline).
#[repr(C)]
struct UffdioRegister {
    /// First address of the range.
    start: u64,
    /// Length of the range.
    len: u64,
    /// `UFFDIO_REGISTER_MODE_*`.
    mode: u64,
    /// The ioctls available on the range (out).
    ioctls: u64,
}

/// `struct uffdio_zeropage` (with its `struct uffdio_range` inline).
#[repr(C)]
struct UffdioZeropage {
    /// First address of the range.
    start: u64,
    /// Length of the range.
    len: u64,
    /// `UFFDIO_ZEROPAGE_MODE_*`: none, so waiting faults are woken.
    mode: u64,
    /// Bytes mapped, or a negative errno (out).
    zeropage: i64,
}

/// `UFFDIO_API`: `_IOWR(UFFDIO, 0x3f, struct uffdio_api)`.
const UFFDIO_API: u32 = ioc(IOC_READ | IOC_WRITE, UFFDIO, 0x3f, size_of::<UffdioApi>());
/// `UFFDIO_REGISTER`: `_IOWR(UFFDIO, 0x00, struct uffdio_register)`.
const UFFDIO_REGISTER: u32 = ioc(
    IOC_READ | IOC_WRITE,
    UFFDIO,
    0x00,
    size_of::<UffdioRegister>(),
);

/// `UFFDIO_ZEROPAGE`: `_IOWR(UFFDIO, 0x04, struct uffdio_zeropage)`.
const UFFDIO_ZEROPAGE: u32 = ioc(
    IOC_READ | IOC_WRITE,
    UFFDIO,
    0x04,
    size_of::<UffdioZeropage>(),
);

/// One page fault reported by the userfaultfd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The faulting address (rounded down to its page).
    pub address: u64,
    /// Whether the access was a write.
    pub write: bool,
    /// The thread that faulted, in this process's pid namespace.
    pub tid: u32,
}

/// A userfaultfd of this process, non-blocking.
pub struct Userfaultfd(File);

impl Userfaultfd {
    /// Creates the userfaultfd and negotiates the API with thread ids in
    /// fault messages. Faults from the kernel (vhost reaching guest memory)
    /// are reported too: the userfaultfd is not `UFFD_USER_MODE_ONLY`.
    pub fn new() -> Result<Self, String> {
        // SAFETY: a plain system call with integer flags.
        let fd =
            unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ENOSYS) => {
                    "userfaultfd: ENOSYS (the test kernel needs CONFIG_USERFAULTFD=y)".into()
                }
                Some(libc::EPERM) => format!(
                    "userfaultfd: EPERM ({e}): handling kernel-mode faults needs \
                     CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1"
                ),
                _ => format!("userfaultfd: {e}"),
            });
        }
        // SAFETY: a fresh descriptor owned by nobody else.
        let me = Self(unsafe { File::from_raw_fd(fd as i32) });
        let mut api = UffdioApi {
            api: UFFD_API,
            features: UFFD_FEATURE_THREAD_ID,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_API reads and writes a `struct uffdio_api`.
        unsafe { me.ioctl(UFFDIO_API, &mut api) }
            .map_err(|e| format!("UFFDIO_API with UFFD_FEATURE_THREAD_ID: {e}"))?;
        Ok(me)
    }

    /// Issues `cmd`, whose argument is the `struct` `arg` stands for.
    ///
    /// # Safety
    ///
    /// `cmd` must read and write exactly a `T`.
    unsafe fn ioctl<T>(&self, cmd: u32, arg: &mut T) -> io::Result<()> {
        // SAFETY: `arg` is a live, exclusive `T`, as the caller
        // guarantees `cmd` expects.
        let r = unsafe { libc::ioctl(self.0.as_raw_fd(), cmd as libc::c_ulong, arg as *mut T) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Registers `[start, start + len)` (page-aligned) in `MISSING` mode:
    /// every access to a page not yet present raises a fault message and
    /// waits until it is resolved ([`Userfaultfd::zeropage`]) or the
    /// process dies.
    pub fn register_missing(&self, start: u64, len: u64) -> io::Result<()> {
        let mut reg = UffdioRegister {
            start,
            len,
            mode: UFFDIO_REGISTER_MODE_MISSING,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_REGISTER reads and writes a
        // `struct uffdio_register`.
        unsafe { self.ioctl(UFFDIO_REGISTER, &mut reg) }
    }

    /// Resolves the faults on `[start, start + len)` (page-aligned,
    /// registered): maps the zero page there and wakes whoever waits.
    pub fn zeropage(&self, start: u64, len: u64) -> io::Result<()> {
        let mut z = UffdioZeropage {
            start,
            len,
            mode: 0,
            zeropage: 0,
        };
        // SAFETY: UFFDIO_ZEROPAGE reads and writes a
        // `struct uffdio_zeropage`.
        unsafe { self.ioctl(UFFDIO_ZEROPAGE, &mut z) }
    }

    /// Waits up to `timeout` for a fault message and reads it; `None` if
    /// none came. Reading it does not resolve the fault: the faulting
    /// thread goes on waiting.
    pub fn next_fault(&self, timeout: Duration) -> io::Result<Option<Fault>> {
        let mut p = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(None);
        }
        let mut msg = [0u8; MSG_SIZE];
        // SAFETY: reads at most MSG_SIZE bytes into a live buffer.
        let got = unsafe { libc::read(self.0.as_raw_fd(), msg.as_mut_ptr().cast(), MSG_SIZE) };
        if got < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(e)
            };
        }
        if got as usize != MSG_SIZE || msg[0] != UFFD_EVENT_PAGEFAULT {
            return Err(io::Error::other(format!(
                "unexpected userfaultfd message ({got} bytes, event {:#x})",
                msg[0]
            )));
        }
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&msg[o..o + 8]);
            u64::from_ne_bytes(b)
        };
        let mut tid = [0u8; 4];
        tid.copy_from_slice(&msg[24..28]);
        Ok(Some(Fault {
            address: u64_at(16),
            write: u64_at(8) & UFFD_PAGEFAULT_FLAG_WRITE != 0,
            tid: u32::from_ne_bytes(tid),
        }))
    }
}

/// Makes the pages of `[start, start + len)` (page-aligned, in a private
/// anonymous mapping of this process) missing again, their contents
/// dropped: the next access faults as on a page never touched.
pub fn discard(start: u64, len: u64) -> io::Result<()> {
    // SAFETY: `MADV_DONTNEED` on private anonymous memory only drops the
    // pages; the caller keeps no Rust reference into the range (guest
    // memory is accessed with volatile copies only).
    let r = unsafe {
        libc::madvise(
            start as *mut libc::c_void,
            len as usize,
            libc::MADV_DONTNEED,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// An anonymous private mapping that is never touched by this process,
/// so that none of its pages is present until someone faults on it.
pub struct Untouched {
    /// First address.
    base: *mut libc::c_void,
    /// Length in bytes.
    len: usize,
}

impl Untouched {
    /// Maps `len` bytes (a multiple of the page size), without populating.
    pub fn new(len: usize) -> io::Result<Self> {
        // SAFETY: a fresh anonymous mapping, unmapped in `drop`.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { base, len })
    }

    /// First address.
    pub fn base(&self) -> u64 {
        self.base as u64
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len as u64
    }

    /// Whether the mapping is empty (never: `new` maps at least a page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The identity memory region (guest address == user address).
    pub fn region(&self) -> MemRegion {
        MemRegion {
            guest_phys_addr: self.base(),
            size: self.len(),
            userspace_addr: self.base(),
        }
    }
}

impl Drop for Untouched {
    fn drop(&mut self) {
        // SAFETY: unmapping what `new` mapped.
        unsafe { libc::munmap(self.base, self.len) };
    }
}
