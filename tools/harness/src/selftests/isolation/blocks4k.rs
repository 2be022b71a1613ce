// SPDX-License-Identifier: GPL-2.0

//! `isolation_4k_logical_blocks`: disks of 4 KiB logical blocks. A
//! request whose length or sector is not a multiple of 4 KiB gets IOERR;
//! requests with data buffers a disk may not take as they are get IOERR
//! or are served whole and right; and no bio that starts or ends inside
//! a 4 KiB block may reach the disk, which dm-log-writes between vhost-blk
//! and the disk records. The checks run on a null_blk and on a
//! `scsi_debug` SCSI disk, both of 4 KiB blocks.
//!
//! dm-log-writes records a write's sector and length in the data disk's
//! blocks, rounded down from the bio's 512-byte sectors, and its data in
//! full. So a bio that is not whole blocks shows in the log as a write of
//! no block, or as one whose data are not its request's bytes for the
//! blocks it claims, or as blocks of a completed request that no entry
//! covers: the log check looks for each.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use vhost_blk_core::blk::*;
use vhost_blk_core::memory::UserMemory;

use super::scsi_debug::ScsiDebug;
use crate::blk::{pattern, status_name, Config, TestDevice};
use crate::driver::Buf;
use crate::logwrites::{Log, LogWrites, LOG_DISCARD, LOG_FLUSH, LOG_MARK};
use crate::nullb::NullBlk;
use crate::selftests::io::{backend, direct_read, open_direct_read, write_read_check};
use crate::testing::{ctx, ensure, CaseResult, KernelLog};

/// The block size of the disks under test.
const BLOCK: u64 = 4096;
/// Where the aligned 16 KiB go (512-byte sectors; 1 MiB).
const AT_ALIGNED: u64 = 2048;
/// Where the request with one skewed buffer goes (2 MiB).
const AT_SKEWED: u64 = 4096;
/// Where the request with the awkward split point goes (3 MiB).
const AT_SPLIT: u64 = 6144;

/// A write request the log may show: its sector, its bytes, and whether
/// it completed OK (then every one of its blocks must be in the log).
struct Posted {
    /// First sector (512 bytes).
    sector: u64,
    /// The bytes written.
    data: Vec<u8>,
    /// Whether the request completed OK.
    ok: bool,
}

/// Runs the checks on a 4 KiB null_blk, then on scsi_debug with 4 KiB
/// sectors (its module from `kdir`), and checks the kernel log for the
/// SCSI disk's complaint about unaligned requests.
pub(super) fn isolation_4k_logical_blocks(kdir: Option<&Path>) -> CaseResult {
    let mut kmsg = KernelLog::tail()?;
    let nb = ctx(
        NullBlk::create(
            "vbi4n",
            64,
            &[("memory_backed", "1"), ("blocksize", "4096")],
        ),
        "null_blk of 4 KiB blocks",
    )?;
    let on_nullb = check_disk(nb.path(), "n").map_err(|e| format!("null_blk: {e}"))?;
    let kdir = kdir.ok_or(
        "--kdir not given: the scsi_debug part needs the test kernel's build tree \
         (vhost-blk-selftest --kdir DIR)",
    )?;
    let sd = ScsiDebug::load(kdir, &["sector_size=4096", "dev_size_mb=64"])?;
    let on_sd =
        check_disk(&sd.disk, "s").map_err(|e| format!("scsi_debug {}: {e}", sd.disk.display()))?;
    let disk = sd.disk.display().to_string();
    sd.unload()?;
    let lines = kmsg.read()?;
    let bad: Vec<&String> = lines.iter().filter(|l| l.contains("not aligned")).collect();
    ensure(bad.is_empty(), || {
        format!("the kernel log reports unaligned requests: {bad:?}")
    })?;
    println!("  null_blk: {on_nullb}; scsi_debug ({disk}): {on_sd}; nothing unaligned logged");
    Ok(())
}

/// The logical block size of block device `dev`.
fn logical_block_size(dev: &Path) -> Result<u64, String> {
    let name = dev
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{}: no device name", dev.display()))?;
    let p = format!("/sys/class/block/{name}/queue/logical_block_size");
    let s = ctx(std::fs::read_to_string(&p), &p)?;
    s.trim().parse().map_err(|e| format!("{p}: {e}"))
}

/// All checks on `data`, a disk of 4 KiB blocks, through dm-log-writes
/// (target `vbi4<tag>`, logging to a null_blk): returns a summary.
fn check_disk(data: &Path, tag: &str) -> Result<String, String> {
    let lbs = logical_block_size(data)?;
    ensure(lbs == BLOCK, || {
        format!("the disk has {lbs}-byte blocks, the case needs 4096")
    })?;
    let (log_disk, _) = backend(&format!("vbi4{tag}l"), 64, &[])?;
    let lw = LogWrites::create(&format!("vbi4{tag}"), data, log_disk.path())?;
    let lbs = logical_block_size(lw.path())?;
    ensure(lbs == BLOCK, || {
        format!("the log-writes target has {lbs}-byte blocks, expected the disk's 4096")
    })?;
    let direct = open_direct_read(data)?;
    let mut posted = Vec::new();
    let (skewed, split) = {
        let f = ctx(
            OpenOptions::new().read(true).write(true).open(lw.path()),
            "open the log-writes target",
        )?;
        let cfg = Config {
            size: 256,
            mem_mib: 16,
            ..Config::default()
        };
        let mut t = ctx(TestDevice::new(&f, cfg), "device")?;
        // (i) Whole, aligned blocks: written, read back, and on the disk.
        write_read_check(
            &mut t,
            0,
            AT_ALIGNED,
            16384,
            4096,
            0,
            false,
            0x4b1,
            Some(&direct),
        )?;
        posted.push(Posted {
            sector: AT_ALIGNED,
            data: (0..16384).map(|i| pattern(0x4b1, i)).collect(),
            ok: true,
        });
        // (ii) Lengths and sectors that are not whole blocks.
        misaligned(&mut t, &direct)?;
        // (iii) One buffer 512 bytes into a page.
        let skewed = odd_layout(&mut t, &direct, AT_SKEWED, &[(512, 4096)], 0x4b2)?;
        // (iv) The split point inside a block.
        let split = odd_layout(&mut t, &direct, AT_SPLIT, &split_layout(), 0x4b3)?;
        (skewed, split)
    };
    posted.extend([skewed.1, split.1]);
    let log = lw.finish()?;
    let logged = check_log(&log, &posted)?;
    Ok(format!(
        "aligned OK, misaligned IOERR, skewed buffer {}, split inside a block {}, {logged} \
         logged writes of whole blocks",
        skewed.0, split.0
    ))
}

/// Requests whose length or first sector is not a multiple of 4 KiB get
/// IOERR with used length 1, and the disk is left as it was (zeroes).
fn misaligned(t: &mut TestDevice, direct: &File) -> CaseResult {
    let a = t.buf(4096, 4096);
    let data: Vec<u8> = (0..4096).map(|i| pattern(0x4b0, i)).collect();
    t.mem.write(a, &data).map_err(|_| "guest memory")?;
    for (what, ty, sector, buf) in [
        ("a 512-byte write", VIRTIO_BLK_T_OUT, 0, Buf::r(a, 512)),
        (
            "a 4 KiB write at sector 1",
            VIRTIO_BLK_T_OUT,
            1,
            Buf::r(a, 4096),
        ),
        ("a 512-byte read", VIRTIO_BLK_T_IN, 0, Buf::w(a, 512)),
        (
            "a 4 KiB read at sector 1",
            VIRTIO_BLK_T_IN,
            1,
            Buf::w(a, 4096),
        ),
    ] {
        let (st, used) = t.request(0, ty, sector, &[buf], false)?;
        ensure(st == VIRTIO_BLK_S_IOERR && used == 1, || {
            format!(
                "{what}: {} with used length {used}, expected IOERR with 1",
                status_name(st)
            )
        })?;
    }
    ensure(
        direct_read(direct, 0, 2 * BLOCK)?.iter().all(|b| *b == 0),
        || "a misaligned write reached the disk: its first 8 KiB are no longer zeroes".into(),
    )
}

/// The data pieces of the split-point request, as (offset in the first
/// of its pages, length), each in pages of its own:
///
/// - 512 bytes at a page's start: page segment 1, ending at byte 512;
/// - 127 pieces of 4096 bytes 512 bytes into a page, each two segments
///   (3584 + 512 bytes): segments 2 to 255, ending at byte
///   512 + 127 * 4096 = 520704;
/// - 1024 bytes at a page's start: segment 256, ending at byte 521728 =
///   127 * 4096 + 1536, inside the 128th block;
/// - 2560 bytes at a page's start: segment 257, ending at byte 524288 =
///   128 * 4096.
///
/// So the request is 512 KiB, whole blocks, but a bio of the first 256
/// segments (`BIO_MAX_VECS`) would end 1536 bytes into a block. (130
/// pieces, not 130 blocks: the total is 524288 bytes, not 532480.)
fn split_layout() -> Vec<(u64, u32)> {
    let mut v = vec![(0, 512)];
    v.extend(std::iter::repeat_n((512, 4096), 127));
    v.extend([(0, 1024), (0, 2560)]);
    v
}

/// Guest buffers laid out as `pieces` (see [`split_layout`]), each
/// starting in pages of its own, with no two of those pages physically
/// adjacent (so no two segments merge into one bvec), readable or
/// `writable` by the device.
fn layout(t: &mut TestDevice, pieces: &[(u64, u32)], writable: bool) -> Result<Vec<Buf>, String> {
    let mut pages = Vec::new();
    let mut bufs = Vec::new();
    for &(off, len) in pieces {
        let n = (off + u64::from(len)).div_ceil(4096);
        let base = t.buf(n * 4096, 4096);
        pages.extend((0..n).map(|k| base + k * 4096));
        bufs.push(if writable {
            Buf::w(base + off, len)
        } else {
            Buf::r(base + off, len)
        });
    }
    scatter(&pages)?;
    Ok(bufs)
}

/// Replaces the pages of this process at `pages` (page-aligned, in
/// order) with fresh zeroed pages, no two consecutive ones physically
/// adjacent: from a pool whose page frames (from `/proc/self/pagemap`)
/// are sorted, every other frame is moved into place with `mremap`.
fn scatter(pages: &[u64]) -> CaseResult {
    const PAGE: usize = 4096;
    let count = 2 * pages.len() + 2;
    let len = count * PAGE;
    // SAFETY: a fresh anonymous mapping, unmapped below.
    let pool = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    if pool == libc::MAP_FAILED {
        return Err(format!("mmap: {}", std::io::Error::last_os_error()));
    }
    let result = (|| -> CaseResult {
        let pagemap = ctx(File::open("/proc/self/pagemap"), "/proc/self/pagemap")?;
        let mut frames = Vec::new();
        for i in 0..count {
            let va = pool as u64 + (i * PAGE) as u64;
            let mut e = [0u8; 8];
            ctx(
                pagemap.read_exact_at(&mut e, va / PAGE as u64 * 8),
                "read /proc/self/pagemap",
            )?;
            let e = u64::from_ne_bytes(e);
            // Bit 63: present; bits 0-54: the page frame number (0 for
            // a reader without CAP_SYS_ADMIN).
            let pfn = e & ((1 << 55) - 1);
            ensure(e >> 63 == 1 && pfn != 0, || {
                format!("no page frame in /proc/self/pagemap ({e:#x}): needs CAP_SYS_ADMIN")
            })?;
            frames.push((pfn, i));
        }
        frames.sort_unstable();
        for (k, &dst) in pages.iter().enumerate() {
            let src = pool as u64 + (frames[2 * k].1 * PAGE) as u64;
            // SAFETY: moves one page of the pool over one page of this
            // process's guest memory, which the caller laid out for it.
            let r = unsafe {
                libc::mremap(
                    src as *mut libc::c_void,
                    PAGE,
                    PAGE,
                    libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                    dst as *mut libc::c_void,
                )
            };
            ensure(r != libc::MAP_FAILED, || {
                format!("mremap: {}", std::io::Error::last_os_error())
            })?;
        }
        Ok(())
    })();
    // SAFETY: unmaps what is left of the pool (moved pages are gone
    // from it).
    unsafe { libc::munmap(pool, len) };
    result
}

/// Writes `pattern(seed, ..)` at `sector` from buffers laid out as
/// `pieces`, then reads it back into buffers of the same layout. Each
/// request must complete with IOERR (used length 1), or OK with the data
/// right on the disk (read with O_DIRECT) and in the guest. Returns the
/// two statuses for the report, and the write for the log check.
fn odd_layout(
    t: &mut TestDevice,
    direct: &File,
    sector: u64,
    pieces: &[(u64, u32)],
    seed: u64,
) -> Result<(String, Posted), String> {
    let len: u64 = pieces.iter().map(|p| u64::from(p.1)).sum();
    ensure(len.is_multiple_of(BLOCK), || {
        format!("the layout adds up to {len} bytes, not whole blocks")
    })?;
    let data: Vec<u8> = (0..len).map(|i| pattern(seed, i)).collect();
    let wbufs = layout(t, pieces, false)?;
    let mut off = 0;
    for b in &wbufs {
        let n = b.len as usize;
        t.mem
            .write(b.addr, &data[off..off + n])
            .map_err(|_| "guest memory")?;
        off += n;
    }
    let what = format!("a {len}-byte write in {} pieces", pieces.len());
    let (st, used) = t.request(0, VIRTIO_BLK_T_OUT, sector, &wbufs, true)?;
    ensure(
        (st == VIRTIO_BLK_S_OK || st == VIRTIO_BLK_S_IOERR) && used == 1,
        || format!("{what}: {} with used length {used}", status_name(st)),
    )?;
    let disk = direct_read(direct, sector, len)?;
    ensure(st != VIRTIO_BLK_S_OK || disk == data, || {
        format!("{what} completed OK, but the disk holds other bytes")
    })?;
    let rbufs = layout(t, pieces, true)?;
    for b in &rbufs {
        t.mem
            .write(b.addr, &vec![0xa5; b.len as usize])
            .map_err(|_| "guest memory")?;
    }
    let (rst, rused) = t.request(0, VIRTIO_BLK_T_IN, sector, &rbufs, true)?;
    if rst == VIRTIO_BLK_S_OK {
        ensure(u64::from(rused) == len + 1, || {
            format!("the read back: used length {rused}, expected {}", len + 1)
        })?;
        let mut got = Vec::new();
        for b in &rbufs {
            let mut chunk = vec![0u8; b.len as usize];
            t.mem.read(b.addr, &mut chunk).map_err(|_| "guest memory")?;
            got.extend(chunk);
        }
        ensure(got == disk, || {
            "the read back in the same layout does not return the disk's bytes".into()
        })?;
    } else {
        ensure(rst == VIRTIO_BLK_S_IOERR && rused == 1, || {
            format!(
                "the read back: {} with used length {rused}",
                status_name(rst)
            )
        })?;
    }
    Ok((
        format!("{}/{}", status_name(st), status_name(rst)),
        Posted {
            sector,
            data,
            ok: st == VIRTIO_BLK_S_OK,
        },
    ))
}

/// Checks every write in `log` (of a disk with 4 KiB blocks): at least
/// one block long, inside one of the `posted` requests, holding that
/// request's bytes for its blocks; and every block of a request that
/// completed OK logged. Returns the number of writes logged.
fn check_log(log: &Log, posted: &[Posted]) -> Result<usize, String> {
    ensure(log.sectorsize == BLOCK, || {
        format!(
            "the log counts {}-byte blocks, expected 4096",
            log.sectorsize
        )
    })?;
    let mut covered: Vec<Vec<bool>> = posted
        .iter()
        .map(|p| vec![false; p.data.len() / BLOCK as usize])
        .collect();
    let mut writes = 0;
    for e in &log.entries {
        let marker = e.flags & (LOG_MARK | LOG_DISCARD) != 0;
        if marker || (e.flags & LOG_FLUSH != 0 && e.nr_sectors == 0) {
            continue;
        }
        writes += 1;
        ensure(e.nr_sectors >= 1, || {
            format!(
                "a write of less than one 4 KiB block reached the disk in block {} (flags \
                 {:#x})",
                e.sector, e.flags
            )
        })?;
        let (k, p) = posted
            .iter()
            .enumerate()
            .find(|(_, p)| {
                let first = p.sector * 512 / BLOCK;
                let blocks = p.data.len() as u64 / BLOCK;
                e.sector >= first && e.sector + e.nr_sectors <= first + blocks
            })
            .ok_or_else(|| {
                format!(
                    "a write of blocks {}..{} reached the disk, inside no request that asked \
                     for whole blocks",
                    e.sector,
                    e.sector + e.nr_sectors
                )
            })?;
        let first = (e.sector - p.sector * 512 / BLOCK) as usize;
        let (off, len) = (first * BLOCK as usize, e.data.len());
        ensure(e.data[..] == p.data[off..off + len], || {
            format!(
                "the write logged for blocks {}..{} does not hold its request's bytes for them: \
                 a bio started or ended inside a block",
                e.sector,
                e.sector + e.nr_sectors
            )
        })?;
        for c in &mut covered[k][first..first + e.nr_sectors as usize] {
            *c = true;
        }
    }
    for (p, c) in posted.iter().zip(&covered) {
        let missing = c.iter().filter(|c| !**c).count();
        ensure(!p.ok || missing == 0, || {
            format!(
                "the write at sector {} completed OK, but {missing} of its blocks are not in \
                 the log as written",
                p.sector
            )
        })?;
    }
    Ok(writes)
}
