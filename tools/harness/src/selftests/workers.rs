// SPDX-License-Identifier: GPL-2.0

//! The shared workers: placement by `queues_per_worker` and `max_workers`,
//! CPU pinning, polling with notifications off, per-queue quotas,
//! teardown while a worker serves other devices, and I/O charged to the
//! owner's cgroup. Parameters are changed through sysfs for one case and
//! restored afterwards.

mod cli;
mod fairness;
mod hotplug;
mod lifecycle;
mod placement;
mod polling;
mod publish;
mod sharing;

use std::collections::HashMap;
use std::fs;
use std::time::{Duration, Instant};

use vhost_blk_core::blk::*;
use vhost_blk_core::features::{self, bit};
use vhost_blk_core::memory::UserMemory;

use crate::blk::{pattern, TestDevice};
use crate::request::{ChainLayout, RequestSlot};
use crate::stats::Stats;
use crate::testing::{ctx, ensure, CaseResult, Runner};

/// Registers this area's cases.
pub fn run(r: &mut Runner, module: Option<&std::path::Path>) {
    crate::cases!(
        r,
        placement::workers_params_defaults_and_ranges,
        placement::workers_follow_queues_per_worker,
        placement::workers_pinned_by_worker_cpus,
        polling::workers_poll_budget_avoids_kicks,
        polling::workers_no_stranded_requests,
        polling::workers_polling_end_rechecks_the_ring,
        fairness::workers_quota_keeps_small_queue_fair,
        fairness::workers_waiting_queue_cuts_flood_turn,
        fairness::workers_waiting_device_cuts_flood_turn,
        sharing::workers_teardown_random_order,
        sharing::workers_io_charged_to_owner_cgroup,
        cli::workers_stat_cli,
        hotplug::workers_pinned_cpu_goes_offline,
        hotplug::workers_cpu_hotplug_under_io,
        lifecycle::workers_stopped_before_first_run(module),
        sharing::workers_switch_address_spaces,
        publish::workers_publish_batch_sets_interrupts_per_turn,
        publish::workers_publish_once_per_turn_when_workers_fill_the_cpus,
        publish::workers_publish_mid_turn_with_pinned_workers,
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
    slots: Vec<RequestSlot>,
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
            .map(|_| RequestSlot::alloc(&mut t.alloc, len))
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
        let rs = self.slots[slot];
        if ty == VIRTIO_BLK_T_OUT {
            let bytes: Vec<u8> = (0..u64::from(self.len)).map(|i| pattern(seed, i)).collect();
            t.mem.write(rs.data, &bytes).expect("data");
        }
        let event_idx = t.cfg.features & bit(features::VIRTIO_RING_F_EVENT_IDX) != 0;
        let ring = &mut t.queues[self.q].ring;
        let old = ring.avail_idx();
        let head = rs
            .post(&t.mem, ring, ty, sector, ChainLayout::Indirect)
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
            let rs = self.slots[slot];
            let st = t.read_status(rs.status);
            ensure(st == VIRTIO_BLK_S_OK, || {
                format!("queue {}: request at sector {sector}: status {st}", self.q)
            })?;
            self.free.push(slot);
            self.done += 1;
            out.push((head, at.elapsed(), sector, seed, rs.data));
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
            let data = self.slots[*self.free.last().expect("slot")].data;
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

fn online_cpus() -> Result<String, String> {
    ctx(
        fs::read_to_string("/sys/devices/system/cpu/online"),
        "/sys/devices/system/cpu/online",
    )
    .map(|s| s.trim().to_string())
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
