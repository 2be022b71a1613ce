// SPDX-License-Identifier: GPL-2.0

//! Host tests of the request slots and bio tokens (`core/slots.rs`).

use std::collections::HashSet;
use vhost_blk_core::slots::*;

fn table(num: usize) -> SlotTable<Vec<Slot>, Vec<u16>> {
    SlotTable::new(vec![Slot::default(); num], vec![0; num]).expect("table")
}

fn slot(head: u16) -> Slot {
    Slot {
        head,
        ..Slot::default()
    }
}

#[test]
fn storage_must_match_and_fit_sixteen_bits() {
    assert!(SlotTable::new(vec![Slot::default(); 4], vec![0u16; 3]).is_none());
    assert!(SlotTable::new(vec![Slot::default(); 65537], vec![0u16; 65537]).is_none());
    let t = SlotTable::new(vec![Slot::default(); 65536], vec![0u16; 65536]).expect("65536");
    assert_eq!(t.free_count(), 65536);
    let t = table(0);
    assert!(t.is_empty());
    assert_eq!(t.next(), None);
}

#[test]
fn every_slot_is_taken_once_until_all_are_in_flight() {
    let mut t = table(8);
    assert_eq!(t.next(), Some(0), "slot 0 first");
    let mut seen = HashSet::new();
    for i in 0..8u16 {
        let next = t.next().expect("a free slot");
        let got = t.take(slot(100 + i)).expect("taken");
        assert_eq!(got, next, "take returns what next announced");
        assert!(seen.insert(got), "slot {got} taken twice");
        assert_eq!(t.get(got).map(|s| s.head), Some(100 + i));
        assert_eq!(t.inflight(), usize::from(i) + 1);
    }
    assert_eq!(t.free_count(), 0);
    assert_eq!(t.next(), None);
    assert_eq!(t.take(slot(0)), None, "no slot beyond the ring's size");
}

#[test]
fn a_released_slot_is_taken_again_with_fresh_state() {
    let mut t = table(4);
    let a = t.take(slot(7)).expect("a");
    let s = t.get_mut(a).expect("slot");
    s.pending = 3;
    s.status = 1;
    s.dirty = true;
    t.release(a).expect("release");
    assert_eq!(t.inflight(), 0);
    assert_eq!(t.next(), Some(a), "last freed, first taken");
    let b = t.take(slot(9)).expect("b");
    assert_eq!(b, a);
    assert_eq!(t.get(b), Some(&slot(9)), "nothing of the old request left");
}

#[test]
fn giving_back_more_than_was_taken_is_refused() {
    let mut t = table(2);
    let a = t.take(slot(1)).expect("a");
    t.release(a).expect("release");
    assert_eq!(t.release(a), Err(SlotError::AllFree));
    assert_eq!(t.release(2), Err(SlotError::OutOfRange));
    assert_eq!(t.free_count(), 2, "the refusals changed nothing");
    assert_eq!(t.get(2), None);
}

#[test]
fn tokens_carry_slot_and_zero_flag_back() {
    for slot in [0u16, 1, 255, 256, 32767, 65535] {
        for zero in [false, true] {
            let t = Token { slot, zero };
            assert_eq!(Token::decode(t.encode()), t);
        }
    }
    let a = Token {
        slot: 5,
        zero: false,
    };
    let b = Token {
        slot: 5,
        zero: true,
    };
    assert_ne!(a.encode(), b.encode());
}
