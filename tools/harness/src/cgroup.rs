// SPDX-License-Identifier: GPL-2.0

//! cgroup v2 for the selftests: the io controller, moving this process
//! between cgroups (vhost-blk takes the owner's io cgroup at
//! `VHOST_SET_OWNER`), `io.stat` and `io.max`.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::testing::{ctx, ensure, CaseResult};

/// Where the unified hierarchy is mounted.
pub const ROOT: &str = "/sys/fs/cgroup";

/// Mounts cgroup2 if it is not mounted yet, checks that it has the io
/// controller and enables it for the root's children.
pub fn enable_io() -> CaseResult {
    if !Path::new(&format!("{ROOT}/cgroup.controllers")).exists() {
        ctx(
            std::process::Command::new("mount")
                .args(["-t", "cgroup2", "none", ROOT])
                .status(),
            "mount cgroup2",
        )?;
    }
    let controllers = ctx(
        fs::read_to_string(format!("{ROOT}/cgroup.controllers")),
        "cgroup.controllers",
    )?;
    ensure(controllers.split_whitespace().any(|c| c == "io"), || {
        format!("no io controller in {controllers:?}")
    })?;
    ctx(
        fs::write(format!("{ROOT}/cgroup.subtree_control"), "+io"),
        "enable io",
    )
}

/// Moves this process (all its threads) into the cgroup at `dir`.
pub fn enter(dir: &str) -> CaseResult {
    ctx(
        fs::write(
            format!("{dir}/cgroup.procs"),
            std::process::id().to_string(),
        ),
        format!("enter {dir}"),
    )
}

/// `rbytes` and `wbytes` of device `major:minor` in the `io.stat` of the
/// cgroup at `dir` (0 and 0 if it has no line for the device).
pub fn io_stat(dir: &str, major: u64, minor: u64) -> Result<(u64, u64), String> {
    let text = ctx(fs::read_to_string(format!("{dir}/io.stat")), "io.stat")?;
    let prefix = format!("{major}:{minor} ");
    let Some(line) = text.lines().find(|l| l.starts_with(&prefix)) else {
        return Ok((0, 0));
    };
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("rbytes="), field("wbytes=")))
}

/// The `(major, minor)` numbers of an open block device.
pub fn dev_numbers(f: &File) -> Result<(u64, u64), String> {
    let rdev = ctx(f.metadata(), "stat the block device")?.rdev();
    Ok((u64::from(libc::major(rdev)), u64::from(libc::minor(rdev))))
}

/// A child cgroup of [`ROOT`], removed when dropped: its `io.max` limits
/// are lifted first, and this process is moved back to the root (a
/// cgroup with members cannot be removed).
pub struct Cgroup {
    /// The cgroup's directory.
    path: String,
    /// Devices given an `io.max` limit, to lift on drop.
    limited: Vec<(u64, u64)>,
}

impl Cgroup {
    /// Creates (or reuses, if a failed run left it) `ROOT/name`.
    pub fn create(name: &str) -> Result<Self, String> {
        let path = format!("{ROOT}/{name}");
        match fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("mkdir {path}: {e}")),
        }
        Ok(Self {
            path,
            limited: Vec::new(),
        })
    }

    /// The cgroup's directory.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Moves this process into the cgroup.
    pub fn enter(&self) -> CaseResult {
        enter(&self.path)
    }

    /// Writes `io.max` for device `major:minor`, e.g. `limits`
    /// `"wbps=1048576 rbps=1048576"`.
    pub fn set_io_max(&mut self, major: u64, minor: u64, limits: &str) -> CaseResult {
        let line = format!("{major}:{minor} {limits}");
        ctx(
            fs::write(format!("{}/io.max", self.path), &line),
            format!("{}/io.max: {line}", self.path),
        )?;
        if !self.limited.contains(&(major, minor)) {
            self.limited.push((major, minor));
        }
        Ok(())
    }

    /// Lifts every `io.max` limit this value set, so that throttled bios
    /// go through at once.
    pub fn clear_io_max(&mut self) -> CaseResult {
        let mut result = Ok(());
        for (major, minor) in std::mem::take(&mut self.limited) {
            let line = format!("{major}:{minor} rbps=max wbps=max riops=max wiops=max");
            let r = ctx(
                fs::write(format!("{}/io.max", self.path), &line),
                format!("{}/io.max: {line}", self.path),
            );
            result = result.and(r);
        }
        result
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = self.clear_io_max();
        let _ = enter(ROOT);
        let _ = fs::remove_dir(&self.path);
    }
}
