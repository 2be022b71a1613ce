// SPDX-License-Identifier: GPL-2.0

//! Teardown races: close, `VHOST_RESET_OWNER`, backend detach,
//! `VHOST_GET_VRING_BASE` and memory-table swaps, each with slow bios in
//! flight on two queues, and module unload and reload every hundred
//! iterations. Every request that was used must carry a status, nothing
//! may leak (kmemleak on the debug kernel), and the module must unload.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vhost_blk_core::blk::*;
use vhost_blk_core::memory::MemRegion;

use crate::blk::{Config, TestDevice};
use crate::device::DEVICE_PATH;
use crate::driver::Buf;
use crate::selftests::io::slow_backend;
use crate::testing::{ctx, ensure, CaseResult, Rng, Runner};

/// Registers this area's cases; `module` is the `.ko` to reload.
pub fn run(r: &mut Runner, module: Option<&Path>) {
    r.run("races_teardown_and_unload", || {
        races_teardown_and_unload(module)
    });
}

/// Iterations to aim for, and the time they may take at most.
const ITERATIONS: u64 = 1000;
const BUDGET: Duration = Duration::from_secs(90);

const ACTIONS: [&str; 5] = [
    "close",
    "RESET_OWNER",
    "detach",
    "GET_VRING_BASE",
    "SET_MEM_TABLE swap",
];

fn sh(prog: &str, arg: &str) -> CaseResult {
    let out = ctx(Command::new(prog).arg(arg).output(), prog)?;
    ensure(out.status.success(), || {
        format!(
            "{prog} {arg}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

/// Submits `n` 4 KiB requests on queue `q` without waiting; returns their
/// status addresses.
fn submit(t: &mut TestDevice, q: usize, n: u64, rng: &mut Rng) -> Vec<u64> {
    (0..n)
        .map(|i| {
            let write = rng.below(2) == 0;
            let h = t.header(
                if write {
                    VIRTIO_BLK_T_OUT
                } else {
                    VIRTIO_BLK_T_IN
                },
                rng.below(1024) * 8,
            );
            let a = t.buf(4096, 4096);
            let s = t.status();
            let data = if write {
                Buf::r(a, 4096)
            } else {
                Buf::w(a, 4096)
            };
            t.submit(q, &[Buf::r(h, 16), data, Buf::w(s, 1)], i % 2 == 1);
            s
        })
        .collect()
}

/// Used elements waiting on queue `q`.
fn count_used(t: &mut TestDevice, q: usize) -> usize {
    let mut n = 0;
    while t.queues[q].ring.pop_used(&t.mem).is_some() {
        n += 1;
    }
    n
}

fn races_teardown_and_unload(module: Option<&Path>) -> CaseResult {
    let module = module.ok_or("--module not given")?;
    let module = module.to_str().ok_or("bad module path")?;
    // Every bio takes 2 ms, so teardown always meets bios in flight.
    let (_nb, f) = slow_backend("vbrace", 2)?;
    let mut rng = Rng::new(0x7ace);
    let mut counts = [0u64; ACTIONS.len()];
    let mut reloads = 0;
    let mut used = 0u64;
    let start = Instant::now();
    let mut it = 0u64;
    while it < ITERATIONS && start.elapsed() < BUDGET {
        it += 1;
        let cfg = Config {
            queues: 2,
            mem_mib: 1,
            ..Config::default()
        };
        let mut t = ctx(TestDevice::new(&f, cfg), "device")?;
        let mut statuses = submit(&mut t, 0, 8, &mut rng);
        statuses.extend(submit(&mut t, 1, 8, &mut rng));
        let action = rng.below(ACTIONS.len() as u64) as usize;
        counts[action] += 1;
        match action {
            0 => {}
            1 => ctx(t.dev.reset_owner(), "RESET_OWNER")?,
            2 => ctx(t.dev.set_backend(-1), "detach")?,
            3 => {
                ctx(t.dev.get_vring_base(0), "GET_VRING_BASE")?;
            }
            _ => {
                // The same memory, described as two regions, swapped in
                // while bios are in flight; requests complete through it.
                let r = t.mem.region();
                let half = (r.size / 2) & !4095;
                let split = [
                    MemRegion { size: half, ..r },
                    MemRegion {
                        guest_phys_addr: r.guest_phys_addr + half,
                        size: r.size - half,
                        userspace_addr: r.userspace_addr + half,
                    },
                ];
                ctx(t.dev.set_mem_table(&split), "SET_MEM_TABLE")?;
                for q in 0..2 {
                    t.wait(q, 8, Duration::from_secs(10))
                        .map_err(|e| format!("iteration {it}: after the swap: {e}"))?;
                }
                let bad = statuses
                    .iter()
                    .filter(|s| t.read_status(**s) != VIRTIO_BLK_S_OK)
                    .count();
                ensure(bad == 0, || {
                    format!("iteration {it}: {bad} requests failed across the table swap")
                })?;
                used += 16;
            }
        }
        if (1..=3).contains(&action) {
            // The stopped queues are drained: each used request, and only
            // those, has its status written.
            let stopped = if action == 3 { 1 } else { 2 };
            for q in 0..stopped {
                let n = count_used(&mut t, q);
                let written = statuses[q * 8..q * 8 + 8]
                    .iter()
                    .filter(|s| t.read_status(**s) != 0xff)
                    .count();
                ensure(n == written, || {
                    format!(
                        "iteration {it}, {}: queue {q} has {n} used but {written} statuses",
                        ACTIONS[action]
                    )
                })?;
                used += n as u64;
            }
        }
        drop(t);
        if it.is_multiple_of(100) {
            sh("rmmod", "vhost_blk")?;
            sh("insmod", module)?;
            ensure(Path::new(DEVICE_PATH).exists(), || {
                format!("{DEVICE_PATH} missing after reload")
            })?;
            reloads += 1;
        }
    }
    let summary = ACTIONS
        .iter()
        .zip(counts)
        .map(|(a, n)| format!("{a} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "  {it} iterations in {:.1} s ({summary}), {reloads} unload/reload cycles, {used} requests used",
        start.elapsed().as_secs_f64()
    );
    ensure(it >= 100 && reloads >= 1, || {
        format!("only {it} iterations fit in {BUDGET:?}")
    })
}
