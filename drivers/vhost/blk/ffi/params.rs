// SPDX-License-Identifier: GPL-2.0

//! The module's parameters.
//!
//! C header: [`include/linux/moduleparam.h`](srctree/include/linux/moduleparam.h).
//!
//! 6.12's `module!` macro has no `params:`, so the parameters are declared
//! with `module_param_cb` in `glue.c`, which also checks their ranges when
//! they are written. Each function here reads the current value once; callers
//! read a parameter when they need it, so runtime changes take effect at
//! the next scheduling turn or the next device. Documented in
//! `Documentation/vhost-blk/admin-guide.rst`.

use super::glue;
use crate::vcore::sched::Quota;

/// The current value of an unsigned parameter of `glue.c`, read once
/// (`READ_ONCE`): a write through sysfs may race with it, and then either
/// value is fine. The variables are `static mut` to Rust, as C writes
/// them; Rust only reads them, through a raw pointer.
macro_rules! param {
    ($name:ident) => {
        // SAFETY: a live `unsigned int` of `glue.c` for as long as the
        // module is loaded, never borrowed; a volatile read of an aligned
        // `u32` is never torn.
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!(glue::$name)) }
    };
}

/// `poll_budget_us`, in nanoseconds: how long a worker polls idle queues
/// before it sleeps; 0 never polls.
pub(crate) fn poll_budget_ns() -> u64 {
    u64::from(param!(vhost_blk_poll_budget_us)) * 1000
}

/// `queues_per_worker`: queues a worker serves before another one starts.
pub(crate) fn queues_per_worker() -> u32 {
    param!(vhost_blk_queues_per_worker)
}

/// `max_workers`, with 0 resolved to the number of online CPUs.
pub(crate) fn max_workers() -> u32 {
    match param!(vhost_blk_max_workers) {
        0 => super::worker::online_cpus(),
        n => n,
    }
}

/// `quota_reqs` and `quota_kib`: what one queue may take in one turn.
pub(crate) fn quota() -> Quota {
    Quota {
        requests: param!(vhost_blk_quota_reqs),
        bytes: u64::from(param!(vhost_blk_quota_kib)) * 1024,
    }
}

/// `publish_batch`: requests a turn takes between two publications of its
/// completions; 0 publishes once per turn.
pub(crate) fn publish_batch() -> u32 {
    param!(vhost_blk_publish_batch)
}

/// Proof that the lock of `worker_cpus` (in `glue.c`) is held: whoever
/// reads or writes the list and its count holds it. It nests inside CPU
/// hotplug's lock and the worker pool's. Stays on the thread that holds
/// the lock (neither `Send` nor `Sync`).
///
/// # Invariants
///
/// The lock is held while the value lives; it is released on drop if
/// `owned`.
pub(crate) struct WorkerCpusLocked {
    owned: bool,
    _not_send: core::marker::PhantomData<*mut ()>,
}

impl WorkerCpusLocked {
    /// Takes the lock (a mutex: may sleep).
    pub(crate) fn lock() -> Self {
        // SAFETY: process context; released by `drop`.
        unsafe { glue::vhost_blk_worker_cpus_lock() };
        // INVARIANT: taken above, released on drop.
        Self {
            owned: true,
            _not_send: core::marker::PhantomData,
        }
    }

    /// # Safety
    ///
    /// The caller must hold the lock for as long as the value lives (the
    /// C glue's callers of `entry.rs` do).
    pub(crate) unsafe fn assume_held() -> Self {
        // INVARIANT: guaranteed by the caller, who releases it.
        Self {
            owned: false,
            _not_send: core::marker::PhantomData,
        }
    }
}

impl Drop for WorkerCpusLocked {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: taken by `lock` on this thread (type invariant).
            unsafe { glue::vhost_blk_worker_cpus_unlock() };
        }
    }
}

/// The page a parameter's `get` fills, as text (`sysfs_emit`): what does
/// not fit is cut.
///
/// # Invariants
///
/// `buf` is valid for writes of `PAGE_SIZE` bytes for `'a`; `len` is
/// below `PAGE_SIZE`.
pub(crate) struct ParamPage<'a> {
    buf: *mut u8,
    len: usize,
    _life: core::marker::PhantomData<&'a mut u8>,
}

impl ParamPage<'_> {
    /// # Safety
    ///
    /// `buf` must be the page given to a `kernel_param_ops` `get`, valid
    /// for writes of `PAGE_SIZE` bytes while the value lives.
    pub(crate) unsafe fn from_raw(buf: *mut core::ffi::c_char) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            buf: buf.cast(),
            len: 0,
            _life: core::marker::PhantomData,
        }
    }

    /// The bytes written, for `get` to return.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl core::fmt::Write for ParamPage<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        // As `sysfs_emit`: at most a page less one byte.
        let n = s.len().min(kernel::page::PAGE_SIZE - 1 - self.len);
        // SAFETY: `len + n` is below `PAGE_SIZE` (type invariant).
        unsafe { core::ptr::copy_nonoverlapping(s.as_ptr(), self.buf.add(self.len), n) };
        self.len += n;
        Ok(())
    }
}
