// SPDX-License-Identifier: GPL-2.0

//! Writing text into a `seq_file`, for debugfs and fdinfo.
//!
//! C header: [`include/linux/seq_file.h`](srctree/include/linux/seq_file.h).

use super::glue::seq_file;
use core::ptr::NonNull;

/// A `seq_file` being shown, borrowed for one `show` callback.
///
/// # Invariants
///
/// `m` points to a `struct seq_file` inside its `show` callback, valid for
/// the lifetime of this value.
pub(crate) struct SeqFile {
    m: NonNull<seq_file>,
}

impl SeqFile {
    /// Wraps `m`.
    ///
    /// # Safety
    ///
    /// `m` must be a `seq_file` in a `show` callback that lasts as long as
    /// the returned value.
    pub(crate) unsafe fn from_raw(m: *mut seq_file) -> Option<Self> {
        // INVARIANT: the caller guarantees validity for our lifetime.
        NonNull::new(m).map(|m| Self { m })
    }
}

impl core::fmt::Write for SeqFile {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        // SAFETY: `m` is valid (type invariant) and `s` is valid for
        // `s.len()` bytes. An overflowing seq_file is retried by the seq
        // core with a bigger buffer.
        unsafe { kernel::bindings::seq_write(self.m.as_ptr().cast(), s.as_ptr().cast(), s.len()) };
        Ok(())
    }
}
