// SPDX-License-Identifier: GPL-2.0

//! The shared workers: placement by `queues_per_worker` and `max_workers`,
//! CPU pinning, polling with notifications off, per-queue quotas,
//! teardown while a worker serves other devices, and I/O charged to the
//! owner's cgroup. Parameters are changed through sysfs for one case and
//! restored afterwards.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::time::{Duration, Instant};

use vhost_blk_core::blk::*;
use vhost_blk_core::features::{self, bit};
use vhost_blk_core::memory::UserMemory;

use crate::blk::{pattern, Config, EventFd, TestDevice};
use crate::cgroup::{self, Cgroup};
use crate::device::VhostBlk;
use crate::driver::Buf;
use crate::nullb::NullBlk;
use crate::selftests::io::{backend, slow_backend, write_read};
use crate::stats::{fd_ids, param, set_param, ParamGuard, Stats};
use crate::testing::{ctx, ensure, expect_errno, CaseResult, CpuPin, KernelLog, Rng, Runner};

/// Registers this area's cases.
pub fn run(r: &mut Runner) {
    r.run(
        "workers_params_defaults_and_ranges",
        workers_params_defaults_and_ranges,
    );
    r.run(
        "workers_follow_queues_per_worker",
        workers_follow_queues_per_worker,
    );
    r.run(
        "workers_pinned_by_worker_cpus",
        workers_pinned_by_worker_cpus,
    );
    r.run(
        "workers_poll_budget_avoids_kicks",
        workers_poll_budget_avoids_kicks,
    );
    r.run("workers_no_stranded_requests", workers_no_stranded_requests);
    r.run(
        "workers_quota_keeps_small_queue_fair",
        workers_quota_keeps_small_queue_fair,
    );
    r.run(
        "workers_waiting_queue_cuts_flood_turn",
        workers_waiting_queue_cuts_flood_turn,
    );
    r.run(
        "workers_waiting_device_cuts_flood_turn",
        workers_waiting_device_cuts_flood_turn,
    );
    r.run(
        "workers_teardown_random_order",
        workers_teardown_random_order,
    );
    r.run(
        "workers_io_charged_to_owner_cgroup",
        workers_io_charged_to_owner_cgroup,
    );
    r.run("workers_stat_cli", workers_stat_cli);
    r.run(
        "workers_pinned_cpu_goes_offline",
        workers_pinned_cpu_goes_offline,
    );
    r.run("workers_cpu_hotplug_under_io", workers_cpu_hotplug_under_io);
    r.run(
        "workers_switch_address_spaces",
        workers_switch_address_spaces,
    );
    r.run(
        "workers_publish_batch_sets_interrupts_per_turn",
        workers_publish_batch_sets_interrupts_per_turn,
    );
    r.run(
        "workers_publish_once_per_turn_when_workers_fill_the_cpus",
        workers_publish_once_per_turn_when_workers_fill_the_cpus,
    );
    r.run(
        "workers_publish_mid_turn_with_pinned_workers",
        workers_publish_mid_turn_with_pinned_workers,
    );
}

/// Features without EVENT_IDX: kicks are then governed by
/// `VRING_USED_F_NO_NOTIFY`, and interrupts by no flag at all, so the
/// flows below get an interrupt for every used-ring update.
fn no_event_idx() -> u64 {
    features::SUPPORTED & !bit(features::VIRTIO_RING_F_EVENT_IDX)
}

/// A completed request of a [`Flow`]: `(head, latency, sector, seed, data
/// address)`.
type Reaped = (u16, Duration, u64, u64, u64);

/// A queue driven at a fixed depth with preallocated request buffers:
/// what a guest driver does, with the kicks it sends counted.
struct Flow {
    q: usize,
    len: u32,
    /// Per slot: header, data, status, indirect table.
    slots: Vec<(u64, u64, u64, u64)>,
    free: Vec<usize>,
    /// head -> (slot, submitted at, sector, seed)
    inflight: HashMap<u16, (usize, Instant, u64, u64)>,
    kicks: u64,
    submitted: u64,
    done: u64,
}

impl Flow {
    fn new(t: &mut TestDevice, q: usize, depth: usize, len: u32) -> Self {
        let slots = (0..depth)
            .map(|_| {
                (
                    t.buf(16, 16),
                    t.buf(u64::from(len), 4096),
                    t.buf(1, 1),
                    t.buf(16 * 3, 16),
                )
            })
            .collect();
        Self {
            q,
            len,
            slots,
            free: (0..depth).rev().collect(),
            inflight: HashMap::new(),
            kicks: 0,
            submitted: 0,
            done: 0,
        }
    }

    fn can_submit(&self) -> bool {
        !self.free.is_empty()
    }

    /// Submits a request of type `ty` at `sector` in an indirect chain;
    /// writes carry `pattern(seed, ..)`. Kicks only if the device wants it.
    fn submit(&mut self, t: &mut TestDevice, ty: u32, sector: u64, seed: u64) -> u16 {
        let slot = self.free.pop().expect("a free slot");
        let (h, d, s, table) = self.slots[slot];
        let mut hdr = [0u8; 16];
        hdr[..4].copy_from_slice(&ty.to_le_bytes());
        hdr[8..].copy_from_slice(&sector.to_le_bytes());
        t.mem.write(h, &hdr).expect("header");
        t.mem.write(s, &[0xff]).expect("status");
        let data = if ty == VIRTIO_BLK_T_OUT {
            let bytes: Vec<u8> = (0..u64::from(self.len)).map(|i| pattern(seed, i)).collect();
            t.mem.write(d, &bytes).expect("data");
            Buf::r(d, self.len)
        } else {
            Buf::w(d, self.len)
        };
        let event_idx = t.cfg.features & bit(features::VIRTIO_RING_F_EVENT_IDX) != 0;
        let ring = &mut t.queues[self.q].ring;
        let old = ring.avail_idx();
        let head = ring
            .add_indirect(&t.mem, table, &[Buf::r(h, 16), data, Buf::w(s, 1)])
            .expect("a free descriptor");
        if ring.needs_kick(&t.mem, old, event_idx) {
            t.queues[self.q].kick.signal();
            self.kicks += 1;
        }
        self.submitted += 1;
        self.inflight
            .insert(head, (slot, Instant::now(), sector, seed));
        head
    }

    /// Takes the completed requests; checks each status is OK. Returns
    /// `(head, latency, sector, seed, data address)` of each.
    fn reap(&mut self, t: &mut TestDevice) -> Result<Vec<Reaped>, String> {
        let mut out = Vec::new();
        for d in t.poll_used(self.q) {
            let head = d.id as u16;
            let (slot, at, sector, seed) = self
                .inflight
                .remove(&head)
                .ok_or_else(|| format!("queue {}: unknown used id {}", self.q, d.id))?;
            let (_, data, s, _) = self.slots[slot];
            let st = t.read_status(s);
            ensure(st == VIRTIO_BLK_S_OK, || {
                format!("queue {}: request at sector {sector}: status {st}", self.q)
            })?;
            self.free.push(slot);
            self.done += 1;
            out.push((head, at.elapsed(), sector, seed, data));
        }
        Ok(out)
    }

    /// Reads each `(sector, seed)` back, one request at a time, and checks
    /// it holds what a write with `seed` put there.
    fn verify_written(
        &mut self,
        t: &mut TestDevice,
        written: impl IntoIterator<Item = (u64, u64)>,
    ) -> CaseResult {
        for (sector, seed) in written {
            self.submit(t, VIRTIO_BLK_T_IN, sector, 0);
            self.drain(t, Duration::from_secs(10))?;
            let (_, data, _, _) = self.slots[*self.free.last().expect("slot")];
            let mut got = vec![0u8; self.len as usize];
            t.mem.read(data, &mut got).map_err(|_| "read back")?;
            let bad = (0..u64::from(self.len)).find(|&i| got[i as usize] != pattern(seed, i));
            ensure(bad.is_none(), || {
                format!("sector {sector}: byte {bad:?} differs from write seed {seed}")
            })?;
        }
        Ok(())
    }

    /// Waits until nothing is in flight, up to `timeout`.
    fn drain(&mut self, t: &mut TestDevice, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while !self.inflight.is_empty() {
            self.reap(t)?;
            if self.inflight.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "queue {}: {} requests never completed (stranded?)",
                    self.q,
                    self.inflight.len()
                ));
            }
            t.queues[self.q].call.wait(Duration::from_millis(20));
            t.queues[self.q].call.take();
        }
        Ok(())
    }
}

fn stats() -> Result<Stats, String> {
    Stats::read()
}

/// Opens a device and makes this process its owner.
fn owned_device() -> Result<VhostBlk, String> {
    let d = ctx(VhostBlk::open(), "open")?;
    ctx(d.set_owner(), "VHOST_SET_OWNER")?;
    Ok(d)
}

fn online_cpus() -> Result<String, String> {
    ctx(
        fs::read_to_string("/sys/devices/system/cpu/online"),
        "/sys/devices/system/cpu/online",
    )
    .map(|s| s.trim().to_string())
}

fn workers_params_defaults_and_ranges() -> CaseResult {
    for (name, default) in [
        ("poll_budget_us", "0"),
        ("queues_per_worker", "1"),
        ("max_workers", "0"),
        ("quota_reqs", "64"),
        ("quota_kib", "512"),
        ("publish_batch", "8"),
        ("worker_cpus", ""),
    ] {
        let v = ctx(param(name), name)?;
        ensure(v == default, || {
            format!("{name} is {v:?}, documented default {default:?}")
        })?;
    }
    let bad = [
        ("poll_budget_us", "1000001"),
        ("poll_budget_us", "-1"),
        ("queues_per_worker", "0"),
        ("queues_per_worker", "1025"),
        ("max_workers", "1025"),
        ("quota_reqs", "0"),
        ("quota_reqs", "32769"),
        ("quota_kib", "3"),
        ("quota_kib", "1048577"),
        ("quota_kib", "lots"),
        ("publish_batch", "32769"),
        ("publish_batch", "-1"),
        ("worker_cpus", "banana"),
        ("worker_cpus", "0-"),
        // CPUs that do not exist or are not online.
        ("worker_cpus", "7"),
        ("worker_cpus", "4096"),
    ];
    for (name, value) in bad {
        let before = ctx(param(name), name)?;
        expect_errno(
            set_param(name, value),
            libc::EINVAL,
            &format!("{name}={value}"),
        )?;
        let after = ctx(param(name), name)?;
        ensure(after == before, || {
            format!("{name}={value} was refused but changed the value to {after:?}")
        })?;
    }
    println!("  6 defaults checked, {} bad values refused", bad.len());
    Ok(())
}

/// Checks the live workers against the devices' fdinfo: each queue's
/// worker exists, counts it, and is a thread called `vhost-blk-<id>`.
/// Returns the queue count of each worker, sorted.
fn check_placement(devs: &[VhostBlk]) -> Result<Vec<u64>, String> {
    let s = stats()?;
    let mut per: HashMap<u64, u64> = HashMap::new();
    for d in devs {
        let (id, workers) = ctx(fd_ids(d), "fdinfo")?;
        ensure(!workers.is_empty(), || {
            format!("device {id} has no worker after its queues got kick eventfds")
        })?;
        for w in workers {
            *per.entry(w).or_default() += 1;
        }
        ensure(s.device(id).is_some(), || {
            format!("device {id} missing from the statistics")
        })?;
    }
    ensure(per.len() == s.workers.len(), || {
        format!(
            "{} workers serve the queues, {} exist",
            per.len(),
            s.workers.len()
        )
    })?;
    for w in &s.workers {
        let id = w.num("id");
        let n = per.get(&id).copied().unwrap_or(0);
        ensure(w.num("queues") == n, || {
            format!(
                "worker {id} reports {} queues, fdinfo gives {n}",
                w.num("queues")
            )
        })?;
        let comm = ctx(
            fs::read_to_string(format!("/proc/{}/comm", w.num("pid"))),
            "worker comm",
        )?;
        ensure(comm.trim() == format!("vhost-blk-{id}"), || {
            format!("worker {id}: thread is {:?}", comm.trim())
        })?;
    }
    let mut counts: Vec<u64> = per.values().copied().collect();
    counts.sort_unstable();
    Ok(counts)
}

/// A device owned by this process whose first `queues` queues have kick
/// eventfds, which places them on workers. The eventfds are returned
/// with it, to keep them open.
fn kicked_device(queues: u32) -> Result<(VhostBlk, Vec<EventFd>), String> {
    let d = owned_device()?;
    let mut kicks = Vec::new();
    for q in 0..queues {
        let e = ctx(EventFd::new(), "eventfd")?;
        ctx(d.set_vring_kick(q, e.fd()), "VHOST_SET_VRING_KICK")?;
        kicks.push(e);
    }
    Ok((d, kicks))
}

/// Devices of one kicked queue each.
fn kicked_devices(n: usize) -> Result<(Vec<VhostBlk>, Vec<EventFd>), String> {
    let mut devs = Vec::new();
    let mut kicks = Vec::new();
    for _ in 0..n {
        let (d, k) = kicked_device(1)?;
        devs.push(d);
        kicks.extend(k);
    }
    Ok((devs, kicks))
}

fn workers_follow_queues_per_worker() -> CaseResult {
    ensure(stats()?.workers.is_empty(), || {
        "workers exist before any queue".into()
    })?;
    let _g = ParamGuard::set(&[("max_workers", "16")])?;
    for (per, want) in [
        (1u64, vec![1, 1, 1, 1, 1]),
        (2, vec![1, 2, 2]),
        (4, vec![1, 4]),
    ] {
        let _p = ParamGuard::set(&[("queues_per_worker", &per.to_string())])?;
        // A device without an owner, or with one but no queue set up, has
        // no worker.
        let idle = ctx(VhostBlk::open(), "open")?;
        let owned = owned_device()?;
        for d in [&idle, &owned] {
            ensure(ctx(fd_ids(d), "fdinfo")?.1.is_empty(), || {
                "a device without a kicked or running queue has a worker".into()
            })?;
        }
        let (devs, kicks) = kicked_devices(5)?;
        let got = check_placement(&devs)?;
        ensure(got == want, || {
            format!("queues_per_worker={per}: queues per worker {got:?}, expected {want:?}")
        })?;
        drop(devs);
        drop(kicks);
        drop((idle, owned));
        let left = stats()?.workers.len();
        ensure(left == 0, || {
            format!("queues_per_worker={per}: {left} workers left after the devices closed")
        })?;
    }
    // The queues of one device are placed one by one: by default each on
    // its own worker, so that they run side by side.
    {
        let (d, _kicks) = kicked_device(3)?;
        let (_, workers) = ctx(fd_ids(&d), "fdinfo")?;
        let mut distinct = workers.clone();
        distinct.sort_unstable();
        distinct.dedup();
        ensure(workers.len() == 3 && distinct.len() == 3, || {
            format!("3 queues of one device on workers {workers:?}, expected 3 workers")
        })?;
        check_placement(std::slice::from_ref(&d))?;
    }
    // The cap: beyond max_workers, queues share the least loaded worker.
    let _p = ParamGuard::set(&[("queues_per_worker", "1"), ("max_workers", "2")])?;
    let (devs, kicks) = kicked_devices(5)?;
    let got = check_placement(&devs)?;
    ensure(got == vec![2, 3], || {
        format!("max_workers=2: queues per worker {got:?}, expected [2, 3]")
    })?;
    // RESET_OWNER takes the queues off their workers; kick eventfds set
    // after a new SET_OWNER place them again.
    for d in &devs {
        ctx(d.reset_owner(), "RESET_OWNER")?;
    }
    ensure(stats()?.workers.is_empty(), || {
        "workers left after every device was reset".into()
    })?;
    for (d, k) in devs.iter().zip(&kicks) {
        ctx(d.set_owner(), "SET_OWNER again")?;
        ctx(d.set_vring_kick(0, k.fd()), "VHOST_SET_VRING_KICK again")?;
    }
    let got = check_placement(&devs)?;
    ensure(got == vec![2, 3], || {
        format!("after reset: queues per worker {got:?}, expected [2, 3]")
    })?;
    println!(
        "  placements checked for queues_per_worker 1, 2, 4, 3 queues of one device, and max_workers 2"
    );
    Ok(())
}

fn workers_pinned_by_worker_cpus() -> CaseResult {
    let online = online_cpus()?;
    let last = online.rsplit(['-', ',']).next().unwrap_or("0").to_string();
    {
        let _g = ParamGuard::set(&[
            ("worker_cpus", &last),
            ("queues_per_worker", "1"),
            ("max_workers", "16"),
        ])?;
        let devs = kicked_devices(2)?;
        let s = stats()?;
        ensure(s.workers.len() == 2, || {
            format!("{} workers", s.workers.len())
        })?;
        for w in &s.workers {
            ensure(w.text("cpus") == last, || {
                format!(
                    "worker {} runs on {}, worker_cpus={last}",
                    w.num("id"),
                    w.text("cpus")
                )
            })?;
            let status = ctx(
                fs::read_to_string(format!("/proc/{}/status", w.num("pid"))),
                "worker status",
            )?;
            let allowed = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(str::trim)
                .unwrap_or("");
            ensure(allowed == last, || {
                format!(
                    "worker {}: Cpus_allowed_list {allowed}, expected {last}",
                    w.num("id")
                )
            })?;
        }
        drop(devs);
    }
    // Restored to empty: new workers may run anywhere.
    ensure(ctx(param("worker_cpus"), "worker_cpus")?.is_empty(), || {
        "worker_cpus was not restored".into()
    })?;
    let (d, _kick) = kicked_device(1)?;
    let s = stats()?;
    let cpus = s.workers.first().map(|w| w.text("cpus").to_string());
    ensure(cpus.as_deref() == Some(online.as_str()), || {
        format!("unpinned worker runs on {cpus:?}, online CPUs are {online}")
    })?;
    drop(d);
    println!("  pinned 2 workers to CPU {last}; unpinned worker on {online}");
    Ok(())
}

/// Takes a CPU offline for its lifetime, through its sysfs `online` file.
struct CpuOffline {
    path: String,
}

impl CpuOffline {
    fn take(cpu: usize) -> Result<Self, String> {
        let path = format!("/sys/devices/system/cpu/cpu{cpu}/online");
        ctx(fs::write(&path, "0"), format!("{path}: 0"))?;
        Ok(Self { path })
    }

    /// Brings the CPU back online; the write returns once it is.
    fn restore(self) -> CaseResult {
        let r = ctx(fs::write(&self.path, "1"), format!("{}: 1", self.path));
        core::mem::forget(self);
        r
    }
}

impl Drop for CpuOffline {
    fn drop(&mut self) {
        let _ = fs::write(&self.path, "1");
    }
}

/// A device on `backend` whose first 4 KiB write and read-back (of
/// `seed`) worked; `what` names it in errors.
fn served_device(backend: &File, what: &str, seed: u64) -> Result<TestDevice, String> {
    let mut t = ctx(TestDevice::new(backend, Config::default()), what)?;
    write_read(&mut t, 0, 8, 4096, 4096, 0, false, seed).map_err(|e| format!("{what}: {e}"))?;
    Ok(t)
}

/// The newest worker's `cpus` in the statistics, and how many there are.
fn newest_worker_cpus() -> Result<(String, usize), String> {
    let s = stats()?;
    let w = s
        .workers
        .iter()
        .max_by_key(|w| w.num("id"))
        .ok_or("no worker")?;
    Ok((w.text("cpus").to_string(), s.workers.len()))
}

/// The `cpus` of worker `id` in the statistics.
fn worker_cpus_of(id: u64) -> Result<String, String> {
    let s = stats()?;
    let w = s.worker(id).ok_or_else(|| format!("no worker {id}"))?;
    Ok(w.text("cpus").to_string())
}

/// The one worker serving `t` (a device with one queue).
fn worker_of(t: &TestDevice) -> Result<u64, String> {
    let (_, workers) = ctx(fd_ids(&t.dev), "fdinfo")?;
    match workers[..] {
        [w] => Ok(w),
        _ => Err(format!(
            "device served by workers {workers:?}, expected one"
        )),
    }
}

/// For the CPU-hotplug cases: the last online CPU (one of at least two,
/// so that it can go offline), with `worker_cpus` naming it and a worker
/// per queue until the guard is dropped.
fn pin_workers_to_last_cpu() -> Result<(usize, ParamGuard), String> {
    let online = online_cpus()?;
    let cpus = cpulist(&online);
    ensure(cpus.len() >= 2, || {
        format!("needs 2 online CPUs to take one offline, has {online}")
    })?;
    let last = *cpus.last().ok_or("no online CPU")?;
    let guard = ParamGuard::set(&[
        ("worker_cpus", &last.to_string()),
        ("queues_per_worker", "1"),
        ("max_workers", "16"),
    ])?;
    Ok((last, guard))
}

/// CPU hotplug under `worker_cpus`. A worker whose CPU goes offline goes
/// on serving its queue (the scheduler moves it), and is pinned to the
/// CPU again once it is back: it used to stay unpinned until it exited.
/// While none of the listed CPUs is online, a new queue still gets a
/// worker, unpinned, with a notice in the kernel log; it used to fail
/// with EINVAL, so that every new VM's disk failed to start. Once the CPU
/// is back, new workers are pinned to it again.
fn workers_pinned_cpu_goes_offline() -> CaseResult {
    let (last, _g) = pin_workers_to_last_cpu()?;
    let (_nb, backend) = backend("vbhp", 16, &[])?;
    let mut a = served_device(&backend, "device A", 1)?;
    let (got, n) = newest_worker_cpus()?;
    ensure(got == last.to_string() && n == 1, || {
        format!("{n} workers, the newest on {got}; expected 1 on CPU {last}")
    })?;
    let a_worker = worker_of(&a)?;

    let mut log = KernelLog::tail()?;
    let offline = CpuOffline::take(last)?;
    write_read(&mut a, 0, 8, 4096, 4096, 0, false, 2)
        .map_err(|e| format!("A with CPU {last} offline: {e}"))?;
    let _b = served_device(&backend, &format!("device B with CPU {last} offline"), 3)?;
    // Unpinned: allowed on every online CPU (the mask a new kthread gets
    // may also name the offline one).
    let rest = online_cpus()?;
    let (got, n) = newest_worker_cpus()?;
    let allowed = cpulist(&got);
    ensure(
        n == 2 && cpulist(&rest).iter().all(|c| allowed.contains(c)),
        || format!("{n} workers, the newest on {got}; expected 2, the newest on all of {rest}"),
    )?;
    let notice = format!("vhost_blk: worker_cpus: none of CPUs {last} is online");
    let lines = log.read()?;
    ensure(lines.iter().any(|l| l.starts_with(&notice)), || {
        format!("no \"{notice}\" in the kernel log; it logged {lines:?}")
    })?;
    // Woken by A's requests, the worker was moved off the offline CPU.
    let a_cpus = worker_cpus_of(a_worker)?;
    let a_allowed = cpulist(&a_cpus);
    ensure(cpulist(&rest).iter().all(|c| a_allowed.contains(c)), || {
        format!("A's worker on {a_cpus} with CPU {last} offline; expected all of {rest}")
    })?;

    offline.restore()?;
    let a_cpus = worker_cpus_of(a_worker)?;
    ensure(a_cpus == last.to_string(), || {
        format!("A's worker on {a_cpus} after CPU {last} came back; expected {last}")
    })?;
    write_read(&mut a, 0, 8, 4096, 4096, 0, false, 4).map_err(|e| format!("A after: {e}"))?;
    let _c = served_device(&backend, "device C", 5)?;
    let (got, n) = newest_worker_cpus()?;
    ensure(got == last.to_string() && n == 3, || {
        format!("{n} workers, the newest on {got}; expected 3, the newest on CPU {last}")
    })?;
    println!(
        "  CPU {last} offline: A still served, B's worker unpinned on {rest}; back online: A's worker and C's on CPU {last}"
    );
    Ok(())
}

/// CPU hotplug while a pinned worker has I/O in flight: three times, 16
/// writes are in flight (on a backend that takes 20 ms per request) when
/// the worker's CPU goes offline, 16 more are submitted while it is
/// away, and it comes back before they complete. Every request completes
/// OK, every sector reads back what was written, and the worker ends
/// pinned to its CPU.
fn workers_cpu_hotplug_under_io() -> CaseResult {
    let (last, _g) = pin_workers_to_last_cpu()?;
    let (_nb, backend) = slow_backend("vbhq", 20)?;
    let mut t = ctx(TestDevice::new(&backend, Config::default()), "device")?;
    let worker = worker_of(&t)?;
    let mut flow = Flow::new(&mut t, 0, 32, 4096);
    let mut written = Vec::new();
    for round in 0..3u64 {
        let mut submit = |t: &mut TestDevice, flow: &mut Flow| {
            let sector = written.len() as u64 * 8;
            let seed = round * 1000 + sector;
            flow.submit(t, VIRTIO_BLK_T_OUT, sector, seed);
            written.push((sector, seed));
        };
        for _ in 0..16 {
            submit(&mut t, &mut flow);
        }
        let offline = CpuOffline::take(last)?;
        for _ in 0..16 {
            submit(&mut t, &mut flow);
        }
        offline.restore()?;
        flow.drain(&mut t, Duration::from_secs(30))
            .map_err(|e| format!("round {round}: {e}"))?;
    }
    flow.verify_written(&mut t, written.iter().copied())?;
    let cpus_now = worker_cpus_of(worker)?;
    ensure(cpus_now == last.to_string(), || {
        format!("worker on {cpus_now} after the last hotplug; expected CPU {last}")
    })?;
    println!(
        "  3 rounds of CPU {last} offline and back with 16 writes in flight: {} requests OK, {} sectors verified, worker on CPU {last}",
        flow.done,
        written.len()
    );
    Ok(())
}

/// Performs `n` requests at queue depth 1 on queue 0, each submitted once
/// the previous one completed. Returns the kicks the driver sent.
fn qd1(t: &mut TestDevice, flow: &mut Flow, n: u64, seed: u64) -> Result<u64, String> {
    let before = flow.kicks;
    for i in 0..n {
        let ty = if i % 2 == 0 {
            VIRTIO_BLK_T_OUT
        } else {
            VIRTIO_BLK_T_IN
        };
        flow.submit(t, ty, (i % 64) * 8, seed);
        flow.drain(t, Duration::from_secs(10))?;
    }
    Ok(flow.kicks - before)
}

fn workers_poll_budget_avoids_kicks() -> CaseResult {
    let (_nb, f) = backend("vbw1", 16, &[])?;
    let n = 200;
    let cfg = Config {
        features: no_event_idx(),
        ..Config::default()
    };
    // Budget 0: notification mode, every request is kicked.
    let (kicked, v) = {
        let _g = ParamGuard::set(&[("poll_budget_us", "0")])?;
        let mut t = ctx(TestDevice::new(&f, cfg), "device")?;
        let (id, _) = ctx(fd_ids(&t.dev), "fdinfo")?;
        let mut flow = Flow::new(&mut t, 0, 1, 4096);
        let kicked = qd1(&mut t, &mut flow, n, 1)?;
        let v = stats()?.vq(id, 0).cloned().ok_or("no vq statistics")?;
        (kicked, v)
    };
    // Every kick arrives, and none is saved by polling. A few may be
    // saved legitimately: the worker publishes a completion before it
    // looks at the ring again, with notifications off while it does, so a
    // request posted in that window is found without a kick.
    ensure(
        kicked >= n * 9 / 10 && v.num("kicks") == kicked && v.num("polled") == 0,
        || {
            format!(
            "poll_budget_us=0: driver kicked {kicked} of {n}; device counted {} kicks, {} polled",
            v.num("kicks"),
            v.num("polled")
        )
        },
    )?;
    ensure(v.num("requests") == n, || {
        format!("device counted {} requests of {n}", v.num("requests"))
    })?;
    // A large budget under steady load: the queue stays polled and the
    // driver is asked not to kick.
    let (pkicked, pv, polls) = {
        let _g = ParamGuard::set(&[("poll_budget_us", "500000")])?;
        let mut t = ctx(TestDevice::new(&f, cfg), "device")?;
        let (id, w) = ctx(fd_ids(&t.dev), "fdinfo")?;
        let mut flow = Flow::new(&mut t, 0, 1, 4096);
        let kicked = qd1(&mut t, &mut flow, n, 2)?;
        let s = stats()?;
        let v = s.vq(id, 0).cloned().ok_or("no vq statistics")?;
        let polls = w
            .first()
            .and_then(|&w| s.worker(w))
            .map_or(0, |w| w.num("polls"));
        (kicked, v, polls)
    };
    ensure(
        pkicked <= n / 10 && pv.num("polled") >= n * 8 / 10 && polls > 0,
        || {
            format!(
            "poll_budget_us=500000: driver kicked {pkicked} of {n}; device found {} by polling; worker polled {polls} times",
            pv.num("polled")
        )
        },
    )?;
    println!(
        "  {n} QD1 requests: budget 0: {kicked} kicks, 0 polled; budget 500 ms: {pkicked} kicks, {} polled",
        pv.num("polled")
    );
    Ok(())
}

fn workers_no_stranded_requests() -> CaseResult {
    let (_nb, f) = backend("vbw2", 16, &[])?;
    let _g = ParamGuard::set(&[("poll_budget_us", "2000")])?;
    let gaps_us = [0u64, 500, 1500, 1900, 2000, 2100, 2500, 4000, 10000];
    let singles = 600;
    let mut total = 0u64;
    let mut kicks = 0u64;
    for (variant, feats) in [
        ("EVENT_IDX", features::SUPPORTED),
        ("NO_NOTIFY", no_event_idx()),
    ] {
        let cfg = Config {
            features: feats,
            ..Config::default()
        };
        let mut t = ctx(TestDevice::new(&f, cfg), "device")?;
        let (_, w) = ctx(fd_ids(&t.dev), "fdinfo")?;
        let w = *w.first().ok_or("no worker")?;
        let before = stats()?.worker(w).cloned().ok_or("no worker statistics")?;
        let mut flow = Flow::new(&mut t, 0, 16, 4096);
        let mut rng = Rng::new(0x5742_0000 + feats % 97);
        let mut written: HashMap<u64, u64> = HashMap::new();
        for round in 0..80u64 {
            let burst = 1 + rng.below(16);
            for i in 0..burst {
                let sector = rng.below(2048) * 8;
                let seed = round * 100 + i;
                // Distinct sectors within a burst, so the last write wins.
                if flow.inflight.values().any(|x| x.2 == sector) {
                    continue;
                }
                flow.submit(&mut t, VIRTIO_BLK_T_OUT, sector, seed);
                written.insert(sector, seed);
            }
            flow.drain(&mut t, Duration::from_secs(10))
                .map_err(|e| format!("{variant} round {round} (burst {burst}): {e}"))?;
            let gap = gaps_us[rng.below(gaps_us.len() as u64) as usize];
            std::thread::sleep(Duration::from_micros(gap));
        }
        // Read everything back through vhost-blk.
        flow.verify_written(
            &mut t,
            written.iter().map(|(&sector, &seed)| (sector, seed)),
        )
        .map_err(|e| format!("{variant}: {e}"))?;
        let after = stats()?.worker(w).cloned().ok_or("no worker statistics")?;
        let (polls, sleeps) = (
            after.num("polls") - before.num("polls"),
            after.num("sleeps") - before.num("sleeps"),
        );
        // Both sides of the budget were crossed: it polled, and it slept
        // (turning notifications back on) between bursts.
        ensure(polls > 0 && sleeps > 0, || {
            format!("{variant}: worker polled {polls} times and slept {sleeps} times")
        })?;
        // Single requests after gaps drawn around the budget: each lands
        // while the worker polls, just as it gives up, or after it slept.
        // One that arrives while it turns notifications back on is the
        // case the re-check exists for.
        for i in 0..singles {
            let gap = 1000 + rng.below(2000);
            std::thread::sleep(Duration::from_micros(gap));
            flow.submit(&mut t, VIRTIO_BLK_T_IN, (i % 512) * 8, 0);
            flow.drain(&mut t, Duration::from_secs(5))
                .map_err(|e| format!("{variant} single {i} after {gap} us: {e}"))?;
        }
        total += flow.done;
        kicks += flow.kicks;
        println!(
            "  {variant}: 80 bursts and {singles} single requests, {} requests ({} kicks), {} sectors verified, {polls} polls, {sleeps} sleeps",
            flow.done,
            flow.kicks,
            written.len()
        );
    }
    println!("  {total} requests, {kicks} kicks, none stranded");
    Ok(())
}

/// Where the fairness scenario's small queue lives.
#[derive(Clone, Copy, PartialEq)]
enum Beside {
    /// Queue 1 of the flooding device.
    Queue,
    /// Queue 0 of a second device on the same worker.
    Device,
}

/// The CPUs of a cpulist such as `0-3,6`.
fn cpulist(list: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
            cpus.extend(a..=b);
        }
    }
    cpus
}

/// One run of the fairness scenario: queue 0 floods with 64 KiB reads at
/// depth 128 while a small queue (`beside` says where) issues `n` single
/// 4 KiB reads. Returns, for the small queue, the sorted latencies and the
/// sorted numbers of flood completions that overtook each of its requests;
/// the flood's total; and the flood queue's quota hits.
///
/// The worker and this thread, the guest, share one CPU. The count is
/// taken when the guest wakes for the small completion, so on two CPUs it
/// also holds whatever the flood completed while the guest's CPU was
/// waking up: under TCG on a loaded host that often took the whole ring
/// (medians of 41 to 82 where the quota allowed 4 or 8, in CI and on a
/// host building a kernel). On one CPU the guest runs only when the
/// worker yields, between its turns, so each kick lands before a turn and
/// each count is the worker's own doing (medians exactly 8 and 1 in 16
/// runs on that loaded host).
fn flood_and_trickle(
    f: &File,
    n: usize,
    beside: Beside,
) -> Result<(Vec<Duration>, Vec<u64>, u64, u64), String> {
    let online = cpulist(&online_cpus()?);
    let cpu = *online.last().ok_or("no online CPU")?;
    let cpu_text = cpu.to_string();
    // Both queues on one worker, on that CPU.
    let _pinned = ParamGuard::set(&[
        ("worker_cpus", &cpu_text),
        ("queues_per_worker", "2"),
        ("max_workers", "1"),
    ])?;
    let _guest = ctx(CpuPin::to(cpu), "pin the guest thread")?;
    let cfg = Config {
        queues: if beside == Beside::Queue { 2 } else { 1 },
        size: 256,
        features: no_event_idx(),
        ..Config::default()
    };
    let mut t = ctx(TestDevice::new(f, cfg), "device")?;
    let (id, _) = ctx(fd_ids(&t.dev), "fdinfo")?;
    let mut other = match beside {
        Beside::Queue => None,
        Beside::Device => Some(ctx(TestDevice::new(f, cfg), "second device")?),
    };
    let (small_id, small_q) = match &other {
        Some(d) => (ctx(fd_ids(&d.dev), "fdinfo")?.0, 0usize),
        None => (id, 1),
    };
    // One worker serves both queues, it took the pinning, and no other
    // worker (which could be unpinned) serves them.
    let st = stats()?;
    let worker = |d, q: usize| st.vq(d, q as u64).map(|v| v.num("worker"));
    ensure(
        worker(id, 0).is_some() && worker(id, 0) == worker(small_id, small_q),
        || {
            format!(
                "the flood and the small queue are on workers {:?} and {:?}, not one",
                worker(id, 0),
                worker(small_id, small_q)
            )
        },
    )?;
    let cpus = worker(id, 0)
        .and_then(|w| st.worker(w))
        .map(|w| w.text("cpus").to_string());
    ensure(cpus.as_deref() == Some(cpu_text.as_str()), || {
        format!("the flood's worker runs on CPUs {cpus:?}, not {cpu}")
    })?;
    // The device of the small queue.
    macro_rules! small_dev {
        () => {
            match other.as_mut() {
                Some(d) => d,
                None => &mut t,
            }
        };
    }
    let mut flood = Flow::new(&mut t, 0, 128, 65536);
    let mut small = Flow::new(small_dev!(), small_q, 1, 4096);
    let mut lat = Vec::new();
    let mut overtaken = Vec::new();
    let mut mark = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut sector = 0u64;
    while lat.len() < n {
        ensure(Instant::now() < deadline, || {
            format!(
                "only {} of {n} small requests completed in 120 s",
                lat.len()
            )
        })?;
        while flood.can_submit() {
            sector = (sector + 128) % (64 << 11);
            flood.submit(&mut t, VIRTIO_BLK_T_IN, sector, 0);
        }
        if small.can_submit() {
            small.submit(small_dev!(), VIRTIO_BLK_T_IN, 8, 0);
            mark = flood.done;
        }
        // Flood completions first: those published with the small one
        // count as having overtaken it.
        flood.reap(&mut t)?;
        for (_, l, _, _, _) in small.reap(small_dev!())? {
            lat.push(l);
            overtaken.push(flood.done - mark);
        }
        if small.can_submit() {
            continue;
        }
        let sd = small_dev!();
        sd.queues[small_q].call.wait(Duration::from_millis(2));
        sd.queues[small_q].call.take();
        t.queues[0].call.take();
    }
    let hits = stats()?.vq(id, 0).map_or(0, |v| v.num("quota_hits"));
    lat.sort_unstable();
    overtaken.sort_unstable();
    Ok((lat, overtaken, flood.done, hits))
}

fn pct<T: Copy>(v: &[T], p: usize) -> T {
    v[(v.len() * p / 100).min(v.len() - 1)]
}

/// A null_blk completing at submission (`irqmode=0`): a queue with free
/// slots always has work, so only the quota makes it yield.
fn inline_nullb(name: &str) -> Result<(NullBlk, File), String> {
    let nb = ctx(
        NullBlk::create(name, 128, &[("irqmode", "0"), ("blocksize", "512")]),
        "null_blk",
    )?;
    let f = ctx(
        OpenOptions::new().read(true).write(true).open(nb.path()),
        "open null_blk",
    )?;
    Ok((nb, f))
}

/// What [`flood_and_trickle`] measured under one quota.
struct Trickle {
    lat: Vec<Duration>,
    overtaken: Vec<u64>,
    flood_done: u64,
    quota_hits: u64,
}

/// [`flood_and_trickle`] with the module parameters `params`, printing
/// what it measured under `label`.
fn trickle_with(
    f: &File,
    n: usize,
    beside: Beside,
    label: &str,
    params: &[(&str, &str)],
) -> Result<Trickle, String> {
    let _g = ParamGuard::set(params)?;
    let (lat, overtaken, flood_done, quota_hits) = flood_and_trickle(f, n, beside)?;
    println!(
        "  {label}: small p50 {:?} p99 {:?} max {:?}, overtaken p50 {} p99 {} max {}; flood {flood_done} requests, {quota_hits} quota hits",
        pct(&lat, 50),
        pct(&lat, 99),
        lat[n - 1],
        pct(&overtaken, 50),
        pct(&overtaken, 99),
        overtaken[n - 1],
    );
    Ok(Trickle {
        lat,
        overtaken,
        flood_done,
        quota_hits,
    })
}

/// No quota to speak of.
const NO_QUOTA: [(&str, &str); 2] = [("quota_reqs", "32768"), ("quota_kib", "1048576")];

fn workers_quota_keeps_small_queue_fair() -> CaseResult {
    let (_nb, f) = inline_nullb("vbw3")?;
    let n = 60;
    let none = trickle_with(&f, n, Beside::Queue, "no quota", &NO_QUOTA)?;
    let four = trickle_with(
        &f,
        n,
        Beside::Queue,
        "quota 4",
        &[("quota_reqs", "4"), ("quota_kib", "1048576")],
    )?;
    ensure(none.quota_hits == 0 && four.quota_hits > 0, || {
        format!(
            "quota hits: {} without quota, {} with quota 4",
            none.quota_hits, four.quota_hits
        )
    })?;
    // What the quota buys the small queue, counted rather than timed so
    // that a loaded host cannot blur it: how many flood requests complete
    // while a small request waits. Without a quota the worker drains the
    // flood queue's whole depth first; with quota 4 a few at a time. The
    // latencies must follow, with no factor demanded (TCG timing is
    // noisy; the benchmark measures the size of the effect).
    ensure(
        pct(&four.overtaken, 50) * 4 <= pct(&none.overtaken, 50)
            && pct(&four.lat, 50) <= pct(&none.lat, 50),
        || {
            format!(
                "small queue overtaken p50 {} with quota 4, {} without; latency p50 {:?} with, {:?} without: no clear margin",
                pct(&four.overtaken, 50),
                pct(&none.overtaken, 50),
                pct(&four.lat, 50),
                pct(&none.lat, 50)
            )
        },
    )
}

fn workers_waiting_queue_cuts_flood_turn() -> CaseResult {
    waiting_cuts_flood_turn("vbw5", Beside::Queue, &[])
}

fn workers_waiting_device_cuts_flood_turn() -> CaseResult {
    // Two devices of one queue each, on one worker.
    waiting_cuts_flood_turn(
        "vbw6",
        Beside::Device,
        &[("queues_per_worker", "2"), ("max_workers", "1")],
    )
}

/// The flood's turn ends early once the small queue (`beside` it) is
/// kicked, with the module parameters `params` besides the quota.
fn waiting_cuts_flood_turn(nullb: &str, beside: Beside, params: &[(&str, &str)]) -> CaseResult {
    let _g = ParamGuard::set(params)?;
    // The default request quota (64), with bytes out of the way: alone,
    // the flood takes turns of 64; once the small queue is kicked, the
    // flood's turn stops after 64 / CONTENDED_SHARE = 8.
    let (_nb, f) = inline_nullb(nullb)?;
    let n = 60;
    trickle_with(&f, n, beside, "no quota", &NO_QUOTA)?;
    let d = trickle_with(
        &f,
        n,
        beside,
        "quota 64",
        &[("quota_reqs", "64"), ("quota_kib", "1048576")],
    )?;
    // Counted, not timed: how many flood requests complete while a small
    // one waits. Once the small queue is kicked, the flood finishes its
    // turn's share (8) and, if it comes first, takes one more share (8)
    // before the small request is served; a turn that ran on to its full
    // quota would let 64 or more through every time (as no quota lets
    // the whole depth, 128). The tail may add completions that were
    // published before the kick and reaped after, so only the median is
    // bounded.
    let bound = 2 * 8;
    ensure(d.quota_hits > 0 && pct(&d.overtaken, 50) <= bound, || {
        format!(
            "small queue overtaken p50 {} (bound {bound}), p99 {}, {} quota hits, flood {} requests",
            pct(&d.overtaken, 50),
            pct(&d.overtaken, 99),
            d.quota_hits,
            d.flood_done
        )
    })
}

fn workers_teardown_random_order() -> CaseResult {
    let (_nb, f) = backend("vbw4", 64, &[])?;
    let _g = ParamGuard::set(&[("queues_per_worker", "3"), ("max_workers", "2")])?;
    let mut rng = Rng::new(0x7ea7);
    let mut verified = 0u64;
    let mut closed = 0;
    for round in 0..3u64 {
        // Six devices on two workers, each writing and verifying its own
        // 1 MiB region at depth 8.
        let mut devs = Vec::new();
        for i in 0..6u64 {
            let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
            let flow = Flow::new(&mut t, 0, 8, 4096);
            devs.push((i, t, flow, HashMap::<u64, u64>::new()));
        }
        let workers = stats()?.workers.len();
        ensure(workers == 2, || {
            format!("round {round}: {workers} workers for 6 devices")
        })?;
        let mut step = 0u64;
        while !devs.is_empty() {
            step += 1;
            for (i, t, flow, written) in devs.iter_mut() {
                while flow.can_submit() {
                    let sector = *i * 2048 + rng.below(256) * 8;
                    if flow.inflight.values().any(|x| x.2 == sector) {
                        break;
                    }
                    let write = !written.contains_key(&sector) || rng.below(2) == 0;
                    let seed = if write {
                        step * 1000 + sector
                    } else {
                        written[&sector]
                    };
                    let ty = if write {
                        VIRTIO_BLK_T_OUT
                    } else {
                        VIRTIO_BLK_T_IN
                    };
                    flow.submit(t, ty, sector, seed);
                    if write {
                        written.insert(sector, seed);
                    }
                }
                for (_, _, sector, seed, data) in flow.reap(t)? {
                    let mut got = vec![0u8; 4096];
                    t.mem.read(data, &mut got).map_err(|_| "read")?;
                    // Writes leave the written pattern in the buffer too.
                    let bad = (0..4096u64).find(|&k| got[k as usize] != pattern(seed, k));
                    ensure(bad.is_none(), || {
                        format!("device {i}: sector {sector}: byte {bad:?} wrong")
                    })?;
                    verified += 4096;
                }
            }
            // Every few steps, close a random device with requests in
            // flight, while the others keep going.
            if step.is_multiple_of(5) {
                let k = rng.below(devs.len() as u64) as usize;
                let (_, t, flow, _) = devs.swap_remove(k);
                ensure(!flow.inflight.is_empty() || flow.done > 0, || {
                    "a device closed before doing any I/O".into()
                })?;
                drop(t);
                closed += 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let left = stats()?.workers.len();
        ensure(left == 0, || {
            format!("round {round}: {left} workers after all closed")
        })?;
    }
    println!("  {closed} devices closed in random order under I/O, {verified} bytes verified");
    Ok(())
}

fn workers_io_charged_to_owner_cgroup() -> CaseResult {
    cgroup::enable_io()?;
    let (ga, gb) = (
        Cgroup::create("vhost-blk-a")?,
        Cgroup::create("vhost-blk-b")?,
    );
    let (a, b) = (ga.path(), gb.path());
    let _g = ParamGuard::set(&[("queues_per_worker", "4")])?;
    let (_na, fa) = backend("vbwa", 16, &[])?;
    let (_nb, fb) = backend("vbwb", 16, &[])?;
    let (ma, ia) = cgroup::dev_numbers(&fa)?;
    let (mb, ib) = cgroup::dev_numbers(&fb)?;
    // The owner's cgroup is taken at SET_OWNER.
    ga.enter()?;
    let ta = TestDevice::new(&fa, Config::default());
    gb.enter()?;
    let tb = TestDevice::new(&fb, Config::default());
    cgroup::enter(cgroup::ROOT)?;
    let mut ta = ctx(ta, "device a")?;
    let mut tb = ctx(tb, "device b")?;
    let (wa, wb) = (
        ctx(fd_ids(&ta.dev), "fdinfo")?.1,
        ctx(fd_ids(&tb.dev), "fdinfo")?.1,
    );
    ensure(!wa.is_empty() && wa == wb, || {
        format!("devices on workers {wa:?} and {wb:?}, expected one shared worker")
    })?;
    let (ra0, _) = cgroup::io_stat(a, ma, ia)?;
    let (_, wb0) = cgroup::io_stat(b, mb, ib)?;
    let mut fa_ = Flow::new(&mut ta, 0, 4, 65536);
    let mut fb_ = Flow::new(&mut tb, 0, 4, 65536);
    for i in 0..16 {
        fa_.submit(&mut ta, VIRTIO_BLK_T_IN, i * 128, 0);
        fa_.drain(&mut ta, Duration::from_secs(10))?;
        fb_.submit(&mut tb, VIRTIO_BLK_T_OUT, i * 128, i);
        fb_.submit(&mut tb, VIRTIO_BLK_T_OUT, 4096 + i * 128, i);
        fb_.drain(&mut tb, Duration::from_secs(10))?;
    }
    let (ra, wa_) = cgroup::io_stat(a, ma, ia)?;
    let (rb, wb_) = cgroup::io_stat(b, mb, ib)?;
    let (ra_b, wa_b) = cgroup::io_stat(a, mb, ib)?;
    let (rb_a, wb_a) = cgroup::io_stat(b, ma, ia)?;
    println!(
        "  cgroup a: read {} KiB of its device; cgroup b: wrote {} KiB of its device",
        (ra - ra0) >> 10,
        (wb_ - wb0) >> 10
    );
    ensure(ra - ra0 >= 1 << 20 && wb_ - wb0 >= 2 << 20, || {
        format!(
            "owner cgroups charged {} bytes read (a, want 1 MiB) and {} bytes written (b, want 2 MiB)",
            ra - ra0,
            wb_ - wb0
        )
    })?;
    ensure(
        wa_ == 0 && rb == 0 && ra_b + wa_b + rb_a + wb_a == 0,
        || {
            format!("I/O charged to the wrong cgroup: a {wa_}w/{ra_b}r/{wa_b}w, b {rb}r/{rb_a}r/{wb_a}w")
        },
    )
}

/// Runs `vhost-blk-stat` (built next to this binary) with `args`.
pub(crate) fn stat_cli(args: &[&str]) -> Result<String, String> {
    let exe = ctx(std::env::current_exe(), "current_exe")?;
    let cli = exe.with_file_name("vhost-blk-stat");
    let out = ctx(
        std::process::Command::new(&cli).args(args).output(),
        cli.display(),
    )?;
    ensure(out.status.success(), || {
        format!(
            "vhost-blk-stat {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn workers_stat_cli() -> CaseResult {
    let (_nb, f) = backend("vbw5", 16, &[])?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    let (id, w) = ctx(fd_ids(&t.dev), "fdinfo")?;
    let w = *w.first().ok_or("no worker")?;
    let mut flow = Flow::new(&mut t, 0, 4, 4096);
    for i in 0..32 {
        flow.submit(&mut t, VIRTIO_BLK_T_IN, i * 8, 0);
        flow.drain(&mut t, Duration::from_secs(10))?;
    }
    let raw = stat_cli(&["--raw"])?;
    ensure(raw.starts_with("version 2\n"), || {
        format!("--raw output {raw:?}")
    })?;
    let s = Stats::parse(&raw)?;
    let v = s.vq(id, 0).ok_or("no vq line for the device")?;
    ensure(
        v.num("requests") == 32 && v.num("bytes") == 32 * 4096,
        || format!("vq line {v:?} after 32 reads of 4 KiB"),
    )?;
    let table = stat_cli(&[])?;
    let row = table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|c| c.len() == 12 && c[0] == id.to_string() && c[2] == "0")
        .ok_or_else(|| format!("no row for device {id} in:\n{table}"))?;
    ensure(row[1] == w.to_string() && row[3] == "32", || {
        format!("device {id} row {row:?}: expected worker {w} and 32 requests")
    })?;
    let rates = stat_cli(&["-i", "0.2", "-n", "2"])?;
    ensure(rates.matches("REQS/s").count() == 2, || {
        format!("interval mode printed:\n{rates}")
    })?;
    let bad = std::process::Command::new(
        ctx(std::env::current_exe(), "current_exe")?.with_file_name("vhost-blk-stat"),
    )
    .args(["-i", "0"])
    .output();
    ensure(bad.is_ok_and(|o| o.status.code() == Some(2)), || {
        "vhost-blk-stat -i 0 did not fail with usage (2)".into()
    })?;
    println!("  raw, table and interval modes checked against device {id}");
    Ok(())
}

/// A pipe between a parent and its forked child, to start together.
struct Barrier([libc::c_int; 2], [libc::c_int; 2]);

impl Barrier {
    fn new() -> Result<Self, String> {
        let (mut a, mut b) = ([0; 2], [0; 2]);
        // SAFETY: both arrays are valid for two descriptors each.
        if unsafe { libc::pipe(a.as_mut_ptr()) } != 0 || unsafe { libc::pipe(b.as_mut_ptr()) } != 0
        {
            return Err("pipe failed".into());
        }
        Ok(Self(a, b))
    }

    /// Tells the other side this one is ready, then waits until it is:
    /// the parent passes `parent` true, the child false.
    fn meet(&self, parent: bool) -> CaseResult {
        let (tx, rx) = if parent {
            (self.0[1], self.1[0])
        } else {
            (self.1[1], self.0[0])
        };
        let mut b = 0u8;
        // SAFETY: one byte from and to a local, on our own pipe ends.
        let ok = unsafe {
            libc::write(tx, (&raw const b).cast(), 1) == 1
                && libc::read(rx, (&raw mut b).cast(), 1) == 1
        };
        ensure(ok, || "barrier: the other process is gone".into())
    }
}

/// Creates a device on `backend`, meets the other process at `barrier`,
/// then writes and reads back `rounds` blocks of 4 KiB at `sector` through
/// its queue 0, each block with its own pattern of `seed`. `check` runs
/// once both devices exist.
fn own_device_io(
    backend: &File,
    barrier: &Barrier,
    parent: bool,
    rounds: u64,
    seed: u64,
    check: impl FnOnce() -> CaseResult,
) -> CaseResult {
    let mut t = ctx(TestDevice::new(backend, Config::default()), "device")?;
    barrier.meet(parent)?;
    check()?;
    for round in 0..rounds {
        write_read(&mut t, 0, 8, 4096, 4096, 0, false, seed + round)
            .map_err(|e| format!("round {round}: {e}"))?;
    }
    Ok(())
}

/// One worker serves the devices of two processes, a parent and its
/// forked child, doing I/O at once: the worker keeps an adopted address
/// space from one turn to the next (`MmSlot`), so it must switch it
/// between their turns. Both processes create their devices after the
/// fork, so their guest memory lies at the same addresses with different
/// data: a turn in the wrong address space reads the other's buffers, or
/// faults, and the data or a status tells.
fn workers_switch_address_spaces() -> CaseResult {
    let _g = ParamGuard::set(&[("max_workers", "1"), ("poll_budget_us", "0")])?;
    let (_nb0, f0) = backend("vbw9a", 16, &[])?;
    let (_nb1, f1) = backend("vbw9b", 16, &[])?;
    let barrier = Barrier::new()?;
    let rounds = 200;
    // SAFETY: the selftest is single-threaded here; the child does its
    // I/O and leaves with _exit, running no destructor of the parent's.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err("fork failed".into());
    }
    if pid == 0 {
        let r = std::panic::catch_unwind(|| {
            own_device_io(&f1, &barrier, false, rounds, 2000, || Ok(()))
        });
        let code = match r {
            Ok(Ok(())) => 0,
            Ok(Err(e)) => {
                eprintln!("workers_switch_address_spaces: child: {e}");
                1
            }
            Err(_) => 2,
        };
        // SAFETY: _exit is always safe to call.
        unsafe { libc::_exit(code) };
    }
    // Both devices' queues run: one worker serves them.
    let one_worker = || {
        let st = stats()?;
        let workers: Vec<u64> = st.vqs.iter().map(|v| v.num("worker")).collect();
        ensure(workers.len() == 2 && workers[0] == workers[1], || {
            format!("queues on workers {workers:?}, expected two on one")
        })
    };
    let mine = own_device_io(&f0, &barrier, true, rounds, 1000, one_worker);
    let mut status = 0;
    // SAFETY: `status` is valid for writes.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    mine.map_err(|e| format!("parent: {e}"))?;
    ensure(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        || format!("the child's I/O failed (wait status {status:#x}; see above)"),
    )
}

/// A turn of 64 writes to a new device, made visible at once and kicked
/// once: the worker finds them all in one turn, whenever its last pass
/// ran. The device completes in its submission path and the driver
/// always wants interrupts (no EVENT_IDX, no `VRING_AVAIL_F_NO_INTERRUPT`),
/// so the queue's interrupt count is its number of publications.
struct WriteTurn {
    t: TestDevice,
    /// The device's id in the statistics.
    id: u64,
    /// Head and status address of each request.
    posted: Vec<(u16, u64)>,
    /// Each round writes its own sectors: the read-back goes through the
    /// page cache, which holds the earlier rounds'.
    round: u64,
    seed: u64,
}

impl WriteTurn {
    const N: u16 = 64;

    /// Opens a device on `f` and posts the turn's chains, not yet visible.
    fn post(f: &File, round: u64) -> Result<Self, String> {
        // 64 chains of 3 descriptors.
        let cfg = Config {
            size: 256,
            features: no_event_idx(),
            ..Config::default()
        };
        let mut t = ctx(TestDevice::new(f, cfg), "device")?;
        let (id, _) = ctx(fd_ids(&t.dev), "fdinfo")?;
        let seed = 7000 + round * 100;
        let mut posted = Vec::new();
        for i in 0..Self::N {
            let h = t.header(VIRTIO_BLK_T_OUT, Self::sector(round, i));
            let st = t.status();
            let data = t.buf(4096, 4096);
            let bytes: Vec<u8> = (0..4096).map(|o| pattern(seed + u64::from(i), o)).collect();
            t.mem.write(data, &bytes).map_err(|_| "fill")?;
            let bufs = [Buf::r(h, 16), Buf::r(data, 4096), Buf::w(st, 1)];
            let head = t.queues[0]
                .ring
                .build_chain(&t.mem, &bufs)
                .ok_or("no free descriptors")?;
            t.queues[0].ring.write_avail_slot(&t.mem, i, head);
            posted.push((head, st));
        }
        Ok(Self {
            t,
            id,
            posted,
            round,
            seed,
        })
    }

    fn sector(round: u64, i: u16) -> u64 {
        (round * u64::from(Self::N) + u64::from(i)) * 8
    }

    /// Makes all the chains visible with one index update, then kicks.
    fn kick(&mut self) {
        self.t.mem.write_barrier();
        self.t.queues[0].ring.set_avail_idx(&self.t.mem, Self::N);
        self.t.queues[0].kick.signal();
    }

    /// Waits for the turn; checks that each request completed once with
    /// status OK. Returns the interrupts the queue took. `what` names the
    /// setting in errors.
    fn wait(&mut self, what: &str) -> Result<u64, String> {
        let n = usize::from(Self::N);
        let done = self.t.wait(0, n, Duration::from_secs(30))?;
        let mut heads: Vec<u32> = done.iter().map(|d| d.id).collect();
        heads.sort_unstable();
        let mut want: Vec<u32> = self.posted.iter().map(|(h, _)| u32::from(*h)).collect();
        want.sort_unstable();
        ensure(heads == want, || {
            format!("{what}: used ids {heads:?}, posted {want:?}")
        })?;
        for (head, st) in &self.posted {
            let s = self.t.read_status(*st);
            ensure(s == VIRTIO_BLK_S_OK, || {
                format!("{what}: head {head}: status {s}")
            })?;
        }
        let st = stats()?;
        let vq = st.vq(self.id, 0).ok_or("no statistics of the queue")?;
        ensure(vq.num("requests") == u64::from(Self::N), || {
            format!(
                "{what}: {} requests, expected {}",
                vq.num("requests"),
                Self::N
            )
        })?;
        Ok(vq.num("irqs"))
    }

    /// Checks that the data reached the device.
    fn check_data(&self, f: &File, what: &str) -> CaseResult {
        // The read-back goes through the page cache, which may hold what
        // an earlier round read ahead: drop it.
        // SAFETY: an advisory call on an open descriptor.
        let rc = unsafe {
            libc::posix_fadvise(
                std::os::fd::AsRawFd::as_raw_fd(f),
                0,
                0,
                libc::POSIX_FADV_DONTNEED,
            )
        };
        ensure(rc == 0, || format!("posix_fadvise: error {rc}"))?;
        let mut got = vec![0u8; 4096];
        for i in 0..Self::N {
            let off = Self::sector(self.round, i) * 512;
            ctx(
                std::os::unix::fs::FileExt::read_exact_at(f, &mut got, off),
                "read back",
            )?;
            let want: Vec<u8> = (0..4096)
                .map(|o| pattern(self.seed + u64::from(i), o))
                .collect();
            ensure(got == want, || {
                format!("{what}: request {i}: data not written")
            })?;
        }
        Ok(())
    }
}

/// `publish_batch` decides how often a turn publishes its completions: a
/// [`WriteTurn`] publishes once with 0, every 8 requests with 8 and after
/// each request with 1, one interrupt each time; every request completes
/// once with its data written, whatever the setting. Only this test's
/// worker is awake, so a CPU is free for the driver.
fn workers_publish_batch_sets_interrupts_per_turn() -> CaseResult {
    // The turn is ended by the default quota of 64 requests, not by bytes.
    let _g = ParamGuard::set(&[
        ("poll_budget_us", "0"),
        ("quota_reqs", "64"),
        ("quota_kib", "1048576"),
    ])?;
    // Memory-backed, to read the data back, and completing inline.
    let (_nb, f) = backend("vbw10", 16, &[("irqmode", "0")])?;
    for (round, (batch, irqs)) in [("0", 1u64), ("8", 8), ("1", 64)].into_iter().enumerate() {
        let _b = ParamGuard::set(&[("publish_batch", batch)])?;
        let what = format!("publish_batch={batch}");
        let mut turn = WriteTurn::post(&f, round as u64)?;
        turn.kick();
        let got = turn.wait(&what)?;
        ensure(got == irqs, || {
            format!("{what}: {got} interrupts, expected {irqs}")
        })?;
        turn.check_data(&f, &what)?;
    }
    Ok(())
}

/// A turn publishes between its batches only while some CPU has no
/// awake worker (`sched::publish_mid_turn`): a woken driver thread would
/// otherwise preempt a worker. Other devices keep the other workers
/// awake, polling, so that the workers fill the online CPUs; the
/// [`WriteTurn`] at `publish_batch=8`, which publishes 8 times with the
/// CPUs free, then publishes once.
fn workers_publish_once_per_turn_when_workers_fill_the_cpus() -> CaseResult {
    turn_beside_awake_workers("vbw11", false, 1)
}

/// Workers pinned to fewer CPUs than are online (`worker_cpus`, here the
/// last CPU) leave the other CPUs to the drivers however many workers are
/// awake, so the same turn as in
/// [`workers_publish_once_per_turn_when_workers_fill_the_cpus`] keeps
/// publishing every 8 requests.
fn workers_publish_mid_turn_with_pinned_workers() -> CaseResult {
    turn_beside_awake_workers("vbw12", true, 8)
}

/// Runs a [`WriteTurn`] at `publish_batch=8` on a new null_blk `name`
/// while other devices keep a worker awake on each remaining online CPU
/// (all workers pinned to the last CPU if `pinned`), and requires `irqs`
/// interrupts.
fn turn_beside_awake_workers(name: &str, pinned: bool, irqs: u64) -> CaseResult {
    let cpus = usize::try_from(
        // SAFETY: sysconf has no preconditions.
        unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) },
    )
    .map_err(|_| "sysconf(_SC_NPROCESSORS_ONLN) failed")?;
    ensure(cpus >= 2, || {
        format!("{cpus} online CPUs: the test needs 2 or more")
    })?;
    let pin = if pinned {
        (cpus - 1).to_string()
    } else {
        String::new()
    };
    // One worker per queue, polling for the longest budget (1 s) after
    // its last request.
    let _g = ParamGuard::set(&[
        ("poll_budget_us", "1000000"),
        ("queues_per_worker", "1"),
        ("max_workers", "0"),
        ("worker_cpus", &pin),
        ("quota_reqs", "64"),
        ("quota_kib", "1048576"),
        ("publish_batch", "8"),
    ])?;
    let (_nb, f) = backend(name, 16, &[("irqmode", "0")])?;
    let (_hnb, hf) = backend(&format!("{name}h"), 16, &[("irqmode", "0")])?;
    let mut helpers = Vec::new();
    let mut helper_workers = Vec::new();
    for _ in 1..cpus {
        let mut h = ctx(TestDevice::new(&hf, Config::default()), "helper device")?;
        let (_, w) = ctx(fd_ids(&h.dev), "fdinfo")?;
        let flow = Flow::new(&mut h, 0, 1, 4096);
        helper_workers.extend(w);
        helpers.push((h, flow));
    }
    let sleeps = |workers: &[u64]| -> Result<Vec<u64>, String> {
        let st = stats()?;
        workers
            .iter()
            .map(|&w| st.worker(w).map(|r| r.num("sleeps")))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("no statistics of workers {workers:?}"))
    };
    // A helper's worker that sleeps before the turn ends makes the
    // attempt void (a slow moment of the VM): try again.
    for round in 0..5u64 {
        let what = format!(
            "publish_batch=8, {} other workers polling, worker_cpus={pin:?}",
            cpus - 1
        );
        let mut turn = WriteTurn::post(&f, round)?;
        let (_, mine) = ctx(fd_ids(&turn.t.dev), "fdinfo")?;
        let mut workers = helper_workers.clone();
        workers.extend(&mine);
        workers.sort_unstable();
        workers.dedup();
        ensure(workers.len() == cpus, || {
            format!("queues on workers {workers:?}: expected {cpus} distinct workers")
        })?;
        // A request to each helper: its worker polls for 1 s from now.
        for (h, flow) in &mut helpers {
            qd1(h, flow, 1, 11 + round)?;
        }
        let before = sleeps(&helper_workers)?;
        turn.kick();
        let got = turn.wait(&what)?;
        let after = sleeps(&helper_workers)?;
        turn.check_data(&f, &what)?;
        if before != after {
            println!(
                "  attempt {round}: a helper worker slept (sleeps {before:?} -> {after:?}); again"
            );
            continue;
        }
        return ensure(got == irqs, || {
            format!("{what}: {got} interrupts, expected {irqs}")
        });
    }
    Err("the helper workers slept during each of 5 attempts: the VM is too slow for a 1 s poll budget".into())
}
