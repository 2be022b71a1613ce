// SPDX-License-Identifier: GPL-2.0

//! Scheduling policy of the shared workers (the ELVIS design): which
//! worker a new queue goes to, how much one queue may take in one turn,
//! and when a worker stops polling and sleeps.
//!
//! The mechanism (kthreads, wake-ups, clocks) lives in the module; the
//! decisions live here, as plain functions the host tests cover.

/// Where a newly placed queue is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On the existing worker with this index.
    Existing(usize),
    /// On a new worker.
    New,
}

/// Chooses a worker for a new queue, given how many queues each existing
/// worker serves.
///
/// A new worker is started while every worker already serves
/// `queues_per_worker` queues (at least 1) and fewer than `max_workers`
/// (at least 1) exist; otherwise the least loaded worker is shared, the
/// lowest index winning ties.
pub fn place_queue(loads: &[u32], queues_per_worker: u32, max_workers: u32) -> Placement {
    let per = queues_per_worker.max(1);
    let least = loads
        .iter()
        .enumerate()
        .min_by_key(|(i, n)| (**n, *i))
        .map(|(i, n)| (i, *n));
    match least {
        Some((i, n)) if n < per => Placement::Existing(i),
        Some((i, _)) if loads.len() >= max_workers.max(1) as usize => Placement::Existing(i),
        _ => Placement::New,
    }
}

/// What one queue may take in one scheduling turn before the worker moves
/// to the next queue (`vhost_exceeds_weight`): so many requests, so many
/// bytes or so many descriptors walked, whichever comes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Requests per turn; 0 is treated as 1.
    pub requests: u32,
    /// Data bytes per turn; 0 is treated as 1.
    pub bytes: u64,
}

/// Descriptors a turn may walk per request of its quota: a request of
/// the usual three buffers costs little, one of 256 buffers (or empty
/// descriptors) sixteen requests' worth. Walking descriptors is what a
/// guest can make expensive without moving any data.
pub const DESCRIPTORS_PER_REQUEST: u64 = 16;

/// The share of the quota a turn keeps once another queue waits: a turn
/// that learns of a waiting neighbour stops after `1 / CONTENDED_SHARE` of
/// its quota, so a single request never queues behind a whole flood turn,
/// while a queue alone keeps the full batch.
pub const CONTENDED_SHARE: u32 = 8;

impl Quota {
    /// Descriptors a turn may walk: [`DESCRIPTORS_PER_REQUEST`] per
    /// request of the quota.
    pub fn descriptors(&self) -> u64 {
        u64::from(self.requests.max(1)) * DESCRIPTORS_PER_REQUEST
    }

    /// What a turn may take while another queue waits for the worker:
    /// [`CONTENDED_SHARE`] times less, at least one request and one byte.
    pub fn contended(&self) -> Quota {
        Quota {
            requests: (self.requests / CONTENDED_SHARE).max(1),
            bytes: (self.bytes / u64::from(CONTENDED_SHARE)).max(1),
        }
    }
}

/// Whether a turn whose batch is full publishes its completions now or
/// goes on and publishes when it ends, given the module's workers that
/// are awake (serving or polling; `awake_workers`, the asking one
/// included), the CPUs the workers are pinned to (`worker_cpus`, 0 if
/// they are not pinned) and the online CPUs (`cpus`).
///
/// Publishing mid-turn wakes the driver while the worker goes on: it
/// pays only if the driver can run on a CPU that no worker needs. Once
/// the awake workers occupy every CPU, a woken driver thread preempts a
/// worker, and each extra interrupt costs the worker a context switch
/// and its place. Pinned workers occupy at most their CPUs, however many
/// are awake.
pub fn publish_mid_turn(awake_workers: u32, worker_cpus: u32, cpus: u32) -> bool {
    let occupied = if worker_cpus == 0 {
        awake_workers
    } else {
        awake_workers.min(worker_cpus)
    };
    occupied < cpus
}

/// What a queue has taken so far in its turn.
#[derive(Clone, Copy, Debug)]
pub struct Turn {
    requests: u32,
    bytes: u64,
    descriptors: u64,
    /// Requests the turn may take at most, whatever the quota.
    cap: u32,
}

impl Default for Turn {
    fn default() -> Self {
        Self::new()
    }
}

impl Turn {
    /// A fresh turn.
    pub const fn new() -> Self {
        Self::capped(u32::MAX)
    }

    /// A fresh turn that takes at most `cap` requests: the queue's free
    /// request slots when the turn starts. Completions published between
    /// the turn's batches free slots again, and a driver refilling the ring
    /// as fast as the worker serves it would otherwise keep one turn going
    /// until the quota ends it; without a quota, a neighbour would wait
    /// for many times the queue's depth.
    pub const fn capped(cap: u32) -> Self {
        Self {
            requests: 0,
            bytes: 0,
            descriptors: 0,
            cap,
        }
    }

    /// Whether the turn has taken its cap of requests.
    pub fn at_cap(&self) -> bool {
        self.requests >= self.cap
    }

    /// Whether the queue has used up `quota`: it must yield before taking
    /// another request.
    pub fn exhausted(&self, quota: &Quota) -> bool {
        self.requests >= quota.requests.max(1)
            || self.bytes >= quota.bytes.max(1)
            || self.descriptors >= quota.descriptors()
    }

    /// Whether the queue must yield before taking another request: its
    /// quota is used up, or its contended share is and `waiting` says
    /// another queue waits (asked only then, as it may cost an atomic
    /// read).
    pub fn must_yield(&self, quota: &Quota, waiting: impl FnOnce() -> bool) -> bool {
        self.exhausted(quota) || (self.exhausted(&quota.contended()) && waiting())
    }

    /// Whether the batch that started when the turn had taken
    /// `batch_start` requests is full, with batches of `batch` requests
    /// (the `publish_batch` module parameter); a `batch` of 0 is never
    /// full: the turn publishes only when it ends.
    pub fn batch_full(&self, batch_start: u32, batch: u32) -> bool {
        batch != 0 && self.requests.saturating_sub(batch_start) >= batch
    }

    /// Records a request of `bytes` data bytes whose chain had
    /// `descriptors` descriptors.
    pub fn charge(&mut self, bytes: u64, descriptors: u32) {
        self.requests = self.requests.saturating_add(1);
        self.bytes = self.bytes.saturating_add(bytes);
        self.descriptors = self.descriptors.saturating_add(u64::from(descriptors));
    }

    /// Requests taken in this turn.
    pub fn requests(&self) -> u32 {
        self.requests
    }
}

/// What an idle worker does after a pass that found no work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idle {
    /// Keep polling, with guest notifications left suppressed.
    Poll,
    /// Re-enable notifications, re-check the rings, then sleep.
    Sleep,
}

/// Decides, after a pass without work at time `now_ns`, whether to keep
/// polling: only while less than `budget_ns` has passed since the worker
/// last found work (`last_work_ns`). A budget of 0 never polls.
pub fn idle_action(now_ns: u64, last_work_ns: u64, budget_ns: u64) -> Idle {
    if budget_ns != 0 && now_ns.saturating_sub(last_work_ns) < budget_ns {
        Idle::Poll
    } else {
        Idle::Sleep
    }
}
