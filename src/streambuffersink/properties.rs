// SPDX-License-Identifier: MPL-2.0
//! The specifications of `streambuffersink`'s properties: limits, defaults
//! and the documentation `gst-inspect-1.0` shows (the values they set are
//! [`super::settings::Settings`]). Values outside a property's range are
//! refused by GLib itself.

use gst::glib;
use gst::prelude::*;

use super::WriteFailureMode;
use super::settings::*;

/// Every property's specification, in the order `gst-inspect-1.0` lists them.
// GStreamer's documentation format on each property (`/** Type:property: */`).
#[allow(unused_doc_comments)]
pub(crate) fn param_specs() -> Vec<glib::ParamSpec> {
    vec![
        /**
         * GstStreamBufferSink:location:
         *
         * Directory of the ring: segment files, ring.journal and index.m3u8
         * (created if missing)
         *
         * Since: 0.1
         */
        glib::ParamSpecString::builder("location")
            .nick("Location")
            .blurb("Directory of the ring: segment files, ring.journal and index.m3u8 (created if missing)")
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:segment-duration:
         *
         * Target segment length in ns; a segment ends at the first random-access
         * point after it
         *
         * Since: 0.1
         */
        glib::ParamSpecUInt64::builder("segment-duration")
            .nick("Segment duration")
            .blurb("Target segment length in ns; a segment ends at the first random-access point after it")
            .minimum(MIN_SEGMENT_DURATION)
            .maximum(MAX_SEGMENT_DURATION)
            .default_value(DEFAULT_SEGMENT_DURATION)
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:max-duration:
         *
         * Time-shift window in ns: oldest segments are deleted beyond it (0 =
         * unlimited)
         *
         * Since: 0.1
         */
        glib::ParamSpecUInt64::builder("max-duration")
            .nick("Maximum duration")
            .blurb("Time-shift window in ns: oldest segments are deleted beyond it (0 = unlimited)")
            .maximum(MAX_MAX_DURATION)
            .default_value(DEFAULT_MAX_DURATION)
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:max-size:
         *
         * Bytes the ring may occupy, the segment being written included (0 =
         * unlimited)
         *
         * Since: 0.1
         */
        glib::ParamSpecUInt64::builder("max-size")
            .nick("Maximum size")
            .blurb("Bytes the ring may occupy, the segment being written included (0 = unlimited)")
            .default_value(0)
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:min-free-space:
         *
         * Delete oldest segments to keep at least this many bytes free on the
         * filesystem (0 = off)
         *
         * Since: 0.1
         */
        glib::ParamSpecUInt64::builder("min-free-space")
            .nick("Minimum free space")
            .blurb("Delete oldest segments to keep at least this many bytes free on the filesystem (0 = off)")
            .default_value(0)
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:playlist-length:
         *
         * Newest segments listed in index.m3u8 (0 = the whole window)
         *
         * Since: 0.1
         */
        glib::ParamSpecUInt::builder("playlist-length")
            .nick("Playlist length")
            .blurb("Newest segments listed in index.m3u8 (0 = the whole window)")
            .maximum(MAX_PLAYLIST_LENGTH)
            .default_value(0)
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:extra-segments:
         *
         * Rotations a segment's file is kept after it left the playlist
         * (evicted), so that an HLS client that loaded the playlist just before
         * can still fetch it; kept files count in max-size and go first when the
         * disk is full
         *
         * Since: 0.1
         */
        glib::ParamSpecUInt::builder("extra-segments")
            .nick("Extra segments")
            .blurb("Rotations a segment's file is kept after it left the playlist (evicted), so that an HLS client that loaded the playlist just before can still fetch it; kept files count in max-size and go first when the disk is full")
            .maximum(MAX_EXTRA_SEGMENTS)
            .default_value(DEFAULT_EXTRA_SEGMENTS)
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:program-number:
         *
         * MPEG-TS program whose PMT and video define the cut points (-1 = first
         * program in the PAT)
         *
         * Since: 0.1
         */
        glib::ParamSpecInt::builder("program-number")
            .nick("Program number")
            .blurb("MPEG-TS program whose PMT and video define the cut points (-1 = first program in the PAT)")
            .minimum(-1)
            .maximum(65535)
            .default_value(-1)
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:programs:
         *
         * Comma-separated program numbers to keep from a multiplex (e.g.
         * \"101,102\"; empty = all): other programs' packets and null packets
         * are dropped (counted in stats) and the PAT is rewritten to list only
         * these; service information (PIDs below 0x20) and PIDs a kept program
         * shares are kept
         *
         * Since: 0.1
         */
        glib::ParamSpecString::builder("programs")
            .nick("Programs")
            .blurb("Comma-separated program numbers to keep from a multiplex (e.g. \"101,102\"; empty = all): other programs' packets and null packets are dropped (counted in stats) and the PAT is rewritten to list only these; service information (PIDs below 0x20) and PIDs a kept program shares are kept")
            .default_value(Some(""))
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:iframe-playlist:
         *
         * Also write iframes.m3u8 (EXT-X-I-FRAMES-ONLY: a byte range per
         * keyframe, the segment's PAT/PMT as EXT-X-MAP) and master.m3u8 naming
         * it and index.m3u8, for HLS players' fast-forward, rewind and
         * scrubbing; updated atomically at each rotation
         *
         * Since: 0.1
         */
        glib::ParamSpecBoolean::builder("iframe-playlist")
            .nick("I-frame playlist")
            .blurb("Also write iframes.m3u8 (EXT-X-I-FRAMES-ONLY: a byte range per keyframe, the segment's PAT/PMT as EXT-X-MAP) and master.m3u8 naming it and index.m3u8, for HLS players' fast-forward, rewind and scrubbing; updated atomically at each rotation")
            .default_value(true)
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:sync-on-rotate:
         *
         * fsync each finished segment, the journal and the playlist (survives
         * power loss; costs I/O)
         *
         * Since: 0.1
         */
        glib::ParamSpecBoolean::builder("sync-on-rotate")
            .nick("Sync on rotate")
            .blurb("fsync each finished segment, the journal and the playlist (survives power loss; costs I/O)")
            .default_value(false)
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:reuse-files:
         *
         * Write new segments over the files of segments evicted for max-duration
         * instead of deleting them (spares the kernel freeing and reallocating
         * their pages; not done with sync-on-rotate)
         *
         * Since: 0.1
         */
        glib::ParamSpecBoolean::builder("reuse-files")
            .nick("Reuse files")
            .blurb("Write new segments over the files of segments evicted for max-duration instead of deleting them (spares the kernel freeing and reallocating their pages; not done with sync-on-rotate)")
            .default_value(true)
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:write-failure-mode:
         *
         * What a write error does: drop data and keep running, block until it
         * can be written, or stop with an error
         *
         * Since: 0.1
         */
        glib::ParamSpecEnum::builder_with_default("write-failure-mode", WriteFailureMode::Drop)
            .nick("Write failure mode")
            .blurb("What a write error does: drop data and keep running, block until it can be written, or stop with an error")
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:retry-interval:
         *
         * Minimum time in ns between two write attempts while writes fail
         *
         * Since: 0.1
         */
        glib::ParamSpecUInt64::builder("retry-interval")
            .nick("Retry interval")
            .blurb("Minimum time in ns between two write attempts while writes fail")
            .minimum(MIN_RETRY_INTERVAL)
            .maximum(MAX_RETRY_INTERVAL)
            .default_value(DEFAULT_RETRY_INTERVAL)
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:archive-location:
         *
         * S3 bucket and prefix that completed segments are archived to
         * (s3://bucket/prefix); none: no archive. Credentials come from the
         * AWS_* environment variables or the AWS_PROFILE of
         * ~/.aws/credentials, never from a property
         *
         * Since: 0.2
         */
        glib::ParamSpecString::builder("archive-location")
            .nick("Archive location")
            .blurb("S3 bucket and prefix that completed segments are archived to (s3://bucket/prefix); none: no archive. Credentials come from the AWS_* environment variables or the AWS_PROFILE of ~/.aws/credentials, never from a property")
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:archive-endpoint:
         *
         * URL of an S3-compatible server (http://host:port); none: AWS S3
         *
         * Since: 0.2
         */
        glib::ParamSpecString::builder("archive-endpoint")
            .nick("Archive endpoint")
            .blurb("URL of an S3-compatible server (http://host:port); none: AWS S3")
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:archive-region:
         *
         * Region of the bucket; none: AWS_REGION or AWS_DEFAULT_REGION, else
         * us-east-1
         *
         * Since: 0.2
         */
        glib::ParamSpecString::builder("archive-region")
            .nick("Archive region")
            .blurb("Region of the bucket; none: AWS_REGION or AWS_DEFAULT_REGION, else us-east-1")
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:archive-path-style:
         *
         * Address the bucket in the path (endpoint/bucket/key), as most
         * S3-compatible servers want, instead of in the host name
         *
         * Since: 0.2
         */
        glib::ParamSpecBoolean::builder("archive-path-style")
            .nick("Archive path-style")
            .blurb("Address the bucket in the path (endpoint/bucket/key), as most S3-compatible servers want, instead of in the host name")
            .default_value(false)
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:archive-max-duration:
         *
         * Archive window in ns: segments older than this before the newest
         * archived one are deleted from the bucket (0 = keep everything)
         *
         * Since: 0.2
         */
        glib::ParamSpecUInt64::builder("archive-max-duration")
            .nick("Archive maximum duration")
            .blurb("Archive window in ns: segments older than this before the newest archived one are deleted from the bucket (0 = keep everything)")
            .maximum(MAX_ARCHIVE_MAX_DURATION)
            .default_value(0)
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:archive-hold-size:
         *
         * Bytes of segments the ring evicted that are kept on disk until
         * they are archived; past it (or below min-free-space) the oldest
         * are let go and the archive has a hole
         *
         * Since: 0.2
         */
        glib::ParamSpecUInt64::builder("archive-hold-size")
            .nick("Archive hold size")
            .blurb("Bytes of segments the ring evicted that are kept on disk until they are archived; past it (or below min-free-space) the oldest are let go and the archive has a hole")
            .default_value(DEFAULT_ARCHIVE_HOLD_SIZE)
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:lease-max-duration:
         *
         * Content in ns a reader's lease may hold back beyond max-duration and
         * max-size (a paused viewer's segment and the newer ones are kept);
         * past it the writer evicts anyway and the reader is told; 0 turns
         * leases off. Never below min-free-space
         *
         * Since: 0.2
         */
        glib::ParamSpecUInt64::builder("lease-max-duration")
            .nick("Lease maximum duration")
            .blurb("Content in ns a reader's lease may hold back beyond max-duration and max-size (a paused viewer's segment and the newer ones are kept); past it the writer evicts anyway and the reader is told; 0 turns leases off. Never below min-free-space")
            .maximum(MAX_MAX_DURATION)
            .default_value(DEFAULT_LEASE_MAX_DURATION)
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:lease-max-size:
         *
         * Bytes a reader's lease may hold back beyond max-duration and
         * max-size; 0 turns leases off
         *
         * Since: 0.2
         */
        glib::ParamSpecUInt64::builder("lease-max-size")
            .nick("Lease maximum size")
            .blurb("Bytes a reader's lease may hold back beyond max-duration and max-size; 0 turns leases off")
            .default_value(DEFAULT_LEASE_MAX_SIZE)
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferSink:stats:
         *
         * Counters of the recording (bytes, packets, segments, sync losses,
         * write failures, window), like SBE's IStreamBufferDataCounters
         *
         * Since: 0.1
         */
        glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
            .nick("Statistics")
            .blurb("Counters of the recording (bytes, packets, segments, sync losses, write failures, window), like SBE's IStreamBufferDataCounters")
            .read_only()
            .build(),
    ]
}
