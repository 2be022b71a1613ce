// SPDX-License-Identifier: GPL-2.0

//! The scenarios: the workload matrix against every engine (shared CPUs,
//! I/O core, polling guest), fairness, many devices, and the memory and
//! wake-up measurements.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use vhost_blk_harness::bench::{
    alloc_slots, event_idx_acked, mem_mib_for, open_direct, run_jobs, run_uring, run_virtqueues,
    slab_kib, wake_cost, Job, Sample, Workload, GUEST_FEATURES,
};
use vhost_blk_harness::blk::{Config, TestDevice};
use vhost_blk_harness::nullb::sectors;
use vhost_blk_harness::request::RequestSlot;
use vhost_blk_harness::stats::{ParamGuard, Stats};
use vhost_blk_harness::vhost_user::{StorageDaemon, VhostUserBlk};

use super::{Args, Engine, Row};

fn workloads(quick: bool) -> Vec<Workload> {
    if quick {
        return vec![
            Workload::new("randread", 4096, 1, 1),
            Workload::new("randread", 4096, 32, 1),
            Workload::new("randrw", 4096, 16, 2),
        ];
    }
    vec![
        Workload::new("randread", 4096, 1, 1),
        Workload::new("randwrite", 4096, 1, 1),
        Workload::new("randread", 4096, 16, 1),
        Workload::new("randread", 4096, 32, 1),
        Workload::new("randread", 4096, 128, 1),
        Workload::new("randwrite", 4096, 16, 1),
        Workload::new("randrw", 4096, 16, 1),
        Workload::new("read", 65536, 16, 1),
        Workload::new("write", 65536, 16, 1),
        Workload::new("randread", 4096, 32, 2),
        Workload::new("randread", 4096, 32, 4),
    ]
}

/// Everything a workload needs on one backing device, set up once and
/// reused by every repetition.
struct Peers {
    vb: TestDevice,
    vb_slots: Vec<Vec<RequestSlot>>,
    vu: VhostUserBlk,
    vu_slots: Vec<Vec<RequestSlot>>,
    direct: File,
}

const RING: u16 = 256;

fn vhost_blk_device(
    backend: &File,
    queues: usize,
    w: &Workload,
) -> Result<(TestDevice, Vec<Vec<RequestSlot>>), String> {
    let qd = *w.qd.iter().max().unwrap();
    let mut dev = TestDevice::new(
        backend,
        Config {
            queues: queues as u32,
            size: RING,
            features: GUEST_FEATURES,
            mem_mib: mem_mib_for(queues, qd, w.bs),
        },
    )
    .map_err(|e| format!("vhost-blk device: {e}"))?;
    let slots =
        w.qd.iter()
            .map(|&qd| alloc_slots(&mut dev.alloc, qd, w.bs))
            .collect();
    Ok((dev, slots))
}

/// A vhost-user connection to `qsd` set up for `w`, with its slots.
fn vhost_user_device(
    qsd: &StorageDaemon,
    w: &Workload,
) -> Result<(VhostUserBlk, Vec<Vec<RequestSlot>>), String> {
    let queues = w.qd.len();
    let qd = *w.qd.iter().max().unwrap();
    let mut vu = VhostUserBlk::connect(
        qsd.socket(),
        Duration::from_secs(10),
        GUEST_FEATURES,
        queues as u32,
        RING,
        mem_mib_for(queues, qd, w.bs),
    )
    .map_err(|e| format!("vhost-user: {e}"))?;
    let slots =
        w.qd.iter()
            .map(|&qd| alloc_slots(&mut vu.alloc, qd, w.bs))
            .collect();
    Ok((vu, slots))
}

fn run_vhost_blk(
    dev: &mut TestDevice,
    slots: &[Vec<RequestSlot>],
    w: &Workload,
    sectors: u64,
    dur: Duration,
) -> Sample {
    let f = dev.cfg.features;
    run_virtqueues(&dev.mem, &mut dev.queues, slots, f, w, sectors, dur)
}

fn run_vhost_user(p: &mut Peers, w: &Workload, sectors: u64, dur: Duration) -> Sample {
    let vu = &mut p.vu;
    run_virtqueues(
        &vu.mem,
        &mut vu.queues,
        &p.vu_slots,
        vu.features,
        w,
        sectors,
        dur,
    )
}

fn worker_threads() -> u64 {
    Stats::read().map(|s| s.workers.len() as u64).unwrap_or(0)
}

fn qsd_threads(qsd: &StorageDaemon) -> u64 {
    std::fs::read_dir(format!("/proc/{}/task", qsd.pid()))
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

/// Where the threads of a matrix run.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Layout {
    /// Wherever the scheduler puts them.
    Shared,
    /// The ELVIS layout: the backend's threads (vhost-blk's worker through
    /// `worker_cpus`, every thread of qemu-storage-daemon) on an I/O core,
    /// the guest's threads (and io_uring's) on another CPU.
    IoCore { guest: usize, io: usize },
    /// Wherever the scheduler puts them, with a guest that polls for its
    /// completions instead of sleeping for interrupts.
    GuestPoll,
}

impl Layout {
    /// The I/O-core layout on this machine: the guest on CPU 0, the
    /// backend on the last CPU.
    pub(super) fn io_core() -> Result<Self, String> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cpus < 2 {
            return Err(format!(
                "the iocore scenario needs 2 CPUs, this machine has {cpus}"
            ));
        }
        Ok(Layout::IoCore {
            guest: 0,
            io: cpus - 1,
        })
    }

    pub(super) fn scenario(self) -> &'static str {
        match self {
            Layout::Shared => "matrix",
            Layout::IoCore { .. } => "iocore",
            Layout::GuestPoll => "guestpoll",
        }
    }

    /// The workloads this layout runs: all of them wherever the
    /// scheduler puts the threads, the latency and throughput targets
    /// (QD1 and QD32 reads) in the other layouts.
    pub(super) fn workloads(self, quick: bool) -> Vec<Workload> {
        match self {
            Layout::Shared => workloads(quick),
            // The workloads of the latency and throughput targets.
            Layout::IoCore { guest, .. } => [1, 32]
                .into_iter()
                .map(|qd| Workload {
                    guest_cpu: Some(guest),
                    ..Workload::new("randread", 4096, qd, 1)
                })
                .collect(),
            Layout::GuestPoll => [1, 32]
                .into_iter()
                .map(|qd| Workload {
                    guest_poll: true,
                    ..Workload::new("randread", 4096, qd, 1)
                })
                .collect(),
        }
    }

    /// Pins the threads of `qsd` to the I/O core, for this layout.
    fn place_qsd(self, qsd: &StorageDaemon) -> Result<(), String> {
        match self {
            Layout::Shared | Layout::GuestPoll => Ok(()),
            Layout::IoCore { io, .. } => vhost_blk_harness::testing::pin_process(qsd.pid(), io)
                .map_err(|e| format!("pin qemu-storage-daemon to CPU {io}: {e}")),
        }
    }
}

/// The main matrix: every workload against every engine on `backing`,
/// with the threads placed as `layout` says.
pub(super) fn matrix(
    a: &Args,
    layout: Layout,
    backing: &str,
    dev_path: &Path,
    rows: &mut Vec<Row>,
    failures: &mut Vec<String>,
    log: &mut dyn FnMut(&Row),
) -> Result<(), String> {
    let sectors = sectors(dev_path).map_err(|e| e.to_string())?;
    let backend = open_direct(dev_path).map_err(|e| e.to_string())?;
    // The socket cannot live on the 9p root of the test VM.
    let sock = std::env::temp_dir().join(format!("vhost-blk-bench-{}.sock", std::process::id()));
    let _worker_cpus = match layout {
        Layout::IoCore { io, .. } => Some(ParamGuard::set(&[("worker_cpus", &io.to_string())])?),
        Layout::Shared | Layout::GuestPoll => None,
    };
    let qsd = StorageDaemon::start(dev_path, &sock, 4).map_err(|e| e.to_string())?;
    layout.place_qsd(&qsd)?;
    let dur = Duration::from_secs_f64(a.secs);
    let scenario = layout.scenario();
    let list = layout.workloads(a.quick);
    let mut engines: Vec<Engine> = a
        .polls
        .iter()
        .map(|&p| Engine::VhostBlk { poll_us: p })
        .collect();
    engines.extend(a.peers.iter().copied());
    for w in list.into_iter().filter(|w| a.selects(w)) {
        let queues = w.qd.len();
        let (vb, vb_slots) = vhost_blk_device(&backend, queues, &w)?;
        if let Layout::IoCore { io, .. } = layout {
            check_worker_cpu(io)?;
        }
        let (vu, vu_slots) = vhost_user_device(&qsd, &w)?;
        layout.place_qsd(&qsd)?;
        let mut p = Peers {
            vb,
            vb_slots,
            vu,
            vu_slots,
            direct: open_direct(dev_path).map_err(|e| e.to_string())?,
        };
        for rep in 0..a.reps {
            // Rotate the order so no engine always runs first.
            for k in 0..engines.len() {
                let e = engines[(k + rep) % engines.len()];
                let (s, threads) = match e {
                    Engine::VhostBlk { poll_us } => {
                        let _g = ParamGuard::set(&[("poll_budget_us", &poll_us.to_string())])?;
                        let s = run_vhost_blk(&mut p.vb, &p.vb_slots, &w, sectors, dur);
                        (s, worker_threads())
                    }
                    Engine::Qsd { poll_us } => {
                        qsd.set_poll_max_ns(poll_us.map(|p| u64::from(p) * 1000))
                            .map_err(|e| e.to_string())?;
                        (run_vhost_user(&mut p, &w, sectors, dur), qsd_threads(&qsd))
                    }
                    Engine::Uring => (
                        run_uring(&p.direct, &w, sectors, dur).map_err(|e| e.to_string())?,
                        0,
                    ),
                };
                if s.errors != 0 || s.ios == 0 {
                    // Recorded, reported and not measured; a fresh device
                    // or connection carries on with the next run.
                    let stats = std::fs::read_to_string(vhost_blk_harness::stats::STATS_PATH)
                        .unwrap_or_default();
                    let f = format!(
                        "{} {} {} rep {rep}: {}",
                        backing,
                        w.name,
                        e.name(),
                        s.describe_errors()
                    );
                    eprintln!("bench: FAILED: {f}\nvhost-blk statistics:\n{stats}");
                    failures.push(f);
                    match e {
                        Engine::VhostBlk { .. } => {
                            (p.vb, p.vb_slots) = vhost_blk_device(&backend, queues, &w)?
                        }
                        Engine::Qsd { .. } => {
                            (p.vu, p.vu_slots) = vhost_user_device(&qsd, &w)?;
                            layout.place_qsd(&qsd)?;
                        }
                        Engine::Uring => {}
                    }
                    continue;
                }
                let row = Row {
                    scenario: scenario.into(),
                    backing: backing.into(),
                    workload: w.name.clone(),
                    engine: e.name(),
                    rep,
                    s,
                    lat_queue: None,
                    threads,
                };
                log(&row);
                rows.push(row);
            }
        }
    }
    Ok(())
}

/// Fails unless every worker runs on CPU `io` alone.
fn check_worker_cpu(io: usize) -> Result<(), String> {
    let st = Stats::read()?;
    let io = io.to_string();
    match st.workers.iter().find(|w| w.text("cpus") != io) {
        Some(w) => Err(format!(
            "worker {} runs on CPUs {}, not on the I/O core {io}",
            w.num("id"),
            w.text("cpus")
        )),
        None => Ok(()),
    }
}

/// Fairness: a small queue issues single requests, alone, then beside a
/// neighbour flooding at depth 128: another queue of its device, or
/// another device on the same shared worker. Each with the default quota,
/// a small one (8 requests) and none.
pub(super) fn fairness(
    a: &Args,
    dev_path: &Path,
    rows: &mut Vec<Row>,
    log: &mut dyn FnMut(&Row),
) -> Result<(), String> {
    let sectors = sectors(dev_path).map_err(|e| e.to_string())?;
    let backend = open_direct(dev_path).map_err(|e| e.to_string())?;
    let dur = Duration::from_secs_f64(a.secs * 2.0);
    let solo = Workload {
        name: "small-solo".into(),
        ..Workload::new("randread", 4096, 1, 1)
    };
    let flood = Workload {
        name: "small-beside-flood".into(),
        ..Workload {
            qd: vec![1, 128],
            ..Workload::new("randread", 4096, 1, 2)
        }
    };
    let flood_dev = Workload {
        name: "small-beside-flood-dev".into(),
        ..flood.clone()
    };
    let configs: [(&str, &[(&str, &str)]); 3] = [
        ("vhost-blk-quota", &[]),
        ("vhost-blk-quota8", &[("quota_reqs", "8")]),
        (
            "vhost-blk-noquota",
            &[("quota_reqs", "32768"), ("quota_kib", "1048576")],
        ),
    ];
    for rep in 0..a.reps {
        for (name, params) in configs {
            // The two queues (of one device or two) share one worker.
            let mut all: Vec<(&str, &str)> = params.to_vec();
            all.push(("queues_per_worker", "2"));
            all.push(("max_workers", "1"));
            let _g = ParamGuard::set(&all)?;
            for (w, device_per_queue) in [(&solo, false), (&flood, false), (&flood_dev, true)] {
                let s = if device_per_queue {
                    run_device_per_queue(&backend, w, sectors, dur)?
                } else {
                    let (mut dev, slots) = vhost_blk_device(&backend, w.qd.len(), w)?;
                    run_vhost_blk(&mut dev, &slots, w, sectors, dur)
                };
                if s.errors != 0 {
                    return Err(format!("fairness {name}: {}", s.describe_errors()));
                }
                let row = Row {
                    scenario: "fairness".into(),
                    backing: "nullb-null".into(),
                    workload: w.name.clone(),
                    engine: name.into(),
                    rep,
                    s,
                    lat_queue: Some(0),
                    threads: worker_threads(),
                };
                log(&row);
                rows.push(row);
            }
        }
    }
    Ok(())
}

/// Runs `w` with each of its queues on a device of its own (one queue
/// each), all devices open at once; job `i` is queue `i` of `w`.
fn run_device_per_queue(
    backend: &File,
    w: &Workload,
    sectors: u64,
    dur: Duration,
) -> Result<Sample, String> {
    let mut devs = Vec::new();
    for &qd in &w.qd {
        let one = Workload {
            qd: vec![qd],
            ..w.clone()
        };
        devs.push(vhost_blk_device(backend, 1, &one)?);
    }
    let jobs = device_jobs(&mut devs, &w.qd);
    Ok(run_jobs(jobs, w, sectors, dur))
}

/// One job per queue of every device in `devs`, the queues of device `i`
/// at depth `qds[i]`.
fn device_jobs<'a>(
    devs: &'a mut [(TestDevice, Vec<Vec<RequestSlot>>)],
    qds: &[u16],
) -> Vec<Job<'a>> {
    let mut jobs = Vec::new();
    for ((dev, slots), &qd) in devs.iter_mut().zip(qds) {
        let ei = event_idx_acked(dev.cfg.features);
        let mem = &dev.mem;
        for (queue, slots) in dev.queues.iter_mut().zip(slots.iter()) {
            jobs.push(Job {
                mem,
                queue,
                slots,
                event_idx: ei,
                qd,
            });
        }
    }
    jobs
}

/// The ELVIS case: 8 single-queue devices, one worker each or all on one
/// shared worker.
pub(super) fn many_devices(
    a: &Args,
    dev_path: &Path,
    rows: &mut Vec<Row>,
    log: &mut dyn FnMut(&Row),
) -> Result<(), String> {
    const N: usize = 8;
    let sectors = sectors(dev_path).map_err(|e| e.to_string())?;
    let backend = open_direct(dev_path).map_err(|e| e.to_string())?;
    let dur = Duration::from_secs_f64(a.secs * 2.0);
    let w = Workload::new("randread", 4096, 16, 1);
    let configs: [(&str, &[(&str, &str)]); 2] = [
        (
            "worker-per-device",
            &[("queues_per_worker", "1"), ("max_workers", "8")],
        ),
        (
            "shared-1-worker",
            &[("queues_per_worker", "8"), ("max_workers", "8")],
        ),
    ];
    for rep in 0..a.reps {
        for (base_name, params, poll) in configs
            .iter()
            .flat_map(|(n, p)| a.polls.iter().map(move |poll| (*n, *p, *poll)))
        {
            let name = format!("{base_name}-poll{poll}");
            let name = name.as_str();
            let poll = poll.to_string();
            let mut all: Vec<(&str, &str)> = params.to_vec();
            all.push(("poll_budget_us", &poll));
            let _g = ParamGuard::set(&all)?;
            let mut devs = Vec::new();
            for _ in 0..N {
                devs.push(vhost_blk_device(&backend, 1, &w)?);
            }
            let threads = worker_threads();
            let jobs = device_jobs(&mut devs, &[w.qd[0]; N]);
            let s = run_jobs(jobs, &w, sectors, dur);
            if s.errors != 0 {
                return Err(format!("many devices {name}: {}", s.describe_errors()));
            }
            let row = Row {
                scenario: "many-devices".into(),
                backing: "nullb-null".into(),
                workload: format!("8dev-{}", w.name),
                engine: name.into(),
                rep,
                s,
                lat_queue: None,
                threads,
            };
            log(&row);
            rows.push(row);
        }
    }
    Ok(())
}

/// The cost of an eventfd wake-up between two threads on two CPUs and on
/// one: what every kick and interrupt pays, so a reader can tell how much
/// of a virtqueue engine's gap to raw io_uring (which wakes no other
/// thread) is the VM's wake-up cost rather than the engine's work.
pub(super) fn wakeups() -> Result<String, String> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut parts = Vec::new();
    for (label, a, b) in [("two CPUs", 0, cpus.saturating_sub(1)), ("one CPU", 0, 0)] {
        let c = wake_cost(a, b, 2000).map_err(|e| format!("wake-up cost on {label}: {e}"))?;
        parts.push(format!(
            "{label}: round trip p50 {:.1} us p99 {:.1} us, waker's write(2) p50 {:.1} us",
            c.round_trip_p50_us, c.round_trip_p99_us, c.write_p50_us
        ));
    }
    Ok(format!(
        "eventfd ping-pong between two threads, 2000 round trips each; {}",
        parts.join("; ")
    ))
}

pub(super) fn memory(dev_path: &Path) -> Result<String, String> {
    const N: usize = 32;
    let backend = open_direct(dev_path).map_err(|e| e.to_string())?;
    let measure = |queues: u32| -> Result<f64, String> {
        std::thread::sleep(Duration::from_millis(200));
        let before = slab_kib();
        let mut devs = Vec::new();
        for _ in 0..N {
            devs.push(
                TestDevice::new(
                    &backend,
                    Config {
                        queues,
                        size: RING,
                        features: GUEST_FEATURES,
                        mem_mib: 2,
                    },
                )
                .map_err(|e| format!("memory: {e}"))?,
            );
        }
        std::thread::sleep(Duration::from_millis(200));
        let after = slab_kib();
        drop(devs);
        Ok((after as f64 - before as f64) / N as f64)
    };
    let one = measure(1)?;
    let sixteen = measure(16)?;
    Ok(format!(
        "slab per device with 1 queue: {one:.1} KiB; with 16 queues: {sixteen:.1} KiB; \
         per extra queue: {:.2} KiB ({N} devices, /proc/meminfo Slab, ring size {RING})",
        (sixteen - one) / 15.0
    ))
}
