// SPDX-License-Identifier: MPL-2.0
//! `Uploader`: the thread that empties the ring's archive queue into the
//! bucket, oldest segment first, and keeps the archive's playlists and
//! retention. Failed uploads are retried with a growing pause (1 s to
//! 30 s); the first failure of an outage and the first success after it
//! are reported once each. Nothing here runs on the streaming thread.
//!
//! Order of writes for each segment: its index, its data, then the
//! playlists; then it leaves the queue. A crash anywhere in between puts
//! that segment again (same key, same bytes) and nothing else; a segment
//! whose object is already there at its size, as after such a crash, is
//! not sent twice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::playlists::{ArchivePlaylists, PlaylistObject, parse_hour_playlist};
use super::store::{Cancel, PutError, StoreError};
use super::{ArchiveConfig, ArchiveEvent, ArchiveStats, ArchiveStore};
use crate::layout::archive::{HOUR_PLAYLIST_NAME, Hour, object_index_name, object_name, parse_object_name};
use crate::layout::{PLAYLIST_MAX_BYTES, SegmentInfo, WallTime};
use crate::ring::ArchiveQueue;

/// Longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Retention runs at most this often (or four times per archive window,
/// if that is shorter).
const RETENTION_INTERVAL: Duration = Duration::from_secs(30);
/// Largest keyframe index read from the queue.
const INDEX_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Receives the uploader's reports, on its thread.
pub type Report = Box<dyn Fn(ArchiveEvent) + Send>;

#[derive(Debug, Default)]
struct Counters {
    segments_uploaded: AtomicU64,
    bytes_uploaded: AtomicU64,
    upload_errors: AtomicU64,
    failures: AtomicU64,
    holes: AtomicU64,
    objects_deleted: AtomicU64,
    /// CPU time of the uploader's thread, ns.
    cpu_ns: AtomicU64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Uploader {
    queue: Arc<ArchiveQueue>,
    counters: Arc<Counters>,
    /// When stopping, how long uploads may go on to empty the queue.
    drain: Arc<Mutex<Option<Instant>>>,
    /// Cuts a request in flight short once the drain time is over.
    cancel: Arc<Cancel>,
    thread: Option<JoinHandle<()>>,
}

impl Uploader {
    /// Starts uploading what `queue` holds, and what joins it, to the
    /// archive `config` describes.
    pub fn start(config: &ArchiveConfig, queue: Arc<ArchiveQueue>, report: Report) -> Result<Uploader, String> {
        let store = ArchiveStore::new(config)?;
        let cancel = store.cancel_handle();
        // Failing to record it costs readers the archive, not the archive.
        let _ = queue.describe(&config.description());
        let counters = Arc::new(Counters::default());
        let drain = Arc::new(Mutex::new(None));
        let mut work = Work {
            store,
            queue: queue.clone(),
            counters: counters.clone(),
            drain: drain.clone(),
            report,
            playlists: ArchivePlaylists::default(),
            max_duration_ms: i64::try_from(config.max_duration_ns / 1_000_000).unwrap_or(i64::MAX),
            newest: None,
            last_retention: None,
            outage: None,
            backoff: Duration::from_secs(1),
            first_pass: true,
            bucket_checked: false,
        };
        let thread = std::thread::Builder::new()
            .name("streambuffer-archive".into())
            .spawn(move || work.run())
            .map_err(|e| format!("cannot start the archive's thread: {e}"))?;
        Ok(Uploader {
            queue,
            counters,
            drain,
            cancel,
            thread: Some(thread),
        })
    }

    #[must_use]
    pub fn stats(&self) -> ArchiveStats {
        let c = &self.counters;
        ArchiveStats {
            segments_uploaded: c.segments_uploaded.load(Ordering::Relaxed),
            bytes_uploaded: c.bytes_uploaded.load(Ordering::Relaxed),
            upload_errors: c.upload_errors.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            holes: c.holes.load(Ordering::Relaxed),
            objects_deleted: c.objects_deleted.load(Ordering::Relaxed),
            cpu_ns: c.cpu_ns.load(Ordering::Relaxed),
            waiting: self.queue.waiting(),
            held_bytes: self.queue.held_bytes(),
        }
    }

    /// Stops, after uploading what can go within `drain` (what is left
    /// stays queued for the next start).
    pub fn stop(&mut self, drain: Duration) {
        let deadline = Instant::now() + drain;
        if let Ok(mut d) = self.drain.lock() {
            *d = Some(deadline);
        }
        self.queue.stop();
        if let Some(thread) = self.thread.take() {
            // A request still in flight at the deadline (a server that
            // hangs) is cut short rather than waited for.
            while !thread.is_finished() {
                if Instant::now() >= deadline {
                    self.cancel.cancel();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = thread.join();
        }
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

/// The uploader thread's state.
struct Work {
    store: ArchiveStore,
    queue: Arc<ArchiveQueue>,
    counters: Arc<Counters>,
    drain: Arc<Mutex<Option<Instant>>>,
    report: Report,
    playlists: ArchivePlaylists,
    max_duration_ms: i64,
    /// End of the newest archived segment: retention counts back from it.
    newest: Option<WallTime>,
    last_retention: Option<Instant>,
    /// Since when uploads fail.
    outage: Option<Instant>,
    backoff: Duration,
    /// Entries found queued at start may already be in the bucket.
    first_pass: bool,
    /// The bucket answered a listing.
    bucket_checked: bool,
}

/// Why a segment did not go up.
enum UploadError {
    /// The bucket failed: retried.
    Store(StoreError),
    /// Its files could not be read: a hole.
    Read,
}

impl Work {
    fn drain_deadline(&self) -> Option<Instant> {
        self.drain.lock().ok().and_then(|d| *d)
    }

    fn run(&mut self) {
        self.work();
        // What the ring let go of at its close is held to the limit too.
        self.queue.enforce_hold_limit();
        self.report_holes();
        self.note_cpu();
    }

    fn note_cpu(&self) {
        if let Some(t) = crate::platform::thread_cpu_time() {
            let ns = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
            self.counters.cpu_ns.store(ns, Ordering::Relaxed);
        }
    }

    fn work(&mut self) {
        loop {
            self.queue.enforce_hold_limit();
            self.report_holes();
            if self.drain_deadline().is_some_and(|deadline| Instant::now() >= deadline) {
                return;
            }
            if !self.bucket_checked {
                // A listing first: some servers take PUTs into a bucket
                // that does not exist; none lists one.
                match self.store.folders("") {
                    Ok(_) => {
                        self.bucket_checked = true;
                        self.cleared();
                    }
                    Err(e) => {
                        if self.failed(e) {
                            return;
                        }
                        continue;
                    }
                }
            }
            let Some(info) = self.queue.take_oldest() else {
                self.first_pass = false;
                if self.queue.is_stopping() {
                    self.finish_playlists();
                    return;
                }
                self.retention();
                self.queue.wait(Duration::from_secs(1));
                continue;
            };
            match self.upload(&info) {
                Ok(()) => {
                    self.queue.archived(info.sequence);
                    self.counters.segments_uploaded.fetch_add(1, Ordering::Relaxed);
                    self.counters.bytes_uploaded.fetch_add(info.bytes, Ordering::Relaxed);
                    self.cleared();
                    self.retention();
                    self.note_cpu();
                }
                Err(UploadError::Read) => self.queue.unreadable(info.sequence),
                Err(UploadError::Store(e)) => {
                    self.queue.put_back(info.sequence);
                    if self.failed(e) {
                        return;
                    }
                }
            }
        }
    }

    /// A request went through: the end of an outage, if there was one.
    fn cleared(&mut self) {
        self.backoff = Duration::from_secs(1);
        if let Some(since) = self.outage.take() {
            (self.report)(ArchiveEvent::Clear {
                waiting: self.queue.waiting(),
                outage_ms: u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
        }
    }

    /// A request failed: reported if it starts an outage, then a pause
    /// before the next try. True when stopping (what is left goes at the
    /// next start).
    fn failed(&mut self, e: StoreError) -> bool {
        if self.store.cancel_handle().is_cancelled() {
            // Cut short by the stop: not an outage of the store.
            return true;
        }
        self.counters.upload_errors.fetch_add(1, Ordering::Relaxed);
        if self.outage.is_none() {
            self.outage = Some(Instant::now());
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
            (self.report)(ArchiveEvent::Failure {
                error: e.0,
                waiting: self.queue.waiting(),
            });
        }
        if self.queue.is_stopping() {
            return true;
        }
        self.pause(self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        false
    }

    /// Sleeps `d`, waking early only to stop.
    fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until && !self.queue.is_stopping() {
            std::thread::sleep(Duration::from_millis(100).min(until.saturating_duration_since(Instant::now())));
            self.queue.enforce_hold_limit();
        }
    }

    fn report_holes(&self) {
        for hole in self.queue.take_holes() {
            let holes_total = self.counters.holes.fetch_add(1, Ordering::Relaxed) + 1;
            (self.report)(ArchiveEvent::Hole { hole, holes_total });
        }
    }

    fn upload(&mut self, info: &SegmentInfo) -> Result<(), UploadError> {
        let (data_file, index_file) = self.queue.open_files(info.sequence).map_err(|_| UploadError::Read)?;
        let hour = Hour::of(info.program_date_time);
        let data_name = hour.key(&object_name(info));
        let already = self.first_pass
            && self
                .store
                .size_of(&data_name)
                .map_err(UploadError::Store)?
                .is_some_and(|size| size == info.bytes);
        if !already {
            if let Some(index_file) = index_file {
                let index =
                    crate::platform::read_to_end_bounded(index_file, INDEX_MAX_BYTES).map_err(|_| UploadError::Read)?;
                self.store
                    .put(&hour.key(&object_index_name(info)), index)
                    .map_err(UploadError::Store)?;
            }
            self.store
                .put_file(&data_name, &data_file, info.bytes)
                .map_err(|e| match e {
                    PutError::Store(e) => UploadError::Store(e),
                    PutError::Read => UploadError::Read,
                })?;
        }
        self.publish(info, hour).map_err(UploadError::Store)?;
        let end = info.program_date_time.after(info.duration_ns);
        self.newest = Some(self.newest.map_or(end, |n| n.max(end)));
        Ok(())
    }

    /// Lists segment `info` of `hour` in the archive's playlists.
    fn publish(&mut self, info: &SegmentInfo, hour: Hour) -> Result<(), StoreError> {
        if self.playlists.hour() != Some(hour) {
            let name = hour.key(HOUR_PLAYLIST_NAME);
            let loaded = self
                .store
                .get(&name, PLAYLIST_MAX_BYTES)?
                .and_then(|raw| String::from_utf8(raw).ok())
                .map(|text| parse_hour_playlist(hour, &text))
                .unwrap_or_default();
            if let Some(finished) = self.playlists.begin_hour(hour, loaded) {
                self.put_playlist(finished)?;
            }
        }
        let [hour_list, window] = self.playlists.admit(info.clone());
        self.put_playlist(hour_list)?;
        self.put_playlist(window)
    }

    /// Everything queued is archived and the sink stops: the playlists say
    /// the recording ended (a later start in the same hour reopens them).
    fn finish_playlists(&mut self) {
        for playlist in self.playlists.finish() {
            let _ = self.put_playlist(playlist);
        }
    }

    fn put_playlist(&self, (name, text): PlaylistObject) -> Result<(), StoreError> {
        if name.is_empty() {
            return Ok(());
        }
        self.store.put(&name, text.into_bytes())
    }

    /// Deletes what is older than the archive's window (in batches), at
    /// most every [`RETENTION_INTERVAL`]. A failure is retried then.
    fn retention(&mut self) {
        let (Some(newest), true) = (self.newest, self.max_duration_ms > 0) else {
            return;
        };
        let quarter = u64::try_from(self.max_duration_ms / 4).unwrap_or(0).max(500);
        let interval = RETENTION_INTERVAL.min(Duration::from_millis(quarter));
        if self.last_retention.is_some_and(|t| t.elapsed() < interval) {
            return;
        }
        self.last_retention = Some(Instant::now());
        let cutoff = WallTime::from_ms(newest.ms().saturating_sub(self.max_duration_ms));
        // A failure is tried again at the next interval.
        if let Ok(deleted) = self.delete_before(cutoff) {
            self.counters.objects_deleted.fetch_add(deleted, Ordering::Relaxed);
        }
        if let Some(window) = self.playlists.expire(cutoff) {
            let _ = self.put_playlist(window);
        }
    }

    /// Deletes segments (and indexes) starting before `cutoff`, whole
    /// hours with their playlist; the hour `cutoff` falls in keeps its
    /// playlist, rewritten without them. Segments a kept recording names
    /// stay (no hour playlist lists them any more).
    fn delete_before(&mut self, cutoff: WallTime) -> Result<u64, StoreError> {
        let mut deleted = 0;
        let mut kept: Option<std::collections::BTreeSet<String>> = None;
        let cutoff_hour = Hour::of(cutoff);
        let mut hours: Vec<Hour> = self
            .store
            .folders("")?
            .iter()
            .filter_map(|f| Hour::parse_folder(f))
            .filter(|h| *h <= cutoff_hour)
            .collect();
        hours.sort_unstable();
        for hour in hours {
            let folder = hour.folder();
            let objects = self.store.objects(&folder)?;
            let whole_hour = hour.next().start() <= cutoff;
            let start_of = |name: &str| {
                let data_name = match name.strip_suffix(".idx") {
                    Some(stem) => format!("{stem}.ts"),
                    None => name.to_owned(),
                };
                parse_object_name(hour, &data_name).map(|(_, start)| start)
            };
            let mut expired: Vec<String> = objects
                .iter()
                .filter(|(name, _)| whole_hour || start_of(name).is_some_and(|start| start < cutoff))
                .map(|(name, _)| hour.key(name))
                .collect();
            if expired.is_empty() {
                continue;
            }
            if kept.is_none() {
                kept = Some(super::catalog::kept_keys(&self.store)?);
            }
            if let Some(kept) = &kept {
                expired.retain(|key| !kept.contains(key));
            }
            if !whole_hour {
                // The playlist first: it never lists a deleted segment.
                let name = hour.key(HOUR_PLAYLIST_NAME);
                if let Some(text) = self
                    .store
                    .get(&name, PLAYLIST_MAX_BYTES)?
                    .and_then(|raw| String::from_utf8(raw).ok())
                {
                    let ended = text.contains("#EXT-X-ENDLIST");
                    let vod = text.contains("#EXT-X-PLAYLIST-TYPE:VOD");
                    let kept: Vec<SegmentInfo> = parse_hour_playlist(hour, &text)
                        .into_iter()
                        .filter(|s| s.program_date_time >= cutoff)
                        .collect();
                    self.put_playlist(super::playlists::hour_playlist(hour, &kept, ended, vod))?;
                }
            }
            deleted += self.store.delete(&expired)?;
        }
        Ok(deleted)
    }
}
