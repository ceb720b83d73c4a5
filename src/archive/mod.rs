// SPDX-License-Identifier: MPL-2.0
//! The archive tier: completed segments of the ring copied to S3-compatible
//! object storage, with hourly playlists, its own retention, and reports of
//! outages, all off the streaming thread.
//!
//! - here: what the archive is configured with ([`ArchiveConfig`]) and what
//!   it reports ([`ArchiveEvent`], [`ArchiveStats`]);
//! - `store`: the bucket, through `object_store` on a runtime of its own;
//! - `playlists`: the archive's playlists (an hour each, and a window);
//! - `uploader`: the thread that empties the ring's
//!   [`crate::ring::ArchiveQueue`] into the bucket;
//! - `catalog`: the archive read back (its hours, a range made a ring);
//! - `fetcher`: the thread that lists it and fetches what
//!   `streambuffersrc` reads of it;
//! - `restore`: the thread that fetches what recordings reaching back past
//!   the ring take from it.
//!
//! The names in the bucket are [`crate::layout::archive`]'s.

// The bucket side is used only by builds with the archive tier.
#![cfg_attr(not(feature = "archive"), allow(dead_code))]

#[cfg(feature = "archive")]
pub mod catalog;
#[cfg(feature = "archive")]
mod fetcher;
#[cfg(feature = "archive")]
mod playlists;
#[cfg(feature = "archive")]
mod restore;
#[cfg(feature = "archive")]
mod store;
#[cfg(feature = "archive")]
mod uploader;

pub use crate::ring::archive_queue::Hole;
#[cfg(feature = "archive")]
pub use fetcher::ArchiveFetcher;
#[cfg(feature = "archive")]
pub use restore::Restorer;
#[cfg(feature = "archive")]
pub use store::ArchiveStore;
#[cfg(feature = "archive")]
pub use uploader::Uploader;

/// Largest segment fetched from the archive (an hour of 9 Mbit/s).
#[cfg(feature = "archive")]
const SEGMENT_MAX_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Whether this build archives (cargo feature `archive`, on by default).
pub const SUPPORTED: bool = cfg!(feature = "archive");

/// Where the archive is and how long it keeps segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    pub location: ArchiveLocation,
    /// `http(s)://host:port` of an S3-compatible server; `None`: AWS.
    pub endpoint: Option<String>,
    /// `None`: from the environment (`AWS_REGION`, `AWS_DEFAULT_REGION`),
    /// else `us-east-1`.
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), which most
    /// S3-compatible servers want, instead of virtual-hosted style.
    pub path_style: bool,
    /// Segments whose start is older than this before the newest archived
    /// one are deleted from the bucket; 0 keeps everything.
    pub max_duration_ns: u64,
}

impl ArchiveConfig {
    /// What the ring records of it for its readers.
    #[must_use]
    pub fn description(&self) -> crate::layout::archive::Description {
        crate::layout::archive::Description {
            location: self.location.to_string(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            path_style: self.path_style,
        }
    }

    /// The archive a ring's description names (no retention: readers do
    /// not delete).
    pub fn from_description(d: &crate::layout::archive::Description) -> Result<ArchiveConfig, String> {
        Ok(ArchiveConfig {
            location: ArchiveLocation::parse(&d.location)?,
            endpoint: d.endpoint.clone(),
            region: d.region.clone(),
            path_style: d.path_style,
            max_duration_ns: 0,
        })
    }
}

/// Checks an S3-compatible server's address: an `http://` or `https://`
/// URL (the error says so, naming it).
pub fn check_endpoint(url: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("archive endpoint '{url}' is not an http:// or https:// URL"))
    }
}

/// `s3://bucket/prefix`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveLocation {
    pub bucket: String,
    /// Without leading or trailing slash; may be empty.
    pub prefix: String,
}

impl ArchiveLocation {
    /// Parses `s3://bucket[/prefix]`. The bucket follows S3's naming rules
    /// (3-63 lowercase letters, digits, `.`, `-`); the prefix is made of
    /// path parts of letters, digits, `-`, `_` and `.`, none of them `.`
    /// or `..`, so that every key the archive writes is one every
    /// S3-compatible store spells the same way.
    pub fn parse(uri: &str) -> Result<ArchiveLocation, String> {
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| format!("'{uri}' is not an s3:// URI (s3://bucket/prefix)"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !bucket_ok {
            return Err(format!(
                "'{bucket}' is not a bucket name (3 to 63 lowercase letters, digits, '.' and '-')"
            ));
        }
        let prefix = prefix.trim_end_matches('/');
        let part_ok = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        };
        if !prefix.is_empty() && !prefix.split('/').all(part_ok) {
            return Err(format!(
                "'{prefix}' is not a usable prefix (parts of letters, digits, '-', '_' and '.')"
            ));
        }
        Ok(ArchiveLocation {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl std::fmt::Display for ArchiveLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// What the uploader reports, from its own thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveEvent {
    /// The first failed upload of an outage (one per outage).
    Failure {
        error: String,
        /// Segments waiting for the archive.
        waiting: u64,
    },
    /// The first upload that went through after a failure.
    Clear {
        waiting: u64,
        /// How long the outage lasted.
        outage_ms: u64,
    },
    /// A segment that will never be archived.
    Hole { hole: Hole, holes_total: u64 },
}

/// What the archive has done, for the sink's `stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    pub segments_uploaded: u64,
    pub bytes_uploaded: u64,
    /// Upload attempts that failed (retried).
    pub upload_errors: u64,
    /// Outages (failure episodes).
    pub failures: u64,
    pub holes: u64,
    pub objects_deleted: u64,
    /// CPU time the uploader's thread used, ns (0 where unknown).
    pub cpu_ns: u64,
    pub waiting: u64,
    pub held_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_refuse() {
        assert_eq!(
            ArchiveLocation::parse("s3://tv-archive/channel-1/hd/"),
            Ok(ArchiveLocation {
                bucket: "tv-archive".into(),
                prefix: "channel-1/hd".into()
            })
        );
        assert_eq!(ArchiveLocation::parse("s3://abc").map(|l| l.prefix), Ok(String::new()));
        for bad in [
            "http://b/p",
            "s3://",
            "s3://ab/p",
            "s3://Bucket/p",
            "s3://b_b/p",
            "s3://bucket/a/../b",
            "s3://bucket//a",
            "s3://bucket/a b",
            "s3://bucket/a%2f",
            "s3://-bucket/a",
        ] {
            assert!(ArchiveLocation::parse(bad).is_err(), "{bad}");
        }
    }
}
