// SPDX-License-Identifier: MPL-2.0
//! The [`Settings`] the properties of `streambuffersink` set, their
//! defaults and limits (the specifications are in `properties`), and what
//! the ring, the recorder and the archive are configured with from them.

use std::path::PathBuf;
use std::time::Duration;

use gst::glib;
use gst::prelude::*;

use super::WriteFailureMode;
use crate::archive::{ArchiveConfig, ArchiveLocation};
use crate::recorder::RecorderConfig;
use crate::ring::{LeaseLimit, Retention, RingConfig};
use crate::ts::ProgramNumber;

pub(super) const SECOND: u64 = 1_000_000_000;
pub(super) const DEFAULT_SEGMENT_DURATION: u64 = 6 * SECOND;
pub(super) const MIN_SEGMENT_DURATION: u64 = SECOND / 10;
pub(super) const MAX_SEGMENT_DURATION: u64 = 3600 * SECOND;
pub(super) const DEFAULT_MAX_DURATION: u64 = 30 * 60 * SECOND;
/// One year: anything longer is a typo, not a retention policy.
pub(super) const MAX_MAX_DURATION: u64 = 366 * 24 * 3600 * SECOND;
pub(super) const MAX_PLAYLIST_LENGTH: u32 = 1_000_000;
/// As ffmpeg's `hls_delete_threshold`: one rotation of grace is what a
/// client that just loaded the playlist needs.
pub(super) const DEFAULT_EXTRA_SEGMENTS: u32 = 1;
pub(super) const MAX_EXTRA_SEGMENTS: u32 = 1000;
pub(super) const DEFAULT_RETRY_INTERVAL: u64 = SECOND;
pub(super) const MIN_RETRY_INTERVAL: u64 = SECOND / 100;
pub(super) const MAX_RETRY_INTERVAL: u64 = 3600 * SECOND;
/// Ten years of archive: anything longer is a typo.
pub(super) const MAX_ARCHIVE_MAX_DURATION: u64 = 3660 * 24 * 3600 * SECOND;
/// Enough for a 10-minute outage at 20 Mbit/s, with room to spare.
pub(super) const DEFAULT_ARCHIVE_HOLD_SIZE: u64 = 4 * 1024 * 1024 * 1024;
/// A paused viewer keeps half an hour more of the past, a gigabyte at most
/// (8 minutes of 20 Mbit/s), unless told otherwise.
pub(super) const DEFAULT_LEASE_MAX_DURATION: u64 = 30 * 60 * SECOND;
pub(super) const DEFAULT_LEASE_MAX_SIZE: u64 = 1024 * 1024 * 1024;

#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) location: Option<PathBuf>,
    pub(super) segment_duration: u64,
    pub(super) max_duration: u64,
    pub(super) max_size: u64,
    pub(super) min_free_space: u64,
    pub(super) playlist_length: u32,
    pub(super) extra_segments: u32,
    pub(super) iframe_playlist: bool,
    pub(super) program_number: i32,
    /// Program numbers to keep; empty keeps every program.
    pub(super) programs: Vec<ProgramNumber>,
    pub(super) sync_on_rotate: bool,
    pub(super) reuse_files: bool,
    pub(super) write_failure_mode: WriteFailureMode,
    pub(super) retry_interval: u64,
    pub(super) archive_location: Option<ArchiveLocation>,
    pub(super) archive_endpoint: Option<String>,
    pub(super) archive_region: Option<String>,
    pub(super) archive_path_style: bool,
    pub(super) archive_max_duration: u64,
    pub(super) archive_hold_size: u64,
    pub(super) lease_max_duration: u64,
    pub(super) lease_max_size: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            location: None,
            segment_duration: DEFAULT_SEGMENT_DURATION,
            max_duration: DEFAULT_MAX_DURATION,
            max_size: 0,
            min_free_space: 0,
            playlist_length: 0,
            extra_segments: DEFAULT_EXTRA_SEGMENTS,
            iframe_playlist: true,
            program_number: -1,
            programs: Vec::new(),
            sync_on_rotate: false,
            reuse_files: true,
            write_failure_mode: WriteFailureMode::Drop,
            retry_interval: DEFAULT_RETRY_INTERVAL,
            archive_location: None,
            archive_endpoint: None,
            archive_region: None,
            archive_path_style: false,
            archive_max_duration: 0,
            archive_hold_size: DEFAULT_ARCHIVE_HOLD_SIZE,
            lease_max_duration: DEFAULT_LEASE_MAX_DURATION,
            lease_max_size: DEFAULT_LEASE_MAX_SIZE,
        }
    }
}

impl Settings {
    /// The ring these settings describe, in `dir`.
    pub(super) fn ring_config(&self, dir: PathBuf) -> RingConfig {
        RingConfig {
            dir,
            retention: Retention {
                max_duration_ns: self.max_duration,
                max_size: self.max_size,
                min_free_space: self.min_free_space,
            },
            playlist_length: self.playlist_length,
            segment_duration_ns: self.segment_duration,
            sync_on_rotate: self.sync_on_rotate,
            reuse_evicted: self.reuse_files,
            extra_segments: self.extra_segments,
            iframe_playlist: self.iframe_playlist,
            archive_hold_limit: self.archive_location.is_some().then_some(self.archive_hold_size),
            lease_limit: LeaseLimit {
                max_duration_ns: self.lease_max_duration,
                max_bytes: self.lease_max_size,
            },
        }
    }

    /// The archive these settings describe, if any.
    pub(super) fn archive_config(&self) -> Option<ArchiveConfig> {
        Some(ArchiveConfig {
            location: self.archive_location.clone()?,
            endpoint: self.archive_endpoint.clone(),
            region: self.archive_region.clone(),
            path_style: self.archive_path_style,
            max_duration_ns: self.archive_max_duration,
        })
    }

    /// The `program-number` to follow, `None` for the first in the PAT.
    pub(super) fn program(&self) -> Option<ProgramNumber> {
        u16::try_from(self.program_number).ok().map(ProgramNumber::new)
    }

    /// How the recorder cuts, filters and meets write failures.
    pub(super) fn recorder_config(&self) -> RecorderConfig {
        RecorderConfig {
            segment_duration_ns: self.segment_duration,
            program: self.program(),
            failure_mode: self.write_failure_mode.into(),
            retry_interval: Duration::from_nanos(self.retry_interval),
        }
    }

    /// Sets property `name` from `value`; `Err` says why it was refused.
    pub(super) fn set(&mut self, name: &str, value: &glib::Value) -> Result<(), String> {
        match name {
            "location" => match value.get::<Option<String>>().ok().flatten() {
                Some(s) if s.is_empty() => return Err("Refusing an empty location".into()),
                location => self.location = location.map(PathBuf::from),
            },
            "segment-duration" => self.segment_duration = value.get().unwrap_or(self.segment_duration),
            "max-duration" => self.max_duration = value.get().unwrap_or(self.max_duration),
            "max-size" => self.max_size = value.get().unwrap_or(self.max_size),
            "min-free-space" => self.min_free_space = value.get().unwrap_or(self.min_free_space),
            "playlist-length" => self.playlist_length = value.get().unwrap_or(self.playlist_length),
            "extra-segments" => self.extra_segments = value.get().unwrap_or(self.extra_segments),
            "iframe-playlist" => self.iframe_playlist = value.get().unwrap_or(self.iframe_playlist),
            "program-number" => self.program_number = value.get().unwrap_or(self.program_number),
            "programs" => self.programs = parse_programs(value.get::<Option<String>>().ok().flatten().as_deref())?,
            "sync-on-rotate" => self.sync_on_rotate = value.get().unwrap_or(self.sync_on_rotate),
            "reuse-files" => self.reuse_files = value.get().unwrap_or(self.reuse_files),
            "write-failure-mode" => self.write_failure_mode = value.get().unwrap_or(self.write_failure_mode),
            "retry-interval" => self.retry_interval = value.get().unwrap_or(self.retry_interval),
            "archive-location" => {
                self.archive_location = match value.get::<Option<String>>().ok().flatten() {
                    Some(uri) if !uri.is_empty() => Some(ArchiveLocation::parse(&uri)?),
                    _ => None,
                }
            }
            "archive-endpoint" => {
                self.archive_endpoint = match value.get::<Option<String>>().ok().flatten() {
                    Some(url) if url.is_empty() => None,
                    Some(url) => {
                        crate::archive::check_endpoint(&url).map_err(|why| format!("Refusing {why}"))?;
                        Some(url)
                    }
                    None => None,
                }
            }
            "archive-region" => {
                self.archive_region = value.get::<Option<String>>().ok().flatten().filter(|r| !r.is_empty())
            }
            "archive-path-style" => self.archive_path_style = value.get().unwrap_or(self.archive_path_style),
            "archive-max-duration" => self.archive_max_duration = value.get().unwrap_or(self.archive_max_duration),
            "archive-hold-size" => self.archive_hold_size = value.get().unwrap_or(self.archive_hold_size),
            "lease-max-duration" => self.lease_max_duration = value.get().unwrap_or(self.lease_max_duration),
            "lease-max-size" => self.lease_max_size = value.get().unwrap_or(self.lease_max_size),
            other => return Err(format!("Unknown property '{other}'")),
        }
        Ok(())
    }

    /// The value of property `name`; `None` for one that is not a setting.
    pub(super) fn get(&self, name: &str) -> Option<glib::Value> {
        Some(match name {
            "location" => self
                .location
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .to_value(),
            "segment-duration" => self.segment_duration.to_value(),
            "max-duration" => self.max_duration.to_value(),
            "max-size" => self.max_size.to_value(),
            "min-free-space" => self.min_free_space.to_value(),
            "playlist-length" => self.playlist_length.to_value(),
            "extra-segments" => self.extra_segments.to_value(),
            "iframe-playlist" => self.iframe_playlist.to_value(),
            "program-number" => self.program_number.to_value(),
            "programs" => self
                .programs
                .iter()
                .map(ProgramNumber::to_string)
                .collect::<Vec<_>>()
                .join(",")
                .to_value(),
            "sync-on-rotate" => self.sync_on_rotate.to_value(),
            "reuse-files" => self.reuse_files.to_value(),
            "write-failure-mode" => self.write_failure_mode.to_value(),
            "retry-interval" => self.retry_interval.to_value(),
            "archive-location" => self.archive_location.as_ref().map(ToString::to_string).to_value(),
            "archive-endpoint" => self.archive_endpoint.to_value(),
            "archive-region" => self.archive_region.to_value(),
            "archive-path-style" => self.archive_path_style.to_value(),
            "archive-max-duration" => self.archive_max_duration.to_value(),
            "archive-hold-size" => self.archive_hold_size.to_value(),
            "lease-max-duration" => self.lease_max_duration.to_value(),
            "lease-max-size" => self.lease_max_size.to_value(),
            _ => return None,
        })
    }
}

/// Parses the `programs` property: program numbers 1-65535 separated by
/// commas (spaces allowed), in any order, each once; empty or `None` keeps
/// every program.
fn parse_programs(text: Option<&str>) -> Result<Vec<ProgramNumber>, String> {
    let mut programs = Vec::new();
    for item in text.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.parse::<u16>() {
            Ok(0) => return Err("Refusing programs: 0 is the network information PID, not a program".into()),
            Ok(n) if programs.contains(&ProgramNumber::new(n)) => {
                return Err(format!("Refusing programs: {n} is listed twice"));
            }
            Ok(n) => programs.push(ProgramNumber::new(n)),
            Err(_) => {
                return Err(format!(
                    "Refusing programs '{}': '{item}' is not a program number (1-65535)",
                    text.unwrap_or("")
                ));
            }
        }
    }
    Ok(programs)
}

#[cfg(test)]
mod tests {
    use super::parse_programs;
    use crate::ts::ProgramNumber;

    #[test]
    fn programs_are_parsed_and_bad_lists_refused() {
        assert_eq!(parse_programs(None), Ok(vec![]));
        assert_eq!(parse_programs(Some("")), Ok(vec![]));
        assert_eq!(
            parse_programs(Some(" 101, 7 ,")),
            Ok(vec![ProgramNumber::new(101), ProgramNumber::new(7)])
        );
        for bad in ["0", "1,1", "x", "65536", "-3", "1;2"] {
            let e = parse_programs(Some(bad)).expect_err(bad);
            assert!(e.starts_with("Refusing programs"), "{e}");
        }
    }
}
