// SPDX-License-Identifier: GPL-2.0

//! The pure core of vhost-blk.
//!
//! Everything here is plain, `unsafe`-free logic with no dependency on the
//! kernel crate or on `std`: the vhost and vhost-blk UAPI (ioctl numbers and
//! argument layouts) and the virtio feature bits. The same files are
//! compiled into `vhost_blk.ko` by Kbuild (as the `vcore` module) and by
//! cargo as the `vhost-blk-core` crate, where host tests and the userspace
//! harness use them, so the module and its tests cannot disagree about the
//! wire formats.

pub mod blk;
pub mod config;
pub mod features;
pub mod memory;
pub mod ring;
pub mod sched;
pub mod slots;
pub mod uapi;
