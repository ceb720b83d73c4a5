// SPDX-License-Identifier: MPL-2.0
//! A typed API for `streambuffersrc`'s action signals, on any
//! `gst::Element`. Each method is the signal of the same name.

use gst::glib;
use gst::prelude::*;

/// Typed access to a `streambuffersrc`'s wall-clock addressing.
///
/// ```
/// use gst::prelude::*;
/// use gststreambuffer::streambuffersrc::StreamBufferSrcExt;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// gst::init()?;
/// gststreambuffer::plugin_register_static()?;
/// let src = gst::ElementFactory::make("streambuffersrc").build()?;
/// // Not playing a ring: nothing is in its window.
/// let noon = gst::glib::DateTime::from_utc(2026, 11, 30, 12, 0, 0.0)?;
/// assert_eq!(src.date_time_to_position(&noon), None);
/// assert_eq!(src.position_to_date_time(gst::ClockTime::from_seconds(10)), None);
/// # Ok(())
/// # }
/// ```
pub trait StreamBufferSrcExt: IsA<gst::Element> + 'static {
    /// `date-time-to-position`: the position (presentation time, what a
    /// `TIME` seek takes) of the content received at `date`; `None`
    /// outside the window.
    fn date_time_to_position(&self, date: &glib::DateTime) -> Option<gst::ClockTime> {
        let ns = self.as_ref().emit_by_name::<i64>("date-time-to-position", &[date]);
        u64::try_from(ns).ok().map(gst::ClockTime::from_nseconds)
    }

    /// `position-to-date-time`: when the content presented at `position`
    /// was received; `None` where unknown.
    fn position_to_date_time(&self, position: gst::ClockTime) -> Option<glib::DateTime> {
        let ns = i64::try_from(position.nseconds()).ok()?;
        self.as_ref()
            .emit_by_name::<Option<glib::DateTime>>("position-to-date-time", &[&ns])
    }

    /// The `stats` property: the source's counters.
    fn source_stats(&self) -> gst::Structure {
        self.as_ref().property::<gst::Structure>("stats")
    }
}

impl<O: IsA<gst::Element>> StreamBufferSrcExt for O {}
