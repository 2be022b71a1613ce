// SPDX-License-Identifier: GPL-2.0

//! Cargo entry point of the pure vhost-blk core; see `mod.rs`.
//!
//! The kernel module includes `mod.rs` directly, so this file only carries
//! the crate-level attributes that a kernel submodule cannot.

#![no_std]
#![forbid(unsafe_code)]

#[path = "mod.rs"]
mod vcore;

pub use vcore::*;

#[cfg(feature = "test-utils")]
extern crate std;

#[cfg(feature = "test-utils")]
pub mod test_utils;
