// SPDX-License-Identifier: GPL-2.0

//! Host tests of the device config `VHOST_BLK_GET_CONFIG` reports
//! (`core/config.rs`): a driver that keeps to it is never refused for size.

use vhost_blk_core::blk::*;
use vhost_blk_core::config::{for_disk, SIZE_MAX};
use vhost_blk_core::features::SEG_MAX;
use vhost_blk_core::uapi::*;

fn disk() -> Disk {
    Disk {
        capacity: 1 << 21,
        logical_block_size: 512,
        physical_block_size: 512,
        min_io_size: 512,
        ..Disk::default()
    }
}

/// The limits a device on `disk` checks requests against.
fn limits(disk: &Disk) -> BlkLimits {
    BlkLimits::for_disk(disk, 0)
}

#[test]
fn requests_of_seg_max_segments_of_size_max_fit_the_transfer_limit() {
    let c = for_disk(&disk());
    assert_eq!((c.seg_max, c.size_max), (SEG_MAX, SIZE_MAX));
    assert!(u64::from(c.seg_max) * u64::from(c.size_max) <= u64::from(c.max_transfer));
    assert_eq!(c.max_transfer, MAX_TRANSFER);
    assert_eq!(c.size_max % 4096, 0);
    assert!(c.size_max >= 4096);
}

#[test]
fn ranges_as_large_as_the_config_says_are_accepted_and_no_larger() {
    for (discard, zeroes) in [(0, 0), (8, 8), (2048, 0), (0, 2048), (1 << 30, 1 << 30)] {
        let d = Disk {
            max_discard_sectors: discard,
            max_write_zeroes_sectors: zeroes,
            // Room for the largest range.
            capacity: 1 << 40,
            ..disk()
        };
        let c = for_disk(&d);
        let l = limits(&d);
        assert_eq!(c.max_discard_seg, l.max_discard_seg, "{d:?}");
        assert_eq!(c.max_write_zeroes_seg, l.max_write_zeroes_seg, "{d:?}");
        if discard == 0 {
            assert_eq!((c.max_discard_sectors, c.max_discard_seg), (0, 0));
        } else {
            let n = c.max_discard_sectors;
            assert_eq!(check_range(&l, Op::Discard, 0, n, 0), Ok(()), "{d:?}");
            assert_eq!(
                check_range(&l, Op::Discard, 0, n + 1, 0),
                Err(Reject::RangeTooLarge),
                "{d:?}"
            );
        }
        let n = c.max_write_zeroes_sectors;
        assert!(n > 0, "{d:?}");
        assert_eq!(check_range(&l, Op::WriteZeroes, 0, n, 0), Ok(()), "{d:?}");
        assert_eq!(
            check_range(&l, Op::WriteZeroes, 0, n + 1, 0),
            Err(Reject::RangeTooLarge),
            "{d:?}"
        );
    }
}

#[test]
fn a_disk_with_a_small_write_zeroes_limit_reports_it() {
    let c = for_disk(&Disk {
        max_write_zeroes_sectors: 8,
        ..disk()
    });
    assert_eq!(c.max_write_zeroes_sectors, 8);
    assert_ne!(c.flags & VHOST_BLK_CONFIG_F_WRITE_ZEROES_MAY_UNMAP, 0);
    // Without offload, zero pages are written: nothing is deallocated.
    let c = for_disk(&disk());
    assert_eq!(c.max_write_zeroes_sectors, MAX_ZEROOUT_SECTORS);
    assert_eq!(c.flags & VHOST_BLK_CONFIG_F_WRITE_ZEROES_MAY_UNMAP, 0);
}

#[test]
fn topology_is_the_disks_in_whole_logical_blocks() {
    let d = Disk {
        logical_block_size: 4096,
        physical_block_size: 4096,
        alignment_offset: 8192,
        min_io_size: 4096,
        opt_io_size: 65536 + 512,
        max_discard_sectors: 1024,
        discard_granularity: 1 << 20,
        ..disk()
    };
    let c = for_disk(&d);
    assert_eq!((c.logical_block_size, c.physical_block_size), (4096, 4096));
    assert_eq!(c.alignment_offset, 8192);
    assert_eq!((c.min_io_size, c.opt_io_size), (4096, 65536));
    assert_eq!(c.discard_sector_alignment, 2048);
    // A physical block below the logical one, an offset that is not whole
    // blocks, a minimum I/O or discard granularity below one block: one
    // block, and no offset.
    let c = for_disk(&Disk {
        physical_block_size: 0,
        alignment_offset: 512,
        min_io_size: 0,
        discard_granularity: 0,
        ..d
    });
    assert_eq!(c.physical_block_size, 4096);
    assert_eq!(c.alignment_offset, 0);
    assert_eq!(c.min_io_size, 4096);
    assert_eq!(c.discard_sector_alignment, 8);
    // No discard, no alignment for it.
    let c = for_disk(&Disk {
        max_discard_sectors: 0,
        ..d
    });
    assert_eq!(c.discard_sector_alignment, 0);
}

#[test]
fn flags_say_read_only_and_write_cache() {
    assert_eq!(for_disk(&disk()).flags, 0);
    let c = for_disk(&Disk {
        read_only: true,
        write_cache: true,
        ..disk()
    });
    assert_eq!(
        c.flags,
        VHOST_BLK_CONFIG_F_READ_ONLY | VHOST_BLK_CONFIG_F_WRITE_CACHE
    );
    assert_eq!(c.capacity, disk().capacity);
}
