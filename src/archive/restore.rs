// SPDX-License-Identifier: MPL-2.0
//! `Restorer`: what a recording reaching back past the ring's oldest
//! segment takes from the archive ([`ArchiveReach`]), fetched on a thread
//! of its own so that the streaming thread never waits for the bucket.
//!
//! For each request it walks back from the ring's oldest segment: first
//! the segments evicted but still waiting in the queue (not in the bucket
//! yet), then the archive's, newest first, an hour playlist at a time,
//! reading each segment's keyframe index until one starts at or before the
//! target. The indexes carry the ring's one timeline, so the start is
//! found in ring time however many holes the archive has; an index whose
//! ring time does not run before the newer segment's belongs to another
//! timeline (a ring started afresh) and ends the walk. Then the segments
//! and their indexes are written, whole, into a directory of the
//! recording's in the queue (`restore-<id>`), read there like the ring's.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use super::catalog::{self, ArchivedSegment};
use super::store::Cancel;
use super::{ArchiveConfig, ArchiveStore, SEGMENT_MAX_BYTES};
use crate::layout::archive::{
    Hour, QUEUE_DIR_NAME, RESTORE_DIR_PREFIX, object_index_name, object_name, restore_dir_name,
};
use crate::layout::index::{self, INDEX_MAX_BYTES};
use crate::layout::{RingTime, SegmentInfo, segment_file_name, segment_index_name};
use crate::recorder::recording::{ArchiveReach, ReachTarget, RestoreRequest, Restored, RestoredSegment};
use crate::ring::ArchiveQueue;

/// Keyframe indexes fetched at once while walking back.
const INDEXES_AT_ONCE: usize = 16;

/// See the module documentation.
pub struct Restorer {
    requests: Option<Sender<RestoreRequest>>,
    answers: Receiver<Restored>,
    cancel: Arc<Cancel>,
    thread: Option<JoinHandle<()>>,
}

impl Restorer {
    /// Starts the thread for the ring in `ring` whose archive `config`
    /// describes (`queue`: its segments not archived yet). Directories a
    /// previous run left in the queue are removed.
    pub fn start(config: &ArchiveConfig, ring: &Path, queue: Option<Arc<ArchiveQueue>>) -> Result<Restorer, String> {
        let store = ArchiveStore::new(config)?;
        let queue_dir = ring.join(QUEUE_DIR_NAME);
        if let Ok(entries) = std::fs::read_dir(&queue_dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(RESTORE_DIR_PREFIX) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let cancel = store.cancel_handle();
        let (requests, jobs) = mpsc::channel::<RestoreRequest>();
        let (answer, answers) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("streambuffer-archive-restore".into())
            .spawn(move || {
                for request in jobs {
                    let dir = queue_dir.join(restore_dir_name(request.recording));
                    let result = restore(&store, queue.as_deref(), &request, &dir);
                    let restored = Restored {
                        recording: request.recording,
                        dir,
                        result,
                    };
                    if answer.send(restored).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| format!("cannot start the archive's restore thread: {e}"))?;
        Ok(Restorer {
            requests: Some(requests),
            answers,
            cancel,
            thread: Some(thread),
        })
    }
}

impl ArchiveReach for Restorer {
    fn request(&mut self, request: RestoreRequest) {
        if let Some(requests) = &self.requests {
            let _ = requests.send(request);
        }
    }

    fn poll(&mut self) -> Option<Restored> {
        self.answers.try_recv().ok()
    }

    fn wait(&mut self, timeout: Duration) -> Option<Restored> {
        self.answers.recv_timeout(timeout).ok()
    }
}

impl Drop for Restorer {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where a segment to take is.
enum Source {
    /// Waiting in the queue (not in the bucket yet).
    Queued,
    Archived(Hour),
}

/// A segment the walk back takes, with its index.
struct Taken {
    source: Source,
    info: SegmentInfo,
    index: Vec<u8>,
    start: RingTime,
}

/// Answers `request`: the segments, oldest first, in `dir`, and the ring
/// time the recording starts at.
fn restore(
    store: &ArchiveStore,
    queue: Option<&ArchiveQueue>,
    request: &RestoreRequest,
    dir: &Path,
) -> Result<(Vec<RestoredSegment>, RingTime), String> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot make '{}': {e}", dir.display())),
    }
    let mut taken = walk_back(store, queue, request)?;
    taken.reverse();
    let mut restored = Vec::with_capacity(taken.len());
    for t in taken {
        let Some(bytes) = fetch(store, queue, &t, dir)? else {
            // Gone since it was listed (retention): a hole in the recording.
            continue;
        };
        std::fs::write(dir.join(segment_index_name(t.info.sequence)), &t.index)
            .map_err(|e| format!("cannot write into '{}': {e}", dir.display()))?;
        restored.push(RestoredSegment {
            info: SegmentInfo { bytes, ..t.info },
            start: t.start,
        });
    }
    let target = match (request.target, restored.first()) {
        (ReachTarget::RingTime(t), Some(first)) => t.max(first.start),
        (ReachTarget::RingTime(t), None) => t.max(request.before_ring_time),
        (ReachTarget::Date(date), Some(first)) => {
            let into_ms = u64::try_from(date.ms_since(first.info.program_date_time)).unwrap_or(0);
            let into_ns = into_ms.saturating_mul(1_000_000).min(first.info.duration_ns);
            first.start.saturating_add(into_ns)
        }
        (ReachTarget::Date(_), None) => request.before_ring_time,
    };
    Ok((restored, target))
}

/// The segments from the newest before `request.before` back to the one
/// holding the target (or the oldest there is), newest first.
fn walk_back(
    store: &ArchiveStore,
    queue: Option<&ArchiveQueue>,
    request: &RestoreRequest,
) -> Result<Vec<Taken>, String> {
    let mut taken: Vec<Taken> = Vec::new();
    let mut newer_start = request.before_ring_time;
    // Whether `t` is the last one to take; `None`: not on this timeline.
    let mut place = |t: Taken, taken: &mut Vec<Taken>| -> Option<bool> {
        if t.start >= newer_start {
            return None;
        }
        newer_start = t.start;
        let reached = match request.target {
            ReachTarget::RingTime(target) => t.start <= target,
            ReachTarget::Date(date) => t.info.program_date_time <= date,
        };
        taken.push(t);
        Some(reached)
    };
    let older = |info: &SegmentInfo| info.sequence < request.before && info.program_date_time < request.before_date;
    let queued: Vec<SegmentInfo> = queue
        .map(ArchiveQueue::queued_segments)
        .unwrap_or_default()
        .into_iter()
        .filter(|info| older(info))
        .collect();
    for info in queued.iter().rev() {
        let Some(queue) = queue else { break };
        let Ok((_, Some(index_file))) = queue.open_files(info.sequence) else {
            continue;
        };
        let Ok(raw) = crate::platform::read_to_end_bounded(index_file, INDEX_MAX_BYTES) else {
            continue;
        };
        let Some(start) = index::parse(&raw, u64::MAX).map(|i| i.start.ring_time) else {
            continue;
        };
        let t = Taken {
            source: Source::Queued,
            info: info.clone(),
            index: raw,
            start,
        };
        match place(t, &mut taken) {
            Some(false) => {}
            Some(true) | None => return Ok(taken),
        }
    }
    let mut hours = catalog::hours(store).map_err(|e| format!("the archive: {e}"))?;
    hours.retain(|h| *h <= Hour::of(request.before_date));
    for &hour in hours.iter().rev() {
        let mut segments: Vec<ArchivedSegment> = catalog::segments_of(store, hour)
            .map_err(|e| format!("the archive: {e}"))?
            .into_iter()
            .filter(|s| older(&s.info) && !queued.iter().any(|q| q.sequence == s.info.sequence))
            .collect();
        segments.sort_by_key(|s| std::cmp::Reverse(s.info.program_date_time));
        for batch in segments.chunks(INDEXES_AT_ONCE) {
            let names: Vec<String> = batch.iter().map(|s| hour.key(&object_index_name(&s.info))).collect();
            for (s, raw) in batch.iter().zip(store.get_each(&names, INDEX_MAX_BYTES)) {
                let raw = raw.map_err(|e| format!("the archive: {e}"))?;
                // Without its index a segment cannot be placed in ring time.
                let Some((raw, start)) = raw.and_then(|raw| {
                    let start = index::parse(&raw, u64::MAX)?.start.ring_time;
                    Some((raw, start))
                }) else {
                    continue;
                };
                let t = Taken {
                    source: Source::Archived(hour),
                    info: s.info.clone(),
                    index: raw,
                    start,
                };
                match place(t, &mut taken) {
                    Some(false) => {}
                    Some(true) | None => return Ok(taken),
                }
            }
        }
    }
    Ok(taken)
}

/// Writes segment `t`'s data into `dir`; its length, or `None` if it is
/// no longer there.
fn fetch(store: &ArchiveStore, queue: Option<&ArchiveQueue>, t: &Taken, dir: &Path) -> Result<Option<u64>, String> {
    let path: PathBuf = dir.join(segment_file_name(t.info.sequence));
    let mut file = File::create(&path).map_err(|e| format!("cannot create '{}': {e}", path.display()))?;
    let written = match (&t.source, queue) {
        (Source::Queued, Some(queue)) => match queue.open_files(t.info.sequence) {
            Ok((mut data, _)) => Some(
                io::copy(&mut data, &mut file).map_err(|e| format!("cannot copy into '{}': {e}", path.display()))?,
            ),
            Err(_) => None,
        },
        (Source::Queued, None) => None,
        (Source::Archived(hour), _) => store
            .get_into(
                &hour.key(&object_name(&t.info)),
                SEGMENT_MAX_BYTES,
                (0, None),
                &mut file,
                |_| {},
            )
            .map_err(|e| format!("the archive: {e}"))?,
    };
    if written.is_none() {
        drop(file);
        let _ = std::fs::remove_file(&path);
    }
    Ok(written)
}
