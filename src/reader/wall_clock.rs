// SPDX-License-Identifier: MPL-2.0
//! Wall-clock addressing: which presentation time the content received at
//! a date-time has, and the other way round, from the keyframe index (the
//! wall clock the sink read as each keyframe arrived, which stays right
//! across restarts and crashes, unlike file times).
//!
//! Within a segment the wall clock runs with ring time from its start
//! record or the keyframe before; a frame is presented its keyframe's
//! presentation delay after it arrived (see `layout::index`).

use super::RingReader;
use crate::layout::SegmentNumber;
use crate::layout::index::{self, Keyframe, SegmentIndex};
use crate::layout::{PresentationTime, RingTime, WallTime};

impl RingReader {
    /// A segment's index and its duration (for the one being written, as
    /// much as is written), oldest first, restricted to those with an
    /// index.
    fn indexed(&self, seq: SegmentNumber) -> Option<(SegmentIndex, u64)> {
        let index = self.segment_index(seq)?;
        let duration = match self.catalog.spans().get(&seq) {
            Some(span) => span.duration_ns,
            None => self.catalog.estimate_ns(seq),
        };
        Some((index, duration))
    }

    /// The presentation time of the content received at `date`, if the
    /// window holds it.
    #[must_use]
    pub fn position_at_date(&mut self, date: WallTime) -> Option<PresentationTime> {
        self.refresh_playing();
        let candidates = self.candidates();
        // Segments start later in wall-clock as in ring time: the last one
        // starting at or before the date holds it, if anything does.
        // (An archived segment's from the archive's listing: no fetch.)
        let starts_before = |&(seq, _): &(SegmentNumber, RingTime)| match self.catalog.archived(seq) {
            Some(info) => info.program_date_time <= date,
            None => self.segment_index(seq).is_some_and(|i| i.start.wall_time <= date),
        };
        let mut at = candidates.partition_point(starts_before).checked_sub(1)?;
        // A playlist's date-time is not quite the index's wall clock, which
        // decides (as for the ring's own segments): near a boundary between
        // archived segments it may be the one on either side.
        let index_starts_before = |i: usize| {
            let seq = candidates.get(i)?.0;
            self.catalog.archived(seq)?;
            Some(self.segment_index(seq)?.start.wall_time <= date)
        };
        if index_starts_before(at + 1) == Some(true) {
            at += 1;
        } else if at > 0 && index_starts_before(at) == Some(false) {
            at -= 1;
        }
        let (index, duration) = self.indexed(candidates[at].0)?;
        let into_ms = u64::try_from(date.ms_since(index.start.wall_time)).ok()?;
        let into_ns = into_ms.checked_mul(1_000_000)?;
        if into_ns > duration {
            return None; // in a hole after this segment, or past the live edge
        }
        let ring_time = index.start.ring_time.saturating_add(into_ns);
        let delay_from = index
            .keyframes
            .iter()
            .rev()
            .find(|k| k.ring_time <= ring_time)
            .or(index.keyframes.first());
        Some(match delay_from {
            Some(k) => ring_time.presented_after(k.presentation_delay.max(crate::ts::timeline::Ticks90k::ZERO)),
            None => ring_time.presented_after_ns(0),
        })
    }

    /// The date-time at which the content presented at `position` was
    /// received, if the window holds it.
    #[must_use]
    pub fn date_at_position(&mut self, position: PresentationTime) -> Option<WallTime> {
        self.refresh_playing();
        let candidates = self.candidates();
        let window_start = candidates.first()?.1;
        let latest = position.latest_ring_time();
        if latest < window_start {
            return None;
        }
        // Presentation runs after ring time: the segment holding the
        // position is this one or the one before it.
        let at = candidates
            .partition_point(|&(_, start)| start <= latest)
            .checked_sub(1)?;
        for &(seq, _) in candidates[at.saturating_sub(1)..=at].iter().rev() {
            let Some((index, duration)) = self.indexed(seq) else {
                continue;
            };
            let keyframe: Option<&Keyframe> = index::at_or_before(&index.keyframes, position);
            let (ring_time, wall_time) = match keyframe {
                Some(k) => (
                    k.ring_time
                        .saturating_add(position.saturating_since(k.presentation_time())),
                    k.wall_time,
                ),
                // No keyframe presented by then: the delay is not known.
                None if latest >= index.start.ring_time => (latest, index.start.wall_time),
                None => continue,
            };
            // Past the end of what the segment holds; for the one being
            // written its length is an estimate: a second of slack.
            let slack = if self.catalog.spans().contains_key(&seq) {
                0
            } else {
                1_000_000_000
            };
            if ring_time > index.start.ring_time.saturating_add(duration).saturating_add(slack) {
                return None;
            }
            let from = keyframe.map_or(index.start.ring_time, |k| k.ring_time);
            return Some(wall_time.after(ring_time.saturating_since(from)));
        }
        None
    }
}
