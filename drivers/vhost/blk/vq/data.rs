// SPDX-License-Identifier: GPL-2.0

//! A request's data as bios: guest buffers pinned without faulting and
//! laid out as the device's rules require.

use super::{Ctx, DataError, PAGE_SIZE};
use crate::ffi::bio::{Bio, BioKind, BioStack, MAX_VECS};
use crate::vcore::blk::{self, Op, Request};
use crate::vcore::memory::Fault;
use crate::vcore::ring::Chain;
use kernel::prelude::*;

/// Pins the data of `req` into bios, not yet submitted, as the device's
/// [`DataRules`](blk::DataRules) require: every piece aligned, bios broken only on logical
/// block boundaries of the data. Fails with [`DataError::Stalled`] if a
/// page is not present (the bios built so far are released), or
/// [`DataError::Failed`] if the data cannot be laid out for the device.
pub(super) fn data_bios(
    cx: &Ctx<'_>,
    chain: &Chain,
    req: &Request,
    tok: u64,
) -> Result<BioStack<Bio>, DataError> {
    let read = req.op == Op::Read;
    let kind = match (read, cx.limits.write_through) {
        (true, _) => BioKind::Read,
        (false, false) => BioKind::Write,
        (false, true) => BioKind::WriteFua,
    };
    let rules = cx.rules;
    // Check every piece before pinning any.
    let mut pieces = 0u32;
    let aligned = blk::for_each_data_piece(chain, &req.data, |gpa, len| {
        cx.table.for_each_piece(gpa, u64::from(len), |ua, n| {
            if !rules.piece_aligned(ua, n) {
                return Err(Fault);
            }
            pieces += 1;
            Ok(())
        })
    });
    if aligned.is_err() {
        return Err(DataError::Failed);
    }
    let nr_vecs = (req.data.len / PAGE_SIZE + pieces + 1).min(MAX_VECS);
    let mut b = BioBuilder {
        cx,
        kind,
        nr_vecs,
        tok,
        read,
        sector: req.sector,
        offset: 0,
        cur: None,
        cur_bytes: 0,
        prev_end: None,
        bios: BioStack::new(),
    };
    let mut failed = None;
    let r = blk::for_each_data_piece(chain, &req.data, |gpa, len| {
        cx.table.for_each_piece(gpa, u64::from(len), |ua, n| {
            b.add_piece(ua, n as u32).map_err(|e| {
                failed = Some(e);
                Fault
            })
        })
    });
    if r.is_err() {
        // Dropping the unsubmitted bios unpins what they hold.
        return Err(failed.unwrap_or(DataError::Failed));
    }
    b.close();
    Ok(b.bios)
}

/// Builds the bios of one request's data, piece by piece.
struct BioBuilder<'a, 'b> {
    cx: &'b Ctx<'a>,
    kind: BioKind,
    nr_vecs: u32,
    tok: u64,
    read: bool,
    /// The request's first sector.
    sector: u64,
    /// Bytes of data placed so far.
    offset: u64,
    cur: Option<Bio>,
    cur_bytes: u32,
    /// Where the previous piece ended, in the owner's memory.
    prev_end: Option<u64>,
    bios: BioStack<Bio>,
}

impl BioBuilder<'_, '_> {
    fn close(&mut self) {
        if let Some(bio) = self.cur.take() {
            self.bios.push(bio);
        }
        self.cur_bytes = 0;
    }

    fn add_piece(&mut self, mut ua: u64, mut left: u32) -> Result<(), DataError> {
        let rules = self.cx.rules;
        if self.prev_end.is_some_and(|end| rules.gap(end, ua)) {
            self.close();
        }
        while left > 0 {
            if self.cur.is_none() {
                if !rules.may_split_at(self.offset) {
                    return Err(DataError::Failed);
                }
                let sector = self.sector + self.offset / 512;
                let bio = Bio::new(
                    &self.cx.target,
                    self.kind,
                    self.nr_vecs,
                    sector,
                    0,
                    self.tok,
                )
                .ok_or(DataError::Failed)?;
                self.cur = Some(bio);
            }
            let room = rules.max_bio_bytes - self.cur_bytes;
            let Some(bio) = self.cur.as_mut() else {
                return Err(DataError::Failed);
            };
            match bio.add_user(ua, left.min(room), self.read) {
                Ok(0) => self.close(),
                Ok(added) => {
                    ua += u64::from(added);
                    left -= added;
                    self.offset += u64::from(added);
                    self.cur_bytes += added;
                    if self.cur_bytes >= rules.max_bio_bytes {
                        self.close();
                    }
                }
                Err(_) => {
                    // Not present, or the owner's memory is busy: the slow
                    // path faults it in, unless it already found it cannot.
                    self.cx.mem.would_fault(ua, u64::from(left), self.read);
                    return Err(if self.cx.mem.stalled() {
                        DataError::Stalled
                    } else {
                        DataError::Failed
                    });
                }
            }
        }
        self.prev_end = Some(ua);
        Ok(())
    }
}
