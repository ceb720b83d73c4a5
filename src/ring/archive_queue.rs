// SPDX-License-Identifier: MPL-2.0
//! `ArchiveQueue`: the segments waiting for the archive, as second links in
//! the ring's `archive-queue/` directory (the format is
//! [`crate::layout::archive`]'s), shared by the ring, which adds each
//! completed segment, and the uploader, which takes them oldest first.
//!
//! The links are what holds a segment back from deletion while its upload
//! has not gone through: when the ring evicts a segment, the queue's link
//! keeps its data, and the ring never writes a new segment over a file with
//! a second link. What only the queue holds ("held" bytes) is bounded by
//! the hold limit, and by the ring's `min-free-space`: past either, the
//! oldest held segments are let go, and each is a hole in the archive,
//! counted and reported.

use std::io;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::layout::archive::{QUEUE_DIR_NAME, parse_queued_info_name, queued_info_name, queued_names};
use crate::layout::journal::{format_line, parse_line};
use crate::layout::{SegmentInfo, SegmentNumber, segment_file_name, segment_index_name};
use crate::platform::DirHandle;

/// Largest journal line a queue entry can hold.
const INFO_MAX_BYTES: u64 = 256;

/// A segment let go before it was archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hole {
    pub sequence: SegmentNumber,
    /// Its bytes (0 when it could not be queued at all).
    pub bytes: u64,
    pub reason: HoleReason,
}

/// Why a segment never reached the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoleReason {
    /// The held-back bytes would have exceeded the hold limit.
    HoldLimit,
    /// The filesystem ran short of space (`min-free-space`, or a write that
    /// failed for lack of it).
    DiskSpace,
    /// It could not be linked into the queue (no hard links there).
    NotQueued,
    /// Its queue entry was unreadable or its file vanished.
    Unreadable,
}

impl HoleReason {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            HoleReason::HoldLimit => "hold-limit",
            HoleReason::DiskSpace => "disk-space",
            HoleReason::NotQueued => "not-queued",
            HoleReason::Unreadable => "unreadable",
        }
    }
}

#[derive(Debug, Default)]
struct QueueState {
    /// The segment the uploader is sending: never let go meanwhile (its
    /// open files keep its data anyway, so letting it go frees nothing).
    in_flight: Option<SegmentNumber>,
    /// Holes not reported yet.
    holes: Vec<Hole>,
    /// Set by [`ArchiveQueue::notify`]: something changed since the
    /// uploader last looked.
    changed: bool,
    stopping: bool,
}

/// See the module documentation.
#[derive(Debug)]
pub struct ArchiveQueue {
    dir: DirHandle,
    /// Most bytes the queue alone may keep on disk.
    hold_limit: u64,
    state: Mutex<QueueState>,
    wake: Condvar,
}

/// One queued segment's entries.
#[derive(Debug)]
struct Queued {
    sequence: SegmentNumber,
    /// Bytes of its data and index that only the queue holds (the ring let
    /// go of them), 0 while the ring still has the segment.
    held: u64,
}

impl ArchiveQueue {
    /// Opens (creating) the queue of the ring in `ring`.
    pub fn open(ring: &DirHandle, hold_limit: u64) -> io::Result<ArchiveQueue> {
        Ok(ArchiveQueue {
            dir: ring.open_subdir(QUEUE_DIR_NAME)?,
            hold_limit,
            state: Mutex::new(QueueState::default()),
            wake: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues completed segment `info` of the ring in `ring`: its data and
    /// index get a second name in the queue, then its journal line is
    /// written, which makes the entry complete. Called by the ring before
    /// the segment is journaled; one already queued stays as it is. A
    /// segment that cannot be queued is a hole, reported by the uploader.
    pub fn enqueue(&self, ring: &DirHandle, info: &SegmentInfo) {
        let guard = self.lock();
        let seq = info.sequence;
        let link = |name: &str| match ring.link_into(name, &self.dir, name) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        };
        let data = link(&segment_file_name(seq));
        // A segment without keyframes may have no index: that is not a failure.
        let index = match link(&segment_index_name(seq)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
        let queued = data.and(index).and_then(|()| {
            self.dir
                .replace_atomically(&queued_info_name(seq), format_line(info).as_bytes(), false)
        });
        drop(guard);
        if queued.is_err() {
            self.remove_entry(seq);
            self.lock().holes.push(Hole {
                sequence: seq,
                bytes: 0,
                reason: HoleReason::NotQueued,
            });
        }
        self.notify();
    }

    /// Records where the archive is, for the ring's readers (see
    /// [`crate::layout::archive::Description`]).
    pub fn describe(&self, description: &crate::layout::archive::Description) -> io::Result<()> {
        self.dir.replace_atomically(
            crate::layout::archive::DESCRIPTION_NAME,
            description.format().as_bytes(),
            false,
        )
    }

    /// Wakes the uploader.
    pub fn notify(&self) {
        self.lock().changed = true;
        self.wake.notify_all();
    }

    /// Makes [`Self::wait`] return at once from now on.
    pub fn stop(&self) {
        self.lock().stopping = true;
        self.wake.notify_all();
    }

    #[must_use]
    pub fn is_stopping(&self) -> bool {
        self.lock().stopping
    }

    /// Waits until something was queued or let go, or [`Self::stop`], or
    /// `timeout`.
    pub fn wait(&self, timeout: Duration) {
        let state = self.lock();
        if state.changed || state.stopping {
            drop(state);
            self.lock().changed = false;
            return;
        }
        let (mut state, _) = self
            .wake
            .wait_timeout_while(state, timeout, |s| !s.changed && !s.stopping)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.changed = false;
    }

    /// The queued segments, oldest first (complete entries only).
    fn entries(&self) -> Vec<Queued> {
        let mut queued: Vec<Queued> = self
            .dir
            .names()
            .unwrap_or_default()
            .iter()
            .filter_map(|name| parse_queued_info_name(name))
            .map(|sequence| Queued {
                sequence,
                held: self.held_bytes_of(sequence),
            })
            .collect();
        queued.sort_unstable_by_key(|q| q.sequence);
        queued
    }

    fn held_bytes_of(&self, sequence: SegmentNumber) -> u64 {
        [segment_file_name(sequence), segment_index_name(sequence)]
            .iter()
            .filter_map(|name| self.dir.entry(name).ok())
            .filter(|e| e.links == Some(1))
            .map(|e| e.len)
            .sum()
    }

    /// How many segments are waiting.
    #[must_use]
    pub fn waiting(&self) -> u64 {
        self.entries().len() as u64
    }

    /// Bytes on disk that only the queue keeps.
    #[must_use]
    pub fn held_bytes(&self) -> u64 {
        self.entries().iter().map(|q| q.held).sum()
    }

    /// The oldest waiting segment, now in flight; `None` when none is.
    /// An entry whose journal line cannot be read is dropped as a hole.
    pub fn take_oldest(&self) -> Option<SegmentInfo> {
        loop {
            let oldest = self.entries().into_iter().next()?;
            match self.info_of(oldest.sequence) {
                Some(info) => {
                    self.lock().in_flight = Some(info.sequence);
                    return Some(info);
                }
                None => self.let_go(oldest.sequence, 0, HoleReason::Unreadable),
            }
        }
    }

    /// The journal line of queued segment `sequence`, if it is whole.
    fn info_of(&self, sequence: SegmentNumber) -> Option<SegmentInfo> {
        let line = self
            .dir
            .open_read_only(&queued_info_name(sequence))
            .and_then(|f| crate::platform::read_to_end_bounded(f, INFO_MAX_BYTES));
        line.ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|text| parse_line(&text))
            .filter(|info| info.sequence == sequence && info.is_plausible())
    }

    /// The segments waiting, oldest first (those whose journal line is
    /// whole): what is not in the bucket yet, for readers of the archive.
    #[must_use]
    pub fn queued_segments(&self) -> Vec<SegmentInfo> {
        self.entries().iter().filter_map(|q| self.info_of(q.sequence)).collect()
    }

    /// Opens the data and (if there is one) the index of a queued segment.
    pub fn open_files(&self, sequence: SegmentNumber) -> io::Result<(std::fs::File, Option<std::fs::File>)> {
        let data = self.dir.open_read_only(&segment_file_name(sequence))?;
        let index = match self.dir.open_read_only(&segment_index_name(sequence)) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok((data, index))
    }

    /// The segment in flight is archived: it leaves the queue.
    pub fn archived(&self, sequence: SegmentNumber) {
        self.remove_entry(sequence);
        let mut state = self.lock();
        if state.in_flight == Some(sequence) {
            state.in_flight = None;
        }
    }

    /// The segment in flight could not be sent now: it stays queued.
    pub fn put_back(&self, sequence: SegmentNumber) {
        let mut state = self.lock();
        if state.in_flight == Some(sequence) {
            state.in_flight = None;
        }
    }

    /// The segment in flight could not be read: a hole.
    pub fn unreadable(&self, sequence: SegmentNumber) {
        self.put_back(sequence);
        self.let_go(sequence, 0, HoleReason::Unreadable);
    }

    fn remove_entry(&self, sequence: SegmentNumber) {
        // The journal line first: an entry without one is not complete,
        // and a crash between these leaves nothing that looks queued.
        for name in queued_names(sequence).iter().rev() {
            let _ = self.dir.remove(name);
        }
    }

    fn let_go(&self, sequence: SegmentNumber, bytes: u64, reason: HoleReason) {
        self.remove_entry(sequence);
        self.lock().holes.push(Hole {
            sequence,
            bytes,
            reason,
        });
    }

    /// Lets go of the oldest held segments (not in flight) until `needed`
    /// bytes were freed; returns the bytes freed. The ring calls it when
    /// the filesystem runs short of space, before evicting its own.
    pub fn release_held(&self, needed: u64) -> u64 {
        let in_flight = self.lock().in_flight;
        let mut freed = 0;
        for q in self.entries() {
            if freed >= needed {
                break;
            }
            if q.held == 0 || Some(q.sequence) == in_flight {
                continue;
            }
            freed += q.held;
            self.let_go(q.sequence, q.held, HoleReason::DiskSpace);
        }
        if freed > 0 {
            self.notify();
        }
        freed
    }

    /// Lets go of the oldest held segments while the queue alone holds more
    /// than the hold limit.
    pub fn enforce_hold_limit(&self) {
        let in_flight = self.lock().in_flight;
        let entries = self.entries();
        let mut held: u64 = entries.iter().map(|q| q.held).sum();
        for q in entries {
            if held <= self.hold_limit {
                break;
            }
            if q.held == 0 || Some(q.sequence) == in_flight {
                continue;
            }
            held -= q.held;
            self.let_go(q.sequence, q.held, HoleReason::HoldLimit);
        }
    }

    /// Holes since the last call.
    #[must_use]
    pub fn take_holes(&self) -> Vec<Hole> {
        std::mem::take(&mut self.lock().holes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::WallTime;

    fn info(n: u64) -> SegmentInfo {
        SegmentInfo {
            sequence: SegmentNumber::new(n),
            duration_ns: 1_000_000_000,
            bytes: 188 * 10,
            program_date_time: WallTime::from_ms(1_795_833_785_007 + n as i64 * 1000),
            discontinuity: false,
            independent: true,
        }
    }

    fn ring_with(dir: &std::path::Path, n: u64) -> DirHandle {
        let ring = DirHandle::open(dir).expect("ring");
        std::fs::write(dir.join(segment_file_name(SegmentNumber::new(n))), vec![0x47; 188 * 10]).expect("data");
        std::fs::write(dir.join(segment_index_name(SegmentNumber::new(n))), b"idx").expect("index");
        ring
    }

    #[test]
    fn queued_segments_come_out_oldest_first_and_leave_when_archived() {
        let tmp = tempfile::tempdir().expect("tmp");
        let ring = ring_with(tmp.path(), 2);
        ring_with(tmp.path(), 1);
        let queue = ArchiveQueue::open(&ring, u64::MAX).expect("queue");
        queue.enqueue(&ring, &info(2));
        queue.enqueue(&ring, &info(1));
        queue.enqueue(&ring, &info(1));
        assert_eq!(queue.waiting(), 2);
        assert_eq!(queue.held_bytes(), 0, "the ring still has both");
        let first = queue.take_oldest().expect("one");
        assert_eq!(first, info(1));
        let (data, index) = queue.open_files(first.sequence).expect("files");
        assert_eq!(data.metadata().expect("meta").len(), 1880);
        assert!(index.is_some());
        queue.archived(first.sequence);
        assert_eq!(queue.waiting(), 1);
        assert!(queue.take_holes().is_empty());
    }

    #[test]
    fn evicted_segments_are_held_up_to_the_limit_then_holes() {
        let tmp = tempfile::tempdir().expect("tmp");
        let ring = ring_with(tmp.path(), 1);
        ring_with(tmp.path(), 2);
        ring_with(tmp.path(), 3);
        // Room for the data and index of two segments.
        let queue = ArchiveQueue::open(&ring, 2 * (1880 + 3)).expect("queue");
        for n in 1..=3 {
            queue.enqueue(&ring, &info(n));
            ring.remove(&segment_file_name(SegmentNumber::new(n))).expect("evict");
            ring.remove(&segment_index_name(SegmentNumber::new(n))).expect("evict");
        }
        assert_eq!(queue.held_bytes(), 3 * 1883);
        queue.enforce_hold_limit();
        assert_eq!(queue.waiting(), 2);
        let holes = queue.take_holes();
        assert_eq!(holes.len(), 1);
        assert_eq!(holes[0].sequence, SegmentNumber::new(1));
        assert_eq!(holes[0].reason, HoleReason::HoldLimit);
        // Short of space: the held ones go, but not the one in flight.
        let in_flight = queue.take_oldest().expect("2");
        assert_eq!(queue.release_held(u64::MAX), 1883);
        assert_eq!(queue.take_holes()[0].sequence, SegmentNumber::new(3));
        assert!(queue.open_files(in_flight.sequence).is_ok());
    }

    #[test]
    fn a_corrupt_entry_is_a_hole_not_a_stop() {
        let tmp = tempfile::tempdir().expect("tmp");
        let ring = ring_with(tmp.path(), 1);
        ring_with(tmp.path(), 2);
        let queue = ArchiveQueue::open(&ring, u64::MAX).expect("queue");
        queue.enqueue(&ring, &info(1));
        queue.enqueue(&ring, &info(2));
        std::fs::write(
            tmp.path()
                .join(QUEUE_DIR_NAME)
                .join(queued_info_name(SegmentNumber::new(1))),
            b"garbage",
        )
        .expect("corrupt");
        assert_eq!(queue.take_oldest(), Some(info(2)));
        assert_eq!(queue.take_holes()[0].reason, HoleReason::Unreadable);
    }
}
