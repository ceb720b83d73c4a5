// SPDX-License-Identifier: MPL-2.0
//! Recordings cut out of the ring (SBE's `IStreamBufferRecordControl`):
//! [`Recordings`], the set a recorder runs (start, stop, feed, link), and
//! [`Recording`], one of them.
//!
//! A *content* recording is a standalone MPEG-TS file: the ring's bytes from
//! a segment start (a random-access point with PAT and PMT in front) on, then
//! every byte the ring writes, until stopped. A *reference* recording is a
//! directory of hard links to whole ring segments plus a VOD playlist: nothing
//! is copied, and the ring deleting its own names does not touch the links.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::health::{Probe, WriteHealth};
use super::{Host, RecorderEvent};
use crate::layout::index::Keyframe;
use crate::layout::playlist::{PlaylistHeader, render};
use crate::layout::{PLAYLIST_NAME, SegmentInfo, segment_file_name, segment_index_name};
use crate::platform;
use crate::ring::{Ring, WriteFailure};

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

/// The running recordings of one recorder, fed from the ring's writes.
pub struct Recordings {
    active: Vec<ActiveRecording>,
    next_id: u32,
    /// The earliest timeline position at which a scheduled start or stop is
    /// due (`u64::MAX` if none): the only check the common path pays.
    next_due_ns: u64,
    /// A content recording waits for the keyframe it is to end before.
    awaiting_keyframe: bool,
    /// Keyframes indexed when the pending stops were last tried.
    keyframes_seen: u64,
}

/// Where a recording is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Begins when the recorder's timeline reaches this position.
    Scheduled(u64),
    /// A reference recording started "now": begins with the next segment.
    WaitingForCut,
    Running,
}

/// When a running recording is to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// When the recorder's timeline reaches this position.
    Scheduled(u64),
    /// At this ring time: content before the first keyframe at or after
    /// it (once indexed), a reference recording with the segment holding it.
    At(u64),
}

/// A recording, where it is in its life and when it stops.
struct ActiveRecording {
    recording: Recording,
    phase: Phase,
    stop: Option<Stop>,
}

impl Default for Recordings {
    fn default() -> Self {
        Recordings {
            active: Vec::new(),
            next_id: 1,
            next_due_ns: u64::MAX,
            awaiting_keyframe: false,
            keyframes_seen: 0,
        }
    }
}

impl Recordings {
    /// Ids of the recordings that are running or scheduled.
    #[must_use]
    pub fn ids(&self) -> Vec<u32> {
        self.active.iter().map(|r| r.recording.id).collect()
    }

    /// Whether something is due: a scheduled start or stop at timeline
    /// position `position_ns`, or a stop waiting for a keyframe when
    /// `keyframes_indexed` says new ones were indexed.
    #[must_use]
    pub fn needs_poll(&self, position_ns: u64, keyframes_indexed: u64) -> bool {
        position_ns >= self.next_due_ns || self.awaiting_keyframe && keyframes_indexed != self.keyframes_seen
    }

    /// Starts a recording at `location` (created now, so that a bad location
    /// is refused at once) `when` asked. A content recording starts at the
    /// keyframe at or before its start (reaching back into the ring, clamped
    /// to the oldest content), with its segment's PAT and PMT in front; a
    /// reference recording with the segment holding its start, its playlist
    /// saying where in it the recording starts. Returns the id.
    pub fn start(
        &mut self,
        ring: &mut Ring,
        at: StreamPosition,
        location: &Path,
        kind: RecordingKind,
        when: RecordingTime,
        host: &mut dyn Host,
    ) -> Result<u32, String> {
        let id = self.next_id;
        let mut recording = Recording::create(id, kind, location)
            .map_err(|e| format!("cannot create '{}': {e}", location.display()))?;
        self.next_id += 1;
        let target = match when {
            RecordingTime::Scheduled(due) => {
                host.event(RecorderEvent::RecordingScheduled {
                    id,
                    location: location.to_owned(),
                    kind,
                });
                self.active.push(ActiveRecording {
                    recording,
                    phase: Phase::Scheduled(due),
                    stop: None,
                });
                self.refresh();
                return Ok(id);
            }
            RecordingTime::Now if kind == RecordingKind::Reference => None,
            RecordingTime::Now => Some(at.ring_ns),
            RecordingTime::Past(t) => Some(t.min(at.ring_ns)),
        };
        match recording.begin(ring, at, target, host) {
            Ok(phase) => {
                self.active.push(ActiveRecording {
                    recording,
                    phase,
                    stop: None,
                });
                Ok(id)
            }
            Err(e) => {
                recording.discard();
                Err(e)
            }
        }
    }

    /// Stops recording `id` `when` asked: content ends before the first
    /// keyframe at or after the stop (so "now" ends with the current GOP,
    /// and the report comes when its keyframe is indexed), a reference
    /// recording with the segment holding the stop. A recording stopped
    /// before it began is removed. Returns false for an unknown id.
    pub fn stop(&mut self, id: u32, when: RecordingTime, ring: &Ring, at: StreamPosition, host: &mut dyn Host) -> bool {
        let Some(i) = self.active.iter().position(|r| r.recording.id == id) else {
            return false;
        };
        let active = &mut self.active[i];
        if active.phase != Phase::Running {
            if let RecordingTime::Scheduled(due) = when {
                active.stop = Some(Stop::Scheduled(due));
                self.refresh();
                return true;
            }
            let active = self.active.remove(i);
            host.event(RecorderEvent::RecordingStopped(
                active.recording.abort("stopped before it began".into()),
            ));
            self.refresh();
            return true;
        }
        active.stop = Some(match when {
            RecordingTime::Scheduled(due) => Stop::Scheduled(due),
            RecordingTime::Now => Stop::At(at.ring_ns),
            RecordingTime::Past(t) => Stop::At(t),
        });
        self.refresh();
        self.settle(ring, at, host);
        true
    }

    /// Does what is due (see [`Self::needs_poll`]): scheduled recordings
    /// begin, scheduled stops take effect, stops waiting for a keyframe
    /// end where one was indexed.
    pub fn poll(&mut self, ring: &mut Ring, at: StreamPosition, keyframes_indexed: u64, host: &mut dyn Host) {
        self.keyframes_seen = keyframes_indexed;
        // Due a little before now (within the buffer that made it due):
        // that much back in ring time.
        let ring_at = |due: u64| at.ring_ns.saturating_sub(at.position_ns.saturating_sub(due));
        let mut i = 0;
        while i < self.active.len() {
            let active = &mut self.active[i];
            if let Phase::Scheduled(due) = active.phase
                && due <= at.position_ns
            {
                match active.recording.begin(ring, at, Some(ring_at(due)), host) {
                    Ok(phase) => active.phase = phase,
                    Err(e) => {
                        let active = self.active.remove(i);
                        host.event(RecorderEvent::RecordingStopped(active.recording.abort(e)));
                        continue;
                    }
                }
            }
            if active.phase == Phase::Running
                && let Some(Stop::Scheduled(due)) = active.stop
                && due <= at.position_ns
            {
                active.stop = Some(Stop::At(ring_at(due)));
            }
            i += 1;
        }
        self.refresh();
        self.settle(ring, at, host);
    }

    /// Ends the recordings whose stop can be placed now.
    fn settle(&mut self, ring: &Ring, at: StreamPosition, host: &mut dyn Host) {
        let open_start = ring.is_segment_open().then(|| ring.ring_time_end());
        let mut i = 0;
        while i < self.active.len() {
            let active = &mut self.active[i];
            let Some(Stop::At(t)) = active.stop else {
                i += 1;
                continue;
            };
            let rec = &mut active.recording;
            let finished = match rec.kind {
                RecordingKind::Content => rec
                    .keyframe_cut(ring.dir(), t)
                    .map(|(offset, keyframe)| (Some(offset), keyframe_point(&keyframe))),
                // The segment holding the stop is complete: keep what
                // starts before it; else end when it completes.
                RecordingKind::Reference if open_start.is_none_or(|s| t < s) => Some((None, RecordingPoint::default())),
                RecordingKind::Reference => {
                    rec.stop_after_current = true;
                    active.stop = None;
                    None
                }
            };
            match finished {
                Some((cut, stop)) => {
                    let active = self.active.remove(i);
                    let summary = match cut {
                        Some(offset) => active.recording.finish(stop, Some(offset)),
                        None => active.recording.finish_reference_before(t, at.delay_ns),
                    };
                    host.event(RecorderEvent::RecordingStopped(summary));
                }
                None => i += 1,
            }
        }
        self.refresh();
    }

    /// Recomputes what [`Self::needs_poll`] checks.
    fn refresh(&mut self) {
        self.next_due_ns = self
            .active
            .iter()
            .filter_map(|a| match (a.phase, a.stop) {
                (Phase::Scheduled(due), _) | (Phase::Running, Some(Stop::Scheduled(due))) => Some(due),
                _ => None,
            })
            .min()
            .unwrap_or(u64::MAX);
        self.awaiting_keyframe = self
            .active
            .iter()
            .any(|a| a.recording.kind == RecordingKind::Content && matches!(a.stop, Some(Stop::At(_))));
    }

    /// A new ring segment `sequence` starts at `point` (ring time
    /// `ring_ns`): recordings waiting for a cut begin here, content files
    /// mark a boundary.
    pub fn segment_started(
        &mut self,
        ring_ns: u64,
        point: RecordingPoint,
        sequence: u64,
        wall: Instant,
        host: &mut dyn Host,
    ) {
        for active in &mut self.active {
            let rec = &mut active.recording;
            match active.phase {
                Phase::Scheduled(_) => continue,
                Phase::WaitingForCut => {
                    active.phase = Phase::Running;
                    rec.start = point;
                    rec.next_sequence = sequence;
                    host.event(rec.started_event());
                }
                Phase::Running => {}
            }
            rec.mark_boundary(ring_ns, wall);
            rec.note_segment(sequence, None);
        }
    }

    /// Gives content recordings what the ring wrote. A recording's write
    /// failures follow the write-failure contract (one failure, one clear,
    /// drop and retry at the next segment start after the retry interval)
    /// with its id in the message, and never disturb the ring.
    pub fn tee(&mut self, data: &[u8], position_ns: u64, retry: Duration, host: &mut dyn Host) {
        for active in self.active.iter_mut().filter(|a| a.phase == Phase::Running) {
            let rec = &mut active.recording;
            if rec.kind != RecordingKind::Content {
                continue;
            }
            match rec.append(data) {
                Ok(true) => {
                    if let Some(summary) = rec.health.on_success(Probe::Write, host.now(), position_ns) {
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
                    rec.health.losing_from(position_ns);
                }
            }
        }
    }

    /// The ring's newest segment, `info`, starting at ring time
    /// `ring_ns`, was completed: reference recordings link it; those
    /// stopping with it end.
    pub fn segment_completed(
        &mut self,
        ring: &Ring,
        at: StreamPosition,
        info: &SegmentInfo,
        ring_ns: u64,
        host: &mut dyn Host,
    ) {
        let mut i = 0;
        while i < self.active.len() {
            if self.active[i].phase != Phase::Running {
                i += 1;
                continue;
            }
            let rec = &mut self.active[i].recording;
            if rec.kind == RecordingKind::Reference
                && rec.next_sequence <= info.sequence
                && rec.error.is_none()
                && let Err(e) = rec.link(ring.dir(), info, ring_ns)
            {
                rec.error = Some(format!(
                    "recording {}: cannot link segment {}: {e}",
                    rec.id, info.sequence
                ));
            }
            if rec.stop_after_current {
                let active = self.active.remove(i);
                let end = ring_ns.saturating_add(info.duration_ns);
                let stop = RecordingPoint {
                    position_ns: end.saturating_add(at.delay_ns),
                    date_ms: Some(info.program_date_time_ms.saturating_add(ms(info.duration_ns))),
                };
                host.event(RecorderEvent::RecordingStopped(active.recording.finish(stop, None)));
            } else {
                i += 1;
            }
        }
    }

    /// The stream ended at ring time `end_ns`: every recording stops there
    /// (those that never began are removed).
    pub fn finish_all(&mut self, ring: &Ring, at: StreamPosition, end_ns: u64, host: &mut dyn Host) {
        let end = at.point(ring, end_ns);
        let end = RecordingPoint {
            date_ms: end.date_ms.or_else(|| ring.date_at(end_ns.saturating_sub(1))),
            ..end
        };
        for active in std::mem::take(&mut self.active) {
            let summary = match active.phase {
                Phase::Running => active.recording.finish(end, None),
                _ => active.recording.abort("the stream ended before it began".into()),
            };
            host.event(RecorderEvent::RecordingStopped(summary));
        }
        self.refresh();
    }
}

fn ms(ns: u64) -> i64 {
    i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX)
}

/// The reported point of an indexed keyframe.
fn keyframe_point(k: &Keyframe) -> RecordingPoint {
    RecordingPoint {
        position_ns: k.presentation_ns(),
        date_ms: Some(k.wall_ms),
    }
}

/// A ring segment in a content recording (see `Recording::segments`).
#[derive(Debug, Clone, Copy)]
struct SegmentInFile {
    sequence: u64,
    /// Its first byte in the file after its tables: the entry keyframe's
    /// offset (0 for a whole segment).
    first_offset: u64,
    /// Where the segment's byte 0 would be in the file (below zero when
    /// bytes before an entry keyframe were skipped).
    file_offset_of_byte_0: i128,
}

/// Where a content recording enters its first segment: the keyframe, and
/// the tables at the segment's head (`..head`) that go in front of it.
#[derive(Debug, Clone, Copy)]
struct KeyframeEntry {
    head: u64,
    keyframe: Keyframe,
}

impl KeyframeEntry {
    /// Whether bytes between the tables and the keyframe are left out (not
    /// when it is the segment's first keyframe).
    fn skips(&self) -> bool {
        self.keyframe.offset > self.head
    }
}

/// The keyframe at or before ring time `target` in segment `sequence`
/// (`len` bytes of it written), from its index; `None` without one.
fn keyframe_entry(dir: &Path, sequence: u64, len: u64, target: u64) -> Option<KeyframeEntry> {
    let file = platform::open_read_only(&dir.join(segment_index_name(sequence)));
    let index = crate::layout::index::read_opened(file, len)?;
    let keyframe = *index.keyframes.iter().rev().find(|k| k.ring_time_ns <= target)?;
    Some(KeyframeEntry {
        head: u64::from(index.start.size).min(keyframe.offset),
        keyframe,
    })
}

enum Target {
    Content {
        file: File,
        buf: Vec<u8>,
    },
    /// Linked segments with their ring time.
    Reference {
        linked: Vec<(u64, SegmentInfo)>,
    },
}

/// One recording.
struct Recording {
    id: u32,
    kind: RecordingKind,
    location: PathBuf,
    /// Where its content starts (known once it began).
    start: RecordingPoint,
    target: Target,
    bytes: u64,
    copied_segments: u64,
    /// (ring time, byte offset) of each segment start in a content file.
    boundaries: Vec<(u64, u64)>,
    /// Content: the ring segments in the file, for cuts at keyframes.
    segments: Vec<SegmentInFile>,
    /// Reference: where in the first segment the recording starts.
    start_offset_ns: Option<u64>,
    /// First ring sequence a reference recording has not linked yet.
    next_sequence: u64,
    /// Stop once the segment being written completes (reference).
    stop_after_current: bool,
    error: Option<String>,
    /// Content: write-failure episodes, as for the ring itself.
    health: WriteHealth,
    /// Content: dropping after a failed write, until a segment start after
    /// the retry interval (so the file resumes at a random-access point).
    paused: bool,
    /// Content: bytes known to be in the file.
    written: u64,
}

/// Content recordings write in blocks this large (an extra copy of the stream
/// already; smaller than the ring's so that failures and recoveries show soon).
const CONTENT_BLOCK: usize = 256 * 1024;

impl Recording {
    /// Creates the recording's file or directory; never overwrites anything.
    fn create(id: u32, kind: RecordingKind, location: &Path) -> io::Result<Self> {
        let target = match kind {
            RecordingKind::Content => Target::Content {
                file: platform::create_new(location)?,
                buf: Vec::with_capacity(CONTENT_BLOCK),
            },
            RecordingKind::Reference => {
                std::fs::create_dir(location)?;
                Target::Reference { linked: Vec::new() }
            }
        };
        Ok(Recording {
            id,
            kind,
            location: location.to_owned(),
            start: RecordingPoint::default(),
            target,
            bytes: 0,
            copied_segments: 0,
            boundaries: Vec::new(),
            segments: Vec::new(),
            start_offset_ns: None,
            next_sequence: 0,
            stop_after_current: false,
            error: None,
            health: WriteHealth::default(),
            paused: false,
            written: 0,
        })
    }

    /// Begins the recording at ring time `target` (`None`: a reference
    /// recording started now, which begins with the next segment): takes
    /// what the ring holds from there and reports the start. Returns the
    /// phase it is in.
    fn begin(
        &mut self,
        ring: &mut Ring,
        at: StreamPosition,
        target: Option<u64>,
        host: &mut dyn Host,
    ) -> Result<Phase, String> {
        let Some(target) = target else {
            self.next_sequence = ring.current_sequence().map_or(0, |s| s + 1);
            return Ok(Phase::WaitingForCut);
        };
        let history: Vec<(SegmentInfo, u64)> = ring
            .segments_in_time()
            .map(|(info, start)| (info.clone(), start))
            .collect();
        let open_start = ring.is_segment_open().then(|| ring.ring_time_end());
        let from = if open_start.is_some_and(|s| target >= s) {
            history.len()
        } else {
            history.iter().rposition(|(_, start)| *start <= target).unwrap_or(0)
        };
        let dir = ring.dir().to_owned();
        let _ = ring.flush();
        // The segments from `from` on, the open one last: (sequence, bytes
        // in the file, ring time of its start).
        let segments: Vec<(u64, u64, u64)> = history[from..]
            .iter()
            .map(|(info, start)| (info.sequence, info.bytes, *start))
            .chain(
                ring.current_sequence()
                    .zip(open_start)
                    .map(|(seq, start)| (seq, ring.flushed_bytes(), start)),
            )
            .collect();
        let first_start = segments.first().map_or(at.ring_ns, |s| s.2);
        self.next_sequence = segments
            .first()
            .map_or_else(|| ring.current_sequence().map_or(0, |s| s + 1), |s| s.0);
        match self.kind {
            RecordingKind::Content => {
                let entry = segments
                    .first()
                    .and_then(|&(seq, len, _)| keyframe_entry(&dir, seq, len, target));
                self.start = entry.map_or_else(|| at.point(ring, first_start), |e| keyframe_point(&e.keyframe));
                let mut skip = entry.filter(KeyframeEntry::skips);
                for (sequence, bytes, start) in segments {
                    let path = dir.join(segment_file_name(sequence));
                    self.mark_boundary(start, at.wall);
                    match skip.take() {
                        Some(e) => {
                            self.note_segment(sequence, Some(e));
                            self.append_range(&path, 0..e.head).map_err(|e| e.to_string())?;
                            self.append_range(&path, e.keyframe.offset..bytes)
                                .map_err(|e| e.to_string())?;
                        }
                        None => {
                            self.note_segment(sequence, None);
                            self.append_range(&path, 0..bytes).map_err(|e| e.to_string())?;
                        }
                    }
                }
            }
            RecordingKind::Reference => {
                // Whole segments; the playlist says where in the first one
                // the recording starts (EXT-X-START), and so does the report.
                let target = target.max(first_start);
                self.start_offset_ns = Some(target - first_start).filter(|&ns| ns > 0);
                self.start = at.point(ring, target);
                for (info, start) in &history[from..] {
                    self.link(&dir, info, *start).map_err(|e| e.to_string())?;
                }
            }
        }
        host.event(self.started_event());
        Ok(Phase::Running)
    }

    fn started_event(&self) -> RecorderEvent {
        RecorderEvent::RecordingStarted {
            id: self.id,
            location: self.location.clone(),
            kind: self.kind,
            start: self.start,
        }
    }

    /// Removes what the recording created (it never began, or beginning
    /// failed): no partial file is left behind.
    fn discard(&self) {
        let _ = match self.kind {
            RecordingKind::Content => std::fs::remove_file(&self.location),
            RecordingKind::Reference => std::fs::remove_dir_all(&self.location),
        };
    }

    /// The report of a recording that never began (removed), with `error`.
    fn abort(self, error: String) -> RecordingSummary {
        self.discard();
        RecordingSummary {
            id: self.id,
            location: self.location,
            kind: self.kind,
            start: RecordingPoint::default(),
            stop: RecordingPoint::default(),
            bytes: 0,
            copied_segments: 0,
            error: Some(error),
        }
    }

    /// Content: ring segment `sequence` goes on in the file from here:
    /// whole, or from its tables and the `entry` keyframe.
    fn note_segment(&mut self, sequence: u64, entry: Option<KeyframeEntry>) {
        if self.kind == RecordingKind::Content && !self.paused {
            let skipped = entry.map_or(0, |e| e.keyframe.offset - e.head);
            self.segments.push(SegmentInFile {
                sequence,
                first_offset: entry.map_or(0, |e| e.keyframe.offset),
                file_offset_of_byte_0: i128::from(self.bytes) - i128::from(skipped),
            });
        }
    }

    /// Content: where to cut the file so that it ends before the first
    /// keyframe at or after ring time `stop_ns`, and that keyframe; from
    /// the indexes of the segments in the file (`None` when they are gone
    /// or index no such keyframe yet). A segment's first keyframe is cut
    /// before with its tables.
    fn keyframe_cut(&self, ring_dir: &Path, stop_ns: u64) -> Option<(u64, Keyframe)> {
        self.segments.iter().find_map(|seg| {
            let file = platform::open_read_only(&ring_dir.join(segment_index_name(seg.sequence)));
            let index = crate::layout::index::read_opened(file, u64::MAX)?;
            index
                .keyframes
                .iter()
                .enumerate()
                .filter(|(_, k)| k.offset >= seg.first_offset && k.ring_time_ns >= stop_ns)
                .find_map(|(n, k)| {
                    let at = if n == 0 && seg.file_offset_of_byte_0 >= 0 {
                        0
                    } else {
                        k.offset
                    };
                    let offset = u64::try_from(seg.file_offset_of_byte_0 + i128::from(at)).ok()?;
                    (offset > 0 && offset <= self.bytes).then_some((offset, *k))
                })
        })
    }

    /// Content: a ring segment starts here (at ring time `start_ns`). A
    /// paused recording resumes here once its retry interval has passed.
    fn mark_boundary(&mut self, start_ns: u64, now: Instant) {
        if self.paused && self.health.retry_due(now) {
            self.paused = false;
        }
        if !self.paused {
            self.boundaries.push((start_ns, self.bytes));
        }
    }

    /// Content: appends bytes the ring wrote. Returns whether bytes reached
    /// the file in this call. On error the unwritten bytes are dropped whole
    /// (the file is cut back to its last good length) and the recording
    /// pauses until the next segment start after the retry interval.
    fn append(&mut self, data: &[u8]) -> io::Result<bool> {
        let Target::Content { file, buf } = &mut self.target else {
            return Ok(false);
        };
        if self.paused {
            self.health.drop_bytes(data.len() as u64);
            return Ok(false);
        }
        buf.extend_from_slice(data);
        self.bytes += data.len() as u64;
        if buf.len() < CONTENT_BLOCK {
            return Ok(false);
        }
        match file.write_all(buf) {
            Ok(()) => {
                self.written += buf.len() as u64;
                buf.clear();
                Ok(true)
            }
            Err(e) => {
                // Keep whole segments only: cut back to the last segment start
                // that reached the file, so the file never ends in a torn
                // frame and resumes cleanly at a random-access point.
                let keep = self
                    .boundaries
                    .iter()
                    .rev()
                    .map(|&(_, o)| o)
                    .find(|&o| o <= self.written)
                    .unwrap_or(0);
                let _ = file.set_len(keep);
                let _ = file.seek(SeekFrom::Start(keep));
                self.boundaries.retain(|&(_, o)| o < keep);
                self.health.drop_bytes(self.bytes - keep);
                self.bytes = keep;
                self.written = keep;
                buf.clear();
                self.paused = true;
                Err(e)
            }
        }
    }

    /// Content: copies bytes `range` of a ring segment (history) into the
    /// recording. Only those: a reused segment file still holds old packets
    /// past what the open segment has written.
    fn append_range(&mut self, path: &Path, range: std::ops::Range<u64>) -> io::Result<()> {
        if range.is_empty() {
            return Ok(());
        }
        let mut file = platform::open_read_only(path)?;
        file.seek(SeekFrom::Start(range.start))?;
        let mut data = Vec::new();
        file.take(range.end - range.start).read_to_end(&mut data)?;
        self.append(&data).map(|_| ())
    }

    /// Reference: links (or, across filesystems, copies) a completed segment
    /// that starts at ring time `start_ns`.
    fn link(&mut self, ring_dir: &Path, info: &SegmentInfo, start_ns: u64) -> io::Result<()> {
        let Target::Reference { linked } = &mut self.target else {
            return Ok(());
        };
        let name = segment_file_name(info.sequence);
        let (from, to) = (ring_dir.join(&name), self.location.join(&name));
        if let Err(e) = std::fs::hard_link(&from, &to) {
            if e.kind() == io::ErrorKind::AlreadyExists {
                return Err(e);
            }
            // Another volume (EXDEV) or no link support: copy, and say so.
            let mut out = platform::create_new(&to)?;
            out.write_all(&std::fs::read(&from)?)?;
            self.copied_segments += 1;
        }
        // Its keyframe index too, so that the recording is played and
        // sought in it as in the ring (a recording without it plays from
        // segment starts).
        let index = segment_index_name(info.sequence);
        let _ = std::fs::hard_link(ring_dir.join(&index), self.location.join(&index));
        self.bytes += info.bytes;
        linked.push((start_ns, info.clone()));
        self.next_sequence = info.sequence + 1;
        Ok(())
    }

    /// Reference: finishes the recording stopped at ring time `stop_ns` in
    /// a completed segment: the segments that start at or after it are
    /// dropped (the first one always stays), and the recording ends with
    /// the last one kept (`delay_ns`: the presentation delay to report).
    fn finish_reference_before(mut self, stop_ns: u64, delay_ns: u64) -> RecordingSummary {
        let mut stop = RecordingPoint::default();
        if let Target::Reference { linked } = &mut self.target {
            while linked.len() > 1 && linked.last().is_some_and(|(start, _)| *start >= stop_ns) {
                if let Some((_, s)) = linked.pop() {
                    let _ = std::fs::remove_file(self.location.join(segment_index_name(s.sequence)));
                    let _ = std::fs::remove_file(self.location.join(segment_file_name(s.sequence)));
                    self.bytes -= s.bytes;
                }
            }
            if let Some((start, info)) = linked.last() {
                stop = RecordingPoint {
                    position_ns: start.saturating_add(info.duration_ns).saturating_add(delay_ns),
                    date_ms: Some(info.program_date_time_ms.saturating_add(ms(info.duration_ns))),
                };
            }
        }
        self.finish(stop, None)
    }

    /// Finishes the recording at `stop`: content is cut at file offset
    /// `cut` (a keyframe) if given; a reference recording writes its VOD
    /// playlist.
    fn finish(mut self, stop: RecordingPoint, cut: Option<u64>) -> RecordingSummary {
        let result = match &mut self.target {
            Target::Content { file, buf } => {
                if self.health.is_failing() {
                    self.error
                        .get_or_insert_with(|| "writes were still failing when it stopped".into());
                }
                let mut r = file.write_all(buf);
                if let Some(offset) = cut
                    && r.is_ok()
                {
                    r = file.set_len(offset);
                    self.bytes = offset;
                }
                r.and_then(|()| file.sync_data())
            }
            Target::Reference { linked } => {
                let mut text = String::new();
                let target = linked
                    .iter()
                    .map(|(_, s)| s.duration_ns.div_ceil(1_000_000_000))
                    .max()
                    .unwrap_or(1)
                    .max(1);
                let header = PlaylistHeader {
                    target_duration_s: target,
                    discontinuity_sequence: 0,
                    ended: true,
                    vod: true,
                    start_offset_ns: self.start_offset_ns,
                };
                render(&mut text, header, linked.iter().map(|(_, s)| s));
                platform::replace_atomically(&self.location, PLAYLIST_NAME, text.as_bytes(), true)
            }
        };
        if let Err(e) = result {
            self.error.get_or_insert(format!("{}: {e}", self.location.display()));
        }
        RecordingSummary {
            id: self.id,
            location: self.location,
            kind: self.kind,
            start: self.start,
            stop,
            bytes: self.bytes,
            copied_segments: self.copied_segments,
            error: self.error,
        }
    }
}
