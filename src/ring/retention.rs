// SPDX-License-Identifier: MPL-2.0
//! Which segments the ring keeps, and eviction of the others: the retention
//! policy, as a pure function of the window's totals so it can be tested
//! without files, and the ring's side of applying it (at rotations, every
//! few megabytes, and under the pressure of a write that failed for lack of
//! space).
//!
//! An evicted segment leaves the window (playlist, journal) at once, but
//! its file is *retired*: kept for `extra_segments` more rotations before
//! it is deleted or reused. An HLS client that loaded the playlist a moment
//! before may still fetch its oldest entry, as with ffmpeg's
//! `hls_delete_threshold`. Retired files count against `max-size` and are
//! the first to go under the pressure of a full disk.

use super::Ring;
use super::journal::Journal;
use crate::layout::SegmentNumber;
use crate::layout::{SegmentInfo, parse_segment_file_name, segment_file_name, segment_index_name};
use crate::platform;

/// Limits on the ring. Zero means "no limit" for each of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep the newest segments that together last at least this long.
    pub max_duration_ns: u64,
    /// Keep at most this many bytes on disk, the segment being written included.
    pub max_size: u64,
    /// Keep at least this many bytes free on the filesystem.
    pub min_free_space: u64,
}

/// Why a segment was evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictReason {
    MaxDuration,
    MaxSize,
    MinFreeSpace,
}

impl EvictReason {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EvictReason::MaxDuration => "max-duration",
            EvictReason::MaxSize => "max-size",
            EvictReason::MinFreeSpace => "min-free-space",
        }
    }
}

/// Segments deleted to make room for a write that failed for lack of space:
/// what [`Ring::take_pressure_evictions`] returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evicted {
    pub segments: u64,
    pub bytes: u64,
}

/// Evicting to make room for a write that failed for lack of space: whether
/// it is allowed now, and what it evicted that the recorder has not
/// reported yet.
#[derive(Debug)]
pub(super) struct Pressure {
    allowed: bool,
    evicted: Evicted,
}

impl Default for Pressure {
    fn default() -> Self {
        Pressure {
            allowed: true,
            evicted: Evicted::default(),
        }
    }
}

impl Pressure {
    pub(super) fn allow(&mut self, allowed: bool) {
        self.allowed = allowed;
    }

    fn note(&mut self, bytes: u64) {
        self.evicted.segments += 1;
        self.evicted.bytes += bytes;
    }
}

/// A segment out of the window whose file is kept a while (see the module
/// documentation).
#[derive(Debug)]
pub(super) struct Retired {
    sequence: SegmentNumber,
    pub(super) bytes: u64,
    /// Its file may become the next segment's when it is released.
    reusable: bool,
}

/// The totals the policy is applied to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// Duration of the completed segments.
    pub duration_ns: u64,
    /// Bytes of the completed segments plus the segment being written.
    pub bytes: u64,
}

impl Retention {
    /// Whether `oldest`, the oldest completed segment, must be deleted now.
    /// `free_space` is `None` when the platform cannot tell.
    #[must_use]
    pub fn must_evict(&self, window: Window, oldest: &SegmentInfo, free_space: Option<u64>) -> Option<EvictReason> {
        if self.max_duration_ns > 0 && window.duration_ns.saturating_sub(oldest.duration_ns) >= self.max_duration_ns {
            return Some(EvictReason::MaxDuration);
        }
        if self.max_size > 0 && window.bytes > self.max_size {
            return Some(EvictReason::MaxSize);
        }
        if self.min_free_space > 0 && free_space.is_some_and(|free| free < self.min_free_space) {
            return Some(EvictReason::MinFreeSpace);
        }
        None
    }

    /// Whether the ring needs more room than the window alone can give
    /// (`max-size` or `min-free-space`, not `max-duration`).
    #[must_use]
    fn short_of_space(&self, window: Window, free_space: Option<u64>) -> bool {
        self.max_size > 0 && window.bytes > self.max_size
            || self.min_free_space > 0 && free_space.is_some_and(|free| free < self.min_free_space)
    }
}

impl Ring {
    /// Deletes a file of the ring. One that cannot be deleted now (a failing
    /// disk) is remembered, counted in the window's bytes, and deleted at a
    /// later try ([`Self::retry_deletions`]); one someone else already
    /// removed is as good as deleted.
    pub(super) fn delete_file(&mut self, name: &str) {
        // A segment's keyframe index goes with it (a small file: one that
        // cannot be deleted is left, readers check it against the data).
        if let Some(sequence) = parse_segment_file_name(name) {
            let _ = self.handle.remove(&segment_index_name(sequence));
        }
        match self.handle.remove(name) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                let bytes = self.handle.entry(name).map_or(0, |e| e.len);
                self.undeleted.push((name.to_owned(), bytes));
                self.stats.undeleted_files = self.undeleted.len() as u64;
            }
            _ => {}
        }
    }

    /// Tries again to delete what could not be deleted before.
    pub(super) fn retry_deletions(&mut self) {
        if self.undeleted.is_empty() {
            return;
        }
        let handle = &self.handle;
        self.undeleted.retain(|(name, _)| match handle.remove(name) {
            Ok(()) => false,
            Err(e) => e.kind() != std::io::ErrorKind::NotFound,
        });
        self.stats.undeleted_files = self.undeleted.len() as u64;
    }

    /// Segments evicted under pressure since the last call: the recorder
    /// reports each such eviction once.
    #[must_use]
    pub fn take_pressure_evictions(&mut self) -> Evicted {
        std::mem::take(&mut self.pressure.evicted)
    }

    /// Deletes oldest completed segments until `needed` bytes were freed or
    /// none is left. Returns the bytes freed.
    pub(super) fn evict_under_pressure(&mut self, needed: u64) -> u64 {
        if !self.pressure.allowed {
            return 0;
        }
        let retired: u64 = self.retired.iter().map(|r| r.bytes).sum();
        self.release_retired(0);
        let mut freed = retired;
        // Segments held back for the archive go before any of the window.
        if let Some(queue) = &self.archive {
            freed += queue.release_held(needed.saturating_sub(freed));
        }
        while freed < needed {
            let Some(oldest) = self.entries.front() else { break };
            freed += oldest.info.bytes;
            self.evict_oldest(None, false);
        }
        if freed > 0 {
            self.playlist_after_change();
        }
        freed
    }

    /// Deletes oldest segments while the retention policy asks for it.
    /// The open segment is never in `entries`, so it can never be deleted.
    pub(super) fn enforce_retention(&mut self) {
        self.evict_while_due(false);
    }

    /// Like [`Self::enforce_retention`], between two segments: the first
    /// segment evicted for its age may be kept as the next one's file.
    pub(super) fn enforce_retention_at_rotation(&mut self) {
        self.evict_while_due(self.config.reuse_evicted && !self.config.sync_on_rotate);
    }

    fn evict_while_due(&mut self, may_reuse: bool) {
        let retention = self.config.retention;
        let mut evicted = false;
        self.stats.leased_segments = 0;
        self.stats.leased_bytes = 0;
        loop {
            let free = (retention.min_free_space > 0)
                .then(|| platform::free_space(&self.config.dir))
                .flatten();
            // Short of space: segments held back for the archive go first.
            if let (Some(queue), Some(free)) = (&self.archive, free)
                && free < retention.min_free_space
                && queue.release_held(retention.min_free_space - free) > 0
            {
                continue;
            }
            if let Some(oldest) = self.entries.front() {
                let Some(reason) = retention.must_evict(self.window(), &oldest.info, free) else {
                    break;
                };
                let leased = self.config.lease_limit.honoured()
                    && super::lease::is_leased(&self.handle, &segment_file_name(oldest.info.sequence));
                // Never below min-free-space: that eviction is not deferred.
                if leased && reason != EvictReason::MinFreeSpace {
                    let (segments, held) = self.held_back(free);
                    if self.config.lease_limit.allows(held.duration_ns, held.bytes) {
                        self.stats.leased_segments = segments;
                        self.stats.leased_bytes = held.bytes;
                        break;
                    }
                }
                if leased {
                    self.stats.lease_overruns += 1;
                }
                // A leased file is deleted, never written over: its reader
                // still has its bytes.
                let reuse = may_reuse && reason == EvictReason::MaxDuration && !leased;
                self.evict_oldest(Some(reason), reuse);
                evicted = true;
            } else if !self.retired.is_empty() && retention.short_of_space(self.window(), free) {
                // Only retired files are left to make room with.
                self.release_retired(self.retired.len() - 1);
            } else {
                break;
            }
        }
        if evicted && self.journal.lines() > 2 * self.entries.len() + 64 {
            // Dead lines outnumber live ones: compact. Failing to is harmless,
            // the old journal is still correct (dead lines are ignored).
            if let Ok(j) = Journal::rewrite(&self.handle, self.entries.iter().map(|e| &e.info)) {
                self.journal = j;
            }
        }
    }

    /// What retention would evict now for `max-duration` and `max-size`:
    /// how many segments, their duration and bytes.
    fn held_back(&self, free: Option<u64>) -> (u64, Window) {
        let retention = self.config.retention;
        let mut window = self.window();
        let mut held = Window::default();
        let mut segments = 0;
        for e in &self.entries {
            match retention.must_evict(window, &e.info, free) {
                Some(EvictReason::MaxDuration | EvictReason::MaxSize) => {}
                _ => break,
            }
            window.duration_ns -= e.info.duration_ns;
            window.bytes = window.bytes.saturating_sub(e.info.bytes);
            held.duration_ns += e.info.duration_ns;
            held.bytes += e.info.bytes;
            segments += 1;
        }
        (segments, held)
    }

    /// Deletes the oldest segment, or with `reuse` moves its file aside for
    /// the next segment when it can be; `None` = under pressure of a failed write.
    fn evict_oldest(&mut self, reason: Option<EvictReason>, reuse: bool) {
        let Some(e) = self.entries.pop_front() else { return };
        self.playlists.window_changed();
        self.window.duration_ns -= e.info.duration_ns;
        self.window.bytes -= e.info.bytes;
        self.evicted_discontinuity_sequence = e.discontinuity_sequence;
        self.retired.push_back(Retired {
            sequence: e.info.sequence,
            bytes: e.info.bytes,
            reusable: reuse,
        });
        // Under pressure the file goes at once: room is what is missing.
        self.release_retired(if reason.is_some() {
            self.config.extra_segments as usize
        } else {
            0
        });
        self.stats.segments_deleted += 1;
        match reason {
            Some(EvictReason::MaxDuration) => self.stats.evicted_max_duration += 1,
            Some(EvictReason::MaxSize) => self.stats.evicted_max_size += 1,
            Some(EvictReason::MinFreeSpace) => self.stats.evicted_min_free_space += 1,
            None => {
                self.stats.evicted_under_pressure += 1;
                self.stats.evicted_under_pressure_bytes += e.info.bytes;
                self.pressure.note(e.info.bytes);
            }
        }
    }
}

impl Ring {
    /// Deletes (or sets aside for reuse) the oldest retired files until at
    /// most `keep` are left.
    pub(super) fn release_retired(&mut self, keep: usize) {
        while self.retired.len() > keep {
            let Some(r) = self.retired.pop_front() else { break };
            // A client that loads the playlists meanwhile is not sent to it.
            if self.playlists.behind_listing(r.sequence) {
                self.rewrite_playlists(false);
            }
            let name = segment_file_name(r.sequence);
            let leased = self.config.lease_limit.honoured() && super::lease::is_leased(&self.handle, &name);
            if r.reusable && !leased && self.reuse.set_aside(&self.handle, &name) {
                let _ = self.handle.remove(&segment_index_name(r.sequence));
            } else {
                self.delete_file(&name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(duration_ns: u64, bytes: u64) -> SegmentInfo {
        SegmentInfo {
            sequence: SegmentNumber::new(0),
            duration_ns,
            bytes,
            program_date_time: crate::layout::WallTime::EPOCH,
            discontinuity: false,
            independent: true,
        }
    }

    #[test]
    fn keeps_just_enough_duration() {
        let r = Retention {
            max_duration_ns: 10,
            ..Default::default()
        };
        // Five segments of 2 make exactly 10: the oldest is still needed.
        assert_eq!(
            r.must_evict(
                Window {
                    duration_ns: 10,
                    bytes: 0
                },
                &seg(2, 0),
                None
            ),
            None
        );
        assert_eq!(
            r.must_evict(
                Window {
                    duration_ns: 12,
                    bytes: 0
                },
                &seg(2, 0),
                None
            ),
            Some(EvictReason::MaxDuration)
        );
    }

    #[test]
    fn size_and_free_space() {
        let r = Retention {
            max_size: 100,
            min_free_space: 50,
            ..Default::default()
        };
        assert_eq!(
            r.must_evict(
                Window {
                    duration_ns: 0,
                    bytes: 101
                },
                &seg(1, 10),
                Some(1000)
            ),
            Some(EvictReason::MaxSize)
        );
        assert_eq!(
            r.must_evict(
                Window {
                    duration_ns: 0,
                    bytes: 100
                },
                &seg(1, 10),
                Some(49)
            ),
            Some(EvictReason::MinFreeSpace)
        );
        assert_eq!(
            r.must_evict(
                Window {
                    duration_ns: 0,
                    bytes: 100
                },
                &seg(1, 10),
                None
            ),
            None
        );
    }

    #[test]
    fn zero_means_unlimited() {
        let r = Retention::default();
        assert_eq!(
            r.must_evict(
                Window {
                    duration_ns: u64::MAX,
                    bytes: u64::MAX
                },
                &seg(1, 1),
                Some(0)
            ),
            None
        );
    }
}
