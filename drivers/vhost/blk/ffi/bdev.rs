// SPDX-License-Identifier: GPL-2.0

//! The backing block device, as a file the VMM opened.
//!
//! C header: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h).

use super::glue;
use core::ptr::NonNull;
use kernel::error::from_err_ptr;
use kernel::prelude::*;

/// `struct vhost_blk_bdev_info` of `glue.h`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct BdevInfo {
    /// Size in 512-byte sectors.
    pub(crate) capacity: u64,
    /// Logical block size in bytes.
    pub(crate) logical_block_size: u32,
    /// Largest discard in sectors, 0 without discard.
    pub(crate) max_discard_sectors: u32,
    /// Largest write-zeroes in sectors, 0 without offload.
    pub(crate) max_write_zeroes_sectors: u32,
    /// The mask every buffer's address and length must clear.
    pub(crate) dma_alignment: u32,
    /// 0, or the mask two buffers of one bio must meet at.
    pub(crate) virt_boundary_mask: u32,
    /// The largest bio, in sectors, the device takes unsplit.
    pub(crate) max_sectors: u32,
    /// Not writable through this file.
    pub(crate) read_only: u8,
    /// Volatile write cache.
    pub(crate) write_cache: u8,
    /// The device takes `REQ_NOWAIT` bios.
    pub(crate) nowait: u8,
    /// A zoned disk (host-managed or host-aware): writes must follow each
    /// zone's write pointer.
    pub(crate) zoned: u8,
    /// Device number, major part.
    pub(crate) major: u32,
    /// Device number, minor part.
    pub(crate) minor: u32,
    /// Physical block size in bytes.
    pub(crate) physical_block_size: u32,
    /// Bytes from sector 0 to a physical block boundary.
    pub(crate) alignment_offset: u32,
    /// The smallest I/O without a read-modify-write, in bytes.
    pub(crate) io_min: u32,
    /// The preferred I/O size in bytes, 0 if none.
    pub(crate) io_opt: u32,
    /// The unit a discard deallocates, in bytes.
    pub(crate) discard_granularity: u32,
    pad2: u32,
}

// `VHOST_BLK_BDEV_INFO_SIZE`, which glue.c asserts for the C struct.
const _: () = assert!(core::mem::size_of::<BdevInfo>() == 72);

/// A reference on an open block device file.
///
/// # Invariants
///
/// `file` points to a live `struct file` of a block device (`S_ISBLK`) on
/// which this value holds one reference, and `info` describes it as it was
/// when the reference was taken.
pub(crate) struct BdevFile {
    file: NonNull<super::glue::file>,
    info: BdevInfo,
}

// SAFETY: file references may be dropped from any thread.
unsafe impl Send for BdevFile {}
// SAFETY: `&BdevFile` gives access to nothing but the copied `info`.
unsafe impl Sync for BdevFile {}

impl BdevFile {
    /// The block device open as `fd` in the calling process: `EBADF` if
    /// `fd` is not open, `ENOTBLK` if it is not a block device.
    pub(crate) fn from_fd(fd: i32) -> Result<Self> {
        let mut info = BdevInfo::default();
        // SAFETY: `info` is valid for writes and has the layout of
        // `struct vhost_blk_bdev_info`.
        let file = from_err_ptr(unsafe { glue::vhost_blk_bdev_fget(fd, &mut info) })?;
        match NonNull::new(file) {
            // INVARIANT: a file that is not an error is a block device
            // file with a reference, described by `info`.
            Some(file) => Ok(Self { file, info }),
            None => Err(EBADF),
        }
    }

    /// The device's size now, in 512-byte sectors: it follows a resize
    /// (`lvextend`, `losetup -c`), unlike `info().capacity`.
    pub(crate) fn capacity(&self) -> u64 {
        // SAFETY: `file` is a live block device file (type invariant).
        unsafe { glue::vhost_blk_bdev_nr_sectors(self.file.as_ptr()) }
    }

    /// Serves the device read-only, whatever the file's access mode.
    pub(crate) fn set_read_only(&mut self) {
        self.info.read_only = 1;
    }

    /// The file, for bio allocation.
    pub(crate) fn as_ptr(&self) -> *mut super::glue::file {
        self.file.as_ptr()
    }

    /// What the device offers.
    pub(crate) fn info(&self) -> &BdevInfo {
        &self.info
    }
}

impl Drop for BdevFile {
    fn drop(&mut self) {
        // SAFETY: by the type invariant this value holds one reference,
        // released exactly once, here.
        unsafe { kernel::bindings::fput(self.file.as_ptr().cast()) };
    }
}
