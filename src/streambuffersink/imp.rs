// SPDX-License-Identifier: MPL-2.0
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod archive;
mod render;
mod signals;

use gst::glib;
use gst::glib::translate::from_glib_none;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use super::properties;
use super::report::{Outcome, Reporter, SinkHost, event_signals, report, stats_structure};
use super::settings::Settings;
use crate::element_sync::{FlushGate, lock};
use crate::recorder::{PushError, Recorder, RecorderEvent, Snapshot};
use crate::ring::{Ring, RingError, WRITE_ALIGNMENT, WriteFailure};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "streambuffersink",
        gst::DebugColorFlags::empty(),
        Some("Stream buffer ring sink"),
    )
});

/// Buffers between two refreshes of the `stats` copy while streaming.
const SNAPSHOT_EVERY: u32 = 16;

enum State {
    Stopped,
    Started(Box<Recorder>),
}

pub struct StreamBufferSink {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    /// Copy of the counters for `stats` to read while the streaming thread
    /// holds `state` (rendering, or blocked on a failing disk). Refreshed
    /// whenever events are about to be emitted and otherwise every
    /// [`SNAPSHOT_EVERY`] buffers: copying it for every 1316-byte buffer
    /// cost more than the rest of the sink's per-buffer work.
    snapshot: Mutex<Option<(Snapshot, bool)>>,
    /// Buffers rendered since `snapshot` was refreshed.
    buffers_since_snapshot: AtomicU32,
    /// Set by `unlock` (flush, state change) to cancel a blocked write.
    pub(super) flush_gate: FlushGate,
    /// Started: properties are fixed. Kept apart from `state`, which the
    /// streaming thread holds while `block` mode waits for the disk, so
    /// that `set_property` answers at once.
    running: AtomicBool,
    /// `block` mode is waiting for the disk, holding `state`: recording
    /// signals are refused at once rather than wait with it.
    pub(super) blocked: AtomicBool,
    /// The archive's uploader while started, and its counters after.
    archive: Mutex<archive::ArchiveTier>,
    /// Where the subclassing glue keeps its "has panicked" flag, for
    /// [`render`]'s own entry point.
    panic_flag: render::PanicFlag,
    /// A call of [`Recorder::publish_pending`] is waiting on the system
    /// clock (see [`Reporter::publish_at`]).
    publication_scheduled: AtomicBool,
}

/// How long a recording signal waits for the streaming thread to let go of
/// the recorder before it is refused: far longer than a buffer takes to
/// render, far shorter than a failing disk takes to recover.
const RECORDER_WAIT: Duration = Duration::from_millis(200);

impl Default for StreamBufferSink {
    fn default() -> Self {
        StreamBufferSink {
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(State::Stopped),
            snapshot: Mutex::new(None),
            buffers_since_snapshot: AtomicU32::new(0),
            flush_gate: FlushGate::default(),
            running: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            archive: Mutex::new(archive::ArchiveTier::default()),
            panic_flag: render::PanicFlag::default(),
            publication_scheduled: AtomicBool::new(false),
        }
    }
}

/**
 * SECTION:element-streambuffersink
 * @see_also: streambuffersrc
 *
 * Records a live MPEG-TS stream into an on-disk ring of independently
 * decodable segment files with an HLS playlist (`index.m3u8`, and with
 * #GstStreamBufferSink:iframe-playlist an I-frame playlist and a
 * multivariant playlist), cut at random-access points, each headed by the
 * PAT and the PMTs; a keyframe index per segment gives every reader one
 * timeline. The oldest segments are deleted as the window slides. Write
 * failures never stop recording by default: they are reported once each
 * with #GstStreamBufferSink::write-failure and their end with
 * #GstStreamBufferSink::write-failure-clear, as the Windows Stream Buffer
 * Engine's sink reports them. Recordings can be cut out of the ring, reaching
 * back into it (#GstStreamBufferSink::start-recording).
 *
 * Element messages: `streambuffer-write-failure`,
 * `streambuffer-write-failure-clear`, `streambuffer-encryption-on`,
 * `streambuffer-encryption-off`, `streambuffer-evicted-under-pressure`,
 * `streambuffer-recording-scheduled`, `streambuffer-recording-started`,
 * `streambuffer-recording-stopped` (fields in the README).
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 udpsrc address=239.1.1.1 port=5000 caps=video/mpegts,systemstream=true ! streambuffersink location=/var/buffer/ch1 max-duration=1800000000000
 * ]|
 *
 * Since: 0.1
 */
#[glib::object_subclass]
impl ObjectSubclass for StreamBufferSink {
    const NAME: &'static str = "GstStreamBufferSink";
    type Type = super::StreamBufferSink;
    type ParentType = gst_base::BaseSink;

    fn class_init(klass: &mut Self::Class) {
        // The subclassing glue installs `prepare` and `prepare_list` for
        // every sink; this one has nothing to prepare, and with them set
        // GstBaseSink works out each buffer's lateness once more before
        // calling them: a tenth of the sink's per-buffer cost at 1316 bytes.
        // SAFETY: the class struct starts with GstBaseSinkClass (repr(C)),
        // and class_init runs once, before any instance exists.
        unsafe {
            let klass = &mut *(klass as *mut Self::Class).cast::<gst_base::ffi::GstBaseSinkClass>();
            klass.prepare = None;
            klass.prepare_list = None;
            render::install(klass);
        }
    }
}

impl ObjectImpl for StreamBufferSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(properties::param_specs);
        PROPERTIES.as_ref()
    }

    // The comments on each signal are GStreamer's documentation format
    // (`/** Type::signal: ... */`), which its tooling reads from the source.
    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            let mut signals = event_signals();
            signals.extend(signals::action_signals());
            signals
        });
        SIGNALS.as_ref()
    }

    fn constructed(&self) {
        self.parent_constructed();
        self.panic_flag.find(self);
        // A recorder writes data as it arrives; it must not wait for the clock.
        self.obj().set_sync(false);
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = lock(&self.settings);
        if self.running.load(Ordering::Acquire) {
            gst::warning!(
                CAT,
                imp = self,
                "Property '{}' cannot be changed while running",
                pspec.name()
            );
            return;
        }
        if let Err(why) = settings.set(pspec.name(), value) {
            // On stderr too, as GLib reports a value out of a property's range.
            gst::warning!(CAT, imp = self, "{why}");
            glib::g_warning!("streambuffersink", "{why}");
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        match pspec.name() {
            "stats" => {
                let dir = settings.location.clone();
                drop(settings);
                // Between buffers the recorder itself is read; while the
                // streaming thread holds it, the latest copy.
                let fresh = match self.state.try_lock().as_deref() {
                    Ok(State::Started(recorder)) => Some(recorder.snapshot()),
                    _ => None,
                };
                if let Some(snap) = fresh {
                    *lock(&self.snapshot) = Some((snap, true));
                }
                match &*lock(&self.snapshot) {
                    Some((snap, running)) => {
                        stats_structure(snap, *running, dir.as_deref(), lock(&self.archive).stats())
                    }
                    None => gst::Structure::builder("streambuffer-stats")
                        .field("running", false)
                        .build(),
                }
                .to_value()
            }
            name => settings.get(name).unwrap_or_else(|| {
                gst::warning!(CAT, imp = self, "Unknown property '{name}'");
                None::<String>.to_value()
            }),
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
                env!("CARGO_PKG_AUTHORS"),
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            // Any packetsize: the framing (188, 192 or 204 bytes) is detected
            // from the bytes, and raw sources often say nothing about it.
            let caps = gst::Caps::builder("video/mpegts").field("systemstream", true).build();
            match gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &caps) {
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
        // Under the settings lock: a property set from now on is refused,
        // never applied to settings the recorder no longer reads.
        let settings = {
            let settings = lock(&self.settings);
            self.running.store(true, Ordering::Release);
            settings.clone()
        };
        let result = self.start_with(settings);
        if result.is_err() {
            self.running.store(false, Ordering::Release);
        }
        result
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let result = self.stop_recorder();
        self.running.store(false, Ordering::Release);
        result
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.flush_gate.set_flushing(true);
        Ok(())
    }

    /// Asks upstream for memory aligned to [`WRITE_ALIGNMENT`]: input
    /// the ring writes from in place then goes to the page cache at full
    /// speed (with the segment's stuffing, see `ring::stuffing_packets`),
    /// and upstream's own reads into it are aligned too.
    fn propose_allocation(&self, query: &mut gst::query::Allocation) -> Result<(), gst::LoggableError> {
        query.add_allocation_param(
            None::<&gst::Allocator>,
            gst::AllocationParams::new(gst::MemoryFlags::empty(), WRITE_ALIGNMENT - 1, 0, 0),
        );
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.flush_gate.set_flushing(false);
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.render_buffers(std::iter::once(buffer.as_ref()))
    }

    fn render_list(&self, list: &gst::BufferList) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.render_buffers(list.iter())
    }

    fn event(&self, event: gst::Event) -> bool {
        let finishing = match event.view() {
            gst::EventView::Eos(_) => Some(true),
            gst::EventView::FlushStop(_) => Some(false),
            _ => None,
        };
        if let Some(eos) = finishing {
            let result = self.with_recorder(|recorder, host| {
                if eos {
                    recorder.finish(host, true)
                } else {
                    recorder.flush(host)
                }
            });
            if let Some(Err(PushError::Fatal(f))) = result {
                self.post_write_error(&f);
            }
        }
        self.parent_event(event)
    }
}

impl StreamBufferSink {
    fn start_with(&self, settings: Settings) -> Result<(), gst::ErrorMessage> {
        let Some(dir) = settings.location.clone() else {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("No location set: set 'location' to the ring directory")
            ));
        };
        if let Some(n) = settings.program()
            && !settings.programs.is_empty()
            && !settings.programs.contains(&n)
        {
            return Err(gst::error_msg!(
                gst::CoreError::Failed,
                (
                    "program-number {n} is not one of the programs kept ('programs' is {:?})",
                    settings.programs
                )
            ));
        }
        if !crate::archive::SUPPORTED && settings.archive_config().is_some() {
            return Err(gst::error_msg!(
                gst::CoreError::NotImplemented,
                ("archive-location is set, but this build of streambuffer has no archive tier (cargo feature 'archive')")
            ));
        }
        let ring = Ring::open(settings.ring_config(dir.clone())).map_err(|e| match e {
            RingError::Locked(_) => gst::error_msg!(gst::ResourceError::Busy, ("{}", e)),
            RingError::NotADirectory(_) | RingError::SequencesExhausted(_) | RingError::Io { .. } => {
                gst::error_msg!(gst::ResourceError::OpenWrite, ("{}", e))
            }
        })?;
        for file in ring.left_out() {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::OpenWrite,
                ("Not adopting {} (found in the ring directory {})", file, dir.display())
            );
        }
        let adopted = ring.segments().len();
        if adopted > 0 {
            gst::info!(
                CAT,
                imp = self,
                "Adopted {adopted} segments already in {}",
                dir.display()
            );
        }
        let mut reach = None;
        if let (Some(config), Some(queue)) = (settings.archive_config(), ring.archive_queue()) {
            reach = Some(
                archive::reach(&config, &dir, Arc::clone(&queue))
                    .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("{}", e)))?,
            );
            lock(&self.archive)
                .start(&config, queue, archive::reporter(self.obj().downgrade()))
                .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("{}", e)))?;
            gst::info!(CAT, imp = self, "Archiving to {}", config.location);
        }
        let mut recorder = Recorder::new(ring, settings.recorder_config(), &settings.programs);
        if let Some(reach) = reach {
            recorder.reach_archive(reach);
        }
        *lock(&self.snapshot) = Some((recorder.snapshot(), true));
        *lock(&self.state) = State::Started(Box::new(recorder));
        gst::info!(CAT, imp = self, "Recording into {}", dir.display());
        Ok(())
    }

    fn stop_recorder(&self) -> Result<(), gst::ErrorMessage> {
        let state = std::mem::replace(&mut *lock(&self.state), State::Stopped);
        if let State::Started(mut recorder) = state {
            // Stopping without EOS still leaves a finished, playable ring;
            // this never waits for a failing disk.
            let mut host = SinkHost::new(self, None);
            let result = recorder.finish(&mut host, false);
            *lock(&self.snapshot) = Some((recorder.snapshot(), false));
            host.emit_queued();
            if let Err(PushError::Fatal(f)) = result {
                gst::warning!(CAT, imp = self, "Last segment not finished: {f}");
            }
        }
        // After the recorder: its last segment is queued by then. Not
        // under the lock: `stats` stays readable meanwhile.
        let uploader = lock(&self.archive).take_running();
        if let Some(uploader) = uploader {
            let stats = archive::stop(uploader);
            lock(&self.archive).stopped(stats);
        }
        Ok(())
    }
}

/// Buffers at least this large are kept by reference until written; smaller
/// ones are copied, which costs less than tracking them.
const KEEP_MIN: usize = 16 * 1024;

/// Whether the ring may keep a reference to `buffer` until its bytes are
/// written, rather than copy them: worth it for large buffers, and safe for
/// those that do not belong to a buffer pool (a pool has a fixed number of
/// buffers, and upstream would wait for the ones kept here). The one place
/// this is decided: the recorder and the ring keep every part of such a
/// buffer and copy every part of any other.
fn can_keep(buffer: &gst::BufferRef) -> bool {
    // SAFETY: `as_ptr` points to the live GstBuffer `buffer` borrows; its
    // `pool` field is set once by the pool that owns it and only read here.
    let pooled = unsafe { !(*buffer.as_ptr()).pool.is_null() };
    !pooled && buffer.size() >= KEEP_MIN
}

impl StreamBufferSink {
    fn render_buffers<'a>(
        &self,
        buffers: impl Iterator<Item = &'a gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut state = lock(&self.state);
        let State::Started(recorder) = &mut *state else {
            gst::element_imp_error!(self, gst::CoreError::Failed, ("Not started"));
            return Err(gst::FlowError::Error);
        };
        let mut host = SinkHost::new(self, None);
        let mut result = Ok(());
        let unmappable = || {
            gst::element_imp_error!(self, gst::CoreError::Failed, ("Cannot map a buffer for reading"));
            gst::FlowError::Error
        };
        for buffer in buffers {
            host.pts = buffer.pts();
            let time = buffer.pts().or(buffer.dts()).map(gst::ClockTime::nseconds);
            result = if can_keep(buffer) {
                // A new reference, not `to_owned`, which copies the buffer.
                // SAFETY: `buffer` borrows a live GstBuffer; this takes a
                // reference of its own on it.
                let owned: gst::Buffer = unsafe { from_glib_none(buffer.as_ptr()) };
                let map = owned.into_mapped_buffer_readable().map_err(|_| unmappable())?;
                recorder.push_shared(Arc::new(map), time, &mut host)
            } else if buffer.n_memory() == 1 {
                // The one memory mapped directly: mapping the buffer would
                // also take and drop a reference on it, a fifth of what
                // this function costs for a 1316-byte buffer.
                let map = buffer.peek_memory(0).map_readable().map_err(|_| unmappable())?;
                recorder.push(map.as_slice(), time, &mut host)
            } else {
                let map = buffer.map_readable().map_err(|_| unmappable())?;
                recorder.push(map.as_slice(), time, &mut host)
            };
            if result.is_err() {
                break;
            }
        }
        let renders = self.buffers_since_snapshot.fetch_add(1, Ordering::Relaxed) + 1;
        if renders >= SNAPSHOT_EVERY || !host.queued.is_empty() || result.is_err() {
            self.buffers_since_snapshot.store(0, Ordering::Relaxed);
            *lock(&self.snapshot) = Some((recorder.snapshot(), true));
        }
        drop(state);
        host.emit_queued();
        match result {
            Ok(()) => Ok(gst::FlowSuccess::Ok),
            Err(PushError::Cancelled) => Err(gst::FlowError::Flushing),
            Err(PushError::Fatal(f)) => {
                self.post_write_error(&f);
                Err(gst::FlowError::Error)
            }
        }
    }

    /// Locks the state, runs `op` on the recorder, refreshes the `stats`
    /// copy, unlocks and emits the events `op` caused. `None` when stopped.
    fn with_recorder<R>(&self, op: impl FnOnce(&mut Recorder, &mut SinkHost<'_>) -> R) -> Option<R> {
        self.run_locked(lock(&self.state), op)
    }

    /// Like [`Self::with_recorder`], for calls from application threads:
    /// they never wait for a failing disk. `Err` says why not, when `block`
    /// mode is waiting for the disk (or the streaming thread keeps the
    /// recorder longer than [`RECORDER_WAIT`]).
    fn with_recorder_promptly<R>(
        &self,
        op: impl FnOnce(&mut Recorder, &mut SinkHost<'_>) -> R,
    ) -> Result<Option<R>, &'static str> {
        let deadline = Instant::now() + RECORDER_WAIT;
        loop {
            if self.blocked.load(Ordering::Acquire) {
                return Err("the sink is waiting for a failing disk (write-failure-mode=block)");
            }
            match self.state.try_lock() {
                Ok(state) => return Ok(self.run_locked(state, op)),
                Err(std::sync::TryLockError::Poisoned(p)) => return Ok(self.run_locked(p.into_inner(), op)),
                Err(std::sync::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(std::sync::TryLockError::WouldBlock) => return Err("the sink is busy writing"),
            }
        }
    }

    fn run_locked<R>(
        &self,
        mut state: MutexGuard<'_, State>,
        op: impl FnOnce(&mut Recorder, &mut SinkHost<'_>) -> R,
    ) -> Option<R> {
        let State::Started(recorder) = &mut *state else {
            return None;
        };
        let mut host = SinkHost::new(self, None);
        let result = op(recorder, &mut host);
        *lock(&self.snapshot) = Some((recorder.snapshot(), true));
        drop(state);
        host.emit_queued();
        Some(result)
    }
}

impl Reporter for StreamBufferSink {
    fn emit(&self, event: RecorderEvent, pts: Option<gst::ClockTime>) {
        let obj = self.obj();
        let running_time = obj
            .segment()
            .downcast_ref::<gst::ClockTime>()
            .and_then(|segment| segment.to_running_time(pts?))
            .map_or(u64::MAX, gst::ClockTime::nseconds);
        let report = report(event, running_time);
        gst::log_with_level!(CAT, report.level, imp = self, "{}", report.log);
        if let Some((signal, args)) = &report.signal {
            obj.emit_by_name_with_values(signal, args);
        }
        match report.outcome {
            Outcome::Message(structure) => {
                let _ = obj.post_message(gst::message::Element::builder(structure).src(&*obj).build());
            }
            Outcome::Warning(text) => gst::element_imp_warning!(self, gst::StreamError::Demux, ("{}", text)),
        }
    }

    fn wait_blocked(&self, timeout: Duration) -> bool {
        self.blocked.store(true, Ordering::Release);
        let waited = self.flush_gate.wait(timeout);
        self.blocked.store(false, Ordering::Release);
        waited
    }

    /// On the system clock's thread, not the streaming thread: input that
    /// stops right after a burst of segments gets them published all the
    /// same, paused or not.
    fn publish_at(&self, due: Instant) {
        if self.publication_scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let clock = gst::SystemClock::obtain();
        let wait = due.saturating_duration_since(Instant::now());
        let at = clock.time() + gst::ClockTime::from_nseconds(u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX));
        let sink = self.obj().downgrade();
        let scheduled = clock.new_single_shot_id(at).wait_async(move |_, _, _| {
            let Some(sink) = sink.upgrade() else { return };
            let imp = sink.imp();
            imp.publication_scheduled.store(false, Ordering::Release);
            // Busy or blocked: the streaming thread has the recorder, and
            // publishes at its next flush or asks again.
            let _ = imp.with_recorder_promptly(|recorder, _| recorder.publish_pending());
        });
        if let Err(e) = scheduled {
            self.publication_scheduled.store(false, Ordering::Release);
            gst::warning!(CAT, imp = self, "Cannot schedule the playlists' rewrite: {e:?}");
        }
    }
}

impl StreamBufferSink {
    /// `error` mode: the GST_ELEMENT_ERROR a `filesink` would post.
    fn post_write_error(&self, f: &WriteFailure) {
        let code: gst::ResourceError = f.kind.into();
        gst::element_imp_error!(self, code, ("{}", f));
    }
}
