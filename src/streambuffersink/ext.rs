// SPDX-License-Identifier: MPL-2.0
//! A typed API for `streambuffersink`'s signals and action signals, on any
//! `gst::Element` (an application usually gets the sink from
//! `gst::ElementFactory::make` or a parsed pipeline, whichever copy of the
//! plugin registered it). Each method is the signal of the same name.

use std::path::Path;

use gst::glib;
use gst::prelude::*;

use super::RecordingKind;

/// Typed access to a `streambuffersink`'s signals.
///
/// ```
/// use gst::prelude::*;
/// use gststreambuffer::streambuffersink::{RecordingKind, StreamBufferSinkExt};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// gst::init()?;
/// gststreambuffer::plugin_register_static()?;
/// let sink = gst::ElementFactory::make("streambuffersink").build()?;
/// sink.connect_write_failure(|_sink, error| eprintln!("write failure: {error}"));
/// sink.connect_write_failure_clear(|_sink, bytes, duration| {
///     eprintln!("writing again; {bytes} bytes ({duration:?}) were lost")
/// });
/// // Not running: the recording is refused (and a WARNING says why).
/// let five_minutes_back = gst::ClockTime::from_seconds(300).into_negative();
/// assert_eq!(sink.start_recording(std::path::Path::new("/tmp/goal.ts"), RecordingKind::Content, five_minutes_back), None);
/// assert!(sink.sink_stats().get::<bool>("running").is_ok_and(|running| !running));
/// # Ok(())
/// # }
/// ```
pub trait StreamBufferSinkExt: IsA<gst::Element> + 'static {
    /// `write-failure`: writes started failing (once per episode), with
    /// the `GST_RESOURCE_ERROR` that says why. Emitted from the streaming
    /// thread.
    fn connect_write_failure<F: Fn(&gst::Element, &glib::Error) + Send + Sync + 'static>(
        &self,
        f: F,
    ) -> glib::SignalHandlerId {
        self.as_ref().connect("write-failure", false, move |args| {
            if let (Some(Ok(sink)), Some(Ok(error))) = (
                args.first().map(|v| v.get::<gst::Element>()),
                args.get(1).map(|v| v.get::<glib::Error>()),
            ) {
                f(&sink, &error);
            }
            None
        })
    }

    /// `write-failure-clear`: a write succeeded again (once per episode),
    /// with the bytes and the stream time dropped meanwhile (`None` when
    /// unknown).
    fn connect_write_failure_clear<F: Fn(&gst::Element, u64, Option<gst::ClockTime>) + Send + Sync + 'static>(
        &self,
        f: F,
    ) -> glib::SignalHandlerId {
        self.as_ref().connect("write-failure-clear", false, move |args| {
            if let (Some(Ok(sink)), Some(Ok(bytes)), Some(Ok(ns))) = (
                args.first().map(|v| v.get::<gst::Element>()),
                args.get(1).map(|v| v.get::<u64>()),
                args.get(2).map(|v| v.get::<u64>()),
            ) {
                f(
                    &sink,
                    bytes,
                    (ns != u64::MAX).then(|| gst::ClockTime::from_nseconds(ns)),
                );
            }
            None
        })
    }

    /// `encryption-on` (`true`) and `encryption-off` (`false`): the
    /// program's elementary streams became scrambled, or clear again.
    fn connect_encryption<F: Fn(&gst::Element, bool) + Send + Sync + Clone + 'static>(
        &self,
        f: F,
    ) -> (glib::SignalHandlerId, glib::SignalHandlerId) {
        let connect = |name: &str, on: bool, f: F| {
            self.as_ref().connect(name, false, move |args| {
                if let Some(Ok(sink)) = args.first().map(|v| v.get::<gst::Element>()) {
                    f(&sink, on);
                }
                None
            })
        };
        (
            connect("encryption-on", true, f.clone()),
            connect("encryption-off", false, f),
        )
    }

    /// `start-recording`: a recording at `location` starting `start_offset`
    /// from now (negative reaches back into the ring, positive is
    /// scheduled). Its id, or `None` if refused (a WARNING message says why).
    fn start_recording(
        &self,
        location: &Path,
        kind: RecordingKind,
        start_offset: gst::Signed<gst::ClockTime>,
    ) -> Option<u32> {
        let start_offset_ns = offset_ns(start_offset);
        let id = self.as_ref().emit_by_name::<u32>(
            "start-recording",
            &[
                &location.to_string_lossy().into_owned(),
                &kind_value(kind),
                &start_offset_ns,
            ],
        );
        (id != 0).then_some(id)
    }

    /// `start-recording-at`: as [`Self::start_recording`], starting at a
    /// date-time (in the past: the content received then; in the future:
    /// scheduled).
    fn start_recording_at(&self, location: &Path, kind: RecordingKind, start: &glib::DateTime) -> Option<u32> {
        let id = self.as_ref().emit_by_name::<u32>(
            "start-recording-at",
            &[&location.to_string_lossy().into_owned(), &kind_value(kind), start],
        );
        (id != 0).then_some(id)
    }

    /// `stop-recording`: stops recording `id` `stop_offset` from now
    /// (negative: in the past; zero: now; positive: later). False for an
    /// unknown id.
    fn stop_recording(&self, id: u32, stop_offset: gst::Signed<gst::ClockTime>) -> bool {
        self.as_ref()
            .emit_by_name::<bool>("stop-recording", &[&id, &offset_ns(stop_offset)])
    }

    /// `stop-recording-at`: stops recording `id` at a date-time.
    fn stop_recording_at(&self, id: u32, stop: &glib::DateTime) -> bool {
        self.as_ref().emit_by_name::<bool>("stop-recording-at", &[&id, stop])
    }

    /// The `stats` property: the sink's counters.
    fn sink_stats(&self) -> gst::Structure {
        self.as_ref().property::<gst::Structure>("stats")
    }
}

impl<O: IsA<gst::Element>> StreamBufferSinkExt for O {}

/// `kind` as a value of the enum type the loaded plugin registered (this
/// crate's copy may not be the one that did, when the plugin was loaded
/// from its shared library).
/// A signed offset as the signals take it: gint64 nanoseconds, saturating.
fn offset_ns(offset: gst::Signed<gst::ClockTime>) -> i64 {
    match offset {
        gst::Signed::Positive(t) => i64::try_from(t.nseconds()).unwrap_or(i64::MAX),
        gst::Signed::Negative(t) => i64::try_from(t.nseconds()).map_or(i64::MIN, |ns| -ns),
    }
}

fn kind_value(kind: RecordingKind) -> glib::Value {
    glib::Type::from_name("GstStreamBufferRecordingKind")
        .and_then(glib::EnumClass::with_type)
        .and_then(|class| class.to_value(kind as i32))
        .unwrap_or_else(|| kind.to_value())
}
