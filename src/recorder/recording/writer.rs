// SPDX-License-Identifier: MPL-2.0
//! One recording on disk: a content file (the ring's bytes from a keyframe,
//! then the live stream, cut at keyframes) or a reference directory (hard
//! links to whole segments and a VOD playlist), and its write failures.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::archived::RestoredSegment;
use super::{RecordingKind, RecordingPoint, RecordingSummary, StreamPosition, keyframe_point};
use crate::layout::SegmentNumber;
use crate::layout::index::Keyframe;
use crate::layout::playlist::{PlaylistHeader, render, target_duration_s};
use crate::layout::{PLAYLIST_NAME, RingTime, SegmentInfo, segment_file_name, segment_index_name};
use crate::platform::{self, DirHandle};
use crate::recorder::health::{Probe, WriteHealth};
use crate::recorder::{Host, RecorderEvent};
use crate::ring::{Ring, WriteFailure};

/// A ring segment in a content recording (see `Recording::segments`).
#[derive(Debug, Clone, Copy)]
struct SegmentInFile {
    sequence: SegmentNumber,
    /// Taken from the archive (read from the recording's archived
    /// directory), not from the ring.
    archived: bool,
    /// Its first byte in the file after its tables: the entry keyframe's
    /// offset (0 for a whole segment).
    first_offset: u64,
    /// Where the segment's byte 0 would be in the file (below zero when
    /// bytes before an entry keyframe were skipped).
    file_offset_of_byte_0: i128,
}

/// Where a content recording enters its first segment: the keyframe, and
/// the tables at the segment's head (`..head`) that go in front of it.
#[derive(Debug, Clone, Copy)]
pub(super) struct KeyframeEntry {
    head: u64,
    keyframe: Keyframe,
}

impl KeyframeEntry {
    /// Whether bytes between the tables and the keyframe are left out (not
    /// when it is the segment's first keyframe).
    pub(super) fn skips(&self) -> bool {
        self.keyframe.offset > self.head
    }
}

/// The keyframe at or before ring time `target` in segment `sequence`
/// (`len` bytes of it written), from its index; `None` without one.
pub(super) fn keyframe_entry(
    ring: &DirHandle,
    sequence: SegmentNumber,
    len: u64,
    target: RingTime,
) -> Option<KeyframeEntry> {
    let file = ring.open_read_only(&segment_index_name(sequence));
    let index = crate::layout::index::read_opened(file, len)?;
    let keyframe = *index.keyframes.iter().rev().find(|k| k.ring_time <= target)?;
    Some(KeyframeEntry {
        head: u64::from(index.start.size).min(keyframe.offset),
        keyframe,
    })
}

enum Target {
    Content {
        file: File,
        buf: Vec<u8>,
    },
    /// Linked segments with their ring time.
    Reference {
        linked: Vec<(RingTime, SegmentInfo)>,
    },
}

/// Where a recording is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Begins when the recorder's timeline reaches this position.
    Scheduled(u64),
    /// A reference recording started "now": begins with the next segment.
    WaitingForCut,
    /// Reaching back past the ring into its archive: begins once the
    /// archive tier has fetched the older segments.
    Restoring,
    Running,
}

/// One recording.
pub(super) struct Recording {
    id: u32,
    kind: RecordingKind,
    location: PathBuf,
    /// Where its content starts (known once it began).
    start: RecordingPoint,
    target: Target,
    bytes: u64,
    copied_segments: u64,
    /// (ring time, byte offset) of each segment start in a content file.
    boundaries: Vec<(RingTime, u64)>,
    /// Content: the ring segments in the file, for cuts at keyframes.
    segments: Vec<SegmentInFile>,
    /// Reference: where in the first segment the recording starts.
    start_offset_ns: Option<u64>,
    /// First ring sequence a reference recording has not linked yet.
    next_sequence: SegmentNumber,
    /// Stop once the segment being written completes (reference).
    stop_after_current: bool,
    error: Option<String>,
    /// Content: write-failure episodes, as for the ring itself.
    health: WriteHealth,
    /// Content: dropping after a failed write, until a segment start after
    /// the retry interval (so the file resumes at a random-access point).
    paused: bool,
    /// Content: bytes known to be in the file.
    written: u64,
    /// The directory the archive tier fetched this recording's older
    /// segments into (removed when the recording is finished).
    archived_dir: Option<(PathBuf, DirHandle)>,
    /// Segments taken from the archive.
    archived_segments: u64,
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

/// Content recordings write in blocks this large (an extra copy of the stream
/// already; smaller than the ring's so that failures and recoveries show soon).
const CONTENT_BLOCK: usize = 256 * 1024;

impl Recording {
    pub(super) fn id(&self) -> u32 {
        self.id
    }

    pub(super) fn kind(&self) -> RecordingKind {
        self.kind
    }

    /// Keeps `error` for the report (the first one only).
    pub(super) fn note_error(&mut self, error: String) {
        self.error.get_or_insert(error);
    }

    /// A reference recording ends once the segment being written completes.
    pub(super) fn stop_with_current_segment(&mut self) {
        self.stop_after_current = true;
    }

    pub(super) fn stops_with_current_segment(&self) -> bool {
        self.stop_after_current
    }

    /// It began at `point`, in ring segment `sequence`: the event to report.
    pub(super) fn started(&mut self, point: RecordingPoint, sequence: SegmentNumber) -> RecorderEvent {
        self.start = point;
        self.next_sequence = sequence;
        self.started_event()
    }

    /// Appends what the ring wrote to a content recording (a reference
    /// recording ignores it). Its write failures follow the write-failure
    /// contract with its id in the message; the event to report, if any.
    pub(super) fn tee(
        &mut self,
        data: &[u8],
        position_ns: u64,
        retry: Duration,
        now: Instant,
    ) -> Option<RecorderEvent> {
        if self.kind != RecordingKind::Content {
            return None;
        }
        match self.append(data) {
            Ok(true) => self
                .health
                .on_success(Probe::Write, now, position_ns)
                .map(RecorderEvent::WriteFailureClear),
            Ok(false) => None,
            Err(e) => {
                let failure = WriteFailure::new(self.location.clone(), e, false);
                let first = self.health.on_failure(&failure, now, retry);
                self.health.losing_from(position_ns);
                first.then(|| RecorderEvent::WriteFailure {
                    kind: failure.kind,
                    message: format!("recording {}: {failure}", self.id),
                    path: failure.path,
                })
            }
        }
    }

    /// The ring completed segment `info`, starting at ring time `start`:
    /// a reference recording links it (a failure is kept for its report).
    pub(super) fn segment_completed(&mut self, ring: &DirHandle, info: &SegmentInfo, start: RingTime) {
        if self.kind == RecordingKind::Reference
            && self.next_sequence <= info.sequence
            && self.error.is_none()
            && let Err(e) = self.link(ring, info, start)
        {
            self.error = Some(format!(
                "recording {}: cannot link segment {}: {e}",
                self.id, info.sequence
            ));
        }
    }

    /// Creates the recording's file or directory; never overwrites anything.
    pub(super) fn create(id: u32, kind: RecordingKind, location: &Path) -> io::Result<Self> {
        let target = match kind {
            RecordingKind::Content => Target::Content {
                file: platform::create_new(location)?,
                buf: Vec::with_capacity(CONTENT_BLOCK),
            },
            RecordingKind::Reference => {
                std::fs::create_dir(location)?;
                Target::Reference { linked: Vec::new() }
            }
        };
        Ok(Recording {
            id,
            kind,
            location: location.to_owned(),
            start: RecordingPoint::default(),
            target,
            bytes: 0,
            copied_segments: 0,
            boundaries: Vec::new(),
            segments: Vec::new(),
            start_offset_ns: None,
            next_sequence: SegmentNumber::FIRST,
            stop_after_current: false,
            error: None,
            health: WriteHealth::default(),
            paused: false,
            written: 0,
            archived_dir: None,
            archived_segments: 0,
        })
    }

    /// Segments fetched from the archive for this recording are in `dir`
    /// (see [`Self::begin`]).
    pub(super) fn take_archived_from(&mut self, dir: PathBuf) -> io::Result<()> {
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
    pub(super) fn begin(
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

    pub(super) fn started_event(&self) -> RecorderEvent {
        RecorderEvent::RecordingStarted {
            id: self.id,
            location: self.location.clone(),
            kind: self.kind,
            start: self.start,
        }
    }

    /// Removes what the recording created (it never began, or beginning
    /// failed): no partial file is left behind.
    pub(super) fn discard(&self) {
        let _ = match self.kind {
            RecordingKind::Content => std::fs::remove_file(&self.location),
            RecordingKind::Reference => std::fs::remove_dir_all(&self.location),
        };
        self.remove_archived_dir();
    }

    /// Removes the directory of segments fetched from the archive for it.
    fn remove_archived_dir(&self) {
        if let Some((dir, _)) = &self.archived_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// The report of a recording that never began (removed), with `error`.
    pub(super) fn abort(self, error: String) -> RecordingSummary {
        self.discard();
        RecordingSummary {
            id: self.id,
            location: self.location,
            kind: self.kind,
            start: RecordingPoint::default(),
            stop: RecordingPoint::default(),
            bytes: 0,
            copied_segments: 0,
            archived_segments: 0,
            error: Some(error),
        }
    }

    /// Content: ring segment `sequence` goes on in the file from here:
    /// whole, or from its tables and the `entry` keyframe.
    pub(super) fn note_segment(&mut self, sequence: SegmentNumber, archived: bool, entry: Option<KeyframeEntry>) {
        if self.kind == RecordingKind::Content && !self.paused {
            let skipped = entry.map_or(0, |e| e.keyframe.offset - e.head);
            self.segments.push(SegmentInFile {
                sequence,
                archived,
                first_offset: entry.map_or(0, |e| e.keyframe.offset),
                file_offset_of_byte_0: i128::from(self.bytes) - i128::from(skipped),
            });
        }
    }

    /// Content: where to cut the file so that it ends before the first
    /// keyframe at or after ring time `stop`, and that keyframe; from
    /// the indexes of the segments in the file (`None` when they are gone
    /// or index no such keyframe yet). A segment's first keyframe is cut
    /// before with its tables.
    pub(super) fn keyframe_cut(&self, ring: &DirHandle, stop: RingTime) -> Option<(u64, Keyframe)> {
        self.segments.iter().find_map(|seg| {
            let dir = match (&self.archived_dir, seg.archived) {
                (Some((_, archived)), true) => archived,
                _ => ring,
            };
            let file = dir.open_read_only(&segment_index_name(seg.sequence));
            let index = crate::layout::index::read_opened(file, u64::MAX)?;
            index
                .keyframes
                .iter()
                .enumerate()
                .filter(|(_, k)| k.offset >= seg.first_offset && k.ring_time >= stop)
                .find_map(|(n, k)| {
                    let at = if n == 0 && seg.file_offset_of_byte_0 >= 0 {
                        0
                    } else {
                        k.offset
                    };
                    let offset = u64::try_from(seg.file_offset_of_byte_0 + i128::from(at)).ok()?;
                    (offset > 0 && offset <= self.bytes).then_some((offset, *k))
                })
        })
    }

    /// Content: a ring segment starts here (at ring time `start`). A
    /// paused recording resumes here once its retry interval has passed.
    pub(super) fn mark_boundary(&mut self, start: RingTime, now: Instant) {
        if self.paused && self.health.retry_due(now) {
            self.paused = false;
        }
        if !self.paused {
            self.boundaries.push((start, self.bytes));
        }
    }

    /// Content: appends bytes the ring wrote. Returns whether bytes reached
    /// the file in this call. On error the unwritten bytes are dropped whole
    /// (the file is cut back to its last good length) and the recording
    /// pauses until the next segment start after the retry interval.
    pub(super) fn append(&mut self, data: &[u8]) -> io::Result<bool> {
        let Target::Content { file, buf } = &mut self.target else {
            return Ok(false);
        };
        if self.paused {
            self.health.drop_bytes(data.len() as u64);
            return Ok(false);
        }
        buf.extend_from_slice(data);
        self.bytes += data.len() as u64;
        if buf.len() < CONTENT_BLOCK {
            return Ok(false);
        }
        match file.write_all(buf) {
            Ok(()) => {
                self.written += buf.len() as u64;
                buf.clear();
                Ok(true)
            }
            Err(e) => {
                // Keep whole segments only: cut back to the last segment start
                // that reached the file, so the file never ends in a torn
                // frame and resumes cleanly at a random-access point.
                let keep = self
                    .boundaries
                    .iter()
                    .rev()
                    .map(|&(_, o)| o)
                    .find(|&o| o <= self.written)
                    .unwrap_or(0);
                let _ = file.set_len(keep);
                let _ = file.seek(SeekFrom::Start(keep));
                self.boundaries.retain(|&(_, o)| o < keep);
                self.health.drop_bytes(self.bytes - keep);
                self.bytes = keep;
                self.written = keep;
                buf.clear();
                self.paused = true;
                Err(e)
            }
        }
    }

    /// Content: copies bytes `range` of the ring's segment file `name`
    /// (history) into the recording. Only those: a reused segment file
    /// still holds old packets past what the open segment has written.
    pub(super) fn append_range(&mut self, ring: &DirHandle, name: &str, range: std::ops::Range<u64>) -> io::Result<()> {
        if range.is_empty() {
            return Ok(());
        }
        let mut file = ring.open_read_only(name)?;
        file.seek(SeekFrom::Start(range.start))?;
        let mut data = Vec::new();
        file.take(range.end - range.start).read_to_end(&mut data)?;
        self.append(&data).map(|_| ())
    }

    /// Reference: links (or, across filesystems, copies) a completed segment
    /// that starts at ring time `start`.
    pub(super) fn link(&mut self, ring: &DirHandle, info: &SegmentInfo, start: RingTime) -> io::Result<()> {
        let Target::Reference { linked } = &mut self.target else {
            return Ok(());
        };
        let name = segment_file_name(info.sequence);
        let to = self.location.join(&name);
        // Through the ring's directory handle: the ring's own file, whatever
        // its path names now.
        if let Err(e) = ring.link_out(&name, &to) {
            if e.kind() == io::ErrorKind::AlreadyExists {
                return Err(e);
            }
            // Another volume (EXDEV) or no link support: copy, and say so.
            let mut out = platform::create_new(&to)?;
            io::copy(&mut ring.open_read_only(&name)?, &mut out)?;
            self.copied_segments += 1;
        }
        // Its keyframe index too, so that the recording is played and
        // sought in it as in the ring (a recording without it plays from
        // segment starts).
        let index = segment_index_name(info.sequence);
        let _ = ring.link_out(&index, &self.location.join(&index));
        self.bytes += info.bytes;
        linked.push((start, info.clone()));
        self.next_sequence = info.sequence.next();
        Ok(())
    }

    /// Reference: finishes the recording stopped at ring time `stop_at` in
    /// a completed segment: the segments that start at or after it are
    /// dropped (the first one always stays), and the recording ends with
    /// the last one kept (`delay_ns`: the presentation delay to report).
    pub(super) fn finish_reference_before(mut self, stop_at: RingTime, delay_ns: u64) -> RecordingSummary {
        let mut stop = RecordingPoint::default();
        if let Target::Reference { linked } = &mut self.target {
            while linked.len() > 1 && linked.last().is_some_and(|(start, _)| *start >= stop_at) {
                if let Some((_, s)) = linked.pop() {
                    let _ = std::fs::remove_file(self.location.join(segment_index_name(s.sequence)));
                    let _ = std::fs::remove_file(self.location.join(segment_file_name(s.sequence)));
                    self.bytes -= s.bytes;
                }
            }
            if let Some((start, info)) = linked.last() {
                stop = RecordingPoint {
                    position: start.saturating_add(info.duration_ns).presented_after_ns(delay_ns),
                    date: Some(info.program_date_time.after(info.duration_ns)),
                };
            }
        }
        self.finish(stop, None)
    }

    /// Finishes the recording at `stop`: content is cut at file offset
    /// `cut` (a keyframe) if given; a reference recording writes its VOD
    /// playlist.
    pub(super) fn finish(mut self, stop: RecordingPoint, cut: Option<u64>) -> RecordingSummary {
        let result = match &mut self.target {
            Target::Content { file, buf } => {
                if self.health.is_failing() {
                    self.error
                        .get_or_insert_with(|| "writes were still failing when it stopped".into());
                }
                let mut r = file.write_all(buf);
                if let Some(offset) = cut
                    && r.is_ok()
                {
                    r = file.set_len(offset);
                    self.bytes = offset;
                }
                r.and_then(|()| file.sync_data())
            }
            Target::Reference { linked } => {
                let mut text = String::new();
                let target = linked
                    .iter()
                    .map(|(_, s)| target_duration_s(s.duration_ns))
                    .max()
                    .unwrap_or(1);
                let header = PlaylistHeader {
                    target_duration_s: target,
                    discontinuity_sequence: 0,
                    ended: true,
                    vod: true,
                    start_offset_ns: self.start_offset_ns,
                };
                render(&mut text, header, linked.iter().map(|(_, s)| s));
                platform::replace_atomically(&self.location, PLAYLIST_NAME, text.as_bytes(), true)
            }
        };
        if let Err(e) = result {
            self.error.get_or_insert(format!("{}: {e}", self.location.display()));
        }
        self.remove_archived_dir();
        RecordingSummary {
            id: self.id,
            location: self.location,
            kind: self.kind,
            start: self.start,
            stop,
            bytes: self.bytes,
            copied_segments: self.copied_segments,
            archived_segments: self.archived_segments,
            error: self.error,
        }
    }
}
