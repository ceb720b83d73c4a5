// SPDX-License-Identifier: MPL-2.0
//! What `create` reads: the next piece of all-frames playback, or the next
//! keyframe of keyframe-only trick play, and what either does at the live
//! edge, after deleted segments and on a read error.

use std::sync::MutexGuard;
use std::time::Duration;

use gst::subclass::prelude::*;

use super::trick::SeekTarget;
use super::{LEAVING_RETRY, State, StreamBufferSrc, clock_time};
use crate::layout::PresentationTime;
use crate::reader::{Direction, Playback, ReadOutcome, ReaderEvent, TrickOutcome};

impl StreamBufferSrc {
    /// The next keyframe piece in trick play; `None` to be asked again.
    pub(super) fn next_keyframe(
        &self,
        mut state: MutexGuard<'_, State>,
        poll: Duration,
    ) -> Result<Option<gst::Buffer>, gst::FlowError> {
        let State::Started { reader, trick, .. } = &mut *state else {
            return Err(gst::FlowError::Flushing);
        };
        let Playback::Keyframes { direction, step_ns, .. } = trick.playback else {
            return Ok(None);
        };
        if let Some(at) = trick.gap_at_ns.take() {
            drop(state);
            self.push_gap(at);
            return Ok(None);
        }
        // The first keyframe at the seek's target or beyond it,
        // then one a step further each time.
        let step = if trick.first { 0 } else { step_ns.max(1) };
        let outcome = reader.read_keyframe(PresentationTime::from_ns(trick.cursor_ns), direction, step);
        let events = reader.take_events();
        let ended = reader.is_ended();
        match outcome {
            Ok(TrickOutcome::Keyframe(piece)) => {
                trick.cursor_ns = piece.presentation_time.ns();
                trick.first = false;
                let previous = trick.last_piece_ns.replace(piece.presentation_time.ns());
                trick.gap_at_ns = previous;
                drop(state);
                self.post_events(events);
                // The demuxer lets a keyframe out when the next
                // piece starts: this piece is what shows the one
                // before, and is paced by it.
                if let Some(previous) = previous
                    && !self.pace(previous)
                {
                    return Err(gst::FlowError::Flushing);
                }
                self.note_playable(&piece.data);
                let mut buffer = gst::Buffer::from_mut_slice(piece.data);
                if let Some(b) = buffer.get_mut() {
                    b.set_pts(clock_time(piece.ring_time.ns()));
                    b.set_flags(gst::BufferFlags::DISCONT);
                }
                Ok(Some(buffer))
            }
            // Fast-forward reached the live edge: playback goes on
            // from there at 1.0, as the Windows engine does.
            Ok(TrickOutcome::Edge) if direction == Direction::Forward && !ended => {
                let (at, rate) = (trick.cursor_ns, trick.playback.rate());
                // The seek back to 1.0 is asked for once, and again
                // if it has not come after a while (it was refused).
                let ask = trick.leaving.is_none_or(|since| since.elapsed() > LEAVING_RETRY);
                if ask {
                    trick.leaving = Some(std::time::Instant::now());
                }
                drop(state);
                self.post_events(events);
                if ask {
                    self.continue_at_rate_1(at, rate);
                }
                if self.flush_gate.wait(poll) {
                    Ok(None)
                } else {
                    Err(gst::FlowError::Flushing)
                }
            }
            Ok(TrickOutcome::Edge) => {
                drop(state);
                self.post_events(events);
                Err(self.end_of_stream())
            }
            Err(e) => {
                drop(state);
                gst::element_imp_error!(self, gst::ResourceError::Read, ("Cannot read the ring: {}", e));
                Err(gst::FlowError::Error)
            }
        }
    }

    /// Reads the next piece of all-frames playback into `buffer`; false
    /// when there is nothing yet (after waiting a poll interval).
    pub(super) fn next_frames(
        &self,
        mut state: MutexGuard<'_, State>,
        buffer: &mut gst::Buffer,
        poll: Duration,
    ) -> Result<bool, gst::FlowError> {
        let State::Started { reader, trick, .. } = &mut *state else {
            return Err(gst::FlowError::Flushing);
        };
        let outcome = {
            let b = buffer.get_mut().ok_or(gst::FlowError::Error)?;
            let mut map = b.map_writable().map_err(|_| gst::FlowError::Error)?;
            reader.read(map.as_mut_slice())
        };
        let events = reader.take_events();
        let rate = trick.playback.rate();
        let position = reader.position().map(PresentationTime::ns);
        // Faster than real time, the live edge is reached: go on at
        // 1.0 from there (asked once, and again if it has not come
        // after a while).
        let leave = matches!(outcome, Ok(ReadOutcome::Wait))
            && rate > 1.0
            && trick.leaving.is_none_or(|since| since.elapsed() > LEAVING_RETRY);
        if leave {
            trick.leaving = Some(std::time::Instant::now());
        }
        // Deleted segments were skipped (the reader fell out of the
        // window, paused or slow): a new segment where reading goes
        // on, so that positions follow the jump.
        let jumped = events.iter().any(|e| matches!(e, ReaderEvent::StaleFileDeleted { .. }));
        let jumped_to = match outcome {
            Ok(ReadOutcome::Data {
                ring_time: Some(ring_time),
                ..
            }) if jumped => Some(ring_time.presented_after_ns(reader.presentation_delay()).ns()),
            _ if jumped => position,
            _ => None,
        };
        drop(state);
        self.post_events(events);
        if let Some(to) = jumped_to {
            // A new segment there, by a flushing seek of the element's
            // own (a demuxer passes on no mid-stream segment): this
            // buffer waits for it, and is read again after it. Should
            // the seek not come, the buffer goes out after a while.
            self.seek_self(rate, SeekTarget::At(to), "where reading goes on after deleted segments");
            let asked = std::time::Instant::now();
            while asked.elapsed() < LEAVING_RETRY {
                if !self.flush_gate.wait(poll) {
                    return Err(gst::FlowError::Flushing);
                }
            }
        }
        match outcome {
            Ok(ReadOutcome::Data {
                len,
                ring_time,
                discont,
            }) => {
                {
                    let b = buffer.get_mut().ok_or(gst::FlowError::Error)?;
                    b.set_size(len);
                    if !self.playable.load(std::sync::atomic::Ordering::Relaxed)
                        && let Ok(map) = b.map_readable()
                    {
                        self.note_playable(&map);
                    }
                    b.set_pts(ring_time.map(|t| clock_time(t.ns())));
                    if discont {
                        b.set_flags(gst::BufferFlags::DISCONT);
                    }
                }
                return Ok(true);
            }
            Ok(ReadOutcome::Eos) => return Err(self.end_of_stream()),
            Ok(ReadOutcome::Wait) => {
                if leave {
                    self.continue_at_rate_1(position.unwrap_or(0), rate);
                }
                if !self.flush_gate.wait(poll) {
                    return Err(gst::FlowError::Flushing);
                }
            }
            Err(e) => {
                gst::element_imp_error!(self, gst::ResourceError::Read, ("Cannot read the ring: {}", e));
                return Err(gst::FlowError::Error);
            }
        }
        Ok(false)
    }
}
