// SPDX-License-Identifier: GPL-2.0

//! Host tests of the shared workers' scheduling policy (`core/sched.rs`).

use vhost_blk_core::sched::*;

#[test]
fn first_queue_starts_a_worker() {
    assert_eq!(place_queue(&[], 4, 8), Placement::New);
    // Even with nonsense limits there is always somewhere to go.
    assert_eq!(place_queue(&[], 0, 0), Placement::New);
}

#[test]
fn queues_fill_a_worker_before_the_next_starts() {
    assert_eq!(place_queue(&[1], 4, 8), Placement::Existing(0));
    assert_eq!(place_queue(&[3], 4, 8), Placement::Existing(0));
    assert_eq!(place_queue(&[4], 4, 8), Placement::New);
    assert_eq!(place_queue(&[4, 2], 4, 8), Placement::Existing(1));
}

#[test]
fn one_queue_per_worker() {
    let mut loads = Vec::new();
    for _ in 0..6 {
        match place_queue(&loads, 1, 16) {
            Placement::New => loads.push(1),
            Placement::Existing(i) => panic!("queue shared worker {i}"),
        }
    }
    assert_eq!(loads.len(), 6);
}

#[test]
fn the_cap_shares_the_least_loaded_worker() {
    let mut loads: Vec<u32> = Vec::new();
    for _ in 0..5 {
        match place_queue(&loads, 1, 2) {
            Placement::New => loads.push(1),
            Placement::Existing(i) => loads[i] += 1,
        }
    }
    assert_eq!(loads, vec![3, 2]);
    // Ties go to the lowest index.
    assert_eq!(place_queue(&[2, 2, 2], 1, 3), Placement::Existing(0));
}

#[test]
fn a_departed_queue_frees_room_on_its_worker() {
    // Worker 1 lost a queue: it is filled again before a new one starts.
    assert_eq!(place_queue(&[4, 3, 4], 4, 8), Placement::Existing(1));
}

#[test]
fn quota_counts_requests_and_bytes() {
    let q = Quota {
        requests: 3,
        bytes: 1 << 20,
    };
    let mut t = Turn::new();
    assert!(!t.exhausted(&q));
    for _ in 0..3 {
        t.charge(4096, 3);
    }
    assert!(t.exhausted(&q));
    assert_eq!(t.requests(), 3);

    let mut t = Turn::new();
    t.charge(512 << 10, 3);
    assert!(!t.exhausted(&q));
    t.charge(512 << 10, 3);
    assert!(t.exhausted(&q), "1 MiB of data uses up the byte quota");
}

#[test]
fn a_waiting_neighbour_shortens_the_turn() {
    let q = Quota {
        requests: 64,
        bytes: 512 << 10,
    };
    assert_eq!(
        q.contended(),
        Quota {
            requests: 64 / CONTENDED_SHARE,
            bytes: (512 << 10) / u64::from(CONTENDED_SHARE),
        }
    );
    let mut t = Turn::new();
    let mut asked = 0;
    for _ in 0..64 / CONTENDED_SHARE {
        assert!(!t.must_yield(&q, || {
            asked += 1;
            true
        }));
        t.charge(4096, 3);
    }
    assert_eq!(asked, 0, "nobody is asked about before the share is used");
    // Share used: yield only if someone waits.
    assert!(t.must_yield(&q, || true));
    assert!(!t.must_yield(&q, || false));
    // Alone, the queue keeps the whole quota.
    while !t.must_yield(&q, || false) {
        t.charge(4096, 3);
    }
    assert_eq!(t.requests(), 64);
    // Bytes count too: a 64 KiB request uses the contended byte share.
    let mut t = Turn::new();
    t.charge(64 << 10, 3);
    assert!(t.must_yield(&q, || true));
    assert!(!t.must_yield(&q, || false));
}

#[test]
fn contended_quota_never_reaches_zero() {
    for requests in [0, 1, 7] {
        let q = Quota { requests, bytes: 3 };
        let c = q.contended();
        assert_eq!((c.requests, c.bytes), (1, 1));
        let mut t = Turn::new();
        assert!(!t.must_yield(&q, || true), "a turn takes at least one");
        t.charge(1, 3);
        assert!(t.must_yield(&q, || true));
    }
}

#[test]
fn zero_quota_still_takes_one_request() {
    let q = Quota {
        requests: 0,
        bytes: 0,
    };
    let mut t = Turn::new();
    assert!(!t.exhausted(&q));
    t.charge(0, 3);
    assert!(t.exhausted(&q));
}

#[test]
fn turn_counters_saturate() {
    let q = Quota {
        requests: u32::MAX,
        bytes: u64::MAX,
    };
    let mut t = Turn::new();
    t.charge(u64::MAX, 3);
    t.charge(u64::MAX, 3);
    assert!(t.exhausted(&q));
}

#[test]
fn polling_stops_after_the_budget() {
    assert_eq!(
        idle_action(1_000, 0, 0),
        Idle::Sleep,
        "budget 0 never polls"
    );
    assert_eq!(idle_action(1_000, 900, 200), Idle::Poll);
    assert_eq!(idle_action(1_100, 900, 200), Idle::Sleep);
    assert_eq!(idle_action(5_000, 900, 200), Idle::Sleep);
    // A clock that went backwards keeps polling, never underflows.
    assert_eq!(idle_action(100, 900, 200), Idle::Poll);
}

#[test]
fn a_batch_is_full_after_publish_batch_requests_from_its_start() {
    // The module's default `publish_batch`.
    let b = 8;
    let mut t = Turn::new();
    for _ in 0..b - 1 {
        t.charge(4096, 3);
    }
    assert!(!t.batch_full(0, b));
    t.charge(4096, 3);
    assert!(t.batch_full(0, b));
    // The next batch counts from where it started.
    assert!(!t.batch_full(b, b));
    for _ in 0..b {
        t.charge(0, 3);
    }
    assert!(t.batch_full(b, b));
    // A start past the count is not full (and does not underflow).
    assert!(!t.batch_full(u32::MAX, b));
}

#[test]
fn a_batch_of_one_is_full_after_each_request() {
    let mut t = Turn::new();
    assert!(!t.batch_full(0, 1));
    t.charge(512, 3);
    assert!(t.batch_full(0, 1));
    assert!(!t.batch_full(1, 1));
}

#[test]
fn a_zero_batch_is_never_full_so_the_turn_publishes_once() {
    let mut t = Turn::new();
    for _ in 0..100_000 {
        t.charge(4096, 3);
    }
    assert!(!t.batch_full(0, 0));
    assert!(!t.batch_full(99_999, 0));
}

#[test]
fn a_turn_publishes_mid_turn_only_while_a_cpu_has_no_worker() {
    // One worker awake on 2 CPUs: the driver has a CPU of its own.
    assert!(publish_mid_turn(1, 0, 2));
    assert!(publish_mid_turn(3, 0, 64));
    // As many workers awake as CPUs, or more: a woken driver would
    // preempt one, so the turn publishes when it ends.
    assert!(!publish_mid_turn(2, 0, 2));
    assert!(!publish_mid_turn(3, 0, 2));
    assert!(!publish_mid_turn(1, 0, 1));
    // Workers pinned to fewer CPUs than there are leave the others to the
    // drivers, however many are awake.
    assert!(publish_mid_turn(2, 1, 2));
    assert!(publish_mid_turn(40, 8, 64));
    // Pinned to every CPU: as if not pinned.
    assert!(!publish_mid_turn(2, 2, 2));
    assert!(publish_mid_turn(1, 2, 2));
    // No CPU count (cannot happen): never mid-turn.
    assert!(!publish_mid_turn(0, 0, 0));
}

#[test]
fn a_capped_turn_stops_at_its_cap_whatever_the_quota() {
    let mut t = Turn::capped(3);
    for _ in 0..2 {
        t.charge(512, 3);
    }
    assert!(!t.at_cap());
    t.charge(512, 3);
    assert!(t.at_cap());
    // Unrelated to the quota, which is far from used up.
    let q = Quota {
        requests: 1000,
        bytes: 1 << 30,
    };
    assert!(!t.must_yield(&q, || false));
    // An uncapped turn never reaches its cap in practice.
    let mut u = Turn::new();
    u.charge(0, 3);
    assert!(!u.at_cap());
}

#[test]
fn descriptors_walked_count_toward_the_quota() {
    let q = Quota {
        requests: 64,
        bytes: u64::MAX,
    };
    assert_eq!(q.descriptors(), 64 * DESCRIPTORS_PER_REQUEST);
    // Four chains of 256 descriptors use up a quota of 64 requests.
    let mut t = Turn::new();
    for _ in 0..3 {
        t.charge(0, 256);
        assert!(!t.exhausted(&q));
    }
    t.charge(0, 256);
    assert!(t.exhausted(&q));
    // Three-buffer requests hit the request count first.
    let mut t = Turn::new();
    for _ in 0..63 {
        t.charge(4096, 3);
    }
    assert!(!t.exhausted(&q));
    t.charge(4096, 3);
    assert!(t.exhausted(&q));
    // The contended share scales the descriptors too.
    let c = q.contended();
    let mut t = Turn::new();
    t.charge(0, 128);
    assert!(t.exhausted(&c));
}
