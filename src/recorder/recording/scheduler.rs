// SPDX-License-Identifier: MPL-2.0
//! [`Recordings`]: the recordings of one recorder, scheduled, running and
//! stopping, fed from the ring's writes and segment starts.

use std::path::Path;
use std::time::{Duration, Instant};

use super::writer::{Phase, Recording};
use super::{RecordingKind, RecordingPoint, RecordingTime, StreamPosition, keyframe_point};
use crate::layout::SegmentNumber;
use crate::layout::{RingTime, SegmentInfo};
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
        self.active.iter().map(|r| r.recording.id()).collect()
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
            RecordingTime::Now => Some(at.ring_time),
            RecordingTime::Past(t) => Some(t.min(at.ring_time)),
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
        let Some(i) = self.active.iter().position(|r| r.recording.id() == id) else {
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
            RecordingTime::Now => Stop::At(at.ring_time),
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
        let ring_at = |due: u64| at.ring_time.saturating_sub(at.position_ns.saturating_sub(due));
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
                Phase::Scheduled(_) => continue,
                Phase::WaitingForCut => {
                    active.phase = Phase::Running;
                    host.event(rec.started(point, sequence));
                }
                Phase::Running => {}
            }
            rec.mark_boundary(start, wall);
            rec.note_segment(sequence, None);
        }
    }

    /// Gives content recordings what the ring wrote. A recording's write
    /// failures follow the write-failure contract (one failure, one clear,
    /// drop and retry at the next segment start after the retry interval)
    /// with its id in the message, and never disturb the ring.
    pub fn tee(&mut self, data: &[u8], position_ns: u64, retry: Duration, host: &mut dyn Host) {
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
    pub fn finish_all(&mut self, ring: &Ring, at: StreamPosition, end_at: RingTime, host: &mut dyn Host) {
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
