// SPDX-License-Identifier: MPL-2.0
//! `ArchiveFetcher`: the archive as `streambuffersrc` reads it, on a
//! thread of its own: it lists the archive's segments (every hour playlist
//! once, then the newest hours and the list of hours every few seconds) and
//! fetches what the reader asks for into a private cache directory: whole
//! segments (with read-ahead), keyframe indexes, and byte ranges for trick
//! play. The reader only looks at what is there ([`ArchivedSegments`]), or
//! waits for an index or a range, which someone is waiting for anyway.
//!
//! A segment is written to the cache under a temporary name and renamed
//! when whole, so the reader never opens part of one; the cache keeps the
//! few segments around the one being read and is removed with the fetcher.

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
use crate::reader::{ArchiveListing, ArchivedSegments, Fetch};

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
    Segment,
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

/// What a fetch gave.
#[derive(Debug, Clone)]
enum Done {
    File(PathBuf),
    Bytes(Vec<u8>),
    Gone,
    Failed(String),
}

/// What the thread and the reader share.
struct Work {
    listing: ArchiveListing,
    /// The first listing was made (or failed).
    listed: bool,
    listing_error: Option<String>,
    /// Asked for, in order (waited-for fetches first).
    queue: VecDeque<Job>,
    done: HashMap<(Kind, SegmentNumber), Done>,
    /// Whole segments and indexes in the cache, oldest first.
    cached: VecDeque<(Kind, SegmentNumber)>,
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

    fn segment(&self, segment: &SegmentInfo, ahead: &[SegmentInfo]) -> Fetch {
        let mut work = self.shared.lock();
        let key = (Kind::Segment, segment.sequence);
        let fetch = match work.done.get(&key) {
            Some(Done::File(path)) => Fetch::Ready(path.clone()),
            Some(Done::Gone) => Fetch::Gone,
            Some(Done::Failed(e)) => {
                let e = e.clone();
                work.done.remove(&key);
                Fetch::Failed(e)
            }
            Some(Done::Bytes(_)) | None => {
                Self::ask(
                    &mut work,
                    Job {
                        kind: Kind::Segment,
                        segment: segment.clone(),
                    },
                    true,
                );
                Fetch::Pending
            }
        };
        for next in ahead {
            Self::ask(
                &mut work,
                Job {
                    kind: Kind::Segment,
                    segment: next.clone(),
                },
                false,
            );
        }
        drop(work);
        self.shared.changed.notify_all();
        fetch
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
        // A segment already in the cache is read there.
        if let Some(Done::File(path)) = self.shared.lock().done.get(&(Kind::Segment, segment.sequence)).cloned() {
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
        let Some(mut job) = job else { continue };
        let mut outcome = fetch(store, &shared.cache, &job);
        // Not where the reader looked: a segment archived since the last
        // listing, named by a date-time the ring's playlist only implied.
        // Listed again now, and fetched by its listed name.
        if matches!(outcome, Done::Gone) && relist(store, &mut hours_seen).is_ok() {
            let listed = hours_seen
                .values()
                .flatten()
                .find(|s| s.sequence == job.segment.sequence && s.program_date_time != job.segment.program_date_time)
                .cloned();
            if let Some(listed) = listed {
                job.segment = listed;
                outcome = fetch(store, &shared.cache, &job);
            }
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
            work.cached.push_back(key);
            evict(&mut work, key.0);
        }
        work.done.insert(key, outcome);
        drop(work);
        shared.changed.notify_all();
    }
}

/// Drops the oldest cached files of `kind` past what the cache keeps.
fn evict(work: &mut Work, kind: Kind) {
    let keep = if kind == Kind::Segment {
        CACHED_SEGMENTS
    } else {
        CACHED_INDEXES
    };
    while work.cached.iter().filter(|(k, _)| *k == kind).count() > keep {
        let Some(at) = work.cached.iter().position(|(k, _)| *k == kind) else {
            return;
        };
        if let Some(key) = work.cached.remove(at)
            && let Some(Done::File(path)) = work.done.remove(&key)
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
        Kind::Segment | Kind::Index => {
            let (object, name, max) = if job.kind == Kind::Segment {
                (
                    object_name(&job.segment),
                    segment_file_name(sequence),
                    SEGMENT_MAX_BYTES,
                )
            } else {
                (
                    object_index_name(&job.segment),
                    segment_index_name(sequence),
                    INDEX_MAX_BYTES,
                )
            };
            let path = cache.join(&name);
            let partial = cache.join(format!("{name}.part"));
            let mut file = match std::fs::File::create(&partial) {
                Ok(f) => f,
                Err(e) => return Done::Failed(format!("cannot write '{}': {e}", partial.display())),
            };
            let got = store.get_into(&hour.key(&object), max, &mut file);
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
