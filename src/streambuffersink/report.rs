// SPDX-License-Identifier: MPL-2.0
//! What `streambuffersink` reports to the application: the signal and
//! element message of each recorder event (queued by [`SinkHost`] until no
//! lock is held), the `GST_ELEMENT_ERROR` of a fatal write failure, and the
//! `stats` structure.

use std::path::Path;
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;

use crate::archive::{ArchiveEvent, ArchiveStats};
use crate::element_time::to_gst;
use crate::layout::SegmentNumber;
use crate::layout::segment_file_name;
use crate::recorder::{Host, RecorderEvent, Snapshot};
use crate::ts::ProgramNumber;

/// The signals that report recorder events (the action signals are the
/// element's own). The `/** */` comments are gtk-doc for the generated
/// documentation, hence the `allow`.
#[allow(unused_doc_comments)]
pub(super) fn event_signals() -> Vec<glib::subclass::Signal> {
    vec![
        // IMSVidStreamBufferSinkEvent::WriteFailure, with the reason.
        /**
         * GstStreamBufferSink::write-failure:
         * @sink: the #GstStreamBufferSink
         * @error: why writing failed: a %GST_RESOURCE_ERROR (%GST_RESOURCE_ERROR_NO_SPACE_LEFT,
         *   %GST_RESOURCE_ERROR_OPEN_WRITE or %GST_RESOURCE_ERROR_WRITE) naming the file and the OS error
         *
         * Writes started failing: emitted once per episode, from the streaming
         * thread (the counterpart of IMSVidStreamBufferSinkEvent::WriteFailure).
         *
         * Since: 0.1
         */
        glib::subclass::Signal::builder("write-failure")
            .param_types([glib::Error::static_type()])
            .run_last()
            .build(),
        // IMSVidStreamBufferSinkEvent4::WriteFailureClear: bytes and ns dropped.
        /**
         * GstStreamBufferSink::write-failure-clear:
         * @sink: the #GstStreamBufferSink
         * @dropped_bytes: bytes dropped during the episode
         * @dropped_duration: stream time dropped, in ns (%GST_CLOCK_TIME_NONE if unknown)
         *
         * A write succeeded again after #GstStreamBufferSink::write-failure: once
         * per episode, from the streaming thread.
         *
         * Since: 0.1
         */
        glib::subclass::Signal::builder("write-failure-clear")
            .param_types([u64::static_type(), u64::static_type()])
            .run_last()
            .build(),
        /**
         * GstStreamBufferSink::encryption-on:
         * @sink: the #GstStreamBufferSink
         *
         * The program's elementary streams became scrambled.
         *
         * Since: 0.1
         */
        /**
         * GstStreamBufferSink::encryption-off:
         * @sink: the #GstStreamBufferSink
         *
         * The program's elementary streams are clear again.
         *
         * Since: 0.1
         */
        glib::subclass::Signal::builder("encryption-on").run_last().build(),
        glib::subclass::Signal::builder("encryption-off").run_last().build(),
        /**
         * GstStreamBufferSink::archive-failure:
         * @sink: the #GstStreamBufferSink
         * @error: why the upload failed (the object store's answer)
         * @waiting: segments waiting for the archive
         *
         * Uploads to the archive started failing: once per outage, from the
         * archive's thread. Recording goes on; uploads are retried.
         *
         * Since: 0.2
         */
        glib::subclass::Signal::builder("archive-failure")
            .param_types([String::static_type(), u64::static_type()])
            .run_last()
            .build(),
        /**
         * GstStreamBufferSink::archive-failure-clear:
         * @sink: the #GstStreamBufferSink
         * @waiting: segments still waiting for the archive
         * @outage_duration: how long uploads failed, in ns
         *
         * An upload went through again after #GstStreamBufferSink::archive-failure:
         * once per outage, from the archive's thread.
         *
         * Since: 0.2
         */
        glib::subclass::Signal::builder("archive-failure-clear")
            .param_types([u64::static_type(), u64::static_type()])
            .run_last()
            .build(),
    ]
}

/// The signal and element message of an archive event.
pub(super) fn archive_report(event: ArchiveEvent) -> Report {
    use gst::DebugLevel::{Info, Warning};
    match event {
        ArchiveEvent::Failure { error, waiting } => {
            let structure = gst::Structure::builder("streambuffer-archive-failure")
                .field("error", &error)
                .field("waiting", waiting)
                .build();
            Report::new(
                Warning,
                format!("archive-failure: {error} ({waiting} waiting)"),
                structure,
            )
            .with_signal("archive-failure", vec![error.to_value(), waiting.to_value()])
        }
        ArchiveEvent::Clear { waiting, outage_ms } => {
            let outage_ns = outage_ms.saturating_mul(1_000_000);
            let structure = gst::Structure::builder("streambuffer-archive-failure-clear")
                .field("waiting", waiting)
                .field("outage-duration", outage_ns)
                .build();
            Report::new(
                Info,
                format!("archive-failure-clear after {outage_ms} ms ({waiting} waiting)"),
                structure,
            )
            .with_signal("archive-failure-clear", vec![waiting.to_value(), outage_ns.to_value()])
        }
        ArchiveEvent::Hole { hole, holes_total } => {
            let segment = i64::try_from(hole.sequence.get()).unwrap_or(i64::MAX);
            let structure = gst::Structure::builder("streambuffer-archive-hole")
                .field("segment", segment)
                .field("bytes", hole.bytes)
                .field("reason", hole.reason.as_str())
                .field("holes", holes_total)
                .build();
            Report::new(
                Warning,
                format!(
                    "archive hole: segment {} not archived ({})",
                    hole.sequence,
                    hole.reason.as_str()
                ),
                structure,
            )
        }
    }
}

/// What the element does for one recorder event: a debug log line, then
/// its signal and element message, or (for a configuration problem) a
/// WARNING message instead.
pub(super) struct Report {
    pub(super) level: gst::DebugLevel,
    pub(super) log: String,
    /// Signal name and arguments, if the event has a signal.
    pub(super) signal: Option<(&'static str, Vec<glib::Value>)>,
    pub(super) outcome: Outcome,
}

/// Where a [`Report`] ends up on the bus.
pub(super) enum Outcome {
    /// An element message with this structure.
    Message(gst::Structure),
    /// A `GST_ELEMENT_WARNING` (stream, demux) with this text.
    Warning(String),
}

impl Report {
    fn new(level: gst::DebugLevel, log: String, structure: gst::Structure) -> Self {
        Report {
            level,
            log,
            signal: None,
            outcome: Outcome::Message(structure),
        }
    }

    fn with_signal(mut self, name: &'static str, args: Vec<glib::Value>) -> Self {
        self.signal = Some((name, args));
        self
    }
}

/// The signal and element message of a recorder event. `running_time` is
/// that of the buffer being rendered (`u64::MAX` when unknown).
pub(super) fn report(event: RecorderEvent, running_time: u64) -> Report {
    use gst::DebugLevel::{Info, Warning};
    match event {
        RecorderEvent::Scrambling(scrambled) => {
            let (signal, name) = if scrambled {
                ("encryption-on", "streambuffer-encryption-on")
            } else {
                ("encryption-off", "streambuffer-encryption-off")
            };
            let structure = gst::Structure::builder(name)
                .field("running-time", running_time)
                .build();
            Report::new(Info, signal.to_owned(), structure).with_signal(signal, Vec::new())
        }
        RecorderEvent::WriteFailure { kind, message, path } => {
            let code: gst::ResourceError = kind.into();
            let error = glib::Error::new(code, &message);
            let structure = gst::Structure::builder("streambuffer-write-failure")
                .field("error", &message)
                .field("kind", kind.as_str())
                .field("location", path.display().to_string())
                .field("running-time", running_time)
                .build();
            Report::new(Warning, format!("write-failure: {message}"), structure)
                .with_signal("write-failure", vec![error.to_value()])
        }
        RecorderEvent::WriteFailureClear(s) => {
            let duration = s.dropped_duration_ns.unwrap_or(u64::MAX);
            let log = format!(
                "write-failure-clear: {} bytes, {} dropped in {:?}",
                s.dropped_bytes,
                s.dropped_duration_ns.map_or("unknown".into(), |d| format!("{d} ns")),
                s.failure_duration
            );
            let structure = gst::Structure::builder("streambuffer-write-failure-clear")
                .field("dropped-bytes", s.dropped_bytes)
                .field("dropped-duration", duration)
                .field(
                    "failure-duration",
                    u64::try_from(s.failure_duration.as_nanos()).unwrap_or(u64::MAX),
                )
                .field("running-time", running_time)
                .build();
            Report::new(Info, log, structure).with_signal(
                "write-failure-clear",
                vec![s.dropped_bytes.to_value(), duration.to_value()],
            )
        }
        RecorderEvent::RecordingScheduled { id, location, kind } => {
            let structure = gst::Structure::builder("streambuffer-recording-scheduled")
                .field("id", id)
                .field("location", location.display().to_string())
                .field("kind", kind.as_str())
                .build();
            Report::new(
                Info,
                format!("recording {id} scheduled: {}", location.display()),
                structure,
            )
        }
        RecorderEvent::RecordingStarted {
            id,
            location,
            kind,
            start,
        } => {
            let structure = gst::Structure::builder("streambuffer-recording-started")
                .field("id", id)
                .field("location", location.display().to_string())
                .field("kind", kind.as_str())
                .field("start-time", start.position.ns())
                .field_if_some("start-date-time", start.date.and_then(to_gst))
                .build();
            Report::new(
                Info,
                format!("recording {id} started: {}", location.display()),
                structure,
            )
        }
        RecorderEvent::RecordingStopped(r) => {
            let log = format!("recording {} stopped: {} bytes", r.id, r.bytes);
            let structure = gst::Structure::builder("streambuffer-recording-stopped")
                .field("id", r.id)
                .field("location", r.location.display().to_string())
                .field("kind", r.kind.as_str())
                .field("start-time", r.start.position.ns())
                .field_if_some("start-date-time", r.start.date.and_then(to_gst))
                .field("stop-time", r.stop.position.ns())
                .field_if_some("stop-date-time", r.stop.date.and_then(to_gst))
                .field("bytes", r.bytes)
                .field("copied-segments", r.copied_segments)
                .field("archived-segments", r.archived_segments)
                .field("status", if r.error.is_some() { "error" } else { "ok" })
                .field("error", r.error.unwrap_or_default())
                .build();
            Report::new(Info, log, structure)
        }
        RecorderEvent::ProgramsMissing(missing) => {
            let list = missing
                .iter()
                .map(ProgramNumber::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            let text = format!(
                "The stream's PAT does not list program(s) {list} of the 'programs' property: nothing of them is recorded"
            );
            Report {
                level: Warning,
                log: text.clone(),
                signal: None,
                outcome: Outcome::Warning(text),
            }
        }
        RecorderEvent::EvictedUnderPressure { segments, bytes } => {
            let structure = gst::Structure::builder("streambuffer-evicted-under-pressure")
                .field("segments", segments)
                .field("bytes", bytes)
                .field("running-time", running_time)
                .build();
            Report::new(
                Info,
                format!("evicted {segments} segments ({bytes} bytes) to make room"),
                structure,
            )
        }
    }
}

/// What [`SinkHost`] needs of the element: emitting a recorder event (with
/// no lock held) and a cancellable wait while the sink blocks.
pub(super) trait Reporter {
    /// Logs the event, emits its signal and posts its message.
    fn emit(&self, event: RecorderEvent, pts: Option<gst::ClockTime>);
    /// Waits up to `timeout` with the sink marked as blocked; false if a
    /// flush or stop ended the wait.
    fn wait_blocked(&self, timeout: Duration) -> bool;
    /// Has the recorder's pending playlists written at `due` unless input
    /// does it first (see [`Host::publish_at`]).
    fn publish_at(&self, due: Instant);
}

/// The recorder's view of the element: real time, cancellable waits, and
/// events queued until no lock is held (or until a blocking wait begins, so
/// `write-failure` is heard while the sink blocks).
pub(super) struct SinkHost<'a> {
    reporter: &'a dyn Reporter,
    /// Timestamp of the buffer being rendered: the events' running time.
    pub(super) pts: Option<gst::ClockTime>,
    pub(super) queued: Vec<RecorderEvent>,
}

impl<'a> SinkHost<'a> {
    pub(super) fn new(reporter: &'a dyn Reporter, pts: Option<gst::ClockTime>) -> Self {
        SinkHost {
            reporter,
            pts,
            queued: Vec::new(),
        }
    }

    pub(super) fn emit_queued(&mut self) {
        for event in self.queued.drain(..) {
            self.reporter.emit(event, self.pts);
        }
    }
}

impl Host for SinkHost<'_> {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wait(&mut self, timeout: Duration) -> bool {
        self.emit_queued();
        self.reporter.wait_blocked(timeout)
    }

    fn event(&mut self, event: RecorderEvent) {
        self.queued.push(event);
    }

    fn publish_at(&mut self, due: Instant) {
        self.reporter.publish_at(due);
    }
}

/// The `stats` structure; `running` is false once the sink has stopped (the
/// counters of the finished run stay readable).
pub(super) fn stats_structure(
    snap: &Snapshot,
    running: bool,
    dir: Option<&Path>,
    archive: Option<ArchiveStats>,
) -> gst::Structure {
    let (rec, al, an, fail, rs) = (&snap.recorder, &snap.aligner, &snap.analyzer, &snap.failure, &snap.ring);
    let seq = |s: Option<SegmentNumber>| s.map_or(-1i64, |s| i64::try_from(s.get()).unwrap_or(i64::MAX));
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
        .field("leased-segments", rs.leased_segments)
        .field("leased-bytes", rs.leased_bytes)
        .field("lease-overruns", rs.lease_overruns)
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
        .field("archive", archive.is_some())
        .field("archive-segments-uploaded", archive.map_or(0, |a| a.segments_uploaded))
        .field("archive-bytes-uploaded", archive.map_or(0, |a| a.bytes_uploaded))
        .field("archive-waiting", archive.map_or(0, |a| a.waiting))
        .field("archive-held-bytes", archive.map_or(0, |a| a.held_bytes))
        .field("archive-upload-errors", archive.map_or(0, |a| a.upload_errors))
        .field("archive-failures", archive.map_or(0, |a| a.failures))
        .field("archive-holes", archive.map_or(0, |a| a.holes))
        .field("archive-objects-deleted", archive.map_or(0, |a| a.objects_deleted))
        .field("archive-cpu-time", archive.map_or(0, |a| a.cpu_ns))
        .build()
}
