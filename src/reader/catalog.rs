// SPDX-License-Identifier: MPL-2.0
//! What the ring lists: the segments of its playlist (each with its start on
//! the timeline, its duration and any hole before it), whether it is
//! finished, and the segment being written after them. Read from disk with
//! everything bounded and nothing trusted; the reader's cursor
//! (`RingReader`) moves over it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::archived::{ArchivedSegments, Fetch, LocalCopy, SegmentPart};
use super::scale;
use crate::layout::progress::Progress;
use crate::layout::{
    MAX_SEGMENT_DURATION_NS, PLAYLIST_MAX_BYTES, PLAYLIST_NAME, RingTime, WallTime, playlist, segment_file_name,
    segment_index_name,
};
use crate::layout::{SegmentInfo, SegmentNumber};
use crate::platform;

/// A jump in program date-time larger than this between two segments is a
/// time hole (content that was never recorded).
const HOLE_TOLERANCE_MS: i64 = 500;

/// How long a segment gone from the ring waits for the archive's listing
/// to place it (listed every few seconds) before it is given up as deleted.
const ARCHIVE_LISTING_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// How far a segment's start in its index may be from where the segments
/// before it put it (the playlist's millisecond durations add up to a
/// little drift) before the index is not believed.
pub(super) const INDEX_TOLERANCE_NS: u64 = 1_000_000_000;

/// A listed segment on the timeline.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub(super) start: RingTime,
    pub(super) duration_ns: u64,
    /// Gap before this segment, milliseconds, if any.
    pub(super) hole_ms: Option<u64>,
    pub(super) discontinuity: bool,
    /// Starts at a random-access point (see `playlist::FORCED_CUT_COMMENT`).
    pub(super) independent: bool,
    /// Its program date-time, if the playlist gave one (or it follows
    /// from the one before).
    pub(super) wall_start: Option<WallTime>,
    /// It has left the ring: it is read from the archive.
    pub(super) archived: bool,
}

/// Content never recorded before a newly listed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hole {
    pub(super) sequence: SegmentNumber,
    /// Ring time of the segment after the hole.
    pub(super) start: RingTime,
    pub(super) size_ms: u64,
}

/// The segment being written (not listed yet) and where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BeingWritten {
    pub(super) sequence: SegmentNumber,
    /// Ring time of its start: where the newest listed segment ends.
    pub(super) start: RingTime,
}

/// See the module documentation.
pub(super) struct Catalog {
    dir: PathBuf,
    /// Listed (complete) segments by sequence.
    spans: BTreeMap<SegmentNumber, Span>,
    /// End, in program date-time, of the newest listed segment.
    last_end_pdt: Option<WallTime>,
    ended: bool,
    playlist_stamp: Option<(std::time::SystemTime, u64)>,
    /// A finished list's `EXT-X-START` offset (a reference recording's
    /// start in its first segment).
    start_offset_ns: Option<u64>,
    /// The ring's archive, when the window reaches into it.
    archive: Option<Box<dyn ArchivedSegments>>,
    /// The archive listing merged last: its generation and segments.
    archive_generation: Option<u64>,
    archive_listed: Arc<[SegmentInfo]>,
    /// The newest archived segment the merges so far have looked at.
    archive_merged_through: Option<SegmentNumber>,
    /// The oldest segment the ring's own playlist lists.
    ring_oldest: Option<SegmentNumber>,
    /// When the ring's oldest segment was last seen to move on (segments
    /// left it for the archive).
    ring_moved_at: Option<Instant>,
    /// When the archive listing merged last was begun.
    archive_listed_at: Option<Instant>,
}

impl Catalog {
    pub(super) fn new(dir: &Path) -> Self {
        Catalog {
            dir: dir.to_owned(),
            spans: BTreeMap::new(),
            last_end_pdt: None,
            ended: false,
            playlist_stamp: None,
            start_offset_ns: None,
            archive: None,
            archive_generation: None,
            archive_listed: Arc::from([]),
            archive_merged_through: None,
            ring_oldest: None,
            ring_moved_at: None,
            archive_listed_at: None,
        }
    }

    /// Whether the window reaches into an archive.
    pub(super) fn has_archive(&self) -> bool {
        self.archive.is_some()
    }

    /// Makes the window reach back into `archive`.
    pub(super) fn set_archive(&mut self, archive: Box<dyn ArchivedSegments>) {
        self.archive = Some(archive);
        self.archive_generation = None;
    }

    /// The ring's directory.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Listed segments by sequence.
    pub(super) fn spans(&self) -> &BTreeMap<SegmentNumber, Span> {
        &self.spans
    }

    /// Whether the playlist has ENDLIST.
    pub(super) fn ended(&self) -> bool {
        self.ended
    }

    /// A finished list's `EXT-X-START` offset.
    pub(super) fn start_offset_ns(&self) -> Option<u64> {
        self.start_offset_ns
    }

    /// Re-reads the playlist if it changed: `None` if there is none, else
    /// the holes before newly listed segments.
    /// A playlist that is not a regular file, is a link, or is larger than
    /// [`PLAYLIST_MAX_BYTES`] is an error.
    pub(super) fn refresh(&mut self) -> io::Result<Option<Vec<Hole>>> {
        let path = self.dir.join(PLAYLIST_NAME);
        let file = match platform::open_read_only(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        let stamp = (meta.modified()?, meta.len());
        if self.playlist_stamp == Some(stamp) {
            self.merge_archive(BTreeMap::new());
            return Ok(Some(Vec::new()));
        }
        let raw = platform::read_to_end_bounded(file, PLAYLIST_MAX_BYTES)?;
        self.playlist_stamp = Some(stamp);
        let listing = playlist::parse(&String::from_utf8_lossy(&raw));
        self.ended = listing.ended;
        self.start_offset_ns = listing.start_offset_ns.filter(|_| listing.ended);
        let Some(oldest) = listing.entries.first().map(|e| e.sequence) else {
            return Ok(Some(Vec::new()));
        };
        if self.ring_oldest.is_some_and(|before| oldest > before) {
            self.ring_moved_at = Some(Instant::now());
        }
        self.ring_oldest = Some(oldest);
        let mut holes = Vec::new();
        // Segments that left the playlist at the old end were deleted (or
        // are in the archive now: see `merge_archive`).
        let mut left = std::mem::take(&mut self.spans);
        self.spans = left.split_off(&oldest);
        let mut pdt = self.last_end_pdt;
        for e in &listing.entries {
            let explicit = e.program_date_time;
            let start_pdt = explicit.or(pdt);
            if !self.spans.contains_key(&e.sequence) {
                // Ring time from the segment's index when it has one (the
                // same for every reader); else content time from the
                // segments before it.
                let start = match (
                    self.indexed_start(e.sequence),
                    self.spans.range(..e.sequence).next_back(),
                ) {
                    (Some(indexed), _) => indexed,
                    (None, Some((_, prev))) => prev.start.saturating_add(prev.duration_ns),
                    (None, None) => self
                        .spans
                        .values()
                        .next()
                        .map_or(RingTime::ZERO, |first| first.start.saturating_sub(e.duration_ns)),
                };
                // Parsed date-times and durations are bounded: no overflow.
                let hole_ms = match (explicit, pdt) {
                    (Some(date), Some(prev_end)) if e.discontinuity && date.ms_since(prev_end) > HOLE_TOLERANCE_MS => {
                        u64::try_from(date.ms_since(prev_end)).ok()
                    }
                    _ => None,
                };
                self.spans.insert(
                    e.sequence,
                    Span {
                        start,
                        duration_ns: e.duration_ns,
                        hole_ms,
                        discontinuity: e.discontinuity,
                        independent: e.independent,
                        wall_start: start_pdt,
                        archived: false,
                    },
                );
                if let Some(size_ms) = hole_ms {
                    holes.push(Hole {
                        sequence: e.sequence,
                        start,
                        size_ms,
                    });
                }
            }
            pdt = start_pdt.map(|p| p.after(e.duration_ns));
        }
        self.last_end_pdt = pdt;
        self.merge_archive(left);
        Ok(Some(holes))
    }

    /// Places the archive's segments older than the ring's on the
    /// timeline: those the ring listed once (`left` the ring's playlist
    /// since the last refresh) stay where they were, older ones end where
    /// the one after them starts. Archived segments the archive no longer
    /// lists leave the window.
    fn merge_archive(&mut self, left: BTreeMap<SegmentNumber, Span>) {
        let Some(archive) = &self.archive else {
            return;
        };
        let listing = archive.listing();
        self.archive_listed_at = listing.made_at;
        if self.archive_generation == Some(listing.generation) && left.is_empty() {
            return;
        }
        self.archive_generation = Some(listing.generation);
        // By number, as the names say; a listing of weeks is some 200,000
        // entries, so nothing below walks all of it but the first merge.
        let listed: Arc<[SegmentInfo]> = if listing.segments.is_sorted_by_key(|s| s.sequence) {
            listing.segments.clone()
        } else {
            let mut sorted = listing.segments.to_vec();
            sorted.sort_by_key(|s| s.sequence);
            sorted.into()
        };
        self.archive_listed = listed.clone();
        let older = self
            .ring_oldest
            .map_or(listed.len(), |oldest| listed.partition_point(|s| s.sequence < oldest));
        let archived = &listed[..older];
        // The ring deletes a segment only once it is archived (or counted
        // as a hole in the archive, which a fetch then finds).
        for (seq, span) in left {
            if span.wall_start.is_some() {
                self.spans.insert(seq, Span { archived: true, ..span });
            }
        }
        // Deleted by the archive's retention, from its old end.
        if let Some(oldest_listed) = archived.first().map(|s| s.sequence) {
            let gone: Vec<SegmentNumber> = self
                .spans
                .range(..oldest_listed)
                .filter(|(_, s)| s.archived)
                .map(|(&seq, _)| seq)
                .collect();
            for seq in gone {
                self.spans.remove(&seq);
            }
        }
        let Some((&first, &span)) = self.spans.iter().next() else {
            return;
        };
        // Newly listed by the archive and not known here (evicted before
        // this reader saw the ring list them): each where the one before it
        // ends. The archive lists segments in the order they were
        // uploaded, oldest first, so the new ones follow those merged
        // before.
        let known = self.archive_merged_through.map_or(first, |merged| merged.max(first));
        self.archive_merged_through = archived.last().map(|s| s.sequence).or(self.archive_merged_through);
        let between: Vec<&SegmentInfo> = archived[archived.partition_point(|s| s.sequence <= known)..]
            .iter()
            .filter(|s| !self.spans.contains_key(&s.sequence))
            .collect();
        for info in between {
            let Some((_, before)) = self.spans.range(..info.sequence).next_back() else {
                continue;
            };
            let span = Span {
                start: before.start.saturating_add(before.duration_ns),
                duration_ns: info.duration_ns,
                hole_ms: before
                    .wall_start
                    .map(|w| info.program_date_time.ms_since(w.after(before.duration_ns)))
                    .filter(|&gap| gap > HOLE_TOLERANCE_MS)
                    .and_then(|gap| u64::try_from(gap).ok()),
                discontinuity: info.discontinuity,
                independent: info.independent,
                wall_start: Some(info.program_date_time),
                archived: true,
            };
            self.spans.insert(info.sequence, span);
        }
        let older_than_first = &archived[..archived.partition_point(|s| s.sequence < first)];
        let mut next = (first, span);
        for info in older_than_first.iter().rev() {
            let seq = info.sequence;
            // Before the timeline's zero there is no room: a ring made anew
            // (its time starting again) under an older archive.
            let Some(start) = next.1.start.ns().checked_sub(info.duration_ns) else {
                break;
            };
            let end_pdt = info.program_date_time.after(info.duration_ns);
            if let Some(gap) = next.1.wall_start.map(|w| w.ms_since(end_pdt))
                && gap > HOLE_TOLERANCE_MS
                && let Some(after) = self.spans.get_mut(&next.0)
                && after.hole_ms.is_none()
            {
                after.hole_ms = u64::try_from(gap).ok();
            }
            let span = Span {
                start: RingTime::ZERO.saturating_add(start),
                duration_ns: info.duration_ns,
                hole_ms: None,
                discontinuity: info.discontinuity,
                independent: info.independent,
                wall_start: Some(info.program_date_time),
                archived: true,
            };
            self.spans.insert(seq, span);
            next = (seq, span);
        }
    }

    /// What the archive knows segment `seq` by, if it is read from there:
    /// its listing's entry (whose date-time names the object), else, for
    /// one archived since the last listing, what the ring's playlist said
    /// (a date-time it may only have implied; the fetcher then looks the
    /// segment up by number).
    pub(super) fn archived(&self, seq: SegmentNumber) -> Option<SegmentInfo> {
        let span = self.spans.get(&seq).filter(|s| s.archived)?;
        let listed = &self.archive_listed;
        if let Ok(at) = listed.binary_search_by_key(&seq, |s| s.sequence) {
            return listed.get(at).cloned();
        }
        Some(SegmentInfo {
            sequence: seq,
            duration_ns: span.duration_ns,
            bytes: 0,
            program_date_time: span.wall_start?,
            discontinuity: span.discontinuity,
            independent: span.independent,
        })
    }

    /// Segment `seq`'s local copy from the archive (`part` of it at
    /// least), without waiting, with the two archived segments after it
    /// fetched meanwhile.
    pub(super) fn fetch_archived(&self, seq: SegmentNumber, part: SegmentPart) -> Option<Fetch> {
        let archive = self.archive.as_ref()?;
        let info = self.archived(seq)?;
        let ahead: Vec<SegmentInfo> = self
            .spans
            .range(seq.next()..)
            .take(2)
            .filter_map(|(&s, _)| self.archived(s))
            .collect();
        Some(archive.segment(&info, part, &ahead))
    }

    /// How far archived segment `seq`'s local copy is written, if it is
    /// read from the archive and has one.
    pub(super) fn local_copy(&self, seq: SegmentNumber) -> Option<LocalCopy> {
        // (The span first: this is asked at every look at a segment's length.)
        if !self.spans.get(&seq).is_some_and(|s| s.archived) {
            return None;
        }
        self.archive.as_ref()?.local_copy(seq)
    }

    /// Segment `seq`'s index from the archive (waiting for it), if it is
    /// read from there.
    pub(super) fn archived_index(&self, seq: SegmentNumber) -> Option<Option<PathBuf>> {
        let archive = self.archive.as_ref()?;
        let info = self.archived(seq)?;
        Some(archive.index(&info))
    }

    /// Bytes of archived segment `seq` (waiting for them).
    pub(super) fn archived_range(&self, seq: SegmentNumber, offset: u64, len: u64) -> Option<io::Result<Vec<u8>>> {
        let archive = self.archive.as_ref()?;
        let info = self.archived(seq)?;
        Some(archive.range(&info, offset, len))
    }

    /// Whether segment `seq`, gone from the ring but not (yet) among the
    /// archived ones, may be in the archive: the ring moved on since the
    /// archive was last listed. The next listing (every few seconds) says.
    pub(super) fn archive_behind(&self, seq: SegmentNumber) -> bool {
        self.archive.is_some()
            && self.ring_oldest.is_some_and(|oldest| seq < oldest)
            && !self.spans.contains_key(&seq)
            && self.ring_moved_at.is_some_and(|moved| {
                self.archive_listed_at.is_none_or(|listed| listed < moved) && moved.elapsed() < ARCHIVE_LISTING_WAIT
            })
    }

    /// Segment `seq`, listed by the ring, has gone from it: if the ring has
    /// an archive, it is read from there from now on. Whether it is.
    pub(super) fn move_to_archive(&mut self, seq: SegmentNumber) -> bool {
        if self.archive.is_none() {
            return false;
        }
        match self.spans.get_mut(&seq) {
            Some(span) if !span.archived && span.wall_start.is_some() => {
                span.archived = true;
                true
            }
            _ => false,
        }
    }

    /// Ring time of segment `seq`'s start from its index, if it has one
    /// that follows the listed segment before it (within
    /// [`INDEX_TOLERANCE_NS`] of its end, at most a segment's longest
    /// duration after): a planted or stale index must not move a segment
    /// elsewhere on the timeline.
    pub(super) fn indexed_start(&self, seq: SegmentNumber) -> Option<RingTime> {
        let previous = self.spans.range(..seq).next_back().map(|(_, p)| *p);
        index_start(&self.dir, seq).filter(|&t| {
            previous.is_none_or(|p| {
                let end = p.start.saturating_add(p.duration_ns);
                t.saturating_add(INDEX_TOLERANCE_NS) >= end && t <= end.saturating_add(MAX_SEGMENT_DURATION_NS)
            })
        })
    }

    pub(super) fn oldest(&self) -> Option<SegmentNumber> {
        self.spans.keys().next().copied()
    }

    pub(super) fn newest_listed(&self) -> Option<SegmentNumber> {
        self.spans.keys().next_back().copied()
    }

    /// The segment being written, if there is one: the file after the
    /// newest listed segment, or the one the writer announced in the
    /// progress record when it skipped sequence numbers.
    pub(super) fn open_sequence(&self) -> Option<SegmentNumber> {
        let after = self.newest_listed().map_or(SegmentNumber::FIRST, SegmentNumber::next);
        let exists = |seq: SegmentNumber| {
            std::fs::symlink_metadata(self.dir.join(segment_file_name(seq))).is_ok_and(|m| m.file_type().is_file())
        };
        // The record first: the file after the newest listed one may be a
        // failed segment the writer could not delete yet.
        match Progress::read_in(&self.dir) {
            Ok(Some(p)) if p.sequence > after && exists(p.sequence) => Some(p.sequence),
            _ => exists(after).then_some(after),
        }
    }

    /// The segment being written and the ring time it starts at.
    pub(super) fn in_progress(&self) -> Option<BeingWritten> {
        let sequence = self.open_sequence()?;
        let start = self
            .spans
            .values()
            .next_back()
            .map_or(RingTime::ZERO, |s| s.start.saturating_add(s.duration_ns));
        Some(BeingWritten { sequence, start })
    }

    /// The segment that follows `seq`: the next one listed, else the one
    /// being written if it comes after `seq`.
    pub(super) fn successor(&self, seq: SegmentNumber) -> Option<SegmentNumber> {
        if self.archive_behind(seq.next()) {
            return Some(seq.next());
        }
        self.spans
            .range(seq.next()..)
            .next()
            .map(|(&s, _)| s)
            .or_else(|| self.open_sequence().filter(|&s| s > seq))
    }

    /// Where to go on after `seq`: its successor, or, while there is none
    /// yet, the next number (to be looked for again when it is due).
    pub(super) fn after(&self, seq: SegmentNumber) -> SegmentNumber {
        self.successor(seq).unwrap_or(seq.next())
    }

    /// Ring time of the start of `sequence`, if known.
    pub(super) fn start_of(&self, sequence: SegmentNumber) -> Option<RingTime> {
        if let Some(s) = self.spans.get(&sequence) {
            return Some(s.start);
        }
        self.in_progress()
            .filter(|open| open.sequence == sequence)
            .map(|open| open.start)
    }

    /// Bytes of segment `seq`'s file, open as `file`, that are its own
    /// content: a reused file holds older packets past what was written.
    /// The record is read before the size: once the writer has moved on
    /// from a reused file, it has already cut it to length.
    /// An archived segment's local copy: as far as it is written.
    pub(super) fn content_len(&self, file: &File, seq: SegmentNumber) -> io::Result<u64> {
        if let Some(copy) = self.local_copy(seq) {
            return Ok(copy.written);
        }
        let record = Progress::read_in(&self.dir);
        let len = file.metadata()?.len();
        Ok(match record {
            Ok(record) => Progress::limit(record, seq, len),
            // A listed segment is finished and cut to length; of one being
            // written nothing is certain until the record can be read.
            Err(_) if self.spans.contains_key(&seq) => len,
            Err(_) => 0,
        })
    }

    /// Duration of the bytes of segment `seq` at the newest known byte rate.
    pub(super) fn estimate_ns(&self, seq: SegmentNumber) -> u64 {
        let bytes = platform::open_read_only(&self.dir.join(segment_file_name(seq)))
            .and_then(|f| self.content_len(&f, seq))
            .unwrap_or(0);
        let rate = self.spans.iter().next_back().and_then(|(&s, span)| {
            let len = std::fs::symlink_metadata(self.dir.join(segment_file_name(s)))
                .ok()?
                .len();
            (len > 0).then_some((span.duration_ns, len))
        });
        rate.map_or(0, |(ns, len)| scale(bytes, ns, len))
    }
}

/// Ring time of segment `seq`'s start, from its index, if it has one.
fn index_start(dir: &Path, seq: SegmentNumber) -> Option<RingTime> {
    let file = platform::open_read_only(&dir.join(segment_index_name(seq)));
    crate::layout::index::read_start(file).map(|start| start.ring_time)
}
