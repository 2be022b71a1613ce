// SPDX-License-Identifier: GPL-2.0

//! One virtqueue at run time: its ring, its preallocated request slots, the
//! completions waiting to be published, and what waits for the owner's
//! slow path.
//!
//! Request state lives in host-owned slots taken from a free list, never
//! in an array indexed by the guest's head index: a guest that re-posts a
//! head still in flight gets a second, independent request, and cannot
//! overwrite the first one's state. Every chain taken from the ring gets a
//! slot, even one answered at once, so that every answer goes through the
//! same retryable path: status byte, used element, slot freed.
//!
//! Nothing here waits on the owner. Guest memory is reached without
//! faulting ([`OwnerMemory`]); when a page is not present the queue stalls
//! (`stall`): the chain being taken is put back, completions wait, and the
//! owner's slow path faults the range in. Bios go out with `REQ_NOWAIT`
//! where the device takes it; one that would have waited comes back
//! (`no_room`). Each bio of the queue that completes gives the device room
//! back, and the worker submits as many waiting bios again, still without
//! waiting. Once none of the queue's bios is out (no room will come back
//! that way), or after [`NOWAIT_RETRIES`] tries, a bio waits in
//! `resubmit` for the slow path. While any of these waits, the queue takes
//! no new chains, and its worker serves the other queues.

use crate::ffi::bio::{Bio, BioKind, BioStack, BioTarget, DoneBio, MAX_VECS};
use crate::ffi::uaccess::{OwnerMemory, UserRange};
use crate::vcore::blk::{
    self, BlkLimits, DataRules, Op, Parsed, Request, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK,
};
use crate::vcore::memory::MemTable;
use crate::vcore::ring::{Chain, RingError, Vring};
use crate::vcore::sched::{Quota, Turn};
use crate::vcore::slots::{Slot, SlotTable, Token};
use crate::vcore::uapi::VIRTIO_BLK_ID_BYTES;
use crate::waker::Waker;
use kernel::prelude::*;

mod complete;
mod data;

use data::data_bios;

/// Page size assumed for sizing bios.
const PAGE_SIZE: u32 = 4096;

/// Zero-page bios a queue keeps in flight at most (each up to 1 MiB of
/// zeroes): what a guest's WRITE_ZEROES without offload may pin.
pub(crate) const ZERO_BIOS_IN_FLIGHT: u32 = 4;
/// Zero-page ranges a queue keeps waiting at most before it stops taking
/// chains; one more request can add [`blk::MAX_RANGES`] beyond.
pub(crate) const ZERO_RANGES_WAITING: u32 = 64;
/// Times the worker submits a bio again without waiting after the device
/// had no room for it, before it leaves it to the slow path: room that
/// does not come back as the queue's own bios complete (a split, a device
/// whose tags others hold) must not keep the request waiting for all of
/// them.
pub(crate) const NOWAIT_RETRIES: u32 = 4;

/// What a queue needs from its device while it works.
pub(crate) struct Ctx<'a> {
    pub(crate) mem: &'a OwnerMemory,
    pub(crate) table: &'a MemTable<'a>,
    pub(crate) limits: &'a BlkLimits,
    pub(crate) rules: &'a DataRules,
    pub(crate) target: BioTarget<'a>,
    pub(crate) serial: &'a [u8; VIRTIO_BLK_ID_BYTES],
    /// What a queue may take in one turn.
    pub(crate) quota: Quota,
    /// The queue's wake-ups: tells a turn whether another queue waits.
    pub(crate) waker: &'a Waker,
    /// Whether an empty ring is left with notifications off, to be polled.
    pub(crate) poll: bool,
    /// Requests between two publications within a turn; 0: once per turn.
    pub(crate) publish_batch: u32,
}

/// Counters of a queue since it started.
#[derive(Clone, Copy, Default)]
pub(crate) struct VqStats {
    /// Requests taken from the ring.
    pub(crate) requests: u64,
    /// Data bytes of the read and write requests taken.
    pub(crate) bytes: u64,
    /// Requests found by polling, without a kick.
    pub(crate) polled: u64,
    /// Interrupts sent (call eventfd signals).
    pub(crate) irqs: u64,
    /// Used-ring updates for which the driver wanted no interrupt.
    pub(crate) irqs_suppressed: u64,
    /// Turns that ended because the queue used up its quota.
    pub(crate) quota_hits: u64,
    /// Time the queue kept its worker busy, in nanoseconds.
    pub(crate) busy_ns: u64,
    /// Times the queue waited for its slow path to fault memory in.
    pub(crate) stalls: u64,
    /// Bios its slow path submitted again after the device had no room.
    pub(crate) resubmits: u64,
    /// Bios its worker submitted again, without waiting, as room came
    /// back.
    pub(crate) retries: u64,
}

/// How a batch of a queue's turn ended ([`VqRuntime::handle_kick`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Batch {
    /// The batch is full: publish its completions, then take the next.
    Full,
    /// The queue used up its quota: it may have more, for a later turn.
    Yield,
    /// The ring is empty, or no slot is free, or the queue waits or
    /// stopped.
    Done,
    /// Guest memory was not present: the queue waits for its slow path.
    Stall,
}

/// What publishing the used elements did.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flush {
    /// Nothing to publish.
    Nothing,
    /// Published; the driver wants an interrupt.
    Signal,
    /// Published; the driver asked for no interrupt.
    Suppressed,
}

/// What taking one chain did.
enum Taken {
    /// The chain has a slot; its data bytes and descriptors, for the quota.
    Request { bytes: u32, descriptors: u32 },
    /// Guest memory was not present: the chain must be put back.
    Stalled,
}

/// Why a request's data could not be put in bios.
enum DataError {
    /// A page was not present: wait for the slow path.
    Stalled,
    /// Misaligned, not mapped, or no bio: the request fails with IOERR.
    Failed,
}

/// One piece of the slow path's work on a queue, taken under the queue's
/// lock and done without it.
pub(crate) struct SlowWork {
    /// The queue's run it belongs to ([`VqRuntime::run_id`]).
    pub(crate) run_id: u64,
    pub(crate) job: SlowJob,
}

/// What the slow path does for a queue.
pub(crate) enum SlowJob {
    /// Fault guest memory in.
    FaultIn(UserRange),
    /// Submit a bio again, waiting for the device.
    Resubmit(DoneBio),
}

/// A virtqueue being served.
pub(crate) struct VqRuntime {
    /// Tells this run of the queue from earlier and later ones.
    run_id: u64,
    vring: Vring,
    slots: SlotTable<KVec<Slot>, KVec<u16>>,
    /// Slots whose I/O is over, to be answered: `done[..ndone]`.
    done: KVec<u16>,
    ndone: usize,
    /// Used elements to publish: `used[..nused]`.
    used: KVec<(u16, u32)>,
    nused: usize,
    /// Used elements were published; the interrupt decision is pending.
    signal_due: bool,
    /// Guest memory the slow path must fault in; until then the queue
    /// touches no guest memory.
    stall: Option<UserRange>,
    /// The slow path is faulting `stall` in.
    stall_taken: bool,
    /// What the slow path found it cannot fault in.
    bad: Option<UserRange>,
    /// Bios to submit again, waiting, by the slow path.
    resubmit: BioStack<DoneBio>,
    /// Bios the device had no room for, to submit again without waiting
    /// as the queue's own bios complete.
    no_room: BioStack<DoneBio>,
    /// Bios of the queue at the block layer (submitted, not completed).
    bios_out: u32,
    /// Bios of the queue that completed since `no_room` was last served:
    /// the room they gave back.
    room_freed: u32,
    /// Ranges still to be written from the zero page.
    zeroes: BioStack<Bio>,
    zero_ranges: u32,
    zero_bios: u32,
    /// The device refused `REQ_NOUNMAP` write-zeroes: write zero pages.
    no_unmap_offload: bool,
    /// The device refused write-zeroes altogether (loop drops its offload
    /// once the file refuses one): zero pages for every range.
    no_zeroes_offload: bool,
    /// The guest broke the ring: no more chains are taken.
    pub(crate) broken: bool,
    /// Being stopped: no more chains are taken, in-flight ones finish.
    pub(crate) stopping: bool,
    /// Its device is gone: in-flight bios finish without touching guest
    /// memory, and the queue is torn down when none is left.
    pub(crate) orphaned: bool,
    /// Guest notifications are on (the driver's view, as last written).
    notify: bool,
    /// The ring was empty with notifications off: the worker polls it.
    pub(crate) polling: bool,
    pub(crate) stats: VqStats,
}

impl VqRuntime {
    /// Serves `vring` in its run `run_id`, preallocating its request
    /// state.
    pub(crate) fn new(run_id: u64, vring: Vring) -> Result<Self> {
        let num = vring.num() as usize;
        let slots = SlotTable::new(
            KVec::from_elem(Slot::default(), num, GFP_KERNEL)?,
            KVec::from_elem(0u16, num, GFP_KERNEL)?,
        )
        .ok_or(EINVAL)?;
        // At most `num` chains are outstanding, so at most `num` slots are
        // done and `num` used elements wait between two flushes.
        let done = KVec::from_elem(0u16, num, GFP_KERNEL)?;
        let used = KVec::from_elem((0u16, 0u32), num, GFP_KERNEL)?;
        Ok(Self {
            run_id,
            vring,
            slots,
            done,
            ndone: 0,
            used,
            nused: 0,
            signal_due: false,
            stall: None,
            stall_taken: false,
            bad: None,
            resubmit: BioStack::new(),
            no_room: BioStack::new(),
            bios_out: 0,
            room_freed: 0,
            zeroes: BioStack::new(),
            zero_ranges: 0,
            zero_bios: 0,
            no_unmap_offload: false,
            no_zeroes_offload: false,
            broken: false,
            stopping: false,
            orphaned: false,
            notify: true,
            polling: false,
            stats: VqStats::default(),
        })
    }

    /// This run of the queue.
    pub(crate) fn run_id(&self) -> u64 {
        self.run_id
    }

    /// The ring's indexes and state, for the statistics:
    /// `(num, avail_idx seen, last_avail, used_idx, notify, broken)`.
    pub(crate) fn ring_state(&self) -> (u32, u16, u16, u16, bool, bool) {
        (
            self.vring.num(),
            self.vring.avail_idx_seen(),
            self.vring.last_avail_idx(),
            self.vring.last_used_idx(),
            self.notify,
            self.broken,
        )
    }

    /// Request slots free: what a turn may take at most.
    pub(crate) fn free_slots(&self) -> u32 {
        // At most `num` <= 32768.
        self.slots.free_count() as u32
    }

    /// Requests taken from the ring and not yet answered.
    pub(crate) fn inflight(&self) -> usize {
        self.slots.inflight()
    }

    /// Whether the queue owes its driver nothing more: no request in
    /// flight, and every answer in the used ring with its interrupt
    /// decided. An answer whose used element could not be published yet
    /// (the used ring's page not present) still counts: a stop that let
    /// the queue go then would lose a request the avail index counts as
    /// served. A broken ring is past publishing.
    pub(crate) fn drained(&self) -> bool {
        self.inflight() == 0 && (self.broken || (self.nused == 0 && !self.signal_due))
    }

    /// The next avail index to serve, for `VHOST_GET_VRING_BASE`.
    pub(crate) fn last_avail_idx(&self) -> u16 {
        self.vring.last_avail_idx()
    }

    /// The memory a new [`OwnerMemory`] must treat as bad.
    pub(crate) fn bad_range(&self) -> Option<UserRange> {
        self.bad
    }

    /// Whether the queue waits for its slow path with something it has not
    /// yet handed over.
    pub(crate) fn wants_slow_path(&self) -> bool {
        (self.stall.is_some() && !self.stall_taken) || !self.resubmit.is_empty()
    }

    /// Whether guest memory may be touched now.
    fn memory_ok(&self) -> bool {
        self.stall.is_none() && !self.orphaned
    }

    /// Records a stall that `mem` saw, if any; returns whether it did.
    pub(crate) fn absorb_stall(&mut self, mem: &OwnerMemory) -> bool {
        let Some(range) = mem.take_stall() else {
            return false;
        };
        if self.stall.is_none() {
            self.stall = Some(range);
            self.stall_taken = false;
            self.stats.stalls += 1;
        }
        // The fault the slow path was told about has been consumed.
        self.bad = None;
        true
    }

    /// Takes the next piece of the slow path's work, if any: the stall
    /// first, then one bio to submit again.
    pub(crate) fn take_slow_work(&mut self) -> Option<SlowWork> {
        let job = match self.stall {
            Some(range) if !self.stall_taken => {
                self.stall_taken = true;
                SlowJob::FaultIn(range)
            }
            _ => {
                let bio = self.resubmit.pop()?;
                // Out as soon as the slow path has it.
                self.bios_out += 1;
                SlowJob::Resubmit(bio)
            }
        };
        Some(SlowWork {
            run_id: self.run_id,
            job,
        })
    }

    /// The slow path faulted `range` in (`ok`) or found it cannot: the
    /// queue may touch guest memory again.
    pub(crate) fn stall_resolved(&mut self, range: UserRange, ok: bool) {
        if self.stall == Some(range) && self.stall_taken {
            self.stall = None;
            self.stall_taken = false;
            self.bad = (!ok).then_some(range);
        }
    }

    /// The slow path could not do its share (it is gone): give the stall
    /// back, to be handed over again.
    pub(crate) fn stall_returned(&mut self) {
        self.stall_taken = false;
    }

    /// Whether the turn may take new chains.
    fn may_take(&self) -> bool {
        !(self.broken || self.stopping || self.orphaned)
            && self.stall.is_none()
            && self.resubmit.is_empty()
            && self.no_room.is_empty()
            && self.zero_ranges < ZERO_RANGES_WAITING
    }

    /// Takes chains from the ring and starts them, as one batch of the
    /// queue's turn `turn`: until the ring is empty, no slot is free, the
    /// batch is full (`cx.publish_batch`), the queue used up its quota for
    /// this turn, or guest memory was not present ([`Batch::Stall`]: the
    /// caller records it with [`Self::absorb_stall`]). The caller
    /// publishes the batch's completions and goes on with the turn while
    /// this returns [`Batch::Full`].
    ///
    /// An empty ring re-enables guest notifications and re-checks the
    /// ring (`vhost_enable_notify`), unless `cx.poll` is set: the queue is
    /// then left with notifications off and marked `polling`, and the
    /// worker checks it again on its next pass, until [`Self::end_polling`].
    pub(crate) fn handle_kick(
        &mut self,
        cx: &Ctx<'_>,
        chain: &mut Chain,
        turn: &mut Turn,
    ) -> Result<Batch, RingError> {
        cx.waker.turn_starts();
        if !self.may_take() {
            self.polling = false;
            return Ok(Batch::Done);
        }
        if self.notify {
            if let Err(e) = self.vring.disable_notify(cx.mem) {
                return stalled_or(cx.mem, e);
            }
            self.notify = false;
        }
        let polled = self.polling;
        let start = turn.requests();
        let end = loop {
            if turn.must_yield(&cx.quota, || cx.waker.others_waiting()) {
                self.stats.quota_hits += 1;
                break Batch::Yield;
            }
            if turn.at_cap() {
                // As many as the slots free when the turn began: the
                // neighbours go first, then the queue's next turn.
                break Batch::Yield;
            }
            if turn.batch_full(start, cx.publish_batch) {
                break Batch::Full;
            }
            // The slot the next request takes.
            let Some(slot) = self.slots.next() else {
                // Completions free slots and bring the worker back.
                break Batch::Done;
            };
            if !self.may_take() || cx.target.list.bounced() {
                // As do the owner's slow path and the disk's room.
                break Batch::Done;
            }
            match self.vring.get_vq_desc(cx.mem, cx.table, chain) {
                Ok(true) => {}
                Ok(false) => {
                    if cx.poll {
                        self.polling = true;
                        break Batch::Done;
                    }
                    self.polling = false;
                    match self.vring.enable_notify(cx.mem) {
                        Ok(true) => {
                            if let Err(e) = self.vring.disable_notify(cx.mem) {
                                return stalled_or(cx.mem, e);
                            }
                            continue;
                        }
                        Ok(false) => {
                            self.notify = true;
                            break Batch::Done;
                        }
                        Err(e) => return stalled_or(cx.mem, e),
                    }
                }
                Err(e) => return stalled_or(cx.mem, e),
            }
            match self.handle_chain(cx, chain, slot)? {
                Taken::Request { bytes, descriptors } => {
                    turn.charge(u64::from(bytes), descriptors);
                }
                Taken::Stalled => {
                    // Taken again, from the start, once the memory is in.
                    self.vring.unget();
                    break Batch::Stall;
                }
            }
        };
        let n = u64::from(turn.requests() - start);
        self.stats.requests += n;
        if polled {
            self.stats.polled += n;
        }
        Ok(end)
    }

    /// Ends polling: turns guest notifications back on and re-checks the
    /// ring. Returns `Ok(true)` if chains arrived meanwhile (notifications
    /// are then off again, and the caller must serve the queue), so that
    /// no request waits for a kick that will never come.
    pub(crate) fn end_polling(&mut self, mem: &OwnerMemory) -> Result<bool, RingError> {
        if !self.polling || !self.memory_ok() {
            return Ok(false);
        }
        self.polling = false;
        if self.vring.enable_notify(mem)? {
            self.vring.disable_notify(mem)?;
            return Ok(true);
        }
        self.notify = true;
        Ok(false)
    }

    /// Serves one chain: gives it `slot` (the next free one) and starts its
    /// request, or answers it at once.
    fn handle_chain(&mut self, cx: &Ctx<'_>, chain: &Chain, slot: u16) -> Result<Taken, RingError> {
        let descriptors = chain.descriptors();
        let parsed = blk::parse(cx.mem, cx.table, chain, cx.limits);
        if cx.mem.stalled() {
            return Ok(Taken::Stalled);
        }
        let req = match parsed {
            Parsed::NoStatus => return Err(RingError::NoStatus),
            Parsed::Rejected(rej) => {
                self.answer(slot, chain.head(), rej.status_addr, rej.status, 1);
                return Ok(Taken::Request {
                    bytes: 0,
                    descriptors,
                });
            }
            Parsed::Request(req) => req,
        };
        let bytes = if matches!(req.op, Op::Read | Op::Write) {
            req.data.len
        } else {
            0
        };
        if !self.start_request(cx, chain, &req, slot) {
            return Ok(Taken::Stalled);
        }
        self.stats.bytes += u64::from(bytes);
        Ok(Taken::Request { bytes, descriptors })
    }

    /// Starts a parsed request in `slot` (the next free one): its bios, or
    /// its answer. Returns `false` if guest memory was not present:
    /// nothing was started, and the chain must be taken again later.
    fn start_request(&mut self, cx: &Ctx<'_>, chain: &Chain, req: &Request, slot: u16) -> bool {
        let head = chain.head();
        let tok = Token { slot, zero: false }.encode();
        let ioerr = |vq: &mut Self| {
            vq.answer(slot, head, req.status_addr, VIRTIO_BLK_S_IOERR, 1);
            true
        };
        match req.op {
            Op::GetId => {
                let r = blk::write_data(cx.mem, cx.table, chain, &req.data, cx.serial);
                if cx.mem.stalled() {
                    return false;
                }
                match r {
                    Ok(n) => self.answer(slot, head, req.status_addr, VIRTIO_BLK_S_OK, n + 1),
                    Err(_) => self.answer(slot, head, req.status_addr, VIRTIO_BLK_S_IOERR, 1),
                }
                true
            }
            Op::Flush => match Bio::new(&cx.target, BioKind::Flush, 0, 0, 0, tok) {
                Some(bio) => {
                    let mut bios = BioStack::new();
                    bios.push(bio);
                    self.submit(slot, head, req, 0, bios, &mut BioStack::new());
                    true
                }
                None => ioerr(self),
            },
            Op::Read | Op::Write => match data_bios(cx, chain, req, tok) {
                Ok(bios) => {
                    let read = req.op == Op::Read;
                    let len = if read { req.data.len } else { 0 };
                    self.submit(slot, head, req, len, bios, &mut BioStack::new());
                    true
                }
                Err(DataError::Stalled) => false,
                Err(DataError::Failed) => ioerr(self),
            },
            Op::Discard | Op::WriteZeroes => {
                // Copy every range out of guest memory and check it before
                // any bio is built: a bad range fails the whole request.
                let mut ranges = [blk::Range::default(); blk::MAX_RANGES as usize];
                let n = (req.data.len / blk::DWZ_SEG_LEN) as usize;
                let Some(ranges) = ranges.get_mut(..n) else {
                    return ioerr(self);
                };
                for (i, r) in ranges.iter_mut().enumerate() {
                    let read = blk::read_range(cx.mem, cx.table, chain, req, i as u32);
                    if cx.mem.stalled() {
                        return false;
                    }
                    *r = match read {
                        Ok(r) => r,
                        Err(_) => return ioerr(self),
                    };
                    if let Err(rej) =
                        blk::check_range(cx.limits, req.op, r.sector, r.num_sectors, r.flags)
                    {
                        self.answer(slot, head, req.status_addr, rej.status(), 1);
                        return true;
                    }
                }
                match self.range_bios(cx, req.op, ranges, tok) {
                    Some((bios, mut zeroes)) => {
                        self.submit(slot, head, req, 0, bios, &mut zeroes);
                        true
                    }
                    None => ioerr(self),
                }
            }
        }
    }

    /// Takes `slot`, the next free one, for the chain at `head`.
    fn take_slot(&mut self, slot: u16, head: u16, status_addr: u64, used_len: u32, dirty: bool) {
        let taken = self.slots.take(Slot {
            head,
            status_addr,
            used_len,
            status: VIRTIO_BLK_S_OK,
            pending: 0,
            dirty,
        });
        // The caller found `slot` free and took nothing since.
        debug_assert_eq!(taken, Some(slot));
    }

    /// Answers the chain at `head` without I/O, in `slot`, the next free
    /// one: the slot is done at once.
    fn answer(&mut self, slot: u16, head: u16, status_addr: u64, status: u8, used_len: u32) {
        self.take_slot(slot, head, status_addr, used_len, false);
        self.set_status(slot, status);
        self.slot_done(slot);
    }

    /// Takes a slot for `req` and submits its `bios`; `zeroes` are its
    /// zero-page ranges, written by [`Self::pump_zeroes`]. `len` is the
    /// data the device writes into the chain.
    fn submit(
        &mut self,
        slot: u16,
        head: u16,
        req: &Request,
        len: u32,
        mut bios: BioStack<Bio>,
        zeroes: &mut BioStack<Bio>,
    ) {
        let read = req.op == Op::Read;
        self.take_slot(slot, head, req.status_addr, len + 1, read);
        let mut pending = 0;
        let mut ranges = 0;
        while let Some(z) = zeroes.pop() {
            self.zeroes.push(z);
            ranges += 1;
        }
        self.zero_ranges += ranges;
        pending += ranges;
        while let Some(bio) = bios.pop() {
            pending += 1;
            // Counted before it goes: it may complete at once.
            self.set_pending(slot, pending);
            self.bios_out += 1;
            bio.submit();
        }
        self.set_pending(slot, pending);
        if pending == 0 {
            self.slot_done(slot);
        }
    }

    /// The bios of checked DISCARD or WRITE_ZEROES `ranges`, and the
    /// ranges to write from the zero page. Write-zeroes uses the device's
    /// offload where it has one (with `REQ_NOUNMAP` unless the guest
    /// allows deallocation); otherwise, or in write-through mode (zeroes
    /// then go out with FUA, durable on completion), or once the device
    /// refused the offload (`REQ_NOUNMAP` only: loop on tmpfs; then all of
    /// it: loop stops offering any), the zero page is written, a bounded
    /// number of bios at a time.
    fn range_bios(
        &self,
        cx: &Ctx<'_>,
        op: Op,
        ranges: &[blk::Range],
        tok: u64,
    ) -> Option<(BioStack<Bio>, BioStack<Bio>)> {
        let mut bios = BioStack::new();
        let mut zeroes = BioStack::new();
        for r in ranges.iter().filter(|r| r.num_sectors != 0) {
            // `check_range` bounded `num_sectors` by limits that keep the
            // byte count within u32.
            let bytes = r.num_sectors.saturating_mul(512);
            let offload = cx.limits.write_zeroes_offload
                && !cx.limits.write_through
                && !self.no_zeroes_offload;
            let kind = match op {
                Op::Discard => BioKind::Discard,
                _ if offload && r.unmap => BioKind::WriteZeroes,
                _ if offload && !self.no_unmap_offload => BioKind::WriteZeroesNoUnmap,
                _ => BioKind::ZeroRange,
            };
            let bio = Bio::new(&cx.target, kind, 0, r.sector, bytes, tok)?;
            if kind == BioKind::ZeroRange {
                zeroes.push(bio);
            } else {
                bios.push(bio);
            }
        }
        Some((bios, zeroes))
    }

    /// Whether zero ranges wait for [`Self::pump_zeroes`].
    pub(crate) fn zeroes_waiting(&self) -> bool {
        !self.zeroes.is_empty()
    }

    /// Writes zero pages for the waiting zero ranges, keeping at most
    /// [`ZERO_BIOS_IN_FLIGHT`] such bios in flight. Returns whether it
    /// submitted any.
    pub(crate) fn pump_zeroes(&mut self, to: &BioTarget<'_>, write_through: bool) -> bool {
        let kind = if write_through {
            BioKind::WriteFua
        } else {
            BioKind::Write
        };
        let mut any = false;
        while self.zero_bios < ZERO_BIOS_IN_FLIGHT && !self.orphaned {
            let Some(rec) = self.zeroes.peek_mut() else {
                break;
            };
            let (sector, left) = rec.range();
            let slot = Token::decode(rec.token()).slot;
            let mut failed = false;
            if left != 0 {
                match Bio::new(
                    to,
                    kind,
                    MAX_VECS,
                    sector,
                    0,
                    Token { slot, zero: true }.encode(),
                ) {
                    Some(mut bio) => {
                        let added = bio.add_zeroes(left);
                        rec.advance_range(added);
                        self.zero_bios += 1;
                        self.add_pending(slot, 1);
                        self.bios_out += 1;
                        bio.submit();
                        any = true;
                        if added != 0 && added < left {
                            continue;
                        }
                        failed = added == 0;
                    }
                    None => failed = true,
                }
            }
            // The whole range is on its way (or failed): the record goes.
            drop(self.zeroes.pop());
            self.zero_ranges = self.zero_ranges.saturating_sub(1);
            self.slot_bio_done(slot, if failed { -1 } else { 0 });
        }
        any
    }

    /// Whether publishing may touch guest memory now. A broken queue
    /// never does again: it is stopped, and what the VMM does to the
    /// ring's memory afterwards is not the device's business.
    pub(crate) fn may_publish(&self) -> bool {
        self.memory_ok() && !self.broken
    }

    /// Gives up what waits for the slow path or for guest memory: for a
    /// queue whose device is gone. Its requests end without an answer.
    pub(crate) fn orphan(&mut self) {
        self.orphaned = true;
        self.stall = None;
        self.stall_taken = false;
        while let Some(bio) = self.resubmit.pop().or_else(|| self.no_room.pop()) {
            let slot = Token::decode(bio.token()).slot;
            bio.release(false);
            self.slot_bio_done(slot, -1);
        }
        while let Some(rec) = self.zeroes.pop() {
            let slot = Token::decode(rec.token()).slot;
            drop(rec);
            self.slot_bio_done(slot, -1);
        }
        self.zero_ranges = 0;
        self.ndone_drop();
    }

    /// Frees the slots that are done without answering them.
    fn ndone_drop(&mut self) {
        while self.ndone > 0 {
            self.ndone -= 1;
            let slot = self.done[self.ndone];
            // Each done slot is given back once: it cannot fail.
            let _ = self.slots.release(slot);
        }
        self.nused = 0;
        self.signal_due = false;
    }
}

/// `Batch::Stall` if `mem` saw a page not present, else the ring error.
fn stalled_or(mem: &OwnerMemory, e: RingError) -> Result<Batch, RingError> {
    if mem.stalled() {
        Ok(Batch::Stall)
    } else {
        Err(e)
    }
}
