// SPDX-License-Identifier: GPL-2.0

//! VM selftests of `vhost_blk.ko`. Run inside the test VM (see
//! `tools/testing/vm-run.sh`) with the module loaded:
//!
//! `vhost-blk-selftest --module PATH [--kdir DIR] [--qemu DIR] [--filter SUBSTRING] [--show]`
//!
//! `--module` names the `.ko`, for the unload/reload cases. `--kdir` names
//! the build tree of the running kernel, whose `scsi_debug.ko` the 4 KiB
//! block case loads. `--qemu` names the QEMU build directory whose
//! `qemu-img` and `qemu-nbd` the NBD case runs and whose
//! `qemu-storage-daemon` the peer cases run. `--show` prints what the
//! device offers before the tests. The last line is
//! `N passed, N failed`; the exit status is 0 only if all passed.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use vhost_blk_core::{features, uapi};
use vhost_blk_harness::device::{VhostBlk, DEVICE_PATH};
use vhost_blk_harness::testing::{ctx, ensure, expect_errno, CaseResult, Runner};

/// The command line.
struct Args {
    /// `--module`: the `vhost_blk.ko` to reload.
    module: Option<PathBuf>,
    /// `--kdir`: the running kernel's build tree.
    kdir: Option<PathBuf>,
    /// `--qemu`: a QEMU build directory with `qemu-img`, `qemu-nbd` and
    /// `storage-daemon/qemu-storage-daemon`.
    qemu: Option<PathBuf>,
    /// `--filter`: run only the cases whose name contains it.
    filter: Option<String>,
    /// `--show`: print what the device offers first.
    show: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        module: None,
        kdir: None,
        qemu: None,
        filter: None,
        show: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--module" => args.module = Some(it.next().ok_or("--module needs a path")?.into()),
            "--kdir" => args.kdir = Some(it.next().ok_or("--kdir needs a directory")?.into()),
            "--qemu" => args.qemu = Some(it.next().ok_or("--qemu needs a directory")?.into()),
            "--filter" => args.filter = Some(it.next().ok_or("--filter needs a string")?),
            "--show" => args.show = true,
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    Ok(args)
}

fn show() -> Result<(), String> {
    let dev = ctx(VhostBlk::open(), DEVICE_PATH)?;
    let f = ctx(dev.get_features(), "VHOST_GET_FEATURES")?;
    let b = ctx(dev.get_backend_features(), "VHOST_GET_BACKEND_FEATURES")?;
    println!("{DEVICE_PATH}: features {f:#018x}, backend features {b:#x}");
    let names: &[(u32, &str)] = &[
        (features::VIRTIO_BLK_F_SIZE_MAX, "SIZE_MAX"),
        (features::VIRTIO_BLK_F_SEG_MAX, "SEG_MAX"),
        (features::VIRTIO_BLK_F_RO, "RO"),
        (features::VIRTIO_BLK_F_BLK_SIZE, "BLK_SIZE"),
        (features::VIRTIO_BLK_F_FLUSH, "FLUSH"),
        (features::VIRTIO_BLK_F_MQ, "MQ"),
        (features::VIRTIO_BLK_F_DISCARD, "DISCARD"),
        (features::VIRTIO_BLK_F_WRITE_ZEROES, "WRITE_ZEROES"),
        (features::VIRTIO_F_NOTIFY_ON_EMPTY, "NOTIFY_ON_EMPTY"),
        (features::VIRTIO_F_ANY_LAYOUT, "ANY_LAYOUT"),
        (features::VIRTIO_RING_F_INDIRECT_DESC, "INDIRECT_DESC"),
        (features::VIRTIO_RING_F_EVENT_IDX, "EVENT_IDX"),
        (features::VIRTIO_F_VERSION_1, "VERSION_1"),
    ];
    let offered: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| f & features::bit(*bit) != 0)
        .map(|(_, n)| *n)
        .collect();
    println!("  offers: {}", offered.join(" "));
    Ok(())
}

fn device_node_exists() -> CaseResult {
    let md = ctx(std::fs::metadata(DEVICE_PATH), DEVICE_PATH)?;
    ensure(md.file_type().is_char_device(), || {
        format!("{DEVICE_PATH} is not a character device")
    })?;
    ctx(VhostBlk::open(), "open").map(|_| ())
}

fn features_round_trip() -> CaseResult {
    let dev = ctx(VhostBlk::open(), "open")?;
    let f = ctx(dev.get_features(), "VHOST_GET_FEATURES")?;
    ensure(f == features::SUPPORTED, || {
        format!("features {f:#x}, expected {:#x}", features::SUPPORTED)
    })?;
    ctx(dev.set_features(f), "VHOST_SET_FEATURES(offered)")?;
    ctx(dev.set_features(0), "VHOST_SET_FEATURES(0)")?;
    // The packed ring is never offered: acking it must fail.
    let packed = features::bit(features::VIRTIO_F_RING_PACKED);
    expect_errno(
        dev.set_features(f | packed),
        libc::EOPNOTSUPP,
        "VHOST_SET_FEATURES(+RING_PACKED)",
    )?;
    expect_errno(
        dev.set_features(u64::MAX),
        libc::EOPNOTSUPP,
        "VHOST_SET_FEATURES(all ones)",
    )?;
    let again = ctx(dev.get_features(), "VHOST_GET_FEATURES again")?;
    ensure(again == f, || {
        format!("features changed from {f:#x} to {again:#x}")
    })?;

    let b = ctx(dev.get_backend_features(), "VHOST_GET_BACKEND_FEATURES")?;
    ctx(
        dev.set_backend_features(b),
        "VHOST_SET_BACKEND_FEATURES(offered)",
    )?;
    expect_errno(
        dev.set_backend_features(b | 1 << 63),
        libc::EOPNOTSUPP,
        "VHOST_SET_BACKEND_FEATURES(+bit 63)",
    )
}

fn bad_pointers_fault() -> CaseResult {
    let dev = ctx(VhostBlk::open(), "open")?;
    for (cmd, name) in [
        (uapi::VHOST_GET_FEATURES, "VHOST_GET_FEATURES"),
        (uapi::VHOST_SET_FEATURES, "VHOST_SET_FEATURES"),
        (
            uapi::VHOST_GET_BACKEND_FEATURES,
            "VHOST_GET_BACKEND_FEATURES",
        ),
    ] {
        expect_errno(
            // SAFETY: NULL is never accessed.
            unsafe { dev.ioctl_ptr(cmd, std::ptr::null_mut()) },
            libc::EFAULT,
            name,
        )?;
        // A kernel address is never valid as a user pointer.
        expect_errno(
            dev.ioctl_val(cmd, 0xffff_ffff_8100_0000),
            libc::EFAULT,
            &format!("{name}(kernel address)"),
        )?;
    }
    Ok(())
}

fn unknown_ioctls_enotty() -> CaseResult {
    let dev = ctx(VhostBlk::open(), "open")?;
    let cmds = [
        uapi::ioc(uapi::IOC_NONE, uapi::VHOST_VIRTIO, 0xff, 0),
        uapi::ioc(uapi::IOC_READ, uapi::VHOST_VIRTIO, 0x5f, 8),
        // VHOST_NET_SET_BACKEND: a vhost ioctl, but not ours.
        uapi::ioc(uapi::IOC_WRITE, uapi::VHOST_VIRTIO, 0x30, 8),
        // An ioctl of another type entirely (TCGETS).
        0x5401,
    ];
    for cmd in cmds {
        let mut buf = [0u8; 64];
        expect_errno(
            // SAFETY: a 64-byte buffer this function owns.
            unsafe { dev.ioctl_ptr(cmd, buf.as_mut_ptr().cast()) },
            libc::ENOTTY,
            &format!("ioctl {cmd:#x}"),
        )?;
    }
    Ok(())
}

fn module_unloads(module: Option<&Path>) -> CaseResult {
    let module = module.ok_or("--module not given")?;
    let run = |prog: &str, arg: &str| -> Result<bool, String> {
        let out = Command::new(prog)
            .arg(arg)
            .output()
            .map_err(|e| format!("{prog}: {e}"))?;
        Ok(out.status.success())
    };
    {
        // An open file pins the module.
        let _dev = ctx(VhostBlk::open(), "open")?;
        ensure(!run("rmmod", "vhost_blk")?, || {
            "rmmod succeeded while /dev/vhost-blk was open".into()
        })?;
    }
    ensure(run("rmmod", "vhost_blk")?, || {
        "rmmod vhost_blk failed".into()
    })?;
    ensure(!Path::new(DEVICE_PATH).exists(), || {
        format!("{DEVICE_PATH} still exists after rmmod")
    })?;
    ensure(
        run("insmod", module.to_str().ok_or("bad module path")?)?,
        || "insmod after rmmod failed".into(),
    )?;
    ctx(VhostBlk::open(), "open after reload").map(|_| ())?;
    ensure(run("rmmod", "vhost_blk")?, || "second rmmod failed".into())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vhost-blk-selftest: {e}");
            std::process::exit(2);
        }
    };
    if let Some(dir) = &args.qemu {
        let qsd = dir.join("storage-daemon/qemu-storage-daemon");
        if let Err(e) = vhost_blk_harness::vhost_user::StorageDaemon::use_program(&qsd) {
            eprintln!("vhost-blk-selftest: --qemu: {e}");
            std::process::exit(2);
        }
    }
    if args.show {
        if let Err(e) = show() {
            eprintln!("vhost-blk-selftest: {e}");
            std::process::exit(1);
        }
    }
    let mut r = Runner::new(args.filter.clone());
    r.run("device_node_exists", device_node_exists);
    r.run("features_round_trip", features_round_trip);
    r.run("bad_pointers_fault", bad_pointers_fault);
    r.run("unknown_ioctls_enotty", unknown_ioctls_enotty);
    vhost_blk_harness::selftests::control::run(&mut r);
    vhost_blk_harness::selftests::config::run(&mut r, args.kdir.as_deref());
    vhost_blk_harness::selftests::disks::run(&mut r, args.qemu.as_deref());
    vhost_blk_harness::selftests::io::run(&mut r);
    vhost_blk_harness::selftests::completion::run(&mut r);
    vhost_blk_harness::selftests::workers::run(&mut r, args.module.as_deref());
    vhost_blk_harness::selftests::isolation::run(&mut r, args.kdir.as_deref());
    vhost_blk_harness::selftests::failing::run(&mut r);
    vhost_blk_harness::selftests::flush::run(&mut r);
    vhost_blk_harness::selftests::peers::run(&mut r);
    vhost_blk_harness::selftests::hostile::run(&mut r);
    vhost_blk_harness::selftests::races::run(&mut r, args.module.as_deref());
    // Last: it leaves the module unloaded.
    r.run("module_unloads", || module_unloads(args.module.as_deref()));
    std::process::exit(r.finish());
}
