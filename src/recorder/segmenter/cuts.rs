// SPDX-License-Identifier: MPL-2.0
//! Where the segment being written stands against the cut rules: where it
//! started (on the timeline and in ring time), since when none is open,
//! when a forced cut falls due, and whether the next segment must cut at
//! once or be marked a discontinuity. The rules themselves (tolerance,
//! overshoot, forced limit) come with the GOPs ([`super::gops`]).

use super::gops::{Gops, cut_tolerance};
use crate::layout::RingTime;

/// See the module documentation. Positions are timeline nanoseconds.
#[derive(Debug)]
pub struct Cuts {
    segment_duration_ns: u64,
    /// The GOPs seen, for the rules.
    gops: Gops,
    /// Timeline position where the open segment started.
    segment_start_ns: u64,
    /// Ring time where the open segment starts: where the ring's completed
    /// segments end, so that ring time is their durations summed and holes
    /// (write failures, restarts) are left out of it.
    segment_ring_start: RingTime,
    /// Timeline position since which no segment has been open (stream
    /// start, or a failed write in drop mode), for the forced cut.
    closed_since_ns: Option<u64>,
    /// Timeline position from which a forced cut is due.
    forced_cut_at_ns: u64,
    /// Cut at the next random-access point regardless of duration.
    cut_asap: bool,
    /// The next segment gets EXT-X-DISCONTINUITY.
    pending_discontinuity: bool,
}

impl Cuts {
    /// Before the first segment: ring time goes on from `ring_end`; a
    /// ring that already holds segments (`adopted`) gets a discontinuity.
    #[must_use]
    pub fn new(segment_duration_ns: u64, ring_end: RingTime, adopted: bool) -> Self {
        Cuts {
            segment_duration_ns,
            gops: Gops::default(),
            segment_start_ns: 0,
            segment_ring_start: ring_end,
            closed_since_ns: None,
            forced_cut_at_ns: u64::MAX,
            cut_asap: false,
            pending_discontinuity: adopted,
        }
    }

    /// Timeline position where the open segment started.
    #[must_use]
    pub fn segment_start_ns(&self) -> u64 {
        self.segment_start_ns
    }

    /// Ring time of timeline position `position_ns` in the open segment.
    #[must_use]
    pub fn ring_time(&self, position_ns: u64) -> RingTime {
        self.segment_ring_start
            .saturating_add(position_ns.saturating_sub(self.segment_start_ns))
    }

    /// Whether the next segment is to be marked a discontinuity.
    #[must_use]
    pub fn pending_discontinuity(&self) -> bool {
        self.pending_discontinuity
    }

    /// Whether a segment was ever open or closed: before that nothing is
    /// written and every packet counts.
    #[must_use]
    pub fn started(&self, open: bool) -> bool {
        open || self.closed_since_ns.is_some()
    }

    /// How long a segment may run without a random-access point.
    #[must_use]
    pub fn forced_limit(&self) -> u64 {
        self.gops.forced_limit(self.segment_duration_ns)
    }

    /// The timeline jumped: the next random-access point cuts, into a
    /// segment marked a discontinuity, and measures no GOP.
    pub fn on_jump(&mut self) {
        self.gops.forget_last();
        self.pending_discontinuity = true;
        self.cut_asap = true;
    }

    /// No segment is open at `position_ns` (the stream's start): the
    /// forced-cut clock starts, once.
    pub fn note_closed(&mut self, position_ns: u64) {
        if self.closed_since_ns.is_none() {
            self.closed_since_ns = Some(position_ns);
            self.forced_cut_at_ns = position_ns.saturating_add(self.forced_limit());
        }
    }

    /// The open segment was given up at `position_ns` (drop mode): the next
    /// one is a discontinuity, and the forced-cut clock starts again.
    pub fn dropped_at(&mut self, position_ns: u64) {
        self.pending_discontinuity = true;
        self.closed_since_ns = Some(position_ns);
        self.forced_cut_at_ns = position_ns.saturating_add(self.forced_limit());
    }

    /// A random-access point on the cut PID at `position_ns`: the GOP it
    /// ends is measured, and the forced-cut deadline moves with the limit.
    pub fn on_random_access(&mut self, position_ns: u64, open: bool) {
        self.gops.record(position_ns);
        let since = if open {
            Some(self.segment_start_ns)
        } else {
            self.closed_since_ns
        };
        if let Some(since) = since {
            self.forced_cut_at_ns = since.saturating_add(self.forced_limit());
        }
    }

    /// Whether a random-access point at `position_ns` starts a new segment
    /// (write failures aside): none is open, the open one is long enough,
    /// or waiting for the next would overshoot the target duration.
    #[must_use]
    pub fn cut_due(&self, position_ns: u64, open: bool) -> bool {
        if !open {
            return true;
        }
        let elapsed = position_ns - self.segment_start_ns;
        let duration = self.segment_duration_ns;
        self.cut_asap
            || elapsed + cut_tolerance(duration) >= duration
            || self.gops.waiting_overshoots_target(elapsed, duration)
    }

    /// The one comparison per packet before a forced cut is looked at.
    #[must_use]
    pub fn forced_cut_may_be_due(&self, position_ns: u64) -> bool {
        position_ns >= self.forced_cut_at_ns
    }

    /// Whether no random-access point came for too long (see
    /// [`Gops::forced_limit`]): cut at `position_ns` anyway.
    #[must_use]
    pub fn forced_cut_due(&self, position_ns: u64, open: bool) -> bool {
        let limit = self.forced_limit();
        if open {
            position_ns - self.segment_start_ns >= limit
        } else {
            self.closed_since_ns.is_some_and(|since| position_ns - since >= limit)
        }
    }

    /// A segment opened at timeline `position_ns`, ring time `ring_time`.
    pub fn opened(&mut self, position_ns: u64, ring_time: RingTime) {
        self.segment_start_ns = position_ns;
        self.segment_ring_start = ring_time;
        self.closed_since_ns = None;
        self.forced_cut_at_ns = position_ns.saturating_add(self.forced_limit());
        self.pending_discontinuity = false;
        self.cut_asap = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn a_segment_is_due_at_its_duration_and_forced_without_keyframes() {
        let mut cuts = Cuts::new(2 * SECOND, RingTime::from_ns(40 * SECOND), false);
        assert!(cuts.cut_due(0, false), "nothing open: any keyframe cuts");
        cuts.note_closed(0);
        assert!(!cuts.forced_cut_may_be_due(5 * SECOND));
        assert!(cuts.forced_cut_due(6 * SECOND, false), "3 x 2 s without a keyframe");
        cuts.opened(SECOND, RingTime::from_ns(40 * SECOND));
        assert_eq!(cuts.ring_time(2 * SECOND), RingTime::from_ns(41 * SECOND));
        assert!(!cuts.cut_due(2 * SECOND, true));
        assert!(cuts.cut_due(3 * SECOND, true), "2 s long");
        cuts.on_jump();
        assert!(
            cuts.cut_due(SECOND + 1, true) && cuts.pending_discontinuity(),
            "a jump cuts at once"
        );
        cuts.opened(4 * SECOND, RingTime::from_ns(43 * SECOND));
        assert!(!cuts.pending_discontinuity());
        cuts.dropped_at(5 * SECOND);
        assert!(cuts.pending_discontinuity() && cuts.started(false));
    }
}
