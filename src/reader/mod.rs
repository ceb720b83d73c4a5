// SPDX-License-Identifier: MPL-2.0
//! Reads a ring back, following the writer: the pure-Rust core of
//! `streambuffersrc`.
//!
//! The reader only reads. Its index is the ring's playlist (so it also plays
//! a finished ring or a recording directory) plus the segment being written:
//! the file after the newest listed one, or the one the writer announced in
//! the progress record when it had to skip sequence numbers. Time is
//! *content time*: the sum of segment durations from the oldest segment the
//! reader has seen, with holes (write failures, restarts) left out so that
//! output timestamps stay continuous; holes are reported as events instead.
//!
//! Everything on disk is untrusted: the playlist is read with a size bound,
//! no link is followed, nothing but a regular file is opened (and no open
//! blocks), every duration is bounded and every sum saturates. A segment
//! that cannot be opened or read is reported and skipped; only a ring of
//! which nothing at all can be read ends in an error.
//!
//! - here: [`RingReader`], the cursor (the segment being read, where the
//!   next one is entered, failures in a row) and `read`;
//! - `catalog`: what the playlist lists, and the segment being written;
//! - `position`: the window and the position, in presentation time;
//! - `seek`, `wall_clock`, `trick`: landing on keyframes, date-times,
//!   trick play; `gaps`: deleted, missing and unreadable segments.

mod archived;
mod catalog;
mod gaps;
mod open_segment;
mod position;
mod seek;
mod trick;
mod wall_clock;

#[cfg_attr(not(feature = "archive"), allow(unused_imports))]
pub use archived::{ArchiveListing, ArchivedSegments, Fetch, LocalCopy, SegmentPart};
use catalog::Catalog;
use gaps::Resume;
use open_segment::{KeyframeJump, Open, SegmentRead};
pub use position::{ReadLocation, SeekWindow};
use seek::Landing;
pub use seek::Snap;
pub use trick::{Direction, MAX_ALL_FRAMES_RATE, Playback, TrickOutcome};

use std::io;
use std::path::{Path, PathBuf};

use crate::layout::SegmentNumber;
use crate::layout::{PLAYLIST_NAME, PresentationTime, RingTime};
use crate::platform;
use crate::ts::PACKET_SIZE;

/// Where playback starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// The newest random-access point (the start of the segment being
    /// written), minus the start delay.
    Live,
    /// The oldest content still in the ring.
    Oldest,
}

/// What happened that the element reports, mirroring the SBE source events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderEvent {
    /// Segments `first..=last` the reader needed (or was reading) were
    /// deleted: by the writer, or from under it. A run is reported once.
    StaleFileDeleted { first: SegmentNumber, last: SegmentNumber },
    /// The reader reached content that was never recorded, or that it had to
    /// skip: `size_ms` from content time `offset_ms`.
    TimeHole { offset_ms: u64, size_ms: u64 },
    /// The reader is in the oldest segment of a live ring: the next to be deleted.
    ContentBecomingStale { sequence: SegmentNumber },
    /// A file of the ring could not be opened or read (SBE's `READ_FAILURE`):
    /// it is retried, or skipped if it cannot be used at all.
    ReadFailure { path: PathBuf, error: String },
}

/// What a reader has done, for `streambuffersrc`'s `stats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReaderStats {
    pub bytes: u64,
    pub segments_opened: u64,
    pub time_holes: u64,
    /// Stale-file events (each a run of deleted segments).
    pub stale_deletions: u64,
    pub read_failures: u64,
}

/// The result of [`RingReader::read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// `len` bytes (whole packets) were read; `ring_time` is set on the
    /// first bytes of a segment (where they are on the ring's timeline: the
    /// element's PTS), `discont` after a jump.
    Data {
        len: usize,
        ring_time: Option<RingTime>,
        discont: bool,
    },
    /// Nothing yet: the writer has not written more, or a read failed and is
    /// to be retried. Call again later.
    Wait,
    /// The ring is finished and everything was read.
    Eos,
}

/// See the module documentation.
pub struct RingReader {
    /// What the playlist lists, and the segment being written.
    catalog: Catalog,
    current: Option<Open>,
    next: Option<SegmentNumber>,
    discont: bool,
    stale_reported: Option<SegmentNumber>,
    /// Ring time where the segment after the last one read starts.
    continue_at: Option<RingTime>,
    events: Vec<ReaderEvent>,
    /// Reads that failed in a row on the current (or next) segment.
    failures: u32,
    /// Bytes delivered so far: a ring of which nothing can be read is an error.
    delivered: u64,
    /// A file was skipped because it could not be read.
    skipped_unreadable: bool,
    /// The playlist's last read error, reported once.
    playlist_error: Option<String>,
    /// The segment opened last, since the last seek.
    last_opened: Option<SegmentNumber>,
    /// Where the next segment opened is entered, after a keyframe seek.
    landing: Option<Landing>,
    /// A segment evicted while it was read, read on from the archive's
    /// copy: where reading was in it.
    resume: Option<Resume>,
    /// How long after its ring time the stream's content is presented
    /// (the multiplexer's delay, `layout::index`), from the index; the
    /// window and positions are given in presentation time, as seeks take.
    presentation_delay_ns: Option<u64>,
    stats: ReaderStats,
    /// Where the start applied last begins precisely (EXT-X-START with
    /// PRECISE=YES): data comes from the keyframe before it.
    precise_start: Option<PresentationTime>,
    /// Presentation time of the last keyframe trick play read (the
    /// position while it runs).
    trick_position: Option<PresentationTime>,
}

impl RingReader {
    /// A reader of the ring (or recording) in `dir`. Nothing is opened yet.
    #[must_use]
    pub fn new(dir: &Path) -> Self {
        RingReader {
            catalog: Catalog::new(dir),
            current: None,
            next: None,
            discont: true,
            stale_reported: None,
            continue_at: None,
            events: Vec::new(),
            failures: 0,
            delivered: 0,
            skipped_unreadable: false,
            playlist_error: None,
            last_opened: None,
            landing: None,
            resume: None,
            presentation_delay_ns: None,
            stats: ReaderStats::default(),
            precise_start: None,
            trick_position: None,
        }
    }

    /// Makes the window reach back into the ring's archive: its segments
    /// older than the ring's are read from there (see `archived`).
    #[cfg_attr(not(feature = "archive"), allow(dead_code))]
    pub fn set_archive(&mut self, archive: Box<dyn ArchivedSegments>) {
        self.catalog.set_archive(archive);
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<ReaderEvent> {
        for event in &self.events {
            match event {
                ReaderEvent::TimeHole { .. } => self.stats.time_holes += 1,
                ReaderEvent::StaleFileDeleted { .. } => self.stats.stale_deletions += 1,
                ReaderEvent::ReadFailure { .. } => self.stats.read_failures += 1,
                ReaderEvent::ContentBecomingStale { .. } => {}
            }
        }
        std::mem::take(&mut self.events)
    }

    /// Where the last start begins precisely, if the list asked for it
    /// (`EXT-X-START`): the element starts its segment there, so that what
    /// comes before, from the keyframe before, is not shown.
    #[must_use]
    pub fn precise_start(&self) -> Option<PresentationTime> {
        self.precise_start
    }

    /// Counters so far (events counted as they are taken).
    #[must_use]
    pub fn stats(&self) -> ReaderStats {
        ReaderStats {
            bytes: self.delivered,
            ..self.stats
        }
    }

    /// Whether the ring is finished (its playlist has ENDLIST): nothing
    /// more will be written to it.
    #[must_use]
    pub fn is_ended(&self) -> bool {
        self.catalog.ended()
    }

    /// Re-reads the playlist if it changed. Returns whether there is one.
    /// A playlist that is not a regular file, is a link, or is larger than
    /// [`PLAYLIST_MAX_BYTES`] is an error.
    pub fn refresh(&mut self) -> io::Result<bool> {
        let Some(holes) = self.catalog.refresh()? else {
            return Ok(false);
        };
        // Listed only once it was complete: a segment already being read
        // when its hole became known (a live reader going on into the first
        // segment after a writer's restart).
        for hole in holes {
            if self.last_opened.is_some_and(|last| last >= hole.sequence) {
                self.events.push(ReaderEvent::TimeHole {
                    offset_ms: hole.start.ns() / 1_000_000,
                    size_ms: hole.size_ms,
                });
            }
        }
        Ok(true)
    }

    /// [`Self::refresh`] while playing: a playlist that cannot be read now
    /// is reported, and the last one read stays in force.
    fn refresh_playing(&mut self) {
        match self.refresh() {
            Ok(_) => self.playlist_error = None,
            // Reported once, not at every poll while it lasts.
            Err(e) if self.playlist_error.as_deref() != Some(e.to_string().as_str()) => {
                self.playlist_error = Some(e.to_string());
                self.read_failure(&self.catalog.dir().join(PLAYLIST_NAME), &e);
            }
            Err(_) => {}
        }
    }

    /// Positions the reader; returns the presentation time it landed on:
    /// the start of the segment (a random-access point) at or before
    /// `target`, which is first clamped into the window.
    pub fn seek(&mut self, target: PresentationTime) -> io::Result<Option<PresentationTime>> {
        self.refresh()?;
        let delay_ns = self.presentation_delay();
        let target = target.ring_time_before(delay_ns);
        let in_progress = self.catalog.in_progress().map(|open| (open.sequence, open.start));
        let candidate = match in_progress {
            Some((seq, start)) if target >= start => Some((seq, start)),
            // The segment holding the target, or before it the nearest one
            // that starts at a random-access point: a forced cut's segment
            // starts inside a GOP and would not decode until the next one.
            _ => {
                let starts = || self.catalog.spans().iter().filter(|(_, s)| s.independent);
                starts()
                    .rev()
                    .find(|(_, s)| s.start <= target)
                    .or_else(|| starts().next())
                    .or_else(|| self.catalog.spans().iter().rev().find(|(_, s)| s.start <= target))
                    .or_else(|| self.catalog.spans().iter().next())
                    .map(|(&seq, s)| (seq, s.start))
            }
        };
        let Some((seq, start)) = candidate.or(in_progress) else {
            return Ok(None);
        };
        self.reposition(seq, start);
        Ok(Some(start.presented_after_ns(delay_ns)))
    }

    /// Makes segment `seq`, starting at ring time `start`, the next one
    /// read, from its start: whatever was being read is dropped, and the
    /// next buffer is a discontinuity.
    fn reposition(&mut self, seq: SegmentNumber, start: RingTime) {
        self.landing = None;
        self.resume = None;
        self.trick_position = None;
        self.current = None;
        self.next = Some(seq);
        self.discont = true;
        self.failures = 0;
        self.last_opened = None;
        self.continue_at = Some(start);
    }

    /// Positions the reader at the keyframe `snap` picks for presentation
    /// time `target` (see [`Snap`] and `layout::index`); where the ring
    /// has no index, at the start of the segment holding it. Returns the
    /// presentation time of where data starts.
    pub fn seek_to(&mut self, target: PresentationTime, snap: Snap) -> io::Result<Option<PresentationTime>> {
        self.refresh()?;
        match self.seek_keyframe(target, snap) {
            Some(t) => Ok(Some(t)),
            None => self.seek(target),
        }
    }

    /// Positions the reader at the live edge (minus `delay_ns`) or the oldest
    /// content (`delay_ns` does not apply there). The live edge is the
    /// newest keyframe in the index, else the start of the segment being
    /// written. A finished ring (or a recording) has no live edge: without
    /// a delay it plays from its start.
    pub fn start(&mut self, position: StartPosition, delay_ns: u64) -> io::Result<Option<PresentationTime>> {
        self.refresh()?;
        match position {
            // A finished ring or a recording (ENDLIST): there is no live
            // edge to follow, it plays from its start.
            StartPosition::Oldest | StartPosition::Live if self.catalog.ended() && delay_ns == 0 => {
                match (
                    self.catalog.start_offset_ns(),
                    self.catalog.spans().values().next().map(|s| s.start),
                ) {
                    (Some(offset), Some(first)) => {
                        let target = first
                            .saturating_add(offset)
                            .presented_after_ns(self.presentation_delay());
                        self.precise_start = Some(target);
                        self.seek_to(target, Snap::Before)
                    }
                    _ => self.seek_to(PresentationTime::ZERO, Snap::After),
                }
            }
            StartPosition::Oldest => self.seek_to(PresentationTime::ZERO, Snap::After),
            StartPosition::Live if self.newest_keyframe().is_some() => {
                let Some((seq, index, edge)) = self.newest_keyframe() else {
                    return Ok(None);
                };
                if delay_ns == 0 {
                    self.land(seq, &index, &edge);
                    return Ok(Some(edge.presentation_time()));
                }
                self.seek_to(edge.presentation_time().saturating_sub(delay_ns), Snap::Before)
            }
            StartPosition::Live => {
                let Some(SeekWindow { end, .. }) = self.window() else {
                    // Nothing listed yet: start at the first segment written.
                    return self.seek(PresentationTime::ZERO);
                };
                let presentation_delay = self.presentation_delay();
                let newest = self
                    .catalog
                    .in_progress()
                    .map_or(end, |open| open.start.presented_after_ns(presentation_delay));
                self.seek(newest.min(end).saturating_sub(delay_ns))
            }
        }
    }

    /// Reads whole packets into `buf` (whose length must be at least one
    /// packet). An error only when nothing of the ring could be read at all.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<ReadOutcome> {
        let want = buf.len() / PACKET_SIZE * PACKET_SIZE;
        loop {
            if self.current.is_none() {
                match self.open_next()? {
                    Some(outcome) => return Ok(outcome),
                    None => continue,
                }
            }
            let Some(cur) = self.current.as_mut() else { continue };
            match cur.read_into(&self.catalog, &mut buf[..want]) {
                SegmentRead::Data(n) => {
                    self.failures = 0;
                    self.delivered += n as u64;
                    return Ok(ReadOutcome::Data {
                        len: n,
                        ring_time: cur.timestamp.take(),
                        discont: std::mem::take(&mut self.discont),
                    });
                }
                SegmentRead::Lost => {
                    if !self.resume_from_archive() {
                        self.lost_current();
                    }
                }
                SegmentRead::Failed(e) => {
                    let path = cur.path.clone();
                    return Ok(self.failed_read(&path, &e));
                }
                SegmentRead::AtEnd => {
                    let seq = cur.sequence;
                    if let Some(outcome) = self.archived_at_end(seq) {
                        return Ok(outcome);
                    }
                    if !self.leave_if_complete(seq) {
                        return self.at_end();
                    }
                }
            }
        }
    }

    /// At the end of what is written of segment `seq`: if it is complete
    /// (listed, or a later one exists) and nothing was appended meanwhile,
    /// reading moves on to the next one. Whether it did.
    fn leave_if_complete(&mut self, seq: SegmentNumber) -> bool {
        let complete = |r: &Self| r.catalog.spans().contains_key(&seq) || r.catalog.successor(seq).is_some();
        if !complete(self) {
            self.refresh_playing();
        }
        if !complete(self) {
            return false;
        }
        // Data may have been appended between the size check and now.
        if self.current.as_ref().is_some_and(|c| {
            self.catalog
                .content_len(&c.file, seq)
                .is_ok_and(|len| len > c.offset + PACKET_SIZE as u64 - 1)
        }) {
            return true;
        }
        // Where the next segment starts, should the playlist not list this
        // one yet: its start plus its estimated length.
        self.continue_at = self.current.as_ref().map(|c| {
            c.start.saturating_add(
                self.catalog
                    .spans()
                    .get(&seq)
                    .map_or_else(|| self.catalog.estimate_ns(seq), |s| s.duration_ns),
            )
        });
        self.current = None;
        self.next = Some(self.catalog.after(seq));
        true
    }

    /// Nothing more to read now: the end of a finished ring, or wait.
    fn at_end(&self) -> io::Result<ReadOutcome> {
        if !self.catalog.ended() {
            return Ok(ReadOutcome::Wait);
        }
        if self.delivered == 0 && self.skipped_unreadable {
            return Err(io::Error::other("no segment of the ring could be read"));
        }
        Ok(ReadOutcome::Eos)
    }

    /// Opens the next segment; `Some` is an outcome to return instead.
    fn open_next(&mut self) -> io::Result<Option<ReadOutcome>> {
        let seq = match self.next {
            Some(s) => s,
            None => match self.start(StartPosition::Oldest, 0)? {
                Some(_) => return Ok(None),
                None => return self.at_end().map(Some),
            },
        };
        let (path, opened) = match self.locate(seq) {
            Ok(found) => found,
            Err(instead) => return Ok(instead),
        };
        match opened {
            Ok(file) => {
                let file = match self.resume_in(seq, file, path.clone()) {
                    Some(file) => file,
                    None => return Ok(None),
                };
                let span = self.catalog.spans().get(&seq).copied();
                // Numbers skipped since the last segment opened: segments
                // deleted (or never listed) unless the writer says content
                // was lost there, which is a time hole.
                if let Some(last) = self.last_opened
                    && let Some(before) = seq.previous().filter(|&b| b > last)
                    && span.is_none_or(|s| s.hole_ms.is_none())
                {
                    self.push_stale(last.next(), before);
                }
                self.last_opened = Some(seq);
                if let Some(span) = span {
                    if let Some(size_ms) = span.hole_ms {
                        self.events.push(ReaderEvent::TimeHole {
                            offset_ms: span.start.ns() / 1_000_000,
                            size_ms,
                        });
                    }
                    if span.discontinuity {
                        self.discont = true;
                    }
                }
                if !self.catalog.ended() && self.catalog.oldest() == Some(seq) && self.stale_reported != Some(seq) {
                    self.stale_reported = Some(seq);
                    self.events.push(ReaderEvent::ContentBecomingStale { sequence: seq });
                }
                // A listed segment's start was settled when it was listed;
                // the one being written takes its index's if that agrees
                // with where the segments before it end.
                let start = match self.catalog.spans().get(&seq) {
                    Some(span) => span.start,
                    None => self
                        .catalog
                        .indexed_start(seq)
                        .or_else(|| self.catalog.start_of(seq))
                        .or(self.continue_at)
                        .unwrap_or(RingTime::ZERO),
                };
                let (offset, jump, timestamp) = match self.landing.take() {
                    Some(l) if l.sequence == seq && l.head_end == 0 => (l.keyframe_offset, None, l.timestamp),
                    Some(l) if l.sequence == seq => (
                        0,
                        Some(KeyframeJump {
                            head_end: l.head_end,
                            keyframe_offset: l.keyframe_offset,
                        }),
                        l.timestamp,
                    ),
                    _ => (0, None, start),
                };
                self.stats.segments_opened += 1;
                // Held while the segment is read, paused or not: the writer
                // defers evicting it (see `ring::lease`); without one it
                // reads as before.
                let _ = crate::ring::lease::take(&file);
                let id = platform::file_id(&file);
                self.current = Some(Open {
                    sequence: seq,
                    file,
                    offset,
                    start,
                    jump,
                    timestamp: Some(timestamp),
                    readable: 0,
                    id,
                    path,
                });
                Ok(None)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Evicted by the writer after it was archived: read from
                // the archive.
                if self.catalog.move_to_archive(seq) {
                    return Ok(None);
                }
                self.refresh_playing();
                // Or gone before this reader saw the ring list it: in the
                // archive's listing, or soon.
                if self.catalog.archived(seq).is_some() || self.catalog.archive_behind(seq) {
                    return Ok(None);
                }
                if self.catalog.oldest().is_some_and(|o| seq < o) || self.catalog.spans().contains_key(&seq) {
                    // Deleted before we got to it: skip the whole run of
                    // missing segments, reported once.
                    self.skip_missing(seq);
                    return Ok(None);
                }
                if let Some(next) = self.catalog.successor(seq) {
                    // Past a gap in the numbering (segments that could not
                    // be created): go on with the next one there is.
                    self.next = Some(next);
                    self.discont = true;
                    return Ok(None);
                }
                self.at_end().map(Some)
            }
            Err(e) => {
                // A link, a directory, a FIFO, no permission: not playable.
                self.read_failure(&path, &e);
                let from = self
                    .catalog
                    .start_of(seq)
                    .or(self.continue_at)
                    .unwrap_or(RingTime::ZERO);
                let size = self.catalog.spans().get(&seq).map_or(0, |s| s.duration_ns);
                self.skip_unreadable(seq, (from, size));
                Ok(None)
            }
        }
    }
}

/// `value * numerator / denominator` without overflow, saturating.
pub(super) fn scale(value: u64, numerator: u64, denominator: u64) -> u64 {
    let d = u128::from(denominator.max(1));
    u64::try_from(u128::from(value) * u128::from(numerator) / d).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::segment_file_name;
    use crate::ring::Ring;
    use crate::ring::tests::{SECOND, config, marked, ring_at, start};
    use std::collections::BTreeMap;

    /// Reads everything available now; returns the marker of each packet.
    fn drain(reader: &mut RingReader) -> Vec<u8> {
        let mut buf = vec![0u8; 64 * PACKET_SIZE];
        let mut markers = Vec::new();
        while let ReadOutcome::Data { len, .. } = reader.read(&mut buf).expect("read") {
            markers.extend(buf[..len].chunks_exact(PACKET_SIZE).map(|p| p[1]));
        }
        markers
    }

    /// A reader following a writer that reuses evicted files reads each
    /// segment's own packets only: never the old content after what was
    /// written, never a file after it was taken for another segment.
    #[test]
    fn reused_files_show_readers_only_new_packets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ring = Ring::open(config(dir.path())).expect("open");
        let mut written = BTreeMap::<u8, usize>::new();
        let mut write = |ring: &mut Ring, marker: u8, packets: usize| {
            ring.write(&marked(marker, packets)).expect("write");
            ring.flush().expect("flush");
            *written.entry(marker).or_default() += packets;
        };
        for n in 0..6u8 {
            ring.begin_segment(start(false)).expect("begin");
            write(&mut ring, n, 3000);
            ring.finish_segment(2 * SECOND).expect("finish");
        }
        // One reader at the live edge, one parked on the oldest segment.
        let (mut live, mut slow) = (RingReader::new(dir.path()), RingReader::new(dir.path()));
        live.start(StartPosition::Live, 0).expect("live");
        slow.start(StartPosition::Oldest, 0).expect("oldest");
        let mut one = vec![0u8; PACKET_SIZE];
        assert!(matches!(slow.read(&mut one).expect("read"), ReadOutcome::Data { .. }));
        let mut seen = (Vec::new(), Vec::new());
        for n in 6..12u8 {
            ring.begin_segment(start(false)).expect("begin");
            for _ in 0..3 {
                write(&mut ring, n, 7);
                seen.0.extend(drain(&mut live));
            }
            ring.finish_segment(2 * SECOND).expect("finish");
            if n == 9 {
                seen.1.extend(drain(&mut slow));
            }
        }
        ring.close(0).expect("close");
        seen.0.extend(drain(&mut live));
        seen.1.extend(drain(&mut slow));
        assert!(ring.stats().segments_reused >= 5);

        // Started between segments, the live reader began with the newest
        // finished one, then took each new segment as it was written.
        let expected: Vec<u8> = std::iter::repeat_n(5, 3000)
            .chain((6..12u8).flat_map(|n| [n; 21]))
            .collect();
        assert!(
            seen.0 == expected,
            "live reader read {} packets, not {}",
            seen.0.len(),
            expected.len()
        );
        // The slow reader lost segments to the writer: it read no packet of
        // one segment inside another, and each segment it read, it read whole.
        let stale: Vec<u64> = slow
            .take_events()
            .iter()
            .filter_map(|e| match e {
                ReaderEvent::StaleFileDeleted { first, .. } => Some(first.get()),
                _ => None,
            })
            .collect();
        assert!(!stale.is_empty());
        assert!(
            seen.1.is_sorted(),
            "{:?}",
            seen.1.iter().collect::<std::collections::BTreeSet<_>>()
        );
        let mut counts = BTreeMap::<u8, usize>::new();
        for m in &seen.1 {
            *counts.entry(*m).or_default() += 1;
        }
        for (m, n) in counts {
            let whole = written[&m];
            assert!(
                n == whole || (n < whole && stale.contains(&u64::from(m))),
                "segment {m}: {n} of {whole}"
            );
        }
    }

    /// While the progress record cannot be read, nothing of the segment
    /// being written is taken: the reader waits instead of reading what may
    /// be old packets.
    #[test]
    fn an_unreadable_record_makes_the_reader_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ring = ring_at(dir.path(), config(dir.path()), 9, 10);
        let mut reader = RingReader::new(dir.path());
        reader.seek(PresentationTime::MAX).expect("seek to the live edge");
        assert_eq!(drain(&mut reader), vec![9; 10]);
        let record = dir.path().join(crate::layout::PROGRESS_NAME);
        let saved = std::fs::read(&record).expect("record");
        std::fs::write(&record, &saved[..8]).expect("torn record");
        assert_eq!(drain(&mut reader), Vec::<u8>::new());
        std::fs::write(&record, &saved).expect("record back");
        ring.write(&marked(9, 5)).expect("write");
        ring.flush().expect("flush");
        assert_eq!(drain(&mut reader), vec![9; 5]);
    }

    /// Reads everything there is now, then the outcome that ended it.
    fn drain_all(reader: &mut RingReader) -> (Vec<u8>, ReadOutcome) {
        let mut buf = vec![0u8; 64 * PACKET_SIZE];
        let mut markers = Vec::new();
        loop {
            match reader.read(&mut buf).expect("read") {
                ReadOutcome::Data { len, .. } => markers.extend(buf[..len].chunks_exact(PACKET_SIZE).map(|p| p[1])),
                end => return (markers, end),
            }
        }
    }

    /// Segments the writer could not create leave their numbers unused: a
    /// live reader goes on with the segment being written (announced in the
    /// progress record), and a reader of the finished ring with the next
    /// listed one.
    #[test]
    fn follows_the_ring_across_skipped_sequence_numbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ring = Ring::open(config(dir.path())).expect("open");
        for n in 0..3u8 {
            ring.begin_segment(start(false)).expect("begin");
            ring.write(&marked(n, 10)).expect("write");
            ring.finish_segment(2 * SECOND).expect("finish");
        }
        ring.publish_pending();
        // Something is in the way of segments 3 and 4.
        for n in [3, 4] {
            std::fs::create_dir(dir.path().join(segment_file_name(SegmentNumber::new(n)))).expect("mkdir");
            assert!(
                ring.begin_segment(start(false)).is_err(),
                "segment {n} cannot be created"
            );
        }
        ring.begin_segment(start(true)).expect("begin 5");
        ring.write(&marked(5, 10)).expect("write");
        ring.flush().expect("flush");
        let mut live = RingReader::new(dir.path());
        live.start(StartPosition::Oldest, 0).expect("start");
        let expected: Vec<u8> = [0u8, 1, 2, 5].iter().flat_map(|&n| [n; 10]).collect();
        assert_eq!(drain_all(&mut live), (expected.clone(), ReadOutcome::Wait));
        ring.write(&marked(5, 3)).expect("write");
        ring.finish_segment(2 * SECOND).expect("finish");
        ring.close(0).expect("close");
        assert_eq!(drain_all(&mut live), (vec![5; 3], ReadOutcome::Eos));
        let events = live.take_events();
        assert!(
            !events.iter().any(|e| matches!(e, ReaderEvent::ReadFailure { .. })),
            "{events:?}"
        );
        let mut finished = RingReader::new(dir.path());
        finished.start(StartPosition::Oldest, 0).expect("start");
        let whole: Vec<u8> = expected.into_iter().chain([5; 3]).collect();
        assert_eq!(drain_all(&mut finished), (whole, ReadOutcome::Eos));
    }

    /// Listed segments whose files are gone are skipped as one run, with one
    /// event; a listed entry that is not a regular file is reported and
    /// skipped too; a read that fails ends nothing.
    #[test]
    fn missing_and_unusable_segments_are_skipped_and_reported_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ring = Ring::open(config(dir.path())).expect("open");
        for n in 0..5u8 {
            ring.begin_segment(start(false)).expect("begin");
            ring.write(&marked(n, 10)).expect("write");
            ring.finish_segment(2 * SECOND).expect("finish");
        }
        ring.close(0).expect("close");
        for n in [1, 2] {
            std::fs::remove_file(dir.path().join(segment_file_name(SegmentNumber::new(n)))).expect("remove");
        }
        let four = dir.path().join(segment_file_name(SegmentNumber::new(4)));
        std::fs::remove_file(&four).expect("remove");
        std::fs::create_dir(&four).expect("a directory where segment 4 was");
        let mut reader = RingReader::new(dir.path());
        reader.start(StartPosition::Oldest, 0).expect("start");
        let expected: Vec<u8> = [0u8, 3].iter().flat_map(|&n| [n; 10]).collect();
        assert_eq!(drain_all(&mut reader), (expected, ReadOutcome::Eos));
        let events = reader.take_events();
        let stale: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                ReaderEvent::StaleFileDeleted { first, last } => Some((first.get(), last.get())),
                _ => None,
            })
            .collect();
        assert_eq!(stale, [(1, 2)], "{events:?}");
        assert!(
            events
                .iter()
                .any(|e| matches!(e, ReaderEvent::ReadFailure { path, .. } if *path == four)),
            "{events:?}"
        );
        assert!(
            events.iter().any(|e| matches!(
                e,
                ReaderEvent::TimeHole {
                    offset_ms: 8000,
                    size_ms: 2000
                }
            )),
            "{events:?}"
        );
    }

    /// An archive as a reader sees it, without a server: every segment it
    /// lists is whole in `dir`.
    struct FakeArchive {
        dir: std::path::PathBuf,
        listed: Vec<crate::layout::SegmentInfo>,
    }

    impl ArchivedSegments for FakeArchive {
        fn listing(&self) -> ArchiveListing {
            ArchiveListing {
                generation: 1,
                made_at: Some(std::time::Instant::now()),
                segments: self.listed.clone().into(),
            }
        }

        fn segment(
            &self,
            segment: &crate::layout::SegmentInfo,
            _: SegmentPart,
            _: &[crate::layout::SegmentInfo],
        ) -> Fetch {
            Fetch::Ready(self.dir.join(segment_file_name(segment.sequence)))
        }

        fn local_copy(&self, sequence: SegmentNumber) -> Option<LocalCopy> {
            let len = std::fs::metadata(self.dir.join(segment_file_name(sequence)))
                .ok()?
                .len();
            Some(LocalCopy {
                written: len,
                size: Some(len),
                complete: true,
                failed: None,
            })
        }

        fn index(&self, _: &crate::layout::SegmentInfo) -> Option<std::path::PathBuf> {
            None
        }

        fn range(&self, _: &crate::layout::SegmentInfo, _: u64, _: u64) -> io::Result<Vec<u8>> {
            Err(io::Error::other("not in this test"))
        }
    }

    /// The archive's segments older than the ring's come first, on one
    /// timeline ending where the ring's begins, and are read before them.
    #[test]
    fn the_archive_extends_the_window_back_and_is_read_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let archive_dir = tempfile::tempdir().expect("tempdir");
        // 2 s segments, a 10 s window: 0..=8 written, the oldest evicted;
        // ring time and the wall clock run on as in a recording.
        let mut ring = Ring::open(config(dir.path())).expect("open");
        for n in 0..9u8 {
            let at = start(false);
            ring.begin_segment(crate::ring::SegmentStart {
                ring_time: RingTime::ZERO.saturating_add(u64::from(n) * 2 * SECOND),
                program_date_time: at.program_date_time.after(u64::from(n) * 2 * SECOND),
                ..at
            })
            .expect("begin");
            ring.write(&marked(n, 10)).expect("write");
            ring.finish_segment(2 * SECOND).expect("finish");
        }
        ring.close(0).expect("close");
        let mut plain = RingReader::new(dir.path());
        plain.start(StartPosition::Oldest, 0).expect("start");
        let kept = drain(&mut plain);
        let oldest_kept = *kept.first().expect("the ring keeps some");
        assert!(oldest_kept > 0, "the ring evicted nothing");
        let listed = (0..u64::from(oldest_kept))
            .map(|n| {
                std::fs::write(
                    archive_dir.path().join(segment_file_name(SegmentNumber::new(n))),
                    marked(n as u8, 10),
                )
                .expect("archived copy");
                crate::layout::SegmentInfo {
                    sequence: SegmentNumber::new(n),
                    duration_ns: 2 * SECOND,
                    bytes: 0,
                    program_date_time: crate::layout::WallTime::from_ms(1_700_000_000_000 + n as i64 * 2000),
                    discontinuity: false,
                    independent: true,
                }
            })
            .collect();
        let mut reader = RingReader::new(dir.path());
        reader.set_archive(Box::new(FakeArchive {
            dir: archive_dir.path().to_owned(),
            listed,
        }));
        let ring_window = plain.window().expect("window");
        let window = reader.window().expect("window");
        assert_eq!(window.end, ring_window.end);
        assert_eq!(
            ring_window.start.ns() - window.start.ns(),
            u64::from(oldest_kept) * 2 * SECOND,
            "the archived segments end where the ring's begin"
        );
        reader.start(StartPosition::Oldest, 0).expect("start");
        let (all, end) = drain_all(&mut reader);
        let expected: Vec<u8> = (0..9u8).flat_map(|n| [n; 10]).collect();
        assert_eq!((all, end), (expected, ReadOutcome::Eos));
        assert!(reader.take_events().is_empty());
    }
}
