// SPDX-License-Identifier: MPL-2.0
//! Pipelines in this process: running to EOS, the sink's stats and
//! events, buffers counted at sinks, playbin.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use gst::prelude::*;

use super::init;

/// Runs a pipeline description to EOS; returns the error text on ERROR.
pub fn run_to_eos(desc: &str, timeout: Duration) -> Result<gst::Pipeline, String> {
    init();
    let pipeline = gst::parse::launch(desc)
        .map_err(|e| format!("parse '{desc}': {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;
    let res = run_pipeline_to_eos(&pipeline, timeout);
    res.map(|()| pipeline)
}

/// Plays `pipeline` until EOS (then NULL); returns the error text on ERROR.
pub fn run_pipeline_to_eos(pipeline: &gst::Pipeline, timeout: Duration) -> Result<(), String> {
    let bus = pipeline.bus().expect("bus");
    pipeline.set_state(gst::State::Playing).map_err(|e| {
        let msg = first_error(&bus).unwrap_or_default();
        let _ = pipeline.set_state(gst::State::Null);
        format!("set_state: {e}: {msg}")
    })?;
    let result = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds(timeout.as_nanos() as u64)) else {
            break Err("timeout waiting for EOS".to_string());
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => {
                break Err(format!("{} ({:?})", e.error(), e.debug()));
            }
            _ => {}
        }
    };
    pipeline
        .set_state(gst::State::Null)
        .map_err(|e| format!("to NULL: {e}"))?;
    result
}

/// The first ERROR message already on the bus, if any.
pub fn first_error(bus: &gst::Bus) -> Option<String> {
    while let Some(msg) = bus.pop() {
        if let gst::MessageView::Error(e) = msg.view() {
            return Some(format!("{} ({:?})", e.error(), e.debug()));
        }
    }
    None
}

/// Reads the sink's `stats` structure.
pub fn stats(pipeline: &gst::Pipeline, name: &str) -> gst::Structure {
    pipeline
        .by_name(name)
        .expect("sink")
        .property::<gst::Structure>("stats")
}

pub fn stat_u64(s: &gst::Structure, field: &str) -> u64 {
    s.get::<u64>(field)
        .unwrap_or_else(|e| panic!("stats field {field}: {e}"))
}

/// Records the file at `input` with `filesrc blocksize=N` into `dir`, to EOS,
/// and returns the stats read at EOS (before the pipeline stops).
pub fn record_file(input: &Path, blocksize: usize, dir: &Path, sink_props: &str) -> gst::Structure {
    init();
    let desc = format!(
        "filesrc location={} blocksize={blocksize} ! streambuffersink name=sink location={} {sink_props}",
        input.display(),
        dir.display()
    );
    let pipeline = gst::parse::launch(&desc)
        .expect("parse")
        .downcast::<gst::Pipeline>()
        .expect("pipeline");
    let bus = pipeline.bus().expect("bus");
    pipeline.set_state(gst::State::Playing).expect("play");
    let mut stats = None;
    while let Some(msg) = bus.timed_pop(gst::ClockTime::from_seconds(300)) {
        match msg.view() {
            gst::MessageView::Eos(_) => {
                stats = Some(self::stats(&pipeline, "sink"));
                break;
            }
            gst::MessageView::Error(e) => {
                panic!("recording failed: {} ({:?})", e.error(), e.debug())
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).expect("stop");
    stats.expect("EOS before timeout")
}

/// What the sink reported through its signals and bus messages.
#[derive(Debug, Default)]
pub struct SinkEvents {
    /// (GError domain matches NO_SPACE_LEFT, OPEN_WRITE, WRITE; message) per write-failure signal.
    pub failures: Vec<(String, String)>,
    /// (dropped bytes, dropped duration) per write-failure-clear signal.
    pub clears: Vec<(u64, u64)>,
    pub encryption: Vec<bool>,
    /// Names of element messages and "ERROR: ..." for errors, in bus order.
    pub messages: Vec<String>,
    /// The order in which signals and errors happened, across threads.
    pub sequence: Vec<String>,
}

pub type Shared = std::sync::Arc<Mutex<SinkEvents>>;

pub fn lock_events(e: &Shared) -> std::sync::MutexGuard<'_, SinkEvents> {
    e.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Connects to the sink's signals and the pipeline's bus (synchronously, so
/// nothing is missed and the order of signals and errors is kept).
pub fn watch(pipeline: &gst::Pipeline, sink_name: &str) -> Shared {
    use gst::glib;
    let events: Shared = Default::default();
    let sink = pipeline.by_name(sink_name).expect("sink");
    {
        let events = events.clone();
        sink.connect("write-failure", false, move |args| {
            let err = args[1].get::<glib::Error>().expect("GError argument");
            let code = if err.matches(gst::ResourceError::NoSpaceLeft) {
                "no-space-left"
            } else if err.matches(gst::ResourceError::OpenWrite) {
                "open-write"
            } else if err.matches(gst::ResourceError::Write) {
                "write"
            } else {
                "other"
            };
            let mut e = lock_events(&events);
            e.failures.push((code.to_string(), err.message().to_string()));
            e.sequence.push("write-failure".into());
            None
        });
    }
    {
        let events = events.clone();
        sink.connect("write-failure-clear", false, move |args| {
            let bytes = args[1].get::<u64>().expect("bytes");
            let duration = args[2].get::<u64>().expect("duration");
            let mut e = lock_events(&events);
            e.clears.push((bytes, duration));
            e.sequence.push("write-failure-clear".into());
            None
        });
    }
    for (signal, on) in [("encryption-on", true), ("encryption-off", false)] {
        let events = events.clone();
        sink.connect(signal, false, move |_| {
            lock_events(&events).encryption.push(on);
            None
        });
    }
    let bus = pipeline.bus().expect("bus");
    let events2 = events.clone();
    bus.set_sync_handler(move |_, msg| {
        let mut e = lock_events(&events2);
        match msg.view() {
            gst::MessageView::Element(el) => {
                if let Some(s) = el.structure() {
                    e.messages.push(s.name().to_string());
                }
            }
            gst::MessageView::Error(err) => {
                let text = format!("ERROR: {} ({:?})", err.error(), err.debug());
                e.messages.push(text.clone());
                e.sequence.push(text);
            }
            _ => {}
        }
        gst::BusSyncReply::Pass
    });
    events
}

/// Sends EOS and waits for it (or an error) on the bus.
pub fn eos_and_wait(pipeline: &gst::Pipeline, timeout: Duration) -> Result<(), String> {
    pipeline.send_event(gst::event::Eos::new());
    wait_for_eos(pipeline, timeout)
}

/// Waits for EOS or ERROR on the bus.
pub fn wait_for_eos(pipeline: &gst::Pipeline, timeout: Duration) -> Result<(), String> {
    let bus = pipeline.bus().expect("bus");
    match bus.timed_pop_filtered(
        gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    ) {
        Some(msg) => match msg.view() {
            gst::MessageView::Eos(_) => Ok(()),
            gst::MessageView::Error(e) => Err(format!("{} ({:?})", e.error(), e.debug())),
            _ => Err("unexpected message".into()),
        },
        None => Err("timeout".into()),
    }
}

pub fn launch(desc: &str) -> gst::Pipeline {
    init();
    gst::parse::launch(desc)
        .expect("parse")
        .downcast::<gst::Pipeline>()
        .expect("pipeline")
}

/// A playing `appsrc ! streambuffersink name=sink` pipeline, with unlimited queueing.
pub fn appsrc_sink(ring: &Path, props: &str) -> (gst::Pipeline, gst_app::AppSrc) {
    let pipeline = launch(&format!(
        "appsrc name=src format=bytes ! streambuffersink name=sink location={} {props}",
        ring.display()
    ));
    let src = pipeline
        .by_name("src")
        .expect("src")
        .downcast::<gst_app::AppSrc>()
        .expect("appsrc");
    src.set_max_bytes(0);
    (pipeline, src)
}

/// Element messages with `name` posted on `bus` so far (drained).
pub fn element_messages(bus: &gst::Bus, name: &str) -> Vec<gst::Structure> {
    let mut found = Vec::new();
    while let Some(msg) = bus.pop() {
        if let gst::MessageView::Element(e) = msg.view()
            && let Some(s) = e.structure()
            && s.name() == name
        {
            found.push(s.to_owned());
        }
    }
    found
}

/// The `kind` argument of `start-recording` from its nick ("content", "reference").
pub fn recording_kind(nick: &str) -> gst::glib::Value {
    let ty = gst::glib::Type::from_name("GstStreamBufferRecordingKind").expect("enum registered");
    let class = gst::glib::EnumClass::with_type(ty).expect("enum class");
    class.to_value_by_nick(nick).expect("nick")
}

/// Calls `f` with every buffer (and its mapped bytes) the appsink `name` of
/// `pipeline` receives, on the streaming thread.
pub fn on_each_buffer(
    pipeline: &gst::Pipeline,
    name: &str,
    mut f: impl FnMut(&gst::BufferRef, &[u8]) + Send + 'static,
) {
    let sink = pipeline
        .by_name(name)
        .expect("appsink")
        .downcast::<gst_app::AppSink>()
        .expect("appsink");
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                f(buffer, &map);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}

/// How long a pipeline plays while its buffers are counted.
#[derive(Debug, Clone, Copy)]
pub enum PlayFor {
    /// To EOS, failing after this long.
    Eos(Duration),
    /// This long (a live source never ends); EOS before is fine.
    Time(Duration),
}

/// Counts the buffers reaching each of `sinks` while `pipeline` plays as
/// `play` says; an ERROR fails it.
pub fn count_buffers(pipeline: &gst::Pipeline, sinks: &[gst::Element], play: PlayFor) -> Result<Vec<u64>, String> {
    let counts: Vec<std::sync::Arc<std::sync::atomic::AtomicU64>> = sinks.iter().map(|_| Default::default()).collect();
    for (sink, count) in sinks.iter().zip(&counts) {
        let count = count.clone();
        sink.static_pad("sink").ok_or("sink without pad")?.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
            move |_, _| {
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            },
        );
    }
    match play {
        PlayFor::Eos(timeout) => run_pipeline_to_eos(pipeline, timeout)?,
        PlayFor::Time(duration) => {
            pipeline.set_state(gst::State::Playing).map_err(|e| e.to_string())?;
            let bus = pipeline.bus().ok_or("no bus")?;
            let deadline = std::time::Instant::now() + duration;
            let mut result = Ok(());
            while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
                let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64)) else {
                    break;
                };
                match msg.view() {
                    gst::MessageView::Error(e) => {
                        result = Err(format!("{} ({:?})", e.error(), e.debug()));
                        break;
                    }
                    gst::MessageView::Eos(_) => break,
                    _ => {}
                }
            }
            let _ = pipeline.set_state(gst::State::Null);
            result?;
        }
    }
    Ok(counts
        .iter()
        .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
        .collect())
}

/// Like [`count_buffers`] for a pipeline description whose sinks are named
/// `names`.
pub fn launch_counting(desc: &str, names: &[&str], play: PlayFor) -> Result<Vec<u64>, String> {
    init();
    let pipeline = gst::parse::launch(desc)
        .map_err(|e| format!("parse '{desc}': {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;
    let sinks: Vec<gst::Element> = names
        .iter()
        .map(|n| pipeline.by_name(n).ok_or(format!("no element {n}")))
        .collect::<Result<_, _>>()?;
    count_buffers(&pipeline, &sinks, play)
}

/// Plays `uri` with playbin into fakesinks as `play` says (to EOS as fast
/// as it goes, or for a while in real time); returns the (video, audio)
/// buffers they received.
pub fn playbin_buffers(uri: &str, play: PlayFor) -> Result<(u64, u64), String> {
    init();
    let sink = || {
        gst::ElementFactory::make("fakesink")
            .property("sync", matches!(play, PlayFor::Time(_)))
            .build()
            .map_err(|e| e.to_string())
    };
    let (video, audio) = (sink()?, sink()?);
    let playbin = gst::ElementFactory::make("playbin")
        .property("uri", uri)
        .property("video-sink", &video)
        .property("audio-sink", &audio)
        .build()
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "playbin is not a pipeline")?;
    let counts = count_buffers(&playbin, &[video, audio], play)?;
    Ok((counts[0], counts[1]))
}

/// `seconds` (negative: back) as the typed API's signed offset.
pub fn signed_seconds(seconds: i64) -> gst::Signed<gst::ClockTime> {
    let t = gst::ClockTime::from_seconds(seconds.unsigned_abs());
    if seconds < 0 {
        t.into_negative()
    } else {
        t.into_positive()
    }
}

/// A sink fed through appsrc, so the test decides when each part arrives.
pub struct Feeder {
    pub pipeline: gst::Pipeline,
    pub src: gst_app::AppSrc,
    pub sink: gst::Element,
    pushed: u64,
}

impl Feeder {
    pub fn new(ring: &std::path::Path, props: &str) -> Feeder {
        let (pipeline, src) = appsrc_sink(ring, props);
        let sink = pipeline.by_name("sink").expect("sink");
        pipeline.set_state(gst::State::Playing).expect("play");
        Feeder {
            pipeline,
            src,
            sink,
            pushed: 0,
        }
    }

    /// Pushes `data` and waits until the sink has processed all of it.
    pub fn feed(&mut self, data: &[u8]) {
        for c in data.chunks(65536) {
            self.src.push_buffer(gst::Buffer::from_slice(c.to_vec())).expect("push");
        }
        self.pushed += data.len() as u64;
        let sink = self.sink.clone();
        let pushed = self.pushed;
        assert!(
            super::wait_until(Duration::from_secs(60), || sink
                .property::<gst::Structure>("stats")
                .get::<u64>("bytes-in")
                .is_ok_and(|b| b == pushed)),
            "sink did not process the data"
        );
    }

    /// Through the typed API (`StreamBufferSinkExt`).
    pub fn start(&self, location: &std::path::Path, kind: &str, offset_s: i64) -> u32 {
        use gststreambuffer::streambuffersink::{RecordingKind, StreamBufferSinkExt};
        let kind = if kind == "content" {
            RecordingKind::Content
        } else {
            RecordingKind::Reference
        };
        self.sink
            .start_recording(location, kind, signed_seconds(offset_s))
            .unwrap_or(0)
    }

    pub fn stop(&self, id: u32, offset_s: i64) -> bool {
        use gststreambuffer::streambuffersink::StreamBufferSinkExt;
        self.sink.stop_recording(id, signed_seconds(offset_s))
    }

    pub fn finish(self) {
        self.src.end_of_stream().expect("eos");
        wait_for_eos(&self.pipeline, Duration::from_secs(60)).expect("EOS");
        self.pipeline.set_state(gst::State::Null).expect("stop");
    }
}

/// Every element message posted on `pipeline`'s bus from now on (kept by a
/// sync handler, so that waiting for EOS loses none).
pub fn collect_messages(pipeline: &gst::Pipeline) -> std::sync::Arc<Mutex<Vec<gst::Structure>>> {
    let messages = std::sync::Arc::new(Mutex::new(Vec::new()));
    let kept = messages.clone();
    pipeline.bus().expect("bus").set_sync_handler(move |_, msg| {
        if let gst::MessageView::Element(e) = msg.view()
            && let Some(s) = e.structure()
        {
            kept.lock().expect("lock").push(s.to_owned());
        }
        gst::BusSyncReply::Pass
    });
    messages
}
