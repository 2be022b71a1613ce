// SPDX-License-Identifier: GPL-2.0

//! One open `/dev/vhost-blk`: a vhost-blk device and its ioctl state
//! machine.

use crate::vcore::{features, uapi};
use kernel::error::Error;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};
use kernel::uaccess::UserSlice;

/// `-EOPNOTSUPP`, which `kernel::error::code` of 6.12 lacks.
fn eopnotsupp() -> Error {
    Error::from_errno(-(kernel::bindings::EOPNOTSUPP as i32))
}

/// Device state protected by [`VhostBlkDev::state`].
struct State {
    /// Features acked by `VHOST_SET_FEATURES`.
    acked_features: u64,
    /// Backend features acked by `VHOST_SET_BACKEND_FEATURES`.
    acked_backend_features: u64,
}

/// A vhost-blk device: the state behind one open file of `/dev/vhost-blk`.
#[pin_data]
pub(crate) struct VhostBlkDev {
    #[pin]
    state: Mutex<State>,
}

impl VhostBlkDev {
    /// Creates a device for a new open file.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                state <- kernel::new_mutex!(State {
                    acked_features: 0,
                    acked_backend_features: 0,
                }),
            }),
            GFP_KERNEL,
        )
    }

    /// Called when the file is released, with the file's reference.
    pub(crate) fn release(self: Arc<Self>) {}

    /// Handles one ioctl on the device's file.
    pub(crate) fn ioctl(&self, cmd: u32, arg: usize) -> Result<i32> {
        match cmd {
            uapi::VHOST_GET_FEATURES => put_u64(arg, features::SUPPORTED),
            uapi::VHOST_SET_FEATURES => {
                let acked = get_u64(arg)?;
                if !features::acceptable(acked) {
                    return Err(eopnotsupp());
                }
                self.state.lock().acked_features = acked;
                Ok(0)
            }
            uapi::VHOST_GET_BACKEND_FEATURES => put_u64(arg, features::SUPPORTED_BACKEND),
            uapi::VHOST_SET_BACKEND_FEATURES => {
                let acked = get_u64(arg)?;
                if acked & !features::SUPPORTED_BACKEND != 0 {
                    return Err(eopnotsupp());
                }
                self.state.lock().acked_backend_features = acked;
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }
}

/// Reads the `u64` argument of an ioctl from userspace.
fn get_u64(arg: usize) -> Result<u64> {
    UserSlice::new(arg, core::mem::size_of::<u64>())
        .reader()
        .read::<u64>()
}

/// Writes the `u64` result of an ioctl to userspace.
fn put_u64(arg: usize, value: u64) -> Result<i32> {
    UserSlice::new(arg, core::mem::size_of::<u64>())
        .writer()
        .write(&value)?;
    Ok(0)
}
