//! Which segments the ring may keep: the retention policy, as a pure function
//! of the window's totals so it can be tested without files.

use super::segment::SegmentInfo;

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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(duration_ns: u64, bytes: u64) -> SegmentInfo {
        SegmentInfo {
            sequence: 0,
            duration_ns,
            bytes,
            program_date_time_ms: 0,
            discontinuity: false,
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
