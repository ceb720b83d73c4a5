// SPDX-License-Identifier: MPL-2.0
//! What the reader does where the ring has gaps: segments deleted before
//! or while they were read, numbers missing from the listing, files that
//! cannot be opened or read. Each is reported once (runs of missing
//! segments as one event) and skipped; nothing ends playback early.

use std::io;
use std::path::Path;

use super::{Open, ReadOutcome, ReaderEvent, RingReader, scale};
use crate::layout::SegmentNumber;
use crate::layout::{RingTime, segment_file_name};

/// Where reading was in a segment evicted while it was read, to go on
/// there in the archive's copy.
#[derive(Debug, Clone, Copy)]
pub(super) struct Resume {
    pub(super) sequence: SegmentNumber,
    pub(super) offset: u64,
    pub(super) jump: Option<super::KeyframeJump>,
    pub(super) start: RingTime,
}

/// Reads of one segment that may fail in a row (one per poll interval)
/// before the segment is given up and skipped.
pub const READ_RETRIES: u32 = 3;

impl RingReader {
    pub(super) fn read_failure(&mut self, path: &Path, error: &io::Error) {
        self.events.push(ReaderEvent::ReadFailure {
            path: path.to_owned(),
            error: error.to_string(),
        });
    }

    /// A read of the segment at `path` failed: reported, retried at the next
    /// call (the element waits a poll interval), and after [`READ_RETRIES`]
    /// failures in a row the segment is skipped with a time hole for what
    /// was left of it.
    pub(super) fn failed_read(&mut self, path: &Path, error: &io::Error) -> ReadOutcome {
        self.read_failure(path, error);
        self.failures += 1;
        if self.failures < READ_RETRIES {
            return ReadOutcome::Wait;
        }
        if let Some(cur) = self.current.take() {
            let rest = self.position_after(&cur);
            self.skip_unreadable(cur.sequence, rest);
        }
        ReadOutcome::Wait
    }

    /// Ring time left of `cur` from where it was being read: (from, size in ns).
    fn position_after(&self, cur: &Open) -> (RingTime, u64) {
        let duration = self
            .catalog
            .spans()
            .get(&cur.sequence)
            .map_or_else(|| self.catalog.estimate_ns(cur.sequence), |s| s.duration_ns);
        let len = cur.file.metadata().map_or(0, |m| m.len()).max(1);
        let done = scale(cur.offset.min(len), duration, len);
        (cur.start.saturating_add(done), duration.saturating_sub(done))
    }

    /// Gives up segment `seq`, of which ring time `(from, size)` is lost.
    pub(super) fn skip_unreadable(&mut self, seq: SegmentNumber, (from, size): (RingTime, u64)) {
        self.events.push(ReaderEvent::TimeHole {
            offset_ms: from.ns() / 1_000_000,
            size_ms: size / 1_000_000,
        });
        self.failures = 0;
        self.skipped_unreadable = true;
        self.last_opened = Some(seq);
        self.discont = true;
        self.continue_at = Some(from.saturating_add(size));
        self.next = Some(self.catalog.after(seq));
    }

    /// The writer deleted the segment being read, and the ring has an
    /// archive: reading goes on from the archive's copy (the same bytes)
    /// where it was. Whether it does.
    pub(super) fn resume_from_archive(&mut self) -> bool {
        let Some(cur) = self.current.as_ref() else {
            return false;
        };
        let seq = cur.sequence;
        if !self.catalog.move_to_archive(seq) {
            // Read while it was written, gone before this reader saw the
            // ring list it: the archive's listing may have it.
            self.refresh_playing();
            if self.catalog.archived(seq).is_none() && !self.catalog.archive_behind(seq) {
                return false;
            }
        }
        let Some(cur) = self.current.take() else {
            return false;
        };
        self.resume = Some(Resume {
            sequence: seq,
            offset: cur.offset,
            jump: cur.jump,
            start: cur.start,
        });
        self.next = Some(seq);
        true
    }

    /// The writer deleted (or reused) the segment being read: the reader is
    /// too slow. Goes on with the oldest segment still there.
    pub(super) fn lost_current(&mut self) {
        let Some(cur) = self.current.take() else {
            return;
        };
        let seq = cur.sequence;
        self.push_stale(seq, seq);
        self.refresh_playing();
        self.next = Some(
            self.catalog
                .after(seq)
                .max(self.catalog.oldest().unwrap_or(SegmentNumber::FIRST)),
        );
        self.discont = true;
    }

    /// Archived segment `seq` is not in the archive (any more): reported
    /// like a segment the writer deleted, and skipped.
    pub(super) fn archive_gone(&mut self, seq: SegmentNumber) {
        if let Some(last) = self.last_opened
            && let Some(before) = seq.previous().filter(|&b| b > last)
        {
            self.push_stale(last.next(), before);
        }
        self.push_stale(seq, seq);
        self.last_opened = Some(seq);
        self.next = Some(self.catalog.after(seq));
        self.discont = true;
    }

    /// Archived segment `seq` could not be fetched (the fetcher has already
    /// retried): reported and skipped, a time hole for all of it.
    pub(super) fn archive_unreadable(&mut self, seq: SegmentNumber, error: &str) {
        let (start, size) = self
            .catalog
            .spans()
            .get(&seq)
            .map_or((self.continue_at.unwrap_or(RingTime::ZERO), 0), |s| {
                (s.start, s.duration_ns)
            });
        let path = self.catalog.dir().join(segment_file_name(seq));
        self.read_failure(&path, &io::Error::other(format!("from the archive: {error}")));
        self.skip_unreadable(seq, (start, size));
    }

    /// Reports segments `first..=last` as gone, as one run with any run
    /// just reported that it touches or overlaps.
    pub(super) fn push_stale(&mut self, first: SegmentNumber, last: SegmentNumber) {
        if let Some(ReaderEvent::StaleFileDeleted { first: f, last: l }) = self.events.last_mut()
            && first <= l.next()
            && last.next() >= *f
        {
            *f = (*f).min(first);
            *l = (*l).max(last);
            return;
        }
        self.events.push(ReaderEvent::StaleFileDeleted { first, last });
    }

    /// Segment `first` is gone: skips it and every missing one after it,
    /// up to the next segment whose file exists, with one event for the run.
    pub(super) fn skip_missing(&mut self, first: SegmentNumber) {
        let exists = |seq: SegmentNumber| {
            self.catalog.archived(seq).is_some()
                || std::fs::symlink_metadata(self.catalog.dir().join(segment_file_name(seq))).is_ok()
        };
        let mut last = first;
        let mut next = self
            .catalog
            .successor(first)
            .map(|s| s.max(self.catalog.oldest().unwrap_or(SegmentNumber::FIRST)));
        while let Some(n) = next
            && self.catalog.spans().contains_key(&n)
            && !exists(n)
        {
            last = n;
            next = self.catalog.successor(n);
        }
        self.push_stale(first, last);
        self.next = Some(next.unwrap_or(last.next()));
        self.discont = true;
    }
}
