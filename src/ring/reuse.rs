//! Reuse of evicted segment files, and the progress record that makes it safe.
//!
//! Deleting a segment costs the kernel the freeing of its page cache and of
//! its blocks, and the next segment then has both allocated afresh: on a
//! ring of 15 MB segments that was the largest cost the ring had that
//! `filesink` has not (measured in the README). Instead, a segment evicted
//! for `max-duration` at a rotation is renamed to [`SPARE_NAME`] and becomes
//! the next segment's file, overwritten from its start and cut to length
//! when it is finished: its pages and blocks are written over, not freed and
//! allocated again.
//!
//! While it is being written, such a file holds new packets up to what was
//! written and the old segment's packets after that, so its size no longer
//! says how much of it is new. The [`Progress`] record says it: the writer
//! publishes the sequence number before the file takes the segment's name and
//! the bytes written after each write. Readers and adoption after a crash
//! read no further than the record allows for that sequence number.
//!
//! A file that has another link is never reused: a reference recording's
//! hard link shares its data.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::platform;

/// The evicted segment file waiting to become the next segment.
pub const SPARE_NAME: &str = ".reusable-segment";
/// Where the writer publishes how much of a reused file is new.
pub const PROGRESS_NAME: &str = "ring.progress";

/// Bytes of a record: sequence, bytes, check, little-endian `u64`s.
const RECORD_LEN: usize = 24;
/// Mixed into the check so that zeros or foreign bytes never pass for a record.
const CHECK_KEY: u64 = 0x5354_5242_5546_5052; // "STRBUFPR"

/// How much of the reused file named after segment `sequence` is new content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub sequence: u64,
    pub bytes: u64,
}

impl Progress {
    fn check(self) -> u64 {
        self.sequence ^ self.bytes.rotate_left(32) ^ CHECK_KEY
    }

    fn encode(self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        out[..8].copy_from_slice(&self.sequence.to_le_bytes());
        out[8..16].copy_from_slice(&self.bytes.to_le_bytes());
        out[16..].copy_from_slice(&self.check().to_le_bytes());
        out
    }

    /// `None` for anything but a whole, consistent record: a reader racing
    /// the writer's overwrite may see a mix of two records, which fails the check.
    fn decode(raw: &[u8]) -> Option<Progress> {
        let word = |i: usize| raw.get(i * 8..i * 8 + 8)?.try_into().ok().map(u64::from_le_bytes);
        let p = Progress {
            sequence: word(0)?,
            bytes: word(1)?,
        };
        (word(2)? == p.check()).then_some(p)
    }

    /// How many bytes of segment `sequence`, whose file is `file_len` long,
    /// are its own content: all of them unless this record is about it.
    #[must_use]
    pub fn limit(record: Option<Progress>, sequence: u64, file_len: u64) -> u64 {
        match record {
            Some(p) if p.sequence == sequence => file_len.min(p.bytes),
            _ => file_len,
        }
    }
}

/// Reads the record of the ring in `dir`: `None` if there is no record
/// file, an error if there is one but no consistent record in it after a
/// few tries (a power cut can leave it empty). Callers then assume the
/// worst: that nothing of a segment being written is known to be new.
pub fn read_progress_in(dir: &Path) -> io::Result<Option<Progress>> {
    let file = match platform::open_read_only(&dir.join(PROGRESS_NAME)) {
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

/// The writer's side of the progress record.
#[derive(Debug)]
pub struct ProgressFile {
    file: File,
}

impl ProgressFile {
    pub fn open(dir: &Path) -> io::Result<ProgressFile> {
        Ok(ProgressFile {
            file: platform::open_lock_file(&dir.join(PROGRESS_NAME))?,
        })
    }

    /// Whether this is still the record readers of `dir` see: not if the
    /// file was deleted or the directory made anew.
    #[must_use]
    pub fn is_current(&self, dir: &Path) -> bool {
        platform::is_still_named(&self.file, &dir.join(PROGRESS_NAME))
    }

    /// Overwrites the record in place: one small write, no new file.
    pub fn publish(&mut self, progress: Progress) -> io::Result<()> {
        platform::write_all_at(&self.file, &progress.encode(), 0)
    }
}

/// Moves the evicted segment at `path` aside as the spare when it can be
/// reused (a regular file with no other link); returns whether it did.
#[must_use]
pub fn set_aside(path: &Path, spare: &Path) -> bool {
    let reusable = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && platform::link_count(&m) == 1);
    reusable && std::fs::rename(path, spare).is_ok()
}

/// Gives the spare the name `path`, refusing (like a new file would) if
/// anything is there, and opens it for writing. Returns the file and the
/// length of the old content in it. On failure the spare is gone and
/// nothing is left at `path`.
pub fn take_spare(spare: &Path, path: &Path) -> io::Result<(File, u64)> {
    // A link fails if `path` exists, as `O_EXCL` would; unlike a rename.
    let linked = std::fs::hard_link(spare, path);
    let _ = std::fs::remove_file(spare);
    linked?;
    let opened = platform::open_existing(path).and_then(|file| {
        let meta = file.metadata()?;
        // Whatever was planted at the spare's name must not be written through.
        if meta.is_file() && platform::link_count(&meta) == 1 {
            Ok((file, meta.len()))
        } else {
            Err(io::Error::other(
                "the spare segment file is not a plain file of its own",
            ))
        }
    });
    if opened.is_err() {
        let _ = std::fs::remove_file(path);
    }
    opened
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_rejects_mixtures() {
        let a = Progress {
            sequence: 41,
            bytes: 1_048_576,
        };
        let b = Progress {
            sequence: 42,
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
            sequence: 7,
            bytes: 100,
        });
        assert_eq!(Progress::limit(p, 7, 1000), 100);
        assert_eq!(Progress::limit(p, 7, 50), 50);
        assert_eq!(Progress::limit(p, 6, 1000), 1000);
        assert_eq!(Progress::limit(None, 7, 1000), 1000);
    }

    #[test]
    fn published_record_is_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_progress_in(dir.path()).expect("no record"), None);
        let mut f = ProgressFile::open(dir.path()).expect("open");
        // Created, not yet written (as a power cut can leave it): unknown.
        assert!(read_progress_in(dir.path()).is_err());
        for (sequence, bytes) in [(3, 0), (3, 4096), (4, 0)] {
            f.publish(Progress { sequence, bytes }).expect("publish");
            assert_eq!(
                read_progress_in(dir.path()).expect("record"),
                Some(Progress { sequence, bytes })
            );
        }
        assert!(f.is_current(dir.path()));
        std::fs::remove_file(dir.path().join(PROGRESS_NAME)).expect("remove");
        assert!(!f.is_current(dir.path()));
    }

    #[test]
    fn linked_files_and_links_are_not_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (seg, spare) = (dir.path().join("a.ts"), dir.path().join(SPARE_NAME));
        std::fs::write(&seg, b"old").expect("write");
        std::fs::hard_link(&seg, dir.path().join("recording.ts")).expect("link");
        assert!(!set_aside(&seg, &spare));
        assert!(seg.exists() && !spare.exists());

        // A symbolic link planted as the spare is refused and removed.
        let target = dir.path().join("target");
        std::fs::write(&target, b"precious").expect("write");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&target, &spare).expect("symlink");
            let next = dir.path().join("b.ts");
            assert!(take_spare(&spare, &next).is_err());
            assert!(std::fs::symlink_metadata(&next).is_err() && std::fs::symlink_metadata(&spare).is_err());
            assert_eq!(std::fs::read(&target).expect("read"), b"precious");
        }
    }

    #[test]
    fn spare_becomes_the_next_segment_with_its_old_length() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (old, spare, next) = (
            dir.path().join("a.ts"),
            dir.path().join(SPARE_NAME),
            dir.path().join("b.ts"),
        );
        std::fs::write(&old, vec![7u8; 4000]).expect("write");
        assert!(set_aside(&old, &spare));
        assert!(!old.exists());
        let (_file, stale) = take_spare(&spare, &next).expect("take");
        assert_eq!(stale, 4000);
        assert!(next.exists() && !spare.exists());
        // The name must be free, as for a new file.
        std::fs::write(&spare, b"x").expect("write");
        assert!(take_spare(&spare, &next).is_err());
        assert_eq!(std::fs::metadata(&next).expect("meta").len(), 4000);
    }
}
