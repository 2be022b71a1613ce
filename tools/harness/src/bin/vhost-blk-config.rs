// SPDX-License-Identifier: GPL-2.0

//! `vhost-blk-config DEVICE [--read-only]`: what a vhost-blk device on the
//! block device DEVICE honours (`VHOST_BLK_GET_CONFIG`), as `key=value`
//! lines: the numbers a VMM puts in the guest's virtio-blk config space.
//! The device is attached on a device of its own, asked, and closed.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::process::exit;

use vhost_blk_harness::device::VhostBlk;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, read_only) = match args.as_slice() {
        [p] => (p, false),
        [p, flag] if flag == "--read-only" => (p, true),
        _ => {
            eprintln!("usage: vhost-blk-config DEVICE [--read-only]");
            exit(2);
        }
    };
    let config = OpenOptions::new()
        .read(true)
        .write(!read_only)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))
        .and_then(|disk| {
            let dev = VhostBlk::open().map_err(|e| format!("/dev/vhost-blk: {e}"))?;
            dev.set_owner()
                .map_err(|e| format!("VHOST_SET_OWNER: {e}"))?;
            dev.set_backend(disk.as_raw_fd())
                .map_err(|e| format!("VHOST_BLK_SET_BACKEND {path}: {e}"))?;
            dev.get_config()
                .map_err(|e| format!("VHOST_BLK_GET_CONFIG: {e}"))
        });
    let c = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vhost-blk-config: {e}");
            exit(1);
        }
    };
    for (k, v) in [
        ("capacity", c.capacity),
        ("flags", c.flags.into()),
        ("logical_block_size", c.logical_block_size.into()),
        ("physical_block_size", c.physical_block_size.into()),
        ("alignment_offset", c.alignment_offset.into()),
        ("min_io_size", c.min_io_size.into()),
        ("opt_io_size", c.opt_io_size.into()),
        ("seg_max", c.seg_max.into()),
        ("size_max", c.size_max.into()),
        ("max_transfer", c.max_transfer.into()),
        ("max_discard_sectors", c.max_discard_sectors.into()),
        ("max_discard_seg", c.max_discard_seg.into()),
        (
            "discard_sector_alignment",
            c.discard_sector_alignment.into(),
        ),
        (
            "max_write_zeroes_sectors",
            c.max_write_zeroes_sectors.into(),
        ),
        ("max_write_zeroes_seg", c.max_write_zeroes_seg.into()),
        ("max_queues", c.max_queues.into()),
        ("max_mem_regions", c.max_mem_regions.into()),
    ] {
        println!("{k}={v}");
    }
}
