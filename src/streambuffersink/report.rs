// SPDX-License-Identifier: MPL-2.0
//! What `streambuffersink` reports to the application: the signal and
//! element message of each recorder event (queued by [`SinkHost`] until no
//! lock is held), the `GST_ELEMENT_ERROR` of a fatal write failure, and the
//! `stats` structure.

use std::path::Path;
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;

use super::imp::{CAT, StreamBufferSink};
use crate::layout::segment_file_name;
use crate::recorder::{Host, RecorderEvent, Snapshot};
use crate::ring::WriteFailure;

impl StreamBufferSink {
    /// `error` mode: the GST_ELEMENT_ERROR a `filesink` would post.
    pub(super) fn post_write_error(&self, f: &WriteFailure) {
        let code: gst::ResourceError = f.kind.into();
        gst::element_imp_error!(self, code, ("{}", f));
    }

    fn running_time(&self, pts: Option<gst::ClockTime>) -> Option<gst::ClockTime> {
        let segment = self.obj().segment();
        segment.downcast_ref::<gst::ClockTime>()?.to_running_time(pts?)
    }

    /// Emits an event's signal and posts its element message. Called from the
    /// streaming thread, with no lock of the element held.
    pub(super) fn emit(&self, event: RecorderEvent, pts: Option<gst::ClockTime>) {
        let obj = self.obj();
        let running_time = self.running_time(pts).map_or(u64::MAX, gst::ClockTime::nseconds);
        let structure = match event {
            RecorderEvent::Scrambling(scrambled) => {
                let (signal, name) = if scrambled {
                    ("encryption-on", "streambuffer-encryption-on")
                } else {
                    ("encryption-off", "streambuffer-encryption-off")
                };
                gst::info!(CAT, imp = self, "{signal}");
                obj.emit_by_name::<()>(signal, &[]);
                gst::Structure::builder(name)
                    .field("running-time", running_time)
                    .build()
            }
            RecorderEvent::WriteFailure { kind, message, path } => {
                gst::warning!(CAT, imp = self, "write-failure: {message}");
                let code: gst::ResourceError = kind.into();
                let error = glib::Error::new(code, &message);
                obj.emit_by_name::<()>("write-failure", &[&error]);
                gst::Structure::builder("streambuffer-write-failure")
                    .field("error", &message)
                    .field("kind", kind.as_str())
                    .field("location", path.display().to_string())
                    .field("running-time", running_time)
                    .build()
            }
            RecorderEvent::WriteFailureClear(s) => {
                let duration = s.dropped_duration_ns.unwrap_or(u64::MAX);
                gst::info!(
                    CAT,
                    imp = self,
                    "write-failure-clear: {} bytes, {} dropped in {:?}",
                    s.dropped_bytes,
                    s.dropped_duration_ns.map_or("unknown".into(), |d| format!("{d} ns")),
                    s.failure_duration
                );
                obj.emit_by_name::<()>("write-failure-clear", &[&s.dropped_bytes, &duration]);
                gst::Structure::builder("streambuffer-write-failure-clear")
                    .field("dropped-bytes", s.dropped_bytes)
                    .field("dropped-duration", duration)
                    .field(
                        "failure-duration",
                        u64::try_from(s.failure_duration.as_nanos()).unwrap_or(u64::MAX),
                    )
                    .field("running-time", running_time)
                    .build()
            }
            RecorderEvent::RecordingScheduled { id, location, kind } => {
                gst::info!(CAT, imp = self, "recording {id} scheduled: {}", location.display());
                gst::Structure::builder("streambuffer-recording-scheduled")
                    .field("id", id)
                    .field("location", location.display().to_string())
                    .field("kind", kind.as_str())
                    .build()
            }
            RecorderEvent::RecordingStarted {
                id,
                location,
                kind,
                start,
            } => {
                gst::info!(CAT, imp = self, "recording {id} started: {}", location.display());
                gst::Structure::builder("streambuffer-recording-started")
                    .field("id", id)
                    .field("location", location.display().to_string())
                    .field("kind", kind.as_str())
                    .field("start-time", start.position_ns)
                    .field_if_some("start-date-time", start.date_ms.and_then(gst_date_time))
                    .build()
            }
            RecorderEvent::RecordingStopped(r) => {
                gst::info!(CAT, imp = self, "recording {} stopped: {} bytes", r.id, r.bytes);
                gst::Structure::builder("streambuffer-recording-stopped")
                    .field("id", r.id)
                    .field("location", r.location.display().to_string())
                    .field("kind", r.kind.as_str())
                    .field("start-time", r.start.position_ns)
                    .field_if_some("start-date-time", r.start.date_ms.and_then(gst_date_time))
                    .field("stop-time", r.stop.position_ns)
                    .field_if_some("stop-date-time", r.stop.date_ms.and_then(gst_date_time))
                    .field("bytes", r.bytes)
                    .field("copied-segments", r.copied_segments)
                    .field("status", if r.error.is_some() { "error" } else { "ok" })
                    .field("error", r.error.unwrap_or_default())
                    .build()
            }
            RecorderEvent::ProgramsMissing(missing) => {
                let list = missing.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Demux,
                    ("The stream's PAT does not list program(s) {list} of the 'programs' property: nothing of them is recorded")
                );
                return;
            }
            RecorderEvent::EvictedUnderPressure { segments, bytes } => {
                gst::info!(
                    CAT,
                    imp = self,
                    "evicted {segments} segments ({bytes} bytes) to make room"
                );
                gst::Structure::builder("streambuffer-evicted-under-pressure")
                    .field("segments", segments)
                    .field("bytes", bytes)
                    .field("running-time", running_time)
                    .build()
            }
        };
        let _ = obj.post_message(gst::message::Element::builder(structure).src(&*obj).build());
    }
}

/// The recorder's view of the element: real time, cancellable waits, and
/// events queued until no lock is held (or until a blocking wait begins, so
/// `write-failure` is heard while the sink blocks).
pub(super) struct SinkHost<'a> {
    imp: &'a StreamBufferSink,
    /// Timestamp of the buffer being rendered: the events' running time.
    pub(super) pts: Option<gst::ClockTime>,
    pub(super) queued: Vec<RecorderEvent>,
}

impl<'a> SinkHost<'a> {
    pub(super) fn new(imp: &'a StreamBufferSink, pts: Option<gst::ClockTime>) -> Self {
        SinkHost {
            imp,
            pts,
            queued: Vec::new(),
        }
    }

    pub(super) fn emit_queued(&mut self) {
        for event in self.queued.drain(..) {
            self.imp.emit(event, self.pts);
        }
    }
}

impl Host for SinkHost<'_> {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wait(&mut self, timeout: Duration) -> bool {
        self.emit_queued();
        self.imp.blocked.store(true, std::sync::atomic::Ordering::Release);
        let waited = self.imp.flush_gate.wait(timeout);
        self.imp.blocked.store(false, std::sync::atomic::Ordering::Release);
        waited
    }

    fn event(&mut self, event: RecorderEvent) {
        self.queued.push(event);
    }
}

/// The `stats` structure; `running` is false once the sink has stopped (the
/// counters of the finished run stay readable).
pub(super) fn stats_structure(snap: &Snapshot, running: bool, dir: Option<&Path>) -> gst::Structure {
    let (rec, al, an, fail, rs) = (&snap.recorder, &snap.aligner, &snap.analyzer, &snap.failure, &snap.ring);
    let seq = |s: Option<u64>| s.map_or(-1i64, |s| i64::try_from(s).unwrap_or(i64::MAX));
    let failing_time = fail.failing_time + snap.failing_since.map_or(Duration::ZERO, |t| t.elapsed());
    let current = match (dir, snap.current) {
        (Some(dir), Some(seq)) if running => dir.join(segment_file_name(seq)).display().to_string(),
        _ => String::new(),
    };
    gst::Structure::builder("streambuffer-stats")
        .field("running", running)
        .field("bytes-in", rec.bytes_in)
        .field("bytes-written", rs.bytes_written)
        .field("buffers", rec.buffers)
        .field("packets", al.packets)
        .field("sync-losses", al.sync_losses)
        .field("dropped-bytes", al.dropped_bytes)
        .field("continuity-errors", an.continuity_errors)
        .field("transport-errors", an.transport_errors)
        .field("random-access-points", an.random_access_points)
        .field("packets-before-random-access", rec.packets_before_random_access)
        .field("discontinuities", rec.discontinuities)
        .field("forced-cuts", rec.forced_cuts)
        .field("filtered-packets", snap.program_filter.map_or(0, |f| f.dropped_packets))
        .field("scrambled", snap.scrambled)
        .field("scrambled-packets", an.scrambled_packets)
        .field("clock-source", snap.clock_source.map_or("none", |c| c.as_str()))
        .field("segments-created", rs.segments_created)
        .field("segments-deleted", rs.segments_deleted)
        .field("segments-reused", rs.segments_reused)
        .field("evicted-max-duration", rs.evicted_max_duration)
        .field("evicted-max-size", rs.evicted_max_size)
        .field("evicted-min-free-space", rs.evicted_min_free_space)
        .field("evicted-under-pressure", rs.evicted_under_pressure)
        .field("adopted-segments", rs.adopted_segments)
        .field("journal-lines-rejected", rs.journal_lines_rejected)
        .field("playlist-writes", rs.playlist_writes)
        .field("metadata-write-errors", rs.metadata_write_errors)
        .field("directory-recreated", rs.directory_recreated)
        .field("undeleted-files", rs.undeleted_files)
        .field("target-duration-raises", rs.target_duration_raises)
        .field("write-failing", fail.failing)
        .field("write-failures", fail.write_failures)
        .field("failure-episodes", fail.episodes)
        .field("write-dropped-bytes", fail.dropped_bytes)
        .field("write-dropped-duration", fail.dropped_duration_ns)
        .field(
            "failing-time",
            u64::try_from(failing_time.as_nanos()).unwrap_or(u64::MAX),
        )
        .field("last-error", fail.last_error.as_deref().unwrap_or(""))
        .field("window-segments", snap.window_segments)
        .field("window-start", seq(snap.oldest))
        .field("window-end", seq(snap.newest))
        .field("window-duration", snap.window.duration_ns)
        .field("window-bytes", snap.window.bytes)
        .field("current-segment", current)
        .field(
            "active-recordings",
            snap.recordings.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
        )
        .build()
}

/// A date-time in ms since the epoch as a `GstDateTime` (UTC, to the ms).
fn gst_date_time(ms: i64) -> Option<gst::DateTime> {
    gst::DateTime::from_unix_epoch_utc_usecs(ms.checked_mul(1000)?).ok()
}
