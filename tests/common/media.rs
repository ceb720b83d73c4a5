// SPDX-License-Identifier: MPL-2.0
//! Media made and checked by independent tools: the test stream, ffmpeg
//! and ffprobe, tsdemux, and reading TS packets.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use gst::prelude::*;

use super::init;
use super::pipelines::{run_pipeline_to_eos, run_to_eos};

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

pub fn pid(packet: &[u8]) -> u16 {
    u16::from(packet[1] & 0x1F) << 8 | u16::from(packet[2])
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

/// Packet index at which the stream's PCR passes `seconds` after its first PCR.
pub fn packet_at(data: &[u8], seconds: u64) -> usize {
    let first = data.chunks(super::PACKET).find_map(pcr_of).expect("a PCR");
    data.chunks(super::PACKET)
        .position(|p| pcr_of(p).is_some_and(|v| v - first >= seconds * 27_000_000))
        .expect("stream long enough")
}
