// SPDX-License-Identifier: GPL-2.0

//! Hostile requests and broken rings: bad requests answered with a status,
//! malformed rings raising the err eventfd and stopping the queue, and a
//! broken ring answered nothing more.

use std::time::{Duration, Instant};

use vhost_blk_core::blk::*;
use vhost_blk_core::memory::UserMemory;
use vhost_blk_core::ring::{
    Descriptor, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
};

use super::{backend, expect_status, slow_backend, write_read, MIB};
use crate::blk::{status_name, Config, TestDevice};
use crate::driver::Buf;
use crate::request::header;
use crate::stats::ParamGuard;
use crate::testing::{ctx, ensure, CaseResult};

pub(super) fn io_bad_requests_get_status() -> CaseResult {
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
    t.mem
        .write(hp, &header(VIRTIO_BLK_T_IN, 0))
        .map_err(|_| "header".to_string())?;
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
pub(super) fn io_broken_ring_answers_nothing_more() -> CaseResult {
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

/// Queue 0 of `t` as its used ring and the statistics show it, for a
/// failure message.
fn queue_state(t: &TestDevice) -> String {
    let used_idx = t
        .mem
        .read_u16(t.queues[0].ring.addrs().used + 2)
        .map_or("unreadable".into(), |i| i.to_string());
    format!("used idx {used_idx}, {}", module_state(t))
}

/// The module's statistics of queue 0.
fn module_state(t: &TestDevice) -> String {
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

/// Makes a device's queue 0 malformed; returns the pages it made read-only,
/// if any, to be made writable again once the device gave up.
type Breaker = fn(&mut TestDevice) -> Option<(u64, usize)>;

/// Each malformed ring must raise the err eventfd, leave the queue
/// stopped (nothing used), and leave other devices working.
pub(super) fn io_broken_rings_signal_err() -> CaseResult {
    let (_nb, f) = backend("vbio8", 16, &[])?;
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
            // The used ring made read-only (as a VMM can), then a good
            // request: publishing its completion faults. Protect first: a
            // worker still polling may take the chain as soon as it is
            // posted, before the kick.
            let (h, a, s) = (t.header(VIRTIO_BLK_T_IN, 0), t.buf(512, 512), t.status());
            let used = t.queues[0].ring.addrs().used;
            let len = 6 + 8 * usize::from(t.queues[0].ring.num());
            t.mem.protect(used, len, libc::PROT_READ).unwrap();
            t.queues[0]
                .ring
                .add_chain(&t.mem, &[Buf::r(h, 16), Buf::w(a, 512), Buf::w(s, 1)]);
            Some((used, len))
        }),
        ("status byte not writable", |t| {
            let (h, a) = (t.header(VIRTIO_BLK_T_IN, 0), t.buf(512, 512));
            let s = t.buf(4096, 4096);
            t.mem.write(s, &[0xff]).unwrap();
            // Read-only before the chain is posted, as above.
            t.mem.protect(s, 4096, libc::PROT_READ).unwrap();
            t.queues[0]
                .ring
                .add_chain(&t.mem, &[Buf::r(h, 16), Buf::w(a, 512), Buf::w(s, 1)]);
            Some((s, 4096))
        }),
    ];
    // Each breaker once on a sleeping worker, which finds the ring at the
    // kick, and once on one worker that polls every queue it serves and
    // may find a posted chain before the kick.
    let polled: &[(&str, &str)] = &[("max_workers", "1"), ("poll_budget_us", "500000")];
    for (how, params) in [("notified", &[][..]), ("polled", polled)] {
        let _g = ParamGuard::set(params)?;
        break_rings(&f, &breakers).map_err(|e| format!("{how}: {e}"))?;
    }
    Ok(())
}

/// Runs each of `breakers` on a fresh device on `f`, checking that its
/// queue stops and signals the err eventfd while another device works.
fn break_rings(f: &std::fs::File, breakers: &[(&str, Breaker)]) -> CaseResult {
    let mut healthy = ctx(TestDevice::new(f, Config::default()), "healthy device")?;
    for &(what, brk) in breakers {
        let mut t = ctx(TestDevice::new(f, Config::default()), "device")?;
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
