// SPDX-License-Identifier: MPL-2.0
//! The ring's timeline: ring time (the sum of the durations of every segment
//! the ring has held, holes left out) and the wall clock the segments'
//! date-times give, each in terms of the other.

use super::Ring;
use crate::layout::SegmentInfo;

impl Ring {
    /// Ring time at the end of the newest completed segment: after a
    /// restart, where new content goes on (the outage is left out, as a
    /// hole between the two segments' date-times).
    #[must_use]
    pub fn ring_time_end(&self) -> u64 {
        self.ring_time_end_ns
    }

    /// The completed segments, oldest first, each with the ring time it
    /// starts at: ring time has no holes, so they follow one another back
    /// from [`Self::ring_time_end`].
    pub fn segments_in_time(&self) -> impl Iterator<Item = (&SegmentInfo, u64)> {
        let before_end: u64 = self.entries.iter().map(|e| e.info.duration_ns).sum();
        let mut start = self.ring_time_end_ns.saturating_sub(before_end);
        self.entries.iter().map(move |e| {
            let at = start;
            start = start.saturating_add(e.info.duration_ns);
            (&e.info, at)
        })
    }

    /// Wall-clock time (ms since the epoch) at which the content at ring
    /// time `ring_ns` was received, from the segments' date-times; `None`
    /// before the oldest segment.
    #[must_use]
    pub fn date_at(&self, ring_ns: u64) -> Option<i64> {
        let open = self
            .current
            .as_ref()
            .map(|c| (c.start.ring_time_ns, c.start.program_date_time_ms));
        let (start, date_ms) = self
            .segments_in_time()
            .map(|(info, start)| (start, info.program_date_time_ms))
            .chain(open)
            .take_while(|&(start, _)| start <= ring_ns)
            .last()?;
        Some(crate::layout::date_after(date_ms, ring_ns - start))
    }

    /// Ring time of the content received at wall-clock time `date_ms`: in
    /// the segment that covers it, or the start of the first segment after
    /// it (a date in a hole, or before the oldest segment).
    #[must_use]
    pub fn ring_time_at(&self, date_ms: i64) -> u64 {
        let open = self
            .current
            .as_ref()
            .map(|c| (c.start.ring_time_ns, c.start.program_date_time_ms, u64::MAX));
        let mut segments = self
            .segments_in_time()
            .map(|(info, start)| (start, info.program_date_time_ms, info.duration_ns))
            .chain(open);
        let mut last_end = self.ring_time_end_ns;
        for (start, pdt, duration) in segments.by_ref() {
            if date_ms < pdt {
                return start;
            }
            let into_ns = u64::try_from(date_ms - pdt).unwrap_or(0).saturating_mul(1_000_000);
            if into_ns < duration {
                return start.saturating_add(into_ns);
            }
            last_end = start.saturating_add(duration);
        }
        last_end
    }
}
