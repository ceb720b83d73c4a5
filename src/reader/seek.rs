// SPDX-License-Identifier: MPL-2.0
//! Seeking on the keyframe index: where a seek or a live start lands.
//!
//! A segment with an index (everything the sink writes since it has one)
//! is entered at a random-access point: the reader sends the tables at the
//! segment's head (PAT, PMTs) and then jumps to the keyframe, whose ring
//! time stamps the first buffer. Segments without an index (recordings,
//! rings from before the index) are entered at their start, as a segment
//! start is a random-access point too.

use super::RingReader;
use super::catalog::Span;
use crate::layout::SegmentNumber;
use crate::layout::index::{self, Keyframe, SegmentIndex};
use crate::layout::{PresentationTime, RingTime, WallTime, segment_index_name};
use crate::platform;

/// Which keyframe a seek lands on, as `GST_SEEK_FLAG_SNAP_*` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snap {
    /// The keyframe at or before the target (the default).
    Before,
    /// The first keyframe at or after the target.
    After,
    /// Whichever of the two is closer.
    Nearest,
}

/// Segments looked at on either side of the target's for a keyframe: a
/// forced cut's segment may hold none.
const NEIGHBOURS: usize = 3;

/// Where the next segment opened is entered, after a seek.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Landing {
    pub(super) sequence: SegmentNumber,
    /// Bytes at the head of the segment (its tables) sent first.
    pub(super) head_end: u64,
    /// Where reading goes on after them: the keyframe's first packet.
    pub(super) keyframe_offset: u64,
    /// Ring time of the keyframe: the first buffer's timestamp.
    pub(super) timestamp: RingTime,
}

impl RingReader {
    /// The index of segment `seq`, cut to the bytes of it that can be read.
    pub(super) fn segment_index(&self, seq: SegmentNumber) -> Option<SegmentIndex> {
        // An archived segment is whole.
        if let Some(fetched) = self.catalog.archived_index(seq) {
            return index::read_opened(platform::open_read_only(&fetched?), u64::MAX);
        }
        let data = platform::open_read_only(&self.catalog.dir().join(crate::layout::segment_file_name(seq))).ok()?;
        let len = self.catalog.content_len(&data, seq).ok()?;
        let file = platform::open_read_only(&self.catalog.dir().join(segment_index_name(seq)));
        index::read_opened(file, len)
    }

    /// The keyframes a seek may land on in segment `seq` (starting at
    /// `start`): its index's, or, for a segment without a usable index
    /// (a recording, an older ring, a damaged or planted index file) that
    /// starts at a random-access point, its start.
    fn landing_points(&self, seq: SegmentNumber, start: RingTime) -> Option<SegmentIndex> {
        // An index whose start is not the segment's (planted, stale) is
        // not believed.
        if let Some(index) = self.segment_index(seq).filter(|i| {
            !i.keyframes.is_empty() && i.start.ring_time.ns().abs_diff(start.ns()) <= super::catalog::INDEX_TOLERANCE_NS
        }) {
            return Some(index);
        }
        if self.catalog.spans().get(&seq).is_some_and(|s| !s.independent) {
            return None;
        }
        let start = Keyframe {
            offset: 0,
            ring_time: start,
            wall_time: WallTime::EPOCH,
            size: 0,
            presentation_delay: crate::ts::timeline::Ticks90k::ZERO,
            number: 0,
        };
        Some(SegmentIndex {
            start,
            keyframes: vec![start],
        })
    }

    /// Every segment there is, oldest first, with its start: the listed
    /// ones and the one being written.
    pub(super) fn candidates(&self) -> Vec<(SegmentNumber, RingTime)> {
        let mut v: Vec<(SegmentNumber, RingTime)> = self
            .catalog
            .spans()
            .iter()
            .map(|(&seq, s): (&SegmentNumber, &Span)| (seq, s.start))
            .collect();
        if let Some(open) = self.catalog.in_progress()
            && v.last().is_none_or(|&(last, _)| open.sequence > last)
        {
            v.push((open.sequence, open.start));
        }
        v
    }

    /// Positions the reader at the keyframe `snap` picks for presentation
    /// time `target` and returns the keyframe's presentation time. `None`
    /// when no segment has an index with a keyframe near it: the caller
    /// then seeks to a segment start.
    pub(super) fn seek_keyframe(&mut self, target: PresentationTime, snap: Snap) -> Option<PresentationTime> {
        let candidates = self.candidates();
        let ring_target = self.ring_time_of(target);
        let at = candidates
            .iter()
            .rposition(|&(_, start)| start <= ring_target)
            .unwrap_or(0);
        let before = || {
            candidates[at.saturating_sub(NEIGHBOURS)..=at.min(candidates.len().checked_sub(1)?)]
                .iter()
                .rev()
                .find_map(|&(seq, start)| {
                    let index = self.landing_points(seq, start)?;
                    let k = *index::at_or_before(&index.keyframes, target)?;
                    Some((seq, index, k))
                })
        };
        let after = || {
            candidates.iter().skip(at).take(NEIGHBOURS + 1).find_map(|&(seq, _)| {
                let index = self.segment_index(seq)?;
                let k = *index::at_or_after(&index.keyframes, target)?;
                Some((seq, index, k))
            })
        };
        let chosen = match snap {
            Snap::Before => before().or_else(after),
            Snap::After => after().or_else(before),
            Snap::Nearest => match (before(), after()) {
                (Some(b), Some(a)) => {
                    if target.saturating_since(b.2.presentation_time())
                        <= a.2.presentation_time().saturating_since(target)
                    {
                        Some(b)
                    } else {
                        Some(a)
                    }
                }
                (b, a) => b.or(a),
            },
        };
        let (seq, index, keyframe) = chosen?;
        self.land(seq, &index, &keyframe);
        Some(keyframe.presentation_time())
    }

    /// The newest keyframe of the ring: in the segment being written, else
    /// in the newest segment that has one.
    pub(super) fn newest_keyframe(&self) -> Option<(SegmentNumber, SegmentIndex, Keyframe)> {
        self.candidates()
            .iter()
            .rev()
            .take(NEIGHBOURS + 1)
            .find_map(|&(seq, _)| {
                let index = self.segment_index(seq)?;
                let k = *index.keyframes.last()?;
                Some((seq, index, k))
            })
    }

    /// Makes segment `seq` the next one read, entered at `keyframe` (at its
    /// start when that is offset 0).
    pub(super) fn land(&mut self, seq: SegmentNumber, index: &SegmentIndex, keyframe: &Keyframe) {
        self.reposition(seq, index.start.ring_time);
        let head_end = crate::layout::index::head_before(&index.start, keyframe);
        // A segment's start standing in for a missing index says nothing
        // about the stream's delay (it has no wall clock either).
        if keyframe.wall_time != WallTime::EPOCH {
            self.presentation_delay_ns = Some(
                keyframe
                    .presentation_time()
                    .ns()
                    .saturating_sub(keyframe.ring_time.ns()),
            );
        }
        self.landing = Some(Landing {
            sequence: seq,
            head_end,
            keyframe_offset: keyframe.offset,
            timestamp: keyframe.ring_time,
        });
    }
}
