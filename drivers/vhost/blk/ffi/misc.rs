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
use crate::dev::VhostBlkDev;
use core::ffi::{c_int, c_long, c_uint, c_ulong, c_void};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::types::ForeignOwnable;

/// A registration of the `/dev/vhost-blk` misc device.
///
/// # Invariants
///
/// The misc device in `glue.c` is registered for as long as this value
/// exists, and at most one `MiscRegistration` exists at a time (it is only
/// created by the module's init).
pub(crate) struct MiscRegistration(());

impl MiscRegistration {
    /// Registers `/dev/vhost-blk`.
    pub(crate) fn register() -> Result<Self> {
        // SAFETY: `vhost_blk_misc_register` has no preconditions; the misc
        // device is static in glue.c and not registered yet (by the type
        // invariant, no other `MiscRegistration` exists).
        let ret = unsafe { glue::vhost_blk_misc_register() };
        kernel::error::to_result(ret)?;
        // INVARIANT: the device was just registered.
        Ok(Self(()))
    }
}

impl Drop for MiscRegistration {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the device is registered, and it is
        // deregistered exactly once, here.
        unsafe { glue::vhost_blk_misc_deregister() };
    }
}

/// `open` of `/dev/vhost-blk`: creates a device and stores one reference to
/// it in `*devp`.
///
/// # Safety
///
/// `devp` must be valid for writes of a pointer.
#[no_mangle]
unsafe extern "C" fn vhost_blk_rs_open(devp: *mut *mut c_void) -> c_int {
    match VhostBlkDev::new() {
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
