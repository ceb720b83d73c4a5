// SPDX-License-Identifier: MPL-2.0
//! The segmenter: the half of the recorder that cuts the stream of whole
//! packets into segments. It keeps the timeline, decides each cut (at the
//! first random-access point at or after `segment-duration`, or forced when
//! none comes), writes the current PAT and PMT at every segment head, holds
//! back an access unit while its verdict is pending, and hands what the ring
//! wrote to the recordings. The write-failure mode is applied in `health`.

mod cuts;
mod failure;
mod gops;
mod recordings;

pub(super) use failure::Halt;

#[cfg(test)]
pub(super) use gops::FORCED_CUT_FACTOR;

use std::collections::VecDeque;
use std::time::Instant;

use super::health::WriteHealth;
use super::recording::{RecordingPoint, Recordings};
use super::{Host, PushError, RecorderConfig, RecorderEvent, RecorderStats};
use crate::layout::SegmentNumber;
use crate::layout::index::Keyframe;
use crate::layout::{RingTime, WallTime};
use crate::ring::{Chunk, Ring, SegmentStart, SharedBytes, stuffing_packets};
use crate::ts::analyzer::Unit;
use crate::ts::random_access::Verdict;
use crate::ts::timeline::{Step, Ticks90k, presentation_delay};
use crate::ts::{NULL_PACKET, PACKET_SIZE, Packet, StreamAnalyzer, Timeline};
use cuts::Cuts;

/// Packets held while the verdict on an access unit is pending; past this the
/// unit is taken as not random-access.
const MAX_HOLD: usize = 1024 * PACKET_SIZE;

/// Media time after which buffered data is handed to the OS even if the
/// write block is not full: the bound on how far a live reader lags the
/// writer, and on what a crash of the process can lose. 200 ms keeps a
/// reader at the live edge within about 250 ms of the sink (the source
/// polls every 50 ms); at broadcast bitrates the write block fills sooner
/// anyway, so it adds no write at all, and at low ones a few small writes
/// a second.
const FLUSH_INTERVAL_NS: u64 = 200_000_000;

/// Access-unit starts remembered per segment, to cut a failed segment back
/// to a complete frame. More than the frames one write block can hold at
/// ordinary bitrates; beyond it the segment is cut back less precisely.
const MAX_UNIT_STARTS: usize = 512;

/// The access unit being received on the cut stream, for the keyframe
/// index: a keyframe's record is written once the next unit starts, when
/// its size is known.
#[derive(Debug, Clone, Copy)]
pub(super) struct UnitStart {
    offset: u64,
    ring_time: RingTime,
    wall_time: WallTime,
    presentation_delay: Ticks90k,
    keyframe: bool,
}

/// Whether the segmenter holds packets back.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Hold {
    /// Packets are written as they come.
    Passing,
    /// A due access unit started and whether it is a random-access point is
    /// not known yet: its packets wait here until it is (or [`MAX_HOLD`]).
    Deciding(Vec<u8>),
}

/// Cuts the stream of whole packets into segments and writes them to the
/// ring: keeps the timeline, decides cuts, holds back an access unit while
/// its verdict is pending, applies the write-failure mode and feeds the
/// recordings.
pub(super) struct Segmenter {
    pub(super) config: RecorderConfig,
    pub(super) ring: Ring,
    pub(super) analyzer: StreamAnalyzer,
    pub(super) timeline: Timeline,
    /// The open segment against the cut rules.
    pub(super) cuts: Cuts,
    /// The input being pushed, while the ring may keep references to it.
    pub(super) input: Option<SharedBytes>,
    /// Where the run being consumed lies in `input`, if it does.
    pub(super) run_offset: Option<usize>,
    /// Where the run being consumed starts in the stream of packets
    /// received (bytes); see [`Self::stream_offset`].
    run_start: u64,
    /// Timeline position of the last time-based flush.
    pub(super) flushed_at_ns: u64,
    /// Whether packets are held back while a due access unit's verdict is pending.
    pub(super) hold: Hold,
    /// Wall clock at timeline position `anchor.1`.
    pub(super) anchor: Option<(WallTime, u64)>,
    pub(super) health: WriteHealth,
    /// (offset in the open segment, timeline position) of recent access-unit
    /// starts on the cut PID; the first is the segment's random-access point.
    pub(super) unit_starts: VecDeque<(u64, u64)>,
    /// Whether processing stopped: for this call, or for good.
    pub(super) halt: Halt,
    /// Host time at the start of the current input buffer.
    pub(super) now: Instant,
    pub(super) stats: RecorderStats,
    pub(super) recordings: Recordings,
    /// The access unit being received on the cut stream, in the open segment.
    pub(super) unit: Option<UnitStart>,
    /// PTS of the last access unit that started on the cut stream.
    pub(super) unit_pts: Option<u64>,
    /// Keyframes indexed so far (for recordings that end before one).
    pub(super) keyframes_indexed: u64,
}

impl Segmenter {
    /// A segmenter writing into `ring`. If the ring already holds segments
    /// (adopted after a restart), the first new segment is a discontinuity.
    pub(super) fn new(ring: Ring, config: RecorderConfig) -> Self {
        let cuts = Cuts::new(
            config.segment_duration_ns,
            ring.ring_time_end(),
            ring.segments().len() > 0,
        );
        Segmenter {
            config,
            ring,
            analyzer: StreamAnalyzer::new(config.program),
            timeline: Timeline::new(),
            cuts,
            input: None,
            run_offset: None,
            run_start: 0,
            flushed_at_ns: 0,
            hold: Hold::Passing,
            anchor: None,
            health: WriteHealth::default(),
            unit_starts: VecDeque::new(),
            halt: Halt::Running,
            now: Instant::now(),
            stats: RecorderStats::default(),
            recordings: Recordings::default(),
            unit: None,
            unit_pts: None,
            keyframes_indexed: 0,
        }
    }

    /// Ring time of timeline position `position_ns` in the open segment.
    fn ring_time(&self, position_ns: u64) -> RingTime {
        self.cuts.ring_time(position_ns)
    }

    /// An access unit starts at `offset` of the open segment: the previous
    /// one, if a keyframe, goes into the index with its size.
    fn unit_started(&mut self, offset: u64, keyframe: bool) {
        self.finish_unit(offset);
        let now = self.timeline.position_ns();
        self.unit = Some(UnitStart {
            offset,
            ring_time: self.ring_time(now),
            wall_time: self.wall_time(now),
            presentation_delay: presentation_delay(self.unit_pts, self.timeline.last_pcr()),
            keyframe,
        });
    }

    /// The unit being received ends at `end` (the next unit's start, or the
    /// segment's end): indexed if it is a keyframe.
    pub(super) fn finish_unit(&mut self, end: u64) {
        if let Some(u) = self.unit.take()
            && u.keyframe
            && end > u.offset
        {
            self.ring.add_keyframe(&Keyframe {
                offset: u.offset,
                ring_time: u.ring_time,
                wall_time: u.wall_time,
                size: u32::try_from(end - u.offset).unwrap_or(u32::MAX),
                presentation_delay: u.presentation_delay,
                // The ring numbers it.
                number: 0,
            });
            self.keyframes_indexed += 1;
        }
    }

    /// Ring time now: in the open segment, or where the next one starts.
    fn ring_now(&self) -> RingTime {
        if self.ring.is_segment_open() {
            self.ring_time(self.timeline.position_ns())
        } else {
            self.ring.ring_time_end()
        }
    }

    pub(super) fn begin_call(&mut self, host: &mut dyn Host) -> Result<(), PushError> {
        // The time only matters for retries while failing; reading the clock
        // for every 1316-byte buffer showed in profiles.
        if self.health.is_failing() {
            self.now = host.now();
        }
        if matches!(self.halt, Halt::Cancelled) {
            self.halt = Halt::Running;
        }
        self.halt.result()
    }

    pub(super) fn end_call(&mut self) -> Result<(), PushError> {
        if matches!(self.halt, Halt::Cancelled) {
            self.halt = Halt::Running;
            return Err(PushError::Cancelled);
        }
        self.halt.result()
    }

    /// The fatal failure, if `error` mode stopped the recorder, for every
    /// call after it too.
    pub(super) fn on_jump(&mut self) {
        self.cuts.on_jump();
        self.stats.discontinuities += 1;
        self.anchor = None;
    }

    fn stopped(&self) -> bool {
        !matches!(self.halt, Halt::Running)
    }

    /// Handles a run of whole packets from the aligner; `offset`: where it
    /// lies in the input, if it does.
    pub(super) fn consume(&mut self, run: &[u8], offset: Option<usize>, host: &mut dyn Host) {
        self.run_offset = offset.filter(|_| self.input.is_some());
        self.consume_packets(run, host);
        self.run_start += run.len() as u64;
    }

    fn consume_packets(&mut self, run: &[u8], host: &mut dyn Host) {
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
        if self.hold == Hold::Passing && !self.stopped() {
            self.write_run(run, from..run.len(), host);
        }
    }

    /// Passes over the leading packets of `run` that cannot change anything
    /// here (see [`StreamAnalyzer::skip_plain`]); returns how many. They stay
    /// in the run and are written with it. Nothing is skipped while a cut is
    /// being decided or due, or while the clock needs every packet.
    fn skip_plain(&mut self, run: &[u8]) -> usize {
        if self.hold != Hold::Passing || !self.cuts.started(self.ring.is_segment_open()) {
            return 0;
        }
        // Nothing below moves the position, so this holds for the whole skip.
        if self.cuts.forced_cut_may_be_due(self.timeline.position_ns()) && self.forced_cut_due() {
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
        if matches!(
            class.unit,
            Unit::Start(Verdict::RandomAccess) | Unit::Resolved(Verdict::RandomAccess)
        ) {
            self.on_random_access();
        }
        if matches!(class.unit, Unit::Start(_)) {
            self.unit_pts = packet.pes_pts();
        }
        if let Some(scrambled) = class.scrambling_changed {
            host.event(RecorderEvent::Scrambling(scrambled));
        }
        if !self.ring.is_segment_open() {
            self.cuts.note_closed(self.timeline.position_ns());
        }

        if let Hold::Deciding(held) = &mut self.hold {
            *from = at + PACKET_SIZE;
            match class.unit {
                Unit::Resolved(v) => {
                    held.extend_from_slice(bytes);
                    let next = self.stream_offset(at + PACKET_SIZE);
                    self.resolve_hold(v == Verdict::RandomAccess, next, host);
                }
                Unit::Start(v) => {
                    // A new unit began before the previous one was settled:
                    // the previous one was not a random-access point.
                    self.resolve_hold(false, 0, host);
                    self.on_unit_start(v, run, at, host);
                }
                Unit::Inside => {
                    held.extend_from_slice(bytes);
                    if held.len() >= MAX_HOLD {
                        self.resolve_hold(false, 0, host);
                    }
                }
            }
            return;
        }

        // The forced-cut deadline is one comparison per packet; the rest
        // is only worked out at access-unit starts.
        let forced = self.cuts.forced_cut_may_be_due(self.timeline.position_ns()) && self.forced_cut_due();
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
                self.write_run(run, *from..at, host);
                *from = at;
                if v == Verdict::Undecided && !forced {
                    self.hold = Hold::Deciding(bytes.to_vec());
                    *from = at + PACKET_SIZE;
                } else {
                    let independent = v == Verdict::RandomAccess;
                    if !independent {
                        self.stats.forced_cuts += 1;
                    }
                    self.cut(independent, self.stream_offset(at), host);
                }
            }
            _ if forced => {
                self.write_run(run, *from..at, host);
                *from = at;
                self.stats.forced_cuts += 1;
                self.cut(false, self.stream_offset(at), host);
            }
            _ => {}
        }
        // A unit start inside the open segment (a cut records its own).
        let same_segment = self.ring.segments_created() == segments_before && self.ring.is_segment_open();
        if is_start && self.hold == Hold::Passing && same_segment {
            self.note_unit_start(offset_here);
            self.unit_started(offset_here, class.unit == Unit::Start(Verdict::RandomAccess));
        } else if class.unit == Unit::Resolved(Verdict::RandomAccess)
            && same_segment
            && let Some(unit) = &mut self.unit
        {
            // The unit that started earlier in this segment is a keyframe.
            unit.keyframe = true;
        }
    }

    /// Handles a unit start, the packet at `at` in `run`, that arrived while
    /// resolving a hold.
    fn on_unit_start(&mut self, v: Verdict, run: &[u8], at: usize, host: &mut dyn Host) {
        let bytes = &run[at..at + PACKET_SIZE];
        if self.cut_due() && v != Verdict::NotRandomAccess {
            if v == Verdict::Undecided {
                self.hold = Hold::Deciding(bytes.to_vec());
                return;
            }
            self.cut(true, self.stream_offset(at), host);
        }
        self.write_run(run, at..at + PACKET_SIZE, host);
    }

    /// The held access unit is (`random_access`) or is not a random-access
    /// point: cut before it if it is, then write it. `next`: the stream
    /// offset of the packet after it.
    fn resolve_hold(&mut self, random_access: bool, next: u64, host: &mut dyn Host) {
        let Hold::Deciding(held) = std::mem::replace(&mut self.hold, Hold::Passing) else {
            return;
        };
        if random_access {
            self.cut(true, next.saturating_sub(held.len() as u64), host);
        }
        self.write(Chunk::borrowed(&held), host);
    }

    /// Writes out held packets without deciding anything (flush, EOS).
    pub(super) fn release_hold(&mut self, host: &mut dyn Host) {
        self.resolve_hold(false, 0, host);
    }

    /// Where the packet at `at` in the run being consumed lies in the
    /// stream of packets received: in clean input read in blocks (a file),
    /// also where it lies in memory modulo the alignment the element asks
    /// upstream for, which segments are laid out by (see [`Self::cut`]).
    fn stream_offset(&self, at: usize) -> u64 {
        self.run_start + at as u64
    }

    /// A random-access point here would start a new segment.
    fn cut_due(&self) -> bool {
        if self.health.is_failing() {
            // Dropping: a new segment is the retry, at most once per interval.
            return self.health.retry_due(self.now);
        }
        self.cuts
            .cut_due(self.timeline.position_ns(), self.ring.is_segment_open())
    }

    /// A random-access point on the cut PID: the GOP it ends is measured,
    /// and the forced-cut deadline moves with the limit.
    fn on_random_access(&mut self) {
        self.cuts
            .on_random_access(self.timeline.position_ns(), self.ring.is_segment_open());
    }

    fn forced_cut_due(&self) -> bool {
        if self.health.is_failing() && !self.health.retry_due(self.now) {
            return false;
        }
        self.cuts
            .forced_cut_due(self.timeline.position_ns(), self.ring.is_segment_open())
    }

    /// Closes the open segment (if any) and opens the next one, starting
    /// with the latest PAT and PMT; `independent`: at a random-access point,
    /// not forced. `first_packet`: the stream offset of the new segment's
    /// first packet; null packets after the tables put it at a file offset
    /// congruent to it (see [`crate::ring::stuffing_packets`]), so that the
    /// kernel copies input from aligned memory at full speed. This depends
    /// on the stream alone, not on how it was cut into buffers. While
    /// failing in `drop` mode this is the retry: the new segment is flushed
    /// at once to find out if writing works.
    fn cut(&mut self, independent: bool, first_packet: u64, host: &mut dyn Host) {
        let now = self.timeline.position_ns();
        if self.ring.is_segment_open() {
            self.finish_unit(self.ring.segment_len());
        }
        self.unit = None;
        if self.ring.is_segment_open() {
            let duration = now - self.cuts.segment_start_ns();
            match self.ring.finish_segment(duration) {
                Ok(()) => self.on_finished(host),
                Err(f) => {
                    self.on_failure(f, host, |r| r.finish_segment(duration));
                    if self.stopped() || self.health.is_failing() {
                        return;
                    }
                }
            }
            self.on_segment_completed(host);
        }
        let &mut (anchor, anchor_ns) = self.anchor.get_or_insert((WallTime::now(), now));
        let mut head: Vec<u8> = self.analyzer.table_packets().flatten().copied().collect();
        let tables_len = head.len();
        let stuffing = stuffing_packets(first_packet, tables_len as u64);
        head.extend(std::iter::repeat_n(NULL_PACKET, stuffing).flatten());
        let start = SegmentStart {
            ring_time: self.ring.ring_time_end(),
            program_date_time: anchor.after(now - anchor_ns),
            discontinuity: self.cuts.pending_discontinuity(),
            independent,
            head_bytes: u32::try_from(tables_len).unwrap_or(u32::MAX),
        };
        if let Err(f) = self.ring.begin_segment(start) {
            self.on_failure(f, host, |r| r.begin_segment(start));
            if !self.ring.is_segment_open() {
                return;
            }
        }
        self.cuts.opened(now, start.ring_time);
        self.unit_starts.clear();
        // The random-access point follows the tables (and the stuffing).
        self.note_unit_start(head.len() as u64);
        self.unit = Some(UnitStart {
            offset: head.len() as u64,
            ring_time: start.ring_time,
            wall_time: start.program_date_time,
            presentation_delay: presentation_delay(self.unit_pts, self.timeline.last_pcr()),
            keyframe: independent,
        });
        let result = if self.health.is_failing() {
            // Retrying after a failure: find out now whether writing works.
            self.ring.write(&head).and_then(|()| self.ring.flush())
        } else {
            self.ring.write(&head)
        };
        match result {
            Ok(()) => {
                self.on_success(host);
                let sequence = self.ring.current_sequence().unwrap_or(SegmentNumber::FIRST);
                let point = RecordingPoint {
                    position: start.ring_time.presented_after_ns(self.stream_position().delay_ns),
                    date: Some(start.program_date_time),
                };
                self.recordings
                    .segment_started(start.ring_time, point, sequence, host.now(), host);
                self.tee(&head, host);
            }
            Err(f) => self.on_failure(f, host, |r| r.flush()),
        }
    }

    /// Writes `range` of the current run: by reference when the run lies in
    /// shared input, else copied.
    fn write_run(&mut self, run: &[u8], range: std::ops::Range<usize>, host: &mut dyn Host) {
        let input = self.run_offset.and_then(|base| Some((self.input.clone()?, base)));
        let chunk = input
            .as_ref()
            .and_then(|(input, base)| Chunk::shared(input, base + range.start..base + range.end));
        self.write(chunk.unwrap_or_else(|| Chunk::borrowed(&run[range])), host);
    }

    fn write(&mut self, chunk: Chunk<'_>, host: &mut dyn Host) {
        let data = chunk.bytes();
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
        let mut result = self.ring.write_chunk(chunk);
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

    /// Remembers where an access unit starts in the open segment.
    fn note_unit_start(&mut self, offset: u64) {
        if self.unit_starts.len() == MAX_UNIT_STARTS {
            self.unit_starts.pop_front();
        }
        self.unit_starts.push_back((offset, self.timeline.position_ns()));
    }
}
