// SPDX-License-Identifier: GPL-2.0

//! Test backends: null_blk devices created through configfs, and loop
//! devices over sparse files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

const CONFIGFS: &str = "/sys/kernel/config/nullb";

/// A null_blk device, removed when dropped.
pub struct NullBlk {
    dir: PathBuf,
    dev: PathBuf,
}

impl NullBlk {
    /// Creates `/dev/<name>` of `size_mib` MiB with extra configfs
    /// attributes (e.g. `("memory_backed", "1")`, `("cache_size", "16")`).
    pub fn create(name: &str, size_mib: u64, attrs: &[(&str, &str)]) -> io::Result<Self> {
        let dir = Path::new(CONFIGFS).join(name);
        fs::create_dir(&dir)?;
        let me = Self {
            dev: PathBuf::from(format!("/dev/{name}")),
            dir,
        };
        me.set("size", &size_mib.to_string())?;
        for (k, v) in attrs {
            me.set(k, v)?;
        }
        me.set("power", "1")?;
        Ok(me)
    }

    fn set(&self, attr: &str, value: &str) -> io::Result<()> {
        fs::write(self.dir.join(attr), value)
            .map_err(|e| io::Error::new(e.kind(), format!("nullb {attr}={value}: {e}")))
    }

    /// The device node.
    pub fn path(&self) -> &Path {
        &self.dev
    }

    /// Powers the device off: null_blk deletes its disk, as a drive that
    /// was hot-unplugged is deleted, even while it is open.
    pub fn power_off(&self) -> io::Result<()> {
        self.set("power", "0")
    }

    /// Adds (`"+first-last"`) or removes (`"-first-last"`) bad sectors.
    pub fn badblocks(&self, spec: &str) -> io::Result<()> {
        self.set("badblocks", spec)
    }
}

impl Drop for NullBlk {
    fn drop(&mut self) {
        let _ = self.set("power", "0");
        let _ = fs::remove_dir(&self.dir);
    }
}

/// A loop device over a sparse file, detached and deleted when dropped.
pub struct LoopDev {
    file: PathBuf,
    dev: PathBuf,
}

impl LoopDev {
    /// A loop device over a new sparse file of `size_mib` MiB at `file`.
    pub fn create(file: &Path, size_mib: u64) -> io::Result<Self> {
        let f = fs::File::create(file)?;
        f.set_len(size_mib << 20)?;
        drop(f);
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(file)
            .output()?;
        if !out.status.success() {
            let _ = fs::remove_file(file);
            return Err(io::Error::other(format!(
                "losetup: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let dev = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Ok(Self {
            file: file.to_path_buf(),
            dev,
        })
    }

    /// The device node.
    pub fn path(&self) -> &Path {
        &self.dev
    }

    /// Makes the file `size_mib` MiB and the device follow
    /// (`losetup -c`: the block layer's capacity changes under its users).
    pub fn resize(&self, size_mib: u64) -> io::Result<()> {
        fs::OpenOptions::new()
            .write(true)
            .open(&self.file)?
            .set_len(size_mib << 20)?;
        let out = Command::new("losetup").arg("-c").arg(&self.dev).output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "losetup -c: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
        let _ = fs::remove_file(&self.file);
    }
}

/// A device-mapper device made with `dmsetup`, removed when dropped.
pub struct DmDev {
    name: String,
    dev: PathBuf,
    removed: bool,
}

/// Runs `prog` with `args` and returns its standard output; a failure
/// carries its standard error.
pub fn run_tool(prog: impl AsRef<Path>, args: &[&str]) -> io::Result<String> {
    let prog = prog.as_ref();
    let out = Command::new(prog).args(args).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{} {}: {}",
            prog.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn dmsetup(args: &[&str]) -> io::Result<String> {
    run_tool("dmsetup", args)
}

impl DmDev {
    /// Creates `name` with `table` (one target per line, as
    /// `dmsetup create --table` takes it).
    pub fn create(name: &str, table: &str) -> io::Result<Self> {
        dmsetup(&["create", name, "--table", table])?;
        // Without udev, find the node from the device number.
        let info = dmsetup(&["info", "-c", "--noheadings", "-o", "major,minor", name])?;
        let mut nums = info.trim().split(':').map(|n| n.trim().parse::<u32>());
        let (Some(Ok(major)), Some(Ok(minor))) = (nums.next(), nums.next()) else {
            let _ = dmsetup(&["remove", name]);
            return Err(io::Error::other(format!("dmsetup info {name}: {info:?}")));
        };
        let dev = PathBuf::from(format!("/dev/dm-{minor}"));
        if !dev.exists() {
            let ok = Command::new("mknod")
                .arg(&dev)
                .args(["b", &major.to_string(), &minor.to_string()])
                .status()?
                .success();
            if !ok {
                let _ = dmsetup(&["remove", name]);
                return Err(io::Error::other(format!("mknod {}", dev.display())));
            }
        }
        Ok(Self {
            name: name.to_string(),
            dev,
            removed: false,
        })
    }

    /// Replaces the table (suspending I/O while it switches).
    pub fn reload(&self, table: &str) -> io::Result<()> {
        dmsetup(&["reload", &self.name, "--table", table])?;
        dmsetup(&["resume", &self.name]).map(|_| ())
    }

    /// The device node.
    pub fn path(&self) -> &Path {
        &self.dev
    }

    /// `dmsetup status`: each target's status line.
    pub fn status(&self) -> io::Result<String> {
        dmsetup(&["status", &self.name])
    }

    /// `dmsetup message` to sector 0 (e.g. a thin pool's `create_thin 0`).
    pub fn message(&self, msg: &str) -> io::Result<()> {
        dmsetup(&["message", &self.name, "0", msg]).map(|_| ())
    }

    /// Removes the device now, reporting failure (`drop` ignores it).
    pub fn remove(mut self) -> io::Result<()> {
        self.removed = true;
        dmsetup(&["remove", "--retry", &self.name]).map(|_| ())
    }
}

impl Drop for DmDev {
    fn drop(&mut self) {
        if !self.removed {
            let _ = dmsetup(&["remove", "--retry", &self.name]);
        }
    }
}

/// The size of a block device in 512-byte sectors.
pub fn sectors(dev: &Path) -> io::Result<u64> {
    let name = dev
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::other("bad device path"))?;
    let s = fs::read_to_string(format!("/sys/class/block/{name}/size"))?;
    s.trim().parse().map_err(io::Error::other)
}
