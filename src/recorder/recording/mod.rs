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

mod scheduler;
mod writer;

pub use scheduler::Recordings;

use std::path::PathBuf;
use std::time::Instant;

use crate::layout::index::Keyframe;
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
    pub position_ns: u64,
    /// When the content there was received (ms since the epoch), the date
    /// the keyframe index and the playlist give it; `None` if unknown.
    pub date_ms: Option<i64>,
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
    pub error: Option<String>,
}

/// Where the recorder is in its stream, for starting and stopping recordings.
#[derive(Debug, Clone, Copy)]
pub struct StreamPosition {
    /// The recorder's timeline position now (the stream's clock, which
    /// scheduled starts and stops wait for).
    pub position_ns: u64,
    /// Ring time now.
    pub ring_ns: u64,
    /// The stream's presentation delay now (see [`RecordingPoint`]).
    pub delay_ns: u64,
    /// Host time at the start of the current call.
    pub wall: Instant,
}

impl StreamPosition {
    /// The reported point of ring time `ring_ns`.
    fn point(&self, ring: &Ring, ring_ns: u64) -> RecordingPoint {
        RecordingPoint {
            position_ns: ring_ns.saturating_add(self.delay_ns),
            date_ms: ring.date_at(ring_ns),
        }
    }
}

/// When a recording starts or stops, resolved against the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingTime {
    /// Now: content from the keyframe at or before now; a reference
    /// recording, which keeps whole segments, from the next segment.
    Now,
    /// At this ring time, already received (clamped to the oldest content).
    Past(u64),
    /// When the recorder's timeline reaches this position.
    Scheduled(u64),
}

pub(super) fn ms(ns: u64) -> i64 {
    i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX)
}

/// The reported point of an indexed keyframe.
pub(super) fn keyframe_point(k: &Keyframe) -> RecordingPoint {
    RecordingPoint {
        position_ns: k.presentation_ns(),
        date_ms: Some(k.wall_ms),
    }
}
