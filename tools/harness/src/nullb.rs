// SPDX-License-Identifier: GPL-2.0

//! null_blk devices created through configfs, as test backends.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

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
}

impl Drop for NullBlk {
    fn drop(&mut self) {
        let _ = self.set("power", "0");
        let _ = fs::remove_dir(&self.dir);
    }
}
