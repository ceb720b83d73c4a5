//! Recordings cut out of the ring (SBE's `IStreamBufferRecordControl`):
//! [`Recordings`], the set a recorder runs (start, stop, feed, link), and
//! [`Recording`], one of them.
//!
//! A *content* recording is a standalone MPEG-TS file: the ring's bytes from
//! a segment start (a random-access point with PAT and PMT in front) on, then
//! every byte the ring writes, until stopped. A *reference* recording is a
//! directory of hard links to whole ring segments plus a VOD playlist: nothing
//! is copied, and the ring deleting its own names does not touch the links.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::health::{Probe, WriteHealth};
use super::{Host, RecorderEvent};
use crate::layout::playlist::{PlaylistHeader, render};
use crate::layout::{PLAYLIST_NAME, SegmentInfo, segment_file_name, segment_index_name};
use crate::platform;
use crate::ring::{Ring, WriteFailure};

/// What a recording keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingKind {
    Content,
    Reference,
}

impl RecordingKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingKind::Content => "content",
            RecordingKind::Reference => "reference",
        }
    }
}

/// The final report of a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSummary {
    pub id: u32,
    pub location: PathBuf,
    pub kind: RecordingKind,
    pub start_ns: u64,
    pub stop_ns: u64,
    pub bytes: u64,
    /// Reference recordings: segments that had to be copied (no hard link).
    pub copied_segments: u64,
    pub error: Option<String>,
}

/// Where the recorder is in its stream, for starting and stopping recordings.
#[derive(Debug, Clone, Copy)]
pub struct StreamPosition {
    /// Timeline position now.
    pub now_ns: u64,
    /// Timeline position where the open segment started (if one is open).
    pub segment_start_ns: u64,
    /// Host time at the start of the current call.
    pub wall: Instant,
}

/// The running recordings of one recorder, fed from the ring's writes.
pub struct Recordings {
    active: Vec<ActiveRecording>,
    next_id: u32,
}

/// A running recording and whether it still waits for the next cut to begin.
struct ActiveRecording {
    recording: Recording,
    waiting_for_cut: bool,
}

impl Default for Recordings {
    fn default() -> Self {
        Recordings {
            active: Vec::new(),
            next_id: 1,
        }
    }
}

impl Recordings {
    /// Ids of the running recordings.
    #[must_use]
    pub fn ids(&self) -> Vec<u32> {
        self.active.iter().map(|r| r.recording.id).collect()
    }

    /// Starts a recording at `location`. A content recording starts at the
    /// keyframe at or before now less `start_offset_ns` (reaching back into
    /// the ring, clamped to the oldest content), from the keyframe index,
    /// with the segment's PAT and PMT in front; a reference recording at the
    /// segment start at or before it, or with 0 at the next segment.
    /// Returns the id.
    pub fn start(
        &mut self,
        ring: &mut Ring,
        at: StreamPosition,
        location: &Path,
        kind: RecordingKind,
        start_offset_ns: i64,
        host: &mut dyn Host,
    ) -> Result<u32, String> {
        let id = self.next_id;
        let now = at.now_ns;
        // Start times of the completed segments, oldest first, counted back
        // from the start of the segment being written.
        let mut t = if ring.is_segment_open() {
            at.segment_start_ns
        } else {
            now
        };
        let mut history: Vec<(SegmentInfo, u64)> = ring
            .segments()
            .rev()
            .map(|s| {
                t = t.saturating_sub(s.duration_ns);
                (s.clone(), t)
            })
            .collect();
        history.reverse();
        // A content recording starts at a keyframe at or before its start,
        // "now" included: it never waits for the next segment. A reference
        // recording keeps whole segments: "now" is the next one.
        let back = start_offset_ns < 0 || start_offset_ns == 0 && kind == RecordingKind::Content;
        let target = now.saturating_sub(start_offset_ns.unsigned_abs());
        let in_open = back && ring.is_segment_open() && target >= at.segment_start_ns;
        let from = if back && !in_open {
            history.iter().rposition(|(_, start)| *start <= target).unwrap_or(0)
        } else {
            history.len()
        };
        let current_from = ring.is_segment_open() && back;
        let segment_start_ns = history
            .get(from)
            .map_or(if current_from { at.segment_start_ns } else { now }, |(_, s)| *s);
        let first_sequence = history
            .get(from)
            .map(|(s, _)| s.sequence)
            .or(ring.current_sequence().filter(|_| back));
        let first_sequence = first_sequence.unwrap_or_else(|| ring.current_sequence().map_or(0, |s| s + 1));
        // Where in the first segment a content recording starts: the
        // keyframe at or before the target, from the segment's index.
        let dir = ring.dir().to_owned();
        if back {
            let _ = ring.flush();
        }
        let first_len = history.get(from).map_or(ring.flushed_bytes(), |(info, _)| info.bytes);
        let entry = (kind == RecordingKind::Content && back)
            .then(|| keyframe_entry(&dir, first_sequence, first_len, target.saturating_sub(segment_start_ns)))
            .flatten();
        // A reference recording keeps whole segments; its playlist says
        // where in the first one it starts (EXT-X-START), and so does its
        // start-time.
        let reference_offset = (kind == RecordingKind::Reference && back)
            .then(|| target.saturating_sub(segment_start_ns))
            .filter(|&ns| ns > 0);
        let start_ns = segment_start_ns + entry.map_or(0, |e| e.since_start_ns) + reference_offset.unwrap_or(0);
        let mut recording = Recording::create(id, kind, location, start_ns, first_sequence)
            .map_err(|e| format!("cannot create '{}': {e}", location.display()))?;
        recording.start_offset_ns = reference_offset;
        if back {
            match kind {
                RecordingKind::Content => {
                    // Everything already written, then the live stream; the
                    // first segment from its tables and the keyframe.
                    let mut skip = entry;
                    let segments = history[from..]
                        .iter()
                        .map(|(info, start)| (info.sequence, info.bytes, *start))
                        .chain(
                            ring.current_sequence()
                                .map(|seq| (seq, ring.flushed_bytes(), at.segment_start_ns)),
                        );
                    for (sequence, bytes, start) in segments {
                        let path = dir.join(segment_file_name(sequence));
                        match skip.take() {
                            Some(e) => {
                                recording.mark_boundary(start_ns, at.wall);
                                recording.note_segment(sequence, start, Some(e));
                                recording.append_range(&path, 0..e.head).map_err(|e| e.to_string())?;
                                recording
                                    .append_range(&path, e.offset..bytes)
                                    .map_err(|e| e.to_string())?;
                            }
                            None => {
                                recording.mark_boundary(start, at.wall);
                                recording.note_segment(sequence, start, None);
                                recording.append_range(&path, 0..bytes).map_err(|e| e.to_string())?;
                            }
                        }
                    }
                }
                RecordingKind::Reference => {
                    for (info, start) in &history[from..] {
                        recording.link(&dir, info, *start).map_err(|e| e.to_string())?;
                    }
                }
            }
        }
        self.next_id += 1;
        host.event(RecorderEvent::RecordingStarted {
            id,
            location: location.to_owned(),
            kind,
            start_ns,
        });
        self.active.push(ActiveRecording {
            recording,
            waiting_for_cut: !back,
        });
        Ok(id)
    }

    /// Stops recording `id`: now (0), or in the past (negative offset: the
    /// recording ends at the first segment start at or after that point).
    /// A reference recording stopped now ends when the segment being written
    /// completes (`segment_open`), so that it can be linked whole. Returns
    /// false for an unknown id.
    pub fn stop(
        &mut self,
        id: u32,
        stop_offset_ns: i64,
        now_ns: u64,
        segment_open: bool,
        ring_dir: &Path,
        host: &mut dyn Host,
    ) -> bool {
        let Some(i) = self.active.iter().position(|r| r.recording.id == id) else {
            return false;
        };
        let active = &mut self.active[i];
        if stop_offset_ns >= 0 && active.recording.kind == RecordingKind::Reference && segment_open {
            active.recording.stop_after_current = true;
            return true;
        }
        let truncate = (stop_offset_ns < 0).then(|| now_ns.saturating_sub(stop_offset_ns.unsigned_abs()));
        let active = self.active.remove(i);
        // Content stopped in the past ends before the first keyframe at or
        // after the stop, when the segments' indexes say where that is.
        let cut = truncate.and_then(|t| active.recording.keyframe_cut(ring_dir, t));
        let stop_ns = cut.map_or(truncate.unwrap_or(now_ns), |(_, time)| time);
        host.event(RecorderEvent::RecordingStopped(
            active.recording.finish(stop_ns, truncate, cut),
        ));
        true
    }

    /// A new ring segment starts at timeline position `start_ns`: recordings
    /// waiting for a cut begin here, content files mark a boundary.
    pub fn segment_started(&mut self, start_ns: u64, sequence: u64, wall: Instant) {
        for active in &mut self.active {
            active.waiting_for_cut = false;
            active.recording.mark_boundary(start_ns, wall);
            active.recording.note_segment(sequence, start_ns, None);
        }
    }

    /// Gives content recordings what the ring wrote. A recording's write
    /// failures follow the write-failure contract (one failure, one clear,
    /// drop and retry at the next segment start after the retry interval)
    /// with its id in the message, and never disturb the ring.
    pub fn tee(&mut self, data: &[u8], position_ns: u64, retry: Duration, host: &mut dyn Host) {
        for active in self.active.iter_mut().filter(|a| !a.waiting_for_cut) {
            let rec = &mut active.recording;
            if rec.kind != RecordingKind::Content {
                continue;
            }
            match rec.append(data) {
                Ok(true) => {
                    if let Some(summary) = rec.health.on_success(Probe::Write, host.now(), position_ns) {
                        host.event(RecorderEvent::WriteFailureClear(summary));
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    let failure = WriteFailure::new(rec.location.clone(), e, false);
                    if rec.health.on_failure(&failure, host.now(), retry) {
                        host.event(RecorderEvent::WriteFailure {
                            kind: failure.kind,
                            message: format!("recording {}: {failure}", rec.id),
                            path: failure.path,
                        });
                    }
                    rec.health.losing_from(position_ns);
                }
            }
        }
    }

    /// Ring segment `info` of `ring_dir`, which started at `start_ns`, was
    /// completed: reference recordings link it; those stopping with it end.
    pub fn segment_completed(&mut self, ring_dir: &Path, info: &SegmentInfo, start_ns: u64, host: &mut dyn Host) {
        let mut i = 0;
        while i < self.active.len() {
            let rec = &mut self.active[i].recording;
            if rec.kind == RecordingKind::Reference
                && rec.next_sequence <= info.sequence
                && rec.error.is_none()
                && let Err(e) = rec.link(ring_dir, info, start_ns)
            {
                rec.error = Some(format!(
                    "recording {}: cannot link segment {}: {e}",
                    rec.id, info.sequence
                ));
            }
            if rec.stop_after_current {
                let active = self.active.remove(i);
                let end = start_ns + info.duration_ns;
                host.event(RecorderEvent::RecordingStopped(
                    active.recording.finish(end, None, None),
                ));
            } else {
                i += 1;
            }
        }
    }

    /// The stream ended at `end_ns`: every recording stops.
    pub fn finish_all(&mut self, end_ns: u64, host: &mut dyn Host) {
        for active in std::mem::take(&mut self.active) {
            host.event(RecorderEvent::RecordingStopped(
                active.recording.finish(end_ns, None, None),
            ));
        }
    }
}

/// A ring segment in a content recording (see `Recording::segments`).
#[derive(Debug, Clone, Copy)]
struct SegmentInFile {
    sequence: u64,
    /// Timeline position of its start.
    start_ns: u64,
    /// Its first byte in the file after its tables: the entry keyframe's
    /// offset (0 for a whole segment).
    first_offset: u64,
    /// Where the segment's byte 0 would be in the file (below zero when
    /// bytes before an entry keyframe were skipped).
    file_offset_of_byte_0: i128,
}

/// Where a content recording enters its first segment: after the tables
/// at its head (`..head`), at the keyframe at `offset`, `since_start_ns`
/// into the segment.
#[derive(Debug, Clone, Copy)]
struct KeyframeEntry {
    head: u64,
    offset: u64,
    since_start_ns: u64,
}

/// The keyframe at or before `into_ns` of segment `sequence` (`len` bytes
/// of it written), from its index; `None` without one, or when it is the
/// segment's first (the whole segment is then taken).
fn keyframe_entry(dir: &Path, sequence: u64, len: u64, into_ns: u64) -> Option<KeyframeEntry> {
    let file = platform::open_read_only(&dir.join(segment_index_name(sequence)));
    let index = crate::layout::index::read_opened(file, len)?;
    let target = index.start.ring_time_ns.saturating_add(into_ns);
    let keyframe = index.keyframes.iter().rev().find(|k| k.ring_time_ns <= target)?;
    let head = u64::from(index.start.size).min(keyframe.offset);
    (keyframe.offset > head).then(|| KeyframeEntry {
        head,
        offset: keyframe.offset,
        since_start_ns: keyframe.ring_time_ns - index.start.ring_time_ns,
    })
}

enum Target {
    Content {
        file: File,
        buf: Vec<u8>,
    },
    /// Linked segments with their content start time.
    Reference {
        linked: Vec<(u64, SegmentInfo)>,
    },
}

/// One running recording.
struct Recording {
    id: u32,
    kind: RecordingKind,
    location: PathBuf,
    start_ns: u64,
    target: Target,
    bytes: u64,
    copied_segments: u64,
    /// (content time, byte offset) of each segment start in a content file.
    boundaries: Vec<(u64, u64)>,
    /// Content: the ring segments in the file, for cuts at keyframes.
    segments: Vec<SegmentInFile>,
    /// Reference: where in the first segment the recording starts.
    start_offset_ns: Option<u64>,
    /// First ring sequence a reference recording has not linked yet.
    next_sequence: u64,
    /// Stop once the segment being written completes (reference, stop "now").
    stop_after_current: bool,
    error: Option<String>,
    /// Content: write-failure episodes, as for the ring itself.
    health: WriteHealth,
    /// Content: dropping after a failed write, until a segment start after
    /// the retry interval (so the file resumes at a random-access point).
    paused: bool,
    /// Content: bytes known to be in the file.
    written: u64,
}

/// Content recordings write in blocks this large (an extra copy of the stream
/// already; smaller than the ring's so that failures and recoveries show soon).
const CONTENT_BLOCK: usize = 256 * 1024;

impl Recording {
    /// Creates the recording's file or directory; never overwrites anything.
    fn create(id: u32, kind: RecordingKind, location: &Path, start_ns: u64, first_sequence: u64) -> io::Result<Self> {
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
            start_ns,
            target,
            bytes: 0,
            copied_segments: 0,
            boundaries: Vec::new(),
            segments: Vec::new(),
            start_offset_ns: None,
            next_sequence: first_sequence,
            stop_after_current: false,
            error: None,
            health: WriteHealth::default(),
            paused: false,
            written: 0,
        })
    }

    /// Content: ring segment `sequence`, starting at `start_ns`, goes on in
    /// the file from here: whole, or from its tables and the `entry`
    /// keyframe.
    fn note_segment(&mut self, sequence: u64, start_ns: u64, entry: Option<KeyframeEntry>) {
        if self.kind == RecordingKind::Content && !self.paused {
            let skipped = entry.map_or(0, |e| e.offset - e.head);
            self.segments.push(SegmentInFile {
                sequence,
                start_ns,
                first_offset: entry.map_or(0, |e| e.offset),
                file_offset_of_byte_0: i128::from(self.bytes) - i128::from(skipped),
            });
        }
    }

    /// Content: where to cut the file so that it ends before the first
    /// keyframe at or after timeline position `stop_ns`, and that keyframe's
    /// position; from the indexes of the segments in the file (`None` when
    /// they are gone or say nothing).
    fn keyframe_cut(&self, ring_dir: &Path, stop_ns: u64) -> Option<(u64, u64)> {
        self.segments.iter().find_map(|seg| {
            let file = platform::open_read_only(&ring_dir.join(segment_index_name(seg.sequence)));
            let index = crate::layout::index::read_opened(file, u64::MAX)?;
            index
                .keyframes
                .iter()
                .filter(|k| k.offset >= seg.first_offset)
                .find_map(|k| {
                    let at = seg.start_ns + k.ring_time_ns.checked_sub(index.start.ring_time_ns)?;
                    let offset = u64::try_from(seg.file_offset_of_byte_0 + i128::from(k.offset)).ok()?;
                    (at >= stop_ns && offset > 0 && offset <= self.bytes).then_some((offset, at))
                })
        })
    }

    /// Content: a ring segment starts here (at content time `start_ns`). A
    /// paused recording resumes here once its retry interval has passed.
    fn mark_boundary(&mut self, start_ns: u64, now: Instant) {
        if self.paused && self.health.retry_due(now) {
            self.paused = false;
        }
        if !self.paused {
            self.boundaries.push((start_ns, self.bytes));
        }
    }

    /// Content: appends bytes the ring wrote. Returns whether bytes reached
    /// the file in this call. On error the unwritten bytes are dropped whole
    /// (the file is cut back to its last good length) and the recording
    /// pauses until the next segment start after the retry interval.
    fn append(&mut self, data: &[u8]) -> io::Result<bool> {
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

    /// Content: copies bytes `range` of a ring segment (history) into the
    /// recording. Only those: a reused segment file still holds old packets
    /// past what the open segment has written.
    fn append_range(&mut self, path: &Path, range: std::ops::Range<u64>) -> io::Result<()> {
        if range.is_empty() {
            return Ok(());
        }
        let mut file = platform::open_read_only(path)?;
        file.seek(SeekFrom::Start(range.start))?;
        let mut data = Vec::new();
        file.take(range.end - range.start).read_to_end(&mut data)?;
        self.append(&data).map(|_| ())
    }

    /// Reference: links (or, across filesystems, copies) a completed segment
    /// that started at content time `start_ns`.
    fn link(&mut self, ring_dir: &Path, info: &SegmentInfo, start_ns: u64) -> io::Result<()> {
        let Target::Reference { linked } = &mut self.target else {
            return Ok(());
        };
        let name = segment_file_name(info.sequence);
        let (from, to) = (ring_dir.join(&name), self.location.join(&name));
        if let Err(e) = std::fs::hard_link(&from, &to) {
            if e.kind() == io::ErrorKind::AlreadyExists {
                return Err(e);
            }
            // Another volume (EXDEV) or no link support: copy, and say so.
            let mut out = platform::create_new(&to)?;
            out.write_all(&std::fs::read(&from)?)?;
            self.copied_segments += 1;
        }
        // Its keyframe index too, so that the recording is played and
        // sought in it as in the ring (a recording without it plays from
        // segment starts).
        let index = segment_index_name(info.sequence);
        let _ = std::fs::hard_link(ring_dir.join(&index), self.location.join(&index));
        self.bytes += info.bytes;
        linked.push((start_ns, info.clone()));
        self.next_sequence = info.sequence + 1;
        Ok(())
    }

    /// Finishes the recording. Stopped in the past (`truncate_to`), content
    /// is cut at `keyframe_cut` (file offset) if there is one, else at the
    /// first segment start at or after the stop; a reference recording
    /// drops the segments that start after it.
    fn finish(mut self, stop_ns: u64, truncate_to: Option<u64>, keyframe_cut: Option<(u64, u64)>) -> RecordingSummary {
        let result = match &mut self.target {
            Target::Content { file, buf } => {
                if self.health.is_failing() {
                    self.error
                        .get_or_insert_with(|| "writes were still failing when it stopped".into());
                }
                let mut r = file.write_all(buf);
                let cut = keyframe_cut.map(|(offset, _)| offset).or_else(|| {
                    let t = truncate_to?;
                    self.boundaries
                        .iter()
                        .find(|(start, _)| *start >= t)
                        .map(|&(_, offset)| offset)
                });
                if let Some(offset) = cut
                    && r.is_ok()
                {
                    r = file.set_len(offset);
                    self.bytes = offset;
                }
                r.and_then(|()| file.sync_data())
            }
            Target::Reference { linked } => {
                // Stopping in the past: drop the segments that start after
                // the stop point (the first one always stays).
                if let Some(t) = truncate_to {
                    while linked.len() > 1 && linked.last().is_some_and(|(start, _)| *start >= t) {
                        if let Some((_, s)) = linked.pop() {
                            let _ = std::fs::remove_file(self.location.join(segment_index_name(s.sequence)));
                            let _ = std::fs::remove_file(self.location.join(segment_file_name(s.sequence)));
                            self.bytes -= s.bytes;
                        }
                    }
                }
                let mut text = String::new();
                let target = linked
                    .iter()
                    .map(|(_, s)| s.duration_ns.div_ceil(1_000_000_000))
                    .max()
                    .unwrap_or(1)
                    .max(1);
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
        RecordingSummary {
            id: self.id,
            location: self.location,
            kind: self.kind,
            start_ns: self.start_ns,
            stop_ns,
            bytes: self.bytes,
            copied_segments: self.copied_segments,
            error: self.error,
        }
    }
}
