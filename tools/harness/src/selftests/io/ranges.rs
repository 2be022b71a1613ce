// SPDX-License-Identifier: GPL-2.0

//! DISCARD and WRITE_ZEROES: range lists served on null_blk and on a loop
//! device over a sparse file, and malformed range lists refused.

use std::fs::{File, OpenOptions};

use vhost_blk_core::blk::*;

use super::{
    backend, expect_status, fill, first_wrong_sector, range_list, read_back, write_read, MIB,
};
use crate::blk::{pattern, Config, TestDevice};
use crate::driver::Buf;
use crate::nullb::LoopDev;
use crate::testing::{ctx, ensure, CaseResult};

pub(super) fn io_discard_and_write_zeroes() -> CaseResult {
    // null_blk with discard: discarded sectors read back as zeroes.
    let (_nb, f) = backend("vbio11", 16, &[("discard", "1")])?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    // Write-zeroes (null_blk has no offload: written from the zero page),
    // with and without UNMAP, over several ranges.
    for (flags, seed) in [(0u32, 1u64), (VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP, 2)] {
        fill(&mut t, 0, 256, seed)?;
        let list = range_list(&mut t, &[(8, 16, flags), (100, 1, flags), (200, 40, flags)]);
        expect_status(
            t.request(0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &[list], false),
            VIRTIO_BLK_S_OK,
            "write zeroes",
        )?;
        let got = read_back(&mut t, 0, 256)?;
        let zeroed = |s: u64| (8..24).contains(&s) || s == 100 || (200..240).contains(&s);
        if let Some(s) = first_wrong_sector(&got, seed, zeroed) {
            return Err(format!(
                "write zeroes (flags {flags}): sector {s} wrong (zeroed: {})",
                zeroed(s)
            ));
        }
    }
    // The largest write-zeroes range (8 MiB), crossing many bios.
    fill(&mut t, 1024, 16384, 3)?;
    let list = range_list(&mut t, &[(1024, 16384, 0)]);
    expect_status(
        t.request(0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &[list], false),
        VIRTIO_BLK_S_OK,
        "write zeroes 8 MiB",
    )?;
    ensure(
        read_back(&mut t, 1024, 16384)?.iter().all(|b| *b == 0),
        || "8 MiB write zeroes left data".into(),
    )?;
    // Discard, whole null_blk pages (4 KiB): they read back as zeroes.
    fill(&mut t, 0, 64, 4)?;
    let list = range_list(&mut t, &[(8, 8, 0), (32, 16, 0)]);
    expect_status(
        t.request(0, VIRTIO_BLK_T_DISCARD, 0, &[list], false),
        VIRTIO_BLK_S_OK,
        "discard",
    )?;
    let got = read_back(&mut t, 0, 64)?;
    let gone = |s: u64| (8..16).contains(&s) || (32..48).contains(&s);
    if let Some(s) = first_wrong_sector(&got, 4, gone) {
        return Err(format!(
            "discard: sector {s} wrong (discarded: {})",
            gone(s)
        ));
    }
    // A backend without discard answers UNSUPP; write-zeroes still works.
    let (_nb2, f2) = backend("vbio12", 16, &[])?;
    let mut t = ctx(
        TestDevice::new(&f2, Config::default()),
        "device without discard",
    )?;
    let list = range_list(&mut t, &[(0, 8, 0)]);
    expect_status(
        t.request(0, VIRTIO_BLK_T_DISCARD, 0, &[list], false),
        VIRTIO_BLK_S_UNSUPP,
        "discard unsupported",
    )?;
    let list = range_list(&mut t, &[(0, 8, 0)]);
    expect_status(
        t.request(0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &[list], false),
        VIRTIO_BLK_S_OK,
        "write zeroes",
    )?;
    Ok(())
}

pub(super) fn io_bad_discard_and_write_zeroes() -> CaseResult {
    let (_nb, f) = backend("vbio13", 16, &[("discard", "1")])?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    let cap = 16 * MIB / 512;
    let d = VIRTIO_BLK_T_DISCARD;
    let wz = VIRTIO_BLK_T_WRITE_ZEROES;
    let unmap = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
    let many: Vec<(u64, u32, u32)> = (0..33).map(|i| (i * 8, 8, 0)).collect();
    // (what, type, ranges as (sector, sectors, flags), expected status)
    type Case = (&'static str, u32, Vec<(u64, u32, u32)>, u8);
    let cases: Vec<Case> = vec![
        (
            "discard with UNMAP",
            d,
            vec![(0, 8, unmap)],
            VIRTIO_BLK_S_UNSUPP,
        ),
        (
            "discard reserved flag",
            d,
            vec![(0, 8, 4)],
            VIRTIO_BLK_S_UNSUPP,
        ),
        (
            "write zeroes reserved flag",
            wz,
            vec![(0, 8, 2)],
            VIRTIO_BLK_S_UNSUPP,
        ),
        ("33 discard ranges", d, many.clone(), VIRTIO_BLK_S_UNSUPP),
        ("33 write zeroes ranges", wz, many, VIRTIO_BLK_S_UNSUPP),
        (
            "discard past capacity",
            d,
            vec![(cap - 4, 8, 0)],
            VIRTIO_BLK_S_IOERR,
        ),
        (
            "write zeroes past capacity",
            wz,
            vec![(cap, 1, 0)],
            VIRTIO_BLK_S_IOERR,
        ),
        (
            "write zeroes huge sector",
            wz,
            vec![(u64::MAX, 1, 0)],
            VIRTIO_BLK_S_IOERR,
        ),
        (
            "write zeroes range too large",
            wz,
            vec![(0, 16385, 0)],
            VIRTIO_BLK_S_IOERR,
        ),
        (
            "second range bad",
            wz,
            vec![(0, 8, 0), (cap, 8, 0)],
            VIRTIO_BLK_S_IOERR,
        ),
    ];
    for (what, ty, ranges, want) in cases {
        fill(&mut t, 0, 8, 9)?;
        let list = range_list(&mut t, &ranges);
        let len = expect_status(t.request(0, ty, 0, &[list], false), want, what)?;
        ensure(len == 1, || {
            format!("{what}: used length {len}, expected 1")
        })?;
        // A rejected request changes nothing, even its valid ranges.
        let got = read_back(&mut t, 0, 8)?;
        ensure(
            got.iter()
                .enumerate()
                .all(|(i, b)| *b == pattern(9, i as u64)),
            || format!("{what}: data changed by a rejected request"),
        )?;
    }
    // A range list that is not a multiple of 16 bytes.
    let list = range_list(&mut t, &[(0, 8, 0)]);
    let short = Buf::r(list.addr, 12);
    let len = expect_status(
        t.request(0, wz, 0, &[short], false),
        VIRTIO_BLK_S_IOERR,
        "12-byte range list",
    )?;
    ensure(len == 1, || {
        format!("12-byte range list: used length {len}")
    })?;
    // Write zeroes on a read-only backend.
    let ro = ctx(File::open(_nb.path()), "open ro")?;
    let mut t = ctx(TestDevice::new(&ro, Config::default()), "ro device")?;
    let list = range_list(&mut t, &[(0, 8, 0)]);
    let len = expect_status(
        t.request(0, wz, 0, &[list], false),
        VIRTIO_BLK_S_IOERR,
        "write zeroes read-only",
    )?;
    ensure(len == 1, || {
        format!("write zeroes read-only: used length {len}")
    })?;
    Ok(())
}

/// A loop device over a sparse file: data, discard (hole punching) and
/// write-zeroes through the device's offload (UNMAP) and through the zero
/// page (no UNMAP: tmpfs refuses to zero in place), all read back; and an
/// UNMAP write-zeroes after that refusal, when loop no longer offers the
/// offload at all.
pub(super) fn io_loop_backend() -> CaseResult {
    let lo = ctx(
        LoopDev::create(std::path::Path::new("/tmp/vhost-blk-loop.img"), 32),
        "loop device",
    )?;
    let f = ctx(
        OpenOptions::new().read(true).write(true).open(lo.path()),
        "open loop",
    )?;
    // The offload case below is only meaningful if the device has one.
    let name = lo.path().file_name().and_then(|n| n.to_str()).unwrap_or("");
    let wz = std::fs::read_to_string(format!("/sys/block/{name}/queue/write_zeroes_max_bytes"))
        .map_err(|e| format!("write_zeroes_max_bytes: {e}"))?;
    ensure(wz.trim().parse::<u64>().unwrap_or(0) > 0, || {
        format!("{name} offers no write-zeroes offload ({})", wz.trim())
    })?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    for (i, (len, seg)) in [(4096u64, 4096u64), (65536, 8192), (1 << 20, 65536)]
        .into_iter()
        .enumerate()
    {
        write_read(&mut t, 0, 64 * i as u64, len, seg, 0, false, 40 + i as u64)?;
    }
    for (ty, flags, what) in [
        (VIRTIO_BLK_T_DISCARD, 0, "discard"),
        (
            VIRTIO_BLK_T_WRITE_ZEROES,
            VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
            "write zeroes, offloaded",
        ),
        (VIRTIO_BLK_T_WRITE_ZEROES, 0, "write zeroes, zero page"),
        (
            VIRTIO_BLK_T_WRITE_ZEROES,
            VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
            "write zeroes, offload withdrawn",
        ),
    ] {
        fill(&mut t, 0, 64, 50)?;
        let list = range_list(&mut t, &[(8, 16, flags)]);
        expect_status(t.request(0, ty, 0, &[list], false), VIRTIO_BLK_S_OK, what)?;
        let got = read_back(&mut t, 0, 64)?;
        let gone = |s: u64| (8..24).contains(&s);
        if let Some(s) = first_wrong_sector(&got, 50, gone) {
            return Err(format!("{what}: sector {s} wrong (cleared: {})", gone(s)));
        }
    }
    Ok(())
}
