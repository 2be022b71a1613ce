// SPDX-License-Identifier: GPL-2.0

//! The data plane: requests from guest rings to a null_blk backend and
//! back, with data verified, and hostile requests answered with the right
//! status or the err eventfd.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use vhost_blk_core::blk::*;
use vhost_blk_core::features::{self, bit};
use vhost_blk_core::memory::UserMemory;
use vhost_blk_core::ring::{
    Descriptor, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
};

use crate::blk::{pattern, status_name, Config, TestDevice};
use crate::driver::{Buf, DriverRing};
use crate::mem::ProcessMemory;
use crate::nullb::{LoopDev, NullBlk};
use crate::testing::{ctx, ensure, CaseResult, Runner};

/// Registers this area's cases.
pub fn run(r: &mut Runner) {
    r.run("io_write_read_verify", io_write_read_verify);
    r.run("io_ring_features_matrix", io_ring_features_matrix);
    r.run("io_flush_and_get_id", io_flush_and_get_id);
    r.run("io_read_only_backend", io_read_only_backend);
    r.run("io_multiqueue", io_multiqueue);
    r.run("io_ring_wrap_around", io_ring_wrap_around);
    r.run(
        "io_get_vring_base_drains_and_restarts",
        io_get_vring_base_drains_and_restarts,
    );
    r.run("io_bad_requests_get_status", io_bad_requests_get_status);
    r.run("io_broken_rings_signal_err", io_broken_rings_signal_err);
    r.run(
        "io_broken_ring_answers_nothing_more",
        io_broken_ring_answers_nothing_more,
    );
    r.run(
        "io_reposted_head_is_independent",
        io_reposted_head_is_independent,
    );
    r.run(
        "io_teardown_with_requests_in_flight",
        io_teardown_with_requests_in_flight,
    );
    r.run("io_discard_and_write_zeroes", io_discard_and_write_zeroes);
    r.run(
        "io_bad_discard_and_write_zeroes",
        io_bad_discard_and_write_zeroes,
    );
    r.run("io_loop_backend", io_loop_backend);
    r.run("io_backend_errors_are_ioerr", io_backend_errors_are_ioerr);
    r.run("io_backend_removed_under_io", io_backend_removed_under_io);
    r.run("io_split_memory_table", io_split_memory_table);
}

const MIB: u64 = 1 << 20;

/// A memory-backed null_blk device of 512-byte blocks with extra
/// configfs `attrs`, and the device opened read-write.
pub(crate) fn backend(
    name: &str,
    size_mib: u64,
    attrs: &[(&str, &str)],
) -> Result<(NullBlk, File), String> {
    let mut a = vec![("memory_backed", "1"), ("blocksize", "512")];
    a.extend_from_slice(attrs);
    let nb = ctx(
        NullBlk::create(name, size_mib, &a),
        format!("null_blk {name}"),
    )?;
    let f = ctx(
        OpenOptions::new().read(true).write(true).open(nb.path()),
        "open null_blk",
    )?;
    Ok((nb, f))
}

/// Submits `n` reads of 4 KiB to queue 0 of `t`, the i-th at sector
/// 8 * i, and waits until the device has taken them all off the ring.
/// Returns their status bytes' addresses.
fn reads_taken(t: &mut TestDevice, n: u64) -> Result<Vec<u64>, String> {
    let mut statuses = Vec::new();
    for i in 0..n {
        let a = t.buf(4096, 4096);
        let h = t.header(VIRTIO_BLK_T_IN, i * 8);
        let s = t.status();
        t.submit(0, &[Buf::r(h, 16), Buf::w(a, 4096), Buf::w(s, 1)], false);
        statuses.push(s);
    }
    t.wait_consumed(0, n as u16, Duration::from_secs(30))?;
    Ok(statuses)
}

/// A memory-backed null_blk whose every request completes `ms`
/// milliseconds after submission, from a timer, so that requests are
/// surely in flight when a test acts.
pub(crate) fn slow_backend(name: &str, ms: u64) -> Result<(NullBlk, File), String> {
    let nsec = (ms * 1_000_000).to_string();
    backend(name, 16, &[("irqmode", "2"), ("completion_nsec", &nsec)])
}

fn expect_status(got: Result<(u8, u32), String>, want: u8, what: &str) -> Result<u32, String> {
    let (s, len) = got.map_err(|e| format!("{what}: {e}"))?;
    ensure(s == want, || {
        format!(
            "{what}: status {} ({s}), expected {}",
            status_name(s),
            status_name(want)
        )
    })?;
    Ok(len)
}

/// Writes `len` bytes of pattern `seed` at `sector` split into buffers of
/// `seg` bytes at offset `skew` in their pages, reads them back through
/// different buffers and compares.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_read(
    t: &mut TestDevice,
    q: usize,
    sector: u64,
    len: u64,
    seg: u64,
    skew: u64,
    indirect: bool,
    seed: u64,
) -> CaseResult {
    write_read_check(t, q, sector, len, seg, skew, indirect, seed, None)
}

/// [`write_read`], and if `direct` (the backing device opened with
/// O_DIRECT) is given, also checks that the data landed at `sector` of the
/// backing device itself.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_read_check(
    t: &mut TestDevice,
    q: usize,
    sector: u64,
    len: u64,
    seg: u64,
    skew: u64,
    indirect: bool,
    seed: u64,
    direct: Option<&File>,
) -> CaseResult {
    let mut wbufs = Vec::new();
    let mut off = 0;
    while off < len {
        let n = seg.min(len - off);
        let a = t.buf(n + skew, 4096) + skew;
        let data: Vec<u8> = (0..n).map(|i| pattern(seed, off + i)).collect();
        ctx(
            t.mem
                .write(a, &data)
                .map_err(|_| std::io::Error::other("fault")),
            "fill",
        )?;
        wbufs.push(Buf::r(a, n as u32));
        off += n;
    }
    let what = format!(
        "write {len} bytes at {sector} in {seg}-byte segments (skew {skew}, indirect {indirect})"
    );
    let used = expect_status(
        t.request(q, VIRTIO_BLK_T_OUT, sector, &wbufs, indirect),
        VIRTIO_BLK_S_OK,
        &what,
    )?;
    ensure(used == 1, || format!("{what}: used len {used}, expected 1"))?;
    let mut rbufs = Vec::new();
    let mut off = 0;
    while off < len {
        let n = seg.min(len - off);
        let a = t.buf(n + skew, 4096) + skew;
        t.mem
            .write(a, &vec![0xa5; n as usize])
            .map_err(|_| "fill".to_string())?;
        rbufs.push(Buf::w(a, n as u32));
        off += n;
    }
    if let Some(d) = direct {
        let a = t.buf(len, 4096);
        // SAFETY: `a` is `len` bytes of this process's guest memory.
        let n = unsafe {
            libc::pread(
                std::os::fd::AsRawFd::as_raw_fd(d),
                a as *mut libc::c_void,
                len as usize,
                (sector * 512) as i64,
            )
        };
        ensure(n == len as isize, || {
            format!("pread of the backing device: {n}")
        })?;
        let mut got = vec![0u8; len as usize];
        t.mem.read(a, &mut got).map_err(|_| "read".to_string())?;
        if let Some(i) = (0..len).find(|&i| got[i as usize] != pattern(seed, i)) {
            return Err(format!(
                "{what}: backing device byte {i} at sector {sector} differs"
            ));
        }
    }
    let what = format!("read {len} bytes at {sector}");
    let used = expect_status(
        t.request(q, VIRTIO_BLK_T_IN, sector, &rbufs, indirect),
        VIRTIO_BLK_S_OK,
        &what,
    )?;
    ensure(u64::from(used) == len + 1, || {
        format!("{what}: used len {used}, expected {}", len + 1)
    })?;
    let mut off = 0;
    for b in &rbufs {
        let mut got = vec![0u8; b.len as usize];
        t.mem
            .read(b.addr, &mut got)
            .map_err(|_| "read back".to_string())?;
        for (i, g) in got.iter().enumerate() {
            let want = pattern(seed, off + i as u64);
            if *g != want {
                return Err(format!(
                    "{what}: byte {} is {g:#x}, wrote {want:#x}",
                    off + i as u64
                ));
            }
        }
        off += u64::from(b.len);
    }
    Ok(())
}

fn io_write_read_verify() -> CaseResult {
    let (nb, f) = backend("vbio0", 64, &[])?;
    let direct = ctx(
        std::os::unix::fs::OpenOptionsExt::custom_flags(
            OpenOptions::new().read(true),
            libc::O_DIRECT,
        )
        .open(nb.path()),
        "open O_DIRECT",
    )?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    let mut seed = 1;
    let mut bytes = 0;
    for (len, seg, skew) in [
        (512u64, 512u64, 0u64),
        (4096, 4096, 0),
        (4096, 512, 512),
        (8192, 8192, 1024),
        (65536, 4096, 0),
        (65536, 3584, 512),
        (1 << 20, 1 << 20, 0),
        (3 * 4096 + 512, 1536, 2560),
        (2 * MIB, 65536, 512),
    ] {
        for sector in [0u64, 7, 64 * MIB / 512 - len / 512] {
            write_read_check(
                &mut t,
                0,
                sector,
                len,
                seg,
                skew,
                false,
                seed,
                Some(&direct),
            )?;
            seed += 1;
            bytes += len;
        }
    }
    println!("  verified {bytes} bytes written and read back");
    Ok(())
}

fn io_ring_features_matrix() -> CaseResult {
    let (_nb, f) = backend("vbio1", 16, &[])?;
    for indirect in [false, true] {
        for event_idx in [false, true] {
            let mut feats = features::SUPPORTED;
            if !event_idx {
                feats &= !bit(features::VIRTIO_RING_F_EVENT_IDX);
            }
            if !indirect {
                feats &= !bit(features::VIRTIO_RING_F_INDIRECT_DESC);
            }
            let cfg = Config {
                features: feats,
                ..Config::default()
            };
            let mut t = ctx(TestDevice::new(&f, cfg), "device")?;
            for i in 0..20u64 {
                write_read(&mut t, 0, i * 16, 8192, 2048, 0, indirect, 100 + i)
                    .map_err(|e| format!("indirect {indirect} event_idx {event_idx}: {e}"))?;
            }
        }
    }
    Ok(())
}

fn io_flush_and_get_id() -> CaseResult {
    let (_nb, f) = backend("vbio2", 16, &[("cache_size", "4"), ("fua", "1")])?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    ctx(t.dev.set_serial(b"vhost-blk-selftest-1"), "serial")?;
    write_read(&mut t, 0, 0, 4096, 4096, 0, false, 9)?;
    expect_status(
        t.request(0, VIRTIO_BLK_T_FLUSH, 0, &[], false),
        VIRTIO_BLK_S_OK,
        "flush",
    )?;
    let id = t.buf(20, 4);
    let used = expect_status(
        t.request(0, VIRTIO_BLK_T_GET_ID, 0, &[Buf::w(id, 20)], false),
        VIRTIO_BLK_S_OK,
        "GET_ID",
    )?;
    let mut got = [0u8; 20];
    t.mem
        .read(id, &mut got)
        .map_err(|_| "read id".to_string())?;
    ensure(&got == b"vhost-blk-selftest-1", || {
        format!("GET_ID returned {got:?}")
    })?;
    ensure(used == 21, || format!("GET_ID used len {used}"))?;
    // Without FLUSH acked, a flush is unsupported.
    let cfg = Config {
        features: features::SUPPORTED & !bit(features::VIRTIO_BLK_F_FLUSH),
        ..Config::default()
    };
    let mut t = ctx(TestDevice::new(&f, cfg), "device without FLUSH")?;
    expect_status(
        t.request(0, VIRTIO_BLK_T_FLUSH, 0, &[], false),
        VIRTIO_BLK_S_UNSUPP,
        "flush not acked",
    )?;
    Ok(())
}

/// `BLKROSET` on `f`'s disk.
fn set_disk_read_only(f: &File, ro: bool) -> CaseResult {
    const BLKROSET: libc::c_ulong = 0x125d;
    let v: libc::c_int = ro.into();
    // SAFETY: BLKROSET reads one int from a live local.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), BLKROSET, &v) };
    ensure(r == 0, || {
        format!("BLKROSET {ro}: {}", std::io::Error::last_os_error())
    })
}

/// Every request that writes the disk gets IOERR (used length 1) and the
/// disk is unchanged afterwards; reads work. Twice: a backend opened
/// read-only, and one opened read-write whose disk is then marked
/// read-only (`BLKROSET`) before it is attached.
fn io_read_only_backend() -> CaseResult {
    let (nb, rw) = backend("vbio3", 16, &[("discard", "1")])?;
    let before: Vec<u8> = (0..8192).map(|i| pattern(33, i)).collect();
    ctx(rw.write_all_at(&before, 0), "fill the disk")?;
    ctx(rw.sync_all(), "sync the disk")?;
    let opened_ro = ctx(File::open(nb.path()), "open read-only")?;
    let marked_ro = ctx(
        OpenOptions::new().read(true).write(true).open(nb.path()),
        "open read-write",
    )?;
    for (how, f) in [
        ("opened read-only", &opened_ro),
        ("marked read-only", &marked_ro),
    ] {
        let marked = std::ptr::eq(f, &marked_ro);
        if marked {
            set_disk_read_only(f, true)?;
        }
        let r = read_only_refuses_writes(f, &before);
        if marked {
            set_disk_read_only(f, false)?;
        }
        r.map_err(|e| format!("{how}: {e}"))?;
    }
    Ok(())
}

fn read_only_refuses_writes(f: &File, before: &[u8]) -> CaseResult {
    let mut t = ctx(TestDevice::new(f, Config::default()), "device")?;
    let a = t.buf(8192, 4096);
    t.mem
        .write(a, &[0xee; 8192])
        .map_err(|_| "fill".to_string())?;
    let len = expect_status(
        t.request(0, VIRTIO_BLK_T_OUT, 0, &[Buf::r(a, 8192)], false),
        VIRTIO_BLK_S_IOERR,
        "write",
    )?;
    ensure(len == 1, || format!("write: used length {len}"))?;
    for (ty, flags, what) in [
        (VIRTIO_BLK_T_DISCARD, 0, "discard"),
        (VIRTIO_BLK_T_WRITE_ZEROES, 0, "write-zeroes"),
        (
            VIRTIO_BLK_T_WRITE_ZEROES,
            VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
            "write-zeroes with UNMAP",
        ),
    ] {
        let ranges = range_list(&mut t, &[(0, 16, flags)]);
        let len = expect_status(
            t.request(0, ty, 0, &[ranges], false),
            VIRTIO_BLK_S_IOERR,
            what,
        )?;
        ensure(len == 1, || format!("{what}: used length {len}"))?;
    }
    let got = read_back(&mut t, 0, 16)?;
    ensure(got == before, || {
        let at = got.iter().zip(before).position(|(a, b)| a != b);
        format!("the disk changed at byte {at:?} after refused writes")
    })
}

fn io_multiqueue() -> CaseResult {
    let (_nb, f) = backend("vbio4", 64, &[])?;
    let nq = 16u32;
    let cfg = Config {
        queues: nq,
        size: 64,
        ..Config::default()
    };
    let mut t = ctx(TestDevice::new(&f, cfg), "device")?;
    // Many requests in flight on every queue at once.
    let per = 8u64;
    let mut statuses = Vec::new();
    for q in 0..nq as usize {
        for i in 0..per {
            let sector = (q as u64 * per + i) * 8;
            let a = t.buf(4096, 4096);
            let data: Vec<u8> = (0..4096).map(|o| pattern(sector, o)).collect();
            t.mem.write(a, &data).map_err(|_| "fill".to_string())?;
            let h = t.header(VIRTIO_BLK_T_OUT, sector);
            let s = t.status();
            t.submit(q, &[Buf::r(h, 16), Buf::r(a, 4096), Buf::w(s, 1)], false);
            statuses.push(s);
        }
    }
    for q in 0..nq as usize {
        t.wait(q, per as usize, Duration::from_secs(60))?;
    }
    for s in &statuses {
        let st = t.read_status(*s);
        ensure(st == VIRTIO_BLK_S_OK, || {
            format!("a write got {}", status_name(st))
        })?;
    }
    // Read everything back through queue 0 and compare.
    for i in 0..u64::from(nq) * per {
        let sector = i * 8;
        let a = t.buf(4096, 4096);
        expect_status(
            t.request(0, VIRTIO_BLK_T_IN, sector, &[Buf::w(a, 4096)], false),
            VIRTIO_BLK_S_OK,
            "read",
        )?;
        let mut got = vec![0u8; 4096];
        t.mem.read(a, &mut got).map_err(|_| "read".to_string())?;
        ensure(
            got.iter()
                .enumerate()
                .all(|(o, b)| *b == pattern(sector, o as u64)),
            || format!("sector {sector}: data differs"),
        )?;
    }
    Ok(())
}

fn io_ring_wrap_around() -> CaseResult {
    let (_nb, f) = backend("vbio5", 16, &[])?;
    let cfg = Config {
        size: 4,
        ..Config::default()
    };
    let mut t = ctx(TestDevice::new(&f, cfg), "device")?;
    let a = t.buf(512, 512);
    for i in 0..300u32 {
        expect_status(
            t.request(
                0,
                VIRTIO_BLK_T_IN,
                u64::from(i % 64),
                &[Buf::w(a, 512)],
                false,
            ),
            VIRTIO_BLK_S_OK,
            &format!("request {i}"),
        )?;
    }
    let base = ctx(t.dev.get_vring_base(0), "GET_VRING_BASE")?;
    ensure(base == 300, || format!("base {base} after 300 requests"))
}

fn io_get_vring_base_drains_and_restarts() -> CaseResult {
    // A slow backend: each request takes 3 s, so requests are surely in
    // flight when the queue is stopped.
    let (_nb, f) = slow_backend("vbio6", 3000)?;
    // 32 chains of 3 descriptors.
    let cfg = Config {
        size: 128,
        ..Config::default()
    };
    let mut t = ctx(TestDevice::new(&f, cfg), "device")?;
    let n = 32;
    // Let the worker take them all, then stop the queue while they are
    // slow (each takes 3 s, so none can be done yet).
    let statuses = reads_taken(&mut t, n)?;
    ensure(t.queues[0].ring.pop_used(&t.mem).is_none(), || {
        "completed too early to test draining".into()
    })?;
    let base = ctx(t.dev.get_vring_base(0), "GET_VRING_BASE")? as u64;
    ensure(base > 0, || "the worker took no chain in 300 ms".into())?;
    // Every chain the device consumed must be complete now.
    let mut done = 0;
    while t.queues[0].ring.pop_used(&t.mem).is_some() {
        done += 1;
    }
    ensure(done == base, || {
        format!("GET_VRING_BASE returned {base} but {done} were used: it did not drain")
    })?;
    for s in statuses.iter().take(base as usize) {
        ensure(t.read_status(*s) == VIRTIO_BLK_S_OK, || {
            "a drained request failed".into()
        })?;
    }
    // Restart from the saved base: detach, set the base, attach again.
    ctx(t.dev.set_backend(-1), "detach")?;
    ctx(t.dev.set_vring_base(0, base as u32), "SET_VRING_BASE")?;
    ctx(
        t.dev.set_backend(std::os::fd::AsRawFd::as_raw_fd(&f)),
        "re-attach",
    )?;
    t.queues[0].kick.signal();
    t.wait(0, (n - base) as usize, Duration::from_secs(60))?;
    for s in &statuses {
        ensure(t.read_status(*s) == VIRTIO_BLK_S_OK, || {
            "a request after restart failed".into()
        })?;
    }
    Ok(())
}

fn io_bad_requests_get_status() -> CaseResult {
    let (_nb, f) = backend("vbio7", 16, &[])?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    let cap = 16 * MIB / 512;
    let a = t.buf(8192, 4096);
    let cases: Vec<(&str, u32, u64, Vec<Buf>, u8)> = vec![
        (
            "sector past capacity",
            VIRTIO_BLK_T_IN,
            cap,
            vec![Buf::w(a, 512)],
            VIRTIO_BLK_S_IOERR,
        ),
        (
            "range crossing capacity",
            VIRTIO_BLK_T_OUT,
            cap - 1,
            vec![Buf::r(a, 1024)],
            VIRTIO_BLK_S_IOERR,
        ),
        (
            "huge sector",
            VIRTIO_BLK_T_IN,
            u64::MAX,
            vec![Buf::w(a, 512)],
            VIRTIO_BLK_S_IOERR,
        ),
        (
            "length not a multiple of 512",
            VIRTIO_BLK_T_IN,
            0,
            vec![Buf::w(a, 700)],
            VIRTIO_BLK_S_IOERR,
        ),
        ("unknown type", 77, 0, vec![], VIRTIO_BLK_S_UNSUPP),
        (
            "discard not offered",
            VIRTIO_BLK_T_DISCARD,
            0,
            vec![Buf::r(a, 16)],
            VIRTIO_BLK_S_UNSUPP,
        ),
        (
            "read with readable data",
            VIRTIO_BLK_T_IN,
            0,
            vec![Buf::r(a, 512)],
            VIRTIO_BLK_S_IOERR,
        ),
        (
            "write with writable data",
            VIRTIO_BLK_T_OUT,
            0,
            vec![Buf::w(a, 512)],
            VIRTIO_BLK_S_IOERR,
        ),
        (
            "misaligned buffer",
            VIRTIO_BLK_T_IN,
            0,
            vec![Buf::w(a + 100, 512)],
            VIRTIO_BLK_S_IOERR,
        ),
    ];
    for (what, ty, sector, data, want) in cases {
        let len = expect_status(t.request(0, ty, sector, &data, false), want, what)?;
        ensure(len == 1, || {
            format!("{what}: used length {len}, expected 1")
        })?;
    }
    // The module's bound on one request's data: 8 MiB is served, 512
    // bytes more is refused.
    let big = t.buf(8 * MIB + 512, 4096);
    let len = expect_status(
        t.request(0, VIRTIO_BLK_T_IN, 0, &[Buf::w(big, 8 << 20)], false),
        VIRTIO_BLK_S_OK,
        "an 8 MiB read",
    )?;
    ensure(len == (8 << 20) + 1, || {
        format!("8 MiB read: used length {len}")
    })?;
    let len = expect_status(
        t.request(
            0,
            VIRTIO_BLK_T_IN,
            0,
            &[Buf::w(big, (8 << 20) + 512)],
            false,
        ),
        VIRTIO_BLK_S_IOERR,
        "a read of 8 MiB + 512",
    )?;
    ensure(len == 1, || format!("8 MiB + 512 read: used length {len}"))?;
    // A header the VMM made unreadable (its page PROT_NONE) cannot be
    // parsed: IOERR, used length 1, and the queue goes on.
    let hp = t.buf(4096, 4096);
    let mut hdr = [0u8; 16];
    hdr[..4].copy_from_slice(&VIRTIO_BLK_T_IN.to_le_bytes());
    t.mem.write(hp, &hdr).map_err(|_| "header".to_string())?;
    let s = t.status();
    ctx(t.mem.protect(hp, 4096, libc::PROT_NONE), "mprotect")?;
    t.submit(0, &[Buf::r(hp, 16), Buf::w(a, 512), Buf::w(s, 1)], false);
    let done = t.wait(0, 1, Duration::from_secs(30));
    ctx(
        t.mem.protect(hp, 4096, libc::PROT_READ | libc::PROT_WRITE),
        "mprotect",
    )?;
    let done = done.map_err(|e| format!("unreadable header: {e}"))?;
    ensure(
        t.read_status(s) == VIRTIO_BLK_S_IOERR && done[0].len == 1,
        || {
            format!(
                "unreadable header: status {}, used length {}",
                status_name(t.read_status(s)),
                done[0].len
            )
        },
    )?;
    // A header split over descriptors is fine (ANY_LAYOUT).
    let h = t.header(VIRTIO_BLK_T_IN, 0);
    let s = t.status();
    t.submit(
        0,
        &[
            Buf::r(h, 3),
            Buf::r(h + 3, 13),
            Buf::w(a, 512),
            Buf::w(s, 1),
        ],
        false,
    );
    t.wait(0, 1, Duration::from_secs(30))?;
    ensure(t.read_status(s) == VIRTIO_BLK_S_OK, || {
        "split header failed".into()
    })?;
    // A zero-length descriptor in the middle carries nothing.
    let h = t.header(VIRTIO_BLK_T_IN, 0);
    let s = t.status();
    t.submit(
        0,
        &[Buf::r(h, 16), Buf::w(a, 0), Buf::w(a, 512), Buf::w(s, 1)],
        false,
    );
    t.wait(0, 1, Duration::from_secs(30))?;
    ensure(t.read_status(s) == VIRTIO_BLK_S_OK, || {
        "zero-length descriptor failed".into()
    })?;
    // The device still works after all of that.
    write_read(&mut t, 0, 0, 4096, 4096, 0, false, 5)
}

/// A read is on a slow disk (500 ms) when the guest breaks the ring (a
/// head out of range). A broken queue is stopped: when the read comes
/// back, the device must write neither its status byte nor its used
/// element, even though the ring's memory is fine, and a stop must still
/// drain it. Before, the read was answered into the broken ring.
fn io_broken_ring_answers_nothing_more() -> CaseResult {
    let (_nb, f) = slow_backend("vbio11", 500)?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    let (h, a, s) = (t.header(VIRTIO_BLK_T_IN, 0), t.buf(4096, 4096), t.status());
    t.submit(0, &[Buf::r(h, 16), Buf::w(a, 4096), Buf::w(s, 1)], false);
    t.wait_consumed(0, 1, Duration::from_secs(10))?;
    let at = Instant::now();
    let q = &mut t.queues[0];
    q.ring.push_avail(&t.mem, t.cfg.size + 3);
    q.kick.signal();
    ensure(q.err.wait(Duration::from_secs(10)), || {
        "a head out of range did not break the ring".into()
    })?;
    let broke = at.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let (used, st) = (q.ring.used_idx(&t.mem), t.read_status(s));
    ensure(used == 0 && st == 0xff, || {
        format!(
            "the read in flight when the ring broke (after {broke:?}) was answered into it: used \
             index {used}, status {st:#x}"
        )
    })?;
    ctx(t.dev.get_vring_base(0), "GET_VRING_BASE")?;
    Ok(())
}

/// Queue 0 of `t` as the statistics show it, for a failure message.
fn queue_state(t: &TestDevice) -> String {
    let id = match crate::stats::fd_ids(&t.dev) {
        Ok((id, _)) => id,
        Err(e) => return format!("fdinfo: {e}"),
    };
    match crate::stats::Stats::read() {
        Ok(st) => st.vq(id, 0).map_or("no vq line".into(), |v| {
            let keys = [
                "inflight",
                "broken",
                "stalls",
                "resubmits",
                "retries",
                "last_avail",
            ];
            keys.map(|k| format!("{k}={}", v.text(k))).join(" ")
        }),
        Err(e) => format!("statistics: {e}"),
    }
}

/// Each malformed ring must raise the err eventfd, leave the queue
/// stopped (nothing used), and leave other devices working.
fn io_broken_rings_signal_err() -> CaseResult {
    let (_nb, f) = backend("vbio8", 16, &[])?;
    // A breaker returns the pages it made read-only, if any, to be made
    // writable again once the device gave up.
    type Breaker = fn(&mut TestDevice) -> Option<(u64, usize)>;
    let breakers: [(&str, Breaker); 16] = [
        ("head out of range", |t| {
            t.queues[0].ring.push_avail(&t.mem, 200);
            None
        }),
        ("avail index jump", |t| {
            t.queues[0].ring.set_avail_idx(&t.mem, 1000);
            None
        }),
        ("descriptor loop", |t| {
            let a = t.buf(16, 16);
            for (i, next) in [(0u16, 1u16), (1, 0)] {
                t.queues[0].ring.write_desc(
                    &t.mem,
                    i,
                    Descriptor {
                        addr: a,
                        len: 16,
                        flags: VRING_DESC_F_NEXT,
                        next,
                    },
                );
            }
            t.queues[0].ring.push_avail(&t.mem, 0);
            None
        }),
        ("next out of range", |t| {
            let a = t.buf(16, 16);
            t.queues[0].ring.post_raw(
                &t.mem,
                Descriptor {
                    addr: a,
                    len: 16,
                    flags: VRING_DESC_F_NEXT,
                    next: 999,
                },
            );
            None
        }),
        ("nested indirect", |t| {
            let inner = t.buf(16, 16);
            let outer = t.buf(16, 16);
            let d = crate::driver::desc_bytes(&Descriptor {
                addr: inner,
                len: 16,
                flags: VRING_DESC_F_INDIRECT,
                next: 0,
            });
            t.mem.write(outer, &d).unwrap();
            t.queues[0].ring.post_raw(
                &t.mem,
                Descriptor {
                    addr: outer,
                    len: 16,
                    flags: VRING_DESC_F_INDIRECT,
                    next: 0,
                },
            );
            None
        }),
        ("buffer outside guest memory", |t| {
            let s = t.status();
            t.queues[0]
                .ring
                .add_chain(&t.mem, &[Buf::r(0x1000, 16), Buf::w(s, 1)]);
            None
        }),
        ("no status byte", |t| {
            let h = t.header(VIRTIO_BLK_T_IN, 0);
            t.queues[0].ring.add_chain(&t.mem, &[Buf::r(h, 16)]);
            None
        }),
        ("read-only status byte", |t| {
            let h = t.header(VIRTIO_BLK_T_FLUSH, 0);
            let s = t.status();
            t.queues[0]
                .ring
                .add_chain(&t.mem, &[Buf::r(h, 16), Buf::r(s, 1)]);
            None
        }),
        ("writable before readable", |t| {
            let h = t.header(VIRTIO_BLK_T_OUT, 0);
            let (a, s) = (t.buf(512, 512), t.status());
            t.queues[0]
                .ring
                .add_chain(&t.mem, &[Buf::w(s, 1), Buf::r(h, 16), Buf::r(a, 512)]);
            None
        }),
        ("bad indirect length", |t| {
            let table = t.buf(64, 16);
            t.queues[0].ring.post_raw(
                &t.mem,
                Descriptor {
                    addr: table,
                    len: 15,
                    flags: VRING_DESC_F_INDIRECT,
                    next: 0,
                },
            );
            None
        }),
        ("address wrapping around", |t| {
            let s = t.status();
            t.queues[0]
                .ring
                .add_chain(&t.mem, &[Buf::r(u64::MAX - 7, 16), Buf::w(s, 1)]);
            None
        }),
        ("indirect table outside guest memory", |t| {
            t.queues[0].ring.post_raw(
                &t.mem,
                Descriptor {
                    addr: 0x1000,
                    len: 32,
                    flags: VRING_DESC_F_INDIRECT,
                    next: 0,
                },
            );
            None
        }),
        ("next out of range in an indirect table", |t| {
            let table = t.buf(32, 16);
            let (h, s) = (t.header(VIRTIO_BLK_T_FLUSH, 0), t.status());
            for (i, d) in [
                Descriptor {
                    addr: h,
                    len: 16,
                    flags: VRING_DESC_F_NEXT,
                    next: 7,
                },
                Descriptor {
                    addr: s,
                    len: 1,
                    flags: VRING_DESC_F_WRITE,
                    next: 0,
                },
            ]
            .iter()
            .enumerate()
            {
                let b = crate::driver::desc_bytes(d);
                t.mem.write(table + 16 * i as u64, &b).unwrap();
            }
            t.queues[0].ring.post_raw(
                &t.mem,
                Descriptor {
                    addr: table,
                    len: 32,
                    flags: VRING_DESC_F_INDIRECT,
                    next: 0,
                },
            );
            None
        }),
        ("indirect table address wrapping around", |t| {
            t.queues[0].ring.post_raw(
                &t.mem,
                Descriptor {
                    addr: u64::MAX - 15,
                    len: 32,
                    flags: VRING_DESC_F_INDIRECT,
                    next: 0,
                },
            );
            None
        }),
        ("used ring not writable", |t| {
            // A good request, then the used ring made read-only (as a VMM
            // can): publishing its completion faults.
            let (h, a, s) = (t.header(VIRTIO_BLK_T_IN, 0), t.buf(512, 512), t.status());
            t.queues[0]
                .ring
                .add_chain(&t.mem, &[Buf::r(h, 16), Buf::w(a, 512), Buf::w(s, 1)]);
            let used = t.queues[0].ring.addrs().used;
            let len = 6 + 8 * usize::from(t.queues[0].ring.num());
            t.mem.protect(used, len, libc::PROT_READ).unwrap();
            Some((used, len))
        }),
        ("status byte not writable", |t| {
            let (h, a) = (t.header(VIRTIO_BLK_T_IN, 0), t.buf(512, 512));
            let s = t.buf(4096, 4096);
            t.mem.write(s, &[0xff]).unwrap();
            t.queues[0]
                .ring
                .add_chain(&t.mem, &[Buf::r(h, 16), Buf::w(a, 512), Buf::w(s, 1)]);
            t.mem.protect(s, 4096, libc::PROT_READ).unwrap();
            Some((s, 4096))
        }),
    ];
    let mut healthy = ctx(TestDevice::new(&f, Config::default()), "healthy device")?;
    for (what, brk) in breakers {
        let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
        let protected = brk(&mut t);
        t.queues[0].kick.signal();
        let signalled = t.queues[0].err.wait(Duration::from_secs(30));
        // What the queue shows when it did not break: where it waits.
        let state = if signalled {
            String::new()
        } else {
            queue_state(&t)
        };
        if let Some((addr, len)) = protected {
            ctx(
                t.mem.protect(addr, len, libc::PROT_READ | libc::PROT_WRITE),
                "mprotect",
            )?;
        }
        ensure(signalled, || {
            format!("{what}: no err eventfd in 30 s ({state})")
        })?;
        ensure(t.queues[0].ring.pop_used(&t.mem).is_none(), || {
            format!("{what}: something was used")
        })?;
        // The queue stays stopped; a good request now is not served.
        let a = t.buf(512, 512);
        let h = t.header(VIRTIO_BLK_T_IN, 0);
        let s = t.status();
        let _ = t.queues[0]
            .ring
            .add_chain(&t.mem, &[Buf::r(h, 16), Buf::w(a, 512), Buf::w(s, 1)]);
        t.queues[0].kick.signal();
        std::thread::sleep(Duration::from_millis(100));
        ensure(t.read_status(s) == 0xff, || {
            format!("{what}: the broken queue kept serving")
        })?;
        // The device can be stopped cleanly.
        ctx(t.dev.get_vring_base(0), format!("{what}: GET_VRING_BASE"))?;
        write_read(&mut healthy, 0, 0, 4096, 4096, 0, false, 77)
            .map_err(|e| format!("{what}: other device: {e}"))?;
    }
    Ok(())
}

/// A guest that re-posts a head still in flight gets two independent
/// requests: the first one's state is not overwritten.
/// A head posted again while in flight, its descriptors rewritten in
/// between to another sector, buffer and status: the device must have
/// copied the first chain when it took it, so each request reads its own
/// sectors into its own buffer and gets its own status.
fn io_reposted_head_is_independent() -> CaseResult {
    let (_nb, f) = slow_backend("vbio9", 50)?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    fill(&mut t, 0, 8, 91)?;
    fill(&mut t, 8, 8, 92)?;
    let posts = [(0u64, 91u64), (8, 92)].map(|(sector, seed)| {
        let h = t.header(VIRTIO_BLK_T_IN, sector);
        let a = t.buf(4096, 4096);
        t.mem.write(a, &[0x5a; 4096]).expect("buffer");
        (h, a, t.status(), seed)
    });
    let (h, a, s, _) = posts[0];
    let head = t.submit(0, &[Buf::r(h, 16), Buf::w(a, 4096), Buf::w(s, 1)], false);
    let taken = t.queues[0].ring.avail_idx();
    t.wait_consumed(0, taken, Duration::from_secs(10))?;
    // The first request is in flight (50 ms): point its descriptors at the
    // second request's header, buffer and status, and post the head again.
    let (h, a, s, _) = posts[1];
    let ring = &t.queues[0].ring;
    for (&i, addr) in ring.chain_ids(head).iter().zip([h, a, s]) {
        let d = Descriptor {
            addr,
            ..ring.read_desc(&t.mem, i)
        };
        ring.write_desc(&t.mem, i, d);
    }
    t.queues[0].ring.push_avail(&t.mem, head);
    t.queues[0].kick.signal();
    let done = t.wait(0, 2, Duration::from_secs(30))?;
    ensure(
        done.iter()
            .all(|d| d.id == u32::from(head) && d.len == 4097),
        || format!("used {done:?}"),
    )?;
    for (i, (_, a, s, seed)) in posts.into_iter().enumerate() {
        ensure(t.read_status(s) == VIRTIO_BLK_S_OK, || {
            format!("post {i}: status {}", status_name(t.read_status(s)))
        })?;
        let mut got = vec![0u8; 4096];
        t.mem.read(a, &mut got).map_err(|_| "read".to_string())?;
        let want: Vec<u8> = (0..4096).map(|o| pattern(seed, o)).collect();
        ensure(got == want, || {
            format!("post {i}: its buffer does not hold its sectors")
        })?;
    }
    Ok(())
}

/// Close, RESET_OWNER and detach with slow requests in flight: each waits
/// for them (their used elements appear), and nothing is left behind (the
/// debug kernel's kmemleak and the final module unload check that).
fn io_teardown_with_requests_in_flight() -> CaseResult {
    let (_nb, f) = slow_backend("vbio10", 200)?;
    let submit_slow = |t: &mut TestDevice, n: u64| -> Result<Vec<u64>, String> {
        let mut st = Vec::new();
        for i in 0..n {
            let a = t.buf(4096, 4096);
            let h = t.header(
                if i % 2 == 0 {
                    VIRTIO_BLK_T_IN
                } else {
                    VIRTIO_BLK_T_OUT
                },
                i * 8,
            );
            let s = t.status();
            let data = if i % 2 == 0 {
                Buf::w(a, 4096)
            } else {
                Buf::r(a, 4096)
            };
            t.submit(0, &[Buf::r(h, 16), data, Buf::w(s, 1)], false);
            st.push(s);
        }
        t.wait_consumed(0, n as u16, Duration::from_secs(30))
            .map(|_| st)
    };
    // Each stop must drain the 16 requests the device took (200 ms on the
    // disk): all used, each status OK, before the call returns.
    let drained = |ring: &mut DriverRing, mem: &ProcessMemory, st: &[u64], what: &str| {
        let mut used = 0;
        while ring.pop_used(mem).is_some() {
            used += 1;
        }
        let ok = st
            .iter()
            .filter(|s| {
                let mut b = [0u8];
                mem.read(**s, &mut b).is_ok() && b[0] == VIRTIO_BLK_S_OK
            })
            .count();
        ensure(used == st.len() && ok == st.len(), || {
            format!("{what}: {used} of {} used, {ok} statuses OK", st.len())
        })
    };
    for round in 0..5 {
        // Close: within its 1 s wait the requests complete, and are
        // answered before the file is gone (the memory outlives it).
        let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
        let st = submit_slow(&mut t, 16)?;
        let TestDevice {
            dev,
            mem,
            mut queues,
            ..
        } = t;
        let at = std::time::Instant::now();
        drop(dev);
        let took = at.elapsed();
        drained(
            &mut queues[0].ring,
            &mem,
            &st,
            &format!("round {round}: close ({took:?})"),
        )?;
        // RESET_OWNER.
        let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
        let st = submit_slow(&mut t, 16)?;
        ctx(t.dev.reset_owner(), "RESET_OWNER")?;
        drained(
            &mut t.queues[0].ring,
            &t.mem,
            &st,
            &format!("round {round}: RESET_OWNER"),
        )?;
        // Detach, checked before GET_VRING_BASE (which drains by itself).
        let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
        let st = submit_slow(&mut t, 16)?;
        ctx(t.dev.set_backend(-1), "detach")?;
        drained(
            &mut t.queues[0].ring,
            &t.mem,
            &st,
            &format!("round {round}: detach"),
        )?;
        let base = ctx(t.dev.get_vring_base(0), "GET_VRING_BASE")?;
        ensure(base == 16, || {
            format!("round {round}: detach: base {base}, expected 16")
        })?;
    }
    Ok(())
}

/// Writes `ranges` (sector, sectors, flags) as a DISCARD/WRITE_ZEROES
/// segment list in guest memory.
fn range_list(t: &mut TestDevice, ranges: &[(u64, u32, u32)]) -> Buf {
    let a = t.buf(16 * ranges.len() as u64, 16);
    for (i, (sector, n, flags)) in ranges.iter().enumerate() {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&sector.to_le_bytes());
        b[8..12].copy_from_slice(&n.to_le_bytes());
        b[12..].copy_from_slice(&flags.to_le_bytes());
        t.mem.write(a + 16 * i as u64, &b).expect("range list");
    }
    Buf::r(a, 16 * ranges.len() as u32)
}

/// Fills `sectors` sectors at `sector` with pattern `seed`.
fn fill(t: &mut TestDevice, sector: u64, sectors: u64, seed: u64) -> CaseResult {
    let len = sectors * 512;
    let a = t.buf(len, 4096);
    let data: Vec<u8> = (0..len).map(|i| pattern(seed, i)).collect();
    t.mem.write(a, &data).map_err(|_| "fill".to_string())?;
    expect_status(
        t.request(0, VIRTIO_BLK_T_OUT, sector, &[Buf::r(a, len as u32)], false),
        VIRTIO_BLK_S_OK,
        "fill",
    )
    .map(|_| ())
}

/// Reads `sectors` at `sector` and returns them.
fn read_back(t: &mut TestDevice, sector: u64, sectors: u64) -> Result<Vec<u8>, String> {
    let len = sectors * 512;
    let a = t.buf(len, 4096);
    t.mem
        .write(a, &vec![0x5a; len as usize])
        .map_err(|_| "fill".to_string())?;
    expect_status(
        t.request(0, VIRTIO_BLK_T_IN, sector, &[Buf::w(a, len as u32)], false),
        VIRTIO_BLK_S_OK,
        "read back",
    )?;
    let mut got = vec![0u8; len as usize];
    t.mem.read(a, &mut got).map_err(|_| "read".to_string())?;
    Ok(got)
}

fn io_discard_and_write_zeroes() -> CaseResult {
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
        for s in 0..256u64 {
            let zeroed = (8..24).contains(&s) || s == 100 || (200..240).contains(&s);
            let chunk = &got[(s * 512) as usize..((s + 1) * 512) as usize];
            let ok = if zeroed {
                chunk.iter().all(|b| *b == 0)
            } else {
                chunk
                    .iter()
                    .enumerate()
                    .all(|(i, b)| *b == pattern(seed, s * 512 + i as u64))
            };
            ensure(ok, || {
                format!("write zeroes (flags {flags}): sector {s} wrong (zeroed: {zeroed})")
            })?;
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
    for s in 0..64u64 {
        let gone = (8..16).contains(&s) || (32..48).contains(&s);
        let chunk = &got[(s * 512) as usize..((s + 1) * 512) as usize];
        let ok = if gone {
            chunk.iter().all(|b| *b == 0)
        } else {
            chunk
                .iter()
                .enumerate()
                .all(|(i, b)| *b == pattern(4, s * 512 + i as u64))
        };
        ensure(ok, || {
            format!("discard: sector {s} wrong (discarded: {gone})")
        })?;
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

fn io_bad_discard_and_write_zeroes() -> CaseResult {
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
/// page (no UNMAP), all read back.
fn io_loop_backend() -> CaseResult {
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
    ] {
        fill(&mut t, 0, 64, 50)?;
        let list = range_list(&mut t, &[(8, 16, flags)]);
        expect_status(t.request(0, ty, 0, &[list], false), VIRTIO_BLK_S_OK, what)?;
        let got = read_back(&mut t, 0, 64)?;
        for s in 0..64u64 {
            let gone = (8..24).contains(&s);
            let chunk = &got[(s * 512) as usize..((s + 1) * 512) as usize];
            let ok = if gone {
                chunk.iter().all(|b| *b == 0)
            } else {
                chunk
                    .iter()
                    .enumerate()
                    .all(|(i, b)| *b == pattern(50, s * 512 + i as u64))
            };
            ensure(ok, || format!("{what}: sector {s} wrong (cleared: {gone})"))?;
        }
    }
    Ok(())
}

/// Errors of the backing device reach the guest as IOERR, only for the
/// requests that hit them, and the device recovers when they stop.
fn io_backend_errors_are_ioerr() -> CaseResult {
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
fn io_backend_removed_under_io() -> CaseResult {
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

/// A VMM's memory table is not an identity map: guest addresses differ
/// from user addresses, and guest-contiguous memory may be backed by
/// user memory in another order. Requests whose header, data and status
/// straddle region boundaries must land at the right places, checked
/// through the user mapping and on the backing device.
fn io_split_memory_table() -> CaseResult {
    use vhost_blk_core::memory::MemRegion;

    let (_nb, file) = backend("vbsplit", 16, &[])?;
    let mut dev = ctx(TestDevice::new(&file, Config::default()), "device")?;
    let base = dev.mem.base();
    // The rings stay where the allocator put them (user addresses); the
    // guest's data lives at GPA 1 GiB, in two 4 MiB regions whose user
    // memory is swapped: [G, G+4M) -> base+20M, [G+4M, G+8M) -> base+12M,
    // [G+8M, G+9M) -> base+8M. Data straddles G+4M, headers G+8M.
    const G: u64 = 1 << 30;
    let regions = [
        MemRegion {
            guest_phys_addr: base,
            size: 8 * MIB,
            userspace_addr: base,
        },
        MemRegion {
            guest_phys_addr: G,
            size: 4 * MIB,
            userspace_addr: base + 20 * MIB,
        },
        MemRegion {
            guest_phys_addr: G + 4 * MIB,
            size: 4 * MIB,
            userspace_addr: base + 12 * MIB,
        },
        MemRegion {
            guest_phys_addr: G + 8 * MIB,
            size: MIB,
            userspace_addr: base + 8 * MIB,
        },
    ];
    ctx(dev.dev.set_mem_table(&regions), "VHOST_SET_MEM_TABLE")?;
    ensure(dev.alloc.alloc(0, 1) < base + 8 * MIB, || {
        "the rings are outside the identity region".into()
    })?;
    let to_user = |gpa: u64| -> u64 {
        regions
            .iter()
            .find(|r| gpa >= r.guest_phys_addr && gpa < r.guest_phys_addr + r.size)
            .map(|r| r.userspace_addr + (gpa - r.guest_phys_addr))
            .expect("a mapped guest address")
    };
    // Writes `bytes` at guest address `gpa` through the user mapping.
    let put = |dev: &TestDevice, gpa: u64, bytes: &[u8]| {
        for (i, b) in bytes.iter().enumerate() {
            dev.mem
                .write(to_user(gpa + i as u64), &[*b])
                .expect("guest memory");
        }
    };
    let get = |dev: &TestDevice, gpa: u64, len: usize| -> Vec<u8> {
        (0..len)
            .map(|i| {
                let mut b = [0u8];
                dev.mem
                    .read(to_user(gpa + i as u64), &mut b)
                    .expect("guest memory");
                b[0]
            })
            .collect()
    };
    // Posts one request (its status byte last), kicks, waits for it and
    // checks that it completed, with status OK.
    let serve = |dev: &mut TestDevice, bufs: &[Buf], what: &str| -> CaseResult {
        let status_gpa = bufs.last().expect("a status buffer").addr;
        let head = dev.submit(0, bufs, false);
        let d = dev.wait(0, 1, Duration::from_secs(30))?;
        ensure(d[0].id == u32::from(head), || format!("{what}: used id"))?;
        let st = get(dev, status_gpa, 1)[0];
        ensure(st == VIRTIO_BLK_S_OK, || {
            format!("{what}: {}", status_name(st))
        })
    };
    let boundary = G + 4 * MIB;
    const LEN: u32 = 64 << 10;
    let mut verified = 0u64;
    for (k, data_gpa) in [boundary - 32 * 1024, boundary - 512, boundary - 60 * 1024]
        .into_iter()
        .enumerate()
    {
        let seed = 0x5171_7000 + k as u64;
        let sector = 8 * k as u64 * 1024 / 512 * 16;
        // Header straddling G+8M, status just after it.
        let hdr_gpa = G + 8 * MIB - 8;
        let status_gpa = G + 8 * MIB + 4 * 1024 + k as u64;
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&VIRTIO_BLK_T_OUT.to_le_bytes());
        h[8..].copy_from_slice(&sector.to_le_bytes());
        put(&dev, hdr_gpa, &h);
        put(&dev, status_gpa, &[0xff]);
        let data: Vec<u8> = (0..u64::from(LEN)).map(|i| pattern(seed, i)).collect();
        put(&dev, data_gpa, &data);
        serve(
            &mut dev,
            &[
                Buf::r(hdr_gpa, 16),
                Buf::r(data_gpa, LEN),
                Buf::w(status_gpa, 1),
            ],
            &format!("write {k}"),
        )?;
        let mut disk = vec![0u8; LEN as usize];
        ctx(
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut disk, sector * 512),
            "read the backend",
        )?;
        ensure(disk == data, || {
            format!("write {k}: the backend does not hold the guest's bytes")
        })?;
        // Read it back into a buffer straddling the boundary itself.
        let rd_gpa = boundary - 4096 - 512 * k as u64;
        put(&dev, rd_gpa, &vec![0u8; LEN as usize]);
        h[..4].copy_from_slice(&VIRTIO_BLK_T_IN.to_le_bytes());
        put(&dev, hdr_gpa, &h);
        put(&dev, status_gpa, &[0xff]);
        serve(
            &mut dev,
            &[
                Buf::r(hdr_gpa, 16),
                Buf::w(rd_gpa, LEN),
                Buf::w(status_gpa, 1),
            ],
            &format!("read {k}"),
        )?;
        ensure(get(&dev, rd_gpa, LEN as usize) == data, || {
            format!("read {k}: the guest buffer does not hold the disk's bytes")
        })?;
        verified += 2 * u64::from(LEN);
    }
    println!("# io_split_memory_table: 3 writes and 3 reads across swapped regions, {verified} bytes verified");
    Ok(())
}
