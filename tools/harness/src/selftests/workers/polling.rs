// SPDX-License-Identifier: GPL-2.0

//! Polling with notifications off (`poll_budget_us`): the kicks it saves,
//! and no request stranded when the worker stops polling.

use std::collections::HashMap;
use std::time::Duration;

use vhost_blk_core::blk::*;
use vhost_blk_core::features;

use super::{no_event_idx, qd1, stats, Flow};
use crate::blk::{Config, TestDevice};
use crate::selftests::io::backend;
use crate::stats::{fd_ids, ParamGuard};
use crate::testing::{ctx, ensure, CaseResult, Rng};

pub(super) fn workers_poll_budget_avoids_kicks() -> CaseResult {
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

pub(super) fn workers_no_stranded_requests() -> CaseResult {
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
