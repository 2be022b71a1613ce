// SPDX-License-Identifier: GPL-2.0

//! `vhost-blk-stat`: its raw, table and interval modes against a device
//! with known traffic.

use std::time::Duration;

use vhost_blk_core::blk::*;

use super::{stat_cli, Flow};
use crate::blk::{Config, TestDevice};
use crate::selftests::io::backend;
use crate::stats::{fd_ids, Stats, STATS_VERSION};
use crate::testing::{ctx, ensure, CaseResult};

pub(super) fn workers_stat_cli() -> CaseResult {
    let (_nb, f) = backend("vbw5", 16, &[])?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    let (id, w) = ctx(fd_ids(&t.dev), "fdinfo")?;
    let w = *w.first().ok_or("no worker")?;
    let mut flow = Flow::new(&mut t, 0, 4, 4096);
    for i in 0..32 {
        flow.submit(&mut t, VIRTIO_BLK_T_IN, i * 8, 0);
        flow.drain(&mut t, Duration::from_secs(10))?;
    }
    let raw = stat_cli(&["--raw"])?;
    ensure(
        raw.starts_with(&format!("version {STATS_VERSION}\n")),
        || format!("--raw output {raw:?}"),
    )?;
    let s = Stats::parse(&raw)?;
    let v = s.vq(id, 0).ok_or("no vq line for the device")?;
    ensure(
        v.num("requests") == 32 && v.num("bytes") == 32 * 4096,
        || format!("vq line {v:?} after 32 reads of 4 KiB"),
    )?;
    let table = stat_cli(&[])?;
    let row = table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|c| c.len() == 12 && c[0] == id.to_string() && c[2] == "0")
        .ok_or_else(|| format!("no row for device {id} in:\n{table}"))?;
    ensure(row[1] == w.to_string() && row[3] == "32", || {
        format!("device {id} row {row:?}: expected worker {w} and 32 requests")
    })?;
    let rates = stat_cli(&["-i", "0.2", "-n", "2"])?;
    ensure(rates.matches("REQS/s").count() == 2, || {
        format!("interval mode printed:\n{rates}")
    })?;
    let bad = std::process::Command::new(
        ctx(std::env::current_exe(), "current_exe")?.with_file_name("vhost-blk-stat"),
    )
    .args(["-i", "0"])
    .output();
    ensure(bad.is_ok_and(|o| o.status.code() == Some(2)), || {
        "vhost-blk-stat -i 0 did not fail with usage (2)".into()
    })?;
    println!("  raw, table and interval modes checked against device {id}");
    Ok(())
}
