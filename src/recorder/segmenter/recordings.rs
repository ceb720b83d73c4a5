// SPDX-License-Identifier: MPL-2.0
//! Where the segmenter meets the recordings: what "now" is in stream and
//! wall-clock time, resolving an application's request to a point in the
//! ring, and handing the recordings what was written.

use super::Segmenter;
use crate::layout::WallTime;
use crate::recorder::recording::{RecordingTime, StreamPosition};
use crate::recorder::{Host, RecordingRequest};
use crate::ts::timeline::presentation_delay;

impl Segmenter {
    /// Wall-clock time at timeline position `position_ns`, from the anchor
    /// taken at the first segment after a jump.
    pub(in crate::recorder) fn wall_time(&self, position_ns: u64) -> WallTime {
        match self.anchor {
            Some((anchor, anchor_ns)) => anchor.after(position_ns.saturating_sub(anchor_ns)),
            None => WallTime::now(),
        }
    }

    pub(in crate::recorder) fn stream_position(&self) -> StreamPosition {
        let delay = presentation_delay(self.unit_pts, self.timeline.last_pcr());
        StreamPosition {
            position_ns: self.timeline.position_ns(),
            ring_time: self.ring_now(),
            delay_ns: u64::try_from(delay.nanos()).unwrap_or(0),
            wall: self.now,
        }
    }

    /// When `request` is on the stream: a past date-time is found in the
    /// segments' date-times (so a hole in between does not shift it), an
    /// offset counts back in ring time, and the future is a timeline
    /// position to wait for.
    pub(in crate::recorder) fn resolve(&self, request: RecordingRequest) -> RecordingTime {
        let position = self.timeline.position_ns();
        match request {
            RecordingRequest::Offset(0) => RecordingTime::Now,
            RecordingRequest::Offset(ns) if ns > 0 => {
                RecordingTime::Scheduled(position.saturating_add(ns.unsigned_abs()))
            }
            RecordingRequest::Offset(ns) => RecordingTime::Past(self.ring_now().saturating_sub(ns.unsigned_abs())),
            RecordingRequest::Date(date) => match u64::try_from(date.ms_since(self.wall_time(position))) {
                Ok(ahead_ms) if ahead_ms > 0 => {
                    RecordingTime::Scheduled(position.saturating_add(ahead_ms.saturating_mul(1_000_000)))
                }
                _ if self.ring.oldest_segment().is_some_and(|(_, _, oldest)| date < oldest) => {
                    RecordingTime::BeforeRing(date)
                }
                _ => RecordingTime::Past(self.ring.ring_time_at(date).min(self.ring_now())),
            },
        }
    }

    /// Starts and stops what is due in the recordings (cheap when nothing is).
    pub(in crate::recorder) fn poll_recordings(&mut self, host: &mut dyn Host) {
        if self
            .recordings
            .needs_poll(self.timeline.position_ns(), self.keyframes_indexed)
        {
            let at = self.stream_position();
            self.recordings.poll(&mut self.ring, at, self.keyframes_indexed, host);
        }
    }

    /// The stream ended (or the recorder stopped for good): every recording
    /// stops at the end of what the ring holds.
    pub(in crate::recorder) fn finish_recordings(&mut self, host: &mut dyn Host) {
        let at = self.stream_position();
        let end = self.ring_now();
        self.recordings.finish_all(&mut self.ring, at, end, host);
    }

    /// Gives content recordings what the ring wrote.
    pub(super) fn tee(&mut self, data: &[u8], host: &mut dyn Host) {
        let position = self.timeline.position_ns();
        self.recordings.tee(data, position, self.config.retry_interval, host);
    }

    /// The ring's newest segment was completed.
    pub(in crate::recorder) fn on_segment_completed(&mut self, host: &mut dyn Host) {
        let at = self.stream_position();
        if let Some(info) = self.ring.segments().next_back() {
            let start = self.ring.ring_time_end().saturating_sub(info.duration_ns);
            self.recordings.segment_completed(&self.ring, at, info, start, host);
        }
    }
}
