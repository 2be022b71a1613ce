// SPDX-License-Identifier: GPL-2.0

//! The split virtqueue (virtio 1.2, section 2.7), seen from the device.
//!
//! [`Vring`] pops descriptor chains from the available ring, validates every
//! index, flag, length and address the guest controls, and publishes used
//! buffers and notification decisions. All guest state is read through
//! [`UserMemory`] into local copies and validated before use.

use super::memory::{Fault, MemTable, UserMemory};

/// `VRING_DESC_F_NEXT`: the chain continues at `next`.
pub const VRING_DESC_F_NEXT: u16 = 1;
/// `VRING_DESC_F_WRITE`: the device writes this buffer.
pub const VRING_DESC_F_WRITE: u16 = 2;
/// `VRING_DESC_F_INDIRECT`: the buffer is a table of descriptors.
pub const VRING_DESC_F_INDIRECT: u16 = 4;
/// `VRING_USED_F_NO_NOTIFY`: the device asks the driver not to kick.
pub const VRING_USED_F_NO_NOTIFY: u16 = 1;
/// `VRING_AVAIL_F_NO_INTERRUPT`: the driver asks not to be interrupted.
pub const VRING_AVAIL_F_NO_INTERRUPT: u16 = 1;

/// The largest split queue (virtio 1.2, 2.7: "Queue Size ... 32768").
pub const MAX_QUEUE_SIZE: u32 = 32768;
/// The largest indirect table, in descriptors.
pub const MAX_INDIRECT: u32 = 65536;
/// The most buffer descriptors a chain may have, empty ones included,
/// directly in the ring or in its indirect table: `seg_max`
/// ([`super::features::SEG_MAX`]) data buffers plus the header and the
/// status. The walk stops at the next one, so no chain costs the worker
/// more than this many descriptor reads (and one for an indirect
/// descriptor).
pub const MAX_CHAIN_SEGS: usize = 256;
/// Size of one descriptor in bytes.
pub const DESC_SIZE: u64 = 16;
/// Indirect tables of at most this many descriptors are copied in with one
/// read (a request's header, data and status buffers take three).
const INDIRECT_BATCH: u32 = 16;
/// Used elements written with one copy, at most.
const USED_CHUNK: usize = 32;
/// Available-ring entries (chain heads) read with one copy, at most.
pub const AVAIL_BATCH: usize = 16;

/// A guest violation of the ring protocol. The queue stops, and the error
/// eventfd is signalled: nothing in the ring can be trusted any more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// Reading or writing ring memory faulted.
    Fault,
    /// `avail->idx` moved more than the queue size past the last seen.
    AvailIdxJump {
        /// `avail->idx` as read.
        avail_idx: u16,
        /// The device's `last_avail_idx`.
        last_avail_idx: u16,
    },
    /// A head index from the available ring is `>= num`.
    HeadOutOfRange(u16),
    /// A `next` index is out of its table.
    NextOutOfRange(u16),
    /// More descriptors than the table holds: a loop.
    ChainLoop,
    /// More than [`MAX_CHAIN_SEGS`] descriptors: more buffers than the
    /// driver may use (`seg_max`).
    ChainTooLong,
    /// An indirect descriptor without `VIRTIO_RING_F_INDIRECT_DESC`.
    IndirectNotNegotiated,
    /// An indirect descriptor inside an indirect table.
    IndirectNested,
    /// An indirect descriptor that also has `VRING_DESC_F_NEXT`.
    IndirectWithNext,
    /// An indirect table length that is 0, not a multiple of 16, or larger
    /// than [`MAX_INDIRECT`] descriptors.
    IndirectBadLength(u32),
    /// A device-readable descriptor after a device-writable one.
    ReadableAfterWritable,
    /// A buffer whose address range wraps, or a chain longer than 4 GiB.
    LengthOverflow,
    /// A chain without a device-writable byte for the request status.
    NoStatus,
    /// A buffer or indirect table not covered by the memory table.
    Unmapped {
        /// Guest physical address.
        addr: u64,
        /// Length in bytes.
        len: u64,
    },
}

impl From<Fault> for RingError {
    fn from(_: Fault) -> Self {
        RingError::Fault
    }
}

/// Why a queue configuration was refused (`-EINVAL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `num` is 0, not a power of two, or larger than [`MAX_QUEUE_SIZE`].
    BadSize,
    /// A ring address is not aligned as virtio requires.
    Misaligned,
    /// A ring's byte range wraps around the address space.
    Wraps,
}

/// One descriptor as copied from guest memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// Guest physical address of the buffer.
    pub addr: u64,
    /// Length of the buffer.
    pub len: u32,
    /// `VRING_DESC_F_*`.
    pub flags: u16,
    /// The next descriptor, if `flags` has `VRING_DESC_F_NEXT`.
    pub next: u16,
}

impl Descriptor {
    /// Decodes a descriptor from its 16 little-endian bytes.
    pub fn from_bytes(b: &[u8; 16]) -> Self {
        Self {
            addr: u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            len: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            flags: u16::from_le_bytes([b[12], b[13]]),
            next: u16::from_le_bytes([b[14], b[15]]),
        }
    }
}

/// One buffer of a chain: a guest physical range, readable or writable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Guest physical address.
    pub addr: u64,
    /// Length in bytes, never 0.
    pub len: u32,
    /// Device-writable (`VRING_DESC_F_WRITE`).
    pub writable: bool,
}

/// A validated descriptor chain: its head and its non-empty buffers,
/// device-readable ones first.
pub struct Chain {
    head: u16,
    segs: [Segment; MAX_CHAIN_SEGS],
    nsegs: usize,
    /// Descriptors read, empty ones included.
    walked: u32,
    last: Option<Segment>,
    readable_len: u32,
    writable_len: u32,
}

impl Default for Chain {
    fn default() -> Self {
        Self::new()
    }
}

impl Chain {
    /// An empty chain, to be filled by [`Vring::get_vq_desc`].
    pub const fn new() -> Self {
        Self {
            head: 0,
            segs: [Segment {
                addr: 0,
                len: 0,
                writable: false,
            }; MAX_CHAIN_SEGS],
            nsegs: 0,
            walked: 0,
            last: None,
            readable_len: 0,
            writable_len: 0,
        }
    }

    fn reset(&mut self, head: u16) {
        self.head = head;
        self.nsegs = 0;
        self.walked = 0;
        self.last = None;
        self.readable_len = 0;
        self.writable_len = 0;
    }

    /// The head index, the id to return in the used ring.
    pub fn head(&self) -> u16 {
        self.head
    }

    /// The non-empty buffers, in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segs[..self.nsegs]
    }

    /// The buffer descriptors the walk read, empty ones included: what the
    /// chain cost to validate.
    pub fn descriptors(&self) -> u32 {
        self.walked
    }

    /// Counts one more descriptor read; fails past [`MAX_CHAIN_SEGS`].
    fn count(&mut self) -> Result<(), RingError> {
        if self.walked as usize >= MAX_CHAIN_SEGS {
            return Err(RingError::ChainTooLong);
        }
        self.walked += 1;
        Ok(())
    }

    /// The final non-empty buffer of the chain.
    pub fn last(&self) -> Option<Segment> {
        self.last
    }

    /// Total bytes of device-readable buffers.
    pub fn readable_len(&self) -> u32 {
        self.readable_len
    }

    /// Total bytes of device-writable buffers.
    pub fn writable_len(&self) -> u32 {
        self.writable_len
    }

    fn push(&mut self, table: &MemTable<'_>, d: &Descriptor) -> Result<(), RingError> {
        let writable = d.flags & VRING_DESC_F_WRITE != 0;
        if !writable && self.writable_len > 0 {
            return Err(RingError::ReadableAfterWritable);
        }
        if d.len == 0 {
            // An empty buffer carries nothing; it is valid and skipped.
            return Ok(());
        }
        if d.addr.checked_add(u64::from(d.len) - 1).is_none() {
            return Err(RingError::LengthOverflow);
        }
        if !table.covers(d.addr, u64::from(d.len)) {
            return Err(RingError::Unmapped {
                addr: d.addr,
                len: u64::from(d.len),
            });
        }
        let total = if writable {
            &mut self.writable_len
        } else {
            &mut self.readable_len
        };
        *total = total.checked_add(d.len).ok_or(RingError::LengthOverflow)?;
        self.readable_len
            .checked_add(self.writable_len)
            .ok_or(RingError::LengthOverflow)?;
        let seg = Segment {
            addr: d.addr,
            len: d.len,
            writable,
        };
        // `count` bounds the descriptors, and so the buffers, by the array.
        let slot = self
            .segs
            .get_mut(self.nsegs)
            .ok_or(RingError::ChainTooLong)?;
        *slot = seg;
        self.nsegs += 1;
        self.last = Some(seg);
        Ok(())
    }
}

/// Where a queue's rings live, as user addresses of the owner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VringAddrs {
    /// The descriptor table.
    pub desc: u64,
    /// The available ring.
    pub avail: u64,
    /// The used ring.
    pub used: u64,
}

/// Negotiated ring features that change how the ring is used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingFeatures {
    /// `VIRTIO_RING_F_INDIRECT_DESC`.
    pub indirect: bool,
    /// `VIRTIO_RING_F_EVENT_IDX`.
    pub event_idx: bool,
    /// `VIRTIO_F_NOTIFY_ON_EMPTY`.
    pub notify_on_empty: bool,
}

/// Whether `num` is a valid split queue size.
pub fn valid_size(num: u32) -> bool {
    num != 0 && num <= MAX_QUEUE_SIZE && num.is_power_of_two()
}

/// Checks the alignment of a queue's rings (virtio 1.2, 2.7: descriptor
/// table 16, available ring 2, used ring 4).
pub fn check_alignment(a: &VringAddrs) -> Result<(), ConfigError> {
    if a.desc % 16 != 0 || a.avail % 2 != 0 || a.used % 4 != 0 {
        return Err(ConfigError::Misaligned);
    }
    Ok(())
}

/// Checks the alignment and extent of a queue's rings for size `num`
/// (virtio 1.2, 2.7: descriptor table 16, available ring 2, used ring 4).
pub fn check_addrs(num: u32, a: &VringAddrs) -> Result<(), ConfigError> {
    if !valid_size(num) {
        return Err(ConfigError::BadSize);
    }
    check_alignment(a)?;
    let n = u64::from(num);
    let extents = [
        (a.desc, DESC_SIZE * n),
        (a.avail, 6 + 2 * n),
        (a.used, 6 + 8 * n),
    ];
    for (addr, len) in extents {
        addr.checked_add(len).ok_or(ConfigError::Wraps)?;
    }
    Ok(())
}

/// `vring_need_event()`: whether moving the used index from `old` to `new`
/// crosses the driver's `event_idx`.
pub fn need_event(event_idx: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event_idx).wrapping_sub(1) < new.wrapping_sub(old)
}

/// The device side of one split virtqueue.
#[derive(Clone, Debug)]
pub struct Vring {
    num: u16,
    mask: u16,
    addrs: VringAddrs,
    features: RingFeatures,
    /// The next available-ring slot the device will consume.
    last_avail_idx: u16,
    /// The last `avail->idx` read.
    avail_idx: u16,
    /// The next used-ring slot the device will fill.
    last_used_idx: u16,
    /// `last_used_idx` at the last interrupt, for EVENT_IDX.
    signalled_used: u16,
    signalled_used_valid: bool,
    /// Heads copied from the available ring ahead of use: `heads[i]` is
    /// the entry of available index `heads_start + i`, for `i <
    /// heads_len`. Only entries below an `avail->idx` already read are
    /// copied, so the driver has published them all.
    heads: [u16; AVAIL_BATCH],
    heads_start: u16,
    heads_len: u16,
}

impl Vring {
    /// A ring of `num` entries at `addrs`, starting at index `base` (from
    /// `VHOST_SET_VRING_BASE`).
    pub fn new(
        num: u32,
        addrs: VringAddrs,
        features: RingFeatures,
        base: u16,
    ) -> Result<Self, ConfigError> {
        check_addrs(num, &addrs)?;
        // `num` is a power of two <= 32768, so it fits a u16 mask.
        let mask = (num - 1) as u16;
        Ok(Self {
            // 32768 still fits in u16.
            num: num as u16,
            mask,
            addrs,
            features,
            last_avail_idx: base,
            avail_idx: base,
            last_used_idx: base,
            signalled_used: base,
            signalled_used_valid: false,
            heads: [0; AVAIL_BATCH],
            heads_start: base,
            heads_len: 0,
        })
    }

    /// The queue size.
    pub fn num(&self) -> u32 {
        // `num` 32768 is stored as 32768 in a u16; 0 never happens.
        u32::from(self.num)
    }

    /// The next available index the device will consume
    /// (`VHOST_GET_VRING_BASE`).
    pub fn last_avail_idx(&self) -> u16 {
        self.last_avail_idx
    }

    /// The next used index the device will publish.
    pub fn last_used_idx(&self) -> u16 {
        self.last_used_idx
    }

    /// The `avail->idx` the device read last (for statistics).
    pub fn avail_idx_seen(&self) -> u16 {
        self.avail_idx
    }

    /// The negotiated ring features.
    pub fn features(&self) -> RingFeatures {
        self.features
    }

    fn avail_ring_addr(&self, slot: u16) -> u64 {
        self.addrs.avail + 4 + 2 * u64::from(slot & self.mask)
    }

    fn used_event_addr(&self) -> u64 {
        self.addrs.avail + 4 + 2 * u64::from(self.num())
    }

    fn avail_event_addr(&self) -> u64 {
        self.addrs.used + 4 + 8 * u64::from(self.num())
    }

    /// Reads `avail->idx` and returns how many chains are waiting.
    ///
    /// Whenever chains are waiting, the ring entries they expose are read
    /// only after the index (`smp_rmb`, pairing with the driver's write
    /// barrier between filling the entries and moving the index): every
    /// caller may go on to read them, [`Vring::get_vq_desc`] directly and
    /// [`Vring::enable_notify`] through the caller that keeps serving.
    /// This is 6.12's `vhost_get_avail_idx()`.
    pub fn avail_pending(&mut self, mem: &impl UserMemory) -> Result<u16, RingError> {
        let idx = mem.read_u16(self.addrs.avail + 2)?;
        let pending = idx.wrapping_sub(self.last_avail_idx);
        if u32::from(pending) > self.num() {
            return Err(RingError::AvailIdxJump {
                avail_idx: idx,
                last_avail_idx: self.last_avail_idx,
            });
        }
        self.avail_idx = idx;
        if pending != 0 {
            mem.read_barrier();
        }
        Ok(pending)
    }

    /// `vhost_get_vq_desc()`: pops the next available chain into `chain`.
    ///
    /// Returns `Ok(false)` when the ring is empty. On `Ok(true)` the chain
    /// was consumed from the available ring and must be returned through
    /// [`Vring::add_used`]. On error the ring is broken and the queue must
    /// stop; the chain is not consumed.
    pub fn get_vq_desc(
        &mut self,
        mem: &impl UserMemory,
        table: &MemTable<'_>,
        chain: &mut Chain,
    ) -> Result<bool, RingError> {
        // An index already read was followed by its barrier there.
        if self.avail_idx == self.last_avail_idx && self.avail_pending(mem)? == 0 {
            return Ok(false);
        }
        let head = self.next_head(mem)?;
        if u32::from(head) >= self.num() {
            return Err(RingError::HeadOutOfRange(head));
        }
        self.walk_chain(mem, table, head, chain)?;
        self.last_avail_idx = self.last_avail_idx.wrapping_add(1);
        Ok(true)
    }

    /// The head at `last_avail_idx`, which must be below `avail_idx`:
    /// from the copy of the ring's entries, refilled with one read of up
    /// to [`AVAIL_BATCH`] published entries (up to the ring's end) when it
    /// does not hold it.
    fn next_head(&mut self, mem: &impl UserMemory) -> Result<u16, RingError> {
        let at = self.last_avail_idx.wrapping_sub(self.heads_start);
        if at < self.heads_len {
            return Ok(self.heads[usize::from(at)]);
        }
        let slot = self.last_avail_idx & self.mask;
        let published = self.avail_idx.wrapping_sub(self.last_avail_idx);
        let to_end = self.num() - u32::from(slot);
        // At least 1: the caller saw `avail_idx` ahead of `last_avail_idx`.
        let n = usize::from(published)
            .min(to_end as usize)
            .clamp(1, AVAIL_BATCH);
        let mut b = [0u8; 2 * AVAIL_BATCH];
        self.heads_len = 0;
        mem.read(self.avail_ring_addr(slot), &mut b[..2 * n])?;
        for (h, e) in self.heads.iter_mut().zip(b.chunks_exact(2)).take(n) {
            *h = u16::from_le_bytes([e[0], e[1]]);
        }
        self.heads_start = self.last_avail_idx;
        // `n` <= AVAIL_BATCH fits in u16.
        self.heads_len = n as u16;
        Ok(self.heads[0])
    }

    fn walk_chain(
        &self,
        mem: &impl UserMemory,
        table: &MemTable<'_>,
        head: u16,
        chain: &mut Chain,
    ) -> Result<(), RingError> {
        chain.reset(head);
        let mut i = head;
        let mut ttl = self.num();
        loop {
            if ttl == 0 {
                return Err(RingError::ChainLoop);
            }
            ttl -= 1;
            let mut b = [0u8; 16];
            mem.read(self.addrs.desc + DESC_SIZE * u64::from(i), &mut b)?;
            let d = Descriptor::from_bytes(&b);
            if d.flags & VRING_DESC_F_INDIRECT != 0 {
                if !self.features.indirect {
                    return Err(RingError::IndirectNotNegotiated);
                }
                if d.flags & VRING_DESC_F_NEXT != 0 {
                    return Err(RingError::IndirectWithNext);
                }
                return walk_indirect(mem, table, &d, chain);
            }
            chain.count()?;
            chain.push(table, &d)?;
            if d.flags & VRING_DESC_F_NEXT == 0 {
                return Ok(());
            }
            if u32::from(d.next) >= self.num() {
                return Err(RingError::NextOutOfRange(d.next));
            }
            i = d.next;
        }
    }

    /// Puts `chain`'s head back: the next [`Vring::get_vq_desc`] pops it
    /// again (`vhost_discard_vq_desc`).
    pub fn unget(&mut self) {
        self.last_avail_idx = self.last_avail_idx.wrapping_sub(1);
    }

    /// `vhost_add_used_n()`: publishes used buffers, each `(head, written
    /// length)`, then moves `used->idx` once.
    pub fn add_used(
        &mut self,
        mem: &impl UserMemory,
        used: &[(u16, u32)],
    ) -> Result<(), RingError> {
        if used.is_empty() {
            return Ok(());
        }
        let mut idx = self.last_used_idx;
        let mut rest = used;
        while !rest.is_empty() {
            // One copy per run of the ring up to its end, in chunks.
            let start = idx & self.mask;
            let room = (self.num() - u32::from(start)) as usize;
            let n = rest.len().min(room).min(USED_CHUNK);
            let mut b = [0u8; 8 * USED_CHUNK];
            for (e, &(id, len)) in b.chunks_exact_mut(8).zip(&rest[..n]) {
                e[..4].copy_from_slice(&u32::from(id).to_le_bytes());
                e[4..].copy_from_slice(&len.to_le_bytes());
            }
            mem.write(self.addrs.used + 4 + 8 * u64::from(start), &b[..8 * n])?;
            idx = idx.wrapping_add(n as u16);
            rest = &rest[n..];
        }
        // The entries must be visible before the index that exposes them.
        mem.write_barrier();
        mem.write_u16(self.addrs.used + 2, idx)?;
        let old = self.last_used_idx;
        self.last_used_idx = idx;
        // If the driver's event index fell in the window we skipped past,
        // the next signal decision cannot rely on `signalled_used`.
        if idx.wrapping_sub(self.signalled_used) < idx.wrapping_sub(old) {
            self.signalled_used_valid = false;
        }
        Ok(())
    }

    /// `vhost_notify()`: whether the driver wants an interrupt for the used
    /// buffers published since the last signal. Call after
    /// [`Vring::add_used`]; a `true` answer must be followed by a signal.
    pub fn should_signal(&mut self, mem: &impl UserMemory) -> Result<bool, RingError> {
        // The used index must be visible before the driver's flags or event
        // index are read.
        mem.full_barrier();
        if self.features.notify_on_empty && self.last_avail_idx == self.avail_idx {
            let idx = mem.read_u16(self.addrs.avail + 2)?;
            if idx == self.last_avail_idx {
                return Ok(true);
            }
        }
        if !self.features.event_idx {
            let flags = mem.read_u16(self.addrs.avail)?;
            return Ok(flags & VRING_AVAIL_F_NO_INTERRUPT == 0);
        }
        // Read before any state changes: after a failed read the caller
        // may ask again and must get the same answer.
        let event = mem.read_u16(self.used_event_addr())?;
        let old = self.signalled_used;
        let valid = self.signalled_used_valid;
        let new = self.last_used_idx;
        self.signalled_used = new;
        self.signalled_used_valid = true;
        Ok(!valid || need_event(event, new, old))
    }

    /// `vhost_disable_notify()`: asks the driver not to kick.
    pub fn disable_notify(&mut self, mem: &impl UserMemory) -> Result<(), RingError> {
        if !self.features.event_idx {
            mem.write_u16(self.addrs.used, VRING_USED_F_NO_NOTIFY)?;
        }
        // With EVENT_IDX the driver kicks only when crossing avail_event,
        // which is left behind as the device consumes the ring.
        Ok(())
    }

    /// `vhost_enable_notify()`: asks the driver to kick again, then
    /// re-checks the ring. Returns `true` if chains arrived meanwhile, in
    /// which case the caller must keep processing (and may disable
    /// notifications again) so that nothing is stranded.
    pub fn enable_notify(&mut self, mem: &impl UserMemory) -> Result<bool, RingError> {
        if self.features.event_idx {
            mem.write_u16(self.avail_event_addr(), self.last_avail_idx)?;
        } else {
            mem.write_u16(self.addrs.used, 0)?;
        }
        // The flag or event index must be visible before avail->idx is
        // read again, or a kick could be lost.
        mem.full_barrier();
        Ok(self.avail_pending(mem)? != 0)
    }
}

fn walk_indirect(
    mem: &impl UserMemory,
    table: &MemTable<'_>,
    ind: &Descriptor,
    chain: &mut Chain,
) -> Result<(), RingError> {
    let len = ind.len;
    if len == 0
        || u64::from(len) % DESC_SIZE != 0
        || u64::from(len) / DESC_SIZE > u64::from(MAX_INDIRECT)
    {
        return Err(RingError::IndirectBadLength(len));
    }
    let count = (u64::from(len) / DESC_SIZE) as u32;
    if ind.addr.checked_add(u64::from(len) - 1).is_none() {
        return Err(RingError::LengthOverflow);
    }
    if !table.covers(ind.addr, u64::from(len)) {
        return Err(RingError::Unmapped {
            addr: ind.addr,
            len: u64::from(len),
        });
    }
    let unmapped = |_| RingError::Unmapped {
        addr: ind.addr,
        len: u64::from(len),
    };
    // A small table is copied in at once and walked in the copy; a larger
    // one, a descriptor at a time.
    let mut snapshot = [0u8; INDIRECT_BATCH as usize * DESC_SIZE as usize];
    let whole = count <= INDIRECT_BATCH;
    if whole {
        table
            .read(mem, ind.addr, &mut snapshot[..len as usize])
            .map_err(unmapped)?;
    }
    let mut i: u32 = 0;
    let mut ttl = count;
    loop {
        if ttl == 0 {
            return Err(RingError::ChainLoop);
        }
        ttl -= 1;
        chain.count()?;
        let mut b = [0u8; 16];
        if whole {
            let at = i as usize * DESC_SIZE as usize;
            // `i` < `count` <= INDIRECT_BATCH, so this is inside the copy.
            let Some(d) = snapshot.get(at..at + DESC_SIZE as usize) else {
                return Err(RingError::NextOutOfRange(i as u16));
            };
            b.copy_from_slice(d);
        } else {
            table
                .read(mem, ind.addr + DESC_SIZE * u64::from(i), &mut b)
                .map_err(unmapped)?;
        }
        let d = Descriptor::from_bytes(&b);
        if d.flags & VRING_DESC_F_INDIRECT != 0 {
            return Err(RingError::IndirectNested);
        }
        chain.push(table, &d)?;
        if d.flags & VRING_DESC_F_NEXT == 0 {
            return Ok(());
        }
        if u32::from(d.next) >= count {
            return Err(RingError::NextOutOfRange(d.next));
        }
        i = u32::from(d.next);
    }
}
