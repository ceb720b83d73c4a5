// SPDX-License-Identifier: MPL-2.0
//! Recordings that reach back past the ring's oldest segment into the
//! ring's archive: what the recorder asks of the archive
//! ([`ArchiveReach`], implemented by the archive tier on a thread of its
//! own, so that no request is made on the streaming thread) and what it
//! gets back ([`Restored`]: whole segments with their keyframe indexes in
//! a local directory, read like the ring's own).

use std::path::PathBuf;
use std::time::Duration;

use crate::layout::{RingTime, SegmentInfo, SegmentNumber, WallTime};

/// Where in the archive a recording starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReachTarget {
    /// The content at this ring time (an offset from now): archived
    /// keyframe indexes carry the ring's one timeline.
    RingTime(RingTime),
    /// The content received at this date-time (`start-recording-at`).
    Date(WallTime),
}

/// A request for the archived segments from the one holding `target` up
/// to (not including) `before`, the oldest segment the ring still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreRequest {
    /// The recording it is for: its segments go into a directory of its own.
    pub recording: u32,
    pub target: ReachTarget,
    pub before: SegmentNumber,
    /// Ring time and date-time at which `before` starts.
    pub before_ring_time: RingTime,
    pub before_date: WallTime,
}

/// An archived segment fetched whole, with its index, into [`Restored::dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredSegment {
    /// Its journal line as archived; `bytes` is what was fetched.
    pub info: SegmentInfo,
    /// Ring time at its start, from its index.
    pub start: RingTime,
}

/// The answer to a [`RestoreRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub recording: u32,
    /// The directory holding the segments (named as in the ring), the same
    /// for every request of one recording; the recording removes it when it
    /// is finished.
    pub dir: PathBuf,
    /// The segments, oldest first, and the ring time the recording starts
    /// at (a date resolved on the first segment's index); an error if the
    /// archive could not be read.
    pub result: Result<(Vec<RestoredSegment>, RingTime), String>,
}

/// The archive as the recorder sees it.
pub trait ArchiveReach: Send {
    /// Queues `request`; its answer comes from [`Self::poll`] or
    /// [`Self::wait`].
    fn request(&mut self, request: RestoreRequest);
    /// An answer, if one is ready (never blocks).
    fn poll(&mut self) -> Option<Restored>;
    /// An answer, waiting up to `timeout` for one.
    fn wait(&mut self, timeout: Duration) -> Option<Restored>;
}
