// SPDX-License-Identifier: GPL-2.0

//! Fuzz bodies, shared by the `cargo fuzz` targets in `tools/fuzz/` and by
//! the host test that replays their corpus with stable Rust.

use vhost_blk_core::blk::{self, BlkLimits, Op};
use vhost_blk_core::memory::{MemRegion, MemTable, UserMemory};
use vhost_blk_core::ring::{Chain, RingFeatures, Vring, VringAddrs};

use crate::mem::TestMemory;

const BASE: u64 = 0x1_0000;
const SIZE: usize = 64 << 10;

/// Treats `data` as guest memory holding a split ring (its size and
/// features taken from the first bytes) and pops and parses every chain,
/// checking the invariants the module relies on. Panics on a violation.
pub fn chain_and_request(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let num = 1u32 << (data[0] % 9);
    let features = RingFeatures {
        indirect: data[1] & 1 != 0,
        event_idx: data[1] & 2 != 0,
        notify_on_empty: data[1] & 4 != 0,
    };
    let mem = TestMemory::new(BASE, SIZE);
    let n = data.len().min(SIZE);
    mem.write(BASE, &data[..n]).expect("in range");
    // Rings at fixed places inside the image; descriptors point anywhere.
    let addrs = VringAddrs {
        desc: BASE + 0x100,
        avail: BASE + 0x100 + 16 * u64::from(num),
        used: BASE + 0x8000,
    };
    let Ok(mut vring) = Vring::new(num, addrs, features, u16::from(data[2])) else {
        return;
    };
    let mut regions = [
        mem.region(),
        MemRegion {
            guest_phys_addr: 0x100_0000,
            size: 0x1000,
            userspace_addr: BASE + 0x1000,
        },
    ];
    let Ok(table) = MemTable::validate(&mut regions) else {
        return;
    };
    let limits = BlkLimits {
        capacity: 1 << 20,
        logical_block_size: 512 << (data[3] % 4),
        read_only: data[3] & 0x10 != 0,
        flush: data[3] & 0x20 != 0,
        max_discard_seg: u32::from(data[3] >> 6) * 8,
        max_discard_sectors: 4096,
        max_write_zeroes_seg: blk::MAX_RANGES,
        max_write_zeroes_sectors: 16384,
        max_transfer: 8 << 20,
        write_zeroes_offload: false,
        write_cache: false,
        write_through: false,
    };
    let mut chain = Chain::new();
    for _ in 0..=num {
        match vring.get_vq_desc(&mem, &table, &mut chain) {
            Ok(true) => {}
            Ok(false) | Err(_) => break,
        }
        assert!(u32::from(chain.head()) < num);
        let mut w = false;
        for s in chain.segments() {
            assert!(s.len > 0);
            assert!(!w || s.writable, "readable after writable accepted");
            w |= s.writable;
            assert!(
                table.covers(s.addr, u64::from(s.len)),
                "unmapped segment accepted"
            );
        }
        match blk::parse(&mem, &table, &chain, &limits) {
            blk::Parsed::NoStatus => {}
            blk::Parsed::Rejected(rej) => {
                assert!(
                    rej.status == blk::VIRTIO_BLK_S_IOERR || rej.status == blk::VIRTIO_BLK_S_UNSUPP
                );
                assert!(table.covers(rej.status_addr, 1));
            }
            blk::Parsed::Request(req) => {
                assert!(table.covers(req.status_addr, 1));
                assert!(
                    !(limits.read_only
                        && matches!(req.op, Op::Write | Op::Discard | Op::WriteZeroes)),
                    "{:?} accepted on a read-only device",
                    req.op
                );
                if matches!(req.op, Op::Read | Op::Write) {
                    assert!(
                        range_ok(&limits, req.sector, u128::from(req.data.len)),
                        "{:?} of {} bytes at sector {} accepted",
                        req.op,
                        req.data.len,
                        req.sector
                    );
                }
                let mut total = 0u64;
                blk::for_each_data_piece(&chain, &req.data, |gpa, len| {
                    assert!(table.covers(gpa, u64::from(len)));
                    total += u64::from(len);
                    Ok::<(), ()>(())
                })
                .unwrap();
                assert_eq!(total, u64::from(req.data.len), "data pieces do not add up");
                if matches!(req.op, Op::Discard | Op::WriteZeroes) {
                    for i in 0..req.data.len / blk::DWZ_SEG_LEN {
                        if let Ok(r) = blk::read_range(&mem, &table, &chain, &req, i) {
                            let got =
                                blk::check_range(&limits, req.op, r.sector, r.num_sectors, r.flags);
                            let (flags, max) = match req.op {
                                Op::WriteZeroes => (
                                    blk::VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
                                    limits.max_write_zeroes_sectors,
                                ),
                                _ => (0, limits.max_discard_sectors),
                            };
                            let want = r.flags & !flags == 0
                                && r.num_sectors <= max
                                && range_ok(&limits, r.sector, u128::from(r.num_sectors) * 512);
                            assert_eq!(got.is_ok(), want, "{r:?}: {got:?}");
                        }
                    }
                }
            }
        }
        let _ = vring.add_used(&mem, &[(chain.head(), 1)]);
        let _ = vring.should_signal(&mem);
    }
    let _ = vring.enable_notify(&mem);
}

/// The reference model of an extent the device may touch: `len` bytes at
/// 512-byte `sector`, both aligned to the logical block size, inside the
/// capacity. Computed in `u128`, where nothing overflows.
fn range_ok(limits: &BlkLimits, sector: u64, len: u128) -> bool {
    let lbs = u128::from(limits.logical_block_size);
    let start = u128::from(sector) * 512;
    start.is_multiple_of(lbs)
        && len.is_multiple_of(lbs)
        && start + len <= u128::from(limits.capacity) * 512
}
