// SPDX-License-Identifier: MPL-2.0
//! The segment file being read: where in it, what is known to be readable,
//! and where a segment entered at a keyframe skips to.

use std::fs::File;
use std::path::PathBuf;

use crate::platform;

/// Where a segment entered at a keyframe skips: from the end of its head's
/// tables to the keyframe's first byte.
#[derive(Debug, Clone, Copy)]
pub(super) struct KeyframeJump {
    pub(super) head_end: u64,
    pub(super) keyframe_offset: u64,
}

pub(super) struct Open {
    pub(super) sequence: u64,
    pub(super) file: File,
    pub(super) offset: u64,
    /// Content time of the segment's start, fixed when it was opened.
    pub(super) start_ns: u64,
    /// Entered at a keyframe: after the head's tables, reading goes on at
    /// the keyframe.
    pub(super) jump: Option<KeyframeJump>,
    /// Timestamp of the first buffer read from it, until it is sent.
    pub(super) timestamp: Option<u64>,
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
}
