// SPDX-License-Identifier: GPL-2.0

//! A failing backing device: its errors reach the guest as IOERR, and its
//! removal under I/O loses no request.

use std::time::Duration;

use vhost_blk_core::blk::*;

use super::{backend, expect_status, fill, read_back, reads_taken, slow_backend};
use crate::blk::{pattern, Config, TestDevice};
use crate::driver::Buf;
use crate::testing::{ctx, ensure, CaseResult};

/// Errors of the backing device reach the guest as IOERR, only for the
/// requests that hit them, and the device recovers when they stop.
pub(super) fn io_backend_errors_are_ioerr() -> CaseResult {
    let (nb, f) = backend("vbio14", 16, &[])?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    fill(&mut t, 0, 64, 60)?;
    ctx(nb.badblocks("+16-23"), "badblocks")?;
    let a = t.buf(4096, 4096);
    for (what, ty, sector, data) in [
        (
            "read of bad sectors",
            VIRTIO_BLK_T_IN,
            16u64,
            Buf::w(a, 4096),
        ),
        (
            "write to bad sectors",
            VIRTIO_BLK_T_OUT,
            16,
            Buf::r(a, 4096),
        ),
        (
            "read overlapping bad sectors",
            VIRTIO_BLK_T_IN,
            12,
            Buf::w(a, 4096),
        ),
    ] {
        let used = expect_status(
            t.request(0, ty, sector, &[data], false),
            VIRTIO_BLK_S_IOERR,
            what,
        )?;
        ensure(used == 1, || {
            format!("{what}: used len {used}, expected 1 on error")
        })?;
    }
    // Sectors around them still work.
    let got = read_back(&mut t, 0, 16)?;
    ensure(
        got.iter()
            .enumerate()
            .all(|(i, b)| *b == pattern(60, i as u64)),
        || "good sectors changed".into(),
    )?;
    ctx(nb.badblocks("-16-23"), "clear badblocks")?;
    expect_status(
        t.request(0, VIRTIO_BLK_T_IN, 16, &[Buf::w(a, 4096)], false),
        VIRTIO_BLK_S_OK,
        "after recovery",
    )?;
    Ok(())
}

/// The backing device is removed under the guest (null_blk powered off,
/// which deletes its disk as a hot-unplugged drive's is deleted, though
/// the device still holds it open): the 16 reads in flight complete, each
/// with OK or IOERR, none lost; later reads and writes complete with
/// IOERR; and the device still closes.
pub(super) fn io_backend_removed_under_io() -> CaseResult {
    let (nb, f) = slow_backend("vbgone", 50)?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    let status = reads_taken(&mut t, 16)?;
    ctx(nb.power_off(), "power off the backing null_blk")?;
    let done = t.wait(0, 16, Duration::from_secs(30))?;
    ensure(done.len() == 16, || {
        format!("{} completions for 16 requests", done.len())
    })?;
    let got: Vec<u8> = status.iter().map(|s| t.read_status(*s)).collect();
    ensure(
        got.iter()
            .all(|s| *s == VIRTIO_BLK_S_OK || *s == VIRTIO_BLK_S_IOERR),
        || format!("statuses of the requests in flight: {got:?}"),
    )?;
    let a = t.buf(4096, 4096);
    for (what, ty, data) in [
        ("read after removal", VIRTIO_BLK_T_IN, Buf::w(a, 4096)),
        ("write after removal", VIRTIO_BLK_T_OUT, Buf::r(a, 4096)),
    ] {
        expect_status(
            t.request(0, ty, 8, &[data], false),
            VIRTIO_BLK_S_IOERR,
            what,
        )?;
    }
    let ok = got.iter().filter(|s| **s == VIRTIO_BLK_S_OK).count();
    println!(
        "  in flight at removal: {ok} OK, {} IOERR; afterwards IOERR",
        16 - ok
    );
    drop(t);
    Ok(())
}
