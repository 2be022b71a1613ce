// SPDX-License-Identifier: GPL-2.0

//! Data written and read back: segment layouts, ring features, flush and
//! GET_ID, read-only backends, many queues, ring wrap-around, and a memory
//! table that is not an identity map.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use vhost_blk_core::blk::*;
use vhost_blk_core::features::{self, bit};
use vhost_blk_core::memory::UserMemory;

use super::{backend, expect_status, range_list, read_back, write_read, write_read_check, MIB};
use crate::blk::{pattern, status_name, Config, TestDevice};
use crate::driver::Buf;
use crate::request::header;
use crate::testing::{ctx, ensure, CaseResult};

pub(super) fn io_write_read_verify() -> CaseResult {
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

pub(super) fn io_ring_features_matrix() -> CaseResult {
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

pub(super) fn io_flush_and_get_id() -> CaseResult {
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
pub(super) fn io_read_only_backend() -> CaseResult {
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

pub(super) fn io_multiqueue() -> CaseResult {
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

pub(super) fn io_ring_wrap_around() -> CaseResult {
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

/// A VMM's memory table is not an identity map: guest addresses differ
/// from user addresses, and guest-contiguous memory may be backed by
/// user memory in another order. Requests whose header, data and status
/// straddle region boundaries must land at the right places, checked
/// through the user mapping and on the backing device.
pub(super) fn io_split_memory_table() -> CaseResult {
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
        put(&dev, hdr_gpa, &header(VIRTIO_BLK_T_OUT, sector));
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
        put(&dev, hdr_gpa, &header(VIRTIO_BLK_T_IN, sector));
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
