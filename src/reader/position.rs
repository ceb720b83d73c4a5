// SPDX-License-Identifier: MPL-2.0
//! Where the reader is, as the element reports it: the seekable window and
//! the position, in presentation time (ring time plus the stream's
//! presentation delay, learnt from the index).

use super::{RingReader, scale};
use crate::layout::SegmentNumber;
use crate::layout::{PresentationTime, RingTime};

/// The seekable window in presentation time: the oldest content's start to
/// the live edge (or the end of a finished ring).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeekWindow {
    pub start: PresentationTime,
    pub end: PresentationTime,
}

/// A byte of a segment: where reading is, or where an export stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLocation {
    pub sequence: SegmentNumber,
    pub offset: u64,
}

impl RingReader {
    /// The seekable window: oldest start to newest end,
    /// the segment being written estimated from its size.
    pub fn window(&mut self) -> Option<SeekWindow> {
        self.refresh_playing();
        let start = self.catalog.spans().values().next()?.start;
        let last = self.catalog.spans().values().next_back()?;
        let mut end = last.start.saturating_add(last.duration_ns);
        if !self.catalog.ended()
            && let Some(open) = self.catalog.in_progress()
        {
            end = end.saturating_add(self.catalog.estimate_ns(open.sequence));
        }
        let delay = self.presentation_delay();
        Some(SeekWindow {
            start: start.presented_after_ns(delay),
            end: end.presented_after_ns(delay),
        })
    }

    /// How many segments the playlist lists now.
    #[must_use]
    pub fn listed_segments(&self) -> usize {
        self.catalog.spans().len()
    }

    /// Where the window begins on the ring's timeline: the oldest listed
    /// segment's ring time, before the stream's presentation delay. An
    /// accurate seek between it and the oldest frame starts its segment
    /// where it was asked (the first frame comes when it comes).
    pub fn window_ring_start(&mut self) -> Option<RingTime> {
        self.refresh_playing();
        Some(self.catalog.spans().values().next()?.start)
    }

    /// The stream's presentation delay, ns: learnt from the first indexed
    /// segment looked at, 0 for a ring without an index.
    pub fn presentation_delay(&mut self) -> u64 {
        if self.presentation_delay_ns.is_none() {
            let newest = self.catalog.spans().keys().next_back().copied();
            self.presentation_delay_ns = newest.and_then(|seq| self.segment_index(seq)).and_then(|i| {
                i.keyframes
                    .first()
                    .map(|k| k.presentation_time().ns().saturating_sub(k.ring_time.ns()))
            });
        }
        self.presentation_delay_ns.unwrap_or(0)
    }

    /// The ring time presented at `t`, by the presentation delay learnt so
    /// far (none yet: the same number): where to look for the segment
    /// that holds `t`.
    pub(super) fn ring_time_of(&self, t: PresentationTime) -> RingTime {
        t.ring_time_before(self.presentation_delay_ns.unwrap_or(0))
    }

    /// The presentation time being read now.
    #[must_use]
    pub fn position(&self) -> Option<PresentationTime> {
        if let Some(p) = self.trick_position {
            return Some(p);
        }
        let cur = self.current.as_ref()?;
        let fraction = match self.catalog.spans().get(&cur.sequence) {
            Some(span) => {
                // (An archived segment's copy may not be whole yet.)
                let len = self
                    .catalog
                    .local_copy(cur.sequence)
                    .and_then(|c| c.size)
                    .unwrap_or_else(|| cur.file.metadata().map_or(0, |m| m.len()))
                    .max(1);
                scale(cur.offset, span.duration_ns, len)
            }
            None => {
                // Being written: scale the estimate of the whole file.
                let len = self.catalog.content_len(&cur.file, cur.sequence).unwrap_or(0).max(1);
                scale(cur.offset, self.catalog.estimate_ns(cur.sequence), len)
            }
        };
        Some(
            cur.start
                .saturating_add(fraction)
                .presented_after_ns(self.presentation_delay_ns.unwrap_or(0)),
        )
    }

    /// Sequence number of the segment being read, if any.
    #[must_use]
    pub fn current_sequence(&self) -> Option<SegmentNumber> {
        self.current.as_ref().map(|c| c.sequence)
    }

    /// The segment being read and the offset of its next byte, if any.
    pub(crate) fn read_location(&self) -> Option<ReadLocation> {
        let cur = self.current.as_ref()?;
        Some(ReadLocation {
            sequence: cur.sequence,
            offset: cur.next_offset(),
        })
    }
}
