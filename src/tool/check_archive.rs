// SPDX-License-Identifier: MPL-2.0
//! `streambuffer check` of a ring's archive: do the bucket's objects and
//! its hour playlists agree?
//!
//! For every hour: its playlist can be read and every entry in it names
//! one of the archive's segments; each listed segment's object is there, a
//! whole number of packets, with its keyframe index beside it; segments
//! follow each other in time; no segment object is left out of the
//! playlists (unless a kept recording names it: retention spared it), and
//! every object a kept recording names is there. The first segment of each hour is fetched in part (a ranged
//! GET of its head) and must start with a PAT and the PMT it names; the
//! others are not downloaded: a check of weeks of archive costs a listing
//! per hour, not the archive's size.

use std::collections::{BTreeMap, BTreeSet};

use crate::archive::ArchiveStore;
use crate::archive::catalog::{hours, kept_keys, listed_in};
use crate::layout::archive::{
    HOUR_PLAYLIST_NAME, RECORDINGS_FOLDER, object_index_name, object_name, parse_object_name,
};
use crate::layout::{PLAYLIST_MAX_BYTES, WallTime};
use crate::ts::PACKET_SIZE;

/// Bytes fetched of an hour's first segment: its tables, with room.
const HEAD_BYTES: u64 = 64 * PACKET_SIZE as u64;

/// A segment may start this much before the one before it ends (the
/// playlist's millisecond durations) before they are said to overlap.
const OVERLAP_TOLERANCE_MS: i64 = 500;

/// What the check found.
pub(super) struct ArchiveCheck {
    pub(super) hours: usize,
    pub(super) segments: usize,
    /// One line each, naming the object or playlist.
    pub(super) problems: Vec<String>,
}

/// Checks the archive in `store`; `check_head` says what is wrong with a
/// segment's first bytes, if anything.
pub(super) fn run(
    store: &ArchiveStore,
    check_head: impl Fn(&[u8]) -> Result<u64, String>,
) -> Result<ArchiveCheck, String> {
    let hours = hours(store).map_err(|e| format!("the archive cannot be listed: {e}"))?;
    let newest_hour = hours.last().copied();
    let (mut problems, mut checked) = (Vec::new(), 0);
    // Segments kept recordings name: outside the window, in no playlist.
    let kept = kept_keys(store).unwrap_or_else(|e| {
        problems.push(format!("{RECORDINGS_FOLDER}/: cannot be read: {e}"));
        BTreeSet::new()
    });
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut previous_end: Option<(String, WallTime)> = None;
    for &hour in &hours {
        let folder = hour.folder();
        let mut say = |what: String| problems.push(what);
        let objects: BTreeMap<String, u64> = match store.objects(&folder) {
            Ok(objects) => objects.into_iter().collect(),
            Err(e) => {
                say(format!("{folder}/: cannot be listed: {e}"));
                continue;
            }
        };
        let playlist = hour.key(HOUR_PLAYLIST_NAME);
        let raw = match store.get(&playlist, PLAYLIST_MAX_BYTES) {
            Ok(raw) => raw,
            Err(e) => {
                say(format!("{playlist}: cannot be read: {e}"));
                continue;
            }
        };
        seen.extend(objects.keys().map(|name| hour.key(name)));
        if raw.is_none() && !objects.keys().all(|name| kept.contains(&hour.key(name))) {
            say(format!("{playlist}: missing"));
        }
        let entries_written = raw
            .as_deref()
            .map_or(0, |raw| String::from_utf8_lossy(raw).matches("#EXTINF:").count());
        let segments = listed_in(hour, raw);
        if segments.len() < entries_written {
            say(format!(
                "{playlist}: {} of its {entries_written} entries are not segments of this hour",
                entries_written - segments.len()
            ));
        }
        let mut listed = BTreeSet::new();
        for (i, segment) in segments.iter().enumerate() {
            let name = object_name(&segment.info);
            let key = hour.key(&name);
            match objects.get(&name) {
                None => say(format!("{key}: listed by {HOUR_PLAYLIST_NAME} but not in the bucket")),
                Some(&size) if size == 0 || size % PACKET_SIZE as u64 != 0 => {
                    say(format!("{key}: {size} bytes, not a whole number of packets"));
                }
                Some(&size) if i == 0 => match store.get_range(&hour.key(&name), 0, size.min(HEAD_BYTES)) {
                    Ok(Some(head)) => {
                        if let Err(why) = check_head(&head) {
                            say(format!("{key}: {why}"));
                        }
                    }
                    Ok(None) => say(format!("{key}: gone while checked")),
                    Err(e) => say(format!("{key}: cannot be read: {e}")),
                },
                Some(_) => {}
            }
            let index = object_index_name(&segment.info);
            if !objects.contains_key(&index) {
                say(format!("{}: missing (the keyframe index of {name})", hour.key(&index)));
            }
            let start = segment.info.program_date_time;
            if let Some((before, end)) = &previous_end
                && !segment.info.discontinuity
                && end.ms_since(start) > OVERLAP_TOLERANCE_MS
            {
                say(format!("{key}: starts {} ms before {before} ends", end.ms_since(start)));
            }
            previous_end = Some((key, start.after(segment.info.duration_ns)));
            listed.insert(name);
            listed.insert(index);
            checked += 1;
        }
        // In the newest hour, objects after the last listed segment may be
        // an upload in flight (the playlist is written after the objects).
        let last_listed = segments.last().map(|s| s.info.program_date_time);
        let in_flight = |name: &str| {
            Some(hour) == newest_hour
                && parse_object_name(
                    hour,
                    &name.strip_suffix(".idx").map_or(name.to_owned(), |n| format!("{n}.ts")),
                )
                .is_some_and(|(_, start)| last_listed.is_none_or(|last| start > last))
        };
        for name in objects.keys() {
            if name != HOUR_PLAYLIST_NAME
                && !listed.contains(name)
                && !in_flight(name)
                && !kept.contains(&hour.key(name))
            {
                say(format!("{}: in the bucket but in no playlist", hour.key(name)));
            }
        }
    }
    for key in kept.difference(&seen) {
        problems.push(format!("{key}: a kept recording names it, but it is not in the bucket"));
    }
    Ok(ArchiveCheck {
        hours: hours.len(),
        segments: checked,
        problems,
    })
}
