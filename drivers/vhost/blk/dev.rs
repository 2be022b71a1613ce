// SPDX-License-Identifier: GPL-2.0

//! One open `/dev/vhost-blk`: a vhost-blk device and its ioctl state
//! machine.
//!
//! The ioctls follow `drivers/vhost/vhost.c`: `VHOST_SET_OWNER` binds the
//! device to the caller's address space, and every ioctl that configures
//! the device afterwards must come from that address space (`EPERM`
//! otherwise, as `vhost_dev_check_owner`). Queue geometry cannot change
//! while a backend is attached (`EBUSY`).
//!
//! The device's queues (`queue.rs`) are what the workers serve, each on
//! its own: the device's lock guards the configuration, each queue's lock
//! its ring and what its turns need. Locking order: the device's lock,
//! then a queue's, then the pool's.

use crate::ffi::bdev::BdevFile;
use crate::ffi::cgroup::Blkcg;
use crate::ffi::eventfd::EventFd;
use crate::ffi::mm::OwnerMm;
use crate::ffi::module::ModuleHeld;
use crate::ffi::poll::KickPoll;
use crate::ffi::seq::SeqFile;
use crate::ffi::worker::{now_ns, Kthread};
use crate::queue::{Pool, Queue, QueueCtx};
use crate::slow::SlowThread;
use crate::vcore::blk::{self, BlkLimits, DataRules};
use crate::vcore::config;
use crate::vcore::features;
use crate::vcore::memory::{MemRegion, MemTable, MemTableError, ValidRegions, MAX_MEM_REGIONS};
use crate::vcore::ring::{self, RingFeatures, Vring, VringAddrs};
use crate::vcore::uapi::{
    self, VhostBlkBackend, VhostBlkConfig, VhostMemoryHeader, VhostMemoryRegion, VhostVringAddr,
    VhostVringFile, VhostVringState, VHOST_BLK_MAX_QUEUES,
};
use crate::vq::VqRuntime;
use core::fmt::Write;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::error::Error;
use kernel::prelude::*;
use kernel::sync::lock::{mutex::MutexBackend, Guard};
use kernel::sync::{Arc, ArcBorrow, Mutex};
use kernel::uaccess::UserSlice;

/// The device lock held.
type StateGuard<'a> = Guard<'a, State, MutexBackend>;

/// The workers to stop once no lock is held: those whose last queue left.
type Stopped = [Option<Kthread>; VHOST_BLK_MAX_QUEUES as usize];

/// An errno that `kernel::error::code` of 6.12 lacks.
fn errno(e: u32) -> Error {
    Error::from_errno(-(e as i32))
}

/// The configuration of one virtqueue, as set by the vring ioctls (its
/// call and err eventfds live with the queue, which signals them).
#[derive(Default)]
struct VqConfig {
    /// Queue size; 0 until `VHOST_SET_VRING_NUM`.
    num: u32,
    /// Ring addresses, once `VHOST_SET_VRING_ADDR` succeeded.
    addrs: Option<VringAddrs>,
    /// The avail index to start from (`VHOST_SET_VRING_BASE`).
    base: u16,
    /// Guest-to-host notifications, polled for as long as they are set.
    kick: Option<KickPoll<Queue>>,
}

/// Device state protected by [`VhostBlkDev::state`].
struct State {
    owner: Option<Arc<OwnerMm>>,
    acked_features: u64,
    acked_backend_features: u64,
    /// The validated memory table, sorted by guest address.
    mem: KVec<MemRegion>,
    vqs: KVec<VqConfig>,
    backend: Option<Arc<BdevFile>>,
    /// What requests are checked against while a backend is attached.
    limits: Option<BlkLimits>,
    serial: [u8; uapi::VIRTIO_BLK_ID_BYTES],
    /// The driver's cache mode (`VHOST_BLK_SET_WRITEBACK`).
    writeback: bool,
    /// The owner's io cgroup, charged for the device's bios.
    blkcg: Option<Arc<Blkcg>>,
    /// The owner's slow path, from `VHOST_SET_OWNER` on.
    slow: Option<SlowThread>,
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
            writeback: true,
            blkcg: None,
            slow: None,
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
/// before the queues whose wakers the polls point at.
#[pin_data]
pub(crate) struct VhostBlkDev {
    #[pin]
    state: Mutex<State>,
    queues: KVec<Arc<Queue>>,
    /// The device's number in statistics and fdinfo.
    id: u32,
    pool: Arc<Pool>,
}

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// Tells one run of a queue from the next, for the slow path's results.
static NEXT_RUN: AtomicU64 = AtomicU64::new(0);

/// How long closing a device waits for its queues' bios before it leaves
/// them to their workers, in milliseconds.
const RELEASE_WAIT_MS: u32 = 1000;

impl VhostBlkDev {
    /// Creates a device for a new open file, to be served by `pool`.
    pub(crate) fn new(pool: Arc<Pool>) -> Result<Arc<Self>> {
        let state = State::new()?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mut queues = KVec::with_capacity(VHOST_BLK_MAX_QUEUES as usize, GFP_KERNEL)?;
        for i in 0..VHOST_BLK_MAX_QUEUES {
            queues.push(Queue::new(id, i)?, GFP_KERNEL)?;
        }
        Arc::pin_init(
            pin_init!(Self {
                state <- kernel::new_mutex!(state),
                queues,
                id,
                pool,
            }),
            GFP_KERNEL,
        )
    }

    /// Called when the file is released, with the file's reference: stops
    /// every queue, waits a little for in-flight requests, leaves the
    /// workers and drops everything the device holds. Waits for nothing
    /// the owner controls: requests still waiting for the disk after
    /// [`RELEASE_WAIT_MS`] are left to their workers, which tear their
    /// queues down when the last bio is over (the module stays loaded
    /// until then), and requests waiting for the owner's memory are
    /// dropped with the slow path. `held`: the file holds the module
    /// until this returns.
    pub(crate) fn release(self: Arc<Self>, held: &ModuleHeld) {
        let threads = {
            let mut st = self.state.lock();
            self.close_queues(&mut st, held)
        };
        // Stopping an idle worker waits for it, and it takes queue locks.
        drop(threads);
    }

    /// Resets the device to the state of a fresh open: stops every queue,
    /// waits (interruptibly) until it has drained, drops every reference
    /// and takes every queue off its worker. Returns the workers whose last
    /// queue left, to be stopped by the caller once the lock is released.
    fn shutdown(&self, st: &mut StateGuard<'_>) -> Result<Stopped> {
        self.stop_queues(st, None)?;
        // Drained: the slow path holds nothing; stop it.
        st.slow = None;
        for vq in st.vqs.iter_mut() {
            // No kick wake-up runs once its poll is gone.
            *vq = VqConfig::default();
        }
        let mut stopped: Stopped = [const { None }; VHOST_BLK_MAX_QUEUES as usize];
        for (q, slot) in self.queues.iter().zip(stopped.iter_mut()) {
            let mut run = q.lock();
            run.call = None;
            run.err = None;
            // No kick poll is left and the queue has drained: nothing
            // wakes its worker through it any more.
            let worker = q.unbind(&mut run);
            drop(run);
            if let Some(w) = worker {
                *slot = self.pool.detach(q, &w);
            }
        }
        self.forget_owner(st);
        Ok(stopped)
    }

    /// What closing the file does: [`Self::shutdown`], but a queue whose
    /// bios do not come back within [`RELEASE_WAIT_MS`] is left to its
    /// worker instead of waited for.
    fn close_queues(&self, st: &mut StateGuard<'_>, held: &ModuleHeld) -> Stopped {
        for vq in st.vqs.iter_mut() {
            // No kick wake-up runs once its poll is gone.
            *vq = VqConfig::default();
        }
        for q in self.queues.iter() {
            if let Some(rt) = q.lock().rt.as_mut() {
                rt.stopping = true;
            }
        }
        let deadline = now_ns() + u64::from(RELEASE_WAIT_MS) * 1_000_000;
        let mut stopped: Stopped = [const { None }; VHOST_BLK_MAX_QUEUES as usize];
        for (q, slot) in self.queues.iter().zip(stopped.iter_mut()) {
            let left_ms = deadline.saturating_sub(now_ns()) / 1_000_000;
            let left = kernel::time::msecs_to_jiffies(left_ms as u32);
            let mut run = q.lock();
            // A signal ends only the wait, not the close.
            if !matches!(q.wait_drained(&mut run, Some(left)), Ok(true)) {
                if let Some(rt) = run.rt.as_mut() {
                    // Its worker lets it go when the last bio is back.
                    rt.orphan();
                    run.orphan = Some(held.get());
                    drop(run);
                    q.kick_quiet();
                    continue;
                }
            }
            run.rt = None;
            run.ctx = None;
            run.call = None;
            run.err = None;
            // No kick poll is left and the queue has drained: nothing
            // wakes its worker through it any more.
            let worker = q.unbind(&mut run);
            drop(run);
            if let Some(w) = worker {
                *slot = self.pool.detach(q, &w);
            }
        }
        // What waited for the owner is gone with the orphaned queues.
        st.slow = None;
        self.forget_owner(st);
        stopped
    }

    /// Drops what the device holds of its owner and backend.
    fn forget_owner(&self, st: &mut State) {
        st.backend = None;
        st.limits = None;
        st.mem = KVec::new();
        st.acked_features = 0;
        st.acked_backend_features = 0;
        st.serial = [0; uapi::VIRTIO_BLK_ID_BYTES];
        st.writeback = true;
        st.owner = None;
        st.blkcg = None;
    }

    /// Stops queue `only` (or all), waits until it has no request in
    /// flight, and records where it stopped as its base. The wait ends on
    /// a signal (`ERESTARTSYS`), with the queues stopping but not
    /// stopped: asking again waits again.
    fn stop_queues(&self, st: &mut StateGuard<'_>, only: Option<usize>) -> Result {
        let chosen = |i: usize| only.map_or(true, |q| q == i);
        for (_, q) in self.queues.iter().enumerate().filter(|(i, _)| chosen(*i)) {
            if let Some(rt) = q.lock().rt.as_mut() {
                rt.stopping = true;
            }
        }
        for (i, q) in self.queues.iter().enumerate().filter(|(i, _)| chosen(*i)) {
            let mut run = q.lock();
            // The worker completes in-flight requests meanwhile; the
            // queue's lock is released while waiting.
            q.wait_drained(&mut run, None)?;
            let rt = run.rt.take();
            run.ctx = None;
            drop(run);
            if let (Some(rt), Some(vq)) = (rt, st.vqs.get_mut(i)) {
                vq.base = rt.last_avail_idx();
            }
        }
        Ok(())
    }

    /// Puts queue `q` on a worker, if no worker serves it yet.
    fn bind(&self, q: &Arc<Queue>) -> Result {
        if q.lock().worker.is_some() {
            return Ok(());
        }
        let worker = self.pool.attach(q)?;
        let mut run = q.lock();
        // The device's lock, held by the caller, keeps anybody else from
        // binding the queue, so it has no worker and no bio; `worker`
        // serves it until `shutdown` unbinds it.
        q.bind(&mut run, worker);
        Ok(())
    }

    /// Starts serving every configured queue on a newly attached backend.
    /// Every queue is prepared (and placed on a worker) before any starts,
    /// so that a failure leaves every queue stopped, with nothing in
    /// flight.
    fn start_queues(&self, st: &mut State) -> Result {
        let (Some(owner), Some(bdev), Some(limits)) =
            (st.owner.as_ref(), st.backend.as_ref(), st.limits)
        else {
            return Err(EINVAL);
        };
        let Some(slow) = st.slow.as_ref().map(SlowThread::waker) else {
            return Err(EINVAL);
        };
        let info = bdev.info();
        let rules = DataRules::new(
            limits.logical_block_size,
            info.dma_alignment,
            info.virt_boundary_mask,
            info.max_sectors,
        );
        let acked = st.acked_features;
        let has = |b| acked & features::bit(b) != 0;
        let rf = RingFeatures {
            indirect: has(features::VIRTIO_RING_F_INDIRECT_DESC),
            event_idx: has(features::VIRTIO_RING_F_EVENT_IDX),
            notify_on_empty: has(features::VIRTIO_F_NOTIFY_ON_EMPTY),
        };
        let mut ready = KVec::with_capacity(self.queues.len(), GFP_KERNEL)?;
        for (vq, q) in st.vqs.iter().zip(self.queues.iter()) {
            let Some(addrs) = vq.addrs.filter(|_| vq.num != 0) else {
                continue;
            };
            let vring = Vring::new(vq.num, addrs, rf, vq.base).map_err(|_| EINVAL)?;
            let run_id = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
            let rt = KBox::new(VqRuntime::new(run_id, vring)?, GFP_KERNEL)?;
            let ctx = KBox::new(
                QueueCtx {
                    mm: owner.clone(),
                    mem: copy_regions(&st.mem)?,
                    bdev: bdev.clone(),
                    limits,
                    rules,
                    serial: st.serial,
                    blkcg: st.blkcg.clone(),
                    slow: slow.clone(),
                },
                GFP_KERNEL,
            )?;
            self.bind(q)?;
            ready.push((q, rt, ctx), GFP_KERNEL)?;
        }
        for (q, rt, ctx) in ready {
            let mut run = q.lock();
            run.rt = Some(rt);
            run.ctx = Some(ctx);
            let worker = run.worker.clone();
            drop(run);
            if let Some(w) = worker {
                self.pool.follow_bdev(&w, bdev);
            }
            // Serve what the ring already holds; not a guest kick.
            q.kick_quiet();
        }
        Ok(())
    }

    /// Installs the device's memory table and serial in every running
    /// queue. The copies are made first, so that a failed allocation
    /// changes nothing.
    fn refresh_queues(&self, st: &State) -> Result {
        let mut copies = KVec::with_capacity(self.queues.len(), GFP_KERNEL)?;
        for q in self.queues.iter() {
            let running = q.lock().ctx.is_some();
            copies.push(
                if running {
                    Some(copy_regions(&st.mem)?)
                } else {
                    None
                },
                GFP_KERNEL,
            )?;
        }
        for (q, mem) in self.queues.iter().zip(copies) {
            if let (Some(ctx), Some(mem)) = (q.lock().ctx.as_mut(), mem) {
                ctx.mem = mem;
                ctx.serial = st.serial;
            }
        }
        Ok(())
    }

    /// The queues' workers, for the statistics: `(queue, worker id)` of
    /// every queue a worker serves.
    pub(crate) fn workers(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.queues
            .iter()
            .filter_map(|q| q.lock().worker.as_ref().map(|w| (q.index(), w.id())))
    }

    /// Prints the device's fdinfo lines.
    pub(crate) fn show_fdinfo(&self, out: &mut SeqFile) -> core::fmt::Result {
        writeln!(out, "vhost-blk-device:\t{}", self.id)?;
        let writeback = self.state.lock().writeback;
        writeln!(out, "vhost-blk-writeback:\t{}", u8::from(writeback))?;
        let mut first = true;
        for (_, w) in self.workers() {
            if first {
                write!(out, "vhost-blk-workers:\t{w}")?;
                first = false;
            } else {
                write!(out, " {w}")?;
            }
        }
        if !first {
            writeln!(out)?;
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
                let owner = Arc::new(OwnerMm::current()?, GFP_KERNEL)?;
                let blkcg = match Blkcg::current() {
                    Some(b) => Some(Arc::new(b, GFP_KERNEL)?),
                    None => None,
                };
                // A thread of the caller: the owner's slow path.
                st.slow = Some(SlowThread::start(self.id, &self.queues)?);
                st.blkcg = blkcg;
                st.owner = Some(owner);
                Ok(0)
            }
            // Unknown commands are ENOTTY for everyone; known ones need the
            // owner.
            _ if !uapi::OWNER_IOCTLS.contains(&cmd) => Err(ENOTTY),
            uapi::VHOST_RESET_OWNER => {
                st.check_owner()?;
                let threads = self.shutdown(&mut st)?;
                drop(st);
                drop(threads);
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
                let old = core::mem::replace(&mut st.mem, read_mem_table(arg)?);
                if let Err(e) = self.refresh_queues(st) {
                    st.mem = old;
                    return Err(e);
                }
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
                self.stop_queues(st, Some(s.index as usize))?;
                s.num = u32::from(st.vq(s.index)?.base);
                UserSlice::new(arg, VhostVringState::SIZE)
                    .writer()
                    .write_slice(&s.to_bytes())?;
                Ok(0)
            }
            uapi::VHOST_SET_VRING_KICK | uapi::VHOST_SET_VRING_CALL | uapi::VHOST_SET_VRING_ERR => {
                let f = VhostVringFile::from_bytes(&read_arg(arg)?);
                st.vq(f.index)?;
                let q = self.queues.get(f.index as usize).ok_or(EINVAL)?;
                if cmd == uapi::VHOST_SET_VRING_KICK {
                    let poll = match f.fd {
                        -1 => None,
                        fd => {
                            // The queue's worker is fixed before any kick
                            // can reach its waker.
                            self.bind(q)?;
                            Some(KickPoll::start(fd, q.clone())?)
                        }
                    };
                    st.vq(f.index)?.kick = poll;
                    return Ok(0);
                }
                let efd = match f.fd {
                    -1 => None,
                    fd => Some(EventFd::from_fd(fd)?),
                };
                let mut run = q.lock();
                if cmd == uapi::VHOST_SET_VRING_CALL {
                    run.call = efd;
                } else {
                    run.err = efd;
                }
                Ok(0)
            }
            uapi::VHOST_BLK_SET_BACKEND => {
                let b = VhostBlkBackend::from_bytes(&read_arg(arg)?);
                if b.flags & !uapi::VHOST_BLK_BACKEND_F_READ_ONLY != 0 {
                    return Err(EINVAL);
                }
                if b.fd == -1 {
                    self.stop_queues(st, None)?;
                    st.backend = None;
                    st.limits = None;
                    return Ok(0);
                }
                if st.backend.is_some() {
                    return Err(EBUSY);
                }
                let mut bdev = BdevFile::from_fd(b.fd)?;
                // Served as a plain disk, a zoned one would fail every write
                // off its zones' write pointers: VIRTIO_BLK_F_ZONED is not
                // offered, so such a disk is refused.
                if bdev.info().zoned != 0 {
                    return Err(errno(kernel::bindings::EOPNOTSUPP));
                }
                if b.flags & uapi::VHOST_BLK_BACKEND_F_READ_ONLY != 0 {
                    bdev.set_read_only();
                }
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
                st.limits = Some(limits(&bdev, st.acked_features, st.writeback));
                st.backend = Some(Arc::new(bdev, GFP_KERNEL)?);
                if let Err(e) = self.start_queues(st) {
                    st.backend = None;
                    st.limits = None;
                    return Err(e);
                }
                Ok(0)
            }
            uapi::VHOST_BLK_GET_CONFIG => {
                let bdev = st.backend.as_ref().ok_or(ENODEV)?;
                let c = config::for_disk(&disk(bdev));
                UserSlice::new(arg, VhostBlkConfig::SIZE)
                    .writer()
                    .write_slice(&c.to_bytes())?;
                Ok(0)
            }
            uapi::VHOST_BLK_SET_WRITEBACK => {
                let writeback = match u32::from_ne_bytes(read_arg(arg)?) {
                    0 => false,
                    1 => true,
                    _ => return Err(EINVAL),
                };
                st.writeback = writeback;
                if let Some(l) = st.limits.as_mut() {
                    l.set_writeback(writeback);
                }
                // Running queues apply it from their next request.
                for q in self.queues.iter() {
                    if let Some(ctx) = q.lock().ctx.as_mut() {
                        ctx.limits.set_writeback(writeback);
                    }
                }
                Ok(0)
            }
            uapi::VHOST_BLK_SET_SERIAL => {
                let old = core::mem::replace(&mut st.serial, read_arg(arg)?);
                if let Err(e) = self.refresh_queues(st) {
                    st.serial = old;
                    return Err(e);
                }
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }
}

/// A copy of the device's memory table, for a queue.
fn copy_regions(mem: &KVec<MemRegion>) -> Result<ValidRegions<KVec<MemRegion>>> {
    let mut copy = KVec::with_capacity(mem.len(), GFP_KERNEL)?;
    for r in mem.iter() {
        copy.push(*r, GFP_KERNEL)?;
    }
    // Validated already (`read_mem_table`): this cannot fail.
    ValidRegions::new(copy).map_err(|_| EINVAL)
}

/// What `bdev` offers, as the core sees a disk.
fn disk(bdev: &BdevFile) -> blk::Disk {
    let i = bdev.info();
    blk::Disk {
        capacity: bdev.capacity(),
        logical_block_size: i.logical_block_size,
        max_discard_sectors: i.max_discard_sectors,
        max_write_zeroes_sectors: i.max_write_zeroes_sectors,
        read_only: i.read_only != 0,
        write_cache: i.write_cache != 0,
        physical_block_size: i.physical_block_size,
        alignment_offset: i.alignment_offset,
        min_io_size: i.io_min,
        opt_io_size: i.io_opt,
        discard_granularity: i.discard_granularity,
    }
}

/// What requests to `bdev` are checked against, with the features `acked`
/// and the driver's cache mode.
fn limits(bdev: &BdevFile, acked: u64, writeback: bool) -> BlkLimits {
    let mut l = BlkLimits::for_disk(&disk(bdev), acked);
    l.set_writeback(writeback);
    l
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
