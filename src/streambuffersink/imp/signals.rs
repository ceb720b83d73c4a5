// SPDX-License-Identifier: MPL-2.0
//! `streambuffersink`'s action signals: starting and stopping recordings
//! (`IStreamBufferRecordControl`), at an offset from now or a date-time.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::super::RecordingKind;
use std::path::Path;

use super::StreamBufferSink;
use crate::recorder::RecordingRequest;

/// The action signals. The comments on each are GStreamer's documentation
/// format (`/** Type::signal: ... */`), which its tooling reads from the
/// source.
#[allow(unused_doc_comments)]
pub(super) fn action_signals() -> Vec<glib::subclass::Signal> {
    vec![
        // IStreamBufferRecordControl::Start: (location, kind, start offset in ns from
        // now: below 0 reaches back into the ring, above 0 is scheduled) -> id, 0 if refused.
        /**
         * GstStreamBufferSink::start-recording:
         * @sink: the #GstStreamBufferSink
         * @location: the recording's file (content) or directory (reference), which must not exist
         * @kind: a #GstStreamBufferRecordingKind
         * @start_offset: where it starts, in ns from now: below 0 reaches back into the ring,
         *   0 is now, above 0 is scheduled
         *
         * Action signal: starts a recording (IStreamBufferRecordControl::Start).
         *
         * Returns: the recording's id, 0 if refused (a WARNING message says why)
         *
         * Since: 0.1
         */
        glib::subclass::Signal::builder("start-recording")
            .param_types([String::static_type(), RecordingKind::static_type(), i64::static_type()])
            .return_type::<u32>()
            .action()
            .class_handler(|args| {
                let id = (|| {
                    let obj: super::super::StreamBufferSink = arg(args, 0)?;
                    Some(obj.imp().start_recording(
                        &arg::<String>(args, 1)?,
                        arg(args, 2)?,
                        RecordingRequest::Offset(arg(args, 3)?),
                    ))
                })();
                Some(id.unwrap_or(0).to_value())
            })
            .build(),
        // start-recording with a date-time (past: reaches back; future: scheduled):
        // (location, kind, start) -> id, 0 if refused.
        /**
         * GstStreamBufferSink::start-recording-at:
         * @sink: the #GstStreamBufferSink
         * @location: the recording's file or directory, which must not exist
         * @kind: a #GstStreamBufferRecordingKind
         * @start: where it starts, a #GDateTime: in the past, the content received then; in the future, scheduled
         *
         * Action signal: #GstStreamBufferSink::start-recording at a date-time.
         *
         * Returns: the recording's id, 0 if refused
         *
         * Since: 0.1
         */
        glib::subclass::Signal::builder("start-recording-at")
            .param_types([
                String::static_type(),
                RecordingKind::static_type(),
                glib::DateTime::static_type(),
            ])
            .return_type::<u32>()
            .action()
            .class_handler(|args| {
                let id = (|| {
                    let obj: super::super::StreamBufferSink = arg(args, 0)?;
                    let date = crate::element_time::from_glib(&arg(args, 3)?)?;
                    Some(obj.imp().start_recording(
                        &arg::<String>(args, 1)?,
                        arg(args, 2)?,
                        RecordingRequest::Date(date),
                    ))
                })();
                Some(id.unwrap_or(0).to_value())
            })
            .build(),
        // stop-recording with a date-time (past or future): (id, stop) -> known id.
        /**
         * GstStreamBufferSink::stop-recording-at:
         * @sink: the #GstStreamBufferSink
         * @id: the recording's id
         * @stop: where it stops, a #GDateTime (past, now or future)
         *
         * Action signal: #GstStreamBufferSink::stop-recording at a date-time.
         *
         * Returns: %FALSE for an unknown id
         *
         * Since: 0.1
         */
        glib::subclass::Signal::builder("stop-recording-at")
            .param_types([u32::static_type(), glib::DateTime::static_type()])
            .return_type::<bool>()
            .action()
            .class_handler(|args| {
                let stopped = (|| {
                    let obj: super::super::StreamBufferSink = arg(args, 0)?;
                    Some(
                        obj.imp()
                            .stop_recording(arg(args, 1)?, RecordingRequest::Date(crate::element_time::from_glib(&arg(args, 2)?)?)),
                    )
                })();
                Some(stopped.unwrap_or(false).to_value())
            })
            .build(),
        // IStreamBufferRecordControl::Stop: (id, stop offset in ns from now; past,
        // now or future: content ends before the first keyframe at or after it) -> known id.
        /**
         * GstStreamBufferSink::stop-recording:
         * @sink: the #GstStreamBufferSink
         * @id: the recording's id
         * @stop_offset: where it stops, in ns from now (past, now or future): content ends
         *   before the first keyframe at or after it, a reference recording with the segment holding it
         *
         * Action signal: stops a recording (IStreamBufferRecordControl::Stop);
         * `streambuffer-recording-stopped` reports what it holds.
         *
         * Returns: %FALSE for an unknown id
         *
         * Since: 0.1
         */
        glib::subclass::Signal::builder("stop-recording")
            .param_types([u32::static_type(), i64::static_type()])
            .return_type::<bool>()
            .action()
            .class_handler(|args| {
                let stopped = (|| {
                    let obj: super::super::StreamBufferSink = arg(args, 0)?;
                    Some(
                        obj.imp()
                            .stop_recording(arg(args, 1)?, RecordingRequest::Offset(arg(args, 2)?)),
                    )
                })();
                Some(stopped.unwrap_or(false).to_value())
            })
            .build(),
    ]
}

/// Argument `i` of an action signal, if it has the expected type.
fn arg<T: for<'a> glib::value::FromValue<'a> + 'static>(args: &[glib::Value], i: usize) -> Option<T> {
    args.get(i)?.get::<T>().ok()
}

impl StreamBufferSink {
    /// `start-recording` (an offset from now) and `start-recording-at` (a
    /// date-time): the id, or 0 after a WARNING saying why not.
    pub(super) fn start_recording(&self, location: &str, kind: RecordingKind, when: RecordingRequest) -> u32 {
        let result = self.with_recorder_promptly(|recorder, host| {
            recorder.start_recording(Path::new(location), kind.into(), when, host)
        });
        match result {
            Err(why) => {
                gst::element_imp_warning!(self, gst::ResourceError::Busy, ("Recording refused: {}", why));
                0
            }
            Ok(Some(Ok(id))) => id,
            Ok(Some(Err(e))) => {
                gst::element_imp_warning!(self, gst::ResourceError::OpenWrite, ("Recording refused: {}", e));
                0
            }
            Ok(None) => {
                gst::element_imp_warning!(
                    self,
                    gst::CoreError::StateChange,
                    ("Cannot start a recording: the sink is not running")
                );
                0
            }
        }
    }

    /// `stop-recording` and `stop-recording-at`: whether `id` is a
    /// recording that runs or is scheduled (a WARNING if not).
    pub(super) fn stop_recording(&self, id: u32, when: RecordingRequest) -> bool {
        let known = match self.with_recorder_promptly(|recorder, host| recorder.stop_recording(id, when, host)) {
            Ok(Some(known)) => known,
            Ok(None) => return false,
            Err(why) => {
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::Busy,
                    ("Recording {} not stopped: {}", id, why)
                );
                return false;
            }
        };
        if !known {
            gst::element_imp_warning!(self, gst::CoreError::Failed, ("No running recording with id {}", id));
        }
        known
    }
}
