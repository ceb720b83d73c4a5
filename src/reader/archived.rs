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

/// Which bytes of an archived segment are fetched: `0 .. head` (the
/// tables at its head) and `from ..` its end. `from == 0`: all of it. A
/// seek landing on a keyframe mid-segment fetches its tables and the rest
/// from the keyframe, not what it skips.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SegmentPart {
    pub head: u64,
    pub from: u64,
}

impl SegmentPart {
    /// All of a segment.
    pub const WHOLE: SegmentPart = SegmentPart { head: 0, from: 0 };

    /// Whether fetching `self` fetches what `wanted` needs.
    #[must_use]
    pub fn covers(self, wanted: SegmentPart) -> bool {
        self.from == 0 || (wanted.from >= self.from && wanted.head <= self.head)
    }
}

/// How much of an archived segment's local copy can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCopy {
    /// The file is written up to here (the head first, then from `from` on).
    pub written: u64,
    /// The object's size, once the server said it.
    pub size: Option<u64>,
    pub complete: bool,
    /// Fetching it failed (after retries): what was written stays readable.
    pub failed: Option<String>,
}

/// Where an archived segment is, asked without waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    /// In the local cache, this file, whole or being written: read it as
    /// far as [`ArchivedSegments::progress`] says.
    Ready(PathBuf),
    /// Not started yet: ask again later.
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

    /// Segment `segment`'s local copy (at least `part` of it), without
    /// waiting; `ahead` are the segments to be read after it, fetched whole
    /// meanwhile so that playback does not stall at each one.
    fn segment(&self, segment: &SegmentInfo, part: SegmentPart, ahead: &[SegmentInfo]) -> Fetch;

    /// How far segment `sequence`'s local copy is written, if it has one.
    fn local_copy(&self, sequence: SegmentNumber) -> Option<LocalCopy>;

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
        match self.catalog.fetch_archived(seq, self.part_wanted(seq)) {
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

    /// What of archived segment `seq` reading it needs: from a seek's
    /// keyframe (and the tables before it) or from where reading was when
    /// the ring evicted it; else all of it.
    fn part_wanted(&self, seq: SegmentNumber) -> SegmentPart {
        if let Some(resume) = self.resume.filter(|r| r.sequence == seq) {
            return match resume.jump {
                Some(jump) if resume.offset < jump.head_end => SegmentPart {
                    head: jump.head_end,
                    from: jump.keyframe_offset,
                },
                _ => SegmentPart {
                    head: 0,
                    from: resume.offset,
                },
            };
        }
        match self.landing.filter(|l| l.sequence == seq) {
            Some(l) => SegmentPart {
                head: l.head_end,
                from: l.keyframe_offset,
            },
            None => SegmentPart::WHOLE,
        }
    }

    /// At the end of what is there of the archived segment being read:
    /// `Some` to return (wait for more, or a failure), `None` if its copy
    /// is whole (or it is not archived).
    pub(super) fn archived_at_end(&mut self, seq: SegmentNumber) -> Option<ReadOutcome> {
        let copy = self.catalog.local_copy(seq)?;
        if let Some(error) = copy.failed {
            let path = self.current.as_ref().map(|c| c.path.clone()).unwrap_or_default();
            return Some(self.failed_read(&path, &io::Error::other(format!("from the archive: {error}"))));
        }
        (!copy.complete).then_some(ReadOutcome::Wait)
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
