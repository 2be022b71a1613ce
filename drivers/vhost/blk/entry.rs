// SPDX-License-Identifier: GPL-2.0

//! The functions `glue.c` calls into the driver: the file operations of
//! `/dev/vhost-blk`, the statistics file's `show`, the worker pool's
//! reaping work and its CPU-online callback, and the `worker_cpus`
//! parameter (prototypes in `glue.h`).
//!
//! Each gets back, as a `void *`, a reference lent to C by an `ffi`
//! registration that the module's init made with the type named here:
//! [`Misc`], [`Stats`], [`CpuOnline`] and [`Reap`] hold the worker pool,
//! and an open file holds its device.

use crate::dev::VhostBlkDev;
use crate::ffi::debugfs::StatsFile;
use crate::ffi::glue;
use crate::ffi::misc::MiscRegistration;
use crate::ffi::module::ModuleHeld;
use crate::ffi::params::{ParamPage, WorkerCpusLocked};
use crate::ffi::seq::SeqFile;
use crate::ffi::worker::{CpuOnlineHook, ReapHook};
use crate::queue::Pool;
use crate::worker_cpus;
use core::ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_void, CStr};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::types::ForeignOwnable;

/// `/dev/vhost-blk`, whose `open` gets the pool.
pub(crate) type Misc = MiscRegistration<Pool>;
/// The statistics file, which shows the pool.
pub(crate) type Stats = StatsFile<Pool>;
/// The CPU-online callback's registration, for the pool.
pub(crate) type CpuOnline = CpuOnlineHook<Pool>;
/// The reaping work's registration, for the pool.
pub(crate) type Reap = ReapHook<Pool>;

/// Registers `/dev/vhost-blk` for `pool`. The module's init calls each
/// `register_*` once.
pub(crate) fn register_misc(pool: Arc<Pool>) -> Result<Misc> {
    // SAFETY: `vhost_blk_rs_open` takes its data as an `Arc<Pool>`; the
    // module's init registers the device once.
    unsafe { Misc::register(pool) }
}

/// Creates the statistics file, showing `pool`.
pub(crate) fn register_stats(pool: Arc<Pool>) -> Stats {
    // SAFETY: `vhost_blk_rs_stats_show` takes its data as an `Arc<Pool>`;
    // the module's init creates the file once.
    unsafe { Stats::register(pool) }
}

/// Registers the CPU-online callback for `pool`.
pub(crate) fn register_cpu_online(pool: Arc<Pool>) -> Result<CpuOnline> {
    // SAFETY: `vhost_blk_rs_cpu_online` takes its data as an `Arc<Pool>`;
    // the module's init registers the callback once.
    unsafe { CpuOnline::register(pool) }
}

/// Registers the reaping work for `pool`.
pub(crate) fn register_reap(pool: Arc<Pool>) -> Reap {
    // SAFETY: `vhost_blk_rs_reap` takes its data as an `Arc<Pool>`; the
    // module's init registers the work once.
    unsafe { Reap::register(pool) }
}

/// `open` of `/dev/vhost-blk`: creates a device and stores one reference to
/// it in `*devp`.
///
/// # Safety
///
/// `data` must be the data of the live [`Misc`], and `devp` must be valid
/// for writes of a pointer.
#[no_mangle]
unsafe extern "C" fn vhost_blk_rs_open(data: *mut c_void, devp: *mut *mut c_void) -> c_int {
    // SAFETY: the caller guarantees `data` is the registration's pool
    // reference, alive while the device is registered.
    let pool = unsafe { <Arc<Pool> as ForeignOwnable>::borrow(data) };
    match VhostBlkDev::new(pool.into()) {
        Ok(dev) => {
            // SAFETY: the caller guarantees `devp` is valid for writes.
            unsafe { *devp = dev.into_foreign().cast_mut() };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `release` of `/dev/vhost-blk`: drops the file's reference.
///
/// # Safety
///
/// `dev` must come from [`vhost_blk_rs_open`], and this must be the last use
/// of it (the file is being released).
#[no_mangle]
unsafe extern "C" fn vhost_blk_rs_release(dev: *mut c_void) {
    // SAFETY: the caller guarantees `dev` came from `into_foreign` in
    // `vhost_blk_rs_open` and is not used again.
    let dev = unsafe { <Arc<VhostBlkDev> as ForeignOwnable>::from_foreign(dev) };
    // SAFETY: the file being released holds a reference on the module
    // (its file_operations' owner) until this returns.
    let held = unsafe { ModuleHeld::new() };
    dev.release(&held);
}

/// `unlocked_ioctl` (and, through `compat_ptr_ioctl`, `compat_ioctl`).
///
/// # Safety
///
/// `dev` must come from [`vhost_blk_rs_open`] and its file must not have been
/// released yet.
#[no_mangle]
unsafe extern "C" fn vhost_blk_rs_ioctl(dev: *mut c_void, cmd: c_uint, arg: c_ulong) -> c_long {
    // SAFETY: the caller guarantees `dev` came from `into_foreign` and that
    // `vhost_blk_rs_release` has not run, so the reference is alive for the
    // duration of this call.
    let dev = unsafe { <Arc<VhostBlkDev> as ForeignOwnable>::borrow(dev) };
    match VhostBlkDev::ioctl(dev, cmd, arg as usize) {
        Ok(v) => v as c_long,
        Err(e) => e.to_errno() as c_long,
    }
}

/// `show_fdinfo`: which device and worker an open file is.
///
/// # Safety
///
/// `dev` must come from [`vhost_blk_rs_open`] and its file must not have been
/// released yet; `m` must be the `seq_file` being shown.
#[no_mangle]
unsafe extern "C" fn vhost_blk_rs_show_fdinfo(dev: *mut c_void, m: *mut glue::seq_file) {
    // SAFETY: as in `vhost_blk_rs_ioctl`.
    let dev = unsafe { <Arc<VhostBlkDev> as ForeignOwnable>::borrow(dev) };
    // SAFETY: the caller guarantees `m` for the duration of the call.
    if let Some(mut seq) = unsafe { SeqFile::from_raw(m) } {
        // A full seq_file is retried by the seq core; nothing to report.
        let _ = dev.show_fdinfo(&mut seq);
    }
}

/// `show` of the statistics file, in the format documented in
/// `Documentation/vhost-blk/admin-guide.rst`.
///
/// # Safety
///
/// `m` must be the `seq_file` being shown and `data` the data of the live
/// [`Stats`].
#[no_mangle]
unsafe extern "C" fn vhost_blk_rs_stats_show(m: *mut glue::seq_file, data: *mut c_void) -> c_int {
    // SAFETY: the caller guarantees `m` for the duration of the call.
    let Some(mut seq) = (unsafe { SeqFile::from_raw(m) }) else {
        return EINVAL.to_errno();
    };
    // SAFETY: `data` is the pool reference of the live `Stats` (the file
    // exists, so it has not been dropped).
    let pool = unsafe { <Arc<Pool> as ForeignOwnable>::borrow(data) };
    match pool.show_stats(&mut seq) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// The reaping work's callback: stops the workers that let go of their
/// last queue ([`Pool::reap_idle`]).
///
/// # Safety
///
/// `data` must be NULL or the data of the registered [`Reap`].
#[no_mangle]
unsafe extern "C" fn vhost_blk_rs_reap(data: *mut c_void) {
    if data.is_null() {
        return;
    }
    // SAFETY: the data of the registered hook (the caller's guarantee),
    // which stays registered until this returns.
    let pool = unsafe { <Arc<Pool> as ForeignOwnable>::borrow(data) };
    pool.reap_idle();
}

/// The CPU-online callback: pins again the workers the scheduler unpinned
/// when `cpu` went offline ([`Pool::cpu_online`]).
///
/// # Safety
///
/// `data` must be the data of the registered [`CpuOnline`]; called in
/// process context with CPU hotplug locked.
#[no_mangle]
unsafe extern "C" fn vhost_blk_rs_cpu_online(data: *mut c_void, cpu: u32) {
    // SAFETY: `data` is the pool reference of the live `CpuOnline` (its
    // state is registered, so it has not been dropped).
    let pool = unsafe { <Arc<Pool> as ForeignOwnable>::borrow(data) };
    pool.cpu_online(cpu);
}

/// `set` of the `worker_cpus` parameter ([`worker_cpus::set`]).
///
/// # Safety
///
/// `val` must be a NUL-terminated string; called with CPU hotplug held for
/// reading and the list's lock held.
#[no_mangle]
unsafe extern "C" fn vhost_blk_rs_worker_cpus_set(val: *const c_char) -> c_int {
    // SAFETY: the caller guarantees a NUL-terminated string.
    let text = unsafe { CStr::from_ptr(val) };
    // SAFETY: the caller holds the lock until this returns.
    let locked = unsafe { WorkerCpusLocked::assume_held() };
    match worker_cpus::set(&locked, text) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `get` of the `worker_cpus` parameter: fills `buf`, returns its length.
///
/// # Safety
///
/// `buf` must be the page given to `get`; called with the list's lock
/// held.
#[no_mangle]
unsafe extern "C" fn vhost_blk_rs_worker_cpus_get(buf: *mut c_char) -> c_int {
    // SAFETY: the caller guarantees the page.
    let mut page = unsafe { ParamPage::from_raw(buf) };
    // SAFETY: the caller holds the lock until this returns.
    let locked = unsafe { WorkerCpusLocked::assume_held() };
    // The page cuts what does not fit; nothing fails.
    let _ = worker_cpus::show(&locked, &mut page);
    page.len() as c_int
}

/// The hotplug callbacks' recount of `worker_cpus` ([`worker_cpus::recount`]):
/// `leaving` is a CPU going offline, or negative for none.
///
/// # Safety
///
/// Called with CPU hotplug held and the list's lock held.
#[no_mangle]
unsafe extern "C" fn vhost_blk_rs_worker_cpus_recount(leaving: c_int) {
    // SAFETY: the caller holds the lock until this returns.
    let locked = unsafe { WorkerCpusLocked::assume_held() };
    worker_cpus::recount(&locked, u32::try_from(leaving).ok());
}
