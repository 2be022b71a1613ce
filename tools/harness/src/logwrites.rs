// SPDX-License-Identifier: GPL-2.0

//! dm-log-writes for the selftests: a device-mapper target that passes
//! I/O to a data disk and records every write that reached it, with its
//! data, on a log disk (`drivers/md/dm-log-writes.c`).
//!
//! The log records a write when a flush that covers it completes (just
//! before the flush's own entry), at once if it carried FUA, and
//! otherwise when the target is removed. Sectors and lengths are in the
//! data disk's logical blocks (`sectorsize`), rounded down from the
//! bio's 512-byte sectors (`bio_to_dev_sectors`).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::nullb::{sectors, DmDev};
use crate::testing::{ctx, ensure};

/// The entry is a flush (`LOG_FLUSH_FLAG`).
pub const LOG_FLUSH: u64 = 1;
/// The write carried FUA (`LOG_FUA_FLAG`).
pub const LOG_FUA: u64 = 2;
/// The entry is a discard, without data (`LOG_DISCARD_FLAG`).
pub const LOG_DISCARD: u64 = 4;
/// The entry is a mark set from userspace (`LOG_MARK_FLAG`).
pub const LOG_MARK: u64 = 8;
/// The super block's magic number.
const LOG_MAGIC: u64 = 0x6a_7366_7773_6872;

/// One entry of a dm-log-writes log.
#[derive(Debug, Clone)]
pub struct Entry {
    /// First sector, in the log's `sectorsize` units.
    pub sector: u64,
    /// Length, in the log's `sectorsize` units.
    pub nr_sectors: u64,
    /// `LOG_*` flags.
    pub flags: u64,
    /// The logged data (empty for flushes, discards and marks).
    pub data: Vec<u8>,
}

/// A parsed log.
#[derive(Debug, Clone)]
pub struct Log {
    /// The data disk's logical block size: the unit of every entry's
    /// `sector` and `nr_sectors`.
    pub sectorsize: u64,
    /// The entries, in the order the log recorded them.
    pub entries: Vec<Entry>,
}

fn le64(b: &[u8], off: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(v)
}

/// Parses the contents of a log device: a super block in the first
/// `sectorsize` bytes, then each entry in a block of its own followed by
/// its data (`nr_sectors` blocks).
pub fn parse(log: &[u8]) -> Result<Log, String> {
    ensure(log.len() >= 512 && le64(log, 0) == LOG_MAGIC, || {
        "no dm-log-writes super block".into()
    })?;
    let n = le64(log, 16);
    let mut ss = [0u8; 4];
    ss.copy_from_slice(&log[24..28]);
    let sectorsize = u64::from(u32::from_le_bytes(ss));
    ensure(sectorsize.is_power_of_two() && sectorsize >= 512, || {
        format!("log sector size {sectorsize}")
    })?;
    let block = sectorsize as usize;
    let mut at = block;
    let mut entries = Vec::new();
    for i in 0..n {
        let e = log
            .get(at..at + 32)
            .ok_or_else(|| format!("entry {i} past the end of the log"))?;
        let (sector, nr_sectors, flags) = (le64(e, 0), le64(e, 8), le64(e, 16));
        at += block;
        let mut data = Vec::new();
        if flags & (LOG_MARK | LOG_DISCARD) == 0 && nr_sectors > 0 {
            let len = usize::try_from(nr_sectors)
                .ok()
                .and_then(|s| s.checked_mul(block))
                .ok_or_else(|| format!("entry {i}: {nr_sectors} sectors"))?;
            data = log
                .get(at..at + len)
                .ok_or_else(|| format!("data of entry {i} past the end"))?
                .to_vec();
            at += len;
        }
        entries.push(Entry {
            sector,
            nr_sectors,
            flags,
            data,
        });
    }
    Ok(Log {
        sectorsize,
        entries,
    })
}

/// A dm-log-writes target over a data disk, logging onto a log disk;
/// removed when dropped (without reading the log).
pub struct LogWrites {
    /// The target (`None` once [`LogWrites::finish`] removed it).
    dm: Option<DmDev>,
    /// The log disk.
    log: PathBuf,
}

impl LogWrites {
    /// Creates target `name` over the whole of `data`, logging to `log`.
    pub fn create(name: &str, data: &Path, log: &Path) -> Result<Self, String> {
        let size = ctx(sectors(data), format!("size of {}", data.display()))?;
        let dm = ctx(
            DmDev::create(
                name,
                &format!("0 {size} log-writes {} {}", data.display(), log.display()),
            ),
            "dm log-writes",
        )?;
        Ok(Self {
            dm: Some(dm),
            log: log.to_path_buf(),
        })
    }

    /// The target's device node.
    pub fn path(&self) -> &Path {
        self.dm.as_ref().map_or_else(|| Path::new(""), |d| d.path())
    }

    /// Removes the target (which logs the writes not logged yet) and
    /// reads and parses the log. Every file open on the target must be
    /// closed first.
    pub fn finish(mut self) -> Result<Log, String> {
        if let Some(dm) = self.dm.take() {
            ctx(dm.remove(), "dm remove")?;
        }
        let mut buf = Vec::new();
        ctx(
            File::open(&self.log).and_then(|mut f| f.read_to_end(&mut buf)),
            "read log",
        )?;
        parse(&buf)
    }
}
