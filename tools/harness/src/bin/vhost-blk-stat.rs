// SPDX-License-Identifier: GPL-2.0

//! `vhost-blk-stat`: shows the shared workers and queues of `vhost_blk.ko`
//! from `<debugfs>/vhost-blk/stats`.
//!
//! `vhost-blk-stat [-i SECONDS [-n COUNT]] [--raw]`
//!
//! Without `-i` it prints totals since each queue started. With `-i` it
//! prints, every SECONDS, the rates over the last interval (`-n` stops
//! after COUNT reports). `--raw` prints the file as it is. Each queue's
//! busy time (the time it kept its worker busy) is shown in milliseconds
//! (`BUSYMS`) in totals, and as a percentage of the interval (`BUSY%`)
//! with `-i`.

use std::collections::BTreeMap;
use std::process::exit;
use std::thread::sleep;
use std::time::{Duration, Instant};

use vhost_blk_harness::stats::{Record, Stats, STATS_PATH};

struct Args {
    interval: Option<f64>,
    count: Option<u64>,
    raw: bool,
}

fn usage() -> ! {
    eprintln!("usage: vhost-blk-stat [-i SECONDS [-n COUNT]] [--raw]");
    exit(2);
}

fn parse_args() -> Args {
    let mut a = Args {
        interval: None,
        count: None,
        raw: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-i" => {
                let v = it.next().and_then(|v| v.parse::<f64>().ok());
                match v {
                    Some(v) if v > 0.0 => a.interval = Some(v),
                    _ => usage(),
                }
            }
            "-n" => {
                a.count = Some(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or_else(|| usage()),
                )
            }
            "--raw" => a.raw = true,
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    if a.count.is_some() && a.interval.is_none() {
        usage();
    }
    a
}

type Key = (u64, u64);

fn vq_map(s: &Stats) -> BTreeMap<Key, &Record> {
    s.vqs
        .iter()
        .map(|v| ((v.num("device"), v.num("index")), v))
        .collect()
}

fn print(now: &Stats, before: Option<(&Stats, f64)>) {
    let rate = |r: &Record, old: Option<&Record>, key: &str| -> String {
        match (before, old) {
            (Some((_, secs)), Some(o)) => {
                format!("{:.0}", r.num(key).saturating_sub(o.num(key)) as f64 / secs)
            }
            (Some(_), None) => "-".into(),
            (None, _) => r.num(key).to_string(),
        }
    };
    // The time a queue kept its worker busy: in milliseconds since the
    // queue started, or as a share of the interval.
    let busy = |r: &Record, old: Option<&Record>| -> String {
        match (before, old) {
            (Some((_, secs)), Some(o)) => format!(
                "{:.1}",
                r.num("busy_ns").saturating_sub(o.num("busy_ns")) as f64 / (secs * 1e7)
            ),
            (Some(_), None) => "-".into(),
            (None, _) => format!("{:.1}", r.num("busy_ns") as f64 / 1e6),
        }
    };
    let per = if before.is_some() { "/s" } else { "" };
    println!(
        "{:>6} {:>7} {:>12} {:>7} {:>6} {:>6} {:>6} {:>10} {:>10}",
        "WORKER", "PID", "CPUS", "QUEUES", "BUSY%", "POLL%", "IDLE%", "POLLS", "SLEEPS"
    );
    for w in &now.workers {
        let old = before.and_then(|(b, _)| b.worker(w.num("id")));
        let delta = |k: &str| w.num(k).saturating_sub(old.map_or(0, |o| o.num(k))) as f64;
        let total = (delta("busy_ns") + delta("poll_ns") + delta("idle_ns")).max(1.0);
        println!(
            "{:>6} {:>7} {:>12} {:>7} {:>6.1} {:>6.1} {:>6.1} {:>10} {:>10}",
            w.num("id"),
            w.num("pid"),
            w.text("cpus"),
            w.num("queues"),
            100.0 * delta("busy_ns") / total,
            100.0 * delta("poll_ns") / total,
            100.0 * delta("idle_ns") / total,
            rate(w, old, "polls"),
            rate(w, old, "sleeps"),
        );
    }
    println!();
    println!(
        "{:>6} {:>6} {:>3} {:>10} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "DEVICE",
        "WORKER",
        "VQ",
        format!("REQS{per}"),
        format!("BYTES{per}"),
        format!("KICKS{per}"),
        format!("POLLED{per}"),
        format!("IRQS{per}"),
        format!("NOIRQ{per}"),
        format!("QUOTA{per}"),
        if before.is_some() { "BUSY%" } else { "BUSYMS" },
        "INFLIGHT"
    );
    let old = before.map(|(b, _)| vq_map(b));
    for v in &now.vqs {
        let id = v.num("device");
        let o = old
            .as_ref()
            .and_then(|m| m.get(&(id, v.num("index"))).copied());
        let worker = v.text("worker");
        println!(
            "{:>6} {:>6} {:>3} {:>10} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
            id,
            worker,
            v.num("index"),
            rate(v, o, "requests"),
            rate(v, o, "bytes"),
            rate(v, o, "kicks"),
            rate(v, o, "polled"),
            rate(v, o, "irqs"),
            rate(v, o, "irqs_suppressed"),
            rate(v, o, "quota_hits"),
            busy(v, o),
            v.num("inflight"),
        );
    }
}

fn read_or_exit() -> Stats {
    Stats::read().unwrap_or_else(|e| {
        eprintln!("vhost-blk-stat: {e}");
        exit(1);
    })
}

fn main() {
    let args = parse_args();
    if args.raw {
        match std::fs::read_to_string(STATS_PATH) {
            Ok(t) => print!("{t}"),
            Err(e) => {
                eprintln!("vhost-blk-stat: {STATS_PATH}: {e}");
                exit(1);
            }
        }
        return;
    }
    let Some(secs) = args.interval else {
        print(&read_or_exit(), None);
        return;
    };
    let mut prev = read_or_exit();
    let mut at = Instant::now();
    let mut n = 0;
    loop {
        sleep(Duration::from_secs_f64(secs));
        let now = read_or_exit();
        let elapsed = at.elapsed().as_secs_f64();
        at = Instant::now();
        print(&now, Some((&prev, elapsed)));
        println!();
        prev = now;
        n += 1;
        if args.count.is_some_and(|c| n >= c) {
            break;
        }
    }
}
