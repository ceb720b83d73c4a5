// SPDX-License-Identifier: MPL-2.0
//! The part of the window that has left the ring for its archive, as the
//! reader sees it: what the archive lists, and its segments fetched into a
//! local cache by someone else's thread (see `archive::ArchiveFetcher`),
//! so that no network request runs where the reader runs.
//!
//! The reader places archived segments on its timeline before the ring's
//! oldest one, each ending where the one after it starts (as the ring's
//! own segments do; holes are left out and reported), and reads them like
//! the ring's finished segments.

// Only builds with the archive tier give the reader an archive.
#![cfg_attr(not(feature = "archive"), allow(dead_code))]

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::ReadOutcome;
use crate::layout::{SegmentInfo, SegmentNumber, segment_file_name};
use crate::platform;

/// What the archive lists now: its segments (oldest first; their byte
/// counts unknown) and a number that changes whenever they do.
#[derive(Debug, Clone, Default)]
pub struct ArchiveListing {
    pub generation: u64,
    /// When the listing that found these began: segments archived before
    /// then are in it.
    pub made_at: Option<Instant>,
    pub segments: Arc<[SegmentInfo]>,
}

/// Where an archived segment is, asked without waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    /// Whole, in the local cache: this file (it is not changed while it
    /// is there).
    Ready(PathBuf),
    /// Being fetched: ask again later.
    Pending,
    /// The archive does not have it (deleted by its retention).
    Gone,
    /// The archive could not be read; the next ask tries again.
    Failed(String),
}

/// An archive as the reader uses it.
pub trait ArchivedSegments: Send {
    /// What the archive lists now (never waits: the last listing made).
    fn listing(&self) -> ArchiveListing;

    /// Segment `segment`'s file, without waiting; `ahead` are the segments
    /// to be read after it, fetched meanwhile so that playback does not
    /// stall at each one.
    fn segment(&self, segment: &SegmentInfo, ahead: &[SegmentInfo]) -> Fetch;

    /// Segment `segment`'s keyframe index, waiting for it to be fetched (a
    /// few kilobytes; bounded by the archive's request timeout). `None` if
    /// it has none or cannot be fetched.
    fn index(&self, segment: &SegmentInfo) -> Option<PathBuf>;

    /// `len` bytes of segment `segment` from `offset`, waiting for them:
    /// what trick play reads of a segment it does not fetch whole.
    fn range(&self, segment: &SegmentInfo, offset: u64, len: u64) -> io::Result<Vec<u8>>;
}

impl super::RingReader {
    /// Where segment `seq` is read from: its file in the ring, or its copy
    /// fetched from the archive. `Err` is what to return instead: `Wait`
    /// while the archive is fetching it or not listed it yet, `None` to
    /// go on with another segment.
    pub(super) fn locate(&mut self, seq: SegmentNumber) -> Result<(PathBuf, io::Result<File>), Option<ReadOutcome>> {
        // Evicted since the archive was last listed: the next listing
        // places it, rather than it being skipped.
        if self.catalog.archive_behind(seq) {
            self.refresh_playing();
            if self.catalog.archive_behind(seq) {
                return Err(Some(ReadOutcome::Wait));
            }
        }
        // Numbers skipped while reading the archive's part (the ring's
        // playlist not looked at meanwhile): segments the ring listed and
        // evicted since may be in the archive.
        if self.catalog.has_archive()
            && let Some(last) = self.last_opened
            && seq > last.next()
        {
            self.refresh_playing();
            if let Some(between) = self.catalog.successor(last).filter(|&s| s < seq) {
                self.next = Some(between);
                return Err(None);
            }
        }
        match self.catalog.fetch_archived(seq) {
            None => {
                let path = self.catalog.dir().join(segment_file_name(seq));
                let opened = platform::open_read_only(&path);
                Ok((path, opened))
            }
            Some(Fetch::Ready(path)) => {
                let opened = platform::open_read_only(&path);
                Ok((path, opened))
            }
            Some(Fetch::Pending) => Err(Some(ReadOutcome::Wait)),
            Some(Fetch::Gone) => {
                self.archive_gone(seq);
                Err(None)
            }
            Some(Fetch::Failed(error)) => {
                self.archive_unreadable(seq, &error);
                Err(None)
            }
        }
    }

    /// Segment `seq`, opened as `file` at `path`: if it is the archive's
    /// copy of one evicted while it was read, reading goes on in it where
    /// it was (`None`); else the file back, to be entered as usual.
    pub(super) fn resume_in(&mut self, seq: SegmentNumber, file: File, path: PathBuf) -> Option<File> {
        let Some(resume) = self.resume.take().filter(|r| r.sequence == seq) else {
            return Some(file);
        };
        self.stats.segments_opened += 1;
        let id = platform::file_id(&file);
        self.current = Some(super::Open {
            sequence: seq,
            file,
            offset: resume.offset,
            start: resume.start,
            jump: resume.jump,
            timestamp: None,
            readable: 0,
            id,
            path,
        });
        None
    }
}
