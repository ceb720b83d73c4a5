//! One segment file of the ring: its name, what is known about it, and the
//! buffered writer that fills it.

use std::fs::File;
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::platform;
use crate::ts::PACKET_SIZE;

const PREFIX: &str = "segment-";
const SUFFIX: &str = ".ts";
/// Digits in a segment file name: enough for a 1 s segment every second for
/// thirty thousand years, and names still sort in sequence order.
const DIGITS: usize = 12;

/// Writes are gathered into blocks of this size, the same order as
/// `filesink`'s default buffer, so 1316-byte UDP buffers do not cost one
/// system call each.
pub const WRITE_BLOCK: usize = 1024 * 1024;
/// Bytes written between two checks that the file was not deleted.
const ALIVE_CHECK_INTERVAL: u64 = 4 * 1024 * 1024;
/// Runs at least this large are written from the caller's memory (with
/// anything buffered, in one vectored write) instead of being copied.
pub const DIRECT_WRITE: usize = WRITE_BLOCK;

/// File name of the segment with this sequence number.
#[must_use]
pub fn file_name(sequence: u64) -> String {
    format!("{PREFIX}{sequence:0DIGITS$}{SUFFIX}")
}

/// The sequence number in a segment file name, if it is one of ours.
#[must_use]
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A completed segment as the playlist and the retention policy see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub sequence: u64,
    pub duration_ns: u64,
    pub bytes: u64,
    /// Wall-clock time of the first packet, milliseconds since the Unix epoch.
    pub program_date_time_ms: i64,
    /// The timeline jumped between the previous segment and this one.
    pub discontinuity: bool,
}

/// The segment being written: a file plus a write-gathering buffer.
///
/// Only whole packets ever enter the buffer, and a failed write is undone
/// (the file is cut back to the last complete flush and the cursor rewound),
/// so the file on disk always ends on a packet boundary. Data that could not
/// be written stays in the buffer: the caller either retries ([`Self::flush`])
/// or gives it up ([`Self::discard_pending`]).
#[derive(Debug)]
pub struct SegmentWriter {
    sequence: u64,
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    /// Bytes known to be in the file.
    flushed: u64,
    /// `flushed` when the file was last checked to still be linked.
    checked_alive_at: u64,
}

impl SegmentWriter {
    /// Creates the segment file; fails if anything already exists at its path.
    pub fn create(dir: &Path, sequence: u64) -> io::Result<Self> {
        let path = dir.join(file_name(sequence));
        let file = platform::create_new(&path)?;
        Ok(SegmentWriter {
            sequence,
            path,
            file,
            buf: Vec::with_capacity(WRITE_BLOCK),
            flushed: 0,
            checked_alive_at: 0,
        })
    }

    #[must_use]
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes accepted so far, flushed or not.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes known to be in the file.
    #[must_use]
    pub fn flushed(&self) -> u64 {
        self.flushed
    }

    /// Bytes accepted but not yet in the file.
    #[must_use]
    pub fn pending(&self) -> u64 {
        self.buf.len() as u64
    }

    /// Appends whole packets. On error the packets are kept in the buffer.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        debug_assert_eq!(data.len() % PACKET_SIZE, 0);
        if data.len() >= DIRECT_WRITE {
            // A large run goes from the caller's memory to the file in one
            // vectored write, together with whatever small runs are buffered:
            // no copy, one system call.
            let buf = std::mem::take(&mut self.buf);
            let result = self.write_pair(&buf, data);
            self.buf = buf;
            if let Err(e) = result {
                self.buf.extend_from_slice(data);
                return Err(e);
            }
            self.buf.clear();
            return Ok(());
        }
        if self.buf.len() + data.len() > WRITE_BLOCK
            && let Err(e) = self.flush()
        {
            self.buf.extend_from_slice(data);
            return Err(e);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Writes `a` then `b` completely, with vectored writes; on error the
    /// file is cut back to its last good length.
    fn write_pair(&mut self, a: &[u8], b: &[u8]) -> io::Result<()> {
        let total = a.len() + b.len();
        let mut done = 0;
        while done < total {
            let slices = if done < a.len() {
                [IoSlice::new(&a[done..]), IoSlice::new(b)]
            } else {
                [IoSlice::new(&b[done - a.len()..]), IoSlice::new(&[])]
            };
            match self.file.write_vectored(&slices) {
                Ok(0) => {
                    self.rewind();
                    return Err(io::Error::from(io::ErrorKind::WriteZero));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.rewind();
                    return Err(e);
                }
            }
        }
        self.flushed += total as u64;
        Ok(())
    }

    /// Hands buffered bytes to the operating system; on error they stay
    /// buffered and the file is back at its last good length.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            let result = self.write_through(&buf);
            self.buf = buf;
            result?;
            self.buf.clear();
        }
        // Written into a file someone deleted, data would vanish silently;
        // one fstat per few MiB notices it without costing the write path.
        if self.flushed >= self.checked_alive_at + ALIVE_CHECK_INTERVAL {
            self.check_alive()?;
        }
        Ok(())
    }

    /// Fails if the file has been deleted from the ring directory.
    pub fn check_alive(&mut self) -> io::Result<()> {
        self.checked_alive_at = self.flushed;
        if platform::is_unlinked(&self.file) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the segment file was deleted while being written",
            ));
        }
        Ok(())
    }

    /// Gives up the buffered bytes; returns how many there were.
    pub fn discard_pending(&mut self) -> u64 {
        let n = self.buf.len() as u64;
        self.buf.clear();
        n
    }

    /// Cuts the file back to `len` bytes (a packet boundary, at most
    /// [`Self::flushed`]); pending bytes must have been discarded.
    pub fn truncate(&mut self, len: u64) -> io::Result<()> {
        debug_assert!(self.buf.is_empty() && len <= self.flushed && len.is_multiple_of(PACKET_SIZE as u64));
        self.file.set_len(len)?;
        self.file.seek(SeekFrom::Start(len))?;
        self.flushed = len;
        Ok(())
    }

    fn write_through(&mut self, data: &[u8]) -> io::Result<()> {
        match self.file.write_all(data) {
            Ok(()) => {
                self.flushed += data.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.rewind();
                Err(e)
            }
        }
    }

    /// After a failed write: part of the data may have reached the file. Cut
    /// it back so that no torn packet stays on disk, and rewind the cursor so
    /// the next write leaves no hole. If even that fails, the caller abandons
    /// the segment (which removes a file it cannot trust).
    fn rewind(&mut self) {
        let _ = self.file.set_len(self.flushed);
        let _ = self.file.seek(SeekFrom::Start(self.flushed));
    }

    /// Optionally syncs to stable storage and closes the file. Call
    /// [`Self::flush`] first: pending bytes are not written here.
    pub fn close(self, sync: bool) -> io::Result<u64> {
        debug_assert!(self.buf.is_empty(), "close with pending bytes");
        if sync {
            self.file.sync_data()?;
        }
        Ok(self.flushed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort() {
        assert_eq!(file_name(42), "segment-000000000042.ts");
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name("segment-42.ts"), None);
        assert_eq!(parse_file_name("segment-00000000004x.ts"), None);
        assert_eq!(parse_file_name("index.m3u8"), None);
        assert!(file_name(9) < file_name(10));
    }

    #[test]
    fn writer_gathers_small_writes_and_passes_large_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = SegmentWriter::create(dir.path(), 1).expect("create");
        let small = [0x47u8; PACKET_SIZE * 7];
        w.write(&small).expect("write");
        assert_eq!(std::fs::metadata(w.path()).expect("stat").len(), 0);
        let large = vec![0x47u8; PACKET_SIZE * 1000];
        w.write(&large).expect("write");
        assert_eq!(w.len(), (PACKET_SIZE * 1007) as u64);
        let path = w.path().to_owned();
        w.flush().expect("flush");
        assert_eq!(w.close(false).expect("close"), (PACKET_SIZE * 1007) as u64);
        assert_eq!(
            std::fs::metadata(&path).expect("stat").len(),
            (PACKET_SIZE * 1007) as u64
        );
        assert!(SegmentWriter::create(dir.path(), 1).is_err(), "never clobbers");
    }
}
