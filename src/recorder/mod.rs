// SPDX-License-Identifier: MPL-2.0
//! The recorder: turns a byte stream into segments of the ring.
//!
//! It aligns packets, analyses each one, keeps the media timeline and decides
//! where segments are cut: at the first random-access point at or after
//! `segment-duration`, with the current PAT and PMT written first so that
//! every segment decodes on its own. It also carries the write-failure
//! contract (drop, block or error) and the recordings. It owns no GStreamer
//! object: the element supplies a [`Host`] for time, waiting and event
//! delivery, so the whole recording logic is testable on plain bytes.
//!
//! - here: the [`Recorder`] the element drives, its configuration, events
//!   and counters;
//! - `segmenter`: cutting the packet stream into segments (its GOP rules in
//!   `gops`, the failure modes in `failure`, the recordings' view in
//!   `recordings`);
//! - `health`: write-failure episodes and their counters;
//! - [`recording`]: recordings cut out of the ring.

mod health;
pub mod recording;
mod segmenter;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use health::{EpisodeSummary, FailureStats};
pub use recording::{RecordingKind, RecordingPoint, RecordingSummary};

use segmenter::{Halt, Segmenter};

use crate::layout::SegmentNumber;
use crate::ring::{FailureKind, Ring, SharedBytes, WriteFailure};
use crate::ts::analyzer::AnalyzerStats;
use crate::ts::program_filter::{ProgramFilter, ProgramFilterStats};
use crate::ts::timeline::{ClockSource, Step};
use crate::ts::{AlignerStats, PacketAligner, ProgramNumber};

/// What to do when the disk refuses data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Keep running; drop what cannot be written, retry every interval.
    Drop,
    /// Hold the data and retry until it is written (or the wait is cancelled).
    Block,
    /// Stop with an error, like `filesink`.
    Error,
}

/// Settings the recorder needs beyond the ring's.
#[derive(Debug, Clone, Copy)]
pub struct RecorderConfig {
    pub segment_duration_ns: u64,
    /// program_number to follow; `None` = the first program in the PAT.
    pub program: Option<ProgramNumber>,
    pub failure_mode: FailureMode,
    /// Minimum time between two attempts to write after a failure.
    pub retry_interval: Duration,
}

/// Things that happened that the element reports to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecorderEvent {
    /// The program's elementary streams became scrambled (`true`) or clear.
    Scrambling(bool),
    /// Writes started failing (once per episode).
    WriteFailure {
        kind: FailureKind,
        message: String,
        path: PathBuf,
    },
    /// A write succeeded again after a failure (once per episode).
    WriteFailureClear(EpisodeSummary),
    /// Oldest segments were deleted to make room for a write that failed for lack of space.
    EvictedUnderPressure { segments: u64, bytes: u64 },
    /// A recording was scheduled: it begins when its start comes.
    RecordingScheduled {
        id: u32,
        location: PathBuf,
        kind: RecordingKind,
    },
    /// A recording began (its history, if any, is already in place).
    RecordingStarted {
        id: u32,
        location: PathBuf,
        kind: RecordingKind,
        start: RecordingPoint,
    },
    /// A recording ended, with its final status.
    RecordingStopped(RecordingSummary),
    /// Programs `programs` asks for that the multiplex's PAT does not list
    /// (once per PAT change): nothing of them is recorded.
    ProgramsMissing(Vec<ProgramNumber>),
}

/// What the recorder needs from its environment.
pub trait Host {
    /// The current time, for retry intervals and episode durations.
    fn now(&self) -> Instant;
    /// Waits up to `timeout`; returns `false` if the wait was cancelled
    /// (flush, state change) and the recorder must give up.
    fn wait(&mut self, timeout: Duration) -> bool;
    /// Delivers an event to the application.
    fn event(&mut self, event: RecorderEvent);
    /// The ring's playlists are behind it (segments finished faster than
    /// it rewrites them, see `ring::publish`): call
    /// [`Recorder::publish_pending`] at `due`, in case no input comes to
    /// do it. Asked again after every buffer until they are written.
    fn publish_at(&mut self, due: Instant);
}

/// When a recording is to start or stop, as an application asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingRequest {
    /// Nanoseconds from now: negative in the past (reaching back into the
    /// ring), 0 now, positive in the future (scheduled).
    Offset(i64),
    /// A wall-clock date-time, on the clock the keyframe index and the
    /// playlist's date-times use: in the past, the content received then;
    /// in the future, scheduled.
    Date(crate::layout::WallTime),
}

/// Why [`Recorder::push`] (or flush, finish) did not complete normally.
#[derive(Debug)]
pub enum PushError {
    /// A blocked write was cancelled by the host; the data is still pending.
    Cancelled,
    /// `error` mode: the write failure that stops the recording.
    Fatal(WriteFailure),
}

/// Counters for the `stats` property.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecorderStats {
    pub buffers: u64,
    pub bytes_in: u64,
    /// Packets received before the first random-access point, not written.
    pub packets_before_random_access: u64,
    pub discontinuities: u64,
    pub forced_cuts: u64,
}

/// Every counter at one moment, cheap to copy: the element refreshes it
/// after each buffer and builds its `stats` structure only when asked.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub recorder: RecorderStats,
    pub aligner: AlignerStats,
    pub analyzer: AnalyzerStats,
    /// What `programs` dropped, when it is set.
    pub program_filter: Option<ProgramFilterStats>,
    /// Failure counters; `failing_time` excludes the running episode, which
    /// started at `failing_since`.
    pub failure: FailureStats,
    pub failing_since: Option<Instant>,
    pub ring: crate::ring::RingStats,
    pub window: crate::ring::Window,
    pub window_segments: u64,
    pub oldest: Option<SegmentNumber>,
    pub newest: Option<SegmentNumber>,
    /// Sequence number of the segment being written.
    pub current: Option<SegmentNumber>,
    pub scrambled: bool,
    pub clock_source: Option<ClockSource>,
    /// Ids of the running recordings.
    pub recordings: Vec<u32>,
}

/// Accumulates packets and segment decisions; see the module documentation.
pub struct Recorder {
    aligner: PacketAligner,
    /// Keeps only the configured programs, between the aligner and the
    /// segmenter; `None` keeps everything (and costs nothing).
    filter: Option<ProgramFilter>,
    /// What the filter kept of the current run.
    filtered: Vec<u8>,
    segmenter: Segmenter,
}

impl Recorder {
    /// A recorder writing into `ring`, keeping only `programs` (program
    /// numbers; empty keeps every program). If the ring already holds
    /// segments (adopted after a restart), the first new segment is a
    /// discontinuity.
    #[must_use]
    pub fn new(ring: Ring, config: RecorderConfig, programs: &[ProgramNumber]) -> Self {
        Recorder {
            aligner: PacketAligner::new(),
            filter: ProgramFilter::new(programs),
            filtered: Vec::new(),
            segmenter: Segmenter::new(ring, config),
        }
    }

    /// Feeds the packets of the aligner's runs of `data` (or of what is
    /// held, at the end: `data` empty and `finish`) through the filter, if
    /// any, to the segmenter.
    fn feed(&mut self, data: &[u8], finish: bool, host: &mut dyn Host) {
        let s = &mut self.segmenter;
        let (filter, filtered) = (&mut self.filter, &mut self.filtered);
        let mut emit = |run: &[u8], offset: Option<usize>| match filter {
            Some(f) => {
                filtered.clear();
                f.filter(run, filtered);
                s.consume(filtered, None, host);
            }
            None => s.consume(run, offset, host),
        };
        if finish {
            self.aligner.finish(emit);
        } else {
            self.aligner.push(data, &mut emit);
        }
        if let Some(missing) = self.filter.as_mut().and_then(ProgramFilter::take_missing) {
            host.event(RecorderEvent::ProgramsMissing(missing));
        }
    }

    /// Ids of the running recordings.
    #[must_use]
    pub fn recording_ids(&self) -> Vec<u32> {
        self.segmenter.recordings.ids()
    }

    /// Starts a recording `when` asked; see [`Recordings::start`]. Returns
    /// its id.
    pub fn start_recording(
        &mut self,
        location: &std::path::Path,
        kind: RecordingKind,
        when: RecordingRequest,
        host: &mut dyn Host,
    ) -> Result<u32, String> {
        let s = &mut self.segmenter;
        let when = s.resolve(when);
        let at = s.stream_position();
        s.recordings.start(&mut s.ring, at, location, kind, when, host)
    }

    /// Recordings reaching back past the ring's oldest segment take the
    /// older part from `archive` (see [`recording::ArchiveReach`]).
    pub fn reach_archive(&mut self, archive: Box<dyn recording::ArchiveReach>) {
        self.segmenter.recordings.reach_archive(archive);
    }

    /// Stops recording `id` `when` asked; see [`Recordings::stop`].
    /// Returns false for an unknown id.
    pub fn stop_recording(&mut self, id: u32, when: RecordingRequest, host: &mut dyn Host) -> bool {
        let s = &mut self.segmenter;
        let when = s.resolve(when);
        let at = s.stream_position();
        s.recordings.stop(id, when, &s.ring, at, host)
    }

    #[cfg(test)]
    #[must_use]
    pub fn ring(&self) -> &Ring {
        &self.segmenter.ring
    }

    #[cfg(test)]
    #[must_use]
    pub fn stats(&self) -> RecorderStats {
        self.segmenter.stats
    }

    /// All counters, for the `stats` property.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        let ring = &self.segmenter.ring;
        let (failure, failing_since) = self.segmenter.health.stats_parts();
        let mut segments = ring.segments();
        let oldest = segments.next().map(|s| s.sequence);
        let newest = segments.next_back().map(|s| s.sequence).or(oldest);
        Snapshot {
            recorder: self.segmenter.stats,
            aligner: self.aligner.stats(),
            analyzer: self.segmenter.analyzer.stats(),
            program_filter: self.filter.as_ref().map(ProgramFilter::stats),
            failure,
            failing_since,
            ring: ring.stats(),
            window: ring.window(),
            window_segments: ring.segments().len() as u64,
            oldest,
            newest,
            current: ring.current_sequence(),
            scrambled: self.segmenter.analyzer.is_scrambled(),
            clock_source: Some(self.segmenter.timeline.source()),
            recordings: self.recording_ids(),
        }
    }

    #[cfg(test)]
    #[must_use]
    pub fn clock_source(&self) -> ClockSource {
        self.segmenter.timeline.source()
    }

    /// Feeds one input buffer. `buffer_time_ns` is its timestamp, if it has one.
    pub fn push(&mut self, data: &[u8], buffer_time_ns: Option<u64>, host: &mut dyn Host) -> Result<(), PushError> {
        let s = &mut self.segmenter;
        s.begin_call(host)?;
        s.stats.buffers += 1;
        s.stats.bytes_in += data.len() as u64;
        match buffer_time_ns {
            Some(t) if s.timeline.on_buffer_time(t) == Step::Jump => s.on_jump(),
            Some(_) => {}
            None => s.timeline.on_untimed_buffer(),
        }
        self.feed(data, false, host);
        self.segmenter.poll_recordings(host);
        if let Some(due) = self.segmenter.ring.playlists_due() {
            host.publish_at(due);
        }
        self.segmenter.end_call()
    }

    /// Writes the playlists if segments finished since they were last
    /// written ([`Host::publish_at`] asked for this call).
    pub fn publish_pending(&mut self) {
        self.segmenter.ring.publish_pending();
    }

    /// Like [`Self::push`], for input the ring may keep a reference to
    /// instead of copying it (the caller decided it is worth it): its runs
    /// wait in the open segment until they are written together with what
    /// came before and after.
    pub fn push_shared(
        &mut self,
        data: SharedBytes,
        buffer_time_ns: Option<u64>,
        host: &mut dyn Host,
    ) -> Result<(), PushError> {
        self.segmenter.input = Some(Arc::clone(&data));
        let result = self.push((*data).as_ref(), buffer_time_ns, host);
        self.segmenter.input = None;
        result
    }

    /// The input was flushed: whatever comes next is unrelated to what came
    /// before. Held-back bytes are dropped (and counted by the aligner).
    pub fn flush(&mut self, host: &mut dyn Host) -> Result<(), PushError> {
        self.aligner.reset();
        if let Some(f) = &mut self.filter {
            f.reset();
        }
        let s = &mut self.segmenter;
        s.begin_call(host)?;
        s.release_hold(host);
        s.analyzer.reset_continuity();
        s.timeline.rebase();
        s.on_jump();
        s.end_call()
    }

    /// End of stream (or stop): writes what is held, closes the last segment
    /// and marks the playlist as ended. `may_block`: in `block` mode, whether
    /// to wait for a failing disk (yes at EOS, no when stopping).
    pub fn finish(&mut self, host: &mut dyn Host, may_block: bool) -> Result<(), PushError> {
        let s = &mut self.segmenter;
        if let Err(e) = s.begin_call(host) {
            s.close_after_fatal();
            s.finish_recordings(host);
            return Err(e);
        }
        if !may_block && s.config.failure_mode == FailureMode::Block {
            s.config.failure_mode = FailureMode::Drop;
        }
        self.feed(&[], true, host);
        let s = &mut self.segmenter;
        s.release_hold(host);
        if matches!(s.halt, Halt::Running) {
            let duration = s.timeline.end_position_ns().saturating_sub(s.cuts.segment_start_ns());
            if s.ring.is_segment_open() {
                s.finish_unit(s.ring.segment_len());
                match s.ring.finish_last_segment(duration) {
                    Ok(()) => {
                        s.on_finished(host);
                        s.on_segment_completed(host);
                    }
                    Err(f) => s.on_failure(f, host, |r| r.finish_last_segment(duration)),
                }
            }
            // Nothing is open any more: this publishes the ended playlist
            // if the last segment's publication did not.
            let _ = s.ring.close(0);
        }
        s.finish_recordings(host);
        s.end_call()
    }
}

#[cfg(test)]
mod tests;
