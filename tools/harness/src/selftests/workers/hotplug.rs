// SPDX-License-Identifier: GPL-2.0

//! CPU hotplug under `worker_cpus`: a pinned worker's CPU going offline
//! and coming back, idle and with I/O in flight.

use std::fs::{self, File};
use std::time::Duration;

use vhost_blk_core::blk::*;

use super::{cpulist, online_cpus, stats, Flow};
use crate::blk::{Config, TestDevice};
use crate::selftests::io::{backend, slow_backend, write_read};
use crate::stats::{fd_ids, ParamGuard};
use crate::testing::{ctx, ensure, CaseResult, KernelLog};

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
pub(super) fn workers_pinned_cpu_goes_offline() -> CaseResult {
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
pub(super) fn workers_cpu_hotplug_under_io() -> CaseResult {
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
