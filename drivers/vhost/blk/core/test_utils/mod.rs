// SPDX-License-Identifier: GPL-2.0

//! Test doubles of the core, for the host tests of this crate and of its
//! users (the `test-utils` feature; never part of the kernel module): a
//! guest memory in a buffer and the guest driver's side of a split
//! virtqueue, which can also build every malformed ring a hostile guest
//! could.

pub mod driver;
pub mod memory;
pub mod request;
mod rng;

pub use rng::Rng;
