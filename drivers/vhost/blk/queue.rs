// SPDX-License-Identifier: GPL-2.0

//! One virtqueue as the workers see it: the unit a worker serves.
//!
//! Each queue of a device has its own lock, wake-ups and completion list,
//! and carries a copy of what its turns need from the device (the owner's
//! mm, the memory table, the backend and its limits), so that workers
//! serve the queues of one device side by side without taking the
//! device's lock. The device's ioctls keep those copies current, under
//! each queue's lock (`dev.rs`).
//!
//! Nobody holds a queue's lock while waiting for something else: the
//! worker's turn does not wait on the owner (`vq.rs`), the slow path
//! faults memory in and submits bios without it, and the ioctls that wait
//! for a queue to drain release it while they wait. So no queue's lock
//! can hold a worker back from the other queues.

use crate::ffi::bdev::BdevFile;
use crate::ffi::bio::{with_plug, BioTarget};
use crate::ffi::bio_list::BioList;
use crate::ffi::cgroup::Blkcg;
use crate::ffi::eventfd::EventFd;
use crate::ffi::mm::OwnerMm;
use crate::ffi::module::ModuleRef;
use crate::ffi::poll::Kicked;
use crate::ffi::seq::SeqFile;
use crate::ffi::task::TaskWaker;
use crate::ffi::uaccess::{fault_in, FaultIn, OwnerMemory};
use crate::ffi::worker::{now_ns, MmSlot};
use crate::vcore::blk::{BlkLimits, DataRules};
use crate::vcore::memory::{MemRegion, MemTable, ValidRegions};
use crate::vcore::ring::Chain;
use crate::vcore::sched::Turn;
use crate::vcore::uapi;
use crate::vq::{Batch, Ctx, Flush, SlowJob, VqRuntime};
use crate::waker::Waker;
use crate::worker::{self, Policy, Served, TurnResult};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::prelude::*;
use kernel::sync::lock::{mutex::MutexBackend, Guard};
use kernel::sync::{Arc, CondVar, Mutex};
use kernel::time::Jiffies;

/// A queue's lock held.
pub(crate) type RunGuard<'a> = Guard<'a, QueueRun, MutexBackend>;

/// What a running queue needs from its device, copied from the device's
/// state when the queue starts and kept current by the ioctls that change
/// it (`VHOST_SET_MEM_TABLE`, `VHOST_BLK_SET_SERIAL`).
pub(crate) struct QueueCtx {
    pub(crate) mm: Arc<OwnerMm>,
    /// The memory table, validated when it was set.
    pub(crate) mem: ValidRegions<KVec<MemRegion>>,
    pub(crate) bdev: Arc<BdevFile>,
    pub(crate) limits: BlkLimits,
    /// How data must lie in memory for the backend.
    pub(crate) rules: DataRules,
    pub(crate) serial: [u8; uapi::VIRTIO_BLK_ID_BYTES],
    /// The owner's io cgroup, charged for the queue's bios.
    pub(crate) blkcg: Option<Arc<Blkcg>>,
    /// The owner's slow path, for what must wait on the owner.
    pub(crate) slow: Arc<TaskWaker>,
}

/// A queue's state under its lock.
pub(crate) struct QueueRun {
    /// The ring and the requests in flight, while the queue runs.
    /// (Boxed, as the context below: a queue that never runs costs only
    /// its small lock and wake-up state.)
    pub(crate) rt: Option<KBox<VqRuntime>>,
    /// What the turns need, while the queue runs.
    pub(crate) ctx: Option<KBox<QueueCtx>>,
    /// Host-to-guest interrupts (irqfd).
    pub(crate) call: Option<EventFd>,
    /// Signalled when the guest breaks the ring.
    pub(crate) err: Option<EventFd>,
    /// The worker serving the queue, from the queue's first kick poll or
    /// start until the device is reset or closed.
    pub(crate) worker: Option<Arc<Worker>>,
    /// Set when the device was closed with bios of this queue in flight.
    pub(crate) orphan: Option<ModuleRef>,
}

/// One virtqueue of a device.
#[pin_data]
pub(crate) struct Queue {
    /// The device's number, for the statistics.
    dev_id: u32,
    index: u32,
    #[pin]
    run: Mutex<QueueRun>,
    /// Signalled by the worker whenever requests of the queue complete,
    /// for the ioctls that wait for the queue to drain.
    #[pin]
    drained: CondVar,
    waker: Waker,
    bios: BioList,
    /// Left polled by the worker: a pass checks the ring without a kick.
    polling: AtomicBool,
}

impl Queue {
    /// Queue `index` of device `dev_id`, not running and not served.
    pub(crate) fn new(dev_id: u32, index: u32) -> Result<Arc<Self>> {
        let bios = BioList::new()?;
        Arc::pin_init(
            pin_init!(Self {
                dev_id,
                index,
                run <- kernel::new_mutex!(QueueRun {
                    rt: None,
                    ctx: None,
                    call: None,
                    err: None,
                    worker: None,
                    orphan: None,
                }),
                drained <- kernel::new_condvar!(),
                waker: Waker::new(),
                bios,
                polling: AtomicBool::new(false),
            }),
            GFP_KERNEL,
        )
    }

    /// The queue's index in its device.
    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    /// The device's number.
    pub(crate) fn dev_id(&self) -> u32 {
        self.dev_id
    }

    /// Takes the queue's lock.
    pub(crate) fn lock(&self) -> RunGuard<'_> {
        self.run.lock()
    }

    /// Points the queue's wake-ups and completions at `worker`, which now
    /// serves it. For a queue no worker serves yet (`run.worker` is
    /// `None`) and with no bio in flight: a kick racing with this sees
    /// either no target (it leaves the pending flag for the queue's start)
    /// or this one.
    pub(crate) fn bind(&self, run: &mut QueueRun, worker: Arc<Worker>) {
        debug_assert!(run.worker.is_none());
        self.waker.set_target(Some(worker.wake_target()));
        self.bios.set_wake(Some(worker.wake_target()));
        run.worker = Some(worker);
    }

    /// Takes the queue away from its worker and returns it. The queue must
    /// have no kick poll left and no bio in flight: memory stays safe
    /// either way (a wake-up still running keeps the old target alive until
    /// it is done), but a kick landing in between would leave the worker
    /// counting this queue as waiting, and cut its other queues' turns.
    pub(crate) fn unbind(&self, run: &mut QueueRun) -> Option<Arc<Worker>> {
        let worker = run.worker.take()?;
        self.waker.forget_waiting();
        self.waker.set_target(None);
        self.bios.set_wake(None);
        self.polling.store(false, Ordering::Relaxed);
        Some(worker)
    }

    /// Serves what the ring already holds, without a guest kick (a queue
    /// that just started, or one whose slow path finished).
    pub(crate) fn kick_quiet(&self) {
        self.waker.kick_quiet();
        self.waker.wake();
    }

    /// Waits, with the queue's lock, until the queue has drained (no
    /// request in flight, every answer published: [`VqRuntime::drained`]);
    /// the worker keeps completing and publishing them meanwhile. Interruptible:
    /// `Err(ERESTARTSYS)` if a signal came first (the queue then still
    /// drains, and waiting again goes on from there). With `limit`, gives
    /// up after that many jiffies and returns `Ok(false)`.
    pub(crate) fn wait_drained(
        &self,
        run: &mut RunGuard<'_>,
        limit: Option<Jiffies>,
    ) -> Result<bool> {
        let mut left = limit;
        while run.rt.as_ref().is_some_and(|rt| !rt.drained()) {
            self.waker.wake();
            match left {
                None => {
                    if self.drained.wait_interruptible(run) {
                        return Err(ERESTARTSYS);
                    }
                }
                Some(0) => return Ok(false),
                Some(j) => match self.drained.wait_interruptible_timeout(run, j) {
                    kernel::sync::CondVarTimeoutResult::Timeout => left = Some(0),
                    kernel::sync::CondVarTimeoutResult::Woken { jiffies } => left = Some(jiffies),
                    kernel::sync::CondVarTimeoutResult::Signal { .. } => return Err(ERESTARTSYS),
                },
            }
        }
        Ok(true)
    }

    /// Accounts every bio of the queue completed so far (slots freed,
    /// bios to submit again set aside), then submits again, without
    /// waiting, those the room given back allows. Returns whether any bio
    /// completed.
    fn complete_bios(&self, rt: &mut VqRuntime, target: &BioTarget<'_>) -> bool {
        let mut completed = false;
        for bio in self.bios.take() {
            rt.complete_bio(bio, target);
            completed = true;
        }
        if completed {
            rt.retry_no_room();
            // Freed slots may let a full queue take more chains.
            self.waker.kick_quiet();
        }
        completed
    }

    /// The slow path's turn on this queue, on a thread of the owner: takes
    /// what waits for it under the lock, one piece at a time, and does it
    /// without: faults guest memory in (however long that takes,
    /// interruptibly) and submits the bios the device had no room for
    /// (waiting for room). Then the worker takes the queue on again. Stops
    /// taking work once `stopping` is set.
    pub(crate) fn run_slow_path(&self, stopping: &AtomicBool) {
        let mut any = false;
        while !stopping.load(Ordering::Acquire) {
            let work = {
                let mut run = self.run.lock();
                match run.rt.as_mut() {
                    Some(rt) if !rt.orphaned => rt.take_slow_work(),
                    _ => None,
                }
            };
            let Some(work) = work else {
                break;
            };
            any = true;
            match work.job {
                SlowJob::Resubmit(bio) => {
                    bio.resubmit();
                    let mut run = self.run.lock();
                    if let Some(rt) = run.rt.as_mut().filter(|rt| rt.run_id() == work.run_id) {
                        rt.stats.resubmits += 1;
                    }
                }
                SlowJob::FaultIn(range) => {
                    let r = fault_in(&range);
                    let mut run = self.run.lock();
                    if let Some(rt) = run.rt.as_mut().filter(|rt| rt.run_id() == work.run_id) {
                        match r {
                            FaultIn::Interrupted => rt.stall_returned(),
                            r => rt.stall_resolved(range, r == FaultIn::Done),
                        }
                    }
                    if r == FaultIn::Interrupted {
                        break;
                    }
                }
            }
        }
        if any {
            self.kick_quiet();
        }
    }

    /// Prints the queue's `vq` line of the statistics file, if it runs
    /// (format in `admin-guide.rst`); `worker` is its worker's id.
    pub(crate) fn show_stats(&self, out: &mut SeqFile, worker: u32) -> core::fmt::Result {
        let run = self.run.lock();
        let Some(rt) = run.rt.as_ref() else {
            return Ok(());
        };
        let s = &rt.stats;
        let (num, avail_idx, last_avail, used_idx, notify, broken) = rt.ring_state();
        writeln!(
            out,
            "vq device={} index={} worker={} requests={} bytes={} kicks={} polled={} irqs={} irqs_suppressed={} quota_hits={} inflight={} num={} avail_idx={} last_avail={} used_idx={} notify={} broken={} busy_ns={} stalls={} resubmits={} retries={}",
            self.dev_id,
            self.index,
            worker,
            s.requests,
            s.bytes,
            self.waker.kicks(),
            s.polled,
            s.irqs,
            s.irqs_suppressed,
            s.quota_hits,
            rt.inflight(),
            num,
            avail_idx,
            last_avail,
            used_idx,
            u8::from(notify),
            u8::from(broken),
            s.busy_ns,
            s.stalls,
            s.resubmits,
            s.retries,
        )
    }

    /// The major and minor numbers of the queue's backend, if it runs.
    pub(crate) fn backend(&self) -> Option<(u32, u32)> {
        let run = self.run.lock();
        run.ctx
            .as_ref()
            .map(|c| (c.bdev.info().major, c.bdev.info().minor))
    }
}

/// The module's workers, serving queues.
pub(crate) type Pool = worker::Pool<Queue>;

/// A worker of the [`Pool`].
pub(crate) type Worker = worker::Worker<Queue>;

impl Pool {
    /// Prints the statistics file: a version line, one `worker` line per
    /// worker, then for each device with a queue on a worker its `device`
    /// line and the `vq` lines of its running queues.
    pub(crate) fn show_stats(&self, out: &mut SeqFile) -> Result {
        // (queue, worker id) of every queue served.
        let mut queues = self.show_workers(out)?;
        // Insertion sort by (device, queue): short lists, and core's sort
        // trips objtool in the clang-built debug kernel.
        let key = |e: &(Arc<Queue>, u32)| (e.0.dev_id(), e.0.index());
        for i in 1..queues.len() {
            let mut j = i;
            while j > 0 && key(&queues[j - 1]) > key(&queues[j]) {
                queues.swap(j - 1, j);
                j -= 1;
            }
        }
        // No pool or list lock is held from here: queue locks may be
        // taken.
        let mut last_dev = None;
        for (q, worker) in queues.iter() {
            if last_dev != Some(q.dev_id()) {
                last_dev = Some(q.dev_id());
                // The backend of the device's first running queue.
                let (major, minor) = queues
                    .iter()
                    .filter(|(o, _)| o.dev_id() == q.dev_id())
                    .find_map(|(o, _)| o.backend())
                    .unwrap_or((0, 0));
                writeln!(out, "device id={} backend={}:{}", q.dev_id(), major, minor)
                    .map_err(|_| EINVAL)?;
            }
            q.show_stats(out, *worker).map_err(|_| EINVAL)?;
        }
        Ok(())
    }
}

impl Served for Queue {
    /// One turn of the worker on this queue: completions, published and
    /// signalled at once, zero-page writes, then up to the quota of new
    /// requests if the queue was kicked or is polled, in batches of
    /// `publish_batch`, each followed by the completions its submissions
    /// already produced, published with at most one interrupt.
    ///
    /// Completions go out before new submissions so that finished requests
    /// never wait behind a turn of bio submissions. `chain` is the
    /// worker's scratch space for parsing chains, `mm` its adopted address
    /// space. `since` is when the worker's previous busy turn of this pass
    /// ended (or the pass began): a busy turn is charged from there to its
    /// own end, which it stores there, one clock read per busy turn and
    /// none for an idle one.
    fn run_once(
        &self,
        policy: &Policy,
        chain: &mut Chain,
        mm: &mut MmSlot,
        since: &mut u64,
    ) -> TurnResult {
        if !self.waker.any() && self.bios.is_empty() && !self.polling.load(Ordering::Relaxed) {
            return TurnResult::Idle;
        }
        let mut guard = self.run.lock();
        let run = &mut *guard;
        let (Some(rt), Some(qc)) = (run.rt.as_mut(), run.ctx.as_mut()) else {
            // Not running: nothing to serve; drop stray kicks (the ring is
            // served when the queue starts) and completions (none can be
            // left: a queue stops only once it has drained).
            self.waker.take();
            self.waker.forget_waiting();
            self.polling.store(false, Ordering::Relaxed);
            drop(self.bios.take());
            return TurnResult::Idle;
        };
        // Out of their boxes, for disjoint borrows of their fields.
        let (rt, qc) = (&mut **rt, &mut **qc);
        mm.adopt(&qc.mm);
        let mem = OwnerMemory::new(rt.bad_range());
        let table = qc.mem.table();
        let target = BioTarget {
            bdev: &qc.bdev,
            list: &self.bios,
            blkcg: qc.blkcg.as_deref(),
            nowait: qc.bdev.info().nowait != 0,
        };
        let mut broke = false;
        let completed = self.complete_bios(rt, &target);
        let mut answered = publish(rt, &mem, &table, &run.call, &run.err, &mut broke);
        let mut found = completed | answered;
        if rt.zeroes_waiting() {
            found |= with_plug(|| rt.pump_zeroes(&target, qc.limits.write_through));
        }
        if self.waker.take() || rt.polling {
            // Requests are checked against the disk's size as it is now.
            qc.limits.capacity = qc.bdev.capacity();
            let cx = Ctx {
                mem: &mem,
                table: &table,
                limits: &qc.limits,
                rules: &qc.rules,
                target,
                serial: &qc.serial,
                quota: policy.quota,
                waker: &self.waker,
                poll: policy.poll,
                publish_batch: policy.publish_batch,
            };
            let before = rt.stats.requests;
            let mut turn = Turn::capped(rt.free_slots());
            loop {
                // One plug per batch: its bios reach the driver together.
                match with_plug(|| rt.handle_kick(&cx, chain, &mut turn)) {
                    Ok(Batch::Full) => {
                        if !policy.publish_mid_turn() {
                            // Every CPU has a worker to run: the turn
                            // goes on and publishes when it ends.
                            continue;
                        }
                        // Publish what the batch completed, then go on.
                        found |= self.complete_bios(rt, &target);
                        answered |= publish(rt, &mem, &table, &run.call, &run.err, &mut broke);
                        if broke {
                            break;
                        }
                    }
                    Ok(Batch::Yield) => {
                        self.waker.kick_quiet();
                        break;
                    }
                    Ok(Batch::Done) => break,
                    Ok(Batch::Stall) => {
                        rt.absorb_stall(&mem);
                        break;
                    }
                    Err(e) => {
                        pr_debug!("vq {}: guest broke the ring: {:?}\n", self.index, e);
                        broke = true;
                        break;
                    }
                }
            }
            found |= rt.stats.requests != before;
            self.polling.store(rt.polling, Ordering::Relaxed);
        } else {
            // Not kicked and not polled: not waiting either.
            self.waker.forget_waiting();
        }
        // A device that completes in its submission path (or before the
        // plug's flush returned) is answered in this turn, not the next.
        found |= self.complete_bios(rt, &target);
        // Zero ranges the turn took, or zero-page bios that completed.
        if rt.zeroes_waiting() {
            found |= with_plug(|| rt.pump_zeroes(&target, qc.limits.write_through));
        }
        answered |= publish(rt, &mem, &table, &run.call, &run.err, &mut broke);
        found |= answered;
        if rt.wants_slow_path() {
            qc.slow.kick();
        }
        if answered || broke {
            // Slots were freed, answers published, or the ring broke (no
            // more answers can be published): a wait for the queue to
            // drain may be over.
            self.drained.notify_all();
        }
        if found {
            let end = now_ns();
            rt.stats.busy_ns += end.saturating_sub(*since);
            *since = end;
        }
        if rt.orphaned && rt.inflight() == 0 {
            return TurnResult::Orphaned;
        }
        if found {
            TurnResult::Worked
        } else {
            TurnResult::Idle
        }
    }

    /// Ends polling, if the queue is polled: notifications back on, ring
    /// re-checked. Returns whether the ring had chains (the queue is then
    /// marked pending for the worker's next pass).
    fn end_polling(&self, mm: &mut MmSlot) -> bool {
        if !self.polling.swap(false, Ordering::Relaxed) {
            return false;
        }
        let mut guard = self.run.lock();
        let run = &mut *guard;
        let (Some(rt), Some(qc)) = (run.rt.as_mut(), run.ctx.as_ref()) else {
            return false;
        };
        mm.adopt(&qc.mm);
        let mem = OwnerMemory::new(rt.bad_range());
        let r = rt.end_polling(&mem);
        if rt.absorb_stall(&mem) {
            qc.slow.kick();
            return false;
        }
        match r {
            Ok(true) => {
                self.waker.kick_quiet();
                true
            }
            Ok(false) => false,
            Err(_) => {
                break_ring(rt, &run.err);
                // A broken ring has drained once nothing is in flight.
                self.drained.notify_all();
                false
            }
        }
    }

    /// Lets go of a queue whose device was closed and whose last bio is
    /// over. Returns the module reference it held, for the caller (its
    /// worker, which removes the queue) to drop when it is done with it.
    fn finish_orphan(&self) -> Option<ModuleRef> {
        let mut run = self.run.lock();
        if !run
            .rt
            .as_ref()
            .is_some_and(|rt| rt.orphaned && rt.inflight() == 0)
        {
            return None;
        }
        run.rt = None;
        run.ctx = None;
        run.call = None;
        run.err = None;
        // The device is gone with its kick polls, and no bio of the queue
        // is in flight.
        drop(self.unbind(&mut run));
        run.orphan.take()
    }
}

impl Kicked for Queue {
    /// A guest kick, from the queue's kick poll.
    fn kick(&self) {
        self.waker.kick();
    }
}

/// Answers the requests of a running queue that are done and publishes
/// them, signalling its interrupt if the driver wants one; stops the
/// queue and reports it (through the err eventfd) if `broke`, or if that
/// faults. Memory not present stalls the queue instead. Returns whether
/// it answered any request (freeing its slot) or published answers.
fn publish(
    rt: &mut VqRuntime,
    mem: &OwnerMemory,
    table: &MemTable<'_>,
    call: &Option<EventFd>,
    err: &Option<EventFd>,
    broke: &mut bool,
) -> bool {
    let mut answered = false;
    if rt.may_publish() || rt.orphaned || rt.broken {
        match rt.answer_done(mem, table) {
            Ok(any) => answered = any,
            Err(_) => *broke |= !rt.absorb_stall(mem),
        }
        rt.absorb_stall(mem);
    }
    if rt.may_publish() {
        // A publication counts as an answer: after a stall it may be the
        // last thing a drain waits for.
        match rt.flush_used(mem) {
            Ok(Flush::Signal) => {
                answered = true;
                if let Some(call) = call {
                    call.signal();
                }
            }
            Ok(Flush::Suppressed) => answered = true,
            Ok(Flush::Nothing) => {}
            Err(_) => {
                if !rt.absorb_stall(mem) {
                    *broke = true;
                }
            }
        }
    }
    if *broke {
        break_ring(rt, err);
    }
    answered
}

/// Stops a queue whose ring the guest broke, and reports it through the
/// err eventfd, once.
fn break_ring(rt: &mut VqRuntime, err: &Option<EventFd>) {
    if !rt.broken {
        rt.broken = true;
        if let Some(err) = err {
            err.signal();
        }
    }
}
