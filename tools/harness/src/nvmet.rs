// SPDX-License-Identifier: GPL-2.0

//! A block device over NVMe/TCP: a loopback `nvmet` target exporting a
//! local disk, and the host's controller connected to it, as remote
//! storage is attached. Needs CONFIG_NVME_TARGET_TCP and CONFIG_NVME_TCP.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const NVMET: &str = "/sys/kernel/config/nvmet";
const NQN: &str = "nqn.2026-12.org.vhost-blk:test";
const PORT: &str = "4420";

/// The target (subsystem, namespace, port) and the connected controller;
/// all of it torn down when dropped.
pub struct NvmeTcp {
    subsys: PathBuf,
    port: PathBuf,
    ctrl: Option<String>,
    dev: PathBuf,
}

fn put(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Brings the loopback interface up if it is down.
fn loopback_up() -> io::Result<()> {
    let flags = fs::read_to_string("/sys/class/net/lo/flags")?;
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16)
        .map_err(|e| io::Error::other(format!("lo flags {flags:?}: {e}")))?;
    if flags & 1 == 0
        && !Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()?
            .success()
    {
        return Err(io::Error::other("ip link set lo up failed"));
    }
    Ok(())
}

impl NvmeTcp {
    /// Exports `backing` as namespace 1 on 127.0.0.1:4420 and connects to
    /// it; the namespace's block device is [`NvmeTcp::path`].
    pub fn create(backing: &Path) -> io::Result<Self> {
        let mut t = Self {
            subsys: Path::new(NVMET).join("subsystems").join(NQN),
            port: Path::new(NVMET).join("ports/1"),
            ctrl: None,
            dev: PathBuf::new(),
        };
        fs::create_dir(&t.subsys)?;
        put(&t.subsys.join("attr_allow_any_host"), "1")?;
        let ns = t.subsys.join("namespaces/1");
        fs::create_dir(&ns)?;
        put(&ns.join("device_path"), &backing.to_string_lossy())?;
        put(&ns.join("enable"), "1")?;
        fs::create_dir(&t.port)?;
        put(&t.port.join("addr_trtype"), "tcp")?;
        put(&t.port.join("addr_adrfam"), "ipv4")?;
        put(&t.port.join("addr_traddr"), "127.0.0.1")?;
        put(&t.port.join("addr_trsvcid"), PORT)?;
        symlink(&t.subsys, t.port.join("subsystems").join(NQN))?;
        loopback_up()?;
        // The fabrics device answers the write with "instance=N,cntlid=M".
        let mut fabrics = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/nvme-fabrics")?;
        fabrics.write_all(
            format!("transport=tcp,traddr=127.0.0.1,trsvcid={PORT},nqn={NQN}").as_bytes(),
        )?;
        let mut answer = String::new();
        fabrics.read_to_string(&mut answer)?;
        let instance = answer
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix("instance="))
            .ok_or_else(|| io::Error::other(format!("nvme-fabrics answered {answer:?}")))?;
        t.ctrl = Some(format!("nvme{instance}"));
        t.dev = t.wait_namespace()?;
        Ok(t)
    }

    /// The namespace's block device: the one NVMe disk in the system (with
    /// multipath, the head node `nvmeXn1`).
    fn wait_namespace(&self) -> io::Result<PathBuf> {
        let start = Instant::now();
        loop {
            for e in fs::read_dir("/sys/block")?.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let rest = name.strip_prefix("nvme").unwrap_or("");
                if !rest.contains('c') && rest.ends_with("n1") {
                    let dev = Path::new("/dev").join(&name);
                    if dev.exists() {
                        return Ok(dev);
                    }
                }
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(io::Error::other("no NVMe namespace appeared in 30 s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The namespace's block device node.
    pub fn path(&self) -> &Path {
        &self.dev
    }
}

impl Drop for NvmeTcp {
    fn drop(&mut self) {
        if let Some(c) = &self.ctrl {
            let _ = fs::write(
                Path::new("/sys/class/nvme")
                    .join(c)
                    .join("delete_controller"),
                "1",
            );
        }
        let _ = fs::remove_file(self.port.join("subsystems").join(NQN));
        let _ = fs::remove_dir(&self.port);
        let ns = self.subsys.join("namespaces/1");
        let _ = fs::write(ns.join("enable"), "0");
        let _ = fs::remove_dir(&ns);
        let _ = fs::remove_dir(&self.subsys);
    }
}
