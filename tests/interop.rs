// SPDX-License-Identifier: MPL-2.0
//! Streams made by a muxer we did not write (ffmpeg's), recorded by the
//! sink: every segment starts where a player can start.
// Real kernel behaviour (tmpfs, FIFOs, signals, gst-launch-1.0 children):
// these tests run on Unix.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::inputs::Input;
use common::{
    NO_ENV, PACKET, SECOND,
    media::{ffmpeg_decode, ffprobe_frame_count, ffprobe_key_frames, pid},
    pipelines::{PlayFor, launch_counting, playbin_buffers, record_file, stat_u64},
    processes::gst_launch,
    rings::{assert_segment_well_formed, playlist, segments},
};

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
    let (dir, segs) = record_in_2s_segments(&Input::LongGop.path());
    assert_eq!(segs.len(), 3, "one segment per GOP: {segs:?}");
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

/// Two programs (numbers 101 and 102, H.264 at 1 s GOPs) in one multiplex
/// made by ffmpeg's muxer, once per test binary.
fn two_programs() -> PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"));
    let input = dir.path().join("two-programs.ts");
    if input.exists() {
        return input;
    }
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=25:duration=12")
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=12"])
        .args(["-f", "lavfi", "-i", "sine=duration=12"])
        .args([
            "-map", "0:v", "-map", "1:v", "-map", "2:a", "-c:v", "libx264", "-g", "25",
        ])
        .args(["-preset", "ultrafast", "-c:a", "aac"])
        .args(["-program", "program_num=101:title=one:st=0:st=2"])
        .args(["-program", "program_num=102:title=two:st=1", "-f", "mpegts"])
        .arg(&input)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make two programs");
    input
}

/// ffprobe's view of a transport stream's programs: (program number, PMT
/// PID, elementary-stream PIDs).
fn ffprobe_programs(path: &Path) -> Vec<(u64, u16, Vec<u16>)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .args(["program=program_num,pmt_pid:program_stream=id", "-of", "flat"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    // Lines like `programs.program.0.pmt_pid=4096` and
    // `programs.program.0.streams.stream.1.id="0x102"`.
    let mut programs: Vec<(u64, u16, Vec<u16>)> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(rest) = line.strip_prefix("programs.program.") else {
            continue;
        };
        let (index, rest) = rest.split_once('.').expect("index");
        let index: usize = index.parse().expect("program index");
        if programs.len() <= index {
            programs.resize(index + 1, (0, 0, Vec::new()));
        }
        let (key, value) = rest.split_once('=').expect("key=value");
        let value = value.trim_matches('"');
        let program = &mut programs[index];
        if key == "program_num" {
            program.0 = value.parse().expect("program_num");
        } else if key == "pmt_pid" {
            program.1 = value.parse().expect("pmt_pid");
        } else if key.ends_with(".id") {
            program
                .2
                .push(u16::from_str_radix(value.trim_start_matches("0x"), 16).expect("hex pid"));
        }
    }
    programs.sort();
    programs
}

/// Two programs in one multiplex (ffmpeg's muxer): every segment starts
/// with the PAT and then both programs' PMTs, before any media packet.
#[test]
fn every_program_has_its_pmt_at_each_segment_head() {
    let input = two_programs();
    let dir = tempfile::tempdir().expect("tempdir");
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

/// `programs=102` on the two-program multiplex: each segment holds program
/// 102 alone (ffprobe sees one program with its video), starts with a PAT
/// that lists only it (valid CRC, or ffprobe would not see the program)
/// followed by its PMT, and carries no packet of program 101.
#[test]
fn programs_keeps_only_the_listed_program() {
    let input = two_programs();
    let source = ffprobe_programs(&input);
    assert_eq!(
        source.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![101, 102],
        "{source:?}"
    );
    let (kept, dropped) = (&source[1], &source[0]);
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let stats = record(
        &input,
        &ring,
        &format!("segment-duration={SECOND} max-duration=0 programs=102"),
    );
    assert!(stat_u64(&stats, "filtered-packets") > 0, "{stats:?}");
    let segs = segments(&ring);
    assert!(segs.len() >= 5, "{segs:?}");
    for s in &segs {
        assert_segment_well_formed(s);
        let data = std::fs::read(s).expect("read");
        assert_eq!(
            pmt_pids(&data[..PACKET]),
            vec![kept.1],
            "{}: the PAT at the head",
            s.display()
        );
        assert_eq!(
            pid(&data[PACKET..2 * PACKET]),
            kept.1,
            "{}: PMT after the PAT",
            s.display()
        );
        let foreign: Vec<u16> = data
            .chunks(PACKET)
            .map(pid)
            .filter(|p| *p == dropped.1 || dropped.2.contains(p))
            .collect();
        assert!(foreign.is_empty(), "{}: program 101's PIDs {foreign:x?}", s.display());
        // ffprobe also lists, without a PMT, what the SDT (shared service
        // information, kept) still describes.
        let programs: Vec<_> = ffprobe_programs(s).into_iter().filter(|p| p.1 != 0).collect();
        assert_eq!(programs.len(), 1, "{}: {programs:?}", s.display());
        assert_eq!((programs[0].0, programs[0].1), (102, kept.1), "{}", s.display());
        assert_eq!(ffprobe_key_frames(s, 1), vec![true], "{}", s.display());
    }
}

/// A program `programs` asks for that the multiplex lacks is a WARNING
/// that names it; the others are recorded.
#[test]
fn a_missing_program_is_a_warning() {
    let input = two_programs();
    let dir = tempfile::tempdir().expect("tempdir");
    let (exited, ok, out) = gst_launch(
        &format!(
            "-m filesrc location={} ! streambuffersink location={} programs=101,999",
            input.display(),
            dir.path().display()
        ),
        NO_ENV,
        std::time::Duration::from_secs(60),
    );
    assert!(exited && ok, "{out}");
    assert!(out.contains("WARNING") && out.contains("program(s) 999"), "{out}");
    assert!(segments(dir.path()).len() >= 2, "program 101 recorded");
}

/// HEVC with open GOPs (x265, 2 s keyframe interval) into 2 s segments:
/// each segment starts on a keyframe and the target duration stays 2.
#[test]
fn hevc_open_gop_keeps_the_target_duration() {
    let (dir, _) = record_in_2s_segments(&Input::HevcAac.path());
    let pl = playlist(dir.path());
    assert_eq!(pl.target_duration, 2, "{pl:?}");
}

/// The checks every input of the matrix passes, finished: recorded into
/// 2 s segments with no cut forced, every segment is whole packets and
/// starts with the PAT and then a PMT it lists, decodes on its own
/// (ffprobe counts its frames; video starts on a keyframe), and the ring
/// plays to the end in ffmpeg and playbin (through index.m3u8),
/// `streambuffersrc ! decodebin` and `streambuffersrc ! tsdemux ! parser !
/// decoder`, audio and video.
fn check_finished(input: Input) {
    let name = input.name();
    let (dir, segs) = {
        let dir = tempfile::tempdir().expect("tempdir");
        let stats = record(
            &input.path(),
            dir.path(),
            &format!("segment-duration={} max-duration=0", 2 * SECOND),
        );
        assert_eq!(stat_u64(&stats, "forced-cuts"), 0, "{name}: {stats:?}");
        assert_eq!(stat_u64(&stats, "target-duration-raises"), 0, "{name}: {stats:?}");
        let segs = segments(dir.path());
        (dir, segs)
    };
    assert!(segs.len() >= 3, "{name}: {segs:?}");
    for s in &segs {
        assert_segment_well_formed(s);
        let data = std::fs::read(s).expect("read");
        let pmts = pmt_pids(&data[..PACKET]);
        assert_eq!(pmts.len(), 1, "{name}: {}: PAT lists {pmts:x?}", s.display());
        assert_eq!(
            pid(&data[PACKET..2 * PACKET]),
            pmts[0],
            "{name}: {}: PMT second",
            s.display()
        );
        let audio = ffprobe_frame_count(s, "a:0");
        assert!(audio > 0, "{name}: {} decodes no audio frame on its own", s.display());
        if input.has_video() {
            let video = ffprobe_frame_count(s, "v:0");
            assert!(video > 0, "{name}: {} decodes no video frame on its own", s.display());
            assert_eq!(
                ffprobe_key_frames(s, 1),
                vec![true],
                "{name}: {} starts without a keyframe",
                s.display()
            );
        }
    }
    let index = dir.path().join("index.m3u8");
    ffmpeg_decode(&index).unwrap_or_else(|e| panic!("{name}: ffmpeg on index.m3u8: {e}"));
    let uri = format!("file://{}", index.display());
    let (video, audio) = playbin_buffers(&uri, PlayFor::Eos(std::time::Duration::from_secs(60)))
        .unwrap_or_else(|e| panic!("{name}: playbin: {e}"));
    assert!(
        audio > 0 && (video > 0) == input.has_video(),
        "{name}: playbin gave {video} video, {audio} audio buffers"
    );

    let src = format!(
        "streambuffersrc location={} start-position=oldest",
        dir.path().display()
    );
    let timeout = std::time::Duration::from_secs(60);
    let (desc, sinks): (String, &[&str]) = if input.has_video() {
        (
            format!(
                "{src} ! decodebin name=d d. ! video/x-raw ! queue ! fakesink name=v sync=false d. ! audio/x-raw ! queue ! fakesink name=a sync=false"
            ),
            &["v", "a"],
        )
    } else {
        (
            format!("{src} ! decodebin ! audio/x-raw ! fakesink name=a sync=false"),
            &["a"],
        )
    };
    let counts =
        launch_counting(&desc, sinks, PlayFor::Eos(timeout)).unwrap_or_else(|e| panic!("{name}: decodebin: {e}"));
    assert!(
        counts.iter().all(|&n| n > 0),
        "{name}: decodebin gave {counts:?} buffers to {sinks:?}"
    );
    let audio_branch = format!("t. ! queue ! {} ! fakesink name=a sync=false", input.audio_decoder());
    let desc = match input.video_decoder() {
        Some(video) => {
            format!("{src} ! tsdemux name=t t. ! queue ! {video} ! fakesink name=v sync=false {audio_branch}")
        }
        None => format!("{src} ! tsdemux name=t {audio_branch}"),
    };
    let counts =
        launch_counting(&desc, sinks, PlayFor::Eos(timeout)).unwrap_or_else(|e| panic!("{name}: tsdemux: {e}"));
    assert!(
        counts.iter().all(|&n| n > 0),
        "{name}: tsdemux gave {counts:?} buffers to {sinks:?}"
    );
}

#[test]
fn interop_h264_aac() {
    check_finished(Input::H264Aac);
}

#[test]
fn interop_hevc_aac() {
    check_finished(Input::HevcAac);
}

#[test]
fn interop_mpeg2_mp2() {
    check_finished(Input::Mpeg2Mp2);
}

#[test]
fn interop_h264_ac3() {
    check_finished(Input::H264Ac3);
}

#[test]
fn interop_aac_radio() {
    check_finished(Input::AacRadio);
}

#[test]
fn interop_mp2_radio() {
    check_finished(Input::Mp2Radio);
}

#[test]
fn interop_open_gop_with_b_frames() {
    check_finished(Input::OpenGop);
}

#[test]
fn interop_long_gop() {
    check_finished(Input::LongGop);
}

/// The two-program multiplex, with every program and with `programs=102`
/// (one video, no audio): the finished ring plays in ffmpeg and playbin
/// through index.m3u8 and in `streambuffersrc ! decodebin` and
/// `! tsdemux ! h264parse ! avdec_h264`, and every segment decodes on its own.
#[test]
fn interop_two_programs_with_and_without_programs() {
    for props in ["", "programs=102"] {
        let dir = tempfile::tempdir().expect("tempdir");
        record(
            &two_programs(),
            dir.path(),
            &format!("segment-duration={} max-duration=0 {props}", 2 * SECOND),
        );
        for s in &segments(dir.path()) {
            assert!(ffprobe_frame_count(s, "v:0") > 0, "{props}: {}", s.display());
        }
        let index = dir.path().join("index.m3u8");
        ffmpeg_decode(&index).unwrap_or_else(|e| panic!("{props}: ffmpeg on index.m3u8: {e}"));
        let (video, _) = playbin_buffers(
            &format!("file://{}", index.display()),
            PlayFor::Eos(std::time::Duration::from_secs(60)),
        )
        .unwrap_or_else(|e| panic!("{props}: playbin: {e}"));
        assert!(video > 0, "{props}: playbin gave no video");
        let src = format!(
            "streambuffersrc location={} start-position=oldest",
            dir.path().display()
        );
        for desc in [
            format!("{src} ! decodebin ! video/x-raw ! fakesink name=v sync=false"),
            format!("{src} ! tsdemux ! h264parse ! avdec_h264 ! fakesink name=v sync=false"),
        ] {
            let counts = launch_counting(&desc, &["v"], PlayFor::Eos(std::time::Duration::from_secs(60)))
                .unwrap_or_else(|e| panic!("{props}: {desc}: {e}"));
            assert!(counts[0] > 100, "{props}: {desc}: {counts:?}");
        }
    }
}
