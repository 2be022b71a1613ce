// SPDX-License-Identifier: GPL-2.0

//! The statistics file, `<debugfs>/vhost-blk/stats`.
//!
//! C header: [`include/linux/debugfs.h`](srctree/include/linux/debugfs.h).
//!
//! `glue.c` creates the file with a reference of the worker pool as its
//! data; reading it calls [`vhost_blk_rs_stats_show`], which prints the
//! pool in the format documented in `Documentation/vhost-blk/admin-guide.rst`.

use super::glue;
use super::seq::SeqFile;
use crate::worker::Pool;
use core::ffi::{c_int, c_void};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::types::ForeignOwnable;

/// The registered statistics file.
///
/// # Invariants
///
/// The debugfs file exists while this value does, with `data` (a reference
/// of `Arc<Pool>` from `into_foreign`) as its data; at most one exists (the
/// module's init creates it).
pub(crate) struct StatsFile {
    data: *const c_void,
}

// SAFETY: the registration may be dropped from any thread.
unsafe impl Send for StatsFile {}
// SAFETY: `&StatsFile` allows no operation.
unsafe impl Sync for StatsFile {}

impl StatsFile {
    /// Creates the file, showing `pool`.
    pub(crate) fn register(pool: Arc<Pool>) -> Self {
        let data = pool.into_foreign();
        // SAFETY: `data` stays valid until `drop`, which removes the file
        // first. debugfs failures are not errors (debugfs may be absent).
        unsafe { glue::vhost_blk_debugfs_init(data.cast_mut()) };
        // INVARIANT: created above with `data`.
        Self { data }
    }
}

impl Drop for StatsFile {
    fn drop(&mut self) {
        // SAFETY: created by `register`; removing it waits for readers.
        unsafe { glue::vhost_blk_debugfs_exit() };
        // SAFETY: the file is gone, so no reader uses `data` any more; it
        // came from `into_foreign` and is reclaimed once.
        drop(unsafe { <Arc<Pool> as ForeignOwnable>::from_foreign(self.data) });
    }
}

/// `show` of the statistics file.
///
/// # Safety
///
/// `m` must be the `seq_file` being shown and `data` the file's data, set
/// by [`StatsFile::register`].
#[no_mangle]
unsafe extern "C" fn vhost_blk_rs_stats_show(m: *mut glue::seq_file, data: *mut c_void) -> c_int {
    // SAFETY: the caller guarantees `m` for the duration of the call.
    let Some(mut seq) = (unsafe { SeqFile::from_raw(m) }) else {
        return EINVAL.to_errno();
    };
    // SAFETY: `data` is the pool reference of a live `StatsFile` (the file
    // exists, so it has not been dropped).
    let pool = unsafe { <Arc<Pool> as ForeignOwnable>::borrow(data) };
    match pool.show_stats(&mut seq) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}
