// SPDX-License-Identifier: GPL-2.0

//! The FFI layer: owning wrappers around the C objects vhost-blk uses, and
//! the `extern "C"` entry points the C glue calls.
//!
//! This is the only place in the module with `unsafe` code. Everything
//! above it works with safe types.

pub(crate) mod misc;

/// Functions implemented in `glue.c` (prototypes in `glue.h`).
mod glue {
    extern "C" {
        pub(super) fn vhost_blk_misc_register() -> core::ffi::c_int;
        pub(super) fn vhost_blk_misc_deregister();
    }
}
