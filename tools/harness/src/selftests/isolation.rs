// SPDX-License-Identifier: GPL-2.0

//! Tenant isolation on shared workers: one tenant's guest memory, disk,
//! cgroup or rings must not make the worker sleep or spin on its behalf
//! while other tenants wait. A worker copies guest memory with page
//! faults disabled and leaves faults to the device's slow-path thread (a
//! thread of its VMM), submits bios with `REQ_NOWAIT` and leaves the
//! ones that would block to that thread too, bounds the zero-page bios of
//! WRITE_ZEROES and the length of descriptor chains, and the control
//! ioctls that wait for requests end on a fatal signal.
//!
//! Each case puts the tenants on one worker (`max_workers=1`) where it
//! matters, and reports what it measured on one indented line.

mod blocks4k;
mod bounds;
mod drain;
mod neighbours;
pub(crate) mod partition;
pub(crate) mod scsi_debug;

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use vhost_blk_core::blk::*;
use vhost_blk_core::memory::UserMemory;

use crate::blk::{pattern, request_on, status_name, Config, TestDevice};
use crate::child::{self, describe_status, Child};
use crate::driver::Buf;
use crate::nullb::NullBlk;
use crate::selftests::io::{backend, write_read};
use crate::selftests::workers::stat_cli;
use crate::stats::{fd_ids, ParamGuard, Stats};
use crate::testing::{ctx, ensure, CaseResult, Runner};

/// Registers this area's cases; `kdir` is the test kernel's build tree
/// (for `scsi_debug.ko`).
pub fn run(r: &mut Runner, kdir: Option<&Path>) {
    crate::cases!(
        r,
        neighbours::isolation_userfaultfd_stall_spares_neighbour,
        neighbours::isolation_throttled_neighbour_spares_fast_tenant,
        neighbours::isolation_disk_room_held_by_neighbour,
        bounds::isolation_write_zeroes_memory_bounded,
        bounds::isolation_long_chains_bounded,
        blocks4k::isolation_4k_logical_blocks(kdir),
        partition::isolation_partition_bounced_bios_land_in_place(kdir),
        isolation_cpu_time_accounted,
        isolation_killed_owner_unblocks,
        drain::isolation_stop_publishes_stalled_answers,
    );
}

/// The time limit of one request of a tenant that must not be held up:
/// far above any healthy latency under TCG, far below the seconds a
/// blocked worker holds it.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

/// Sorts `v` and returns its median, 99th percentile and maximum.
fn spread(v: &mut [Duration]) -> (Duration, Duration, Duration) {
    v.sort();
    if v.is_empty() {
        return (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    }
    let at = |p: usize| v[(v.len() * p / 100).min(v.len() - 1)];
    (at(50), at(99), v[v.len() - 1])
}

/// Milliseconds, for the report lines.
fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// One request of `data` on queue 0 of `t`, given at most `timeout`:
/// its status and latency.
fn timed(
    t: &mut TestDevice,
    ty: u32,
    sector: u64,
    data: Buf,
    timeout: Duration,
) -> Result<(u8, Duration), String> {
    let at = Instant::now();
    let (st, _) = request_on(
        &t.mem,
        &mut t.alloc,
        &mut t.queues[0],
        ty,
        sector,
        &[data],
        timeout,
    )?;
    Ok((st, at.elapsed()))
}

/// `n` 4 KiB writes of `pattern(seed + i, ..)`, each read back and
/// verified, on queue 0 of `t` (sectors cycling over 256 KiB), each
/// request given at most `timeout`. `between` runs before every request
/// (to keep neighbours busy). Returns the latency of every request.
fn pairs(
    t: &mut TestDevice,
    n: u64,
    seed: u64,
    timeout: Duration,
    between: &mut dyn FnMut() -> CaseResult,
) -> Result<Vec<Duration>, String> {
    let (w, r) = (t.buf(4096, 4096), t.buf(4096, 4096));
    let mut lat = Vec::new();
    for i in 0..n {
        let sector = (i % 64) * 8;
        let data: Vec<u8> = (0..4096).map(|k| pattern(seed + i, k)).collect();
        t.mem.write(w, &data).map_err(|_| "guest memory")?;
        between()?;
        let (st, l) = timed(t, VIRTIO_BLK_T_OUT, sector, Buf::r(w, 4096), timeout)
            .map_err(|e| format!("write {i}: {e}"))?;
        ensure(st == VIRTIO_BLK_S_OK, || {
            format!("write {i}: {}", status_name(st))
        })?;
        lat.push(l);
        t.mem.write(r, &[0xa5; 4096]).map_err(|_| "guest memory")?;
        between()?;
        let (st, l) = timed(t, VIRTIO_BLK_T_IN, sector, Buf::w(r, 4096), timeout)
            .map_err(|e| format!("read {i}: {e}"))?;
        ensure(st == VIRTIO_BLK_S_OK, || {
            format!("read {i}: {}", status_name(st))
        })?;
        lat.push(l);
        let mut got = vec![0u8; 4096];
        t.mem.read(r, &mut got).map_err(|_| "guest memory")?;
        ensure(got == data, || {
            format!("read {i} at sector {sector} does not return what write {i} wrote")
        })?;
    }
    Ok(lat)
}

/// The one worker serving all of `devs` (each with one queue), from
/// their fdinfo; fails unless they share exactly one.
fn shared_worker(devs: &[&TestDevice]) -> Result<u64, String> {
    let mut all = Vec::new();
    for d in devs {
        all.push(ctx(fd_ids(&d.dev), "fdinfo")?.1);
    }
    match all.first().map(Vec::as_slice) {
        Some([w]) if all.iter().all(|x| x.as_slice() == [*w]) => Ok(*w),
        _ => Err(format!(
            "devices on workers {all:?}, expected one shared worker (max_workers=1)"
        )),
    }
}

/// Polls the statistics every 20 ms for up to `timeout` until `cond`
/// holds of them; returns how long that took, or `None`.
fn stats_until(
    timeout: Duration,
    cond: impl Fn(&Stats) -> bool,
) -> Result<Option<Duration>, String> {
    let at = Instant::now();
    loop {
        if cond(&Stats::read()?) {
            return Ok(Some(at.elapsed()));
        }
        if at.elapsed() >= timeout {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A memory-backed null_blk with a single tag whose every request takes
/// 2 s: one request in the disk, every other one would wait for a tag.
fn one_tag_slow(name: &str) -> Result<(NullBlk, File), String> {
    one_tag_taking(name, "2000000000")
}

/// A memory-backed null_blk with one tag, whose every request takes
/// `nsec` (completed by a timer).
fn one_tag_taking(name: &str, nsec: &str) -> Result<(NullBlk, File), String> {
    backend(
        name,
        16,
        &[
            ("hw_queue_depth", "1"),
            ("irqmode", "2"),
            ("completion_nsec", nsec),
        ],
    )
}

/// `n` 4 KiB reads on queue 0 of `t`, one at a time: their latencies.
fn reads(t: &mut TestDevice, n: u64) -> Result<Vec<Duration>, String> {
    let a = t.buf(4096, 4096);
    let mut lat = Vec::new();
    for i in 0..n {
        let (st, l) = timed(
            t,
            VIRTIO_BLK_T_IN,
            (i % 512) * 8,
            Buf::w(a, 4096),
            REQUEST_LIMIT,
        )
        .map_err(|e| format!("read {i}: {e}"))?;
        ensure(st == VIRTIO_BLK_S_OK, || {
            format!("read {i}: {}", status_name(st))
        })?;
        lat.push(l);
    }
    Ok(lat)
}

/// Two devices on one worker, one doing ten times the other's requests:
/// each queue's `busy_ns` must show the worker time it took (the busier
/// queue more), the worker's own busy time must cover its queues', and
/// `vhost-blk-stat` must show the queues' busy time.
fn isolation_cpu_time_accounted() -> CaseResult {
    // Without polling, a queue is busy only while requests are served.
    let _g = ParamGuard::set(&[("max_workers", "1"), ("poll_budget_us", "0")])?;
    let (_nb, f) = backend("vbisot2", 16, &[])?;
    let mut x = ctx(TestDevice::new(&f, Config::default()), "X")?;
    let mut y = ctx(TestDevice::new(&f, Config::default()), "Y")?;
    let w = shared_worker(&[&x, &y])?;
    let (idx, idy) = (
        ctx(fd_ids(&x.dev), "fdinfo")?.0,
        ctx(fd_ids(&y.dev), "fdinfo")?.0,
    );
    reads(&mut x, 2000).map_err(|e| format!("X: {e}"))?;
    reads(&mut y, 200).map_err(|e| format!("Y: {e}"))?;
    let st = Stats::read()?;
    let busy = |id: u64| st.vq(id, 0).map_or(0, |v| v.num("busy_ns"));
    let (bx, by) = (busy(idx), busy(idy));
    let queues: u64 = st
        .vqs
        .iter()
        .filter(|v| v.text("worker") == w.to_string())
        .map(|v| v.num("busy_ns"))
        .sum();
    let worker = st.worker(w).map_or(0, |r| r.num("busy_ns"));
    let table = stat_cli(&[])?;
    let st2 = Stats::read()?;
    let bx2 = st2.vq(idx, 0).map_or(0, |v| v.num("busy_ns"));
    println!(
        "  X 2000 reads busy {:.1} ms, Y 200 reads busy {:.1} ms; worker busy {:.1} ms, its \
         queues {:.1} ms",
        bx as f64 / 1e6,
        by as f64 / 1e6,
        worker as f64 / 1e6,
        queues as f64 / 1e6
    );
    ensure(bx > 0 && bx > by, || {
        format!("busy_ns of X {bx} and of Y {by}: X did ten times Y's requests")
    })?;
    ensure(worker >= queues - queues / 20, || {
        format!("the worker was busy {worker} ns, less than its queues' {queues} ns")
    })?;
    // The queue table's BUSYMS column for X lies between the two
    // readings of the statistics.
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .skip_while(|c: &Vec<&str>| c.first() != Some(&"DEVICE"))
        .collect();
    let col = rows
        .first()
        .and_then(|c| c.iter().position(|h| *h == "BUSYMS"))
        .ok_or_else(|| format!("no BUSYMS column in vhost-blk-stat's queue table:\n{table}"))?;
    let id = idx.to_string();
    let shown: f64 = rows
        .iter()
        .find(|c| c.first() == Some(&id.as_str()) && c.get(2) == Some(&"0"))
        .and_then(|c| c.get(col))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no busy time for device {idx} in:\n{table}"))?;
    let (lo, hi) = (bx as f64 / 1e6 - 0.1, bx2 as f64 / 1e6 + 0.1);
    ensure(shown >= lo && shown <= hi, || {
        format!("vhost-blk-stat shows X busy {shown} ms, the statistics {lo:.1} to {hi:.1} ms")
    })
}

/// The waits of the owner that drain a queue: each must end on a fatal
/// signal.
#[derive(Clone, Copy, Debug)]
enum Drain {
    GetVringBase,
    ResetOwner,
    Detach,
}

impl Drain {
    fn name(self) -> &'static str {
        match self {
            Drain::GetVringBase => "GET_VRING_BASE",
            Drain::ResetOwner => "RESET_OWNER",
            Drain::Detach => "detach",
        }
    }

    fn run(self, t: &TestDevice) -> std::io::Result<()> {
        match self {
            Drain::GetVringBase => t.dev.get_vring_base(0).map(|_| ()),
            Drain::ResetOwner => t.dev.reset_owner(),
            Drain::Detach => t.dev.set_backend(-1),
        }
    }
}

/// For each drain (`GET_VRING_BASE`, `RESET_OWNER`, detach): the owner of
/// a device with 16 writes posted on a disk that takes 6 s per request,
/// one at a time, waits in it for those the device took: the one the disk
/// holds and the one that bounced off its tag (12 s; the device takes no
/// more while a bio waits for room). SIGKILL must end that wait and the
/// process must exit at once (close does not wait either). The module
/// stays healthy.
fn isolation_killed_owner_unblocks() -> CaseResult {
    let mut reaped = Vec::new();
    for (i, drain) in [Drain::GetVringBase, Drain::ResetOwner, Drain::Detach]
        .into_iter()
        .enumerate()
    {
        let r = killed_in(drain, &format!("vbisok{i}"))
            .map_err(|e| format!("killed in {}: {e}", drain.name()))?;
        reaped.push(format!("{} {}", drain.name(), ms(r)));
    }
    let (_nb, f) = backend("vbisokn", 16, &[])?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "new device")?;
    write_read(&mut t, 0, 64, 4096, 4096, 0, false, 0x150_e000)
        .map_err(|e| format!("a new device after the kills: {e}"))?;
    println!(
        "  owner killed with 16 slow writes in flight, reaped after: {}; a new device works",
        reaped.join(", ")
    );
    Ok(())
}

/// One owner killed while it waits in `drain`: how long its reaping took.
fn killed_in(drain: Drain, disk: &str) -> Result<Duration, String> {
    let (_ns, fs) = one_tag_taking(disk, "6000000000")?;
    let (mut lines, tx) = child::pipe()?;
    let mut c = Child::spawn(&tx, || {
        let mut t = ctx(TestDevice::new(&fs, Config::default()), "device")?;
        for i in 0..16u64 {
            let a = t.buf(4096, 4096);
            // 64 KiB apart: no two merge into one request of the disk.
            let h = t.header(VIRTIO_BLK_T_OUT, i * 128);
            let s = t.status();
            t.submit(0, &[Buf::r(h, 16), Buf::r(a, 4096), Buf::w(s, 1)], false);
        }
        // One taken is enough: the disk holds it for 6 s, and the others
        // wait for its one tag (a worker that waits for the tag itself
        // keeps the queue's lock, and the drain could not even start
        // waiting interruptibly). The statistics say what the device
        // took; `avail_event` would not: it is published only once the
        // ring is empty, and a queue waiting for its disk stops taking.
        let (id, _) = ctx(fd_ids(&t.dev), "fdinfo")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Stats::read()?.vq(id, 0).map_or(0, |v| v.num("last_avail")) < 1 {
            ensure(Instant::now() < deadline, || {
                "the device took none of 16 writes in 30 s".to_string()
            })?;
            std::thread::sleep(Duration::from_millis(5));
        }
        tx.send("waiting");
        let at = Instant::now();
        let r = drain.run(&t);
        tx.send(&format!("returned after {} with {r:?}", ms(at.elapsed())));
        Ok(())
    })?;
    drop(tx);
    // The child reads the statistics, which lock the queue: a worker that
    // waits for the disk with that lock held keeps it for 30 s.
    lines
        .expect("waiting", Duration::from_secs(10))
        .map_err(|e| format!("the owner never got to {}: {e}", drain.name()))?;
    std::thread::sleep(Duration::from_secs(1));
    match lines.recv(Duration::ZERO)? {
        None => {}
        Some(l) => match l.strip_prefix("error ") {
            Some(why) => return Err(format!("child: {why}")),
            None => {
                return Err(format!(
                    "{} {l} with writes of 6 s each in flight: it did not wait",
                    drain.name()
                ))
            }
        },
    }
    c.kill()?;
    let at = Instant::now();
    let status = c.wait_for(Duration::from_secs(5))?.ok_or_else(|| {
        format!(
            "the owner is still alive 5 s after SIGKILL: {} or close does not end its wait on \
             a fatal signal",
            drain.name()
        )
    })?;
    let reaped = at.elapsed();
    ensure(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        || format!("the owner {}, expected SIGKILL", describe_status(status)),
    )?;
    Ok(reaped)
}
