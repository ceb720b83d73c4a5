// SPDX-License-Identifier: MPL-2.0
//! What can go wrong: opening a ring ([`RingError`]), and write failures
//! (what went wrong, on which file, classified the way the `write-failure`
//! signal reports it).

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::layout::LOCK_NAME;

/// The `GST_RESOURCE_ERROR` code a failure maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// ENOSPC, EDQUOT, EFBIG and their equivalents on other systems.
    NoSpaceLeft,
    /// A segment (or the ring directory) could not be created.
    OpenWrite,
    /// Any other write error.
    Write,
}

impl FailureKind {
    /// Classifies by [`io::ErrorKind`] so that Windows and macOS errors map
    /// the same way as Linux errno values.
    #[must_use]
    pub fn classify(error: &io::Error, creating: bool) -> Self {
        match error.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge => {
                FailureKind::NoSpaceLeft
            }
            _ if creating => FailureKind::OpenWrite,
            _ => FailureKind::Write,
        }
    }

    /// Short name used in element messages.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::NoSpaceLeft => "no-space-left",
            FailureKind::OpenWrite => "open-write",
            FailureKind::Write => "write",
        }
    }

    /// Whether evicting the ring's own oldest segments may cure it.
    #[must_use]
    pub fn is_space(self, error: &io::Error) -> bool {
        self == FailureKind::NoSpaceLeft && error.kind() != io::ErrorKind::FileTooLarge
    }
}

/// A failed write: the operation, the file and the OS error.
#[derive(Debug)]
pub struct WriteFailure {
    pub kind: FailureKind,
    pub path: PathBuf,
    pub source: io::Error,
    /// The data was written and is in the ring; only making it durable
    /// (`fdatasync` with `sync-on-rotate`) failed. Nothing is to be dropped
    /// for it, and only a sync that works again ends it.
    pub unsynced: bool,
}

impl WriteFailure {
    #[must_use]
    pub fn new(path: PathBuf, source: io::Error, creating: bool) -> Self {
        WriteFailure {
            kind: FailureKind::classify(&source, creating),
            path,
            source,
            unsynced: false,
        }
    }

    /// The data at `path` was written, but syncing it failed with `source`.
    #[must_use]
    pub fn unsynced(path: PathBuf, source: io::Error) -> Self {
        WriteFailure {
            unsynced: true,
            ..WriteFailure::new(path, source, false)
        }
    }
}

impl fmt::Display for WriteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.kind == FailureKind::OpenWrite {
            "Cannot create"
        } else if self.unsynced {
            "Cannot sync"
        } else {
            "Cannot write to"
        };
        write!(f, "{what} '{}': {}", self.path.display(), self.source)
    }
}

impl std::error::Error for WriteFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Failure to open a ring; each says which path and why.
#[derive(Debug)]
pub enum RingError {
    NotADirectory(PathBuf),
    Locked(PathBuf),
    /// A segment with the highest sequence number a name can hold exists:
    /// the ring cannot number another one.
    SequencesExhausted(PathBuf),
    Io {
        context: String,
        source: io::Error,
    },
}

impl RingError {
    pub(super) fn io(context: impl Into<String>, source: io::Error) -> Self {
        RingError::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::NotADirectory(p) => {
                write!(f, "'{}' exists and is not a directory", p.display())
            }
            RingError::Locked(p) => write!(
                f,
                "'{}' is already in use by another streambuffersink (lock file {LOCK_NAME} is held)",
                p.display()
            ),
            RingError::SequencesExhausted(p) => write!(
                f,
                "'{}' has the highest sequence number a segment can have: no segment can follow it (move it away to record here)",
                p.display()
            ),
            RingError::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for RingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RingError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_error_kind() {
        let e = |k| io::Error::from(k);
        for k in [
            io::ErrorKind::StorageFull,
            io::ErrorKind::QuotaExceeded,
            io::ErrorKind::FileTooLarge,
        ] {
            assert_eq!(FailureKind::classify(&e(k), false), FailureKind::NoSpaceLeft);
            assert_eq!(FailureKind::classify(&e(k), true), FailureKind::NoSpaceLeft);
        }
        assert_eq!(
            FailureKind::classify(&e(io::ErrorKind::PermissionDenied), true),
            FailureKind::OpenWrite
        );
        assert_eq!(
            FailureKind::classify(&e(io::ErrorKind::Other), false),
            FailureKind::Write
        );
        #[cfg(unix)]
        {
            let enospc = io::Error::from_raw_os_error(libc::ENOSPC);
            let efbig = io::Error::from_raw_os_error(libc::EFBIG);
            assert_eq!(FailureKind::classify(&enospc, false), FailureKind::NoSpaceLeft);
            assert_eq!(FailureKind::classify(&efbig, false), FailureKind::NoSpaceLeft);
            assert!(FailureKind::NoSpaceLeft.is_space(&enospc));
            assert!(
                !FailureKind::NoSpaceLeft.is_space(&efbig),
                "evicting cannot cure a file size limit"
            );
        }
    }

    #[test]
    fn message_names_the_file_and_the_os_error() {
        let f = WriteFailure::new(
            "/buf/segment-000000000001.ts".into(),
            io::Error::from(io::ErrorKind::StorageFull),
            false,
        );
        let text = f.to_string();
        assert!(text.contains("/buf/segment-000000000001.ts"), "{text}");
        assert!(
            text.to_lowercase().contains("no storage space") || text.contains("space"),
            "{text}"
        );
    }
}
