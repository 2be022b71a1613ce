// SPDX-License-Identifier: GPL-2.0

//! One open `/dev/vhost-blk`: a vhost-blk device and its ioctl state
//! machine.
//!
//! The ioctls follow `drivers/vhost/vhost.c`: `VHOST_SET_OWNER` binds the
//! device to the caller's address space, and every ioctl that configures
//! the device afterwards must come from that address space (`EPERM`
//! otherwise, as `vhost_dev_check_owner`). Queue geometry cannot change
//! while a backend is attached (`EBUSY`).

use crate::ffi::bdev::BdevFile;
use crate::ffi::bio::{with_plug, BioList, DoneBios};
use crate::ffi::cgroup::Blkcg;
use crate::ffi::eventfd::EventFd;
use crate::ffi::mm::OwnerMm;
use crate::ffi::poll::KickPoll;
use crate::ffi::seq::SeqFile;
use crate::ffi::uaccess::OwnerMemory;
use crate::ffi::worker::{Kthread, MmUse, Waker};
use crate::vcore::blk::{self, BlkLimits};
use crate::vcore::features;
use crate::vcore::memory::{MemRegion, MemTable, MemTableError, MAX_MEM_REGIONS};
use crate::vcore::ring::{self, Chain, RingFeatures, Vring, VringAddrs};
use crate::vcore::uapi::{
    self, VhostBlkBackend, VhostMemoryHeader, VhostMemoryRegion, VhostVringAddr, VhostVringFile,
    VhostVringState, VHOST_BLK_MAX_QUEUES,
};
use crate::vq::{self, Ctx, Flush, VqRuntime};
use crate::worker::{Policy, Pool, Worker};
use core::fmt::Write;
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::error::Error;
use kernel::prelude::*;
use kernel::sync::lock::{mutex::MutexBackend, Guard};
use kernel::sync::{Arc, ArcBorrow, CondVar, Mutex};

/// The device lock held.
type StateGuard<'a> = Guard<'a, State, MutexBackend>;
use kernel::uaccess::UserSlice;

/// An errno that `kernel::error::code` of 6.12 lacks.
fn errno(e: u32) -> Error {
    Error::from_errno(-(e as i32))
}

/// The ioctls only the owner may issue (handled by `owner_ioctl`).
const OWNER_IOCTLS: [u32; 11] = [
    uapi::VHOST_RESET_OWNER,
    uapi::VHOST_SET_MEM_TABLE,
    uapi::VHOST_SET_VRING_NUM,
    uapi::VHOST_SET_VRING_ADDR,
    uapi::VHOST_SET_VRING_BASE,
    uapi::VHOST_GET_VRING_BASE,
    uapi::VHOST_SET_VRING_KICK,
    uapi::VHOST_SET_VRING_CALL,
    uapi::VHOST_SET_VRING_ERR,
    uapi::VHOST_BLK_SET_BACKEND,
    uapi::VHOST_BLK_SET_SERIAL,
];

/// The configuration of one virtqueue, as set by the vring ioctls.
#[derive(Default)]
struct VqConfig {
    /// Queue size; 0 until `VHOST_SET_VRING_NUM`.
    num: u32,
    /// Ring addresses, once `VHOST_SET_VRING_ADDR` succeeded.
    addrs: Option<VringAddrs>,
    /// The avail index to start from (`VHOST_SET_VRING_BASE`).
    base: u16,
    /// Guest-to-host notifications, polled for as long as they are set.
    kick: Option<KickPoll>,
    /// Host-to-guest interrupts (irqfd).
    call: Option<EventFd>,
    /// Signalled when the guest breaks the ring.
    err: Option<EventFd>,
    /// The queue while it is served.
    rt: Option<VqRuntime>,
}

/// Device state protected by [`VhostBlkDev::state`].
struct State {
    owner: Option<OwnerMm>,
    acked_features: u64,
    acked_backend_features: u64,
    /// The validated memory table, sorted by guest address.
    mem: KVec<MemRegion>,
    vqs: KVec<VqConfig>,
    backend: Option<BdevFile>,
    /// What requests are checked against while a backend is attached.
    limits: Option<BlkLimits>,
    serial: [u8; uapi::VIRTIO_BLK_ID_BYTES],
    /// The shared worker serving the device, from `VHOST_SET_OWNER` on.
    worker: Option<Arc<Worker>>,
    /// The owner's io cgroup, charged for the device's bios.
    blkcg: Option<Blkcg>,
    /// Scratch space for the chain being parsed.
    chain: KBox<Chain>,
}

impl State {
    fn new() -> Result<Self> {
        let mut vqs = KVec::with_capacity(VHOST_BLK_MAX_QUEUES as usize, GFP_KERNEL)?;
        for _ in 0..VHOST_BLK_MAX_QUEUES {
            vqs.push(VqConfig::default(), GFP_KERNEL)?;
        }
        Ok(Self {
            owner: None,
            acked_features: 0,
            acked_backend_features: 0,
            mem: KVec::new(),
            vqs,
            backend: None,
            limits: None,
            serial: [0; uapi::VIRTIO_BLK_ID_BYTES],
            worker: None,
            blkcg: None,
            chain: KBox::new(Chain::new(), GFP_KERNEL)?,
        })
    }

    /// `vhost_dev_check_owner`: the caller must run in the owner's mm.
    fn check_owner(&self) -> Result {
        match &self.owner {
            Some(mm) if mm.is_current() => Ok(()),
            _ => Err(EPERM),
        }
    }

    /// The queue `index`, or `ENOBUFS` as vhost answers for a queue it does
    /// not have.
    fn vq(&mut self, index: u32) -> Result<&mut VqConfig> {
        self.vqs
            .get_mut(index as usize)
            .ok_or_else(|| errno(kernel::bindings::ENOBUFS))
    }

    fn check_stopped(&self) -> Result {
        if self.backend.is_some() {
            Err(EBUSY)
        } else {
            Ok(())
        }
    }
}

/// A vhost-blk device: the state behind one open file of `/dev/vhost-blk`.
///
/// Field order matters for drop: the state (with its kick polls) goes
/// before the waker the polls point at.
#[pin_data]
pub(crate) struct VhostBlkDev {
    #[pin]
    state: Mutex<State>,
    /// Signalled by the worker whenever requests complete (for drains).
    #[pin]
    drained: CondVar,
    waker: Waker,
    bios: BioList,
    /// Queues left polled by the worker (bit per queue), so that a pass
    /// can skip a device with nothing to do without taking its lock.
    polling: AtomicU32,
    /// The device's number in statistics and fdinfo.
    id: u32,
    pool: Arc<Pool>,
}

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

impl VhostBlkDev {
    /// Creates a device for a new open file, to be served by `pool`.
    pub(crate) fn new(pool: Arc<Pool>) -> Result<Arc<Self>> {
        let state = State::new()?;
        let bios = BioList::new()?;
        Arc::pin_init(
            pin_init!(Self {
                state <- kernel::new_mutex!(state),
                drained <- kernel::new_condvar!(),
                waker: Waker::new(),
                bios,
                polling: AtomicU32::new(0),
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                pool,
            }),
            GFP_KERNEL,
        )
    }

    /// Called when the file is released, with the file's reference: stops
    /// every queue, waits for in-flight requests, leaves the worker and
    /// drops everything the device holds.
    pub(crate) fn release(self: Arc<Self>) {
        let thread = {
            let mut st = self.state.lock();
            self.shutdown(&mut st)
        };
        // Stopping an idle worker waits for it, and it takes device locks.
        drop(thread);
    }

    /// Resets the device to the state of a fresh open: stops every queue,
    /// drains, drops every reference and leaves the worker. Returns the
    /// worker's thread if the device was its last, to be stopped by the
    /// caller once the lock is released.
    fn shutdown(&self, st: &mut StateGuard<'_>) -> Option<Kthread> {
        self.stop_queues(st, None);
        for vq in st.vqs.iter_mut() {
            // No kick wake-up runs once its poll is gone.
            *vq = VqConfig::default();
        }
        self.waker.forget_waiting();
        // SAFETY: no kick poll is left and no bio is in flight, so no
        // wake-up can reach the worker any more.
        unsafe {
            self.waker.set_target(None);
            self.bios.set_wake(None);
        }
        self.polling.store(0, Ordering::Relaxed);
        st.backend = None;
        st.limits = None;
        st.mem = KVec::new();
        st.acked_features = 0;
        st.acked_backend_features = 0;
        st.serial = [0; uapi::VIRTIO_BLK_ID_BYTES];
        st.owner = None;
        st.blkcg = None;
        let worker = st.worker.take()?;
        self.pool.detach(self, &worker)
    }

    /// Stops queue `only` (or all), waits until it has no request in
    /// flight, and records where it stopped as its base.
    fn stop_queues(&self, st: &mut StateGuard<'_>, only: Option<usize>) {
        let chosen = |i: usize| only.map_or(true, |q| q == i);
        for (i, vq) in st.vqs.iter_mut().enumerate() {
            if let Some(rt) = vq.rt.as_mut().filter(|_| chosen(i)) {
                rt.stopping = true;
            }
        }
        // The worker completes in-flight requests and signals `drained`;
        // the lock is released while waiting.
        while st
            .vqs
            .iter()
            .enumerate()
            .filter(|(i, _)| chosen(*i))
            .filter_map(|(_, v)| v.rt.as_ref())
            .any(|rt| rt.inflight() != 0)
        {
            self.waker.wake();
            self.drained.wait(st);
        }
        for (i, vq) in st.vqs.iter_mut().enumerate() {
            if !chosen(i) {
                continue;
            }
            if let Some(rt) = vq.rt.take() {
                vq.base = rt.last_avail_idx();
            }
        }
    }

    /// Starts serving every configured queue on a newly attached backend.
    fn start_queues(&self, st: &mut State) -> Result {
        let acked = st.acked_features;
        let has = |b| acked & features::bit(b) != 0;
        let rf = RingFeatures {
            indirect: has(features::VIRTIO_RING_F_INDIRECT_DESC),
            event_idx: has(features::VIRTIO_RING_F_EVENT_IDX),
            notify_on_empty: has(features::VIRTIO_F_NOTIFY_ON_EMPTY),
        };
        for (i, vq) in st.vqs.iter_mut().enumerate() {
            let Some(addrs) = vq.addrs.filter(|_| vq.num != 0) else {
                continue;
            };
            let vring = Vring::new(vq.num, addrs, rf, vq.base).map_err(|_| EINVAL)?;
            vq.rt = Some(VqRuntime::new(i as u32, vring)?);
            // Serve what the ring already holds; not a guest kick.
            self.waker.kick_quiet(i as u32);
            self.waker.wake();
        }
        Ok(())
    }

    /// One turn of the worker on this device: completions, published and
    /// signalled at once, then up to the quota from each kicked or polled
    /// queue, then the completions those submissions already produced, and
    /// used-ring updates and interrupts, one per queue. Returns whether it
    /// found work.
    ///
    /// Completions go out before new submissions so that a queue's finished
    /// requests never wait behind a neighbour's turn of bio submissions.
    pub(crate) fn run_once(&self, policy: &Policy) -> bool {
        if !self.waker.any() && self.bios.is_empty() && self.polling.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let Some(owner) = st.owner.as_ref() else {
            // Reset: nothing to serve; drop stray kicks and completions.
            self.waker.take();
            drop(self.bios.take());
            return false;
        };
        // SAFETY: the worker kthread has no mm of its own and drops the
        // guard before returning.
        let _mm = unsafe { MmUse::new(owner) };
        let mem = OwnerMemory;
        let table = match MemTable::validate(&mut st.mem) {
            Ok(t) => t,
            Err(_) => MemTable::EMPTY,
        };
        let mut errors: u32 = 0;
        let mut completed = self.complete_bios(&mut st.vqs, &mem, &table, &mut errors);
        let pending = self.waker.take();
        let mut found = completed;
        if let (Some(limits), Some(bdev)) = (st.limits.as_ref(), st.backend.as_ref()) {
            let cx = Ctx {
                mem: &mem,
                table: &table,
                limits,
                bdev,
                bios: &self.bios,
                serial: &st.serial,
                blkcg: st.blkcg.as_ref(),
                quota: policy.quota,
                waker: &self.waker,
                poll: policy.poll,
            };
            let mut polling = 0u32;
            // One plug for the turn: the bios of every queue go to the
            // driver together.
            with_plug(|| {
                for (i, vq) in st.vqs.iter_mut().enumerate() {
                    let Some(rt) = vq.rt.as_mut() else {
                        // A queue that is not served never waits.
                        self.waker.turn_starts(i as u32);
                        continue;
                    };
                    if pending & (1 << i) == 0 && !rt.polling {
                        continue;
                    }
                    let before = rt.stats.requests;
                    match rt.handle_kick(&cx, &mut st.chain) {
                        Ok(true) => self.waker.kick_quiet(i as u32),
                        Ok(false) => {}
                        Err(e) => {
                            pr_debug!("vq {}: guest broke the ring: {:?}\n", i, e);
                            errors |= 1 << i;
                        }
                    }
                    found |= rt.stats.requests != before;
                    if rt.polling {
                        polling |= 1 << i;
                    }
                }
            });
            self.polling.store(polling, Ordering::Relaxed);
        } else {
            // No backend: no queue is served, so none waits (the worker's
            // other devices keep their full turns).
            self.waker.forget_waiting();
        }
        // A device that completes in its submission path (or before the
        // plug's flush returned) is answered in this turn, not the next.
        if self.complete_bios(&mut st.vqs, &mem, &table, &mut errors) {
            completed = true;
            found = true;
        }
        self.flush_all(&mut st.vqs, &mem, errors);
        if completed {
            self.drained.notify_all();
        }
        found
    }

    /// Accounts every bio completed so far to its queue (slots freed,
    /// statuses written, used elements gathered) and publishes each queue
    /// as soon as its bios are done, the queue with the fewest first: a
    /// queue with one finished request is answered before a neighbour's
    /// batch of a hundred is worked through. Adds queues whose ring broke
    /// to `errors`; returns whether any bio completed.
    fn complete_bios(
        &self,
        vqs: &mut KVec<VqConfig>,
        mem: &OwnerMemory,
        table: &MemTable<'_>,
        errors: &mut u32,
    ) -> bool {
        const N: usize = VHOST_BLK_MAX_QUEUES as usize;
        let mut by_queue = [const { DoneBios::new() }; N];
        let mut counts = [0u32; N];
        for bio in self.bios.take() {
            let (q, _) = vq::untoken(bio.token());
            match by_queue.get_mut(q as usize) {
                Some(list) => {
                    list.push(bio);
                    counts[q as usize] += 1;
                }
                None => {
                    pr_warn!("completion for an unknown queue {}\n", q);
                    bio.release(true);
                }
            }
        }
        let mut completed = false;
        while let Some(q) = (0..N)
            .filter(|&q| counts[q] != 0)
            .min_by_key(|&q| counts[q])
        {
            counts[q] = 0;
            let list = core::mem::replace(&mut by_queue[q], DoneBios::new());
            let Some(vq) = vqs.get_mut(q) else {
                continue;
            };
            let Some(rt) = vq.rt.as_mut() else {
                pr_warn!("completion for a stopped queue {}\n", q);
                // Dropping the list releases its bios.
                continue;
            };
            for bio in list {
                let (_, slot) = vq::untoken(bio.token());
                let errno = bio.errno();
                bio.release(rt.slot_dirty(slot));
                if rt.complete_bio(mem, table, slot, errno).is_err() {
                    *errors |= 1 << q;
                }
            }
            completed = true;
            // Freed slots may let a full queue take more chains.
            self.waker.kick_quiet(q as u32);
            flush_queue(vq, mem, *errors & (1 << q) != 0);
        }
        completed
    }

    /// Ends polling on every polled queue: notifications back on, rings
    /// re-checked. Returns whether a ring had chains (its queue is then
    /// marked pending for the worker's next pass).
    pub(crate) fn end_polling(&self) -> bool {
        if self.polling.swap(0, Ordering::Relaxed) == 0 {
            return false;
        }
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let Some(owner) = st.owner.as_ref() else {
            return false;
        };
        // SAFETY: as in `run_once`.
        let _mm = unsafe { MmUse::new(owner) };
        let mem = OwnerMemory;
        let mut again = false;
        let mut errors = 0u32;
        for (i, vq) in st.vqs.iter_mut().enumerate() {
            let Some(rt) = vq.rt.as_mut() else {
                continue;
            };
            match rt.end_polling(&mem) {
                Ok(true) => {
                    self.waker.kick_quiet(i as u32);
                    again = true;
                }
                Ok(false) => {}
                Err(_) => errors |= 1 << i,
            }
        }
        if errors != 0 {
            self.flush_all(&mut st.vqs, &mem, errors);
        }
        again
    }

    /// Publishes used elements and signals interrupts; stops and reports
    /// (through the err eventfd) the queues in `errors`.
    fn flush_all(&self, vqs: &mut KVec<VqConfig>, mem: &OwnerMemory, errors: u32) {
        for (i, vq) in vqs.iter_mut().enumerate() {
            flush_queue(vq, mem, errors & (1 << i) != 0);
        }
    }

    /// Prints the device's `device` and `vq` lines of the statistics file
    /// (format in `admin-guide.rst`).
    pub(crate) fn show_stats(&self, out: &mut SeqFile) -> core::fmt::Result {
        let st = self.state.lock();
        let Some(worker) = st.worker.as_ref() else {
            return Ok(());
        };
        let (major, minor) = st
            .backend
            .as_ref()
            .map_or((0, 0), |b| (b.info().major, b.info().minor));
        writeln!(
            out,
            "device id={} worker={} backend={}:{}",
            self.id,
            worker.id(),
            major,
            minor
        )?;
        for (i, vq) in st.vqs.iter().enumerate() {
            let Some(rt) = vq.rt.as_ref() else {
                continue;
            };
            let s = &rt.stats;
            let (num, avail_idx, last_avail, used_idx, notify, broken) = rt.ring_state();
            writeln!(
                out,
                "vq device={} index={} requests={} bytes={} kicks={} polled={} irqs={} irqs_suppressed={} quota_hits={} inflight={} num={} avail_idx={} last_avail={} used_idx={} notify={} broken={}",
                self.id,
                i,
                s.requests,
                s.bytes,
                self.waker.kicks(i),
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
            )?;
        }
        Ok(())
    }

    /// Prints the device's fdinfo lines.
    pub(crate) fn show_fdinfo(&self, out: &mut SeqFile) -> core::fmt::Result {
        writeln!(out, "vhost-blk-device:\t{}", self.id)?;
        if let Some(w) = self.state.lock().worker.as_ref() {
            writeln!(out, "vhost-blk-worker:\t{}", w.id())?;
        }
        Ok(())
    }

    /// Handles one ioctl on the device's file.
    pub(crate) fn ioctl(self: ArcBorrow<'_, Self>, cmd: u32, arg: usize) -> Result<i32> {
        let mut st = self.state.lock();
        match cmd {
            uapi::VHOST_GET_FEATURES => put_u64(arg, features::SUPPORTED),
            uapi::VHOST_SET_FEATURES => {
                let acked = get_u64(arg)?;
                if !features::acceptable(acked) {
                    return Err(errno(kernel::bindings::EOPNOTSUPP));
                }
                st.check_stopped()?;
                st.acked_features = acked;
                Ok(0)
            }
            uapi::VHOST_GET_BACKEND_FEATURES => put_u64(arg, features::SUPPORTED_BACKEND),
            uapi::VHOST_SET_BACKEND_FEATURES => {
                let acked = get_u64(arg)?;
                if acked & !features::SUPPORTED_BACKEND != 0 {
                    return Err(errno(kernel::bindings::EOPNOTSUPP));
                }
                st.acked_backend_features = acked;
                Ok(0)
            }
            uapi::VHOST_SET_OWNER => {
                if st.owner.is_some() {
                    return Err(EBUSY);
                }
                let owner = OwnerMm::current()?;
                let worker = self.pool.attach(&Arc::from(self))?;
                // SAFETY: the worker (and its target) outlives these
                // pointers: `shutdown` clears them, after every source of
                // wake-ups is gone, before it leaves the worker.
                unsafe {
                    self.waker.set_target(Some(worker.wake_target()));
                    self.bios.set_wake(Some(worker.wake_target()));
                }
                st.worker = Some(worker);
                st.blkcg = Blkcg::current();
                st.owner = Some(owner);
                Ok(0)
            }
            // Unknown commands are ENOTTY for everyone; known ones need the
            // owner.
            _ if !OWNER_IOCTLS.contains(&cmd) => Err(ENOTTY),
            uapi::VHOST_RESET_OWNER => {
                st.check_owner()?;
                let thread = self.shutdown(&mut st);
                drop(st);
                drop(thread);
                Ok(0)
            }
            _ => {
                st.check_owner()?;
                self.owner_ioctl(&mut st, cmd, arg)
            }
        }
    }

    /// The ioctls only the owner may issue.
    fn owner_ioctl(&self, st: &mut StateGuard<'_>, cmd: u32, arg: usize) -> Result<i32> {
        match cmd {
            uapi::VHOST_SET_MEM_TABLE => {
                st.mem = read_mem_table(arg)?;
                Ok(0)
            }
            uapi::VHOST_SET_VRING_NUM => {
                let s = VhostVringState::from_bytes(&read_arg(arg)?);
                st.check_stopped()?;
                let vq = st.vq(s.index)?;
                if !ring::valid_size(s.num) {
                    return Err(EINVAL);
                }
                vq.num = s.num;
                Ok(0)
            }
            uapi::VHOST_SET_VRING_ADDR => {
                let a = VhostVringAddr::from_bytes(&read_arg(arg)?);
                st.check_stopped()?;
                let vq = st.vq(a.index)?;
                // Dirty logging (live migration) is not supported.
                if a.flags != 0 {
                    return Err(errno(kernel::bindings::EOPNOTSUPP));
                }
                let addrs = VringAddrs {
                    desc: a.desc_user_addr,
                    avail: a.avail_user_addr,
                    used: a.used_user_addr,
                };
                let checked = if vq.num != 0 {
                    ring::check_addrs(vq.num, &addrs)
                } else {
                    ring::check_alignment(&addrs)
                };
                checked.map_err(|_| EINVAL)?;
                vq.addrs = Some(addrs);
                Ok(0)
            }
            uapi::VHOST_SET_VRING_BASE => {
                let s = VhostVringState::from_bytes(&read_arg(arg)?);
                st.check_stopped()?;
                let vq = st.vq(s.index)?;
                vq.base = u16::try_from(s.num).map_err(|_| EINVAL)?;
                Ok(0)
            }
            uapi::VHOST_GET_VRING_BASE => {
                let mut s = VhostVringState::from_bytes(&read_arg(arg)?);
                st.vq(s.index)?;
                // A running queue stops, and its in-flight requests finish
                // first, so that the base covers every used element.
                self.stop_queues(st, Some(s.index as usize));
                s.num = u32::from(st.vq(s.index)?.base);
                UserSlice::new(arg, VhostVringState::SIZE)
                    .writer()
                    .write_slice(&s.to_bytes())?;
                Ok(0)
            }
            uapi::VHOST_SET_VRING_KICK | uapi::VHOST_SET_VRING_CALL | uapi::VHOST_SET_VRING_ERR => {
                let f = VhostVringFile::from_bytes(&read_arg(arg)?);
                st.vq(f.index)?;
                if cmd == uapi::VHOST_SET_VRING_KICK {
                    let poll = match f.fd {
                        -1 => None,
                        // SAFETY: the poll is stored in this device's state,
                        // which is dropped before its waker.
                        fd => Some(unsafe { KickPoll::start(fd, &self.waker, f.index)? }),
                    };
                    st.vq(f.index)?.kick = poll;
                    return Ok(0);
                }
                let efd = match f.fd {
                    -1 => None,
                    fd => Some(EventFd::from_fd(fd)?),
                };
                let vq = st.vq(f.index)?;
                if cmd == uapi::VHOST_SET_VRING_CALL {
                    vq.call = efd;
                } else {
                    vq.err = efd;
                }
                Ok(0)
            }
            uapi::VHOST_BLK_SET_BACKEND => {
                let b = VhostBlkBackend::from_bytes(&read_arg(arg)?);
                if b.flags != 0 {
                    return Err(EINVAL);
                }
                if b.fd == -1 {
                    self.stop_queues(st, None);
                    st.backend = None;
                    st.limits = None;
                    return Ok(0);
                }
                if st.backend.is_some() {
                    return Err(EBUSY);
                }
                st.backend = match b.fd {
                    -1 => None,
                    fd => {
                        let bdev = BdevFile::from_fd(fd)?;
                        let i = bdev.info();
                        pr_debug!(
                            "backend attached: {} sectors, {}-byte blocks{}{}\n",
                            i.capacity,
                            i.logical_block_size,
                            if i.read_only != 0 { ", read-only" } else { "" },
                            if i.write_cache != 0 {
                                ", write cache"
                            } else {
                                ""
                            }
                        );
                        Some(bdev)
                    }
                };
                st.limits = st.backend.as_ref().map(|b| limits(b, st.acked_features));
                if let (Some(w), Some(b)) = (st.worker.as_ref(), st.backend.as_ref()) {
                    self.pool.follow_bdev(w, b);
                }
                if let Err(e) = self.start_queues(st) {
                    for vq in st.vqs.iter_mut() {
                        vq.rt = None;
                    }
                    st.backend = None;
                    st.limits = None;
                    return Err(e);
                }
                Ok(0)
            }
            uapi::VHOST_BLK_SET_SERIAL => {
                st.serial = read_arg(arg)?;
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }
}

/// Publishes the used elements of a running queue and signals its
/// interrupt if the driver wants one; stops the queue and reports it
/// (through the err eventfd) if `broke`, or if publishing faults.
fn flush_queue(vq: &mut VqConfig, mem: &OwnerMemory, broke: bool) {
    let Some(rt) = vq.rt.as_mut() else {
        return;
    };
    let mut broke = broke;
    match rt.flush_used(mem) {
        Ok(Flush::Signal) => {
            if let Some(call) = &vq.call {
                call.signal();
            }
        }
        Ok(_) => {}
        Err(_) => broke = true,
    }
    if broke && !rt.broken {
        rt.broken = true;
        if let Some(err) = &vq.err {
            err.signal();
        }
    }
}

/// The largest request vhost-blk accepts, in bytes.
const MAX_TRANSFER: u32 = 8 << 20;

/// The largest DISCARD or offloaded WRITE_ZEROES range, in sectors: its
/// byte count must fit a bio's 32-bit size.
const MAX_RANGE_SECTORS: u32 = u32::MAX >> 9;

/// The largest WRITE_ZEROES range, in sectors (8 MiB): at most 8 bios of
/// zero pages per range, 256 per request.
const MAX_ZEROOUT_SECTORS: u32 = 16384;

/// What requests are checked against, from the backend and the acked
/// features.
fn limits(bdev: &BdevFile, acked: u64) -> BlkLimits {
    let i = bdev.info();
    BlkLimits {
        capacity: i.capacity,
        logical_block_size: i.logical_block_size.max(512),
        read_only: i.read_only != 0,
        flush: acked & features::bit(features::VIRTIO_BLK_F_FLUSH) != 0,
        max_discard_seg: if i.max_discard_sectors != 0 {
            blk::MAX_RANGES
        } else {
            0
        },
        max_discard_sectors: i.max_discard_sectors.min(MAX_RANGE_SECTORS),
        max_write_zeroes_seg: blk::MAX_RANGES,
        // Any range may be written from the zero page (see
        // `vq::submit_ranges`), so this bound holds with or without offload.
        max_write_zeroes_sectors: MAX_ZEROOUT_SECTORS.min(if i.max_write_zeroes_sectors != 0 {
            i.max_write_zeroes_sectors
        } else {
            MAX_ZEROOUT_SECTORS
        }),
        max_transfer: MAX_TRANSFER,
        write_zeroes_offload: i.max_write_zeroes_sectors != 0,
        write_through: i.write_cache != 0
            && acked & features::bit(features::VIRTIO_BLK_F_FLUSH) == 0,
    }
}

/// Copies the `N`-byte argument of an ioctl from userspace.
fn read_arg<const N: usize>(arg: usize) -> Result<[u8; N]> {
    let mut b = [0u8; N];
    UserSlice::new(arg, N).reader().read_slice(&mut b)?;
    Ok(b)
}

/// Copies in and validates the `struct vhost_memory` at `arg`.
fn read_mem_table(arg: usize) -> Result<KVec<MemRegion>> {
    let hdr = VhostMemoryHeader::from_bytes(&read_arg(arg)?);
    if hdr.padding != 0 {
        return Err(errno(kernel::bindings::EOPNOTSUPP));
    }
    let n = hdr.nregions as usize;
    if n > MAX_MEM_REGIONS {
        return Err(E2BIG);
    }
    let mut regions = KVec::with_capacity(n, GFP_KERNEL)?;
    let base = arg.checked_add(VhostMemoryHeader::SIZE).ok_or(EFAULT)?;
    let mut reader = UserSlice::new(base, n * VhostMemoryRegion::SIZE).reader();
    for _ in 0..n {
        let mut b = [0u8; VhostMemoryRegion::SIZE];
        reader.read_slice(&mut b)?;
        let r = VhostMemoryRegion::from_bytes(&b);
        if r.flags_padding != 0 {
            return Err(errno(kernel::bindings::EOPNOTSUPP));
        }
        regions.push(
            MemRegion {
                guest_phys_addr: r.guest_phys_addr,
                size: r.memory_size,
                userspace_addr: r.userspace_addr,
            },
            GFP_KERNEL,
        )?;
    }
    MemTable::validate(&mut regions).map_err(|e| match e {
        MemTableError::TooManyRegions => E2BIG,
        _ => EINVAL,
    })?;
    Ok(regions)
}

/// Reads the `u64` argument of an ioctl from userspace.
fn get_u64(arg: usize) -> Result<u64> {
    Ok(u64::from_ne_bytes(read_arg(arg)?))
}

/// Writes the `u64` result of an ioctl to userspace.
fn put_u64(arg: usize, value: u64) -> Result<i32> {
    UserSlice::new(arg, core::mem::size_of::<u64>())
        .writer()
        .write_slice(&value.to_ne_bytes())?;
    Ok(0)
}
