// SPDX-License-Identifier: MPL-2.0
//! The element's side of seeking and trick play: how a seek that plays
//! every frame lands, instant rate changes, going back to 1.0 at the live
//! edge, and the rate-changed message. Which rates send what, and reading
//! keyframes, is the reader's (`reader::trick`).

use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use super::{CAT, State, StreamBufferSrc, clock_time};
use crate::element_sync::lock;
use crate::layout::PresentationTime;
use crate::reader::{MAX_ALL_FRAMES_RATE, Playback, RingReader, Snap};

/// How far ahead of its time on the clock a keyframe is sent in trick
/// play: enough for the demuxer and decoder, little enough that what is
/// read is what is shown.
const PACING_LEAD: gst::ClockTime = gst::ClockTime::from_mseconds(300);

/// Where a seek of the element's own goes.
#[derive(Debug, Clone, Copy)]
pub(super) enum SeekTarget {
    /// A presentation time.
    At(u64),
    /// What the pipeline shows now, or else a presentation time.
    Shown { or_else_ns: u64 },
}

/// The position the pipeline holding `src` shows (what its sinks
/// present), in presentation time.
fn shown_position(src: &super::super::StreamBufferSrc) -> Option<u64> {
    let mut top: gst::Element = src.clone().upcast();
    while let Some(parent) = top.parent().and_then(|p| p.downcast::<gst::Element>().ok()) {
        top = parent;
    }
    top.query_position::<gst::ClockTime>().map(gst::ClockTime::nseconds)
}

/// How data is being produced since the last seek.
#[derive(Debug, Clone, Copy)]
pub(super) struct Trick {
    pub(super) playback: Playback,
    /// The rate of the segment the last flushing seek started: an instant
    /// rate change's multiplier is relative to it, not to the rate before.
    pub(super) segment_rate: f64,
    /// Keyframes only: the presentation time of the last keyframe sent,
    /// or where the first is looked for (`first`).
    pub(super) cursor_ns: u64,
    pub(super) first: bool,
    /// The live edge was reached going forward: since when the seek back
    /// to 1.0 has been under way.
    pub(super) leaving: Option<std::time::Instant>,
    /// Keyframes only: the presentation time of the piece just sent.
    pub(super) last_piece_ns: Option<u64>,
    /// Keyframes only: the GAP to send before the next piece is read (see
    /// [`StreamBufferSrc::push_gap`]): at the piece before the last one.
    pub(super) gap_at_ns: Option<u64>,
}

impl Default for Trick {
    fn default() -> Self {
        Trick {
            playback: Playback::AllFrames { rate: 1.0 },
            segment_rate: 1.0,
            cursor_ns: 0,
            first: true,
            leaving: None,
            last_piece_ns: None,
            gap_at_ns: None,
        }
    }
}

impl StreamBufferSrc {
    /// A seek event, first seen: refused before the base class flushes
    /// anything (playback goes on unchanged) when it is not in TIME or at
    /// a rate trick play does not take; instant rate changes are done
    /// here; the rest goes to the base class, which flushes and calls
    /// `do_seek`.
    pub(super) fn seek(&self, event: &gst::Event) -> bool {
        let gst::EventView::Seek(seek) = event.view() else {
            return false;
        };
        let (rate, flags, _, start, ..) = seek.get();
        let format = start.format();
        if format != gst::Format::Time {
            gst::warning!(CAT, imp = self, "Refusing a seek in {format:?}: only TIME");
            return false;
        }
        if flags.contains(gst::SeekFlags::INSTANT_RATE_CHANGE) {
            return self.instant_rate_change(rate, flags);
        }
        let frame_rate = lock(&self.settings).trick_frame_rate;
        let key_units = flags.contains(gst::SeekFlags::TRICKMODE_KEY_UNITS);
        if let Err(why) = Playback::choose(rate, key_units, frame_rate) {
            gst::warning!(CAT, imp = self, "Refusing a seek: {why}");
            return false;
        }
        *lock(&self.seek_flags) = flags;
        self.parent_event(event)
    }

    /// A seek played at every frame (rate 1.0, slow or fast motion):
    /// KEY_UNIT lands on the keyframe SNAP_* picks and starts the segment
    /// there; otherwise data starts at the keyframe at or before the
    /// target and the segment at the target, so downstream clips what
    /// comes before and the first frame shown is the target's.
    pub(super) fn seek_all_frames(
        &self,
        reader: &mut RingReader,
        positioned: &mut bool,
        segment: &mut gst::FormattedSegment<gst::ClockTime>,
        flags: gst::SeekFlags,
    ) -> bool {
        let key_unit = flags.contains(gst::SeekFlags::KEY_UNIT);
        let snap = match (
            flags.contains(gst::SeekFlags::SNAP_BEFORE),
            flags.contains(gst::SeekFlags::SNAP_AFTER),
        ) {
            (true, true) => Snap::Nearest,
            (false, true) if key_unit => Snap::After,
            _ => Snap::Before,
        };
        let target = segment.start().map_or(0, gst::ClockTime::nseconds);
        // The initial seek of BaseSrc (to 0) means "the configured start position".
        let initial = !*positioned && target == 0;
        let landed = if initial {
            let settings = lock(&self.settings).clone();
            reader.start(settings.start_position.into(), settings.start_delay)
        } else {
            reader.seek_to(PresentationTime::from_ns(target), snap)
        };
        match landed {
            Ok(landed) => {
                *positioned = true;
                let landed = landed.map_or(0, PresentationTime::ns);
                // An accurate seek starts its segment at the target, as
                // GStreamer's seeking contract asks, for every target in
                // the window, its edges included; a target before the
                // oldest segment is taken as the window's start.
                let start = match reader.precise_start() {
                    Some(precise) if initial => precise.ns().max(landed),
                    _ if initial || key_unit => landed,
                    _ => target.max(reader.window_ring_start().map_or(landed, |t| t.ns()).min(landed)),
                };
                let t = clock_time(start);
                segment.set_start(t);
                segment.set_time(t);
                segment.set_position(t);
                gst::debug!(
                    CAT,
                    imp = self,
                    "Seek to {target} ns: data from {landed}, segment from {t}"
                );
                true
            }
            Err(e) => {
                gst::warning!(CAT, imp = self, "Seek failed: {e}");
                false
            }
        }
    }

    /// An instant rate change (no flush, no new position): taken when both
    /// the current and the new rate play every frame, forward; the sinks
    /// apply it.
    pub(super) fn instant_rate_change(&self, rate: f64, flags: gst::SeekFlags) -> bool {
        let frame_rate = lock(&self.settings).trick_frame_rate;
        let key_units = flags.contains(gst::SeekFlags::TRICKMODE_KEY_UNITS);
        let (old_rate, segment_rate) = {
            let mut state = lock(&self.state);
            let State::Started { trick, .. } = &mut *state else {
                return false;
            };
            let (Playback::AllFrames { rate: old }, Ok(new @ Playback::AllFrames { .. })) =
                (trick.playback, Playback::choose(rate, key_units, frame_rate))
            else {
                gst::warning!(
                    CAT,
                    imp = self,
                    "Refusing an instant rate change to {rate}: only between rates that play every frame forward (0.1 to {MAX_ALL_FRAMES_RATE}); seek with a flush"
                );
                return false;
            };
            trick.playback = new;
            (old, trick.segment_rate)
        };
        if old_rate == rate {
            return true;
        }
        let event = gst::event::InstantRateChange::new(rate / segment_rate, gst::SegmentFlags::empty());
        if !self.obj().src_pads().iter().all(|pad| pad.push_event(event.clone())) {
            gst::warning!(CAT, imp = self, "Downstream refused the instant rate change");
        }
        self.post_rate_changed(old_rate, rate, "seek");
        true
    }

    /// Fast playback read up to the live edge (the last read at
    /// presentation time `read_ns`): playback goes on at 1.0 from what is
    /// being shown, as the Windows engine does, and a rate-changed message
    /// (reason `live-edge`) says so. From what is shown, not from what was
    /// read: what the queues downstream hold is played, not skipped.
    pub(super) fn continue_at_rate_1(&self, read_ns: u64, old_rate: f64) {
        gst::info!(
            CAT,
            imp = self,
            "Live edge reached at rate {old_rate}: playing on at 1.0"
        );
        self.live_edge_seek.store(true, std::sync::atomic::Ordering::SeqCst);
        self.seek_self(
            1.0,
            SeekTarget::Shown { or_else_ns: read_ns },
            "go on at 1.0 at the live edge",
        );
    }

    /// A flushing seek of the element's own at `rate`, to `target`, from
    /// another thread (the streaming thread cannot wait for its own
    /// flush). The new segment starts there, so positions follow. The sinks are never
    /// sent an instant rate change of the element's own, which would race
    /// the application's seeks (a sink given its sync time after a flush,
    /// before the new segment, is a CRITICAL). Skipped if any seek was done
    /// since it was asked for: the application's seek wins.
    pub(super) fn seek_self(&self, rate: f64, target: SeekTarget, what: &'static str) {
        let asked_after = self.seeks_done.load(std::sync::atomic::Ordering::SeqCst);
        self.obj().call_async(move |src| {
            let imp = src.imp();
            if imp.seeks_done.load(std::sync::atomic::Ordering::SeqCst) != asked_after {
                imp.live_edge_seek.store(false, std::sync::atomic::Ordering::SeqCst);
                gst::debug!(CAT, obj = src, "Not seeking to {what}: a seek came first");
                return;
            }
            let at_ns = match target {
                SeekTarget::At(at_ns) => at_ns,
                SeekTarget::Shown { or_else_ns } => shown_position(src).unwrap_or(or_else_ns),
            };
            let flags = gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE;
            if src
                .seek(
                    rate,
                    flags,
                    gst::SeekType::Set,
                    clock_time(at_ns),
                    gst::SeekType::None,
                    gst::ClockTime::NONE,
                )
                .is_err()
            {
                imp.live_edge_seek.store(false, std::sync::atomic::Ordering::SeqCst);
                gst::warning!(CAT, obj = src, "Could not seek to {what}");
            }
        });
    }

    /// `streambuffer-rate-changed`: the rate changed from `old` to `new`,
    /// because of a seek or by itself (`reason`: `live-edge`), as the
    /// Windows engine's `STREAMBUFFER_EC_RATE_CHANGED`.
    pub(super) fn post_rate_changed(&self, old: f64, new: f64, reason: &str) {
        let obj = self.obj();
        let s = gst::Structure::builder("streambuffer-rate-changed")
            .field("old-rate", old)
            .field("new-rate", new)
            .field("reason", reason)
            .build();
        let _ = obj.post_message(gst::message::Element::builder(s).src(&*obj).build());
    }
}

impl StreamBufferSrc {
    /// Keyframes only: waits until the keyframe presented at `at_ns` is
    /// due within [`PACING_LEAD`] on the pipeline's clock; false if a flush
    /// came meanwhile. Trick play sends no audio, and a player's queues
    /// let one stream grow without bound while another is empty
    /// (multiqueue in playbin does, so as not to stall): unpaced, the
    /// keyframes of a whole live window are read at once, the live edge is
    /// "reached" seconds of wall time before it is shown, and fast-forward
    /// jumps there. Without a clock (not playing yet) nothing waits.
    pub(super) fn pace(&self, at_ns: u64) -> bool {
        let obj = self.obj();
        let Some(clock) = obj.clock() else {
            return true;
        };
        loop {
            let segment = obj.segment();
            let running = segment
                .downcast_ref::<gst::ClockTime>()
                .and_then(|s| s.to_running_time(clock_time(at_ns)));
            let now = clock.time();
            let (Some(running), Some(base)) = (running, obj.base_time()) else {
                return true;
            };
            let due = base.saturating_add(running);
            let Some(early) = due
                .checked_sub(now.saturating_add(PACING_LEAD))
                .filter(|e| !e.is_zero())
            else {
                return true;
            };
            if obj.current_state() != gst::State::Playing {
                return true;
            }
            gst::trace!(
                CAT,
                imp = self,
                "Keyframe at {at_ns} ns due in {early} (running time {running})"
            );
            // One wait (a flush ends it), then a look again: the base time
            // moves if the pipeline was paused meanwhile.
            if !self.flush_gate.wait(std::time::Duration::from_nanos(early.nseconds())) {
                return false;
            }
        }
    }

    /// Keyframes only: a GAP at a keyframe sent, so that every stream of
    /// the program moves on, not only the video. Trick play sends no
    /// audio; without it an audio sink would never preroll after the
    /// flushing seek (the pipeline hangs in PAUSED), and the demuxer only
    /// fills a starved stream once another has moved two seconds forward,
    /// which never happens going backward. The GAP of a keyframe is sent
    /// once the piece after it is out: the demuxer forwards a GAP at once
    /// but sends a frame (and the new segment before it) only when the
    /// next piece starts, and a GAP ahead of the segment would be timed
    /// on the flushed one.
    pub(super) fn push_gap(&self, at_ns: u64) {
        let gap = gst::event::Gap::builder(clock_time(at_ns)).build();
        if !self.obj().src_pad().push_event(gap) {
            gst::debug!(CAT, imp = self, "Downstream did not take the GAP at {at_ns} ns");
        }
    }
}
