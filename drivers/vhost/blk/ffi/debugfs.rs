// SPDX-License-Identifier: GPL-2.0

//! The statistics file, `<debugfs>/vhost-blk/stats`.
//!
//! C header: [`include/linux/debugfs.h`](srctree/include/linux/debugfs.h).
//!
//! `glue.c` creates the file with the data registered here; reading it
//! calls `vhost_blk_rs_stats_show` (`entry.rs`).

use super::glue;
use super::lent::LentArc;
use kernel::sync::Arc;

/// The registered statistics file, whose reads get a reference of `T`.
///
/// # Invariants
///
/// The debugfs file exists while this value does, with the lent data's pointer
/// as its data; at most one exists (the module's init creates it).
pub(crate) struct StatsFile<T: Send + Sync + 'static> {
    _data: LentArc<T>,
}

impl<T: Send + Sync> StatsFile<T> {
    /// Creates the file, showing `data`.
    ///
    /// # Safety
    ///
    /// `T` must be the type `vhost_blk_rs_stats_show` takes its data as,
    /// and no other `StatsFile` may exist.
    pub(crate) unsafe fn register(data: Arc<T>) -> Self {
        let data = LentArc::new(data);
        // SAFETY: `data` stays lent until `drop`, which removes the file
        // first; reads take it as a `T` (the caller's guarantee). debugfs failures are not errors (debugfs may be absent).
        unsafe { glue::vhost_blk_debugfs_init(data.as_ptr()) };
        // INVARIANT: created above with `data`.
        Self { _data: data }
    }
}

impl<T: Send + Sync> Drop for StatsFile<T> {
    fn drop(&mut self) {
        // SAFETY: created by `register`; removing it waits for readers, so
        // `data` may be reclaimed when it drops.
        unsafe { glue::vhost_blk_debugfs_exit() };
    }
}
