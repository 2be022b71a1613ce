// SPDX-License-Identifier: GPL-2.0

//! `vhost-blk-bench`: the side-by-side benchmark (run in the VM by
//! `make bench`).
//!
//! Each workload runs, interleaved and repeated, against `/dev/vhost-blk`
//! (at each poll budget), `qemu-storage-daemon`'s vhost-user-blk export
//! and raw `io_uring`, on the same null_blk device, with the guest sleeping
//! for its interrupts, again with the back ends on an I/O core, and again
//! with a guest that polls for its completions. Then come the fairness,
//! many-devices and memory scenarios. Results are printed as a table of
//! medians and ratios and written as CSV, JSON and SVG under `--out`.

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vhost_blk_harness::bench::{
    alloc_slots, event_idx_acked, median, mem_mib_for, open_direct, run_jobs, run_uring,
    run_virtqueues, slab_kib, wake_cost, Job, Sample, Slot, Workload, GUEST_FEATURES,
};
use vhost_blk_harness::blk::{Config, TestDevice};
use vhost_blk_harness::nullb::{sectors, NullBlk};
use vhost_blk_harness::plot::BarChart;
use vhost_blk_harness::stats::{ParamGuard, Stats};
use vhost_blk_harness::vhost_user::{StorageDaemon, VhostUserBlk};

const USAGE: &str = "usage: vhost-blk-bench --out DIR [--secs S] [--reps N] [--poll LIST] [--quick]
  --out DIR    where results.csv, summary.csv, results.json, table.txt and
               the plots go (created)
  --secs S     seconds per run (default 2)
  --reps N     repetitions of each run, interleaved (default 3)
  --poll LIST  poll_budget_us values for vhost-blk (default 0,200)
  --quick      a short pass over a few workloads (smoke test)
  --only TEXT  only the matrix, iocore and guestpoll workloads whose name
               contains TEXT, and no other scenario
  --scenarios LIST
               which scenarios run, of matrix,iocore,guestpoll,fairness,
               devices,memory,wakeup (default all)
  --peers LIST which peers the matrix runs beside vhost-blk, of
               qsd (qemu-storage-daemon, its iothread as QEMU configures
               it), io_uring and qsd-matched (the daemon once per --poll
               value, its iothread's poll-max-ns set to that budget)
               (default qsd,io_uring; `none` for vhost-blk alone, e.g.
               under a profiler)
   or: vhost-blk-bench --qsd-args DEV SOCKET QUEUES
               print, one per line, the qemu-storage-daemon arguments the
               benchmark exports DEV with (used by the end-to-end demo)";

/// Every scenario, in the order they run.
const SCENARIOS: [&str; 7] = [
    "matrix",
    "iocore",
    "guestpoll",
    "fairness",
    "devices",
    "memory",
    "wakeup",
];

/// The scenarios that run the workloads against every engine.
const MATRIX_SCENARIOS: [&str; 3] = ["matrix", "iocore", "guestpoll"];

struct Args {
    out: PathBuf,
    secs: f64,
    reps: usize,
    polls: Vec<u32>,
    quick: bool,
    only: Option<String>,
    scenarios: Vec<String>,
    /// The matrix's peers beside vhost-blk (`qsd-matched` expanded to
    /// one daemon configuration per poll budget).
    peers: Vec<Engine>,
}

impl Args {
    fn runs(&self, scenario: &str) -> bool {
        self.scenarios.iter().any(|s| s == scenario)
    }
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        out: PathBuf::new(),
        secs: 2.0,
        reps: 3,
        polls: vec![0, 200],
        quick: false,
        only: None,
        scenarios: SCENARIOS.iter().map(|s| s.to_string()).collect(),
        peers: Vec::new(),
    };
    let mut peers = vec!["qsd", "io_uring"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--out" => a.out = PathBuf::from(val("--out")?),
            "--secs" => a.secs = val("--secs")?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--reps" => a.reps = val("--reps")?.parse().map_err(|e| format!("--reps: {e}"))?,
            "--poll" => {
                a.polls = val("--poll")?
                    .split(',')
                    .map(|p| p.parse().map_err(|e| format!("--poll {p}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--quick" => a.quick = true,
            "--only" => a.only = Some(val("--only")?),
            "--scenarios" => {
                let list: Vec<String> = val("--scenarios")?.split(',').map(String::from).collect();
                if let Some(bad) = list.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
                    return Err(format!("--scenarios: unknown scenario {bad}\n{USAGE}"));
                }
                a.scenarios = list;
            }
            "--peers" => peers = val("--peers")?.split(',').map(String::from).collect(),
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument {arg}\n{USAGE}")),
        }
    }
    if a.out.as_os_str().is_empty() {
        return Err(format!("--out is required\n{USAGE}"));
    }
    for p in &peers {
        match p.as_str() {
            "qsd" => a.peers.push(Engine::Qsd { poll_us: None }),
            "qsd-matched" => a
                .peers
                .extend(a.polls.iter().map(|&p| Engine::Qsd { poll_us: Some(p) })),
            "io_uring" => a.peers.push(Engine::Uring),
            "none" => {}
            _ => return Err(format!("--peers: unknown peer {p}\n{USAGE}")),
        }
    }
    if a.only.is_some() {
        a.scenarios
            .retain(|s| MATRIX_SCENARIOS.contains(&s.as_str()));
    }
    if a.reps == 0 || a.secs <= 0.0 || a.polls.is_empty() || a.scenarios.is_empty() {
        return Err("--reps, --secs and --poll must be positive/non-empty".into());
    }
    Ok(a)
}

/// A peer the workload runs against.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Engine {
    VhostBlk {
        poll_us: u32,
    },
    /// qemu-storage-daemon, its iothread polling up to `poll_us` (adaptively,
    /// as QEMU does); `None`: QEMU's default bound.
    Qsd {
        poll_us: Option<u32>,
    },
    Uring,
}

impl Engine {
    fn name(self) -> String {
        match self {
            Engine::VhostBlk { poll_us: 0 } => "vhost-blk".into(),
            Engine::VhostBlk { poll_us } => format!("vhost-blk-poll{poll_us}"),
            Engine::Qsd { poll_us: None } => QSD.into(),
            Engine::Qsd {
                poll_us: Some(poll_us),
            } => format!("{QSD}-poll{poll_us}"),
            Engine::Uring => "io_uring".into(),
        }
    }
}

/// qemu-storage-daemon as QEMU configures its iothread, by default.
const QSD: &str = "qsd-vhost-user";

/// One measured run.
struct Row {
    scenario: String,
    backing: String,
    workload: String,
    engine: String,
    rep: usize,
    s: Sample,
    /// Latency percentiles of queue 0 only (fairness), else of all queues.
    lat_queue: Option<usize>,
    threads: u64,
}

impl Row {
    fn csv(&self) -> String {
        let q = self.lat_queue;
        format!(
            "{},{},{},{},{},{},{:.0},{:.2},{:.1},{:.1},{:.1},{:.2},{:.2},{:.3},{}\n",
            self.scenario,
            self.backing,
            self.workload,
            self.engine,
            self.rep,
            self.s.ios,
            self.s.iops(),
            self.s.mbps(),
            self.s.lat_us(q, 50.0),
            self.s.lat_us(q, 99.0),
            self.s.lat_us(q, 99.9),
            self.s.cpu_us_per_io(),
            self.s.backend_cpu_us_per_io(),
            self.s.ctxt as f64 / self.s.ios.max(1) as f64,
            self.threads,
        )
    }
}

const CSV_HEADER: &str = "scenario,backing,workload,engine,rep,ios,iops,mbps,p50_us,p99_us,\
p999_us,cpu_us_per_io,backend_cpu_us_per_io,ctxt_per_io,threads\n";

/// Medians over the repetitions of one (scenario, backing, workload, engine).
#[derive(Clone)]
struct Summary {
    scenario: String,
    backing: String,
    workload: String,
    engine: String,
    iops: f64,
    iops_min: f64,
    iops_max: f64,
    mbps: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    cpu: f64,
    backend_cpu: f64,
    ios_per_cpu_s: f64,
    ctxt_per_io: f64,
    threads: u64,
}

fn summarize(rows: &[Row]) -> Vec<Summary> {
    let mut keys: Vec<(String, String, String, String)> = Vec::new();
    for r in rows {
        let k = (
            r.scenario.clone(),
            r.backing.clone(),
            r.workload.clone(),
            r.engine.clone(),
        );
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|k| {
            let rs: Vec<&Row> = rows
                .iter()
                .filter(|r| {
                    r.scenario == k.0 && r.backing == k.1 && r.workload == k.2 && r.engine == k.3
                })
                .collect();
            let m = |f: &dyn Fn(&Row) -> f64| median(&rs.iter().map(|r| f(r)).collect::<Vec<_>>());
            let iops: Vec<f64> = rs.iter().map(|r| r.s.iops()).collect();
            Summary {
                iops: median(&iops),
                iops_min: iops.iter().copied().fold(f64::INFINITY, f64::min),
                iops_max: iops.iter().copied().fold(0.0, f64::max),
                mbps: m(&|r| r.s.mbps()),
                p50: m(&|r| r.s.lat_us(r.lat_queue, 50.0)),
                p99: m(&|r| r.s.lat_us(r.lat_queue, 99.0)),
                p999: m(&|r| r.s.lat_us(r.lat_queue, 99.9)),
                cpu: m(&|r| r.s.cpu_us_per_io()),
                backend_cpu: m(&|r| r.s.backend_cpu_us_per_io()),
                ios_per_cpu_s: m(&|r| r.s.ios_per_cpu_s()),
                ctxt_per_io: m(&|r| r.s.ctxt as f64 / r.s.ios.max(1) as f64),
                threads: rs.iter().map(|r| r.threads).max().unwrap_or(0),
                scenario: k.0,
                backing: k.1,
                workload: k.2,
                engine: k.3,
            }
        })
        .collect()
}

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
    vb_slots: Vec<Vec<Slot>>,
    vu: VhostUserBlk,
    vu_slots: Vec<Vec<Slot>>,
    direct: File,
}

const RING: u16 = 256;

fn vhost_blk_device(
    backend: &File,
    queues: usize,
    w: &Workload,
) -> Result<(TestDevice, Vec<Vec<Slot>>), String> {
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
) -> Result<(VhostUserBlk, Vec<Vec<Slot>>), String> {
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
    slots: &[Vec<Slot>],
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
enum Layout {
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
    fn io_core() -> Result<Self, String> {
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

    fn scenario(self) -> &'static str {
        match self {
            Layout::Shared => "matrix",
            Layout::IoCore { .. } => "iocore",
            Layout::GuestPoll => "guestpoll",
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
fn matrix(
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
    let list = match layout {
        Layout::Shared => workloads(a.quick),
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
    };
    let mut engines: Vec<Engine> = a
        .polls
        .iter()
        .map(|&p| Engine::VhostBlk { poll_us: p })
        .collect();
    engines.extend(a.peers.iter().copied());
    for w in list
        .into_iter()
        .filter(|w| a.only.as_ref().is_none_or(|o| w.name.contains(o.as_str())))
    {
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
fn fairness(
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
fn device_jobs<'a>(devs: &'a mut [(TestDevice, Vec<Vec<Slot>>)], qds: &[u16]) -> Vec<Job<'a>> {
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
fn many_devices(
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

/// What the table reports besides the runs.
struct Extra {
    memory: String,
    wakeups: String,
    /// How the VM's idle CPUs wait ([`vm_idle`]).
    idle: String,
}

/// How this kernel's idle CPUs wait for work, from its command line: the
/// `idle=` and `nohz=` parameters that `make bench BENCH_APPEND=...`
/// passes, which change what every wake-up costs under TCG
/// (`Documentation/benchmarks.rst`, "What TCG distorts").
fn vm_idle() -> String {
    idle_mode(&std::fs::read_to_string("/proc/cmdline").unwrap_or_default())
}

/// The `idle=` and `nohz=` parameters of the kernel command line
/// `cmdline`, or the default's description if it has neither.
fn idle_mode(cmdline: &str) -> String {
    let params: Vec<&str> = cmdline
        .split_whitespace()
        .filter(|p| p.starts_with("idle=") || p.starts_with("nohz="))
        .collect();
    if params.is_empty() {
        "default (idle CPUs halt)".into()
    } else {
        params.join(" ")
    }
}

/// The cost of an eventfd wake-up between two threads on two CPUs and on
/// one: what every kick and interrupt pays, so a reader can tell how much
/// of a virtqueue engine's gap to raw io_uring (which wakes no other
/// thread) is the VM's wake-up cost rather than the engine's work.
fn wakeups() -> Result<String, String> {
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

fn memory(dev_path: &Path) -> Result<String, String> {
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

fn find<'a>(
    s: &'a [Summary],
    scen: &str,
    backing: &str,
    wl: &str,
    eng: &str,
) -> Option<&'a Summary> {
    s.iter()
        .find(|x| x.scenario == scen && x.backing == backing && x.workload == wl && x.engine == eng)
}

/// One target line: measured value, the goal, and whether it was met.
fn target(out: &mut String, json: &mut Vec<String>, name: &str, value: f64, goal: &str, met: bool) {
    let _ = writeln!(
        out,
        "  {:<68} {:>7.2}  goal {:<6} {}",
        name,
        value,
        goal,
        if met { "met" } else { "MISSED" }
    );
    json.push(format!(
        "{{\"target\":\"{name}\",\"value\":{},\"goal\":\"{goal}\",\"met\":{met}}}",
        num(value)
    ));
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "null".into()
    }
}

fn report(a: &Args, sums: &[Summary], extra: &Extra, failures: &[String]) -> (String, String) {
    let mem_line = extra.memory.as_str();
    let mut t = String::new();
    let _ = writeln!(
        t,
        "vhost-blk-bench: medians of {} runs of {} s each (spread: min..max IOPS); VM idle: {}\n",
        a.reps, a.secs, extra.idle
    );
    let _ = writeln!(
        t,
        "{:<12} {:<24} {:<22} {:>9} {:>17} {:>7} {:>8} {:>8} {:>8} {:>7} {:>7} {:>6}",
        "backing",
        "workload",
        "engine",
        "IOPS",
        "spread",
        "MB/s",
        "p50us",
        "p99us",
        "p99.9us",
        "cpuus",
        "x qsd",
        "thr"
    );
    for scenario in MATRIX_SCENARIOS {
        let heading = match scenario {
            "iocore" => "I/O core (the backend's threads on the last CPU, the guest's and io_uring's on CPU 0):",
            "guestpoll" => "polling guest (interrupts off, the guest spins on its used ring; io_uring spins on its CQ):",
            _ => "",
        };
        if !heading.is_empty() && sums.iter().any(|s| s.scenario == scenario) {
            let _ = writeln!(t, "\n{heading}");
        }
        for s in sums.iter().filter(|s| s.scenario == scenario) {
            let qsd = find(sums, scenario, &s.backing, &s.workload, QSD);
            let ratio = qsd.map_or(f64::NAN, |q| s.iops / q.iops);
            let _ = writeln!(
                t,
                "{:<12} {:<24} {:<22} {:>9.0} {:>8.0}..{:<8.0} {:>7.1} {:>8.1} {:>8.1} {:>8.1} {:>7.2} {:>7.2} {:>6}",
                s.backing, s.workload, s.engine, s.iops, s.iops_min, s.iops_max, s.mbps, s.p50,
                s.p99, s.p999, s.cpu, ratio, s.threads
            );
        }
    }
    let _ = writeln!(
        t,
        "\nfairness (a small queue at depth 1 beside a queue or device at depth 128; its latency only):"
    );
    for s in sums.iter().filter(|s| s.scenario == "fairness") {
        let _ = writeln!(
            t,
            "  {:<20} {:<24} p50 {:>8.1} us  p99 {:>8.1} us  p99.9 {:>8.1} us",
            s.engine, s.workload, s.p50, s.p99, s.p999
        );
    }
    let _ = writeln!(
        t,
        "\nmany devices (8 devices x 1 queue, randread 4k qd16 each):"
    );
    for s in sums.iter().filter(|s| s.scenario == "many-devices") {
        let _ = writeln!(
            t,
            "  {:<20} IOPS {:>8.0}  IOPS per CPU-s {:>8.0}  ctxt/IO {:>5.2}  workers {}",
            s.engine, s.iops, s.ios_per_cpu_s, s.ctxt_per_io, s.threads
        );
    }
    let _ = writeln!(t, "\nmemory: {mem_line}");
    let _ = writeln!(t, "\nwake-ups: {}", extra.wakeups);

    let mut js = Vec::new();
    let _ = writeln!(t, "\ntargets:");
    let vb_names: Vec<String> = a
        .polls
        .iter()
        .map(|&p| Engine::VhostBlk { poll_us: p }.name())
        .collect();
    // qemu-storage-daemon as configured by default, then at each of
    // vhost-blk's poll budgets.
    let qsd_names: Vec<String> = core::iter::once(None)
        .chain(a.polls.iter().map(|&p| Some(p)))
        .map(|poll_us| Engine::Qsd { poll_us }.name())
        .collect();
    let w32 = "randread-4k-qd32-q1";
    let w1 = "randread-4k-qd1-q1";
    for (scenario, layout) in [
        ("matrix", "shared CPUs"),
        ("iocore", "I/O core"),
        ("guestpoll", "polling guest"),
    ] {
        let g = |b: &str, w: &str, e: &str| find(sums, scenario, b, w, e);
        // Each back end at its best poll setting.
        let best = |b: &str, w: &str, names: &[String]| {
            names
                .iter()
                .filter_map(|n| g(b, w, n))
                .max_by(|x, y| x.iops.partial_cmp(&y.iops).unwrap())
        };
        if let (Some(v), Some(q), Some(u)) = (
            best("nullb-mem", w32, &vb_names),
            best("nullb-mem", w32, &qsd_names),
            g("nullb-mem", w32, "io_uring"),
        ) {
            target(
                &mut t,
                &mut js,
                &format!(
                    "4k randread QD32, {layout}: {} / {} IOPS",
                    v.engine, q.engine
                ),
                v.iops / q.iops,
                ">=1.5",
                v.iops / q.iops >= 1.5,
            );
            target(
                &mut t,
                &mut js,
                &format!("4k randread QD32, {layout}: {} / io_uring IOPS", v.engine),
                v.iops / u.iops,
                ">=0.9",
                v.iops / u.iops >= 0.9,
            );
        }
        // Latency at the same poll budget on both sides (against the
        // daemon's default if it did not run at that budget).
        for &poll_us in &a.polls {
            let v = g("nullb-mem", w1, &Engine::VhostBlk { poll_us }.name());
            let q = g(
                "nullb-mem",
                w1,
                &Engine::Qsd {
                    poll_us: Some(poll_us),
                }
                .name(),
            )
            .or_else(|| g("nullb-mem", w1, QSD));
            if let (Some(v), Some(q)) = (v, q) {
                target(
                    &mut t,
                    &mut js,
                    &format!("QD1 p50, {layout}: {} / {}", v.engine, q.engine),
                    v.p50 / q.p50,
                    "<=0.7",
                    v.p50 / q.p50 <= 0.7,
                );
            }
        }
    }
    let g = |b: &str, w: &str, e: &str| find(sums, "matrix", b, w, e);
    if let (Some(one), Some(two)) = (
        g("nullb-null", w32, "vhost-blk"),
        g("nullb-null", "randread-4k-qd32-q2", "vhost-blk"),
    ) {
        target(
            &mut t,
            &mut js,
            "queue scaling (nullb-null): 2 queues / 1 queue IOPS",
            two.iops / one.iops,
            ">=1.8",
            two.iops / one.iops >= 1.8,
        );
    }
    // Polling off on both sides where the daemon ran without it.
    let qsd_off = Engine::Qsd { poll_us: Some(0) }.name();
    if let (Some(v), Some(q)) = (
        g("nullb-mem", w32, "vhost-blk"),
        g("nullb-mem", w32, &qsd_off).or_else(|| g("nullb-mem", w32, QSD)),
    ) {
        target(
            &mut t,
            &mut js,
            &format!("CPU per I/O, polling off: vhost-blk / {}", q.engine),
            v.cpu / q.cpu,
            "<=1.0",
            v.cpu <= q.cpu,
        );
    }
    let fair = |e: &str, w: &str| find(sums, "fairness", "nullb-null", w, e);
    for (neighbour, wl) in [
        ("queue", "small-beside-flood"),
        ("device", "small-beside-flood-dev"),
    ] {
        if let (Some(solo), Some(fl)) = (
            fair("vhost-blk-quota", "small-solo"),
            fair("vhost-blk-quota", wl),
        ) {
            target(
                &mut t,
                &mut js,
                &format!("fairness: small queue p99 beside flooding {neighbour} / solo"),
                fl.p99 / solo.p99,
                "<=2",
                fl.p99 / solo.p99 <= 2.0,
            );
        }
    }
    let md = |e: &str| {
        find(
            sums,
            "many-devices",
            "nullb-null",
            "8dev-randread-4k-qd16-q1",
            e,
        )
    };
    for poll in &a.polls {
        if let (Some(per), Some(sh)) = (
            md(&format!("worker-per-device-poll{poll}")),
            md(&format!("shared-1-worker-poll{poll}")),
        ) {
            target(
                &mut t,
                &mut js,
                &format!("8 devices, poll {poll}: shared / per-device IOPS per CPU-s"),
                sh.ios_per_cpu_s / per.ios_per_cpu_s,
                ">=1.2",
                sh.ios_per_cpu_s / per.ios_per_cpu_s >= 1.2,
            );
        }
    }

    let mut j = String::from("{\n  \"summary\": [\n");
    let rowsj: Vec<String> = sums
        .iter()
        .map(|s| {
            format!(
                "    {{\"scenario\":\"{}\",\"backing\":\"{}\",\"workload\":\"{}\",\"engine\":\"{}\",\
                 \"iops\":{},\"iops_min\":{},\"iops_max\":{},\"mbps\":{},\"p50_us\":{},\"p99_us\":{},\
                 \"p999_us\":{},\"cpu_us_per_io\":{},\"backend_cpu_us_per_io\":{},\"ios_per_cpu_s\":{},\
                 \"ctxt_per_io\":{},\"threads\":{}}}",
                s.scenario, s.backing, s.workload, s.engine, num(s.iops), num(s.iops_min),
                num(s.iops_max), num(s.mbps), num(s.p50), num(s.p99), num(s.p999), num(s.cpu),
                num(s.backend_cpu), num(s.ios_per_cpu_s), num(s.ctxt_per_io), s.threads
            )
        })
        .collect();
    j.push_str(&rowsj.join(",\n"));
    j.push_str("\n  ],\n  \"targets\": [\n    ");
    j.push_str(&js.join(",\n    "));
    let _ = write!(
        j,
        "\n  ],\n  \"failures\": [{}],\n  \"memory\": \"{}\",\n  \"wakeups\": \"{}\",\n  \"vm_idle\": \"{}\",\n  \"secs\": {},\n  \"reps\": {}\n}}\n",
        failures
            .iter()
            .map(|f| format!("\"{}\"", f.replace('"', "'")))
            .collect::<Vec<_>>()
            .join(", "),
        mem_line,
        extra.wakeups,
        extra.idle,
        a.secs,
        a.reps
    );
    (t, j)
}

fn plots(sums: &[Summary]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut engines: Vec<String> = Vec::new();
    for s in sums.iter().filter(|s| s.scenario == "matrix") {
        if !engines.contains(&s.engine) {
            engines.push(s.engine.clone());
        }
    }
    for backing in ["nullb-mem", "nullb-null"] {
        let mut wls: Vec<String> = Vec::new();
        for s in sums
            .iter()
            .filter(|s| s.scenario == "matrix" && s.backing == backing)
        {
            if !wls.contains(&s.workload) {
                wls.push(s.workload.clone());
            }
        }
        if wls.is_empty() {
            continue;
        }
        let val = |w: &str, e: &str, f: &dyn Fn(&Summary) -> f64| {
            find(sums, "matrix", backing, w, e).map_or(f64::NAN, f)
        };
        // One series per engine: `f(workload, engine)` for every workload.
        let series = |f: &dyn Fn(&str, &str) -> f64| -> Vec<(String, Vec<f64>)> {
            engines
                .iter()
                .map(|e| (e.clone(), wls.iter().map(|w| f(w, e)).collect()))
                .collect()
        };
        let ratio = BarChart {
            title: &format!("IOPS relative to qemu-storage-daemon (vhost-user-blk), {backing}"),
            y_label: "IOPS / qsd IOPS",
            groups: wls.clone(),
            series: series(&|w, e| val(w, e, &|s| s.iops) / val(w, QSD, &|s| s.iops)),
            reference: Some(1.0),
        };
        out.push((format!("iops-ratio-{backing}.svg"), ratio.svg()));
        let cpu = BarChart {
            title: &format!("Host CPU time per I/O (all CPUs, harness included), {backing}"),
            y_label: "CPU us per I/O",
            groups: wls.clone(),
            series: series(&|w, e| val(w, e, &|s| s.cpu)),
            reference: None,
        };
        out.push((format!("cpu-per-io-{backing}.svg"), cpu.svg()));
        let lat = BarChart {
            title: &format!("p50 latency, {backing}"),
            y_label: "p50 us",
            groups: wls.clone(),
            series: series(&|w, e| val(w, e, &|s| s.p50)),
            reference: None,
        };
        out.push((format!("p50-{backing}.svg"), lat.svg()));
    }
    out
}

fn prefill(dev: &Path) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    let f = open_direct(dev).map_err(|e| e.to_string())?;
    let size = sectors(dev).map_err(|e| e.to_string())? * 512;
    let mem = vhost_blk_harness::mem::ProcessMemory::new(1 << 20).map_err(|e| e.to_string())?;
    let p = mem.host_ptr(mem.base(), 1 << 20).unwrap();
    // SAFETY: `p` points at the 1 MiB mapping, alive for this function.
    let buf = unsafe { std::slice::from_raw_parts_mut(p, 1 << 20) };
    buf.iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i * 7) as u8);
    let mut off = 0;
    while off < size {
        f.write_all_at(buf, off)
            .map_err(|e| format!("prefill: {e}"))?;
        off += 1 << 20;
    }
    Ok(())
}

/// Raises the open-file limit to its hard maximum: the memory scenario
/// holds hundreds of devices' eventfds.
fn raise_nofile() {
    // SAFETY: `r` is a live, writable rlimit for both calls.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn run(a: &Args) -> Result<bool, String> {
    raise_nofile();
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let mut rows: Vec<Row> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut raw = String::from(CSV_HEADER);
    let mut log = |r: &Row| {
        eprintln!(
            "bench: {:<12} {:<10} {:<26} {:<22} rep {} {:>8.0} IOPS p50 {:>7.1} us cpu {:>6.1} us/io",
            r.scenario,
            r.backing,
            r.workload,
            r.engine,
            r.rep,
            r.s.iops(),
            r.s.lat_us(r.lat_queue, 50.0),
            r.s.cpu_us_per_io()
        );
        raw.push_str(&r.csv());
    };
    let size = if a.quick { "128" } else { "512" };
    let mut layouts = Vec::new();
    if a.runs("matrix") {
        layouts.push(Layout::Shared);
    }
    if a.runs("iocore") {
        layouts.push(Layout::io_core()?);
    }
    if a.runs("guestpoll") {
        layouts.push(Layout::GuestPoll);
    }
    if !layouts.is_empty() {
        let nb = NullBlk::create("benchmem", size.parse().unwrap(), &[("memory_backed", "1")])
            .map_err(|e| format!("null_blk: {e}"))?;
        prefill(nb.path())?;
        for &layout in &layouts {
            matrix(
                a,
                layout,
                "nullb-mem",
                nb.path(),
                &mut rows,
                &mut failures,
                &mut log,
            )?;
        }
    }
    let mem_line;
    {
        let nb = NullBlk::create("benchnull", 4096, &[]).map_err(|e| format!("null_blk: {e}"))?;
        for &layout in &layouts {
            matrix(
                a,
                layout,
                "nullb-null",
                nb.path(),
                &mut rows,
                &mut failures,
                &mut log,
            )?;
        }
        if a.runs("fairness") {
            fairness(a, nb.path(), &mut rows, &mut log)?;
        }
        if a.runs("devices") {
            many_devices(a, nb.path(), &mut rows, &mut log)?;
        }
        mem_line = if a.runs("memory") {
            memory(nb.path())?
        } else {
            "not measured (--scenarios)".into()
        };
    }
    let wakeups = if a.runs("wakeup") {
        wakeups()?
    } else {
        "not measured (--scenarios)".into()
    };
    let sums = summarize(&rows);
    let extra = Extra {
        memory: mem_line,
        wakeups,
        idle: vm_idle(),
    };
    let (mut table, json) = report(a, &sums, &extra, &failures);
    if !failures.is_empty() {
        let _ = writeln!(table, "\nFAILED runs (not in the medians):");
        for f in &failures {
            let _ = writeln!(table, "  {f}");
        }
    }
    print!("{table}");
    let mut summary = String::from(
        "scenario,backing,workload,engine,iops,iops_min,iops_max,mbps,p50_us,p99_us,p999_us,\
         cpu_us_per_io,backend_cpu_us_per_io,ios_per_cpu_s,ctxt_per_io,threads\n",
    );
    for s in &sums {
        let _ = writeln!(
            summary,
            "{},{},{},{},{:.0},{:.0},{:.0},{:.2},{:.1},{:.1},{:.1},{:.2},{:.2},{:.0},{:.3},{}",
            s.scenario,
            s.backing,
            s.workload,
            s.engine,
            s.iops,
            s.iops_min,
            s.iops_max,
            s.mbps,
            s.p50,
            s.p99,
            s.p999,
            s.cpu,
            s.backend_cpu,
            s.ios_per_cpu_s,
            s.ctxt_per_io,
            s.threads
        );
    }
    let mut files = vec![
        ("results.csv".to_string(), raw),
        ("summary.csv".to_string(), summary),
        ("results.json".to_string(), json),
        ("table.txt".to_string(), table),
    ];
    files.extend(plots(&sums));
    for (name, text) in files {
        let p = a.out.join(&name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    eprintln!("bench: results in {}", a.out.display());
    if !failures.is_empty() {
        return Err(format!(
            "{} runs failed (listed in table.txt)",
            failures.len()
        ));
    }
    Ok(true)
}

/// `--qsd-args DEV SOCKET QUEUES`: the peer's daemon arguments, one per
/// line, for scripts that start the same daemon (`e2e-l1.sh`).
fn print_qsd_args(rest: &[String]) -> Result<(), String> {
    let [dev, sock, queues] = rest else {
        return Err(format!("--qsd-args needs DEV SOCKET QUEUES\n{USAGE}"));
    };
    let queues: u32 = queues
        .parse()
        .map_err(|e| format!("--qsd-args: queues {queues}: {e}"))?;
    if queues == 0 {
        return Err("--qsd-args: queues must be 1 or more".into());
    }
    let args = StorageDaemon::args(Path::new(dev), Path::new(sock), queues);
    // All checked before any is printed: a script reads them all or none.
    if let Some(bad) = args.iter().find(|a| a.contains('\n')) {
        return Err(format!("--qsd-args: a newline in {bad:?}"));
    }
    for arg in args {
        println!("{arg}");
    }
    Ok(())
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().is_some_and(|a| a == "--qsd-args") {
        if let Err(e) = print_qsd_args(&argv[1..]) {
            eprintln!("vhost-blk-bench: {e}");
            std::process::exit(2);
        }
        return;
    }
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vhost-blk-bench: {e}");
            std::process::exit(2);
        }
    };
    match run(&a) {
        Ok(_) => println!("VHOST_BLK_BENCH_DONE"),
        Err(e) => {
            eprintln!("vhost-blk-bench: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::idle_mode;

    #[test]
    fn idle_mode_names_the_idle_and_nohz_parameters_only() {
        assert_eq!(
            idle_mode("console=ttyS0 idle=poll root=/dev/vda nohz=off quiet"),
            "idle=poll nohz=off"
        );
        // Look-alikes are other parameters.
        assert_eq!(
            idle_mode("nohz_full=1 idlefoo=1 xidle=poll\n"),
            "default (idle CPUs halt)"
        );
        assert_eq!(idle_mode(""), "default (idle CPUs halt)");
    }
}
