// SPDX-License-Identifier: GPL-2.0

//! One test per `RingError` a hostile guest can provoke.

use super::*;

#[test]
fn avail_index_jump_is_a_ring_error() {
    let mut f = Fixture::new(8, PLAIN);
    f.drv.set_avail_idx(&f.mem, 9);
    assert_eq!(
        f.pop().unwrap_err(),
        RingError::AvailIdxJump {
            avail_idx: 9,
            last_avail_idx: 0
        }
    );
    // Exactly `num` pending is fine.
    f.drv.set_avail_idx(&f.mem, 8);
    assert!(f.dev.avail_pending(&f.mem).is_ok());
}

#[test]
fn head_out_of_range_is_a_ring_error() {
    let mut f = Fixture::new(8, PLAIN);
    f.drv.push_avail(&f.mem, 8);
    assert_eq!(f.pop().unwrap_err(), RingError::HeadOutOfRange(8));
    assert_eq!(f.dev.last_avail_idx(), 0, "the bad head is not consumed");
}

#[test]
fn next_out_of_range_is_a_ring_error() {
    let mut f = Fixture::new(8, PLAIN);
    let a = f.buf(16);
    f.drv.write_desc(
        &f.mem,
        0,
        Descriptor {
            addr: a,
            len: 16,
            flags: VRING_DESC_F_NEXT,
            next: 100,
        },
    );
    f.drv.push_avail(&f.mem, 0);
    assert_eq!(f.pop().unwrap_err(), RingError::NextOutOfRange(100));
}

#[test]
fn descriptor_loop_is_a_ring_error() {
    let mut f = Fixture::new(8, PLAIN);
    let a = f.buf(16);
    for (i, next) in [(0u16, 1u16), (1, 2), (2, 0)] {
        f.drv.write_desc(
            &f.mem,
            i,
            Descriptor {
                addr: a,
                len: 16,
                flags: VRING_DESC_F_NEXT,
                next,
            },
        );
    }
    f.drv.push_avail(&f.mem, 0);
    assert_eq!(f.pop().unwrap_err(), RingError::ChainLoop);
    // A self-loop too.
    let mut f = Fixture::new(8, PLAIN);
    f.drv.write_desc(
        &f.mem,
        3,
        Descriptor {
            addr: a,
            len: 16,
            flags: VRING_DESC_F_NEXT,
            next: 3,
        },
    );
    f.drv.push_avail(&f.mem, 3);
    assert_eq!(f.pop().unwrap_err(), RingError::ChainLoop);
}

#[test]
fn indirect_loop_is_a_ring_error() {
    let mut f = Fixture::new(8, ALL);
    let table = f.buf(32);
    let a = f.buf(16);
    let d = |next| Descriptor {
        addr: a,
        len: 16,
        flags: VRING_DESC_F_NEXT,
        next,
    };
    post_raw_indirect(&mut f, table, &[d(1), d(0)]);
    assert_eq!(f.pop().unwrap_err(), RingError::ChainLoop);
}

#[test]
fn indirect_without_the_feature_is_a_ring_error() {
    let mut f = Fixture::new(8, PLAIN);
    let table = f.buf(16);
    let a = f.buf(16);
    f.drv.add_indirect(&f.mem, table, &[Buf::w(a, 16)]).unwrap();
    assert_eq!(f.pop().unwrap_err(), RingError::IndirectNotNegotiated);
}

#[test]
fn nested_indirect_is_a_ring_error() {
    let mut f = Fixture::new(8, ALL);
    let inner = f.buf(16);
    let outer = f.buf(16);
    let a = f.buf(16);
    let drv = vhost_blk_core::test_utils::driver::desc_bytes;
    f.mem
        .write(
            inner,
            &drv(&Descriptor {
                addr: a,
                len: 16,
                flags: VRING_DESC_F_WRITE,
                next: 0,
            }),
        )
        .unwrap();
    post_raw_indirect(
        &mut f,
        outer,
        &[Descriptor {
            addr: inner,
            len: 16,
            flags: VRING_DESC_F_INDIRECT,
            next: 0,
        }],
    );
    assert_eq!(f.pop().unwrap_err(), RingError::IndirectNested);
}

#[test]
fn indirect_with_next_is_a_ring_error() {
    let mut f = Fixture::new(8, ALL);
    let table = f.buf(16);
    f.drv.write_desc(
        &f.mem,
        0,
        Descriptor {
            addr: table,
            len: 16,
            flags: VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT,
            next: 1,
        },
    );
    f.drv.push_avail(&f.mem, 0);
    assert_eq!(f.pop().unwrap_err(), RingError::IndirectWithNext);
}

#[test]
fn bad_indirect_lengths_are_ring_errors() {
    for len in [0u32, 15, 17, 16 * (MAX_INDIRECT + 1)] {
        let mut f = Fixture::new(8, ALL);
        let table = f.buf(64);
        f.drv.write_desc(
            &f.mem,
            0,
            Descriptor {
                addr: table,
                len,
                flags: VRING_DESC_F_INDIRECT,
                next: 0,
            },
        );
        f.drv.push_avail(&f.mem, 0);
        assert_eq!(
            f.pop().unwrap_err(),
            RingError::IndirectBadLength(len),
            "len {len}"
        );
    }
}

#[test]
fn readable_after_writable_is_a_ring_error() {
    let mut f = Fixture::new(8, PLAIN);
    let a = f.buf(16);
    f.drv
        .add_chain(&f.mem, &[Buf::w(a, 16), Buf::r(a, 16)])
        .unwrap();
    assert_eq!(f.pop().unwrap_err(), RingError::ReadableAfterWritable);
}

#[test]
fn wrapping_buffer_is_a_ring_error() {
    let mut f = Fixture::new(8, PLAIN);
    f.drv
        .add_chain(&f.mem, &[Buf::r(u64::MAX - 4, 16)])
        .unwrap();
    assert_eq!(f.pop().unwrap_err(), RingError::LengthOverflow);
}

#[test]
fn chain_over_four_gib_is_a_ring_error() {
    // Lengths are checked before translation, so huge buffers in a
    // generously mapped table still cannot overflow the u32 total.
    let mut f = Fixture::new(8, PLAIN);
    f.regions = vec![vhost_blk_core::memory::MemRegion {
        guest_phys_addr: 0,
        size: u64::MAX,
        userspace_addr: 0,
    }];
    f.drv
        .add_chain(&f.mem, &[Buf::r(0, u32::MAX), Buf::w(0, u32::MAX)])
        .unwrap();
    assert_eq!(f.pop().unwrap_err(), RingError::LengthOverflow);
}

#[test]
fn unmapped_buffers_and_tables_are_ring_errors() {
    let mut f = Fixture::new(8, ALL);
    let outside = common::BASE + common::SIZE as u64;
    f.drv.add_chain(&f.mem, &[Buf::r(outside - 8, 16)]).unwrap();
    assert_eq!(
        f.pop().unwrap_err(),
        RingError::Unmapped {
            addr: outside - 8,
            len: 16
        }
    );
    // An indirect table outside guest memory.
    let mut f2 = Fixture::new(8, ALL);
    f2.drv.write_desc(
        &f2.mem,
        0,
        Descriptor {
            addr: 0x1000,
            len: 16,
            flags: VRING_DESC_F_INDIRECT,
            next: 0,
        },
    );
    f2.drv.push_avail(&f2.mem, 0);
    assert_eq!(
        f2.pop().unwrap_err(),
        RingError::Unmapped {
            addr: 0x1000,
            len: 16
        }
    );
}

#[test]
fn rings_outside_user_memory_fault() {
    let mut f = Fixture::new(8, PLAIN);
    let bad = VringAddrs {
        desc: 0x1000,
        avail: 0x2000,
        used: 0x3000,
    };
    f.dev = Vring::new(8, bad, PLAIN, 0).unwrap();
    assert_eq!(f.pop().unwrap_err(), RingError::Fault);
}
