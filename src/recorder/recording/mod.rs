// SPDX-License-Identifier: MPL-2.0
//! Recordings cut out of the ring (SBE's `IStreamBufferRecordControl`):
//! the types they are reported in (here), [`Recordings`], the set a recorder
//! runs (start, stop, feed, link; `scheduler.rs`), and `Recording`, one of
//! them on disk (`writer.rs`).
//!
//! A *content* recording is a standalone MPEG-TS file: the ring's bytes from
//! a segment start (a random-access point with PAT and PMT in front) on, then
//! every byte the ring writes, until stopped. A *reference* recording is a
//! directory of hard links to whole ring segments plus a VOD playlist: nothing
//! is copied, and the ring deleting its own names does not touch the links.

mod archived;
mod scheduler;
mod writer;

// Implemented by the archive tier (cargo feature `archive`).
#[cfg_attr(not(feature = "archive"), allow(unused_imports))]
pub use archived::{ArchiveReach, ReachTarget, RestoreRequest, Restored, RestoredSegment};
pub use scheduler::Recordings;

use std::path::PathBuf;
use std::time::Instant;

use crate::layout::index::Keyframe;
use crate::layout::{PresentationTime, RingTime, WallTime};
use crate::ring::Ring;

/// What a recording keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingKind {
    Content,
    Reference,
}

impl RecordingKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingKind::Content => "content",
            RecordingKind::Reference => "reference",
        }
    }
}

/// Where a recording starts or stops, as reported: on the timeline every
/// reader of the ring shares, and on the wall clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordingPoint {
    /// Presentation time on the ring's timeline: ring time plus the
    /// stream's presentation delay, the position `streambuffersrc` reports
    /// and seeks to for the same content.
    pub position: PresentationTime,
    /// When the content there was received, the date the keyframe index and
    /// the playlist give it; `None` if unknown.
    pub date: Option<WallTime>,
}

/// The final report of a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSummary {
    pub id: u32,
    pub location: PathBuf,
    pub kind: RecordingKind,
    /// Where the recording's content starts and ends (its first keyframe;
    /// the keyframe it ends before, or the end of its last segment).
    pub start: RecordingPoint,
    pub stop: RecordingPoint,
    pub bytes: u64,
    /// Reference recordings: segments that had to be copied (no hard link).
    pub copied_segments: u64,
    /// Segments taken from the archive (older than the ring's oldest).
    pub archived_segments: u64,
    pub error: Option<String>,
}

/// Where the recorder is in its stream, for starting and stopping recordings.
#[derive(Debug, Clone, Copy)]
pub struct StreamPosition {
    /// The recorder's timeline position now (the stream's clock, which
    /// scheduled starts and stops wait for).
    pub position_ns: u64,
    /// Ring time now.
    pub ring_time: RingTime,
    /// The stream's presentation delay now (see [`RecordingPoint`]).
    pub delay_ns: u64,
    /// Host time at the start of the current call.
    pub wall: Instant,
}

impl StreamPosition {
    /// The reported point of ring time `at`.
    fn point(&self, ring: &Ring, at: RingTime) -> RecordingPoint {
        RecordingPoint {
            position: at.presented_after_ns(self.delay_ns),
            date: ring.date_at(at),
        }
    }
}

/// When a recording starts or stops, resolved against the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingTime {
    /// Now: content from the keyframe at or before now; a reference
    /// recording, which keeps whole segments, from the next segment.
    Now,
    /// At this ring time, already received (clamped to the oldest content,
    /// unless the ring's archive reaches further back).
    Past(RingTime),
    /// The content received at this date-time, before the ring's oldest
    /// segment: the archive's, if there is one, else the oldest content.
    BeforeRing(WallTime),
    /// When the recorder's timeline reaches this position.
    Scheduled(u64),
}

/// The reported point of an indexed keyframe.
pub(super) fn keyframe_point(k: &Keyframe) -> RecordingPoint {
    RecordingPoint {
        position: k.presentation_time(),
        date: Some(k.wall_time),
    }
}
