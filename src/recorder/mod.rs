//! The recorder: turns a byte stream into segments of the ring.
//!
//! It aligns packets, analyses each one, keeps the media timeline and decides
//! where segments are cut: at the first random-access point at or after
//! `segment-duration`, with the current PAT and PMT written first so that
//! every segment decodes on its own. It also carries the write-failure
//! contract (drop, block or error). It owns no GStreamer object: the element
//! supplies a [`Host`] for time, waiting and event delivery, so the whole
//! recording logic is testable on plain bytes.

mod health;
pub mod recording;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use health::WriteHealth;
pub use health::{EpisodeSummary, FailureStats};
use recording::Recording;
pub use recording::{RecordingKind, RecordingSummary};

use crate::layout::{SegmentInfo, segment_file_name};
use crate::ring::{Chunk, FailureKind, Ring, SegmentStart, SharedBytes, WriteFailure};
use crate::ts::analyzer::{AnalyzerStats, Unit};
use crate::ts::random_access::Verdict;
use crate::ts::timeline::{ClockSource, Step};
use crate::ts::{AlignerStats, PACKET_SIZE, Packet, PacketAligner, StreamAnalyzer, Timeline};

/// A segment is cut at the next packet, random-access point or not, once it
/// is this many times longer than `segment-duration`. This bounds segments
/// of streams whose keyframes cannot be found (scrambled video without
/// random_access_indicator, an unknown codec).
pub const FORCED_CUT_FACTOR: u64 = 3;

/// Packets held while the verdict on an access unit is pending; past this the
/// unit is taken as not random-access.
const MAX_HOLD: usize = 1024 * PACKET_SIZE;

/// Media time after which buffered data is handed to the OS even if the
/// write block is not full: the bound on how far a live reader lags the
/// writer, and on what a crash of the process can lose.
pub const FLUSH_INTERVAL_NS: u64 = 500_000_000;

/// How much earlier than `segment-duration` a random-access point may cut.
/// The PCR in a keyframe's packet jitters around the frame time (a live
/// multiplexer stamps it from its clock), so a keyframe exactly one GOP
/// later can measure a hair short; without this the segment would run a
/// whole GOP longer than asked.
fn cut_tolerance(segment_duration_ns: u64) -> u64 {
    (segment_duration_ns / 20).min(250_000_000)
}

/// Access-unit starts remembered per segment, to cut a failed segment back
/// to a complete frame. More than the frames one write block can hold at
/// ordinary bitrates; beyond it the segment is cut back less precisely.
const MAX_UNIT_STARTS: usize = 512;

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
    pub program: Option<u16>,
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
    /// A recording began (its history, if any, is already in place).
    RecordingStarted {
        id: u32,
        location: PathBuf,
        kind: RecordingKind,
        start_ns: u64,
    },
    /// A recording ended, with its final status.
    RecordingStopped(RecordingSummary),
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
    /// Failure counters; `failing_time` excludes the running episode, which
    /// started at `failing_since`.
    pub failure: FailureStats,
    pub failing_since: Option<Instant>,
    pub ring: crate::ring::RingStats,
    pub window: crate::ring::Window,
    pub window_segments: u64,
    pub oldest: Option<u64>,
    pub newest: Option<u64>,
    /// Sequence number of the segment being written.
    pub current: Option<u64>,
    pub scrambled: bool,
    pub clock_source: Option<ClockSource>,
    /// Ids of the running recordings.
    pub recordings: Vec<u32>,
}

/// Accumulates packets and segment decisions; see the module documentation.
pub struct Recorder {
    aligner: PacketAligner,
    core: Core,
}

struct Core {
    config: RecorderConfig,
    ring: Ring,
    analyzer: StreamAnalyzer,
    timeline: Timeline,
    /// Timeline position where the open segment started.
    segment_start_ns: u64,
    /// Timeline position since which no segment has been open (stream start,
    /// or a failed write in drop mode), for the forced cut.
    closed_since_ns: Option<u64>,
    /// The input being pushed, while the ring may keep references to it.
    input: Option<SharedBytes>,
    /// Timeline position from which a forced cut is due (see FORCED_CUT_FACTOR).
    forced_cut_at_ns: u64,
    /// Timeline position of the last time-based flush.
    flushed_at_ns: u64,
    /// Packets of a due access unit whose verdict is pending.
    hold: Vec<u8>,
    holding: bool,
    /// Cut at the next random-access point regardless of duration.
    cut_asap: bool,
    /// The next segment gets EXT-X-DISCONTINUITY.
    pending_discontinuity: bool,
    /// Wall clock (ms since epoch) at timeline position `anchor.1`.
    anchor: Option<(i64, u64)>,
    health: WriteHealth,
    /// (offset in the open segment, timeline position) of recent access-unit
    /// starts on the cut PID; the first is the segment's random-access point.
    unit_starts: VecDeque<(u64, u64)>,
    /// Evictions under pressure already reported.
    reported_pressure: (u64, u64),
    /// `error` mode: the failure that ended the recording.
    fatal: Option<WriteFailure>,
    /// A blocked write was cancelled: stop processing the current input.
    cancelled: bool,
    /// Host time at the start of the current input buffer.
    now: Instant,
    stats: RecorderStats,
    recordings: Vec<ActiveRecording>,
    next_recording_id: u32,
}

/// A running recording and whether it still waits for the next cut to begin.
struct ActiveRecording {
    recording: Recording,
    waiting_for_cut: bool,
}

impl Recorder {
    /// A recorder writing into `ring`. If the ring already holds segments
    /// (adopted after a restart), the first new segment is a discontinuity.
    #[must_use]
    pub fn new(ring: Ring, config: RecorderConfig) -> Self {
        let adopted = ring.segments().len() > 0;
        Recorder {
            aligner: PacketAligner::new(),
            core: Core {
                config,
                ring,
                analyzer: StreamAnalyzer::new(config.program),
                timeline: Timeline::new(),
                segment_start_ns: 0,
                closed_since_ns: None,
                input: None,
                forced_cut_at_ns: u64::MAX,
                flushed_at_ns: 0,
                hold: Vec::new(),
                holding: false,
                cut_asap: false,
                pending_discontinuity: adopted,
                anchor: None,
                health: WriteHealth::default(),
                unit_starts: VecDeque::new(),
                reported_pressure: (0, 0),
                fatal: None,
                cancelled: false,
                now: Instant::now(),
                stats: RecorderStats::default(),
                recordings: Vec::new(),
                next_recording_id: 1,
            },
        }
    }

    /// Ids of the running recordings.
    #[must_use]
    pub fn recording_ids(&self) -> Vec<u32> {
        self.core.recordings.iter().map(|r| r.recording.id).collect()
    }

    /// Starts a recording at `location`. A negative `start_offset_ns` reaches
    /// back into the ring (clamped to the oldest content, rounded down to the
    /// segment start, a random-access point, at or before it); 0 starts at
    /// the next random-access point that begins a segment. Returns the id.
    pub fn start_recording(
        &mut self,
        location: &std::path::Path,
        kind: RecordingKind,
        start_offset_ns: i64,
        host: &mut dyn Host,
    ) -> Result<u32, String> {
        let core = &mut self.core;
        let id = core.next_recording_id;
        let now = core.timeline.position_ns();
        // Start times of the completed segments, oldest first, counted back
        // from the start of the segment being written.
        let mut t = if core.ring.is_segment_open() {
            core.segment_start_ns
        } else {
            now
        };
        let mut history: Vec<(SegmentInfo, u64)> = core
            .ring
            .segments()
            .rev()
            .map(|s| {
                t = t.saturating_sub(s.duration_ns);
                (s.clone(), t)
            })
            .collect();
        history.reverse();
        let back = start_offset_ns < 0;
        let target = now.saturating_sub(start_offset_ns.unsigned_abs());
        let from = if back {
            history.iter().rposition(|(_, start)| *start <= target).unwrap_or(0)
        } else {
            history.len()
        };
        let current_from = core.ring.is_segment_open() && back;
        let start_ns = history
            .get(from)
            .map_or(if current_from { core.segment_start_ns } else { now }, |(_, s)| *s);
        let first_sequence = history
            .get(from)
            .map(|(s, _)| s.sequence)
            .or(core.ring.current_sequence().filter(|_| back));
        let first_sequence = first_sequence.unwrap_or_else(|| core.ring.current_sequence().map_or(0, |s| s + 1));
        let mut recording = Recording::create(id, kind, location, start_ns, first_sequence)
            .map_err(|e| format!("cannot create '{}': {e}", location.display()))?;
        if back {
            let dir = core.ring.dir().to_owned();
            match kind {
                RecordingKind::Content => {
                    // Everything already written, then the live stream.
                    let _ = core.ring.flush();
                    for (info, start) in &history[from..] {
                        recording.mark_boundary(*start, core.now);
                        recording
                            .append_file(&dir.join(segment_file_name(info.sequence)), info.bytes)
                            .map_err(|e| e.to_string())?;
                    }
                    if let Some(seq) = core.ring.current_sequence() {
                        recording.mark_boundary(core.segment_start_ns, core.now);
                        recording
                            .append_file(&dir.join(segment_file_name(seq)), core.ring.flushed_bytes())
                            .map_err(|e| e.to_string())?;
                    }
                }
                RecordingKind::Reference => {
                    for (info, start) in &history[from..] {
                        recording.link(&dir, info, *start).map_err(|e| e.to_string())?;
                    }
                }
            }
        }
        core.next_recording_id += 1;
        host.event(RecorderEvent::RecordingStarted {
            id,
            location: location.to_owned(),
            kind,
            start_ns,
        });
        core.recordings.push(ActiveRecording {
            recording,
            waiting_for_cut: !back,
        });
        Ok(id)
    }

    /// Stops recording `id`: now (0), or in the past (negative offset: the
    /// recording ends at the first segment start at or after that point).
    /// A reference recording stopped now ends when the segment being written
    /// completes, so that it can be linked whole. Returns false for an
    /// unknown id.
    pub fn stop_recording(&mut self, id: u32, stop_offset_ns: i64, host: &mut dyn Host) -> bool {
        let core = &mut self.core;
        let Some(i) = core.recordings.iter().position(|r| r.recording.id == id) else {
            return false;
        };
        let now = core.timeline.position_ns();
        let active = &mut core.recordings[i];
        if stop_offset_ns >= 0 && active.recording.kind == RecordingKind::Reference && core.ring.is_segment_open() {
            active.recording.stop_after_current = true;
            return true;
        }
        let truncate = (stop_offset_ns < 0).then(|| now.saturating_sub(stop_offset_ns.unsigned_abs()));
        let active = core.recordings.remove(i);
        host.event(RecorderEvent::RecordingStopped(
            active.recording.finish(truncate.unwrap_or(now), truncate),
        ));
        true
    }

    #[must_use]
    pub fn ring(&self) -> &Ring {
        &self.core.ring
    }

    #[must_use]
    pub fn stats(&self) -> RecorderStats {
        self.core.stats
    }

    /// All counters, for the `stats` property.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        let ring = &self.core.ring;
        let (failure, failing_since) = self.core.health.stats_parts();
        let mut segments = ring.segments();
        let oldest = segments.next().map(|s| s.sequence);
        let newest = segments.next_back().map(|s| s.sequence).or(oldest);
        Snapshot {
            recorder: self.core.stats,
            aligner: self.aligner.stats(),
            analyzer: self.core.analyzer.stats(),
            failure,
            failing_since,
            ring: ring.stats(),
            window: ring.window(),
            window_segments: ring.segments().len() as u64,
            oldest,
            newest,
            current: ring.current_sequence(),
            scrambled: self.core.analyzer.is_scrambled(),
            clock_source: Some(self.core.timeline.source()),
            recordings: self.recording_ids(),
        }
    }

    #[must_use]
    pub fn clock_source(&self) -> ClockSource {
        self.core.timeline.source()
    }

    /// Feeds one input buffer. `buffer_time_ns` is its timestamp, if it has one.
    pub fn push(&mut self, data: &[u8], buffer_time_ns: Option<u64>, host: &mut dyn Host) -> Result<(), PushError> {
        let core = &mut self.core;
        core.begin_call(host)?;
        core.stats.buffers += 1;
        core.stats.bytes_in += data.len() as u64;
        match buffer_time_ns {
            Some(t) if core.timeline.on_buffer_time(t) == Step::Jump => core.on_jump(),
            Some(_) => {}
            None => core.timeline.on_untimed_buffer(),
        }
        self.aligner.push(data, |run| core.consume(run, host));
        core.end_call()
    }

    /// Like [`Self::push`], for input the ring may keep a reference to
    /// instead of copying it: large runs of it wait in the open segment
    /// until they are written together with what came before and after.
    pub fn push_shared(
        &mut self,
        data: SharedBytes,
        buffer_time_ns: Option<u64>,
        host: &mut dyn Host,
    ) -> Result<(), PushError> {
        self.core.input = Some(Arc::clone(&data));
        let result = self.push((*data).as_ref(), buffer_time_ns, host);
        self.core.input = None;
        result
    }

    /// The input was flushed: whatever comes next is unrelated to what came
    /// before. Held-back bytes are dropped (and counted by the aligner).
    pub fn flush(&mut self, host: &mut dyn Host) -> Result<(), PushError> {
        self.aligner.reset();
        let core = &mut self.core;
        core.begin_call(host)?;
        core.release_hold(host);
        core.analyzer.reset_continuity();
        core.timeline.rebase();
        core.on_jump();
        core.end_call()
    }

    /// End of stream (or stop): writes what is held, closes the last segment
    /// and marks the playlist as ended. `may_block`: in `block` mode, whether
    /// to wait for a failing disk (yes at EOS, no when stopping).
    pub fn finish(&mut self, host: &mut dyn Host, may_block: bool) -> Result<(), PushError> {
        let core = &mut self.core;
        core.begin_call(host)?;
        if !may_block && core.config.failure_mode == FailureMode::Block {
            core.config.failure_mode = FailureMode::Drop;
        }
        self.aligner.finish(|run| core.consume(run, host));
        core.release_hold(host);
        if core.fatal.is_none() && !core.cancelled {
            let duration = core.timeline.end_position_ns().saturating_sub(core.segment_start_ns);
            if core.ring.is_segment_open() {
                match core.ring.finish_segment(duration) {
                    Ok(()) => core.on_segment_completed(core.segment_start_ns, host),
                    Err(f) => core.on_failure(f, host, |r| r.finish_segment(duration)),
                }
            }
            // Nothing is open any more: this only publishes the ended playlist.
            let _ = core.ring.close(0);
        }
        let end = core.timeline.end_position_ns();
        for active in std::mem::take(&mut core.recordings) {
            host.event(RecorderEvent::RecordingStopped(active.recording.finish(end, None)));
        }
        core.end_call()
    }
}

impl Core {
    fn begin_call(&mut self, host: &mut dyn Host) -> Result<(), PushError> {
        // The time only matters for retries while failing; reading the clock
        // for every 1316-byte buffer showed in profiles.
        if self.health.is_failing() {
            self.now = host.now();
        }
        self.cancelled = false;
        self.fatal_result()
    }

    fn end_call(&mut self) -> Result<(), PushError> {
        if self.cancelled {
            self.cancelled = false;
            return Err(PushError::Cancelled);
        }
        self.fatal_result()
    }

    /// The fatal failure, if `error` mode stopped the recorder, for every
    /// call after it too.
    fn fatal_result(&self) -> Result<(), PushError> {
        match &self.fatal {
            Some(f) => Err(fatal_error(f)),
            None => Ok(()),
        }
    }

    fn on_jump(&mut self) {
        self.stats.discontinuities += 1;
        self.pending_discontinuity = true;
        self.cut_asap = true;
        self.anchor = None;
    }

    fn stopped(&self) -> bool {
        self.cancelled || self.fatal.is_some()
    }

    /// Handles a run of whole packets from the aligner.
    fn consume(&mut self, run: &[u8], host: &mut dyn Host) {
        // `from` is the start of the part of `run` not yet written or held.
        let mut from = 0;
        let mut at = 0;
        while at < run.len() {
            if self.stopped() {
                return;
            }
            at += self.skip_plain(&run[at..]) * PACKET_SIZE;
            if at < run.len() {
                self.consume_packet(run, at, &mut from, host);
                at += PACKET_SIZE;
            }
        }
        if !self.holding && !self.stopped() {
            self.write(&run[from..], host);
        }
    }

    /// Passes over the leading packets of `run` that cannot change anything
    /// here (see [`StreamAnalyzer::skip_plain`]); returns how many. They stay
    /// in the run and are written with it. Nothing is skipped while a cut is
    /// being decided or due, or while the clock needs every packet.
    fn skip_plain(&mut self, run: &[u8]) -> usize {
        if self.holding || !self.ring.is_segment_open() && self.closed_since_ns.is_none() {
            return 0;
        }
        // Nothing below moves the position, so this holds for the whole skip.
        if self.timeline.position_ns() >= self.forced_cut_at_ns && self.forced_cut_due() {
            return 0;
        }
        let max = usize::try_from(self.timeline.quiet_packets_left()).unwrap_or(usize::MAX);
        let skipped = self.analyzer.skip_plain(run, max);
        self.timeline.on_quiet_packets(skipped as u64);
        skipped
    }

    /// Handles the packet at `at` in `run`.
    fn consume_packet(&mut self, run: &[u8], at: usize, from: &mut usize, host: &mut dyn Host) {
        let bytes = &run[at..at + PACKET_SIZE];
        let Some(packet) = Packet::new(bytes) else { return };
        self.timeline.on_packet();
        let class = self.analyzer.analyze(&packet);
        if let Some((pcr, discontinuity)) = class.pcr
            && self.timeline.on_pcr(pcr, discontinuity) == Step::Jump
        {
            self.on_jump();
        }
        if let Some(scrambled) = class.scrambling_changed {
            host.event(RecorderEvent::Scrambling(scrambled));
        }
        if self.closed_since_ns.is_none() && !self.ring.is_segment_open() {
            self.closed_since_ns = Some(self.timeline.position_ns());
            self.forced_cut_at_ns = self.timeline.position_ns().saturating_add(self.forced_limit());
        }

        if self.holding {
            self.hold.extend_from_slice(bytes);
            *from = at + PACKET_SIZE;
            match class.unit {
                Unit::Resolved(v) => self.resolve_hold(v == Verdict::RandomAccess, host),
                Unit::Start(v) => {
                    // A new unit began before the previous one was settled:
                    // the previous one was not a random-access point.
                    let len = self.hold.len() - PACKET_SIZE;
                    self.hold.truncate(len);
                    self.resolve_hold(false, host);
                    self.on_unit_start(v, bytes, host);
                }
                Unit::Inside if self.hold.len() >= MAX_HOLD => self.resolve_hold(false, host),
                Unit::Inside => {}
            }
            return;
        }

        // The forced-cut deadline is one comparison per packet; the rest
        // is only worked out at access-unit starts.
        let forced = self.timeline.position_ns() >= self.forced_cut_at_ns && self.forced_cut_due();
        let is_start = matches!(class.unit, Unit::Start(_));
        let due = is_start && self.cut_due();
        let offset_here = if is_start {
            self.ring.segment_len() + (at - *from) as u64
        } else {
            0
        };
        let segments_before = self.ring.segments_created();
        match class.unit {
            Unit::Start(v) if due && v != Verdict::NotRandomAccess || forced => {
                self.write(&run[*from..at], host);
                *from = at;
                if v == Verdict::Undecided && !forced {
                    self.hold.extend_from_slice(bytes);
                    self.holding = true;
                    *from = at + PACKET_SIZE;
                } else {
                    if forced && v != Verdict::RandomAccess {
                        self.stats.forced_cuts += 1;
                    }
                    self.cut(host);
                }
            }
            _ if forced => {
                self.write(&run[*from..at], host);
                *from = at;
                self.stats.forced_cuts += 1;
                self.cut(host);
            }
            _ => {}
        }
        // A unit start inside the open segment (a cut records its own).
        if is_start && !self.holding && self.ring.segments_created() == segments_before && self.ring.is_segment_open() {
            self.note_unit_start(offset_here);
        }
    }

    /// Handles a unit start that arrived while resolving a hold.
    fn on_unit_start(&mut self, v: Verdict, bytes: &[u8], host: &mut dyn Host) {
        if self.cut_due() && v != Verdict::NotRandomAccess {
            if v == Verdict::Undecided {
                self.hold.extend_from_slice(bytes);
                self.holding = true;
                return;
            }
            self.cut(host);
        }
        self.write(bytes, host);
    }

    fn resolve_hold(&mut self, random_access: bool, host: &mut dyn Host) {
        self.holding = false;
        if random_access {
            self.cut(host);
        }
        let hold = std::mem::take(&mut self.hold);
        self.write(&hold, host);
        self.hold = hold;
        self.hold.clear();
    }

    /// Writes out held packets without deciding anything (flush, EOS).
    fn release_hold(&mut self, host: &mut dyn Host) {
        if self.holding {
            self.resolve_hold(false, host);
        }
    }

    /// A random-access point here would start a new segment.
    fn cut_due(&self) -> bool {
        if self.health.is_failing() {
            // Dropping: a new segment is the retry, at most once per interval.
            return self.health.retry_due(self.now);
        }
        if !self.ring.is_segment_open() {
            return true;
        }
        let elapsed = self.timeline.position_ns() - self.segment_start_ns;
        self.cut_asap || elapsed + cut_tolerance(self.config.segment_duration_ns) >= self.config.segment_duration_ns
    }

    /// No random-access point came for too long: cut anyway.
    fn forced_limit(&self) -> u64 {
        self.config.segment_duration_ns.saturating_mul(FORCED_CUT_FACTOR)
    }

    fn forced_cut_due(&self) -> bool {
        let limit = self.forced_limit();
        let now = self.timeline.position_ns();
        if self.health.is_failing() && !self.health.retry_due(self.now) {
            return false;
        }
        if self.ring.is_segment_open() {
            now - self.segment_start_ns >= limit
        } else {
            self.closed_since_ns.is_some_and(|since| now - since >= limit)
        }
    }

    /// Closes the open segment (if any) and opens the next one, starting
    /// with the latest PAT and PMT. While failing in `drop` mode this is the
    /// retry: the new segment is flushed at once to find out if writing works.
    fn cut(&mut self, host: &mut dyn Host) {
        let now = self.timeline.position_ns();
        if self.ring.is_segment_open() {
            let duration = now - self.segment_start_ns;
            let started = self.segment_start_ns;
            if let Err(f) = self.ring.finish_segment(duration) {
                self.on_failure(f, host, |r| r.finish_segment(duration));
                if self.stopped() || self.health.is_failing() {
                    return;
                }
            }
            self.on_segment_completed(started, host);
        }
        let wall_now = wall_clock_ms();
        let &mut (anchor_ms, anchor_ns) = self.anchor.get_or_insert((wall_now, now));
        let start = SegmentStart {
            program_date_time_ms: anchor_ms + i64::try_from((now - anchor_ns) / 1_000_000).unwrap_or(0),
            discontinuity: self.pending_discontinuity,
        };
        if let Err(f) = self.ring.begin_segment(start) {
            self.on_failure(f, host, |r| r.begin_segment(start));
            if !self.ring.is_segment_open() {
                return;
            }
        }
        self.segment_start_ns = now;
        self.closed_since_ns = None;
        self.forced_cut_at_ns = now.saturating_add(self.forced_limit());
        self.unit_starts.clear();
        self.pending_discontinuity = false;
        self.cut_asap = false;
        let tables: Vec<u8> = self.analyzer.table_packets().flatten().copied().collect();
        // The random-access point follows the tables.
        self.note_unit_start(tables.len() as u64);
        let result = if self.health.is_failing() {
            // Retrying after a failure: find out now whether writing works.
            self.ring.write(&tables).and_then(|()| self.ring.flush())
        } else {
            self.ring.write(&tables)
        };
        match result {
            Ok(()) => {
                self.on_success(host);
                let wall = host.now();
                for active in &mut self.recordings {
                    active.waiting_for_cut = false;
                    active.recording.mark_boundary(now, wall);
                }
                self.tee(&tables, host);
            }
            Err(f) => self.on_failure(f, host, |r| r.flush()),
        }
    }

    fn write(&mut self, data: &[u8], host: &mut dyn Host) {
        if data.is_empty() || self.stopped() {
            return;
        }
        if self.health.is_failing() {
            // Dropping until the next retry; no system call per buffer.
            self.health.drop_bytes(data.len() as u64);
            return;
        }
        if !self.ring.is_segment_open() {
            self.stats.packets_before_random_access += (data.len() / PACKET_SIZE) as u64;
            return;
        }
        let mut result = self.ring.write_chunk(Chunk::within(self.input.as_ref(), data));
        // Big write blocks keep system calls few at high bitrates; at low
        // bitrates this bounds how stale the file is for a reader following
        // the live edge, and what a crash can lose.
        let position = self.timeline.position_ns();
        if result.is_ok() && position >= self.flushed_at_ns.saturating_add(FLUSH_INTERVAL_NS) {
            self.flushed_at_ns = position;
            result = self.ring.flush();
        }
        self.report_pressure(host);
        match result {
            Ok(()) => self.tee(data, host),
            Err(f) => self.on_failure(f, host, |r| r.flush()),
        }
    }

    /// Gives content recordings what the ring wrote. A recording's write
    /// failures follow the write-failure contract (one failure, one clear,
    /// drop and retry at the next segment start after the retry interval)
    /// with its id in the message, and never disturb the ring.
    fn tee(&mut self, data: &[u8], host: &mut dyn Host) {
        if self.recordings.is_empty() {
            return;
        }
        let position = self.timeline.position_ns();
        let retry = self.config.retry_interval;
        for active in self.recordings.iter_mut().filter(|a| !a.waiting_for_cut) {
            let rec = &mut active.recording;
            if rec.kind != RecordingKind::Content {
                continue;
            }
            match rec.append(data) {
                Ok(true) => {
                    if let Some(summary) = rec.health.on_success(host.now(), position) {
                        host.event(RecorderEvent::WriteFailureClear(summary));
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    let failure = WriteFailure::new(rec.location.clone(), e, false);
                    if rec.health.on_failure(&failure, host.now(), retry) {
                        host.event(RecorderEvent::WriteFailure {
                            kind: failure.kind,
                            message: format!("recording {}: {failure}", rec.id),
                            path: failure.path,
                        });
                    }
                    rec.health.losing_from(position);
                }
            }
        }
    }

    /// A ring segment that started at `start_ns` was completed: reference
    /// recordings link it; those stopping with it end.
    fn on_segment_completed(&mut self, start_ns: u64, host: &mut dyn Host) {
        let Some(info) = self.ring.segments().next_back().cloned() else {
            return;
        };
        let dir = self.ring.dir().to_owned();
        let mut i = 0;
        while i < self.recordings.len() {
            let rec = &mut self.recordings[i].recording;
            if rec.kind == RecordingKind::Reference
                && rec.next_sequence <= info.sequence
                && rec.error.is_none()
                && let Err(e) = rec.link(&dir, &info, start_ns)
            {
                rec.error = Some(format!(
                    "recording {}: cannot link segment {}: {e}",
                    rec.id, info.sequence
                ));
            }
            if rec.stop_after_current {
                let active = self.recordings.remove(i);
                let end = start_ns + info.duration_ns;
                host.event(RecorderEvent::RecordingStopped(active.recording.finish(end, None)));
            } else {
                i += 1;
            }
        }
    }

    fn on_success(&mut self, host: &mut dyn Host) {
        self.report_pressure(host);
        if let Some(summary) = self.health.on_success(host.now(), self.timeline.position_ns()) {
            self.ring.set_evict_under_pressure(true);
            host.event(RecorderEvent::WriteFailureClear(summary));
        }
    }

    fn report_pressure(&mut self, host: &mut dyn Host) {
        let stats = self.ring.stats();
        let now = (stats.evicted_under_pressure, stats.evicted_under_pressure_bytes);
        if now != self.reported_pressure {
            host.event(RecorderEvent::EvictedUnderPressure {
                segments: now.0 - self.reported_pressure.0,
                bytes: now.1 - self.reported_pressure.1,
            });
            self.reported_pressure = now;
        }
    }

    /// A ring operation failed (after the ring's own eviction retry). Applies
    /// the failure mode; `retry` repeats the operation in `block` mode.
    fn on_failure(
        &mut self,
        failure: WriteFailure,
        host: &mut dyn Host,
        mut retry: impl FnMut(&mut Ring) -> Result<(), WriteFailure>,
    ) {
        self.report_pressure(host);
        let now = host.now();
        if self.health.on_failure(&failure, now, self.config.retry_interval) {
            self.ring.set_evict_under_pressure(false);
            host.event(RecorderEvent::WriteFailure {
                kind: failure.kind,
                message: failure.to_string(),
                path: failure.path.clone(),
            });
        }
        // A deleted segment file cannot be retried into: handle it as a drop.
        let vanished = failure.source.kind() == std::io::ErrorKind::NotFound;
        match self.config.failure_mode {
            FailureMode::Error => self.fatal = Some(failure),
            FailureMode::Block if !vanished => loop {
                if !host.wait(self.config.retry_interval) {
                    self.cancelled = true;
                    return;
                }
                match retry(&mut self.ring) {
                    Ok(()) => {
                        self.on_success(host);
                        return;
                    }
                    Err(f) => {
                        self.report_pressure(host);
                        let _ = self.health.on_failure(&f, host.now(), self.config.retry_interval);
                    }
                }
            },
            FailureMode::Block | FailureMode::Drop => self.drop_segment(),
        }
    }

    /// `drop` mode: give up the open segment's pending data (keeping what
    /// reached the disk) and drop input until the next retry.
    fn drop_segment(&mut self) {
        let position = self.timeline.position_ns();
        let was_open = self.ring.is_segment_open();
        // Keep what reached the disk up to the last access unit that starts
        // there: the kept part then ends on a complete frame.
        let flushed = self.ring.flushed_bytes();
        let first = self.unit_starts.front().map(|&(offset, _)| offset);
        let (keep, kept_until_ns) = self
            .unit_starts
            .iter()
            .rev()
            .find(|&&(offset, _)| offset <= flushed && Some(offset) != first)
            .copied()
            .unwrap_or((0, self.segment_start_ns));
        let dropped = self.ring.abandon_segment(keep, kept_until_ns - self.segment_start_ns);
        self.unit_starts.clear();
        self.health.losing_from(if was_open { kept_until_ns } else { position });
        self.health.drop_bytes(dropped);
        self.pending_discontinuity = true;
        self.closed_since_ns = Some(position);
        self.forced_cut_at_ns = position.saturating_add(self.forced_limit());
    }

    /// Remembers where an access unit starts in the open segment.
    fn note_unit_start(&mut self, offset: u64) {
        if self.unit_starts.len() == MAX_UNIT_STARTS {
            self.unit_starts.pop_front();
        }
        self.unit_starts.push_back((offset, self.timeline.position_ns()));
    }
}

/// A copy of the failure that stopped the recorder. Out of line: every
/// call checks for it, and the check alone is what the common path pays.
#[cold]
fn fatal_error(f: &WriteFailure) -> PushError {
    PushError::Fatal(WriteFailure::new(f.path.clone(), clone_io_error(&f.source), false))
}

/// `io::Error` is not `Clone`; keep the kind, the OS code and the text.
fn clone_io_error(e: &std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(e.kind(), e.to_string()),
    }
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{Retention, RingConfig};
    use crate::ts::packet::tests::PacketBuilder;
    use crate::ts::psi::tests::{pat_section, pmt_section, psi_packet};
    use crate::ts::random_access::tests::{H264_IDR, H264_P, pes};
    use crate::ts::timeline::PCR_HZ;

    const SECOND: u64 = 1_000_000_000;

    /// A host with a manual clock; `wait` advances it and succeeds `max_waits` times.
    pub(crate) struct TestHost {
        pub now: Instant,
        pub events: Vec<RecorderEvent>,
        pub waits: u32,
        pub max_waits: u32,
    }

    impl TestHost {
        pub(crate) fn new() -> Self {
            TestHost {
                now: Instant::now(),
                events: Vec::new(),
                waits: 0,
                max_waits: u32::MAX,
            }
        }
    }

    impl Host for TestHost {
        fn now(&self) -> Instant {
            self.now
        }

        fn wait(&mut self, timeout: Duration) -> bool {
            self.waits += 1;
            self.now += timeout;
            self.waits <= self.max_waits
        }

        fn event(&mut self, event: RecorderEvent) {
            self.events.push(event);
        }
    }

    /// A synthetic 25 fps program: PAT+PMT every 10 frames, 3 packets per
    /// frame, a keyframe every `gop` frames, PCR on every frame.
    struct Stream {
        gop: u32,
        frame: u32,
        pcr_base: u64,
        cc: [u8; 3],
        /// Split the keyframe's start code across its first two packets.
        split_keyframe: bool,
        scrambled: bool,
        with_pcr: bool,
    }

    impl Stream {
        fn new(gop: u32) -> Self {
            Stream {
                gop,
                frame: 0,
                pcr_base: PCR_HZ,
                cc: [0; 3],
                split_keyframe: false,
                scrambled: false,
                with_pcr: true,
            }
        }

        fn next_frame(&mut self) -> Vec<u8> {
            let mut out = Vec::new();
            if self.frame.is_multiple_of(10) {
                out.extend_from_slice(&psi_packet(0, &pat_section(1, 0x100), self.cc[0]));
                out.extend_from_slice(&psi_packet(0x100, &pmt_section(1, 0x101, &[(0x1B, 0x101)]), self.cc[1]));
                self.cc[0] = (self.cc[0] + 1) & 0xF;
                self.cc[1] = (self.cc[1] + 1) & 0xF;
            }
            let key = self.frame.is_multiple_of(self.gop);
            let es = pes(if key { H264_IDR } else { H264_P });
            let cut = if key && self.split_keyframe { 16 } else { es.len() };
            let mut first = es[..cut].to_vec();
            first.resize(if cut < es.len() { cut } else { 150 }, 0x11);
            let mut payloads = vec![first, es[cut..].to_vec(), vec![0x22; 184]];
            payloads.retain(|p| !p.is_empty());
            while payloads.len() < 3 {
                payloads.push(vec![0x33; 184]);
            }
            for (i, payload) in payloads.into_iter().enumerate() {
                let mut b = PacketBuilder::new(0x101);
                b.pusi = i == 0;
                b.cc = self.cc[2];
                self.cc[2] = (self.cc[2] + 1) & 0xF;
                b.scrambling = if self.scrambled { 2 } else { 0 };
                if i == 0 && self.with_pcr {
                    b.pcr = Some(self.pcr_base + u64::from(self.frame) * PCR_HZ / 25);
                }
                b.payload = payload;
                out.extend_from_slice(&b.build());
            }
            self.frame += 1;
            out
        }

        fn frames(&mut self, n: u32) -> Vec<u8> {
            (0..n).flat_map(|_| self.next_frame()).collect()
        }
    }

    fn recorder(dir: &std::path::Path, segment: u64) -> Recorder {
        let ring = Ring::open(RingConfig {
            dir: dir.to_owned(),
            retention: Retention::default(),
            playlist_length: 0,
            segment_duration_ns: segment,
            sync_on_rotate: false,
            reuse_evicted: true,
        })
        .expect("open ring");
        Recorder::new(
            ring,
            RecorderConfig {
                segment_duration_ns: segment,
                program: None,
                failure_mode: FailureMode::Drop,
                retry_interval: Duration::from_secs(1),
            },
        )
    }

    fn segment_files(dir: &std::path::Path) -> Vec<Vec<u8>> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "ts"))
            .collect();
        names.sort();
        names.iter().map(|p| std::fs::read(p).expect("read")).collect()
    }

    fn pid(p: &[u8]) -> u16 {
        u16::from(p[1] & 0x1F) << 8 | u16::from(p[2])
    }

    /// Every segment: PAT, PMT, then the keyframe's first packet.
    fn assert_segments_start_decodable(files: &[Vec<u8>]) {
        for (i, f) in files.iter().enumerate() {
            assert_eq!(f.len() % PACKET_SIZE, 0);
            let pkts: Vec<&[u8]> = f.chunks(PACKET_SIZE).collect();
            assert_eq!(
                (pid(pkts[0]), pid(pkts[1]), pid(pkts[2])),
                (0, 0x100, 0x101),
                "segment {i}"
            );
            let p = Packet::new(pkts[2]).expect("packet");
            assert!(p.payload_unit_start(), "segment {i} does not start at a PES");
            // The start code may straddle into the next packet of the PES.
            let mut es = p.payload().to_vec();
            es.extend_from_slice(Packet::new(pkts[3]).expect("packet").payload());
            assert!(
                es.windows(4).any(|w| w == [0, 0, 1, 0x67]),
                "segment {i} does not start at a keyframe"
            );
        }
    }

    #[test]
    fn cuts_at_keyframes_after_the_duration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rec = recorder(dir.path(), 2 * SECOND);
        let mut host = TestHost::new();
        let mut s = Stream::new(25); // 1 s GOP
        rec.push(&s.frames(250), None, &mut host).expect("push"); // 10 s
        rec.finish(&mut host, true).expect("finish");
        let files = segment_files(dir.path());
        assert_eq!(files.len(), 5);
        assert_segments_start_decodable(&files);
        let durations: Vec<u64> = rec.ring().segments().map(|s| s.duration_ns).collect();
        assert_eq!(&durations[..4], &[2 * SECOND; 4]);
    }

    #[test]
    fn keyframe_detected_across_packets_still_cuts_before_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rec = recorder(dir.path(), 2 * SECOND);
        let mut host = TestHost::new();
        let mut s = Stream::new(25);
        s.split_keyframe = true;
        let data = s.frames(250);
        for chunk in data.chunks(1000) {
            rec.push(chunk, None, &mut host).expect("push");
        }
        rec.finish(&mut host, true).expect("finish");
        let files = segment_files(dir.path());
        assert_eq!(files.len(), 5);
        assert_segments_start_decodable(&files);
        // Nothing lost or duplicated beyond the PAT/PMT heads.
        let total: usize = files.iter().map(Vec::len).sum();
        assert_eq!(total, data.len() + 4 * 2 * PACKET_SIZE);
    }

    #[test]
    fn pcr_jump_starts_a_discontinuous_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rec = recorder(dir.path(), 2 * SECOND);
        let mut host = TestHost::new();
        let mut s = Stream::new(25);
        rec.push(&s.frames(110), None, &mut host).expect("push");
        s.pcr_base = 3600 * PCR_HZ; // encoder restart: the clock jumps an hour
        rec.push(&s.frames(140), None, &mut host).expect("push");
        rec.finish(&mut host, true).expect("finish");
        let segs: Vec<_> = rec.ring().segments().cloned().collect();
        let flagged: Vec<u64> = segs.iter().filter(|s| s.discontinuity).map(|s| s.sequence).collect();
        assert_eq!(flagged.len(), 1, "{segs:?}");
        let text = std::fs::read_to_string(dir.path().join("index.m3u8")).expect("playlist");
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
        // The hour is not counted as recorded time.
        let total: u64 = segs.iter().map(|s| s.duration_ns).sum();
        assert!(total < 11 * SECOND, "window of {total} ns");
        assert_segments_start_decodable(&segment_files(dir.path()));
    }

    #[test]
    fn unparseable_keyframes_still_give_bounded_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rec = recorder(dir.path(), SECOND);
        let mut host = TestHost::new();
        let mut s = Stream::new(25);
        s.scrambled = true; // no RAI and scrambled payload: no keyframe can be found
        rec.push(&s.frames(500), None, &mut host).expect("push"); // 20 s
        rec.finish(&mut host, true).expect("finish");
        assert!(rec.stats().forced_cuts >= 5, "{:?}", rec.stats());
        let longest = rec.ring().segments().map(|s| s.duration_ns).max().unwrap_or(0);
        assert!(
            longest <= FORCED_CUT_FACTOR * SECOND + SECOND / 25,
            "segment of {longest} ns"
        );
        assert_eq!(host.events, vec![RecorderEvent::Scrambling(true)]);
    }

    #[test]
    fn without_any_clock_the_byte_count_drives_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rec = recorder(dir.path(), SECOND / 10);
        let mut host = TestHost::new();
        let mut s = Stream::new(5);
        s.with_pcr = false;
        let data = s.frames(1000);
        rec.push(&data, None, &mut host).expect("push");
        rec.finish(&mut host, true).expect("finish");
        assert_eq!(rec.clock_source(), ClockSource::ByteRate);
        let segs: Vec<_> = rec.ring().segments().cloned().collect();
        // About 600 kB at 8 Mbit/s: 0.6 s, six 0.1 s segments.
        assert!(segs.len() >= 5, "{} segments", segs.len());
        // Every byte counts at the default 8 Mbit/s.
        let total: u64 = segs.iter().map(|s| s.duration_ns).sum();
        let expected = data.len() as u64 * 8 * SECOND / crate::ts::timeline::DEFAULT_BITRATE;
        assert!(total.abs_diff(expected) < SECOND / 100, "{total} vs {expected}");
        assert_segments_start_decodable(&segment_files(dir.path()));
    }
}
