// SPDX-License-Identifier: MPL-2.0
//! [`Recordings`]: the recordings of one recorder, scheduled, running and
//! stopping, fed from the ring's writes and segment starts.

use std::path::Path;
use std::time::{Duration, Instant};

use super::archived::{ArchiveReach, ReachTarget, RestoreRequest, Restored, RestoredSegment};
use super::writer::{Phase, Recording};
use super::{RecordingKind, RecordingPoint, RecordingTime, StreamPosition, keyframe_point};
use crate::layout::SegmentNumber;
use crate::layout::{RingTime, SegmentInfo, WallTime};
use crate::recorder::{Host, RecorderEvent};
use crate::ring::Ring;

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
    /// The ring's archive, where recordings reaching back past the ring
    /// take their older segments from.
    archive: Option<Box<dyn ArchiveReach>>,
    /// Some recording waits for the archive.
    restoring: bool,
}

/// When a running recording is to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// When the recorder's timeline reaches this position.
    Scheduled(u64),
    /// At this ring time: content before the first keyframe at or after
    /// it (once indexed), a reference recording with the segment holding it.
    At(RingTime),
}

/// A recording, where it is in its life and when it stops.
struct ActiveRecording {
    recording: Recording,
    phase: Phase,
    stop: Option<Stop>,
    /// Restoring: the segments the archive gave so far, the ring time the
    /// recording starts at (once the archive resolved it), and the ring's
    /// oldest segment when the archive was last asked.
    archived: Vec<RestoredSegment>,
    target: Option<RingTime>,
    asked_before: Option<SegmentNumber>,
}

impl ActiveRecording {
    fn new(recording: Recording, phase: Phase) -> Self {
        ActiveRecording {
            recording,
            phase,
            stop: None,
            archived: Vec::new(),
            target: None,
            asked_before: None,
        }
    }
}

/// How long the end of the stream waits for the archive's answers to
/// recordings still reaching into it.
const RESTORE_WAIT_AT_END: Duration = Duration::from_secs(120);

impl Default for Recordings {
    fn default() -> Self {
        Recordings {
            active: Vec::new(),
            next_id: 1,
            next_due_ns: u64::MAX,
            awaiting_keyframe: false,
            keyframes_seen: 0,
            archive: None,
            restoring: false,
        }
    }
}

impl Recordings {
    /// Ids of the recordings that are running or scheduled.
    #[must_use]
    pub fn ids(&self) -> Vec<u32> {
        self.active.iter().map(|r| r.recording.id()).collect()
    }

    /// Recordings reaching back past the ring's oldest segment take the
    /// older part from `archive`.
    pub fn reach_archive(&mut self, archive: Box<dyn ArchiveReach>) {
        self.archive = Some(archive);
    }

    /// Whether something is due: a scheduled start or stop at timeline
    /// position `position_ns`, or a stop waiting for a keyframe when
    /// `keyframes_indexed` says new ones were indexed.
    #[must_use]
    pub fn needs_poll(&self, position_ns: u64, keyframes_indexed: u64) -> bool {
        position_ns >= self.next_due_ns
            || self.awaiting_keyframe && keyframes_indexed != self.keyframes_seen
            || self.restoring
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
                self.active.push(ActiveRecording::new(recording, Phase::Scheduled(due)));
                self.refresh();
                return Ok(id);
            }
            RecordingTime::Now if kind == RecordingKind::Reference => None,
            RecordingTime::Now => Some(at.ring_time),
            RecordingTime::Past(t) => Some(t.min(at.ring_time)),
            RecordingTime::BeforeRing(date) => Some(ring.ring_time_at(date)),
        };
        let reach = match when {
            RecordingTime::Past(t) => Some(ReachTarget::RingTime(t)),
            RecordingTime::BeforeRing(date) => Some(ReachTarget::Date(date)),
            _ => None,
        };
        if let (Some(archive), Some(reach), Some((before, before_ring_time, before_date))) =
            (&mut self.archive, reach, ring.oldest_segment())
            && !matches!(reach, ReachTarget::RingTime(t) if t >= before_ring_time)
        {
            archive.request(RestoreRequest {
                recording: id,
                target: reach,
                before,
                before_ring_time,
                before_date,
            });
            let mut active = ActiveRecording::new(recording, Phase::Restoring);
            active.asked_before = Some(before);
            self.active.push(active);
            self.refresh();
            return Ok(id);
        }
        match recording.begin(ring, at, target, &[], host) {
            Ok(phase) => {
                self.active.push(ActiveRecording::new(recording, phase));
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
        let Some(i) = self.active.iter().position(|r| r.recording.id() == id) else {
            return false;
        };
        let active = &mut self.active[i];
        if !matches!(active.phase, Phase::Running | Phase::Restoring) {
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
            RecordingTime::Now => Stop::At(at.ring_time),
            RecordingTime::Past(t) => Stop::At(t),
            RecordingTime::BeforeRing(date) => {
                Stop::At(ring_time_in(&active.archived, date).unwrap_or_else(|| ring.ring_time_at(date)))
            }
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
        while let Some(restored) = self.archive.as_mut().and_then(|a| a.poll()) {
            self.restored(restored, ring, at, host);
        }
        // Due a little before now (within the buffer that made it due):
        // that much back in ring time.
        let ring_at = |due: u64| at.ring_time.saturating_sub(at.position_ns.saturating_sub(due));
        let mut i = 0;
        while i < self.active.len() {
            let active = &mut self.active[i];
            if let Phase::Scheduled(due) = active.phase
                && due <= at.position_ns
            {
                match active.recording.begin(ring, at, Some(ring_at(due)), &[], host) {
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
            if active.phase != Phase::Running {
                i += 1;
                continue;
            }
            let rec = &mut active.recording;
            let finished = match rec.kind() {
                RecordingKind::Content => rec
                    .keyframe_cut(ring.dir_handle(), t)
                    .map(|(offset, keyframe)| (Some(offset), keyframe_point(&keyframe))),
                // The segment holding the stop is complete: keep what
                // starts before it; else end when it completes.
                RecordingKind::Reference if open_start.is_none_or(|s| t < s) => Some((None, RecordingPoint::default())),
                RecordingKind::Reference => {
                    rec.stop_with_current_segment();
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
            .any(|a| a.recording.kind() == RecordingKind::Content && matches!(a.stop, Some(Stop::At(_))));
        self.restoring = self.active.iter().any(|a| a.phase == Phase::Restoring);
    }

    /// The archive answered for a recording reaching back into it: if the
    /// ring evicted segments meanwhile, those are asked for too; else the
    /// recording begins with the archive's segments, then the ring's. An
    /// archive that could not be read leaves the recording to the ring,
    /// with the error in its report.
    fn restored(&mut self, restored: Restored, ring: &mut Ring, at: StreamPosition, host: &mut dyn Host) {
        let Some(i) = self
            .active
            .iter()
            .position(|a| a.recording.id() == restored.recording && a.phase == Phase::Restoring)
        else {
            let _ = std::fs::remove_dir_all(&restored.dir);
            return;
        };
        let active = &mut self.active[i];
        match restored.result {
            Ok((segments, target)) => {
                if let Err(e) = active.recording.take_archived_from(restored.dir) {
                    active
                        .recording
                        .note_error(format!("cannot read what the archive gave: {e}"));
                }
                active.target.get_or_insert(target);
                let asked_through = segments.last().map(|s| s.start.saturating_add(s.info.duration_ns));
                active.archived.extend(segments);
                let oldest = ring.oldest_segment();
                if let (Some(archive), Some((before, before_ring_time, before_date)), Some(asked)) =
                    (&mut self.archive, oldest, active.asked_before)
                    && before > asked
                {
                    // The ring moved on while the archive was read: the
                    // segments it evicted meanwhile come from the archive too.
                    let from = asked_through.or(active.target).unwrap_or(before_ring_time);
                    archive.request(RestoreRequest {
                        recording: restored.recording,
                        target: ReachTarget::RingTime(from),
                        before,
                        before_ring_time,
                        before_date,
                    });
                    active.asked_before = Some(before);
                    return;
                }
            }
            Err(e) => active
                .recording
                .note_error(format!("the archive could not be read, so it starts in the ring: {e}")),
        }
        let active = &mut self.active[i];
        let target = active
            .target
            .or_else(|| ring.oldest_segment().map(|(_, start, _)| start))
            .unwrap_or(at.ring_time)
            .min(at.ring_time);
        let archived = std::mem::take(&mut active.archived);
        match active.recording.begin(ring, at, Some(target), &archived, host) {
            Ok(phase) => {
                active.archived = archived;
                active.phase = phase;
            }
            Err(e) => {
                let active = self.active.remove(i);
                host.event(RecorderEvent::RecordingStopped(active.recording.abort(e)));
            }
        }
        self.refresh();
        self.settle(ring, at, host);
    }

    /// A new ring segment `sequence` starts at `point` (ring time
    /// `start`): recordings waiting for a cut begin here, content files
    /// mark a boundary.
    pub fn segment_started(
        &mut self,
        start: RingTime,
        point: RecordingPoint,
        sequence: SegmentNumber,
        wall: Instant,
        host: &mut dyn Host,
    ) {
        for active in &mut self.active {
            let rec = &mut active.recording;
            match active.phase {
                Phase::Scheduled(_) | Phase::Restoring => continue,
                Phase::WaitingForCut => {
                    active.phase = Phase::Running;
                    host.event(rec.started(point, sequence));
                }
                Phase::Running => {}
            }
            rec.mark_boundary(start, wall);
            rec.note_segment(sequence, false, None);
        }
    }

    /// Gives content recordings what the ring wrote. A recording's write
    /// failures follow the write-failure contract (one failure, one clear,
    /// drop and retry at the next segment start after the retry interval)
    /// with its id in the message, and never disturb the ring.
    ///
    /// Called for every write of the ring: without recordings it returns
    /// before the loop's call, whose stack frame showed in profiles with
    /// 1316-byte buffers.
    #[inline]
    pub fn tee(&mut self, data: &[u8], position_ns: u64, retry: Duration, host: &mut dyn Host) {
        if !self.active.is_empty() {
            self.tee_running(data, position_ns, retry, host);
        }
    }

    fn tee_running(&mut self, data: &[u8], position_ns: u64, retry: Duration, host: &mut dyn Host) {
        for active in self.active.iter_mut().filter(|a| a.phase == Phase::Running) {
            if let Some(event) = active.recording.tee(data, position_ns, retry, host.now()) {
                host.event(event);
            }
        }
    }

    /// The ring's newest segment, `info`, starting at ring time
    /// `start`, was completed: reference recordings link it; those
    /// stopping with it end.
    pub fn segment_completed(
        &mut self,
        ring: &Ring,
        at: StreamPosition,
        info: &SegmentInfo,
        start: RingTime,
        host: &mut dyn Host,
    ) {
        let mut i = 0;
        while i < self.active.len() {
            if self.active[i].phase != Phase::Running {
                i += 1;
                continue;
            }
            let rec = &mut self.active[i].recording;
            rec.segment_completed(ring.dir_handle(), info, start);
            if rec.stops_with_current_segment() {
                let active = self.active.remove(i);
                let end = start.saturating_add(info.duration_ns);
                let stop = RecordingPoint {
                    position: end.presented_after_ns(at.delay_ns),
                    date: Some(info.program_date_time.after(info.duration_ns)),
                };
                host.event(RecorderEvent::RecordingStopped(active.recording.finish(stop, None)));
            } else {
                i += 1;
            }
        }
    }

    /// The stream ended at ring time `end_at`: every recording stops there
    /// (those that never began are removed).
    pub fn finish_all(&mut self, ring: &mut Ring, at: StreamPosition, end_at: RingTime, host: &mut dyn Host) {
        // Recordings reaching into the archive begin first (what the archive
        // gives within a bound; else they begin in the ring, and say so).
        let deadline = Instant::now() + RESTORE_WAIT_AT_END;
        while self.restoring {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.archive.as_mut().and_then(|a| a.wait(left)) {
                Some(restored) => self.restored(restored, ring, at, host),
                None => {
                    for active in self.active.iter_mut().filter(|a| a.phase == Phase::Restoring) {
                        active
                            .recording
                            .note_error("the archive did not answer before the stream ended".into());
                        active.asked_before = None;
                    }
                    let ids: Vec<u32> = self
                        .active
                        .iter()
                        .filter(|a| a.phase == Phase::Restoring)
                        .map(|a| a.recording.id())
                        .collect();
                    for id in ids {
                        self.restored(
                            Restored {
                                recording: id,
                                dir: std::path::PathBuf::new(),
                                result: Err("no answer".into()),
                            },
                            ring,
                            at,
                            host,
                        );
                    }
                }
            }
        }
        let end = at.point(ring, end_at);
        let end = RecordingPoint {
            date: end.date.or_else(|| ring.date_at(end_at.saturating_sub(1))),
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

/// Ring time of date `date` in archived segments, if one holds it.
fn ring_time_in(archived: &[RestoredSegment], date: WallTime) -> Option<RingTime> {
    archived.iter().find_map(|a| {
        let into_ms = u64::try_from(date.ms_since(a.info.program_date_time)).ok()?;
        let into_ns = into_ms.checked_mul(1_000_000)?;
        (into_ns < a.info.duration_ns).then(|| a.start.saturating_add(into_ns))
    })
}
