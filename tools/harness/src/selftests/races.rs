// SPDX-License-Identifier: GPL-2.0

//! Teardown races: close, `VHOST_RESET_OWNER`, backend detach,
//! `VHOST_GET_VRING_BASE` and memory-table swaps, each with slow bios in
//! flight on two queues, and module unload and reload every hundred
//! iterations. Every request that was used must carry a status, nothing
//! may leak (kmemleak on the debug kernel), and the module must unload.
//! The same teardowns also race bio completions that run in process
//! context (a loop device) and, on the debug kernel, linger after waking
//! the worker (`debug_completion_delay_ms`).

use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vhost_blk_core::blk::*;
use vhost_blk_core::memory::MemRegion;

use crate::blk::{status_at, Config, Queue, TestDevice};
use crate::device::DEVICE_PATH;
use crate::driver::Buf;
use crate::mem::ProcessMemory;
use crate::nullb::LoopDev;
use crate::selftests::io::slow_backend;
use crate::stats::{set_param, ParamGuard, PARAMS_DIR};
use crate::testing::{ctx, ensure, unload_module, CaseResult, Rng, Runner};

/// Registers this area's cases; `module` is the `.ko` to reload.
pub fn run(r: &mut Runner, module: Option<&Path>) {
    crate::cases!(
        r,
        races_teardown_and_unload(module),
        races_completion_vs_teardown(module),
    );
}

/// Iterations to aim for, and the time they may take at most.
const ITERATIONS: u64 = 1000;
const BUDGET: Duration = Duration::from_secs(60);

/// Below the 1 s close waits for the device: a close that returned
/// sooner drained every request the device took.
const CLOSE_WAIT: Duration = Duration::from_millis(950);
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
    used_on(&mut t.queues[q], &t.mem)
}

/// Used elements waiting on `queue`.
fn used_on(queue: &mut Queue, mem: &ProcessMemory) -> usize {
    let mut n = 0;
    while queue.ring.pop_used(mem).is_some() {
        n += 1;
    }
    n
}

/// After `action` stopped the first `stopped` queues of `t`, each with
/// the 8 requests whose status bytes are `statuses[8 * q..]` submitted:
/// checks that each used request, and only those, has its status written,
/// and, if the device had taken them all (`taken`), that all 8 are used:
/// a stop drains what the device took. Returns how many were used.
fn check_stopped(
    queues: &mut [Queue],
    mem: &ProcessMemory,
    statuses: &[u64],
    stopped: usize,
    taken: bool,
    it: u64,
    action: &str,
) -> Result<u64, String> {
    let mut used = 0;
    for (q, queue) in queues.iter_mut().enumerate().take(stopped) {
        let n = used_on(queue, mem);
        let written = statuses[q * 8..q * 8 + 8]
            .iter()
            .filter(|s| status_at(mem, **s) != 0xff)
            .count();
        ensure(n == written, || {
            format!("iteration {it}, {action}: queue {q} has {n} used but {written} statuses")
        })?;
        ensure(!taken || n == 8, || {
            format!("iteration {it}, {action}: queue {q}: {n} of the 8 requests it took used")
        })?;
        used += n as u64;
    }
    Ok(used)
}

/// Unloads vhost_blk, retrying for up to 5 s (a closed device whose bios
/// are still in flight holds the module until they complete), and loads
/// `module` again.
pub(crate) fn reload(module: &str) -> CaseResult {
    unload_module("vhost_blk", Duration::from_secs(5))?;
    sh("insmod", module)?;
    ensure(Path::new(DEVICE_PATH).exists(), || {
        format!("{DEVICE_PATH} missing after reload")
    })
}

/// One round of the teardown races on `f`: a two-queue device with 8
/// requests submitted per queue, ended by `ACTIONS[action]`, on odd
/// iterations once the device took them all (they are in flight or done),
/// on even ones at once (racing their submission). Each stopped queue must
/// have exactly its used requests' statuses written, and all 8 if they
/// were taken. The memory-table swap moves guest memory to other user
/// addresses (a second mapping of the same memory) and makes the old ones
/// holding the requests inaccessible: every request must still complete
/// OK, its status written through the new table. Returns the requests
/// used.
fn teardown_round(f: &File, rng: &mut Rng, action: usize, it: u64) -> Result<u64, String> {
    let cfg = Config {
        queues: 2,
        ..Config::default()
    };
    let mem = ctx(ProcessMemory::new_shared(1 << 20), "guest memory")?;
    let mut t = ctx(TestDevice::with_memory(f, cfg, mem), "device")?;
    let first = t.buf(4096, 4096);
    let mut statuses = submit(&mut t, 0, 8, rng);
    statuses.extend(submit(&mut t, 1, 8, rng));
    let taken = it % 2 == 1 || action == 4;
    if taken {
        for q in 0..2 {
            t.wait_consumed(q, 8, Duration::from_secs(10))
                .map_err(|e| format!("iteration {it}: {e}"))?;
        }
    }
    match action {
        0 => {
            // Close waits up to 1 s for what the device took, then leaves
            // it to the worker, unanswered; the memory outlives the file.
            let TestDevice {
                dev,
                mem,
                mut queues,
                ..
            } = t;
            let at = Instant::now();
            drop(dev);
            let waited = at.elapsed() < CLOSE_WAIT;
            return check_stopped(
                &mut queues,
                &mem,
                &statuses,
                2,
                taken && waited,
                it,
                ACTIONS[action],
            );
        }
        1 => ctx(t.dev.reset_owner(), "RESET_OWNER")?,
        2 => ctx(t.dev.set_backend(-1), "detach")?,
        3 => {
            ctx(t.dev.get_vring_base(0), "GET_VRING_BASE")?;
        }
        _ => return swap_round(&mut t, &statuses, first, it),
    }
    let stopped = if action == 3 { 1 } else { 2 };
    check_stopped(
        &mut t.queues,
        &t.mem,
        &statuses,
        stopped,
        taken,
        it,
        ACTIONS[action],
    )
}

/// The memory-table swap of [`teardown_round`]: the same guest physical
/// memory, as two regions of a second mapping, swapped in while the 16
/// requests (their buffers from `first` on) are in flight; the old user
/// addresses of those buffers then become inaccessible (the rings, below
/// `first`, stay where SET_VRING_ADDR put them).
fn swap_round(t: &mut TestDevice, statuses: &[u64], first: u64, it: u64) -> Result<u64, String> {
    let alias = ctx(t.mem.alias(), "second mapping")?;
    let r = t.mem.region();
    let half = (r.size / 2) & !4095;
    let split = [
        MemRegion {
            size: half,
            userspace_addr: alias.user_addr(r.guest_phys_addr),
            ..r
        },
        MemRegion {
            guest_phys_addr: r.guest_phys_addr + half,
            size: r.size - half,
            userspace_addr: alias.user_addr(r.guest_phys_addr + half),
        },
    ];
    ctx(t.dev.set_mem_table(&split), "SET_MEM_TABLE")?;
    let old = (first, (t.mem.end() - first) as usize);
    ctx(t.mem.protect(old.0, old.1, libc::PROT_NONE), "mprotect")?;
    let done = (0..2).try_for_each(|q| {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut n = 0;
        while n < 8 {
            // The used ring is below `first`, still reachable.
            n += count_used(t, q);
            ensure(Instant::now() < deadline, || {
                format!("iteration {it}: after the swap: queue {q}: {n} of 8 used")
            })?;
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok::<(), String>(())
    });
    let bad = statuses
        .iter()
        .filter(|s| {
            let mut b = [0u8];
            alias.read(**s, &mut b).is_err() || b[0] != VIRTIO_BLK_S_OK
        })
        .count();
    ctx(
        t.mem
            .protect(old.0, old.1, libc::PROT_READ | libc::PROT_WRITE),
        "mprotect",
    )?;
    done?;
    ensure(bad == 0, || {
        format!("iteration {it}: {bad} requests failed across the table swap")
    })?;
    Ok(16)
}

/// `"name count, ..."` of the actions taken.
fn summary(names: &[&str], counts: &[u64]) -> String {
    names
        .iter()
        .zip(counts)
        .map(|(a, n)| format!("{a} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn races_teardown_and_unload(module: Option<&Path>) -> CaseResult {
    let module = module.ok_or("--module not given")?;
    let module = module.to_str().ok_or("bad module path")?;
    // Every bio takes 2 ms, so teardown always meets bios in flight.
    let (_nb, f) = slow_backend("vbrace", 2)?;
    let mut rng = Rng::new(0x7ace);
    let mut counts = [0u64; ACTIONS.len()];
    let (mut reloads, mut used, mut it) = (0, 0u64, 0u64);
    let start = Instant::now();
    while it < ITERATIONS && start.elapsed() < BUDGET {
        it += 1;
        let action = rng.below(ACTIONS.len() as u64) as usize;
        counts[action] += 1;
        used += teardown_round(&f, &mut rng, action, it)?;
        if it.is_multiple_of(100) {
            reload(module)?;
            reloads += 1;
        }
    }
    println!(
        "  {it} iterations in {:.1} s ({}), {reloads} unload/reload cycles, {used} requests used",
        start.elapsed().as_secs_f64(),
        summary(&ACTIONS, &counts)
    );
    ensure(it >= 100 && reloads >= 1, || {
        format!("only {it} iterations fit in {BUDGET:?}")
    })
}

/// Iterations of [`races_completion_vs_teardown`] to aim for, the time
/// they may take at most, and how often the module is reloaded.
const COMPLETION_ITERATIONS: u64 = 300;
/// See [`COMPLETION_ITERATIONS`].
const COMPLETION_BUDGET: Duration = Duration::from_secs(60);
/// See [`COMPLETION_ITERATIONS`].
const COMPLETION_RELOAD_EVERY: u64 = 50;
/// The debug kernel's parameter that makes every bio completion busy-wait
/// so many milliseconds after it queued the bio for the worker and woke
/// it, then touch the queue's completion list again.
const DELAY_KNOB: &str = "debug_completion_delay_ms";

/// Teardown against completions: on a loop device, which completes bios
/// in its worker thread (process context), a two-queue device with 8
/// requests in flight per queue is closed, reset, detached or stopped;
/// every 50 iterations, and once at the end, the module is reloaded. On
/// the debug kernel every completion lingers 20 ms after waking the
/// worker, so teardown meets completions still running: a teardown that
/// freed the completion list under them was a KASAN use-after-free,
/// which the VM runner's log scan fails. Each stopped queue's used
/// requests must all carry a status.
fn races_completion_vs_teardown(module: Option<&Path>) -> CaseResult {
    let module = module.ok_or("--module not given")?;
    let module = module.to_str().ok_or("bad module path")?;
    let lo = ctx(
        LoopDev::create(Path::new("/tmp/vhost-blk-race.img"), 16),
        "loop device",
    )?;
    let f = ctx(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(lo.path()),
        "open loop",
    )?;
    let knob = Path::new(PARAMS_DIR).join(DELAY_KNOB).exists();
    // Restores the delay to its default (0) however the case ends.
    let _delay = if knob {
        Some(ParamGuard::set(&[(DELAY_KNOB, "20")])?)
    } else {
        None
    };
    let mut rng = Rng::new(0xc0de);
    // The stops of ACTIONS, without the table swap.
    let stops = &ACTIONS[..4];
    let mut counts = [0u64; 4];
    let (mut reloads, mut used, mut it) = (0, 0u64, 0u64);
    let start = Instant::now();
    while it < COMPLETION_ITERATIONS && start.elapsed() < COMPLETION_BUDGET {
        it += 1;
        let action = rng.below(stops.len() as u64) as usize;
        counts[action] += 1;
        used += teardown_round(&f, &mut rng, action, it)?;
        if it.is_multiple_of(COMPLETION_RELOAD_EVERY) {
            reload(module)?;
            reloads += 1;
            // A new module starts with the delay off.
            if knob {
                ctx(set_param(DELAY_KNOB, "20"), DELAY_KNOB)?;
            }
        }
    }
    // Once more right after the last teardown, whose bios may still be
    // completing: the module must wait for them, not go under them.
    reload(module)?;
    reloads += 1;
    println!(
        "  {it} iterations in {:.1} s on a loop device ({}), {reloads} unload/reload cycles, \
         {used} requests used, completion delay {}",
        start.elapsed().as_secs_f64(),
        summary(stops, &counts),
        if knob {
            "20 ms (debug kernel)"
        } else {
            "absent (release kernel)"
        }
    );
    ensure(it >= 25, || {
        format!("only {it} iterations fit in {COMPLETION_BUDGET:?}")
    })
}
