// SPDX-License-Identifier: MPL-2.0
//! The three clocks a ring's records carry, each its own type so that one
//! cannot be passed where another is meant:
//!
//! - [`RingTime`]: nanoseconds on the ring's one monotonic timeline (the
//!   program clock, see [`crate::ts::timeline::Timeline`]). The same for every
//!   reader and across restarts; what segments and keyframes are ordered by.
//! - [`PresentationTime`]: when a player fed from a ring time shows the frame
//!   there: ring time plus the stream's presentation delay. What a seek aims at
//!   and what a position reports.
//! - [`WallTime`]: the wall clock when the sink received the content,
//!   milliseconds since the Unix epoch: `EXT-X-PROGRAM-DATE-TIME`.
//!
//! Spans between two instants of one clock stay plain `u64` nanoseconds
//! (named `*_ns`); the only conversion between clocks, a ring-time span on
//! the wall clock, is [`WallTime::after`].

use std::fmt;

use crate::ts::timeline::Ticks90k;

/// A point on the ring's timeline, in nanoseconds from its origin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RingTime(u64);

impl RingTime {
    pub const ZERO: RingTime = RingTime(0);
    pub const MAX: RingTime = RingTime(u64::MAX);

    #[must_use]
    pub const fn from_ns(ns: u64) -> Self {
        RingTime(ns)
    }

    #[must_use]
    pub const fn ns(self) -> u64 {
        self.0
    }

    /// `span_ns` later, stopping at the end of the timeline.
    #[must_use]
    pub const fn saturating_add(self, span_ns: u64) -> Self {
        RingTime(self.0.saturating_add(span_ns))
    }

    /// `span_ns` earlier, stopping at the origin.
    #[must_use]
    pub const fn saturating_sub(self, span_ns: u64) -> Self {
        RingTime(self.0.saturating_sub(span_ns))
    }

    /// `span_ns` later; `None` past the end of the timeline.
    #[must_use]
    pub fn checked_add(self, span_ns: u64) -> Option<Self> {
        self.0.checked_add(span_ns).map(RingTime)
    }

    /// Nanoseconds since `earlier`; 0 if it is not earlier.
    #[must_use]
    pub const fn saturating_since(self, earlier: RingTime) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Nanoseconds since `earlier`; `None` if it is later.
    #[must_use]
    pub fn checked_since(self, earlier: RingTime) -> Option<u64> {
        self.0.checked_sub(earlier.0)
    }

    /// When a player fed from this ring time shows a frame presented
    /// `delay_ns` after it (a delay already converted, or measured).
    #[must_use]
    pub const fn presented_after_ns(self, delay_ns: u64) -> PresentationTime {
        PresentationTime(self.0.saturating_add(delay_ns))
    }

    /// When a player fed from this ring time shows a frame presented
    /// `delay` after it.
    #[must_use]
    pub fn presented_after(self, delay: Ticks90k) -> PresentationTime {
        PresentationTime(self.0.saturating_add_signed(delay.nanos()))
    }
}

/// A position as a player shows it, in nanoseconds: ring time plus the
/// presentation delay of the keyframe it was reached from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PresentationTime(u64);

impl PresentationTime {
    pub const ZERO: PresentationTime = PresentationTime(0);
    pub const MAX: PresentationTime = PresentationTime(u64::MAX);

    #[must_use]
    pub const fn from_ns(ns: u64) -> Self {
        PresentationTime(ns)
    }

    #[must_use]
    pub const fn ns(self) -> u64 {
        self.0
    }

    /// `span_ns` later, stopping at the end of the timeline.
    #[must_use]
    pub const fn saturating_add(self, span_ns: u64) -> Self {
        PresentationTime(self.0.saturating_add(span_ns))
    }

    /// `span_ns` earlier, stopping at the origin.
    #[must_use]
    pub const fn saturating_sub(self, span_ns: u64) -> Self {
        PresentationTime(self.0.saturating_sub(span_ns))
    }

    /// `span_ns` earlier; `None` before the origin.
    #[must_use]
    pub fn checked_sub(self, span_ns: u64) -> Option<Self> {
        self.0.checked_sub(span_ns).map(PresentationTime)
    }

    /// Nanoseconds since `earlier`; 0 if it is not earlier.
    #[must_use]
    pub const fn saturating_since(self, earlier: PresentationTime) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Nanoseconds between the two, whichever is first.
    #[must_use]
    pub const fn distance(self, other: PresentationTime) -> u64 {
        self.0.abs_diff(other.0)
    }

    /// The latest ring time that can be presented at this time (delays are
    /// never negative): an upper bound to find the segment holding it by.
    #[must_use]
    pub const fn latest_ring_time(self) -> RingTime {
        RingTime(self.0)
    }

    /// The ring time `delay` before it: the inverse of
    /// [`RingTime::presented_after`].
    #[must_use]
    pub fn ring_time_before(self, delay_ns: u64) -> RingTime {
        RingTime(self.0.saturating_sub(delay_ns))
    }
}

/// Milliseconds since the Unix epoch on the sink's wall clock: what
/// `EXT-X-PROGRAM-DATE-TIME` says, the journal and the index record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WallTime(i64);

impl WallTime {
    /// The Unix epoch; in an index record it means "not known".
    pub const EPOCH: WallTime = WallTime(0);
    /// The latest date-time read (`9999-12-30T22:00:00.999Z`, the end of
    /// what `jiff` represents in every offset): later ones are refused, so
    /// arithmetic on them stays far from overflowing.
    pub const MAX: WallTime = WallTime(253_402_207_200_999);

    #[must_use]
    pub const fn from_ms(ms: i64) -> Self {
        WallTime(ms)
    }

    #[must_use]
    pub const fn ms(self) -> i64 {
        self.0
    }

    /// The system clock now; the epoch if it reads earlier than that.
    #[must_use]
    pub fn now() -> Self {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        WallTime(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }

    /// The date-time `span_ns` of ring time after this one: how a ring's
    /// wall clock advances with its content (a keyframe's date in its
    /// segment, the end of a segment, a position's date). The one place that
    /// puts ring-time spans on the wall clock; saturating.
    #[must_use]
    pub fn after(self, span_ns: u64) -> Self {
        WallTime(
            self.0
                .saturating_add(i64::try_from(span_ns / 1_000_000).unwrap_or(i64::MAX)),
        )
    }

    /// The date-time `span_ns` before this one (a delay behind now);
    /// saturating.
    #[must_use]
    pub fn before(self, span_ns: u64) -> Self {
        WallTime(
            self.0
                .saturating_sub(i64::try_from(span_ns / 1_000_000).unwrap_or(i64::MAX)),
        )
    }

    /// Milliseconds from `earlier` to this one (negative if it is later).
    #[must_use]
    pub const fn ms_since(self, earlier: WallTime) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Whether the sink could have written it: from 1970 to [`Self::MAX`].
    #[must_use]
    pub const fn is_plausible(self) -> bool {
        self.0 >= 0 && self.0 <= Self::MAX.0
    }

    /// An RFC 3339 date-time (`2026-11-28T02:43:05.007Z`, any offset; one
    /// without an offset is taken as UTC, as HLS players do), to the
    /// millisecond; `None` if it is not one or lies outside years 1 to 9999.
    #[must_use]
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let s = s.trim();
        let timestamp = match s.parse::<jiff::Timestamp>() {
            Ok(t) => t,
            Err(_) => {
                let civil = s.parse::<jiff::civil::DateTime>().ok()?;
                jiff::tz::TimeZone::UTC.to_timestamp(civil).ok()?
            }
        };
        Some(WallTime(timestamp.as_millisecond()))
    }
}

/// `YYYY-MM-DDThh:mm:ss.sssZ`, RFC 3339 in UTC to the millisecond, as
/// `EXT-X-PROGRAM-DATE-TIME` carries it.
impl fmt::Display for WallTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_millisecond(self.0) {
            Ok(t) => write!(f, "{}", t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")),
            // Outside what jiff represents (years -9999 to 9999): no date
            // the sink writes, and readers refuse it; show the number.
            Err(_) => write!(f, "{}ms", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_time_is_written_as_rfc3339_millis_in_utc() {
        assert_eq!(WallTime::from_ms(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            WallTime::from_ms(951_782_400_123).to_string(),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(
            WallTime::from_ms(1_795_833_785_007).to_string(),
            "2026-11-28T02:43:05.007Z"
        );
        assert_eq!(WallTime::from_ms(-1).to_string(), "1969-12-31T23:59:59.999Z");
        assert_eq!(WallTime::MAX.to_string(), "9999-12-30T22:00:00.999Z");
        assert_eq!(WallTime::MAX.ms(), jiff::Timestamp::MAX.as_millisecond());
    }

    #[test]
    fn wall_time_reads_what_it_writes_and_other_offsets() {
        for ms in [0, 1, 999, 951_782_400_123, 1_795_833_785_007, WallTime::MAX.ms()] {
            let t = WallTime::from_ms(ms);
            assert_eq!(WallTime::parse_rfc3339(&t.to_string()), Some(t));
        }
        let parse = |s| WallTime::parse_rfc3339(s).map(WallTime::ms);
        assert_eq!(parse("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse("1970-01-01T00:00:01.5-00:30"), Some(1_801_500));
        assert_eq!(parse("1970-01-01T00:00:00.123456789Z"), Some(123));
        assert_eq!(parse(" 2000-02-29T00:00:00Z "), Some(951_782_400_000));
        assert_eq!(parse("2000-02-29T00:00:00"), Some(951_782_400_000), "no offset: UTC");
        for bad in [
            "garbage",
            "",
            "2000-02-30T00:00:00Z",
            "2000-13-01T00:00:00Z",
            "2000-01-01T24:00:00Z",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ring_time_spans_go_on_the_wall_clock_in_whole_milliseconds() {
        let start = WallTime::from_ms(1_000);
        assert_eq!(start.after(2_999_999).ms(), 1_002);
        assert_eq!(
            WallTime::from_ms(i64::MAX - 1).after(u64::MAX),
            WallTime::from_ms(i64::MAX)
        );
        assert_eq!(WallTime::from_ms(5).ms_since(WallTime::from_ms(8)), -3);
    }

    #[test]
    fn ring_and_presentation_times_saturate_at_the_ends() {
        let t = RingTime::from_ns(10);
        assert_eq!(t.saturating_sub(20), RingTime::ZERO);
        assert_eq!(RingTime::MAX.saturating_add(1), RingTime::MAX);
        assert_eq!(t.checked_add(u64::MAX), None);
        assert_eq!(t.saturating_since(RingTime::from_ns(30)), 0);
        assert_eq!(RingTime::from_ns(30).checked_since(t), Some(20));
        let shown = t.presented_after(Ticks90k::new(90));
        assert_eq!(shown, PresentationTime::from_ns(1_000_010));
        assert_eq!(shown.ring_time_before(1_000_000), t);
        assert_eq!(t.presented_after(Ticks90k::new(-90)), PresentationTime::ZERO);
        assert_eq!(shown.distance(PresentationTime::from_ns(10)), 1_000_000);
    }
}
