// SPDX-License-Identifier: GPL-2.0

//! The guest driver's side of a split virtqueue, for tests and benchmarks.
//!
//! Besides well-formed use ([`DriverRing::add_chain`],
//! [`DriverRing::add_indirect`], [`DriverRing::pop_used`]) it exposes raw
//! writes of descriptors and indexes, so that tests can build every kind of
//! malformed ring a hostile guest could.

use std::vec;
use std::vec::Vec;

use crate::memory::UserMemory;
use crate::ring::{
    need_event, Descriptor, VringAddrs, DESC_SIZE, VRING_AVAIL_F_NO_INTERRUPT,
    VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, VRING_USED_F_NO_NOTIFY,
};

use super::memory::BumpAllocator;

/// One buffer the driver offers: address, length, device-writable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buf {
    /// Guest physical address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
    /// Device-writable.
    pub writable: bool,
}

impl Buf {
    /// A device-readable buffer.
    pub fn r(addr: u64, len: u32) -> Self {
        Self {
            addr,
            len,
            writable: false,
        }
    }

    /// A device-writable buffer.
    pub fn w(addr: u64, len: u32) -> Self {
        Self {
            addr,
            len,
            writable: true,
        }
    }
}

/// Encodes a descriptor into its 16 bytes.
pub fn desc_bytes(d: &Descriptor) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&d.addr.to_le_bytes());
    b[8..12].copy_from_slice(&d.len.to_le_bytes());
    b[12..14].copy_from_slice(&d.flags.to_le_bytes());
    b[14..].copy_from_slice(&d.next.to_le_bytes());
    b
}

/// The driver side of one split ring in some memory.
pub struct DriverRing {
    num: u16,
    addrs: VringAddrs,
    free: Vec<u16>,
    /// The next avail index the driver will publish.
    avail_idx: u16,
    /// The next used index the driver will consume.
    last_used: u16,
    /// Descriptors of each in-flight head, to free on completion.
    chains: Vec<Vec<u16>>,
}

impl DriverRing {
    /// Allocates and zeroes the rings of a queue of `num` entries. The
    /// used ring has whole pages of its own (as in the legacy virtio
    /// layout), so a test can make it read-only and still post chains.
    pub fn new(mem: &impl UserMemory, alloc: &mut BumpAllocator, num: u16) -> Self {
        let n = u64::from(num);
        let addrs = VringAddrs {
            desc: alloc.alloc(DESC_SIZE * n, 16),
            avail: alloc.alloc(6 + 2 * n, 2),
            used: alloc.alloc((6 + 8 * n).next_multiple_of(4096), 4096),
        };
        for (a, len) in [
            (addrs.desc, DESC_SIZE * n),
            (addrs.avail, 6 + 2 * n),
            (addrs.used, 6 + 8 * n),
        ] {
            mem.write(a, &vec![0; len as usize]).expect("ring memory");
        }
        Self::at(addrs, num, 0)
    }

    /// A driver for rings already at `addrs`, starting at index `base`.
    pub fn at(addrs: VringAddrs, num: u16, base: u16) -> Self {
        Self {
            num,
            addrs,
            free: (0..num).rev().collect(),
            avail_idx: base,
            last_used: base,
            chains: vec![Vec::new(); usize::from(num)],
        }
    }

    /// The ring addresses (for `VHOST_SET_VRING_ADDR`).
    pub fn addrs(&self) -> VringAddrs {
        self.addrs
    }

    /// The queue size.
    pub fn num(&self) -> u16 {
        self.num
    }

    /// Free descriptors.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Descriptor `i` as the table holds it.
    pub fn read_desc(&self, mem: &impl UserMemory, i: u16) -> Descriptor {
        let mut b = [0u8; DESC_SIZE as usize];
        mem.read(self.addrs.desc + DESC_SIZE * u64::from(i), &mut b)
            .expect("descriptor table");
        Descriptor::from_bytes(&b)
    }

    /// The descriptors of the chain at `head` while it is in flight
    /// (empty once it was used).
    pub fn chain_ids(&self, head: u16) -> &[u16] {
        self.chains
            .get(usize::from(head))
            .map_or(&[], |c| c.as_slice())
    }

    /// Writes descriptor `i` verbatim.
    pub fn write_desc(&self, mem: &impl UserMemory, i: u16, d: Descriptor) {
        mem.write(self.addrs.desc + DESC_SIZE * u64::from(i), &desc_bytes(&d))
            .expect("descriptor table");
    }

    /// Writes `d` verbatim as descriptor 0 and makes head 0 available: a
    /// one-descriptor chain of the test's own making (hostile tests).
    pub fn post_raw(&mut self, mem: &impl UserMemory, d: Descriptor) {
        self.write_desc(mem, 0, d);
        self.push_avail(mem, 0);
    }

    /// Writes `head` into the next avail slot and publishes it.
    pub fn push_avail(&mut self, mem: &impl UserMemory, head: u16) {
        let slot = self.addrs.avail + 4 + 2 * u64::from(self.avail_idx % self.num);
        mem.write_u16(slot, head).expect("avail ring");
        self.avail_idx = self.avail_idx.wrapping_add(1);
        mem.write_barrier();
        mem.write_u16(self.addrs.avail + 2, self.avail_idx)
            .expect("avail idx");
    }

    /// The next avail index the driver will publish.
    pub fn avail_idx(&self) -> u16 {
        self.avail_idx
    }

    /// Writes `avail->idx` verbatim (hostile tests).
    pub fn set_avail_idx(&mut self, mem: &impl UserMemory, idx: u16) {
        self.avail_idx = idx;
        mem.write_u16(self.addrs.avail + 2, idx).expect("avail idx");
    }

    /// Writes avail ring slot `slot` verbatim (hostile tests).
    pub fn write_avail_slot(&self, mem: &impl UserMemory, slot: u16, head: u16) {
        mem.write_u16(self.addrs.avail + 4 + 2 * u64::from(slot % self.num), head)
            .expect("avail ring");
    }

    /// Links `bufs` into a chain of free descriptors; returns its head, or
    /// `None` when there are not enough free descriptors.
    pub fn build_chain(&mut self, mem: &impl UserMemory, bufs: &[Buf]) -> Option<u16> {
        if bufs.is_empty() || bufs.len() > self.free.len() {
            return None;
        }
        let ids: Vec<u16> = (0..bufs.len()).map(|_| self.free.pop().unwrap()).collect();
        for (k, b) in bufs.iter().enumerate() {
            let more = k + 1 < bufs.len();
            self.write_desc(
                mem,
                ids[k],
                Descriptor {
                    addr: b.addr,
                    len: b.len,
                    flags: if b.writable { VRING_DESC_F_WRITE } else { 0 }
                        | if more { VRING_DESC_F_NEXT } else { 0 },
                    next: if more { ids[k + 1] } else { 0 },
                },
            );
        }
        let head = ids[0];
        self.chains[usize::from(head)] = ids;
        Some(head)
    }

    /// Adds a chain of `bufs` and makes it available; returns the head.
    pub fn add_chain(&mut self, mem: &impl UserMemory, bufs: &[Buf]) -> Option<u16> {
        let head = self.build_chain(mem, bufs)?;
        self.push_avail(mem, head);
        Some(head)
    }

    /// Writes `bufs` as an indirect table at `table` (which must hold
    /// `16 * bufs.len()` bytes), adds one descriptor pointing at it and
    /// makes it available; returns the head.
    pub fn add_indirect(&mut self, mem: &impl UserMemory, table: u64, bufs: &[Buf]) -> Option<u16> {
        for (k, b) in bufs.iter().enumerate() {
            let more = k + 1 < bufs.len();
            let d = Descriptor {
                addr: b.addr,
                len: b.len,
                flags: if b.writable { VRING_DESC_F_WRITE } else { 0 }
                    | if more { VRING_DESC_F_NEXT } else { 0 },
                next: if more { (k + 1) as u16 } else { 0 },
            };
            mem.write(table + DESC_SIZE * k as u64, &desc_bytes(&d))
                .expect("indirect table");
        }
        let id = self.free.pop()?;
        self.write_desc(
            mem,
            id,
            Descriptor {
                addr: table,
                len: (DESC_SIZE as usize * bufs.len()) as u32,
                flags: VRING_DESC_F_INDIRECT,
                next: 0,
            },
        );
        self.chains[usize::from(id)] = vec![id];
        self.push_avail(mem, id);
        Some(id)
    }

    /// Takes the next used element `(id, len)`, freeing its descriptors.
    pub fn pop_used(&mut self, mem: &impl UserMemory) -> Option<(u32, u32)> {
        let idx = mem.read_u16(self.addrs.used + 2).expect("used idx");
        if idx == self.last_used {
            return None;
        }
        mem.read_barrier();
        let slot = self.addrs.used + 4 + 8 * u64::from(self.last_used % self.num);
        let id = mem.read_u32(slot).expect("used ring");
        let len = mem.read_u32(slot + 4).expect("used ring");
        self.last_used = self.last_used.wrapping_add(1);
        if let Some(ids) = self.chains.get_mut(id as usize) {
            self.free.append(ids);
        }
        Some((id, len))
    }

    /// The next used index the driver will consume.
    pub fn last_used(&self) -> u16 {
        self.last_used
    }

    /// Whether the device has published used elements not yet taken.
    pub fn has_used(&self, mem: &impl UserMemory) -> bool {
        mem.read_u16(self.addrs.used + 2).expect("used idx") != self.last_used
    }

    /// Whether the device wants a kick for the chains published since the
    /// avail index was `old`: `vring_need_event()` on `avail_event` with
    /// EVENT_IDX, else no `VRING_USED_F_NO_NOTIFY`. Call it after
    /// publishing; it orders the publication before its reads, as a
    /// driver's `virtqueue_kick_prepare` does.
    pub fn needs_kick(&self, mem: &impl UserMemory, old: u16, event_idx: bool) -> bool {
        mem.full_barrier();
        if event_idx {
            need_event(self.avail_event(mem), self.avail_idx, old)
        } else {
            self.used_flags(mem) & VRING_USED_F_NO_NOTIFY == 0
        }
    }

    /// `used->idx` as the device left it.
    pub fn used_idx(&self, mem: &impl UserMemory) -> u16 {
        mem.read_u16(self.addrs.used + 2).expect("used idx")
    }

    /// `avail->flags` as the driver set them.
    pub fn avail_flags(&self, mem: &impl UserMemory) -> u16 {
        mem.read_u16(self.addrs.avail).expect("avail flags")
    }

    /// `used->flags` as the device left it.
    pub fn used_flags(&self, mem: &impl UserMemory) -> u16 {
        mem.read_u16(self.addrs.used).expect("used flags")
    }

    /// `avail_event` as the device left it.
    pub fn avail_event(&self, mem: &impl UserMemory) -> u16 {
        mem.read_u16(self.addrs.used + 4 + 8 * u64::from(self.num))
            .expect("avail_event")
    }

    /// Sets `used_event` (EVENT_IDX).
    pub fn set_used_event(&self, mem: &impl UserMemory, v: u16) {
        mem.write_u16(self.addrs.avail + 4 + 2 * u64::from(self.num), v)
            .expect("used_event");
    }

    /// Sets or clears `VRING_AVAIL_F_NO_INTERRUPT`.
    pub fn set_no_interrupt(&self, mem: &impl UserMemory, on: bool) {
        let f = if on { VRING_AVAIL_F_NO_INTERRUPT } else { 0 };
        mem.write_u16(self.addrs.avail, f).expect("avail flags");
    }
}
