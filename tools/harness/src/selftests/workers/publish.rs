// SPDX-License-Identifier: GPL-2.0

//! When a turn publishes its completions: every `publish_batch` requests,
//! and mid-turn only while some CPU has no awake worker.

use std::fs::File;
use std::time::Duration;

use vhost_blk_core::blk::*;
use vhost_blk_core::memory::UserMemory;

use super::{no_event_idx, qd1, stats, Flow};
use crate::blk::{pattern, Config, TestDevice};
use crate::driver::Buf;
use crate::selftests::io::backend;
use crate::stats::{fd_ids, ParamGuard};
use crate::testing::{ctx, ensure, CaseResult};

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
pub(super) fn workers_publish_batch_sets_interrupts_per_turn() -> CaseResult {
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
pub(super) fn workers_publish_once_per_turn_when_workers_fill_the_cpus() -> CaseResult {
    turn_beside_awake_workers("vbw11", false, 1)
}

/// Workers pinned to fewer CPUs than are online (`worker_cpus`, here the
/// last CPU) leave the other CPUs to the drivers however many workers are
/// awake, so the same turn as in
/// [`workers_publish_once_per_turn_when_workers_fill_the_cpus`] keeps
/// publishing every 8 requests.
pub(super) fn workers_publish_mid_turn_with_pinned_workers() -> CaseResult {
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
