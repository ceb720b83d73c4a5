use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;

use super::StartPosition;
use crate::element_sync::{FlushGate, lock};
use crate::reader::{ReadOutcome, ReaderEvent, RingReader, Snap};
use crate::ts::PACKET_SIZE;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "streambuffersrc",
        gst::DebugColorFlags::empty(),
        Some("Stream buffer ring source"),
    )
});

/// 348 packets: about 64 KiB per buffer.
const DEFAULT_BLOCKSIZE: u32 = 348 * PACKET_SIZE as u32;
const DEFAULT_POLL_INTERVAL: u64 = 50_000_000;

#[derive(Debug, Clone)]
struct Settings {
    location: Option<PathBuf>,
    start_position: StartPosition,
    start_delay: u64,
    poll_interval: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            location: None,
            start_position: StartPosition::Live,
            start_delay: 0,
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }
}

enum State {
    Stopped,
    /// `positioned`: the start position has been applied (or a seek was).
    Started {
        reader: Box<RingReader>,
        positioned: bool,
    },
}

pub struct StreamBufferSrc {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    flush_gate: FlushGate,
    /// Buffers pushed since the element started.
    buffers_out: std::sync::atomic::AtomicU64,
    /// Flags of the seek event being handled: `do_seek` gets only the
    /// segment, which does not carry KEY_UNIT and SNAP_*.
    seek_flags: Mutex<gst::SeekFlags>,
}

impl Default for StreamBufferSrc {
    fn default() -> Self {
        StreamBufferSrc {
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(State::Stopped),
            flush_gate: FlushGate::default(),
            seek_flags: Mutex::new(gst::SeekFlags::empty()),
            buffers_out: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for StreamBufferSrc {
    const NAME: &'static str = "GstStreamBufferSrc";
    type Type = super::StreamBufferSrc;
    type ParentType = gst_base::PushSrc;
}

impl ObjectImpl for StreamBufferSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("location")
                    .nick("Location")
                    .blurb("Ring (or recording) directory to play: the one a streambuffersink writes")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("start-position", StartPosition::Live)
                    .nick("Start position")
                    .blurb("Where playback starts: the live edge (minus start-delay) or the oldest content")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("start-delay")
                    .nick("Start delay")
                    .blurb("With start-position=live, start this many ns behind the live edge (time-shift)")
                    .maximum(366 * 24 * 3600 * 1_000_000_000)
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("Counters of the playback (bytes and buffers out, segments read, time holes, stale deletions and read failures met, current segment, presentation position and lag behind the live edge in ns), like SBE's counters on its source")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("poll-interval")
                    .nick("Poll interval")
                    .blurb("How often (ns) to look for new data at the live edge")
                    .minimum(1_000_000)
                    .maximum(10_000_000_000)
                    .default_value(DEFAULT_POLL_INTERVAL)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            vec![
                // The presentation time (ns, ring time: what a TIME seek takes)
                // of the content received at a date-time; -1 outside the window.
                glib::subclass::Signal::builder("date-time-to-position")
                    .param_types([glib::DateTime::static_type()])
                    .return_type::<i64>()
                    .action()
                    .class_handler(|args| {
                        let position = (|| {
                            let obj = args.first()?.get::<super::StreamBufferSrc>().ok()?;
                            let date = args.get(1)?.get::<glib::DateTime>().ok()?;
                            let ms = date.to_unix().checked_mul(1000)? + i64::from(date.microsecond() / 1000);
                            obj.imp().with_reader(|r| r.position_at_date(ms)).flatten()
                        })();
                        Some(position.and_then(|p| i64::try_from(p).ok()).unwrap_or(-1).to_value())
                    })
                    .build(),
                // The date-time at which the content presented at a position
                // (ns) was received; NULL where unknown.
                glib::subclass::Signal::builder("position-to-date-time")
                    .param_types([i64::static_type()])
                    .return_type::<Option<glib::DateTime>>()
                    .action()
                    .class_handler(|args| {
                        let date = (|| {
                            let obj = args.first()?.get::<super::StreamBufferSrc>().ok()?;
                            let position = u64::try_from(args.get(1)?.get::<i64>().ok()?).ok()?;
                            let ms = obj.imp().with_reader(|r| r.date_at_position(position)).flatten()?;
                            let utc = glib::DateTime::from_unix_utc(ms.div_euclid(1000)).ok()?;
                            utc.add(glib::TimeSpan::from_milliseconds(ms.rem_euclid(1000))).ok()
                        })();
                        Some(date.to_value())
                    })
                    .build(),
            ]
        });
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
        let mut s = lock(&self.settings);
        match pspec.name() {
            "location" => match value.get::<Option<String>>().ok().flatten() {
                Some(l) if l.is_empty() => gst::error!(CAT, imp = self, "Refusing an empty location"),
                l => s.location = l.map(PathBuf::from),
            },
            "start-position" => s.start_position = value.get().unwrap_or(s.start_position),
            "start-delay" => s.start_delay = value.get().unwrap_or(s.start_delay),
            "poll-interval" => s.poll_interval = value.get().unwrap_or(s.poll_interval),
            other => gst::warning!(CAT, imp = self, "Unknown property '{other}'"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return self.stats().to_value();
        }
        let s = lock(&self.settings);
        match pspec.name() {
            "location" => s.location.as_ref().map(|p| p.to_string_lossy().into_owned()).to_value(),
            "start-position" => s.start_position.to_value(),
            "start-delay" => s.start_delay.to_value(),
            "poll-interval" => s.poll_interval.to_value(),
            other => {
                gst::warning!(CAT, imp = self, "Unknown property '{other}'");
                None::<String>.to_value()
            }
        }
    }
}

impl GstObjectImpl for StreamBufferSrc {}

impl ElementImpl for StreamBufferSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Stream Buffer Source",
                "Source/File",
                "Plays a streambuffersink ring back, time-shifted, following the writer, with seeking",
                "streambuffer developers",
            )
        });
        Some(&*METADATA)
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
        reader.refresh().map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenRead,
                ("Cannot read the playlist in '{}': {}", dir.display(), e)
            )
        })?;
        *lock(&self.state) = State::Started {
            reader: Box::new(reader),
            positioned: false,
        };
        self.buffers_out.store(0, std::sync::atomic::Ordering::Relaxed);
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
        if let gst::EventView::Seek(seek) = event.view() {
            let (rate, flags, _, start, ..) = seek.get();
            let format = start.format();
            // Refused before the base class flushes anything: playback
            // goes on unchanged.
            if rate != 1.0 || format != gst::Format::Time {
                gst::warning!(
                    CAT,
                    imp = self,
                    "Refusing a seek at rate {rate} in {format:?}: only TIME at rate 1.0"
                );
                return false;
            }
            *lock(&self.seek_flags) = flags;
        }
        self.parent_event(event)
    }

    fn do_seek(&self, segment: &mut gst::Segment) -> bool {
        let Some(segment) = segment.downcast_mut::<gst::ClockTime>() else {
            return false;
        };
        if segment.rate() != 1.0 {
            gst::warning!(CAT, imp = self, "Only rate 1.0 is supported");
            return false;
        }
        // KEY_UNIT lands on the keyframe SNAP_* picks and starts the segment
        // there; otherwise data starts at the keyframe at or before the
        // target and the segment at the target, so downstream clips what
        // comes before and the first frame shown is the target's.
        let flags = std::mem::replace(&mut *lock(&self.seek_flags), gst::SeekFlags::empty());
        let key_unit = flags.contains(gst::SeekFlags::KEY_UNIT);
        let snap = match (
            flags.contains(gst::SeekFlags::SNAP_BEFORE),
            flags.contains(gst::SeekFlags::SNAP_AFTER),
        ) {
            (true, true) => Snap::Nearest,
            (false, true) if key_unit => Snap::After,
            _ => Snap::Before,
        };
        let mut state = lock(&self.state);
        let State::Started { reader, positioned } = &mut *state else {
            // Before start: base class default segment; nothing to do.
            return true;
        };
        let target = segment.start().map_or(0, gst::ClockTime::nseconds);
        // The initial seek of BaseSrc (to 0) means "the configured start position".
        let initial = !*positioned && target == 0;
        let landed = if initial {
            let settings = lock(&self.settings).clone();
            reader.start(settings.start_position.into(), settings.start_delay)
        } else {
            reader.seek_to(target, snap)
        };
        match landed {
            Ok(landed) => {
                *positioned = true;
                let landed = landed.unwrap_or(0);
                let start = match reader.precise_start() {
                    Some(precise) if initial => precise.max(landed),
                    _ if initial || key_unit => landed,
                    _ => target.max(landed),
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

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        match query.view_mut() {
            gst::QueryViewMut::Seeking(q) if q.format() == gst::Format::Time => {
                let mut state = lock(&self.state);
                if let State::Started { reader, .. } = &mut *state
                    && let Some((start, end)) = reader.window()
                {
                    q.set(true, clock_time(start), clock_time(end));
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
                    && let Some((_, end)) = reader.window()
                {
                    q.set(clock_time(end));
                    return true;
                }
                false
            }
            gst::QueryViewMut::Position(q) if q.format() == gst::Format::Time => {
                let state = lock(&self.state);
                if let State::Started { reader, .. } = &*state
                    && let Some(p) = reader.position()
                {
                    q.set(clock_time(p));
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
            let mut state = lock(&self.state);
            let State::Started { reader, .. } = &mut *state else {
                return Err(gst::FlowError::Flushing);
            };
            let outcome = {
                let b = buffer.get_mut().ok_or(gst::FlowError::Error)?;
                let mut map = b.map_writable().map_err(|_| gst::FlowError::Error)?;
                reader.read(map.as_mut_slice())
            };
            let events = reader.take_events();
            drop(state);
            self.post_events(events);
            match outcome {
                Ok(ReadOutcome::Data {
                    len,
                    timestamp,
                    discont,
                }) => {
                    {
                        let b = buffer.get_mut().ok_or(gst::FlowError::Error)?;
                        b.set_size(len);
                        b.set_pts(timestamp.map(clock_time));
                        if discont {
                            b.set_flags(gst::BufferFlags::DISCONT);
                        }
                    }
                    self.buffers_out.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Ok(CreateSuccess::NewBuffer(buffer));
                }
                Ok(ReadOutcome::Eos) => return Err(gst::FlowError::Eos),
                Ok(ReadOutcome::Wait) => {
                    if !self.flush_gate.wait(poll) {
                        return Err(gst::FlowError::Flushing);
                    }
                }
                Err(e) => {
                    gst::element_imp_error!(self, gst::ResourceError::Read, ("Cannot read the ring: {}", e));
                    return Err(gst::FlowError::Error);
                }
            }
        }
    }
}

impl StreamBufferSrc {
    /// The `stats` structure: counters of the reader, -1 where there is
    /// nothing to say (not started, nothing read yet).
    fn stats(&self) -> gst::Structure {
        let signed = |v: Option<u64>| v.and_then(|v| i64::try_from(v).ok()).unwrap_or(-1);
        let (stats, current, position, lag) = self
            .with_reader(|r| {
                let position = r.position();
                let edge = r.window().map(|(_, end)| end);
                let lag = position.zip(edge).map(|(p, e)| e.saturating_sub(p));
                (r.stats(), r.current_sequence(), position, lag)
            })
            .unwrap_or_default();
        gst::Structure::builder("streambuffer-source-stats")
            .field("bytes-out", stats.bytes)
            .field(
                "buffers-out",
                self.buffers_out.load(std::sync::atomic::Ordering::Relaxed),
            )
            .field("segments-read", stats.segments_opened)
            .field("time-holes", stats.time_holes)
            .field("stale-deletions", stats.stale_deletions)
            .field("read-failures", stats.read_failures)
            .field("current-segment", signed(current))
            .field("position", signed(position))
            .field("lag", signed(lag))
            .build()
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
            let s = match event {
                ReaderEvent::StaleFileDeleted { first, last } => {
                    gst::info!(CAT, imp = self, "stale files deleted: segments {first} to {last}");
                    gst::Structure::builder("streambuffer-stale-file-deleted")
                        .field("sequence", first)
                        .field("last-sequence", last)
                        .build()
                }
                ReaderEvent::ReadFailure { path, error } => {
                    gst::warning!(CAT, imp = self, "read failure: {}: {error}", path.display());
                    gst::Structure::builder("streambuffer-read-failure")
                        .field("location", path.display().to_string())
                        .field("error", error)
                        .build()
                }
                ReaderEvent::TimeHole { offset_ms, size_ms } => {
                    gst::info!(CAT, imp = self, "time hole at {offset_ms} ms, {size_ms} ms long");
                    gst::Structure::builder("streambuffer-time-hole")
                        .field("offset-ms", offset_ms)
                        .field("size-ms", size_ms)
                        .build()
                }
                ReaderEvent::ContentBecomingStale { sequence } => {
                    gst::info!(CAT, imp = self, "content becoming stale: segment {sequence}");
                    gst::Structure::builder("streambuffer-content-becoming-stale")
                        .field("sequence", sequence)
                        .build()
                }
            };
            let _ = obj.post_message(gst::message::Element::builder(s).src(&*obj).build());
        }
    }
}

/// Content time as a `GstClockTime`: times read from disk are bounded, but
/// a sum of them must still never become `GST_CLOCK_TIME_NONE`.
fn clock_time(ns: u64) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(ns.min(gst::ClockTime::MAX.nseconds()))
}
