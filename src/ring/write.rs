// SPDX-License-Identifier: MPL-2.0
//! Writing into the open segment: whole packets, borrowed or shared, handed
//! to the OS in blocks; a full filesystem answered by evicting the ring's own
//! oldest segments once before a write counts as failed.

use std::io;
use std::path::Path;

use super::{Chunk, PRESSURE_MARGIN, Ring, SPACE_CHECK_INTERVAL, WriteFailure};

impl Ring {
    /// Bytes of the open segment accepted but not yet in the file.
    #[must_use]
    pub fn pending_bytes(&self) -> u64 {
        self.current.as_ref().map_or(0, |c| c.writer.pending())
    }

    fn current_len(&self) -> u64 {
        self.current.as_ref().map_or(0, |c| c.writer.len())
    }

    /// Accounts for what a write or flush of the open segment put in the
    /// file (its length was `before`).
    fn written(&mut self, before: u64) {
        let Some(cur) = self.current.as_ref() else { return };
        let flushed = cur.writer.flushed();
        self.stats.bytes_written += flushed - before;
        if flushed > before {
            self.reuse.after_write(&cur.writer, &mut self.stats);
        }
    }

    /// Appends whole packets to the open segment. A full filesystem is first
    /// answered by evicting the ring's own oldest segments and retrying once.
    /// On failure the packets stay pending in the segment: retry with
    /// [`Self::flush`] or give them up with [`Self::abandon_segment`].
    pub fn write(&mut self, data: &[u8]) -> Result<(), WriteFailure> {
        self.write_chunk(Chunk::borrowed(data))
    }

    /// Like [`Self::write`], for packets that may be part of shared input
    /// the segment can hold on to instead of copying.
    pub fn write_chunk(&mut self, chunk: Chunk<'_>) -> Result<(), WriteFailure> {
        let data = chunk.bytes();
        let Some(cur) = self.current.as_mut() else {
            return Err(WriteFailure::new(
                self.config.dir.clone(),
                io::Error::other("no segment is open"),
                false,
            ));
        };
        let before = cur.writer.flushed();
        let result = cur.writer.write(chunk);
        self.written(before);
        self.bytes_since_space_check += data.len() as u64;
        match result {
            Ok(()) => {
                if self.bytes_since_space_check >= SPACE_CHECK_INTERVAL {
                    self.bytes_since_space_check = 0;
                    if self.config.retention.max_size > 0 || self.config.retention.min_free_space > 0 {
                        self.enforce_retention();
                    }
                }
                Ok(())
            }
            Err(e) => self.retry_after_pressure(e),
        }
    }

    /// Writes every pending byte of the open segment to the file now.
    /// Playlists behind the window are rewritten here once due (see
    /// `publish::REWRITE_INTERVAL`).
    pub fn flush(&mut self) -> Result<(), WriteFailure> {
        self.publish_if_due();
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        let before = cur.writer.flushed();
        let result = cur.writer.flush();
        self.written(before);
        match result {
            Ok(()) => Ok(()),
            Err(e) => self.retry_after_pressure(e),
        }
    }

    /// After a failed write: if the filesystem is full, evict oldest segments
    /// (never the open one) to make room for what is pending, then retry once.
    fn retry_after_pressure(&mut self, e: io::Error) -> Result<(), WriteFailure> {
        let path = self
            .current_path()
            .map_or_else(|| self.config.dir.clone(), Path::to_owned);
        let failure = WriteFailure::new(path.clone(), e, false);
        if !failure.kind.is_space(&failure.source) {
            return Err(failure);
        }
        let needed = self.pending_bytes() + PRESSURE_MARGIN;
        if self.evict_under_pressure(needed) == 0 {
            return Err(failure);
        }
        let Some(cur) = self.current.as_mut() else {
            return Err(failure);
        };
        let before = cur.writer.flushed();
        let result = cur.writer.flush();
        self.written(before);
        result.map_err(|e| WriteFailure::new(path, e, false))
    }

    /// Allows or forbids evicting segments when a write fails for lack of
    /// space. The recorder forbids it during a failure episode: everything
    /// that could help was evicted before the failure was declared, and what
    /// was kept of the failed segment is not to be eaten by the retries.
    pub fn set_evict_under_pressure(&mut self, allowed: bool) {
        self.pressure.allow(allowed);
    }

    /// Bytes of the open segment known to be in its file.
    #[must_use]
    pub fn flushed_bytes(&self) -> u64 {
        self.current.as_ref().map_or(0, |c| c.writer.flushed())
    }

    /// Bytes of the open segment accepted so far, flushed or not.
    #[must_use]
    pub fn segment_len(&self) -> u64 {
        self.current_len()
    }
}
