// SPDX-License-Identifier: GPL-2.0

//! `VHOST_BLK_GET_CONFIG`: what the device reports of its disk, checked
//! against what the block layer says of the disk (sysfs), and against the
//! device itself: a request as large as the config allows is served, one
//! block larger is refused. On null_blk, on a scsi_debug disk of 4 KiB
//! blocks with small discard and write-zeroes limits, and on a partition
//! of it (whose limits are its disk's). The capacity follows the disk
//! through a resize.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use vhost_blk_core::blk::*;
use vhost_blk_core::memory::UserMemory;
use vhost_blk_core::uapi::{self, VhostBlkConfig};

use super::io::{backend, range_list};
use super::isolation::partition::partition;
use super::isolation::scsi_debug::ScsiDebug;
use crate::blk::pattern;
use crate::blk::{status_name, Config, TestDevice};
use crate::device::VhostBlk;
use crate::driver::Buf;
use crate::nullb::LoopDev;
use crate::testing::{ctx, ensure, expect_errno, CaseResult, Runner};

/// Registers this area's cases.
pub fn run(r: &mut Runner, kdir: Option<&Path>) {
    crate::cases!(
        r,
        config_needs_owner_and_backend,
        config_follows_null_blk,
        config_limits_hold_on_scsi_debug_and_its_partition(kdir),
        config_capacity_follows_a_resize,
    );
}

/// The owner rule, no backend, and bad arguments.
fn config_needs_owner_and_backend() -> CaseResult {
    let dev = ctx(VhostBlk::open(), "open")?;
    expect_errno(dev.get_config(), libc::EPERM, "GET_CONFIG without owner")?;
    ctx(dev.set_owner(), "SET_OWNER")?;
    expect_errno(dev.get_config(), libc::ENODEV, "GET_CONFIG without backend")?;
    let (_nb, f) = backend("vbcfg0", 16, &[])?;
    ctx(dev.set_backend(f.as_raw_fd()), "attach")?;
    ctx(dev.get_config(), "GET_CONFIG")?;
    expect_errno(
        // SAFETY: NULL is never accessed.
        unsafe { dev.ioctl_ptr(uapi::VHOST_BLK_GET_CONFIG, std::ptr::null_mut()) },
        libc::EFAULT,
        "GET_CONFIG NULL",
    )?;
    let mut buf = [0u8; 128];
    for size in [64, VhostBlkConfig::SIZE + 8] {
        let cmd = uapi::ioc(uapi::IOC_READ, uapi::VHOST_VIRTIO, 0x52, size);
        expect_errno(
            // SAFETY: a 128-byte buffer this function owns.
            unsafe { dev.ioctl_ptr(cmd, buf.as_mut_ptr().cast()) },
            libc::ENOTTY,
            &format!("GET_CONFIG of {size} bytes"),
        )?;
    }
    ctx(dev.set_backend(-1), "detach")?;
    expect_errno(dev.get_config(), libc::ENODEV, "GET_CONFIG after detach")?;
    Ok(())
}

/// A number in a sysfs file.
fn sysfs_num(path: &Path) -> Result<u64, String> {
    let text = ctx(fs::read_to_string(path), path.display())?;
    text.trim()
        .parse()
        .map_err(|e| format!("{}: {text:?}: {e}", path.display()))
}

/// The sysfs directory of `dev` (a disk or a partition) and of the queue
/// whose limits it has (its disk's).
fn sysfs_dirs(dev: &Path) -> Result<(PathBuf, PathBuf), String> {
    let name = dev.file_name().ok_or("no device name")?;
    let dir = ctx(
        fs::canonicalize(Path::new("/sys/class/block").join(name)),
        "sysfs",
    )?;
    let queue = if dir.join("partition").exists() {
        dir.parent()
            .ok_or("a partition without a disk")?
            .join("queue")
    } else {
        dir.join("queue")
    };
    Ok((dir, queue))
}

/// What the config of a device on `dev` must say, from sysfs.
fn expected(dev: &Path, read_only: bool) -> Result<VhostBlkConfig, String> {
    let (dir, queue) = sysfs_dirs(dev)?;
    let q = |f: &str| sysfs_num(&queue.join(f));
    let lbs = q("logical_block_size")? as u32;
    let discard = (q("discard_max_bytes")? / 512).min(MAX_RANGE_SECTORS.into()) as u32;
    let zeroes = (q("write_zeroes_max_bytes")? / 512) as u32;
    let cache = ctx(fs::read_to_string(queue.join("write_cache")), "write_cache")?;
    let mut flags = 0;
    if read_only || sysfs_num(&dir.join("ro"))? != 0 {
        flags |= uapi::VHOST_BLK_CONFIG_F_READ_ONLY;
    }
    if cache.trim() == "write back" {
        flags |= uapi::VHOST_BLK_CONFIG_F_WRITE_CACHE;
    }
    if zeroes != 0 {
        flags |= uapi::VHOST_BLK_CONFIG_F_WRITE_ZEROES_MAY_UNMAP;
    }
    let offset = sysfs_num(&dir.join("alignment_offset"))? as u32;
    Ok(VhostBlkConfig {
        capacity: sysfs_num(&dir.join("size"))?,
        flags,
        logical_block_size: lbs,
        physical_block_size: (q("physical_block_size")? as u32).max(lbs),
        alignment_offset: if offset.is_multiple_of(lbs) {
            offset
        } else {
            0
        },
        min_io_size: (q("minimum_io_size")? as u32).max(lbs),
        opt_io_size: q("optimal_io_size")? as u32 / lbs * lbs,
        // The device's own: checked by what it serves, below.
        seg_max: 0,
        size_max: 0,
        max_transfer: MAX_TRANSFER,
        max_discard_sectors: discard,
        max_discard_seg: if discard != 0 { MAX_RANGES } else { 0 },
        discard_sector_alignment: if discard != 0 {
            (q("discard_granularity")? as u32).max(lbs) / 512
        } else {
            0
        },
        max_write_zeroes_sectors: if zeroes != 0 {
            zeroes.min(MAX_ZEROOUT_SECTORS)
        } else {
            MAX_ZEROOUT_SECTORS
        },
        max_write_zeroes_seg: MAX_RANGES,
        // The device's own, whatever the disk.
        max_queues: uapi::VHOST_BLK_MAX_QUEUES,
        max_mem_regions: vhost_blk_core::memory::MAX_MEM_REGIONS as u32,
    })
}

/// The config of a device on `f` (the file of `dev`), checked against
/// sysfs; `seg_max` and `size_max` must fit the transfer limit.
pub(crate) fn checked_config(
    t: &TestDevice,
    dev: &Path,
    read_only: bool,
) -> Result<VhostBlkConfig, String> {
    let got = ctx(t.dev.get_config(), "GET_CONFIG")?;
    let want = VhostBlkConfig {
        seg_max: got.seg_max,
        size_max: got.size_max,
        ..expected(dev, read_only)?
    };
    ensure(got == want, || {
        format!("{}: GET_CONFIG says {got:?}, sysfs {want:?}", dev.display())
    })?;
    let (segs, size) = (u64::from(got.seg_max), u64::from(got.size_max));
    ensure(
        segs >= 1 && size >= 4096 && segs * size <= u64::from(got.max_transfer),
        || format!("seg_max {segs} of size_max {size} exceed max_transfer"),
    )?;
    Ok(got)
}

/// The status of one request of `ty` with `data`.
fn status_of(t: &mut TestDevice, ty: u32, sector: u64, data: &[Buf]) -> Result<u8, String> {
    t.request(0, ty, sector, data, data.len() > 8)
        .map(|(s, _)| s)
}

/// A one-range DISCARD or WRITE_ZEROES of `n` sectors at `sector`.
fn range(t: &mut TestDevice, ty: u32, sector: u64, n: u32) -> Result<u8, String> {
    let list = range_list(t, &[(sector, n, 0)]);
    status_of(t, ty, 0, &[list])
}

/// Requests as large as `c` allows are served, and ranges one block
/// larger refused (IOERR); the last block is reachable, the next is not.
/// Returns what was checked, for the log.
pub(crate) fn limits_hold(t: &mut TestDevice, c: &VhostBlkConfig) -> Result<String, String> {
    let block = c.logical_block_size / 512;
    let mut checked = Vec::new();
    let mut ranges = vec![(
        VIRTIO_BLK_T_WRITE_ZEROES,
        c.max_write_zeroes_sectors,
        "write-zeroes",
    )];
    if c.max_discard_seg != 0 {
        ranges.push((VIRTIO_BLK_T_DISCARD, c.max_discard_sectors, "discard"));
    }
    for (ty, max, name) in ranges {
        // The largest range, in whole blocks, within the disk.
        let n =
            (max / block * block).min((c.capacity / u64::from(block) * u64::from(block)) as u32);
        let s = range(t, ty, 0, n)?;
        ensure(s == VIRTIO_BLK_S_OK, || {
            format!(
                "{name} of {n} sectors (the config allows {max}): status {}",
                status_name(s)
            )
        })?;
        if u64::from(max) + u64::from(block) <= c.capacity {
            let s = range(t, ty, 0, max + block)?;
            ensure(s == VIRTIO_BLK_S_IOERR, || {
                format!(
                    "{name} of {} sectors (the config allows {max}): status {}, expected IOERR",
                    max + block,
                    status_name(s)
                )
            })?;
        }
        checked.push(format!("{name} {n}"));
    }
    // The largest transfer the config allows: seg_max segments of size_max.
    let (segs, size) = (c.seg_max, c.size_max);
    let bytes = u64::from(segs) * u64::from(size);
    if bytes / 512 <= c.capacity {
        let a = t.buf(bytes, 4096);
        let data: Vec<Buf> = (0..u64::from(segs))
            .map(|i| Buf::w(a + i * u64::from(size), size))
            .collect();
        let s = status_of(t, VIRTIO_BLK_T_IN, 0, &data)?;
        ensure(s == VIRTIO_BLK_S_OK, || {
            format!(
                "a read of {segs} segments of {size} bytes: status {}",
                status_name(s)
            )
        })?;
        checked.push(format!("read {segs}x{size}"));
    }
    // The last block, and the one after it.
    let last = c.capacity - u64::from(block);
    let a = t.buf(u64::from(c.logical_block_size), 4096);
    let s = status_of(t, VIRTIO_BLK_T_IN, last, &[Buf::w(a, c.logical_block_size)])?;
    ensure(s == VIRTIO_BLK_S_OK, || {
        format!(
            "read of the last block (sector {last}): status {}",
            status_name(s)
        )
    })?;
    let s = status_of(
        t,
        VIRTIO_BLK_T_IN,
        c.capacity,
        &[Buf::w(a, c.logical_block_size)],
    )?;
    ensure(s == VIRTIO_BLK_S_IOERR, || {
        format!(
            "read beyond the capacity: status {}, expected IOERR",
            status_name(s)
        )
    })?;
    Ok(checked.join(", "))
}

/// null_blk of 4 KiB blocks, with discard and a volatile write cache;
/// then read-only.
fn config_follows_null_blk() -> CaseResult {
    let (nb, f) = backend(
        "vbcfg1",
        64,
        &[
            ("blocksize", "4096"),
            ("discard", "1"),
            ("cache_size", "16"),
        ],
    )?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    let c = checked_config(&t, nb.path(), false)?;
    ensure(c.flags & uapi::VHOST_BLK_CONFIG_F_WRITE_CACHE != 0, || {
        "null_blk with a cache: no write cache in the config".into()
    })?;
    let done = limits_hold(&mut t, &c)?;
    drop(t);
    let ro = ctx(File::open(nb.path()), "open read-only")?;
    let t = ctx(TestDevice::new(&ro, Config::default()), "read-only device")?;
    read_only(t, nb.path(), "opened read-only")?;
    // Writable, but attached read-only: a VMM's readonly=on on a file
    // descriptor it was given, which it must not reopen.
    let t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    ctx(t.dev.set_backend(-1), "detach")?;
    ctx(
        t.dev
            .set_backend_flags(f.as_raw_fd(), uapi::VHOST_BLK_BACKEND_F_READ_ONLY),
        "attach read-only",
    )?;
    read_only(t, nb.path(), "attached with VHOST_BLK_BACKEND_F_READ_ONLY")?;
    println!("  null_blk: {done}; read-only when opened so, or attached so");
    Ok(())
}

/// A device on `dev` that must be read-only (`how`): so in its config,
/// a write IOERR, a read served.
fn read_only(mut t: TestDevice, dev: &Path, how: &str) -> CaseResult {
    let c = checked_config(&t, dev, true)?;
    ensure(c.flags & uapi::VHOST_BLK_CONFIG_F_READ_ONLY != 0, || {
        format!("{how}: not read-only in the config")
    })?;
    let a = t.buf(4096, 4096);
    let s = status_of(&mut t, VIRTIO_BLK_T_OUT, 0, &[Buf::r(a, 4096)])?;
    ensure(s == VIRTIO_BLK_S_IOERR, || {
        format!("{how}: a write got {}, expected IOERR", status_name(s))
    })?;
    let s = status_of(&mut t, VIRTIO_BLK_T_IN, 0, &[Buf::w(a, 4096)])?;
    ensure(s == VIRTIO_BLK_S_OK, || {
        format!("{how}: a read got {}", status_name(s))
    })
}

/// scsi_debug with 4 KiB blocks whose discard and write-zeroes limits are
/// far below vhost-blk's own, then a partition of it.
fn config_limits_hold_on_scsi_debug_and_its_partition(kdir: Option<&Path>) -> CaseResult {
    let kdir = kdir.ok_or(
        "--kdir not given: the case needs scsi_debug from the test kernel's build tree \
         (vhost-blk-selftest --kdir DIR)",
    )?;
    let sd = ScsiDebug::load(
        kdir,
        &[
            "dev_size_mb=32",
            "sector_size=4096",
            "physblk_exp=1",
            "opt_blks=16",
            "lbpu=1",
            "lbpws=1",
            "unmap_max_blocks=64",
            "unmap_granularity=2",
            "write_same_length=32",
        ],
    )?;
    let mut report = Vec::new();
    for dev in [sd.disk.clone(), partition(&sd.disk)?] {
        let f = ctx(
            OpenOptions::new().read(true).write(true).open(&dev),
            format!("open {}", dev.display()),
        )?;
        let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
        let c = checked_config(&t, &dev, false)?;
        ensure(
            c.max_discard_seg != 0 && c.max_write_zeroes_sectors < MAX_ZEROOUT_SECTORS,
            || {
                format!(
                    "{}: discard {} sectors, write-zeroes {}: scsi_debug's small limits did \
                     not reach the device, so the case tested nothing",
                    dev.display(),
                    c.max_discard_sectors,
                    c.max_write_zeroes_sectors
                )
            },
        )?;
        let done = limits_hold(&mut t, &c).map_err(|e| format!("{}: {e}", dev.display()))?;
        report.push(format!(
            "{} ({} sectors): {done}",
            dev.display(),
            c.capacity
        ));
    }
    println!("  {}", report.join("; "));
    sd.unload()
}

/// The device's capacity follows its disk, resized under it: a loop
/// device of 16 MiB grown to 32 and shrunk to 8 (`losetup -c`) while the
/// device runs. `VHOST_BLK_GET_CONFIG` gives each size; a write at 20 MiB
/// is IOERR before the growth, then served and read back, and IOERR again
/// (a read too) after the shrink.
fn config_capacity_follows_a_resize() -> CaseResult {
    const MIB: u64 = 1 << 11;
    let lo = ctx(
        LoopDev::create(Path::new("/tmp/vhost-blk-resize.img"), 16),
        "loop device",
    )?;
    let f = ctx(
        OpenOptions::new().read(true).write(true).open(lo.path()),
        "open the loop device",
    )?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    let capacity = |t: &TestDevice, mib: u64, when: &str| -> CaseResult {
        let c = ctx(t.dev.get_config(), "GET_CONFIG")?;
        ensure(c.capacity == mib * MIB, || {
            format!(
                "{when}: capacity {} sectors, the disk has {}",
                c.capacity,
                mib * MIB
            )
        })
    };
    let data: Vec<u8> = (0..4096).map(|o| pattern(0x5e1e, o)).collect();
    let a = t.buf(4096, 4096);
    t.mem
        .write(a, &data)
        .map_err(|_| "writing the guest buffer faulted")?;
    let at = 20 * MIB;
    let status = |t: &mut TestDevice, ty: u32, buf: Buf| status_of(t, ty, at, &[buf]);
    capacity(&t, 16, "attached")?;
    let s = status(&mut t, VIRTIO_BLK_T_OUT, Buf::r(a, 4096))?;
    ensure(s == VIRTIO_BLK_S_IOERR, || {
        format!(
            "a write at 20 MiB of a 16 MiB disk: status {}",
            status_name(s)
        )
    })?;
    ctx(lo.resize(32), "grow to 32 MiB")?;
    capacity(&t, 32, "grown")?;
    let s = status(&mut t, VIRTIO_BLK_T_OUT, Buf::r(a, 4096))?;
    ensure(s == VIRTIO_BLK_S_OK, || {
        format!(
            "a write at 20 MiB of the disk grown to 32: status {}",
            status_name(s)
        )
    })?;
    let b = t.buf(4096, 4096);
    let s = status(&mut t, VIRTIO_BLK_T_IN, Buf::w(b, 4096))?;
    let mut back = vec![0u8; 4096];
    t.mem
        .read(b, &mut back)
        .map_err(|_| "reading the guest buffer faulted")?;
    ensure(s == VIRTIO_BLK_S_OK && back == data, || {
        format!(
            "reading the write back: status {}, data equal: {}",
            status_name(s),
            back == data
        )
    })?;
    ctx(lo.resize(8), "shrink to 8 MiB")?;
    capacity(&t, 8, "shrunk")?;
    for (ty, buf, what) in [
        (VIRTIO_BLK_T_OUT, Buf::r(a, 4096), "write"),
        (VIRTIO_BLK_T_IN, Buf::w(b, 4096), "read"),
    ] {
        let s = status(&mut t, ty, buf)?;
        ensure(s == VIRTIO_BLK_S_IOERR, || {
            format!(
                "a {what} at 20 MiB of the disk shrunk to 8: status {}",
                status_name(s)
            )
        })?;
    }
    println!("  capacity 16, 32, 8 MiB as the loop device was resized; the grown area served");
    Ok(())
}
