// SPDX-License-Identifier: GPL-2.0

//! One virtqueue at run time: its ring, its preallocated request slots and
//! the used elements waiting to be published.
//!
//! Request state lives in host-owned slots taken from a free list, never
//! in an array indexed by the guest's head index: a guest that re-posts a
//! head still in flight gets a second, independent request, and cannot
//! overwrite the first one's state.

use crate::ffi::bdev::BdevFile;
use crate::ffi::bio::{Bio, BioKind, BioList, MAX_VECS};
use crate::ffi::cgroup::Blkcg;
use crate::ffi::uaccess::OwnerMemory;
use crate::ffi::worker::Waker;
use crate::vcore::blk::{self, BlkLimits, Op, Request, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK};
use crate::vcore::memory::{MemTable, UserMemory};
use crate::vcore::ring::{Chain, RingError, Vring};
use crate::vcore::sched::{Quota, Turn};
use crate::vcore::uapi::VIRTIO_BLK_ID_BYTES;
use kernel::prelude::*;

/// Page size assumed for sizing bios.
const PAGE_SIZE: u32 = 4096;

/// One request in flight.
#[derive(Clone, Copy, Default)]
struct Slot {
    head: u16,
    status_addr: u64,
    /// Bytes the device wrote into the chain, status byte included.
    used_len: u32,
    status: u8,
    /// Bios submitted and not yet completed.
    pending: u32,
    /// The device writes guest memory (reads): dirty pages on release.
    dirty: bool,
}

/// What a queue needs from its device while it works.
pub(crate) struct Ctx<'a> {
    pub(crate) mem: &'a OwnerMemory,
    pub(crate) table: &'a MemTable<'a>,
    pub(crate) limits: &'a BlkLimits,
    pub(crate) bdev: &'a BdevFile,
    pub(crate) bios: &'a BioList,
    pub(crate) serial: &'a [u8; VIRTIO_BLK_ID_BYTES],
    /// The owner's io cgroup, charged for every bio.
    pub(crate) blkcg: Option<&'a Blkcg>,
    /// What a queue may take in one turn.
    pub(crate) quota: Quota,
    /// The device's wake-ups: tells a turn whether another queue waits.
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
}

/// How a batch of a queue's turn ended ([`VqRuntime::handle_kick`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Batch {
    /// The batch is full: publish its completions, then take the next.
    Full,
    /// The queue used up its quota: it may have more, for a later turn.
    Yield,
    /// The ring is empty, or no slot is free, or the queue stopped.
    Done,
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

/// A request token: queue index and slot index, carried by each bio.
pub(crate) fn token(q: u32, slot: u16) -> usize {
    ((q as usize) << 16) | usize::from(slot)
}

/// The queue and slot of a token.
pub(crate) fn untoken(t: usize) -> (u32, u16) {
    ((t >> 16) as u32, (t & 0xffff) as u16)
}

/// A virtqueue being served.
pub(crate) struct VqRuntime {
    index: u32,
    vring: Vring,
    slots: KVec<Slot>,
    /// Free slot indexes: `free[..nfree]`.
    free: KVec<u16>,
    nfree: usize,
    /// Used elements to publish: `used[..nused]`.
    used: KVec<(u16, u32)>,
    nused: usize,
    /// The guest broke the ring: no more chains are taken.
    pub(crate) broken: bool,
    /// Being stopped: no more chains are taken, in-flight ones finish.
    pub(crate) stopping: bool,
    /// Guest notifications are on (the driver's view, as last written).
    notify: bool,
    /// The ring was empty with notifications off: the worker polls it.
    pub(crate) polling: bool,
    pub(crate) stats: VqStats,
}

impl VqRuntime {
    /// Serves queue `index` with `vring`, preallocating its request state.
    pub(crate) fn new(index: u32, vring: Vring) -> Result<Self> {
        let num = vring.num() as usize;
        let mut slots = KVec::with_capacity(num, GFP_KERNEL)?;
        let mut free = KVec::with_capacity(num, GFP_KERNEL)?;
        for i in 0..num {
            slots.push(Slot::default(), GFP_KERNEL)?;
            // `num` <= 32768 fits in u16.
            free.push((num - 1 - i) as u16, GFP_KERNEL)?;
        }
        // At most `num` chains are outstanding, so at most `num` used
        // elements wait between two flushes.
        let used = KVec::from_elem((0u16, 0u32), num, GFP_KERNEL)?;
        Ok(Self {
            index,
            vring,
            slots,
            free,
            nfree: num,
            used,
            nused: 0,
            broken: false,
            stopping: false,
            notify: true,
            polling: false,
            stats: VqStats::default(),
        })
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
        self.nfree as u32
    }

    /// Requests in flight.
    pub(crate) fn inflight(&self) -> usize {
        self.slots.len() - self.nfree
    }

    /// The next avail index to serve, for `VHOST_GET_VRING_BASE`.
    pub(crate) fn last_avail_idx(&self) -> u16 {
        self.vring.last_avail_idx()
    }

    /// Whether the slot of a completing bio wants its pages dirtied.
    pub(crate) fn slot_dirty(&self, slot: u16) -> bool {
        self.slots.get(usize::from(slot)).is_some_and(|s| s.dirty)
    }

    /// Takes chains from the ring and starts them, as one batch of the
    /// queue's turn `turn`: until the ring is empty, no slot is free, the
    /// batch is full
    /// (`cx.publish_batch`, [`crate::vcore::sched::PUBLISH_BATCH`]) or the queue used up its
    /// quota for this turn. The caller publishes the batch's completions
    /// and goes on with the turn while this returns [`Batch::Full`].
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
        if self.broken || self.stopping {
            self.polling = false;
            return Ok(Batch::Done);
        }
        if self.notify {
            self.vring.disable_notify(cx.mem)?;
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
            if self.nfree == 0 {
                // Completions free slots and bring the worker back.
                break Batch::Done;
            }
            if !self.vring.get_vq_desc(cx.mem, cx.table, chain)? {
                if cx.poll {
                    self.polling = true;
                    break Batch::Done;
                }
                self.polling = false;
                if self.vring.enable_notify(cx.mem)? {
                    self.vring.disable_notify(cx.mem)?;
                    continue;
                }
                self.notify = true;
                break Batch::Done;
            }
            let bytes = self.handle_chain(cx, chain)?;
            turn.charge(u64::from(bytes));
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
        if !self.polling {
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

    /// Serves one chain; returns its data bytes, for the quota.
    fn handle_chain(&mut self, cx: &Ctx<'_>, chain: &Chain) -> Result<u32, RingError> {
        let head = chain.head();
        let req = match blk::parse(cx.mem, cx.table, chain, cx.limits) {
            Err(blk::NoStatus) => return Err(RingError::NoStatus),
            Ok(Err(rej)) => {
                return self
                    .complete_now(cx, head, rej.status_addr, rej.status, 1)
                    .map(|()| 0)
            }
            Ok(Ok(req)) => req,
        };
        if matches!(req.op, Op::Read | Op::Write) {
            self.stats.bytes += u64::from(req.data.len);
        }
        self.handle_request(cx, chain, &req).map(|()| req.data.len)
    }

    fn handle_request(
        &mut self,
        cx: &Ctx<'_>,
        chain: &Chain,
        req: &Request,
    ) -> Result<(), RingError> {
        let head = chain.head();
        match req.op {
            Op::GetId => {
                let (status, n) =
                    match blk::write_data(cx.mem, cx.table, chain, &req.data, cx.serial) {
                        Ok(n) => (VIRTIO_BLK_S_OK, n),
                        Err(_) => (VIRTIO_BLK_S_IOERR, 0),
                    };
                self.complete_now(cx, head, req.status_addr, status, n + 1)
            }
            Op::Read | Op::Write | Op::Flush => self.submit(cx, chain, req, &[]),
            Op::Discard | Op::WriteZeroes => {
                // Copy every range out of guest memory and check it before
                // any bio is built: a bad range fails the whole request.
                let mut ranges = [blk::Range::default(); blk::MAX_RANGES as usize];
                let n = (req.data.len / blk::DWZ_SEG_LEN) as usize;
                let Some(ranges) = ranges.get_mut(..n) else {
                    return self.complete_now(cx, head, req.status_addr, VIRTIO_BLK_S_IOERR, 1);
                };
                for (i, r) in ranges.iter_mut().enumerate() {
                    *r = match blk::read_range(cx.mem, cx.table, chain, req, i as u32) {
                        Ok(r) => r,
                        Err(_) => {
                            return self.complete_now(
                                cx,
                                head,
                                req.status_addr,
                                VIRTIO_BLK_S_IOERR,
                                1,
                            )
                        }
                    };
                    if let Err(rej) =
                        blk::check_range(cx.limits, req.op, r.sector, r.num_sectors, r.flags)
                    {
                        return self.complete_now(cx, head, req.status_addr, rej.status(), 1);
                    }
                }
                self.submit(cx, chain, req, ranges)
            }
        }
    }

    fn complete_now(
        &mut self,
        cx: &Ctx<'_>,
        head: u16,
        status_addr: u64,
        status: u8,
        len: u32,
    ) -> Result<(), RingError> {
        cx.table.write(cx.mem, status_addr, &[status])?;
        self.push_used(head, len)
    }

    fn push_used(&mut self, head: u16, len: u32) -> Result<(), RingError> {
        // Cannot overflow (see `new`), but a full array must not panic.
        let e = self.used.get_mut(self.nused).ok_or(RingError::Fault)?;
        *e = (head, len);
        self.nused += 1;
        Ok(())
    }

    fn submit(
        &mut self,
        cx: &Ctx<'_>,
        chain: &Chain,
        req: &Request,
        ranges: &[blk::Range],
    ) -> Result<(), RingError> {
        if self.nfree == 0 {
            return Err(RingError::Fault);
        }
        self.nfree -= 1;
        let slot = self.free[self.nfree];
        let read = req.op == Op::Read;
        self.slots[usize::from(slot)] = Slot {
            head: chain.head(),
            status_addr: req.status_addr,
            used_len: if read { req.data.len + 1 } else { 1 },
            status: VIRTIO_BLK_S_OK,
            pending: 0,
            dirty: read,
        };
        let tok = token(self.index, slot);
        let submitted = match req.op {
            Op::Flush => match Bio::new(cx.bdev, 0, BioKind::Flush, 0, 0, cx.bios, tok, cx.blkcg) {
                Some(bio) => {
                    bio.submit();
                    Ok(1)
                }
                None => Err(0),
            },
            Op::Discard | Op::WriteZeroes => submit_ranges(cx, req.op, ranges, tok),
            _ => submit_data(cx, chain, req, tok),
        };
        let s = &mut self.slots[usize::from(slot)];
        match submitted {
            Ok(n) => s.pending = n,
            Err(n) => {
                s.pending = n;
                s.status = VIRTIO_BLK_S_IOERR;
            }
        }
        if s.pending == 0 {
            return self.finish(cx, slot);
        }
        Ok(())
    }

    /// Accounts a completed bio of `slot`; `errno` is its status.
    pub(crate) fn complete_bio(
        &mut self,
        cx_mem: &OwnerMemory,
        table: &MemTable<'_>,
        slot: u16,
        errno: i32,
    ) -> Result<(), RingError> {
        let Some(s) = self.slots.get_mut(usize::from(slot)) else {
            return Ok(());
        };
        if errno != 0 {
            s.status = VIRTIO_BLK_S_IOERR;
        }
        s.pending = s.pending.saturating_sub(1);
        if s.pending == 0 {
            return self.finish_with(cx_mem, table, slot);
        }
        Ok(())
    }

    fn finish(&mut self, cx: &Ctx<'_>, slot: u16) -> Result<(), RingError> {
        self.finish_with(cx.mem, cx.table, slot)
    }

    fn finish_with(
        &mut self,
        mem: &OwnerMemory,
        table: &MemTable<'_>,
        slot: u16,
    ) -> Result<(), RingError> {
        let s = self.slots[usize::from(slot)];
        // Return the slot first: whatever happens to the status write, the
        // host state is consistent.
        let f = self.free.get_mut(self.nfree).ok_or(RingError::Fault)?;
        *f = slot;
        self.nfree += 1;
        let len = if s.status == VIRTIO_BLK_S_OK {
            s.used_len
        } else {
            1
        };
        self.push_used(s.head, len)?;
        table.write(mem, s.status_addr, &[s.status])?;
        Ok(())
    }

    /// Publishes the used elements gathered so far, in one batch, and
    /// tells whether the driver wants an interrupt for them.
    pub(crate) fn flush_used(&mut self, mem: &impl UserMemory) -> Result<Flush, RingError> {
        if self.nused == 0 {
            return Ok(Flush::Nothing);
        }
        let r = self.vring.add_used(mem, &self.used[..self.nused]);
        self.nused = 0;
        r?;
        if self.vring.should_signal(mem)? {
            self.stats.irqs += 1;
            Ok(Flush::Signal)
        } else {
            self.stats.irqs_suppressed += 1;
            Ok(Flush::Suppressed)
        }
    }
}

/// Pins the data of `req` into bios and submits them. Returns how many
/// were submitted: `Ok(n)` if all the data went out, `Err(n)` if a buffer
/// was misaligned or could not be pinned (the request then fails with
/// IOERR once those `n` complete).
fn submit_data(cx: &Ctx<'_>, chain: &Chain, req: &Request, tok: usize) -> Result<u32, u32> {
    let read = req.op == Op::Read;
    let kind = match (read, cx.limits.write_through) {
        (true, _) => BioKind::Read,
        (false, false) => BioKind::Write,
        (false, true) => BioKind::WriteFua,
    };
    // Every piece must be sector-aligned in the owner's memory, as the
    // block layer requires of direct I/O; check all before pinning any.
    let mut pieces = 0u32;
    let aligned = blk::for_each_data_piece(chain, &req.data, |gpa, len| {
        match cx.table.for_each_piece(gpa, u64::from(len), |ua, n| {
            if ua % 512 != 0 || n % 512 != 0 {
                return Err(());
            }
            pieces += 1;
            Ok(())
        }) {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    });
    if aligned.is_err() {
        return Err(0);
    }
    let nr_vecs = (req.data.len / PAGE_SIZE + pieces + 1).min(MAX_VECS);
    let mut sector = req.sector;
    let mut cur: Option<Bio> = None;
    let mut submitted = 0u32;
    let r = blk::for_each_data_piece(chain, &req.data, |gpa, len| {
        let r = cx.table.for_each_piece(gpa, u64::from(len), |ua, n| {
            let (mut ua, mut left) = (ua, n as u32);
            while left > 0 {
                if cur.is_none() {
                    cur = Bio::new(cx.bdev, nr_vecs, kind, sector, 0, cx.bios, tok, cx.blkcg);
                }
                let Some(bio) = cur.as_mut() else {
                    return Err(());
                };
                match bio.add_user(ua, left, read) {
                    Ok(0) => {
                        if let Some(full) = cur.take() {
                            full.submit();
                            submitted += 1;
                        }
                    }
                    Ok(added) => {
                        ua += u64::from(added);
                        left -= added;
                        sector += u64::from(added / 512);
                    }
                    Err(_) => return Err(()),
                }
            }
            Ok(())
        });
        match r {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    });
    if r.is_err() {
        // Dropping the unsubmitted bio unpins what it holds.
        drop(cur);
        return Err(submitted);
    }
    if let Some(last) = cur {
        last.submit();
        submitted += 1;
    }
    Ok(submitted)
}

/// Submits the bios of checked DISCARD or WRITE_ZEROES `ranges`. Returns
/// how many were submitted, as [`submit_data`] does: `Err(n)` if a bio
/// could not be allocated (the request then fails with IOERR once those
/// `n` complete). Write-zeroes uses the backend's offload where it has one
/// and the guest allows deallocation (UNMAP); otherwise it writes the
/// shared zero page, which never deallocates and works on every device
/// (some offloads, like loop on tmpfs, cannot zero without deallocating).
fn submit_ranges(cx: &Ctx<'_>, op: Op, ranges: &[blk::Range], tok: usize) -> Result<u32, u32> {
    let mut submitted = 0;
    for r in ranges.iter().filter(|r| r.num_sectors != 0) {
        // `check_range` bounded `num_sectors` by limits that keep the byte
        // count within u32.
        let bytes = r.num_sectors.saturating_mul(512);
        let kind = match op {
            Op::Discard => BioKind::Discard,
            // In write-through mode zeroes are written with FUA rather than
            // offloaded, so that they too are durable on completion.
            _ if !(cx.limits.write_zeroes_offload && r.unmap) || cx.limits.write_through => {
                let kind = if cx.limits.write_through {
                    BioKind::WriteFua
                } else {
                    BioKind::Write
                };
                let (mut sector, mut left) = (r.sector, bytes);
                while left > 0 {
                    let Some(mut bio) =
                        Bio::new(cx.bdev, MAX_VECS, kind, sector, 0, cx.bios, tok, cx.blkcg)
                    else {
                        return Err(submitted);
                    };
                    let added = bio.add_zeroes(left);
                    bio.submit();
                    submitted += 1;
                    if added == 0 {
                        break;
                    }
                    left -= added;
                    sector += u64::from(added / 512);
                }
                continue;
            }
            _ => BioKind::WriteZeroesUnmap,
        };
        let Some(bio) = Bio::new(cx.bdev, 0, kind, r.sector, bytes, cx.bios, tok, cx.blkcg) else {
            return Err(submitted);
        };
        bio.submit();
        submitted += 1;
    }
    Ok(submitted)
}
