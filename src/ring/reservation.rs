// SPDX-License-Identifier: MPL-2.0
//! Disk blocks reserved ahead of a segment's writes (ext4).
//!
//! On ext4 a write into a new part of a file reserves its blocks one at a
//! time (delayed allocation); with them reserved beforehand, a few MiB per
//! system call, the write only fills pages: a third less CPU for the writes
//! (docs/performance.md). The reservation keeps the file's size, so readers
//! see no difference; what was not used is released when the segment is cut
//! to its length at close. That cut frees blocks, and costs more than the
//! reservation saved on the last few MiB: a writer that knows the length to
//! expect reserves less than that and no more ([`Reservation::expect_length`]),
//! so that a segment of about that length ends with nothing to cut.

use std::fs::File;

use crate::platform;

/// Blocks are reserved ahead of the writes this much at a time: one system
/// call per few write blocks, and at most this much reserved and unused
/// while a segment is open.
pub(super) const STEP: u64 = 4 * 1024 * 1024;
/// With an expected length, blocks are reserved up to this fraction of it
/// short of it (1/16), and no further.
const EXPECTED_LENGTH_SHORTFALL: u64 = 16;

/// How far a segment file has disk blocks reserved ahead of the writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reserved {
    /// Not on this filesystem: plain writes.
    Off,
    /// Blocks exist up to this offset (a reused file's old content counts).
    UpTo(u64),
    /// Reserving failed (no room for a whole step, say): plain writes from
    /// here. Part of the step may have been reserved; the cut at close
    /// releases it.
    Failed,
}

/// The blocks a segment file has reserved, and how far they may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reservation {
    reserved: Reserved,
    /// Blocks are reserved up to here and no further; `None`: in steps of
    /// [`STEP`], as far as the writes go.
    limit: Option<u64>,
}

impl Reservation {
    /// For a file whose blocks exist up to `existing` (a reused file's old
    /// content, or 0); `ahead`: reserve past them (on ext4 only, see
    /// `DirHandle::reserves_blocks_ahead`).
    pub(super) fn new(ahead: bool, existing: u64) -> Self {
        Reservation {
            reserved: if ahead { Reserved::UpTo(existing) } else { Reserved::Off },
            limit: None,
        }
    }

    /// The segment is expected to grow about `bytes` long (the one before
    /// it did). Blocks are then reserved in the usual steps up to 1/16
    /// short of that, and no further: a segment that reaches it ends with no
    /// reserved blocks past its end, and closes with no cut (an `ftruncate`
    /// that frees blocks: about 0.1 ms on ext4, more than reserving saves on
    /// the 6 % written plainly after it). One shorter is cut at close, as
    /// without an expected length.
    pub(super) fn expect_length(&mut self, bytes: u64) {
        // Whole 4 KiB blocks.
        self.limit = Some((bytes - bytes / EXPECTED_LENGTH_SHORTFALL) & !4095);
    }

    /// Where reserving blocks stops (see [`Self::expect_length`]).
    #[cfg(test)]
    pub(super) fn limit(self) -> Option<u64> {
        self.limit
    }

    /// Reserves blocks of `file` up to offset `end`, a step ahead.
    pub(super) fn reserve_to(&mut self, file: &File, end: u64) {
        let Reserved::UpTo(reserved) = self.reserved else {
            return;
        };
        if end <= reserved {
            return;
        }
        let step = (end - reserved).max(STEP);
        let len = match self.limit {
            // Past it the writes are plain: blocks reserved there would be
            // left to free at close unless the segment grew that long.
            Some(limit) if reserved >= limit => return,
            Some(limit) => step.min(limit - reserved),
            None => step,
        };
        self.reserved = match platform::reserve_blocks(file, reserved, len) {
            Ok(()) => Reserved::UpTo(reserved + len),
            // A full disk is the write's to report.
            Err(_) => Reserved::Failed,
        };
    }

    /// Whether blocks are reserved past `len` bytes: the file is to be cut
    /// to its length to release them.
    #[must_use]
    pub(super) fn past(self, len: u64) -> bool {
        match self.reserved {
            Reserved::Off => false,
            Reserved::UpTo(reserved) => reserved > len,
            Reserved::Failed => true,
        }
    }

    /// The file was cut to `len` bytes: nothing is reserved past it.
    pub(super) fn cut_to(&mut self, len: u64) {
        if let Reserved::UpTo(reserved) = &mut self.reserved {
            *reserved = len;
        }
    }
}
