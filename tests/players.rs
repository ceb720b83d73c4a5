// SPDX-License-Identifier: MPL-2.0
//! Third-party players on rings the sink writes from ffmpeg-made input:
//! hls.js in headless Chromium (finished rings and a live one whose window
//! slides), and, for every input, a live ring fed over UDP by ffmpeg and
//! played while it is written by ffmpeg, playbin (hlsdemux) and
//! `streambuffersrc`.
//! Inputs Chromium cannot decode are ignored tests, with the reason: cargo
//! reports them as ignored (skipped), never as passed, and
//! `browser_codec_support_is_as_the_skips_say` fails once that changes.
#![cfg(unix)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::browser::{PageReport, hlsjs_play};
use common::inputs::Input;
use common::processes::{Reaped, free_udp_port};
use common::{
    SECOND, init,
    media::{ffprobe_frame_count, ffprobe_key_frames},
    pipelines::{PlayFor, eos_and_wait, launch_counting, playbin_buffers, record_file, stat_u64, stats},
    rings::{assert_segment_well_formed, playlist, playlist_entries, segments},
    wait_until,
};

/// Whether an hls.js error is the one it raises, non-fatal, when it jumps
/// the gap before the first video frame at the very start: with B-frames
/// a segment's first audio precedes its first video presentation time by
/// the reorder delay (so does every MPEG-TS segmenter's), and hls.js seeks
/// over that hole once it sees playback would stall there.
fn is_start_gap_jump(error: &str) -> bool {
    error
        .strip_prefix("mediaError bufferSeekOverHole at ")
        .and_then(|t| t.parse::<f64>().ok())
        .is_some_and(|t| t < 1.0)
}

/// No hls.js error (but the start-gap jump, see [`is_start_gap_jump`]),
/// time advancing by at least `min_advance` s and never backwards, and
/// decoded frames (video) or audio bytes.
fn assert_played(what: &str, r: &PageReport, min_advance: f64, video: bool) {
    let errors: Vec<&str> = r.get("error").split("; ").filter(|e| !e.is_empty()).collect();
    let unexpected: Vec<&&str> = errors.iter().filter(|e| !is_start_gap_jump(e)).collect();
    assert!(unexpected.is_empty(), "{what}: hls.js errors {unexpected:?}: {r:?}");
    assert_eq!(r.number("errors") as usize, errors.len(), "{what}: {r:?}");
    assert!(errors.len() <= 1, "{what}: more than one start-gap jump: {r:?}");
    assert_eq!(r.get("media-error"), "", "{what}: {r:?}");
    let advance = r.number("max-time") - r.number("first-time");
    assert!(advance >= min_advance, "{what}: played {advance} s: {r:?}");
    assert_eq!(r.get("time-decreased"), "false", "{what}: {r:?}");
    if video {
        assert!(r.number("video-frames") >= 25.0 * min_advance * 0.8, "{what}: {r:?}");
    } else {
        assert!(r.number("audio-bytes") > 0.0, "{what}: {r:?}");
    }
}

/// Records `input` into 2 s segments and plays the finished ring with
/// hls.js, from its start, to its end or for 8 s.
fn hlsjs_finished(input: Input) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    record_file(
        &input.path(),
        65536,
        &ring,
        &format!("segment-duration={} max-duration=0", 2 * SECOND),
    );
    let r = hlsjs_play(dir.path(), "ring/index.m3u8", 8);
    assert_played(input.name(), &r, 5.0, input.has_video());
}

#[test]
fn hlsjs_plays_h264_aac() {
    hlsjs_finished(Input::H264Aac);
}

#[test]
fn hlsjs_plays_open_gop_with_b_frames() {
    hlsjs_finished(Input::OpenGop);
}

#[test]
fn hlsjs_plays_a_long_gop() {
    hlsjs_finished(Input::LongGop);
}

#[test]
fn hlsjs_plays_aac_radio() {
    hlsjs_finished(Input::AacRadio);
}

#[test]
fn hlsjs_plays_mp2_radio() {
    hlsjs_finished(Input::Mp2Radio);
}

#[test]
#[ignore = "Chromium here has no HEVC decoder (MediaSource rejects hvc1)"]
fn hlsjs_plays_hevc_aac() {
    hlsjs_finished(Input::HevcAac);
}

#[test]
#[ignore = "Chromium has no AC-3 decoder (MediaSource rejects ac-3)"]
fn hlsjs_plays_h264_ac3() {
    hlsjs_finished(Input::H264Ac3);
}

#[test]
#[ignore = "hls.js does not transmux MPEG-2 video"]
fn hlsjs_plays_mpeg2_mp2() {
    hlsjs_finished(Input::Mpeg2Mp2);
}

/// The ignored tests above say why; this checks the browser still agrees
/// (MediaSource.isTypeSupported), so a skip cannot outlive its reason.
#[test]
fn browser_codec_support_is_as_the_skips_say() {
    for input in [Input::HevcAac, Input::H264Ac3, Input::Mpeg2Mp2] {
        assert!(input.browser_cannot_play().is_some(), "{input:?}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    record_file(&Input::H264Aac.path(), 65536, &ring, "");
    let r = hlsjs_play(dir.path(), "ring/index.m3u8", 1);
    let supports = r.get("supports");
    for expected in ["avc1:true", "mp4a:true", "hvc1:false", "ac-3:false"] {
        assert!(supports.contains(expected), "Chromium's codecs changed: {supports}");
    }
}

/// The recorder's socket buffer: 8 MiB, seconds of any of these inputs,
/// so that a loaded machine does not lose datagrams before the sink.
const UDP_BUFFER: u32 = 8 * 1024 * 1024;

/// Live tests play in real time: one at a time, so that two of them do not
/// starve each other's players of CPU on a small machine.
static LIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The live case: ffmpeg sends `input` in real time, looped, over UDP
/// (loopback, 1316-byte datagrams) to `udpsrc ! streambuffersink` with a
/// 6 s window of 2 s segments. While it records, the ring is played live by
/// ffmpeg and playbin through index.m3u8, by `streambuffersrc
/// start-position=live ! tsdemux` with decoders, and (`hlsjs`) by hls.js,
/// while the window slides; then every segment left decodes on its own.
fn check_live(input: Input, hlsjs: bool) {
    let _serial = LIVE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    use gst::prelude::*;
    init();
    let name = input.name();
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let port = free_udp_port();
    let recorder = gst::parse::launch(&format!(
        "udpsrc address=127.0.0.1 port={port} buffer-size={UDP_BUFFER} caps=video/mpegts,systemstream=true ! streambuffersink name=sink location={} segment-duration={} max-duration={}",
        ring.display(),
        2 * SECOND,
        6 * SECOND
    ))
    .expect("parse")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    recorder.set_state(gst::State::Playing).expect("record");
    let sender = Reaped(
        Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-re", "-stream_loop", "-1", "-i"])
            .arg(input.path())
            .args(["-t", "90", "-c", "copy", "-f", "mpegts"])
            .arg(format!("udp://127.0.0.1:{port}?pkt_size=1316"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run ffmpeg"),
    );
    // A 10 s GOP makes 10 s segments: the first playlist needs one.
    let entries = if input == Input::LongGop { 1 } else { 3 };
    assert!(
        wait_until(Duration::from_secs(30), || playlist_entries(&ring) >= entries),
        "{name}: no live playlist"
    );
    let first_sequence = playlist(&ring).media_sequence;
    let play = Duration::from_secs(if input == Input::LongGop { 16 } else { 8 });

    let index = ring.join("index.m3u8");
    let ffmpeg = std::thread::spawn({
        let index = index.clone();
        let seconds = play.as_secs().to_string();
        move || {
            Command::new("ffmpeg")
                .args(["-hide_banner", "-nostdin", "-v", "warning", "-i"])
                .arg(index)
                .args(["-t", &seconds, "-f", "null", "-"])
                .output()
                .expect("run ffmpeg")
        }
    });
    let playbin = std::thread::spawn({
        let uri = format!("file://{}", index.display());
        move || playbin_buffers(&uri, PlayFor::Time(play))
    });
    let reader = std::thread::spawn({
        let ring = ring.clone();
        move || {
            let src = format!("streambuffersrc location={} start-position=live", ring.display());
            let audio = format!("t. ! queue ! {} ! fakesink name=a", input.audio_decoder());
            match input.video_decoder() {
                Some(video) => launch_counting(
                    &format!("{src} ! tsdemux name=t t. ! queue ! {video} ! fakesink name=v {audio}"),
                    &["v", "a"],
                    PlayFor::Time(play),
                ),
                None => launch_counting(&format!("{src} ! tsdemux name=t {audio}"), &["a"], PlayFor::Time(play)),
            }
        }
    });
    let page = hlsjs.then(|| hlsjs_play(dir.path(), "ring/index.m3u8", 14));

    let out = ffmpeg.join().expect("ffmpeg thread");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // ffmpeg decodes the live ring without a word, unless what it was
    // given was broken before the ring: datagrams lost on their way to the
    // sink (its own continuity count says so), or ffmpeg falling behind a
    // window of three segments on a loaded machine and skipping the
    // expired ones (it says so). Either way a decoder then meets an open
    // GOP's leading pictures without what they refer to ("mmco: unref
    // short failure"): that is the damage it was given, not the ring's.
    let continuity_errors = stat_u64(&stats(&recorder, "sink"), "continuity-errors");
    let skipped = stderr.contains("expired from playlists");
    if !stderr.trim().is_empty() {
        eprintln!("{name}: live ffmpeg said ({continuity_errors} continuity errors at the sink):\n{stderr}");
    }
    assert!(
        out.status.success() && (stderr.trim().is_empty() || continuity_errors > 0 || skipped),
        "{name}: live ffmpeg ({continuity_errors} continuity errors at the sink): {stderr}"
    );
    let (video, audio) = playbin
        .join()
        .expect("playbin thread")
        .unwrap_or_else(|e| panic!("{name}: live playbin: {e}"));
    assert!(
        audio > 20 && (video > 50) == input.has_video(),
        "{name}: live playbin: {video} video, {audio} audio buffers"
    );
    let counts = reader
        .join()
        .expect("reader thread")
        .unwrap_or_else(|e| panic!("{name}: live streambuffersrc: {e}"));
    assert!(
        counts.iter().all(|&n| n > 20),
        "{name}: live streambuffersrc: {counts:?}"
    );
    if let Some(page) = page {
        assert_played(&format!("{name}: live hls.js"), &page, 9.0, input.has_video());
    }

    let slid_to = playlist(&ring).media_sequence;
    let slide = if input == Input::LongGop { 1 } else { 2 };
    assert!(
        slid_to >= first_sequence + slide,
        "{name}: the window did not slide: {first_sequence} -> {slid_to}"
    );
    drop(sender);
    assert!(
        eos_and_wait(&recorder, Duration::from_secs(20)).is_ok(),
        "{name}: recorder EOS"
    );
    let _ = recorder.set_state(gst::State::Null);
    let segs = segments(&ring);
    let listed = playlist(&ring).segments;
    for (i, s) in segs.iter().enumerate() {
        assert_segment_well_formed(s);
        // The last segment ends where the sender was killed: it may hold
        // too little for a whole audio frame, but what video it has still
        // starts on a keyframe.
        let last = i + 1 == segs.len();
        let about = format!("{name}: {} ({:?} s)", s.display(), listed.get(i).map(|e| e.duration));
        assert!(last || ffprobe_frame_count(s, "a:0") > 0, "{about}: no audio frame");
        if input.has_video() {
            let video = ffprobe_frame_count(s, "v:0");
            assert!(last || video > 0, "{about}: no video frame");
            if video > 0 {
                assert_eq!(ffprobe_key_frames(s, 1), vec![true], "{about}");
            }
        }
    }
}

#[test]
fn live_over_udp_h264_aac_with_hlsjs_while_the_window_slides() {
    check_live(Input::H264Aac, true);
}

#[test]
fn live_over_udp_hevc_aac() {
    check_live(Input::HevcAac, false);
}

#[test]
fn live_over_udp_mpeg2_mp2() {
    check_live(Input::Mpeg2Mp2, false);
}

#[test]
fn live_over_udp_h264_ac3() {
    check_live(Input::H264Ac3, false);
}

#[test]
fn live_over_udp_aac_radio() {
    check_live(Input::AacRadio, false);
}

#[test]
fn live_over_udp_mp2_radio() {
    check_live(Input::Mp2Radio, false);
}

#[test]
fn live_over_udp_open_gop_with_b_frames() {
    check_live(Input::OpenGop, false);
}

#[test]
fn live_over_udp_long_gop() {
    check_live(Input::LongGop, false);
}
