// SPDX-License-Identifier: MPL-2.0
//! `streambuffersink`: records a live MPEG-TS stream into an on-disk ring.
//!
//! The element is thin glue: properties and signals here and in `imp.rs`, all
//! recording logic in [`crate::recorder`], [`crate::ring`] and [`crate::ts`].

use gst::glib;
use gst::prelude::*;

use crate::recorder;
use crate::ring::FailureKind;

mod ext;
mod imp;
mod properties;
mod report;
mod settings;

pub use ext::StreamBufferSinkExt;
/// The properties' specifications, for the time-shift element that passes
/// them on.
pub(crate) use properties::param_specs;

glib::wrapper! {
    /// The time-shift buffer sink. See the crate README for its properties.
    pub struct StreamBufferSink(ObjectSubclass<imp::StreamBufferSink>)
        @extends gst_base::BaseSink, gst::Element, gst::Object;
}

/// The `write-failure-mode` property: what a write error does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstStreamBufferWriteFailureMode")]
pub enum WriteFailureMode {
    /// Keep running: drop what cannot be written (whole packets), retry every
    /// retry-interval, mark the hole in the playlist.
    #[enum_value(name = "Drop data and keep recording", nick = "drop")]
    Drop = 0,
    /// Hold the data in the streaming thread and retry until written.
    #[enum_value(name = "Block until the data can be written", nick = "block")]
    Block = 1,
    /// Post an error and stop, like filesink.
    #[enum_value(name = "Post an error and stop", nick = "error")]
    Error = 2,
}

/// The `kind` argument of the `start-recording` action signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstStreamBufferRecordingKind")]
pub enum RecordingKind {
    /// A standalone .ts file, history plus live stream, copied.
    #[enum_value(name = "Content: a standalone file", nick = "content")]
    Content = 0,
    /// A directory of hard links to whole ring segments plus a VOD playlist.
    #[enum_value(name = "Reference: hard links to the ring's segments", nick = "reference")]
    Reference = 1,
}

impl From<WriteFailureMode> for recorder::FailureMode {
    fn from(mode: WriteFailureMode) -> Self {
        match mode {
            WriteFailureMode::Drop => recorder::FailureMode::Drop,
            WriteFailureMode::Block => recorder::FailureMode::Block,
            WriteFailureMode::Error => recorder::FailureMode::Error,
        }
    }
}

impl From<RecordingKind> for recorder::RecordingKind {
    fn from(kind: RecordingKind) -> Self {
        match kind {
            RecordingKind::Content => recorder::RecordingKind::Content,
            RecordingKind::Reference => recorder::RecordingKind::Reference,
        }
    }
}

/// The `GST_RESOURCE_ERROR` code of the `write-failure` signal's `GError`
/// and of the element error in `error` mode.
impl From<FailureKind> for gst::ResourceError {
    fn from(kind: FailureKind) -> Self {
        match kind {
            FailureKind::NoSpaceLeft => gst::ResourceError::NoSpaceLeft,
            FailureKind::OpenWrite => gst::ResourceError::OpenWrite,
            FailureKind::Write => gst::ResourceError::Write,
        }
    }
}

/// Registers the element with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    WriteFailureMode::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    RecordingKind::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "streambuffersink",
        gst::Rank::NONE,
        StreamBufferSink::static_type(),
    )
}
