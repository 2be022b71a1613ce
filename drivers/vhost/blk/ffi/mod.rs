// SPDX-License-Identifier: GPL-2.0

//! The FFI layer: owning wrappers around the C objects vhost-blk uses, and
//! the `extern "C"` entry points the C glue calls.
//!
//! This is the only place in the module with `unsafe` code. Everything
//! above it works with safe types.

pub(crate) mod bdev;
pub(crate) mod eventfd;
pub(crate) mod misc;
pub(crate) mod mm;

/// Functions implemented in `glue.c` (prototypes in `glue.h`).
pub(crate) mod glue {
    use super::bdev::BdevInfo;
    use core::ffi::c_int;

    /// Declares opaque stand-ins for C structs only handled by pointer.
    macro_rules! opaque {
        ($($name:ident),*) => {$(
            #[repr(C)]
            pub(crate) struct $name {
                _data: [u8; 0],
                _marker: core::marker::PhantomData<(*mut u8, core::marker::PhantomPinned)>,
            }
        )*};
    }
    opaque!(eventfd_ctx, file, mm_struct);

    extern "C" {
        pub(super) fn vhost_blk_misc_register() -> c_int;
        pub(super) fn vhost_blk_misc_deregister();
        pub(super) fn vhost_blk_mm_get_current() -> *mut mm_struct;
        pub(super) fn vhost_blk_mm_put(mm: *mut mm_struct);
        pub(super) fn vhost_blk_mm_is_current(mm: *const mm_struct) -> bool;
        pub(super) fn vhost_blk_eventfd_get(fd: c_int, err: *mut c_int) -> *mut eventfd_ctx;
        pub(super) fn vhost_blk_eventfd_put(ctx: *mut eventfd_ctx);
        pub(super) fn vhost_blk_bdev_fget(
            fd: c_int,
            info: *mut BdevInfo,
            err: *mut c_int,
        ) -> *mut file;
        pub(super) fn vhost_blk_fput(file: *mut file);
    }
}
