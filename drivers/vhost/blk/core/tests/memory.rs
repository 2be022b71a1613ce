// SPDX-License-Identifier: GPL-2.0

//! Host tests of the memory table (`core/memory.rs`).

use vhost_blk_core::memory::{
    Fault, MemRegion, MemTable, MemTableError, ValidRegions, MAX_MEM_REGIONS,
};
use vhost_blk_core::test_utils::memory::TestMemory;

fn r(gpa: u64, size: u64, ua: u64) -> MemRegion {
    MemRegion {
        guest_phys_addr: gpa,
        size,
        userspace_addr: ua,
    }
}

#[test]
fn empty_region_is_refused() {
    let mut v = [r(0, 0, 0x1000)];
    assert_eq!(
        MemTable::validate(&mut v).unwrap_err(),
        MemTableError::EmptyRegion
    );
}

#[test]
fn wrapping_regions_are_refused() {
    let mut v = [r(u64::MAX - 10, 100, 0x1000)];
    assert_eq!(
        MemTable::validate(&mut v).unwrap_err(),
        MemTableError::RegionWraps
    );
    let mut v = [r(0, 100, u64::MAX - 10)];
    assert_eq!(
        MemTable::validate(&mut v).unwrap_err(),
        MemTableError::RegionWraps
    );
    // Ending exactly at the top of the address space is fine.
    let mut v = [r(u64::MAX - 99, 100, 0)];
    assert!(MemTable::validate(&mut v).is_ok());
}

#[test]
fn overlapping_regions_are_refused() {
    let mut v = [r(0x2000, 0x1000, 0), r(0x1000, 0x1001, 0x10000)];
    assert_eq!(
        MemTable::validate(&mut v).unwrap_err(),
        MemTableError::Overlap
    );
    let mut v = [r(0x1000, 0x1000, 0), r(0x1000, 0x10, 0x10000)];
    assert_eq!(
        MemTable::validate(&mut v).unwrap_err(),
        MemTableError::Overlap
    );
}

#[test]
fn too_many_regions_are_refused() {
    let mut v: Vec<MemRegion> = (0..=MAX_MEM_REGIONS as u64)
        .map(|i| r(i * 0x1000, 0x1000, i * 0x1000))
        .collect();
    assert_eq!(
        MemTable::validate(&mut v).unwrap_err(),
        MemTableError::TooManyRegions
    );
    v.pop();
    assert!(MemTable::validate(&mut v).is_ok());
}

#[test]
fn translation_follows_regions_and_refuses_gaps() {
    // Out of order on purpose: validate sorts.
    let mut v = [
        r(0x3000, 0x1000, 0x9_0000),
        r(0x1000, 0x1000, 0x5_0000),
        r(0x2000, 0x1000, 0x7_0000),
    ];
    let t = MemTable::validate(&mut v).unwrap();
    let mut pieces = Vec::new();
    t.for_each_piece(0x1ff0, 0x1020, |ua, n| {
        pieces.push((ua, n));
        Ok::<(), Fault>(())
    })
    .unwrap();
    assert_eq!(
        pieces,
        vec![(0x5_0ff0, 0x10), (0x7_0000, 0x1000), (0x9_0000, 0x10)]
    );
    assert!(t.covers(0x1000, 0x3000));
    assert!(!t.covers(0x1000, 0x3001));
    assert!(!t.covers(0xfff, 2));
    assert!(!t.covers(u64::MAX, 2));
    assert!(t.covers(0x5000, 0), "an empty range is always covered");
    // A gap in the middle.
    let mut v = [r(0x1000, 0x1000, 0), r(0x3000, 0x1000, 0x1000)];
    let t = MemTable::validate(&mut v).unwrap();
    assert!(!t.covers(0x1f00, 0x1200));
}

#[test]
fn copies_cross_region_boundaries() {
    let mem = TestMemory::new(0x10_0000, 0x4000);
    // Guest 0x0..0x1000 -> user 0x10_1000, guest 0x1000..0x2000 -> 0x10_0000.
    let mut v = [r(0, 0x1000, 0x10_1000), r(0x1000, 0x1000, 0x10_0000)];
    let t = MemTable::validate(&mut v).unwrap();
    let data: Vec<u8> = (0..64).collect();
    t.write(&mem, 0x1000 - 32, &data).unwrap();
    let mut back = vec![0u8; 64];
    t.read(&mem, 0x1000 - 32, &mut back).unwrap();
    assert_eq!(back, data);
    use vhost_blk_core::memory::UserMemory;
    let mut raw = [0u8; 32];
    mem.read(0x10_0000, &mut raw).unwrap();
    assert_eq!(&raw[..], &data[32..]);
    assert!(t.read(&mem, 0x1ff0, &mut [0u8; 32]).is_err());
}

#[test]
fn regions_validated_once_give_the_same_table() {
    let v = vec![r(0x3000, 0x1000, 0x9_0000), r(0x1000, 0x1000, 0x5_0000)];
    let valid = ValidRegions::new(v).unwrap();
    let t = valid.table();
    assert_eq!(t.regions()[0].guest_phys_addr, 0x1000, "sorted");
    assert!(t.covers(0x1000, 0x1000) && t.covers(0x3000, 0x1000));
    assert!(!t.covers(0x2000, 1));
    // What validate refuses, so does it.
    for bad in [
        vec![r(0x1000, 0, 0)],
        vec![r(0x1000, 0x2000, 0), r(0x2000, 0x1000, 0x10000)],
        vec![r(u64::MAX, 2, 0)],
    ] {
        let want = MemTable::validate(&mut bad.clone()).unwrap_err();
        assert_eq!(ValidRegions::new(bad).unwrap_err(), want);
    }
}
