// SPDX-License-Identifier: GPL-2.0

//! Userspace harness for `/dev/vhost-blk`.
//!
//! It plays the VMM (the vhost ioctls) and, as the data plane grows, the
//! guest driver too. The selftests and the benchmarks are both built on
//! this library.

pub mod bench;
pub mod blk;
pub mod cgroup;
pub mod child;
pub mod device;
/// The guest driver's side of a split virtqueue (the core's test double).
pub use vhost_blk_core::test_utils::driver;
pub mod fuzz;
pub mod logwrites;
pub mod mem;
pub mod nbd;
pub mod nullb;
pub mod nvmet;
pub mod plot;
/// virtio-blk requests as the guest driver builds them (the core's test double).
pub use vhost_blk_core::test_utils::request;
pub mod selftests;
pub mod stats;
pub mod testing;
pub mod uffd;
pub mod vhost_user;

pub use device::VhostBlk;
