// SPDX-License-Identifier: GPL-2.0

//! The `scsi_debug` module's one disk, for the cases that need a SCSI
//! disk of their own geometry or queue depth.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::testing::{ctx, ensure, unload_module, CaseResult};

/// scsi_debug loaded with one disk; unloaded when dropped (or by
/// [`ScsiDebug::unload`]).
pub(crate) struct ScsiDebug {
    /// The disk's device node.
    pub(crate) disk: PathBuf,
    /// Whether the module was unloaded already.
    unloaded: bool,
}

/// The entries of `dir` whose names start with `prefix`, sorted.
fn entries(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The name of scsi_debug's disk, from
/// `/sys/bus/pseudo/drivers/scsi_debug/adapter*/host*/target*/*:*/block/*`.
fn scsi_debug_disk() -> Option<String> {
    let root = Path::new("/sys/bus/pseudo/drivers/scsi_debug");
    for adapter in entries(root, "adapter") {
        for host in entries(&adapter, "host") {
            for target in entries(&host, "target") {
                for lun in entries(&target, "") {
                    if !lun.file_name()?.to_string_lossy().contains(':') {
                        continue;
                    }
                    if let Some(b) = entries(&lun.join("block"), "").first() {
                        return Some(b.file_name()?.to_string_lossy().into_owned());
                    }
                }
            }
        }
    }
    None
}

impl ScsiDebug {
    /// Loads `kdir/drivers/scsi/scsi_debug.ko` with `params` (e.g.
    /// `sector_size=4096`), and waits up to 10 s for its disk's node.
    pub(crate) fn load(kdir: &Path, params: &[&str]) -> Result<Self, String> {
        ensure(!Path::new("/sys/module/scsi_debug").exists(), || {
            "scsi_debug is loaded already".into()
        })?;
        let ko = kdir.join("drivers/scsi/scsi_debug.ko");
        ensure(ko.exists(), || {
            format!(
                "{} is missing: the test kernel needs CONFIG_SCSI_DEBUG=m",
                ko.display()
            )
        })?;
        let out = ctx(
            Command::new("insmod").arg(&ko).args(params).output(),
            "insmod",
        )?;
        ensure(out.status.success(), || {
            format!(
                "insmod {}: {}",
                ko.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })?;
        let mut me = Self {
            disk: PathBuf::new(),
            unloaded: false,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(name) = scsi_debug_disk() {
                let dev = PathBuf::from(format!("/dev/{name}"));
                if dev.exists() {
                    me.disk = dev;
                    return Ok(me);
                }
            }
            ensure(Instant::now() < deadline, || {
                "scsi_debug loaded, but no disk of it appeared in 10 s".into()
            })?;
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Unloads the module, reporting failure.
    pub(crate) fn unload(mut self) -> CaseResult {
        self.unloaded = true;
        unload_module("scsi_debug", Duration::from_secs(5))
    }
}

impl Drop for ScsiDebug {
    fn drop(&mut self) {
        if !self.unloaded {
            let _ = unload_module("scsi_debug", Duration::from_secs(5));
        }
    }
}
