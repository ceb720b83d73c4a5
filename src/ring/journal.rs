// SPDX-License-Identifier: MPL-2.0
//! The ring's own record of its completed segments, so a restart can adopt
//! the ring with exact durations and dates even when the playlist lists only
//! the newest entries (`playlist-length`).
//!
//! One line is appended per completed segment: O(1) per rotation. Lines of
//! evicted segments stay until the journal is rewritten, which happens when
//! dead lines outnumber live ones, so the amortised cost stays O(1) too.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};

use crate::layout::journal::{HEADER, JournalContents, format_line, parse};
use crate::layout::{JOURNAL_MAX_BYTES, JOURNAL_NAME, SegmentInfo};
use crate::platform::{self, DirHandle};

/// Reads the journal of the ring in `dir` (see [`crate::layout::journal`]):
/// a missing one is empty; one that is not a regular file, or is larger
/// than [`JOURNAL_MAX_BYTES`], is an error.
pub fn read(dir: &DirHandle) -> io::Result<JournalContents> {
    match dir.open_read_only(JOURNAL_NAME) {
        Ok(file) => Ok(parse(&platform::read_to_end_bounded(file, JOURNAL_MAX_BYTES)?)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(JournalContents::default()),
        Err(e) => Err(e),
    }
}

/// An open journal, positioned for appending.
#[derive(Debug)]
pub struct Journal {
    file: File,
    lines: usize,
    /// An append was lost (or the ring changed under it): the file is to
    /// be rewritten whole at the next chance.
    stale: bool,
}

impl Journal {
    /// Replaces the journal with exactly `entries` and opens it for appending.
    pub fn rewrite<'a>(dir: &DirHandle, entries: impl Iterator<Item = &'a SegmentInfo>) -> io::Result<Journal> {
        let mut text = String::from(HEADER);
        let mut lines = 0;
        for e in entries {
            text.push_str(&format_line(e));
            lines += 1;
        }
        dir.replace_atomically(JOURNAL_NAME, text.as_bytes(), false)?;
        let mut file = dir.open_existing(JOURNAL_NAME)?;
        file.seek(SeekFrom::End(0))?;
        Ok(Journal {
            file,
            lines,
            stale: false,
        })
    }

    /// Opens the journal in `dir` as it is (creating it empty if missing),
    /// for appending.
    pub fn open_existing(dir: &DirHandle) -> io::Result<Journal> {
        let mut file = dir.open_or_create(JOURNAL_NAME)?;
        file.seek(SeekFrom::End(0))?;
        Ok(Journal {
            file,
            lines: read(dir).map_or(0, |c| c.segments.len() + c.rejected_lines as usize),
            stale: false,
        })
    }

    /// Records a completed segment.
    pub fn append(&mut self, info: &SegmentInfo) -> io::Result<()> {
        self.file.write_all(format_line(info).as_bytes())?;
        self.lines += 1;
        Ok(())
    }

    /// Records a completed segment, or, if that fails (or an earlier
    /// append was lost), marks the journal to be rewritten whole: it is
    /// metadata, and losing a line loses no media.
    pub fn record(&mut self, info: &SegmentInfo) {
        if self.stale || self.append(info).is_err() {
            self.stale = true;
        }
    }

    /// The journal no longer matches the ring: rewrite it at the next chance.
    pub fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// If stale, rewrites the journal in `dir` with exactly `entries`; an
    /// error leaves it stale, to be tried again.
    pub fn refresh<'a>(&mut self, dir: &DirHandle, entries: impl Iterator<Item = &'a SegmentInfo>) -> io::Result<()> {
        if self.stale {
            *self = Journal::rewrite(dir, entries)?;
        }
        Ok(())
    }

    /// Lines in the file, live or not.
    #[must_use]
    pub fn lines(&self) -> usize {
        self.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::SegmentNumber;

    #[test]
    fn round_trips_and_skips_torn_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = SegmentInfo {
            sequence: SegmentNumber::new(1),
            duration_ns: 6_000_000_000,
            bytes: 1880,
            program_date_time: crate::layout::WallTime::from_ms(1_700_000_000_000),
            discontinuity: true,
            independent: true,
        };
        let b = SegmentInfo {
            sequence: SegmentNumber::new(2),
            discontinuity: false,
            independent: true,
            ..a.clone()
        };
        let handle = DirHandle::open(dir.path()).expect("open dir");
        let mut j = Journal::rewrite(&handle, std::iter::once(&a)).expect("rewrite");
        j.append(&b).expect("append");
        assert_eq!(j.lines(), 2);
        drop(j);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOURNAL_NAME))
            .expect("open");
        f.write_all(b"3 600000").expect("torn write");
        let contents = read(&handle).expect("read");
        assert_eq!(contents.segments, vec![a, b]);
        assert_eq!(contents.rejected_lines, 1, "the torn line");
    }
}
