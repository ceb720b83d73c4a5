// SPDX-License-Identifier: MPL-2.0
//! `streambuffersrc`'s properties: their settings, defaults and
//! specifications (with GStreamer's documentation comments).

use std::path::PathBuf;

use gst::glib;
use gst::prelude::*;

use super::StartPosition;
use crate::ts::PACKET_SIZE;

/// 348 packets: about 64 KiB per buffer.
pub(super) const DEFAULT_BLOCKSIZE: u32 = 348 * PACKET_SIZE as u32;
pub(super) const DEFAULT_POLL_INTERVAL: u64 = 50_000_000;
/// Keyframes shown per second in fast trick play (the Windows engine's
/// `SetRateEx` frames per second).
pub(super) const DEFAULT_TRICK_FRAME_RATE: u32 = 8;

#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) location: Option<PathBuf>,
    pub(super) start_position: StartPosition,
    pub(super) start_delay: u64,
    pub(super) poll_interval: u64,
    pub(super) trick_frame_rate: u32,
    pub(super) archive: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            location: None,
            start_position: StartPosition::Live,
            start_delay: 0,
            poll_interval: DEFAULT_POLL_INTERVAL,
            trick_frame_rate: DEFAULT_TRICK_FRAME_RATE,
            archive: true,
        }
    }
}

// GStreamer's documentation format on each property (`/** Type:property: */`).
#[allow(unused_doc_comments)]
pub(crate) fn param_specs() -> Vec<glib::ParamSpec> {
    vec![
        /**
         * GstStreamBufferSrc:location:
         *
         * Ring (or recording) directory to play: the one a streambuffersink
         * writes
         *
         * Since: 0.1
         */
        glib::ParamSpecString::builder("location")
            .nick("Location")
            .blurb("Ring (or recording) directory to play: the one a streambuffersink writes")
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSrc:start-position:
         *
         * Where playback starts: the live edge (minus start-delay) or the oldest
         * content
         *
         * Since: 0.1
         */
        glib::ParamSpecEnum::builder_with_default("start-position", StartPosition::Live)
            .nick("Start position")
            .blurb("Where playback starts: the live edge (minus start-delay) or the oldest content")
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSrc:start-delay:
         *
         * With start-position=live, start this many ns behind the live edge
         * (time-shift)
         *
         * Since: 0.1
         */
        glib::ParamSpecUInt64::builder("start-delay")
            .nick("Start delay")
            .blurb("With start-position=live, start this many ns behind the live edge (time-shift)")
            .maximum(366 * 24 * 3600 * 1_000_000_000)
            .default_value(0)
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSrc:stats:
         *
         * Counters of the playback (bytes and buffers out, segments read, time
         * holes, stale deletions and read failures met, current segment,
         * presentation position and lag behind the live edge in ns), like SBE's
         * counters on its source
         *
         * Since: 0.1
         */
        glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
            .nick("Statistics")
            .blurb("Counters of the playback (bytes and buffers out, segments read, time holes, stale deletions and read failures met, current segment, presentation position and lag behind the live edge in ns), like SBE's counters on its source")
            .read_only()
            .build(),
        /**
         * GstStreamBufferSrc:trick-frame-rate:
         *
         * Keyframes shown per second when playing faster than 6x either way: the
         * others are skipped, not read (0 = every keyframe, as up to 6x)
         *
         * Since: 0.1
         */
        glib::ParamSpecUInt::builder("trick-frame-rate")
            .nick("Trick frame rate")
            .blurb("Keyframes shown per second when playing faster than 6x either way: the others are skipped, not read (0 = every keyframe, as up to 6x)")
            .maximum(1000)
            .default_value(DEFAULT_TRICK_FRAME_RATE)
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSrc:archive:
         *
         * Reach back into the ring's archive, if its sink archives to S3: the
         * window starts at the archive's oldest segment (credentials from the
         * AWS_* environment or ~/.aws/credentials, as the sink's)
         *
         * Since: 0.2
         */
        glib::ParamSpecBoolean::builder("archive")
            .nick("Archive")
            .blurb("Reach back into the ring's archive, if its sink archives to S3: the window starts at the archive's oldest segment (credentials from the AWS_* environment or ~/.aws/credentials, as the sink's)")
            .default_value(true)
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSrc:poll-interval:
         *
         * How often (ns) to look for new data at the live edge
         *
         * Since: 0.1
         */
        glib::ParamSpecUInt64::builder("poll-interval")
            .nick("Poll interval")
            .blurb("How often (ns) to look for new data at the live edge")
            .minimum(1_000_000)
            .maximum(10_000_000_000)
            .default_value(DEFAULT_POLL_INTERVAL)
            .mutable_ready()
            .build(),
    ]
}

impl Settings {
    /// Sets property `name`; an error says why a value was refused.
    pub(super) fn set(&mut self, name: &str, value: &glib::Value) -> Result<(), String> {
        match name {
            "location" => match value.get::<Option<String>>().ok().flatten() {
                Some(l) if l.is_empty() => return Err("Refusing an empty location".into()),
                l => self.location = l.map(PathBuf::from),
            },
            "start-position" => self.start_position = value.get().unwrap_or(self.start_position),
            "start-delay" => self.start_delay = value.get().unwrap_or(self.start_delay),
            "poll-interval" => self.poll_interval = value.get().unwrap_or(self.poll_interval),
            "trick-frame-rate" => self.trick_frame_rate = value.get().unwrap_or(self.trick_frame_rate),
            "archive" => self.archive = value.get().unwrap_or(self.archive),
            other => return Err(format!("Unknown property '{other}'")),
        }
        Ok(())
    }

    /// The value of property `name`, `None` for one these settings do not hold.
    pub(super) fn get(&self, name: &str) -> Option<glib::Value> {
        Some(match name {
            "location" => self
                .location
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .to_value(),
            "start-position" => self.start_position.to_value(),
            "start-delay" => self.start_delay.to_value(),
            "poll-interval" => self.poll_interval.to_value(),
            "trick-frame-rate" => self.trick_frame_rate.to_value(),
            "archive" => self.archive.to_value(),
            _ => return None,
        })
    }
}
