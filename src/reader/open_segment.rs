// SPDX-License-Identifier: MPL-2.0
//! The segment file being read: where in it, what is known to be readable,
//! and where a segment entered at a keyframe skips to.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use super::catalog::Catalog;
use crate::layout::RingTime;
use crate::layout::SegmentNumber;
use crate::platform;
use crate::ts::PACKET_SIZE;

/// What one read of the open segment gave.
pub(super) enum SegmentRead {
    /// This many bytes (whole packets) were read.
    Data(usize),
    /// Its name no longer names it (deleted, or reused for a newer
    /// segment): what was read, if anything, is not to be trusted.
    Lost,
    /// It could not be looked at or read.
    Failed(io::Error),
    /// Nothing more is written in it yet.
    AtEnd,
}

/// Where a segment entered at a keyframe skips: from the end of its head's
/// tables to the keyframe's first byte.
#[derive(Debug, Clone, Copy)]
pub(super) struct KeyframeJump {
    pub(super) head_end: u64,
    pub(super) keyframe_offset: u64,
}

pub(super) struct Open {
    pub(super) sequence: SegmentNumber,
    pub(super) file: File,
    pub(super) offset: u64,
    /// Content time of the segment's start, fixed when it was opened.
    pub(super) start: RingTime,
    /// Entered at a keyframe: after the head's tables, reading goes on at
    /// the keyframe.
    pub(super) jump: Option<KeyframeJump>,
    /// Timestamp of the first buffer read from it, until it is sent.
    pub(super) timestamp: Option<RingTime>,
    /// Bytes known to be readable (whole, written content), from the last
    /// look at the file and the progress record: reads within it need no
    /// look again, as a segment only grows while it is the same file (a
    /// file reused meanwhile is caught after the read, by its name).
    pub(super) readable: u64,
    /// Its identity, to check cheaply that its name still names it.
    pub(super) id: Option<platform::FileId>,
    /// Its name in the ring.
    pub(super) path: PathBuf,
}

impl Open {
    /// Where the next read starts: past the head's tables, at the keyframe
    /// the segment was entered at.
    pub(super) fn next_offset(&self) -> u64 {
        match self.jump {
            Some(jump) if self.offset >= jump.head_end => jump.keyframe_offset,
            _ => self.offset,
        }
    }

    /// Reads into `buf` (whole packets) from where reading is: what is
    /// known to be readable, looking at the file again (its name and its
    /// length in `catalog`) only once that is used up; past the head's
    /// tables it skips to the keyframe it was entered at.
    pub(super) fn read_into(&mut self, catalog: &Catalog, buf: &mut [u8]) -> SegmentRead {
        let next = self.next_offset();
        if next.saturating_add(PACKET_SIZE as u64) > self.readable {
            // Everything known was read: look at the file again.
            if !platform::is_still_named(&self.file, &self.path) {
                return SegmentRead::Lost;
            }
            match catalog.content_len(&self.file, self.sequence) {
                Ok(len) => self.readable = len,
                Err(e) => return SegmentRead::Failed(e),
            }
        }
        let len = self.readable;
        // Entered at a keyframe: the head's tables, then the keyframe.
        let mut until = len;
        if let Some(jump) = self.jump {
            if self.offset >= jump.head_end {
                self.offset = jump.keyframe_offset;
                self.jump = None;
            } else {
                until = jump.head_end.min(len);
            }
        }
        let avail = until.saturating_sub(self.offset) / PACKET_SIZE as u64 * PACKET_SIZE as u64;
        let n = usize::try_from(avail).unwrap_or(usize::MAX).min(buf.len());
        if n == 0 {
            return SegmentRead::AtEnd;
        }
        if let Err(e) = read_exact_at(&self.file, &mut buf[..n], self.offset) {
            // Cut short because the file was reused meanwhile?
            if !platform::still_names(&self.path, &self.file, self.id) {
                return SegmentRead::Lost;
            }
            return SegmentRead::Failed(e);
        }
        // Had the writer reused the file meanwhile, what was read may be
        // part new content: checked after the read, as the writer only
        // overwrites a file once it has renamed it.
        if !platform::still_names(&self.path, &self.file, self.id) {
            return SegmentRead::Lost;
        }
        self.offset += n as u64;
        SegmentRead::Data(n)
    }
}

/// Fills `buf` from `offset` of `file`.
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match platform::read_at(file, &mut buf[done..], offset + done as u64) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
