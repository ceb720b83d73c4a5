// SPDX-License-Identifier: MPL-2.0
//! Reuse of evicted segment files, and the progress record that makes it safe.
//!
//! Deleting a segment costs the kernel the freeing of its page cache and of
//! its blocks, and the next segment then has both allocated afresh: on a
//! ring of 15 MB segments that was the largest cost the ring had that
//! `filesink` has not (measured in docs/performance.md). Instead, a segment evicted
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

use super::RingStats;
use super::segment::{PendingWrites, SegmentWriter};
use crate::layout::SegmentNumber;
use crate::layout::progress::Progress;
use crate::layout::{PROGRESS_NAME, SPARE_NAME, segment_file_name};
use crate::platform::{self, DirHandle};

/// The ring's reuse state: the spare file, the progress record, and whether
/// that record still limits what readers take of the open segment.
#[derive(Debug, Default)]
pub struct Reuse {
    /// An evicted segment's file is waiting, at [`SPARE_NAME`], to be reused.
    spare: bool,
    /// Opened at the first reuse.
    progress: Option<ProgressFile>,
    /// The record still limits how much of the open segment readers take:
    /// it is a reused file, or was meant to be.
    limits: bool,
}

impl Reuse {
    /// Whether an evicted file waits to become the next segment.
    #[must_use]
    pub fn has_spare(&self) -> bool {
        self.spare
    }

    /// Publishes that segment `sequence`, a new file, is the one being
    /// written: readers cannot find it after the newest listed segment when
    /// sequence numbers were skipped.
    pub fn announce(&mut self, dir: &DirHandle, sequence: SegmentNumber, stats: &mut RingStats) {
        let published = self.progress_file(dir).is_some_and(|p| {
            p.publish(Progress {
                sequence,
                bytes: u64::MAX,
            })
            .is_ok()
        });
        if !published {
            stats.metadata_write_errors += 1;
        }
    }

    /// The progress record, opened at its first use, and again if it was
    /// deleted or the directory made anew: readers would not see a record
    /// written there.
    fn progress_file(&mut self, dir: &DirHandle) -> Option<&mut ProgressFile> {
        if !self.progress.as_ref().is_some_and(|p| p.is_current(dir)) {
            self.progress = ProgressFile::create(dir).ok();
        }
        self.progress.as_mut()
    }
    /// Moves the evicted segment at `path` aside as the spare, if no spare
    /// is waiting and the file can be reused; returns whether it did.
    pub fn set_aside(&mut self, dir: &DirHandle, name: &str) -> bool {
        if self.spare || !set_aside(dir, name) {
            return false;
        }
        self.spare = true;
        true
    }

    /// Opens the spare as segment `sequence`. Readers are told first that
    /// none of the file is new yet, then it takes the segment's name.
    /// `None`: no spare, or it could not be used (and is gone); the caller
    /// creates a new file.
    pub fn take_spare(
        &mut self,
        dir: &DirHandle,
        sequence: SegmentNumber,
        buffers: &mut PendingWrites,
        stats: &mut RingStats,
    ) -> Option<SegmentWriter> {
        if !std::mem::take(&mut self.spare) {
            return None;
        }
        let published = self
            .progress_file(dir)
            .is_some_and(|p| p.publish(Progress { sequence, bytes: 0 }).is_ok());
        if !published {
            stats.metadata_write_errors += 1;
            let _ = dir.remove(SPARE_NAME);
            return None;
        }
        // From here the record names this sequence, whatever file gets it.
        self.limits = true;
        let name = segment_file_name(sequence);
        let (file, stale_end) = take_spare(dir, &name).ok()?;
        let path = dir.path().join(name);
        stats.segments_reused += 1;
        Some(SegmentWriter::reuse(
            sequence,
            path,
            file,
            stale_end,
            dir.reserves_blocks_ahead(),
            buffers,
        ))
    }

    /// After a write that put more of `writer` in its file: while the record
    /// limits readers, publishes the new length; once no old content is
    /// left past it, the record stops limiting.
    pub fn after_write(&mut self, writer: &SegmentWriter, stats: &mut RingStats) {
        if !self.limits {
            return;
        }
        let Some(progress) = self.progress.as_mut() else { return };
        let bytes = if writer.has_stale_tail() {
            writer.flushed()
        } else {
            u64::MAX
        };
        match progress.publish(Progress {
            sequence: writer.sequence(),
            bytes,
        }) {
            Ok(()) => self.limits = bytes != u64::MAX,
            // Readers lag behind until the next write publishes again.
            Err(_) => stats.metadata_write_errors += 1,
        }
    }

    /// Segment `sequence` was closed and cut to length: the record stops
    /// limiting readers.
    pub fn segment_closed(&mut self, sequence: SegmentNumber, stats: &mut RingStats) {
        if std::mem::take(&mut self.limits)
            && let Some(p) = self.progress.as_mut()
            && p.publish(Progress {
                sequence,
                bytes: u64::MAX,
            })
            .is_err()
        {
            // Cut to length, the file says its size itself; a reader that
            // trusts the stale record takes less than there is, never more.
            stats.metadata_write_errors += 1;
        }
    }

    /// The ring closes: a spare still waiting is deleted.
    pub fn discard_spare(&mut self, dir: &DirHandle) {
        if std::mem::take(&mut self.spare) {
            let _ = dir.remove(SPARE_NAME);
        }
    }
}

/// The writer's side of the progress record.
#[derive(Debug)]
struct ProgressFile {
    file: File,
}

impl ProgressFile {
    /// Creates the record file anew, as segments are created: whatever is
    /// at its name (an earlier writer's record, or a link or FIFO someone
    /// planted there) is removed, never written through.
    fn create(dir: &DirHandle) -> io::Result<ProgressFile> {
        Ok(ProgressFile {
            file: dir.create_anew(PROGRESS_NAME)?,
        })
    }

    /// Whether this is still the record readers of `dir` see: not if the
    /// file was deleted or the directory made anew.
    #[must_use]
    fn is_current(&self, dir: &DirHandle) -> bool {
        dir.still_names(&self.file, PROGRESS_NAME)
    }

    /// Overwrites the record in place: one small write, no new file.
    fn publish(&mut self, progress: Progress) -> io::Result<()> {
        platform::write_all_at(&self.file, &progress.encode(), 0)
    }
}

/// Moves the evicted segment `name` aside as the spare when it can be
/// reused (a regular file with no other link); returns whether it did.
#[must_use]
fn set_aside(dir: &DirHandle, name: &str) -> bool {
    let reusable = dir.entry(name).is_ok_and(|e| e.is_file && e.links == Some(1));
    reusable && dir.rename(name, SPARE_NAME).is_ok()
}

/// Gives the spare the name `name`, refusing (like a new file would) if
/// anything is there, and opens it for writing. Returns the file and the
/// length of the old content in it. On failure the spare is gone and
/// nothing is left at `name`.
fn take_spare(dir: &DirHandle, name: &str) -> io::Result<(File, u64)> {
    // A link fails if `name` exists, as `O_EXCL` would; unlike a rename.
    let linked = dir.hard_link(SPARE_NAME, name);
    let _ = dir.remove(SPARE_NAME);
    linked?;
    let opened = dir.open_existing(name).and_then(|file| {
        let meta = file.metadata()?;
        // Whatever was planted at the spare's name must not be written through.
        if meta.is_file() && platform::link_count(&meta) == Some(1) {
            Ok((file, meta.len()))
        } else {
            Err(io::Error::other(
                "the spare segment file is not a plain file of its own",
            ))
        }
    });
    if opened.is_err() {
        let _ = dir.remove(name);
    }
    opened
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_record_is_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(Progress::read_in(dir.path()).expect("no record"), None);
        let handle = DirHandle::open(dir.path()).expect("open dir");
        let mut f = ProgressFile::create(&handle).expect("create");
        // Created, not yet written (as a power cut can leave it): unknown.
        assert!(Progress::read_in(dir.path()).is_err());
        for (sequence, bytes) in [(3, 0), (3, 4096), (4, 0)] {
            f.publish(Progress {
                sequence: SegmentNumber::new(sequence),
                bytes,
            })
            .expect("publish");
            assert_eq!(
                Progress::read_in(dir.path()).expect("record"),
                Some(Progress {
                    sequence: SegmentNumber::new(sequence),
                    bytes,
                })
            );
        }
        assert!(f.is_current(&handle));
        std::fs::remove_file(dir.path().join(PROGRESS_NAME)).expect("remove");
        assert!(!f.is_current(&handle));
    }

    #[test]
    fn linked_files_and_links_are_not_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let handle = DirHandle::open(dir.path()).expect("open dir");
        let (seg, spare) = (dir.path().join("a.ts"), dir.path().join(SPARE_NAME));
        std::fs::write(&seg, b"old").expect("write");
        std::fs::hard_link(&seg, dir.path().join("recording.ts")).expect("link");
        assert!(!set_aside(&handle, "a.ts"));
        assert!(seg.exists() && !spare.exists());

        // A symbolic link planted as the spare is refused and removed.
        let target = dir.path().join("target");
        std::fs::write(&target, b"precious").expect("write");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&target, &spare).expect("symlink");
            let next = dir.path().join("b.ts");
            assert!(take_spare(&handle, "b.ts").is_err());
            assert!(std::fs::symlink_metadata(&next).is_err() && std::fs::symlink_metadata(&spare).is_err());
            assert_eq!(std::fs::read(&target).expect("read"), b"precious");
        }
    }

    #[test]
    fn spare_becomes_the_next_segment_with_its_old_length() {
        let dir = tempfile::tempdir().expect("tempdir");
        let handle = DirHandle::open(dir.path()).expect("open dir");
        let (old, spare, next) = (
            dir.path().join("a.ts"),
            dir.path().join(SPARE_NAME),
            dir.path().join("b.ts"),
        );
        std::fs::write(&old, vec![7u8; 4000]).expect("write");
        assert!(set_aside(&handle, "a.ts"));
        assert!(!old.exists());
        let (_file, stale) = take_spare(&handle, "b.ts").expect("take");
        assert_eq!(stale, 4000);
        assert!(next.exists() && !spare.exists());
        // The name must be free, as for a new file.
        std::fs::write(&spare, b"x").expect("write");
        assert!(take_spare(&handle, "b.ts").is_err());
        assert_eq!(std::fs::metadata(&next).expect("meta").len(), 4000);
    }
}
