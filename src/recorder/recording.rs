//! Recordings cut out of the ring (SBE's `IStreamBufferRecordControl`).
//!
//! A *content* recording is a standalone MPEG-TS file: the ring's bytes from
//! a segment start (a random-access point with PAT and PMT in front) on, then
//! every byte the ring writes, until stopped. A *reference* recording is a
//! directory of hard links to whole ring segments plus a VOD playlist: nothing
//! is copied, and the ring deleting its own names does not touch the links.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::health::WriteHealth;
use crate::layout::playlist::{PlaylistHeader, render};
use crate::layout::{PLAYLIST_NAME, SegmentInfo, segment_file_name};
use crate::platform;

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
pub struct Recording {
    pub id: u32,
    pub kind: RecordingKind,
    pub location: PathBuf,
    pub start_ns: u64,
    target: Target,
    bytes: u64,
    copied_segments: u64,
    /// (content time, byte offset) of each segment start in a content file.
    boundaries: Vec<(u64, u64)>,
    /// First ring sequence a reference recording has not linked yet.
    pub next_sequence: u64,
    /// Stop once the segment being written completes (reference, stop "now").
    pub stop_after_current: bool,
    pub error: Option<String>,
    /// Content: write-failure episodes, as for the ring itself.
    pub health: WriteHealth,
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
    pub fn create(
        id: u32,
        kind: RecordingKind,
        location: &Path,
        start_ns: u64,
        first_sequence: u64,
    ) -> io::Result<Self> {
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
            next_sequence: first_sequence,
            stop_after_current: false,
            error: None,
            health: WriteHealth::default(),
            paused: false,
            written: 0,
        })
    }

    /// Content: a ring segment starts here (at content time `start_ns`). A
    /// paused recording resumes here once its retry interval has passed.
    pub fn mark_boundary(&mut self, start_ns: u64, now: Instant) {
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
    pub fn append(&mut self, data: &[u8]) -> io::Result<bool> {
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

    /// Content: copies the first `len` bytes of a ring segment (history)
    /// into the recording. Only those: a reused segment file still holds
    /// old packets past what the open segment has written.
    pub fn append_file(&mut self, path: &Path, len: u64) -> io::Result<()> {
        let mut data = Vec::new();
        platform::open_read_only(path)?.take(len).read_to_end(&mut data)?;
        self.append(&data).map(|_| ())
    }

    /// Reference: links (or, across filesystems, copies) a completed segment
    /// that started at content time `start_ns`.
    pub fn link(&mut self, ring_dir: &Path, info: &SegmentInfo, start_ns: u64) -> io::Result<()> {
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
        self.bytes += info.bytes;
        linked.push((start_ns, info.clone()));
        self.next_sequence = info.sequence + 1;
        Ok(())
    }

    /// Finishes the recording; content is cut back to the last segment start
    /// at or after `stop_ns` when that lies in the past.
    pub fn finish(mut self, stop_ns: u64, truncate_to: Option<u64>) -> RecordingSummary {
        let result = match &mut self.target {
            Target::Content { file, buf } => {
                if self.health.is_failing() {
                    self.error
                        .get_or_insert_with(|| "writes were still failing when it stopped".into());
                }
                let mut r = file.write_all(buf);
                if let Some(t) = truncate_to
                    && let Some(&(_, offset)) = self.boundaries.iter().find(|(start, _)| *start >= t)
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
