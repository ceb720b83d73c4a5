// SPDX-License-Identifier: MPL-2.0
//! The progress record: how much of a reused segment file is new content.
//!
//! While a reused file is being written it holds new packets up to what was
//! written and an evicted segment's packets after that, so its size does not
//! say how much of it is new. The writer publishes this record (in
//! [`PROGRESS_NAME`](super::PROGRESS_NAME)) before the file takes the
//! segment's name and after each write; readers and adoption read no further
//! than it allows for that sequence number.
//!
//! The record is three little-endian `u64`s: sequence, bytes, check. It is
//! overwritten in place, so a reader may see a mix of two records: the check
//! word rejects that, and zeros or foreign bytes.

use std::io;
use std::path::Path;

use super::{PROGRESS_NAME, SegmentNumber};
use crate::platform;

/// Bytes of a record: sequence, bytes, check, little-endian `u64`s.
pub const RECORD_LEN: usize = 24;
/// Mixed into the check so that zeros or foreign bytes never pass for a record.
const CHECK_KEY: u64 = 0x5354_5242_5546_5052; // "STRBUFPR"

/// How much of the reused file named after segment `sequence` is new content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub sequence: SegmentNumber,
    pub bytes: u64,
}

impl Progress {
    fn check(self) -> u64 {
        self.sequence.get() ^ self.bytes.rotate_left(32) ^ CHECK_KEY
    }

    /// The record as written to the file.
    #[must_use]
    pub fn encode(self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        out[..8].copy_from_slice(&self.sequence.get().to_le_bytes());
        out[8..16].copy_from_slice(&self.bytes.to_le_bytes());
        out[16..].copy_from_slice(&self.check().to_le_bytes());
        out
    }

    /// `None` for anything but a whole, consistent record: a reader racing
    /// the writer's overwrite may see a mix of two records, which fails the check.
    fn decode(raw: &[u8]) -> Option<Progress> {
        let word = |i: usize| raw.get(i * 8..i * 8 + 8)?.try_into().ok().map(u64::from_le_bytes);
        let p = Progress {
            sequence: SegmentNumber::new(word(0)?),
            bytes: word(1)?,
        };
        (word(2)? == p.check()).then_some(p)
    }

    /// How many bytes of segment `sequence`, whose file is `file_len` long,
    /// are its own content: all of them unless this record is about it.
    #[must_use]
    pub fn limit(record: Option<Progress>, sequence: SegmentNumber, file_len: u64) -> u64 {
        match record {
            Some(p) if p.sequence == sequence => file_len.min(p.bytes),
            _ => file_len,
        }
    }

    /// Reads the record of the ring in `dir`: `None` if there is no record
    /// file, an error if there is one but no consistent record in it after a
    /// few tries (a power cut can leave it empty). Callers then assume the
    /// worst: that nothing of a segment being written is known to be new.
    pub fn read_in(dir: &Path) -> io::Result<Option<Self>> {
        Self::read_opened(platform::open_read_only(&dir.join(PROGRESS_NAME)))
    }

    /// [`Self::read_in`] for the record file as the caller opened it.
    pub fn read_opened(file: io::Result<std::fs::File>) -> io::Result<Option<Self>> {
        let file = match file {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut raw = [0u8; RECORD_LEN];
        for _ in 0..4 {
            let n = platform::read_at(&file, &mut raw, 0)?;
            if let Some(p) = Progress::decode(&raw[..n]) {
                return Ok(Some(p));
            }
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no consistent progress record",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_rejects_mixtures() {
        let a = Progress {
            sequence: SegmentNumber::new(41),
            bytes: 1_048_576,
        };
        let b = Progress {
            sequence: SegmentNumber::new(42),
            bytes: 188,
        };
        assert_eq!(Progress::decode(&a.encode()), Some(a));
        // Half of one record over the other, as a racing read could see.
        let mut mixed = a.encode();
        mixed[8..].copy_from_slice(&b.encode()[8..]);
        assert_eq!(Progress::decode(&mixed), None);
        assert_eq!(Progress::decode(&[0u8; RECORD_LEN]), None);
        assert_eq!(Progress::decode(&a.encode()[..16]), None);
    }

    #[test]
    fn limit_applies_only_to_its_segment() {
        let p = Some(Progress {
            sequence: SegmentNumber::new(7),
            bytes: 100,
        });
        assert_eq!(Progress::limit(p, SegmentNumber::new(7), 1000), 100);
        assert_eq!(Progress::limit(p, SegmentNumber::new(7), 50), 50);
        assert_eq!(Progress::limit(p, SegmentNumber::new(6), 1000), 1000);
        assert_eq!(Progress::limit(None, SegmentNumber::new(7), 1000), 1000);
    }
}
