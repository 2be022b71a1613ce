// SPDX-License-Identifier: GPL-2.0

//! Failing and misbehaving disks under vhost-blk: device-mapper `error`
//! and `flakey` targets, `fail_make_request`, and completions that never
//! come (null_blk timeout injection). Errors must reach the guest as
//! `VIRTIO_BLK_S_IOERR`, other devices must keep working, nothing may
//! hang, and recovery must be clean once the errors stop.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::path::Path;
use std::time::{Duration, Instant};

use vhost_blk_core::blk::*;
use vhost_blk_core::memory::UserMemory;

use crate::blk::{pattern, status_name, Config, TestDevice};
use crate::driver::Buf;
use crate::nullb::{sectors, DmDev, NullBlk};
use crate::selftests::io::backend;
use crate::testing::{ctx, ensure, CaseResult, Rng, Runner};

/// Registers this area's cases.
pub fn run(r: &mut Runner) {
    crate::cases!(
        r,
        failing_dm_error,
        failing_dm_flakey,
        failing_fail_make_request,
        failing_lost_completion_bound,
    );
}

/// One 4 KiB buffer in guest memory for single requests.
struct Rw {
    buf: u64,
}

impl Rw {
    fn new(t: &mut TestDevice) -> Self {
        Self {
            buf: t.buf(4096, 4096),
        }
    }

    /// Writes `pattern(seed, ..)` at `sector`; returns the status.
    fn write(&self, t: &mut TestDevice, sector: u64, seed: u64) -> Result<u8, String> {
        let data: Vec<u8> = (0..4096).map(|i| pattern(seed, i)).collect();
        t.mem.write(self.buf, &data).map_err(|_| "fill")?;
        t.request(
            0,
            VIRTIO_BLK_T_OUT,
            sector,
            &[Buf::r(self.buf, 4096)],
            false,
        )
        .map(|(s, _)| s)
    }

    /// Reads 4 KiB at `sector`; returns the status and, if OK, the data.
    fn read(&self, t: &mut TestDevice, sector: u64) -> Result<(u8, Vec<u8>), String> {
        t.mem.write(self.buf, &[0xa5; 4096]).map_err(|_| "poison")?;
        let (s, _) = t.request(0, VIRTIO_BLK_T_IN, sector, &[Buf::w(self.buf, 4096)], false)?;
        let mut got = vec![0u8; 4096];
        t.mem.read(self.buf, &mut got).map_err(|_| "read")?;
        Ok((s, got))
    }

    /// Reads `sector` and checks it holds `pattern(seed, ..)`.
    fn verify(&self, t: &mut TestDevice, sector: u64, seed: u64) -> CaseResult {
        let (s, got) = self.read(t, sector)?;
        ensure(s == VIRTIO_BLK_S_OK, || {
            format!("read of sector {sector}: {}", status_name(s))
        })?;
        let bad = (0..4096u64).find(|&i| got[i as usize] != pattern(seed, i));
        ensure(bad.is_none(), || {
            format!("sector {sector}: byte {bad:?} differs from seed {seed}")
        })
    }
}

fn expect(s: u8, want: u8, what: &str) -> CaseResult {
    ensure(s == want, || {
        format!("{what}: {}, expected {}", status_name(s), status_name(want))
    })
}

fn open_rw(p: &Path) -> Result<File, String> {
    ctx(
        OpenOptions::new().read(true).write(true).open(p),
        p.display(),
    )
}

/// A second device on its own disk that must keep working throughout.
struct Bystander {
    _nb: NullBlk,
    t: TestDevice,
    rw: Rw,
    n: u64,
}

impl Bystander {
    fn new(name: &str) -> Result<Self, String> {
        let (nb, f) = backend(name, 16, &[])?;
        let mut t = ctx(TestDevice::new(&f, Config::default()), "bystander")?;
        let rw = Rw::new(&mut t);
        Ok(Self {
            _nb: nb,
            t,
            rw,
            n: 0,
        })
    }

    /// One write and its read-back.
    fn check(&mut self) -> CaseResult {
        self.n += 1;
        let sector = (self.n % 512) * 8;
        expect(
            self.rw.write(&mut self.t, sector, self.n)?,
            VIRTIO_BLK_S_OK,
            "bystander write",
        )?;
        self.rw.verify(&mut self.t, sector, self.n)
    }
}

fn failing_dm_error() -> CaseResult {
    let (_nb, _f) = backend("vbferr", 16, &[])?;
    let disk = "/dev/vbferr";
    let size = ctx(sectors(Path::new(disk)), "size")?;
    // Sectors 2048-4095 fail; the rest maps straight through.
    let broken = format!(
        "0 2048 linear {disk} 0\n2048 2048 error\n4096 {} linear {disk} 4096",
        size - 4096
    );
    let dm = ctx(DmDev::create("vbferr-dm", &broken), "dm error")?;
    let f = open_rw(dm.path())?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    let rw = Rw::new(&mut t);
    let mut by = Bystander::new("vbferr2")?;
    let mut errors = 0;
    for i in 0..16u64 {
        let good = i * 8;
        let bad = 2048 + i * 8;
        let after = 4096 + i * 8;
        expect(
            rw.write(&mut t, good, i)?,
            VIRTIO_BLK_S_OK,
            "write before the error range",
        )?;
        expect(
            rw.write(&mut t, after, i)?,
            VIRTIO_BLK_S_OK,
            "write after the error range",
        )?;
        expect(
            rw.write(&mut t, bad, i)?,
            VIRTIO_BLK_S_IOERR,
            "write into dm-error",
        )?;
        expect(
            rw.read(&mut t, bad)?.0,
            VIRTIO_BLK_S_IOERR,
            "read from dm-error",
        )?;
        // Crossing into the error range fails the whole request.
        expect(
            rw.read(&mut t, 2044)?.0,
            VIRTIO_BLK_S_IOERR,
            "read crossing into dm-error",
        )?;
        errors += 3;
        rw.verify(&mut t, good, i)?;
        rw.verify(&mut t, after, i)?;
        by.check()?;
    }
    // Recovery: the same device, now mapped through everywhere.
    ctx(dm.reload(&format!("0 {size} linear {disk} 0")), "dm reload")?;
    for i in 0..16u64 {
        let sector = 2048 + i * 8;
        expect(
            rw.write(&mut t, sector, 100 + i)?,
            VIRTIO_BLK_S_OK,
            "write after recovery",
        )?;
        rw.verify(&mut t, sector, 100 + i)?;
        rw.verify(&mut t, i * 8, i)?;
    }
    drop(t);
    drop(f);
    ctx(dm.remove(), "dm remove")?;
    println!(
        "  {errors} errors as IOERR, 64 good sectors verified, recovered; bystander did {} checks",
        by.n
    );
    Ok(())
}

fn failing_dm_flakey() -> CaseResult {
    let (_nb, _f) = backend("vbfflk", 16, &[])?;
    let disk = "/dev/vbfflk";
    let size = ctx(sectors(Path::new(disk)), "size")?;
    // Up 1 s, then every I/O fails for 1 s, and again.
    let dm = ctx(
        DmDev::create("vbfflk-dm", &format!("0 {size} flakey {disk} 0 1 1")),
        "dm flakey",
    )?;
    let f = open_rw(dm.path())?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    let rw = Rw::new(&mut t);
    let mut by = Bystander::new("vbfflk2")?;
    let mut rng = Rng::new(0xf1a6);
    // sector -> seed of the last write that succeeded with no failed
    // write after it.
    let mut known: HashMap<u64, u64> = HashMap::new();
    let (mut ok, mut failed) = (0u64, 0u64);
    let end = Instant::now() + Duration::from_secs(5);
    let mut i = 0u64;
    while Instant::now() < end {
        i += 1;
        let sector = rng.below(256) * 8;
        let started = Instant::now();
        let s = if rng.below(2) == 0 {
            let s = rw.write(&mut t, sector, i)?;
            if s == VIRTIO_BLK_S_OK {
                known.insert(sector, i);
            } else {
                known.remove(&sector);
            }
            s
        } else {
            rw.read(&mut t, sector)?.0
        };
        ensure(started.elapsed() < Duration::from_secs(5), || {
            format!("a request took {:?}", started.elapsed())
        })?;
        match s {
            VIRTIO_BLK_S_OK => ok += 1,
            VIRTIO_BLK_S_IOERR => failed += 1,
            other => return Err(format!("request {i}: status {}", status_name(other))),
        }
        if i.is_multiple_of(8) {
            by.check()?;
        }
    }
    ensure(ok > 0 && failed > 0, || {
        format!("flakey gave {ok} OK and {failed} IOERR: both periods must show")
    })?;
    ctx(dm.reload(&format!("0 {size} linear {disk} 0")), "dm reload")?;
    for (&sector, &seed) in &known {
        rw.verify(&mut t, sector, seed)?;
    }
    drop(t);
    drop(f);
    ctx(dm.remove(), "dm remove")?;
    println!(
        "  {i} requests in 5 s: {ok} OK, {failed} IOERR; {} sectors verified after recovery",
        known.len()
    );
    Ok(())
}

const FAIL_MAKE_REQUEST: &str = "/sys/kernel/debug/fail_make_request";

fn fault_attr(name: &str, value: &str) -> CaseResult {
    ctx(
        fs::write(format!("{FAIL_MAKE_REQUEST}/{name}"), value),
        format!("fail_make_request/{name}={value}"),
    )
}

fn failing_fail_make_request() -> CaseResult {
    let (_nb, f) = backend("vbffmr", 16, &[])?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    let rw = Rw::new(&mut t);
    let mut by = Bystander::new("vbffmr2")?;
    for i in 0..64u64 {
        expect(
            rw.write(&mut t, i * 8, i)?,
            VIRTIO_BLK_S_OK,
            "write before faults",
        )?;
    }
    // Every other bio to this disk fails; quietly (no stack dumps).
    fault_attr("verbose", "0")?;
    fault_attr("probability", "50")?;
    fault_attr("interval", "1")?;
    fault_attr("times", "-1")?;
    let make_it_fail = "/sys/block/vbffmr/make-it-fail";
    let result = (|| -> CaseResult {
        ctx(fs::write(make_it_fail, "1"), make_it_fail)?;
        let (mut ok, mut failed) = (0, 0);
        for i in 0..200u64 {
            let sector = (i % 64) * 8;
            let s = rw.read(&mut t, sector)?;
            match s.0 {
                VIRTIO_BLK_S_OK => {
                    ok += 1;
                    let bad = (0..4096u64).find(|&k| s.1[k as usize] != pattern(i % 64, k));
                    ensure(bad.is_none(), || format!("sector {sector} corrupted"))?;
                }
                VIRTIO_BLK_S_IOERR => failed += 1,
                other => return Err(format!("status {}", status_name(other))),
            }
            if i % 10 == 0 {
                by.check()?;
            }
        }
        ensure(ok > 20 && failed > 20, || {
            format!("with 50% injected failures: {ok} OK, {failed} IOERR")
        })?;
        println!("  200 reads under 50% injected failures: {ok} OK, {failed} IOERR");
        Ok(())
    })();
    let _ = fs::write(make_it_fail, "0");
    let _ = fault_attr("probability", "0");
    result?;
    for i in 0..64u64 {
        rw.verify(&mut t, i * 8, i)?;
    }
    println!(
        "  64 sectors verified after the faults stopped; bystander did {} checks",
        by.n
    );
    Ok(())
}

fn failing_lost_completion_bound() -> CaseResult {
    let (_nb, f) = backend("vbflost", 16, &[])?;
    let fault = Path::new("/sys/kernel/config/nullb/vbflost/timeout_inject");
    let timeout_ms = 2000;
    ctx(
        fs::write(
            "/sys/block/vbflost/queue/io_timeout",
            timeout_ms.to_string(),
        ),
        "io_timeout",
    )?;
    let inject = |times: u32| -> CaseResult {
        for (k, v) in [
            ("verbose", "0".to_string()),
            ("probability", "100".to_string()),
            ("interval", "1".to_string()),
            ("times", times.to_string()),
        ] {
            ctx(fs::write(fault.join(k), &v), format!("timeout_inject/{k}"))?;
        }
        Ok(())
    };
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    let rw = Rw::new(&mut t);
    // A request whose completion is lost comes back when the block
    // layer's timeout fires, as an error.
    inject(1)?;
    let start = Instant::now();
    let s = rw.write(&mut t, 0, 1)?;
    let waited = start.elapsed();
    expect(s, VIRTIO_BLK_S_IOERR, "request whose completion was lost")?;
    ensure(waited >= Duration::from_millis(timeout_ms / 2), || {
        format!("the lost request completed after {waited:?}, before the timeout")
    })?;
    expect(rw.write(&mut t, 0, 2)?, VIRTIO_BLK_S_OK, "next request")?;
    rw.verify(&mut t, 0, 2)?;
    // GET_VRING_BASE with a lost request in flight: it waits for the
    // block layer's timeout, which answers the request IOERR, and returns
    // with the request used.
    inject(1)?;
    let h = t.header(VIRTIO_BLK_T_IN, 8);
    let st = t.status();
    let a = t.buf(4096, 4096);
    t.submit(0, &[Buf::r(h, 16), Buf::w(a, 4096), Buf::w(st, 1)], false);
    t.wait_consumed(0, 4, Duration::from_secs(10))?;
    let start = Instant::now();
    ctx(t.dev.get_vring_base(0), "GET_VRING_BASE")?;
    let drained = start.elapsed();
    ensure(
        drained >= Duration::from_millis(timeout_ms / 2)
            && drained < Duration::from_millis(timeout_ms * 5),
        || {
            format!("GET_VRING_BASE with a lost request took {drained:?}, io_timeout is {timeout_ms} ms")
        },
    )?;
    let used = t.queues[0].ring.pop_used(&t.mem);
    ensure(used.is_some(), || {
        "GET_VRING_BASE returned before the lost request was used".into()
    })?;
    expect(
        t.read_status(st),
        VIRTIO_BLK_S_IOERR,
        "lost request drained by GET_VRING_BASE",
    )?;
    drop(t);
    // The disk and the module are fine afterwards.
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device again")?;
    let rw = Rw::new(&mut t);
    expect(rw.write(&mut t, 16, 3)?, VIRTIO_BLK_S_OK, "after close")?;
    rw.verify(&mut t, 16, 3)?;
    println!(
        "  io_timeout {timeout_ms} ms: lost request answered IOERR after {waited:?}; GET_VRING_BASE with one in flight took {drained:?}"
    );
    Ok(())
}
