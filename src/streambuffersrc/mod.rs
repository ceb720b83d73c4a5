// SPDX-License-Identifier: MPL-2.0
//! `streambuffersrc`: plays a ring back, time-shifted, following the writer.
//!
//! Thin glue over [`crate::reader`]: properties, seeking and queries here
//! and in `imp.rs`.

use gst::glib;
use gst::prelude::*;

use crate::reader;

mod ext;
mod imp;
mod report;
mod settings;
pub mod uri;

pub use ext::StreamBufferSrcExt;
/// The properties' specifications, for the time-shift element that passes
/// them on.
pub(crate) use settings::param_specs;

glib::wrapper! {
    /// The time-shift playback source. See the crate README.
    pub struct StreamBufferSrc(ObjectSubclass<imp::StreamBufferSrc>)
        @extends gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object,
        @implements gst::URIHandler;
}

/// The `start-position` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstStreamBufferStartPosition")]
pub enum StartPosition {
    /// The live edge (the newest random-access point), minus `start-delay`.
    #[enum_value(name = "Live edge", nick = "live")]
    Live = 0,
    /// The oldest content in the ring.
    #[enum_value(name = "Oldest content", nick = "oldest")]
    Oldest = 1,
}

impl From<StartPosition> for reader::StartPosition {
    fn from(position: StartPosition) -> Self {
        match position {
            StartPosition::Live => reader::StartPosition::Live,
            StartPosition::Oldest => reader::StartPosition::Oldest,
        }
    }
}

/// Registers the element with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    StartPosition::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "streambuffersrc",
        // Found by playbin for streambuffer:// URIs (no other element
        // handles them; decoders are never autoplugged from sources).
        gst::Rank::PRIMARY,
        StreamBufferSrc::static_type(),
    )
}
