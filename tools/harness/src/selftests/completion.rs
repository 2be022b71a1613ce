// SPDX-License-Identifier: GPL-2.0

//! How a request ends, as the guest sees it: the status byte in the last
//! byte of the last writable buffer, the used length, and the call signal
//! exactly when the driver asked for one (EVENT_IDX, NO_INTERRUPT,
//! NOTIFY_ON_EMPTY), never when it asked not to be told.

use std::time::{Duration, Instant};

use vhost_blk_core::blk::*;
use vhost_blk_core::features::{self, bit};
use vhost_blk_core::memory::UserMemory;

use super::io::backend;
use crate::blk::{pattern, Config, TestDevice, SIGNAL_GRACE};
use crate::driver::Buf;
use crate::testing::{ctx, ensure, CaseResult, Runner};

/// Registers this area's cases.
pub fn run(r: &mut Runner) {
    crate::cases!(
        r,
        completion_status_in_last_writable_byte,
        completion_call_signal_follows_suppression,
    );
}

/// Bytes the guest fills its buffers with before the device writes them.
const UNTOUCHED: u8 = 0x5a;

/// Reads `sectors` at `sector` into one writable buffer of 512 bytes per
/// sector plus one that also holds the status (ANY_LAYOUT). Returns the
/// buffer and the used length.
fn read_merged(t: &mut TestDevice, sector: u64, sectors: u64) -> Result<(Vec<u8>, u32), String> {
    let len = sectors * 512 + 1;
    let h = t.header(VIRTIO_BLK_T_IN, sector);
    let a = t.buf(len, 4096);
    t.mem
        .write(a, &vec![UNTOUCHED; len as usize])
        .map_err(|_| "fill".to_string())?;
    let head = t.submit(0, &[Buf::r(h, 16), Buf::w(a, len as u32)], false);
    let d = t.wait(0, 1, Duration::from_secs(30))?;
    ensure(d[0].id == u32::from(head), || {
        format!("used id {} for head {head}", d[0].id)
    })?;
    let mut got = vec![0u8; len as usize];
    t.mem.read(a, &mut got).map_err(|_| "read".to_string())?;
    Ok((got, d[0].len))
}

/// The status goes to the last byte of the last writable buffer, even when
/// that buffer also holds data: after the data for a read, alone for a
/// rejected one (whose data bytes stay as the guest left them).
fn completion_status_in_last_writable_byte() -> CaseResult {
    let (_nb, f) = backend("vbcs0", 16, &[])?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    let seed = 29;
    let data: Vec<u8> = (0..1024).map(|i| pattern(seed, i)).collect();
    // No byte of the pattern may look like a status the device wrote.
    let a = t.buf(1024, 4096);
    t.mem.write(a, &data).map_err(|_| "data".to_string())?;
    let (s, _) = t.request(0, VIRTIO_BLK_T_OUT, 8, &[Buf::r(a, 1024)], false)?;
    ensure(s == VIRTIO_BLK_S_OK, || format!("write: status {s}"))?;

    for sectors in [1u64, 2] {
        let (got, used) = read_merged(&mut t, 8, sectors)?;
        let n = (sectors * 512) as usize;
        ensure(got[..n] == data[..n], || {
            let at = got.iter().zip(&data).position(|(a, b)| a != b);
            format!("{sectors}-sector read with the status merged: data differs at byte {at:?}")
        })?;
        ensure(got[n] == VIRTIO_BLK_S_OK, || {
            format!("status byte {:#x} at offset {n}, expected OK", got[n])
        })?;
        ensure(used == n as u32 + 1, || {
            format!("used length {used}, expected {}", n + 1)
        })?;
    }

    // Beyond the capacity (16 MiB): rejected, status IOERR in the last
    // byte, the data bytes untouched, used length 1.
    let (got, used) = read_merged(&mut t, 16 * 2048, 1)?;
    ensure(got[512] == VIRTIO_BLK_S_IOERR, || {
        format!("rejected read: status byte {:#x}, expected IOERR", got[512])
    })?;
    ensure(got[..512].iter().all(|&b| b == UNTOUCHED), || {
        "rejected read: the device wrote into the data bytes".into()
    })?;
    ensure(used == 1, || {
        format!("rejected read: used length {used}, expected 1")
    })
}

/// One step of the suppression test: the used index after it, and whether
/// the device must signal, must not, or may.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Signal,
    Silence,
    Either,
}

/// Submits one read on queue 0, waits until it is used (by reading the
/// ring, not by the eventfd), then tells whether the call eventfd fired
/// for it: up to [`SIGNAL_GRACE`] when a signal is due, else a settle time
/// after which a signal would have shown (the device signals in the turn
/// that published the entry).
fn step(t: &mut TestDevice, i: u64, want: Want) -> Result<bool, String> {
    let h = t.header(VIRTIO_BLK_T_IN, i);
    let d = t.buf(512, 512);
    let s = t.status();
    t.submit(0, &[Buf::r(h, 16), Buf::w(d, 512), Buf::w(s, 1)], false);
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.queues[0].ring.pop_used(&t.mem).is_none() {
        ensure(Instant::now() < deadline, || {
            format!("request {i} not used in 30 s")
        })?;
        std::thread::sleep(Duration::from_millis(1));
    }
    let wait = match want {
        Want::Signal => SIGNAL_GRACE,
        Want::Silence | Want::Either => Duration::from_millis(200),
    };
    t.queues[0].call.wait(wait);
    Ok(t.queues[0].call.take() != 0)
}

/// Runs `steps` after `setup` and checks each step's signal.
fn signals(
    name: &str,
    feats: u64,
    setup: impl Fn(&TestDevice),
    steps: &[(Want, Option<u16>)],
) -> CaseResult {
    let (_nb, f) = backend(name, 16, &[])?;
    let cfg = Config {
        features: feats,
        ..Config::default()
    };
    let mut t = ctx(TestDevice::new(&f, cfg), "device")?;
    setup(&t);
    for (i, &(want, used_event)) in steps.iter().enumerate() {
        if let Some(e) = used_event {
            t.queues[0].ring.set_used_event(&t.mem, e);
        }
        let got = step(&mut t, i as u64, want)?;
        ensure(
            want == Want::Either || got == (want == Want::Signal),
            || {
                format!(
                    "{name}: request {i} (used index {} after it): signal {got}, expected {want:?}",
                    i + 1
                )
            },
        )?;
    }
    Ok(())
}

/// The device signals when the driver asked and stays silent when it
/// asked not to be told, for each way a driver can ask.
fn completion_call_signal_follows_suppression() -> CaseResult {
    use Want::*;
    let event_idx = bit(features::VIRTIO_RING_F_EVENT_IDX);
    let on_empty = bit(features::VIRTIO_F_NOTIFY_ON_EMPTY);
    let all = features::SUPPORTED;

    // EVENT_IDX: a signal exactly when the used index passes used_event.
    // The first publication after the ring starts may signal regardless
    // (the device has no earlier signal to compare with).
    signals(
        "vbcs1",
        all & !on_empty,
        |_| {},
        &[
            (Either, Some(3)),
            (Silence, None),
            (Silence, None),
            (Signal, None),
            (Silence, None),
            (Silence, None),
            (Signal, Some(6)),
            (Silence, Some(100)),
        ],
    )?;

    // No EVENT_IDX: VRING_AVAIL_F_NO_INTERRUPT silences, clearing it
    // brings the signals back.
    signals(
        "vbcs2",
        all & !on_empty & !event_idx,
        |t| t.queues[0].ring.set_no_interrupt(&t.mem, true),
        &[(Silence, None), (Silence, None), (Silence, None)],
    )?;
    signals(
        "vbcs3",
        all & !on_empty & !event_idx,
        |t| t.queues[0].ring.set_no_interrupt(&t.mem, false),
        &[(Signal, None), (Signal, None)],
    )?;

    // NOTIFY_ON_EMPTY: a ring left empty signals whatever the driver's
    // suppression says.
    signals(
        "vbcs4",
        all & !event_idx,
        |t| t.queues[0].ring.set_no_interrupt(&t.mem, true),
        &[(Signal, None), (Signal, None)],
    )?;
    signals(
        "vbcs5",
        all,
        |_| {},
        &[(Either, Some(100)), (Signal, None), (Signal, None)],
    )
}
