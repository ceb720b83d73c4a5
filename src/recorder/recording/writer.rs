// SPDX-License-Identifier: MPL-2.0
//! One recording on disk: a content file (the ring's bytes from a keyframe,
//! then the live stream, cut at keyframes) or a reference directory (hard
//! links to whole segments and a VOD playlist), and its write failures.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{RecordingKind, RecordingPoint, RecordingSummary};
use crate::layout::SegmentNumber;
use crate::layout::index::Keyframe;
use crate::layout::playlist::{PlaylistHeader, render, target_duration_s};
use crate::layout::{PLAYLIST_NAME, RingTime, SegmentInfo, segment_file_name, segment_index_name};
use crate::platform::{self, DirHandle};
use crate::recorder::RecorderEvent;
use crate::recorder::health::{Probe, WriteHealth};
use crate::ring::WriteFailure;

mod history;

use history::KeyframeEntry;

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
