// SPDX-License-Identifier: GPL-2.0

//! Host tests of virtio-blk request parsing (`core/blk.rs`): every request
//! type, and one test per `Reject` reason and for a missing status byte.

mod common;

use common::Fixture;
use vhost_blk_core::blk::*;
use vhost_blk_core::memory::{MemTable, UserMemory};
use vhost_blk_core::ring::RingFeatures;
use vhost_blk_core::test_utils::driver::Buf;
use vhost_blk_core::test_utils::request::{header, range, ChainLayout, RequestSlot};

const LIMITS: BlkLimits = BlkLimits {
    capacity: 2048,
    logical_block_size: 512,
    read_only: false,
    flush: true,
    max_discard_seg: 4,
    max_discard_sectors: 1024,
    max_write_zeroes_seg: 2,
    max_write_zeroes_sectors: 512,
    max_transfer: 1 << 20,
    write_zeroes_offload: false,
    write_cache: false,
    write_through: false,
};

struct T {
    f: Fixture,
}

impl T {
    fn new() -> Self {
        Self {
            f: Fixture::new(
                64,
                RingFeatures {
                    indirect: true,
                    event_idx: false,
                    notify_on_empty: false,
                },
            ),
        }
    }

    fn header(&mut self, ty: u32, sector: u64) -> u64 {
        let h = self.f.buf(16);
        self.f.mem.write(h, &header(ty, sector)).unwrap();
        h
    }

    /// Submits `bufs` and parses the chain against `limits`.
    fn parse(&mut self, bufs: &[Buf], limits: &BlkLimits) -> Parsed {
        self.f.drv.add_chain(&self.f.mem, bufs).unwrap();
        assert!(self.f.pop().unwrap());
        let mut regions = self.f.regions.clone();
        let table = MemTable::validate(&mut regions).unwrap();
        parse(&self.f.mem, &table, &self.f.chain, limits)
    }

    fn ok(&mut self, bufs: &[Buf]) -> Request {
        match self.parse(bufs, &LIMITS) {
            Parsed::Request(r) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    fn rejected(&mut self, bufs: &[Buf], limits: &BlkLimits) -> Rejection {
        match self.parse(bufs, limits) {
            Parsed::Rejected(r) => r,
            other => panic!("not rejected: {other:?}"),
        }
    }
}

fn reject(bufs: impl FnOnce(&mut T) -> Vec<Buf>, limits: &BlkLimits) -> (Reject, u8) {
    let mut t = T::new();
    let b = bufs(&mut t);
    let r = t.rejected(&b, limits);
    (r.reason, r.status)
}

#[test]
fn read_request() {
    let mut t = T::new();
    let h = t.header(VIRTIO_BLK_T_IN, 8);
    let (d1, d2, s) = (t.f.buf(512), t.f.buf(1024), t.f.buf(1));
    let r = t.ok(&[
        Buf::r(h, 16),
        Buf::w(d1, 512),
        Buf::w(d2, 1024),
        Buf::w(s, 1),
    ]);
    assert_eq!(r.op, Op::Read);
    assert_eq!(r.sector, 8);
    assert_eq!(r.status_addr, s);
    assert_eq!(
        r.data,
        DataRange {
            writable: true,
            offset: 0,
            len: 1536
        }
    );
    let mut pieces = Vec::new();
    for_each_data_piece(&t.f.chain, &r.data, |a, n| {
        pieces.push((a, n));
        Ok::<(), ()>(())
    })
    .unwrap();
    assert_eq!(pieces, vec![(d1, 512), (d2, 1024)]);
}

#[test]
fn write_request_with_header_merged_into_its_data_buffer() {
    // ANY_LAYOUT: one readable buffer holds the header and the data.
    let mut t = T::new();
    let buf = t.f.buf(16 + 1024);
    t.f.mem.write(buf, &header(VIRTIO_BLK_T_OUT, 2)).unwrap();
    let s = t.f.buf(1);
    let r = t.ok(&[Buf::r(buf, 16 + 1024), Buf::w(s, 1)]);
    assert_eq!(r.op, Op::Write);
    assert_eq!(r.sector, 2);
    assert_eq!(
        r.data,
        DataRange {
            writable: false,
            offset: 16,
            len: 1024
        }
    );
    let mut pieces = Vec::new();
    for_each_data_piece(&t.f.chain, &r.data, |a, n| {
        pieces.push((a, n));
        Ok::<(), ()>(())
    })
    .unwrap();
    assert_eq!(pieces, vec![(buf + 16, 1024)]);
}

#[test]
fn read_request_with_status_merged_into_its_data_buffer() {
    // ANY_LAYOUT: one 513-byte writable buffer holds 512 bytes of data and
    // then the status, which is its last byte, not its first.
    let mut t = T::new();
    let h = t.header(VIRTIO_BLK_T_IN, 4);
    let buf = t.f.buf(513);
    let r = t.ok(&[Buf::r(h, 16), Buf::w(buf, 513)]);
    assert_eq!((r.op, r.sector), (Op::Read, 4));
    assert_eq!(r.status_addr, buf + 512);
    assert_eq!(
        r.data,
        DataRange {
            writable: true,
            offset: 0,
            len: 512
        }
    );
    let mut pieces = Vec::new();
    for_each_data_piece(&t.f.chain, &r.data, |a, n| {
        pieces.push((a, n));
        Ok::<(), ()>(())
    })
    .unwrap();
    assert_eq!(pieces, vec![(buf, 512)]);

    // Rejected the same way: the status still goes to the last byte.
    let mut t = T::new();
    let h = t.header(VIRTIO_BLK_T_IN, LIMITS.capacity);
    let buf = t.f.buf(513);
    let rej = t.rejected(&[Buf::r(h, 16), Buf::w(buf, 513)], &LIMITS);
    assert_eq!(rej.reason, Reject::BeyondCapacity);
    assert_eq!(rej.status_addr, buf + 512);
}

#[test]
fn header_split_across_descriptors_is_reassembled() {
    let mut t = T::new();
    let h = t.header(VIRTIO_BLK_T_IN, 77);
    let (d, s) = (t.f.buf(512), t.f.buf(1));
    let r = t.ok(&[
        Buf::r(h, 5),
        Buf::r(h + 5, 7),
        Buf::r(h + 12, 4),
        Buf::w(d, 512),
        Buf::w(s, 1),
    ]);
    assert_eq!((r.op, r.sector), (Op::Read, 77));
}

#[test]
fn flush_get_id_discard_write_zeroes() {
    let mut t = T::new();
    let h = t.header(VIRTIO_BLK_T_FLUSH, 0);
    let s = t.f.buf(1);
    assert_eq!(t.ok(&[Buf::r(h, 16), Buf::w(s, 1)]).op, Op::Flush);

    let h = t.header(VIRTIO_BLK_T_GET_ID, 0);
    let id = t.f.buf(20);
    let r = t.ok(&[Buf::r(h, 16), Buf::w(id, 20), Buf::w(s, 1)]);
    assert_eq!(r.op, Op::GetId);
    let mut regions = t.f.regions.clone();
    let table = MemTable::validate(&mut regions).unwrap();
    let n = write_data(
        &t.f.mem,
        &table,
        &t.f.chain,
        &r.data,
        b"serial-0123456789abcdef",
    )
    .unwrap();
    assert_eq!(n, 20, "GET_ID writes at most the buffer");
    let mut back = [0u8; 20];
    t.f.mem.read(id, &mut back).unwrap();
    assert_eq!(&back, b"serial-0123456789abc");

    for (ty, op, flags) in [
        (VIRTIO_BLK_T_DISCARD, Op::Discard, 0u32),
        (VIRTIO_BLK_T_WRITE_ZEROES, Op::WriteZeroes, 1),
    ] {
        let h = t.header(ty, 0);
        let seg = t.f.buf(32);
        t.f.mem.write(seg, &range(100, 8, flags)).unwrap();
        t.f.mem.write(seg + 16, &range(200, 16, 0)).unwrap();
        let r = t.ok(&[Buf::r(h, 16), Buf::r(seg, 32), Buf::w(s, 1)]);
        assert_eq!(r.op, op);
        let mut regions = t.f.regions.clone();
        let table = MemTable::validate(&mut regions).unwrap();
        let r0 = read_range(&t.f.mem, &table, &t.f.chain, &r, 0).unwrap();
        let r1 = read_range(&t.f.mem, &table, &t.f.chain, &r, 1).unwrap();
        assert_eq!((r0.sector, r0.num_sectors, r0.unmap), (100, 8, flags == 1));
        assert_eq!((r1.sector, r1.num_sectors, r1.unmap), (200, 16, false));
    }
}

// ---- one test per Reject ----

#[test]
fn short_header_is_ioerr() {
    let (why, st) = reject(
        |t| {
            let h = t.header(VIRTIO_BLK_T_IN, 0);
            let s = t.f.buf(1);
            vec![Buf::r(h, 15), Buf::w(s, 1)]
        },
        &LIMITS,
    );
    assert_eq!((why, st), (Reject::ShortHeader, VIRTIO_BLK_S_IOERR));
}

#[test]
fn data_in_the_wrong_direction_is_ioerr() {
    // A read with readable data after the header.
    let (why, st) = reject(
        |t| {
            let h = t.header(VIRTIO_BLK_T_IN, 0);
            let (d, s) = (t.f.buf(512), t.f.buf(1));
            vec![Buf::r(h, 16), Buf::r(d, 512), Buf::w(s, 1)]
        },
        &LIMITS,
    );
    assert_eq!((why, st), (Reject::WrongDirection, VIRTIO_BLK_S_IOERR));
    // A write with writable data before the status.
    let (why, st) = reject(
        |t| {
            let h = t.header(VIRTIO_BLK_T_OUT, 0);
            let (d, s) = (t.f.buf(512), t.f.buf(1));
            vec![Buf::r(h, 16), Buf::w(d, 512), Buf::w(s, 1)]
        },
        &LIMITS,
    );
    assert_eq!((why, st), (Reject::WrongDirection, VIRTIO_BLK_S_IOERR));
    // A flush carrying data.
    let (why, st) = reject(
        |t| {
            let h = t.header(VIRTIO_BLK_T_FLUSH, 0);
            let (d, s) = (t.f.buf(512), t.f.buf(1));
            vec![Buf::r(h, 16), Buf::r(d, 512), Buf::w(s, 1)]
        },
        &LIMITS,
    );
    assert_eq!((why, st), (Reject::WrongDirection, VIRTIO_BLK_S_IOERR));
}

#[test]
fn length_not_a_block_multiple_is_ioerr() {
    let (why, st) = reject(
        |t| {
            let h = t.header(VIRTIO_BLK_T_IN, 0);
            let (d, s) = (t.f.buf(513), t.f.buf(1));
            vec![Buf::r(h, 16), Buf::w(d, 513), Buf::w(s, 1)]
        },
        &LIMITS,
    );
    assert_eq!((why, st), (Reject::BadLength, VIRTIO_BLK_S_IOERR));
}

#[test]
fn misaligned_to_logical_block_is_ioerr() {
    let big = BlkLimits {
        logical_block_size: 4096,
        ..LIMITS
    };
    let (why, st) = reject(
        |t| {
            let h = t.header(VIRTIO_BLK_T_IN, 1);
            let (d, s) = (t.f.buf(4096), t.f.buf(1));
            vec![Buf::r(h, 16), Buf::w(d, 4096), Buf::w(s, 1)]
        },
        &big,
    );
    assert_eq!((why, st), (Reject::Misaligned, VIRTIO_BLK_S_IOERR));
}

#[test]
fn beyond_capacity_is_ioerr() {
    for sector in [2047u64, 2048, u64::MAX / 512, u64::MAX] {
        let (why, st) = reject(
            |t| {
                let h = t.header(VIRTIO_BLK_T_IN, sector);
                let (d, s) = (t.f.buf(1024), t.f.buf(1));
                vec![Buf::r(h, 16), Buf::w(d, 1024), Buf::w(s, 1)]
            },
            &LIMITS,
        );
        assert_eq!(
            (why, st),
            (Reject::BeyondCapacity, VIRTIO_BLK_S_IOERR),
            "sector {sector}"
        );
    }
    // The last full block is fine.
    let mut t = T::new();
    let h = t.header(VIRTIO_BLK_T_IN, 2046);
    let (d, s) = (t.f.buf(1024), t.f.buf(1));
    t.ok(&[Buf::r(h, 16), Buf::w(d, 1024), Buf::w(s, 1)]);
}

#[test]
fn larger_than_max_transfer_is_ioerr() {
    let small = BlkLimits {
        max_transfer: 512,
        ..LIMITS
    };
    let (why, st) = reject(
        |t| {
            let h = t.header(VIRTIO_BLK_T_OUT, 0);
            let (d, s) = (t.f.buf(1024), t.f.buf(1));
            vec![Buf::r(h, 16), Buf::r(d, 1024), Buf::w(s, 1)]
        },
        &small,
    );
    assert_eq!((why, st), (Reject::TooLarge, VIRTIO_BLK_S_IOERR));
}

#[test]
fn writes_to_a_read_only_device_are_ioerr() {
    let ro = BlkLimits {
        read_only: true,
        ..LIMITS
    };
    for ty in [
        VIRTIO_BLK_T_OUT,
        VIRTIO_BLK_T_DISCARD,
        VIRTIO_BLK_T_WRITE_ZEROES,
    ] {
        let (why, st) = reject(
            |t| {
                let h = t.header(ty, 0);
                let (d, s) = (t.f.buf(512), t.f.buf(1));
                vec![Buf::r(h, 16), Buf::r(d, 16), Buf::w(s, 1)]
            },
            &ro,
        );
        assert_eq!(
            (why, st),
            (Reject::ReadOnly, VIRTIO_BLK_S_IOERR),
            "type {ty}"
        );
    }
    // Reads still work.
    let mut t = T::new();
    let h = t.header(VIRTIO_BLK_T_IN, 0);
    let (d, s) = (t.f.buf(512), t.f.buf(1));
    assert!(matches!(
        t.parse(&[Buf::r(h, 16), Buf::w(d, 512), Buf::w(s, 1)], &ro),
        Parsed::Request(_)
    ));
}

#[test]
fn unknown_and_unoffered_types_are_unsupp() {
    let none = BlkLimits {
        flush: false,
        max_discard_seg: 0,
        max_write_zeroes_seg: 0,
        ..LIMITS
    };
    for (ty, limits) in [
        (2u32, &LIMITS),
        (10, &LIMITS), // GET_LIFETIME
        (14, &LIMITS), // SECURE_ERASE
        (u32::MAX, &LIMITS),
        (VIRTIO_BLK_T_FLUSH, &none),
        (VIRTIO_BLK_T_DISCARD, &none),
        (VIRTIO_BLK_T_WRITE_ZEROES, &none),
    ] {
        let (why, st) = reject(
            |t| {
                let h = t.header(ty, 0);
                let s = t.f.buf(1);
                vec![Buf::r(h, 16), Buf::w(s, 1)]
            },
            limits,
        );
        assert_eq!((why, st), (Reject::Unsupported(ty), VIRTIO_BLK_S_UNSUPP));
    }
}

#[test]
fn discard_range_lists_are_checked() {
    let run = |ty: u32, len: u32| {
        reject(
            |t| {
                let h = t.header(ty, 0);
                let (d, s) = (t.f.buf(u64::from(len.max(1))), t.f.buf(1));
                let mut v = vec![Buf::r(h, 16)];
                if len > 0 {
                    v.push(Buf::r(d, len));
                }
                v.push(Buf::w(s, 1));
                v
            },
            &LIMITS,
        )
    };
    assert_eq!(
        run(VIRTIO_BLK_T_DISCARD, 0),
        (Reject::BadRangeList, VIRTIO_BLK_S_IOERR)
    );
    assert_eq!(
        run(VIRTIO_BLK_T_DISCARD, 24),
        (Reject::BadRangeList, VIRTIO_BLK_S_IOERR)
    );
    assert_eq!(
        run(VIRTIO_BLK_T_DISCARD, 16 * 5),
        (Reject::TooManyRanges, VIRTIO_BLK_S_UNSUPP)
    );
    assert_eq!(
        run(VIRTIO_BLK_T_WRITE_ZEROES, 16 * 3),
        (Reject::TooManyRanges, VIRTIO_BLK_S_UNSUPP)
    );
}

#[test]
fn discard_ranges_are_checked_one_by_one() {
    assert_eq!(check_range(&LIMITS, Op::Discard, 0, 8, 0), Ok(()));
    assert_eq!(check_range(&LIMITS, Op::WriteZeroes, 0, 8, 1), Ok(()));
    // Discard must not carry UNMAP; reserved bits are refused for both.
    assert_eq!(
        check_range(&LIMITS, Op::Discard, 0, 8, 1),
        Err(Reject::BadRangeFlags)
    );
    assert_eq!(
        check_range(&LIMITS, Op::WriteZeroes, 0, 8, 2),
        Err(Reject::BadRangeFlags)
    );
    assert_eq!(Reject::BadRangeFlags.status(), VIRTIO_BLK_S_UNSUPP);
    assert_eq!(
        check_range(&LIMITS, Op::Discard, 0, 1025, 0),
        Err(Reject::RangeTooLarge)
    );
    assert_eq!(
        check_range(&LIMITS, Op::WriteZeroes, 0, 513, 0),
        Err(Reject::RangeTooLarge)
    );
    assert_eq!(Reject::RangeTooLarge.status(), VIRTIO_BLK_S_IOERR);
    assert_eq!(
        check_range(&LIMITS, Op::Discard, 2040, 9, 0),
        Err(Reject::BeyondCapacity)
    );
    assert_eq!(
        check_range(&LIMITS, Op::Discard, u64::MAX, 1, 0),
        Err(Reject::BeyondCapacity)
    );
}

#[test]
fn missing_or_read_only_status_byte_stops_the_queue() {
    let mut t = T::new();
    let h = t.header(VIRTIO_BLK_T_IN, 0);
    // Only readable buffers: no status byte at all.
    assert_eq!(t.parse(&[Buf::r(h, 16)], &LIMITS), Parsed::NoStatus);
    let d = t.f.buf(512);
    assert_eq!(
        t.parse(&[Buf::r(h, 16), Buf::r(d, 1)], &LIMITS),
        Parsed::NoStatus
    );
}

#[test]
fn random_headers_never_panic_and_always_classify() {
    let mut rng = common::Rng::new(7);
    for _ in 0..2000 {
        let mut t = T::new();
        let ty = if rng.below(2) == 0 {
            rng.below(16) as u32
        } else {
            rng.next() as u32
        };
        let h = t.header(ty, rng.next() >> rng.below(64));
        let mut bufs = vec![Buf::r(h, 1 + rng.below(16) as u32)];
        if bufs[0].len < 16 {
            bufs.push(Buf::r(h + u64::from(bufs[0].len), 16 - bufs[0].len));
        }
        for _ in 0..rng.below(4) {
            let len = rng.below(4096) as u32 + 1;
            let a = t.f.buf(u64::from(len));
            bufs.push(if rng.below(2) == 0 {
                Buf::r(a, len)
            } else {
                Buf::w(a, len)
            });
        }
        bufs.sort_by_key(|b| b.writable);
        let s = t.f.buf(1);
        bufs.push(Buf::w(s, 1));
        match t.parse(&bufs, &LIMITS) {
            Parsed::NoStatus => panic!("the status byte is there"),
            Parsed::Request(r) => {
                assert_eq!(r.status_addr, s);
                if matches!(r.op, Op::Read | Op::Write) {
                    assert_eq!(r.data.len % 512, 0);
                    assert!(r.sector + u64::from(r.data.len / 512) <= LIMITS.capacity);
                }
            }
            Parsed::Rejected(rej) => {
                assert_eq!(rej.status_addr, s);
                assert!(rej.status == VIRTIO_BLK_S_IOERR || rej.status == VIRTIO_BLK_S_UNSUPP);
            }
        }
    }
}

// ---- data layout rules (DataRules) ----

#[test]
fn data_rules_follow_the_device_limits() {
    // 4 KiB blocks, DMA alignment 511, no virtual boundary, 255 sectors.
    let r = DataRules::new(4096, 511, 0, 255);
    assert_eq!(r.logical_block_size, 4096);
    assert_eq!(r.dma_mask, 511);
    // 127.5 KiB rounded down to whole blocks.
    assert_eq!(r.max_bio_bytes, 31 * 4096);
    // No limit of its own, and a limit below one block: whole blocks, at
    // least one.
    assert_eq!(DataRules::new(512, 0, 0, 0).max_bio_bytes, u32::MAX - 511);
    assert_eq!(DataRules::new(4096, 0, 0, 1).max_bio_bytes, 4096);
    // A DMA alignment below a sector is raised to whole sectors.
    assert_eq!(DataRules::new(512, 3, 0, 0).dma_mask, 511);
    assert_eq!(DataRules::new(4096, 4095, 0, 0).dma_mask, 4095);
}

#[test]
fn pieces_must_meet_the_dma_alignment() {
    let r = DataRules::new(4096, 511, 0, 0);
    assert!(r.piece_aligned(0x1000, 4096));
    assert!(r.piece_aligned(0x1200, 3584));
    assert!(!r.piece_aligned(0x1201, 512), "address");
    assert!(!r.piece_aligned(0x1200, 100), "length");
    let strict = DataRules::new(4096, 4095, 0, 0);
    assert!(!strict.piece_aligned(0x1200, 4096));
    assert!(strict.piece_aligned(0x2000, 8192));
}

#[test]
fn bios_break_only_on_logical_blocks() {
    let r = DataRules::new(4096, 511, 0, 0);
    assert!(r.may_split_at(0));
    assert!(r.may_split_at(8192));
    assert!(!r.may_split_at(512));
    assert!(!r.may_split_at(521_728), "127 blocks and 1.5 KiB");
    assert!(DataRules::new(512, 511, 0, 0).may_split_at(512));
}

#[test]
fn gaps_count_only_on_devices_with_a_virtual_boundary() {
    let none = DataRules::new(512, 511, 0, 0);
    assert!(!none.gap(0x1200, 0x5400));
    let nvme = DataRules::new(512, 3, 4095, 0);
    // Page end to page start: no gap.
    assert!(!nvme.gap(0x2000, 0x7000));
    // Ends inside a page, or starts inside one: a gap.
    assert!(nvme.gap(0x1e00, 0x7000));
    assert!(nvme.gap(0x2000, 0x7200));
}

// ---- no double fetch ----

/// Test memory that records every byte range read.
struct RecordingMem<'a> {
    mem: &'a vhost_blk_core::test_utils::memory::TestMemory,
    reads: std::cell::RefCell<Vec<(u64, u64)>>,
}

impl UserMemory for RecordingMem<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), vhost_blk_core::memory::Fault> {
        self.reads.borrow_mut().push((addr, buf.len() as u64));
        self.mem.read(addr, buf)
    }

    fn write(&self, addr: u64, buf: &[u8]) -> Result<(), vhost_blk_core::memory::Fault> {
        self.mem.write(addr, buf)
    }
}

/// Takes the next chain, parses it and reads its ranges, as the worker
/// does, and fails if any guest byte was read twice: a value checked in
/// one read and used from another could change in between (a double
/// fetch, the bug class of CVE-2019-14835's neighbours).
fn fetched_once(t: &mut T, bufs: &[Buf], indirect: Option<u64>) -> (Request, Vec<Range>) {
    match indirect {
        Some(table) => t.f.drv.add_indirect(&t.f.mem, table, bufs).unwrap(),
        None => t.f.drv.add_chain(&t.f.mem, bufs).unwrap(),
    };
    let rec = RecordingMem {
        mem: &t.f.mem,
        reads: Default::default(),
    };
    let mut regions = t.f.regions.clone();
    let table = MemTable::validate(&mut regions).unwrap();
    assert!(t.f.dev.get_vq_desc(&rec, &table, &mut t.f.chain).unwrap());
    let Parsed::Request(r) = parse(&rec, &table, &t.f.chain, &LIMITS) else {
        panic!("not a request");
    };
    let mut ranges = Vec::new();
    if matches!(r.op, Op::Discard | Op::WriteZeroes) {
        for i in 0..r.data.len / DWZ_SEG_LEN {
            ranges.push(read_range(&rec, &table, &t.f.chain, &r, i).unwrap());
        }
    }
    let mut reads = rec.reads.into_inner();
    // The header's 16 bytes went through the recorder.
    let h = bufs[0].addr;
    let header: u64 = reads
        .iter()
        .filter(|&&(a, n)| a < h + 16 && h < a + n)
        .map(|&(a, n)| (a + n).min(h + 16) - a.max(h))
        .sum();
    assert!(
        header >= bufs[0].len.min(16) as u64,
        "header not read through the recorder"
    );
    reads.sort();
    for w in reads.windows(2) {
        let ((a, n), (b, m)) = (w[0], w[1]);
        assert!(
            a + n <= b,
            "guest bytes read twice: [{a:#x}, +{n}) and [{b:#x}, +{m}) for {bufs:?}"
        );
    }
    (r, ranges)
}

#[test]
fn every_guest_byte_of_a_request_is_fetched_once() {
    let mut t = T::new();
    let s = t.f.buf(1);
    // A read, its header split across two buffers.
    let h = t.header(VIRTIO_BLK_T_IN, 8);
    let d = t.f.buf(1024);
    let (r, _) = fetched_once(
        &mut t,
        &[
            Buf::r(h, 8),
            Buf::r(h + 8, 8),
            Buf::w(d, 1024),
            Buf::w(s, 1),
        ],
        None,
    );
    assert_eq!((r.op, r.sector, r.data.len), (Op::Read, 8, 1024));
    // A write through an indirect table, the header merged into the data.
    let buf = t.f.buf(16 + 512);
    t.f.mem.write(buf, &header(VIRTIO_BLK_T_OUT, 0)).unwrap();
    let table = t.f.buf(16 * 4);
    let (r, _) = fetched_once(&mut t, &[Buf::r(buf, 16 + 512), Buf::w(s, 1)], Some(table));
    assert_eq!((r.op, r.data.len), (Op::Write, 512));
    // Discard and write-zeroes with range lists split across buffers.
    for (ty, op) in [
        (VIRTIO_BLK_T_DISCARD, Op::Discard),
        (VIRTIO_BLK_T_WRITE_ZEROES, Op::WriteZeroes),
    ] {
        let h = t.header(ty, 0);
        let seg = t.f.buf(32);
        t.f.mem.write(seg, &range(100, 8, 0)).unwrap();
        t.f.mem.write(seg + 16, &range(200, 8, 0)).unwrap();
        let (r, ranges) = fetched_once(
            &mut t,
            &[
                Buf::r(h, 16),
                Buf::r(seg, 20),
                Buf::r(seg + 20, 12),
                Buf::w(s, 1),
            ],
            None,
        );
        assert_eq!((r.op, r.data.len), (op, 32));
        let got: Vec<_> = ranges.iter().map(|r| (r.sector, r.num_sectors)).collect();
        assert_eq!(got, [(100, 8), (200, 8)]);
    }
}

// ---- limits from the disk (BlkLimits::for_disk) ----

const FLUSH: u64 = 1 << vhost_blk_core::features::VIRTIO_BLK_F_FLUSH;

fn disk() -> Disk {
    Disk {
        capacity: 1 << 21,
        logical_block_size: 512,
        max_discard_sectors: 0,
        max_write_zeroes_sectors: 0,
        read_only: false,
        write_cache: false,
        ..Disk::default()
    }
}

#[test]
fn limits_offer_discard_only_when_the_disk_discards() {
    let l = BlkLimits::for_disk(&disk(), FLUSH);
    assert_eq!((l.max_discard_seg, l.max_discard_sectors), (0, 0));
    let l = BlkLimits::for_disk(
        &Disk {
            max_discard_sectors: 2048,
            ..disk()
        },
        FLUSH,
    );
    assert_eq!(
        (l.max_discard_seg, l.max_discard_sectors),
        (MAX_RANGES, 2048)
    );
    // A range's bytes must fit a bio's 32-bit size.
    let l = BlkLimits::for_disk(
        &Disk {
            max_discard_sectors: u32::MAX,
            ..disk()
        },
        FLUSH,
    );
    assert_eq!(l.max_discard_sectors, MAX_RANGE_SECTORS);
    assert!(u64::from(l.max_discard_sectors) * 512 <= u64::from(u32::MAX));
}

#[test]
fn limits_bound_write_zeroes_with_or_without_offload() {
    let l = BlkLimits::for_disk(&disk(), FLUSH);
    assert!(!l.write_zeroes_offload);
    assert_eq!(l.max_write_zeroes_seg, MAX_RANGES);
    assert_eq!(l.max_write_zeroes_sectors, MAX_ZEROOUT_SECTORS);
    for (offered, want) in [
        (8, 8),
        (MAX_ZEROOUT_SECTORS, MAX_ZEROOUT_SECTORS),
        (u32::MAX, MAX_ZEROOUT_SECTORS),
    ] {
        let l = BlkLimits::for_disk(
            &Disk {
                max_write_zeroes_sectors: offered,
                ..disk()
            },
            FLUSH,
        );
        assert!(l.write_zeroes_offload);
        assert_eq!(l.max_write_zeroes_sectors, want, "disk offers {offered}");
    }
}

#[test]
fn limits_follow_block_size_read_only_and_flush() {
    let l = BlkLimits::for_disk(&disk(), FLUSH);
    assert_eq!(
        (l.capacity, l.logical_block_size, l.max_transfer),
        (1 << 21, 512, MAX_TRANSFER)
    );
    assert!(l.flush && !l.read_only && !l.write_through);
    let l = BlkLimits::for_disk(
        &Disk {
            logical_block_size: 0,
            ..disk()
        },
        FLUSH,
    );
    assert_eq!(l.logical_block_size, 512);
    let l = BlkLimits::for_disk(
        &Disk {
            logical_block_size: 4096,
            read_only: true,
            ..disk()
        },
        0,
    );
    assert_eq!(l.logical_block_size, 4096);
    assert!(l.read_only && !l.flush);
    // A volatile cache is written through only if the driver cannot flush.
    let cached = Disk {
        write_cache: true,
        ..disk()
    };
    assert!(!BlkLimits::for_disk(&cached, FLUSH).write_through);
    assert!(BlkLimits::for_disk(&cached, 0).write_through);
    assert!(!BlkLimits::for_disk(&disk(), 0).write_through);
}

#[test]
fn writeback_off_writes_through_a_volatile_cache() {
    let cached = Disk {
        write_cache: true,
        ..disk()
    };
    for (disk, acked, writeback, through) in [
        (cached, FLUSH, false, true),
        (cached, FLUSH, true, false),
        (cached, 0, true, true),
        (cached, 0, false, true),
        (disk(), FLUSH, false, false),
        (disk(), 0, false, false),
    ] {
        let mut l = BlkLimits::for_disk(&disk, acked);
        l.set_writeback(writeback);
        assert_eq!(
            l.write_through,
            through,
            "cache {} flush {} writeback {writeback}",
            disk.write_cache,
            acked != 0
        );
    }
}

/// The request slot the harness's selftests and benchmark post through
/// builds, in either chain layout, the request the device parses: the
/// type, the sector, the data's direction and length, and a status byte
/// preset to 0xff.
#[test]
fn request_slot_posts_what_the_device_parses() {
    let mut t = T::new();
    let rs = RequestSlot::alloc(&mut t.f.alloc, 4096);
    for (chain, ty, op, writable) in [
        (ChainLayout::Direct, VIRTIO_BLK_T_IN, Op::Read, true),
        (ChainLayout::Indirect, VIRTIO_BLK_T_IN, Op::Read, true),
        (ChainLayout::Direct, VIRTIO_BLK_T_OUT, Op::Write, false),
        (ChainLayout::Indirect, VIRTIO_BLK_T_OUT, Op::Write, false),
    ] {
        t.f.mem.write(rs.status, &[0]).unwrap();
        rs.post(&t.f.mem, &mut t.f.drv, ty, 24, chain).unwrap();
        assert!(t.f.pop().unwrap());
        assert_eq!(t.f.chain.segments().len(), 3, "{chain:?}");
        let mut regions = t.f.regions.clone();
        let table = MemTable::validate(&mut regions).unwrap();
        let r = match parse(&t.f.mem, &table, &t.f.chain, &LIMITS) {
            Parsed::Request(r) => r,
            other => panic!("{chain:?} {op:?}: not a request: {other:?}"),
        };
        assert_eq!((r.op, r.sector, r.status_addr), (op, 24, rs.status));
        assert_eq!((r.data.writable, r.data.len), (writable, 4096));
        assert_eq!(rs.read_status(&t.f.mem), Ok(0xff));
        t.f.dev
            .add_used(&t.f.mem, &[(t.f.chain.head(), 1)])
            .unwrap();
        assert!(t.f.drv.pop_used(&t.f.mem).is_some());
    }
}
