// SPDX-License-Identifier: GPL-2.0

//! One virtqueue as the workers see it: the unit a worker serves.
//!
//! Each queue of a device has its own lock, wake-ups and completion list,
//! and carries a copy of what its turns need from the device (the owner's
//! mm, the memory table, the backend and its limits), so that workers
//! serve the queues of one device side by side without taking the
//! device's lock. The device's ioctls keep those copies current, under
//! each queue's lock (`dev.rs`).

use crate::ffi::bdev::BdevFile;
use crate::ffi::bio::{with_plug, BioList};
use crate::ffi::cgroup::Blkcg;
use crate::ffi::eventfd::EventFd;
use crate::ffi::mm::OwnerMm;
use crate::ffi::seq::SeqFile;
use crate::ffi::uaccess::OwnerMemory;
use crate::ffi::worker::{MmSlot, Waker};
use crate::vcore::blk::BlkLimits;
use crate::vcore::memory::{MemRegion, MemTable};
use crate::vcore::ring::Chain;
use crate::vcore::sched::Turn;
use crate::vcore::uapi;
use crate::vq::{self, Batch, Ctx, Flush, VqRuntime};
use crate::worker::{Policy, Worker};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::prelude::*;
use kernel::sync::lock::{mutex::MutexBackend, Guard};
use kernel::sync::{Arc, CondVar, Mutex};

/// A queue's lock held.
pub(crate) type RunGuard<'a> = Guard<'a, QueueRun, MutexBackend>;

/// What a running queue needs from its device, copied from the device's
/// state when the queue starts and kept current by the ioctls that change
/// it (`VHOST_SET_MEM_TABLE`, `VHOST_BLK_SET_SERIAL`).
pub(crate) struct QueueCtx {
    pub(crate) mm: Arc<OwnerMm>,
    /// The validated memory table, sorted by guest address.
    pub(crate) mem: KVec<MemRegion>,
    pub(crate) bdev: Arc<BdevFile>,
    pub(crate) limits: BlkLimits,
    pub(crate) serial: [u8; uapi::VIRTIO_BLK_ID_BYTES],
    /// The owner's io cgroup, charged for the queue's bios.
    pub(crate) blkcg: Option<Arc<Blkcg>>,
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

    /// The queue's wake-ups, for its kick poll.
    pub(crate) fn waker(&self) -> &Waker {
        &self.waker
    }

    /// Points the queue's wake-ups and completions at `worker`, which now
    /// serves it.
    ///
    /// # Safety
    ///
    /// The queue must not be served yet (`run.worker` is `None`), no bio of
    /// it may be in flight, and `worker` must serve it until
    /// [`Queue::unbind`].
    pub(crate) unsafe fn bind(&self, run: &mut QueueRun, worker: Arc<Worker>) {
        // SAFETY: the target lives as long as the worker, which `run` keeps
        // until `unbind`; a kick racing with this store sees either no
        // target (it leaves the pending flag for the queue's start) or
        // this one, and the target never changes again before `unbind`.
        unsafe {
            self.waker.set_target(Some(worker.wake_target()));
            self.bios.set_wake(Some(worker.wake_target()));
        }
        run.worker = Some(worker);
    }

    /// Takes the queue away from its worker and returns it.
    ///
    /// # Safety
    ///
    /// No kick poll of the queue may be left, and no bio of it in flight:
    /// nothing may wake the worker through the queue any more.
    pub(crate) unsafe fn unbind(&self, run: &mut QueueRun) -> Option<Arc<Worker>> {
        let worker = run.worker.take()?;
        self.waker.forget_waiting();
        // SAFETY: guaranteed by the caller: no wake-up can run.
        unsafe {
            self.waker.set_target(None);
            self.bios.set_wake(None);
        }
        self.polling.store(false, Ordering::Relaxed);
        Some(worker)
    }

    /// Serves what the ring already holds, without a guest kick (a queue
    /// that just started).
    pub(crate) fn kick_quiet(&self) {
        self.waker.kick_quiet();
        self.waker.wake();
    }

    /// Waits, with the queue's lock, until the queue has no request in
    /// flight; the worker keeps completing them meanwhile.
    pub(crate) fn wait_drained(&self, run: &mut RunGuard<'_>) {
        while run.rt.as_ref().is_some_and(|rt| rt.inflight() != 0) {
            self.waker.wake();
            self.drained.wait(run);
        }
    }

    /// One turn of the worker on this queue: completions, published and
    /// signalled at once, then up to the quota of new requests if the
    /// queue was kicked or is polled, in batches of `publish_batch`
    /// ([`crate::vcore::sched::PUBLISH_BATCH`]), each followed by the
    /// completions its submissions already produced, published with at
    /// most one interrupt. Returns whether it found work.
    ///
    /// Completions go out before new submissions so that finished requests
    /// never wait behind a turn of bio submissions.
    /// `chain` is the worker's scratch space for parsing chains, `mm` its
    /// adopted address space.
    pub(crate) fn run_once(&self, policy: &Policy, chain: &mut Chain, mm: &mut MmSlot) -> bool {
        if !self.waker.any() && self.bios.is_empty() && !self.polling.load(Ordering::Relaxed) {
            return false;
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
            return false;
        };
        // Out of their boxes, for disjoint borrows of their fields.
        let (rt, qc) = (&mut **rt, &mut **qc);
        mm.adopt(&qc.mm);
        let mem = OwnerMemory;
        let table = MemTable::validate(&mut qc.mem).unwrap_or(MemTable::EMPTY);
        let mut broke = false;
        let mut completed = self.complete_bios(rt, &mem, &table, &mut broke);
        if completed {
            flush(rt, &run.call, &run.err, &mem, broke);
        }
        let mut found = completed;
        if self.waker.take() || rt.polling {
            let cx = Ctx {
                mem: &mem,
                table: &table,
                limits: &qc.limits,
                bdev: &qc.bdev,
                bios: &self.bios,
                serial: &qc.serial,
                blkcg: qc.blkcg.as_deref(),
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
                        if self.complete_bios(rt, &mem, &table, &mut broke) {
                            completed = true;
                        }
                        flush(rt, &run.call, &run.err, &mem, broke);
                        if broke {
                            break;
                        }
                    }
                    Ok(Batch::Yield) => {
                        self.waker.kick_quiet();
                        break;
                    }
                    Ok(Batch::Done) => break,
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
        if self.complete_bios(rt, &mem, &table, &mut broke) {
            completed = true;
            found = true;
        }
        flush(rt, &run.call, &run.err, &mem, broke);
        if completed {
            self.drained.notify_all();
        }
        found
    }

    /// Accounts every bio of the queue completed so far (slots freed,
    /// statuses written, used elements gathered); sets `broke` if the ring
    /// faulted. Returns whether any bio completed.
    fn complete_bios(
        &self,
        rt: &mut VqRuntime,
        mem: &OwnerMemory,
        table: &MemTable<'_>,
        broke: &mut bool,
    ) -> bool {
        let mut completed = false;
        for bio in self.bios.take() {
            let (q, slot) = vq::untoken(bio.token());
            if q != self.index {
                pr_warn!("vq {}: completion for queue {}\n", self.index, q);
                bio.release(true);
                continue;
            }
            let errno = bio.errno();
            bio.release(rt.slot_dirty(slot));
            if rt.complete_bio(mem, table, slot, errno).is_err() {
                *broke = true;
            }
            completed = true;
        }
        if completed {
            // Freed slots may let a full queue take more chains.
            self.waker.kick_quiet();
        }
        completed
    }

    /// Ends polling, if the queue is polled: notifications back on, ring
    /// re-checked. Returns whether the ring had chains (the queue is then
    /// marked pending for the worker's next pass).
    pub(crate) fn end_polling(&self, mm: &mut MmSlot) -> bool {
        if !self.polling.swap(false, Ordering::Relaxed) {
            return false;
        }
        let mut guard = self.run.lock();
        let run = &mut *guard;
        let (Some(rt), Some(qc)) = (run.rt.as_mut(), run.ctx.as_ref()) else {
            return false;
        };
        mm.adopt(&qc.mm);
        let mem = OwnerMemory;
        match rt.end_polling(&mem) {
            Ok(true) => {
                self.waker.kick_quiet();
                true
            }
            Ok(false) => false,
            Err(_) => {
                flush(rt, &run.call, &run.err, &mem, true);
                false
            }
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
            "vq device={} index={} worker={} requests={} bytes={} kicks={} polled={} irqs={} irqs_suppressed={} quota_hits={} inflight={} num={} avail_idx={} last_avail={} used_idx={} notify={} broken={}",
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

/// Publishes the used elements of a running queue and signals its
/// interrupt if the driver wants one; stops the queue and reports it
/// (through the err eventfd) if `broke`, or if publishing faults.
fn flush(
    rt: &mut VqRuntime,
    call: &Option<EventFd>,
    err: &Option<EventFd>,
    mem: &OwnerMemory,
    broke: bool,
) {
    let mut broke = broke;
    match rt.flush_used(mem) {
        Ok(Flush::Signal) => {
            if let Some(call) = call {
                call.signal();
            }
        }
        Ok(_) => {}
        Err(_) => broke = true,
    }
    if broke && !rt.broken {
        rt.broken = true;
        if let Some(err) = err {
            err.signal();
        }
    }
}
