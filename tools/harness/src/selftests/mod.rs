// SPDX-License-Identifier: GPL-2.0

//! VM selftest cases, grouped by area; `vhost-blk-selftest` runs them.

pub mod completion;
pub mod config;
pub mod control;
pub mod disks;
pub mod failing;
pub mod flush;
pub mod hostile;
pub mod io;
pub mod isolation;
pub mod peers;
pub mod races;
pub mod workers;
