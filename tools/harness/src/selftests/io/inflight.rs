// SPDX-License-Identifier: GPL-2.0

//! Requests in flight: drained by `GET_VRING_BASE` and served after a
//! restart, a head posted again while in flight, and close, RESET_OWNER
//! and detach while requests are on the disk.

use std::time::Duration;

use vhost_blk_core::blk::*;
use vhost_blk_core::memory::UserMemory;
use vhost_blk_core::ring::Descriptor;

use super::{fill, reads_taken, slow_backend};
use crate::blk::{pattern, status_name, Config, TestDevice};
use crate::driver::{Buf, DriverRing};
use crate::mem::ProcessMemory;
use crate::testing::{ctx, ensure, CaseResult};

pub(super) fn io_get_vring_base_drains_and_restarts() -> CaseResult {
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

/// A guest that re-posts a head still in flight gets two independent
/// requests: the first one's state is not overwritten.
/// A head posted again while in flight, its descriptors rewritten in
/// between to another sector, buffer and status: the device must have
/// copied the first chain when it took it, so each request reads its own
/// sectors into its own buffer and gets its own status.
pub(super) fn io_reposted_head_is_independent() -> CaseResult {
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
pub(super) fn io_teardown_with_requests_in_flight() -> CaseResult {
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
