// SPDX-License-Identifier: GPL-2.0

//! A worker's kthread stopped before it ever ran: what it would have taken
//! over must be given back by whoever stops it.

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::placement::kicked_device;
use super::{cpulist, online_cpus, stats};
use crate::selftests::races::reload;
use crate::stats::{fd_ids, ParamGuard};
use crate::testing::{ctx, ensure, CaseResult, CpuPin, KernelLog};

const RT_RUNTIME: &str = "/proc/sys/kernel/sched_rt_runtime_us";

/// Real-time tasks may take a CPU whole (no throttling) until dropped,
/// when the previous limit comes back.
struct RtUnthrottled {
    old: String,
}

impl RtUnthrottled {
    fn new() -> Result<Self, String> {
        let old = ctx(fs::read_to_string(RT_RUNTIME), RT_RUNTIME)?;
        ctx(fs::write(RT_RUNTIME, "-1"), format!("{RT_RUNTIME}: -1"))?;
        Ok(Self {
            old: old.trim().to_string(),
        })
    }
}

impl Drop for RtUnthrottled {
    fn drop(&mut self) {
        let _ = fs::write(RT_RUNTIME, &self.old);
    }
}

/// The fair server of one CPU off until dropped: since 6.12 it reserves
/// normal tasks 50 ms of every second beside real-time ones, throttling
/// or not (`/sys/kernel/debug/sched/fair_server/`).
struct FairServerOff {
    path: String,
    old: String,
}

impl FairServerOff {
    fn on(cpu: usize) -> Result<Self, String> {
        let path = format!("/sys/kernel/debug/sched/fair_server/cpu{cpu}/runtime");
        let old = ctx(fs::read_to_string(&path), &path)?;
        ctx(fs::write(&path, "0"), format!("{path}: 0"))?;
        Ok(Self {
            path,
            old: old.trim().to_string(),
        })
    }
}

impl Drop for FairServerOff {
    fn drop(&mut self) {
        let _ = fs::write(&self.path, &self.old);
    }
}

/// A thread that holds one CPU at `SCHED_FIFO` until dropped: nothing of
/// the normal class runs there meanwhile.
struct CpuHog {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CpuHog {
    fn start(cpu: usize) -> Result<Self, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let pinned = CpuPin::to(cpu).map_err(|e| format!("pin to CPU {cpu}: {e}"));
            let param = libc::sched_param { sched_priority: 10 };
            // SAFETY: 0 is the calling thread; `param` is a live struct.
            let fifo = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
            let ready = match (&pinned, fifo) {
                (Ok(_), 0) => Ok(()),
                (Err(e), _) => Err(e.clone()),
                (_, _) => Err(format!("SCHED_FIFO: {}", std::io::Error::last_os_error())),
            };
            let ok = ready.is_ok();
            let _ = tx.send(ready);
            while ok && !flag.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
            drop(pinned);
        });
        let hog = Self {
            stop,
            thread: Some(thread),
        };
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(hog),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the CPU hog did not start".into()),
        }
    }
}

impl Drop for CpuHog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Polls `f` every 20 ms until it holds or `secs` pass.
fn wait_for(secs: u64, mut f: impl FnMut() -> Result<bool, String>) -> Result<bool, String> {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if f()? {
            return Ok(true);
        }
        if Instant::now() >= until {
            return Ok(false);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The CPU time a thread has had, in nanoseconds
/// (`/proc/<pid>/schedstat`, first field): it grows only while the thread
/// runs.
fn cpu_time_ns(pid: u64) -> Result<u64, String> {
    let path = format!("/proc/{pid}/schedstat");
    let text = ctx(fs::read_to_string(&path), &path)?;
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{path}: {text:?}"))
}

/// How one attempt at stopping a worker before it ran went.
enum Attempt {
    /// The worker was stopped without ever running, and freed.
    StoppedUnrun,
    /// The worker's thread ran after all (the scheduler gave it the held
    /// CPU): the attempt tested nothing.
    Ran(String),
}

/// A worker stopped before its kthread ever ran. The worker is pinned (by
/// `worker_cpus`) to a CPU that a real-time thread holds (real-time
/// throttling and the CPU's fair server off), so its kthread is created
/// and woken but cannot run; its device is closed meanwhile, which takes
/// the worker out of the pool and stops it, so that `kthread_stop` finds
/// it never ran and its function is never called. The reference the
/// function would have taken over must then be dropped by the stopper
/// (`Kthread::drop`): the module counts its workers, and reports at unload
/// those never freed, so the case reloads it (`module`) and reads the
/// kernel log.
///
/// That the thread never ran is checked, not assumed: it made no pass, and
/// its CPU time did not grow from then until the closer waited in
/// `kthread_stop` (the stop flag set, so no run could start after). A
/// thread that ran anyway (the held CPU given to it), or a close that never
/// reached `kthread_stop` while the CPU was held, makes the attempt void,
/// and the case tries again, up to three times.
pub(super) fn workers_stopped_before_first_run(module: Option<&std::path::Path>) -> CaseResult {
    let module = module.ok_or("--module not given")?;
    let module = module.to_str().ok_or("bad module path")?;
    let mut void = Vec::new();
    for _ in 0..3 {
        match stop_before_first_run(module)? {
            Attempt::StoppedUnrun => return Ok(()),
            Attempt::Ran(why) => {
                println!("  attempt void: {why}");
                void.push(why);
            }
        }
    }
    Err(format!(
        "the worker's thread ran in each of {} attempts, so none tested a stop before the \
         first run: {void:?}",
        void.len()
    ))
}

/// One attempt of [`workers_stopped_before_first_run`].
fn stop_before_first_run(module: &str) -> Result<Attempt, String> {
    let cpus = cpulist(&online_cpus()?);
    ensure(cpus.len() >= 2, || {
        format!("needs 2 online CPUs, has {cpus:?}")
    })?;
    let (first, last) = (cpus[0], cpus[cpus.len() - 1]);
    // This thread, and the kworker that reaps, stay off the held CPU.
    let _pin = ctx(CpuPin::to(first), format!("pin to CPU {first}"))?;
    let _g = ParamGuard::set(&[
        ("worker_cpus", &last.to_string()),
        ("queues_per_worker", "1"),
        ("max_workers", "16"),
    ])?;
    let _rt = RtUnthrottled::new()?;
    let _fair = FairServerOff::on(last)?;
    let hog = CpuHog::start(last)?;
    let (dev, kicks) = kicked_device(1)?;
    let (_, workers) = ctx(fd_ids(&dev), "fdinfo")?;
    let &[worker] = &workers[..] else {
        return Err(format!("queue on workers {workers:?}, expected one"));
    };
    thread::sleep(Duration::from_millis(300));
    let st = stats()?;
    let w = st
        .worker(worker)
        .ok_or_else(|| format!("no statistics of worker {worker}"))?;
    let pid = w.num("pid");
    let ran_before = cpu_time_ns(pid)?;
    ensure(w.text("cpus") == last.to_string(), || {
        format!(
            "worker {worker} on CPUs {}, expected {last}",
            w.text("cpus")
        )
    })?;
    if w.num("passes") != 0 {
        return Ok(Attempt::Ran(format!(
            "worker {worker} made {} passes while CPU {last} was held",
            w.num("passes")
        )));
    }
    // The close takes the worker out of the pool, then waits in
    // kthread_stop for a thread that has still not run: on a thread of its
    // own (on this CPU), so that this one can free the CPU.
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let closer = thread::spawn(move || {
        // SAFETY: gettid() has no preconditions.
        let _ = tid_tx.send(unsafe { libc::gettid() });
        drop(kicks);
        drop(dev);
    });
    let closer_tid = tid_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|e| format!("the closer's tid: {e}"))?;
    let reaped = wait_for(10, || Ok(stats()?.worker(worker).is_none()));
    // The stop is under way once the closer waits in kthread_stop: the
    // thread has been told to stop, so it can no longer start its
    // function. Its CPU time read any earlier could miss a run that starts
    // between that read and the stop.
    let wchan = format!("/proc/self/task/{closer_tid}/wchan");
    let stopping = wait_for(10, || {
        Ok(fs::read_to_string(&wchan).is_ok_and(|w| w.trim() == "kthread_stop"))
    })?;
    let task = format!("/proc/{pid}");
    let ran_after = cpu_time_ns(pid);
    drop(hog);
    let closed = closer.join().is_ok();
    ensure(reaped? && closed, || {
        format!("worker {worker} still listed 10 s after its last queue closed")
    })?;
    // A thread gone while its CPU was held ran: it saw the stop and exited.
    let ran_after = ran_after.ok();
    let exited = wait_for(10, || Ok(fs::metadata(&task).is_err()))?;
    ensure(exited, || {
        format!("thread {pid} of worker {worker} still exists 10 s after its CPU was freed")
    })?;
    let mut log = KernelLog::tail()?;
    reload(module)?;
    let leaks: Vec<String> = log
        .read()?
        .into_iter()
        .filter(|l| l.contains("never freed"))
        .collect();
    if !stopping {
        return Ok(Attempt::Ran(format!(
            "the close never waited in kthread_stop for worker {worker}'s thread {pid} while \
             CPU {last} was held"
        )));
    }
    if ran_after != Some(ran_before) {
        // Whatever the log says, this attempt did not stop an unrun thread.
        return Ok(Attempt::Ran(match ran_after {
            Some(ns) => format!(
                "worker {worker}'s thread {pid} ran on held CPU {last} before it was stopped \
                 ({ran_before} ns of CPU time, then {ns})"
            ),
            None => format!("worker {worker}'s thread {pid} exited while CPU {last} was held"),
        }));
    }
    ensure(leaks.is_empty(), || {
        format!("worker {worker}, stopped before it ran, was never freed: {leaks:?}")
    })?;
    println!(
        "  worker {worker} (pid {pid}, CPU {last}) stopped before it ever ran, and freed \
         (none left at unload)"
    );
    Ok(Attempt::StoppedUnrun)
}
