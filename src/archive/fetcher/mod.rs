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

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

mod thread;

use super::store::Cancel;
use super::{ArchiveStore, SEGMENT_MAX_BYTES};
use crate::layout::{SegmentInfo, SegmentNumber};
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
/// Largest keyframe index fetched.
const INDEX_MAX_BYTES: u64 = crate::layout::index::INDEX_MAX_BYTES;
/// Largest range read at once (a keyframe, or a segment's head).
const RANGE_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// What is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Kind {
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

impl CachedSegment {
    /// A copy at `path` of `part`, nothing written yet; `failed` if it
    /// could not even be started.
    fn new(path: PathBuf, part: SegmentPart, failed: Option<String>) -> CachedSegment {
        CachedSegment {
            path,
            part,
            copy: LocalCopy {
                written: 0,
                size: None,
                complete: false,
                failed,
            },
            gone: false,
        }
    }
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

    /// Waits for a change until `deadline`: the lock again, or `None` once
    /// the deadline has passed.
    fn wait<'a>(&self, work: MutexGuard<'a, Work>, deadline: Instant) -> Option<MutexGuard<'a, Work>> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        Some(
            self.changed
                .wait_timeout(work, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0,
        )
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
        crate::platform::create_private_dir(&cache)
            .map_err(|e| format!("cannot make a cache in '{}': {e}", cache.display()))?;
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
                .spawn(move || thread::run(&shared, &store))
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
            work = self
                .shared
                .wait(work, deadline)
                .ok_or_else(|| format!("the archive was not listed within {} s", limit.as_secs()))?;
        }
        work.listing_error.clone().map_or(Ok(()), Err)
    }

    /// Asks for `job` unless it is done or asked for already; first in line
    /// if `urgent`.
    fn ask(work: &mut Work, job: Job, urgent: bool) {
        let key = job.key();
        if !work.done.contains_key(&key) {
            Self::enqueue(work, job, urgent, |j| j.key() == key);
        }
    }

    /// Queues `job`, first in line if `urgent`, unless a job that does what
    /// it does (`same`) is queued already; an urgent one moves that job to
    /// the front instead.
    fn enqueue(work: &mut Work, job: Job, urgent: bool, same: impl Fn(&Job) -> bool) {
        if let Some(at) = work.queue.iter().position(same) {
            if !urgent || at == 0 {
                return;
            }
            if let Some(queued) = work.queue.remove(at) {
                work.queue.push_front(queued);
            }
            return;
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
        if !cached {
            let job = Job {
                kind: Kind::Segment(part),
                segment: segment.clone(),
            };
            Self::enqueue(work, job, urgent, asked);
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
            if work.stop {
                return None;
            }
            work = self.shared.wait(work, deadline)?;
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
