// SPDX-License-Identifier: GPL-2.0

//! The disks operators attach besides null_blk and loop: a linear volume
//! over two disks (what LVM makes of two physical volumes), a thin volume
//! whose discards give space back to its pool, a dm-crypt volume, a
//! namespace over NVMe/TCP from a loopback nvmet target, and a qcow2
//! image over a backing file served by `qemu-nbd`. Each gets the
//! same checks: the config is what the block layer says of the disk,
//! data written through the device is found on the disk (at its start
//! and at its end), FLUSH, WRITE_ZEROES with and without UNMAP read back
//! as zeroes, DISCARD when the disk offers it, and requests at every
//! advertised limit are served. (Scsi_debug with 4 KiB sectors and small
//! limits, and a partition of it, are `config_limits_hold_*`'s.)

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use vhost_blk_core::blk::*;
use vhost_blk_core::uapi::{self, VhostBlkConfig};

use super::config::{checked_config, limits_hold};
use super::io::{
    backend, direct_read, expect_status, fill, first_wrong_sector, open_direct_read, range_list,
    read_back, write_read_check,
};
use crate::blk::{pattern, Config, TestDevice};
use crate::nbd::Nbd;
use crate::nullb::{run_tool, DmDev};
use crate::nvmet::NvmeTcp;
use crate::testing::{ctx, ensure, CaseResult, Runner};

/// Registers this area's cases; `qemu` is the QEMU build directory with
/// `qemu-img` and `qemu-nbd`.
pub fn run(r: &mut Runner, qemu: Option<&Path>) {
    crate::cases!(
        r,
        disks_linear_volume_over_two_disks,
        disks_thin_volume_discard_returns_space,
        disks_dm_crypt,
        disks_nvme_over_tcp,
    );
    r.run("disks_qcow2_over_nbd_with_a_backing_file", || {
        disks_qcow2_over_nbd_with_a_backing_file(qemu)
    });
}

const SECTORS_PER_MIB: u64 = 2048;

/// `dev` opened read-write, and again with O_DIRECT to find what landed.
fn open_disk(dev: &Path) -> Result<(File, File), String> {
    let f = ctx(
        OpenOptions::new().read(true).write(true).open(dev),
        dev.display(),
    )?;
    Ok((f, open_direct_read(dev)?))
}

/// WRITE_ZEROES (with `flags`) of sectors 8..24 of 64 filled ones: the
/// disk has zeroes there and the pattern around them.
fn zeroes_land(t: &mut TestDevice, direct: &File, at: u64, flags: u32, seed: u64) -> CaseResult {
    fill(t, at, 64, seed)?;
    let list = range_list(t, &[(at + 8, 16, flags)]);
    expect_status(
        t.request(0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &[list], false),
        VIRTIO_BLK_S_OK,
        &format!("write zeroes (flags {flags})"),
    )?;
    for (what, got) in [
        ("the device", read_back(t, at, 64)?),
        ("the disk", direct_read(direct, at, 64 * 512)?),
    ] {
        if let Some(s) = first_wrong_sector(&got, seed, |s| (8..24).contains(&s)) {
            return Err(format!(
                "write zeroes (flags {flags}): sector {s} wrong on {what}"
            ));
        }
    }
    Ok(())
}

/// The checks every disk gets (module doc); returns the device, still
/// attached, with the config, and a summary for the log.
fn disk_holds(dev: &Path, seed: u64) -> Result<(TestDevice, VhostBlkConfig, String), String> {
    let (f, direct) = open_disk(dev)?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    let c = checked_config(&t, dev, false)?;
    let end = c.capacity - SECTORS_PER_MIB;
    write_read_check(
        &mut t,
        0,
        8,
        256 << 10,
        65536,
        0,
        false,
        seed,
        Some(&direct),
    )?;
    write_read_check(
        &mut t,
        0,
        end,
        1 << 20,
        65536,
        512,
        true,
        seed + 1,
        Some(&direct),
    )?;
    let flush = c.flags & uapi::VHOST_BLK_CONFIG_F_WRITE_CACHE != 0;
    expect_status(
        t.request(0, VIRTIO_BLK_T_FLUSH, 0, &[], false),
        VIRTIO_BLK_S_OK,
        "flush",
    )?;
    zeroes_land(&mut t, &direct, 4096, 0, seed + 2)?;
    zeroes_land(
        &mut t,
        &direct,
        4096,
        VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
        seed + 3,
    )?;
    let discard = c.max_discard_seg != 0;
    if discard {
        let list = range_list(&mut t, &[(8192, 1024, 0)]);
        expect_status(
            t.request(0, VIRTIO_BLK_T_DISCARD, 0, &[list], false),
            VIRTIO_BLK_S_OK,
            "discard",
        )?;
    }
    let limits = limits_hold(&mut t, &c)?;
    let summary = format!(
        "{} sectors, data at both ends, flush ({}), write zeroes{}, {limits}",
        c.capacity,
        if flush { "write cache" } else { "no cache" },
        if discard { ", discard" } else { "" },
    );
    Ok((t, c, summary))
}

/// A linear volume made of the whole of two disks, as LVM maps one
/// logical volume over two physical volumes: requests that cross from
/// one to the other are split by device-mapper.
fn disks_linear_volume_over_two_disks() -> CaseResult {
    let (a, _fa) = backend("vbdisk0", 32, &[("discard", "1")])?;
    let (b, _fb) = backend("vbdisk1", 32, &[("discard", "1")])?;
    let half = 32 * SECTORS_PER_MIB;
    let table = format!(
        "0 {half} linear {} 0\n{half} {half} linear {} 0",
        a.path().display(),
        b.path().display()
    );
    let lv = ctx(DmDev::create("vbdisk-linear", &table), "dm-linear")?;
    let (mut t, _, summary) = disk_holds(lv.path(), 60)?;
    // Across the seam: the end of the first disk and the start of the second.
    let direct = open_direct_read(lv.path())?;
    write_read_check(
        &mut t,
        0,
        half - 64,
        64 << 10,
        8192,
        0,
        false,
        66,
        Some(&direct),
    )?;
    let second = open_direct_read(b.path())?;
    let got = direct_read(&second, 0, 64 * 512)?;
    let ok = got
        .iter()
        .enumerate()
        .all(|(i, v)| *v == pattern(66, 32768 + i as u64));
    ensure(ok, || {
        "the second disk lacks the half written across the seam".into()
    })?;
    println!("  linear over two disks: {summary}, across the seam");
    Ok(())
}

/// Data blocks a thin pool has mapped (`dmsetup status`: "... used/total
/// data blocks ...", the sixth field of the line).
fn pool_used(pool: &DmDev) -> Result<u64, String> {
    let status = ctx(pool.status(), "thin-pool status")?;
    status
        .split_whitespace()
        .nth(5)
        .and_then(|f| f.split('/').next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("thin-pool status {status:?}"))
}

/// A thin volume of a pool with 64 KiB blocks: what the guest writes
/// takes blocks from the pool, and its DISCARD gives them back.
fn disks_thin_volume_discard_returns_space() -> CaseResult {
    let (meta, _fm) = backend("vbthinmeta", 16, &[])?;
    let (data, _fd) = backend("vbthindata", 64, &[("discard", "1")])?;
    let pool_table = format!(
        "0 {} thin-pool {} {} 128 0",
        64 * SECTORS_PER_MIB,
        meta.path().display(),
        data.path().display()
    );
    let pool = ctx(DmDev::create("vbdisk-pool", &pool_table), "thin-pool")?;
    ctx(pool.message("create_thin 0"), "create_thin")?;
    let thin_table = format!(
        "0 {} thin {} 0",
        128 * SECTORS_PER_MIB,
        pool.path().display()
    );
    let thin = ctx(DmDev::create("vbdisk-thin", &thin_table), "thin")?;
    {
        let (mut t, c, summary) = disk_holds(thin.path(), 70)?;
        ensure(c.max_discard_seg != 0, || {
            "the thin volume offers no discard".into()
        })?;
        // Discard all of it; then 1 MiB written takes 16 blocks, and its
        // discard gives them back.
        let max = u64::from(c.max_discard_sectors);
        let ranges: Vec<(u64, u32, u32)> = (0..c.capacity)
            .step_by(max as usize)
            .map(|s| (s, (c.capacity - s).min(max) as u32, 0))
            .collect();
        for chunk in ranges.chunks(c.max_discard_seg as usize) {
            let list = range_list(&mut t, chunk);
            expect_status(
                t.request(0, VIRTIO_BLK_T_DISCARD, 0, &[list], false),
                VIRTIO_BLK_S_OK,
                "discard of the whole volume",
            )?;
        }
        let empty = pool_used(&pool)?;
        fill(&mut t, 0, SECTORS_PER_MIB, 71)?;
        let used = pool_used(&pool)?;
        ensure(used == empty + 16, || {
            format!("1 MiB written: pool blocks {empty} -> {used}, expected 16 more")
        })?;
        let list = range_list(&mut t, &[(0, SECTORS_PER_MIB as u32, 0)]);
        expect_status(
            t.request(0, VIRTIO_BLK_T_DISCARD, 0, &[list], false),
            VIRTIO_BLK_S_OK,
            "discard of what was written",
        )?;
        let after = pool_used(&pool)?;
        ensure(after == empty, || {
            format!("discard of 1 MiB: pool blocks {used} -> {after}, expected {empty}")
        })?;
        let back = read_back(&mut t, 0, 64)?;
        ensure(back.iter().all(|b| *b == 0), || {
            "a discarded thin block does not read as zeroes".into()
        })?;
        println!("  thin volume: {summary}; 1 MiB took 16 pool blocks, its discard gave them back");
    }
    drop(thin);
    drop(pool);
    Ok(())
}

/// A dm-crypt volume (aes-xts-plain64, discards allowed): the guest's
/// data is read back in clear and lies encrypted on the disk below.
fn disks_dm_crypt() -> CaseResult {
    let (raw, _f) = backend("vbcryptraw", 32, &[("discard", "1")])?;
    let key: String = (0..32).map(|i| format!("{:02x}", i * 7 + 3)).collect();
    let table = format!(
        "0 {} crypt aes-xts-plain64 {key} 0 {} 0 1 allow_discards",
        32 * SECTORS_PER_MIB,
        raw.path().display()
    );
    let crypt = ctx(DmDev::create("vbdisk-crypt", &table), "dm-crypt")?;
    {
        let (mut t, _, summary) = disk_holds(crypt.path(), 80)?;
        fill(&mut t, 0, 64, 81)?;
        let below = open_direct_read(raw.path())?;
        let cipher = direct_read(&below, 0, 64 * 512)?;
        let same = cipher
            .iter()
            .enumerate()
            .filter(|(i, b)| **b == pattern(81, *i as u64))
            .count();
        ensure(same < cipher.len() / 64, || {
            format!(
                "{same} of {} bytes below dm-crypt are the clear text",
                cipher.len()
            )
        })?;
        println!("  dm-crypt: {summary}; the disk below holds cipher text");
    }
    drop(crypt);
    Ok(())
}

/// A namespace over NVMe/TCP, from an nvmet target on 127.0.0.1 that
/// exports a null_blk: remote storage as the host sees it.
fn disks_nvme_over_tcp() -> CaseResult {
    let (nb, _f) = backend("vbnvmet", 64, &[("discard", "1"), ("cache_size", "16")])?;
    let nvme = ctx(NvmeTcp::create(nb.path()), "NVMe/TCP loopback")?;
    {
        let (_t, _, summary) = disk_holds(nvme.path(), 90)?;
        println!("  NVMe/TCP {}: {summary}", nvme.path().display());
    }
    drop(nvme);
    Ok(())
}

/// Sectors of a qcow2 image's backing file that the overlay must show.
const BACKING_AT: u64 = 16384;

/// A qcow2 image whose backing file (qcow2 too) holds 1 MiB at sector
/// 16384, served by `qemu-nbd`: the device reads the backing data through
/// the overlay, the usual checks pass, and the backing file is unchanged.
fn disks_qcow2_over_nbd_with_a_backing_file(qemu: Option<&Path>) -> CaseResult {
    let qemu = qemu.ok_or("no --qemu: qemu-img and qemu-nbd are needed")?;
    let (img, qemu_nbd) = (qemu.join("qemu-img"), qemu.join("qemu-nbd"));
    let dir = Path::new("/tmp/vhost-blk-qcow2");
    let _ = fs::remove_dir_all(dir);
    ctx(fs::create_dir_all(dir), dir.display())?;
    let (base, top) = (dir.join("base.qcow2"), dir.join("top.qcow2"));
    let name = |p: &Path| p.to_string_lossy().into_owned();
    ctx(
        run_tool(&img, &["create", "-q", "-f", "qcow2", &name(&base), "64M"]),
        "qemu-img create base",
    )?;
    let data: Vec<u8> = (0..1u64 << 20).map(|i| pattern(100, i)).collect();
    {
        let nbd = ctx(
            Nbd::connect(&qemu_nbd, "nbd0", &base, false),
            "qemu-nbd base",
        )?;
        let mut f = ctx(OpenOptions::new().write(true).open(nbd.path()), "open nbd0")?;
        ctx(
            std::os::unix::fs::FileExt::write_all_at(&f, &data, BACKING_AT * 512),
            "write the backing file",
        )?;
        ctx(f.flush().and_then(|_| f.sync_all()), "sync nbd0")?;
    }
    ctx(
        run_tool(
            &img,
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-b",
                &name(&base),
                "-F",
                "qcow2",
                &name(&top),
            ],
        ),
        "qemu-img create overlay",
    )?;
    let summary = {
        let nbd = ctx(
            Nbd::connect(&qemu_nbd, "nbd0", &top, false),
            "qemu-nbd overlay",
        )?;
        let f = ctx(
            OpenOptions::new().read(true).write(true).open(nbd.path()),
            "open nbd0",
        )?;
        let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
        let got = read_back(&mut t, BACKING_AT, 2048)?;
        ensure(got == data, || {
            "the overlay does not show its backing file's data".into()
        })?;
        drop(t);
        disk_holds(nbd.path(), 101)?.2
    };
    // The backing file kept its data and got none of the overlay's writes.
    let nbd = ctx(
        Nbd::connect(&qemu_nbd, "nbd1", &base, true),
        "qemu-nbd base, read-only",
    )?;
    let direct = open_direct_read(nbd.path())?;
    ensure(direct_read(&direct, BACKING_AT, 1 << 20)? == data, || {
        "the backing file's data changed".into()
    })?;
    ensure(
        direct_read(&direct, 8, 512 * 512)?.iter().all(|b| *b == 0),
        || "the overlay's writes reached the backing file".into(),
    )?;
    drop(nbd);
    let _ = fs::remove_dir_all(dir);
    println!(
        "  qcow2 over a backing file, on NBD: {summary}; backing data seen, backing file unchanged"
    );
    Ok(())
}
