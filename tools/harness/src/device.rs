// SPDX-License-Identifier: GPL-2.0

//! A client of `/dev/vhost-blk`: one open file and its ioctls.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use vhost_blk_core::uapi;

/// The default device node.
pub const DEVICE_PATH: &str = "/dev/vhost-blk";

/// An open `/dev/vhost-blk`: one vhost-blk device.
pub struct VhostBlk {
    file: File,
}

impl VhostBlk {
    /// Opens [`DEVICE_PATH`].
    pub fn open() -> io::Result<Self> {
        Self::open_path(Path::new(DEVICE_PATH))
    }

    /// Opens the device node at `path`.
    pub fn open_path(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Self { file })
    }

    /// Issues `cmd` with a pointer argument (which may be anything, to test
    /// how the module handles bad pointers).
    pub fn ioctl_ptr(&self, cmd: u32, arg: *mut libc::c_void) -> io::Result<i32> {
        // SAFETY: the kernel validates `arg` for the given command; a bad
        // pointer yields EFAULT, not undefined behaviour in this process,
        // because the kernel only accesses it with copy_{from,to}_user.
        let ret = unsafe { libc::ioctl(self.file.as_raw_fd(), cmd as libc::c_ulong, arg) };
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(ret)
        }
    }

    /// Issues `cmd` with a plain integer argument.
    pub fn ioctl_val(&self, cmd: u32, arg: libc::c_ulong) -> io::Result<i32> {
        // SAFETY: as for `ioctl_ptr`; integer arguments are never
        // dereferenced by this process.
        let ret = unsafe { libc::ioctl(self.file.as_raw_fd(), cmd as libc::c_ulong, arg) };
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(ret)
        }
    }

    fn get_u64(&self, cmd: u32) -> io::Result<u64> {
        let mut v = 0u64;
        self.ioctl_ptr(cmd, (&mut v as *mut u64).cast())?;
        Ok(v)
    }

    fn set_u64(&self, cmd: u32, mut v: u64) -> io::Result<()> {
        self.ioctl_ptr(cmd, (&mut v as *mut u64).cast()).map(|_| ())
    }

    /// `VHOST_GET_FEATURES`.
    pub fn get_features(&self) -> io::Result<u64> {
        self.get_u64(uapi::VHOST_GET_FEATURES)
    }

    /// `VHOST_SET_FEATURES`.
    pub fn set_features(&self, features: u64) -> io::Result<()> {
        self.set_u64(uapi::VHOST_SET_FEATURES, features)
    }

    /// `VHOST_GET_BACKEND_FEATURES`.
    pub fn get_backend_features(&self) -> io::Result<u64> {
        self.get_u64(uapi::VHOST_GET_BACKEND_FEATURES)
    }

    /// `VHOST_SET_BACKEND_FEATURES`.
    pub fn set_backend_features(&self, features: u64) -> io::Result<()> {
        self.set_u64(uapi::VHOST_SET_BACKEND_FEATURES, features)
    }
}
