// SPDX-License-Identifier: MPL-2.0
//! `ArchiveFetcher`: the archive as `streambuffersrc` reads it, on a
//! thread of its own: it lists the archive's segments (every hour playlist
//! once, then the newest hours and the list of hours every few seconds) and
//! fetches what the reader asks for into a private cache directory: whole
//! segments (with read-ahead), keyframe indexes, and byte ranges for trick
//! play. The reader only looks at what is there ([`ArchivedSegments`]), or
//! waits for an index or a range, which someone is waiting for anyway.
//!
//! A segment is written into the cache as it arrives, and the reader reads
//! it as far as it is written ([`LocalCopy`]), so playback (and a seek)
//! starts before the whole segment is there; a seek landing mid-segment
//! fetches the segment's tables and the rest from its keyframe only. The
//! cache keeps the few segments around the one being read and is removed
//! with the fetcher.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::ArchiveStore;
use super::catalog::{hours, segments_of_each};
use super::store::{Cancel, StoreError};
use crate::layout::archive::{Hour, object_index_name, object_name};
use crate::layout::{SegmentInfo, SegmentNumber, segment_file_name, segment_index_name};
use crate::reader::{ArchiveListing, ArchivedSegments, Fetch, LocalCopy, SegmentPart};

/// How often the archive is listed again (the newest hours' playlists).
const RELIST_EVERY: Duration = Duration::from_secs(5);
/// Hour playlists read again at each listing: the newest ones, which the
/// sink is still adding to.
const HOURS_RELISTED: usize = 2;
/// Whole segments kept in the cache: the one being read and those around it.
const CACHED_SEGMENTS: usize = 6;
/// Keyframe indexes kept (a few kilobytes each).
const CACHED_INDEXES: usize = 512;
/// Tries of one fetch before it is reported failed.
const ATTEMPTS: u32 = 3;
/// How long a reader waits for an index or a range.
const WAIT_FOR: Duration = Duration::from_secs(40);
/// Largest segment fetched (an hour of 9 Mbit/s).
const SEGMENT_MAX_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Largest keyframe index fetched.
const INDEX_MAX_BYTES: u64 = crate::layout::index::INDEX_MAX_BYTES;
/// Largest range read at once (a keyframe, or a segment's head).
const RANGE_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// What is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Segment(SegmentPart),
    Index,
    Range { offset: u64, len: u64 },
}

/// One fetch: what, of which segment.
#[derive(Debug, Clone)]
struct Job {
    kind: Kind,
    segment: SegmentInfo,
}

impl Job {
    fn key(&self) -> (Kind, SegmentNumber) {
        (self.kind, self.segment.sequence)
    }
}

/// What a fetch of an index or a range gave.
#[derive(Debug, Clone)]
enum Done {
    File(PathBuf),
    Bytes(Vec<u8>),
    Gone,
    Failed(String),
}

/// A segment's local copy.
#[derive(Debug, Clone)]
struct CachedSegment {
    path: PathBuf,
    part: SegmentPart,
    copy: LocalCopy,
    gone: bool,
}

/// What the thread and the reader share.
struct Work {
    listing: ArchiveListing,
    /// The first listing was made (or failed).
    listed: bool,
    listing_error: Option<String>,
    /// Asked for, in order (waited-for fetches first).
    queue: VecDeque<Job>,
    /// Indexes and ranges fetched.
    done: HashMap<(Kind, SegmentNumber), Done>,
    segments: HashMap<SegmentNumber, CachedSegment>,
    /// Cached segments and indexes, oldest first, for eviction.
    cached: VecDeque<(bool, SegmentNumber)>,
    stop: bool,
}

struct Shared {
    work: Mutex<Work>,
    /// Something was asked for, or done.
    changed: Condvar,
    cache: PathBuf,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Work> {
        self.work.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// See the module documentation.
pub struct ArchiveFetcher {
    shared: Arc<Shared>,
    cancel: Arc<Cancel>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ArchiveFetcher {
    /// Starts fetching from `store`, with a new cache directory in the
    /// system's temporary directory.
    pub fn start(store: ArchiveStore) -> Result<ArchiveFetcher, String> {
        static CACHES: AtomicU64 = AtomicU64::new(0);
        let cache = std::env::temp_dir().join(format!(
            "streambuffer-archive-{}-{}",
            std::process::id(),
            CACHES.fetch_add(1, Ordering::Relaxed)
        ));
        create_private_dir(&cache).map_err(|e| format!("cannot make a cache in '{}': {e}", cache.display()))?;
        let shared = Arc::new(Shared {
            work: Mutex::new(Work {
                listing: ArchiveListing::default(),
                listed: false,
                listing_error: None,
                queue: VecDeque::new(),
                done: HashMap::new(),
                segments: HashMap::new(),
                cached: VecDeque::new(),
                stop: false,
            }),
            changed: Condvar::new(),
            cache,
        });
        let cancel = store.cancel_handle();
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("streambuffer-archive-read".into())
                .spawn(move || run(&shared, &store))
                .map_err(|e| format!("cannot start the archive's reader thread: {e}"))?
        };
        Ok(ArchiveFetcher {
            shared,
            cancel,
            thread: Some(thread),
        })
    }

    /// Waits up to `limit` for the first listing; its error, if it failed.
    pub fn wait_listed(&self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let mut work = self.shared.lock();
        while !work.listed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("the archive was not listed within {} s", limit.as_secs()));
            }
            work = self
                .shared
                .changed
                .wait_timeout(work, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        work.listing_error.clone().map_or(Ok(()), Err)
    }

    /// Asks for `job` unless it is done or asked for already; first in line
    /// if `urgent`.
    fn ask(work: &mut Work, job: Job, urgent: bool) {
        let key = job.key();
        if work.done.contains_key(&key) {
            return;
        }
        if let Some(at) = work.queue.iter().position(|j| j.key() == key) {
            if !urgent || at == 0 {
                return;
            }
            work.queue.remove(at);
        }
        if urgent {
            work.queue.push_front(job);
        } else {
            work.queue.push_back(job);
        }
    }

    /// Asks for segment `segment` (at least `part` of it) unless its copy
    /// has it or it is asked for already.
    fn ask_segment(work: &mut Work, segment: &SegmentInfo, part: SegmentPart, urgent: bool) {
        let asked =
            |j: &Job| matches!(j.kind, Kind::Segment(p) if p.covers(part)) && j.segment.sequence == segment.sequence;
        let cached = work
            .segments
            .get(&segment.sequence)
            .is_some_and(|c| c.part.covers(part) && c.copy.failed.is_none());
        if cached || (!urgent && work.queue.iter().any(asked)) {
            return;
        }
        if let Some(at) = work.queue.iter().position(asked) {
            if at == 0 {
                return;
            }
            work.queue.remove(at);
        }
        let job = Job {
            kind: Kind::Segment(part),
            segment: segment.clone(),
        };
        if urgent {
            work.queue.push_front(job);
        } else {
            work.queue.push_back(job);
        }
    }

    /// Asks for `job` and waits for it (a failed one is forgotten, so that
    /// the next ask tries again).
    fn wait_for(&self, job: Job) -> Option<Done> {
        let key = job.key();
        let deadline = Instant::now() + WAIT_FOR;
        let mut work = self.shared.lock();
        Self::ask(&mut work, job, true);
        self.shared.changed.notify_all();
        loop {
            if let Some(done) = work.done.get(&key).cloned() {
                if matches!(done, Done::Bytes(_) | Done::Failed(_)) {
                    work.done.remove(&key);
                }
                return Some(done);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || work.stop {
                return None;
            }
            work = self
                .shared
                .changed
                .wait_timeout(work, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl ArchivedSegments for ArchiveFetcher {
    fn listing(&self) -> ArchiveListing {
        self.shared.lock().listing.clone()
    }

    fn segment(&self, segment: &SegmentInfo, part: SegmentPart, ahead: &[SegmentInfo]) -> Fetch {
        let mut work = self.shared.lock();
        let sequence = segment.sequence;
        let fetch = match work.segments.get(&sequence) {
            Some(c) if c.gone => Fetch::Gone,
            Some(c) if c.part.covers(part) && c.copy.failed.is_none() => Fetch::Ready(c.path.clone()),
            // Failed before it got to `part`: reported, and tried again next time.
            Some(c) if c.part.covers(part) => {
                let failed = c.copy.failed.clone().unwrap_or_default();
                if let Some(c) = work.segments.remove(&sequence) {
                    let _ = std::fs::remove_file(c.path);
                }
                Fetch::Failed(failed)
            }
            _ => {
                Self::ask_segment(&mut work, segment, part, true);
                Fetch::Pending
            }
        };
        for next in ahead {
            Self::ask_segment(&mut work, next, SegmentPart::WHOLE, false);
        }
        drop(work);
        self.shared.changed.notify_all();
        fetch
    }

    fn local_copy(&self, sequence: SegmentNumber) -> Option<LocalCopy> {
        self.shared.lock().segments.get(&sequence).map(|c| c.copy.clone())
    }

    fn index(&self, segment: &SegmentInfo) -> Option<PathBuf> {
        let job = Job {
            kind: Kind::Index,
            segment: segment.clone(),
        };
        match self.wait_for(job)? {
            Done::File(path) => Some(path),
            _ => None,
        }
    }

    fn range(&self, segment: &SegmentInfo, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
        if len > RANGE_MAX_BYTES {
            return Err(std::io::Error::other("range too large"));
        }
        // A segment already whole in the cache is read there.
        let whole = self
            .shared
            .lock()
            .segments
            .get(&segment.sequence)
            .filter(|c| c.part == SegmentPart::WHOLE && c.copy.complete)
            .map(|c| c.path.clone());
        if let Some(path) = whole {
            let file = crate::platform::open_read_only(&path)?;
            let mut buf = vec![0u8; usize::try_from(len).map_err(std::io::Error::other)?];
            let mut filled = 0;
            while filled < buf.len() {
                match crate::platform::read_at(&file, &mut buf[filled..], offset + filled as u64)? {
                    0 => break,
                    n => filled += n,
                }
            }
            buf.truncate(filled);
            return Ok(buf);
        }
        let job = Job {
            kind: Kind::Range { offset, len },
            segment: segment.clone(),
        };
        match self.wait_for(job) {
            Some(Done::Bytes(bytes)) => Ok(bytes),
            Some(Done::Gone) => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
            Some(Done::Failed(e)) => Err(std::io::Error::other(e)),
            Some(Done::File(_)) | None => Err(std::io::Error::from(std::io::ErrorKind::TimedOut)),
        }
    }
}

impl Drop for ArchiveFetcher {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        self.cancel.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.shared.cache);
    }
}

/// The fetcher's thread: lists, then fetches what is asked, listing again
/// every [`RELIST_EVERY`].
fn run(shared: &Shared, store: &ArchiveStore) {
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
            let failed = Some(format!("cannot write '{}': {e}", path.display()));
            let mut work = shared.lock();
            if let Some(c) = work.segments.get_mut(&sequence) {
                c.copy.failed = failed;
            }
            return;
        }
    };
    {
        let mut work = shared.lock();
        let replaced = work.segments.insert(
            sequence,
            CachedSegment {
                path: path.clone(),
                part,
                copy: LocalCopy {
                    written: 0,
                    size: None,
                    complete: false,
                    failed: None,
                },
                gone: false,
            },
        );
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

/// Creates `dir`, readable by its owner only: what is fetched may not be
/// for every user of the machine.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
