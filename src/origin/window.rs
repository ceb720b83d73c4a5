// SPDX-License-Identifier: MPL-2.0
//! Windows of a ring's playlist on request, as origins offer them:
//! `?start=&end=` by wall-clock time (start-over and catch-up: a VOD
//! playlist once `end` is past, a growing one before) and `?delay=` (the
//! live playlist as it was that many seconds ago). Made from the ring's
//! own playlist, each entry dated (explicitly, or by the durations since
//! the last date-time), and written with a date-time on every entry.

use super::request::archived_uri;
use crate::layout::playlist::{self, Listing, PlaylistHeader, target_duration_s};
use crate::layout::{SegmentInfo, WallTime, segment_file_name};

/// Longest delay accepted: a year.
const DELAY_MAX_S: u64 = 365 * 24 * 3600;

/// What part of the playlist a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The playlist as the ring writes it.
    Whole,
    /// The live playlist as it was this many nanoseconds ago.
    Delay(u64),
    /// The content received from `start` to `end` (open: still growing).
    Range { start: WallTime, end: Option<WallTime> },
}

/// Reads a query string (`start=2026-12-05T06:00:00Z&end=…`, `delay=30`);
/// other parameters are left to others.
///
/// # Errors
/// A malformed value, `end` without `start` or not after it, or `delay`
/// with `start`.
pub fn parse_query(query: Option<&str>) -> Result<Window, &'static str> {
    let (mut start, mut end, mut delay) = (None, None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value).ok_or("a query value is not percent-encoded UTF-8")?;
        match key {
            "start" => start = Some(WallTime::parse_rfc3339(&value).ok_or("start is not an RFC 3339 date-time")?),
            "end" => end = Some(WallTime::parse_rfc3339(&value).ok_or("end is not an RFC 3339 date-time")?),
            "delay" => {
                let seconds: u64 = value.parse().map_err(|_| "delay is not a whole number of seconds")?;
                if seconds > DELAY_MAX_S {
                    return Err("delay is longer than a year");
                }
                delay = Some(seconds * 1_000_000_000);
            }
            _ => {}
        }
    }
    match (start, end, delay) {
        (None, None, None) => Ok(Window::Whole),
        (None, None, Some(ns)) => Ok(Window::Delay(ns)),
        (Some(start), end, None) => match end {
            Some(e) if e <= start => Err("end is not after start"),
            _ => Ok(Window::Range { start, end }),
        },
        (None, Some(_), _) => Err("end without start"),
        (Some(_), _, Some(_)) => Err("delay and start together"),
    }
}

/// Percent-decodes a query value (`+` is a space, as forms send it; a date's
/// offset must then be sent as `%2B`).
fn decode(value: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut input = value.bytes();
    while let Some(b) = input.next() {
        match b {
            b'%' => {
                let hi = char::from(input.next()?).to_digit(16)?;
                let lo = char::from(input.next()?).to_digit(16)?;
                bytes.push(u8::try_from(hi * 16 + lo).ok()?);
            }
            b'+' => bytes.push(b' '),
            _ => bytes.push(b),
        }
    }
    String::from_utf8(bytes).ok()
}

/// The entries of `listing`, each with the date-time it starts at: its
/// own, or the one before's plus its duration (none before the first date).
pub(super) fn dated(listing: &Listing) -> Vec<SegmentInfo> {
    let mut next: Option<WallTime> = None;
    listing
        .entries
        .iter()
        .filter_map(|e| {
            let start = e.program_date_time.or(next)?;
            next = Some(start.after(e.duration_ns));
            Some(e.dated(start))
        })
        .collect()
}

/// The wall-clock span of `window` older than the ring's first segment,
/// which the ring's archive holds if anything does: `None` if the ring
/// covers the window (or the window is the ring's own playlist). A delay
/// past the ring reaches back as far as the ring is long.
#[must_use]
pub fn archive_span(listing: &Listing, window: Window, now: WallTime) -> Option<(WallTime, WallTime)> {
    let ring = dated(listing);
    let first = ring.first().map_or(WallTime::MAX, |s| s.program_date_time);
    let (from, to) = match window {
        Window::Whole => return None,
        Window::Range { start, end } => (start, end.map_or(first, |e| e.min(first))),
        Window::Delay(ns) => {
            let cutoff = now.before(ns);
            let span = match (ring.first(), ring.last()) {
                (Some(f), Some(l)) => l.program_date_time.after(l.duration_ns).ms_since(f.program_date_time),
                _ => 0,
            };
            (
                WallTime::from_ms(cutoff.ms().saturating_sub(span.max(60_000))),
                cutoff.min(first),
            )
        }
    };
    (from < first && from < to).then_some((from, to))
}

/// The playlist of `window` of the ring playlist `listing`, at wall-clock
/// time `now`, `archived` (segments of the ring's archive in
/// [`archive_span`], oldest first) before the ring's own. The archive's
/// are named by [`archived_uri`], and a discontinuity is marked wherever
/// the segment numbers do not follow on (a hole in the archive, a ring
/// started afresh).
///
/// # Errors
/// Nothing of the ring or its archive is in the window: why, with the
/// ring's window.
pub fn render(listing: &Listing, archived: Vec<SegmentInfo>, window: Window, now: WallTime) -> Result<String, String> {
    let ring = dated(listing);
    let ring_first = ring.first().map_or(WallTime::MAX, |s| s.program_date_time);
    let span = || match (ring.first(), ring.last()) {
        (Some(first), Some(last)) => format!(
            "the ring holds {} .. {}",
            first.program_date_time,
            last.program_date_time.after(last.duration_ns)
        ),
        _ => "the ring holds nothing dated".into(),
    };
    let mut all: Vec<SegmentInfo> = archived
        .into_iter()
        .filter(|a| a.program_date_time < ring_first)
        .collect();
    let from_archive = all.len();
    all.extend(ring.iter().cloned());
    for i in 1..=from_archive.min(all.len().saturating_sub(1)) {
        if all[i - 1].sequence.next() != all[i].sequence {
            all[i].discontinuity = true;
        }
    }
    let end_of = |s: &SegmentInfo| s.program_date_time.after(s.duration_ns);
    let (kept, ended, vod): (Vec<&SegmentInfo>, bool, bool) = match window {
        Window::Whole => (all.iter().collect(), listing.ended, false),
        Window::Delay(ns) => {
            let cutoff = now.before(ns);
            let kept: Vec<&SegmentInfo> = all.iter().filter(|s| end_of(s) <= cutoff).collect();
            let ended = listing.ended && kept.len() == all.len();
            (kept, ended, false)
        }
        Window::Range { start, end } => {
            let kept: Vec<&SegmentInfo> = all
                .iter()
                .filter(|s| end_of(s) > start && end.is_none_or(|e| s.program_date_time < e))
                .collect();
            // Over once its end is past and the ring has written it (or
            // stopped); open, once the ring stopped.
            let over = match end {
                Some(e) => e <= now && (listing.ended || kept.last().is_some_and(|s| end_of(s) >= e)),
                None => listing.ended,
            };
            (kept, over, over)
        }
    };
    if kept.is_empty() {
        return Err(format!("nothing of the ring is in that window ({})", span()));
    }
    // A window by date keeps its first segment as time passes, whichever
    // tier holds it: its discontinuities are counted from there.
    let discontinuity_sequence = match window {
        Window::Range { .. } => 0,
        _ => {
            let first_index = all.iter().position(|s| std::ptr::eq(s, kept[0])).unwrap_or(0);
            all[..first_index].iter().filter(|s| s.discontinuity).count() as u64
        }
    };
    let header = PlaylistHeader {
        target_duration_s: kept.iter().map(|s| target_duration_s(s.duration_ns)).max().unwrap_or(1),
        discontinuity_sequence,
        ended,
        start_offset_ns: None,
        vod,
    };
    let mut text = String::new();
    playlist::render_with_uris(
        &mut text,
        header,
        kept.into_iter(),
        |s| {
            if s.program_date_time < ring_first {
                archived_uri(s)
            } else {
                segment_file_name(s.sequence)
            }
        },
        true,
    );
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::SegmentNumber;
    use crate::layout::playlist::Entry;

    fn listing(ended: bool) -> Listing {
        // Ten 2 s segments from 06:00:00Z, one date-time only.
        let first = WallTime::parse_rfc3339("2026-12-05T06:00:00Z").expect("date");
        Listing {
            entries: (0..10)
                .map(|n| Entry {
                    sequence: SegmentNumber::new(40 + n),
                    duration_ns: 2_000_000_000,
                    program_date_time: (n == 0).then_some(first),
                    discontinuity: false,
                    independent: true,
                })
                .collect(),
            ended,
            ..Listing::default()
        }
    }

    fn at(s: &str) -> WallTime {
        WallTime::parse_rfc3339(s).expect("date")
    }

    fn sequences(text: &str) -> Vec<u64> {
        playlist::parse(text).entries.iter().map(|e| e.sequence.get()).collect()
    }

    #[test]
    fn queries_are_read_strictly() {
        assert_eq!(parse_query(None), Ok(Window::Whole));
        assert_eq!(parse_query(Some("foo=1")), Ok(Window::Whole));
        assert_eq!(parse_query(Some("delay=30")), Ok(Window::Delay(30_000_000_000)));
        assert_eq!(
            parse_query(Some("start=2026-12-05T06%3A00%3A04%2B01%3A00")),
            Ok(Window::Range {
                start: at("2026-12-05T05:00:04Z"),
                end: None
            })
        );
        for bad in [
            "delay=-1",
            "delay=x",
            "delay=99999999999",
            "start=yesterday",
            "end=2026-12-05T06:00:00Z",
            "start=2026-12-05T06:00:00Z&end=2026-12-05T06:00:00Z",
            "start=2026-12-05T06:00:00Z&delay=3",
            "start=%zz",
        ] {
            assert!(parse_query(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_cut_the_ring_by_date() {
        let now = at("2026-12-05T06:00:30Z");
        let live = listing(false);
        // Catch-up of a past range: VOD, ended, every entry dated.
        let text = render(
            &live,
            Vec::new(),
            Window::Range {
                start: at("2026-12-05T06:00:03Z"),
                end: Some(at("2026-12-05T06:00:08Z")),
            },
            now,
        )
        .expect("in the window");
        assert_eq!(sequences(&text), [41, 42, 43]);
        assert!(
            text.contains("#EXT-X-ENDLIST") && text.contains("#EXT-X-PLAYLIST-TYPE:VOD"),
            "{text}"
        );
        assert_eq!(text.matches("#EXT-X-PROGRAM-DATE-TIME:").count(), 3);
        assert!(
            text.contains("#EXT-X-PROGRAM-DATE-TIME:2026-12-05T06:00:02.000Z"),
            "{text}"
        );
        // Start-over: from the start on, growing.
        let text = render(
            &live,
            Vec::new(),
            Window::Range {
                start: at("2026-12-05T06:00:15Z"),
                end: None,
            },
            now,
        )
        .expect("in the window");
        assert_eq!(sequences(&text), [47, 48, 49]);
        assert!(!text.contains("#EXT-X-ENDLIST"), "{text}");
        // An end not recorded yet: not over.
        let text = render(
            &live,
            Vec::new(),
            Window::Range {
                start: at("2026-12-05T06:00:15Z"),
                end: Some(at("2026-12-05T06:00:25Z")),
            },
            now,
        )
        .expect("in the window");
        assert!(!text.contains("#EXT-X-ENDLIST"), "{text}");
        // Delay: at 06:00:21, what the playlist held 7 s before (the
        // segments ending by 06:00:14).
        let text = render(
            &live,
            Vec::new(),
            Window::Delay(7_000_000_000),
            at("2026-12-05T06:00:21Z"),
        )
        .expect("in the window");
        assert_eq!(sequences(&text), (40..=46).collect::<Vec<_>>());
        // Outside: a reason naming the ring's window.
        let err = render(
            &live,
            Vec::new(),
            Window::Range {
                start: at("2026-12-05T05:00:00Z"),
                end: Some(at("2026-12-05T05:10:00Z")),
            },
            now,
        )
        .expect_err("outside");
        assert!(
            err.contains("2026-12-05T06:00:00.000Z .. 2026-12-05T06:00:20.000Z"),
            "{err}"
        );
        assert!(render(&live, Vec::new(), Window::Delay(40_000_000_000), now).is_err());
        // A finished ring seen with a delay ends once all of it is in.
        let done = listing(true);
        let later = at("2026-12-05T06:01:00Z");
        assert!(
            render(&done, Vec::new(), Window::Delay(10_000_000_000), later)
                .expect("all")
                .contains("#EXT-X-ENDLIST")
        );
        let earlier = at("2026-12-05T06:00:25Z");
        assert!(
            !render(&done, Vec::new(), Window::Delay(10_000_000_000), earlier)
                .expect("some")
                .contains("#EXT-X-ENDLIST")
        );
    }

    #[test]
    fn windows_reach_into_the_archive_before_the_ring() {
        let live = listing(false);
        let now = at("2026-12-05T06:00:30Z");
        let asked = Window::Range {
            start: at("2026-12-05T05:59:55Z"),
            end: Some(at("2026-12-05T06:00:03Z")),
        };
        // The ring covers nothing before 06:00:00: the archive is asked
        // for 05:59:55 .. 06:00:00; a window inside the ring asks nothing.
        assert_eq!(
            archive_span(&live, asked, now),
            Some((at("2026-12-05T05:59:55Z"), at("2026-12-05T06:00:00Z")))
        );
        let inside = Window::Range {
            start: at("2026-12-05T06:00:01Z"),
            end: None,
        };
        assert_eq!(archive_span(&live, inside, now), None);
        assert_eq!(archive_span(&live, Window::Whole, now), None);
        // A delay past the ring reaches back as far as the ring is long
        // (a minute at least).
        assert_eq!(
            archive_span(&live, Window::Delay(60_000_000_000), now),
            Some((at("2026-12-05T05:58:30Z"), at("2026-12-05T05:59:30Z")))
        );
        // Archived segments 36 .. 39, with a hole before 39, and 39..41
        // again (the archive also has what the ring still holds).
        let archived: Vec<SegmentInfo> = [(36, "05:59:52"), (37, "05:59:54"), (39, "05:59:58"), (40, "06:00:00")]
            .iter()
            .map(|&(n, t)| SegmentInfo {
                sequence: SegmentNumber::new(n),
                duration_ns: 2_000_000_000,
                bytes: 0,
                program_date_time: at(&format!("2026-12-05T{t}Z")),
                discontinuity: false,
                independent: true,
            })
            .collect();
        let text = render(&live, archived, asked, now).expect("in the window");
        let uris: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            uris,
            [
                "archive/2026-12-05T05/055954000-000000000037.ts",
                "archive/2026-12-05T05/055958000-000000000039.ts",
                "segment-000000000040.ts",
                "segment-000000000041.ts"
            ],
            "{text}"
        );
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:37\n"), "{text}");
        assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
    }
}
