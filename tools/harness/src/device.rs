// SPDX-License-Identifier: GPL-2.0

//! A client of `/dev/vhost-blk`: one open file and its ioctls.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use vhost_blk_core::memory::MemRegion;
use vhost_blk_core::ring::VringAddrs;
use vhost_blk_core::uapi::{
    self, VhostBlkBackend, VhostBlkSerial, VhostVringAddr, VhostVringFile, VhostVringState,
};

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
    ///
    /// # Safety
    ///
    /// The kernel reads, and for commands that return data writes, the
    /// bytes `cmd` encodes at `arg` (with `copy_{from,to}_user`, so an
    /// address that is not mapped only fails with `EFAULT`). Whatever of
    /// this process's memory `arg` points to must allow that: writable if
    /// the command may write it, and not in use as Rust data meanwhile (a
    /// buffer the caller owns, or guest memory, which is only ever accessed
    /// with volatile copies).
    pub unsafe fn ioctl_ptr(&self, cmd: u32, arg: *mut libc::c_void) -> io::Result<i32> {
        // SAFETY: the file is open; `arg` is as the caller guarantees.
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
        // SAFETY: `cmd` reads or writes a u64, which `v` is.
        unsafe { self.ioctl_ptr(cmd, (&mut v as *mut u64).cast())? };
        Ok(v)
    }

    fn set_u64(&self, cmd: u32, mut v: u64) -> io::Result<()> {
        // SAFETY: `cmd` reads a u64, which `v` is.
        unsafe { self.ioctl_ptr(cmd, (&mut v as *mut u64).cast()) }.map(|_| ())
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

    fn ioctl_struct<T>(&self, cmd: u32, v: &mut T) -> io::Result<()> {
        // SAFETY: callers pass the struct `cmd` reads or writes.
        unsafe { self.ioctl_ptr(cmd, (v as *mut T).cast()) }.map(|_| ())
    }

    /// `VHOST_SET_OWNER`.
    pub fn set_owner(&self) -> io::Result<()> {
        self.ioctl_val(uapi::VHOST_SET_OWNER, 0).map(|_| ())
    }

    /// `VHOST_RESET_OWNER`.
    pub fn reset_owner(&self) -> io::Result<()> {
        self.ioctl_val(uapi::VHOST_RESET_OWNER, 0).map(|_| ())
    }

    /// `VHOST_SET_MEM_TABLE` with `regions`; `header_padding` and each
    /// region's flags are written as given (tests set them non-zero).
    pub fn set_mem_table_raw(
        &self,
        regions: &[MemRegion],
        header_padding: u32,
        region_flags: u64,
    ) -> io::Result<()> {
        let mut buf: Vec<u64> = Vec::with_capacity(1 + 4 * regions.len());
        buf.push(u64::from(regions.len() as u32) | (u64::from(header_padding) << 32));
        for r in regions {
            buf.extend([r.guest_phys_addr, r.size, r.userspace_addr, region_flags]);
        }
        // SAFETY: the kernel only reads the header and the regions it
        // announces, which `buf` holds.
        unsafe { self.ioctl_ptr(uapi::VHOST_SET_MEM_TABLE, buf.as_mut_ptr().cast()) }.map(|_| ())
    }

    /// `VHOST_SET_MEM_TABLE`.
    pub fn set_mem_table(&self, regions: &[MemRegion]) -> io::Result<()> {
        self.set_mem_table_raw(regions, 0, 0)
    }

    /// `VHOST_SET_VRING_NUM`.
    pub fn set_vring_num(&self, index: u32, num: u32) -> io::Result<()> {
        self.ioctl_struct(
            uapi::VHOST_SET_VRING_NUM,
            &mut VhostVringState { index, num },
        )
    }

    /// `VHOST_SET_VRING_BASE`.
    pub fn set_vring_base(&self, index: u32, num: u32) -> io::Result<()> {
        self.ioctl_struct(
            uapi::VHOST_SET_VRING_BASE,
            &mut VhostVringState { index, num },
        )
    }

    /// `VHOST_GET_VRING_BASE`.
    pub fn get_vring_base(&self, index: u32) -> io::Result<u32> {
        let mut s = VhostVringState { index, num: 0 };
        self.ioctl_struct(uapi::VHOST_GET_VRING_BASE, &mut s)?;
        Ok(s.num)
    }

    /// `VHOST_SET_VRING_ADDR` with explicit flags.
    pub fn set_vring_addr_flags(&self, index: u32, a: &VringAddrs, flags: u32) -> io::Result<()> {
        let mut v = VhostVringAddr {
            index,
            flags,
            desc_user_addr: a.desc,
            used_user_addr: a.used,
            avail_user_addr: a.avail,
            log_guest_addr: 0,
        };
        self.ioctl_struct(uapi::VHOST_SET_VRING_ADDR, &mut v)
    }

    /// `VHOST_SET_VRING_ADDR`.
    pub fn set_vring_addr(&self, index: u32, a: &VringAddrs) -> io::Result<()> {
        self.set_vring_addr_flags(index, a, 0)
    }

    fn set_vring_file(&self, cmd: u32, index: u32, fd: i32) -> io::Result<()> {
        self.ioctl_struct(cmd, &mut VhostVringFile { index, fd })
    }

    /// `VHOST_SET_VRING_KICK` (`fd` -1 detaches).
    pub fn set_vring_kick(&self, index: u32, fd: i32) -> io::Result<()> {
        self.set_vring_file(uapi::VHOST_SET_VRING_KICK, index, fd)
    }

    /// `VHOST_SET_VRING_CALL` (`fd` -1 detaches).
    pub fn set_vring_call(&self, index: u32, fd: i32) -> io::Result<()> {
        self.set_vring_file(uapi::VHOST_SET_VRING_CALL, index, fd)
    }

    /// `VHOST_SET_VRING_ERR` (`fd` -1 detaches).
    pub fn set_vring_err(&self, index: u32, fd: i32) -> io::Result<()> {
        self.set_vring_file(uapi::VHOST_SET_VRING_ERR, index, fd)
    }

    /// `VHOST_BLK_SET_BACKEND` (`fd` -1 detaches).
    pub fn set_backend_flags(&self, fd: i32, flags: u32) -> io::Result<()> {
        self.ioctl_struct(
            uapi::VHOST_BLK_SET_BACKEND,
            &mut VhostBlkBackend { fd, flags },
        )
    }

    /// `VHOST_BLK_SET_BACKEND`.
    pub fn set_backend(&self, fd: i32) -> io::Result<()> {
        self.set_backend_flags(fd, 0)
    }

    /// `VHOST_BLK_GET_CONFIG`.
    pub fn get_config(&self) -> io::Result<uapi::VhostBlkConfig> {
        let mut b = [0u8; uapi::VhostBlkConfig::SIZE];
        // SAFETY: the command writes `SIZE` bytes, the buffer's length.
        unsafe { self.ioctl_ptr(uapi::VHOST_BLK_GET_CONFIG, b.as_mut_ptr().cast()) }?;
        Ok(uapi::VhostBlkConfig::from_bytes(&b))
    }

    /// `VHOST_BLK_SET_WRITEBACK` with `value` (1 writeback, 0 writethrough;
    /// tests pass others too).
    pub fn set_writeback(&self, value: u32) -> io::Result<()> {
        self.ioctl_struct(uapi::VHOST_BLK_SET_WRITEBACK, &mut { value })
    }

    /// `VHOST_BLK_SET_SERIAL`.
    pub fn set_serial(&self, serial: &[u8; uapi::VIRTIO_BLK_ID_BYTES]) -> io::Result<()> {
        self.ioctl_struct(
            uapi::VHOST_BLK_SET_SERIAL,
            &mut VhostBlkSerial { serial: *serial },
        )
    }
}

impl AsRawFd for VhostBlk {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }
}
