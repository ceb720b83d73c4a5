// SPDX-License-Identifier: MPL-2.0
//! The archive's playlists: one per hour (a growing playlist while the
//! hour is recorded, a VOD playlist with `EXT-X-ENDLIST` once it is over)
//! and a window playlist of the newest hour at the prefix, for players
//! that follow the archive live. Fourteen days of 6 s segments are 336
//! playlists of 600 entries, not one of 200,000. Every entry carries its
//! `EXT-X-PROGRAM-DATE-TIME`, so catch-up players and the archive's
//! readers find a date without adding up durations.

use std::collections::VecDeque;

use crate::layout::archive::{Hour, WINDOW_PLAYLIST_NS, object_name, parse_object_name};
use crate::layout::playlist::{self, PlaylistHeader, target_duration_s};
use crate::layout::{SegmentInfo, WallTime};

/// The playlists the uploader keeps up to date.
#[derive(Debug, Default)]
pub(super) struct ArchivePlaylists {
    /// The hour being archived, and its entries.
    hour: Option<(Hour, Vec<SegmentInfo>)>,
    /// The newest hour of entries, oldest first.
    window: VecDeque<SegmentInfo>,
    /// Discontinuities of entries that left the window.
    window_discontinuities: u64,
}

/// A playlist to put: its name (relative to the prefix) and text.
pub(super) type PlaylistObject = (String, String);

impl ArchivePlaylists {
    /// The hour whose playlist is being written.
    pub(super) fn hour(&self) -> Option<Hour> {
        self.hour.as_ref().map(|(h, _)| *h)
    }

    /// Starts writing the playlist of `hour`, which the bucket already
    /// lists `loaded` in; returns the final playlist of the hour before,
    /// if that one is over.
    pub(super) fn begin_hour(&mut self, hour: Hour, loaded: Vec<SegmentInfo>) -> Option<PlaylistObject> {
        let finished = self.hour.take().filter(|(h, _)| *h < hour);
        self.hour = Some((hour, loaded));
        finished.map(|(h, entries)| hour_playlist(h, &entries, true, true))
    }

    /// Segment `info` was archived in the current hour: the playlists to
    /// put now (that hour's and the window's).
    pub(super) fn admit(&mut self, info: SegmentInfo) -> [PlaylistObject; 2] {
        if let Some((_, entries)) = &mut self.hour {
            entries.push(info.clone());
        }
        let end = info.program_date_time.after(info.duration_ns);
        self.window.push_back(info);
        while self
            .window
            .front()
            .is_some_and(|first| end.ms_since(first.program_date_time.after(first.duration_ns)) > window_ms())
        {
            if let Some(gone) = self.window.pop_front() {
                self.window_discontinuities += u64::from(gone.discontinuity);
            }
        }
        let hour = match &self.hour {
            Some((h, entries)) => hour_playlist(*h, entries, false, false),
            None => (String::new(), String::new()),
        };
        [hour, self.render_window(false)]
    }

    /// Entries starting before `cutoff` were deleted from the bucket: the
    /// window playlist (returned, if it changed) no longer lists them.
    pub(super) fn expire(&mut self, cutoff: WallTime) -> Option<PlaylistObject> {
        let before = self.window.len();
        while self.window.front().is_some_and(|s| s.program_date_time < cutoff) {
            if let Some(gone) = self.window.pop_front() {
                self.window_discontinuities += u64::from(gone.discontinuity);
            }
        }
        if let Some((_, entries)) = &mut self.hour {
            entries.retain(|s| s.program_date_time >= cutoff);
        }
        (self.window.len() != before && !self.window.is_empty()).then(|| self.render_window(false))
    }

    /// The recording stopped: the hour's and the window's playlists with
    /// `EXT-X-ENDLIST` (not VOD: a later start in the same hour lists more).
    pub(super) fn finish(&self) -> Vec<PlaylistObject> {
        let Some((hour, entries)) = &self.hour else {
            return Vec::new();
        };
        vec![hour_playlist(*hour, entries, true, false), self.render_window(true)]
    }

    fn render_window(&self, ended: bool) -> PlaylistObject {
        let header = PlaylistHeader {
            target_duration_s: target_of(self.window.iter()),
            discontinuity_sequence: self.window_discontinuities,
            ended,
            vod: false,
            start_offset_ns: None,
        };
        let mut text = String::new();
        playlist::render_with_uris(
            &mut text,
            header,
            self.window.iter(),
            |s| Hour::of(s.program_date_time).key(&object_name(s)),
            true,
        );
        (crate::layout::archive::WINDOW_PLAYLIST_NAME.to_owned(), text)
    }
}

fn window_ms() -> i64 {
    i64::try_from(WINDOW_PLAYLIST_NS / 1_000_000).unwrap_or(i64::MAX)
}

fn target_of<'a>(entries: impl Iterator<Item = &'a SegmentInfo>) -> u64 {
    entries.map(|s| target_duration_s(s.duration_ns)).max().unwrap_or(1)
}

/// The playlist of `hour` listing `entries`; `ended`: nothing follows
/// (for now); `vod`: the hour is over, nothing ever will.
pub(super) fn hour_playlist(hour: Hour, entries: &[SegmentInfo], ended: bool, vod: bool) -> PlaylistObject {
    let header = PlaylistHeader {
        target_duration_s: target_of(entries.iter()),
        discontinuity_sequence: 0,
        ended: ended || vod,
        vod,
        start_offset_ns: None,
    };
    let mut text = String::new();
    playlist::render_with_uris(&mut text, header, entries.iter(), object_name, true);
    (hour.key(crate::layout::archive::HOUR_PLAYLIST_NAME), text)
}

/// The entries of `hour`'s playlist as the archive wrote it: only names of
/// segments of that hour are accepted (an entry's date is its name's);
/// byte counts are not in a playlist (0).
#[must_use]
pub(crate) fn parse_hour_playlist(hour: Hour, text: &str) -> Vec<SegmentInfo> {
    let listing = playlist::parse_with_uris(text, |uri| parse_object_name(hour, uri).map(|(n, _)| n));
    let starts: std::collections::HashMap<_, WallTime> =
        text.lines().filter_map(|l| parse_object_name(hour, l.trim())).collect();
    listing
        .entries
        .into_iter()
        .filter_map(|e| {
            let start = starts
                .get(&e.sequence)
                .copied()
                .filter(|t| Some(*t) == e.program_date_time)?;
            Some(e.dated(start))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::SegmentNumber;

    fn seg(n: u64, start_ms: i64) -> SegmentInfo {
        SegmentInfo {
            sequence: SegmentNumber::new(n),
            duration_ns: 6_000_000_000,
            bytes: 0,
            program_date_time: WallTime::from_ms(start_ms),
            discontinuity: n == 3,
            independent: true,
        }
    }

    const T0: i64 = 1_796_450_400_000; // 2026-12-05T06:00:00Z

    #[test]
    fn hour_playlists_are_read_back_and_end_when_the_hour_does() {
        let mut p = ArchivePlaylists::default();
        let hour = Hour::of(WallTime::from_ms(T0));
        assert_eq!(hour.folder(), "2026-12-05T06");
        assert!(p.begin_hour(hour, Vec::new()).is_none());
        let mut last = None;
        for n in 1..=4 {
            last = Some(p.admit(seg(n, T0 + n as i64 * 6000)));
        }
        let [(name, text), (window_name, window)] = last.expect("admitted");
        assert_eq!(name, "2026-12-05T06/index.m3u8");
        assert!(!text.contains("#EXT-X-ENDLIST"));
        assert_eq!(text.matches("#EXT-X-PROGRAM-DATE-TIME").count(), 4);
        assert!(text.contains("\n060006000-000000000001.ts\n"), "{text}");
        let read = parse_hour_playlist(hour, &text);
        assert_eq!(read, (1..=4).map(|n| seg(n, T0 + n as i64 * 6000)).collect::<Vec<_>>());
        assert_eq!(window_name, "archive.m3u8");
        assert!(
            window.contains("\n2026-12-05T06/060006000-000000000001.ts\n"),
            "{window}"
        );
        // The next hour: the last one is finished, VOD.
        let (done, text) = p.begin_hour(hour.next(), Vec::new()).expect("finished");
        assert_eq!(done, "2026-12-05T06/index.m3u8");
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD") && text.ends_with("#EXT-X-ENDLIST\n"));
        assert_eq!(parse_hour_playlist(hour, &text).len(), 4);
        // A playlist naming anything else gives nothing of it.
        assert!(parse_hour_playlist(hour.next(), &text).is_empty());
        assert!(parse_hour_playlist(hour, "#EXTM3U\n#EXTINF:6,\n../../etc/passwd\n").is_empty());
    }

    #[test]
    fn the_window_keeps_an_hour_and_expiry_shortens_it() {
        let mut p = ArchivePlaylists::default();
        p.begin_hour(Hour::of(WallTime::from_ms(T0)), Vec::new());
        for n in 0..700 {
            p.admit(seg(n + 10, T0 + n as i64 * 6000));
        }
        assert_eq!(p.window.len(), 601);
        let cutoff = WallTime::from_ms(T0 + 690 * 6000);
        let (_, text) = p.expire(cutoff).expect("changed");
        assert_eq!(text.matches("#EXTINF").count(), 10);
        assert!(p.expire(cutoff).is_none());
    }
}
