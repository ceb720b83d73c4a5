// SPDX-License-Identifier: MPL-2.0
//! What `streambuffersrc` reports to the application: the element message
//! of each reader event, the `stats` structure, and why a ring that ended
//! held nothing playable.

use std::path::Path;

use crate::layout::PLAYLIST_NAME;
use crate::layout::SegmentNumber;
use crate::reader::{ReaderEvent, ReaderStats};

/// The reader's state at one moment, for the `stats` structure.
#[derive(Debug, Default)]
pub(super) struct Reading {
    pub(super) stats: ReaderStats,
    pub(super) current: Option<SegmentNumber>,
    /// Presentation time of the last data read, in ns.
    pub(super) position: Option<u64>,
    /// How far behind the live edge that is, in ns.
    pub(super) lag: Option<u64>,
}

/// The `stats` structure: counters of the reader, -1 where there is nothing
/// to say (not started, nothing read yet).
pub(super) fn stats_structure(reading: &Reading, buffers_out: u64) -> gst::Structure {
    let signed = |v: Option<u64>| v.and_then(|v| i64::try_from(v).ok()).unwrap_or(-1);
    let stats = &reading.stats;
    gst::Structure::builder("streambuffer-source-stats")
        .field("bytes-out", stats.bytes)
        .field("buffers-out", buffers_out)
        .field("segments-read", stats.segments_opened)
        .field("time-holes", stats.time_holes)
        .field("stale-deletions", stats.stale_deletions)
        .field("read-failures", stats.read_failures)
        .field("current-segment", signed(reading.current.map(SegmentNumber::get)))
        .field("position", signed(reading.position))
        .field("lag", signed(reading.lag))
        .build()
}

/// A reader event's debug log level and line, and its element message.
pub(super) fn event_message(event: ReaderEvent) -> (gst::DebugLevel, String, gst::Structure) {
    use gst::DebugLevel::{Info, Warning};
    match event {
        ReaderEvent::StaleFileDeleted { first, last } => (
            Info,
            format!("stale files deleted: segments {first} to {last}"),
            gst::Structure::builder("streambuffer-stale-file-deleted")
                .field("sequence", first.get())
                .field("last-sequence", last.get())
                .build(),
        ),
        ReaderEvent::ReadFailure { path, error } => (
            Warning,
            format!("read failure: {}: {error}", path.display()),
            gst::Structure::builder("streambuffer-read-failure")
                .field("location", path.display().to_string())
                .field("error", error)
                .build(),
        ),
        ReaderEvent::TimeHole { offset_ms, size_ms } => (
            Info,
            format!("time hole at {offset_ms} ms, {size_ms} ms long"),
            gst::Structure::builder("streambuffer-time-hole")
                .field("offset-ms", offset_ms)
                .field("size-ms", size_ms)
                .build(),
        ),
        ReaderEvent::ContentBecomingStale { sequence } => (
            Info,
            format!("content becoming stale: segment {sequence}"),
            gst::Structure::builder("streambuffer-content-becoming-stale")
                .field("sequence", sequence.get())
                .build(),
        ),
    }
}

/// Why a ring in `dir` whose playlist lists `listed` segments gave nothing
/// a demuxer could play.
pub(super) fn nothing_playable(dir: &Path, listed: usize) -> String {
    if !dir.join(PLAYLIST_NAME).is_file() {
        format!("it holds no {PLAYLIST_NAME}: not a ring, or nothing recorded in it yet")
    } else if listed == 0 {
        format!("its {PLAYLIST_NAME} lists no segment")
    } else {
        format!("none of the {listed} segments its {PLAYLIST_NAME} lists holds an MPEG-TS program (no PAT)")
    }
}
