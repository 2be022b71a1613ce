// SPDX-License-Identifier: GPL-2.0

//! The control plane: owner rules, memory tables, vring configuration,
//! eventfds and backends, with every bad argument a VMM could pass.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;

use vhost_blk_core::memory::MemRegion;
use vhost_blk_core::ring::VringAddrs;
use vhost_blk_core::uapi;

use crate::device::VhostBlk;
use crate::nullb::NullBlk;
use crate::selftests::io::nullb_rw;
use crate::testing::{ctx, ensure, expect_errno, CaseResult, Runner};

/// Registers this area's cases.
pub fn run(r: &mut Runner) {
    crate::cases!(
        r,
        ioctls_require_an_owner,
        set_owner_twice_and_reset,
        forked_child_is_not_the_owner,
        mem_table_validation,
        mem_table_unreadable_regions_fault,
        vring_config_validation,
        vring_eventfds_validation,
        backend_validation,
        zoned_backend_refused,
        queue_geometry_locked_while_backend_attached,
        wrong_argument_size_is_enotty,
        close_with_everything_attached,
        owner_churn,
    );
}

fn owned() -> Result<VhostBlk, String> {
    let dev = ctx(VhostBlk::open(), "open")?;
    ctx(dev.set_owner(), "VHOST_SET_OWNER")?;
    Ok(dev)
}

const GOOD_ADDRS: VringAddrs = VringAddrs {
    desc: 0x10_0000,
    avail: 0x11_0000,
    used: 0x12_0000,
};

fn ioctls_require_an_owner() -> CaseResult {
    let dev = ctx(VhostBlk::open(), "open")?;
    let e = libc::EPERM;
    expect_errno(dev.reset_owner(), e, "RESET_OWNER")?;
    expect_errno(dev.set_mem_table(&[]), e, "SET_MEM_TABLE")?;
    expect_errno(dev.set_vring_num(0, 256), e, "SET_VRING_NUM")?;
    expect_errno(dev.set_vring_addr(0, &GOOD_ADDRS), e, "SET_VRING_ADDR")?;
    expect_errno(dev.set_vring_base(0, 0), e, "SET_VRING_BASE")?;
    expect_errno(dev.get_vring_base(0), e, "GET_VRING_BASE")?;
    expect_errno(dev.set_vring_kick(0, -1), e, "SET_VRING_KICK")?;
    expect_errno(dev.set_backend(-1), e, "VHOST_BLK_SET_BACKEND")?;
    expect_errno(dev.set_serial(&[0; 20]), e, "VHOST_BLK_SET_SERIAL")?;
    // Feature negotiation needs no owner.
    ctx(dev.get_features(), "GET_FEATURES")?;
    Ok(())
}

fn set_owner_twice_and_reset() -> CaseResult {
    let dev = owned()?;
    expect_errno(dev.set_owner(), libc::EBUSY, "second SET_OWNER")?;
    ctx(dev.set_vring_base(0, 7), "SET_VRING_BASE")?;
    ctx(dev.reset_owner(), "RESET_OWNER")?;
    expect_errno(
        dev.get_vring_base(0),
        libc::EPERM,
        "GET_VRING_BASE after reset",
    )?;
    ctx(dev.set_owner(), "SET_OWNER after reset")?;
    let base = ctx(dev.get_vring_base(0), "GET_VRING_BASE")?;
    ensure(base == 0, || format!("RESET_OWNER kept vring base {base}"))
}

fn forked_child_is_not_the_owner() -> CaseResult {
    let dev = owned()?;
    // SAFETY: the selftest is single-threaded here; the child only makes
    // ioctls and exits with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err("fork failed".into());
    }
    if pid == 0 {
        let ok = matches!(dev.set_vring_num(0, 256), Err(e) if e.raw_os_error() == Some(libc::EPERM))
            && matches!(dev.set_owner(), Err(e) if e.raw_os_error() == Some(libc::EBUSY))
            && matches!(dev.set_backend(-1), Err(e) if e.raw_os_error() == Some(libc::EPERM));
        // SAFETY: _exit is always safe to call.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: `status` is valid for writes.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    ensure(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        || "the forked child could configure the parent's device".into(),
    )?;
    ctx(dev.set_vring_num(0, 256), "owner still works")
}

fn region(gpa: u64, size: u64, ua: u64) -> MemRegion {
    MemRegion {
        guest_phys_addr: gpa,
        size,
        userspace_addr: ua,
    }
}

fn mem_table_validation() -> CaseResult {
    let dev = owned()?;
    ctx(dev.set_mem_table(&[]), "empty table")?;
    let good = [
        region(0, 0x10_0000, 0x7f00_0000_0000),
        region(0x10_0000, 0x1000, 0x7f10_0000_0000),
    ];
    ctx(dev.set_mem_table(&good), "good table")?;
    let many: Vec<_> = (0..65u64)
        .map(|i| region(i << 20, 1 << 20, 0x7f00_0000_0000 + (i << 20)))
        .collect();
    expect_errno(dev.set_mem_table(&many), libc::E2BIG, "65 regions")?;
    ctx(dev.set_mem_table(&many[..64]), "64 regions")?;
    expect_errno(
        dev.set_mem_table_raw(&good, 1, 0),
        libc::EOPNOTSUPP,
        "header padding",
    )?;
    expect_errno(
        dev.set_mem_table_raw(&good, 0, 1),
        libc::EOPNOTSUPP,
        "region flags",
    )?;
    expect_errno(
        dev.set_mem_table(&[region(0, 0, 0x1000)]),
        libc::EINVAL,
        "zero-sized region",
    )?;
    expect_errno(
        dev.set_mem_table(&[region(0, 0x2000, 0x1000), region(0x1000, 0x1000, 0x10_0000)]),
        libc::EINVAL,
        "overlapping regions",
    )?;
    expect_errno(
        dev.set_mem_table(&[region(u64::MAX - 0xfff, 0x2000, 0)]),
        libc::EINVAL,
        "wrapping guest range",
    )?;
    expect_errno(
        dev.set_mem_table(&[region(0, 0x2000, u64::MAX - 0xfff)]),
        libc::EINVAL,
        "wrapping user range",
    )?;
    expect_errno(
        // SAFETY: NULL is never accessed.
        unsafe { dev.ioctl_ptr(uapi::VHOST_SET_MEM_TABLE, std::ptr::null_mut()) },
        libc::EFAULT,
        "NULL table",
    )
}

fn mem_table_unreadable_regions_fault() -> CaseResult {
    let dev = owned()?;
    let page = 4096usize;
    // SAFETY: an anonymous private mapping of two pages, unmapped below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            2 * page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err("mmap failed".into());
    }
    // SAFETY: `p` is a two-page mapping; the second page becomes
    // inaccessible and the header is written inside the first. The ioctl
    // only reads from `hdr` (and faults on the second page).
    let r = unsafe {
        libc::mprotect(p.cast::<u8>().add(page).cast(), page, libc::PROT_NONE);
        let hdr = p.cast::<u8>().add(page - 8).cast::<u32>();
        hdr.write(2);
        hdr.add(1).write(0);
        dev.ioctl_ptr(uapi::VHOST_SET_MEM_TABLE, hdr.cast())
    };
    // SAFETY: unmapping what was mapped above.
    unsafe { libc::munmap(p, 2 * page) };
    expect_errno(r, libc::EFAULT, "regions in an unreadable page")
}

fn vring_config_validation() -> CaseResult {
    let dev = owned()?;
    let nb = libc::ENOBUFS;
    let last = uapi::VHOST_BLK_MAX_QUEUES - 1;
    let bad = uapi::VHOST_BLK_MAX_QUEUES;
    ctx(dev.set_vring_num(last, 256), "last queue")?;
    expect_errno(dev.set_vring_num(bad, 256), nb, "SET_VRING_NUM bad index")?;
    expect_errno(
        dev.set_vring_num(u32::MAX, 256),
        nb,
        "SET_VRING_NUM index ~0",
    )?;
    expect_errno(
        dev.set_vring_addr(bad, &GOOD_ADDRS),
        nb,
        "SET_VRING_ADDR bad index",
    )?;
    expect_errno(dev.set_vring_base(bad, 0), nb, "SET_VRING_BASE bad index")?;
    expect_errno(dev.get_vring_base(bad), nb, "GET_VRING_BASE bad index")?;
    expect_errno(dev.set_vring_kick(bad, -1), nb, "SET_VRING_KICK bad index")?;
    expect_errno(dev.set_vring_call(bad, -1), nb, "SET_VRING_CALL bad index")?;
    expect_errno(dev.set_vring_err(bad, -1), nb, "SET_VRING_ERR bad index")?;
    for num in [0u32, 3, 100, 65536, 1 << 31, u32::MAX] {
        expect_errno(
            dev.set_vring_num(0, num),
            libc::EINVAL,
            &format!("num {num}"),
        )?;
    }
    for num in [1u32, 256, 32768] {
        ctx(dev.set_vring_num(0, num), format!("num {num}"))?;
    }
    ctx(dev.set_vring_addr(0, &GOOD_ADDRS), "good addresses")?;
    for (what, a) in [
        (
            "desc",
            VringAddrs {
                desc: GOOD_ADDRS.desc + 8,
                ..GOOD_ADDRS
            },
        ),
        (
            "avail",
            VringAddrs {
                avail: GOOD_ADDRS.avail + 1,
                ..GOOD_ADDRS
            },
        ),
        (
            "used",
            VringAddrs {
                used: GOOD_ADDRS.used + 2,
                ..GOOD_ADDRS
            },
        ),
        (
            "wrapping used",
            VringAddrs {
                used: u64::MAX - 3,
                ..GOOD_ADDRS
            },
        ),
    ] {
        expect_errno(
            dev.set_vring_addr(0, &a),
            libc::EINVAL,
            &format!("misaligned/bad {what}"),
        )?;
    }
    expect_errno(
        dev.set_vring_addr_flags(0, &GOOD_ADDRS, 1 << uapi::VHOST_VRING_F_LOG),
        libc::EOPNOTSUPP,
        "VHOST_VRING_F_LOG",
    )?;
    expect_errno(
        dev.set_vring_base(0, 0x1_0000),
        libc::EINVAL,
        "base 0x10000",
    )?;
    ctx(dev.set_vring_base(0, 0xffff), "base 0xffff")?;
    let got = ctx(dev.get_vring_base(0), "GET_VRING_BASE")?;
    ensure(got == 0xffff, || {
        format!("GET_VRING_BASE {got:#x}, set 0xffff")
    })?;
    expect_errno(
        // SAFETY: NULL is never accessed.
        unsafe { dev.ioctl_ptr(uapi::VHOST_GET_VRING_BASE, std::ptr::null_mut()) },
        libc::EFAULT,
        "GET_VRING_BASE NULL",
    )
}

fn eventfd() -> Result<File, String> {
    // SAFETY: eventfd has no pointer arguments.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err("eventfd failed".into());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

fn vring_eventfds_validation() -> CaseResult {
    let dev = owned()?;
    let devnull = ctx(File::open("/dev/null"), "/dev/null")?;
    let efd = eventfd()?;
    type Setter = fn(&VhostBlk, u32, i32) -> std::io::Result<()>;
    let setters: [(&str, Setter); 3] = [
        ("KICK", VhostBlk::set_vring_kick),
        ("CALL", VhostBlk::set_vring_call),
        ("ERR", VhostBlk::set_vring_err),
    ];
    for (name, set) in setters {
        expect_errno(
            set(&dev, 0, 9999),
            libc::EBADF,
            &format!("{name} closed fd"),
        )?;
        expect_errno(set(&dev, 0, -2), libc::EBADF, &format!("{name} fd -2"))?;
        expect_errno(
            set(&dev, 0, devnull.as_raw_fd()),
            libc::EINVAL,
            &format!("{name} not an eventfd"),
        )?;
        ctx(set(&dev, 0, efd.as_raw_fd()), format!("{name} eventfd"))?;
        ctx(
            set(&dev, 0, efd.as_raw_fd()),
            format!("{name} eventfd again"),
        )?;
        ctx(set(&dev, 0, -1), format!("{name} detach"))?;
        ctx(
            set(&dev, 1, efd.as_raw_fd()),
            format!("{name} eventfd kept until close"),
        )?;
    }
    Ok(())
}

fn backend_validation() -> CaseResult {
    let dev = owned()?;
    let devnull = ctx(File::open("/dev/null"), "/dev/null")?;
    let efd = eventfd()?;
    let regular = ctx(File::open("/proc/self/status"), "regular file")?;
    expect_errno(dev.set_backend(9999), libc::EBADF, "closed fd")?;
    expect_errno(dev.set_backend(-2), libc::EBADF, "fd -2")?;
    expect_errno(
        dev.set_backend(devnull.as_raw_fd()),
        libc::ENOTBLK,
        "/dev/null",
    )?;
    expect_errno(
        dev.set_backend(efd.as_raw_fd()),
        libc::ENOTBLK,
        "an eventfd",
    )?;
    expect_errno(
        dev.set_backend(regular.as_raw_fd()),
        libc::ENOTBLK,
        "a regular file",
    )?;
    let nb = ctx(
        NullBlk::create("vbtest0", 16, &[("memory_backed", "1")]),
        "null_blk",
    )?;
    let rw = ctx(
        OpenOptions::new().read(true).write(true).open(nb.path()),
        "open nullb rw",
    )?;
    let ro = ctx(File::open(nb.path()), "open nullb ro")?;
    for flags in [2, 1 << 31, u32::MAX] {
        expect_errno(
            dev.set_backend_flags(rw.as_raw_fd(), flags),
            libc::EINVAL,
            &format!("unknown flags {flags:#x}"),
        )?;
    }
    ctx(dev.set_backend(rw.as_raw_fd()), "attach rw")?;
    // An attached backend is replaced only through a detach, which stops
    // and drains the queues first.
    expect_errno(
        dev.set_backend(ro.as_raw_fd()),
        libc::EBUSY,
        "attach while attached",
    )?;
    ctx(dev.set_backend(-1), "detach")?;
    ctx(dev.set_backend(ro.as_raw_fd()), "attach ro")?;
    ctx(dev.set_backend(-1), "detach")?;
    ctx(dev.set_backend(-1), "detach twice")?;
    ctx(dev.set_serial(b"vhost-blk-serial-012"), "set serial")?;
    expect_errno(
        // SAFETY: NULL is never accessed.
        unsafe { dev.ioctl_ptr(uapi::VHOST_BLK_SET_BACKEND, std::ptr::null_mut()) },
        libc::EFAULT,
        "SET_BACKEND NULL",
    )?;
    expect_errno(
        // SAFETY: NULL is never accessed.
        unsafe { dev.ioctl_ptr(uapi::VHOST_BLK_SET_SERIAL, std::ptr::null_mut()) },
        libc::EFAULT,
        "SET_SERIAL NULL",
    )
}

/// A zoned disk is refused at attach: served as a plain disk, every write
/// off a zone's write pointer would fail in the guest.
fn zoned_backend_refused() -> CaseResult {
    let dev = owned()?;
    // (A zoned null_blk needs CONFIG_BLK_DEV_ZONED.)
    let (_zoned, f) = nullb_rw(
        "vbzoned0",
        64,
        &[("memory_backed", "1"), ("zoned", "1"), ("zone_size", "4")],
    )?;
    expect_errno(
        dev.set_backend(f.as_raw_fd()),
        libc::EOPNOTSUPP,
        "zoned disk",
    )?;
    expect_errno(
        dev.set_backend_flags(f.as_raw_fd(), uapi::VHOST_BLK_BACKEND_F_READ_ONLY),
        libc::EOPNOTSUPP,
        "zoned disk, read-only",
    )?;
    // Nothing stays attached: the config has no disk, and a plain disk
    // attaches.
    expect_errno(dev.get_config(), libc::ENODEV, "GET_CONFIG after refusal")?;
    let (_plain, rw) = nullb_rw("vbzoned1", 16, &[("memory_backed", "1")])?;
    ctx(dev.set_backend(rw.as_raw_fd()), "attach a plain disk after")?;
    ctx(dev.set_backend(-1), "detach")
}

fn queue_geometry_locked_while_backend_attached() -> CaseResult {
    let dev = owned()?;
    let nb = ctx(
        NullBlk::create("vbtest1", 16, &[("memory_backed", "1")]),
        "null_blk",
    )?;
    let f = ctx(
        OpenOptions::new().read(true).write(true).open(nb.path()),
        "open nullb",
    )?;
    ctx(dev.set_vring_num(0, 64), "num before attach")?;
    ctx(dev.set_backend(f.as_raw_fd()), "attach")?;
    expect_errno(
        dev.set_vring_num(0, 128),
        libc::EBUSY,
        "SET_VRING_NUM while attached",
    )?;
    expect_errno(
        dev.set_vring_addr(0, &GOOD_ADDRS),
        libc::EBUSY,
        "SET_VRING_ADDR while attached",
    )?;
    expect_errno(
        dev.set_vring_base(0, 1),
        libc::EBUSY,
        "SET_VRING_BASE while attached",
    )?;
    expect_errno(
        dev.set_features(0),
        libc::EBUSY,
        "SET_FEATURES while attached",
    )?;
    ctx(dev.set_backend(-1), "detach")?;
    ctx(dev.set_vring_num(0, 128), "SET_VRING_NUM after detach")
}

fn wrong_argument_size_is_enotty() -> CaseResult {
    let dev = owned()?;
    let mut buf = [0u8; 64];
    for (cmd, name) in [
        (
            uapi::ioc(uapi::IOC_WRITE, uapi::VHOST_VIRTIO, 0x10, 16),
            "SET_VRING_NUM size 16",
        ),
        (
            uapi::ioc(uapi::IOC_WRITE, uapi::VHOST_VIRTIO, 0x11, 32),
            "SET_VRING_ADDR size 32",
        ),
        (
            uapi::ioc(uapi::IOC_WRITE, uapi::VHOST_VIRTIO, 0x50, 4),
            "SET_BACKEND size 4",
        ),
        (
            uapi::ioc(uapi::IOC_READ, uapi::VHOST_VIRTIO, 0x00, 4),
            "GET_FEATURES size 4",
        ),
    ] {
        expect_errno(
            // SAFETY: a 64-byte buffer this function owns.
            unsafe { dev.ioctl_ptr(cmd, buf.as_mut_ptr().cast()) },
            libc::ENOTTY,
            name,
        )?;
    }
    Ok(())
}

fn close_with_everything_attached() -> CaseResult {
    let nb = ctx(
        NullBlk::create("vbtest2", 16, &[("memory_backed", "1")]),
        "null_blk",
    )?;
    for _ in 0..50 {
        let dev = owned()?;
        let f = ctx(
            OpenOptions::new().read(true).write(true).open(nb.path()),
            "open nullb",
        )?;
        let efd = eventfd()?;
        ctx(
            dev.set_mem_table(&[region(0, 1 << 20, 0x7f00_0000_0000)]),
            "mem table",
        )?;
        for q in 0..uapi::VHOST_BLK_MAX_QUEUES {
            ctx(dev.set_vring_num(q, 256), "num")?;
            ctx(dev.set_vring_kick(q, efd.as_raw_fd()), "kick")?;
            ctx(dev.set_vring_call(q, efd.as_raw_fd()), "call")?;
            ctx(dev.set_vring_err(q, efd.as_raw_fd()), "err")?;
        }
        ctx(dev.set_backend(f.as_raw_fd()), "attach")?;
        // Files closed while the device still holds references to them.
        drop(f);
        drop(efd);
        drop(dev);
    }
    Ok(())
}

/// SET_OWNER (which starts the device's slow-path thread, a vhost_task
/// of the owner; shared workers start only with a queue) followed at once
/// by close or RESET_OWNER, many times: a slow path stopped before it
/// ever ran must not leak the device (kmemleak judges this on the debug
/// kernel).
fn owner_churn() -> CaseResult {
    for i in 0..300 {
        let dev = owned()?;
        if i % 2 == 0 {
            ctx(dev.reset_owner(), "RESET_OWNER")?;
            ctx(dev.set_owner(), "SET_OWNER again")?;
        }
    }
    Ok(())
}
