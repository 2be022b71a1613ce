// SPDX-License-Identifier: GPL-2.0

//! Workers shared by many devices and owners: devices closed in random
//! order under I/O, I/O charged to each owner's cgroup, and one worker
//! switching between the address spaces of two processes.

use std::collections::HashMap;
use std::fs::File;
use std::time::Duration;

use vhost_blk_core::blk::*;
use vhost_blk_core::memory::UserMemory;

use super::{stats, Flow};
use crate::blk::{pattern, Config, TestDevice};
use crate::cgroup::{self, Cgroup};
use crate::selftests::io::{backend, write_read};
use crate::stats::{fd_ids, ParamGuard};
use crate::testing::{ctx, ensure, CaseResult, Rng};

pub(super) fn workers_teardown_random_order() -> CaseResult {
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

pub(super) fn workers_io_charged_to_owner_cgroup() -> CaseResult {
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
pub(super) fn workers_switch_address_spaces() -> CaseResult {
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
