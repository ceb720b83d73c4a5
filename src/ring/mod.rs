// SPDX-License-Identifier: MPL-2.0
//! The on-disk ring: a directory of MPEG-TS segment files, a journal of their
//! metadata and an HLS playlist, with retention, exclusive ownership and
//! adoption of an earlier ring after a restart or a crash.
//!
//! The names and record formats in the directory are [`crate::layout`]'s.
//! What lives where:
//!
//! - here: opening (lock, adoption), the open segment, rotation;
//! - `write`: writing into the open segment, evicting under pressure;
//! - `timeline`: ring time and wall-clock time, each from the other;
//! - `publish`: the window of completed segments, journal and playlist updates;
//! - [`segment`]: the buffered writer of one segment file;
//! - `reservation`: disk blocks reserved ahead of its writes (ext4);
//! - [`retention`]: which segments are evicted, and evicting them;
//! - `recovery`: adoption of what an earlier writer left;
//! - `reuse`: writing new segments over evicted files, safely for readers;
//! - `journal`: the open journal file;
//! - [`failure`]: what a failed write reports.
//!
//! Segments evicted for `max-duration` are not deleted but reused as the next
//! segment's file ([`reuse`] says why and how readers stay safe).
//!
//! The ring knows nothing about MPEG-TS beyond "whole packets": deciding where
//! segments start is the recorder's job.

pub mod archive_queue;
pub mod failure;
mod index;
mod journal;
pub mod lease;
mod publish;
mod recovery;
mod reservation;
pub mod retention;
mod reuse;
pub mod segment;
mod timeline;
mod write;

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::layout::index::Keyframe;
pub use archive_queue::ArchiveQueue;
pub use failure::{FailureKind, RingError, WriteFailure};
use index::IndexWriter;
use journal::Journal;
pub use lease::LeaseLimit;
use publish::Playlists;
use recovery::{Adoption, adopt, highest_sequence_on_disk};
use retention::{Pressure, Retired};
pub use retention::{Retention, Window};
use reuse::Reuse;
pub use segment::{Chunk, CloseError, PendingWrites, SegmentWriter, SharedBytes, WRITE_ALIGNMENT, stuffing_packets};

pub use crate::layout::SegmentInfo;
use crate::layout::{LOCK_NAME, RingTime, SPARE_NAME, SegmentNumber, WallTime, segment_file_name, segment_index_name};
use crate::platform::DirHandle;

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
    /// Rotations a segment's file outlives its place in the playlist (see
    /// [`retention`]): an HLS client that loaded the playlist just before
    /// can still fetch its oldest entry.
    pub extra_segments: u32,
    /// Also publish an I-frame playlist of the keyframes and a
    /// multivariant playlist naming both (see `layout::playlist`).
    pub iframe_playlist: bool,
    /// Queue each completed segment for the archive, holding back at most
    /// this many bytes of evicted segments not archived yet (see
    /// [`archive_queue`]); `None`: no archive.
    pub archive_hold_limit: Option<u64>,
    /// How much evictions for `max-duration` and `max-size` are deferred
    /// for readers' leases (see [`lease`]).
    pub lease_limit: LeaseLimit,
}

/// Where a new segment starts in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentStart {
    /// Ring time of its first packet: where it sits on the ring's one
    /// timeline, the same for every reader (see [`Ring::ring_time_end`]).
    pub ring_time: RingTime,
    pub program_date_time: WallTime,
    pub discontinuity: bool,
    /// It starts at a random-access point (not a forced cut).
    pub independent: bool,
    /// Bytes of the tables (PAT, PMTs) it starts with, which a reader
    /// entering it at a later keyframe sends first.
    pub head_bytes: u32,
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
    /// Files of the ring that could not be deleted yet (retried at every
    /// new segment, counted against `max-size` meanwhile).
    pub undeleted_files: u64,
    /// Times EXT-X-TARGETDURATION had to rise after the playlist was first
    /// published (RFC 8216 wants it fixed): a segment came out longer than
    /// any before, which only a forced cut or a stream whose GOPs grew makes.
    pub target_duration_raises: u64,
    /// Journal lines refused at adoption (malformed or implausible values).
    pub journal_lines_rejected: u64,
    pub playlist_writes: u64,
    /// Failed updates of the playlist or the journal (retried later; no media lost).
    pub metadata_write_errors: u64,
    /// Times the ring directory vanished and was created again.
    pub directory_recreated: u64,
    /// Segments (and bytes) leases hold back now; leased ones evicted anyway.
    pub leased_segments: u64,
    pub leased_bytes: u64,
    pub lease_overruns: u64,
}

/// A completed segment and its place in the discontinuity sequence.
#[derive(Debug, Clone)]
struct Entry {
    info: SegmentInfo,
    /// Discontinuities up to and including this segment (RFC 8216 6.2.1).
    discontinuity_sequence: u64,
    /// Its keyframes (kept for the I-frame playlist only).
    keyframes: Vec<Keyframe>,
    /// The number of its first keyframe (see [`Keyframe::number`]).
    first_keyframe: u64,
    /// Bytes of the tables at its head.
    head_bytes: u32,
}

struct Current {
    writer: SegmentWriter,
    start: SegmentStart,
    index: IndexWriter,
    /// Its keyframes so far (for the I-frame playlist), and the number of
    /// its first.
    keyframes: Vec<Keyframe>,
    first_keyframe: u64,
}

/// See the module documentation.
pub struct Ring {
    config: RingConfig,
    /// The directory, held open: every file operation is relative to it.
    handle: DirHandle,
    /// Held for the ring's lifetime: the lock is released when it closes.
    #[allow(dead_code)] // held, never read
    lock: File,
    journal: Journal,
    /// Evicting to make room when a write fails for lack of space.
    pressure: Pressure,
    entries: VecDeque<Entry>,
    current: Option<Current>,
    /// The pending-bytes allocations, between one segment and the next.
    spare_buffers: PendingWrites,
    reuse: Reuse,
    next_sequence: SegmentNumber,
    window: Window,
    /// Discontinuity count of the last segment that left the ring.
    evicted_discontinuity_sequence: u64,
    bytes_since_space_check: u64,
    /// What was last published, and the target duration.
    playlists: Playlists,
    stats: RingStats,
    /// Files adoption left out of the ring, with the reason.
    left_out: Vec<String>,
    /// Files of the ring that could not be deleted (a failing disk), with
    /// their size: counted in the window until a later try deletes them.
    undeleted: Vec<(String, u64)>,
    /// Segments out of the window whose files are kept for
    /// `extra_segments` rotations, oldest first.
    retired: VecDeque<Retired>,
    /// Ring time at the end of the newest completed segment.
    ring_time_end: RingTime,
    /// Keyframes indexed so far (the next one's number), counting on from
    /// the adopted segments'.
    keyframes_total: u64,
    /// Where completed segments wait for the archive, if there is one.
    archive: Option<Arc<ArchiveQueue>>,
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
        let handle = DirHandle::open(&dir)
            .map_err(|e| RingError::io(format!("cannot open directory '{}'", dir.display()), e))?;
        let lock = acquire_lock(&handle)?;
        let mut stats = RingStats::default();
        // A spare left by a writer that died is just an evicted segment.
        let _ = handle.remove(SPARE_NAME);
        let archive = match config.archive_hold_limit {
            Some(limit) => Some(Arc::new(ArchiveQueue::open(&handle, limit).map_err(|e| {
                RingError::io(format!("cannot open the archive queue in '{}'", dir.display()), e)
            })?)),
            None => None,
        };
        let Adoption {
            segments: adopted,
            recovered,
            left_out,
        } = adopt(&handle, &mut stats)
            .map_err(|e| RingError::io(format!("cannot adopt the ring in '{}'", dir.display()), e))?;
        // A full disk must not stop the sink from starting: the journal is
        // then rewritten at the first segment that can be written.
        let journal = match Journal::rewrite(&handle, adopted.iter()) {
            Ok(j) => j,
            Err(_) => {
                let mut j = Journal::open_existing(&handle)
                    .map_err(|e| RingError::io(format!("cannot open the journal in '{}'", dir.display()), e))?;
                j.mark_stale();
                j
            }
        };
        let next_sequence = adopted
            .last()
            .map_or(SegmentNumber::FIRST, |s| s.sequence.next())
            .max(highest_sequence_on_disk(&handle).map_or(SegmentNumber::FIRST, SegmentNumber::next));
        if !next_sequence.is_nameable() {
            return Err(RingError::SequencesExhausted(
                dir.join(segment_file_name(SegmentNumber::MAX)),
            ));
        }
        let playlists = Playlists::new(config.segment_duration_ns);
        let mut ring = Ring {
            config,
            handle,
            lock,
            journal,
            pressure: Pressure::default(),
            entries: VecDeque::new(),
            current: None,
            spare_buffers: PendingWrites::default(),
            reuse: Reuse::default(),
            next_sequence,
            window: Window::default(),
            evicted_discontinuity_sequence: 0,
            bytes_since_space_check: 0,
            playlists,
            stats,
            left_out,
            undeleted: Vec::new(),
            retired: VecDeque::new(),
            ring_time_end: RingTime::ZERO,
            keyframes_total: 0,
            archive,
        };
        ring.take_in(adopted, &recovered);
        Ok(ring)
    }

    /// The archive queue, for the uploader; `None` without an archive.
    #[must_use]
    pub fn archive_queue(&self) -> Option<Arc<ArchiveQueue>> {
        self.archive.clone()
    }

    /// Whether finishing a segment makes it durable (`sync-on-rotate`): a
    /// segment finished without error was synced then.
    #[must_use]
    pub fn syncs_segments(&self) -> bool {
        self.config.sync_on_rotate
    }

    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// The directory held open: what reads the ring's files for others
    /// (recordings) goes through it, so a directory swapped in at the path
    /// cannot feed them someone else's files.
    #[must_use]
    pub fn dir_handle(&self) -> &DirHandle {
        &self.handle
    }

    /// Files found in the directory that adoption left out of the ring
    /// (foreign content, no write permission, an unreadable journal), each
    /// with the reason: the element names them in a warning.
    #[must_use]
    pub fn left_out(&self) -> &[String] {
        &self.left_out
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
            bytes: self.window.bytes
                + self.current.as_ref().map_or(0, |c| c.writer.disk_len())
                + self.undeleted.iter().map(|(_, bytes)| bytes).sum::<u64>()
                + self.retired.iter().map(|r| r.bytes).sum::<u64>(),
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
    pub fn current_sequence(&self) -> Option<SegmentNumber> {
        self.current.as_ref().map(|c| c.writer.sequence())
    }

    #[must_use]
    pub fn is_segment_open(&self) -> bool {
        self.current.is_some()
    }

    /// Creates the next segment file. The caller must have finished the
    /// previous one. A ring directory that vanished is created again.
    pub fn begin_segment(&mut self, start: SegmentStart) -> Result<(), WriteFailure> {
        debug_assert!(self.current.is_none(), "begin_segment with a segment open");
        let sequence = self.next_sequence;
        let path = self.config.dir.join(segment_file_name(sequence));
        if !sequence.is_nameable() {
            let e = io::Error::other("every segment sequence number has been used");
            return Err(WriteFailure::new(path, e, true));
        }
        // A sequence number is used once, even if its file cannot be created.
        self.next_sequence = self.next_sequence.next();
        if !self.handle.is_named_by_path() {
            // Deleted (or unmounted): made anew. Replaced by something else
            // (a link, another directory): a failure until it is cleared
            // away, and nothing in what the path names now is touched.
            self.recreate_directory()
                .map_err(|e| WriteFailure::new(self.config.dir.clone(), e, true))?;
        }
        // The index, with its start record, comes before the segment's
        // file: a reader that finds the file finds where it starts.
        let mut index = IndexWriter::create(&self.handle, sequence).unwrap_or_else(|_| IndexWriter::none());
        let first = Keyframe {
            offset: 0,
            ring_time: start.ring_time,
            wall_time: start.program_date_time,
            size: start.head_bytes,
            presentation_delay: crate::ts::timeline::Ticks90k::ZERO,
            number: self.keyframes_total as u32,
        };
        if index.append(&first).is_err() {
            self.stats.metadata_write_errors += 1;
        }
        let reused = self.reuse.has_spare();
        let spare = self
            .reuse
            .take_spare(&self.handle, sequence, &mut self.spare_buffers, &mut self.stats);
        let mut result = match spare {
            Some(writer) => Ok(writer),
            None => SegmentWriter::create(&self.handle, sequence, &mut self.spare_buffers),
        };
        if let Err(e) = &result
            && FailureKind::classify(e, true) == FailureKind::NoSpaceLeft
            && self.evict_under_pressure(1) > 0
        {
            result = SegmentWriter::create(&self.handle, sequence, &mut self.spare_buffers);
        }
        let mut writer = match result {
            Ok(writer) => writer,
            Err(e) => {
                // No segment, no index.
                let _ = self.handle.remove(&segment_index_name(sequence));
                return Err(WriteFailure::new(path, e, true));
            }
        };
        // Segments follow each other at about the same length.
        if let Some(last) = self.entries.back() {
            writer.expect_length(last.info.bytes);
        }
        // Writing works again: what could not be deleted before goes now.
        self.retry_deletions();
        // Readers look for the segment being written after the newest one
        // listed; when numbers were skipped (segments that could not be
        // created) they learn its number from the progress record. A reused
        // file's number is there already.
        let expected = self
            .entries
            .back()
            .map_or(SegmentNumber::FIRST, |e| e.info.sequence.next());
        if sequence != expected && !reused {
            self.reuse.announce(&self.handle, sequence, &mut self.stats);
        }
        self.stats.segments_created += 1;
        self.current = Some(Current {
            writer,
            start,
            index,
            keyframes: Vec::new(),
            first_keyframe: self.keyframes_total,
        });
        Ok(())
    }

    /// Appends a record to the open segment's keyframe index: first its
    /// start (offset 0), then each random-access point. The index is
    /// metadata: a record that cannot be written is counted in
    /// `metadata_write_errors` and lost, the media goes on.
    pub fn add_keyframe(&mut self, keyframe: &Keyframe) {
        let Some(cur) = self.current.as_mut() else { return };
        let keyframe = Keyframe {
            number: self.keyframes_total as u32,
            ..*keyframe
        };
        self.keyframes_total += 1;
        if cur.index.append(&keyframe).is_err() {
            self.stats.metadata_write_errors += 1;
        }
        if self.config.iframe_playlist {
            cur.keyframes.push(keyframe);
        }
    }

    /// Gives up the open segment after a write failure. Pending bytes are
    /// dropped; of what reached the file, the first `keep_bytes` (a whole
    /// number of packets ending where an access unit starts, so the kept part
    /// ends on a complete frame) stay as a shorter segment lasting
    /// `kept_duration_ns`. Nothing kept, or a file deleted under us, removes
    /// the segment. Returns the bytes dropped.
    pub fn abandon_segment(&mut self, keep_bytes: u64, kept_duration_ns: u64) -> u64 {
        let Some(Current {
            mut writer,
            start,
            keyframes,
            first_keyframe,
            ..
        }) = self.current.take()
        else {
            return 0;
        };
        let pending = writer.discard_pending();
        self.spare_buffers = writer.take_buffers();
        let flushed = writer.flushed();
        let keep = keep_bytes.min(flushed);
        let truncated = (keep == flushed && !writer.reserved_past_end()) || writer.truncate(keep).is_ok();
        let sequence = writer.sequence();
        drop(writer);
        let name = segment_file_name(sequence);
        let on_disk = self.handle.entry(&name);
        if on_disk.is_err() {
            // The file was deleted under us: what it held is lost too.
            return pending + flushed;
        }
        if keep == 0 || !truncated || on_disk.is_ok_and(|e| e.len != keep) {
            // Nothing decodable to keep, or the file could not be cut back:
            // never leave a torn segment in the ring.
            self.delete_file(&name);
            return pending + flushed;
        }
        // The keyframes whose bytes were kept.
        let kept: Vec<Keyframe> = keyframes
            .into_iter()
            .filter(|k| k.offset.saturating_add(u64::from(k.size)) <= keep)
            .collect();
        self.commit_segment(sequence, kept_duration_ns, start, keep, (kept, first_keyframe), false);
        pending + flushed - keep
    }
}

/// Opens and locks `dir`'s lock file, refusing if another writer holds it.
fn acquire_lock(dir: &DirHandle) -> Result<File, RingError> {
    let lock_path = dir.path().join(LOCK_NAME);
    let lock = dir
        .open_or_create(LOCK_NAME)
        .map_err(|e| RingError::io(format!("cannot create lock file '{}'", lock_path.display()), e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(RingError::Locked(dir.path().to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(RingError::io(format!("cannot lock '{}'", lock_path.display()), e)),
    }
}

#[cfg(test)]
pub(crate) mod tests;
