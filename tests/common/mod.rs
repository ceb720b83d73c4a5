//! Helpers shared by the integration tests: real pipelines, real files.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use gst::prelude::*;

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
