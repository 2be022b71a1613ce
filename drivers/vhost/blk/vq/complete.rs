// SPDX-License-Identifier: GPL-2.0

//! A virtqueue's completions: each completed bio accounted to its slot,
//! bios that bounced off a full device submitted again or handed to the
//! slow path, then the answers: status bytes written, used elements
//! gathered and published.

use super::{Flush, VqRuntime, NOWAIT_RETRIES};
use crate::ffi::bio::{Bio, BioKind, BioTarget, Bounce, DoneBio};
use crate::ffi::uaccess::OwnerMemory;
use crate::vcore::blk::{VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK};
use crate::vcore::memory::{MemTable, UserMemory};
use crate::vcore::ring::RingError;
use crate::vcore::slots::Token;

impl VqRuntime {
    pub(super) fn add_pending(&mut self, slot: u16, n: u32) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.pending += n;
        }
    }

    pub(super) fn set_pending(&mut self, slot: u16, n: u32) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.pending = n;
        }
    }

    pub(super) fn set_status(&mut self, slot: u16, status: u8) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.status = status;
        }
    }

    /// One bio (or zero range) of `slot` is over, with `errno`.
    pub(super) fn slot_bio_done(&mut self, slot: u16, errno: i32) {
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        if errno != 0 {
            s.status = VIRTIO_BLK_S_IOERR;
        }
        s.pending = s.pending.saturating_sub(1);
        if s.pending == 0 {
            self.slot_done(slot);
        }
    }

    /// The slot's request is over: it waits to be answered.
    pub(super) fn slot_done(&mut self, slot: u16) {
        // Cannot overflow (see `new`), but a full array must not panic.
        if let Some(d) = self.done.get_mut(self.ndone) {
            *d = slot;
            self.ndone += 1;
        }
    }

    /// Accounts a completed bio of this queue, whose bios go to `to`. A
    /// bio the device had no room for waits to be submitted again: by the
    /// worker as room comes back ([`Self::retry_no_room`], which also
    /// hands it to the slow path if no room can come back), or by the
    /// slow path ([`Self::wants_slow_path`]).
    pub(crate) fn complete_bio(&mut self, bio: DoneBio, to: &BioTarget<'_>) {
        let Token { slot, zero } = Token::decode(bio.token());
        self.bios_out = self.bios_out.saturating_sub(1);
        if let Some(bounce) = bio.bounce() {
            if self.orphaned {
                bio.release(false);
                self.slot_bio_done(slot, -1);
            } else if bounce == Bounce::NoRoom && bio.nowait_retries() < NOWAIT_RETRIES {
                self.no_room.push(bio);
            } else {
                self.resubmit.push(bio);
            }
            return;
        }
        self.room_freed = self.room_freed.saturating_add(1);
        if zero {
            self.zero_bios = self.zero_bios.saturating_sub(1);
        }
        let errno = bio.errno();
        let offloaded = matches!(
            bio.kind(),
            BioKind::WriteZeroes | BioKind::WriteZeroesNoUnmap
        );
        if errno == -(kernel::bindings::EOPNOTSUPP as i32) && offloaded && !self.orphaned {
            // The device refused the offload (without deallocating, or at
            // all): write the range from the zero page instead, now and
            // for every such range from now on.
            if bio.kind() == BioKind::WriteZeroesNoUnmap {
                self.no_unmap_offload = true;
            } else {
                self.no_zeroes_offload = true;
            }
            let (sector, bytes) = bio.range();
            // A record for the range, on the same list; the slot's count
            // moves from the bio to the record.
            bio.release(false);
            let tok = Token { slot, zero: false }.encode();
            if let Some(rec) = Bio::new(to, BioKind::ZeroRange, 0, sector, bytes, tok) {
                self.zeroes.push(rec);
                self.zero_ranges += 1;
            } else {
                self.slot_bio_done(slot, -1);
            }
            return;
        }
        let dirty = self.slots.get(slot).is_some_and(|s| s.dirty);
        bio.release(dirty);
        self.slot_bio_done(slot, errno);
    }

    /// Submits again, without waiting, as many bios the device had no room
    /// for as the queue's bios that completed since gave room back. What
    /// still waits then needs a bio of the queue out, whose completion
    /// brings room back and the worker with it; if none is, it goes to
    /// the slow path.
    pub(crate) fn retry_no_room(&mut self) {
        let freed = core::mem::take(&mut self.room_freed);
        for _ in 0..freed {
            let Some(bio) = self.no_room.pop() else {
                break;
            };
            self.bios_out += 1;
            self.stats.retries += 1;
            bio.retry_nowait();
        }
        if self.bios_out == 0 {
            while let Some(bio) = self.no_room.pop() {
                self.resubmit.push(bio);
            }
        }
    }

    /// Answers the slots that are done: writes each status byte and
    /// gathers the used element. Stops at a status byte not present (the
    /// caller records the stall) or fails if the ring is broken. A queue
    /// that is orphaned or broken frees the slots without answering.
    pub(crate) fn answer_done(
        &mut self,
        mem: &OwnerMemory,
        table: &MemTable<'_>,
    ) -> Result<bool, RingError> {
        let mut any = false;
        while self.ndone > 0 {
            let slot = self.done[self.ndone - 1];
            let Some(&s) = self.slots.get(slot) else {
                return Err(RingError::Fault);
            };
            if !(self.orphaned || self.broken) {
                if !self.memory_ok() {
                    break;
                }
                if let Err(e) = table.write(mem, s.status_addr, &[s.status]) {
                    if mem.stalled() {
                        break;
                    }
                    return Err(RingError::from(e));
                }
                let len = if s.status == VIRTIO_BLK_S_OK {
                    s.used_len
                } else {
                    1
                };
                let e = self.used.get_mut(self.nused).ok_or(RingError::Fault)?;
                *e = (s.head, len);
                self.nused += 1;
            }
            self.ndone -= 1;
            self.slots.release(slot).map_err(|_| RingError::Fault)?;
            any = true;
        }
        Ok(any)
    }

    /// Publishes the used elements gathered so far, in one batch, and
    /// tells whether the driver wants an interrupt for them. After a
    /// failure for memory not present, the same call publishes them again.
    pub(crate) fn flush_used(&mut self, mem: &impl UserMemory) -> Result<Flush, RingError> {
        if self.nused != 0 {
            self.vring.add_used(mem, &self.used[..self.nused])?;
            self.nused = 0;
            self.signal_due = true;
        }
        if !self.signal_due {
            return Ok(Flush::Nothing);
        }
        let signal = self.vring.should_signal(mem)?;
        self.signal_due = false;
        if signal {
            self.stats.irqs += 1;
            Ok(Flush::Signal)
        } else {
            self.stats.irqs_suppressed += 1;
            Ok(Flush::Suppressed)
        }
    }
}
