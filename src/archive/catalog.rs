// SPDX-License-Identifier: MPL-2.0
//! The archive read back, for the ring's readers: where a ring's archive
//! is (the description its sink left), what it holds (from its hour
//! playlists), and a local copy of a range of it, with the ring's own
//! segments where they are still there, as a finished ring that
//! [`crate::reader`] reads like any other: the same bytes, the same
//! keyframe indexes, so an export from it is the export the ring would
//! have given.
//!
//! Everything read from the bucket is untrusted: names are accepted only
//! in the archive's own form (see [`crate::layout::archive`]), sizes are
//! bounded.

use std::collections::BTreeSet;
use std::path::Path;

use super::SEGMENT_MAX_BYTES;
use super::playlists::parse_hour_playlist;
use super::store::StoreError;
use super::{ArchiveConfig, ArchiveStore};
use crate::layout::archive::{
    DESCRIPTION_MAX_BYTES, DESCRIPTION_NAME, Description, HOUR_PLAYLIST_NAME, Hour, QUEUE_DIR_NAME, RECORDINGS_FOLDER,
    object_index_name, object_name, parse_recording_uri, recording_key, recording_uri,
};
use crate::layout::playlist::{self, PlaylistHeader, target_duration_s};
use crate::layout::{
    JOURNAL_MAX_BYTES, JOURNAL_NAME, PLAYLIST_MAX_BYTES, PLAYLIST_NAME, SegmentInfo, WallTime, segment_file_name,
    segment_index_name,
};
use crate::platform;

/// Largest keyframe index fetched.
const INDEX_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The archive of the ring in `ring`, if its sink recorded one.
#[must_use]
pub fn open(ring: &Path) -> Option<Result<(ArchiveConfig, ArchiveStore), String>> {
    let path = ring.join(QUEUE_DIR_NAME).join(DESCRIPTION_NAME);
    let raw = platform::read_to_end_bounded(platform::open_read_only(&path).ok()?, DESCRIPTION_MAX_BYTES).ok()?;
    Some((|| {
        let text = String::from_utf8(raw).map_err(|_| format!("'{}' is not text", path.display()))?;
        let description =
            Description::parse(&text).ok_or_else(|| format!("'{}' does not describe an archive", path.display()))?;
        let config = ArchiveConfig::from_description(&description)?;
        let store = ArchiveStore::new(&config)?;
        Ok((config, store))
    })())
}

/// A segment of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedSegment {
    pub hour: Hour,
    /// Its byte count is 0: hour playlists do not say it.
    pub info: SegmentInfo,
}

/// The hours the archive has, oldest first.
pub fn hours(store: &ArchiveStore) -> Result<Vec<Hour>, StoreError> {
    let mut hours: Vec<Hour> = store
        .folders("")?
        .iter()
        .filter_map(|f| Hour::parse_folder(f))
        .collect();
    hours.sort_unstable();
    Ok(hours)
}

/// The segments `hour`'s playlist lists.
pub fn segments_of(store: &ArchiveStore, hour: Hour) -> Result<Vec<ArchivedSegment>, StoreError> {
    let raw = store.get(&hour.key(HOUR_PLAYLIST_NAME), PLAYLIST_MAX_BYTES)?;
    Ok(listed_in(hour, raw))
}

/// The segments each of `hours`' playlists lists, the playlists fetched
/// several at a time.
pub fn segments_of_each(store: &ArchiveStore, hours: &[Hour]) -> Result<Vec<Vec<ArchivedSegment>>, StoreError> {
    let names: Vec<String> = hours.iter().map(|h| h.key(HOUR_PLAYLIST_NAME)).collect();
    store
        .get_each(&names, PLAYLIST_MAX_BYTES)
        .into_iter()
        .zip(hours)
        .map(|(raw, &hour)| Ok(listed_in(hour, raw?)))
        .collect()
}

/// The segments an hour playlist (`None`: there is none) lists.
pub fn listed_in(hour: Hour, raw: Option<Vec<u8>>) -> Vec<ArchivedSegment> {
    let text = raw
        .map(|raw| String::from_utf8_lossy(&raw).into_owned())
        .unwrap_or_default();
    parse_hour_playlist(hour, &text)
        .into_iter()
        .map(|info| ArchivedSegment { hour, info })
        .collect()
}

/// The archived segments that overlap `from` .. `to`, oldest first.
pub fn segments_between(
    store: &ArchiveStore,
    from: WallTime,
    to: WallTime,
) -> Result<Vec<ArchivedSegment>, StoreError> {
    let mut found = Vec::new();
    // A segment starting in the hour before `from` may reach into it.
    let first = Hour::of(from);
    for hour in hours(store)? {
        if hour.next() < first || hour.start() > to {
            continue;
        }
        found.extend(
            segments_of(store, hour)?.into_iter().filter(|s| {
                s.info.program_date_time <= to && s.info.program_date_time.after(s.info.duration_ns) > from
            }),
        );
    }
    found.sort_by_key(|s| s.info.program_date_time);
    Ok(found)
}

/// The ring's own completed segments (from its journal) still on disk.
fn local_segments(ring: &Path) -> Vec<SegmentInfo> {
    let Ok(file) = platform::open_read_only(&ring.join(JOURNAL_NAME)) else {
        return Vec::new();
    };
    let Ok(raw) = platform::read_to_end_bounded(file, JOURNAL_MAX_BYTES) else {
        return Vec::new();
    };
    crate::layout::journal::parse(&raw)
        .segments
        .into_iter()
        .filter(|s| {
            std::fs::symlink_metadata(ring.join(segment_file_name(s.sequence))).is_ok_and(|m| m.len() == s.bytes)
        })
        .collect()
}

/// Writes into the empty directory `dir` a finished ring of the segments
/// overlapping `from` .. `to`, and the one after (whose keyframe is where
/// an export of the range ends): the ring's own where it still has them,
/// else the archive's. Returns how many came from the archive.
pub fn materialize(
    store: &ArchiveStore,
    ring: &Path,
    from: WallTime,
    to: WallTime,
    dir: &Path,
) -> Result<usize, String> {
    // Listed up to an hour further, to find the segment after `to`.
    let mut archived =
        segments_between(store, from, to.after(3600 * 1_000_000_000)).map_err(|e| format!("the archive: {e}"))?;
    let mut local: Vec<SegmentInfo> = local_segments(ring)
        .into_iter()
        .filter(|s| s.program_date_time.after(s.duration_ns) > from)
        .collect();
    let next_start = archived
        .iter()
        .map(|a| a.info.program_date_time)
        .chain(local.iter().map(|l| l.program_date_time))
        .filter(|start| *start > to)
        .min();
    let last = next_start.unwrap_or(to);
    archived.retain(|a| a.info.program_date_time <= last);
    local.retain(|l| l.program_date_time <= last);
    let same =
        |a: &SegmentInfo, b: &SegmentInfo| a.sequence == b.sequence && a.program_date_time == b.program_date_time;
    let mut listed: Vec<SegmentInfo> = local.clone();
    let mut fetched = 0;
    for a in &archived {
        if local.iter().any(|l| same(l, &a.info)) {
            continue;
        }
        let data = store
            .get(&a.hour.key(&object_name(&a.info)), SEGMENT_MAX_BYTES)
            .map_err(|e| format!("the archive: {e}"))?
            .ok_or_else(|| format!("the archive lists segment {} but does not have it", a.info.sequence))?;
        let index = store
            .get(&a.hour.key(&object_index_name(&a.info)), INDEX_MAX_BYTES)
            .map_err(|e| format!("the archive: {e}"))?;
        let write = |name: String, bytes: &[u8]| {
            std::fs::write(dir.join(&name), bytes)
                .map_err(|e| format!("cannot write '{}': {e}", dir.join(name).display()))
        };
        write(segment_file_name(a.info.sequence), &data)?;
        if let Some(index) = index {
            write(segment_index_name(a.info.sequence), &index)?;
        }
        listed.push(SegmentInfo {
            bytes: data.len() as u64,
            ..a.info.clone()
        });
        fetched += 1;
    }
    for l in &local {
        for name in [segment_file_name(l.sequence), segment_index_name(l.sequence)] {
            let source = ring.join(&name);
            if source.exists() {
                std::fs::copy(&source, dir.join(&name))
                    .map_err(|e| format!("cannot copy '{}': {e}", source.display()))?;
            }
        }
    }
    listed.sort_by_key(|s| s.program_date_time);
    listed.dedup_by(|a, b| a.sequence == b.sequence);
    if listed.is_empty() {
        return Err("neither the ring nor its archive holds that range".into());
    }
    let header = PlaylistHeader {
        target_duration_s: listed
            .iter()
            .map(|s| target_duration_s(s.duration_ns))
            .max()
            .unwrap_or(1),
        discontinuity_sequence: 0,
        ended: true,
        vod: false,
        start_offset_ns: None,
    };
    let mut text = String::new();
    playlist::render(&mut text, header, listed.iter());
    std::fs::write(dir.join(PLAYLIST_NAME), text).map_err(|e| format!("cannot write a playlist: {e}"))?;
    Ok(fetched)
}

/// Keeps the archived segments that overlap `from` .. `to` as recording
/// `name` in the bucket: a VOD playlist naming them, which players read
/// from the bucket and retention spares. Refuses a name in use. Returns
/// the segments kept.
pub fn keep(store: &ArchiveStore, from: WallTime, to: WallTime, name: &str) -> Result<Vec<SegmentInfo>, String> {
    let key = recording_key(name)
        .ok_or_else(|| format!("'{name}' cannot name a recording: use 1 to 100 letters, digits, '.', '-' and '_'"))?;
    if store.size_of(&key).map_err(|e| format!("the archive: {e}"))?.is_some() {
        return Err(format!("the archive already keeps a recording named '{name}'"));
    }
    let kept: Vec<SegmentInfo> = segments_between(store, from, to)
        .map_err(|e| format!("the archive: {e}"))?
        .into_iter()
        .map(|s| s.info)
        .collect();
    if kept.is_empty() {
        return Err("the archive holds nothing of that range".into());
    }
    let header = PlaylistHeader {
        target_duration_s: kept.iter().map(|s| target_duration_s(s.duration_ns)).max().unwrap_or(1),
        discontinuity_sequence: 0,
        ended: true,
        vod: true,
        start_offset_ns: None,
    };
    let mut text = String::new();
    playlist::render_with_uris(&mut text, header, kept.iter(), recording_uri, true);
    store
        .put(&key, text.into_bytes())
        .map_err(|e| format!("the archive: {e}"))?;
    Ok(kept)
}

/// The keys (relative to the prefix) of every segment and keyframe index
/// a kept recording names: what retention does not delete.
pub fn kept_keys(store: &ArchiveStore) -> Result<BTreeSet<String>, StoreError> {
    let names: Vec<String> = store
        .objects(RECORDINGS_FOLDER)?
        .into_iter()
        .filter(|(name, _)| name.ends_with(".m3u8"))
        .map(|(name, _)| format!("{RECORDINGS_FOLDER}/{name}"))
        .collect();
    let mut kept = BTreeSet::new();
    for raw in store.get_each(&names, PLAYLIST_MAX_BYTES) {
        let Some(raw) = raw? else { continue };
        let text = String::from_utf8_lossy(&raw);
        kept.extend(text.lines().filter_map(|l| parse_recording_uri(l.trim())).flatten());
    }
    Ok(kept)
}

/// What the archive holds, for `streambuffer info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub hours: usize,
    pub segments: usize,
    pub first: Option<WallTime>,
    pub end: Option<WallTime>,
    pub duration_ns: u64,
    /// Gaps of more than half a second between a segment's end and the
    /// next one's start.
    pub holes: usize,
}

/// Reads every hour playlist of the archive.
pub fn summary(store: &ArchiveStore) -> Result<Summary, StoreError> {
    let hours = hours(store)?;
    let mut summary = Summary {
        hours: hours.len(),
        ..Summary::default()
    };
    for segments in segments_of_each(store, &hours)? {
        for s in segments {
            let start = s.info.program_date_time;
            if summary.end.is_some_and(|end| start.ms_since(end) > 500) {
                summary.holes += 1;
            }
            summary.first.get_or_insert(start);
            summary.end = Some(start.after(s.info.duration_ns));
            summary.segments += 1;
            summary.duration_ns += s.info.duration_ns;
        }
    }
    Ok(summary)
}
