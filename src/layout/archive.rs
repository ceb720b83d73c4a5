// SPDX-License-Identifier: MPL-2.0
//! The archive's format: the upload queue inside the ring directory, and
//! the object keys and playlists in the bucket.
//!
//! ```text
//! <location>/archive-queue/          QUEUE_DIR_NAME: segments not archived yet
//!   archive.conf                     DESCRIPTION_NAME: where the archive is (description)
//!   segment-000000000041.ts          a second link to the ring's segment file
//!   segment-000000000041.idx         and to its keyframe index
//!   segment-000000000041.info        queued_info_name(41): its journal line
//!   restore-3/                       restore_dir_name(3): archived segments a
//!                                    recording reaching back past the ring takes
//!
//! s3://bucket/<prefix>/
//!   archive.m3u8                     WINDOW_PLAYLIST_NAME: the newest hour, live
//!   2026-12-05T06/                   Hour::folder: segments starting in that hour (UTC)
//!     index.m3u8                     HOUR_PLAYLIST_NAME: that hour, VOD once it is over
//!     063012345-000000000041.ts      object_name: start time (hhmmssmmm), segment number
//!     063012345-000000000041.idx     its keyframe index (the ring's index format)
//! ```
//!
//! The queue is the archive's journal: a segment is linked into it before
//! the ring's journal lists it and leaves it only once its objects are in
//! the bucket, so after a crash what is in the queue is exactly what is
//! still to upload. Links keep the data when the ring evicts its name
//! (within the `archive-hold-size` budget), and the ring never writes over
//! a file with a second link.
//!
//! Keys carry the start time, so that names sort by time within an hour,
//! stay unique when a ring is started afresh (its numbers begin again), and
//! retention finds what expired by listing, without a local record. No key
//! is a prefix of another (some S3 servers mishandle that), and keys use
//! only digits, `-`, `.`, `T` and the ring's file-name letters.

// The bucket side is used only by builds with the archive tier.
#![cfg_attr(not(feature = "archive"), allow(dead_code))]

use super::{SegmentInfo, SegmentNumber, WallTime, segment_file_name, segment_index_name};

/// The queue directory, inside the ring directory.
pub const QUEUE_DIR_NAME: &str = "archive-queue";
/// Where the archive is, in the queue directory, for the ring's readers.
pub const DESCRIPTION_NAME: &str = "archive.conf";
/// Largest description a reader reads.
pub const DESCRIPTION_MAX_BYTES: u64 = 4096;

/// Where a ring's archive is, as the sink records it for readers: `key=value`
/// lines (`location`, `endpoint`, `region`, `path-style` = 0 or 1). No
/// credentials: readers take theirs from their own environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Description {
    pub location: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: bool,
}

impl Description {
    #[must_use]
    pub fn format(&self) -> String {
        let mut text = format!("location={}\n", self.location);
        for (key, value) in [("endpoint", &self.endpoint), ("region", &self.region)] {
            if let Some(v) = value {
                text.push_str(&format!("{key}={v}\n"));
            }
        }
        text.push_str(&format!("path-style={}\n", u8::from(self.path_style)));
        text
    }

    /// Reads a description back; `None` unless it has a location and only
    /// known keys with single-line values of printable ASCII.
    #[must_use]
    pub fn parse(text: &str) -> Option<Description> {
        let mut d = Description::default();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let (key, value) = line.split_once('=')?;
            if !value.bytes().all(|b| b.is_ascii_graphic()) {
                return None;
            }
            match key {
                "location" => d.location = value.to_owned(),
                "endpoint" => d.endpoint = Some(value.to_owned()),
                "region" => d.region = Some(value.to_owned()),
                "path-style" => d.path_style = value == "1",
                _ => return None,
            }
        }
        (!d.location.is_empty()).then_some(d)
    }
}

/// The playlist of each hour, inside its folder.
pub const HOUR_PLAYLIST_NAME: &str = "index.m3u8";
/// The playlist of the newest archived hour, at the prefix.
pub const WINDOW_PLAYLIST_NAME: &str = "archive.m3u8";
/// How far back the window playlist reaches.
pub const WINDOW_PLAYLIST_NS: u64 = 3600 * 1_000_000_000;

const MS_PER_HOUR: i64 = 3_600_000;

/// Name in the queue of the journal line of segment `sequence`.
#[must_use]
pub fn queued_info_name(sequence: SegmentNumber) -> String {
    let mut name = segment_file_name(sequence);
    name.truncate(name.len() - ".ts".len());
    name.push_str(".info");
    name
}

/// The queue's names of segment `sequence`: data, index, journal line.
#[must_use]
pub fn queued_names(sequence: SegmentNumber) -> [String; 3] {
    [
        segment_file_name(sequence),
        segment_index_name(sequence),
        queued_info_name(sequence),
    ]
}

/// The segment number of a queued journal-line name.
#[must_use]
pub fn parse_queued_info_name(name: &str) -> Option<SegmentNumber> {
    let stem = name.strip_suffix(".info")?;
    super::parse_segment_file_name(&format!("{stem}.ts"))
}

/// Prefix of the directories in the queue into which the archive's
/// segments are fetched for a recording reaching back past the ring.
pub const RESTORE_DIR_PREFIX: &str = "restore-";

/// The queue's directory of recording `recording`'s archived segments.
#[must_use]
pub fn restore_dir_name(recording: u32) -> String {
    format!("{RESTORE_DIR_PREFIX}{recording}")
}

/// An hour of UTC: the folder segments starting in it are archived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hour(i64);

impl Hour {
    /// The hour `t` falls in.
    #[must_use]
    pub fn of(t: WallTime) -> Hour {
        Hour(t.ms().div_euclid(MS_PER_HOUR))
    }

    /// Its first millisecond.
    #[must_use]
    pub fn start(self) -> WallTime {
        WallTime::from_ms(self.0.saturating_mul(MS_PER_HOUR))
    }

    /// The hour after it.
    #[must_use]
    pub fn next(self) -> Hour {
        Hour(self.0.saturating_add(1))
    }

    /// `2026-12-05T06`.
    #[must_use]
    pub fn folder(self) -> String {
        let mut s = self.start().to_string();
        s.truncate("2026-12-05T06".len());
        s
    }

    /// The name of `name` in this hour's folder, relative to the prefix
    /// (the store adds the prefix).
    #[must_use]
    pub fn key(self, name: &str) -> String {
        format!("{}/{name}", self.folder())
    }

    /// The hour a folder name names; `None` for anything else.
    #[must_use]
    pub fn parse_folder(name: &str) -> Option<Hour> {
        let b = name.as_bytes();
        let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
        if b.len() != 13 || !digits(0..4) || b[4] != b'-' || !digits(5..7) || b[7] != b'-' || !digits(8..10) {
            return None;
        }
        if b[10] != b'T' || !digits(11..13) {
            return None;
        }
        let t = WallTime::parse_rfc3339(&format!("{name}:00:00Z"))?;
        (Hour::of(t).folder() == name).then_some(Hour::of(t))
    }
}

/// The object name of a segment's data within its hour's folder.
#[must_use]
pub fn object_name(info: &SegmentInfo) -> String {
    let in_hour = info.program_date_time.ms().rem_euclid(MS_PER_HOUR);
    let (m, s, ms) = (in_hour / 60_000, in_hour / 1000 % 60, in_hour % 1000);
    let hour_of_day = Hour::of(info.program_date_time).0.rem_euclid(24);
    format!(
        "{hour_of_day:02}{m:02}{s:02}{ms:03}-{}",
        segment_file_name(info.sequence).trim_start_matches("segment-")
    )
}

/// The object name of a segment's keyframe index within its hour's folder.
#[must_use]
pub fn object_index_name(info: &SegmentInfo) -> String {
    let mut name = object_name(info);
    name.truncate(name.len() - ".ts".len());
    name.push_str(".idx");
    name
}

/// The folder of the recordings kept in the bucket: a VOD playlist each
/// (`recordings/<name>.m3u8`), naming archived segments relative to it.
/// Retention deletes no segment a kept recording names.
pub const RECORDINGS_FOLDER: &str = "recordings";
/// Longest name of a kept recording.
const RECORDING_NAME_MAX: usize = 100;

/// The key of kept recording `name` (relative to the prefix); `None` if
/// `name` is not one: 1 to 100 letters, digits, `.`, `-` and `_`, not
/// starting with `.`, so that it is one object in the recordings folder.
#[must_use]
pub fn recording_key(name: &str) -> Option<String> {
    let fits = (1..=RECORDING_NAME_MAX).contains(&name.len())
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    fits.then(|| format!("{RECORDINGS_FOLDER}/{name}.m3u8"))
}

/// An archived segment's URI in a kept recording's playlist (relative to
/// it, so that players read it from the bucket or a CDN in front).
#[must_use]
pub fn recording_uri(info: &SegmentInfo) -> String {
    format!("../{}/{}", Hour::of(info.program_date_time).folder(), object_name(info))
}

/// The keys (relative to the prefix) of the segment and its keyframe index
/// that a kept recording's URI names; `None` for any other line.
#[must_use]
pub fn parse_recording_uri(uri: &str) -> Option<[String; 2]> {
    let (folder, name) = uri.strip_prefix("../")?.split_once('/')?;
    let hour = Hour::parse_folder(folder)?;
    parse_object_name(hour, name)?;
    let index = format!("{}.idx", name.strip_suffix(".ts")?);
    Some([hour.key(name), hour.key(&index)])
}

/// What an object name in the folder of `hour` says: the segment's number
/// and its start time; `None` for any other name (the parsers of the
/// archive's playlists and listings accept nothing else).
#[must_use]
pub fn parse_object_name(hour: Hour, name: &str) -> Option<(SegmentNumber, WallTime)> {
    let (time, rest) = name.split_once('-')?;
    if time.len() != 9 || !time.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sequence = super::parse_segment_file_name(&format!("segment-{rest}"))?;
    let field = |r: std::ops::Range<usize>| time[r].parse::<i64>().ok();
    let (hh, mm, ss, ms) = (field(0..2)?, field(2..4)?, field(4..6)?, field(6..9)?);
    if hh != hour.0.rem_euclid(24) || mm > 59 || ss > 59 {
        return None;
    }
    let start = WallTime::from_ms(hour.start().ms() + (mm * 60 + ss) * 1000 + ms);
    Some((sequence, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(sequence: u64, pdt: &str) -> SegmentInfo {
        SegmentInfo {
            sequence: SegmentNumber::new(sequence),
            duration_ns: 1_000_000_000,
            bytes: 188,
            program_date_time: WallTime::parse_rfc3339(pdt).expect("date"),
            discontinuity: false,
            independent: true,
        }
    }

    #[test]
    fn kept_recordings_name_archived_segments_and_nothing_else() {
        assert_eq!(
            recording_key("goal-2026_12.final").as_deref(),
            Some("recordings/goal-2026_12.final.m3u8")
        );
        for bad in ["", ".hidden", "a/b", "..", "../x", "a b", "é", &"x".repeat(101)] {
            assert_eq!(recording_key(bad), None, "{bad:?}");
        }
        let a = info(41, "2026-12-05T06:30:12.345Z");
        assert_eq!(recording_uri(&a), "../2026-12-05T06/063012345-000000000041.ts");
        assert_eq!(
            parse_recording_uri(&recording_uri(&a)),
            Some([
                "2026-12-05T06/063012345-000000000041.ts".to_owned(),
                "2026-12-05T06/063012345-000000000041.idx".to_owned()
            ])
        );
        for bad in [
            "../../etc/passwd",
            "/2026-12-05T06/063012345-000000000041.ts",
            "../2026-12-05T06/../063012345-000000000041.ts",
            "../2026-12-05T07/063012345-000000000041.ts",
            "../2026-12-05T06/063012345-000000000041.idx",
            "https://example.com/x.ts",
            "#EXTINF:1.000,",
        ] {
            assert_eq!(parse_recording_uri(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn object_names_sort_by_time_and_read_back() {
        let a = info(41, "2026-12-05T06:30:12.345Z");
        let hour = Hour::of(a.program_date_time);
        assert_eq!(hour.folder(), "2026-12-05T06");
        assert_eq!(Hour::parse_folder("2026-12-05T06"), Some(hour));
        assert_eq!(object_name(&a), "063012345-000000000041.ts");
        assert_eq!(object_index_name(&a), "063012345-000000000041.idx");
        assert_eq!(
            parse_object_name(hour, &object_name(&a)),
            Some((a.sequence, a.program_date_time))
        );
        // A ring started afresh numbers from 0 again: later still sorts later.
        let b = info(0, "2026-12-05T06:31:00.000Z");
        assert!(object_name(&b) > object_name(&a));
        assert_eq!(hour.key(&object_name(&a)), "2026-12-05T06/063012345-000000000041.ts");
    }

    #[test]
    fn foreign_names_are_refused() {
        let hour = Hour::of(WallTime::parse_rfc3339("2026-12-05T06:00:00Z").expect("date"));
        for bad in [
            "063012345-000000000041.idx",
            "073012345-000000000041.ts",
            "066012345-000000000041.ts",
            "06301234-000000000041.ts",
            "063012345-41.ts",
            "063012345-000000000041.ts/x",
            "../063012345-000000000041.ts",
            "x063012345-000000000041.ts",
        ] {
            assert_eq!(parse_object_name(hour, bad), None, "{bad}");
        }
        for bad in [
            "2026-12-05T6",
            "2026-12-05 06",
            "2026-13-05T06",
            "2026-12-05T24",
            "../2026-12-05",
        ] {
            assert_eq!(Hour::parse_folder(bad), None, "{bad}");
        }
    }

    #[test]
    fn descriptions_round_trip_and_refuse_strangers() {
        let d = Description {
            location: "s3://tv/ch1".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: None,
            path_style: true,
        };
        assert_eq!(Description::parse(&d.format()), Some(d));
        assert_eq!(Description::parse("endpoint=http://x\n"), None);
        assert_eq!(Description::parse("location=s3://a/b\nsecret=x\n"), None);
        assert_eq!(Description::parse("location=s3://a/b c\n"), None);
    }

    #[test]
    fn queued_names_round_trip() {
        let n = SegmentNumber::new(7);
        assert_eq!(queued_info_name(n), "segment-000000000007.info");
        assert_eq!(parse_queued_info_name(&queued_info_name(n)), Some(n));
        assert_eq!(parse_queued_info_name("segment-7.info"), None);
        assert_eq!(queued_names(n)[1], "segment-000000000007.idx");
    }
}
