// SPDX-License-Identifier: MPL-2.0
//! The on-disk format of a ring directory: every name in it and every record
//! written there. The writer ([`crate::ring`], [`crate::recorder`]) and the
//! readers ([`crate::reader`], adoption after a restart) both use this module
//! and neither imports the other, so a change to the format is made here once
//! and shows in both.
//!
//! ```text
//! <location>/
//!   .streambuffer.lock         LOCK_NAME: held (advisory lock) by the one writer
//!   .reusable-segment          SPARE_NAME: an evicted segment's file, for a moment
//!   ring.journal               JOURNAL_NAME: one line per completed segment (journal)
//!   index.m3u8                 PLAYLIST_NAME: HLS media playlist (playlist)
//!   iframes.m3u8               IFRAME_PLAYLIST_NAME: its keyframes, EXT-X-I-FRAMES-ONLY (playlist)
//!   master.m3u8                MULTIVARIANT_PLAYLIST_NAME: names both (playlist)
//!   .index.m3u8.tmp            the next playlist, before it replaces the current one
//!   segment-000000000041.ts    segment_file_name(41): oldest segment in the window
//!   ...
//!   segment-000000000047.ts    segment being written
//!   segment-000000000047.idx   segment_index_name(47): its keyframe index (index)
//!   ring.progress              PROGRESS_NAME: how much of a reused file is new (progress)
//!   archive-queue/             segments waiting for the archive (archive)
//! ```
//!
//! Everything read from such a directory is untrusted: the parsers here
//! refuse what they do not recognise rather than guess.

pub mod archive;
pub mod index;
pub mod journal;
pub mod playlist;
pub mod progress;
pub mod time;

pub use time::{PresentationTime, RingTime, WallTime};

/// Lock file that makes one writer the owner of a directory.
pub const LOCK_NAME: &str = ".streambuffer.lock";
/// The evicted segment file waiting to become the next segment.
pub const SPARE_NAME: &str = ".reusable-segment";
/// The ring's journal of completed segments.
pub const JOURNAL_NAME: &str = "ring.journal";
/// The HLS media playlist, in the ring and in reference recordings.
pub const PLAYLIST_NAME: &str = "index.m3u8";
/// The I-frame playlist of the keyframes (`iframe-playlist`).
pub const IFRAME_PLAYLIST_NAME: &str = "iframes.m3u8";
/// The multivariant playlist naming [`PLAYLIST_NAME`] and
/// [`IFRAME_PLAYLIST_NAME`].
pub const MULTIVARIANT_PLAYLIST_NAME: &str = "master.m3u8";
/// Where the writer publishes how much of a reused file is new.
pub const PROGRESS_NAME: &str = "ring.progress";

/// Largest bytes of a playlist a reader reads: about 1.3 million entries.
/// A larger file (or a link to `/dev/zero`) is refused, not read until
/// memory runs out.
pub const PLAYLIST_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Largest journal adoption reads: several times the lines of a window of a
/// million segments (dead lines stay until the journal is compacted). A
/// larger one is ignored and every segment recovered from its file.
pub const JOURNAL_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// No segment lasts longer than this: the sink cuts at most 3 x its largest
/// segment duration (1 h). A journal line or playlist entry saying more is
/// refused like a malformed one.
pub const MAX_SEGMENT_DURATION_NS: u64 = 24 * 3600 * 1_000_000_000;

const SEGMENT_PREFIX: &str = "segment-";
const SEGMENT_SUFFIX: &str = ".ts";
const INDEX_SUFFIX: &str = ".idx";
/// Digits in a segment file name: enough for a 1 s segment every second for
/// thirty thousand years, and names still sort in sequence order.
const SEGMENT_DIGITS: usize = 12;

/// A segment's media sequence number (RFC 8216 `EXT-X-MEDIA-SEQUENCE`):
/// its place in the ring, which only grows, and its files' names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentNumber(u64);

impl SegmentNumber {
    pub const FIRST: SegmentNumber = SegmentNumber(0);
    /// The highest number a segment can have: the largest that fits the
    /// twelve digits of its name. A 1 s segment every second takes thirty
    /// thousand years to get there; a ring that finds a segment with this
    /// number (planted, or from a foreign writer) cannot go on numbering and
    /// refuses to open.
    pub const MAX: SegmentNumber = SegmentNumber(999_999_999_999);

    #[must_use]
    pub const fn new(n: u64) -> Self {
        SegmentNumber(n)
    }

    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The number after it (stopping at `u64::MAX`, far past [`Self::MAX`]).
    #[must_use]
    pub const fn next(self) -> Self {
        SegmentNumber(self.0.saturating_add(1))
    }

    /// The number before it; `None` for the first.
    #[must_use]
    pub fn previous(self) -> Option<Self> {
        self.0.checked_sub(1).map(SegmentNumber)
    }

    /// Whether a file can be named with it (see [`Self::MAX`]).
    #[must_use]
    pub const fn is_nameable(self) -> bool {
        self.0 <= Self::MAX.0
    }
}

/// Decimal digits, as the journal writes it.
impl std::str::FromStr for SegmentNumber {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(SegmentNumber)
    }
}

impl std::fmt::Display for SegmentNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// File name of the segment with this sequence number.
#[must_use]
pub fn segment_file_name(sequence: SegmentNumber) -> String {
    format!("{SEGMENT_PREFIX}{:0SEGMENT_DIGITS$}{SEGMENT_SUFFIX}", sequence.0)
}

/// File name of the keyframe index of the segment with this sequence number.
#[must_use]
pub fn segment_index_name(sequence: SegmentNumber) -> String {
    format!("{SEGMENT_PREFIX}{:0SEGMENT_DIGITS$}{INDEX_SUFFIX}", sequence.0)
}

/// The sequence number in a segment file name, if it is one of ours:
/// exactly the prefix, twelve digits and the suffix, no directory part.
#[must_use]
pub fn parse_segment_file_name(name: &str) -> Option<SegmentNumber> {
    let digits = name.strip_prefix(SEGMENT_PREFIX)?.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(SegmentNumber)
}

/// A completed segment as the journal records it and the playlist lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub sequence: SegmentNumber,
    pub duration_ns: u64,
    pub bytes: u64,
    /// Wall-clock time of the first packet.
    pub program_date_time: WallTime,
    /// The timeline jumped between the previous segment and this one.
    pub discontinuity: bool,
    /// It starts at a random-access point (and so decodes on its own).
    /// False only for a forced cut in a stream where none was found in
    /// time: readers and the playlist do not offer it as a place to start.
    pub independent: bool,
}

impl SegmentInfo {
    /// Whether every field is one the sink could have written: a sequence
    /// number that fits a name, a duration of at most a day, a non-empty
    /// whole number of packets, a date-time from 1970 to `WallTime::MAX`.
    #[must_use]
    pub fn is_plausible(&self) -> bool {
        self.sequence.is_nameable()
            && self.duration_ns <= MAX_SEGMENT_DURATION_NS
            && self.bytes > 0
            && self.bytes.is_multiple_of(PACKET_BYTES)
            && self.program_date_time.is_plausible()
    }
}

/// Size of the packets segments are made of.
const PACKET_BYTES: u64 = crate::ts::PACKET_SIZE as u64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_refuse_others() {
        assert_eq!(segment_file_name(SegmentNumber::new(41)), "segment-000000000041.ts");
        assert_eq!(
            parse_segment_file_name("segment-000000000041.ts"),
            Some(SegmentNumber::new(41))
        );
        for bad in [
            "segment-41.ts",
            "segment-0000000000041.ts",
            "segment-00000000004a.ts",
            "x/segment-000000000041.ts",
            "segment-000000000041.ts.tmp",
            SPARE_NAME,
        ] {
            assert_eq!(parse_segment_file_name(bad), None, "{bad}");
        }
        assert!(segment_file_name(SegmentNumber::new(9)) < segment_file_name(SegmentNumber::new(10)));
        assert_eq!(
            segment_file_name(SegmentNumber::MAX).len(),
            segment_file_name(SegmentNumber::new(0)).len()
        );
    }

    #[test]
    fn implausible_records_are_refused() {
        let good = SegmentInfo {
            sequence: SegmentNumber::new(41),
            duration_ns: 6_000_000_000,
            bytes: 188 * 1000,
            program_date_time: WallTime::from_ms(1_795_833_785_007),
            discontinuity: false,
            independent: true,
        };
        assert!(good.is_plausible());
        for bad in [
            SegmentInfo {
                sequence: SegmentNumber::MAX.next(),
                ..good.clone()
            },
            SegmentInfo {
                duration_ns: u64::MAX,
                ..good.clone()
            },
            SegmentInfo {
                duration_ns: MAX_SEGMENT_DURATION_NS + 1,
                ..good.clone()
            },
            SegmentInfo {
                bytes: 0,
                ..good.clone()
            },
            SegmentInfo {
                bytes: 189,
                ..good.clone()
            },
            SegmentInfo {
                program_date_time: WallTime::from_ms(-1),
                ..good.clone()
            },
            SegmentInfo {
                program_date_time: WallTime::from_ms(i64::MIN),
                ..good.clone()
            },
            SegmentInfo {
                program_date_time: WallTime::from_ms(WallTime::MAX.ms() + 1),
                ..good.clone()
            },
        ] {
            assert!(!bad.is_plausible(), "{bad:?}");
        }
    }
}
