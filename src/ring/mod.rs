//! The on-disk ring: a directory of MPEG-TS segment files, a journal of their
//! metadata and an HLS playlist, with retention, exclusive ownership and
//! adoption of an earlier ring after a restart or a crash.
//!
//! ```text
//! <location>/
//!   .streambuffer.lock         held (advisory lock) by the one writer
//!   .reusable-segment          an evicted segment's file, for a moment
//!   ring.journal               one line per completed segment
//!   index.m3u8                 HLS playlist, replaced atomically
//!   segment-000000000041.ts    oldest segment still in the window
//!   ...
//!   segment-000000000047.ts    segment being written
//!   ring.progress              how much of a reused segment file is new
//! ```
//!
//! Segments evicted for `max-duration` are not deleted but reused as the next
//! segment's file ([`reuse`] says why and how readers stay safe).
//!
//! The ring knows nothing about MPEG-TS beyond "whole packets": deciding where
//! segments start is the recorder's job.

pub mod failure;
pub mod journal;
pub mod playlist;
pub mod recovery;
pub mod retention;
pub mod reuse;
pub mod segment;

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

pub use failure::{FailureKind, WriteFailure};
use journal::Journal;
use playlist::{PLAYLIST_NAME, PlaylistHeader};
pub use retention::{EvictReason, Retention, Window};
use reuse::{Progress, ProgressFile, SPARE_NAME};
pub use segment::{Chunk, PendingWrites, SegmentInfo, SegmentWriter, SharedBytes};

use crate::platform;

/// Name of the lock file that makes one writer the owner of a directory.
pub const LOCK_NAME: &str = ".streambuffer.lock";

/// Free space is checked at every rotation and after this many bytes.
const SPACE_CHECK_INTERVAL: u64 = 16 * 1024 * 1024;
/// Room made beyond the pending bytes when evicting under pressure, so that
/// the next writes do not fail again at once.
const PRESSURE_MARGIN: u64 = 1024 * 1024;

/// How the ring is set up; fixed while it is open.
#[derive(Debug, Clone)]
pub struct RingConfig {
    pub dir: PathBuf,
    pub retention: Retention,
    /// Entries written to the playlist; 0 lists the whole window.
    pub playlist_length: u32,
    /// The nominal segment duration, the floor of EXT-X-TARGETDURATION.
    pub segment_duration_ns: u64,
    /// `fsync` each segment, the journal and the playlist at every rotation.
    pub sync_on_rotate: bool,
    /// Write new segments over the files of segments evicted for
    /// `max-duration` instead of deleting them. Ignored with
    /// `sync_on_rotate`: after a power cut a reused file could come back
    /// with old packets where the new ones had not reached the disk, and
    /// that setting promises whole segments.
    pub reuse_evicted: bool,
}

/// Failure to open a ring; each says which path and why.
#[derive(Debug)]
pub enum RingError {
    NotADirectory(PathBuf),
    Locked(PathBuf),
    Io { context: String, source: io::Error },
}

impl RingError {
    fn io(context: impl Into<String>, source: io::Error) -> Self {
        RingError::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::NotADirectory(p) => {
                write!(f, "'{}' exists and is not a directory", p.display())
            }
            RingError::Locked(p) => write!(
                f,
                "'{}' is already in use by another streambuffersink (lock file {LOCK_NAME} is held)",
                p.display()
            ),
            RingError::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for RingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RingError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Where a new segment starts in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentStart {
    pub program_date_time_ms: i64,
    pub discontinuity: bool,
}

/// What the ring has done, for the `stats` property.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RingStats {
    pub bytes_written: u64,
    pub segments_created: u64,
    pub segments_deleted: u64,
    /// Evicted segment files written over by a new segment instead of deleted.
    pub segments_reused: u64,
    pub evicted_max_duration: u64,
    pub evicted_max_size: u64,
    pub evicted_min_free_space: u64,
    /// Segments deleted to make room after a write failed for lack of space.
    pub evicted_under_pressure: u64,
    pub evicted_under_pressure_bytes: u64,
    pub adopted_segments: u64,
    pub adopted_trimmed_bytes: u64,
    pub playlist_writes: u64,
    /// Failed updates of the playlist or the journal (retried later; no media lost).
    pub metadata_write_errors: u64,
    /// Times the ring directory vanished and was created again.
    pub directory_recreated: u64,
}

/// A completed segment and its place in the discontinuity sequence.
#[derive(Debug, Clone)]
struct Entry {
    info: SegmentInfo,
    /// Discontinuities up to and including this segment (RFC 8216 6.2.1).
    discontinuity_sequence: u64,
}

struct Current {
    writer: SegmentWriter,
    start: SegmentStart,
}

/// See the module documentation.
pub struct Ring {
    config: RingConfig,
    /// Held for the ring's lifetime: the lock is released when it closes.
    #[allow(dead_code)] // held, never read
    lock: File,
    journal: Journal,
    /// The journal lost an append: rewrite it whole at the next chance.
    journal_dirty: bool,
    /// Whether a write that fails for lack of space may evict segments.
    evict_under_pressure: bool,
    entries: VecDeque<Entry>,
    current: Option<Current>,
    /// The pending-bytes allocations, between one segment and the next.
    spare_buffers: PendingWrites,
    /// An evicted segment's file is waiting, at [`SPARE_NAME`], to be reused.
    spare_file: bool,
    /// Opened at the first reuse.
    progress: Option<ProgressFile>,
    /// The progress record still limits how much of the open segment
    /// readers take: it is a reused file, or was meant to be.
    progress_limits: bool,
    next_sequence: u64,
    window: Window,
    /// Discontinuity count of the last segment that left the ring.
    evicted_discontinuity_sequence: u64,
    target_duration_s: u64,
    bytes_since_space_check: u64,
    playlist: String,
    stats: RingStats,
}

impl Ring {
    /// Opens (creating if needed) and locks the ring directory, adopting
    /// whatever an earlier writer left there.
    pub fn open(config: RingConfig) -> Result<Ring, RingError> {
        let dir = config.dir.clone();
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if !m.is_dir() && !std::fs::metadata(&dir).is_ok_and(|m| m.is_dir()) => {
                return Err(RingError::NotADirectory(dir));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| RingError::io(format!("cannot create directory '{}'", dir.display()), e))?;
            }
            Err(e) => return Err(RingError::io(format!("cannot access '{}'", dir.display()), e)),
        }
        let lock = acquire_lock(&dir)?;
        let target_duration_s = config.segment_duration_ns.div_ceil(1_000_000_000).max(1);
        let mut stats = RingStats::default();
        // A spare left by a writer that died is just an evicted segment.
        let _ = std::fs::remove_file(dir.join(SPARE_NAME));
        let adopted = adopt(&dir, &mut stats)
            .map_err(|e| RingError::io(format!("cannot adopt the ring in '{}'", dir.display()), e))?;
        // A full disk must not stop the sink from starting: the journal is
        // then rewritten at the first segment that can be written.
        let (journal, journal_dirty) = match Journal::rewrite(&dir, adopted.iter()) {
            Ok(j) => (j, false),
            Err(_) => (
                Journal::open_existing(&dir)
                    .map_err(|e| RingError::io(format!("cannot open the journal in '{}'", dir.display()), e))?,
                true,
            ),
        };
        let next_sequence = adopted
            .last()
            .map_or(0, |s| s.sequence + 1)
            .max(highest_sequence_on_disk(&dir).map_or(0, |s| s + 1));
        let mut ring = Ring {
            config,
            lock,
            journal,
            journal_dirty,
            evict_under_pressure: true,
            entries: VecDeque::new(),
            current: None,
            spare_buffers: PendingWrites::default(),
            spare_file: false,
            progress: None,
            progress_limits: false,
            next_sequence,
            window: Window::default(),
            evicted_discontinuity_sequence: 0,
            target_duration_s,
            bytes_since_space_check: 0,
            playlist: String::new(),
            stats,
        };
        for info in adopted {
            ring.push_entry(info);
        }
        if !ring.entries.is_empty() {
            ring.enforce_retention();
            ring.playlist_after_change();
        }
        Ok(ring)
    }

    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    #[must_use]
    pub fn stats(&self) -> RingStats {
        self.stats
    }

    /// Completed segments, oldest first.
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &SegmentInfo> + ExactSizeIterator {
        self.entries.iter().map(|e| &e.info)
    }

    /// Duration and size of the window (size includes the open segment).
    #[must_use]
    pub fn window(&self) -> Window {
        Window {
            duration_ns: self.window.duration_ns,
            // What the open segment's file occupies: a reused file is as
            // long as the old segment until the new one outgrows it.
            bytes: self.window.bytes + self.current.as_ref().map_or(0, |c| c.writer.disk_len()),
        }
    }

    /// Path of the segment being written, if any.
    #[must_use]
    pub fn current_path(&self) -> Option<&Path> {
        self.current.as_ref().map(|c| c.writer.path())
    }

    /// Segments created so far (a cheap way to notice that one was).
    #[must_use]
    pub fn segments_created(&self) -> u64 {
        self.stats.segments_created
    }

    /// Sequence number of the segment being written, if any.
    #[must_use]
    pub fn current_sequence(&self) -> Option<u64> {
        self.current.as_ref().map(|c| c.writer.sequence())
    }

    #[must_use]
    pub fn is_segment_open(&self) -> bool {
        self.current.is_some()
    }

    /// Bytes of the open segment accepted but not yet in the file.
    #[must_use]
    pub fn pending_bytes(&self) -> u64 {
        self.current.as_ref().map_or(0, |c| c.writer.pending())
    }

    fn current_len(&self) -> u64 {
        self.current.as_ref().map_or(0, |c| c.writer.len())
    }

    /// Creates the next segment file. The caller must have finished the
    /// previous one. A ring directory that vanished is created again.
    pub fn begin_segment(&mut self, start: SegmentStart) -> Result<(), WriteFailure> {
        debug_assert!(self.current.is_none(), "begin_segment with a segment open");
        let sequence = self.next_sequence;
        // A sequence number is used once, even if its file cannot be created.
        self.next_sequence += 1;
        let dir = self.config.dir.clone();
        let path = dir.join(segment::file_name(sequence));
        let mut result = match self.take_spare(sequence) {
            Some(writer) => Ok(writer),
            None => SegmentWriter::create(&dir, sequence, &mut self.spare_buffers),
        };
        if let Err(e) = &result {
            if e.kind() == io::ErrorKind::NotFound {
                // The directory was deleted or unmounted under us.
                self.recreate_directory()
                    .map_err(|e| WriteFailure::new(dir.clone(), e, true))?;
                result = SegmentWriter::create(&dir, sequence, &mut self.spare_buffers);
            } else if FailureKind::classify(e, true) == FailureKind::NoSpaceLeft && self.evict_under_pressure(1) > 0 {
                result = SegmentWriter::create(&dir, sequence, &mut self.spare_buffers);
            }
        }
        let writer = result.map_err(|e| WriteFailure::new(path, e, true))?;
        self.stats.segments_created += 1;
        self.current = Some(Current { writer, start });
        Ok(())
    }

    /// Opens the spare (an evicted segment's file) as segment `sequence`.
    /// Readers are told first that none of the file is new yet, then it
    /// takes the segment's name. `None`: no spare, or it could not be used
    /// (and is gone); the caller creates a new file.
    fn take_spare(&mut self, sequence: u64) -> Option<SegmentWriter> {
        if !std::mem::take(&mut self.spare_file) {
            return None;
        }
        let spare = self.config.dir.join(SPARE_NAME);
        // Opened at the first reuse, and again if it was deleted or the
        // directory made anew: readers would not see a record written there.
        if !self.progress.as_ref().is_some_and(|p| p.is_current(&self.config.dir)) {
            self.progress = ProgressFile::open(&self.config.dir).ok();
        }
        let published = self
            .progress
            .as_mut()
            .is_some_and(|p| p.publish(Progress { sequence, bytes: 0 }).is_ok());
        if !published {
            self.stats.metadata_write_errors += 1;
            let _ = std::fs::remove_file(&spare);
            return None;
        }
        // From here the record names this sequence, whatever file gets it.
        self.progress_limits = true;
        let path = self.config.dir.join(segment::file_name(sequence));
        let (file, stale_end) = reuse::take_spare(&spare, &path).ok()?;
        self.stats.segments_reused += 1;
        Some(SegmentWriter::reuse(
            sequence,
            path,
            file,
            stale_end,
            &mut self.spare_buffers,
        ))
    }

    /// Accounts for what a write or flush of the open segment put in the
    /// file (its length was `before`) and, while the progress record limits
    /// readers, publishes the new length: once no old content is left past
    /// it, the record stops limiting.
    fn written(&mut self, before: u64) {
        let Some(cur) = self.current.as_ref() else { return };
        let flushed = cur.writer.flushed();
        self.stats.bytes_written += flushed - before;
        if flushed > before && self.progress_limits {
            self.publish_progress();
        }
    }

    fn publish_progress(&mut self) {
        let (Some(cur), Some(progress)) = (self.current.as_ref(), self.progress.as_mut()) else {
            return;
        };
        let bytes = if cur.writer.has_stale_tail() {
            cur.writer.flushed()
        } else {
            u64::MAX
        };
        match progress.publish(Progress {
            sequence: cur.writer.sequence(),
            bytes,
        }) {
            Ok(()) => self.progress_limits = bytes != u64::MAX,
            // Readers lag behind until the next write publishes again.
            Err(_) => self.stats.metadata_write_errors += 1,
        }
    }

    /// Appends whole packets to the open segment. A full filesystem is first
    /// answered by evicting the ring's own oldest segments and retrying once.
    /// On failure the packets stay pending in the segment: retry with
    /// [`Self::flush`] or give them up with [`Self::abandon_segment`].
    pub fn write(&mut self, data: &[u8]) -> Result<(), WriteFailure> {
        self.write_chunk(Chunk::Borrowed(data))
    }

    /// Like [`Self::write`], for packets that may be part of shared input
    /// the segment can hold on to instead of copying.
    pub fn write_chunk(&mut self, chunk: Chunk<'_>) -> Result<(), WriteFailure> {
        let data = chunk.bytes();
        let Some(cur) = self.current.as_mut() else {
            return Err(WriteFailure::new(
                self.config.dir.clone(),
                io::Error::other("no segment is open"),
                false,
            ));
        };
        let before = cur.writer.flushed();
        let result = cur.writer.write(chunk);
        self.written(before);
        self.bytes_since_space_check += data.len() as u64;
        match result {
            Ok(()) => {
                if self.bytes_since_space_check >= SPACE_CHECK_INTERVAL {
                    self.bytes_since_space_check = 0;
                    if self.config.retention.max_size > 0 || self.config.retention.min_free_space > 0 {
                        self.enforce_retention();
                    }
                }
                Ok(())
            }
            Err(e) => self.retry_after_pressure(e),
        }
    }

    /// Writes every pending byte of the open segment to the file now.
    pub fn flush(&mut self) -> Result<(), WriteFailure> {
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        let before = cur.writer.flushed();
        let result = cur.writer.flush();
        self.written(before);
        match result {
            Ok(()) => Ok(()),
            Err(e) => self.retry_after_pressure(e),
        }
    }

    /// After a failed write: if the filesystem is full, evict oldest segments
    /// (never the open one) to make room for what is pending, then retry once.
    fn retry_after_pressure(&mut self, e: io::Error) -> Result<(), WriteFailure> {
        let path = self
            .current_path()
            .map_or_else(|| self.config.dir.clone(), Path::to_owned);
        let failure = WriteFailure::new(path.clone(), e, false);
        if !failure.kind.is_space(&failure.source) {
            return Err(failure);
        }
        let needed = self.pending_bytes() + PRESSURE_MARGIN;
        if self.evict_under_pressure(needed) == 0 {
            return Err(failure);
        }
        let Some(cur) = self.current.as_mut() else {
            return Err(failure);
        };
        let before = cur.writer.flushed();
        let result = cur.writer.flush();
        self.written(before);
        result.map_err(|e| WriteFailure::new(path, e, false))
    }

    /// Allows or forbids evicting segments when a write fails for lack of
    /// space. The recorder forbids it during a failure episode: everything
    /// that could help was evicted before the failure was declared, and what
    /// was kept of the failed segment is not to be eaten by the retries.
    pub fn set_evict_under_pressure(&mut self, allowed: bool) {
        self.evict_under_pressure = allowed;
    }

    /// Deletes oldest completed segments until `needed` bytes were freed or
    /// none is left. Returns the bytes freed.
    fn evict_under_pressure(&mut self, needed: u64) -> u64 {
        if !self.evict_under_pressure {
            return 0;
        }
        let mut freed = 0;
        while freed < needed {
            let Some(oldest) = self.entries.front() else { break };
            freed += oldest.info.bytes;
            self.evict_oldest(None, false);
        }
        if freed > 0 {
            self.playlist_after_change();
        }
        freed
    }

    /// Closes the open segment, which lasted `duration_ns`, adds it to the
    /// window, applies retention and republishes the playlist. On failure the
    /// segment stays open with its data pending.
    pub fn finish_segment(&mut self, duration_ns: u64) -> Result<(), WriteFailure> {
        if self.current.is_none() {
            return Ok(());
        }
        self.flush()?;
        if let Some(cur) = self.current.as_mut()
            && let Err(e) = cur.writer.check_alive()
        {
            return Err(WriteFailure::new(cur.writer.path().to_owned(), e, false));
        }
        let Some(Current { mut writer, start }) = self.current.take() else {
            return Ok(());
        };
        self.spare_buffers = writer.take_buffers();
        let sequence = writer.sequence();
        let path = writer.path().to_owned();
        let flushed = writer.flushed();
        let bytes = match writer.close(self.config.sync_on_rotate) {
            Ok(bytes) => bytes,
            Err(e) => {
                // The data was written but not made durable (or, in a
                // reused file, the old content could not be cut off, and
                // the progress record goes on hiding it); it stays in the
                // ring, the failure is still reported.
                self.commit_segment(sequence, duration_ns, start, flushed);
                return Err(WriteFailure::new(path, e, false));
            }
        };
        if std::mem::take(&mut self.progress_limits)
            && let Some(p) = self.progress.as_mut()
            && p.publish(Progress {
                sequence,
                bytes: u64::MAX,
            })
            .is_err()
        {
            // Cut to length, the file says its size itself; a reader that
            // trusts the stale record takes less than there is, never more.
            self.stats.metadata_write_errors += 1;
        }
        if bytes == 0 {
            let _ = std::fs::remove_file(&path);
            return Ok(());
        }
        self.commit_segment(sequence, duration_ns, start, bytes);
        Ok(())
    }

    /// Bytes of the open segment known to be in its file.
    #[must_use]
    pub fn flushed_bytes(&self) -> u64 {
        self.current.as_ref().map_or(0, |c| c.writer.flushed())
    }

    /// Bytes of the open segment accepted so far, flushed or not.
    #[must_use]
    pub fn segment_len(&self) -> u64 {
        self.current_len()
    }

    /// Gives up the open segment after a write failure. Pending bytes are
    /// dropped; of what reached the file, the first `keep_bytes` (a whole
    /// number of packets ending where an access unit starts, so the kept part
    /// ends on a complete frame) stay as a shorter segment lasting
    /// `kept_duration_ns`. Nothing kept, or a file deleted under us, removes
    /// the segment. Returns the bytes dropped.
    pub fn abandon_segment(&mut self, keep_bytes: u64, kept_duration_ns: u64) -> u64 {
        let Some(Current { mut writer, start }) = self.current.take() else {
            return 0;
        };
        let pending = writer.discard_pending();
        self.spare_buffers = writer.take_buffers();
        let flushed = writer.flushed();
        let keep = keep_bytes.min(flushed);
        let truncated = keep == flushed || writer.truncate(keep).is_ok();
        let sequence = writer.sequence();
        let path = writer.path().to_owned();
        drop(writer);
        let on_disk = std::fs::symlink_metadata(&path);
        if on_disk.is_err() {
            // The file was deleted under us: what it held is lost too.
            return pending + flushed;
        }
        if keep == 0 || !truncated || on_disk.is_ok_and(|m| m.len() != keep) {
            // Nothing decodable to keep, or the file could not be cut back:
            // never leave a torn segment in the ring.
            let _ = std::fs::remove_file(&path);
            return pending + flushed;
        }
        self.commit_segment(sequence, kept_duration_ns, start, keep);
        pending + flushed - keep
    }

    /// Finishes the open segment (if any) and marks the playlist as ended.
    pub fn close(&mut self, duration_ns: u64) -> Result<(), WriteFailure> {
        self.finish_segment(duration_ns)?;
        if std::mem::take(&mut self.spare_file) {
            let _ = std::fs::remove_file(self.config.dir.join(SPARE_NAME));
        }
        if !self.entries.is_empty() && self.write_playlist(true).is_err() {
            self.stats.metadata_write_errors += 1;
        }
        Ok(())
    }

    fn commit_segment(&mut self, sequence: u64, duration_ns: u64, start: SegmentStart, bytes: u64) {
        let info = SegmentInfo {
            sequence,
            duration_ns,
            bytes,
            program_date_time_ms: start.program_date_time_ms,
            discontinuity: start.discontinuity,
        };
        // The journal and the playlist are metadata: failing to update them
        // loses no media, and both are rewritten whole at the next chance.
        if self.journal_dirty || self.journal.append(&info).is_err() {
            self.journal_dirty = true;
        }
        self.push_entry(info);
        self.enforce_retention_at_rotation();
        self.bytes_since_space_check = 0;
        if self.journal_dirty {
            match Journal::rewrite(&self.config.dir, self.entries.iter().map(|e| &e.info)) {
                Ok(j) => {
                    self.journal = j;
                    self.journal_dirty = false;
                }
                Err(_) => self.stats.metadata_write_errors += 1,
            }
        }
        self.playlist_after_change();
    }

    fn playlist_after_change(&mut self) {
        if self.write_playlist(false).is_err() {
            self.stats.metadata_write_errors += 1;
        }
    }

    /// The ring directory vanished: create it again, take the lock on the new
    /// directory, and forget segments whose files went with the old one.
    fn recreate_directory(&mut self) -> io::Result<()> {
        std::fs::create_dir_all(&self.config.dir)?;
        self.lock = acquire_lock(&self.config.dir).map_err(|e| match e {
            RingError::Io { source, .. } => source,
            other => io::Error::other(other.to_string()),
        })?;
        while let Some(e) = self.entries.front() {
            if self.config.dir.join(segment::file_name(e.info.sequence)).exists() {
                break;
            }
            let Some(e) = self.entries.pop_front() else { break };
            self.window.duration_ns -= e.info.duration_ns;
            self.window.bytes -= e.info.bytes;
            self.evicted_discontinuity_sequence = e.discontinuity_sequence;
        }
        self.entries
            .retain(|e| self.config.dir.join(segment::file_name(e.info.sequence)).exists());
        self.window = Window {
            duration_ns: self.entries.iter().map(|e| e.info.duration_ns).sum(),
            bytes: self.entries.iter().map(|e| e.info.bytes).sum(),
        };
        self.journal_dirty = true;
        self.stats.directory_recreated += 1;
        Ok(())
    }

    fn push_entry(&mut self, info: SegmentInfo) {
        let base = self
            .entries
            .back()
            .map_or(self.evicted_discontinuity_sequence, |e| e.discontinuity_sequence);
        let discontinuity_sequence = base + u64::from(info.discontinuity);
        self.window.duration_ns += info.duration_ns;
        self.window.bytes += info.bytes;
        let rounded = (info.duration_ns + 500_000_000) / 1_000_000_000;
        self.target_duration_s = self.target_duration_s.max(rounded);
        self.entries.push_back(Entry {
            info,
            discontinuity_sequence,
        });
    }

    /// Deletes oldest segments while the retention policy asks for it.
    /// The open segment is never in `entries`, so it can never be deleted.
    fn enforce_retention(&mut self) {
        self.evict_while_due(false);
    }

    /// Like [`Self::enforce_retention`], between two segments: the first
    /// segment evicted for its age may be kept as the next one's file.
    fn enforce_retention_at_rotation(&mut self) {
        self.evict_while_due(self.config.reuse_evicted && !self.config.sync_on_rotate);
    }

    fn evict_while_due(&mut self, may_reuse: bool) {
        let retention = self.config.retention;
        let mut evicted = false;
        while let Some(oldest) = self.entries.front() {
            let free = (retention.min_free_space > 0)
                .then(|| platform::free_space(&self.config.dir))
                .flatten();
            let Some(reason) = retention.must_evict(self.window(), &oldest.info, free) else {
                break;
            };
            let reuse = may_reuse && reason == EvictReason::MaxDuration && !self.spare_file;
            self.evict_oldest(Some(reason), reuse);
            evicted = true;
        }
        if evicted && self.journal.lines() > 2 * self.entries.len() + 64 {
            // Dead lines outnumber live ones: compact. Failing to is harmless,
            // the old journal is still correct (dead lines are ignored).
            if let Ok(j) = Journal::rewrite(&self.config.dir, self.entries.iter().map(|e| &e.info)) {
                self.journal = j;
            }
        }
    }

    /// Deletes the oldest segment, or with `reuse` moves its file aside for
    /// the next segment when it can be; `None` = under pressure of a failed write.
    fn evict_oldest(&mut self, reason: Option<EvictReason>, reuse: bool) {
        let Some(e) = self.entries.pop_front() else { return };
        self.window.duration_ns -= e.info.duration_ns;
        self.window.bytes -= e.info.bytes;
        self.evicted_discontinuity_sequence = e.discontinuity_sequence;
        let path = self.config.dir.join(segment::file_name(e.info.sequence));
        if reuse && reuse::set_aside(&path, &self.config.dir.join(SPARE_NAME)) {
            self.spare_file = true;
        } else {
            // A file someone else already removed is as good as deleted.
            let _ = std::fs::remove_file(&path);
        }
        self.stats.segments_deleted += 1;
        match reason {
            Some(EvictReason::MaxDuration) => self.stats.evicted_max_duration += 1,
            Some(EvictReason::MaxSize) => self.stats.evicted_max_size += 1,
            Some(EvictReason::MinFreeSpace) => self.stats.evicted_min_free_space += 1,
            None => {
                self.stats.evicted_under_pressure += 1;
                self.stats.evicted_under_pressure_bytes += e.info.bytes;
            }
        }
    }

    fn write_playlist(&mut self, ended: bool) -> io::Result<()> {
        let skip = match self.config.playlist_length {
            0 => 0,
            n => self.entries.len().saturating_sub(n as usize),
        };
        let Some(first) = self.entries.get(skip) else {
            return Ok(());
        };
        let header = PlaylistHeader {
            target_duration_s: self.target_duration_s,
            discontinuity_sequence: first.discontinuity_sequence - u64::from(first.info.discontinuity),
            ended,
        };
        playlist::render(&mut self.playlist, header, self.entries.range(skip..).map(|e| &e.info));
        playlist::replace_atomically(
            &self.config.dir,
            PLAYLIST_NAME,
            self.playlist.as_bytes(),
            self.config.sync_on_rotate,
        )?;
        self.stats.playlist_writes += 1;
        Ok(())
    }
}

/// Opens and locks `dir`'s lock file, refusing if another writer holds it.
fn acquire_lock(dir: &Path) -> Result<File, RingError> {
    let lock_path = dir.join(LOCK_NAME);
    let lock = platform::open_lock_file(&lock_path)
        .map_err(|e| RingError::io(format!("cannot create lock file '{}'", lock_path.display()), e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(RingError::Locked(dir.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(RingError::io(format!("cannot lock '{}'", lock_path.display()), e)),
    }
}

/// Highest segment sequence number among the files in `dir`.
fn highest_sequence_on_disk(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(segment::parse_file_name))
        .max()
}

/// Collects the segments an earlier writer left: journal entries whose files
/// still exist (at the recorded size), then files missing from the journal,
/// i.e. the segment that was open when that writer stopped, trimmed to whole
/// packets (and, for a reused file, first to what the progress record says
/// was new). The first segment written after adoption is a discontinuity.
fn adopt(dir: &Path, stats: &mut RingStats) -> io::Result<Vec<SegmentInfo>> {
    // An unreadable record (say, emptied by a power cut) could be about
    // any segment: no unjournaled file is trusted beyond it then.
    let progress = reuse::read_progress_in(dir);
    let mut on_disk: Vec<(u64, u64)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(seq) = entry.file_name().to_str().and_then(segment::parse_file_name) else {
            continue;
        };
        // Only regular files are ours; a link or directory with our name is left alone.
        let meta = entry.metadata()?;
        if meta.file_type().is_file() {
            on_disk.push((seq, meta.len()));
        }
    }
    on_disk.sort_unstable();
    let mut journal: Vec<SegmentInfo> = Journal::read(dir);
    journal.sort_by_key(|s| s.sequence);
    let mut adopted = Vec::with_capacity(on_disk.len());
    for (seq, len) in on_disk {
        let path = dir.join(segment::file_name(seq));
        if let Ok(i) = journal.binary_search_by_key(&seq, |s| s.sequence)
            && journal[i].bytes == len
        {
            adopted.push(journal[i].clone());
            continue;
        }
        let new_content = match &progress {
            Ok(record) => Progress::limit(*record, seq, len),
            Err(_) => 0,
        };
        if new_content < len {
            platform::open_existing(&path)?.set_len(new_content)?;
            stats.adopted_trimmed_bytes += len - new_content;
        }
        match recovery::recover_segment(&path)? {
            Some(r) => {
                stats.adopted_trimmed_bytes += r.trimmed;
                let mtime_ms = std::fs::metadata(&path)?
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                let duration_ms = i64::try_from(r.duration_ns / 1_000_000).unwrap_or(0);
                adopted.push(SegmentInfo {
                    sequence: seq,
                    duration_ns: r.duration_ns,
                    bytes: r.bytes,
                    program_date_time_ms: mtime_ms - duration_ms,
                    discontinuity: true,
                });
            }
            None => std::fs::remove_file(&path)?,
        }
    }
    stats.adopted_segments = adopted.len() as u64;
    Ok(adopted)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const SECOND: u64 = 1_000_000_000;

    pub(crate) fn config(dir: &Path) -> RingConfig {
        RingConfig {
            dir: dir.to_owned(),
            retention: Retention {
                max_duration_ns: 10 * SECOND,
                ..Default::default()
            },
            playlist_length: 0,
            segment_duration_ns: 2 * SECOND,
            sync_on_rotate: false,
            reuse_evicted: true,
        }
    }

    pub(crate) fn start(discontinuity: bool) -> SegmentStart {
        SegmentStart {
            program_date_time_ms: 1_700_000_000_000,
            discontinuity,
        }
    }

    const PKT: [u8; 188] = {
        let mut p = [0u8; 188];
        p[0] = 0x47;
        p
    };

    #[test]
    fn rotates_evicts_and_publishes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ring = Ring::open(config(dir.path())).expect("open");
        for _ in 0..8 {
            ring.begin_segment(start(false)).expect("begin");
            ring.write(&PKT).expect("write");
            ring.finish_segment(2 * SECOND).expect("finish");
        }
        let seqs: Vec<u64> = ring.segments().map(|s| s.sequence).collect();
        assert_eq!(seqs, vec![3, 4, 5, 6, 7]);
        assert_eq!(ring.stats().segments_deleted, 3);
        assert!(!dir.path().join(segment::file_name(2)).exists());
        assert!(dir.path().join(segment::file_name(3)).exists());
        let text = std::fs::read_to_string(dir.path().join(PLAYLIST_NAME)).expect("playlist");
        let pl = m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("parses");
        assert_eq!(pl.media_sequence, 3);
        assert_eq!(pl.segments.len(), 5);
    }

    /// Whole packets whose every byte after the sync byte is `marker`, so
    /// that bytes of one segment found in another show.
    pub(crate) fn marked(marker: u8, packets: usize) -> Vec<u8> {
        let mut p = [marker; 188];
        p[0] = 0x47;
        p.repeat(packets)
    }

    /// Writes segments 0.. of 2 s until `sequence` is open with `packets`
    /// written (and flushed); segment n is `marked(n, 4000 - 100 * n)`, so
    /// each is shorter than the one whose file it reuses.
    pub(crate) fn ring_at(dir: &Path, config: RingConfig, sequence: u64, packets: usize) -> Ring {
        let mut ring = Ring::open(config).expect("open");
        for n in 0..sequence {
            ring.begin_segment(start(false)).expect("begin");
            ring.write(&marked(n as u8, 4000 - 100 * n as usize)).expect("write");
            ring.finish_segment(2 * SECOND).expect("finish");
        }
        ring.begin_segment(start(false)).expect("begin");
        ring.write(&marked(sequence as u8, packets)).expect("write");
        ring.flush().expect("flush");
        assert!(dir.join(segment::file_name(sequence)).exists());
        ring
    }

    #[test]
    fn evicted_files_are_reused_and_cut_to_length() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 10 s window of 2 s segments: from the 6th on, each evicts one.
        let mut ring = ring_at(dir.path(), config(dir.path()), 9, 10);
        let open = dir.path().join(segment::file_name(9));
        // Segment 9 is written over segment 3's file: old packets follow
        // the 10 new ones, and the progress record says where they start.
        let on_disk = std::fs::read(&open).expect("read");
        assert_eq!(on_disk.len(), (4000 - 300) * 188);
        assert_eq!(&on_disk[..10 * 188], &marked(9, 10)[..]);
        assert_eq!(on_disk[10 * 188 + 1], 3);
        // max-size counts what the file occupies, old packets included.
        let listed: u64 = ring.segments().map(|s| s.bytes).sum();
        assert_eq!(ring.window().bytes, listed + on_disk.len() as u64);
        assert_eq!(
            reuse::read_progress_in(dir.path()).expect("record"),
            Some(Progress {
                sequence: 9,
                bytes: 10 * 188
            })
        );
        ring.finish_segment(2 * SECOND).expect("finish");
        ring.close(0).expect("close");
        assert_eq!(ring.stats().segments_reused, 4);
        assert_eq!(ring.stats().segments_deleted, 5);
        // Every segment holds exactly its own packets, and nothing is left over.
        for n in 5..=8 {
            let data = std::fs::read(dir.path().join(segment::file_name(n))).expect("read");
            assert_eq!(data, marked(n as u8, 4000 - 100 * n as usize), "segment {n}");
        }
        assert_eq!(std::fs::read(&open).expect("read"), marked(9, 10));
        assert!(!dir.path().join(SPARE_NAME).exists());
        let listed: Vec<u64> = ring.segments().map(|s| s.sequence).collect();
        assert_eq!(listed, vec![5, 6, 7, 8, 9]);
    }

    #[test]
    fn no_reuse_when_disabled_or_syncing() {
        for (reuse_evicted, sync_on_rotate) in [(false, false), (true, true)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let ring = ring_at(
                dir.path(),
                RingConfig {
                    reuse_evicted,
                    sync_on_rotate,
                    ..config(dir.path())
                },
                9,
                10,
            );
            assert_eq!(ring.stats().segments_reused, 0);
            let len = std::fs::metadata(dir.path().join(segment::file_name(9)))
                .expect("stat")
                .len();
            assert_eq!(len, 10 * 188);
        }
    }

    #[test]
    fn a_linked_segment_is_deleted_not_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kept = tempfile::tempdir().expect("tempdir");
        let mut ring = Ring::open(config(dir.path())).expect("open");
        for n in 0..6u8 {
            if n == 5 {
                // A reference recording holds segment 0 by a hard link.
                std::fs::hard_link(dir.path().join(segment::file_name(0)), kept.path().join("0.ts")).expect("link");
            }
            ring.begin_segment(start(false)).expect("begin");
            ring.write(&marked(n, 50)).expect("write");
            ring.finish_segment(2 * SECOND).expect("finish");
        }
        ring.begin_segment(start(false)).expect("begin");
        ring.write(&marked(6, 10)).expect("write");
        ring.finish_segment(2 * SECOND).expect("finish");
        assert_eq!(ring.stats().segments_reused, 0);
        assert_eq!(std::fs::read(kept.path().join("0.ts")).expect("read"), marked(0, 50));
        assert!(!dir.path().join(segment::file_name(0)).exists());
    }

    #[test]
    fn crash_in_a_reused_file_adopts_only_new_packets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring = ring_at(dir.path(), config(dir.path()), 9, 10);
        // The writer dies: nothing is closed or cut.
        drop(ring);
        let path = dir.path().join(segment::file_name(9));
        assert!(std::fs::metadata(&path).expect("stat").len() > 10 * 188);
        let ring = Ring::open(config(dir.path())).expect("reopen");
        assert_eq!(std::fs::read(&path).expect("read"), marked(9, 10));
        let last = ring.segments().next_back().expect("adopted");
        assert_eq!((last.sequence, last.bytes), (9, 10 * 188));
        assert_eq!(ring.stats().adopted_trimmed_bytes, (4000 - 300 - 10) * 188);
    }

    #[test]
    fn unreadable_progress_record_drops_the_unjournaled_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(ring_at(dir.path(), config(dir.path()), 9, 10));
        // As a power cut can leave it: created, never written back.
        std::fs::write(dir.path().join(reuse::PROGRESS_NAME), b"").expect("empty record");
        let ring = Ring::open(config(dir.path())).expect("reopen");
        let adopted: Vec<u64> = ring.segments().map(|s| s.sequence).collect();
        assert_eq!(adopted, vec![4, 5, 6, 7, 8]);
        assert!(!dir.path().join(segment::file_name(9)).exists());
    }

    #[test]
    fn second_writer_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _ring = Ring::open(config(dir.path())).expect("open");
        match Ring::open(config(dir.path())) {
            Err(RingError::Locked(_)) => {}
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("second writer accepted"),
        }
    }

    #[test]
    fn file_is_not_a_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").expect("write");
        assert!(matches!(Ring::open(config(&file)), Err(RingError::NotADirectory(_))));
    }

    #[test]
    fn restart_adopts_and_trims_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut ring = Ring::open(config(dir.path())).expect("open");
            for _ in 0..3 {
                ring.begin_segment(start(false)).expect("begin");
                ring.write(&PKT).expect("write");
                ring.finish_segment(2 * SECOND).expect("finish");
            }
            ring.begin_segment(start(false)).expect("begin");
            ring.write(&[PKT, PKT].concat()).expect("write");
            // Simulate a crash: the open segment's buffer reaches disk torn.
            let cur = ring.current.take().expect("open segment");
            let path = cur.writer.path().to_owned();
            drop(cur);
            std::fs::write(&path, [&PKT[..], &PKT[..], &PKT[..100]].concat()).expect("torn file");
        }
        let mut ring = Ring::open(config(dir.path())).expect("reopen");
        let seqs: Vec<u64> = ring.segments().map(|s| s.sequence).collect();
        assert_eq!(seqs, vec![0, 1, 2, 3]);
        assert_eq!(ring.stats().adopted_segments, 4);
        assert_eq!(ring.stats().adopted_trimmed_bytes, 100);
        assert_eq!(
            std::fs::metadata(dir.path().join(segment::file_name(3)))
                .expect("stat")
                .len(),
            376
        );
        ring.begin_segment(start(true)).expect("begin");
        assert_eq!(
            ring.current_path().map(|p| p.ends_with(segment::file_name(4))),
            Some(true)
        );
    }
}
