// SPDX-License-Identifier: MPL-2.0
//! What a recording takes of the past when it begins: the segments older
//! than now, the archive's (fetched for it) then the ring's, copied from
//! the keyframe at or before its start (content) or linked whole
//! (reference).

use std::io;
use std::path::PathBuf;

use super::{Phase, Recording};
use crate::layout::index::Keyframe;
use crate::layout::{RingTime, SegmentInfo, SegmentNumber, segment_file_name, segment_index_name};
use crate::platform::DirHandle;
use crate::recorder::Host;
use crate::recorder::recording::archived::RestoredSegment;
use crate::recorder::recording::{RecordingKind, RecordingPoint, StreamPosition, keyframe_point};
use crate::ring::Ring;

/// Where a content recording enters its first segment: the keyframe, and
/// the tables at the segment's head (`..head`) that go in front of it.
#[derive(Debug, Clone, Copy)]
pub(in crate::recorder::recording) struct KeyframeEntry {
    pub(super) head: u64,
    pub(super) keyframe: Keyframe,
}

impl KeyframeEntry {
    /// Whether bytes between the tables and the keyframe are left out (not
    /// when it is the segment's first keyframe).
    pub(in crate::recorder::recording) fn skips(&self) -> bool {
        self.keyframe.offset > self.head
    }
}

/// The keyframe at or before ring time `target` in segment `sequence`
/// (`len` bytes of it written), from its index; `None` without one.
pub(in crate::recorder::recording) fn keyframe_entry(
    ring: &DirHandle,
    sequence: SegmentNumber,
    len: u64,
    target: RingTime,
) -> Option<KeyframeEntry> {
    let file = ring.open_read_only(&segment_index_name(sequence));
    let index = crate::layout::index::read_opened(file, len)?;
    let keyframe = *index.keyframes.iter().rev().find(|k| k.ring_time <= target)?;
    Some(KeyframeEntry {
        head: crate::layout::index::head_before(&index.start, &keyframe),
        keyframe,
    })
}

/// A segment a recording begins with: the ring's, or one fetched from the
/// archive.
#[derive(Debug, Clone, Copy)]
struct HistorySegment {
    archived: bool,
    sequence: SegmentNumber,
    /// Bytes of it to take (the open segment: what is flushed).
    bytes: u64,
    start: RingTime,
}

impl Recording {
    /// Segments fetched from the archive for this recording are in `dir`
    /// (see [`Self::begin`]).
    pub(in crate::recorder::recording) fn take_archived_from(&mut self, dir: PathBuf) -> io::Result<()> {
        if self.archived_dir.is_none() {
            let handle = DirHandle::open(&dir)?;
            self.archived_dir = Some((dir, handle));
        }
        Ok(())
    }

    /// Begins the recording at ring time `target` (`None`: a reference
    /// recording started now, which begins with the next segment): takes
    /// what the ring holds from there, after `archived` (segments older
    /// than the ring's, fetched from the archive into the directory given
    /// to [`Self::take_archived_from`]), and reports the start. Returns the
    /// phase it is in.
    pub(in crate::recorder::recording) fn begin(
        &mut self,
        ring: &mut Ring,
        at: StreamPosition,
        target: Option<RingTime>,
        archived: &[RestoredSegment],
        host: &mut dyn Host,
    ) -> Result<Phase, String> {
        let Some(target) = target else {
            self.next_sequence = ring
                .current_sequence()
                .map_or(SegmentNumber::FIRST, SegmentNumber::next);
            return Ok(Phase::WaitingForCut);
        };
        let history: Vec<(SegmentInfo, RingTime)> = ring
            .segments_in_time()
            .map(|(info, start)| (info.clone(), start))
            .collect();
        let open_start = ring.is_segment_open().then(|| ring.ring_time_end());
        // Only what is older than the ring's oldest segment, in order.
        let oldest_in_ring = ring.oldest_segment().map(|(sequence, ..)| sequence);
        let archived: Vec<&RestoredSegment> = archived
            .iter()
            .filter(|a| self.archived_dir.is_some() && oldest_in_ring.is_none_or(|s| a.info.sequence < s))
            .collect();
        let from = if !archived.is_empty() {
            0
        } else if open_start.is_some_and(|s| target >= s) {
            history.len()
        } else {
            history.iter().rposition(|(_, start)| *start <= target).unwrap_or(0)
        };
        let _ = ring.flush();
        // The segments from the archive, then the ring's from `from` on, the
        // open one last.
        let segments: Vec<HistorySegment> = archived
            .iter()
            .map(|a| HistorySegment {
                archived: true,
                sequence: a.info.sequence,
                bytes: a.info.bytes,
                start: a.start,
            })
            .chain(history[from..].iter().map(|(info, start)| HistorySegment {
                archived: false,
                sequence: info.sequence,
                bytes: info.bytes,
                start: *start,
            }))
            .chain(
                ring.current_sequence()
                    .zip(open_start)
                    .map(|(sequence, start)| HistorySegment {
                        archived: false,
                        sequence,
                        bytes: ring.flushed_bytes(),
                        start,
                    }),
            )
            .collect();
        let first_start = segments.first().map_or(at.ring_time, |s| s.start);
        self.next_sequence = segments.first().map_or_else(
            || {
                ring.current_sequence()
                    .map_or(SegmentNumber::FIRST, SegmentNumber::next)
            },
            |s| s.sequence,
        );
        let archived_dir = self.archived_dir.take();
        let result = self.take_history(
            ring,
            at,
            target,
            &segments,
            &history[from..],
            &archived,
            archived_dir.as_ref().map(|(_, d)| d),
        );
        self.archived_dir = archived_dir;
        result?;
        if self.kind == RecordingKind::Reference {
            let target = target.max(first_start);
            self.start_offset_ns = Some(target.saturating_since(first_start)).filter(|&ns| ns > 0);
            // Before the ring's oldest segment, the date is the archived
            // segment's that holds the start.
            let in_ring = ring.oldest_segment().is_some_and(|(_, start, _)| start <= target);
            self.start = match archived.iter().rev().find(|a| a.start <= target) {
                Some(a) if !in_ring => RecordingPoint {
                    position: target.presented_after_ns(at.delay_ns),
                    date: Some(a.info.program_date_time.after(target.saturating_since(a.start))),
                },
                _ => at.point(ring, target),
            };
        }
        host.event(self.started_event());
        Ok(Phase::Running)
    }

    /// Copies (content) or links (reference) the segments a recording
    /// begins with: `segments`, of which `archived` came from the archive
    /// (read through `archived_dir`) and `ring` are the ring's completed ones.
    #[allow(clippy::too_many_arguments)]
    fn take_history(
        &mut self,
        ring: &Ring,
        at: StreamPosition,
        target: RingTime,
        segments: &[HistorySegment],
        completed: &[(SegmentInfo, RingTime)],
        archived: &[&RestoredSegment],
        archived_dir: Option<&DirHandle>,
    ) -> Result<(), String> {
        let dir_of = |s: &HistorySegment| match (s.archived, archived_dir) {
            (true, Some(d)) => d,
            _ => ring.dir_handle(),
        };
        match self.kind {
            RecordingKind::Content => {
                let entry = segments
                    .first()
                    .and_then(|s| keyframe_entry(dir_of(s), s.sequence, s.bytes, target));
                let first_start = segments.first().map_or(at.ring_time, |s| s.start);
                self.start = entry.map_or_else(|| at.point(ring, first_start), |e| keyframe_point(&e.keyframe));
                let mut skip = entry.filter(KeyframeEntry::skips);
                for s in segments {
                    let name = segment_file_name(s.sequence);
                    let dir = dir_of(s);
                    self.mark_boundary(s.start, at.wall);
                    let entry = skip.take();
                    self.note_segment(s.sequence, s.archived, entry);
                    match entry {
                        Some(e) => {
                            self.append_range(dir, &name, 0..e.head).map_err(|e| e.to_string())?;
                            self.append_range(dir, &name, e.keyframe.offset..s.bytes)
                                .map_err(|e| e.to_string())?;
                        }
                        None => self.append_range(dir, &name, 0..s.bytes).map_err(|e| e.to_string())?,
                    }
                    if s.archived {
                        self.archived_segments += 1;
                    }
                }
            }
            RecordingKind::Reference => {
                // Whole segments; the playlist says where in the first one
                // the recording starts (EXT-X-START), and so does the report.
                if let Some(dir) = archived_dir {
                    for a in archived {
                        self.link(dir, &a.info, a.start).map_err(|e| e.to_string())?;
                        self.archived_segments += 1;
                    }
                }
                for (info, start) in completed {
                    self.link(ring.dir_handle(), info, *start).map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    }
}
