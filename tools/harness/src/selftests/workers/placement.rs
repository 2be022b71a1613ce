// SPDX-License-Identifier: GPL-2.0

//! Where queues go: the parameters' defaults and ranges, placement by
//! `queues_per_worker` and `max_workers`, and pinning by `worker_cpus`.

use std::collections::HashMap;
use std::fs;

use super::{online_cpus, stats};
use crate::blk::EventFd;
use crate::device::VhostBlk;
use crate::stats::{fd_ids, param, set_param, ParamGuard};
use crate::testing::{ctx, ensure, expect_errno, CaseResult};

/// Opens a device and makes this process its owner.
fn owned_device() -> Result<VhostBlk, String> {
    let d = ctx(VhostBlk::open(), "open")?;
    ctx(d.set_owner(), "VHOST_SET_OWNER")?;
    Ok(d)
}

pub(super) fn workers_params_defaults_and_ranges() -> CaseResult {
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
pub(super) fn kicked_device(queues: u32) -> Result<(VhostBlk, Vec<EventFd>), String> {
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

pub(super) fn workers_follow_queues_per_worker() -> CaseResult {
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

pub(super) fn workers_pinned_by_worker_cpus() -> CaseResult {
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
