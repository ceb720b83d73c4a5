//! `streambuffersink`: records a live MPEG-TS stream into an on-disk ring.
//!
//! The element is thin glue: properties and signals here and in `imp.rs`, all
//! recording logic in [`crate::recorder`], [`crate::ring`] and [`crate::ts`].

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    /// The time-shift buffer sink. See the crate README for its properties.
    pub struct StreamBufferSink(ObjectSubclass<imp::StreamBufferSink>)
        @extends gst_base::BaseSink, gst::Element, gst::Object;
}

/// Registers the element with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "streambuffersink",
        gst::Rank::NONE,
        StreamBufferSink::static_type(),
    )
}
