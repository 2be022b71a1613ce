// SPDX-License-Identifier: GPL-2.0

//! A block device over NBD: `qemu-nbd -c` serving an image file (qcow2,
//! with its backing chain) on `/dev/nbdN`, as image formats reach a host
//! block device. Needs CONFIG_BLK_DEV_NBD.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::nullb::run_tool;

/// `qemu-nbd` serving an image on an NBD device; disconnected when
/// dropped.
pub struct Nbd {
    qemu_nbd: PathBuf,
    dev: PathBuf,
}

impl Nbd {
    /// Serves the qcow2 `image` on `/dev/<name>` (discards unmap in the
    /// image; `read_only` exports it read-only).
    pub fn connect(qemu_nbd: &Path, name: &str, image: &Path, read_only: bool) -> io::Result<Self> {
        let dev = Path::new("/dev").join(name);
        let mut args = vec!["-c", dev.to_str().unwrap_or(""), "-f", "qcow2"];
        args.push(if read_only { "-r" } else { "--discard=unmap" });
        args.push(image.to_str().unwrap_or(""));
        run_tool(qemu_nbd, &args)?;
        let nbd = Self {
            qemu_nbd: qemu_nbd.to_path_buf(),
            dev,
        };
        // Connected once the kernel knows the export's size.
        let size = Path::new("/sys/block").join(name).join("size");
        let start = Instant::now();
        while fs::read_to_string(&size)?.trim() == "0" {
            if start.elapsed() > Duration::from_secs(30) {
                return Err(io::Error::other(format!("{name}: no size after 30 s")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(nbd)
    }

    /// The NBD device node.
    pub fn path(&self) -> &Path {
        &self.dev
    }
}

impl Drop for Nbd {
    fn drop(&mut self) {
        let _ = run_tool(&self.qemu_nbd, &["-d", self.dev.to_str().unwrap_or("")]);
    }
}
