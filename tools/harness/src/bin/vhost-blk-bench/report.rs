// SPDX-License-Identifier: GPL-2.0

//! What the benchmark writes: the table of medians and ratios with the
//! targets, the JSON summary, and the SVG plots.

use std::fmt::Write as _;

use serde_json::{json, Value};
use vhost_blk_harness::plot::BarChart;

use super::{Args, Engine, Extra, Summary, MATRIX_SCENARIOS, QSD};

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

/// The targets of a run: table lines and JSON objects.
#[derive(Default)]
struct Targets {
    lines: String,
    json: Vec<Value>,
}

impl Targets {
    /// One target: measured value, the goal, and whether it was met.
    fn add(&mut self, name: &str, value: f64, goal: &str, met: bool) {
        let _ = writeln!(
            self.lines,
            "  {:<68} {:>7.2}  goal {:<6} {}",
            name,
            value,
            goal,
            if met { "met" } else { "MISSED" }
        );
        self.json.push(json!({
            "target": name,
            "value": num(value),
            "goal": goal,
            "met": met,
        }));
    }
}

/// `v` to four decimals, or null if it is not a number (a ratio to a
/// peer that did not run).
fn num(v: f64) -> Value {
    if v.is_finite() {
        json!((v * 1e4).round() / 1e4)
    } else {
        Value::Null
    }
}

/// The table and the JSON summary of a run: the rows, then the targets
/// (goals the rows are read against), then the run's facts.
pub(super) fn report(
    a: &Args,
    sums: &[Summary],
    extra: &Extra,
    failures: &[String],
) -> (String, String) {
    let mut tg = Targets::default();
    peer_targets(&mut tg, a, sums);
    scaling_targets(&mut tg, a, sums);
    let mut t = table(a, sums, extra);
    let _ = writeln!(t, "\ntargets:");
    t.push_str(&tg.lines);
    (t, json(a, sums, &tg.json, extra, failures))
}

/// The table of medians: the matrix with its ratios to the daemon, the
/// fairness and many-device scenarios, memory and wake-up costs.
fn table(a: &Args, sums: &[Summary], extra: &Extra) -> String {
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
    let _ = writeln!(t, "\nengines:");
    for e in &extra.engines {
        let _ = writeln!(t, "  {e}");
    }
    let _ = writeln!(t, "\nmemory: {}", extra.memory);
    let _ = writeln!(t, "\nwake-ups: {}", extra.wakeups);
    t
}

/// The targets against the other back ends, in each CPU layout: IOPS at
/// QD32 against the daemon and io_uring, QD1 latency against the daemon.
fn peer_targets(tg: &mut Targets, a: &Args, sums: &[Summary]) {
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
            tg.add(
                &format!(
                    "4k randread QD32, {layout}: {} / {} IOPS",
                    v.engine, q.engine
                ),
                v.iops / q.iops,
                ">=1.5",
                v.iops / q.iops >= 1.5,
            );
            tg.add(
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
                tg.add(
                    &format!("QD1 p50, {layout}: {} / {}", v.engine, q.engine),
                    v.p50 / q.p50,
                    "<=0.7",
                    v.p50 / q.p50 <= 0.7,
                );
            }
        }
    }
}

/// The targets of vhost-blk against itself: queue scaling, CPU per I/O,
/// fairness, and shared workers against one per device.
fn scaling_targets(tg: &mut Targets, a: &Args, sums: &[Summary]) {
    let w32 = "randread-4k-qd32-q1";
    let g = |b: &str, w: &str, e: &str| find(sums, "matrix", b, w, e);
    if let (Some(one), Some(two)) = (
        g("nullb-null", w32, "vhost-blk"),
        g("nullb-null", "randread-4k-qd32-q2", "vhost-blk"),
    ) {
        tg.add(
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
        tg.add(
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
            tg.add(
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
            tg.add(
                &format!("8 devices, poll {poll}: shared / per-device IOPS per CPU-s"),
                sh.ios_per_cpu_s / per.ios_per_cpu_s,
                ">=1.2",
                sh.ios_per_cpu_s / per.ios_per_cpu_s >= 1.2,
            );
        }
    }
}

/// The JSON summary: every row, the targets, and the run's facts.
fn json(
    a: &Args,
    sums: &[Summary],
    targets: &[Value],
    extra: &Extra,
    failures: &[String],
) -> String {
    let summary: Vec<Value> = sums
        .iter()
        .map(|s| {
            json!({
                "scenario": s.scenario,
                "backing": s.backing,
                "workload": s.workload,
                "engine": s.engine,
                "iops": num(s.iops),
                "iops_min": num(s.iops_min),
                "iops_max": num(s.iops_max),
                "mbps": num(s.mbps),
                "p50_us": num(s.p50),
                "p99_us": num(s.p99),
                "p999_us": num(s.p999),
                "cpu_us_per_io": num(s.cpu),
                "backend_cpu_us_per_io": num(s.backend_cpu),
                "ios_per_cpu_s": num(s.ios_per_cpu_s),
                "ctxt_per_io": num(s.ctxt_per_io),
                "threads": s.threads,
            })
        })
        .collect();
    let doc = json!({
        "summary": summary,
        "targets": targets,
        "failures": failures,
        "engines": extra.engines,
        "memory": extra.memory,
        "wakeups": extra.wakeups,
        "vm_idle": extra.idle,
        "secs": a.secs,
        "reps": a.reps,
    });
    let mut text = serde_json::to_string_pretty(&doc).expect("a JSON value always serializes");
    text.push('\n');
    text
}

pub(super) fn plots(sums: &[Summary]) -> Vec<(String, String)> {
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

#[cfg(test)]
mod tests {
    use super::{json, Extra, Summary};

    /// The JSON summary parses, and keeps every string as it was: a
    /// daemon path, an error or a kernel command line may hold quotes,
    /// backslashes or newlines.
    #[test]
    fn json_summary_parses_and_keeps_strings_whole() {
        let a = super::super::parse_args(["--out", "x"].map(String::from)).unwrap();
        let odd = "a \"quoted\" C:\\path\nand a tab\t";
        let sums = [Summary {
            scenario: "matrix".into(),
            backing: "nullb-null".into(),
            workload: odd.into(),
            engine: "vhost-blk".into(),
            iops: 1234.56789,
            iops_min: f64::NAN,
            iops_max: f64::INFINITY,
            mbps: 0.0,
            p50: 1.0,
            p99: 2.0,
            p999: 3.0,
            cpu: 4.0,
            backend_cpu: 5.0,
            ios_per_cpu_s: 6.0,
            ctxt_per_io: 7.0,
            threads: 2,
        }];
        let extra = Extra {
            memory: odd.into(),
            wakeups: odd.into(),
            idle: odd.into(),
            engines: vec![odd.into()],
        };
        let text = json(&a, &sums, &[], &extra, &[odd.into()]);
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        for key in ["memory", "wakeups", "vm_idle"] {
            assert_eq!(v[key], odd, "{key}");
        }
        assert_eq!(v["failures"][0], odd);
        assert_eq!(v["engines"][0], odd);
        let row = &v["summary"][0];
        assert_eq!(row["workload"], odd);
        assert_eq!(row["iops"], 1234.5679);
        assert!(row["iops_min"].is_null() && row["iops_max"].is_null());
        assert_eq!(row["threads"], 2);
    }
}
