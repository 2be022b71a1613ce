// SPDX-License-Identifier: GPL-2.0

//! The vhost and vhost-blk userspace API: ioctl numbers and the layouts of
//! their arguments, mirroring `include/uapi/linux/vhost.h`,
//! `include/uapi/linux/vhost_types.h` and this project's
//! `include/uapi/linux/vhost_blk.h` for x86-64 and the other architectures
//! with the generic ioctl encoding.

/// `_IOC_NONE`.
pub const IOC_NONE: u32 = 0;
/// `_IOC_WRITE`: userspace writes the argument (the kernel reads it).
pub const IOC_WRITE: u32 = 1;
/// `_IOC_READ`: userspace reads the argument (the kernel writes it).
pub const IOC_READ: u32 = 2;

/// The generic `_IOC(dir, type, nr, size)` encoding.
pub const fn ioc(dir: u32, ty: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32 & 0x3fff) << 16) | (ty << 8) | nr
}

/// `VHOST_VIRTIO`, the ioctl type of every vhost ioctl.
pub const VHOST_VIRTIO: u32 = 0xaf;

const fn io(nr: u32) -> u32 {
    ioc(IOC_NONE, VHOST_VIRTIO, nr, 0)
}
const fn ior(nr: u32, size: usize) -> u32 {
    ioc(IOC_READ, VHOST_VIRTIO, nr, size)
}
const fn iow(nr: u32, size: usize) -> u32 {
    ioc(IOC_WRITE, VHOST_VIRTIO, nr, size)
}
const fn iowr(nr: u32, size: usize) -> u32 {
    ioc(IOC_READ | IOC_WRITE, VHOST_VIRTIO, nr, size)
}

/// `struct vhost_vring_state`: a queue index and a number.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VhostVringState {
    /// The virtqueue index.
    pub index: u32,
    /// The queue size or ring index, depending on the ioctl.
    pub num: u32,
}

/// `struct vhost_vring_file`: a queue index and a file descriptor.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VhostVringFile {
    /// The virtqueue index.
    pub index: u32,
    /// An eventfd, or -1 to detach.
    pub fd: i32,
}

/// `struct vhost_vring_addr`: where the rings of a queue live, as
/// userspace addresses of the owner.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VhostVringAddr {
    /// The virtqueue index.
    pub index: u32,
    /// `VHOST_VRING_F_LOG` or 0.
    pub flags: u32,
    /// Descriptor table address.
    pub desc_user_addr: u64,
    /// Used ring address.
    pub used_user_addr: u64,
    /// Available ring address.
    pub avail_user_addr: u64,
    /// Guest physical address of the used ring, for dirty logging.
    pub log_guest_addr: u64,
}

/// `struct vhost_memory` without its flexible array of regions.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VhostMemoryHeader {
    /// How many [`VhostMemoryRegion`]s follow.
    pub nregions: u32,
    /// Must be 0.
    pub padding: u32,
}

/// `struct vhost_memory_region`: one guest-physical to userspace mapping.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VhostMemoryRegion {
    /// First guest physical address of the region.
    pub guest_phys_addr: u64,
    /// Length of the region in bytes.
    pub memory_size: u64,
    /// Userspace address the region starts at in the owner's mm.
    pub userspace_addr: u64,
    /// Must be 0.
    pub flags_padding: u64,
}

/// `struct vhost_blk_backend`: the argument of [`VHOST_BLK_SET_BACKEND`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VhostBlkBackend {
    /// A block device file descriptor, or -1 to detach.
    pub fd: i32,
    /// Must be 0.
    pub flags: u32,
}

/// Length of the virtio-blk ID string (`VIRTIO_BLK_ID_BYTES`).
pub const VIRTIO_BLK_ID_BYTES: usize = 20;

/// `struct vhost_blk_serial`: the argument of [`VHOST_BLK_SET_SERIAL`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VhostBlkSerial {
    /// The GET_ID string, NUL-padded.
    pub serial: [u8; VIRTIO_BLK_ID_BYTES],
}

/// `VHOST_VRING_F_LOG`: log used-ring writes (dirty logging; not
/// supported by vhost-blk).
pub const VHOST_VRING_F_LOG: u32 = 0;

/// The largest queue index vhost-blk serves, plus one.
pub const VHOST_BLK_MAX_QUEUES: u32 = 16;

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[off..off + 8]);
    u64::from_ne_bytes(v)
}

impl VhostVringState {
    /// Size of the C struct.
    pub const SIZE: usize = 8;
    /// Decodes the C struct (native byte order, as ioctls are).
    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        Self {
            index: u32_at(b, 0),
            num: u32_at(b, 4),
        }
    }
    /// Encodes the C struct.
    pub fn to_bytes(self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..4].copy_from_slice(&self.index.to_ne_bytes());
        b[4..].copy_from_slice(&self.num.to_ne_bytes());
        b
    }
}

impl VhostVringFile {
    /// Size of the C struct.
    pub const SIZE: usize = 8;
    /// Decodes the C struct.
    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        Self {
            index: u32_at(b, 0),
            fd: u32_at(b, 4) as i32,
        }
    }
}

impl VhostVringAddr {
    /// Size of the C struct.
    pub const SIZE: usize = 40;
    /// Decodes the C struct.
    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        Self {
            index: u32_at(b, 0),
            flags: u32_at(b, 4),
            desc_user_addr: u64_at(b, 8),
            used_user_addr: u64_at(b, 16),
            avail_user_addr: u64_at(b, 24),
            log_guest_addr: u64_at(b, 32),
        }
    }
}

impl VhostMemoryHeader {
    /// Size of the C struct without its regions.
    pub const SIZE: usize = 8;
    /// Decodes the C struct.
    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        Self {
            nregions: u32_at(b, 0),
            padding: u32_at(b, 4),
        }
    }
}

impl VhostMemoryRegion {
    /// Size of the C struct.
    pub const SIZE: usize = 32;
    /// Decodes the C struct.
    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        Self {
            guest_phys_addr: u64_at(b, 0),
            memory_size: u64_at(b, 8),
            userspace_addr: u64_at(b, 16),
            flags_padding: u64_at(b, 24),
        }
    }
}

impl VhostBlkBackend {
    /// Size of the C struct.
    pub const SIZE: usize = 8;
    /// Decodes the C struct.
    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        Self {
            fd: u32_at(b, 0) as i32,
            flags: u32_at(b, 4),
        }
    }
}

/// `VHOST_BLK_BACKEND_F_READ_ONLY`: serve the device read-only, whatever
/// the file's access mode.
pub const VHOST_BLK_BACKEND_F_READ_ONLY: u32 = 1 << 0;

/// `VHOST_BLK_CONFIG_F_READ_ONLY`: writes, discards and write-zeroes are
/// refused.
pub const VHOST_BLK_CONFIG_F_READ_ONLY: u32 = 1 << 0;
/// `VHOST_BLK_CONFIG_F_WRITE_CACHE`: the disk has a volatile write cache
/// (a driver that does not flush gets its writes written through).
pub const VHOST_BLK_CONFIG_F_WRITE_CACHE: u32 = 1 << 1;
/// `VHOST_BLK_CONFIG_F_WRITE_ZEROES_MAY_UNMAP`: a WRITE_ZEROES with the
/// UNMAP flag may deallocate.
pub const VHOST_BLK_CONFIG_F_WRITE_ZEROES_MAY_UNMAP: u32 = 1 << 2;

/// `struct vhost_blk_config`: what the attached disk offers, as the device
/// honours it (the argument of [`VHOST_BLK_GET_CONFIG`]). Sizes in bytes
/// unless named in sectors (512 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VhostBlkConfig {
    /// Capacity in sectors.
    pub capacity: u64,
    /// `VHOST_BLK_CONFIG_F_*`.
    pub flags: u32,
    /// Logical block size.
    pub logical_block_size: u32,
    /// Physical block size.
    pub physical_block_size: u32,
    /// From sector 0 to the first physical block boundary.
    pub alignment_offset: u32,
    /// The smallest I/O without a read-modify-write.
    pub min_io_size: u32,
    /// The preferred I/O size, 0 if none.
    pub opt_io_size: u32,
    /// The most data segments of one request.
    pub seg_max: u32,
    /// The largest data segment.
    pub size_max: u32,
    /// The largest data transfer of one request.
    pub max_transfer: u32,
    /// The largest discard range, in sectors (0: no discard).
    pub max_discard_sectors: u32,
    /// The most ranges of one discard request (0: no discard).
    pub max_discard_seg: u32,
    /// Discard ranges are aligned to this, in sectors.
    pub discard_sector_alignment: u32,
    /// The largest write-zeroes range, in sectors.
    pub max_write_zeroes_sectors: u32,
    /// The most ranges of one write-zeroes request.
    pub max_write_zeroes_seg: u32,
    /// The most virtqueues a device may have.
    pub max_queues: u32,
    /// The most regions of a memory table.
    pub max_mem_regions: u32,
}

impl VhostBlkConfig {
    /// Size of the C struct: the fields and 24 reserved bytes, zero.
    pub const SIZE: usize = 96;

    /// Encodes the C struct.
    pub fn to_bytes(self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..8].copy_from_slice(&self.capacity.to_ne_bytes());
        let words = [
            self.flags,
            self.logical_block_size,
            self.physical_block_size,
            self.alignment_offset,
            self.min_io_size,
            self.opt_io_size,
            self.seg_max,
            self.size_max,
            self.max_transfer,
            self.max_discard_sectors,
            self.max_discard_seg,
            self.discard_sector_alignment,
            self.max_write_zeroes_sectors,
            self.max_write_zeroes_seg,
            self.max_queues,
            self.max_mem_regions,
        ];
        for (i, w) in words.iter().enumerate() {
            b[8 + 4 * i..12 + 4 * i].copy_from_slice(&w.to_ne_bytes());
        }
        b
    }

    /// Decodes the C struct.
    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        let w = |i: usize| u32_at(b, 8 + 4 * i);
        Self {
            capacity: u64_at(b, 0),
            flags: w(0),
            logical_block_size: w(1),
            physical_block_size: w(2),
            alignment_offset: w(3),
            min_io_size: w(4),
            opt_io_size: w(5),
            seg_max: w(6),
            size_max: w(7),
            max_transfer: w(8),
            max_discard_sectors: w(9),
            max_discard_seg: w(10),
            discard_sector_alignment: w(11),
            max_write_zeroes_sectors: w(12),
            max_write_zeroes_seg: w(13),
            max_queues: w(14),
            max_mem_regions: w(15),
        }
    }
}

/// `VHOST_GET_FEATURES`.
pub const VHOST_GET_FEATURES: u32 = ior(0x00, 8);
/// `VHOST_SET_FEATURES`.
pub const VHOST_SET_FEATURES: u32 = iow(0x00, 8);
/// `VHOST_SET_OWNER`.
pub const VHOST_SET_OWNER: u32 = io(0x01);
/// `VHOST_RESET_OWNER`.
pub const VHOST_RESET_OWNER: u32 = io(0x02);
/// `VHOST_SET_MEM_TABLE`.
pub const VHOST_SET_MEM_TABLE: u32 = iow(0x03, core::mem::size_of::<VhostMemoryHeader>());
/// `VHOST_SET_LOG_BASE`.
pub const VHOST_SET_LOG_BASE: u32 = iow(0x04, 8);
/// `VHOST_SET_LOG_FD`.
pub const VHOST_SET_LOG_FD: u32 = iow(0x07, 4);
/// `VHOST_SET_VRING_NUM`.
pub const VHOST_SET_VRING_NUM: u32 = iow(0x10, core::mem::size_of::<VhostVringState>());
/// `VHOST_SET_VRING_ADDR`.
pub const VHOST_SET_VRING_ADDR: u32 = iow(0x11, core::mem::size_of::<VhostVringAddr>());
/// `VHOST_SET_VRING_BASE`.
pub const VHOST_SET_VRING_BASE: u32 = iow(0x12, core::mem::size_of::<VhostVringState>());
/// `VHOST_GET_VRING_BASE`.
pub const VHOST_GET_VRING_BASE: u32 = iowr(0x12, core::mem::size_of::<VhostVringState>());
/// `VHOST_SET_VRING_KICK`.
pub const VHOST_SET_VRING_KICK: u32 = iow(0x20, core::mem::size_of::<VhostVringFile>());
/// `VHOST_SET_VRING_CALL`.
pub const VHOST_SET_VRING_CALL: u32 = iow(0x21, core::mem::size_of::<VhostVringFile>());
/// `VHOST_SET_VRING_ERR`.
pub const VHOST_SET_VRING_ERR: u32 = iow(0x22, core::mem::size_of::<VhostVringFile>());
/// `VHOST_SET_BACKEND_FEATURES`.
pub const VHOST_SET_BACKEND_FEATURES: u32 = iow(0x25, 8);
/// `VHOST_GET_BACKEND_FEATURES`.
pub const VHOST_GET_BACKEND_FEATURES: u32 = ior(0x26, 8);
/// `VHOST_BLK_SET_BACKEND`.
pub const VHOST_BLK_SET_BACKEND: u32 = iow(0x50, core::mem::size_of::<VhostBlkBackend>());
/// `VHOST_BLK_SET_SERIAL`.
pub const VHOST_BLK_SET_SERIAL: u32 = iow(0x51, core::mem::size_of::<VhostBlkSerial>());
/// `VHOST_BLK_GET_CONFIG`.
pub const VHOST_BLK_GET_CONFIG: u32 = ior(0x52, VhostBlkConfig::SIZE);
/// `VHOST_BLK_SET_WRITEBACK`: a `u32`, 1 (writeback) or 0 (writethrough).
pub const VHOST_BLK_SET_WRITEBACK: u32 = iow(0x53, 4);

/// The ioctls anyone holding the file may issue: feature negotiation and
/// `VHOST_SET_OWNER`.
pub const OPEN_IOCTLS: [u32; 5] = [
    VHOST_GET_FEATURES,
    VHOST_SET_FEATURES,
    VHOST_GET_BACKEND_FEATURES,
    VHOST_SET_BACKEND_FEATURES,
    VHOST_SET_OWNER,
];

/// The ioctls only the owner may issue (`vhost_dev_check_owner`: from the
/// address space that called `VHOST_SET_OWNER`). Any other command,
/// `VHOST_SET_LOG_BASE` and `VHOST_SET_LOG_FD` included, is `ENOTTY` for
/// everyone.
pub const OWNER_IOCTLS: [u32; 13] = [
    VHOST_RESET_OWNER,
    VHOST_SET_MEM_TABLE,
    VHOST_SET_VRING_NUM,
    VHOST_SET_VRING_ADDR,
    VHOST_SET_VRING_BASE,
    VHOST_GET_VRING_BASE,
    VHOST_SET_VRING_KICK,
    VHOST_SET_VRING_CALL,
    VHOST_SET_VRING_ERR,
    VHOST_BLK_SET_BACKEND,
    VHOST_BLK_SET_SERIAL,
    VHOST_BLK_GET_CONFIG,
    VHOST_BLK_SET_WRITEBACK,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_linux_vhost_h() {
        // Values printed by a C program including <linux/vhost.h>.
        assert_eq!(VHOST_GET_FEATURES, 0x8008_af00);
        assert_eq!(VHOST_SET_FEATURES, 0x4008_af00);
        assert_eq!(VHOST_SET_OWNER, 0x0000_af01);
        assert_eq!(VHOST_RESET_OWNER, 0x0000_af02);
        assert_eq!(VHOST_SET_MEM_TABLE, 0x4008_af03);
        assert_eq!(VHOST_SET_VRING_NUM, 0x4008_af10);
        assert_eq!(VHOST_SET_VRING_ADDR, 0x4028_af11);
        assert_eq!(VHOST_SET_VRING_BASE, 0x4008_af12);
        assert_eq!(VHOST_GET_VRING_BASE, 0xc008_af12);
        assert_eq!(VHOST_SET_VRING_KICK, 0x4008_af20);
        assert_eq!(VHOST_SET_VRING_CALL, 0x4008_af21);
        assert_eq!(VHOST_SET_VRING_ERR, 0x4008_af22);
        assert_eq!(VHOST_SET_BACKEND_FEATURES, 0x4008_af25);
        assert_eq!(VHOST_GET_BACKEND_FEATURES, 0x8008_af26);
        // And by one including include/uapi/linux/vhost_blk.h (which also
        // printed sizeof(struct vhost_blk_config), 96).
        assert_eq!(VHOST_BLK_SET_BACKEND, 0x4008_af50);
        assert_eq!(VHOST_BLK_SET_SERIAL, 0x4014_af51);
        assert_eq!(VHOST_BLK_GET_CONFIG, 0x8060_af52);
        assert_eq!(VHOST_BLK_SET_WRITEBACK, 0x4004_af53);
    }

    #[test]
    fn config_round_trips_in_the_c_layout() {
        let c = VhostBlkConfig {
            capacity: 0x0102_0304_0506_0708,
            flags: 1,
            logical_block_size: 2,
            physical_block_size: 3,
            alignment_offset: 4,
            min_io_size: 5,
            opt_io_size: 6,
            seg_max: 7,
            size_max: 8,
            max_transfer: 9,
            max_discard_sectors: 10,
            max_discard_seg: 11,
            discard_sector_alignment: 12,
            max_write_zeroes_sectors: 13,
            max_write_zeroes_seg: 14,
            max_queues: 15,
            max_mem_regions: 16,
        };
        let b = c.to_bytes();
        assert_eq!(VhostBlkConfig::from_bytes(&b), c);
        // The fields in declaration order after the u64, then zeroes.
        assert_eq!(u32_at(&b, 8), 1);
        assert_eq!(u32_at(&b, 60), 14);
        assert_eq!(u32_at(&b, 68), 16);
        assert!(b[72..].iter().all(|&x| x == 0));
    }

    #[test]
    fn every_ioctl_is_open_owner_only_or_refused() {
        let all = OPEN_IOCTLS.iter().chain(OWNER_IOCTLS.iter());
        for (i, a) in all.clone().enumerate() {
            // Each command in exactly one place.
            assert_eq!(all.clone().skip(i + 1).find(|b| *b == a), None, "{a:#x}");
        }
        // Dirty logging is not offered: its commands are unknown here.
        for cmd in [VHOST_SET_LOG_BASE, VHOST_SET_LOG_FD] {
            assert!(!OPEN_IOCTLS.contains(&cmd) && !OWNER_IOCTLS.contains(&cmd));
        }
        assert!(OPEN_IOCTLS.contains(&VHOST_SET_OWNER));
        assert!(OWNER_IOCTLS.contains(&VHOST_RESET_OWNER));
    }

    #[test]
    fn decoders_match_the_c_layouts() {
        let mut b = [0u8; 40];
        for (i, x) in b.iter_mut().enumerate() {
            *x = i as u8;
        }
        let a = VhostVringAddr::from_bytes(&b);
        assert_eq!(a.index, u32::from_ne_bytes([0, 1, 2, 3]));
        assert_eq!(a.flags, u32::from_ne_bytes([4, 5, 6, 7]));
        assert_eq!(
            a.desc_user_addr,
            u64::from_ne_bytes([8, 9, 10, 11, 12, 13, 14, 15])
        );
        assert_eq!(
            a.log_guest_addr,
            u64::from_ne_bytes([32, 33, 34, 35, 36, 37, 38, 39])
        );
        let s = VhostVringState {
            index: 3,
            num: 0xdead,
        };
        assert_eq!(VhostVringState::from_bytes(&s.to_bytes()), s);
        let f = VhostVringFile::from_bytes(&(-1i64).to_ne_bytes());
        assert_eq!((f.index, f.fd), (u32::MAX, -1));
    }

    #[test]
    fn argument_layouts() {
        assert_eq!(core::mem::size_of::<VhostVringAddr>(), 40);
        assert_eq!(core::mem::size_of::<VhostMemoryRegion>(), 32);
        assert_eq!(core::mem::size_of::<VhostBlkBackend>(), 8);
        assert_eq!(core::mem::size_of::<VhostBlkSerial>(), 20);
    }
}
