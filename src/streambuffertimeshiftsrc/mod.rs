// SPDX-License-Identifier: MPL-2.0
//! `streambuffertimeshiftsrc`: time-shift of a live URI in one element, for
//! `gst-play-1.0 streambuffer+udp://...` and `playbin`.
//!
//! A bin over the two other elements: the live input is recorded by a
//! `streambuffersink` in a pipeline of its own (`input`), and played by a
//! `streambuffersrc`, the bin's only child. Why two pipelines: a live source
//! does not produce while its pipeline is PAUSED, so a recorder inside the
//! viewer's pipeline would stop whenever the viewer pauses.

use gst::glib;
use gst::prelude::*;

mod imp;
mod input;
mod properties;
pub mod uri;

glib::wrapper! {
    /// The time-shift source of a live URI. See the crate README.
    pub struct StreamBufferTimeshiftSrc(ObjectSubclass<imp::StreamBufferTimeshiftSrc>)
        @extends gst::Bin, gst::Element, gst::Object,
        @implements gst::URIHandler, gst::ChildProxy;
}

/// Registers the element with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "streambuffertimeshiftsrc",
        // Found by playbin for streambuffer+SCHEME:// URIs, which no other
        // element handles.
        gst::Rank::PRIMARY,
        StreamBufferTimeshiftSrc::static_type(),
    )
}
