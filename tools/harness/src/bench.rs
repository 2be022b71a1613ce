// SPDX-License-Identifier: GPL-2.0

//! The benchmark engines: one workload, driven against `/dev/vhost-blk`,
//! a vhost-user back-end or raw `io_uring`, measured the same way.
//!
//! The virtqueue engine ([`run_jobs`]) plays the guest's virtio-blk
//! driver with the selftests' [`DriverRing`]: it keeps `qd` requests in
//! flight on each queue, kicks only when the device asks (EVENT_IDX), and
//! sleeps on the call eventfd when nothing has completed, as a guest with
//! interrupts does, or, with [`Workload::guest_poll`], keeps interrupts
//! off and polls its used ring, as a Linux guest's virtio-blk poll queues
//! do. The `io_uring` engine ([`run_uring`]) issues the same
//! requests on the raw device with `O_DIRECT`. Both record every
//! request's latency and the host's CPU time (all CPUs, from
//! `/proc/stat`), so that kernel threads and polling are counted.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use vhost_blk_core::blk::{VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT};
use vhost_blk_core::features;
use vhost_blk_core::memory::UserMemory;

use crate::blk::Queue;
use crate::mem::{BumpAllocator, ProcessMemory};
use crate::request::{ChainLayout, RequestSlot};
use crate::testing::Rng;

/// The features the benchmark's guest acks, on every virtqueue back end:
/// what a Linux guest's virtio_blk acks over virtio-pci. That is all of
/// [`features::SUPPORTED`] but the legacy `VIRTIO_F_NOTIFY_ON_EMPTY` (an
/// interrupt each time the device drains the avail ring, even when the
/// guest has suppressed them) and `VIRTIO_F_ANY_LAYOUT`: neither is in
/// virtio_blk's feature table nor among the transport bits the virtio
/// core keeps.
pub const GUEST_FEATURES: u64 = features::SUPPORTED
    & !features::bit(features::VIRTIO_F_NOTIFY_ON_EMPTY)
    & !features::bit(features::VIRTIO_F_ANY_LAYOUT);

/// What one run does on each queue.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Short name, e.g. `randread-4k-qd32-q1`.
    pub name: String,
    /// Block size in bytes (a multiple of 512).
    pub bs: u32,
    /// Queue depth of each queue.
    pub qd: Vec<u16>,
    /// Percentage of reads (100 = read only, 0 = write only).
    pub read_pct: u32,
    /// Sequential instead of random offsets.
    pub sequential: bool,
    /// The CPU the guest's threads (one per queue) are pinned to, if any.
    pub guest_cpu: Option<usize>,
    /// The guest polls for completions instead of sleeping: the
    /// virtqueue engine suppresses interrupts and spins on the used ring
    /// (a Linux guest's `virtio_blk.poll_queues` under polled I/O), the
    /// `io_uring` engine spins on its completion queue instead of waiting
    /// in `io_uring_enter`.
    pub guest_poll: bool,
}

impl Workload {
    /// A workload of `queues` queues at depth `qd` each.
    pub fn new(kind: &str, bs: u32, qd: u16, queues: usize) -> Self {
        let (read_pct, sequential) = match kind {
            "randread" => (100, false),
            "randwrite" => (0, false),
            "randrw" => (70, false),
            "read" => (100, true),
            "write" => (0, true),
            _ => panic!("unknown workload kind {kind}"),
        };
        Self {
            name: format!("{kind}-{}k-qd{qd}-q{queues}", bs / 1024),
            bs,
            qd: vec![qd; queues],
            read_pct,
            sequential,
            guest_cpu: None,
            guest_poll: false,
        }
    }
}

/// Pins the calling thread to `cpu`, if given, for as long as the value
/// lives; a CPU that cannot be used panics, as a benchmark thread cannot
/// run the layout it was asked for.
fn pin_guest(cpu: Option<usize>) -> Option<crate::testing::CpuPin> {
    cpu.map(|c| {
        crate::testing::CpuPin::to(c)
            .unwrap_or_else(|e| panic!("pin a guest thread to CPU {c}: {e}"))
    })
}

/// Allocates `qd` request slots of `bs` data bytes each.
pub fn alloc_slots(alloc: &mut BumpAllocator, qd: u16, bs: u32) -> Vec<RequestSlot> {
    (0..qd).map(|_| RequestSlot::alloc(alloc, bs)).collect()
}

/// Guest memory in MiB for `queues` queues at depth `qd` of `bs` bytes.
pub fn mem_mib_for(queues: usize, qd: u16, bs: u32) -> usize {
    let per = usize::from(qd) * (bs as usize + 4096 + 128);
    (queues * per) / (1 << 20) + 4 + queues
}

/// One queue driven by [`run_jobs`].
pub struct Job<'a> {
    /// The guest memory the queue's buffers live in.
    pub mem: &'a ProcessMemory,
    /// The queue.
    pub queue: &'a mut Queue,
    /// Its request slots (at least the queue depth).
    pub slots: &'a [RequestSlot],
    /// Whether EVENT_IDX was negotiated.
    pub event_idx: bool,
    /// Queue depth.
    pub qd: u16,
}

/// Host-wide CPU counters from `/proc/stat`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuSnap {
    busy_ticks: u64,
    ctxt: u64,
    self_us: u64,
}

impl CpuSnap {
    /// Reads the counters now.
    pub fn now() -> Self {
        let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let mut s = Self::default();
        for line in text.lines() {
            let mut f = line.split_whitespace();
            match f.next() {
                Some("cpu") => {
                    let v: Vec<u64> = f.filter_map(|x| x.parse().ok()).collect();
                    // user nice system idle iowait irq softirq steal
                    s.busy_ticks = [0, 1, 2, 5, 6, 7]
                        .iter()
                        .map(|&i| v.get(i).copied().unwrap_or(0))
                        .sum();
                }
                Some("ctxt") => s.ctxt = f.next().and_then(|x| x.parse().ok()).unwrap_or(0),
                _ => {}
            }
        }
        // SAFETY: `ru` is a live, writable rusage.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
        s.self_us = tv(ru.ru_utime) + tv(ru.ru_stime);
        s
    }

    fn tick_us() -> u64 {
        // SAFETY: no arguments beyond the name.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        1_000_000 / hz.max(1) as u64
    }
}

/// What one run measured.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// Completed requests.
    pub ios: u64,
    /// Bytes moved.
    pub bytes: u64,
    /// Requests that did not complete with OK (must be 0): the sum of
    /// the three kinds below.
    pub errors: u64,
    /// Requests completed with a status other than OK.
    pub bad_status: u64,
    /// Requests still in flight 30 s after the run ended.
    pub lost: u64,
    /// Queues whose err eventfd fired (their requests count as lost).
    pub ring_errors: u64,
    /// Waits for an interrupt that timed out ([`WAIT_TIMEOUT`]) although
    /// the used ring held completions the driver had asked to be told of:
    /// the back end did not signal them.
    pub missed_signals: u64,
    /// Waits that timed out with requests in flight and none completed:
    /// the back end held every request of the queue for that long.
    pub stalls: u64,
    /// Wall time from the first submission to the last completion.
    pub elapsed: Duration,
    /// Latencies in ns, per queue.
    pub lat_ns: Vec<Vec<u64>>,
    /// Host CPU time (all CPUs) in µs.
    pub cpu_us: u64,
    /// CPU time of this process (the harness: guest driver or io_uring
    /// application) in µs.
    pub harness_cpu_us: u64,
    /// Context switches on the host.
    pub ctxt: u64,
}

impl Sample {
    /// What went wrong, for an error message.
    pub fn describe_errors(&self) -> String {
        format!(
            "{} errors: {} with a bad status, {} never completed, {} queues with a ring error; {} completed",
            self.errors, self.bad_status, self.lost, self.ring_errors, self.ios
        )
    }

    /// Requests per second.
    pub fn iops(&self) -> f64 {
        self.ios as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// MB/s (10^6 bytes).
    pub fn mbps(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency percentile `p` (0..=100) in µs over queue `q`, or over all
    /// queues if `q` is `None`.
    pub fn lat_us(&self, q: Option<usize>, p: f64) -> f64 {
        let mut v: Vec<u64> = match q {
            Some(q) => self.lat_ns.get(q).cloned().unwrap_or_default(),
            None => self.lat_ns.concat(),
        };
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_unstable();
        let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        v[i.min(v.len() - 1)] as f64 / 1000.0
    }

    /// Host CPU µs per request.
    pub fn cpu_us_per_io(&self) -> f64 {
        self.cpu_us as f64 / self.ios.max(1) as f64
    }

    /// Host CPU µs per request outside the harness process (the back-end:
    /// kernel threads, interrupts, another process).
    pub fn backend_cpu_us_per_io(&self) -> f64 {
        self.cpu_us.saturating_sub(self.harness_cpu_us) as f64 / self.ios.max(1) as f64
    }

    /// Completed requests per host CPU-second.
    pub fn ios_per_cpu_s(&self) -> f64 {
        self.ios as f64 / (self.cpu_us as f64 / 1e6).max(1e-9)
    }

    /// One sample from the per-queue results of a run that started at
    /// `start`, with the CPU counters around it.
    fn merge(results: Vec<QueueResult>, start: Instant, before: CpuSnap, after: CpuSnap) -> Self {
        let mut out = Sample::default();
        let mut last = start;
        for r in results {
            out.ios += r.ios;
            out.bytes += r.bytes;
            out.errors += r.errors;
            out.bad_status += r.bad_status;
            out.lost += r.lost;
            out.ring_errors += u64::from(r.ring_error);
            out.missed_signals += r.missed_signals;
            out.stalls += r.stalls;
            last = last.max(r.last);
            out.lat_ns.push(r.lat_ns);
        }
        out.elapsed = last - start;
        out.finish(before, after);
        out
    }

    fn finish(&mut self, before: CpuSnap, after: CpuSnap) {
        self.cpu_us = after.busy_ticks.saturating_sub(before.busy_ticks) * CpuSnap::tick_us();
        self.harness_cpu_us = after.self_us.saturating_sub(before.self_us);
        self.ctxt = after.ctxt.saturating_sub(before.ctxt);
    }
}

/// Chooses offsets and directions for one queue.
struct Picker {
    rng: Rng,
    blocks: u64,
    block_sectors: u64,
    next_seq: u64,
    read_pct: u32,
    sequential: bool,
}

impl Picker {
    fn new(w: &Workload, sectors: u64, q: usize) -> Self {
        let block_sectors = u64::from(w.bs / 512);
        let blocks = (sectors / block_sectors).max(1);
        let nq = w.qd.len() as u64;
        Self {
            rng: Rng::new(q as u64 + 1),
            blocks,
            block_sectors,
            // Sequential queues start in their own part of the device.
            next_seq: blocks / nq * q as u64,
            read_pct: w.read_pct,
            sequential: w.sequential,
        }
    }

    /// (is_read, first sector)
    fn pick(&mut self) -> (bool, u64) {
        let block = if self.sequential {
            let b = self.next_seq % self.blocks;
            self.next_seq += 1;
            b
        } else {
            self.rng.next() % self.blocks
        };
        let read = (self.rng.next() % 100) < u64::from(self.read_pct);
        (read, block * self.block_sectors)
    }
}

/// Whether the driver acked `VIRTIO_RING_F_EVENT_IDX` in `features`.
pub fn event_idx_acked(features: u64) -> bool {
    features & features::bit(features::VIRTIO_RING_F_EVENT_IDX) != 0
}

/// Runs `w` on the virtqueues `queues` of a vhost-blk device or a
/// vhost-user connection whose driver acked `features`, each queue
/// with its `slots`, for `dur`.
pub fn run_virtqueues(
    mem: &ProcessMemory,
    queues: &mut [Queue],
    slots: &[Vec<RequestSlot>],
    features: u64,
    w: &Workload,
    sectors: u64,
    dur: Duration,
) -> Sample {
    let event_idx = event_idx_acked(features);
    let jobs = queues
        .iter_mut()
        .zip(slots)
        .zip(&w.qd)
        .map(|((queue, slots), &qd)| Job {
            mem,
            queue,
            slots,
            event_idx,
            qd,
        })
        .collect();
    run_jobs(jobs, w, sectors, dur)
}

/// Runs `w` on every job (queue) for `dur`, each queue from its own
/// thread, on a device of `sectors` 512-byte sectors.
pub fn run_jobs(jobs: Vec<Job<'_>>, w: &Workload, sectors: u64, dur: Duration) -> Sample {
    let before = CpuSnap::now();
    let start = Instant::now();
    let results: Vec<QueueResult> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .into_iter()
            .enumerate()
            .map(|(q, job)| {
                let picker = Picker::new(w, sectors, q);
                s.spawn(move || {
                    let _pin = pin_guest(w.guest_cpu);
                    drive_queue(job, w.bs, w.guest_poll, picker, start + dur)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    Sample::merge(results, start, before, CpuSnap::now())
}

struct QueueResult {
    ios: u64,
    bytes: u64,
    errors: u64,
    bad_status: u64,
    lost: u64,
    ring_error: bool,
    missed_signals: u64,
    stalls: u64,
    last: Instant,
    lat_ns: Vec<u64>,
}

impl QueueResult {
    fn new() -> Self {
        Self {
            ios: 0,
            bytes: 0,
            errors: 0,
            bad_status: 0,
            lost: 0,
            ring_error: false,
            missed_signals: 0,
            stalls: 0,
            last: Instant::now(),
            lat_ns: Vec::with_capacity(1 << 16),
        }
    }
}

/// How long a driver sleeping for its interrupt waits before it looks at
/// the used ring again (and counts a missed signal or a stall).
pub const WAIT_TIMEOUT: Duration = Duration::from_millis(100);

/// How many empty polls of the used ring a polling guest makes between
/// reads of the error eventfd.
const POLLS_PER_ERR_CHECK: u32 = 1024;

fn drive_queue(
    job: Job<'_>,
    bs: u32,
    poll: bool,
    mut picker: Picker,
    deadline: Instant,
) -> QueueResult {
    let Job {
        mem,
        queue,
        slots,
        event_idx,
        qd,
    } = job;
    let num = usize::from(queue.ring.num());
    let mut res = QueueResult::new();
    // head id -> (slot, submitted at)
    let mut inflight: Vec<Option<(usize, Instant)>> = vec![None; num];
    let mut free: Vec<usize> = (0..usize::from(qd).min(slots.len())).rev().collect();
    let mut outstanding = 0usize;
    let mut stop = false;
    let drain_deadline = deadline + Duration::from_secs(30);
    let mut empty_polls = 0u32;
    if poll {
        // Interrupts off for good, as virtqueue_disable_cb does: without
        // EVENT_IDX by the avail flag; with it by a used_event the used
        // index passes once in 65536 completions.
        queue.ring.set_no_interrupt(mem, true);
        if event_idx {
            queue
                .ring
                .set_used_event(mem, queue.ring.last_used().wrapping_sub(1));
        }
        mem.full_barrier();
    }
    loop {
        if !stop && Instant::now() >= deadline {
            stop = true;
        }
        if !stop && !free.is_empty() {
            let old = queue.ring.avail_idx();
            while let Some(k) = free.pop() {
                let (read, sector) = picker.pick();
                let ty = if read {
                    VIRTIO_BLK_T_IN
                } else {
                    VIRTIO_BLK_T_OUT
                };
                let head = slots[k]
                    .post(mem, &mut queue.ring, ty, sector, ChainLayout::Indirect)
                    .expect("a free descriptor per slot");
                inflight[usize::from(head)] = Some((k, Instant::now()));
                outstanding += 1;
            }
            if queue.ring.needs_kick(mem, old, event_idx) {
                queue.kick.signal();
            }
        }
        let mut got = false;
        while let Some((id, _len)) = queue.ring.pop_used(mem) {
            let now = Instant::now();
            got = true;
            let Some((k, t0)) = inflight.get_mut(id as usize).and_then(Option::take) else {
                res.errors += 1;
                continue;
            };
            outstanding -= 1;
            if slots[k].read_status(mem) == Ok(VIRTIO_BLK_S_OK) {
                res.ios += 1;
                res.bytes += u64::from(bs);
            } else {
                res.errors += 1;
                res.bad_status += 1;
            }
            res.lat_ns.push((now - t0).as_nanos() as u64);
            res.last = now;
            free.push(k);
        }
        if stop && outstanding == 0 {
            break;
        }
        if got {
            continue;
        }
        if Instant::now() >= drain_deadline {
            res.errors += outstanding as u64;
            res.lost += outstanding as u64;
            break;
        }
        if poll {
            empty_polls += 1;
            if empty_polls.is_multiple_of(POLLS_PER_ERR_CHECK) && queue.err.take() != 0 {
                res.errors += outstanding as u64;
                res.lost += outstanding as u64;
                res.ring_error = true;
                break;
            }
            std::hint::spin_loop();
            continue;
        }
        // Nothing completed: ask for an interrupt at the next completion
        // and re-check before sleeping, as virtqueue_enable_cb does.
        if event_idx {
            queue.ring.set_used_event(mem, queue.ring.last_used());
            mem.full_barrier();
            if queue.ring.has_used(mem) {
                continue;
            }
        }
        if queue.err.take() != 0 {
            res.errors += outstanding as u64;
            res.lost += outstanding as u64;
            res.ring_error = true;
            break;
        }
        if !queue.call.wait(WAIT_TIMEOUT) {
            if queue.ring.has_used(mem) {
                res.missed_signals += 1;
            } else {
                res.stalls += 1;
            }
        }
        queue.call.take();
    }
    if poll {
        // The next run on this queue may sleep for its interrupts.
        queue.ring.set_no_interrupt(mem, false);
    }
    res
}

/// Opens `path` for direct I/O.
pub fn open_direct(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))
}

/// Runs `w` with raw `io_uring` on `file` (opened with [`open_direct`]),
/// one ring and thread per queue, for `dur`.
pub fn run_uring(file: &File, w: &Workload, sectors: u64, dur: Duration) -> io::Result<Sample> {
    let mem_mib = mem_mib_for(w.qd.len(), *w.qd.iter().max().unwrap_or(&1), w.bs);
    let mem = ProcessMemory::new(mem_mib << 20)?;
    let mut alloc = BumpAllocator::new(mem.base(), mem.end());
    let bufs: Vec<Vec<u64>> =
        w.qd.iter()
            .map(|&qd| {
                (0..qd)
                    .map(|_| alloc.alloc(u64::from(w.bs), 4096))
                    .collect()
            })
            .collect();
    let before = CpuSnap::now();
    let start = Instant::now();
    let deadline = start + dur;
    let results: Vec<io::Result<QueueResult>> = std::thread::scope(|s| {
        let handles: Vec<_> = bufs
            .iter()
            .enumerate()
            .map(|(q, b)| {
                let picker = Picker::new(w, sectors, q);
                let mem = &mem;
                s.spawn(move || {
                    let _pin = pin_guest(w.guest_cpu);
                    uring_queue(file, mem, b, w.bs, w.guest_poll, picker, deadline)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let after = CpuSnap::now();
    let results = results.into_iter().collect::<io::Result<Vec<_>>>()?;
    Ok(Sample::merge(results, start, before, after))
}

/// How long the io_uring peer waits for a completion before it gives up.
const URING_STALL: Duration = Duration::from_secs(30);

fn uring_queue(
    file: &File,
    mem: &ProcessMemory,
    bufs: &[u64],
    bs: u32,
    poll: bool,
    mut picker: Picker,
    deadline: Instant,
) -> io::Result<QueueResult> {
    use io_uring::{opcode, types, IoUring};

    let qd = bufs.len();
    let mut ring = IoUring::new((qd as u32).next_power_of_two().max(2))?;
    let fd = types::Fd(file.as_raw_fd());
    let mut res = QueueResult::new();
    let mut started: Vec<Instant> = vec![Instant::now(); qd];
    let mut free: Vec<usize> = (0..qd).rev().collect();
    let mut outstanding = 0usize;
    loop {
        let stop = Instant::now() >= deadline;
        if !stop {
            while let Some(k) = free.pop() {
                let (read, sector) = picker.pick();
                let ptr = mem
                    .host_ptr(bufs[k], bs as usize)
                    .expect("buffer inside the mapping");
                let off = sector * 512;
                let sqe = if read {
                    opcode::Read::new(fd, ptr, bs).offset(off).build()
                } else {
                    opcode::Write::new(fd, ptr, bs).offset(off).build()
                }
                .user_data(k as u64);
                started[k] = Instant::now();
                // SAFETY: the buffer lives in `mem`, which outlives the
                // ring: every request is reaped before this returns.
                unsafe { ring.submission().push(&sqe) }
                    .map_err(|_| io::Error::other("io_uring submission queue full"))?;
                outstanding += 1;
            }
        }
        if outstanding == 0 {
            break;
        }
        if poll {
            ring.submit()?;
            let spin_from = Instant::now();
            while ring.completion().is_empty() {
                if spin_from.elapsed() > URING_STALL {
                    return Err(uring_stalled(outstanding));
                }
                std::hint::spin_loop();
            }
        } else {
            uring_wait(&mut ring, outstanding)?;
        }
        let now = Instant::now();
        for cqe in ring.completion() {
            let k = cqe.user_data() as usize;
            outstanding -= 1;
            if cqe.result() == bs as i32 {
                res.ios += 1;
                res.bytes += u64::from(bs);
            } else {
                res.errors += 1;
                res.bad_status += 1;
            }
            res.lat_ns.push((now - started[k]).as_nanos() as u64);
            res.last = now;
            free.push(k);
        }
    }
    Ok(res)
}

/// Submits what is queued and waits for a completion, at most
/// [`URING_STALL`], so that a device that stops completing fails the run
/// instead of hanging it.
fn uring_wait(ring: &mut io_uring::IoUring, outstanding: usize) -> io::Result<()> {
    let limit = io_uring::types::Timespec::new().sec(URING_STALL.as_secs());
    match ring
        .submitter()
        .submit_with_args(1, &io_uring::types::SubmitArgs::new().timespec(&limit))
    {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ETIME) => {
            if ring.completion().is_empty() {
                Err(uring_stalled(outstanding))
            } else {
                Ok(())
            }
        }
        Err(e) => Err(e),
    }
}

fn uring_stalled(outstanding: usize) -> io::Error {
    io::Error::other(format!(
        "io_uring: no completion in {} s with {outstanding} requests outstanding",
        URING_STALL.as_secs()
    ))
}

/// The slab memory of the host in KiB (`Slab:` of `/proc/meminfo`).
pub fn slab_kib() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("Slab:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The median of `v` (NaN if empty).
pub fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_median() {
        let s = Sample {
            lat_ns: vec![(1..=100).map(|i| i * 1000).collect(), vec![500_000]],
            ..Sample::default()
        };
        assert_eq!(s.lat_us(Some(0), 50.0), 51.0);
        assert_eq!(s.lat_us(Some(0), 99.0), 99.0);
        assert_eq!(s.lat_us(Some(1), 50.0), 500.0);
        assert_eq!(s.lat_us(None, 100.0), 500.0);
        assert!(s.lat_us(Some(2), 50.0).is_nan());
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn offsets_stay_on_the_device_and_follow_the_mix() {
        for (kind, bs, queues) in [
            ("randrw", 4096, 1),
            ("read", 65536, 4),
            ("randread", 512, 2),
        ] {
            let w = Workload::new(kind, bs, 8, queues);
            let sectors = 10_000;
            for q in 0..queues {
                let mut p = Picker::new(&w, sectors, q);
                let mut reads = 0;
                for _ in 0..10_000 {
                    let (read, sector) = p.pick();
                    reads += u32::from(read);
                    assert!(sector + u64::from(bs / 512) <= sectors, "{kind}: {sector}");
                    assert_eq!(sector % u64::from(bs / 512), 0);
                }
                let pct = reads / 100;
                assert!(pct.abs_diff(w.read_pct) <= 3, "{kind}: {pct}% reads");
            }
        }
    }
}

/// What an eventfd wake-up costs between two threads: the price every
/// kick and every interrupt of a virtqueue pays, measured alone.
#[derive(Clone, Copy, Debug)]
pub struct WakeCost {
    /// Round trips measured.
    pub rounds: usize,
    /// Median and 99th percentile of a round trip (two wake-ups), in µs.
    pub round_trip_p50_us: f64,
    /// See [`WakeCost::round_trip_p50_us`].
    pub round_trip_p99_us: f64,
    /// Median time the waking thread spends in its `write(2)` to the
    /// eventfd, wake-up included, in µs.
    pub write_p50_us: f64,
}

/// Ping-pong between a thread on `cpu_a` and one on `cpu_b` (the same CPU
/// or two) over two eventfds, `rounds` times: each side sleeps in
/// `poll(2)` until the other writes its eventfd.
pub fn wake_cost(cpu_a: usize, cpu_b: usize, rounds: usize) -> io::Result<WakeCost> {
    let ping = crate::blk::EventFd::new()?;
    let pong = crate::blk::EventFd::new()?;
    let wait = |e: &crate::blk::EventFd| -> io::Result<()> {
        if !e.wait(Duration::from_secs(5)) {
            return Err(io::Error::other("no wake-up in 5 s"));
        }
        e.take();
        Ok(())
    };
    let (rt, wr) = std::thread::scope(|s| -> io::Result<(Vec<f64>, Vec<f64>)> {
        let echo = s.spawn(|| -> io::Result<()> {
            let _pin = crate::testing::CpuPin::to(cpu_b)?;
            for _ in 0..rounds {
                wait(&ping)?;
                pong.signal();
            }
            Ok(())
        });
        let _pin = crate::testing::CpuPin::to(cpu_a)?;
        let mut rt = Vec::with_capacity(rounds);
        let mut wr = Vec::with_capacity(rounds);
        let mut result = Ok(());
        for _ in 0..rounds {
            // Let the echo thread fall asleep first, as a guest or a
            // worker with nothing to do would be.
            std::thread::sleep(Duration::from_micros(200));
            let t0 = Instant::now();
            ping.signal();
            let t1 = Instant::now();
            if let Err(e) = wait(&pong) {
                result = Err(e);
                break;
            }
            rt.push((Instant::now() - t0).as_secs_f64() * 1e6);
            wr.push((t1 - t0).as_secs_f64() * 1e6);
        }
        if result.is_err() {
            // Unblock the echo thread if it waits for a ping.
            ping.signal();
        }
        echo.join()
            .map_err(|_| io::Error::other("the echo thread panicked"))??;
        result.map(|()| (rt, wr))
    })?;
    let pct = |v: &[f64], p: f64| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
    };
    Ok(WakeCost {
        rounds,
        round_trip_p50_us: pct(&rt, 0.5),
        round_trip_p99_us: pct(&rt, 0.99),
        write_p50_us: pct(&wr, 0.5),
    })
}
