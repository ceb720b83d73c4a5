// SPDX-License-Identifier: MPL-2.0
//! Leases: a reader holds the segment it reads, across processes, and the
//! writer defers evicting it, within limits.
//!
//! A lease is a shared `flock` on the reader's open descriptor of the
//! segment file: the kernel releases it when the descriptor is closed,
//! however the reader ends (a `kill -9` included), so no record can be
//! left behind by a reader that died. The writer asks with an exclusive
//! `flock` that does not wait: refused means someone holds a lease.
//! Because eviction goes oldest first, holding the segment being read
//! holds every newer one too: one lease per reader is enough.
//!
//! The writer defers only evictions for `max-duration` and `max-size`,
//! and only while what it holds back beyond them stays within
//! [`LeaseLimit`]; past that it evicts anyway and counts an overrun (the
//! reader, finding its segment gone, jumps on and says so, as it always
//! did). `min-free-space` and a disk that is full are never deferred.
//!
//! Leases are advisory locks, which only Unix has: on Windows a lock
//! would forbid the writer's own writes to a segment being read at the
//! live edge, so there readers take none and nothing is deferred.

use std::fs::File;

use crate::platform::DirHandle;

/// How much a ring holds back for leases beyond its retention limits.
/// Either being zero turns leases off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseLimit {
    /// Content held back, in nanoseconds.
    pub max_duration_ns: u64,
    /// Bytes held back.
    pub max_bytes: u64,
}

impl LeaseLimit {
    /// Leases ignored: the ring evicts as its retention says.
    pub const OFF: LeaseLimit = LeaseLimit {
        max_duration_ns: 0,
        max_bytes: 0,
    };

    /// Whether leases defer eviction at all.
    #[must_use]
    pub fn honoured(self) -> bool {
        cfg!(unix) && self.max_duration_ns > 0 && self.max_bytes > 0
    }

    /// Whether holding back `duration_ns` and `bytes` is within it.
    #[must_use]
    pub fn allows(self, duration_ns: u64, bytes: u64) -> bool {
        self.honoured() && duration_ns <= self.max_duration_ns && bytes <= self.max_bytes
    }
}

/// Takes a lease on the segment `file` a reader has open; held until the
/// file is closed. `false` if it could not be had (no leases on this
/// platform, or a writer looking at that moment and again just after).
#[must_use = "false: no lease was taken"]
pub fn take(file: &File) -> bool {
    if !cfg!(unix) {
        return false;
    }
    for _ in 0..3 {
        match file.try_lock_shared() {
            Ok(()) => return true,
            // The writer's look holds it for a moment only.
            Err(std::fs::TryLockError::WouldBlock) => std::thread::sleep(std::time::Duration::from_millis(1)),
            Err(std::fs::TryLockError::Error(_)) => return false,
        }
    }
    false
}

/// Whether a reader holds a lease on the file `name` in `dir`.
#[must_use]
pub fn is_leased(dir: &DirHandle, name: &str) -> bool {
    if !cfg!(unix) {
        return false;
    }
    let Ok(file) = dir.open_read_only(name) else {
        return false;
    };
    // Taken and, with the descriptor closed, released at once.
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_lease_lasts_as_long_as_the_readers_descriptor() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("segment-000000000001.ts"), [0x47u8; 188]).expect("file");
        let handle = DirHandle::open(dir.path()).expect("dir");
        let name = "segment-000000000001.ts";
        assert!(!is_leased(&handle, name));
        let reader = File::open(dir.path().join(name)).expect("open");
        assert!(take(&reader));
        assert!(is_leased(&handle, name));
        // A second reader shares it.
        let other = File::open(dir.path().join(name)).expect("open");
        assert!(take(&other));
        drop(reader);
        assert!(is_leased(&handle, name));
        drop(other);
        assert!(!is_leased(&handle, name));
        assert!(!is_leased(&handle, "segment-000000000002.ts"));
        let limit = LeaseLimit {
            max_duration_ns: 10,
            max_bytes: 100,
        };
        assert!(limit.allows(10, 100) && !limit.allows(11, 0) && !limit.allows(0, 101));
        assert!(!LeaseLimit::OFF.allows(0, 0));
    }
}
