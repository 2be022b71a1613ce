// SPDX-License-Identifier: GPL-2.0

//! Neighbours that would make a shared worker sleep: a tenant whose guest
//! memory never faults in (userfaultfd), and tenants whose disks have no
//! room or whose cgroup is throttled.

use std::collections::HashMap;
use std::fs::File;
use std::time::{Duration, Instant};

use vhost_blk_core::blk::*;
use vhost_blk_core::memory::UserMemory;

use super::{ms, one_tag_slow, pairs, shared_worker, spread, stats_until, REQUEST_LIMIT};
use crate::blk::{pattern, status_name, Config, TestDevice};
use crate::cgroup::{self, Cgroup};
use crate::child::{self, describe_status, Child, Sender};
use crate::driver::Buf;
use crate::request::{ChainLayout, RequestSlot};
use crate::selftests::io::{backend, write_read};
use crate::stats::{fd_ids, ParamGuard, Stats};
use crate::testing::{ctx, ensure, CaseResult};
use crate::uffd::{Untouched, Userfaultfd};

/// The process a thread belongs to (`Tgid` in its status).
fn tgid_of(tid: u32) -> Result<i32, String> {
    let s = ctx(
        std::fs::read_to_string(format!("/proc/{tid}/status")),
        format!("/proc/{tid}/status"),
    )?;
    s.lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no Tgid in /proc/{tid}/status"))
}

/// Tenant A of [`isolation_userfaultfd_stall_spares_neighbour`], in the
/// forked child: a device whose 4 KiB write takes its data from memory
/// registered with a userfaultfd that never resolves a fault. Reports
/// `posted <device id>`, then every fault (`fault <address> <tid>
/// <write>`) and any used element (`used ...`) until it is killed.
fn tenant_a(backend: &File, tx: &Sender) -> CaseResult {
    let uffd = Userfaultfd::new()?;
    let hole = ctx(Untouched::new(1 << 20), "mmap the untouched region")?;
    ctx(
        uffd.register_missing(hole.base(), hole.len()),
        "UFFDIO_REGISTER (missing)",
    )?;
    let cfg = Config {
        mem_mib: 4,
        ..Config::default()
    };
    let mut t = ctx(TestDevice::new(backend, cfg), "A's device")?;
    // Rings, header and status stay in the populated memory; only the
    // data lies in the second region, which nobody ever fills.
    ctx(
        t.dev.set_mem_table(&[t.mem.region(), hole.region()]),
        "A's memory table",
    )?;
    let (id, _) = ctx(fd_ids(&t.dev), "fdinfo")?;
    let h = t.header(VIRTIO_BLK_T_OUT, 0);
    let s = t.status();
    t.submit(
        0,
        &[Buf::r(h, 16), Buf::r(hole.base(), 4096), Buf::w(s, 1)],
        false,
    );
    tx.send(&format!("posted {id}"));
    loop {
        if let Some(f) = ctx(uffd.next_fault(Duration::from_millis(100)), "userfaultfd")? {
            tx.send(&format!("fault {:#x} {} {}", f.address, f.tid, f.write));
        }
        for d in t.poll_used(0) {
            let st = t.read_status(s);
            tx.send(&format!("used id {} len {} status {st}", d.id, d.len));
        }
    }
}

/// Tenant A's data lies in memory whose pages never come (a userfaultfd
/// nobody serves): the worker must leave the fault to A's slow-path
/// thread, which then waits in it, and go on serving tenant B on the
/// same worker. Before, the worker itself waited in the fault forever and
/// B's requests never completed. Killing A must end its wait, and its
/// device must go away.
pub(super) fn isolation_userfaultfd_stall_spares_neighbour() -> CaseResult {
    let _g = ParamGuard::set(&[("max_workers", "1")])?;
    let (_na, fa) = backend("vbisoa", 16, &[])?;
    let (_nb, fb) = backend("vbisob", 16, &[])?;
    let (mut lines, tx) = child::pipe()?;
    let mut a = Child::spawn(&tx, || tenant_a(&fa, &tx))?;
    drop(tx);
    let id_a: u64 = lines
        .expect("posted", Duration::from_secs(30))?
        .parse()
        .map_err(|e| format!("A's device id: {e}"))?;
    // Whoever reached the data first faulted and now waits; that must
    // be a thread of A (its slow path), not the shared worker.
    let fault = lines.expect("fault", Duration::from_secs(10))?;
    let tid: u32 = fault
        .split_whitespace()
        .nth(1)
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("fault line {fault:?}"))?;
    let tgid = tgid_of(tid)?;
    let comm = std::fs::read_to_string(format!("/proc/{tid}/comm")).unwrap_or_default();
    ensure(tgid == a.pid(), || {
        format!(
            "the fault on A's memory was taken by thread {tid} ({}) of process {tgid}, not by a \
             thread of A ({}): the shared worker waits in it",
            comm.trim(),
            a.pid()
        )
    })?;
    // B's device is made after the fork: its memory is not shared
    // copy-on-write with A.
    let mut b = ctx(TestDevice::new(&fb, Config::default()), "B's device")?;
    let st = Stats::read()?;
    let wa = st.vq(id_a, 0).map(|v| v.num("worker"));
    let wb = shared_worker(&[&b])?;
    ensure(wa == Some(wb), || {
        format!("A's queue on worker {wa:?}, B's on {wb}: they must share one")
    })?;
    let mut lat = pairs(&mut b, 200, 0x150_a000, REQUEST_LIMIT, &mut || Ok(()))
        .map_err(|e| format!("B while A is stalled: {e}"))?;
    let (p50, p99, max) = spread(&mut lat);
    // A's request waits for its data: nothing of it may be used. (A
    // reports a used element within 100 ms; more faults may be reported
    // if a fault is retried, and mean nothing more.)
    while let Some(l) = lines.recv(Duration::from_millis(300))? {
        ensure(l.starts_with("fault "), || {
            format!("A reported {l:?} while its data cannot be read")
        })?;
    }
    let stalls = Stats::read()?.vq(id_a, 0).map_or(0, |v| v.num("stalls"));
    ensure(stalls >= 1, || {
        format!("A's queue shows stalls={stalls}: the slow path never took over its fault")
    })?;
    a.kill()?;
    let at = Instant::now();
    let status = a.wait_for(Duration::from_secs(10))?.ok_or_else(|| {
        "A is still alive 10 s after SIGKILL: its slow path does not end its wait".to_string()
    })?;
    let reaped = at.elapsed();
    ensure(libc::WIFSIGNALED(status), || {
        format!("A {}", describe_status(status))
    })?;
    let gone = stats_until(Duration::from_secs(5), |s| s.device(id_a).is_none())?
        .ok_or_else(|| format!("A's device {id_a} is still in the statistics 5 s after A died"))?;
    write_read(&mut b, 0, 1024, 4096, 4096, 0, false, 0x150_b000)
        .map_err(|e| format!("B after A died: {e}"))?;
    println!(
        "  B beside stalled A (fault by {} of A, stalls={stalls}): 400 requests p50 {} p99 {} \
         max {}; A reaped {} after SIGKILL, its device gone {} later",
        comm.trim(),
        ms(p50),
        ms(p99),
        ms(max),
        ms(reaped),
        ms(gone)
    );
    Ok(())
}

/// A queue kept busy with writes of `len` bytes, refilled as they
/// complete; every completion must be OK.
struct Flood {
    /// Per slot: its buffers and the sector it writes.
    slots: Vec<(RequestSlot, u64)>,
    /// Slots not in flight.
    free: Vec<usize>,
    /// Head of each request in flight -> its slot.
    inflight: HashMap<u16, usize>,
    /// Requests completed.
    done: u64,
}

impl Flood {
    /// `depth` slots on queue 0 of `t`, writing `len` bytes each to
    /// their own sectors, with a gap after each so that the block layer
    /// cannot merge them into fewer requests (and tags).
    fn new(t: &mut TestDevice, depth: usize, len: u32) -> Result<Self, String> {
        let mut slots = Vec::new();
        for k in 0..depth as u64 {
            let rs = RequestSlot::alloc(&mut t.alloc, len);
            let data: Vec<u8> = (0..u64::from(len)).map(|i| pattern(k, i)).collect();
            t.mem.write(rs.data, &data).map_err(|_| "guest memory")?;
            slots.push((rs, 2 * k * u64::from(len) / 512));
        }
        Ok(Self {
            slots,
            free: (0..depth).collect(),
            inflight: HashMap::new(),
            done: 0,
        })
    }

    /// Takes the completed requests, checking each is OK.
    fn reap(&mut self, t: &mut TestDevice) -> CaseResult {
        for d in t.poll_used(0) {
            let slot = self
                .inflight
                .remove(&(d.id as u16))
                .ok_or_else(|| format!("unknown used id {}", d.id))?;
            let st = t.read_status(self.slots[slot].0.status);
            ensure(st == VIRTIO_BLK_S_OK, || {
                format!("a flooding write: {}", status_name(st))
            })?;
            self.free.push(slot);
            self.done += 1;
        }
        Ok(())
    }

    /// Reaps, then puts every free slot in flight again, with one kick.
    fn refill(&mut self, t: &mut TestDevice) -> CaseResult {
        self.reap(t)?;
        if self.free.is_empty() {
            return Ok(());
        }
        while let Some(slot) = self.free.pop() {
            let (rs, sector) = self.slots[slot];
            let head = rs
                .post(
                    &t.mem,
                    &mut t.queues[0].ring,
                    VIRTIO_BLK_T_OUT,
                    sector,
                    ChainLayout::Direct,
                )
                .map_err(|e| format!("a flooding write: {e}"))?;
            self.inflight.insert(head, slot);
        }
        t.queues[0].kick.signal();
        Ok(())
    }

    /// Waits up to `timeout` until nothing is in flight.
    fn drain(&mut self, t: &mut TestDevice, timeout: Duration) -> CaseResult {
        let deadline = Instant::now() + timeout;
        loop {
            self.reap(t)?;
            if self.inflight.is_empty() {
                return Ok(());
            }
            ensure(Instant::now() < deadline, || {
                format!(
                    "{} writes still in flight after {timeout:?}",
                    self.inflight.len()
                )
            })?;
            t.queues[0].call.wait(Duration::from_millis(20));
            t.queues[0].call.take();
        }
    }
}

/// FAST shares its worker with THROTTLED, whose owner's io cgroup lets 1
/// MiB/s through, and SLOW, a disk with one tag and 2 s per request, each
/// keeping 32 writes of 64 KiB in flight. The worker must not wait for a
/// tag or the throttle: FAST's requests complete in under a second
/// (before, it waited seconds for SLOW's tag each time), the worker
/// submits SLOW's bounced bios again, without waiting, as SLOW's own
/// bios complete, and closing SLOW with requests in flight returns at
/// once.
/// FAST's worst request beside THROTTLED and SLOW: half of SLOW's 2-s
/// completion time, so a worker that waited for SLOW's disk even once
/// shows.
const FAST_BOUND: Duration = Duration::from_secs(1);

pub(super) fn isolation_throttled_neighbour_spares_fast_tenant() -> CaseResult {
    cgroup::enable_io()?;
    let mut cg = Cgroup::create("vbiso-throttled")?;
    let _g = ParamGuard::set(&[("max_workers", "1")])?;
    let (_nf, ff) = backend("vbisof", 16, &[("irqmode", "0")])?;
    let (_nt, ft) = backend("vbisot", 16, &[])?;
    let (ns, fs) = one_tag_slow("vbisos")?;
    let (major, minor) = cgroup::dev_numbers(&ft)?;
    cg.set_io_max(major, minor, "wbps=1048576 rbps=1048576")?;
    let mut fast = ctx(TestDevice::new(&ff, Config::default()), "FAST")?;
    // The owner's cgroup is taken at SET_OWNER.
    cg.enter()?;
    let thr = TestDevice::new(&ft, Config::default());
    cgroup::enter(cgroup::ROOT)?;
    let mut thr = ctx(thr, "THROTTLED")?;
    let mut slow = ctx(TestDevice::new(&fs, Config::default()), "SLOW")?;
    shared_worker(&[&fast, &thr, &slow])?;
    let id_slow = ctx(fd_ids(&slow.dev), "fdinfo")?.0;
    let mut solo = pairs(&mut fast, 200, 0x150_c000, REQUEST_LIMIT, &mut || Ok(()))
        .map_err(|e| format!("FAST alone: {e}"))?;
    let (mut flood_t, mut flood_s) = (
        Flood::new(&mut thr, 32, 64 << 10)?,
        Flood::new(&mut slow, 32, 64 << 10)?,
    );
    flood_t.refill(&mut thr)?;
    flood_s.refill(&mut slow)?;
    std::thread::sleep(Duration::from_millis(200));
    // Each request is held to the verdict's bound at once: a worker that
    // blocks for SLOW fails the case at its first 2-s wait, not after 200.
    let mut loaded = pairs(&mut fast, 200, 0x150_d000, FAST_BOUND, &mut || {
        flood_t.refill(&mut thr)?;
        flood_s.refill(&mut slow)
    })
    .map_err(|e| format!("FAST beside THROTTLED and SLOW: {e}"))?;
    // The first retry comes when SLOW's one request in the disk
    // completes (2 s after it went in), which may be after FAST's last
    // request.
    stats_until(Duration::from_secs(10), |s| {
        s.vq(id_slow, 0).is_some_and(|v| v.num("retries") >= 1)
    })?;
    let (retries, resubmits) = Stats::read()?
        .vq(id_slow, 0)
        .map_or((0, 0), |v| (v.num("retries"), v.num("resubmits")));
    let (thr_done, slow_done) = (flood_t.done, flood_s.done);
    // Let THROTTLED's writes through and drain them; close SLOW with its
    // writes in flight, which must not wait for them, then remove its
    // disk so that they end and the closed device goes.
    cg.clear_io_max()?;
    flood_t
        .drain(&mut thr, Duration::from_secs(30))
        .map_err(|e| format!("THROTTLED without its limit: {e}"))?;
    flood_s.reap(&mut slow)?;
    let left = flood_s.inflight.len();
    let at = Instant::now();
    drop(slow);
    let close = at.elapsed();
    let at = Instant::now();
    ctx(ns.power_off(), "power off SLOW's disk")?;
    let off = at.elapsed();
    let gone = stats_until(Duration::from_secs(30), |s| s.device(id_slow).is_none())?;
    let (_, sp99, smax) = spread(&mut solo);
    let (_, lp99, lmax) = spread(&mut loaded);
    println!(
        "  FAST alone p99 {} max {}, beside THROTTLED and SLOW p99 {} max {}; THROTTLED \
         completed {thr_done}, SLOW {slow_done} (retries={retries} resubmits={resubmits}); \
         closing SLOW with \
         {left} in flight took {}, removing its disk {}",
        ms(sp99),
        ms(smax),
        ms(lp99),
        ms(lmax),
        ms(close),
        ms(off)
    );
    ensure(lmax < FAST_BOUND, || {
        format!(
            "FAST waited {} for a request beside its neighbours: the worker blocked for them",
            ms(lmax)
        )
    })?;
    ensure(retries >= 1, || {
        format!(
            "SLOW's queue shows retries={retries} with 32 writes on a disk of one tag: its \
             worker did not submit its bounced bios again as its own completed"
        )
    })?;
    // Close waits up to 1 s for the disk (RELEASE_WAIT_MS), then for the
    // one submission its slow path may be in: a tag, freed by the next
    // 2-s completion. Waiting for the 31 requests would take a minute.
    ensure(close < Duration::from_secs(5), || {
        format!(
            "closing SLOW with {left} requests in flight took {}: close waited",
            ms(close)
        )
    })?;
    ensure(gone.is_some(), || {
        format!("SLOW's closed device {id_slow} was not torn down within 30 s of its disk going")
    })
}

/// Two devices on one disk of one tag (2 s per request): HOLDER's write
/// takes the tag, then WAITER's one write finds no room. No bio of
/// WAITER is out, so no completion of its own will give room back: its
/// worker must hand the bio to WAITER's slow path, which waits for the
/// tag, and the write completes once HOLDER's has (4 s). A worker that
/// kept it to retry on its own completions would strand it.
pub(super) fn isolation_disk_room_held_by_neighbour() -> CaseResult {
    let (_ns, fs) = one_tag_slow("vbisoh")?;
    let mut holder = ctx(TestDevice::new(&fs, Config::default()), "HOLDER")?;
    let mut waiter = ctx(TestDevice::new(&fs, Config::default()), "WAITER")?;
    let (id_h, id_w) = (
        ctx(fd_ids(&holder.dev), "fdinfo")?.0,
        ctx(fd_ids(&waiter.dev), "fdinfo")?.0,
    );
    let hs = one_write(&mut holder, 0);
    // Taken means submitted: the tag is HOLDER's from now for 2 s.
    stats_until(Duration::from_secs(10), |s| {
        s.vq(id_h, 0).is_some_and(|v| v.num("last_avail") >= 1)
    })?
    .ok_or("HOLDER's write was not taken in 10 s")?;
    let at = Instant::now();
    let ws = one_write(&mut waiter, 128);
    waiter.wait(0, 1, Duration::from_secs(10)).map_err(|e| {
        format!(
            "WAITER: {e}: its bio, bounced for want of room with none of its queue's out, \
                 was never handed to the slow path"
        )
    })?;
    let took = at.elapsed();
    holder.wait(0, 1, Duration::from_secs(10))?;
    for (who, t, s) in [("HOLDER", &holder, hs), ("WAITER", &waiter, ws)] {
        let st = t.read_status(s);
        ensure(st == VIRTIO_BLK_S_OK, || {
            format!("{who}'s write: status {}", status_name(st))
        })?;
    }
    let resubmits = Stats::read()?.vq(id_w, 0).map_or(0, |v| v.num("resubmits"));
    ensure(resubmits >= 1, || {
        format!("WAITER's queue shows resubmits={resubmits}: its bounced bio took another way")
    })?;
    println!(
        "  WAITER's write behind HOLDER's on one tag: done after {} (resubmits={resubmits})",
        ms(took)
    );
    Ok(())
}

/// Posts one 4 KiB write at `sector` on queue 0 of `t`; returns its
/// status byte's address.
fn one_write(t: &mut TestDevice, sector: u64) -> u64 {
    let a = t.buf(4096, 4096);
    let h = t.header(VIRTIO_BLK_T_OUT, sector);
    let s = t.status();
    t.submit(0, &[Buf::r(h, 16), Buf::r(a, 4096), Buf::w(s, 1)], false);
    s
}
