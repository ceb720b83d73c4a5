//! Streams made by a muxer we did not write (ffmpeg's), recorded by the
//! sink: every segment starts where a player can start.
// Real kernel behaviour (tmpfs, FIFOs, signals, gst-launch-1.0 children):
// these tests run on Unix.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Encodes `seconds` of ffmpeg's test pattern and a tone with `video_args`
/// into MPEG-TS with ffmpeg's own muxer, once per name and test binary.
fn ffmpeg_stream(name: &str, seconds: u32, video_args: &str) -> PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"));
    let path = dir.path().join(format!("{name}.ts"));
    if path.exists() {
        return path;
    }
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=320x240:rate=25:duration={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=duration={seconds}"))
        .args(video_args.split_whitespace())
        .args(["-c:a", "aac", "-f", "mpegts"])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make {name}");
    path
}

fn record(input: &Path, ring: &Path, props: &str) -> gst::Structure {
    record_file(input, 65536, ring, props)
}

/// Records `input` into 2 s segments with no window; checks no cut was
/// forced and that every segment is well formed and starts on a keyframe
/// (ffprobe). Returns the ring's directory and its segments.
fn record_in_2s_segments(input: &Path) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let stats = record(
        input,
        dir.path(),
        &format!("segment-duration={} max-duration=0", 2 * SECOND),
    );
    assert_eq!(stat_u64(&stats, "forced-cuts"), 0);
    let segs = segments(dir.path());
    for s in &segs {
        assert_segment_well_formed(s);
        assert_eq!(
            ffprobe_key_frames(s, 1),
            vec![true],
            "{} does not start on a keyframe",
            s.display()
        );
    }
    (dir, segs)
}

/// x264's default keyframe interval (250 frames: 10 s) with 2 s segments:
/// segments are as long as the GOPs, each starts on a keyframe (ffprobe)
/// and none is forced.
#[test]
fn long_gops_make_long_segments_that_start_on_keyframes() {
    let input = ffmpeg_stream(
        "longgop",
        40,
        "-c:v libx264 -g 250 -keyint_min 250 -sc_threshold 0 -preset ultrafast",
    );
    let (dir, segs) = record_in_2s_segments(&input);
    assert_eq!(segs.len(), 4, "one segment per GOP: {segs:?}");
    let pl = playlist(dir.path());
    for s in &pl.segments {
        assert!(
            f64::from(s.duration).round() <= pl.target_duration as f64,
            "EXTINF {} over the target {}",
            s.duration,
            pl.target_duration
        );
    }
}

/// The PMT PIDs a PAT packet lists (program 0, the network PID, left out).
fn pmt_pids(pat: &[u8]) -> Vec<u16> {
    assert_eq!(pid(pat), 0, "not a PAT");
    let pointer = usize::from(pat[4]);
    let section = &pat[5 + pointer..];
    let length = usize::from(u16::from(section[1] & 0x0F) << 8 | u16::from(section[2]));
    let entries = &section[8..3 + length - 4];
    entries
        .chunks_exact(4)
        .filter(|e| u16::from(e[0]) << 8 | u16::from(e[1]) != 0)
        .map(|e| u16::from(e[2] & 0x1F) << 8 | u16::from(e[3]))
        .collect()
}

/// Two programs in one multiplex (ffmpeg's muxer): every segment starts
/// with the PAT and then both programs' PMTs, before any media packet.
#[test]
fn every_program_has_its_pmt_at_each_segment_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("two-programs.ts");
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=12",
        ])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=12"])
        .args([
            "-map",
            "0:v",
            "-map",
            "1:v",
            "-c:v",
            "libx264",
            "-g",
            "25",
            "-preset",
            "ultrafast",
        ])
        .args([
            "-program",
            "title=one:st=0",
            "-program",
            "title=two:st=1",
            "-f",
            "mpegts",
        ])
        .arg(&input)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make two programs");
    let ring = dir.path().join("ring");
    record(&input, &ring, &format!("segment-duration={SECOND} max-duration=0"));
    let segs = segments(&ring);
    assert!(segs.len() >= 5, "{segs:?}");
    for s in &segs {
        let data = std::fs::read(s).expect("read");
        let pmts = pmt_pids(&data[..PACKET]);
        assert_eq!(pmts.len(), 2, "{}: {pmts:?}", s.display());
        let head: Vec<u16> = data
            .chunks(PACKET)
            .map(pid)
            .take_while(|p| *p == 0 || pmts.contains(p))
            .collect();
        for p in &pmts {
            assert!(
                head.contains(p),
                "{}: PMT {p:#x} not at the head {head:x?}",
                s.display()
            );
        }
    }
}

/// HEVC with open GOPs (x265, 2 s keyframe interval) into 2 s segments:
/// each segment starts on a keyframe and the target duration stays 2.
#[test]
fn hevc_open_gop_keeps_the_target_duration() {
    let input = ffmpeg_stream("hevc", 20, "-c:v libx265 -preset ultrafast -g 50");
    let (dir, _) = record_in_2s_segments(&input);
    let pl = playlist(dir.path());
    assert_eq!(pl.target_duration, 2, "{pl:?}");
}
