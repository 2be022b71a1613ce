// SPDX-License-Identifier: GPL-2.0

//! The `/dev/vhost-blk` misc device.
//!
//! C header: [`include/linux/miscdevice.h`](srctree/include/linux/miscdevice.h).
//!
//! `glue.c` owns the `struct miscdevice` and its `file_operations`; they
//! forward `open`, `release` and `unlocked_ioctl` to the `extern "C"`
//! functions here, which own one reference of an [`Arc<VhostBlkDev>`] per
//! open file in `file->private_data`.

use super::glue;
use super::seq::SeqFile;
use crate::dev::VhostBlkDev;
use crate::worker::Pool;
use core::ffi::{c_int, c_long, c_uint, c_ulong, c_void};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::types::ForeignOwnable;

/// A registration of the `/dev/vhost-blk` misc device.
///
/// # Invariants
///
/// The misc device in `glue.c` is registered for as long as this value
/// exists, with `pool` (a reference of `Arc<Pool>` from `into_foreign`) as
/// the data its `open` gets; at most one `MiscRegistration` exists at a
/// time (it is only created by the module's init).
pub(crate) struct MiscRegistration {
    pool: *const c_void,
}

// SAFETY: the registration may be dropped from any thread.
unsafe impl Send for MiscRegistration {}
// SAFETY: `&MiscRegistration` allows no operation.
unsafe impl Sync for MiscRegistration {}

impl MiscRegistration {
    /// Registers `/dev/vhost-blk`, whose devices are served by `pool`.
    pub(crate) fn register(pool: Arc<Pool>) -> Result<Self> {
        let data = pool.into_foreign();
        // SAFETY: the misc device is static in glue.c and not registered
        // yet (by the type invariant, no other `MiscRegistration` exists);
        // `data` stays valid until the device is deregistered.
        let ret = unsafe { glue::vhost_blk_misc_register(data.cast_mut()) };
        if let Err(e) = kernel::error::to_result(ret) {
            // SAFETY: not registered, so nothing else uses `data`.
            drop(unsafe { <Arc<Pool> as ForeignOwnable>::from_foreign(data) });
            return Err(e);
        }
        // INVARIANT: the device was just registered with `data`.
        Ok(Self { pool: data })
    }
}

impl Drop for MiscRegistration {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the device is registered, and it is
        // deregistered exactly once, here.
        unsafe { glue::vhost_blk_misc_deregister() };
        // SAFETY: no `open` can run any more; the reference came from
        // `into_foreign` and is reclaimed once. Open devices hold their
        // own references.
        drop(unsafe { <Arc<Pool> as ForeignOwnable>::from_foreign(self.pool) });
    }
}

/// `open` of `/dev/vhost-blk`: creates a device and stores one reference to
/// it in `*devp`.
///
/// # Safety
///
/// `data` must be the data of the live [`MiscRegistration`], and `devp`
/// must be valid for writes of a pointer.
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
    dev.release();
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
