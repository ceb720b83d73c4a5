// SPDX-License-Identifier: MPL-2.0
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::input::LiveInput;
use super::properties::{self, Owner};
use super::uri::{LIVE_SCHEMES, PREFIX, TimeshiftUri};
use crate::element_sync::lock;
use crate::streambuffersink::StreamBufferSink;
use crate::streambuffersrc::{StartPosition, StreamBufferSrc};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "streambuffertimeshiftsrc",
        gst::DebugColorFlags::empty(),
        Some("Stream buffer time-shift of a live URI"),
    )
});

#[derive(Debug, Default, Clone)]
struct Settings {
    /// The live URI (`udp://...`).
    live: Option<String>,
    /// The ring's directory; `None`: a temporary one.
    location: Option<PathBuf>,
}

/// Where the ring is while playing.
enum RingPlace {
    /// The `location` given: it stays, a ring like any other.
    Given(PathBuf),
    /// A directory made for this run (`ring` inside it), removed at stop.
    Temporary(PathBuf),
}

impl RingPlace {
    fn ring(&self) -> PathBuf {
        match self {
            RingPlace::Given(dir) => dir.clone(),
            RingPlace::Temporary(parent) => parent.join("ring"),
        }
    }

    /// A new private directory under the system's temporary directory.
    /// Those a killed process left are removed first.
    fn temporary() -> std::io::Result<RingPlace> {
        let base = std::env::temp_dir();
        remove_abandoned(&base);
        for attempt in 0..100u32 {
            let dir = base.join(format!("{TEMPORARY_PREFIX}{}-{attempt}", std::process::id()));
            match crate::platform::create_private_dir(&dir) {
                Ok(()) => return Ok(RingPlace::Temporary(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other("no free name for a temporary ring"))
    }

    fn remove(self) {
        if let RingPlace::Temporary(dir) = self
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            gst::warning!(CAT, "Cannot remove the temporary ring {}: {e}", dir.display());
        }
    }
}

/// The name of a temporary ring's directory: the process and a number.
const TEMPORARY_PREFIX: &str = "streambuffer-timeshift-";

/// Removes the temporary rings in `base` whose process has ended (killed:
/// a process that stops removes its own).
fn remove_abandoned(base: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(TEMPORARY_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !crate::platform::process_exists(pid) {
            gst::info!(CAT, "Removing the temporary ring of ended process {pid}");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

enum State {
    Stopped,
    Running { input: LiveInput, place: RingPlace },
}

pub struct StreamBufferTimeshiftSrc {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    /// The ring's writer, in a pipeline of its own while running.
    sink: StreamBufferSink,
    /// The viewer's reader of the ring, this bin's child; locked until the
    /// ring has a segment.
    source: StreamBufferSrc,
}

impl Default for StreamBufferTimeshiftSrc {
    fn default() -> Self {
        StreamBufferTimeshiftSrc {
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(State::Stopped),
            sink: glib::Object::new(),
            // By name, so that an application reaches its action signals
            // (date-time-to-position) and stats: `bin.by_name("reader")`.
            source: glib::Object::builder().property("name", "reader").build(),
        }
    }
}

/**
 * SECTION:element-streambuffertimeshiftsrc
 * @see_also: streambuffersink, streambuffersrc
 *
 * Time-shift of a live MPEG-TS URI in one element: the live input is
 * recorded into a ring by a pipeline of its own, which keeps recording while
 * the viewer's pipeline is paused, and played back by a `streambuffersrc`
 * inside this bin: pause, seek within the window, trick play, back to live.
 * Also opens `streambuffer+udp://`, `+rtp`, `+srt`, `+rist`, `+http` and
 * `+https` URIs, properties in the fragment
 * (`streambuffer+udp://239.0.0.1:5000#max-duration=3600000000000`).
 *
 * The ring is a temporary directory removed at stop, unless `location` is
 * set. The sink's element messages (`streambuffer-write-failure` and the
 * rest) and the source's reach the application's bus.
 *
 * ## Example launch line
 * |[
 * gst-play-1.0 'streambuffer+udp://0.0.0.0:5000#max-duration=1800000000000'
 * ]|
 *
 * Since: 0.3
 */
#[glib::object_subclass]
impl ObjectSubclass for StreamBufferTimeshiftSrc {
    const NAME: &'static str = "GstStreamBufferTimeshiftSrc";
    type Type = super::StreamBufferTimeshiftSrc;
    type ParentType = gst::Bin;
    type Interfaces = (gst::URIHandler,);
}

impl ObjectImpl for StreamBufferTimeshiftSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(properties::param_specs);
        PROPERTIES.as_ref()
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        self.source.set_property("start-position", StartPosition::Live);
        self.sink.set_property("segment-duration", properties::SEGMENT_DURATION);
        self.source.set_locked_state(true);
        if let Err(e) = obj.add(&self.source) {
            gst::error!(CAT, imp = self, "Cannot add the ring's reader: {e}");
            return;
        }
        let Some(target) = self.source.static_pad("src") else {
            return;
        };
        let templ = obj.pad_template("src");
        let ghost = match templ {
            Some(templ) => gst::GhostPad::builder_from_template_with_target(&templ, &target),
            None => gst::GhostPad::builder_with_target(&target),
        };
        match ghost {
            Ok(ghost) => {
                let _ = obj.add_pad(&ghost.name("src").build());
            }
            Err(e) => gst::error!(CAT, imp = self, "Cannot expose the reader's pad: {e}"),
        }
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let name = pspec.name();
        if matches!(*lock(&self.state), State::Running { .. }) {
            gst::warning!(CAT, imp = self, "Property '{name}' cannot be changed while running");
            return;
        }
        match properties::owner(name) {
            Owner::Bin => {
                let mut settings = lock(&self.settings);
                match name {
                    "uri" => match value.get::<Option<String>>().ok().flatten() {
                        Some(uri) => {
                            if let Err(why) = self.set_live_uri(&mut settings, &uri) {
                                gst::warning!(CAT, imp = self, "{why}");
                                glib::g_warning!("streambuffertimeshiftsrc", "{why}");
                            }
                        }
                        None => settings.live = None,
                    },
                    _ => {
                        settings.location = value
                            .get::<Option<String>>()
                            .ok()
                            .flatten()
                            .filter(|l| !l.is_empty())
                            .map(PathBuf::from);
                    }
                }
            }
            Owner::Sink => self.sink.set_property_from_value(name, value),
            Owner::Source(inner) => self.source.set_property_from_value(inner, value),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let name = pspec.name();
        match properties::owner(name) {
            Owner::Bin => {
                let settings = lock(&self.settings);
                match name {
                    "uri" => settings.live.to_value(),
                    _ => settings
                        .location
                        .as_ref()
                        .map(|p| p.to_string_lossy().into_owned())
                        .to_value(),
                }
            }
            Owner::Sink => self.sink.property_value(properties::sink_name(name)),
            Owner::Source(inner) => self.source.property_value(inner),
        }
    }
}

impl GstObjectImpl for StreamBufferTimeshiftSrc {}

impl ElementImpl for StreamBufferTimeshiftSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Stream Buffer Time-shift Source",
                "Source/Network",
                "Time-shift of a live MPEG-TS URI: records it into a ring and plays the ring back, pausable and seekable",
                "streambuffer developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::builder("video/mpegts").field("systemstream", true).build();
            gst::PadTemplate::new("src", gst::PadDirection::Src, gst::PadPresence::Always, &caps)
                .map(|t| vec![t])
                .unwrap_or_default()
        });
        TEMPLATES.as_ref()
    }

    fn change_state(&self, transition: gst::StateChange) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        match transition {
            gst::StateChange::NullToReady if lock(&self.settings).live.is_none() => {
                gst::element_imp_error!(
                    self,
                    gst::ResourceError::NotFound,
                    ("No live URI to time-shift: set uri (udp://, rtp://, srt://, http://...)")
                );
                return Err(gst::StateChangeError);
            }
            gst::StateChange::ReadyToPaused => self.start().map_err(|e| {
                self.post_error_message(e);
                gst::StateChangeError
            })?,
            // The input stops first: nothing starts the source meanwhile.
            gst::StateChange::PausedToReady => self.stop(),
            _ => {}
        }
        let result = self.parent_change_state(transition);
        if result.is_err() && transition == gst::StateChange::ReadyToPaused {
            self.stop();
        }
        result
    }
}

impl BinImpl for StreamBufferTimeshiftSrc {}

impl URIHandlerImpl for StreamBufferTimeshiftSrc {
    const URI_TYPE: gst::URIType = gst::URIType::Src;

    fn protocols() -> &'static [&'static str] {
        static PROTOCOLS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
            LIVE_SCHEMES
                .iter()
                .map(|s| &*Box::leak(format!("{PREFIX}{s}").into_boxed_str()))
                .collect()
        });
        PROTOCOLS.as_ref()
    }

    fn uri(&self) -> Option<String> {
        lock(&self.settings).live.as_ref().map(|live| format!("{PREFIX}{live}"))
    }

    fn set_uri(&self, uri: &str) -> Result<(), glib::Error> {
        if matches!(*lock(&self.state), State::Running { .. }) {
            return Err(glib::Error::new(
                gst::URIError::BadState,
                "Cannot change the URI while running",
            ));
        }
        let parsed = TimeshiftUri::parse(uri).map_err(|why| glib::Error::new(gst::URIError::BadUri, &why))?;
        let obj = self.obj();
        // All checked before any is set: a bad URI changes nothing.
        let mut values = Vec::new();
        for (name, text) in &parsed.properties {
            let value = properties::value_from_uri(&*obj, name, text)
                .map_err(|why| glib::Error::new(gst::URIError::BadUri, &format!("'{uri}': {why}")))?;
            values.push((name, value));
        }
        lock(&self.settings).live = Some(parsed.live);
        for (name, value) in values {
            obj.set_property_from_value(name, &value);
        }
        Ok(())
    }
}

impl StreamBufferTimeshiftSrc {
    /// `uri` set as a property: the live URI itself, or a wrapped one.
    fn set_live_uri(&self, settings: &mut Settings, uri: &str) -> Result<(), String> {
        let live = if uri.get(..PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(PREFIX)) {
            uri.to_owned()
        } else {
            format!("{PREFIX}{uri}")
        };
        let parsed = TimeshiftUri::parse(&live)?;
        if !parsed.properties.is_empty() {
            return Err(format!(
                "'{uri}': properties are set as properties, not in the uri property"
            ));
        }
        settings.live = Some(parsed.live);
        Ok(())
    }

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let Some(live) = settings.live else {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("No live URI to time-shift")
            ));
        };
        let place = match settings.location {
            Some(dir) => RingPlace::Given(dir),
            None => RingPlace::temporary().map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenWrite,
                    (
                        "Cannot make a temporary ring in {}: {}",
                        std::env::temp_dir().display(),
                        e
                    )
                )
            })?,
        };
        let ring = place.ring();
        self.sink.set_property("location", ring.to_string_lossy().as_ref());
        self.source.set_property("location", ring.to_string_lossy().as_ref());
        gst::info!(CAT, imp = self, "Recording {live} into {}", ring.display());
        let obj = self.obj();
        match LiveInput::start(
            obj.upcast_ref(),
            self.sink.upcast_ref(),
            self.source.upcast_ref(),
            &live,
            &ring,
        ) {
            Ok(input) => {
                *lock(&self.state) = State::Running { input, place };
                Ok(())
            }
            Err(e) => {
                place.remove();
                Err(e)
            }
        }
    }

    fn stop(&self) {
        let state = std::mem::replace(&mut *lock(&self.state), State::Stopped);
        if let State::Running { input, place } = state {
            input.stop();
            let _ = self.source.set_state(gst::State::Null);
            self.source.set_locked_state(true);
            place.remove();
        }
    }
}
