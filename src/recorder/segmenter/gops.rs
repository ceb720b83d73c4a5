// SPDX-License-Identifier: MPL-2.0
//! The GOPs a stream has shown, and the cut rules that depend on them:
//! when a segment may cut a little short, when waiting for the next
//! random-access point would overshoot the target duration, and how long a
//! segment may run before it is cut without one.

use crate::layout::playlist::target_duration_s;

const SECOND: u64 = 1_000_000_000;

/// A segment is cut at the next packet, random-access point or not, once it
/// is this many times longer than `segment-duration` and than the longest
/// GOP seen. This bounds segments of streams whose keyframes cannot be found
/// (scrambled video without random_access_indicator, an unknown codec),
/// while a stream that has random-access points is only ever cut at one,
/// however long its GOPs: a segment starting inside a GOP does not decode.
pub const FORCED_CUT_FACTOR: u64 = 3;

/// The GOP assumed, for the forced cut, while only one random-access point
/// has been seen: long enough for the longest GOPs encoders make (x264's
/// default is 250 frames, 10 s at 25 fps; 20 s at 12.5 fps).
const FIRST_GOP_ALLOWANCE_NS: u64 = 20 * SECOND;

/// How much earlier than `segment-duration` a random-access point may cut.
/// The PCR in a keyframe's packet jitters around the frame time (a live
/// multiplexer stamps it from its clock), so a keyframe exactly one GOP
/// later can measure a hair short; without this the segment would run a
/// whole GOP longer than asked.
#[must_use]
pub fn cut_tolerance(segment_duration_ns: u64) -> u64 {
    (segment_duration_ns / 20).min(250_000_000)
}

/// Random-access points seen on the cut PID, in timeline nanoseconds.
#[derive(Debug, Default)]
pub struct Gops {
    /// Position of the last one (forgotten at a timeline jump).
    last_ns: Option<u64>,
    /// Longest time between two; 0 until two were seen.
    longest_ns: u64,
    /// Time between the last two; 0 until two were seen.
    last_gop_ns: u64,
    /// One was seen at all: the stream has them.
    seen: bool,
}

impl Gops {
    /// A random-access point at `position_ns`: the GOP it ends is measured.
    pub fn record(&mut self, position_ns: u64) {
        if let Some(previous) = self.last_ns {
            self.last_gop_ns = position_ns.saturating_sub(previous);
            self.longest_ns = self.longest_ns.max(self.last_gop_ns);
        }
        self.last_ns = Some(position_ns);
        self.seen = true;
    }

    /// The timeline jumped: the next point measures no GOP.
    pub fn forget_last(&mut self) {
        self.last_ns = None;
    }

    /// How long a segment may run without a random-access point before it is
    /// cut anyway: [`FORCED_CUT_FACTOR`] times the segment duration for a
    /// stream that has shown none, and at least as many times its longest
    /// GOP for one that has.
    #[must_use]
    pub fn forced_limit(&self, segment_duration_ns: u64) -> u64 {
        let gop = match (self.seen, self.longest_ns) {
            (false, _) => 0,
            (true, 0) => FIRST_GOP_ALLOWANCE_NS,
            (true, gop) => gop,
        };
        segment_duration_ns.max(gop).saturating_mul(FORCED_CUT_FACTOR)
    }

    /// Whether waiting one more GOP (as long as the last one) for the next
    /// random-access point would make a segment `elapsed_ns` long so far
    /// round above the target duration `segment-duration` sets, though it is
    /// at least half way there. Then this point cuts: otherwise one short GOP
    /// (an encoder's first, an open GOP) makes one long segment that raises
    /// `EXT-X-TARGETDURATION` for the life of the ring.
    #[must_use]
    pub fn waiting_overshoots_target(&self, elapsed_ns: u64, segment_duration_ns: u64) -> bool {
        self.last_gop_ns > 0
            && elapsed_ns.saturating_mul(2) >= segment_duration_ns
            && target_duration_s(elapsed_ns.saturating_add(self.last_gop_ns)) > target_duration_s(segment_duration_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forced_limit_follows_the_longest_gop() {
        let mut gops = Gops::default();
        assert_eq!(gops.forced_limit(2 * SECOND), 6 * SECOND);
        gops.record(0);
        assert_eq!(
            gops.forced_limit(2 * SECOND),
            60 * SECOND,
            "one point: the first-GOP allowance"
        );
        gops.record(4 * SECOND);
        assert_eq!(gops.forced_limit(2 * SECOND), 12 * SECOND);
        gops.forget_last();
        gops.record(100 * SECOND);
        assert_eq!(gops.forced_limit(2 * SECOND), 12 * SECOND, "a jump measures no GOP");
    }

    #[test]
    fn a_short_gop_cuts_when_the_next_would_overshoot() {
        let mut gops = Gops::default();
        assert!(
            !gops.waiting_overshoots_target(3 * SECOND, 4 * SECOND),
            "no GOP known yet"
        );
        gops.record(0);
        gops.record(2 * SECOND);
        assert!(
            gops.waiting_overshoots_target(3 * SECOND, 4 * SECOND),
            "3 + 2 s rounds to 5 > 4"
        );
        assert!(!gops.waiting_overshoots_target(SECOND, 4 * SECOND), "not half way yet");
        assert!(
            !gops.waiting_overshoots_target(2 * SECOND, 4 * SECOND),
            "2 + 2 s is the target"
        );
    }
}
