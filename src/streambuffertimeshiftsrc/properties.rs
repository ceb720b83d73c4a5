// SPDX-License-Identifier: MPL-2.0
//! `streambuffertimeshiftsrc`'s properties: its own (`uri`, `location`,
//! the two `stats`), and those of its ring's writer and reader passed on,
//! with their own specifications (ranges, defaults, documentation), so that
//! a window, a segment duration or a write-failure mode is set as on the
//! elements themselves.

use gst::glib;
use gst::prelude::*;

/// Which object holds a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    /// The element itself: `uri`, `location`.
    Bin,
    /// The ring's `streambuffersink` (see [`sink_name`]).
    Sink,
    /// The `streambuffersrc` playing it, by this name.
    Source(&'static str),
}

/// The sink's properties not passed on: the bin chooses the ring's place,
/// and `stats` is the reader's (the writer's is `recorder-stats`).
const SINK_OWN: [&str; 2] = ["location", "stats"];
/// The source's properties not passed on: it plays the ring the bin makes
/// from the live edge.
const SOURCE_OWN: [&str; 3] = ["location", "start-position", "start-delay"];

/// The sink's property that `name` passes on.
pub(super) fn sink_name(name: &str) -> &str {
    if name == "recorder-stats" { "stats" } else { name }
}

/// Who holds property `name` (one of [`param_specs`]).
pub(super) fn owner(name: &str) -> Owner {
    static SOURCE_NAMES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
        crate::streambuffersrc::param_specs()
            .iter()
            .map(|p| &*Box::leak(p.name().to_owned().into_boxed_str()))
            .filter(|n| !SOURCE_OWN.contains(n))
            .collect()
    });
    match name {
        "uri" | "location" => Owner::Bin,
        _ => match SOURCE_NAMES.iter().find(|n| **n == name) {
            Some(n) => Owner::Source(n),
            None => Owner::Sink,
        },
    }
}

// GStreamer's documentation format on each property (`/** Type:property: */`).
#[allow(unused_doc_comments)]
pub(super) fn param_specs() -> Vec<glib::ParamSpec> {
    let mut specs = vec![
        /**
         * GstStreamBufferTimeshiftSrc:uri:
         *
         * The live MPEG-TS URI to time-shift: udp://, rtp://, srt://, rist://,
         * http:// or https://
         *
         * Since: 0.3
         */
        glib::ParamSpecString::builder("uri")
            .nick("URI")
            .blurb("The live MPEG-TS URI to time-shift: udp://, rtp://, srt://, rist://, http:// or https://")
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferTimeshiftSrc:location:
         *
         * Ring directory, kept after stop (a ring other tools read); none: a
         * temporary directory under $TMPDIR, removed at stop
         *
         * Since: 0.3
         */
        glib::ParamSpecString::builder("location")
            .nick("Location")
            .blurb("Ring directory, kept after stop (a ring other tools read); none: a temporary directory under $TMPDIR, removed at stop")
            .mutable_ready()
            .build(),
        /**
         * GstStreamBufferTimeshiftSrc:recorder-stats:
         *
         * The ring writer's counters: streambuffersink's stats
         *
         * Since: 0.3
         */
        glib::ParamSpecBoxed::builder::<gst::Structure>("recorder-stats")
            .nick("Recorder statistics")
            .blurb("The ring writer's counters: streambuffersink's stats")
            .read_only()
            .build(),
    ];
    specs.extend(
        crate::streambuffersrc::param_specs()
            .into_iter()
            .filter(|p| !SOURCE_OWN.contains(&p.name())),
    );
    specs.extend(
        crate::streambuffersink::param_specs()
            .into_iter()
            .filter(|p| !SINK_OWN.contains(&p.name()))
            .map(|p| match p.downcast_ref::<glib::ParamSpecUInt64>() {
                Some(d) if p.name() == "segment-duration" => segment_duration(d),
                _ => p,
            }),
    );
    specs
}

/// Segments of 2 s, not the sink's 6: playback starts once the first one
/// is published, so this is how long a viewer waits for the first picture.
pub(super) const SEGMENT_DURATION: u64 = 2_000_000_000;

/// The sink's `segment-duration` with this element's default.
// GStreamer's documentation format (`/** Type:property: */`).
#[allow(unused_doc_comments)]
fn segment_duration(sink: &glib::ParamSpecUInt64) -> glib::ParamSpec {
    /**
     * GstStreamBufferTimeshiftSrc:segment-duration:
     *
     * Target segment length in ns (a segment ends at the first random-access
     * point after it); playback starts once the first segment is published
     *
     * Since: 0.3
     */
    glib::ParamSpecUInt64::builder("segment-duration")
        .nick("Segment duration")
        .blurb("Target segment length in ns (a segment ends at the first random-access point after it); playback starts once the first segment is published")
        .minimum(sink.minimum())
        .maximum(sink.maximum())
        .default_value(SEGMENT_DURATION)
        .mutable_ready()
        .build()
}

/// Property `name` of `obj` read from `text`, as a URI's fragment gives it;
/// the error says why it cannot be set.
pub(super) fn value_from_uri(obj: &impl IsA<glib::Object>, name: &str, text: &str) -> Result<glib::Value, String> {
    let pspec = obj
        .find_property(name)
        .filter(|p| p.flags().contains(glib::ParamFlags::WRITABLE) && name != "uri")
        .ok_or_else(|| format!("'{name}' is not a property the URI can set"))?;
    let value = glib::Value::deserialize(text, pspec.value_type())
        .map_err(|_| format!("{name}: '{text}' is not a {}", pspec.value_type().name()))?;
    let in_range = if let Some(p) = pspec.downcast_ref::<glib::ParamSpecUInt64>() {
        value
            .get::<u64>()
            .is_ok_and(|v| (p.minimum()..=p.maximum()).contains(&v))
    } else if let Some(p) = pspec.downcast_ref::<glib::ParamSpecUInt>() {
        value
            .get::<u32>()
            .is_ok_and(|v| (p.minimum()..=p.maximum()).contains(&v))
    } else if let Some(p) = pspec.downcast_ref::<glib::ParamSpecInt>() {
        value
            .get::<i32>()
            .is_ok_and(|v| (p.minimum()..=p.maximum()).contains(&v))
    } else {
        true
    };
    if !in_range {
        return Err(format!("{name}: {text} is out of its range"));
    }
    Ok(value)
}
