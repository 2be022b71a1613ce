// SPDX-License-Identifier: GPL-2.0

//! One open `/dev/vhost-blk`: a vhost-blk device and its ioctl state
//! machine.
//!
//! The ioctls follow `drivers/vhost/vhost.c`: `VHOST_SET_OWNER` binds the
//! device to the caller's address space, and every ioctl that configures
//! the device afterwards must come from that address space (`EPERM`
//! otherwise, as `vhost_dev_check_owner`). Queue geometry cannot change
//! while a backend is attached (`EBUSY`).

use crate::ffi::bdev::BdevFile;
use crate::ffi::eventfd::EventFd;
use crate::ffi::mm::OwnerMm;
use crate::vcore::features;
use crate::vcore::memory::{MemRegion, MemTable, MemTableError, MAX_MEM_REGIONS};
use crate::vcore::ring::{self, VringAddrs};
use crate::vcore::uapi::{
    self, VhostBlkBackend, VhostMemoryHeader, VhostMemoryRegion, VhostVringAddr, VhostVringFile,
    VhostVringState, VHOST_BLK_MAX_QUEUES,
};
use kernel::error::Error;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};
use kernel::uaccess::UserSlice;

/// An errno that `kernel::error::code` of 6.12 lacks.
fn errno(e: u32) -> Error {
    Error::from_errno(-(e as i32))
}

/// The ioctls only the owner may issue (handled by `owner_ioctl`).
const OWNER_IOCTLS: [u32; 11] = [
    uapi::VHOST_RESET_OWNER,
    uapi::VHOST_SET_MEM_TABLE,
    uapi::VHOST_SET_VRING_NUM,
    uapi::VHOST_SET_VRING_ADDR,
    uapi::VHOST_SET_VRING_BASE,
    uapi::VHOST_GET_VRING_BASE,
    uapi::VHOST_SET_VRING_KICK,
    uapi::VHOST_SET_VRING_CALL,
    uapi::VHOST_SET_VRING_ERR,
    uapi::VHOST_BLK_SET_BACKEND,
    uapi::VHOST_BLK_SET_SERIAL,
];

/// The configuration of one virtqueue, as set by the vring ioctls.
#[derive(Default)]
struct VqConfig {
    /// Queue size; 0 until `VHOST_SET_VRING_NUM`.
    num: u32,
    /// Ring addresses, once `VHOST_SET_VRING_ADDR` succeeded.
    addrs: Option<VringAddrs>,
    /// The avail index to start from (`VHOST_SET_VRING_BASE`).
    base: u16,
    /// Guest-to-host notifications.
    kick: Option<EventFd>,
    /// Host-to-guest interrupts (irqfd).
    call: Option<EventFd>,
    /// Signalled when the guest breaks the ring.
    err: Option<EventFd>,
}

/// Device state protected by [`VhostBlkDev::state`].
struct State {
    owner: Option<OwnerMm>,
    acked_features: u64,
    acked_backend_features: u64,
    /// The validated memory table, sorted by guest address.
    mem: KVec<MemRegion>,
    vqs: KVec<VqConfig>,
    backend: Option<BdevFile>,
    serial: [u8; uapi::VIRTIO_BLK_ID_BYTES],
}

impl State {
    fn new() -> Result<Self> {
        let mut vqs = KVec::with_capacity(VHOST_BLK_MAX_QUEUES as usize, GFP_KERNEL)?;
        for _ in 0..VHOST_BLK_MAX_QUEUES {
            vqs.push(VqConfig::default(), GFP_KERNEL)?;
        }
        Ok(Self {
            owner: None,
            acked_features: 0,
            acked_backend_features: 0,
            mem: KVec::new(),
            vqs,
            backend: None,
            serial: [0; uapi::VIRTIO_BLK_ID_BYTES],
        })
    }

    /// `vhost_dev_check_owner`: the caller must run in the owner's mm.
    fn check_owner(&self) -> Result {
        match &self.owner {
            Some(mm) if mm.is_current() => Ok(()),
            _ => Err(EPERM),
        }
    }

    /// The queue `index`, or `ENOBUFS` as vhost answers for a queue it does
    /// not have.
    fn vq(&mut self, index: u32) -> Result<&mut VqConfig> {
        self.vqs
            .get_mut(index as usize)
            .ok_or_else(|| errno(kernel::bindings::ENOBUFS))
    }

    fn check_stopped(&self) -> Result {
        if self.backend.is_some() {
            Err(EBUSY)
        } else {
            Ok(())
        }
    }
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
        let state = State::new()?;
        Arc::pin_init(
            pin_init!(Self {
                state <- kernel::new_mutex!(state),
            }),
            GFP_KERNEL,
        )
    }

    /// Called when the file is released, with the file's reference.
    pub(crate) fn release(self: Arc<Self>) {
        // Dropping the state drops the backend, the eventfds and the
        // owner's mm reference.
        let mut st = self.state.lock();
        st.backend = None;
        st.owner = None;
    }

    /// Handles one ioctl on the device's file.
    pub(crate) fn ioctl(&self, cmd: u32, arg: usize) -> Result<i32> {
        let mut st = self.state.lock();
        match cmd {
            uapi::VHOST_GET_FEATURES => put_u64(arg, features::SUPPORTED),
            uapi::VHOST_SET_FEATURES => {
                let acked = get_u64(arg)?;
                if !features::acceptable(acked) {
                    return Err(errno(kernel::bindings::EOPNOTSUPP));
                }
                st.check_stopped()?;
                st.acked_features = acked;
                Ok(0)
            }
            uapi::VHOST_GET_BACKEND_FEATURES => put_u64(arg, features::SUPPORTED_BACKEND),
            uapi::VHOST_SET_BACKEND_FEATURES => {
                let acked = get_u64(arg)?;
                if acked & !features::SUPPORTED_BACKEND != 0 {
                    return Err(errno(kernel::bindings::EOPNOTSUPP));
                }
                st.acked_backend_features = acked;
                Ok(0)
            }
            uapi::VHOST_SET_OWNER => {
                if st.owner.is_some() {
                    return Err(EBUSY);
                }
                st.owner = Some(OwnerMm::current()?);
                Ok(0)
            }
            // Unknown commands are ENOTTY for everyone; known ones need the
            // owner.
            _ if !OWNER_IOCTLS.contains(&cmd) => Err(ENOTTY),
            _ => {
                st.check_owner()?;
                Self::owner_ioctl(&mut st, cmd, arg)
            }
        }
    }

    /// The ioctls only the owner may issue.
    fn owner_ioctl(st: &mut State, cmd: u32, arg: usize) -> Result<i32> {
        match cmd {
            uapi::VHOST_RESET_OWNER => {
                let fresh = State::new()?;
                // Dropping the old state releases everything it held.
                *st = fresh;
                Ok(0)
            }
            uapi::VHOST_SET_MEM_TABLE => {
                st.mem = read_mem_table(arg)?;
                Ok(0)
            }
            uapi::VHOST_SET_VRING_NUM => {
                let s = VhostVringState::from_bytes(&read_arg(arg)?);
                st.check_stopped()?;
                let vq = st.vq(s.index)?;
                if !ring::valid_size(s.num) {
                    return Err(EINVAL);
                }
                vq.num = s.num;
                Ok(0)
            }
            uapi::VHOST_SET_VRING_ADDR => {
                let a = VhostVringAddr::from_bytes(&read_arg(arg)?);
                st.check_stopped()?;
                let vq = st.vq(a.index)?;
                // Dirty logging (live migration) is not supported.
                if a.flags != 0 {
                    return Err(errno(kernel::bindings::EOPNOTSUPP));
                }
                let addrs = VringAddrs {
                    desc: a.desc_user_addr,
                    avail: a.avail_user_addr,
                    used: a.used_user_addr,
                };
                let checked = if vq.num != 0 {
                    ring::check_addrs(vq.num, &addrs)
                } else {
                    ring::check_alignment(&addrs)
                };
                checked.map_err(|_| EINVAL)?;
                vq.addrs = Some(addrs);
                Ok(0)
            }
            uapi::VHOST_SET_VRING_BASE => {
                let s = VhostVringState::from_bytes(&read_arg(arg)?);
                st.check_stopped()?;
                let vq = st.vq(s.index)?;
                vq.base = u16::try_from(s.num).map_err(|_| EINVAL)?;
                Ok(0)
            }
            uapi::VHOST_GET_VRING_BASE => {
                let mut s = VhostVringState::from_bytes(&read_arg(arg)?);
                s.num = u32::from(st.vq(s.index)?.base);
                UserSlice::new(arg, VhostVringState::SIZE)
                    .writer()
                    .write_slice(&s.to_bytes())?;
                Ok(0)
            }
            uapi::VHOST_SET_VRING_KICK | uapi::VHOST_SET_VRING_CALL | uapi::VHOST_SET_VRING_ERR => {
                let f = VhostVringFile::from_bytes(&read_arg(arg)?);
                let efd = match f.fd {
                    -1 => None,
                    fd => Some(EventFd::from_fd(fd)?),
                };
                let vq = st.vq(f.index)?;
                let slot = match cmd {
                    uapi::VHOST_SET_VRING_KICK => &mut vq.kick,
                    uapi::VHOST_SET_VRING_CALL => &mut vq.call,
                    _ => &mut vq.err,
                };
                *slot = efd;
                Ok(0)
            }
            uapi::VHOST_BLK_SET_BACKEND => {
                let b = VhostBlkBackend::from_bytes(&read_arg(arg)?);
                if b.flags != 0 {
                    return Err(EINVAL);
                }
                st.backend = match b.fd {
                    -1 => None,
                    fd => {
                        let bdev = BdevFile::from_fd(fd)?;
                        let i = bdev.info();
                        pr_debug!(
                            "backend attached: {} sectors, {}-byte blocks{}{}\n",
                            i.capacity,
                            i.logical_block_size,
                            if i.read_only != 0 { ", read-only" } else { "" },
                            if i.write_cache != 0 {
                                ", write cache"
                            } else {
                                ""
                            }
                        );
                        Some(bdev)
                    }
                };
                Ok(0)
            }
            uapi::VHOST_BLK_SET_SERIAL => {
                st.serial = read_arg(arg)?;
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }
}

/// Copies the `N`-byte argument of an ioctl from userspace.
fn read_arg<const N: usize>(arg: usize) -> Result<[u8; N]> {
    let mut b = [0u8; N];
    UserSlice::new(arg, N).reader().read_slice(&mut b)?;
    Ok(b)
}

/// Copies in and validates the `struct vhost_memory` at `arg`.
fn read_mem_table(arg: usize) -> Result<KVec<MemRegion>> {
    let hdr = VhostMemoryHeader::from_bytes(&read_arg(arg)?);
    if hdr.padding != 0 {
        return Err(errno(kernel::bindings::EOPNOTSUPP));
    }
    let n = hdr.nregions as usize;
    if n > MAX_MEM_REGIONS {
        return Err(E2BIG);
    }
    let mut regions = KVec::with_capacity(n, GFP_KERNEL)?;
    let base = arg.checked_add(VhostMemoryHeader::SIZE).ok_or(EFAULT)?;
    let mut reader = UserSlice::new(base, n * VhostMemoryRegion::SIZE).reader();
    for _ in 0..n {
        let mut b = [0u8; VhostMemoryRegion::SIZE];
        reader.read_slice(&mut b)?;
        let r = VhostMemoryRegion::from_bytes(&b);
        if r.flags_padding != 0 {
            return Err(errno(kernel::bindings::EOPNOTSUPP));
        }
        regions.push(
            MemRegion {
                guest_phys_addr: r.guest_phys_addr,
                size: r.memory_size,
                userspace_addr: r.userspace_addr,
            },
            GFP_KERNEL,
        )?;
    }
    MemTable::validate(&mut regions).map_err(|e| match e {
        MemTableError::TooManyRegions => E2BIG,
        _ => EINVAL,
    })?;
    Ok(regions)
}

/// Reads the `u64` argument of an ioctl from userspace.
fn get_u64(arg: usize) -> Result<u64> {
    Ok(u64::from_ne_bytes(read_arg(arg)?))
}

/// Writes the `u64` result of an ioctl to userspace.
fn put_u64(arg: usize, value: u64) -> Result<i32> {
    UserSlice::new(arg, core::mem::size_of::<u64>())
        .writer()
        .write_slice(&value.to_ne_bytes())?;
    Ok(0)
}
