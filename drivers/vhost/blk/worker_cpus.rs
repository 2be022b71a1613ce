// SPDX-License-Identifier: GPL-2.0

//! The `worker_cpus` parameter: which CPUs workers are pinned to, round
//! robin over those of the list that are online.
//!
//! `glue.c` declares the parameter and calls [`set`], [`show`] and
//! [`recount`] through `entry.rs`, with the list's lock held
//! ([`WorkerCpusLocked`]); [`cpu_for`] takes it too. Only [`count`] reads
//! without it: a count that a write or a hotplug event is about to change.

use crate::ffi::cpumask::{cpu_online, AtomicCpuSet, CpuSet};
use crate::ffi::notice_ratelimit;
use crate::ffi::params::WorkerCpusLocked;
use core::ffi::CStr;
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::prelude::*;

/// The list; empty means no pinning. Static, so that a list set while the
/// module loads needs no freeing if the load fails. Read and written under
/// the lock.
static LIST: AtomicCpuSet = AtomicCpuSet::new();

/// How many CPUs of the list are online, for readers that take no lock:
/// kept up to date by [`set`] and the hotplug callbacks ([`recount`]).
static ONLINE: AtomicU32 = AtomicU32::new(0);

/// Sets the list from the text written to the parameter. `EINVAL` if it is
/// not a CPU list or names a CPU that is not online; the list is then left
/// as it was. Called with CPU hotplug held for reading.
pub(crate) fn set(locked: &WorkerCpusLocked, text: &CStr) -> Result {
    let set = CpuSet::parse_list(text).inspect_err(|e| {
        if *e == EINVAL {
            let text = text.to_str().unwrap_or("?").trim_end();
            pr_err!("worker_cpus: '{text}' is not a CPU list\n");
        }
    })?;
    if !set.all_online() {
        pr_err!("worker_cpus: CPUs {} are not online\n", set.offline());
        return Err(EINVAL);
    }
    LIST.store(&set);
    recount(locked, None);
    Ok(())
}

/// Writes the list, as a cpulist and a newline, for reading the parameter.
pub(crate) fn show(_: &WorkerCpusLocked, out: &mut impl core::fmt::Write) -> core::fmt::Result {
    writeln!(out, "{LIST}")
}

/// Counts the list's online CPUs again, leaving out `leaving` (a CPU on its
/// way offline, still in the online mask) if it is one of them.
pub(crate) fn recount(_: &WorkerCpusLocked, leaving: Option<u32>) {
    let mut n = LIST.online_count();
    if let Some(cpu) = leaving {
        if cpu_online(cpu) && LIST.contains(cpu) {
            n = n.saturating_sub(1);
        }
    }
    ONLINE.store(n, Ordering::Relaxed);
}

/// How many CPUs `worker_cpus` pins workers to: those of its CPUs that are
/// online; 0 if it pins none. Takes no lock.
pub(crate) fn count() -> u32 {
    ONLINE.load(Ordering::Relaxed)
}

/// Whether `worker_cpus` pins new workers (it lists an online CPU).
pub(crate) fn pins() -> bool {
    count() != 0
}

/// The CPU for worker `index` under `worker_cpus`: the `(index mod n)`-th
/// of the `n` CPUs of the list that are online. `None` if the list is
/// empty, or if none of its CPUs is online (taken offline after the list
/// was set): the worker then runs unpinned rather than not at all.
pub(crate) fn cpu_for(index: u32) -> Option<u32> {
    let _locked = WorkerCpusLocked::lock();
    match LIST.online_count() {
        // A CPU may go offline between the count and the pick: then there
        // is no pick.
        n @ 1.. => LIST.nth_online(index % n),
        0 => {
            if !LIST.is_empty() && notice_ratelimit() {
                pr_notice!(
                    "worker_cpus: none of CPUs {LIST} is online; new workers run unpinned\n"
                );
            }
            None
        }
    }
}
