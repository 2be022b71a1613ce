// SPDX-License-Identifier: GPL-2.0

//! The `/dev/vhost-blk` misc device.
//!
//! C header: [`include/linux/miscdevice.h`](srctree/include/linux/miscdevice.h).
//!
//! `glue.c` owns the `struct miscdevice` and its `file_operations`; they
//! forward `open`, `release`, `unlocked_ioctl` and `show_fdinfo` to the
//! `vhost_blk_rs_*` functions of `entry.rs`. `open` gets the data
//! registered here.

use super::glue;
use super::lent::LentArc;
use kernel::prelude::*;
use kernel::sync::Arc;

/// A registration of the `/dev/vhost-blk` misc device, whose `open` gets
/// a reference of `T`.
///
/// # Invariants
///
/// The misc device in `glue.c` is registered for as long as this value
/// exists, with the lent data's pointer as the data its `open` gets; at most one
/// `MiscRegistration` exists at a time (only the module's init creates
/// one).
pub(crate) struct MiscRegistration<T: Send + Sync + 'static> {
    _data: LentArc<T>,
}

impl<T: Send + Sync> MiscRegistration<T> {
    /// Registers `/dev/vhost-blk`, whose `open` gets `data`.
    ///
    /// # Safety
    ///
    /// `T` must be the type `vhost_blk_rs_open` takes its data as, and no
    /// other `MiscRegistration` may exist.
    pub(crate) unsafe fn register(data: Arc<T>) -> Result<Self> {
        let data = LentArc::new(data);
        // `data` stays lent until the device is deregistered (in `drop`),
        // and is reclaimed on failure with nothing registered.
        // SAFETY: the static misc device of glue.c is not registered yet,
        // and `open` takes `data` as a `T` (both the caller's guarantee).
        let ret = unsafe { glue::vhost_blk_misc_register(data.as_ptr()) };
        kernel::error::to_result(ret)?;
        // INVARIANT: the device was just registered with `data`.
        Ok(Self { _data: data })
    }
}

impl<T: Send + Sync> Drop for MiscRegistration<T> {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the device is registered, and it is
        // deregistered exactly once, here. No `open` can run afterwards,
        // so `data` may be reclaimed when it drops; open files hold their
        // own references.
        unsafe { glue::vhost_blk_misc_deregister() };
    }
}
