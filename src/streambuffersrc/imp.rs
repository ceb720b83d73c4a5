// SPDX-License-Identifier: MPL-2.0
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;

mod archive;
mod read;
mod signals;
mod trick;

/// How long fast-forward waits at the live edge for its own seek back to
/// 1.0 before asking again.
const LEAVING_RETRY: Duration = Duration::from_secs(2);

use super::report::{Reading, event_message, nothing_playable, stats_structure};
use super::settings::{self, DEFAULT_BLOCKSIZE, Settings};
use trick::Trick;

use super::uri::{self, RingUri};
use crate::element_sync::{FlushGate, lock};
use crate::layout::{PLAYLIST_NAME, PresentationTime};
use crate::reader::{Direction, Playback, ReaderEvent, RingReader};
use crate::ts::{PACKET_SIZE, PAT_PID, Packet};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "streambuffersrc",
        gst::DebugColorFlags::empty(),
        Some("Stream buffer ring source"),
    )
});

enum State {
    Stopped,
    /// `positioned`: the start position has been applied (or a seek was).
    Started {
        reader: Box<RingReader>,
        positioned: bool,
        trick: Trick,
    },
}

pub struct StreamBufferSrc {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    flush_gate: FlushGate,
    /// Buffers pushed since the element started.
    buffers_out: std::sync::atomic::AtomicU64,
    /// A PAT was among the packets sent since the element started: a
    /// demuxer had something it could play. Without one, the end of the
    /// ring is an error, not an EOS that a demuxer would drop silently.
    playable: std::sync::atomic::AtomicBool,
    /// Flags of the seek event being handled: `do_seek` gets only the
    /// segment, which does not carry KEY_UNIT and SNAP_*.
    seek_flags: Mutex<gst::SeekFlags>,
    /// The seek being handled is the element's own, back to 1.0 at the
    /// live edge (for the rate-changed message's reason).
    live_edge_seek: std::sync::atomic::AtomicBool,
    /// The last seek handled and its answer. A pipeline sends a seek to
    /// each of its sinks, and each copy comes upstream through the
    /// demuxer: the same seek (same seqnum) is done once.
    last_seek: Mutex<Option<(gst::Seqnum, bool)>>,
    /// Seeks done since the element was made: a seek of the element's own
    /// asked before another one was done is dropped.
    seeks_done: std::sync::atomic::AtomicU64,
}

impl Default for StreamBufferSrc {
    fn default() -> Self {
        StreamBufferSrc {
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(State::Stopped),
            flush_gate: FlushGate::default(),
            seek_flags: Mutex::new(gst::SeekFlags::empty()),
            buffers_out: std::sync::atomic::AtomicU64::new(0),
            playable: std::sync::atomic::AtomicBool::new(false),
            live_edge_seek: std::sync::atomic::AtomicBool::new(false),
            last_seek: Mutex::new(None),
            seeks_done: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

/**
 * SECTION:element-streambuffersrc
 * @see_also: streambuffersink
 *
 * Plays a #GstStreamBufferSink ring (or a recording directory) back,
 * time-shifted, following the writer: seekable over the ring's window on
 * one timeline shared by every reader, by wall-clock time too
 * (#GstStreamBufferSrc::date-time-to-position), with trick play (rates 0.1
 * to 4 with every frame, keyframes only faster and backward down to -64).
 * Also opens `streambuffer:///path/to/ring` URIs.
 *
 * Element messages: `streambuffer-stale-file-deleted`,
 * `streambuffer-read-failure`, `streambuffer-time-hole`,
 * `streambuffer-content-becoming-stale`, `streambuffer-rate-changed`
 * (fields in the README).
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 streambuffersrc location=/var/buffer/ch1 start-delay=30000000000 ! decodebin ! autovideosink
 * ]|
 *
 * Since: 0.1
 */
#[glib::object_subclass]
impl ObjectSubclass for StreamBufferSrc {
    const NAME: &'static str = "GstStreamBufferSrc";
    type Type = super::StreamBufferSrc;
    type ParentType = gst_base::PushSrc;
    type Interfaces = (gst::URIHandler,);
}

impl ObjectImpl for StreamBufferSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(settings::param_specs);
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(signals::action_signals);
        SIGNALS.as_ref()
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_format(gst::Format::Time);
        obj.set_blocksize(DEFAULT_BLOCKSIZE);
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if matches!(*lock(&self.state), State::Started { .. }) {
            gst::warning!(
                CAT,
                imp = self,
                "Property '{}' cannot be changed while playing",
                pspec.name()
            );
            return;
        }
        if let Err(why) = lock(&self.settings).set(pspec.name(), value) {
            // On stderr too, as GLib reports a value out of a property's range.
            gst::warning!(CAT, imp = self, "{why}");
            glib::g_warning!("streambuffersrc", "{why}");
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return self.stats().to_value();
        }
        lock(&self.settings).get(pspec.name()).unwrap_or_else(|| {
            gst::warning!(CAT, imp = self, "Unknown property '{}'", pspec.name());
            None::<String>.to_value()
        })
    }
}

impl GstObjectImpl for StreamBufferSrc {}

impl URIHandlerImpl for StreamBufferSrc {
    const URI_TYPE: gst::URIType = gst::URIType::Src;

    fn protocols() -> &'static [&'static str] {
        &[uri::SCHEME]
    }

    fn uri(&self) -> Option<String> {
        let s = lock(&self.settings);
        let location = s.location.clone()?;
        Some(
            RingUri {
                location,
                start_position: Some(s.start_position),
                start_delay_ns: (s.start_delay > 0).then_some(s.start_delay),
                archive: (!s.archive).then_some(false),
            }
            .to_uri(),
        )
    }

    /// `streambuffer:///path/to/ring[?start-position=live|oldest&start-delay=NS&archive=true|false]`:
    /// sets `location`, and `start-position`, `start-delay` and `archive` if given.
    fn set_uri(&self, uri: &str) -> Result<(), glib::Error> {
        if matches!(*lock(&self.state), State::Started { .. }) {
            return Err(glib::Error::new(
                gst::URIError::BadState,
                "The URI cannot be changed while playing",
            ));
        }
        let parsed = RingUri::parse(uri).map_err(|why| glib::Error::new(gst::URIError::BadUri, &why))?;
        let mut s = lock(&self.settings);
        s.location = Some(parsed.location);
        s.start_position = parsed.start_position.unwrap_or(s.start_position);
        s.start_delay = parsed.start_delay_ns.unwrap_or(s.start_delay);
        s.archive = parsed.archive.unwrap_or(s.archive);
        Ok(())
    }
}

impl ElementImpl for StreamBufferSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Stream Buffer Source",
                "Source/File",
                "Plays a streambuffersink ring back, time-shifted, following the writer, with seeking",
                env!("CARGO_PKG_AUTHORS"),
            )
        });
        Some(&*METADATA)
    }

    /// A seek sent to the element itself (`gst_element_send_event`,
    /// `gst_element_seek`) goes where one arriving on the pad goes: the
    /// base class would otherwise take it straight to `do_seek`, past the
    /// refusals that must come before anything is flushed.
    fn send_event(&self, event: gst::Event) -> bool {
        if matches!(event.view(), gst::EventView::Seek(_)) {
            return BaseSrcImpl::event(self, &event);
        }
        self.parent_send_event(event)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::builder("video/mpegts")
                .field("systemstream", true)
                .field("packetsize", PACKET_SIZE as i32)
                .build();
            match gst::PadTemplate::new("src", gst::PadDirection::Src, gst::PadPresence::Always, &caps) {
                Ok(t) => vec![t],
                Err(e) => {
                    gst::error!(CAT, "Cannot create the src pad template: {e}");
                    Vec::new()
                }
            }
        });
        TEMPLATES.as_ref()
    }
}

impl BaseSrcImpl for StreamBufferSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let Some(dir) = settings.location else {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("No location set: set 'location' to the ring directory")
            ));
        };
        if !dir.is_dir() {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("'{}' is not a ring directory", dir.display())
            ));
        }
        let mut reader = RingReader::new(&dir);
        if settings.archive {
            self.reach_into_archive(&dir, &mut reader);
        }
        let listed = reader.refresh().map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenRead,
                ("Cannot read the playlist in '{}': {}", dir.display(), e)
            )
        })?;
        // Nothing to wait for: said now, not as a preroll that never ends.
        if !listed {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                (
                    "'{}' holds no {PLAYLIST_NAME}: not a ring, or its writer has not published a segment yet",
                    dir.display()
                )
            ));
        }
        if !is_hls_playlist(&dir.join(PLAYLIST_NAME)) {
            return Err(gst::error_msg!(
                gst::StreamError::WrongType,
                ("'{}' is not an HLS playlist", dir.join(PLAYLIST_NAME).display())
            ));
        }
        *lock(&self.state) = State::Started {
            reader: Box::new(reader),
            positioned: false,
            trick: Trick::default(),
        };
        self.buffers_out.store(0, std::sync::atomic::Ordering::Relaxed);
        self.playable.store(false, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = State::Stopped;
        Ok(())
    }

    fn is_seekable(&self) -> bool {
        true
    }

    fn event(&self, event: &gst::Event) -> bool {
        if let gst::EventView::Seek(_) = event.view() {
            // Held while the seek is done: a copy arriving meanwhile from
            // another sink's thread waits and gets the same answer.
            let mut last = lock(&self.last_seek);
            if let Some((seqnum, answer)) = *last
                && seqnum == event.seqnum()
            {
                gst::debug!(CAT, imp = self, "Seek {seqnum:?} already handled");
                return answer;
            }
            let answer = self.seek(event);
            *last = Some((event.seqnum(), answer));
            return answer;
        }
        self.parent_event(event)
    }

    fn do_seek(&self, segment: &mut gst::Segment) -> bool {
        let Some(segment) = segment.downcast_mut::<gst::ClockTime>() else {
            return false;
        };
        let flags = std::mem::replace(&mut *lock(&self.seek_flags), gst::SeekFlags::empty());
        let frame_rate = lock(&self.settings).trick_frame_rate;
        let key_units = flags.contains(gst::SeekFlags::TRICKMODE_KEY_UNITS);
        let Ok(playback) = Playback::choose(segment.rate(), key_units, frame_rate) else {
            return false;
        };
        let mut state = lock(&self.state);
        let State::Started {
            reader,
            positioned,
            trick,
        } = &mut *state
        else {
            // Before start: base class default segment; nothing to do.
            return true;
        };
        let old_rate = trick.playback.rate();
        let seeked = match playback {
            Playback::AllFrames { .. } => self.seek_all_frames(reader, positioned, segment, flags),
            Playback::Keyframes { direction, .. } => {
                // Where the walk starts: forward at the segment's start,
                // backward at its stop (or where playback is now).
                let target = match direction {
                    Direction::Forward => segment.start().map_or(0, gst::ClockTime::nseconds),
                    Direction::Backward => segment
                        .stop()
                        .map(gst::ClockTime::nseconds)
                        .or_else(|| reader.position().map(PresentationTime::ns))
                        .or_else(|| reader.window().map(|w| w.end.ns()))
                        .unwrap_or(0),
                };
                *positioned = true;
                *trick = Trick {
                    playback,
                    segment_rate: segment.rate(),
                    cursor_ns: target,
                    first: true,
                    leaving: None,
                    last_piece_ns: None,
                    gap_at_ns: None,
                };
                let t = clock_time(target);
                match direction {
                    Direction::Forward => {
                        segment.set_start(t);
                        segment.set_time(t);
                    }
                    Direction::Backward => {
                        // Back to the oldest content: the window's start is
                        // estimated with the stream's usual delay, and its
                        // oldest keyframe may be presented a little before.
                        let window_start = reader.window().map(|w| w.start.ns());
                        if window_start.is_none_or(|w| segment.start().is_none_or(|s| s.nseconds() <= w)) {
                            segment.set_start(gst::ClockTime::ZERO);
                        }
                        segment.set_stop(t);
                        segment.set_time(segment.start());
                    }
                }
                segment.set_position(t);
                segment.set_flags(
                    segment.flags() | gst::SegmentFlags::TRICKMODE_KEY_UNITS | gst::SegmentFlags::TRICKMODE_NO_AUDIO,
                );
                gst::debug!(
                    CAT,
                    imp = self,
                    "Keyframes only at rate {}, from {target} ns",
                    playback.rate()
                );
                true
            }
        };
        if seeked {
            self.seeks_done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            trick.playback = playback;
            trick.segment_rate = segment.rate();
            trick.leaving = None;
        }
        drop(state);
        let own = self.live_edge_seek.swap(false, std::sync::atomic::Ordering::SeqCst);
        if seeked && old_rate != playback.rate() {
            self.post_rate_changed(old_rate, playback.rate(), if own { "live-edge" } else { "seek" });
        }
        seeked
    }
    fn query(&self, query: &mut gst::QueryRef) -> bool {
        match query.view_mut() {
            gst::QueryViewMut::Seeking(q) if q.format() == gst::Format::Time => {
                let mut state = lock(&self.state);
                if let State::Started { reader, .. } = &mut *state
                    && let Some(window) = reader.window()
                {
                    q.set(true, clock_time(window.start.ns()), clock_time(window.end.ns()));
                    return true;
                }
                false
            }
            gst::QueryViewMut::Seeking(q) => {
                // Only TIME seeks: the bytes of a ring do not form one stream
                // that could be addressed (decodebin's typefind asks in BYTES).
                let none = gst::GenericFormattedValue::new(q.format(), -1);
                q.set(false, none, none);
                true
            }
            gst::QueryViewMut::Duration(q) if q.format() == gst::Format::Time => {
                let mut state = lock(&self.state);
                if let State::Started { reader, .. } = &mut *state
                    && let Some(window) = reader.window()
                {
                    q.set(clock_time(window.end.ns()));
                    return true;
                }
                false
            }
            gst::QueryViewMut::Position(q) if q.format() == gst::Format::Time => {
                let state = lock(&self.state);
                if let State::Started { reader, .. } = &*state
                    && let Some(p) = reader.position()
                {
                    q.set(clock_time(p.ns()));
                    return true;
                }
                false
            }
            _ => BaseSrcImplExt::parent_query(self, query),
        }
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.flush_gate.set_flushing(true);
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.flush_gate.set_flushing(false);
        Ok(())
    }
}

impl PushSrcImpl for StreamBufferSrc {
    fn create(&self, _buffer: Option<&mut gst::BufferRef>) -> Result<CreateSuccess, gst::FlowError> {
        let blocksize = (self.obj().blocksize() as usize).max(PACKET_SIZE);
        let poll = Duration::from_nanos(lock(&self.settings).poll_interval);
        // Not zeroed first (a fresh allocation, every byte of which the
        // reader writes before it is sent).
        let mut buffer =
            gst::Buffer::with_size(blocksize / PACKET_SIZE * PACKET_SIZE).map_err(|_| gst::FlowError::Error)?;
        loop {
            let state = lock(&self.state);
            let State::Started { trick, .. } = &*state else {
                return Err(gst::FlowError::Flushing);
            };
            if matches!(trick.playback, Playback::Keyframes { .. }) {
                if let Some(piece) = self.next_keyframe(state, poll)? {
                    self.buffers_out.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Ok(CreateSuccess::NewBuffer(piece));
                }
            } else if self.next_frames(state, &mut buffer, poll)? {
                self.buffers_out.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Ok(CreateSuccess::NewBuffer(buffer));
            }
        }
    }
}

impl StreamBufferSrc {
    /// The `stats` structure (see `report::stats_structure`).
    fn stats(&self) -> gst::Structure {
        let reading = self.with_reader(|r| {
            let position = r.position().map(PresentationTime::ns);
            let edge = r.window().map(|w| w.end.ns());
            Reading {
                stats: r.stats(),
                current: r.current_sequence(),
                position,
                lag: position.zip(edge).map(|(p, e)| e.saturating_sub(p)),
            }
        });
        stats_structure(
            &reading.unwrap_or_default(),
            self.buffers_out.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Notes that `data` (whole packets) holds a PAT: a demuxer can start.
    fn note_playable(&self, data: &[u8]) {
        let pat = data
            .chunks_exact(PACKET_SIZE)
            .any(|p| Packet::new(p).is_some_and(|p| p.pid() == PAT_PID));
        if pat {
            self.playable.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The ring ended. An EOS, unless not one packet that a demuxer could
    /// play was sent since the start: then an error that says why (a
    /// demuxer that never saw a program drops the EOS, and the pipeline
    /// would wait for preroll for good).
    fn end_of_stream(&self) -> gst::FlowError {
        if self.playable.load(std::sync::atomic::Ordering::Relaxed) {
            return gst::FlowError::Eos;
        }
        let dir = lock(&self.settings).location.clone().unwrap_or_default();
        let listed = self.with_reader(|r| r.listed_segments()).unwrap_or(0);
        let why = nothing_playable(&dir, listed);
        gst::element_imp_error!(
            self,
            gst::StreamError::TypeNotFound,
            ("Nothing playable in '{}': {}", dir.display(), why)
        );
        gst::FlowError::Error
    }

    /// Runs `f` on the reader while the element is started.
    fn with_reader<R>(&self, f: impl FnOnce(&mut RingReader) -> R) -> Option<R> {
        match &mut *lock(&self.state) {
            State::Started { reader, .. } => Some(f(reader)),
            State::Stopped => None,
        }
    }

    fn post_events(&self, events: Vec<ReaderEvent>) {
        let obj = self.obj();
        for event in events {
            let (level, log, structure) = event_message(event);
            gst::log_with_level!(CAT, level, imp = self, "{}", log);
            let _ = obj.post_message(gst::message::Element::builder(structure).src(&*obj).build());
        }
    }
}

/// Whether the file at `path` starts with `#EXTM3U`, as an HLS playlist must.
fn is_hls_playlist(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 7];
    crate::platform::open_read_only(path).is_ok_and(|mut f| f.read_exact(&mut head).is_ok()) && &head == b"#EXTM3U"
}

/// Content time as a `GstClockTime`: times read from disk are bounded, but
/// a sum of them must still never become `GST_CLOCK_TIME_NONE`.
fn clock_time(ns: u64) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(ns.min(gst::ClockTime::MAX.nseconds()))
}
