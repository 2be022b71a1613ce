// SPDX-License-Identifier: GPL-2.0

//! Requests in flight: a queue's host-owned slots, their free list, and
//! the tokens that take a bio's completion back to its slot.
//!
//! Every chain taken from the ring gets a slot, even one answered at once,
//! and the slot is freed when the answer is written. The guest's head
//! index is data in the slot, never an index into host state, so a guest
//! that posts a head still in flight gets a second, independent request.

use core::ops::DerefMut;

/// One request in flight.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    /// The head of its chain, for the used element.
    pub head: u16,
    /// Where its status byte goes, in guest memory.
    pub status_addr: u64,
    /// Bytes the device writes into the chain when it succeeds, status
    /// byte included.
    pub used_len: u32,
    /// Its virtio status so far.
    pub status: u8,
    /// Bios (and zero ranges) not yet completed.
    pub pending: u32,
    /// The device writes guest memory (a read): pages are dirtied when
    /// released.
    pub dirty: bool,
}

/// Why a slot could not be given back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotError {
    /// Every slot is already free: the slot was given back twice.
    AllFree,
    /// No such slot.
    OutOfRange,
}

/// A queue's slots and their free list, in storage the caller allocates
/// once (a `KVec` in the kernel, a `Vec` on the host), so that taking and
/// giving back a slot never allocates.
///
/// # Invariants
///
/// `slots` and `free` have the same length, at most 65,536; `free[..nfree]`
/// are the free slots' indexes, each once.
pub struct SlotTable<S, F> {
    slots: S,
    free: F,
    nfree: usize,
}

impl<S, F> SlotTable<S, F>
where
    S: DerefMut<Target = [Slot]>,
    F: DerefMut<Target = [u16]>,
{
    /// A table over `slots` and `free`, every slot free; `None` if their
    /// lengths differ or exceed 65,536. Slot 0 is taken first.
    pub fn new(slots: S, mut free: F) -> Option<Self> {
        let num = slots.len();
        if free.len() != num || num > usize::from(u16::MAX) + 1 {
            return None;
        }
        for (i, f) in free.iter_mut().enumerate() {
            // Below 65,536, checked above.
            *f = (num - 1 - i) as u16;
        }
        Some(Self {
            slots,
            free,
            nfree: num,
        })
    }

    /// How many slots there are (the ring's size).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the table has no slot at all.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// How many slots are free.
    pub fn free_count(&self) -> usize {
        self.nfree
    }

    /// How many slots are taken: requests in flight.
    pub fn inflight(&self) -> usize {
        self.slots.len() - self.nfree
    }

    /// The slot the next [`Self::take`] returns, if one is free.
    pub fn next(&self) -> Option<u16> {
        self.nfree.checked_sub(1).map(|i| self.free[i])
    }

    /// Takes a free slot for `slot`'s request; `None` if none is free.
    pub fn take(&mut self, slot: Slot) -> Option<u16> {
        let i = self.next()?;
        self.nfree -= 1;
        self.slots[usize::from(i)] = slot;
        Some(i)
    }

    /// The request in slot `i`.
    pub fn get(&self, i: u16) -> Option<&Slot> {
        self.slots.get(usize::from(i))
    }

    /// The request in slot `i`, to update.
    pub fn get_mut(&mut self, i: u16) -> Option<&mut Slot> {
        self.slots.get_mut(usize::from(i))
    }

    /// Gives slot `i` back. The caller gives back only slots it took, once
    /// each; a table that finds every slot already free refuses.
    pub fn release(&mut self, i: u16) -> Result<(), SlotError> {
        if usize::from(i) >= self.slots.len() {
            return Err(SlotError::OutOfRange);
        }
        let f = self.free.get_mut(self.nfree).ok_or(SlotError::AllFree)?;
        *f = i;
        self.nfree += 1;
        Ok(())
    }
}

/// What a bio carries back to its queue: which slot it serves, and whether
/// it writes zeroes from the zero page (its pages are not the guest's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    /// The slot of the request.
    pub slot: u16,
    /// The bio writes the shared zero page.
    pub zero: bool,
}

impl Token {
    /// The token as the bio stores it.
    pub fn encode(self) -> u64 {
        (u64::from(self.zero) << 16) | u64::from(self.slot)
    }

    /// The token a bio stored ([`Self::encode`]).
    pub fn decode(raw: u64) -> Self {
        Self {
            slot: raw as u16,
            zero: (raw >> 16) & 1 != 0,
        }
    }
}
