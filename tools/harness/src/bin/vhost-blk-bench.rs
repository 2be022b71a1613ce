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

#[path = "vhost-blk-bench/report.rs"]
mod report;
#[path = "vhost-blk-bench/scenarios.rs"]
mod scenarios;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use vhost_blk_harness::bench::{median, open_direct, Sample, Workload};
use vhost_blk_harness::nullb::{sectors, NullBlk};
use vhost_blk_harness::vhost_user::StorageDaemon;

use crate::report::{plots, report};
use crate::scenarios::{fairness, many_devices, matrix, memory, wakeups, Layout};

const USAGE: &str = "usage: vhost-blk-bench --out DIR [--secs S] [--reps N] [--poll LIST] [--quick]
  --list       print the groups of rows that would run, one per line
               (SCENARIO BACKING WORKLOAD; `-` where the scenario takes
               no --backing or --only), and run nothing
  --out DIR    where results.csv, summary.csv, results.json, table.txt and
               the plots go (created)
  --secs S     seconds per run (default 2)
  --reps N     repetitions of each run, interleaved (default 3)
  --poll LIST  poll_budget_us values for vhost-blk (default 0,200)
  --quick      a short pass over a few workloads (smoke test)
  --only TEXT  only the matrix, iocore and guestpoll workloads whose name
               contains TEXT, and no other scenario
  --backing LIST
               which null_blk disks the matrix, iocore and guestpoll
               scenarios run on, of nullb-mem,nullb-null (default both)
  --scenarios LIST
               which scenarios run, of matrix,iocore,guestpoll,fairness,
               devices,memory,wakeup (default all)
  --peers LIST which peers the matrix runs beside vhost-blk, of
               qsd (qemu-storage-daemon, its iothread as QEMU configures
               it), io_uring and qsd-matched (the daemon once per --poll
               value, its iothread's poll-max-ns set to that budget)
               (default qsd,io_uring; `none` for vhost-blk alone, e.g.
               under a profiler)
  --qsd PATH   the qemu-storage-daemon to run (default: $QEMU_STORAGE_DAEMON,
               else the one on the PATH; make bench gives QEMU 10.0's)
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

/// The disks the matrix scenarios run on: a memory-backed null_blk (the
/// data is copied) and one that discards it.
const BACKINGS: [&str; 2] = ["nullb-mem", "nullb-null"];

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
    /// `--backing`: the disks of the matrix scenarios.
    backings: Vec<String>,
    /// The matrix's peers beside vhost-blk (`qsd-matched` expanded to
    /// one daemon configuration per poll budget).
    peers: Vec<Engine>,
    /// `--qsd`: the daemon to run.
    qsd: Option<PathBuf>,
    /// `--list`: print the row groups instead of running them.
    list: bool,
}

impl Args {
    fn runs(&self, scenario: &str) -> bool {
        self.scenarios.iter().any(|s| s == scenario)
    }

    fn on(&self, backing: &str) -> bool {
        self.backings.iter().any(|b| b == backing)
    }

    /// Whether `--only` lets workload `w` run.
    fn selects(&self, w: &Workload) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| w.name.contains(o.as_str()))
    }

    /// The layouts of the matrix scenarios that run.
    fn layouts(&self) -> Result<Vec<Layout>, String> {
        let mut layouts = Vec::new();
        if self.runs("matrix") {
            layouts.push(Layout::Shared);
        }
        if self.runs("iocore") {
            layouts.push(Layout::io_core()?);
        }
        if self.runs("guestpoll") {
            layouts.push(Layout::GuestPoll);
        }
        Ok(layouts)
    }
}

fn parse_args(argv: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        out: PathBuf::new(),
        secs: 2.0,
        reps: 3,
        polls: vec![0, 200],
        quick: false,
        only: None,
        scenarios: SCENARIOS.iter().map(|s| s.to_string()).collect(),
        backings: BACKINGS.iter().map(|s| s.to_string()).collect(),
        peers: Vec::new(),
        qsd: None,
        list: false,
    };
    let mut peers = vec!["qsd", "io_uring"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    let mut it = argv.into_iter();
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
            "--list" => a.list = true,
            "--only" => a.only = Some(val("--only")?),
            "--scenarios" => {
                let list: Vec<String> = val("--scenarios")?.split(',').map(String::from).collect();
                if let Some(bad) = list.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
                    return Err(format!("--scenarios: unknown scenario {bad}\n{USAGE}"));
                }
                a.scenarios = list;
            }
            "--backing" => {
                let list: Vec<String> = val("--backing")?.split(',').map(String::from).collect();
                if let Some(bad) = list.iter().find(|b| !BACKINGS.contains(&b.as_str())) {
                    return Err(format!("--backing: unknown disk {bad}\n{USAGE}"));
                }
                a.backings = list;
            }
            "--peers" => peers = val("--peers")?.split(',').map(String::from).collect(),
            "--qsd" => a.qsd = Some(PathBuf::from(val("--qsd")?)),
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument {arg}\n{USAGE}")),
        }
    }
    if a.out.as_os_str().is_empty() && !a.list {
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
            "{},{},{},{},{},{},{:.0},{:.2},{:.1},{:.1},{:.1},{:.2},{:.2},{:.3},{},{},{}\n",
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
            self.s.missed_signals,
            self.s.stalls,
        )
    }
}

const CSV_HEADER: &str = "scenario,backing,workload,engine,rep,ios,iops,mbps,p50_us,p99_us,\
p999_us,cpu_us_per_io,backend_cpu_us_per_io,ctxt_per_io,threads,missed_signals,stalls\n";

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

/// What the table reports besides the runs.
struct Extra {
    memory: String,
    wakeups: String,
    /// How the VM's idle CPUs wait ([`vm_idle`]).
    idle: String,
    /// Each engine's version and options ([`engines`]).
    engines: Vec<String>,
}

/// What each engine of the run is and how it runs: the module's
/// parameters, the daemon's version and arguments, the kernel io_uring
/// runs on.
fn engines(a: &Args) -> Vec<String> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |r| r.trim().to_string());
    let params = std::fs::read_dir("/sys/module/vhost_blk/parameters")
        .map(|dir| {
            let mut v: Vec<String> = dir
                .flatten()
                .map(|e| {
                    let value = std::fs::read_to_string(e.path()).unwrap_or_default();
                    format!("{}={}", e.file_name().to_string_lossy(), value.trim())
                })
                .collect();
            v.sort();
            v.join(" ")
        })
        .unwrap_or_else(|e| format!("unreadable ({e})"));
    let polls: Vec<String> = a.polls.iter().map(u32::to_string).collect();
    let mut v = vec![format!(
        "vhost-blk: vhost_blk.ko on Linux {release}, poll_budget_us {} per device; \
         module parameters {params}",
        polls.join(", ")
    )];
    if a.peers.iter().any(|p| matches!(p, Engine::Qsd { .. })) {
        let version = StorageDaemon::version().unwrap_or_else(|e| format!("version unknown: {e}"));
        let args = StorageDaemon::args(Path::new("DEV"), Path::new("SOCKET"), 1)
            .join(" ")
            .replace("num-queues=1", "num-queues=QUEUES");
        let mut line = format!("{QSD}: {version} ({}), {args}", StorageDaemon::program());
        if a.peers
            .iter()
            .any(|p| matches!(p, Engine::Qsd { poll_us: Some(_) }))
        {
            line.push_str("; -pollN: the iothread's poll-max-ns set to N us over QMP");
        }
        v.push(line);
    }
    if a.peers.contains(&Engine::Uring) {
        v.push(format!(
            "io_uring: Linux {release}, one ring and thread per queue, O_DIRECT reads and \
             writes, completions by interrupt (no SQPOLL, no IOPOLL)"
        ));
    }
    v
}

/// How this kernel's idle CPUs wait for work, from its command line: the
/// `idle=` and `nohz=` parameters that `make bench BENCH_APPEND=...`
/// passes, which change what every wake-up costs under TCG
/// (`Documentation/vhost-blk/benchmarks.rst`, "What TCG distorts").
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
    if let Some(qsd) = &a.qsd {
        StorageDaemon::use_program(qsd).map_err(|e| format!("--qsd: {e}"))?;
    }
    raise_nofile();
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let mut rows: Vec<Row> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut raw = String::from(CSV_HEADER);
    let mut log = |r: &Row| {
        eprintln!(
            "bench: {:<12} {:<10} {:<26} {:<22} rep {} {:>8.0} IOPS p50 {:>7.1} us p99.9 {:>9.1} us \
             cpu {:>6.1} us/io; timed-out waits: {} missed signals, {} stalls",
            r.scenario,
            r.backing,
            r.workload,
            r.engine,
            r.rep,
            r.s.iops(),
            r.s.lat_us(r.lat_queue, 50.0),
            r.s.lat_us(r.lat_queue, 99.9),
            r.s.cpu_us_per_io(),
            r.s.missed_signals,
            r.s.stalls
        );
        raw.push_str(&r.csv());
    };
    let size = if a.quick { "128" } else { "512" };
    let layouts = a.layouts()?;
    if !layouts.is_empty() && a.on("nullb-mem") {
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
        if a.on("nullb-null") {
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
        engines: engines(a),
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

/// `--list`: the groups of rows that `a` would run, one per line, each of
/// which `--scenarios SCENARIO [--backing BACKING --only WORKLOAD]` runs
/// alone (how `bench-ab.sh` interleaves two modules row by row). Only
/// the scenarios whose rows compare modules are listed.
fn list_groups(a: &Args) -> Result<Vec<String>, String> {
    let mut groups = Vec::new();
    for layout in a.layouts()? {
        for backing in BACKINGS.iter().filter(|b| a.on(b)) {
            for w in layout.workloads(a.quick).iter().filter(|w| a.selects(w)) {
                groups.push(format!("{} {backing} {}", layout.scenario(), w.name));
            }
        }
    }
    if a.runs("fairness") {
        groups.push("fairness - -".into());
    }
    Ok(groups)
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
    let a = match parse_args(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vhost-blk-bench: {e}");
            std::process::exit(2);
        }
    };
    if a.list {
        match list_groups(&a) {
            Ok(groups) => groups.iter().for_each(|g| println!("{g}")),
            Err(e) => {
                eprintln!("vhost-blk-bench: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
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
    use super::{idle_mode, list_groups, parse_args};

    fn parse(args: &str) -> Result<super::Args, String> {
        parse_args(args.split_whitespace().map(String::from))
    }

    #[test]
    fn backing_and_list_select_the_groups_of_rows() {
        let a = parse("--list --scenarios iocore,fairness --backing nullb-mem").unwrap();
        assert_eq!(
            list_groups(&a).unwrap(),
            [
                "iocore nullb-mem randread-4k-qd1-q1",
                "iocore nullb-mem randread-4k-qd32-q1",
                "fairness - -",
            ]
        );
        let a = parse("--list --only qd128").unwrap();
        assert_eq!(
            list_groups(&a).unwrap(),
            [
                "matrix nullb-mem randread-4k-qd128-q1",
                "matrix nullb-null randread-4k-qd128-q1",
            ]
        );
    }

    #[test]
    fn bad_arguments_are_refused_with_the_reason() {
        let err = |args| parse(args).err().unwrap_or_default();
        assert!(err("--out x --backing nullb-ssd").contains("unknown disk nullb-ssd"));
        assert!(err("--out x --scenarios matrix,nope").contains("unknown scenario nope"));
        assert!(err("--scenarios matrix").contains("--out is required"));
        assert!(err("--out x --reps 0").contains("must be positive"));
        assert!(err("--out x --peers qsd,nope").contains("unknown peer nope"));
        assert!(err("--out x --backing").contains("--backing needs a value"));
    }

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
