// SPDX-License-Identifier: GPL-2.0

//! Shared fixture of the core's host tests: a test memory with an identity
//! memory table, a driver ring and a device ring over it.

#![allow(dead_code)]

use vhost_blk_core::memory::{MemRegion, MemTable};
use vhost_blk_core::ring::{Chain, RingError, RingFeatures, Vring};
use vhost_blk_core::test_utils::driver::DriverRing;
use vhost_blk_core::test_utils::memory::{BumpAllocator, TestMemory};

pub const BASE: u64 = 0x10_0000;
pub const SIZE: usize = 4 << 20;

pub struct Fixture {
    pub mem: TestMemory,
    pub regions: Vec<MemRegion>,
    pub alloc: BumpAllocator,
    pub drv: DriverRing,
    pub dev: Vring,
    pub chain: Box<Chain>,
}

impl Fixture {
    pub fn new(num: u16, features: RingFeatures) -> Self {
        Self::with_base(num, features, 0)
    }

    pub fn with_base(num: u16, features: RingFeatures, base: u16) -> Self {
        let mem = TestMemory::new(BASE, SIZE);
        let regions = vec![mem.region()];
        let mut alloc = BumpAllocator::new(BASE, BASE + SIZE as u64);
        let drv = DriverRing::new(&mem, &mut alloc, num);
        let drv = DriverRing::at(drv.addrs(), num, base);
        if base != 0 {
            mem_set_idx(&mem, &drv, base);
        }
        let dev = Vring::new(u32::from(num), drv.addrs(), features, base).unwrap();
        Self {
            mem,
            regions,
            alloc,
            drv,
            dev,
            chain: Box::new(Chain::new()),
        }
    }

    pub fn table(&mut self) -> MemTable<'_> {
        MemTable::validate(&mut self.regions).unwrap()
    }

    /// Pops the next chain on the device side.
    pub fn pop(&mut self) -> Result<bool, RingError> {
        let mut regions = self.regions.clone();
        let table = MemTable::validate(&mut regions).unwrap();
        self.dev.get_vq_desc(&self.mem, &table, &mut self.chain)
    }

    pub fn buf(&mut self, len: u64) -> u64 {
        self.alloc.alloc(len, 512)
    }
}

fn mem_set_idx(mem: &TestMemory, drv: &DriverRing, idx: u16) {
    use vhost_blk_core::memory::UserMemory;
    mem.write_u16(drv.addrs().avail + 2, idx).unwrap();
    mem.write_u16(drv.addrs().used + 2, idx).unwrap();
}

// Not every test file draws random numbers.
#[allow(unused_imports)]
pub use vhost_blk_core::test_utils::Rng;
