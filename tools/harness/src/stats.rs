// SPDX-License-Identifier: GPL-2.0

//! The module's statistics file and parameters, as seen from userspace.
//!
//! `<debugfs>/vhost-blk/stats` is line-oriented text (format version 3,
//! documented in `Documentation/vhost-blk/admin-guide.rst`):
//!
//! ```text
//! version 3
//! worker id=0 pid=93 cpus=0-1 queues=2 passes=... busy_ns=... ...
//! device id=4 backend=251:0
//! vq device=4 index=0 worker=0 requests=... bytes=... kicks=... ...
//! ```
//!
//! Every record is a kind followed by `key=value` fields; readers must
//! ignore kinds and keys they do not know, so fields can be added.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// Where the statistics are.
pub const STATS_PATH: &str = "/sys/kernel/debug/vhost-blk/stats";
/// Where the module parameters are.
pub const PARAMS_DIR: &str = "/sys/module/vhost_blk/parameters";
/// The format version the module writes.
pub const STATS_VERSION: u32 = 3;
/// The oldest version this reader understands: version 2 differs only in
/// what a queue's `busy_ns` counts (from its own turn's start), so an
/// older module can still be compared against (`make bench-ab`).
pub const STATS_VERSION_OLDEST: u32 = 2;

/// One line of the statistics: its kind and fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// `worker`, `device` or `vq`.
    pub kind: String,
    /// The `key=value` fields.
    pub fields: BTreeMap<String, String>,
}

impl Record {
    /// Field `key` as a number (0 if absent or not a number).
    pub fn num(&self, key: &str) -> u64 {
        self.fields
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Field `key` as text ("" if absent).
    pub fn text(&self, key: &str) -> &str {
        self.fields.get(key).map_or("", String::as_str)
    }
}

/// A parsed statistics file.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// `worker` records, in file order.
    pub workers: Vec<Record>,
    /// `device` records.
    pub devices: Vec<Record>,
    /// `vq` records.
    pub vqs: Vec<Record>,
}

impl Stats {
    /// Parses the text of the statistics file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut lines = text.lines();
        match lines
            .next()
            .map(str::split_whitespace)
            .map(|mut w| (w.next(), w.next()))
        {
            Some((Some("version"), Some(v)))
                if v.parse()
                    .is_ok_and(|v: u32| (STATS_VERSION_OLDEST..=STATS_VERSION).contains(&v)) => {}
            other => return Err(format!("unknown statistics version line {other:?}")),
        }
        let mut s = Self::default();
        for line in lines {
            let mut words = line.split_whitespace();
            let Some(kind) = words.next() else {
                continue;
            };
            let mut r = Record {
                kind: kind.to_string(),
                fields: BTreeMap::new(),
            };
            for w in words {
                let (k, v) = w
                    .split_once('=')
                    .ok_or_else(|| format!("field without '=' in {line:?}"))?;
                r.fields.insert(k.to_string(), v.to_string());
            }
            match kind {
                "worker" => s.workers.push(r),
                "device" => s.devices.push(r),
                "vq" => s.vqs.push(r),
                _ => {}
            }
        }
        Ok(s)
    }

    /// Reads and parses [`STATS_PATH`].
    pub fn read() -> Result<Self, String> {
        let text = fs::read_to_string(STATS_PATH)
            .map_err(|e| format!("{STATS_PATH}: {e} (is debugfs mounted and vhost_blk loaded?)"))?;
        Self::parse(&text)
    }

    /// The worker with `id`.
    pub fn worker(&self, id: u64) -> Option<&Record> {
        self.workers.iter().find(|w| w.num("id") == id)
    }

    /// The device with `id`.
    pub fn device(&self, id: u64) -> Option<&Record> {
        self.devices.iter().find(|d| d.num("id") == id)
    }

    /// Queue `index` of device `id`.
    pub fn vq(&self, id: u64, index: u64) -> Option<&Record> {
        self.vqs
            .iter()
            .find(|v| v.num("device") == id && v.num("index") == index)
    }
}

/// The device number of an open `/dev/vhost-blk` file and the workers
/// serving its queues, in queue order, from its fdinfo (no worker until a
/// queue gets a kick eventfd or starts).
pub fn fd_ids(fd: &impl AsRawFd) -> io::Result<(u64, Vec<u64>)> {
    let path = format!("/proc/self/fdinfo/{}", fd.as_raw_fd());
    let text = fs::read_to_string(&path)?;
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name));
    let dev = field("vhost-blk-device:")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("{path}: no device")))?;
    let workers = field("vhost-blk-workers:")
        .map(|v| {
            v.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    Ok((dev, workers))
}

/// Reads module parameter `name`.
pub fn param(name: &str) -> io::Result<String> {
    Ok(fs::read_to_string(param_path(name))?.trim().to_string())
}

/// Writes module parameter `name`.
pub fn set_param(name: &str, value: &str) -> io::Result<()> {
    fs::write(param_path(name), value)
}

fn param_path(name: &str) -> PathBuf {
    PathBuf::from(PARAMS_DIR).join(name)
}

/// Sets module parameters for as long as it lives, then restores them.
pub struct ParamGuard {
    saved: Vec<(String, String)>,
}

impl ParamGuard {
    /// Sets each `(name, value)`, remembering the old values.
    pub fn set(params: &[(&str, &str)]) -> Result<Self, String> {
        let mut g = Self { saved: Vec::new() };
        for (name, value) in params {
            let old = param(name).map_err(|e| format!("read parameter {name}: {e}"))?;
            g.saved.push((name.to_string(), old));
            set_param(name, value).map_err(|e| format!("set parameter {name}={value}: {e}"))?;
        }
        Ok(g)
    }
}

impl Drop for ParamGuard {
    fn drop(&mut self) {
        for (name, value) in self.saved.iter().rev() {
            // An empty write never reaches the parameter: write a newline
            // for an empty value (an empty cpulist).
            let v = if value.is_empty() {
                "\n"
            } else {
                value.as_str()
            };
            let _ = set_param(name, v);
        }
    }
}
