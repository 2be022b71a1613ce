// SPDX-License-Identifier: GPL-2.0

//! Random rings against a reference model of the split ring's rules
//! (VIRTIO 1.2 2.7.5 and 2.7.7 and the module's bounds), written
//! independently of `core/ring.rs`: every chain the model accepts must be
//! popped with exactly its buffers, and the first one it rejects must
//! break the ring.

mod common;

use common::{Fixture, Rng, BASE, SIZE};
use vhost_blk_core::memory::UserMemory;
use vhost_blk_core::ring::*;
use vhost_blk_core::test_utils::memory::TestMemory;

/// A buffer of a chain: address, length, device-writable.
type Buffer = (u64, u32, bool);

/// Whether `len` bytes at `addr` lie inside the test memory.
fn in_memory(addr: u64, len: u64) -> bool {
    let end = u128::from(addr) + u128::from(len);
    addr >= BASE && end <= u128::from(BASE) + SIZE as u128
}

fn desc_at(mem: &TestMemory, addr: u64) -> Descriptor {
    let mut b = [0u8; 16];
    mem.read(addr, &mut b).expect("descriptor inside memory");
    Descriptor::from_bytes(&b)
}

/// What the model makes of one chain.
struct Walk {
    buffers: Vec<Buffer>,
    /// Descriptors that carry buffers, empty ones included.
    walked: usize,
}

impl Walk {
    /// One buffer descriptor: ordering, bounds, memory, totals.
    fn buffer(&mut self, d: &Descriptor) -> Option<()> {
        self.walked += 1;
        if self.walked > MAX_CHAIN_SEGS {
            return None;
        }
        let writable = d.flags & VRING_DESC_F_WRITE != 0;
        // Device-readable buffers come first (2.7.4.2), empty ones too.
        if !writable && self.buffers.iter().any(|b| b.2) {
            return None;
        }
        if d.len == 0 {
            return Some(());
        }
        if !in_memory(d.addr, u64::from(d.len)) {
            return None;
        }
        let total: u64 = self.buffers.iter().map(|b| u64::from(b.1)).sum();
        if total + u64::from(d.len) > u64::from(u32::MAX) {
            return None;
        }
        self.buffers.push((d.addr, d.len, writable));
        Some(())
    }

    /// An indirect table (2.7.5.3): a non-empty whole number of
    /// descriptors in memory, no nesting, `next` inside the table, no
    /// more steps than entries.
    fn indirect(&mut self, mem: &TestMemory, d: &Descriptor) -> Option<()> {
        let len = u64::from(d.len);
        if len == 0 || len % 16 != 0 || len / 16 > u64::from(MAX_INDIRECT) {
            return None;
        }
        if !in_memory(d.addr, len) {
            return None;
        }
        let count = len / 16;
        let mut i = 0u64;
        for _ in 0..count {
            let e = desc_at(mem, d.addr + 16 * i);
            if e.flags & VRING_DESC_F_INDIRECT != 0 {
                return None;
            }
            self.buffer(&e)?;
            if e.flags & VRING_DESC_F_NEXT == 0 {
                return Some(());
            }
            if u64::from(e.next) >= count {
                return None;
            }
            i = u64::from(e.next);
        }
        None
    }
}

/// The chain at `head` of a ring of `num` descriptors at `desc`: its
/// buffers, or `None` if a device must refuse it.
fn model_chain(
    mem: &TestMemory,
    desc: u64,
    num: u16,
    indirect: bool,
    head: u16,
) -> Option<Vec<Buffer>> {
    if head >= num {
        return None;
    }
    let mut w = Walk {
        buffers: Vec::new(),
        walked: 0,
    };
    let mut i = head;
    // A chain visits each descriptor of the table at most once.
    for _ in 0..num {
        let d = desc_at(mem, desc + 16 * u64::from(i));
        if d.flags & VRING_DESC_F_INDIRECT != 0 {
            // Only with the feature, and never chained onward (2.7.5.3.1).
            if !indirect || d.flags & VRING_DESC_F_NEXT != 0 {
                return None;
            }
            w.indirect(mem, &d)?;
            return Some(w.buffers);
        }
        w.buffer(&d)?;
        if d.flags & VRING_DESC_F_NEXT == 0 {
            return Some(w.buffers);
        }
        if d.next >= num {
            return None;
        }
        i = d.next;
    }
    None
}

/// Random descriptor tables, indirect tables and avail entries: the
/// device pops exactly the chains the model accepts, in order, with the
/// model's buffers, and breaks at the first chain the model refuses. Over
/// all seeds, both outcomes must be common, or the test proves nothing.
#[test]
fn random_rings_follow_the_reference_model() {
    let (mut accepted, mut refused) = (0u32, 0u32);
    for seed in 0..3000u64 {
        let mut rng = Rng::new(seed);
        let num = 1u16 << rng.below(5);
        let feats = RingFeatures {
            indirect: rng.below(2) == 1,
            event_idx: rng.below(2) == 1,
            notify_on_empty: false,
        };
        let mut f = Fixture::new(num, feats);
        let pool = f.buf(8192);
        let table = f.buf(16 * 8);
        let rand_desc = |rng: &mut Rng, n: u16| {
            let addr = match rng.below(6) {
                0 => rng.next(),
                1 => table,
                _ => pool + rng.below(8192),
            };
            Descriptor {
                addr,
                len: match rng.below(5) {
                    0 => 0,
                    1 => rng.next() as u32,
                    _ => rng.below(256) as u32 * 16,
                },
                flags: rng.below(8) as u16,
                next: if rng.below(8) == 0 {
                    rng.next() as u16
                } else {
                    rng.below(u64::from(n)) as u16
                },
            }
        };
        for i in 0..num {
            let d = rand_desc(&mut rng, num);
            f.drv.write_desc(&f.mem, i, d);
        }
        for i in 0..8u64 {
            let d = rand_desc(&mut rng, 8);
            f.mem
                .write(
                    table + 16 * i,
                    &vhost_blk_core::test_utils::driver::desc_bytes(&d),
                )
                .unwrap();
        }
        for _ in 0..rng.below(u64::from(num) + 1) {
            let h = if rng.below(10) == 0 {
                rng.next() as u16
            } else {
                rng.below(u64::from(num)) as u16
            };
            f.drv.push_avail(&f.mem, h);
        }
        if rng.below(10) == 0 {
            f.drv.set_avail_idx(&f.mem, rng.next() as u16);
        }

        let addrs = f.drv.addrs();
        let published = f.mem.read_u16(addrs.avail + 2).unwrap();
        // More entries published than the ring holds: broken at once.
        let jump = published > num;
        let mut broken = false;
        for k in 0..published.min(num) {
            let head = f
                .mem
                .read_u16(addrs.avail + 4 + 2 * u64::from(k % num))
                .unwrap();
            let want = if jump {
                None
            } else {
                model_chain(&f.mem, addrs.desc, num, feats.indirect, head)
            };
            let got = f.pop();
            match want {
                Some(buffers) => {
                    assert_eq!(
                        got,
                        Ok(true),
                        "seed {seed}: chain {k} (head {head}) refused"
                    );
                    let segs: Vec<Buffer> = f
                        .chain
                        .segments()
                        .iter()
                        .map(|s| (s.addr, s.len, s.writable))
                        .collect();
                    assert_eq!(segs, buffers, "seed {seed}: chain {k} (head {head})");
                    assert_eq!(f.chain.head(), head, "seed {seed}: chain {k}");
                    accepted += 1;
                }
                None => {
                    assert!(
                        got.is_err(),
                        "seed {seed}: chain {k} (head {head}) accepted: {got:?} {:?}",
                        f.chain.segments()
                    );
                    refused += 1;
                    broken = true;
                    break;
                }
            }
        }
        if !broken {
            // Every published chain was valid: the ring is empty now.
            assert_eq!(f.pop(), Ok(false), "seed {seed}: more chains than entries");
        }
    }
    println!("{accepted} chains accepted, {refused} rings refused");
    assert!(
        accepted > 500 && refused > 500,
        "{accepted} accepted, {refused} refused"
    );
}
