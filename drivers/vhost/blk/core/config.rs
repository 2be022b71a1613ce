// SPDX-License-Identifier: GPL-2.0

//! What a device on a disk offers the driver, as `VHOST_BLK_GET_CONFIG`
//! reports it: the one source of the numbers a VMM puts in the virtio-blk
//! config space. Every limit here is the one [`BlkLimits`] checks requests
//! against, so a driver that keeps to the config is never refused for
//! size.

use super::blk::{BlkLimits, Disk, MAX_TRANSFER, SECTOR_SIZE};
use super::features::SEG_MAX;
use super::uapi::VhostBlkConfig;

/// The smallest `size_max`: a guest's segments are at least a page.
const MIN_SIZE_MAX: u32 = 4096;

/// The largest data segment of a request, in bytes: `seg_max` segments of
/// it fit in [`MAX_TRANSFER`] (a Linux driver builds requests of up to
/// `seg_max * size_max` bytes), in whole pages.
pub const SIZE_MAX: u32 = {
    let per_seg = MAX_TRANSFER / SEG_MAX;
    let whole = per_seg - per_seg % MIN_SIZE_MAX;
    if whole < MIN_SIZE_MAX {
        MIN_SIZE_MAX
    } else {
        whole
    }
};

/// The device config of a device on `disk`: its geometry and topology as
/// the block layer reports them, with the limits the device enforces
/// ([`BlkLimits::for_disk`]; they do not depend on the driver's features).
pub fn for_disk(disk: &Disk) -> VhostBlkConfig {
    let limits = BlkLimits::for_disk(disk, 0);
    let lbs = limits.logical_block_size;
    let pbs = disk.physical_block_size.max(lbs);
    let mut flags = 0;
    if limits.read_only {
        flags |= super::uapi::VHOST_BLK_CONFIG_F_READ_ONLY;
    }
    if disk.write_cache {
        flags |= super::uapi::VHOST_BLK_CONFIG_F_WRITE_CACHE;
    }
    if limits.write_zeroes_offload {
        flags |= super::uapi::VHOST_BLK_CONFIG_F_WRITE_ZEROES_MAY_UNMAP;
    }
    let discard = limits.max_discard_seg != 0;
    // A discard granularity below one block is one block.
    let granularity = disk.discard_granularity.max(lbs);
    VhostBlkConfig {
        capacity: limits.capacity,
        flags,
        logical_block_size: lbs,
        physical_block_size: pbs,
        // An offset that is not whole blocks cannot be said in the config
        // space (it counts logical blocks): none then.
        alignment_offset: if disk.alignment_offset % lbs == 0 {
            disk.alignment_offset
        } else {
            0
        },
        min_io_size: disk.min_io_size.max(lbs),
        opt_io_size: disk.opt_io_size - disk.opt_io_size % lbs,
        seg_max: SEG_MAX,
        size_max: SIZE_MAX,
        max_transfer: limits.max_transfer,
        max_discard_sectors: if discard {
            limits.max_discard_sectors
        } else {
            0
        },
        max_discard_seg: limits.max_discard_seg,
        discard_sector_alignment: if discard {
            granularity / SECTOR_SIZE as u32
        } else {
            0
        },
        max_write_zeroes_sectors: limits.max_write_zeroes_sectors,
        max_write_zeroes_seg: limits.max_write_zeroes_seg,
        max_queues: super::uapi::VHOST_BLK_MAX_QUEUES,
        max_mem_regions: super::memory::MAX_MEM_REGIONS as u32,
    }
}
