// SPDX-License-Identifier: GPL-2.0

//! Host tests of the split ring (`core/ring.rs`): well-formed use, and one
//! test per `RingError` a hostile guest can provoke.

mod common;
#[path = "ring/errors.rs"]
mod errors;

use common::Fixture;
use std::cell::RefCell;
use vhost_blk_core::memory::{Fault, MemTable, UserMemory};
use vhost_blk_core::ring::*;
use vhost_blk_core::test_utils::driver::Buf;
use vhost_blk_core::test_utils::memory::TestMemory;

const PLAIN: RingFeatures = RingFeatures {
    indirect: false,
    event_idx: false,
    notify_on_empty: false,
};
const ALL: RingFeatures = RingFeatures {
    indirect: true,
    event_idx: true,
    notify_on_empty: false,
};

#[test]
fn pops_a_chain_with_its_segments() {
    let mut f = Fixture::new(8, PLAIN);
    let (a, b, c) = (f.buf(16), f.buf(4096), f.buf(1));
    let head = f
        .drv
        .add_chain(&f.mem, &[Buf::r(a, 16), Buf::w(b, 4096), Buf::w(c, 1)])
        .unwrap();
    assert!(f.pop().unwrap());
    assert_eq!(f.chain.head(), head);
    let segs: Vec<_> = f
        .chain
        .segments()
        .iter()
        .map(|s| (s.addr, s.len, s.writable))
        .collect();
    assert_eq!(segs, vec![(a, 16, false), (b, 4096, true), (c, 1, true)]);
    assert_eq!(f.chain.readable_len(), 16);
    assert_eq!(f.chain.writable_len(), 4097);
    assert!(!f.pop().unwrap(), "ring is empty now");
    assert_eq!(f.dev.last_avail_idx(), 1);
}

#[test]
fn used_ring_round_trip_and_wrap_around() {
    // Start near the u16 wrap so indexes wrap during the test.
    let mut f = Fixture::with_base(4, PLAIN, 65533);
    let buf = f.buf(512);
    for round in 0..20u32 {
        let h = f.drv.add_chain(&f.mem, &[Buf::w(buf, 512)]).unwrap();
        assert!(f.pop().unwrap());
        assert_eq!(f.chain.head(), h);
        f.dev.add_used(&f.mem, &[(h, round)]).unwrap();
        assert_eq!(f.drv.pop_used(&f.mem), Some((u32::from(h), round)));
    }
    assert_eq!(f.dev.last_avail_idx(), 65533u16.wrapping_add(20));
    assert_eq!(f.dev.last_used_idx(), 65533u16.wrapping_add(20));
}

#[test]
fn add_used_batches_under_one_index_update() {
    let mut f = Fixture::new(8, PLAIN);
    let buf = f.buf(512);
    let heads: Vec<u16> = (0..3)
        .map(|_| f.drv.add_chain(&f.mem, &[Buf::w(buf, 1)]).unwrap())
        .collect();
    let mut used = Vec::new();
    while f.pop().unwrap() {
        used.push((f.chain.head(), 1));
    }
    assert_eq!(used.len(), 3);
    f.dev.add_used(&f.mem, &used).unwrap();
    assert_eq!(f.mem.read_u16(f.drv.addrs().used + 2).unwrap(), 3);
    for h in heads {
        assert_eq!(f.drv.pop_used(&f.mem), Some((u32::from(h), 1)));
    }
}

/// Writes `descs` as a raw indirect table at `table`, then makes one
/// indirect descriptor pointing at it available as head 0.
fn post_raw_indirect(f: &mut Fixture, table: u64, descs: &[Descriptor]) {
    let drv = vhost_blk_core::test_utils::driver::desc_bytes;
    for (i, d) in descs.iter().enumerate() {
        f.mem.write(table + 16 * i as u64, &drv(d)).unwrap();
    }
    f.drv.write_desc(
        &f.mem,
        0,
        Descriptor {
            addr: table,
            len: 16 * descs.len() as u32,
            flags: VRING_DESC_F_INDIRECT,
            next: 0,
        },
    );
    f.drv.push_avail(&f.mem, 0);
}

/// Chains of one writable byte each, popped and returned as one batch of
/// used elements (lengths 100, 101, ...); checks the driver sees them all,
/// in order, under one index update.
fn round_trip_batch(f: &mut Fixture, n: usize) {
    let buf = f.buf(512);
    let start = f.dev.last_used_idx();
    let heads: Vec<u16> = (0..n)
        .map(|_| f.drv.add_chain(&f.mem, &[Buf::w(buf, 1)]).unwrap())
        .collect();
    let mut used = Vec::new();
    while f.pop().unwrap() {
        used.push((f.chain.head(), 100 + used.len() as u32));
    }
    assert_eq!(used.len(), n);
    f.dev.add_used(&f.mem, &used).unwrap();
    assert_eq!(
        f.mem.read_u16(f.drv.addrs().used + 2).unwrap(),
        start.wrapping_add(n as u16)
    );
    for (i, h) in heads.iter().enumerate() {
        assert_eq!(
            f.drv.pop_used(&f.mem),
            Some((u32::from(*h), 100 + i as u32))
        );
    }
    assert_eq!(f.drv.pop_used(&f.mem), None);
}

#[test]
fn add_used_batch_wraps_the_ring_end() {
    // Ring slots 5, 6, 7, then 0, 1, 2.
    let mut f = Fixture::with_base(8, PLAIN, 5);
    round_trip_batch(&mut f, 6);
    // A full ring at once, from slot 3, over the u16 wrap too.
    let mut f = Fixture::with_base(8, PLAIN, 65531);
    round_trip_batch(&mut f, 8);
}

#[test]
fn add_used_batch_longer_than_one_copy() {
    // 100 elements from slot 100 of 128: past the ring's end and more
    // than one copy's worth (32) on each side.
    let mut f = Fixture::with_base(128, PLAIN, 100);
    round_trip_batch(&mut f, 100);
    round_trip_batch(&mut f, 128);
}

#[test]
fn indirect_tables_of_every_size_are_walked_alike() {
    // Up to 16 descriptors the table is copied in at once; beyond, one
    // descriptor at a time. Both must give the same chain.
    for n in [1usize, 2, 15, 16, 17, 64] {
        let mut f = Fixture::new(8, ALL);
        let table = f.buf(16 * n as u64);
        let bufs: Vec<Buf> = (0..n)
            .map(|i| {
                let a = f.buf(512);
                if i + 1 == n {
                    Buf::w(a, 1)
                } else {
                    Buf::r(a, 512)
                }
            })
            .collect();
        let head = f.drv.add_indirect(&f.mem, table, &bufs).unwrap();
        assert!(f.pop().unwrap(), "table of {n}");
        assert_eq!(f.chain.head(), head);
        let got: Vec<_> = f
            .chain
            .segments()
            .iter()
            .map(|s| (s.addr, s.len, s.writable))
            .collect();
        let want: Vec<_> = bufs.iter().map(|b| (b.addr, b.len, b.writable)).collect();
        assert_eq!(got, want, "table of {n}");
    }
}

#[test]
fn indirect_table_links_are_followed_out_of_order() {
    // Entry 0 -> 2 -> 1: the walk follows `next`, not the table order.
    let mut f = Fixture::new(8, ALL);
    let table = f.buf(48);
    let (a, b, c) = (f.buf(16), f.buf(512), f.buf(1));
    let d = |addr, len, flags, next| Descriptor {
        addr,
        len,
        flags,
        next,
    };
    post_raw_indirect(
        &mut f,
        table,
        &[
            d(a, 16, VRING_DESC_F_NEXT, 2),
            d(c, 1, VRING_DESC_F_WRITE, 0),
            d(b, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1),
        ],
    );
    assert!(f.pop().unwrap());
    let got: Vec<_> = f.chain.segments().iter().map(|s| s.addr).collect();
    assert_eq!(got, vec![a, b, c]);
}

#[test]
fn indirect_table_across_two_memory_regions_is_walked() {
    // The same memory described by two regions, split inside the table:
    // the one copy of the table is made in two pieces.
    let mut f = Fixture::new(8, ALL);
    let table = f.buf(48);
    let (a, b, c) = (f.buf(16), f.buf(512), f.buf(1));
    f.drv
        .add_indirect(
            &f.mem,
            table,
            &[Buf::r(a, 16), Buf::w(b, 512), Buf::w(c, 1)],
        )
        .unwrap();
    let whole = f.regions[0];
    let cut = table + 24 - whole.guest_phys_addr;
    f.regions = vec![
        vhost_blk_core::memory::MemRegion { size: cut, ..whole },
        vhost_blk_core::memory::MemRegion {
            guest_phys_addr: whole.guest_phys_addr + cut,
            size: whole.size - cut,
            userspace_addr: whole.userspace_addr + cut,
        },
    ];
    assert!(f.pop().unwrap());
    let got: Vec<_> = f.chain.segments().iter().map(|s| s.addr).collect();
    assert_eq!(got, vec![a, b, c]);
}

#[test]
fn indirect_chain_is_walked() {
    let mut f = Fixture::new(8, ALL);
    let table = f.buf(16 * 3);
    let (a, b, c) = (f.buf(16), f.buf(1024), f.buf(1));
    let head = f
        .drv
        .add_indirect(
            &f.mem,
            table,
            &[Buf::r(a, 16), Buf::r(b, 1024), Buf::w(c, 1)],
        )
        .unwrap();
    assert!(f.pop().unwrap());
    assert_eq!(f.chain.head(), head);
    assert_eq!(f.chain.segments().len(), 3);
    assert_eq!(f.chain.readable_len(), 1040);
    assert_eq!(f.chain.writable_len(), 1);
}

#[test]
fn zero_length_descriptors_are_skipped() {
    let mut f = Fixture::new(8, PLAIN);
    let (a, c) = (f.buf(16), f.buf(1));
    f.drv
        .add_chain(
            &f.mem,
            &[
                Buf::r(a, 16),
                Buf::r(a, 0),
                Buf::w(0xdead_0000_0000, 0),
                Buf::w(c, 1),
            ],
        )
        .unwrap();
    assert!(f.pop().unwrap());
    assert_eq!(f.chain.segments().len(), 2);
    assert_eq!(f.chain.last().unwrap().addr, c);
}

#[test]
fn unget_puts_the_chain_back() {
    let mut f = Fixture::new(8, PLAIN);
    let a = f.buf(16);
    let h = f.drv.add_chain(&f.mem, &[Buf::w(a, 16)]).unwrap();
    assert!(f.pop().unwrap());
    f.dev.unget();
    assert!(f.pop().unwrap());
    assert_eq!(f.chain.head(), h);
}

/// A test memory that records the reads of the available ring's entries,
/// as `(first slot, entries)`.
struct AvailReads<'a> {
    mem: &'a TestMemory,
    ring: u64,
    num: u64,
    reads: RefCell<Vec<(u64, u64)>>,
}

impl UserMemory for AvailReads<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        if addr >= self.ring && addr < self.ring + 2 * self.num {
            let entries = buf.len() as u64 / 2;
            self.reads
                .borrow_mut()
                .push(((addr - self.ring) / 2, entries));
        }
        self.mem.read(addr, buf)
    }

    fn write(&self, addr: u64, buf: &[u8]) -> Result<(), Fault> {
        self.mem.write(addr, buf)
    }
}

/// Posts `n` one-buffer chains; returns their heads.
fn post_chains(f: &mut Fixture, n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| {
            let a = f.buf(16);
            f.drv.add_chain(&f.mem, &[Buf::w(a, 16)]).unwrap()
        })
        .collect()
}

/// Pops every chain, recording the reads of the available ring; returns
/// the heads popped and the reads.
fn pop_all(f: &mut Fixture) -> (Vec<u16>, Vec<(u64, u64)>) {
    let mem = AvailReads {
        mem: &f.mem,
        ring: f.drv.addrs().avail + 4,
        num: u64::from(f.drv.num()),
        reads: RefCell::default(),
    };
    let table = MemTable::validate(&mut f.regions).unwrap();
    let mut heads = Vec::new();
    while f.dev.get_vq_desc(&mem, &table, &mut f.chain).unwrap() {
        heads.push(f.chain.head());
    }
    (heads, mem.reads.take())
}

#[test]
fn avail_heads_are_read_in_batches() {
    let mut f = Fixture::new(64, PLAIN);
    let posted = post_chains(&mut f, 40);
    let b = AVAIL_BATCH as u64;
    assert_eq!(
        pop_all(&mut f),
        (posted, vec![(0, b), (b, b), (2 * b, 40 - 2 * b)])
    );
}

#[test]
fn avail_head_batch_reads_only_published_entries() {
    let mut f = Fixture::new(64, PLAIN);
    let posted = post_chains(&mut f, 3);
    assert_eq!(pop_all(&mut f), (posted, vec![(0, 3)]));
    // Entries published later are read then, not earlier.
    let posted = post_chains(&mut f, 2);
    assert_eq!(pop_all(&mut f), (posted, vec![(3, 2)]));
}

#[test]
fn avail_head_batch_stops_at_the_ring_end() {
    let mut f = Fixture::with_base(8, PLAIN, 5);
    let posted = post_chains(&mut f, 6);
    // Slots 5 to 7, then 0 to 2 after the wrap.
    assert_eq!(pop_all(&mut f), (posted, vec![(5, 3), (0, 3)]));
}

#[test]
fn avail_head_batch_is_reread_after_unget_past_its_start() {
    let mut f = Fixture::new(8, PLAIN);
    let mut posted = post_chains(&mut f, 1);
    assert_eq!(pop_all(&mut f), (posted.clone(), vec![(0, 1)]));
    posted.extend(post_chains(&mut f, 1));
    assert_eq!(pop_all(&mut f), (posted[1..].to_vec(), vec![(1, 1)]));
    // Back before the copy, which starts at slot 1: read again.
    f.dev.unget();
    f.dev.unget();
    assert_eq!(pop_all(&mut f), (posted.clone(), vec![(0, 2)]));
    // Back inside the copy: served from it.
    f.dev.unget();
    assert_eq!(pop_all(&mut f), (posted[1..].to_vec(), vec![]));
}

#[test]
fn chain_of_the_most_descriptors_is_walked() {
    let n = MAX_CHAIN_SEGS;
    let mut f = Fixture::new(8, ALL);
    let table = f.buf(16 * n as u64);
    let data = f.buf(512);
    let status = f.buf(1);
    let mut bufs = vec![Buf::r(data, 16)];
    bufs.extend((0..n - 2).map(|_| Buf::r(data, 512)));
    bufs.push(Buf::w(status, 1));
    f.drv.add_indirect(&f.mem, table, &bufs).unwrap();
    assert!(f.pop().unwrap());
    assert_eq!(f.chain.segments().len(), MAX_CHAIN_SEGS);
    // The indirect descriptor is not a buffer.
    assert_eq!(f.chain.descriptors(), MAX_CHAIN_SEGS as u32);
    assert_eq!(f.chain.last().unwrap().addr, status);
    assert_eq!(f.chain.writable_len(), 1);
}

#[test]
fn chain_longer_than_the_bound_breaks_the_ring() {
    // One buffer too many, directly in the descriptor table.
    let mut f = Fixture::new(512, PLAIN);
    let data = f.buf(512);
    let status = f.buf(1);
    let mut bufs = vec![Buf::r(data, 16)];
    bufs.extend((0..MAX_CHAIN_SEGS - 1).map(|_| Buf::r(data, 512)));
    bufs.push(Buf::w(status, 1));
    f.drv.add_chain(&f.mem, &bufs).unwrap();
    assert_eq!(f.pop(), Err(RingError::ChainTooLong));
}

#[test]
fn empty_descriptors_count_toward_the_bound() {
    // 65,536 empty descriptors in an indirect table: the walk stops after
    // MAX_CHAIN_SEGS reads, not at the end of the table.
    let n = 65536usize;
    let mut f = Fixture::new(8, ALL);
    let table = f.buf(16 * n as u64);
    let status = f.buf(1);
    let header = f.buf(16);
    let mut descs = vec![Descriptor {
        addr: header,
        len: 16,
        flags: VRING_DESC_F_NEXT,
        next: 1,
    }];
    descs.extend((1..n - 1).map(|i| Descriptor {
        addr: header,
        len: 0,
        flags: VRING_DESC_F_NEXT,
        next: (i + 1) as u16,
    }));
    descs.push(Descriptor {
        addr: status,
        len: 1,
        flags: VRING_DESC_F_WRITE,
        next: 0,
    });
    post_raw_indirect(&mut f, table, &descs);
    let reads = CountingMem {
        mem: &f.mem,
        reads: RefCell::default(),
    };
    let mut regions = f.regions.clone();
    let mt = MemTable::validate(&mut regions).unwrap();
    let r = f.dev.get_vq_desc(&reads, &mt, &mut f.chain);
    assert_eq!(r, Err(RingError::ChainTooLong));
    let bytes: u64 = reads.reads.borrow().iter().map(|&(_, n)| n).sum();
    // Table reads of up to MAX_CHAIN_SEGS descriptors, plus the ring's
    // index, head and descriptor.
    assert!(
        bytes <= 16 * (MAX_CHAIN_SEGS as u64 + 2) + 64,
        "{bytes} bytes read for a chain the walk must give up on"
    );
}

/// Test memory that records every read and every read barrier, in order.
struct CountingMem<'a> {
    mem: &'a TestMemory,
    reads: RefCell<Vec<(u64, u64)>>,
}

/// A read barrier in [`CountingMem`]'s record.
const BARRIER: (u64, u64) = (u64::MAX, 0);

impl UserMemory for CountingMem<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        self.reads.borrow_mut().push((addr, buf.len() as u64));
        self.mem.read(addr, buf)
    }

    fn write(&self, addr: u64, buf: &[u8]) -> Result<(), Fault> {
        self.mem.write(addr, buf)
    }

    fn read_barrier(&self) {
        self.reads.borrow_mut().push(BARRIER);
    }
}

#[test]
fn ring_entries_are_read_after_a_barrier_when_enable_notify_saw_the_index_move() {
    // vhost_get_avail_idx(): whenever the index read shows new chains, the
    // ring entries are read only after smp_rmb(), however the index was
    // read. Here enable_notify() reads it, and get_vq_desc() goes on
    // without reading it again.
    let mut f = Fixture::new(8, PLAIN);
    let (a, s) = (f.buf(16), f.buf(1));
    let avail = f.drv.addrs().avail;
    f.drv
        .add_chain(&f.mem, &[Buf::r(a, 16), Buf::w(s, 1)])
        .unwrap();
    let mem = CountingMem {
        mem: &f.mem,
        reads: RefCell::default(),
    };
    assert!(f.dev.enable_notify(&mem).unwrap());
    let mut regions = f.regions.clone();
    let mt = MemTable::validate(&mut regions).unwrap();
    assert!(f.dev.get_vq_desc(&mem, &mt, &mut f.chain).unwrap());
    let log = mem.reads.take();
    let idx = log
        .iter()
        .position(|&(addr, _)| addr == avail + 2)
        .expect("avail->idx read");
    let entry = log
        .iter()
        .position(|&(addr, _)| addr >= avail + 4 && addr < avail + 4 + 2 * 8)
        .expect("avail ring entry read");
    assert!(idx < entry);
    assert!(
        log[idx..entry].contains(&BARRIER),
        "no read barrier between the index and the entries: {log:?}"
    );
}

/// Test memory whose reads of one address fail while `fail` is set.
struct FailingAt<'a> {
    mem: &'a TestMemory,
    addr: u64,
    fail: std::cell::Cell<bool>,
}

impl UserMemory for FailingAt<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        if self.fail.get() && addr <= self.addr && self.addr < addr + buf.len() as u64 {
            return Err(Fault);
        }
        self.mem.read(addr, buf)
    }

    fn write(&self, addr: u64, buf: &[u8]) -> Result<(), Fault> {
        self.mem.write(addr, buf)
    }
}

#[test]
fn signal_decision_asked_again_after_a_failed_read_is_the_same() {
    // A read that fails (a page not present yet) leaves the decision to be
    // asked again: the answer must not depend on the failed attempt.
    let mut f = Fixture::new(8, ALL);
    let (a, s) = (f.buf(16), f.buf(1));
    let head = f
        .drv
        .add_chain(&f.mem, &[Buf::r(a, 16), Buf::w(s, 1)])
        .unwrap();
    assert!(f.pop().unwrap());
    let used_event = f.drv.addrs().avail + 4 + 2 * 8;
    let mem = FailingAt {
        mem: &f.mem,
        addr: used_event,
        fail: std::cell::Cell::new(true),
    };
    f.dev.add_used(&mem, &[(head, 1)]).unwrap();
    assert_eq!(f.dev.should_signal(&mem), Err(RingError::Fault));
    mem.fail.set(false);
    // The first interrupt of the ring is always sent.
    assert_eq!(f.dev.should_signal(&mem), Ok(true));
}

// ---- configuration ----

#[test]
fn queue_sizes_and_ring_addresses_are_validated() {
    for n in [1u32, 2, 256, 32768] {
        assert!(valid_size(n), "{n}");
    }
    for n in [0u32, 3, 100, 65536, 32769] {
        assert!(!valid_size(n), "{n}");
    }
    let ok = VringAddrs {
        desc: 0x1000,
        avail: 0x2002,
        used: 0x3004,
    };
    assert_eq!(check_addrs(256, &ok), Ok(()));
    assert_eq!(
        check_addrs(256, &VringAddrs { desc: 0x1008, ..ok }),
        Err(ConfigError::Misaligned)
    );
    assert_eq!(
        check_addrs(
            256,
            &VringAddrs {
                avail: 0x2001,
                ..ok
            }
        ),
        Err(ConfigError::Misaligned)
    );
    assert_eq!(
        check_addrs(256, &VringAddrs { used: 0x3002, ..ok }),
        Err(ConfigError::Misaligned)
    );
    assert_eq!(
        check_addrs(
            256,
            &VringAddrs {
                used: u64::MAX - 3,
                ..ok
            }
        ),
        Err(ConfigError::Wraps)
    );
    assert_eq!(check_addrs(100, &ok), Err(ConfigError::BadSize));
}

// ---- notifications ----

#[test]
fn need_event_matches_the_virtio_formula() {
    assert!(need_event(0, 1, 0));
    assert!(!need_event(1, 1, 0));
    assert!(need_event(5, 10, 3));
    assert!(!need_event(10, 10, 3));
    // Across the u16 wrap.
    assert!(need_event(65535, 2, 65534));
    assert!(!need_event(3, 2, 65534));
}

#[test]
fn no_interrupt_flag_suppresses_signals_without_event_idx() {
    let mut f = Fixture::new(8, PLAIN);
    let a = f.buf(16);
    f.drv.add_chain(&f.mem, &[Buf::w(a, 1)]).unwrap();
    assert!(f.pop().unwrap());
    f.dev.add_used(&f.mem, &[(f.chain.head(), 1)]).unwrap();
    assert!(f.dev.should_signal(&f.mem).unwrap());
    f.drv.set_no_interrupt(&f.mem, true);
    assert!(!f.dev.should_signal(&f.mem).unwrap());
}

#[test]
fn event_idx_signals_only_when_crossing_used_event() {
    let mut f = Fixture::new(8, ALL);
    let a = f.buf(16);
    let complete_one = |f: &mut Fixture| {
        f.drv.add_chain(&f.mem, &[Buf::w(a, 1)]).unwrap();
        assert!(f.pop().unwrap());
        f.dev.add_used(&f.mem, &[(f.chain.head(), 1)]).unwrap();
        f.drv.pop_used(&f.mem).unwrap();
        f.dev.should_signal(&f.mem).unwrap()
    };
    // The first decision is always to signal (no valid history).
    f.drv.set_used_event(&f.mem, 0);
    assert!(complete_one(&mut f));
    // The driver wants an interrupt when used idx passes 3.
    f.drv.set_used_event(&f.mem, 3);
    assert!(!complete_one(&mut f)); // used idx 2
    assert!(!complete_one(&mut f)); // used idx 3
    assert!(complete_one(&mut f)); // used idx 4 crosses event 3
}

#[test]
fn notify_on_empty_signals_when_the_ring_drains() {
    let feats = RingFeatures {
        notify_on_empty: true,
        ..PLAIN
    };
    let mut f = Fixture::new(8, feats);
    let a = f.buf(16);
    f.drv.add_chain(&f.mem, &[Buf::w(a, 1)]).unwrap();
    assert!(f.pop().unwrap());
    assert!(!f.pop().unwrap());
    f.dev.add_used(&f.mem, &[(f.chain.head(), 1)]).unwrap();
    f.drv.set_no_interrupt(&f.mem, true);
    assert!(
        f.dev.should_signal(&f.mem).unwrap(),
        "empty ring overrides NO_INTERRUPT"
    );
}

#[test]
fn disable_and_enable_notify_without_event_idx() {
    let mut f = Fixture::new(8, PLAIN);
    f.dev.disable_notify(&f.mem).unwrap();
    assert_eq!(f.drv.used_flags(&f.mem), VRING_USED_F_NO_NOTIFY);
    assert!(!f.dev.enable_notify(&f.mem).unwrap());
    assert_eq!(f.drv.used_flags(&f.mem), 0);
}

#[test]
fn enable_notify_reports_chains_that_raced_in() {
    let mut f = Fixture::new(8, ALL);
    let a = f.buf(16);
    f.dev.disable_notify(&f.mem).unwrap();
    // The driver adds a chain while notifications are off.
    f.drv.add_chain(&f.mem, &[Buf::w(a, 1)]).unwrap();
    // Re-enabling must notice it, or the chain would be stranded.
    assert!(f.dev.enable_notify(&f.mem).unwrap());
    assert_eq!(f.drv.avail_event(&f.mem), 0);
    assert!(f.pop().unwrap());
    assert!(!f.dev.enable_notify(&f.mem).unwrap());
    assert_eq!(f.drv.avail_event(&f.mem), 1);
}
