// SPDX-License-Identifier: GPL-2.0

//! Guest memory: how the core reaches the owner's address space, and the
//! memory table that maps guest physical addresses to it.
//!
//! The core never forms references into guest memory. It copies bytes in
//! through [`UserMemory`], validates the copy and uses only the copy; the
//! guest may change the original at any time.

use core::ops::DerefMut;
use core::sync::atomic::{fence, Ordering};

/// A failed copy to or from the owner's address space (`-EFAULT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault;

/// Byte access to the address space of the device's owner (the VMM), in
/// which the rings and, through the memory table, all guest memory live.
///
/// The kernel implements it with `copy_from_user`/`copy_to_user` under the
/// owner's mm; host tests with a plain buffer.
pub trait UserMemory {
    /// Copies `buf.len()` bytes at user address `addr` into `buf`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault>;
    /// Copies `buf` to user address `addr`.
    fn write(&self, addr: u64, buf: &[u8]) -> Result<(), Fault>;

    // The barriers map onto the LKMM the way the kernel's own Rust atomics
    // do: acquire and release fences give smp_rmb/smp_wmb ordering, a
    // sequentially consistent fence gives smp_mb. Implementations rarely
    // need to override them.

    /// Orders earlier reads before later reads (`smp_rmb`).
    fn read_barrier(&self) {
        fence(Ordering::Acquire);
    }
    /// Orders earlier writes before later writes (`smp_wmb`).
    fn write_barrier(&self) {
        fence(Ordering::Release);
    }
    /// Orders earlier accesses before later ones (`smp_mb`).
    fn full_barrier(&self) {
        fence(Ordering::SeqCst);
    }

    /// Reads a little-endian `u16`.
    ///
    /// The ring's indexes, flags and event indexes are read and written
    /// with `read_u16` and `write_u16` while the other side runs: an
    /// implementation over memory shared with a running driver must make
    /// them single 16-bit accesses (a byte-wise copy lets the other side
    /// see half of a new index: 0x00ff to 0x0100 read as 0x01ff). These
    /// defaults, byte copies, suit memory nobody else touches meanwhile.
    fn read_u16(&self, addr: u64) -> Result<u16, Fault> {
        let mut b = [0u8; 2];
        self.read(addr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }
    /// Reads a little-endian `u32`.
    fn read_u32(&self, addr: u64) -> Result<u32, Fault> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    /// Reads a little-endian `u64`.
    fn read_u64(&self, addr: u64) -> Result<u64, Fault> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// Writes a little-endian `u16`.
    fn write_u16(&self, addr: u64, v: u16) -> Result<(), Fault> {
        self.write(addr, &v.to_le_bytes())
    }
    /// Writes a little-endian `u32`.
    fn write_u32(&self, addr: u64, v: u32) -> Result<(), Fault> {
        self.write(addr, &v.to_le_bytes())
    }
}

/// One region of the memory table (`struct vhost_memory_region`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemRegion {
    /// First guest physical address.
    pub guest_phys_addr: u64,
    /// Size in bytes, never 0 in a validated table.
    pub size: u64,
    /// User address of the first byte in the owner's address space.
    pub userspace_addr: u64,
}

impl MemRegion {
    /// The last guest physical address of the region.
    fn gpa_last(&self) -> u64 {
        // Validated tables guarantee this does not overflow.
        self.guest_phys_addr + (self.size - 1)
    }
}

/// Why a memory table was refused (`VHOST_SET_MEM_TABLE` gets `-EINVAL`,
/// or `-E2BIG` for [`MemTableError::TooManyRegions`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemTableError {
    /// More regions than the device accepts.
    TooManyRegions,
    /// A region of size 0.
    EmptyRegion,
    /// A region whose guest or user range wraps around the address space.
    RegionWraps,
    /// Two regions overlap in guest physical address space.
    Overlap,
    /// Non-zero padding or flags.
    NonZeroPadding,
}

/// The most regions a memory table may have (vhost's default
/// `max_mem_regions`, which QEMU also assumes for vhost-kernel).
pub const MAX_MEM_REGIONS: usize = 64;

/// Regions validated once, kept in a container of the caller's choice (a
/// `KVec` in the module, a `Vec` on the host), for the tables of many
/// turns.
///
/// # Invariants
///
/// The regions hold [`MemTable`]'s invariants.
#[derive(Debug)]
pub struct ValidRegions<C> {
    regions: C,
}

impl<C: DerefMut<Target = [MemRegion]>> ValidRegions<C> {
    /// Validates `regions`, sorting them in place (see
    /// [`MemTable::validate`]).
    pub fn new(mut regions: C) -> Result<Self, MemTableError> {
        MemTable::validate(&mut regions)?;
        // INVARIANT: validated above; the container is not handed out
        // mutably again.
        Ok(Self { regions })
    }

    /// The table of the regions, without checking them again.
    pub fn table(&self) -> MemTable<'_> {
        // INVARIANT: the type's invariant.
        MemTable {
            regions: &self.regions,
        }
    }
}

/// A validated memory table: sorted by guest address, no empty, wrapping or
/// overlapping regions.
///
/// # Invariants
///
/// `regions` is sorted by `guest_phys_addr`, every region has a non-zero
/// size, neither its guest nor its user range wraps, and guest ranges are
/// disjoint.
#[derive(Clone, Copy, Debug)]
pub struct MemTable<'a> {
    regions: &'a [MemRegion],
}

impl<'a> MemTable<'a> {
    /// An empty table: every translation fails.
    pub const EMPTY: MemTable<'static> = MemTable { regions: &[] };

    /// Validates `regions`, sorting them in place, and returns the table.
    pub fn validate(regions: &'a mut [MemRegion]) -> Result<Self, MemTableError> {
        if regions.len() > MAX_MEM_REGIONS {
            return Err(MemTableError::TooManyRegions);
        }
        for r in regions.iter() {
            if r.size == 0 {
                return Err(MemTableError::EmptyRegion);
            }
            if r.guest_phys_addr.checked_add(r.size - 1).is_none()
                || r.userspace_addr.checked_add(r.size - 1).is_none()
            {
                return Err(MemTableError::RegionWraps);
            }
        }
        // Insertion sort: at most MAX_MEM_REGIONS entries and no allocation.
        for i in 1..regions.len() {
            let mut j = i;
            while j > 0 && regions[j - 1].guest_phys_addr > regions[j].guest_phys_addr {
                regions.swap(j - 1, j);
                j -= 1;
            }
        }
        for w in regions.windows(2) {
            if w[0].gpa_last() >= w[1].guest_phys_addr {
                return Err(MemTableError::Overlap);
            }
        }
        // INVARIANT: checked above.
        Ok(Self { regions })
    }

    /// The regions, sorted by guest address.
    pub fn regions(&self) -> &'a [MemRegion] {
        self.regions
    }

    /// The region containing guest address `gpa`.
    fn find(&self, gpa: u64) -> Option<&'a MemRegion> {
        let i = self.regions.partition_point(|r| r.gpa_last() < gpa);
        self.regions.get(i).filter(|r| r.guest_phys_addr <= gpa)
    }

    /// Translates the guest range `[gpa, gpa + len)` piece by piece, calling
    /// `f(user_addr, piece_len)` for each piece in order, and stops at the
    /// first error `f` returns. Fails with [`Fault`] (calling `f` for none
    /// or only some pieces) if any byte is not mapped or the range wraps.
    /// A zero-length range is always valid.
    pub fn for_each_piece<E: From<Fault>>(
        &self,
        gpa: u64,
        len: u64,
        mut f: impl FnMut(u64, u64) -> Result<(), E>,
    ) -> Result<(), E> {
        if len == 0 {
            return Ok(());
        }
        gpa.checked_add(len - 1).ok_or(Fault)?;
        let (mut gpa, mut left) = (gpa, len);
        while left > 0 {
            let r = self.find(gpa).ok_or(Fault)?;
            let off = gpa - r.guest_phys_addr;
            let n = core::cmp::min(left, r.size - off);
            f(r.userspace_addr + off, n)?;
            left -= n;
            // Cannot overflow: `gpa + len - 1` was checked.
            gpa = gpa.wrapping_add(n);
        }
        Ok(())
    }

    /// Whether every byte of `[gpa, gpa + len)` is mapped.
    pub fn covers(&self, gpa: u64, len: u64) -> bool {
        self.for_each_piece(gpa, len, |_, _| Ok::<(), Fault>(()))
            .is_ok()
    }

    /// Copies guest memory at `gpa` into `buf`.
    pub fn read(&self, mem: &impl UserMemory, gpa: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let mut done = 0usize;
        self.for_each_piece(gpa, buf.len() as u64, |ua, n| {
            let n = n as usize;
            mem.read(ua, &mut buf[done..done + n])?;
            done += n;
            Ok(())
        })
    }

    /// Copies `buf` to guest memory at `gpa`.
    pub fn write(&self, mem: &impl UserMemory, gpa: u64, buf: &[u8]) -> Result<(), Fault> {
        let mut done = 0usize;
        self.for_each_piece(gpa, buf.len() as u64, |ua, n| {
            let n = n as usize;
            mem.write(ua, &buf[done..done + n])?;
            done += n;
            Ok(())
        })
    }
}
