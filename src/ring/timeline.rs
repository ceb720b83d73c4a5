// SPDX-License-Identifier: MPL-2.0
//! The ring's timeline: ring time (the sum of the durations of every segment
//! the ring has held, holes left out) and the wall clock the segments'
//! date-times give, each in terms of the other.

use super::Ring;
use crate::layout::{RingTime, SegmentInfo, SegmentNumber, WallTime};

impl Ring {
    /// Ring time at the end of the newest completed segment: after a
    /// restart, where new content goes on (the outage is left out, as a
    /// hole between the two segments' date-times).
    #[must_use]
    pub fn ring_time_end(&self) -> RingTime {
        self.ring_time_end
    }

    /// The completed segments, oldest first, each with the ring time it
    /// starts at: ring time has no holes, so they follow one another back
    /// from [`Self::ring_time_end`].
    pub fn segments_in_time(&self) -> impl Iterator<Item = (&SegmentInfo, RingTime)> {
        let before_end: u64 = self.entries.iter().map(|e| e.info.duration_ns).sum();
        let mut start = self.ring_time_end.saturating_sub(before_end);
        self.entries.iter().map(move |e| {
            let at = start;
            start = start.saturating_add(e.info.duration_ns);
            (&e.info, at)
        })
    }

    /// The oldest segment the ring holds (completed, else the open one):
    /// its number, and the ring time and date-time it starts at.
    #[must_use]
    pub fn oldest_segment(&self) -> Option<(SegmentNumber, RingTime, WallTime)> {
        let open = self
            .current
            .as_ref()
            .map(|c| (c.writer.sequence(), c.start.ring_time, c.start.program_date_time));
        self.segments_in_time()
            .next()
            .map(|(info, start)| (info.sequence, start, info.program_date_time))
            .or(open)
    }

    /// Wall-clock time at which the content at ring time `at` was received,
    /// from the segments' date-times; `None` before the oldest segment.
    #[must_use]
    pub fn date_at(&self, at: RingTime) -> Option<WallTime> {
        let open = self
            .current
            .as_ref()
            .map(|c| (c.start.ring_time, c.start.program_date_time));
        let (start, date) = self
            .segments_in_time()
            .map(|(info, start)| (start, info.program_date_time))
            .chain(open)
            .take_while(|&(start, _)| start <= at)
            .last()?;
        Some(date.after(at.saturating_since(start)))
    }

    /// Ring time of the content received at wall-clock time `date`: in the
    /// segment that covers it, or the start of the first segment after it
    /// (a date in a hole, or before the oldest segment).
    #[must_use]
    pub fn ring_time_at(&self, date: WallTime) -> RingTime {
        let open = self
            .current
            .as_ref()
            .map(|c| (c.start.ring_time, c.start.program_date_time, u64::MAX));
        let mut segments = self
            .segments_in_time()
            .map(|(info, start)| (start, info.program_date_time, info.duration_ns))
            .chain(open);
        let mut last_end = self.ring_time_end;
        for (start, pdt, duration) in segments.by_ref() {
            if date < pdt {
                return start;
            }
            let into_ns = u64::try_from(date.ms_since(pdt)).unwrap_or(0).saturating_mul(1_000_000);
            if into_ns < duration {
                return start.saturating_add(into_ns);
            }
            last_end = start.saturating_add(duration);
        }
        last_end
    }
}
