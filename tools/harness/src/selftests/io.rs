// SPDX-License-Identifier: GPL-2.0

//! The data plane: requests from guest rings to a null_blk backend and
//! back, with data verified, and hostile requests answered with the right
//! status or the err eventfd.

mod backend_errors;
mod broken;
mod data;
mod inflight;
mod ranges;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use vhost_blk_core::blk::*;
use vhost_blk_core::memory::UserMemory;

use crate::blk::{pattern, status_name, TestDevice};
use crate::driver::Buf;
use crate::nullb::NullBlk;
use crate::request::range;
use crate::testing::{ctx, ensure, CaseResult, Runner};

/// Registers this area's cases.
pub fn run(r: &mut Runner) {
    crate::cases!(
        r,
        data::io_write_read_verify,
        data::io_ring_features_matrix,
        data::io_flush_and_get_id,
        data::io_read_only_backend,
        data::io_multiqueue,
        data::io_ring_wrap_around,
        inflight::io_get_vring_base_drains_and_restarts,
        broken::io_bad_requests_get_status,
        broken::io_broken_rings_signal_err,
        broken::io_broken_ring_answers_nothing_more,
        inflight::io_reposted_head_is_independent,
        inflight::io_teardown_with_requests_in_flight,
        ranges::io_discard_and_write_zeroes,
        ranges::io_bad_discard_and_write_zeroes,
        ranges::io_loop_backend,
        backend_errors::io_backend_errors_are_ioerr,
        backend_errors::io_backend_removed_under_io,
        data::io_split_memory_table,
    );
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
    nullb_rw(name, size_mib, &a)
}

/// A null_blk device with configfs `attrs`, opened read-write.
pub(crate) fn nullb_rw(
    name: &str,
    size_mib: u64,
    attrs: &[(&str, &str)],
) -> Result<(NullBlk, File), String> {
    let nb = ctx(
        NullBlk::create(name, size_mib, attrs),
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

pub(crate) fn expect_status(
    got: Result<(u8, u32), String>,
    want: u8,
    what: &str,
) -> Result<u32, String> {
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

/// Writes `ranges` (sector, sectors, flags) as a DISCARD/WRITE_ZEROES
/// segment list in guest memory.
pub(crate) fn range_list(t: &mut TestDevice, ranges: &[(u64, u32, u32)]) -> Buf {
    let a = t.buf(16 * ranges.len() as u64, 16);
    for (i, (sector, n, flags)) in ranges.iter().enumerate() {
        t.mem
            .write(a + 16 * i as u64, &range(*sector, *n, *flags))
            .expect("range list");
    }
    Buf::r(a, 16 * ranges.len() as u32)
}

/// Fills `sectors` sectors at `sector` with pattern `seed`.
pub(crate) fn fill(t: &mut TestDevice, sector: u64, sectors: u64, seed: u64) -> CaseResult {
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

/// The first sector of `got`, read back from where pattern `seed` was
/// written (`fill`), that is wrong: zeroes are wanted where `zeroed(s)`,
/// the pattern elsewhere.
pub(crate) fn first_wrong_sector(
    got: &[u8],
    seed: u64,
    zeroed: impl Fn(u64) -> bool,
) -> Option<u64> {
    (0..got.len() as u64 / 512).find(|&s| {
        let chunk = &got[(s * 512) as usize..((s + 1) * 512) as usize];
        !if zeroed(s) {
            chunk.iter().all(|b| *b == 0)
        } else {
            chunk
                .iter()
                .enumerate()
                .all(|(i, b)| *b == pattern(seed, s * 512 + i as u64))
        }
    })
}

/// `dev` opened read-only with O_DIRECT, to find what reached the disk.
pub(crate) fn open_direct_read(dev: &std::path::Path) -> Result<File, String> {
    ctx(
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(dev),
        format!("open {} with O_DIRECT", dev.display()),
    )
}

/// Reads `len` bytes at `sector` of `f` (opened with O_DIRECT) into an
/// aligned buffer.
pub(crate) fn direct_read(f: &File, sector: u64, len: u64) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; len as usize + 4096];
    let off = buf.as_ptr().align_offset(4096);
    ctx(
        std::os::unix::fs::FileExt::read_exact_at(
            f,
            &mut buf[off..off + len as usize],
            sector * 512,
        ),
        format!("O_DIRECT read of {len} bytes at sector {sector}"),
    )?;
    Ok(buf[off..off + len as usize].to_vec())
}

/// Reads `sectors` at `sector` and returns them.
pub(crate) fn read_back(t: &mut TestDevice, sector: u64, sectors: u64) -> Result<Vec<u8>, String> {
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
