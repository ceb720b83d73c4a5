// SPDX-License-Identifier: MPL-2.0
//! Helpers shared by the integration tests: real pipelines, real files.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use gst::prelude::*;

pub mod inputs;

pub const SECOND: u64 = 1_000_000_000;
pub const PACKET: usize = 188;

/// Initialises GStreamer once and registers the plugin from this build.
pub fn init() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        gst::init().expect("gst::init");
        gststreambuffer::plugin_register_static().expect("register plugin");
    });
}

/// Directory holding the built `libgststreambuffer` shared library.
pub fn plugin_dir() -> PathBuf {
    // target/<profile>/deps/<test binary> -> target/<profile>
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent().and_then(Path::parent).expect("target dir").to_owned()
}

/// Generates `seconds` of 25 fps H.264 in MPEG-TS (2 s GOP) once per test
/// binary and returns its path. Small frames keep the tests fast.
pub fn test_stream(seconds: u32) -> PathBuf {
    static CACHE: Mutex<Vec<(u32, PathBuf)>> = Mutex::new(Vec::new());
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let mut cache = CACHE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, p)) = cache.iter().find(|(s, _)| *s == seconds) {
        return p.clone();
    }
    init();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"));
    let path = dir.path().join(format!("input-{seconds}s.ts"));
    let desc = format!(
        "videotestsrc num-buffers={} pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 ! \
         x264enc tune=zerolatency key-int-max=50 speed-preset=ultrafast bitrate=600 ! \
         mpegtsmux ! filesink location={}",
        seconds * 25,
        path.display()
    );
    run_to_eos(&desc, Duration::from_secs(120)).expect("generate test stream");
    cache.push((seconds, path.clone()));
    path
}

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

/// Segment files of a ring, in sequence order.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read ring dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "ts"))
        .collect();
    v.sort();
    v
}

pub fn pid(packet: &[u8]) -> u16 {
    u16::from(packet[1] & 0x1F) << 8 | u16::from(packet[2])
}

/// Checks the invariants every segment must satisfy on disk.
pub fn assert_segment_well_formed(path: &Path) {
    let data = std::fs::read(path).expect("read segment");
    assert!(!data.is_empty(), "{} is empty", path.display());
    assert_eq!(data.len() % PACKET, 0, "{} is not packet-aligned", path.display());
    for (i, p) in data.chunks(PACKET).enumerate() {
        assert_eq!(p[0], 0x47, "{}: packet {i} lacks the sync byte", path.display());
    }
    assert_eq!(pid(&data), 0, "{} does not start with a PAT", path.display());
}

/// Every segment's name and content, in sequence order.
pub fn ring_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    segments(dir)
        .iter()
        .map(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            (name, std::fs::read(p).expect("read segment"))
        })
        .collect()
}

/// Decodes `path` with ffmpeg; returns its complaint if any.
pub fn ffmpeg_decode(path: &Path) -> Result<(), String> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() && stderr.trim().is_empty() {
        Ok(())
    } else {
        Err(stderr)
    }
}

/// `key_frame` flags of the first `n` video frames, from ffprobe.
pub fn ffprobe_key_frames(path: &Path, n: usize) -> Vec<bool> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=key_frame",
            "-of",
            "csv=p=0",
        ])
        .args(["-read_intervals", &format!("%+#{n}")])
        .arg(path)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(',').next().and_then(|k| k.trim().parse::<u8>().ok()))
        .map(|k| k == 1)
        .collect()
}

/// Duration in seconds that ffprobe reports for `path`.
pub fn ffprobe_duration(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(f64::NAN)
}

/// Demuxes `path` with GStreamer's tsdemux and h264parse; fails on any error
/// or if no video frame comes out.
pub fn tsdemux_frames(path: &Path) -> Result<u64, String> {
    init();
    let desc = format!(
        "filesrc location={} ! tsdemux ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au ! fakesink name=out",
        path.display()
    );
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline")?;
    let sink = pipeline.by_name("out").ok_or("no sink")?;
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let first_is_key = std::sync::Arc::new(Mutex::new(None::<bool>));
    let pad = sink.static_pad("sink").ok_or("no pad")?;
    {
        let count = count.clone();
        let first_is_key = first_is_key.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buf) = info.buffer() {
                let mut first = first_is_key.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if first.is_none() {
                    *first = Some(!buf.flags().contains(gst::BufferFlags::DELTA_UNIT));
                }
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            gst::PadProbeReturn::Ok
        });
    }
    run_pipeline_to_eos(&pipeline, Duration::from_secs(60))?;
    let n = count.load(std::sync::atomic::Ordering::Relaxed);
    let first = *first_is_key.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if n == 0 {
        return Err("no frames".into());
    }
    if first != Some(true) {
        return Err("first frame is not a keyframe".into());
    }
    Ok(n)
}

/// Parses the ring's playlist with an independent HLS parser.
pub fn playlist(dir: &Path) -> m3u8_rs::MediaPlaylist {
    let text = std::fs::read(dir.join("index.m3u8")).expect("read playlist");
    m3u8_rs::parse_media_playlist_res(&text).unwrap_or_else(|e| panic!("playlist does not parse: {e:?}"))
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

/// A size-limited tmpfs mounted for one test: real ENOSPC from the kernel.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "8M"). Returns `None`, after saying so
    /// loudly, where mounting is impossible (not root, no tmpfs support).
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::piped())
            .output();
        match status {
            Ok(out) if out.status.success() => Some(Tmpfs { dir }),
            Ok(out) => {
                eprintln!(
                    "\n!!!!!!!! SKIPPED: cannot mount a tmpfs ({}); this test needs root !!!!!!!!\n",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("\n!!!!!!!! SKIPPED: cannot run mount ({e}) !!!!!!!!\n");
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the filesystem with a ballast file until the kernel says ENOSPC.
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.path().join("ballast");
        let mut f = std::fs::File::create(&path).expect("create ballast");
        for chunk in [1 << 20, 4096, 512] {
            let block = vec![0xA5u8; chunk];
            while f.write_all(&block).is_ok() {}
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
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

/// The ring holds every input packet in order, plus one PAT/PMT copy at the
/// head of each segment. Input before the first keyframe is the only loss.
pub fn assert_input_in_ring(input: &[u8], ring: &[u8]) {
    let first_ring_data = ring
        .chunks(PACKET)
        .find(|p| pid(p) != 0 && !input[..PACKET * 2].chunks(PACKET).any(|t| t == *p))
        .expect("data packet");
    let start = input
        .chunks(PACKET)
        .position(|p| p == first_ring_data)
        .expect("ring data comes from input");
    let mut expected = input.chunks(PACKET).skip(start);
    let mut i = 0;
    let packets: Vec<&[u8]> = ring.chunks(PACKET).collect();
    while i < packets.len() {
        let next = expected.next();
        if next == Some(packets[i]) {
            i += 1;
            continue;
        }
        // Only an inserted PAT/PMT copy may differ from the input order.
        assert!(
            matches!(pid(packets[i]), 0 | 0x20),
            "unexpected packet {i} in the ring (pid {:#x})",
            pid(packets[i])
        );
        let mut n = next;
        while pid(packets[i]) == 0 || pid(packets[i]) == 0x20 {
            if n == Some(packets[i]) {
                n = expected.next();
            }
            i += 1;
        }
        assert_eq!(n, Some(packets[i]), "ring diverges from input at packet {i}");
        i += 1;
    }
    assert!(expected.next().is_none(), "the ring lost the end of the input");
}

/// Entries in the ring's playlist right now (0 while there is none).
pub fn playlist_entries(ring: &Path) -> usize {
    std::fs::read(ring.join("index.m3u8"))
        .ok()
        .and_then(|t| m3u8_rs::parse_media_playlist_res(&t).ok())
        .map_or(0, |p| p.segments.len())
}

/// The PCR base (x300) and extension of a packet, if it carries one.
pub fn pcr_of(p: &[u8]) -> Option<u64> {
    if p.len() < 12 || p[3] & 0x20 == 0 || p[4] < 7 || p[5] & 0x10 == 0 {
        return None;
    }
    let base = u64::from(p[6]) << 25
        | u64::from(p[7]) << 17
        | u64::from(p[8]) << 9
        | u64::from(p[9]) << 1
        | u64::from(p[10]) >> 7;
    Some(base * 300 + (u64::from(p[10] & 1) << 8 | u64::from(p[11])))
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

/// No extra environment for [`gst_launch`], [`run_bounded`], [`record_in_process`].
pub const NO_ENV: &[(&str, &str)] = &[];

/// The environment that makes the fault shim fail `calls` on files of
/// `dir` whose name contains `matching`, plus `extra` settings
/// (`FAULT_COUNT`, `FAULT_SHORT`, `FAULT_LOG`, ...; see the C file).
pub fn fault_env(
    dir: &Path,
    matching: &str,
    calls: &str,
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("LD_PRELOAD", fault_shim().display().to_string()),
        ("FAULT_DIR", dir.display().to_string()),
        ("FAULT_MATCH", matching.to_owned()),
        ("FAULT_CALLS", calls.to_owned()),
    ];
    env.extend(extra.iter().map(|&(k, v)| (k, v.to_owned())));
    env
}

/// Asserts that the ring at `ring` holds every packet of the test stream
/// of `seconds` (see [`assert_input_in_ring`]).
pub fn assert_ring_holds_test_stream(ring: &Path, seconds: u32) {
    let recorded: Vec<u8> = ring_files(ring).into_iter().flat_map(|(_, d)| d).collect();
    assert_input_in_ring(&std::fs::read(test_stream(seconds)).expect("input"), &recorded);
}

/// The `LD_PRELOAD` fault shim (`tests/shim/faults.c`), built once per test
/// binary with `cc`. See the C file for the environment it reads.
pub fn fault_shim() -> PathBuf {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/shim/faults.c");
        // Built under a name of this process's, then renamed over the one
        // shim file: test binaries never see a half-written library, and
        // runs do not leave one file each behind.
        let out = plugin_dir().join("faults.so");
        let building = plugin_dir().join(format!(".faults-{}.so", std::process::id()));
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
            .arg(&building)
            .arg(&src)
            .arg("-ldl")
            .status()
            .expect("run cc");
        assert!(status.success(), "building the fault shim failed");
        std::fs::rename(&building, &out).expect("install the fault shim");
        out
    })
    .clone()
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

/// Runs `gst-launch-1.0 ARGS` in another process with this build's plugin
/// and `env`, killed after `timeout`; returns (exited in time, success,
/// stdout + stderr).
pub fn gst_launch<V: AsRef<std::ffi::OsStr>>(args: &str, env: &[(&str, V)], timeout: Duration) -> (bool, bool, String) {
    run_bounded("gst-launch-1.0", args, env, timeout)
}

/// Runs `program ARGS` with this build's plugin on `GST_PLUGIN_PATH` and
/// `env`, killed after `timeout`; returns (exited in time, success,
/// stdout + stderr).
pub fn run_bounded<V: AsRef<std::ffi::OsStr>>(
    program: &str,
    args: &str,
    env: &[(&str, V)],
    timeout: Duration,
) -> (bool, bool, String) {
    let mut cmd = Command::new(program);
    cmd.env("GST_PLUGIN_PATH", plugin_dir())
        .args(args.split_whitespace())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn gst-launch-1.0");
    let start = std::time::Instant::now();
    let exited = loop {
        if child.try_wait().ok().flatten().is_some() {
            break true;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("wait");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (exited, exited && out.status.success(), text)
}

/// The `kind` argument of `start-recording` from its nick ("content", "reference").
pub fn recording_kind(nick: &str) -> gst::glib::Value {
    let ty = gst::glib::Type::from_name("GstStreamBufferRecordingKind").expect("enum registered");
    let class = gst::glib::EnumClass::with_type(ty).expect("enum class");
    class.to_value_by_nick(nick).expect("nick")
}

/// Records `seconds` of the test stream into `ring` with `gst-launch-1.0 -m`
/// in another process (bounded: a hang fails the test); returns (success,
/// output with every message).
pub fn record_in_process<V: AsRef<std::ffi::OsStr>>(
    ring: &Path,
    seconds: u32,
    props: &str,
    env: &[(&str, V)],
) -> (bool, String) {
    let (exited, ok, text) = gst_launch(
        &format!(
            "-m filesrc location={} ! streambuffersink location={} {props}",
            test_stream(seconds).display(),
            ring.display()
        ),
        env,
        Duration::from_secs(60),
    );
    assert!(exited, "the sink hung: {text}");
    (ok, text)
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

/// Frames ffprobe decodes from stream `selector` ("v:0", "a:0") of `path`.
pub fn ffprobe_frame_count(path: &Path, selector: &str) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", selector, "-count_frames"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    // One line per program the stream is in, and one for the stream.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(',').next().and_then(|n| n.trim().parse().ok()))
        .max()
        .unwrap_or(0)
}

/// One record of a segment's keyframe index, decoded here independently
/// of the crate (the format the README documents: 40-byte little-endian
/// records, CRC-32/MPEG-2 of the first 36 bytes last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexRecord {
    pub offset: u64,
    pub ring_time_ns: u64,
    pub wall_ms: i64,
    pub size: u32,
    pub presentation_delay_90k: i32,
}

impl IndexRecord {
    /// Ring time plus the presentation delay: when a player shows it.
    pub fn presentation_ns(&self) -> u64 {
        self.ring_time_ns
            .saturating_add_signed(i64::from(self.presentation_delay_90k) * 100_000 / 9)
    }
}

/// The records of `segment-N.idx` in `ring` (the start record first); the
/// test fails on a record whose check does not hold.
pub fn index_records(ring: &Path, sequence: u64) -> Vec<IndexRecord> {
    let raw = std::fs::read(ring.join(format!("segment-{sequence:012}.idx"))).expect("read index");
    assert_eq!(raw.len() % 40, 0, "index of {sequence} is not whole records");
    raw.chunks_exact(40)
        .map(|r| {
            let crc = crc32_mpeg2(&r[..36]);
            assert_eq!(crc.to_le_bytes(), r[36..40], "index of {sequence}: bad check");
            let u64_at = |i: usize| u64::from_le_bytes(r[i..i + 8].try_into().expect("8 bytes"));
            IndexRecord {
                offset: u64_at(0),
                ring_time_ns: u64_at(8),
                wall_ms: i64::from_le_bytes(r[16..24].try_into().expect("8 bytes")),
                size: u32::from_le_bytes(r[24..28].try_into().expect("4 bytes")),
                presentation_delay_90k: i32::from_le_bytes(r[28..32].try_into().expect("4 bytes")),
            }
        })
        .collect()
}

/// Every keyframe record of the ring's segments (the start records left
/// out), in order, with its segment's sequence number.
pub fn ring_keyframes(ring: &Path) -> Vec<(u64, IndexRecord)> {
    let mut seqs: Vec<u64> = segments(ring)
        .iter()
        .filter_map(|p| p.file_name()?.to_str()?.get(8..20)?.parse().ok())
        .collect();
    seqs.sort_unstable();
    seqs.iter()
        .flat_map(|&s| index_records(ring, s).into_iter().skip(1).map(move |k| (s, k)))
        .collect()
}

/// Presentation times (ns of PTS) of the video frames of `path`, in the
/// order ffprobe decodes them.
pub fn ffprobe_frame_pts_ns(path: &Path) -> Vec<u64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse::<f64>().ok())
        .map(|s| (s * 1e9).round() as u64)
        .collect()
}

/// CRC-32/MPEG-2 (polynomial 0x04C11DB7, no reflection, initial all ones).
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// A writer in another process: `seconds` of a live 25 fps H.264 test
/// pattern (x264, a keyframe every second) through mpegtsmux into a ring of
/// `segment_ns` segments at `ring`, with `extra` sink properties.
pub fn spawn_live_writer(ring: &Path, segment_ns: u64, seconds: u32, extra: &str) -> std::process::Child {
    Command::new("gst-launch-1.0")
        .env("GST_PLUGIN_PATH", plugin_dir())
        .args(["-q", "-e"])
        .args(
            format!(
                "videotestsrc is-live=true num-buffers={} pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 ! \
                 x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast bitrate=800 ! mpegtsmux ! \
                 streambuffersink segment-duration={segment_ns} {extra}",
                seconds * 25,
            )
            .split_whitespace(),
        )
        .arg(format!("location={}", ring.display()))
        .spawn()
        .expect("spawn writer")
}
