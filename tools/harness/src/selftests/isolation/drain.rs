// SPDX-License-Identifier: GPL-2.0

//! Stopping a queue whose answers are written but not yet published: the
//! page of the used ring they go to is not present (a VMM in post-copy
//! migration, or one that withholds the page).

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use vhost_blk_core::blk::*;
use vhost_blk_core::ring::VringAddrs;

use super::ms;
use crate::blk::{status_name, Config, TestDevice};
use crate::driver::{Buf, DriverRing};
use crate::selftests::io::backend;
use crate::testing::{ctx, ensure, CaseResult};
use crate::uffd::{discard, Userfaultfd};

/// The page size of the test VM.
const PAGE: u64 = 4096;

/// How long `GET_VRING_BASE` is given to return wrongly: it returned at
/// once (in microseconds) when the drain did not wait for publication.
const EARLY: Duration = Duration::from_secs(1);

/// A read is done and its status written, but the page of the used ring
/// its element goes to is missing (registered with a userfaultfd that
/// resolves it only later): the worker stalls on it and the device's slow
/// path waits in the fault. `GET_VRING_BASE` must wait until the element
/// is published. Returning once no request is in flight gives a base that
/// counts the request as served while its element never reaches the used
/// ring: the driver waits for it forever, and the restarted queue never
/// serves it again. Once the page comes, the element must be published,
/// and `GET_VRING_BASE` must return with it in the used ring.
pub(super) fn isolation_stop_publishes_stalled_answers() -> CaseResult {
    let (_nb, f) = backend("vbisop", 16, &[])?;
    let mut t = ctx(TestDevice::new(&f, Config::default()), "device")?;
    ensure(t.event_idx(), || {
        "the device must negotiate EVENT_IDX".into()
    })?;
    let size = t.cfg.size;
    // Two pages. The used ring's flags, index and elements end the first,
    // which is made missing; `avail_event`, which re-enabling guest
    // notifications writes before the request completes, begins the
    // second, which stays present.
    let pages = t.buf(2 * PAGE, PAGE);
    let missing = pages;
    let addrs = VringAddrs {
        used: pages + PAGE - (4 + 8 * u64::from(size)),
        ..t.queues[0].ring.addrs()
    };
    let uffd = Userfaultfd::new()?;
    ctx(discard(missing, PAGE), "MADV_DONTNEED")?;
    ctx(
        uffd.register_missing(missing, PAGE),
        "UFFDIO_REGISTER (missing)",
    )?;
    ctx(t.dev.set_backend(-1), "detach")?;
    ctx(t.dev.set_vring_addr(0, &addrs), "SET_VRING_ADDR")?;
    ctx(t.dev.set_vring_base(0, 0), "SET_VRING_BASE")?;
    ctx(t.dev.set_backend(f.as_raw_fd()), "attach")?;
    t.queues[0].ring = DriverRing::at(addrs, size, 0);
    let a = t.buf(4096, 4096);
    let h = t.header(VIRTIO_BLK_T_IN, 0);
    let s = t.status();
    let head = t.submit(0, &[Buf::r(h, 16), Buf::w(a, 4096), Buf::w(s, 1)], false);
    let fault = ctx(uffd.next_fault(Duration::from_secs(10)), "userfaultfd")?
        .ok_or("no fault on the used ring's page in 10 s: the read was never answered")?;
    ensure(fault.address == missing && fault.write, || {
        format!("fault {fault:?}, expected a write at {missing:#x} (the used ring)")
    })?;
    let st = t.read_status(s);
    ensure(st == VIRTIO_BLK_S_OK, || {
        format!(
            "status {} before the used element: the read is not answered yet",
            status_name(st)
        )
    })?;
    let dev = &t.dev;
    let (early, stopped) = std::thread::scope(|sc| {
        let stop = sc.spawn(|| {
            let at = Instant::now();
            (dev.get_vring_base(0), at.elapsed())
        });
        std::thread::sleep(EARLY);
        let early = stop.is_finished();
        // Whatever happened, the page comes now, so that the slow path's
        // wait ends.
        let resolved = uffd.zeropage(missing, PAGE);
        (early, resolved.map(|()| stop.join()))
    });
    let (base, took) = match ctx(stopped, "UFFDIO_ZEROPAGE")? {
        Ok(r) => r,
        Err(_) => return Err("the GET_VRING_BASE thread panicked".into()),
    };
    let base = ctx(base, "GET_VRING_BASE")?;
    ensure(!early, || {
        format!(
            "GET_VRING_BASE returned {base} after {} while the read's used element waited for \
             its page: the stop lets an answered request go unpublished",
            ms(took)
        )
    })?;
    ensure(base == 1, || {
        format!("GET_VRING_BASE returned {base}, expected 1")
    })?;
    let used = t.poll_used(0);
    ensure(
        used.len() == 1 && used[0].id == u32::from(head) && used[0].len == 4097,
        || format!("used ring after the stop: {used:?}, expected head {head} of length 4097"),
    )?;
    println!(
        "  GET_VRING_BASE returned after {}, once the used ring's page came ({} after the \
         call), with the read published",
        ms(took),
        ms(EARLY)
    );
    Ok(())
}
