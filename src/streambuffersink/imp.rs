use std::path::PathBuf;
use std::sync::{LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use crate::recorder::{Recorder, RecorderConfig, RecorderEvent};
use crate::ring::{Retention, Ring, RingConfig, RingError};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "streambuffersink",
        gst::DebugColorFlags::empty(),
        Some("Stream buffer ring sink"),
    )
});

const SECOND: u64 = 1_000_000_000;
const DEFAULT_SEGMENT_DURATION: u64 = 6 * SECOND;
const MIN_SEGMENT_DURATION: u64 = SECOND / 10;
const MAX_SEGMENT_DURATION: u64 = 3600 * SECOND;
const DEFAULT_MAX_DURATION: u64 = 30 * 60 * SECOND;
/// One year: anything longer is a typo, not a retention policy.
const MAX_MAX_DURATION: u64 = 366 * 24 * 3600 * SECOND;
const MAX_PLAYLIST_LENGTH: u32 = 1_000_000;

#[derive(Debug, Clone)]
struct Settings {
    location: Option<PathBuf>,
    segment_duration: u64,
    max_duration: u64,
    max_size: u64,
    min_free_space: u64,
    playlist_length: u32,
    program_number: i32,
    sync_on_rotate: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            location: None,
            segment_duration: DEFAULT_SEGMENT_DURATION,
            max_duration: DEFAULT_MAX_DURATION,
            max_size: 0,
            min_free_space: 0,
            playlist_length: 0,
            program_number: -1,
            sync_on_rotate: false,
        }
    }
}

enum State {
    Stopped,
    Started(Box<Recorder>),
}

pub struct StreamBufferSink {
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

impl Default for StreamBufferSink {
    fn default() -> Self {
        StreamBufferSink {
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(State::Stopped),
        }
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it: the
/// state is still consistent at every await point of this element.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[glib::object_subclass]
impl ObjectSubclass for StreamBufferSink {
    const NAME: &'static str = "GstStreamBufferSink";
    type Type = super::StreamBufferSink;
    type ParentType = gst_base::BaseSink;
}

impl ObjectImpl for StreamBufferSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("location")
                    .nick("Location")
                    .blurb("Directory of the ring: segment files, ring.journal and index.m3u8 (created if missing)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("segment-duration")
                    .nick("Segment duration")
                    .blurb("Target segment length in ns; a segment ends at the first random-access point after it")
                    .minimum(MIN_SEGMENT_DURATION)
                    .maximum(MAX_SEGMENT_DURATION)
                    .default_value(DEFAULT_SEGMENT_DURATION)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("max-duration")
                    .nick("Maximum duration")
                    .blurb("Time-shift window in ns: oldest segments are deleted beyond it (0 = unlimited)")
                    .maximum(MAX_MAX_DURATION)
                    .default_value(DEFAULT_MAX_DURATION)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("max-size")
                    .nick("Maximum size")
                    .blurb("Bytes the ring may occupy, the segment being written included (0 = unlimited)")
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("min-free-space")
                    .nick("Minimum free space")
                    .blurb("Delete oldest segments to keep at least this many bytes free on the filesystem (0 = off)")
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("playlist-length")
                    .nick("Playlist length")
                    .blurb("Newest segments listed in index.m3u8 (0 = the whole window)")
                    .maximum(MAX_PLAYLIST_LENGTH)
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("program-number")
                    .nick("Program number")
                    .blurb("MPEG-TS program whose PMT and video define the cut points (-1 = first program in the PAT)")
                    .minimum(-1)
                    .maximum(65535)
                    .default_value(-1)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("sync-on-rotate")
                    .nick("Sync on rotate")
                    .blurb("fsync each finished segment, the journal and the playlist (survives power loss; costs I/O)")
                    .default_value(false)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("Counters of the recording (bytes, packets, segments, sync losses, window), like SBE's IStreamBufferDataCounters")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            vec![
                glib::subclass::Signal::builder("encryption-on")
                    .run_last()
                    .build(),
                glib::subclass::Signal::builder("encryption-off")
                    .run_last()
                    .build(),
            ]
        });
        SIGNALS.as_ref()
    }

    fn constructed(&self) {
        self.parent_constructed();
        // A recorder writes data as it arrives; it must not wait for the clock.
        self.obj().set_sync(false);
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if matches!(*lock(&self.state), State::Started(_)) {
            gst::warning!(
                CAT,
                imp = self,
                "Property '{}' cannot be changed while recording",
                pspec.name()
            );
            return;
        }
        let mut settings = lock(&self.settings);
        match pspec.name() {
            "location" => {
                let location = value.get::<Option<String>>().ok().flatten();
                match location {
                    Some(ref s) if s.is_empty() => {
                        gst::error!(CAT, imp = self, "Refusing an empty location");
                    }
                    _ => settings.location = location.map(PathBuf::from),
                }
            }
            "segment-duration" => {
                settings.segment_duration = value.get().unwrap_or(settings.segment_duration)
            }
            "max-duration" => settings.max_duration = value.get().unwrap_or(settings.max_duration),
            "max-size" => settings.max_size = value.get().unwrap_or(settings.max_size),
            "min-free-space" => {
                settings.min_free_space = value.get().unwrap_or(settings.min_free_space)
            }
            "playlist-length" => {
                settings.playlist_length = value.get().unwrap_or(settings.playlist_length)
            }
            "program-number" => {
                settings.program_number = value.get().unwrap_or(settings.program_number)
            }
            "sync-on-rotate" => {
                settings.sync_on_rotate = value.get().unwrap_or(settings.sync_on_rotate)
            }
            other => gst::warning!(CAT, imp = self, "Unknown property '{other}'"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        match pspec.name() {
            "location" => settings
                .location
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .to_value(),
            "segment-duration" => settings.segment_duration.to_value(),
            "max-duration" => settings.max_duration.to_value(),
            "max-size" => settings.max_size.to_value(),
            "min-free-space" => settings.min_free_space.to_value(),
            "playlist-length" => settings.playlist_length.to_value(),
            "program-number" => settings.program_number.to_value(),
            "sync-on-rotate" => settings.sync_on_rotate.to_value(),
            "stats" => {
                drop(settings);
                self.stats().to_value()
            }
            other => {
                gst::warning!(CAT, imp = self, "Unknown property '{other}'");
                None::<String>.to_value()
            }
        }
    }
}

impl GstObjectImpl for StreamBufferSink {}

impl ElementImpl for StreamBufferSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Stream Buffer Sink",
                "Sink/File",
                "Records a live MPEG-TS stream into an on-disk ring of playable HLS segments (time-shift buffer)",
                "streambuffer developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::builder("video/mpegts")
                .field("systemstream", true)
                .field("packetsize", gst::List::new([188i32, 192, 204]))
                .build();
            match gst::PadTemplate::new(
                "sink",
                gst::PadDirection::Sink,
                gst::PadPresence::Always,
                &caps,
            ) {
                Ok(t) => vec![t],
                Err(e) => {
                    gst::error!(CAT, "Cannot create the sink pad template: {e}");
                    Vec::new()
                }
            }
        });
        TEMPLATES.as_ref()
    }
}

impl BaseSinkImpl for StreamBufferSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let Some(dir) = settings.location.clone() else {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("No location set: set 'location' to the ring directory")
            ));
        };
        let ring = Ring::open(RingConfig {
            dir: dir.clone(),
            retention: Retention {
                max_duration_ns: settings.max_duration,
                max_size: settings.max_size,
                min_free_space: settings.min_free_space,
            },
            playlist_length: settings.playlist_length,
            segment_duration_ns: settings.segment_duration,
            sync_on_rotate: settings.sync_on_rotate,
        })
        .map_err(|e| match e {
            RingError::Locked(_) => gst::error_msg!(gst::ResourceError::Busy, ("{}", e)),
            RingError::NotADirectory(_) => {
                gst::error_msg!(gst::ResourceError::OpenWrite, ("{}", e))
            }
            RingError::Io { .. } => gst::error_msg!(gst::ResourceError::OpenWrite, ("{}", e)),
        })?;
        let adopted = ring.segments().len();
        if adopted > 0 {
            gst::info!(
                CAT,
                imp = self,
                "Adopted {adopted} segments already in {}",
                dir.display()
            );
        }
        let recorder = Recorder::new(
            ring,
            RecorderConfig {
                segment_duration_ns: settings.segment_duration,
                program: u16::try_from(settings.program_number).ok(),
            },
        );
        *lock(&self.state) = State::Started(Box::new(recorder));
        gst::info!(CAT, imp = self, "Recording into {}", dir.display());
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = std::mem::replace(&mut *lock(&self.state), State::Stopped);
        if let State::Started(mut recorder) = state {
            // Stopping without EOS still leaves a finished, playable ring.
            recorder.finish().map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::Close,
                    ("Cannot finish the last segment: {}", e)
                )
            })?;
        }
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut state = lock(&self.state);
        let State::Started(recorder) = &mut *state else {
            gst::element_imp_error!(self, gst::CoreError::Failed, ("Not started"));
            return Err(gst::FlowError::Error);
        };
        self.push_buffer(recorder, buffer)?;
        let events = recorder.take_events();
        drop(state);
        self.emit_events(events);
        Ok(gst::FlowSuccess::Ok)
    }

    fn render_list(&self, list: &gst::BufferList) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut state = lock(&self.state);
        let State::Started(recorder) = &mut *state else {
            gst::element_imp_error!(self, gst::CoreError::Failed, ("Not started"));
            return Err(gst::FlowError::Error);
        };
        for buffer in list.iter() {
            self.push_buffer(recorder, buffer)?;
        }
        let events = recorder.take_events();
        drop(state);
        self.emit_events(events);
        Ok(gst::FlowSuccess::Ok)
    }

    fn event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Eos(_) => {
                let mut state = lock(&self.state);
                if let State::Started(recorder) = &mut *state
                    && let Err(e) = recorder.finish()
                {
                    gst::element_imp_error!(
                        self,
                        gst::ResourceError::Write,
                        ("Cannot finish the ring at EOS: {}", e)
                    );
                }
            }
            gst::EventView::FlushStop(_) => {
                let mut state = lock(&self.state);
                if let State::Started(recorder) = &mut *state
                    && let Err(e) = recorder.flush()
                {
                    gst::element_imp_error!(
                        self,
                        gst::ResourceError::Write,
                        ("Cannot write after a flush: {}", e)
                    );
                }
            }
            _ => {}
        }
        self.parent_event(event)
    }
}

impl StreamBufferSink {
    fn push_buffer(
        &self,
        recorder: &mut Recorder,
        buffer: &gst::BufferRef,
    ) -> Result<(), gst::FlowError> {
        let map = buffer.map_readable().map_err(|_| {
            gst::element_imp_error!(
                self,
                gst::CoreError::Failed,
                ("Cannot map a buffer for reading")
            );
            gst::FlowError::Error
        })?;
        let time = buffer.pts().or(buffer.dts()).map(gst::ClockTime::nseconds);
        recorder.push(map.as_slice(), time).map_err(|e| {
            let location = recorder
                .ring()
                .current_path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            gst::element_imp_error!(
                self,
                gst::ResourceError::Write,
                ("Cannot write to '{}': {}", location, e)
            );
            gst::FlowError::Error
        })
    }

    fn emit_events(&self, events: Vec<RecorderEvent>) {
        for event in events {
            match event {
                RecorderEvent::Scrambling(scrambled) => {
                    let (signal, message) = if scrambled {
                        ("encryption-on", "streambuffer-encryption-on")
                    } else {
                        ("encryption-off", "streambuffer-encryption-off")
                    };
                    gst::info!(CAT, imp = self, "{signal}");
                    self.obj().emit_by_name::<()>(signal, &[]);
                    let s = gst::Structure::builder(message).build();
                    let _ = self
                        .obj()
                        .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
                }
            }
        }
    }

    fn stats(&self) -> gst::Structure {
        let state = lock(&self.state);
        let State::Started(recorder) = &*state else {
            return gst::Structure::builder("streambuffer-stats")
                .field("recording", false)
                .build();
        };
        let rec = recorder.stats();
        let al = recorder.aligner_stats();
        let an = recorder.analyzer_stats();
        let ring = recorder.ring();
        let rs = ring.stats();
        let window = ring.window();
        let mut segments = ring.segments();
        let oldest = segments.next().map(|s| s.sequence);
        let newest = segments.next_back().map(|s| s.sequence).or(oldest);
        gst::Structure::builder("streambuffer-stats")
            .field("recording", true)
            .field("bytes-in", rec.bytes_in)
            .field("bytes-written", rs.bytes_written)
            .field("buffers", rec.buffers)
            .field("packets", al.packets)
            .field("sync-losses", al.sync_losses)
            .field("dropped-bytes", al.dropped_bytes)
            .field("continuity-errors", an.continuity_errors)
            .field("transport-errors", an.transport_errors)
            .field("random-access-points", an.random_access_points)
            .field(
                "packets-before-random-access",
                rec.packets_before_random_access,
            )
            .field("discontinuities", rec.discontinuities)
            .field("forced-cuts", rec.forced_cuts)
            .field("scrambled-packets", an.scrambled_packets)
            .field("clock-source", recorder.clock_source().as_str())
            .field("segments-created", rs.segments_created)
            .field("segments-deleted", rs.segments_deleted)
            .field("evicted-max-duration", rs.evicted_max_duration)
            .field("evicted-max-size", rs.evicted_max_size)
            .field("evicted-min-free-space", rs.evicted_min_free_space)
            .field("adopted-segments", rs.adopted_segments)
            .field("playlist-writes", rs.playlist_writes)
            .field("window-segments", ring.segments().len() as u64)
            .field("window-start", oldest.map_or(-1i64, |s| s as i64))
            .field("window-end", newest.map_or(-1i64, |s| s as i64))
            .field("window-duration", window.duration_ns)
            .field("window-bytes", window.bytes)
            .field(
                "current-segment",
                ring.current_path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            )
            .build()
    }
}
