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

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::layout::SegmentInfo;

/// What the archive lists now: its segments (oldest first; their byte
/// counts unknown) and a number that changes whenever they do.
#[derive(Debug, Clone, Default)]
pub struct ArchiveListing {
    pub generation: u64,
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
