// SPDX-License-Identifier: GPL-2.0

//! The shared worker pool (the ELVIS design).
//!
//! A few kernel threads serve every virtqueue of every device: a queue is
//! placed on a worker when it gets its first kick eventfd or starts,
//! whichever comes first, and leaves it when its device is reset or
//! closed. A worker makes passes over its queues; in each pass a kicked
//! (or polled) queue takes up to the quota of requests, so no queue can
//! starve the others. After a pass without work, the worker keeps polling
//! for `poll_budget_us` with guest notifications off, then turns them back
//! on, re-checks every ring and sleeps. Placement, quotas and the polling
//! decision are the pure policy of `core/sched.rs`; the module parameters
//! (`ffi/params.rs`) tune them.
//!
//! The pool knows what it serves only through [`Served`], which queues
//! (`queue.rs`) implement: imports run from the device down to the
//! workers, never back.
//!
//! Locking: a device's lock may be held while taking the pool's lock
//! (attach, detach), and the pool's lock while taking a worker's queue
//! list lock. A worker never holds its list lock while serving a queue,
//! and the statistics reader releases both before locking queues.

use crate::ffi::bdev::BdevFile;
use crate::ffi::module::ModuleRef;
use crate::ffi::params;
use crate::ffi::seq::SeqFile;
use crate::ffi::wake::WakeTarget;
use crate::ffi::worker::{
    self as kthread, now_ns, online_cpus, reap_soon, Kthread, KthreadBody, MmSlot,
};
use crate::vcore::ring::Chain;
use crate::vcore::sched::{self, Idle, Placement, Quota};
use crate::worker_cpus;
use core::fmt::Write;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

/// The version of the statistics format (`admin-guide.rst`).
const STATS_VERSION: u32 = 3;

/// What a worker's turn found on what it serves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TurnResult {
    /// Nothing to do.
    Idle,
    /// It did work.
    Worked,
    /// Its device is gone and its last bio is over: the worker must let it
    /// go ([`Served::finish_orphan`]).
    Orphaned,
}

/// What a worker serves: a virtqueue.
pub(crate) trait Served: Send + Sync + 'static {
    /// One turn under `policy`, with `chain` as scratch space and `mm` the
    /// worker's slot for the owner's address space. `since` is when the
    /// worker's previous busy turn ended (or its pass began); a busy turn
    /// moves it to its own end.
    fn run_once(
        &self,
        policy: &Policy,
        chain: &mut Chain,
        mm: &mut MmSlot,
        since: &mut u64,
    ) -> TurnResult;

    /// Ends polling, if polled: notifications back on, ring re-checked.
    /// Returns whether work arrived meanwhile.
    fn end_polling(&self, mm: &mut MmSlot) -> bool;

    /// After [`TurnResult::Orphaned`]: lets go of the orphan, and returns
    /// the module reference it held (dropped last), if it was one.
    fn finish_orphan(&self) -> Option<ModuleRef>;
}

/// What a worker applies in one pass, read from the parameters at its
/// start.
pub(crate) struct Policy {
    /// Per-queue quota of a turn.
    pub(crate) quota: Quota,
    /// Whether idle queues are left polled, with notifications off.
    pub(crate) poll: bool,
    /// Requests between two publications within a turn; 0: once per turn.
    pub(crate) publish_batch: u32,
    /// Online CPUs the workers are pinned to (`worker_cpus`); 0: not
    /// pinned.
    worker_cpus: u32,
    /// CPUs online at the start of the pass.
    cpus: u32,
    budget_ns: u64,
}

impl Policy {
    fn current() -> Self {
        let budget_ns = params::poll_budget_ns();
        Self {
            quota: params::quota(),
            poll: budget_ns != 0,
            publish_batch: params::publish_batch(),
            worker_cpus: worker_cpus::count(),
            cpus: online_cpus(),
            budget_ns,
        }
    }

    /// Whether a turn with a full batch publishes it now: only while a
    /// CPU has no awake worker (see [`sched::publish_mid_turn`]).
    pub(crate) fn publish_mid_turn(&self) -> bool {
        sched::publish_mid_turn(awake_workers(), self.worker_cpus, self.cpus)
    }
}

/// The module's workers that are awake: serving queues or polling them,
/// not asleep (see [`sched::publish_mid_turn`]).
static AWAKE_WORKERS: AtomicU32 = AtomicU32::new(0);

/// How many of the module's workers are awake now.
pub(crate) fn awake_workers() -> u32 {
    AWAKE_WORKERS.load(Ordering::Relaxed)
}

/// Counts the calling worker as awake for its lifetime, except while it
/// sleeps ([`Self::sleep`]).
///
/// # Invariants
///
/// While this exists and is not inside [`Self::sleep`], it holds one
/// count of [`AWAKE_WORKERS`].
struct Awake;

impl Awake {
    fn new() -> Self {
        AWAKE_WORKERS.fetch_add(1, Ordering::Relaxed);
        // INVARIANT: the count was just taken.
        Self
    }

    /// Runs `sleep` without this worker's count.
    fn sleep(&mut self, sleep: impl FnOnce()) {
        AWAKE_WORKERS.fetch_sub(1, Ordering::Relaxed);
        sleep();
        // INVARIANT: the count is taken back before returning.
        AWAKE_WORKERS.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Awake {
    fn drop(&mut self) {
        AWAKE_WORKERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counters of a worker.
#[derive(Default)]
struct WorkerStats {
    /// Passes over the devices.
    passes: AtomicU64,
    /// Time in passes that found work.
    busy_ns: AtomicU64,
    /// Time in passes that found none while polling.
    poll_ns: AtomicU64,
    /// Time asleep.
    idle_ns: AtomicU64,
    /// Passes that found no work while polling.
    polls: AtomicU64,
    /// Times the worker went to sleep.
    sleeps: AtomicU64,
}

fn add(c: &AtomicU64, v: u64) {
    c.fetch_add(v, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// A shared worker: its wake-up target and the queues it serves.
#[pin_data]
pub(crate) struct Worker<Q: Served> {
    id: u32,
    wake: WakeTarget,
    /// Queues served; a queue that left leaves a `None` slot for reuse.
    #[pin]
    queues: Mutex<KVec<Option<Arc<Q>>>>,
    /// Scratch space for the chain being parsed, for whichever queue takes
    /// its turn: only the worker's thread takes this lock, for its whole
    /// life.
    #[pin]
    chain: Mutex<KBox<Chain>>,
    stats: WorkerStats,
    _live: Live,
}

/// Workers created and not yet freed, for [`LeakCheck`].
static LIVE_WORKERS: AtomicU32 = AtomicU32::new(0);

/// Counts its worker in [`LIVE_WORKERS`] while it lives.
struct Live(());

impl Live {
    fn new() -> Self {
        LIVE_WORKERS.fetch_add(1, Ordering::Relaxed);
        Self(())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        LIVE_WORKERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Reports, when dropped, workers that were never freed: the module's
/// field that goes after everything that holds workers (the pool and its
/// registrations), when every worker must be gone. A worker's last
/// reference may be its kthread's, given back by whoever stops a thread
/// that never ran ([`Kthread`]); one that nobody gave back shows here.
pub(crate) struct LeakCheck;

impl Drop for LeakCheck {
    fn drop(&mut self) {
        let n = LIVE_WORKERS.load(Ordering::Relaxed);
        if n != 0 {
            pr_err!("BUG: {n} workers were never freed\n");
        }
    }
}

impl<Q: Served> Worker<Q> {
    fn new(id: u32) -> Result<Arc<Self>> {
        let wake = WakeTarget::new()?;
        let chain = KBox::new(Chain::new(), GFP_KERNEL)?;
        Arc::pin_init(
            pin_init!(Self {
                id,
                wake,
                queues <- kernel::new_mutex!(KVec::new()),
                chain <- kernel::new_mutex!(chain),
                stats: WorkerStats::default(),
                _live: Live::new(),
            }),
            GFP_KERNEL,
        )
    }

    /// The worker's id, as in its thread name `vhost-blk-<id>`.
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// Where the devices of this worker send their wake-ups.
    pub(crate) fn wake_target(&self) -> &WakeTarget {
        &self.wake
    }

    /// The queue in slot `i`, or `None` past the end. Empty slots give
    /// `Some(None)`.
    fn queue_at(&self, i: usize) -> Option<Option<Arc<Q>>> {
        self.queues.lock().get(i).cloned()
    }

    /// Calls `f` on every queue, without holding the list lock while `f`
    /// runs; returns whether any call returned `true`.
    fn for_each_queue(&self, mut f: impl FnMut(&Arc<Q>) -> bool) -> bool {
        let mut any = false;
        let mut i = 0;
        while let Some(slot) = self.queue_at(i) {
            i += 1;
            if let Some(q) = slot {
                any |= f(&q);
            }
        }
        any
    }

    /// How many queues it serves.
    fn queue_count(&self) -> u32 {
        self.queues.lock().iter().flatten().count() as u32
    }

    /// Removes `q` from its queues; returns whether it was there.
    fn remove_queue(&self, q: &Q) -> bool {
        let mut found = false;
        for slot in self.queues.lock().iter_mut() {
            if slot.as_ref().is_some_and(|s| core::ptr::eq(&**s, q)) {
                *slot = None;
                found = true;
            }
        }
        found
    }

    /// One turn on `q`; lets an orphaned queue go once it has drained.
    /// Returns whether it found work.
    fn serve(
        &self,
        q: &Arc<Q>,
        policy: &Policy,
        chain: &mut Chain,
        mm: &mut MmSlot,
        since: &mut u64,
    ) -> bool {
        match q.run_once(policy, chain, mm, since) {
            TurnResult::Idle => false,
            TurnResult::Worked => true,
            TurnResult::Orphaned => {
                if let Some(module) = q.finish_orphan() {
                    if self.remove_queue(q) && self.queue_count() == 0 {
                        // The pool stops a worker that serves nothing, but
                        // not from the worker itself.
                        reap_soon();
                    }
                    // Last: once the module may unload, the reaping is
                    // already asked for (module exit waits for it).
                    drop(module);
                }
                true
            }
        }
    }

    /// The worker's loop, with `mm` its slot for the owners' address
    /// spaces; returns when the worker is stopped, which happens only once
    /// it serves no device.
    fn work(&self, mm: &mut MmSlot) {
        let mut chain = self.chain.lock();
        let mut last_work = now_ns();
        // A pass starts when the previous one ended, unless the worker
        // yielded the CPU in between: one clock read per pass, and one
        // per busy turn ([`Served::run_once`]).
        let mut start = last_work;
        let mut awake = Awake::new();
        while !kthread::should_stop() {
            self.wake.take();
            let policy = Policy::current();
            let mut since = start;
            let found = self.for_each_queue(|q| self.serve(q, &policy, &mut chain, mm, &mut since));
            let end = now_ns();
            let began = core::mem::replace(&mut start, end);
            add(&self.stats.passes, 1);
            if found {
                add(&self.stats.busy_ns, end.saturating_sub(began));
                last_work = end;
            } else if sched::idle_action(end, last_work, policy.budget_ns) == Idle::Poll {
                add(&self.stats.poll_ns, end.saturating_sub(began));
                add(&self.stats.polls, 1);
            } else {
                // Notifications back on; a ring that filled meanwhile is
                // served before sleeping, so no request waits for a kick.
                if self.for_each_queue(|q| q.end_polling(mm)) {
                    continue;
                }
                // An idle worker holds no process's address space.
                mm.release();
                add(&self.stats.sleeps, 1);
                awake.sleep(|| kthread::sleep_unless(|| self.wake.pending()));
                last_work = now_ns();
                add(&self.stats.idle_ns, last_work.saturating_sub(end));
                start = last_work;
                continue;
            }
            if kthread::cond_resched() {
                start = now_ns();
            }
        }
    }
}

impl<Q: Served> KthreadBody for Worker<Q> {
    fn run(self: Arc<Self>, mm: &mut MmSlot) {
        self.work(mm);
    }
}

/// A running worker of the pool.
struct Entry<Q: Served> {
    worker: Arc<Worker<Q>>,
    thread: Kthread,
    /// The CPU `worker_cpus` pinned it to: pinned there again whenever
    /// that CPU comes back online.
    cpu: Option<u32>,
    /// The NUMA node it was moved to, once known.
    node: Option<i32>,
}

struct PoolInner<Q: Served> {
    /// Running workers; a stopped worker leaves a `None` slot.
    workers: KVec<Option<Entry<Q>>>,
    next_id: u32,
}

/// The module's workers.
#[pin_data]
pub(crate) struct Pool<Q: Served> {
    #[pin]
    inner: Mutex<PoolInner<Q>>,
}

impl<Q: Served> Pool<Q> {
    /// An empty pool: workers start with the first device.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                inner <- kernel::new_mutex!(PoolInner {
                    workers: KVec::new(),
                    next_id: 0,
                }),
            }),
            GFP_KERNEL,
        )
    }

    /// Places queue `q` on a worker, starting one if the policy says so,
    /// and returns it. The queue must point its wake-ups at the worker's
    /// [`Worker::wake_target`] before anything can kick it.
    pub(crate) fn attach(&self, q: &Arc<Q>) -> Result<Arc<Worker<Q>>> {
        let mut inner = self.inner.lock();
        let mut live = KVec::with_capacity(inner.workers.len(), GFP_KERNEL)?;
        let mut loads = KVec::with_capacity(inner.workers.len(), GFP_KERNEL)?;
        for (i, e) in inner.workers.iter().enumerate() {
            if let Some(e) = e {
                live.push(i, GFP_KERNEL)?;
                loads.push(e.worker.queue_count(), GFP_KERNEL)?;
            }
        }
        let max = params::max_workers();
        let slot = match sched::place_queue(&loads, params::queues_per_worker(), max) {
            Placement::Existing(i) => live[i],
            Placement::New => self.start_worker(&mut inner, live.len() as u32)?,
        };
        let Some(entry) = inner.workers.get_mut(slot).and_then(|e| e.as_mut()) else {
            return Err(EINVAL);
        };
        let result = {
            let mut queues = entry.worker.queues.lock();
            match queues.iter().position(|d| d.is_none()) {
                Some(free) => {
                    queues[free] = Some(q.clone());
                    Ok(())
                }
                None => queues.push(Some(q.clone()), GFP_KERNEL),
            }
        };
        if let Err(e) = result {
            // A worker just started for this queue serves nothing: it stops
            // when dropped, after the lock is released.
            let idle = entry.worker.queue_count() == 0;
            let stopped = if idle {
                inner.workers[slot].take()
            } else {
                None
            };
            drop(inner);
            drop(stopped);
            return Err(e.into());
        }
        Ok(entry.worker.clone())
    }

    /// Starts a worker in a free slot; `nth` says which CPU of
    /// `worker_cpus` it gets. Returns the slot.
    fn start_worker(&self, inner: &mut PoolInner<Q>, nth: u32) -> Result<usize> {
        let id = inner.next_id;
        let cpu = worker_cpus::cpu_for(nth);
        let worker = Worker::new(id)?;
        let thread = Kthread::spawn(worker.clone(), id, cpu)?;
        worker.wake.set_task(&thread);
        let entry = Entry {
            worker,
            thread,
            cpu,
            node: None,
        };
        inner.next_id = inner.next_id.wrapping_add(1);
        match inner.workers.iter().position(|e| e.is_none()) {
            Some(free) => {
                inner.workers[free] = Some(entry);
                Ok(free)
            }
            None => {
                // On failure the entry is dropped, which stops the thread.
                inner.workers.push(Some(entry), GFP_KERNEL)?;
                Ok(inner.workers.len() - 1)
            }
        }
    }

    /// Removes queue `q` from `worker`. Returns the worker's thread if it
    /// now serves no queue: the caller stops it by dropping it, with no
    /// device or queue lock held (a worker may be waiting for one).
    ///
    /// The queue must no longer point its wake-ups at the worker.
    pub(crate) fn detach(&self, q: &Q, worker: &Arc<Worker<Q>>) -> Option<Kthread> {
        let mut inner = self.inner.lock();
        worker.remove_queue(q);
        if worker.queue_count() != 0 {
            return None;
        }
        let slot = inner
            .workers
            .iter()
            .position(|e| e.as_ref().is_some_and(|e| Arc::ptr_eq(&e.worker, worker)))?;
        inner.workers[slot].take().map(|e| e.thread)
    }

    /// Stops the workers that serve no queue: those whose last queue, left
    /// behind by a closed device, they let go themselves (a worker cannot
    /// stop itself). Runs from a work item ([`reap_soon`]).
    pub(crate) fn reap_idle(&self) {
        let mut stopped = KVec::new();
        {
            let mut inner = self.inner.lock();
            for e in inner.workers.iter_mut() {
                if e.as_ref().is_some_and(|e| e.worker.queue_count() == 0) {
                    if stopped.reserve(1, GFP_KERNEL).is_err() {
                        // Left for the next reaping.
                        break;
                    }
                    if let Some(entry) = e.take() {
                        // Reserved above: cannot fail.
                        let _ = stopped.push(entry.thread, GFP_KERNEL);
                    }
                }
            }
        }
        // Stopped with no lock held: a worker may be waiting for one.
        drop(stopped);
    }

    /// Moves `worker` to the NUMA node of `bdev`, the first time a backend
    /// is attached to one of its queues' devices, unless it is pinned or
    /// `worker_cpus` pins workers.
    pub(crate) fn follow_bdev(&self, worker: &Arc<Worker<Q>>, bdev: &BdevFile) {
        if worker_cpus::pins() {
            return;
        }
        let mut inner = self.inner.lock();
        for e in inner.workers.iter_mut().flatten() {
            if Arc::ptr_eq(&e.worker, worker) && e.cpu.is_none() && e.node.is_none() {
                e.node = e.thread.follow_bdev(bdev);
            }
        }
    }

    /// Pins the workers of `cpu` to it again, now that it is back online
    /// (the scheduler unpinned them when it went offline). Called by the
    /// CPU-hotplug callback.
    pub(crate) fn cpu_online(&self, cpu: u32) {
        let inner = self.inner.lock();
        for e in inner.workers.iter().flatten() {
            if e.cpu == Some(cpu) && e.thread.pin(cpu).is_err() {
                pr_notice!(
                    "worker_cpus: vhost-blk-{} could not be pinned to CPU {cpu} again\n",
                    e.worker.id
                );
            }
        }
    }

    /// Prints the head of the statistics file: its version line and one
    /// `worker` line per worker. Returns what each worker serves, with the
    /// worker's id, for the lines that follow (`queue.rs`).
    pub(crate) fn show_workers(&self, out: &mut SeqFile) -> Result<KVec<(Arc<Q>, u32)>> {
        let mut queues = KVec::new();
        writeln!(out, "version {STATS_VERSION}").map_err(|_| EINVAL)?;
        let inner = self.inner.lock();
        for e in inner.workers.iter().flatten() {
            let w = &e.worker;
            let s = &w.stats;
            let mut buf = [0u8; 64];
            writeln!(
                out,
                "worker id={} pid={} cpus={} queues={} passes={} busy_ns={} poll_ns={} idle_ns={} polls={} sleeps={}",
                w.id,
                e.thread.pid(),
                e.thread.cpus(&mut buf),
                e.worker.queue_count(),
                get(&s.passes),
                get(&s.busy_ns),
                get(&s.poll_ns),
                get(&s.idle_ns),
                get(&s.polls),
                get(&s.sleeps),
            )
            .map_err(|_| EINVAL)?;
            let list = w.queues.lock();
            for q in list.iter().flatten() {
                queues.push((q.clone(), w.id), GFP_KERNEL)?;
            }
        }
        Ok(queues)
    }
}
