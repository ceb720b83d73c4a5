// SPDX-License-Identifier: MPL-2.0
//! `streambuffersrc`'s action signals: between a date-time and a position,
//! as the keyframe index's wall clock says.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

/// The element's signals. The comments on each are GStreamer's
/// documentation format (`/** Type::signal: ... */`), which its tooling
/// reads from the source.
#[allow(unused_doc_comments)]
pub(super) fn action_signals() -> Vec<glib::subclass::Signal> {
    vec![
        // The presentation time (ns, ring time: what a TIME seek takes)
        // of the content received at a date-time; -1 outside the window.
        /**
         * GstStreamBufferSrc::date-time-to-position:
         * @src: the #GstStreamBufferSrc
         * @date_time: a #GDateTime
         *
         * Action signal: the position of the content received at @date_time, as
         * the keyframe index's wall clock says.
         *
         * Returns: the presentation time in ns (what a %GST_FORMAT_TIME seek takes),
         *   -1 outside the window or in a hole
         *
         * Since: 0.1
         */
        glib::subclass::Signal::builder("date-time-to-position")
            .param_types([glib::DateTime::static_type()])
            .return_type::<i64>()
            .action()
            .class_handler(|args| {
                let position = (|| {
                    let obj = args.first()?.get::<super::super::StreamBufferSrc>().ok()?;
                    let date = crate::element_time::from_glib(&args.get(1)?.get::<glib::DateTime>().ok()?)?;
                    obj.imp().with_reader(|r| r.position_at_date(date)).flatten()
                })();
                Some(position.and_then(|p| i64::try_from(p.ns()).ok()).unwrap_or(-1).to_value())
            })
            .build(),
        // The date-time at which the content presented at a position
        // (ns) was received; NULL where unknown.
        /**
         * GstStreamBufferSrc::position-to-date-time:
         * @src: the #GstStreamBufferSrc
         * @position: a presentation time in ns
         *
         * Action signal: when the content presented at @position was received.
         *
         * Returns: (nullable): a #GDateTime, %NULL where unknown
         *
         * Since: 0.1
         */
        glib::subclass::Signal::builder("position-to-date-time")
            .param_types([i64::static_type()])
            .return_type::<Option<glib::DateTime>>()
            .action()
            .class_handler(|args| {
                let date = (|| {
                    let obj = args.first()?.get::<super::super::StreamBufferSrc>().ok()?;
                    let position = u64::try_from(args.get(1)?.get::<i64>().ok()?).ok()?;
                    let position = crate::layout::PresentationTime::from_ns(position);
                    let date = obj.imp().with_reader(|r| r.date_at_position(position)).flatten()?;
                    crate::element_time::to_glib(date)
                })();
                Some(date.to_value())
            })
            .build(),
    ]
}
