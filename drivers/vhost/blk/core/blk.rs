// SPDX-License-Identifier: GPL-2.0

//! virtio-blk requests (virtio 1.2, section 5.2.6): parsing and validation
//! of a descriptor chain into a request the backend can execute.
//!
//! A chain is a byte stream of device-readable bytes followed by
//! device-writable bytes, whatever the descriptor boundaries
//! (`VIRTIO_F_ANY_LAYOUT`). The 16-byte header is the start of the readable
//! part, the status byte is the last writable byte, and the data sits
//! between them.

use super::features;
use super::memory::{Fault, MemTable, UserMemory};
use super::ring::{Chain, Segment};

/// `VIRTIO_BLK_T_IN`: read.
pub const VIRTIO_BLK_T_IN: u32 = 0;
/// `VIRTIO_BLK_T_OUT`: write.
pub const VIRTIO_BLK_T_OUT: u32 = 1;
/// `VIRTIO_BLK_T_FLUSH`: flush the volatile write cache.
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
/// `VIRTIO_BLK_T_GET_ID`: read the device ID string.
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;
/// `VIRTIO_BLK_T_DISCARD`.
pub const VIRTIO_BLK_T_DISCARD: u32 = 11;
/// `VIRTIO_BLK_T_WRITE_ZEROES`.
pub const VIRTIO_BLK_T_WRITE_ZEROES: u32 = 13;

/// `VIRTIO_BLK_S_OK`.
pub const VIRTIO_BLK_S_OK: u8 = 0;
/// `VIRTIO_BLK_S_IOERR`.
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
/// `VIRTIO_BLK_S_UNSUPP`.
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;

/// `VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP`.
pub const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP: u32 = 1;

/// Size of `struct virtio_blk_outhdr`.
pub const HEADER_LEN: u32 = 16;
/// Size of `struct virtio_blk_discard_write_zeroes`.
pub const DWZ_SEG_LEN: u32 = 16;
/// Sector size of the protocol, whatever the device's block size.
pub const SECTOR_SIZE: u64 = 512;

/// What the backing device offers, as advertised to the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlkLimits {
    /// Capacity in 512-byte sectors.
    pub capacity: u64,
    /// Logical block size in bytes (a power of two, at least 512).
    pub logical_block_size: u32,
    /// Writes, discards and write-zeroes are refused.
    pub read_only: bool,
    /// `VIRTIO_BLK_F_FLUSH` was negotiated.
    pub flush: bool,
    /// DISCARD is offered: at most this many segments (0: not offered).
    pub max_discard_seg: u32,
    /// Largest discard segment in sectors.
    pub max_discard_sectors: u32,
    /// WRITE_ZEROES is offered: at most this many segments (0: not offered).
    pub max_write_zeroes_seg: u32,
    /// Largest write-zeroes segment in sectors.
    pub max_write_zeroes_sectors: u32,
    /// The largest data transfer of one request, in bytes.
    pub max_transfer: u32,
    /// WRITE_ZEROES is offloaded to the device (else written as zeroes).
    pub write_zeroes_offload: bool,
    /// The disk has a volatile write cache.
    pub write_cache: bool,
    /// Writes must be durable when they complete: the backend has a
    /// volatile cache, but the driver did not negotiate FLUSH (so it
    /// assumes a write-through cache) or turned writeback off.
    pub write_through: bool,
}

/// The largest request vhost-blk accepts, in bytes.
pub const MAX_TRANSFER: u32 = 8 << 20;

/// The largest DISCARD or offloaded WRITE_ZEROES range, in sectors: its
/// byte count must fit a bio's 32-bit size.
pub const MAX_RANGE_SECTORS: u32 = u32::MAX >> 9;

/// The largest WRITE_ZEROES range, in sectors (8 MiB): at most 8 bios of
/// zero pages per range, 256 per request, when the disk cannot offload it.
pub const MAX_ZEROOUT_SECTORS: u32 = 16384;

/// What a backing disk offers, as the block layer reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Disk {
    /// Size in 512-byte sectors.
    pub capacity: u64,
    /// Logical block size in bytes (0 or less than 512 is taken as 512).
    pub logical_block_size: u32,
    /// Largest discard in sectors; 0 if the disk cannot discard.
    pub max_discard_sectors: u32,
    /// Largest offloaded write-zeroes in sectors; 0 if not offloaded.
    pub max_write_zeroes_sectors: u32,
    /// The disk, or the file it was opened through, is read-only.
    pub read_only: bool,
    /// The disk has a volatile write cache.
    pub write_cache: bool,
    /// Physical block size in bytes (less than the logical one: the same).
    pub physical_block_size: u32,
    /// Bytes from sector 0 to the first physical block boundary.
    pub alignment_offset: u32,
    /// The smallest I/O that avoids a read-modify-write, in bytes.
    pub min_io_size: u32,
    /// The I/O size the disk prefers, in bytes (0: none).
    pub opt_io_size: u32,
    /// The unit a discard deallocates, in bytes.
    pub discard_granularity: u32,
}

impl BlkLimits {
    /// What requests to a device on `disk` are checked against, once the
    /// driver acked the features `acked` (in writeback mode, the default).
    pub fn for_disk(disk: &Disk, acked: u64) -> Self {
        let flush = acked & features::bit(features::VIRTIO_BLK_F_FLUSH) != 0;
        let offload = disk.max_write_zeroes_sectors != 0;
        let mut limits = Self {
            capacity: disk.capacity,
            logical_block_size: disk.logical_block_size.max(SECTOR_SIZE as u32),
            read_only: disk.read_only,
            flush,
            max_discard_seg: if disk.max_discard_sectors != 0 {
                MAX_RANGES
            } else {
                0
            },
            max_discard_sectors: disk.max_discard_sectors.min(MAX_RANGE_SECTORS),
            max_write_zeroes_seg: MAX_RANGES,
            // Any range may be written from the zero page, so this bound
            // holds with or without offload.
            max_write_zeroes_sectors: if offload {
                disk.max_write_zeroes_sectors.min(MAX_ZEROOUT_SECTORS)
            } else {
                MAX_ZEROOUT_SECTORS
            },
            max_transfer: MAX_TRANSFER,
            write_zeroes_offload: offload,
            write_cache: disk.write_cache,
            write_through: false,
        };
        limits.set_writeback(true);
        limits
    }

    /// The driver's cache mode (`VIRTIO_BLK_F_CONFIG_WCE`): without
    /// `writeback`, writes to a disk with a volatile cache are durable on
    /// completion, as without FLUSH.
    pub fn set_writeback(&mut self, writeback: bool) {
        self.write_through = self.write_cache && !(self.flush && writeback);
    }
}

/// How the data of a request must lie in the owner's memory for the backing
/// device to take it as direct I/O, from the device's queue limits.
///
/// Each piece of the data (a run of the owner's memory that one descriptor
/// maps to) must start and end on the device's DMA alignment, like the
/// buffers of `O_DIRECT`. The request's bios may break only on logical
/// block boundaries of the data: a bio of a 4 KiB-block disk that started
/// at a 512-byte offset would reach the disk misaligned. Bios break where
/// one is full, and, on a device with a virtual boundary (NVMe's PRPs),
/// wherever two pieces do not meet on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataRules {
    /// Logical block size in bytes (a power of two, at least 512).
    pub logical_block_size: u32,
    /// The mask every piece's address and length must clear (at least
    /// 511: whole sectors).
    pub dma_mask: u32,
    /// 0, or the mask two pieces of one bio must meet at.
    pub virt_boundary_mask: u32,
    /// The largest bio, in bytes: a multiple of the logical block size.
    pub max_bio_bytes: u32,
}

impl DataRules {
    /// The rules of a device with these queue limits (`max_sectors` 0:
    /// no limit of its own).
    pub fn new(
        logical_block_size: u32,
        dma_alignment: u32,
        virt_boundary_mask: u32,
        max_sectors: u32,
    ) -> Self {
        let lbs = logical_block_size.max(SECTOR_SIZE as u32);
        let max = if max_sectors == 0 {
            u32::MAX
        } else {
            max_sectors.saturating_mul(SECTOR_SIZE as u32)
        };
        Self {
            logical_block_size: lbs,
            dma_mask: dma_alignment | (SECTOR_SIZE as u32 - 1),
            virt_boundary_mask,
            // Whole blocks, and at least one.
            max_bio_bytes: (max - max % lbs).max(lbs),
        }
    }

    /// Whether a piece of `len` bytes at user address `addr` is aligned as
    /// the device requires.
    pub fn piece_aligned(&self, addr: u64, len: u64) -> bool {
        (addr | len) & u64::from(self.dma_mask) == 0
    }

    /// Whether a piece at `addr`, after one that ended at `prev_end`,
    /// leaves a gap that one bio of the device cannot hold.
    pub fn gap(&self, prev_end: u64, addr: u64) -> bool {
        let mask = u64::from(self.virt_boundary_mask);
        mask != 0 && (prev_end & mask != 0 || addr & mask != 0)
    }

    /// Whether a bio may start `offset` bytes into the request's data.
    pub fn may_split_at(&self, offset: u64) -> bool {
        offset % u64::from(self.logical_block_size) == 0
    }
}

/// The operation of a valid request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read `len` bytes at `sector` into the data buffers.
    Read,
    /// Write the data buffers at `sector`.
    Write,
    /// Flush the write cache.
    Flush,
    /// Write the ID string into the data buffers.
    GetId,
    /// Discard the ranges listed in the data buffers.
    Discard,
    /// Zero the ranges listed in the data buffers.
    WriteZeroes,
}

/// A validated request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// What to do.
    pub op: Op,
    /// First 512-byte sector (reads and writes).
    pub sector: u64,
    /// The data bytes between the header and the status byte.
    pub data: DataRange,
    /// Guest physical address of the status byte.
    pub status_addr: u64,
}

/// The data of a request: `len` bytes of the chain's buffers, starting
/// `offset` bytes into the readable part (writes, discard, write-zeroes) or
/// at the start of the writable part (reads, GET_ID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataRange {
    /// Whether the data is in the device-writable part.
    pub writable: bool,
    /// Offset into that part.
    pub offset: u32,
    /// Length in bytes.
    pub len: u32,
}

/// A request the device answers with a status without doing any I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Why (for statistics and tests).
    pub reason: Reject,
    /// `VIRTIO_BLK_S_IOERR` or `VIRTIO_BLK_S_UNSUPP`.
    pub status: u8,
    /// Guest physical address of the status byte.
    pub status_addr: u64,
}

/// Every way a request can be malformed; each maps to one status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Fewer than 16 readable bytes for the header.
    ShortHeader,
    /// Readable data on a request that reads nothing, or writable bytes
    /// besides the status on one that writes nothing.
    WrongDirection,
    /// Data length not a multiple of the logical block size.
    BadLength,
    /// The sector range is not aligned to the logical block size.
    Misaligned,
    /// The range ends past the capacity.
    BeyondCapacity,
    /// Larger than the device's maximum transfer.
    TooLarge,
    /// A write-type request on a read-only device.
    ReadOnly,
    /// An unknown or not offered request type.
    Unsupported(u32),
    /// Discard or write-zeroes: more segments than offered.
    TooManyRanges,
    /// Discard or write-zeroes: a range list not a multiple of 16 bytes,
    /// or empty.
    BadRangeList,
    /// Discard or write-zeroes: flags that are reserved or not allowed.
    BadRangeFlags,
    /// Discard or write-zeroes: a range larger than offered.
    RangeTooLarge,
    /// The header could not be read from guest memory.
    Fault,
}

impl Reject {
    /// The status the driver sees.
    pub fn status(self) -> u8 {
        match self {
            Reject::Unsupported(_) | Reject::TooManyRanges | Reject::BadRangeFlags => {
                VIRTIO_BLK_S_UNSUPP
            }
            _ => VIRTIO_BLK_S_IOERR,
        }
    }
}

/// A chain that cannot be answered at all: it has no writable status byte.
/// This is a ring-level error; the queue stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoStatus;

/// The most ranges a DISCARD or WRITE_ZEROES request may carry
/// (`max_discard_seg` / `max_write_zeroes_seg`).
pub const MAX_RANGES: u32 = 32;

/// One range of a DISCARD or WRITE_ZEROES request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    /// First sector.
    pub sector: u64,
    /// Number of sectors.
    pub num_sectors: u32,
    /// `VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP` may deallocate.
    pub unmap: bool,
    /// The raw flags, for [`check_range`].
    pub flags: u32,
}

/// Calls `f(guest_addr, len)` for each piece of `range` in `chain`, in order.
pub fn for_each_data_piece<E>(
    chain: &Chain,
    range: &DataRange,
    mut f: impl FnMut(u64, u32) -> Result<(), E>,
) -> Result<(), E> {
    let mut skip = range.offset;
    let mut left = range.len;
    for s in chain
        .segments()
        .iter()
        .filter(|s| s.writable == range.writable)
    {
        if left == 0 {
            break;
        }
        if skip >= s.len {
            skip -= s.len;
            continue;
        }
        let n = core::cmp::min(s.len - skip, left);
        f(s.addr + u64::from(skip), n)?;
        skip = 0;
        left -= n;
    }
    Ok(())
}

/// Copies the first `buf.len()` bytes of `range` out of guest memory.
pub fn read_data(
    mem: &impl UserMemory,
    table: &MemTable<'_>,
    chain: &Chain,
    range: &DataRange,
    buf: &mut [u8],
) -> Result<(), Fault> {
    let r = DataRange {
        len: core::cmp::min(range.len, buf.len() as u32),
        ..*range
    };
    let mut done = 0usize;
    for_each_data_piece(chain, &r, |gpa, n| {
        let n = n as usize;
        table.read(mem, gpa, &mut buf[done..done + n])?;
        done += n;
        Ok(())
    })?;
    if done == buf.len() {
        Ok(())
    } else {
        Err(Fault)
    }
}

/// Copies `buf` into the start of `range` in guest memory; returns the
/// number of bytes written (at most `range.len`).
pub fn write_data(
    mem: &impl UserMemory,
    table: &MemTable<'_>,
    chain: &Chain,
    range: &DataRange,
    buf: &[u8],
) -> Result<u32, Fault> {
    let r = DataRange {
        len: core::cmp::min(range.len, buf.len() as u32),
        ..*range
    };
    let mut done = 0usize;
    for_each_data_piece(chain, &r, |gpa, n| {
        let n = n as usize;
        table.write(mem, gpa, &buf[done..done + n])?;
        done += n;
        Ok(())
    })?;
    Ok(done as u32)
}

/// Reads range `i` of a DISCARD or WRITE_ZEROES request.
pub fn read_range(
    mem: &impl UserMemory,
    table: &MemTable<'_>,
    chain: &Chain,
    req: &Request,
    i: u32,
) -> Result<Range, Fault> {
    let r = DataRange {
        offset: req.data.offset + i * DWZ_SEG_LEN,
        len: DWZ_SEG_LEN,
        writable: false,
    };
    let mut b = [0u8; 16];
    read_data(mem, table, chain, &r, &mut b)?;
    let sector = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    let num_sectors = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    let flags = u32::from_le_bytes([b[12], b[13], b[14], b[15]]);
    Ok(Range {
        sector,
        num_sectors,
        unmap: flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP != 0,
        flags,
    })
}

/// Checks one DISCARD or WRITE_ZEROES range (already copied out of guest
/// memory) against the limits.
pub fn check_range(
    limits: &BlkLimits,
    op: Op,
    sector: u64,
    num_sectors: u32,
    flags: u32,
) -> Result<(), Reject> {
    let (allowed_flags, max_sectors) = match op {
        Op::WriteZeroes => (
            VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
            limits.max_write_zeroes_sectors,
        ),
        _ => (0, limits.max_discard_sectors),
    };
    if flags & !allowed_flags != 0 {
        return Err(Reject::BadRangeFlags);
    }
    if num_sectors > max_sectors {
        return Err(Reject::RangeTooLarge);
    }
    check_extent(limits, sector, u64::from(num_sectors) * SECTOR_SIZE)
}

fn check_extent(limits: &BlkLimits, sector: u64, len: u64) -> Result<(), Reject> {
    let lbs = u64::from(limits.logical_block_size);
    let byte = sector
        .checked_mul(SECTOR_SIZE)
        .ok_or(Reject::BeyondCapacity)?;
    // `checked_rem`: a zero block size (never configured) is misaligned,
    // not a division panic.
    if byte.checked_rem(lbs) != Some(0) || len.checked_rem(lbs) != Some(0) {
        return Err(Reject::Misaligned);
    }
    let end = sector
        .checked_add(len / SECTOR_SIZE)
        .ok_or(Reject::BeyondCapacity)?;
    if end > limits.capacity {
        return Err(Reject::BeyondCapacity);
    }
    Ok(())
}

/// Where the status byte of `chain` is: the last byte of its writable part.
pub fn status_addr(chain: &Chain) -> Result<u64, NoStatus> {
    match chain.last() {
        Some(Segment {
            addr,
            len,
            writable: true,
        }) => Ok(addr + u64::from(len) - 1),
        _ => Err(NoStatus),
    }
}

/// What [`parse`] made of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A request to execute.
    Request(Request),
    /// A request to answer at once with its `status`.
    Rejected(Rejection),
    /// A chain without a status byte: a ring error, the queue stops.
    NoStatus,
}

/// Parses and validates the request in `chain`. Ranges of DISCARD and
/// WRITE_ZEROES are checked one by one with [`check_range`] when executed,
/// since they live in guest memory.
pub fn parse(
    mem: &impl UserMemory,
    table: &MemTable<'_>,
    chain: &Chain,
    limits: &BlkLimits,
) -> Parsed {
    let Ok(status_addr) = status_addr(chain) else {
        return Parsed::NoStatus;
    };
    let reject = |reason: Reject| {
        Parsed::Rejected(Rejection {
            reason,
            status: reason.status(),
            status_addr,
        })
    };
    if chain.readable_len() < HEADER_LEN {
        return reject(Reject::ShortHeader);
    }
    let mut hdr = [0u8; HEADER_LEN as usize];
    let whole = DataRange {
        writable: false,
        offset: 0,
        len: HEADER_LEN,
    };
    if read_data(mem, table, chain, &whole, &mut hdr).is_err() {
        return reject(Reject::Fault);
    }
    let ty = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    let sector = u64::from_le_bytes([
        hdr[8], hdr[9], hdr[10], hdr[11], hdr[12], hdr[13], hdr[14], hdr[15],
    ]);

    // Bytes after the header, and writable bytes before the status.
    let out_len = chain.readable_len() - HEADER_LEN;
    let in_len = chain.writable_len() - 1;
    let out_data = DataRange {
        writable: false,
        offset: HEADER_LEN,
        len: out_len,
    };
    let in_data = DataRange {
        writable: true,
        offset: 0,
        len: in_len,
    };
    let writes_device = matches!(
        ty,
        VIRTIO_BLK_T_OUT | VIRTIO_BLK_T_DISCARD | VIRTIO_BLK_T_WRITE_ZEROES
    );
    let (op, data) = match ty {
        VIRTIO_BLK_T_IN => (Op::Read, in_data),
        VIRTIO_BLK_T_OUT => (Op::Write, out_data),
        VIRTIO_BLK_T_FLUSH if limits.flush => (Op::Flush, out_data),
        VIRTIO_BLK_T_GET_ID => (Op::GetId, in_data),
        VIRTIO_BLK_T_DISCARD if limits.max_discard_seg > 0 => (Op::Discard, out_data),
        VIRTIO_BLK_T_WRITE_ZEROES if limits.max_write_zeroes_seg > 0 => (Op::WriteZeroes, out_data),
        _ => return reject(Reject::Unsupported(ty)),
    };
    // Data must flow the way the type says, and only there.
    let wrong = if data.writable {
        out_len != 0
    } else {
        in_len != 0 || (op == Op::Flush && out_len != 0)
    };
    if wrong {
        return reject(Reject::WrongDirection);
    }
    if writes_device && limits.read_only {
        return reject(Reject::ReadOnly);
    }
    match op {
        Op::Read | Op::Write => {
            if data.len > limits.max_transfer {
                return reject(Reject::TooLarge);
            }
            if u64::from(data.len).checked_rem(u64::from(limits.logical_block_size)) != Some(0) {
                return reject(Reject::BadLength);
            }
            if let Err(r) = check_extent(limits, sector, u64::from(data.len)) {
                return reject(r);
            }
        }
        Op::Discard | Op::WriteZeroes => {
            let max = if op == Op::Discard {
                limits.max_discard_seg
            } else {
                limits.max_write_zeroes_seg
            };
            if data.len == 0 || data.len % DWZ_SEG_LEN != 0 {
                return reject(Reject::BadRangeList);
            }
            if data.len / DWZ_SEG_LEN > max {
                return reject(Reject::TooManyRanges);
            }
        }
        Op::Flush | Op::GetId => {}
    }
    Parsed::Request(Request {
        op,
        sector,
        data,
        status_addr,
    })
}
