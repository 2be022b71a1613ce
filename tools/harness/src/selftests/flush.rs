// SPDX-License-Identifier: GPL-2.0

//! Flush semantics, proven with dm-log-writes under the backend.
//!
//! dm-log-writes records every write that reached the disk, in the order
//! the disk was told it is stable: a write is logged when a flush that
//! covers it completes (just before that flush's own entry), or at once
//! if it carried FUA; writes never flushed are logged only when the
//! target is removed. So:
//!
//! - a guest FLUSH must appear as a FLUSH entry, after the writes that
//!   completed before the guest sent it and before the writes it sent
//!   after;
//! - without FLUSH negotiated the guest assumes a write-through disk
//!   (virtio 1.2, 5.2.6; Linux `virtblk_get_cache_mode`), so on a backend
//!   with a volatile cache every write must be durable when it completes:
//!   logged with FUA, or followed by a flush, before anything later;
//! - the same once the driver turns writeback off
//!   (`VIRTIO_BLK_F_CONFIG_WCE`, `VHOST_BLK_SET_WRITEBACK` 0), and not
//!   after it turns it on again.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use vhost_blk_core::blk::*;
use vhost_blk_core::features::{self, bit};
use vhost_blk_core::memory::UserMemory;

use crate::blk::{pattern, status_name, Config, TestDevice};
use crate::driver::Buf;
use crate::logwrites::{Entry, LogWrites, LOG_FLUSH, LOG_FUA};
use crate::request::range;
use crate::selftests::io::backend;
use crate::testing::{ctx, ensure, CaseResult, Runner};

/// Registers this area's cases.
pub fn run(r: &mut Runner) {
    crate::cases!(
        r,
        flush_becomes_preflush_in_order,
        write_through_without_flush_feature,
        write_through_while_writeback_is_off,
    );
}

/// A disk with a volatile cache and FUA, logged by dm-log-writes onto a
/// second disk.
struct Logged {
    lw: LogWrites,
    _disks: Vec<crate::nullb::NullBlk>,
}

impl Logged {
    fn new(tag: &str) -> Result<(Self, File), String> {
        let data_name = format!("vbl{tag}d");
        let log_name = format!("vbl{tag}l");
        let (d, _) = backend(&data_name, 16, &[("cache_size", "16"), ("fua", "1")])?;
        let (l, _) = backend(&log_name, 64, &[])?;
        let lw = LogWrites::create(
            &format!("vbl{tag}"),
            Path::new(&format!("/dev/{data_name}")),
            Path::new(&format!("/dev/{log_name}")),
        )?;
        let f = ctx(
            OpenOptions::new().read(true).write(true).open(lw.path()),
            "open dm",
        )?;
        let wc = lw
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| fs::read_to_string(format!("/sys/block/{n}/queue/write_cache")));
        let wc = wc.and_then(|r| r.ok()).unwrap_or_default();
        ensure(wc.trim() == "write back", || {
            format!("the logged disk's cache is {wc:?}, the test needs write back")
        })?;
        Ok((
            Self {
                lw,
                _disks: vec![d, l],
            },
            f,
        ))
    }

    /// Removes the target (which logs what is left) and reads the log,
    /// whose entries count 512-byte sectors (the data disk's blocks).
    fn finish(self) -> Result<Vec<Entry>, String> {
        let log = self.lw.finish()?;
        ensure(log.sectorsize == 512, || {
            format!("log sector size {}", log.sectorsize)
        })?;
        Ok(log.entries)
    }
}

/// Writes 4 KiB of `pattern(seed, ..)` at `sector`; must succeed.
fn write(t: &mut TestDevice, a: u64, sector: u64, seed: u64) -> CaseResult {
    let data: Vec<u8> = (0..4096).map(|i| pattern(seed, i)).collect();
    t.mem.write(a, &data).map_err(|_| "fill")?;
    let (s, _) = t.request(0, VIRTIO_BLK_T_OUT, sector, &[Buf::r(a, 4096)], false)?;
    ensure(s == VIRTIO_BLK_S_OK, || {
        format!("write at {sector}: {}", status_name(s))
    })
}

/// The index of the write entry of `sector` carrying `seed`'s data.
fn find_write(log: &[Entry], sector: u64, seed: u64) -> Result<usize, String> {
    log.iter()
        .position(|e| {
            e.sector == sector
                && e.nr_sectors == 8
                && e.data.len() == 4096
                && e.data
                    .iter()
                    .enumerate()
                    .all(|(i, b)| *b == pattern(seed, i as u64))
        })
        .ok_or_else(|| format!("the write at sector {sector} (seed {seed}) is not in the log"))
}

/// Whether log entry `i`, a write, was durable when it completed: it
/// carries FUA, or a flush follows it before anything else.
fn durable(log: &[Entry], i: usize) -> bool {
    log[i].flags & LOG_FUA != 0
        || log
            .get(i + 1)
            .is_some_and(|e| e.flags & LOG_FLUSH != 0 && e.nr_sectors == 0)
}

fn describe(log: &[Entry]) -> String {
    log.iter()
        .map(|e| format!("[{} +{} flags {:#x}]", e.sector, e.nr_sectors, e.flags))
        .collect::<Vec<_>>()
        .join(" ")
}

fn flush_becomes_preflush_in_order() -> CaseResult {
    let (logged, f) = Logged::new("f")?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    let a = t.buf(4096, 4096);
    // W1, W2 complete; FLUSH; W3 completes; FLUSH; W4 never flushed.
    write(&mut t, a, 0, 1)?;
    write(&mut t, a, 64, 2)?;
    let (s, _) = t.request(0, VIRTIO_BLK_T_FLUSH, 0, &[], false)?;
    ensure(s == VIRTIO_BLK_S_OK, || {
        format!("flush: {}", status_name(s))
    })?;
    write(&mut t, a, 128, 3)?;
    let (s, _) = t.request(0, VIRTIO_BLK_T_FLUSH, 0, &[], false)?;
    ensure(s == VIRTIO_BLK_S_OK, || {
        format!("flush: {}", status_name(s))
    })?;
    write(&mut t, a, 192, 4)?;
    drop(t);
    drop(f);
    let log = logged.finish()?;
    let flushes: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, e)| e.flags & LOG_FLUSH != 0 && e.nr_sectors == 0)
        .map(|(i, _)| i)
        .collect();
    let (w1, w2, w3, w4) = (
        find_write(&log, 0, 1)?,
        find_write(&log, 64, 2)?,
        find_write(&log, 128, 3)?,
        find_write(&log, 192, 4)?,
    );
    ensure(flushes.len() == 2, || {
        format!(
            "{} flush entries for 2 guest flushes: {}",
            flushes.len(),
            describe(&log)
        )
    })?;
    let (f1, f2) = (flushes[0], flushes[1]);
    ensure(w1 < f1 && w2 < f1 && f1 < w3 && w3 < f2 && f2 < w4, || {
        format!(
            "order W1 {w1}, W2 {w2}, FLUSH {f1}, W3 {w3}, FLUSH {f2}, W4 {w4}: {}",
            describe(&log)
        )
    })?;
    ensure(log[w1].flags & LOG_FUA == 0, || {
        "with FLUSH negotiated, writes need no FUA".into()
    })?;
    println!(
        "  {} log entries: W1 W2 FLUSH W3 FLUSH W4 in order",
        log.len()
    );
    Ok(())
}

fn write_through_without_flush_feature() -> CaseResult {
    let (logged, f) = Logged::new("w")?;
    let cfg = Config {
        features: features::SUPPORTED & !bit(features::VIRTIO_BLK_F_FLUSH),
        ..Config::default()
    };
    let mut t = ctx(TestDevice::new(&f, cfg), "device")?;
    let a = t.buf(4096, 4096);
    for i in 0..4u64 {
        write(&mut t, a, i * 64, 10 + i)?;
    }
    // Write-zeroes is a write too.
    let seg = t.buf(16, 16);
    t.mem.write(seg, &range(256, 8, 0)).map_err(|_| "segment")?;
    let (s, _) = t.request(0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &[Buf::r(seg, 16)], false)?;
    ensure(s == VIRTIO_BLK_S_OK, || {
        format!("write-zeroes: {}", status_name(s))
    })?;
    drop(t);
    drop(f);
    let log = logged.finish()?;
    // Each write must be durable before the next one was even sent.
    let mut last = 0;
    for i in 0..4u64 {
        let w = find_write(&log, i * 64, 10 + i)?;
        ensure(durable(&log, w) && (i == 0 || w > last), || {
            format!(
                "write {i} was not durable on completion: {}",
                describe(&log)
            )
        })?;
        last = w;
    }
    let z = log
        .iter()
        .position(|e| e.sector == 256 && e.nr_sectors == 8 && e.data.iter().all(|b| *b == 0))
        .ok_or_else(|| format!("the zeroes are not in the log: {}", describe(&log)))?;
    ensure(durable(&log, z) && z > last, || {
        format!(
            "the zeroes were not durable on completion: {}",
            describe(&log)
        )
    })?;
    println!(
        "  {} log entries: 4 writes and the zeroes each durable on completion",
        log.len()
    );
    Ok(())
}

fn write_through_while_writeback_is_off() -> CaseResult {
    let (logged, f) = Logged::new("c")?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    match t.dev.set_writeback(2) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
        other => return Err(format!("SET_WRITEBACK 2: {other:?}, expected EINVAL")),
    }
    let a = t.buf(4096, 4096);
    ctx(t.dev.set_writeback(0), "writeback off")?;
    let fdinfo = format!("/proc/self/fdinfo/{}", t.dev.as_raw_fd());
    let info = fs::read_to_string(&fdinfo).map_err(|e| format!("{fdinfo}: {e}"))?;
    ensure(info.lines().any(|l| l == "vhost-blk-writeback:\t0"), || {
        format!("{fdinfo} does not show writeback off: {info}")
    })?;
    for i in 0..2u64 {
        write(&mut t, a, i * 64, 20 + i)?;
    }
    ctx(t.dev.set_writeback(1), "writeback on")?;
    write(&mut t, a, 128, 22)?;
    drop(t);
    drop(f);
    let log = logged.finish()?;
    for i in 0..2u64 {
        let w = find_write(&log, i * 64, 20 + i)?;
        ensure(durable(&log, w), || {
            format!(
                "write {i} with writeback off was not durable on completion: {}",
                describe(&log)
            )
        })?;
    }
    let w = find_write(&log, 128, 22)?;
    ensure(log[w].flags & LOG_FUA == 0, || {
        format!(
            "with writeback on again, a write carried FUA: {}",
            describe(&log)
        )
    })?;
    println!(
        "  {} log entries: 2 writes durable, then 1 cached",
        log.len()
    );
    Ok(())
}
