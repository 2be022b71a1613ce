// SPDX-License-Identifier: GPL-2.0

//! `isolation_partition_bounced_bios_land_in_place`: bios that bounced
//! off a full disk and are submitted again must land where they were
//! meant to on a partition, whose offset the block layer adds at each
//! submission.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vhost_blk_core::blk::*;
use vhost_blk_core::memory::UserMemory;

use super::scsi_debug::ScsiDebug;
use crate::bench::open_direct;
use crate::blk::{pattern, status_name, Config, TestDevice};
use crate::driver::Buf;
use crate::selftests::io::direct_read;
use crate::stats::{fd_ids, Stats};
use crate::testing::{ctx, ensure, CaseResult};

/// Where the partition starts on the disk, in 512-byte sectors (1 MiB).
const PART_START: u64 = 2048;
/// The writes posted at once: far more than the disk's one tag.
const WRITES: u64 = 32;
/// `BLKRRPART`: `_IO(0x12, 95)`, re-read the partition table.
const BLKRRPART: libc::c_ulong = 0x125f;

/// A scsi_debug disk that takes one command at a time, with one MBR
/// partition from 1 MiB: 32 writes of 4 KiB posted at once, through
/// vhost-blk on the partition, mostly bounce off the full disk and are
/// submitted again. Each must land at its sector of the partition. A
/// bio submitted again as it was remapped (`BIO_REMAPPED` kept with its
/// partition-relative sector) skips the partition's offset and lands 1
/// MiB early on the disk.
pub(super) fn isolation_partition_bounced_bios_land_in_place(kdir: Option<&Path>) -> CaseResult {
    let kdir = kdir.ok_or(
        "--kdir not given: the case needs scsi_debug from the test kernel's build tree \
         (vhost-blk-selftest --kdir DIR)",
    )?;
    let sd = ScsiDebug::load(kdir, &["dev_size_mb=16", "max_queue=1", "delay=2"])?;
    let part = partition(&sd.disk)?;
    let f = ctx(
        OpenOptions::new().read(true).write(true).open(&part),
        format!("open {}", part.display()),
    )?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    let id = ctx(fd_ids(&t.dev), "fdinfo")?.0;
    // What write `i` puts at sector `8 i` of the partition.
    let data = |i: u64| -> Vec<u8> { (0..4096).map(|o| pattern(0x9a27 + i, o)).collect() };
    let mut statuses = Vec::new();
    for i in 0..WRITES {
        let a = t.buf(4096, 4096);
        t.mem
            .write(a, &data(i))
            .map_err(|_| "writing the guest buffer faulted")?;
        let h = t.header(VIRTIO_BLK_T_OUT, i * 8);
        let s = t.status();
        t.submit(0, &[Buf::r(h, 16), Buf::r(a, 4096), Buf::w(s, 1)], false);
        statuses.push(s);
    }
    t.wait(0, WRITES as usize, Duration::from_secs(60))?;
    for (i, &s) in statuses.iter().enumerate() {
        let st = t.read_status(s);
        ensure(st == VIRTIO_BLK_S_OK, || {
            format!("write {i}: status {}", status_name(st))
        })?;
    }
    let (retries, resubmits) = Stats::read()?
        .vq(id, 0)
        .map_or((0, 0), |v| (v.num("retries"), v.num("resubmits")));
    ensure(retries + resubmits >= 1, || {
        format!(
            "retries={retries} resubmits={resubmits}: no write bounced off the disk of one tag, \
             so the case tested nothing"
        )
    })?;
    drop(t);
    let (fp, fd) = (
        ctx(open_direct(&part), "O_DIRECT")?,
        ctx(open_direct(&sd.disk), "O_DIRECT")?,
    );
    for i in 0..WRITES {
        let want = data(i);
        if direct_read(&fp, i * 8, 4096)? == want {
            continue;
        }
        let early = direct_read(&fd, i * 8, 4096)? == want;
        return Err(format!(
            "write {i} (sector {} of the partition) is not there{} (retries={retries} \
             resubmits={resubmits})",
            i * 8,
            if early {
                ": it landed at that sector of the whole disk, without the partition's offset"
            } else {
                ""
            }
        ));
    }
    println!(
        "  {WRITES} writes on a partition of a one-command disk, all in place (retries={retries} \
         resubmits={resubmits})"
    );
    drop((fp, fd, f));
    sd.unload()
}

/// `BLKSSZGET`: `_IO(0x12, 104)`, the logical block size.
const BLKSSZGET: libc::c_ulong = 0x1268;

/// Writes an MBR with one Linux partition from [`PART_START`] to the end
/// of `disk`, has the kernel read it, and returns the partition's node.
/// The MBR counts logical blocks, whatever their size.
pub(crate) fn partition(disk: &Path) -> Result<PathBuf, String> {
    let f = ctx(
        OpenOptions::new().read(true).write(true).open(disk),
        format!("open {}", disk.display()),
    )?;
    let mut lbs: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int, to `lbs`.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), BLKSSZGET, &mut lbs) };
    ensure(r == 0 && lbs >= 512, || {
        format!("BLKSSZGET: {lbs}: {}", std::io::Error::last_os_error())
    })?;
    let per_block = lbs as u64 / 512;
    let blocks = ctx((&f).seek(SeekFrom::End(0)), "the disk's size")? / lbs as u64;
    let start = PART_START / per_block;
    let mut mbr = vec![0u8; lbs as usize];
    let entry = &mut mbr[446..462];
    entry[4] = 0x83;
    entry[8..12].copy_from_slice(&(start as u32).to_le_bytes());
    entry[12..16].copy_from_slice(&((blocks - start) as u32).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    ctx(f.write_all_at(&mbr, 0), "write the MBR")?;
    ctx(f.sync_all(), "fsync the MBR")?;
    // SAFETY: BLKRRPART takes no argument.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), BLKRRPART) };
    ensure(r == 0, || {
        format!("BLKRRPART: {}", std::io::Error::last_os_error())
    })?;
    let part = PathBuf::from(format!("{}1", disk.display()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !part.exists() {
        ensure(Instant::now() < deadline, || {
            format!("{} did not appear within 10 s", part.display())
        })?;
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(part)
}
