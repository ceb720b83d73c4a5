//! Reads a ring back, following the writer: the pure-Rust core of
//! `streambuffersrc`.
//!
//! The reader only reads. Its index is the ring's playlist (so it also plays
//! a finished ring or a recording directory) plus the segment being written,
//! which is the file after the newest listed one. Time is *content time*:
//! the sum of segment durations from the oldest segment the reader has seen,
//! with holes (write failures, restarts) left out so that output timestamps
//! stay continuous; holes are reported as events instead.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use crate::layout::progress::Progress;
use crate::layout::{PLAYLIST_NAME, playlist, segment_file_name};
use crate::platform;
use crate::ts::PACKET_SIZE;

/// A jump in program date-time larger than this between two segments is a
/// time hole (content that was never recorded).
const HOLE_TOLERANCE_MS: i64 = 500;

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
    /// A segment the reader needed (or was reading) was deleted by the writer.
    StaleFileDeleted { sequence: u64 },
    /// The reader reached content that was never recorded.
    TimeHole { offset_ms: u64, size_ms: u64 },
    /// The reader is in the oldest segment of a live ring: the next to be deleted.
    ContentBecomingStale { sequence: u64 },
}

/// The result of [`RingReader::read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// `len` bytes (whole packets) were read; `timestamp` is set on the first
    /// bytes of a segment (content time), `discont` after a jump.
    Data {
        len: usize,
        timestamp: Option<u64>,
        discont: bool,
    },
    /// Nothing yet: the writer has not written more. Call again later.
    Wait,
    /// The ring is finished and everything was read.
    Eos,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start_ns: u64,
    duration_ns: u64,
    /// Gap before this segment, milliseconds, if any.
    hole_ms: Option<u64>,
    discontinuity: bool,
}

struct Open {
    sequence: u64,
    file: File,
    offset: u64,
    /// Content time of the segment's start, fixed when it was opened.
    start_ns: u64,
}

/// See the module documentation.
pub struct RingReader {
    dir: PathBuf,
    /// Listed (complete) segments by sequence.
    spans: BTreeMap<u64, Span>,
    /// End, in program date-time, of the newest listed segment.
    last_end_pdt_ms: Option<i64>,
    ended: bool,
    playlist_stamp: Option<(std::time::SystemTime, u64)>,
    current: Option<Open>,
    next: Option<u64>,
    discont: bool,
    stale_reported: Option<u64>,
    /// Content time where the segment after the last one read starts.
    continue_at_ns: Option<u64>,
    events: Vec<ReaderEvent>,
}

impl RingReader {
    /// A reader of the ring (or recording) in `dir`. Nothing is opened yet.
    #[must_use]
    pub fn new(dir: &Path) -> Self {
        RingReader {
            dir: dir.to_owned(),
            spans: BTreeMap::new(),
            last_end_pdt_ms: None,
            ended: false,
            playlist_stamp: None,
            current: None,
            next: None,
            discont: true,
            stale_reported: None,
            continue_at_ns: None,
            events: Vec::new(),
        }
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<ReaderEvent> {
        std::mem::take(&mut self.events)
    }

    /// Re-reads the playlist if it changed. Returns whether it could be read.
    pub fn refresh(&mut self) -> io::Result<bool> {
        let path = self.dir.join(PLAYLIST_NAME);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let stamp = (meta.modified()?, meta.len());
        if self.playlist_stamp == Some(stamp) {
            return Ok(true);
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        self.playlist_stamp = Some(stamp);
        let listing = playlist::parse(&text);
        self.ended = listing.ended;
        let Some(oldest) = listing.entries.first().map(|e| e.sequence) else {
            return Ok(true);
        };
        // Segments that left the playlist at the old end were deleted.
        self.spans = self.spans.split_off(&oldest);
        let mut pdt_ms = self.last_end_pdt_ms;
        for e in &listing.entries {
            let explicit = e.program_date_time_ms;
            let start_pdt = explicit.or(pdt_ms);
            if !self.spans.contains_key(&e.sequence) {
                let start_ns = match self.spans.range(..e.sequence).next_back() {
                    Some((_, prev)) => prev.start_ns + prev.duration_ns,
                    None => self
                        .spans
                        .values()
                        .next()
                        .map_or(0, |first| first.start_ns.saturating_sub(e.duration_ns)),
                };
                let hole_ms = match (explicit, pdt_ms) {
                    (Some(start), Some(prev_end)) if e.discontinuity && start - prev_end > HOLE_TOLERANCE_MS => {
                        u64::try_from(start - prev_end).ok()
                    }
                    _ => None,
                };
                self.spans.insert(
                    e.sequence,
                    Span {
                        start_ns,
                        duration_ns: e.duration_ns,
                        hole_ms,
                        discontinuity: e.discontinuity,
                    },
                );
            }
            let dur_ms = i64::try_from(e.duration_ns / 1_000_000).unwrap_or(0);
            pdt_ms = start_pdt.map(|p| p + dur_ms);
        }
        self.last_end_pdt_ms = pdt_ms;
        Ok(true)
    }

    fn oldest(&self) -> Option<u64> {
        self.spans.keys().next().copied()
    }

    fn newest_listed(&self) -> Option<u64> {
        self.spans.keys().next_back().copied()
    }

    /// The segment being written, if its file exists.
    fn in_progress(&self) -> Option<(u64, u64)> {
        let seq = self.newest_listed().map_or(0, |s| s + 1);
        std::fs::symlink_metadata(self.dir.join(segment_file_name(seq))).ok()?;
        let start = self
            .spans
            .values()
            .next_back()
            .map_or(0, |s| s.start_ns + s.duration_ns);
        Some((seq, start))
    }

    /// Content time of the start of `sequence`, if known.
    fn start_of(&self, sequence: u64) -> Option<u64> {
        if let Some(s) = self.spans.get(&sequence) {
            return Some(s.start_ns);
        }
        self.in_progress()
            .filter(|&(s, _)| s == sequence)
            .map(|(_, start)| start)
    }

    /// The seekable window in content time: oldest start to newest end,
    /// the segment being written estimated from its size.
    pub fn window(&mut self) -> Option<(u64, u64)> {
        let _ = self.refresh();
        let start = self.spans.values().next()?.start_ns;
        let last = self.spans.values().next_back()?;
        let mut end = last.start_ns + last.duration_ns;
        if !self.ended
            && let Some((seq, _)) = self.in_progress()
        {
            end += self.estimate_ns(seq);
        }
        Some((start, end))
    }

    /// Bytes of segment `seq`'s file, open as `file`, that are its own
    /// content: a reused file holds older packets past what was written.
    /// The record is read before the size: once the writer has moved on
    /// from a reused file, it has already cut it to length.
    fn content_len(&self, file: &File, seq: u64) -> io::Result<u64> {
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
    fn estimate_ns(&self, seq: u64) -> u64 {
        let bytes = platform::open_read_only(&self.dir.join(segment_file_name(seq)))
            .and_then(|f| self.content_len(&f, seq))
            .unwrap_or(0);
        let rate = self.spans.iter().next_back().and_then(|(&s, span)| {
            let len = std::fs::metadata(self.dir.join(segment_file_name(s))).ok()?.len();
            (len > 0).then_some((span.duration_ns, len))
        });
        rate.map_or(0, |(ns, len)| {
            u64::try_from(u128::from(bytes) * u128::from(ns) / u128::from(len)).unwrap_or(0)
        })
    }

    /// The content time being read now.
    #[must_use]
    pub fn position(&self) -> Option<u64> {
        let cur = self.current.as_ref()?;
        let start = cur.start_ns;
        let fraction = match self.spans.get(&cur.sequence) {
            Some(span) => {
                let len = cur.file.metadata().map_or(0, |m| m.len()).max(1);
                u64::try_from(u128::from(cur.offset) * u128::from(span.duration_ns) / u128::from(len)).unwrap_or(0)
            }
            None => {
                // Being written: scale the estimate of the whole file.
                let len = self.content_len(&cur.file, cur.sequence).unwrap_or(0).max(1);
                let total = self.estimate_ns(cur.sequence);
                u64::try_from(u128::from(cur.offset) * u128::from(total) / u128::from(len)).unwrap_or(0)
            }
        };
        Some(start + fraction)
    }

    /// Positions the reader; returns the content time it landed on: the
    /// start of the segment (a random-access point) at or before `target`,
    /// which is first clamped into the window.
    pub fn seek(&mut self, target_ns: u64) -> io::Result<Option<u64>> {
        self.refresh()?;
        let in_progress = self.in_progress();
        let candidate = match in_progress {
            Some((seq, start)) if target_ns >= start => Some((seq, start)),
            _ => self
                .spans
                .iter()
                .rev()
                .find(|(_, s)| s.start_ns <= target_ns)
                .or_else(|| self.spans.iter().next())
                .map(|(&seq, s)| (seq, s.start_ns)),
        };
        let Some((seq, start)) = candidate.or(in_progress) else {
            return Ok(None);
        };
        self.current = None;
        self.next = Some(seq);
        self.discont = true;
        self.continue_at_ns = Some(start);
        Ok(Some(start))
    }

    /// Positions the reader at the live edge (minus `delay_ns`) or the oldest
    /// content (`delay_ns` does not apply there).
    pub fn start(&mut self, position: StartPosition, delay_ns: u64) -> io::Result<Option<u64>> {
        self.refresh()?;
        match position {
            StartPosition::Oldest => self.seek(0),
            StartPosition::Live => {
                let Some((_, end)) = self.window() else {
                    // Nothing listed yet: start at the first segment written.
                    return self.seek(0);
                };
                let newest = self.in_progress().map(|(_, start)| start).unwrap_or(end);
                self.seek(newest.min(end).saturating_sub(delay_ns))
            }
        }
    }

    /// Reads whole packets into `buf` (whose length must be at least one packet).
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<ReadOutcome> {
        let want = buf.len() / PACKET_SIZE * PACKET_SIZE;
        loop {
            if self.current.is_none() {
                match self.open_next()? {
                    Some(outcome) => return Ok(outcome),
                    None => continue,
                }
            }
            let Some(cur) = self.current.as_ref() else { continue };
            let path = self.dir.join(segment_file_name(cur.sequence));
            if !platform::is_still_named(&cur.file, &path) {
                self.lost_current()?;
                continue;
            }
            let len = self.content_len(&cur.file, cur.sequence)?;
            let Some(cur) = self.current.as_mut() else { continue };
            let avail = len.saturating_sub(cur.offset) / PACKET_SIZE as u64 * PACKET_SIZE as u64;
            let n = usize::try_from(avail).unwrap_or(usize::MAX).min(want);
            if n > 0 {
                cur.file.read_exact(&mut buf[..n])?;
                // Had the writer reused the file meanwhile, what was read
                // may be part new content: checked after the read, as the
                // writer only overwrites a file once it has renamed it.
                if !platform::is_still_named(&cur.file, &path) {
                    self.lost_current()?;
                    continue;
                }
                let first = cur.offset == 0;
                cur.offset += n as u64;
                let timestamp = first.then_some(cur.start_ns);
                return Ok(ReadOutcome::Data {
                    len: n,
                    timestamp,
                    discont: std::mem::take(&mut self.discont),
                });
            }
            // At the end of what is written. Is the segment complete?
            let seq = cur.sequence;
            let complete = |r: &Self| r.spans.contains_key(&seq) || r.dir.join(segment_file_name(seq + 1)).exists();
            if !complete(self) {
                self.refresh()?;
            }
            if complete(self) {
                // Data may have been appended between the size check and now.
                if self.current.as_ref().is_some_and(|c| {
                    self.content_len(&c.file, seq)
                        .is_ok_and(|len| len > c.offset + PACKET_SIZE as u64 - 1)
                }) {
                    continue;
                }
                // Where the next segment starts, should the playlist not
                // list this one yet: its start plus its estimated length.
                self.continue_at_ns = self.current.as_ref().map(|c| {
                    c.start_ns
                        + self
                            .spans
                            .get(&seq)
                            .map_or_else(|| self.estimate_ns(seq), |s| s.duration_ns)
                });
                self.current = None;
                self.next = Some(seq + 1);
                continue;
            }
            return Ok(if self.ended {
                ReadOutcome::Eos
            } else {
                ReadOutcome::Wait
            });
        }
    }

    /// The writer deleted (or reused) the segment being read: the reader is
    /// too slow. Goes on with the oldest segment still there.
    fn lost_current(&mut self) -> io::Result<()> {
        let Some(cur) = self.current.take() else {
            return Ok(());
        };
        let seq = cur.sequence;
        self.events.push(ReaderEvent::StaleFileDeleted { sequence: seq });
        self.refresh()?;
        self.next = Some(self.oldest().map_or(seq + 1, |o| o.max(seq + 1)));
        self.discont = true;
        Ok(())
    }

    /// Opens the next segment; `Some` is an outcome to return instead.
    fn open_next(&mut self) -> io::Result<Option<ReadOutcome>> {
        let seq = match self.next {
            Some(s) => s,
            None => match self.start(StartPosition::Oldest, 0)? {
                Some(_) => return Ok(None),
                None => {
                    return Ok(Some(if self.ended {
                        ReadOutcome::Eos
                    } else {
                        ReadOutcome::Wait
                    }));
                }
            },
        };
        let path = self.dir.join(segment_file_name(seq));
        match platform::open_read_only(&path) {
            Ok(file) => {
                if let Some(span) = self.spans.get(&seq).copied() {
                    if let Some(size_ms) = span.hole_ms {
                        self.events.push(ReaderEvent::TimeHole {
                            offset_ms: span.start_ns / 1_000_000,
                            size_ms,
                        });
                    }
                    if span.discontinuity {
                        self.discont = true;
                    }
                }
                if !self.ended && self.oldest() == Some(seq) && self.stale_reported != Some(seq) {
                    self.stale_reported = Some(seq);
                    self.events.push(ReaderEvent::ContentBecomingStale { sequence: seq });
                }
                let start_ns = self.start_of(seq).or(self.continue_at_ns).unwrap_or(0);
                self.current = Some(Open {
                    sequence: seq,
                    file,
                    offset: 0,
                    start_ns,
                });
                Ok(None)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.refresh()?;
                let oldest = self.oldest();
                if oldest.is_some_and(|o| seq < o) || self.spans.contains_key(&seq) {
                    // Deleted before we got to it: skip to the oldest content left.
                    self.events.push(ReaderEvent::StaleFileDeleted { sequence: seq });
                    let next = if self.spans.contains_key(&seq) {
                        seq + 1
                    } else {
                        oldest.unwrap_or(seq + 1)
                    };
                    self.next = Some(next.max(oldest.unwrap_or(0)));
                    self.discont = true;
                    return Ok(None);
                }
                if self.newest_listed().is_some_and(|n| seq > n + 1) {
                    // Past a gap in the numbering (a segment that could not be created).
                    self.next = Some(self.newest_listed().map_or(seq, |n| n + 1));
                    return Ok(None);
                }
                if self.dir.join(segment_file_name(seq + 1)).exists() {
                    self.next = Some(seq + 1);
                    self.discont = true;
                    return Ok(None);
                }
                Ok(Some(if self.ended {
                    ReadOutcome::Eos
                } else {
                    ReadOutcome::Wait
                }))
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::Ring;
    use crate::ring::tests::{SECOND, config, marked, ring_at, start};

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
                ReaderEvent::StaleFileDeleted { sequence } => Some(*sequence),
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
        reader.seek(u64::MAX).expect("seek to the live edge");
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
}
