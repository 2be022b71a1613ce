// SPDX-License-Identifier: GPL-2.0

//! The benchmark's peers agree: data written through `/dev/vhost-blk`
//! reads back the same through `qemu-storage-daemon`'s vhost-user-blk
//! export (driven by the harness's vhost-user client) and through raw
//! `O_DIRECT`, and the other way round; and each benchmark engine runs a
//! short mixed workload without an error, with a guest that sleeps for
//! its interrupts and with one that polls (and is not interrupted). This
//! keeps `make bench` honest: a peer that dropped or misplaced requests,
//! or interrupted a polling guest, would fail here.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use vhost_blk_core::blk::*;
use vhost_blk_core::features;
use vhost_blk_core::memory::UserMemory;

use crate::bench::{
    alloc_slots, open_direct, run_uring, run_virtqueues, Sample, Workload, GUEST_FEATURES,
};
use crate::blk::{pattern, request_on, status_name, Config, Queue, TestDevice};
use crate::driver::Buf;
use crate::mem::{BumpAllocator, ProcessMemory};
use crate::nullb::{sectors, NullBlk};
use crate::testing::{ctx, ensure, CaseResult, Runner};
use crate::vhost_user::{StorageDaemon, VhostUserBlk};

/// Registers this area's cases.
pub fn run(r: &mut Runner) {
    crate::cases!(r, bench_peers_agree, bench_qsd_poll_follows_qmp);
}

const T: Duration = Duration::from_secs(30);
/// Blocks of 16 KiB written by each side.
const BLOCKS: u64 = 32;
const BLOCK: u32 = 16 << 10;

fn check_block(got: &[u8], seed: u64, what: &str) -> CaseResult {
    for (i, b) in got.iter().enumerate() {
        if *b != pattern(seed, i as u64) {
            return Err(format!("{what}: byte {i} is {b:#x}, not the pattern"));
        }
    }
    Ok(())
}

/// Runs `w` on the virtqueues of a vhost-blk device or vhost-user
/// connection; returns the sample and the signals of their call eventfds
/// meanwhile.
fn run_queues(
    mem: &ProcessMemory,
    alloc: &mut BumpAllocator,
    queues: &mut [Queue],
    features: u64,
    w: &Workload,
    nsect: u64,
    dur: Duration,
) -> (Sample, u64) {
    let slots: Vec<_> =
        w.qd.iter()
            .map(|&qd| alloc_slots(alloc, qd, w.bs))
            .collect();
    for q in queues.iter() {
        q.call.take();
    }
    let s = run_virtqueues(mem, queues, &slots, features, w, nsect, dur);
    (s, queues.iter().map(|q| q.call.take()).sum())
}

fn bench_peers_agree() -> CaseResult {
    let nb = ctx(
        NullBlk::create("vbpeers", 64, &[("memory_backed", "1")]),
        "null_blk",
    )?;
    let path = nb.path();
    let nsect = ctx(sectors(path), "size")?;
    let backend = ctx(open_direct(path), "open")?;
    let qsd = ctx(
        StorageDaemon::start(path, Path::new("/tmp/vbpeers.sock"), 2),
        "qemu-storage-daemon",
    )?;
    let connect = || {
        ctx(
            VhostUserBlk::connect(qsd.socket(), T, GUEST_FEATURES, 2, 128, 8),
            "vhost-user connect",
        )
    };

    // Each engine runs a short 70/30 mix on two queues without an error.
    let mut w = Workload::new("randrw", 4096, 8, 2);
    let dur = Duration::from_millis(500);
    let mut vb = ctx(
        TestDevice::new(
            &backend,
            Config {
                queues: 2,
                features: GUEST_FEATURES,
                ..Config::default()
            },
        ),
        "vhost-blk device",
    )?;
    let mut vu = connect()?;
    let mut counts = Vec::new();
    for (engine, poll) in ["vhost-blk", "vhost-user", "io_uring"]
        .into_iter()
        .flat_map(|e| [(e, false), (e, true)])
    {
        w.guest_poll = poll;
        // With the signals of the call eventfds during the run.
        let (s, calls) = match engine {
            "io_uring" => (ctx(run_uring(&backend, &w, nsect, dur), "io_uring")?, 0),
            "vhost-blk" => run_queues(
                &vb.mem,
                &mut vb.alloc,
                &mut vb.queues,
                vb.cfg.features,
                &w,
                nsect,
                dur,
            ),
            _ => run_queues(
                &vu.mem,
                &mut vu.alloc,
                &mut vu.queues,
                vu.features,
                &w,
                nsect,
                dur,
            ),
        };
        let mode = if poll { "polling guest" } else { "interrupts" };
        ensure(s.errors == 0 && s.ios > 0 && s.lat_ns.len() == 2, || {
            format!("{engine}, {mode}: {} requests, {} errors", s.ios, s.errors)
        })?;
        // Every completion the driver asked to be told of was signalled:
        // no wait for an interrupt timed out with completions waiting.
        ensure(s.missed_signals == 0, || {
            format!(
                "{engine}, {mode}: {} waits for an interrupt timed out with completions on \
                 the used ring",
                s.missed_signals
            )
        })?;
        // A polling guest keeps used_event 65535 completions ahead of
        // its used index: each queue may be signalled once per wrap.
        if poll {
            let allowed = s.ios / 65536 + w.qd.len() as u64;
            ensure(calls <= allowed, || {
                format!(
                    "{engine}, {mode}: {calls} signals for {} requests (at most {allowed})",
                    s.ios
                )
            })?;
        }
        counts.push(format!("{engine} ({mode}) {}", s.ios));
    }
    drop(vu);

    // With the legacy NOTIFY_ON_EMPTY acked, the device must signal each
    // time it drains the avail ring, interrupts suppressed or not: the
    // polling guest's run ends with the ring drained.
    let mut legacy = ctx(
        TestDevice::new(
            &backend,
            Config {
                queues: 2,
                features: GUEST_FEATURES | features::bit(features::VIRTIO_F_NOTIFY_ON_EMPTY),
                ..Config::default()
            },
        ),
        "vhost-blk device with NOTIFY_ON_EMPTY",
    )?;
    w.guest_poll = true;
    let (s, calls) = run_queues(
        &legacy.mem,
        &mut legacy.alloc,
        &mut legacy.queues,
        legacy.cfg.features,
        &w,
        nsect,
        Duration::from_millis(200),
    );
    ensure(s.errors == 0 && s.ios > 0 && calls > 0, || {
        format!(
            "vhost-blk, NOTIFY_ON_EMPTY, polling guest: {} requests, {} errors, {calls} signals",
            s.ios, s.errors
        )
    })?;
    drop(legacy);

    // vhost-blk writes even blocks; vhost-user writes odd ones.
    let mut vu = connect()?;
    for k in 0..BLOCKS {
        let seed = 0x5eed_0000 + k;
        let sector = k * u64::from(BLOCK / 512);
        let (mem, alloc, queue) = if k % 2 == 0 {
            (&vb.mem, &mut vb.alloc, &mut vb.queues[(k / 2 % 2) as usize])
        } else {
            (&vu.mem, &mut vu.alloc, &mut vu.queues[(k / 2 % 2) as usize])
        };
        let buf = alloc.alloc(u64::from(BLOCK), 4096);
        let data: Vec<u8> = (0..u64::from(BLOCK)).map(|i| pattern(seed, i)).collect();
        mem.write(buf, &data).map_err(|_| "data")?;
        let (st, _) = request_on(
            mem,
            alloc,
            queue,
            VIRTIO_BLK_T_OUT,
            sector,
            &[Buf::r(buf, BLOCK)],
            T,
        )?;
        ensure(st == VIRTIO_BLK_S_OK, || {
            format!("write {k}: {}", status_name(st))
        })?;
    }
    let flush = |mem: &ProcessMemory, alloc, queue| {
        request_on(mem, alloc, queue, VIRTIO_BLK_T_FLUSH, 0, &[], T)
    };
    ensure(
        flush(&vb.mem, &mut vb.alloc, &mut vb.queues[0])?.0 == VIRTIO_BLK_S_OK,
        || "vhost-blk flush".into(),
    )?;
    ensure(
        flush(&vu.mem, &mut vu.alloc, &mut vu.queues[0])?.0 == VIRTIO_BLK_S_OK,
        || "vhost-user flush".into(),
    )?;

    // Every block reads back the same through all three paths.
    let direct = ProcessMemory::new(BLOCK as usize).map_err(|e| e.to_string())?;
    let mut bytes = 0u64;
    for k in 0..BLOCKS {
        let seed = 0x5eed_0000 + k;
        let sector = k * u64::from(BLOCK / 512);
        for (name, mem, alloc, queue) in [
            ("vhost-blk", &vb.mem, &mut vb.alloc, &mut vb.queues[1]),
            ("vhost-user", &vu.mem, &mut vu.alloc, &mut vu.queues[1]),
        ] {
            let buf = alloc.alloc(u64::from(BLOCK), 4096);
            let (st, len) = request_on(
                mem,
                alloc,
                queue,
                VIRTIO_BLK_T_IN,
                sector,
                &[Buf::w(buf, BLOCK)],
                T,
            )?;
            ensure(st == VIRTIO_BLK_S_OK && len == BLOCK + 1, || {
                format!(
                    "read {k} via {name}: {}, used length {len}",
                    status_name(st)
                )
            })?;
            let mut got = vec![0u8; BLOCK as usize];
            mem.read(buf, &mut got).map_err(|_| "data")?;
            check_block(&got, seed, &format!("block {k} via {name}"))?;
            bytes += u64::from(BLOCK);
        }
        let p = direct
            .host_ptr(direct.base(), BLOCK as usize)
            .ok_or("buffer")?;
        // SAFETY: `p` is the start of `direct`'s BLOCK-byte mapping, which
        // outlives this slice; nothing else uses it meanwhile.
        let buf = unsafe { std::slice::from_raw_parts_mut(p, BLOCK as usize) };
        ctx(backend.read_exact_at(buf, sector * 512), "O_DIRECT read")?;
        check_block(buf, seed, &format!("block {k} via O_DIRECT"))?;
        bytes += u64::from(BLOCK);
    }
    println!(
        "# bench_peers_agree: {} ; {BLOCKS} blocks written, {bytes} bytes verified across vhost-blk, vhost-user and O_DIRECT",
        counts.join(", ")
    );
    Ok(())
}

/// The benchmark runs qemu-storage-daemon at each of vhost-blk's poll
/// budgets by setting its iothread's `poll-max-ns` over QMP: each setting
/// reads back, `None` restores the daemon's default, and a daemon whose
/// polling is off still serves requests.
fn bench_qsd_poll_follows_qmp() -> CaseResult {
    let nb = ctx(NullBlk::create("vbqmp", 16, &[]), "null_blk")?;
    let path = nb.path();
    let nsect = ctx(sectors(path), "size")?;
    let qsd = ctx(
        StorageDaemon::start(path, Path::new("/tmp/vbqmp.sock"), 1),
        "qemu-storage-daemon",
    )?;
    let default = qsd.default_poll_max_ns();
    ensure(default > 0, || {
        format!("default poll-max-ns {default}: QEMU's iothreads poll by default")
    })?;
    for ns in [Some(0), Some(200_000), None, Some(0)] {
        ctx(qsd.set_poll_max_ns(ns), "set poll-max-ns")?;
        let got = ctx(qsd.poll_max_ns(), "get poll-max-ns")?;
        let want = ns.unwrap_or(default);
        ensure(got == want, || format!("poll-max-ns {got}, set {want}"))?;
    }
    let mut vu = ctx(
        VhostUserBlk::connect(qsd.socket(), T, GUEST_FEATURES, 1, 128, 8),
        "vhost-user connect",
    )?;
    let w = Workload::new("randread", 4096, 4, 1);
    let (s, _) = run_queues(
        &vu.mem,
        &mut vu.alloc,
        &mut vu.queues,
        vu.features,
        &w,
        nsect,
        Duration::from_millis(300),
    );
    ensure(s.errors == 0 && s.ios > 0, || {
        format!("polling off: {} requests, {} errors", s.ios, s.errors)
    })
}
