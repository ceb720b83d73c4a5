// SPDX-License-Identifier: MPL-2.0
//! The HLS media playlist (RFC 8216): the tags the writer emits, and the
//! parser readers use on it. The parser treats the file as untrusted input:
//! only entries naming a segment file of the ring itself (exactly
//! `segment-NNNNNNNNNNNN.ts`, no directory part) are accepted, so a playlist
//! cannot make a reader open anything outside the ring directory.

use std::fmt::Write as _;

use super::index::Keyframe;
use super::{
    MAX_SEGMENT_DURATION_NS, RingTime, SegmentInfo, SegmentNumber, WallTime, parse_segment_file_name, segment_file_name,
};

/// A comment (not a tag: HLS clients ignore it) before each segment that
/// does not start at a random-access point. The writer never lists such a
/// segment first; readers do not start at one.
pub const FORCED_CUT_COMMENT: &str =
    "# streambuffer: forced cut, no random-access point at the start of the next segment";

/// The `EXT-X-TARGETDURATION` a segment of `duration_ns` needs, in whole
/// seconds: RFC 8216 (4.3.3.1) asks that every EXTINF, rounded to the
/// nearest integer, be at most the target, so this is the duration rounded
/// to the nearest second, and at least 1. The one rule for every playlist
/// the crate writes and every cut decision that minds the target.
#[must_use]
pub fn target_duration_s(duration_ns: u64) -> u64 {
    (duration_ns.saturating_add(500_000_000) / 1_000_000_000).max(1)
}

/// What goes into the header of the playlist.
#[derive(Debug, Clone, Copy)]
pub struct PlaylistHeader {
    /// EXT-X-TARGETDURATION in whole seconds.
    pub target_duration_s: u64,
    /// EXT-X-DISCONTINUITY-SEQUENCE: discontinuities before the first entry.
    pub discontinuity_sequence: u64,
    /// Write EXT-X-ENDLIST: no segment will be added any more.
    pub ended: bool,
    /// `EXT-X-START:TIME-OFFSET=...,PRECISE=YES`: where in the first
    /// segment playback starts (a reference recording's start).
    pub start_offset_ns: Option<u64>,
    /// Write EXT-X-PLAYLIST-TYPE:VOD: the list will never change (recordings).
    pub vod: bool,
}

/// Renders the playlist for `entries` (oldest first) into `out`.
///
/// The cost is proportional to the number of entries, which the caller bounds
/// with `playlist-length`.
pub fn render<'a>(out: &mut String, header: PlaylistHeader, entries: impl Iterator<Item = &'a SegmentInfo>) {
    render_with_uris(out, header, entries, |s| segment_file_name(s.sequence), false);
}

/// [`render`] with each entry's URI from `uri`, and, with `every_date`, an
/// `EXT-X-PROGRAM-DATE-TIME` on every entry (the archive's playlists, whose
/// readers look segments up by date without adding up durations).
pub fn render_with_uris<'a>(
    out: &mut String,
    header: PlaylistHeader,
    entries: impl Iterator<Item = &'a SegmentInfo>,
    uri: impl Fn(&SegmentInfo) -> String,
    every_date: bool,
) {
    out.clear();
    let mut entries = entries.peekable();
    let media_sequence = entries.peek().map_or(0, |s| s.sequence.get());
    // Infallible: fmt::Write for String never fails.
    out.push_str("#EXTM3U\n#EXT-X-VERSION:3\n");
    if header.vod {
        out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    }
    if let Some(ns) = header.start_offset_ns {
        let _ = writeln!(
            out,
            "#EXT-X-START:TIME-OFFSET={}.{:03},PRECISE=YES",
            ns / 1_000_000_000,
            ns / 1_000_000 % 1000
        );
    }
    let _ = write!(
        out,
        "#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{}\n#EXT-X-DISCONTINUITY-SEQUENCE:{}\n",
        header.target_duration_s, media_sequence, header.discontinuity_sequence
    );
    let mut previous_end: Option<WallTime> = None;
    for s in entries {
        if s.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if !s.independent {
            out.push_str(FORCED_CUT_COMMENT);
            out.push('\n');
        }
        // Date-time on the first entry and wherever the wall clock does not
        // simply continue from the previous segment.
        if every_date || s.discontinuity || previous_end.is_none_or(|end| end.ms_since(s.program_date_time).abs() > 1) {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", s.program_date_time);
        }
        previous_end = Some(s.program_date_time.after(s.duration_ns));
        let _ = write!(
            out,
            "#EXTINF:{}.{:03},\n{}\n",
            s.duration_ns / 1_000_000_000,
            (s.duration_ns / 1_000_000) % 1000,
            uri(s)
        );
    }
    if header.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
}

/// One segment's keyframes, for the I-frame playlist.
#[derive(Debug, Clone, Copy)]
pub struct SegmentKeyframes<'a> {
    pub info: &'a SegmentInfo,
    /// Ring time of the segment's start.
    pub start: RingTime,
    /// Bytes of the tables (PAT, PMTs) at its head: the EXT-X-MAP.
    pub head_bytes: u32,
    /// Its keyframes, in order (offset, size and ring time are used).
    pub keyframes: &'a [Keyframe],
    /// The number of its first keyframe: the I-frame playlist's media
    /// sequence numbers are keyframe numbers.
    pub first_number: u64,
}

/// Renders the I-frame playlist (RFC 8216 4.3.3.6, EXT-X-I-FRAMES-ONLY) of
/// `segments` (oldest first) into `out`: each keyframe is a media segment,
/// the byte range of its access unit in its segment file, lasting until the
/// next keyframe (or the segment's end); each segment file's tables are its
/// EXT-X-MAP, so that any keyframe decodes on its own. Segments without a
/// keyframe (or with keyframes of unknown size) add nothing.
pub fn render_iframes<'a>(
    out: &mut String,
    header: PlaylistHeader,
    segments: impl Iterator<Item = SegmentKeyframes<'a>>,
) {
    out.clear();
    let mut segments = segments
        .filter(|s| s.keyframes.iter().any(|k| k.size > 0 && k.offset > 0))
        .peekable();
    let media_sequence = segments.peek().map_or(0, |s| s.first_number);
    // Version 5: EXT-X-MAP in an I-frames-only playlist (4: byte ranges).
    out.push_str("#EXTM3U\n#EXT-X-VERSION:5\n");
    let _ = write!(
        out,
        "#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{}\n#EXT-X-DISCONTINUITY-SEQUENCE:{}\n#EXT-X-I-FRAMES-ONLY\n",
        header.target_duration_s, media_sequence, header.discontinuity_sequence
    );
    let mut first = true;
    for s in segments {
        let name = segment_file_name(s.info.sequence);
        let end = s.start.saturating_add(s.info.duration_ns);
        if s.info.discontinuity && !first {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        first = false;
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{name}\",BYTERANGE=\"{}@0\"", s.head_bytes);
        // Every keyframe gets an entry, so that numbers stay those of the
        // keyframes; one whose size is unknown spans to the next.
        for (i, k) in s.keyframes.iter().enumerate() {
            let next = s.keyframes.get(i + 1);
            let until = next.map_or(end, |n| n.ring_time).max(k.ring_time);
            let duration_ns = until.saturating_since(k.ring_time);
            let size = match k.size {
                0 => next.map_or(s.info.bytes, |n| n.offset).saturating_sub(k.offset),
                size => u64::from(size),
            };
            if i == 0 {
                let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", k.wall_time);
            }
            let _ = write!(
                out,
                "#EXTINF:{}.{:03},\n#EXT-X-BYTERANGE:{size}@{}\n{name}\n",
                duration_ns / 1_000_000_000,
                (duration_ns / 1_000_000) % 1000,
                k.offset
            );
        }
    }
    if header.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
}

/// Renders the multivariant playlist naming the media playlist
/// `media_uri` (peak segment bit rate `bandwidth`, bits/s) and the I-frame
/// playlist `iframes_uri` (its peak, `iframe_bandwidth`).
pub fn render_multivariant(
    out: &mut String,
    media_uri: &str,
    bandwidth: u64,
    iframes_uri: &str,
    iframe_bandwidth: u64,
) {
    out.clear();
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:5\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH={}\n{media_uri}\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH={},URI=\"{iframes_uri}\"\n",
        bandwidth.max(1),
        iframe_bandwidth.max(1)
    );
}

/// One accepted playlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub sequence: SegmentNumber,
    pub duration_ns: u64,
    /// Explicit `EXT-X-PROGRAM-DATE-TIME`.
    pub program_date_time: Option<WallTime>,
    pub discontinuity: bool,
    /// Not marked as a forced cut: it starts at a random-access point.
    pub independent: bool,
}

impl Entry {
    /// The entry as a segment starting at `start` (its own date-time, or
    /// one the reader worked out); a playlist does not say its size (0).
    #[must_use]
    #[cfg_attr(not(any(feature = "archive", feature = "serve")), allow(dead_code))]
    pub fn dated(&self, start: WallTime) -> SegmentInfo {
        SegmentInfo {
            sequence: self.sequence,
            duration_ns: self.duration_ns,
            bytes: 0,
            program_date_time: start,
            discontinuity: self.discontinuity,
            independent: self.independent,
        }
    }
}

/// What the playlist says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub entries: Vec<Entry>,
    /// `EXT-X-ENDLIST`: the writer has finished.
    pub ended: bool,
    /// A non-negative `EXT-X-START` TIME-OFFSET (at most a day): where
    /// playback of a finished list starts.
    pub start_offset_ns: Option<u64>,
    /// Entries refused: a URI that is not a ring segment, a sequence number
    /// not after the previous entry's, no duration or an absurd one (over a
    /// day). A date-time before 1970 or after `WallTime::MAX` is ignored.
    pub rejected: usize,
}

/// Parses playlist text; never fails, malformed lines are ignored.
#[must_use]
pub fn parse(text: &str) -> Listing {
    parse_with_uris(text, parse_segment_file_name)
}

/// [`parse`] for a playlist whose URIs `segment_of` turns into segment
/// numbers (`None`: the entry is refused).
#[must_use]
pub fn parse_with_uris(text: &str, segment_of: impl Fn(&str) -> Option<SegmentNumber>) -> Listing {
    let mut listing = Listing::default();
    let mut duration_ns = None;
    let mut pdt = None;
    let mut discontinuity = false;
    let mut independent = true;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("#EXTINF:") {
            duration_ns = parse_seconds(rest.split(',').next().unwrap_or("")).filter(|&d| d <= MAX_SEGMENT_DURATION_NS);
        } else if let Some(rest) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = WallTime::parse_rfc3339(rest).filter(|t| t.is_plausible());
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if line == FORCED_CUT_COMMENT {
            independent = false;
        } else if let Some(rest) = line.strip_prefix("#EXT-X-START:") {
            listing.start_offset_ns = rest
                .split(',')
                .find_map(|a| a.strip_prefix("TIME-OFFSET="))
                .and_then(parse_seconds)
                .filter(|&ns| ns <= MAX_SEGMENT_DURATION_NS);
        } else if line == "#EXT-X-ENDLIST" {
            listing.ended = true;
        } else if !line.is_empty() && !line.starts_with('#') {
            let after_previous = |seq: &SegmentNumber| listing.entries.last().is_none_or(|e| *seq > e.sequence);
            match (segment_of(line).filter(after_previous), duration_ns.take()) {
                (Some(sequence), Some(duration_ns)) => listing.entries.push(Entry {
                    sequence,
                    duration_ns,
                    program_date_time: pdt.take(),
                    discontinuity: std::mem::take(&mut discontinuity),
                    independent: std::mem::replace(&mut independent, true),
                }),
                _ => {
                    listing.rejected += 1;
                    pdt = None;
                    discontinuity = false;
                    independent = true;
                }
            }
        }
    }
    listing
}

/// "6.006" -> 6_006_000_000 ns, without going through floating point.
fn parse_seconds(s: &str) -> Option<u64> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = int.parse().ok()?;
    let mut frac_ns = 0u64;
    for (i, d) in frac.bytes().take(9).enumerate() {
        frac_ns += u64::from(d - b'0') * 10u64.pow(8 - i as u32);
    }
    whole.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live or ended (not VOD) playlist's header.
    fn header(target_duration_s: u64, discontinuity_sequence: u64, ended: bool) -> PlaylistHeader {
        PlaylistHeader {
            target_duration_s,
            discontinuity_sequence,
            ended,
            vod: false,
            start_offset_ns: None,
        }
    }

    fn seg(sequence: u64, duration_ns: u64, pdt: i64, discontinuity: bool) -> SegmentInfo {
        SegmentInfo {
            sequence: SegmentNumber::new(sequence),
            duration_ns,
            bytes: 188,
            program_date_time: WallTime::from_ms(pdt),
            discontinuity,
            independent: true,
        }
    }

    /// A forced cut is marked by a comment m3u8-rs ignores, and the parser
    /// gives it back; so does the journal line.
    #[test]
    fn the_target_duration_is_the_rounded_extinf() {
        const S: u64 = 1_000_000_000;
        for (ns, s) in [
            (0, 1),
            (S / 10, 1),
            (2 * S + S / 2 - 1, 2),
            (2 * S + S / 2, 3),
            (6 * S, 6),
            (u64::MAX, 18_446_744_073),
        ] {
            assert_eq!(target_duration_s(ns), s, "{ns} ns");
        }
    }

    #[test]
    fn forced_cuts_are_marked_for_readers() {
        let t0 = 1_700_000_000_000;
        let mut forced = seg(8, 2 * 1_000_000_000, t0 + 2000, false);
        forced.independent = false;
        let segs = [
            seg(7, 2_000_000_000, t0, false),
            forced.clone(),
            seg(9, 2_000_000_000, t0 + 4000, false),
        ];
        let mut out = String::new();
        let header = header(2, 0, false);
        render(&mut out, header, segs.iter());
        let oracle = m3u8_rs::parse_media_playlist_res(out.as_bytes()).expect("parses");
        assert_eq!(oracle.segments.len(), 3);
        let listing = parse(&out);
        let independent: Vec<bool> = listing.entries.iter().map(|e| e.independent).collect();
        assert_eq!(independent, vec![true, false, true]);
        let line = crate::layout::journal::format_line(&forced);
        assert!(line.ends_with(" forced\n"), "{line}");
        assert_eq!(crate::layout::journal::parse_line(&line), Some(forced));
        assert_eq!(
            crate::layout::journal::parse_line("8 2000000000 188 1700000002000 0 other"),
            None
        );
    }

    #[test]
    fn renders_a_valid_live_playlist() {
        let t0 = 1_700_000_000_000;
        let segs = [
            seg(7, 6_006_000_000, t0, false),
            seg(8, 5_994_000_000, t0 + 6006, false),
            seg(9, 2_000_000_000, t0 + 99_000, true),
        ];
        let mut out = String::new();
        render(&mut out, header(7, 3, false), segs.iter());
        let parsed = m3u8_rs::parse_media_playlist_res(out.as_bytes()).expect("parses");
        assert_eq!(parsed.media_sequence, 7);
        assert_eq!(parsed.discontinuity_sequence, 3);
        assert_eq!(parsed.target_duration, 7);
        assert!(!parsed.end_list);
        assert_eq!(parsed.segments.len(), 3);
        assert_eq!(parsed.segments[0].uri, "segment-000000000007.ts");
        assert!((parsed.segments[1].duration - 5.994).abs() < 1e-6);
        assert!(parsed.segments[2].discontinuity);
        assert!(parsed.segments[0].program_date_time.is_some());
        assert!(
            parsed.segments[1].program_date_time.is_none(),
            "continuous wall clock needs no tag"
        );
        assert!(parsed.segments[2].program_date_time.is_some());
        render(&mut out, header(7, 0, true), segs.iter());
        assert!(
            m3u8_rs::parse_media_playlist_res(out.as_bytes())
                .expect("parses")
                .end_list
        );
    }

    #[test]
    fn round_trips_the_writers_playlist() {
        let segs: Vec<SegmentInfo> = (5..9)
            .map(|i| SegmentInfo {
                sequence: SegmentNumber::new(i),
                duration_ns: 6_006_000_000,
                bytes: 1,
                program_date_time: WallTime::from_ms(1_795_833_785_007 + (i as i64 - 5) * 6006),
                discontinuity: i == 7,
                independent: true,
            })
            .collect();
        let mut text = String::new();
        render(&mut text, header(7, 0, true), segs.iter());
        let l = parse(&text);
        assert!(l.ended);
        assert_eq!(l.rejected, 0);
        assert_eq!(l.entries.len(), 4);
        assert_eq!(l.entries[0].sequence, SegmentNumber::new(5));
        assert_eq!(l.entries[0].duration_ns, 6_006_000_000);
        assert_eq!(
            l.entries[0].program_date_time,
            Some(WallTime::from_ms(1_795_833_785_007))
        );
        assert!(l.entries[2].discontinuity);
        assert_eq!(
            l.entries[2].program_date_time,
            Some(WallTime::from_ms(1_795_833_785_007 + 2 * 6006))
        );
    }

    #[test]
    fn refuses_entries_outside_the_ring() {
        let text = "#EXTM3U\n#EXTINF:1.0,\n../etc/passwd\n#EXTINF:1.0,\n/abs/segment-000000000001.ts\n\
                    #EXTINF:1.0,\nsub/segment-000000000001.ts\n#EXTINF:1.0,\nhttp://x/segment-000000000001.ts\n\
                    #EXTINF:1.0,\nsegment-000000000002.ts\n";
        let l = parse(text);
        assert_eq!(l.rejected, 4);
        assert_eq!(l.entries.len(), 1);
        assert_eq!(l.entries[0].sequence, SegmentNumber::new(2));
    }

    #[test]
    fn refuses_absurd_durations_and_disordered_entries() {
        let text = "#EXTM3U\n#EXTINF:18446744073.709551615,\nsegment-000000000001.ts\n\
                    #EXTINF:86400.001,\nsegment-000000000002.ts\n\
                    #EXT-X-PROGRAM-DATE-TIME:0000-01-01T00:00:00Z\n#EXTINF:6.0,\nsegment-000000000005.ts\n\
                    #EXTINF:6.0,\nsegment-000000000004.ts\n#EXTINF:6.0,\nsegment-000000000005.ts\n";
        let l = parse(text);
        assert_eq!(l.rejected, 4, "{l:?}");
        assert_eq!(l.entries.len(), 1);
        assert_eq!(
            (l.entries[0].sequence.get(), l.entries[0].duration_ns),
            (5, 6_000_000_000)
        );
        assert_eq!(
            l.entries[0].program_date_time, None,
            "year 0 is not a date the sink writes"
        );
    }

    #[test]
    fn parses_seconds() {
        assert_eq!(parse_seconds("2.5"), Some(2_500_000_000));
        assert_eq!(parse_seconds("-1"), None);
    }
}
