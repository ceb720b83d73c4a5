// SPDX-License-Identifier: MPL-2.0
//! The ring's wall clock at the elements' boundary: the date-times their
//! signals take and their messages carry, to and from [`WallTime`].

use crate::layout::WallTime;

/// A date-time an application passed, to the millisecond; `None` if it is
/// out of range.
#[must_use]
pub fn from_glib(date: &glib::DateTime) -> Option<WallTime> {
    let ms = date
        .to_unix()
        .checked_mul(1000)?
        .checked_add(i64::from(date.microsecond() / 1000))?;
    Some(WallTime::from_ms(ms))
}

/// The date-time for a signal's return value, in UTC.
#[must_use]
pub fn to_glib(t: WallTime) -> Option<glib::DateTime> {
    let utc = glib::DateTime::from_unix_utc(t.ms().div_euclid(1000)).ok()?;
    utc.add(glib::TimeSpan::from_milliseconds(t.ms().rem_euclid(1000))).ok()
}

/// The date-time for a message field.
#[must_use]
pub fn to_gst(t: WallTime) -> Option<gst::DateTime> {
    gst::DateTime::from_unix_epoch_utc_usecs(t.ms().checked_mul(1000)?).ok()
}
