// SPDX-License-Identifier: MPL-2.0
//! The fetcher's thread: the listing, and each fetch asked for (see the
//! parent module); everything it learns goes into the shared `Work`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use super::{
    ATTEMPTS, CACHED_INDEXES, CACHED_SEGMENTS, CachedSegment, Done, HOURS_RELISTED, INDEX_MAX_BYTES, Job, Kind,
    RELIST_EVERY, SEGMENT_MAX_BYTES, Shared, Work,
};
use crate::archive::ArchiveStore;
use crate::archive::catalog::{hours, segments_of_each};
use crate::archive::store::StoreError;
use crate::layout::archive::{Hour, object_index_name, object_name};
use crate::layout::{SegmentInfo, segment_file_name, segment_index_name};
use crate::reader::{ArchiveListing, SegmentPart};

/// The fetcher's thread: lists, then fetches what is asked, listing again
/// every [`RELIST_EVERY`].
pub(super) fn run(shared: &Shared, store: &ArchiveStore) {
    let mut hours_seen: BTreeMap<Hour, Vec<SegmentInfo>> = BTreeMap::new();
    let mut next_listing = Instant::now();
    loop {
        if Instant::now() >= next_listing {
            let began = Instant::now();
            let listed = relist(store, &mut hours_seen);
            let mut work = shared.lock();
            match listed {
                Ok(changed) => {
                    if changed || !work.listed {
                        let segments: Vec<SegmentInfo> = hours_seen.values().flatten().cloned().collect();
                        work.listing = ArchiveListing {
                            generation: work.listing.generation + 1,
                            made_at: Some(began),
                            segments: segments.into(),
                        };
                    }
                    work.listing.made_at = Some(began);
                    work.listing_error = None;
                }
                Err(e) => work.listing_error = Some(e.to_string()),
            }
            work.listed = true;
            drop(work);
            shared.changed.notify_all();
            next_listing = Instant::now() + RELIST_EVERY;
        }
        let job = {
            let mut work = shared.lock();
            loop {
                if work.stop {
                    return;
                }
                if let Some(job) = work.queue.pop_front() {
                    break Some(job);
                }
                let left = next_listing.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break None;
                }
                work = shared
                    .changed
                    .wait_timeout(work, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        };
        let Some(job) = job else { continue };
        if let Kind::Segment(part) = job.kind {
            fetch_segment(shared, store, &mut hours_seen, job.segment, part);
            continue;
        }
        let mut job = job;
        let mut outcome = fetch(store, &shared.cache, &job);
        if matches!(outcome, Done::Gone)
            && let Some(listed) = listed_elsewhere(store, &mut hours_seen, &job.segment)
        {
            job.segment = listed;
            outcome = fetch(store, &shared.cache, &job);
        }
        for attempt in 1..ATTEMPTS {
            if !matches!(outcome, Done::Failed(_)) || shared.lock().stop {
                break;
            }
            std::thread::sleep(Duration::from_millis(500 << attempt));
            outcome = fetch(store, &shared.cache, &job);
        }
        let mut work = shared.lock();
        let key = job.key();
        if let Done::File(_) = outcome {
            work.cached.push_back((false, key.1));
            evict(&mut work);
        }
        work.done.insert(key, outcome);
        drop(work);
        shared.changed.notify_all();
    }
}

/// Segment `segment` (a segment archived since the last listing, named by
/// a date-time the ring's playlist only implied) as a fresh listing names
/// it, if that is another name.
fn listed_elsewhere(
    store: &ArchiveStore,
    hours_seen: &mut BTreeMap<Hour, Vec<SegmentInfo>>,
    segment: &SegmentInfo,
) -> Option<SegmentInfo> {
    relist(store, hours_seen).ok()?;
    hours_seen
        .values()
        .flatten()
        .find(|s| s.sequence == segment.sequence && s.program_date_time != segment.program_date_time)
        .cloned()
}

/// Fetches `part` of `segment` into the cache, publishing how far it is
/// written as it goes (see the module documentation).
fn fetch_segment(
    shared: &Shared,
    store: &ArchiveStore,
    hours_seen: &mut BTreeMap<Hour, Vec<SegmentInfo>>,
    mut segment: SegmentInfo,
    part: SegmentPart,
) {
    let sequence = segment.sequence;
    let name = if part == SegmentPart::WHOLE {
        segment_file_name(sequence)
    } else {
        format!("{}.from-{}", segment_file_name(sequence), part.from)
    };
    let path = shared.cache.join(name);
    let update = |change: &dyn Fn(&mut CachedSegment)| {
        if let Some(c) = shared.lock().segments.get_mut(&sequence).filter(|c| c.path == path) {
            change(c);
        }
        shared.changed.notify_all();
    };
    let mut file = match std::fs::File::create(&path) {
        Ok(f) => f,
        Err(e) => {
            // Reported to the reader as a failed fetch (it skips the
            // segment), not left pending.
            let failed = Some(format!("cannot write '{}': {e}", path.display()));
            shared
                .lock()
                .segments
                .insert(sequence, CachedSegment::new(path.clone(), part, failed));
            shared.changed.notify_all();
            return;
        }
    };
    {
        let mut work = shared.lock();
        let replaced = work
            .segments
            .insert(sequence, CachedSegment::new(path.clone(), part, None));
        if let Some(old) = replaced.filter(|old| old.path != path) {
            let _ = std::fs::remove_file(old.path);
        }
        work.cached.retain(|&(is_segment, s)| !(is_segment && s == sequence));
        work.cached.push_back((true, sequence));
        evict(&mut work);
    }
    shared.changed.notify_all();
    // The tables at its head first, then the rest from `part.from`; the
    // written mark only grows (a retry writes the same bytes again).
    let get = |segment: &SegmentInfo, file: &mut std::fs::File| {
        let key = Hour::of(segment.program_date_time).key(&object_name(segment));
        let progress = |at: u64| update(&|c| c.copy.written = c.copy.written.max(at));
        if part.from > 0 && part.head > 0 {
            match store.get_into(
                &key,
                SEGMENT_MAX_BYTES,
                (0, Some(part.head.min(part.from))),
                file,
                progress,
            ) {
                Ok(Some(_)) => {}
                other => return other,
            }
        }
        let progress = |at: u64| update(&|c| c.copy.written = c.copy.written.max(at));
        store.get_into(&key, SEGMENT_MAX_BYTES, (part.from, None), file, progress)
    };
    let mut got = get(&segment, &mut file);
    if matches!(got, Ok(None))
        && let Some(listed) = listed_elsewhere(store, hours_seen, &segment)
    {
        segment = listed;
        got = get(&segment, &mut file);
    }
    for attempt in 1..ATTEMPTS {
        if got.is_ok() || shared.lock().stop {
            break;
        }
        std::thread::sleep(Duration::from_millis(500 << attempt));
        got = get(&segment, &mut file);
    }
    match got {
        Ok(Some(size)) => update(&|c| {
            c.copy.size = Some(size);
            c.copy.complete = true;
        }),
        Ok(None) => update(&|c| c.gone = true),
        Err(e) => update(&|c| c.copy.failed = Some(e.to_string())),
    }
}

/// Drops the oldest cached files past what the cache keeps: whole
/// segments beyond [`CACHED_SEGMENTS`] (never one still being written),
/// indexes beyond [`CACHED_INDEXES`].
fn evict(work: &mut Work) {
    let count = |work: &Work, segments: bool| work.cached.iter().filter(|(s, _)| *s == segments).count();
    while count(work, true) > CACHED_SEGMENTS {
        let oldest_complete = work
            .cached
            .iter()
            .position(|&(is_segment, s)| is_segment && work.segments.get(&s).is_none_or(|c| c.copy.complete || c.gone));
        let Some(at) = oldest_complete else { break };
        if let Some((_, s)) = work.cached.remove(at)
            && let Some(c) = work.segments.remove(&s)
        {
            let _ = std::fs::remove_file(c.path);
        }
    }
    while count(work, false) > CACHED_INDEXES {
        let Some(at) = work.cached.iter().position(|&(is_segment, _)| !is_segment) else {
            break;
        };
        if let Some((_, s)) = work.cached.remove(at)
            && let Some(Done::File(path)) = work.done.remove(&(Kind::Index, s))
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Lists the archive's hours, reading the playlists of hours not seen yet
/// and of the newest ones; forgets hours gone. Whether anything changed.
fn relist(store: &ArchiveStore, seen: &mut BTreeMap<Hour, Vec<SegmentInfo>>) -> Result<bool, StoreError> {
    let hours = hours(store)?;
    let mut changed = false;
    let before = seen.len();
    seen.retain(|h, _| hours.contains(h));
    changed |= seen.len() != before;
    let newest: Vec<Hour> = hours.iter().rev().take(HOURS_RELISTED).copied().collect();
    let to_read: Vec<Hour> = hours
        .into_iter()
        .filter(|hour| !seen.contains_key(hour) || newest.contains(hour))
        .collect();
    for (hour, segments) in to_read.iter().zip(segments_of_each(store, &to_read)?) {
        let segments: Vec<SegmentInfo> = segments.into_iter().map(|s| s.info).collect();
        if seen.get(hour) != Some(&segments) {
            seen.insert(*hour, segments);
            changed = true;
        }
    }
    Ok(changed)
}

/// Fetches `job` into `cache` (a segment or index) or memory (a range).
fn fetch(store: &ArchiveStore, cache: &Path, job: &Job) -> Done {
    let hour = Hour::of(job.segment.program_date_time);
    let sequence = job.segment.sequence;
    match job.kind {
        Kind::Range { offset, len } => match store.get_range(&hour.key(&object_name(&job.segment)), offset, len) {
            Ok(Some(bytes)) => Done::Bytes(bytes),
            Ok(None) => Done::Gone,
            Err(e) => Done::Failed(e.to_string()),
        },
        // Whole segments are fetched by `fetch_segment`.
        Kind::Segment(_) => Done::Failed("not fetched here".into()),
        Kind::Index => {
            let (object, name) = (object_index_name(&job.segment), segment_index_name(sequence));
            let path = cache.join(&name);
            let partial = cache.join(format!("{name}.part"));
            let mut file = match std::fs::File::create(&partial) {
                Ok(f) => f,
                Err(e) => return Done::Failed(format!("cannot write '{}': {e}", partial.display())),
            };
            let got = store.get_into(&hour.key(&object), INDEX_MAX_BYTES, (0, None), &mut file, |_| {});
            drop(file);
            match got {
                Ok(Some(_)) => match std::fs::rename(&partial, &path) {
                    Ok(()) => Done::File(path),
                    Err(e) => Done::Failed(format!("cannot keep '{}': {e}", path.display())),
                },
                Ok(None) => {
                    let _ = std::fs::remove_file(&partial);
                    Done::Gone
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    Done::Failed(e.to_string())
                }
            }
        }
    }
}
