// SPDX-License-Identifier: MPL-2.0
//! `LiveInput`: the live URI recorded into the ring by a pipeline of its
//! own (`urisourcebin ! [rtpmp2tdepay !] streambuffersink`), which stays
//! PLAYING whatever the viewer's pipeline does: a live source in a paused
//! pipeline does not produce, and what it would have produced is gone.
//!
//! A thread of its own (never a streaming thread) watches it: it lets the
//! viewer's `streambuffersrc` start once the ring has published its first
//! segment, and replaces a failed input (a server that went away) while the
//! sink records on: the ring shows the outage as a time hole.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use gst::glib;
use gst::prelude::*;

use crate::layout::PLAYLIST_NAME;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "streambuffertimeshiftsrc",
        gst::DebugColorFlags::empty(),
        Some("Stream buffer time-shift of a live URI"),
    )
});

/// How often the watcher looks for the ring's first segment.
const PUBLISH_POLL: Duration = Duration::from_millis(50);
/// How long a failed input waits before it is replaced.
const INPUT_RETRY: Duration = Duration::from_secs(1);

/// What the watcher thread is told.
enum Note {
    /// An ERROR on the recording pipeline; `from_sink`: the ring's writer
    /// posted it (its `write-failure-mode=error`), which is final.
    Failed {
        from_sink: bool,
        error: glib::Error,
        debug: Option<String>,
    },
    Stop,
}

/// The recording pipeline and its watcher.
pub(super) struct LiveInput {
    pipeline: gst::Pipeline,
    sink: gst::Element,
    notes: Sender<Note>,
    watcher: Option<JoinHandle<()>>,
    /// The probe that keeps the input's EOS from the sink.
    eos_probe: Option<gst::PadProbeId>,
}

impl LiveInput {
    /// Starts recording `live` with `sink` (its location already set to
    /// `ring`); `source` (locked) is started in `viewer`'s state once the
    /// ring has a segment.
    pub(super) fn start(
        viewer: &gst::Bin,
        sink: &gst::Element,
        source: &gst::Element,
        live: &str,
        ring: &Path,
    ) -> Result<LiveInput, gst::ErrorMessage> {
        let pipeline = gst::Pipeline::with_name(&format!("{}-recording", viewer.name()));
        pipeline
            .add(sink)
            .map_err(|e| gst::error_msg!(gst::CoreError::Failed, ("Cannot use the ring's writer: {}", e)))?;
        let (notes, received) = channel();
        let input = LiveInput {
            pipeline,
            sink: sink.clone(),
            notes,
            watcher: None,
            eos_probe: None,
        };
        let mut input = LiveInput {
            eos_probe: input.hold_back_eos(),
            ..input
        };
        // On any failure the sink leaves the pipeline, free for a next start.
        if let Err(e) = input.add_source(live) {
            input.shut_down();
            return Err(e);
        }
        input.forward_messages(viewer);
        if input.pipeline.set_state(gst::State::Playing).is_err() {
            let why = match received.try_recv() {
                Ok(Note::Failed { error, .. }) => error.to_string(),
                _ => "its pipeline does not start".to_owned(),
            };
            input.shut_down();
            return Err(gst::error_msg!(
                gst::ResourceError::OpenRead,
                ("Cannot record '{}': {}", live, why)
            ));
        }
        let watch = Watch {
            viewer: viewer.downgrade(),
            pipeline: input.pipeline.clone(),
            sink: sink.clone(),
            source: source.clone(),
            live: live.to_owned(),
            playlist: ring.join(PLAYLIST_NAME),
        };
        let watcher = match std::thread::Builder::new()
            .name("timeshift-watch".into())
            .spawn(move || watch.run(&received))
        {
            Ok(watcher) => watcher,
            Err(e) => {
                input.shut_down();
                return Err(gst::error_msg!(
                    gst::CoreError::Failed,
                    ("Cannot start a thread: {}", e)
                ));
            }
        };
        Ok(LiveInput {
            watcher: Some(watcher),
            ..input
        })
    }

    /// A `urisourcebin` for `live`, linked to the sink when its pad comes.
    fn add_source(&self, live: &str) -> Result<(), gst::ErrorMessage> {
        add_source(&self.pipeline, &self.sink, live).map(|_| ())
    }

    /// An EOS from the live input is a source that went away (a server that
    /// closed the connection, or one that failed and sent EOS after its
    /// error), not the end of the recording: it does not reach the sink,
    /// which would finish the ring and so end playback; the watcher opens
    /// the input again. The recording ends when the element stops.
    fn hold_back_eos(&self) -> Option<gst::PadProbeId> {
        let pad = self.sink.static_pad("sink")?;
        let notes = std::sync::Mutex::new(self.notes.clone());
        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            let is_eos = info.event().is_some_and(|e| e.type_() == gst::EventType::Eos);
            if !is_eos {
                return gst::PadProbeReturn::Ok;
            }
            let note = Note::Failed {
                from_sink: false,
                error: glib::Error::new(gst::ResourceError::Read, "the live input ended"),
                debug: None,
            };
            let _ = crate::element_sync::lock(&notes).send(note);
            gst::PadProbeReturn::Drop
        })
    }

    /// The recording pipeline's messages go to the viewer's bus, as its own
    /// elements' would: the sink's element messages (`write-failure` and the
    /// rest) and warnings as they are; errors to the watcher. Nothing else
    /// (state changes, buffering of an HTTP input) concerns the viewer.
    fn forward_messages(&self, viewer: &gst::Bin) {
        let Some(bus) = self.pipeline.bus() else { return };
        let viewer = viewer.downgrade();
        let notes = std::sync::Mutex::new(self.notes.clone());
        let sink = self.sink.clone();
        bus.set_sync_handler(move |_, msg| {
            match msg.view() {
                gst::MessageView::Element(_) | gst::MessageView::Warning(_) => {
                    if let Some(viewer) = viewer.upgrade() {
                        let _ = viewer.post_message(msg.clone());
                    }
                }
                gst::MessageView::Error(e) => {
                    let from_sink = msg.src().is_some_and(|s| s == sink.upcast_ref::<gst::Object>());
                    let note = Note::Failed {
                        from_sink,
                        error: e.error(),
                        debug: e.debug().map(|d| d.to_string()),
                    };
                    let _ = crate::element_sync::lock(&notes).send(note);
                }
                _ => {}
            }
            gst::BusSyncReply::Drop
        });
    }

    /// Stops the recording: the sink finishes the ring's files.
    pub(super) fn stop(mut self) {
        let _ = self.notes.send(Note::Stop);
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
        self.shut_down();
    }

    fn shut_down(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        if let (Some(probe), Some(pad)) = (self.eos_probe.take(), self.sink.static_pad("sink")) {
            pad.remove_probe(probe);
        }
        if let Some(bus) = self.pipeline.bus() {
            bus.unset_sync_handler();
        }
        // The sink is kept for the next start (its properties with it).
        let _ = self.pipeline.remove(&self.sink);
    }
}

/// Adds a `urisourcebin` for `live` to `pipeline`, its pad linked to `sink`
/// (through `rtpmp2tdepay` for RTP).
fn add_source(pipeline: &gst::Pipeline, sink: &gst::Element, live: &str) -> Result<gst::Element, gst::ErrorMessage> {
    let source = gst::ElementFactory::make("urisourcebin")
        .property("uri", live)
        .build()
        .map_err(|e| gst::error_msg!(gst::CoreError::MissingPlugin, ("No urisourcebin: {}", e)))?;
    pipeline
        .add(&source)
        .map_err(|e| gst::error_msg!(gst::CoreError::Failed, ("Cannot add the live input: {}", e)))?;
    let pipeline_weak = pipeline.downgrade();
    let sink_pad = sink.static_pad("sink");
    source.connect_pad_added(move |_, pad| {
        let (Some(pipeline), Some(sink_pad)) = (pipeline_weak.upgrade(), sink_pad.as_ref()) else {
            return;
        };
        if sink_pad.is_linked() {
            gst::warning!(CAT, "The live input has a second stream ({}): not recorded", pad.name());
            return;
        }
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let rtp = caps
            .structure(0)
            .is_some_and(|s| s.name().as_str() == "application/x-rtp");
        let linked = if rtp {
            link_through_depayloader(&pipeline, pad, sink_pad)
        } else {
            pad.link(sink_pad).map(|_| ()).map_err(|e| e.to_string())
        };
        if let Err(why) = linked {
            gst::element_error!(
                pipeline,
                gst::StreamError::Format,
                ("The live input cannot be recorded: {}", why)
            );
        }
    });
    Ok(source)
}

fn link_through_depayloader(pipeline: &gst::Pipeline, pad: &gst::Pad, sink_pad: &gst::Pad) -> Result<(), String> {
    let depay = gst::ElementFactory::make("rtpmp2tdepay")
        .build()
        .map_err(|e| format!("no rtpmp2tdepay for RTP: {e}"))?;
    pipeline.add(&depay).map_err(|e| e.to_string())?;
    let (Some(depay_sink), Some(depay_src)) = (depay.static_pad("sink"), depay.static_pad("src")) else {
        return Err("rtpmp2tdepay has no pads".into());
    };
    depay_src.link(sink_pad).map_err(|e| e.to_string())?;
    pad.link(&depay_sink).map_err(|e| e.to_string())?;
    depay.sync_state_with_parent().map_err(|e| e.to_string())?;
    Ok(())
}

/// What the watcher thread works on.
struct Watch {
    viewer: glib::WeakRef<gst::Bin>,
    pipeline: gst::Pipeline,
    sink: gst::Element,
    source: gst::Element,
    live: String,
    playlist: PathBuf,
}

impl Watch {
    fn run(self, notes: &Receiver<Note>) {
        let mut published = false;
        loop {
            match notes.recv_timeout(PUBLISH_POLL) {
                Ok(Note::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Note::Failed {
                    from_sink,
                    error,
                    debug,
                }) => {
                    if from_sink || !published {
                        self.fail(&error, debug.as_deref(), published);
                        return;
                    }
                    self.warn(&error);
                    // What else the failed input says meanwhile (its EOS
                    // after its error) is the same outage.
                    let retry_at = std::time::Instant::now() + INPUT_RETRY;
                    loop {
                        let left = retry_at.saturating_duration_since(std::time::Instant::now());
                        match notes.recv_timeout(left) {
                            Ok(Note::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                            Ok(Note::Failed { .. }) => {}
                            Err(RecvTimeoutError::Timeout) => break,
                        }
                    }
                    self.replace_input();
                }
                Err(RecvTimeoutError::Timeout) => {
                    if !published && self.playlist.is_file() {
                        published = true;
                        self.start_viewing();
                    }
                }
            }
        }
    }

    /// The ring has a segment: the viewer's source starts, in the state its
    /// bin is in (or going to).
    fn start_viewing(&self) {
        gst::debug!(CAT, "The ring has published its first segment: playback starts");
        self.source.set_locked_state(false);
        if let Err(e) = self.source.sync_state_with_parent()
            && let Some(viewer) = self.viewer.upgrade()
        {
            gst::element_error!(viewer, gst::CoreError::StateChange, ("Playback does not start: {}", e));
        }
    }

    /// A final failure: an ERROR of the viewer's element, naming the input.
    fn fail(&self, error: &glib::Error, debug: Option<&str>, published: bool) {
        let Some(viewer) = self.viewer.upgrade() else { return };
        let when = if published {
            "recording stopped"
        } else {
            "nothing was recorded"
        };
        gst::element_error!(
            viewer,
            gst::ResourceError::Read,
            ("Recording '{}' failed ({}): {}", self.live, when, error),
            ["{}", debug.unwrap_or("")]
        );
    }

    /// A failed input while the ring has content: a WARNING, and the input
    /// is replaced after a second; playback goes on with what is recorded.
    fn warn(&self, error: &glib::Error) {
        let Some(viewer) = self.viewer.upgrade() else { return };
        gst::element_warning!(
            viewer,
            gst::ResourceError::Read,
            (
                "The live input '{}' failed, retrying every second: {}",
                self.live,
                error
            )
        );
    }

    fn replace_input(&self) {
        for element in self.pipeline.children() {
            if element != self.sink {
                let _ = element.set_state(gst::State::Null);
                let _ = self.pipeline.remove(&element);
            }
        }
        match add_source(&self.pipeline, &self.sink, &self.live) {
            Ok(source) => {
                if let Err(e) = source.sync_state_with_parent() {
                    gst::warning!(CAT, "The live input does not restart: {e}");
                }
            }
            Err(e) => gst::warning!(CAT, "Cannot replace the live input: {e:?}"),
        }
    }
}
