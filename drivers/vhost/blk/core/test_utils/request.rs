// SPDX-License-Identifier: GPL-2.0

//! virtio-blk requests as a guest driver builds them: the header and
//! range layouts, and a request slot (header, data buffer, status byte
//! and indirect table) reused from one request to the next. The host
//! tests, the harness's selftests and its benchmark build their requests
//! here.

use super::driver::{Buf, DriverRing};
use super::memory::BumpAllocator;
use crate::blk::VIRTIO_BLK_T_OUT;
use crate::memory::{Fault, UserMemory};

/// The 16-byte request header (`struct virtio_blk_outhdr`): `ty`, a zero
/// `ioprio` and `sector`, little-endian.
pub fn header(ty: u32, sector: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..4].copy_from_slice(&ty.to_le_bytes());
    h[8..].copy_from_slice(&sector.to_le_bytes());
    h
}

/// One 16-byte discard or write-zeroes range
/// (`struct virtio_blk_discard_write_zeroes`): `sectors` sectors from
/// `sector`, with `flags` (bit 0 is UNMAP), little-endian.
pub fn range(sector: u64, sectors: u32, flags: u32) -> [u8; 16] {
    let mut r = [0u8; 16];
    r[..8].copy_from_slice(&sector.to_le_bytes());
    r[8..12].copy_from_slice(&sectors.to_le_bytes());
    r[12..].copy_from_slice(&flags.to_le_bytes());
    r
}

/// How a request's three descriptors reach the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainLayout {
    /// Three descriptors of the ring's own table.
    Direct,
    /// One ring descriptor pointing at the slot's indirect table.
    Indirect,
}

/// Why a request could not be posted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostError {
    /// The slot's buffers are outside guest memory.
    Fault,
    /// The ring has too few free descriptors.
    RingFull,
}

impl From<Fault> for PostError {
    fn from(_: Fault) -> Self {
        PostError::Fault
    }
}

impl core::fmt::Display for PostError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            PostError::Fault => "a request buffer outside guest memory",
            PostError::RingFull => "no free descriptors",
        })
    }
}

/// The guest buffers of one reusable read or write request.
#[derive(Clone, Copy, Debug)]
pub struct RequestSlot {
    /// The header's guest address (16 bytes).
    pub header: u64,
    /// The data buffer's guest address (page-aligned).
    pub data: u64,
    /// The data buffer's length in bytes.
    pub len: u32,
    /// The status byte's guest address.
    pub status: u64,
    /// The indirect table's guest address (three descriptors).
    table: u64,
}

impl RequestSlot {
    /// Allocates a slot with `len` data bytes.
    pub fn alloc(alloc: &mut BumpAllocator, len: u32) -> Self {
        Self {
            header: alloc.alloc(16, 16),
            data: alloc.alloc(u64::from(len), 4096),
            len,
            status: alloc.alloc(1, 1),
            table: alloc.alloc(16 * 3, 16),
        }
    }

    /// Writes the header of a `ty` request (`VIRTIO_BLK_T_IN` or
    /// `VIRTIO_BLK_T_OUT`) at `sector`, presets the status to 0xff (so a
    /// status the device never wrote shows) and adds header, data and
    /// status to `ring` as `chain` says. The data buffer is
    /// device-readable for a write and device-writable otherwise; a
    /// write's data must already be in place. Returns the head; the
    /// caller kicks.
    pub fn post(
        &self,
        mem: &impl UserMemory,
        ring: &mut DriverRing,
        ty: u32,
        sector: u64,
        chain: ChainLayout,
    ) -> Result<u16, PostError> {
        mem.write(self.header, &header(ty, sector))?;
        mem.write(self.status, &[0xff])?;
        let data = if ty == VIRTIO_BLK_T_OUT {
            Buf::r(self.data, self.len)
        } else {
            Buf::w(self.data, self.len)
        };
        let bufs = [Buf::r(self.header, 16), data, Buf::w(self.status, 1)];
        match chain {
            ChainLayout::Direct => ring.add_chain(mem, &bufs),
            ChainLayout::Indirect => ring.add_indirect(mem, self.table, &bufs),
        }
        .ok_or(PostError::RingFull)
    }

    /// The status byte the device wrote (0xff if it wrote none).
    pub fn read_status(&self, mem: &impl UserMemory) -> Result<u8, Fault> {
        let mut b = [0u8];
        mem.read(self.status, &mut b)?;
        Ok(b[0])
    }
}
