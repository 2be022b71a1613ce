// SPDX-License-Identifier: GPL-2.0

//! A minimal test runner for the VM selftests: named cases, one line per
//! result, and the closing `N passed, N failed` line.

use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io;
use std::sync::mpsc;
use std::time::Duration;
pub use vhost_blk_core::test_utils::Rng;

/// How long one case may run before the runner gives up on it: above
/// the longest budget of any case (the fairness cases stop at 120 s per
/// phase, the teardown races at 90 s), within the VM's time limit even
/// late in a run, so a hung case fails with a report of what every thread
/// waits on instead of silently using up the VM's time.
pub const CASE_LIMIT: Duration = Duration::from_secs(300);

/// The outcome of one test case: `Err` carries the reason of a failure.
pub type CaseResult = Result<(), String>;

/// Runs each case under the name of its function, so that the two cannot
/// drift apart: `cases!(r, case_one, area::case_two, area::case_three(arg))`
/// runs `case_one()` as "case_one", and so on.
#[macro_export]
macro_rules! cases {
    ($r:expr $(, $($seg:ident)::+ $(( $($arg:expr),* ))?)* $(,)?) => {
        $(
            $r.run($crate::cases!(@name $($seg)::+), || $($seg)::+($($($arg),*)?));
        )*
    };
    (@name $first:ident $(:: $rest:ident)+) => {
        $crate::cases!(@name $($rest)::+)
    };
    (@name $last:ident) => {
        stringify!($last)
    };
}

/// Runs cases and counts their results.
#[derive(Default)]
pub struct Runner {
    passed: usize,
    failed: Vec<(String, String)>,
    filter: Option<String>,
}

impl Runner {
    /// A runner that runs only the cases whose name contains `filter`.
    pub fn new(filter: Option<String>) -> Self {
        Self {
            filter,
            ..Self::default()
        }
    }

    /// Runs one case and prints its result.
    pub fn run(&mut self, name: &str, case: impl FnOnce() -> CaseResult) {
        if let Some(f) = &self.filter {
            if !name.contains(f.as_str()) {
                return;
            }
        }
        let (done, watched) = mpsc::channel::<()>();
        let case_name = name.to_string();
        let watchdog = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = watched.recv_timeout(CASE_LIMIT) {
                println!(
                    "FAIL - {case_name}: still running after {} s; what each task waits on:",
                    CASE_LIMIT.as_secs()
                );
                print_hang_report();
                std::process::exit(1);
            }
        });
        let result = case();
        let _ = done.send(());
        let _ = watchdog.join();
        match result {
            Ok(()) => {
                self.passed += 1;
                println!("ok - {name}");
            }
            Err(why) => {
                println!("FAIL - {name}: {why}");
                self.failed.push((name.to_string(), why));
            }
        }
    }

    /// Prints the failures again, so that they end the log whatever was
    /// printed after them, then the summary line; returns the process
    /// exit status.
    pub fn finish(self) -> i32 {
        for (name, why) in &self.failed {
            println!("failed: {name}: {why}");
        }
        println!("{} passed, {} failed", self.passed, self.failed.len());
        if self.failed.is_empty() && self.passed > 0 {
            0
        } else {
            1
        }
    }
}

/// Prints, for this process and its children (such as a
/// qemu-storage-daemon), every thread's name, wait channel and kernel
/// stack, then vhost-blk's statistics.
fn print_hang_report() {
    let me = std::process::id();
    let mut pids = vec![me];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            // Field 4 of stat, after the parenthesised name, is the parent.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(me) {
                pids.push(pid);
            }
        }
    }
    let read = |p: String| std::fs::read_to_string(p).unwrap_or_default();
    for pid in pids {
        println!(
            "# process {pid} {}",
            read(format!("/proc/{pid}/comm")).trim()
        );
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let t = t.path();
            let t = t.display();
            println!(
                "#   task {} {} wchan {}",
                t,
                read(format!("{t}/comm")).trim(),
                read(format!("{t}/wchan")).trim()
            );
            for line in read(format!("{t}/stack")).lines() {
                println!("#     {line}");
            }
        }
    }
    for line in read(crate::stats::STATS_PATH.to_string()).lines() {
        println!("# {line}");
    }
}

/// Turns an `io::Result` into a [`CaseResult`] with context.
pub fn ctx<T, C: Display>(r: io::Result<T>, what: C) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// Checks that `r` failed with `errno`.
pub fn expect_errno<T: std::fmt::Debug>(r: io::Result<T>, errno: i32, what: &str) -> CaseResult {
    match r {
        Ok(v) => Err(format!("{what}: succeeded ({v:?}), expected errno {errno}")),
        Err(e) if e.raw_os_error() == Some(errno) => Ok(()),
        Err(e) => Err(format!("{what}: failed with {e}, expected errno {errno}")),
    }
}

/// Fails with `msg` unless `cond` holds.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> CaseResult {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

/// The kernel log from the moment of [`KernelLog::tail`] on.
pub struct KernelLog {
    kmsg: File,
}

impl KernelLog {
    /// Starts reading the kernel log at its current end.
    pub fn tail() -> Result<Self, String> {
        use std::io::{Seek, SeekFrom};
        use std::os::unix::fs::OpenOptionsExt;
        let mut kmsg = ctx(
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open("/dev/kmsg"),
            "/dev/kmsg",
        )?;
        ctx(kmsg.seek(SeekFrom::End(0)), "seek /dev/kmsg")?;
        Ok(Self { kmsg })
    }

    /// The messages logged since [`Self::tail`] or the last call.
    pub fn read(&mut self) -> Result<Vec<String>, String> {
        use std::io::{ErrorKind, Read};
        let mut lines = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match self.kmsg.read(&mut buf) {
                // One record per read: "prio,seq,time,flags;text\n".
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    let text = rec.split_once(';').map_or(&*rec, |(_, t)| t);
                    lines.push(text.lines().next().unwrap_or("").to_string());
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(lines),
                // Records overwritten before they were read.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) => return Err(format!("read /dev/kmsg: {e}")),
            }
        }
    }
}

/// Runs `rmmod name`, retrying for up to `timeout` while it fails: a
/// module stays in use for a moment after its last user went (a closed
/// vhost-blk device whose bios are still in flight holds the module until
/// they complete).
pub fn unload_module(name: &str, timeout: std::time::Duration) -> CaseResult {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let out = ctx(
            std::process::Command::new("rmmod").arg(name).output(),
            "rmmod",
        )?;
        if out.status.success() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "rmmod {name} failed for {timeout:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The CPU set holding `cpu` alone.
fn one_cpu(cpu: usize) -> io::Result<libc::cpu_set_t> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE, so the bit is inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    Ok(set)
}

/// The calling thread pinned to one CPU until the value is dropped, when
/// its previous affinity comes back.
pub struct CpuPin {
    old: libc::cpu_set_t,
}

impl CpuPin {
    /// Pins the calling thread to `cpu`.
    pub fn to(cpu: usize) -> io::Result<Self> {
        // SAFETY: an all-zero cpu_set_t is a valid empty set.
        let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: `old` is a live cpu_set_t of `size` bytes; 0 is the
        // calling thread.
        if unsafe { libc::sched_getaffinity(0, size, &mut old) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let set = one_cpu(cpu)?;
        // SAFETY: `set` is a live cpu_set_t of `size` bytes.
        if unsafe { libc::sched_setaffinity(0, size, &set) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { old })
    }
}

/// Pins every thread of process `pid` to `cpu` (threads it starts later
/// inherit the affinity of the thread that starts them).
pub fn pin_process(pid: u32, cpu: usize) -> io::Result<()> {
    let set = one_cpu(cpu)?;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Some(tid) = task?
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok())
        else {
            continue;
        };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: `set` is a live cpu_set_t of `size` bytes.
        if unsafe { libc::sched_setaffinity(tid, size, &set) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

impl Drop for CpuPin {
    fn drop(&mut self) {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: `old` is a live cpu_set_t of `size` bytes.
        unsafe { libc::sched_setaffinity(0, size, &self.old) };
    }
}
