// SPDX-License-Identifier: MPL-2.0
//! streambuffersrc: time-shifted playback of a ring, written by another process.
// Real kernel behaviour (tmpfs, FIFOs, signals, gst-launch-1.0 children):
// these tests run on Unix.
#![cfg(unix)]

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    SECOND,
    media::test_stream,
    pipelines::{first_error, launch, on_each_buffer, record_file, run_to_eos, wait_for_eos},
    plugin_dir,
    processes::spawn_live_writer,
    rings::{IndexRecord, index_records, playlist, playlist_entries, ring_files, segments},
    wait_until,
};
use gst::prelude::*;

/// (pts, discont) of every buffer a reader produced.
type BufferLog = Arc<Mutex<Vec<(Option<u64>, bool)>>>;

/// A reader pipeline whose output bytes (and buffer flags) are collected.
struct Collector {
    pipeline: gst::Pipeline,
    bytes: Arc<Mutex<Vec<u8>>>,
    /// (pts, discont) of every buffer.
    buffers: BufferLog,
}

fn collector(props: &str) -> Collector {
    let pipeline = launch(&format!(
        "streambuffersrc name=src {props} ! appsink name=out sync=false"
    ));
    let bytes: Arc<Mutex<Vec<u8>>> = Default::default();
    let buffers: BufferLog = Default::default();
    let (b, f) = (bytes.clone(), buffers.clone());
    on_each_buffer(&pipeline, "out", move |buffer, data| {
        b.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(data);
        f.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((
            buffer.pts().map(gst::ClockTime::nseconds),
            buffer.flags().contains(gst::BufferFlags::DISCONT),
        ));
    });
    Collector {
        pipeline,
        bytes,
        buffers,
    }
}

/// Concatenated content of the ring's segments from index `from` on.
fn ring_bytes_from(ring: &std::path::Path, from: usize) -> Vec<u8> {
    ring_files(ring).into_iter().skip(from).flat_map(|(_, d)| d).collect()
}

/// Writer and reader in separate processes: the reader follows the live
/// writer to the end, and what it played is exactly what was recorded.
#[test]
fn follows_a_live_writer_to_the_end_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let mut writer = spawn_live_writer(&ring, SECOND, 10, "max-duration=0");
    assert!(
        wait_until(Duration::from_secs(30), || playlist_entries(&ring) >= 2),
        "writer did not start"
    );
    let c = collector(&format!("location={} start-position=oldest", ring.display()));
    c.pipeline.set_state(gst::State::Playing).expect("play");
    // EOS comes only once the writer has finished and written EXT-X-ENDLIST.
    let result = wait_for_eos(&c.pipeline, Duration::from_secs(60));
    c.pipeline.set_state(gst::State::Null).expect("stop");
    assert!(writer.wait().expect("writer").success());
    result.expect("reader reaches EOS after the writer ends");
    let played = c.bytes.lock().expect("bytes").clone();
    let recorded = ring_bytes_from(&ring, 0);
    assert_eq!(played.len(), recorded.len());
    assert!(played == recorded, "played bytes differ from the recording");
    // Each segment's first buffer carries its content time.
    let stamped = c
        .buffers
        .lock()
        .expect("buffers")
        .iter()
        .filter(|(pts, _)| pts.is_some())
        .count();
    assert_eq!(stamped, segments(&ring).len());
}

/// A seek lands on the keyframe presented at or before the target (the
/// index says where): the output is the segment's head (PAT, PMT), then
/// the segment from that keyframe on and every later segment, byte for
/// byte; the first buffer carries the keyframe's ring time.
#[test]
fn seeks_land_on_keyframes() {
    let input = test_stream(20);
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    record_file(&input, 65536, &ring, &format!("segment-duration={}", 4 * SECOND));
    let files = ring_files(&ring);
    assert!(files.len() >= 4, "{}", files.len());
    // (sequence index, head size, keyframe) for every keyframe of the ring.
    let keyframes: Vec<(usize, u64, IndexRecord)> = files
        .iter()
        .enumerate()
        .flat_map(|(i, (name, _))| {
            let seq: u64 = name[8..20].parse().expect("sequence");
            let records = index_records(&ring, seq);
            let head = u64::from(records[0].size);
            records.into_iter().skip(1).map(move |k| (i, head, k))
        })
        .collect();
    assert!(keyframes.len() >= 8, "{keyframes:?}");
    let pick = |target: u64| {
        *keyframes
            .iter()
            .rev()
            .find(|(_, _, k)| k.presentation_ns() <= target)
            .unwrap_or(&keyframes[0])
    };
    let third = keyframes[keyframes.len() / 3].2.presentation_ns();
    for target in [0, third, third + SECOND / 3, 3600 * SECOND] {
        let (segment, head, keyframe) = pick(target);
        let c = collector(&format!("location={} start-position=oldest", ring.display()));
        c.pipeline.set_state(gst::State::Paused).expect("pause");
        let _ = c.pipeline.state(gst::ClockTime::from_seconds(10));
        c.pipeline
            .seek_simple(gst::SeekFlags::FLUSH, gst::ClockTime::from_nseconds(target))
            .expect("seek accepted");
        c.bytes.lock().expect("bytes").clear();
        c.buffers.lock().expect("buffers").clear();
        c.pipeline.set_state(gst::State::Playing).expect("play");
        wait_for_eos(&c.pipeline, Duration::from_secs(30)).expect("EOS");
        c.pipeline.set_state(gst::State::Null).expect("stop");
        let played = c.bytes.lock().expect("bytes").clone();
        let data = &files[segment].1;
        let mut expected = data[..head as usize].to_vec();
        expected.extend_from_slice(&data[keyframe.offset as usize..]);
        expected.extend(files[segment + 1..].iter().flat_map(|(_, d)| d.iter().copied()));
        assert!(
            played == expected,
            "seek to {target}: {} bytes played, {} expected",
            played.len(),
            expected.len()
        );
        let first = c.buffers.lock().expect("buffers").first().copied();
        assert_eq!(first, Some((Some(keyframe.ring_time_ns), true)), "seek to {target}");
    }
}

/// SEEKING, DURATION and POSITION queries answer in TIME, in
/// presentation time: ring time plus the stream's presentation delay (the
/// index says it: its first keyframe's).
#[test]
fn answers_seeking_duration_and_position_queries() {
    let input = test_stream(12);
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    record_file(&input, 65536, &ring, &format!("segment-duration={}", 2 * SECOND));
    let listed: f64 = playlist(&ring).segments.iter().map(|s| f64::from(s.duration)).sum();
    let c = collector(&format!("location={} start-position=oldest", ring.display()));
    c.pipeline.set_state(gst::State::Paused).expect("pause");
    let _ = c.pipeline.state(gst::ClockTime::from_seconds(10));
    let src = c.pipeline.by_name("src").expect("src");
    let mut q = gst::query::Seeking::new(gst::Format::Time);
    assert!(src.static_pad("src").expect("pad").query(&mut q));
    let (seekable, start, end) = q.result();
    assert!(seekable);
    let records = index_records(&ring, 0);
    let delay = records[1].presentation_ns() - records[1].ring_time_ns;
    assert_eq!(start.value() as u64, records[0].ring_time_ns + delay);
    let end_s = end.value() as f64 / 1e9;
    let listed_end = listed + delay as f64 / 1e9;
    assert!(
        (end_s - listed_end).abs() < 0.01,
        "window end {end_s} vs playlist {listed_end}"
    );
    let duration = c.pipeline.query_duration::<gst::ClockTime>().expect("duration");
    assert!((duration.nseconds() as f64 / 1e9 - listed_end).abs() < 0.01);
    assert!(c.pipeline.query_position::<gst::ClockTime>().is_some());
    c.pipeline.set_state(gst::State::Null).expect("stop");
}

/// Pause 5 s and resume: playback continues from the paused position, not
/// from the live edge.
#[test]
fn pause_and_resume_is_time_shift() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let mut writer = spawn_live_writer(&ring, SECOND, 25, "max-duration=0");
    assert!(
        wait_until(Duration::from_secs(30), || playlist_entries(&ring) >= 2),
        "writer did not start"
    );
    let player = launch(&format!(
        "streambuffersrc location={} ! tsdemux ! h264parse ! avdec_h264 ! fakesink sync=true",
        ring.display()
    ));
    player.set_state(gst::State::Playing).expect("play");
    std::thread::sleep(Duration::from_secs(3));
    let before = player.query_position::<gst::ClockTime>().expect("position").nseconds();
    player.set_state(gst::State::Paused).expect("pause");
    std::thread::sleep(Duration::from_secs(5));
    player.set_state(gst::State::Playing).expect("resume");
    std::thread::sleep(Duration::from_secs(1));
    let after = player.query_position::<gst::ClockTime>().expect("position").nseconds();
    let src = player.by_name("streambuffersrc0").expect("src");
    let mut q = gst::query::Seeking::new(gst::Format::Time);
    assert!(src.static_pad("src").expect("pad").query(&mut q));
    let live_edge = q.result().2.value() as u64;
    let bus = player.bus().expect("bus");
    let error = first_error(&bus);
    player.set_state(gst::State::Null).expect("stop");
    let _ = writer.kill();
    let _ = writer.wait();
    assert_eq!(error, None);
    // About one second of playback after the pause, not a jump of five.
    assert!(
        after > before && after - before < 3 * SECOND,
        "position went from {before} to {after}"
    );
    assert!(
        live_edge > after + 3 * SECOND,
        "after resuming, playback is behind live: {after} vs {live_edge}"
    );
}

/// A reader parked on the oldest segment while the writer evicts it: it is
/// told, jumps to the oldest remaining content with DISCONT, and goes on.
#[test]
fn reader_parked_on_evicted_content_jumps_forward() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    // Without leases (tests/leases.rs), which would hold its segment.
    let mut writer = spawn_live_writer(
        &ring,
        SECOND,
        30,
        &format!("max-duration={} lease-max-duration=0", 3 * SECOND),
    );
    assert!(
        wait_until(Duration::from_secs(30), || playlist_entries(&ring) >= 3),
        "writer did not start"
    );
    let c = collector(&format!(
        "location={} start-position=oldest blocksize=1880",
        ring.display()
    ));
    let appsink = c.pipeline.by_name("out").expect("appsink");
    appsink.set_property("max-buffers", 1u32);
    appsink.set_property("drop", false);
    let messages: Arc<Mutex<Vec<String>>> = Default::default();
    let m = messages.clone();
    c.pipeline.bus().expect("bus").set_sync_handler(move |_, msg| {
        if let gst::MessageView::Element(e) = msg.view()
            && let Some(s) = e.structure()
        {
            m.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(s.name().to_string());
        }
        gst::BusSyncReply::Pass
    });
    // Prerolled: one buffer out, the source blocked on the oldest segment.
    c.pipeline.set_state(gst::State::Paused).expect("pause");
    let _ = c.pipeline.state(gst::ClockTime::from_seconds(10));
    std::thread::sleep(Duration::from_secs(7));
    let parked_bytes = c.bytes.lock().expect("bytes").len();
    c.pipeline.set_state(gst::State::Playing).expect("play");
    assert!(
        wait_until(Duration::from_secs(20), || messages
            .lock()
            .expect("messages")
            .iter()
            .any(|m| m == "streambuffer-stale-file-deleted")),
        "no stale-file-deleted message: {:?}",
        messages.lock().expect("messages")
    );
    std::thread::sleep(Duration::from_secs(2));
    let bus = c.pipeline.bus().expect("bus");
    let error = first_error(&bus);
    c.pipeline.set_state(gst::State::Null).expect("stop");
    let _ = writer.kill();
    let _ = writer.wait();
    assert_eq!(error, None);
    let msgs = messages.lock().expect("messages").clone();
    assert!(
        msgs.iter().any(|m| m == "streambuffer-content-becoming-stale"),
        "{msgs:?}"
    );
    let buffers = c.buffers.lock().expect("buffers").clone();
    assert!(
        buffers.iter().skip(1).any(|(_, discont)| *discont),
        "the jump is marked DISCONT"
    );
    assert!(
        c.bytes.lock().expect("bytes").len() > parked_bytes,
        "playback went on after the jump"
    );
}

/// A finished ring with write-failure holes plays to EOS across them, with a
/// time-hole message for each, and timestamps that stay continuous.
#[test]
fn plays_across_write_failure_holes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    // A file size limit makes every segment fail part-way: holes everywhere.
    let script = format!(
        "trap '' XFSZ; ulimit -f 200; exec gst-launch-1.0 -q videotestsrc num-buffers=300 pattern=snow ! \
         video/x-raw,width=320,height=240,framerate=25/1 ! x264enc tune=zerolatency key-int-max=25 \
         speed-preset=ultrafast bitrate=1500 ! mpegtsmux ! streambuffersink location={} segment-duration={} \
         max-duration=0 retry-interval={}",
        ring.display(),
        4 * SECOND,
        SECOND / 100
    );
    let status = Command::new("bash")
        .args(["-c", &script])
        .env("GST_PLUGIN_PATH", plugin_dir())
        .status()
        .expect("run");
    assert!(status.success());
    let c = collector(&format!("location={} start-position=oldest", ring.display()));
    let holes: Arc<Mutex<Vec<(u64, u64)>>> = Default::default();
    let h = holes.clone();
    c.pipeline.bus().expect("bus").set_sync_handler(move |_, msg| {
        if let gst::MessageView::Element(e) = msg.view()
            && let Some(s) = e.structure()
            && s.name() == "streambuffer-time-hole"
        {
            let offset = s.get::<u64>("offset-ms").unwrap_or(u64::MAX);
            let size = s.get::<u64>("size-ms").unwrap_or(0);
            h.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((offset, size));
        }
        gst::BusSyncReply::Pass
    });
    c.pipeline.set_state(gst::State::Playing).expect("play");
    wait_for_eos(&c.pipeline, Duration::from_secs(60)).expect("plays to EOS");
    c.pipeline.set_state(gst::State::Null).expect("stop");
    let pl = playlist(&ring);
    // The holes as the playlist shows them (m3u8-rs): a discontinuity whose
    // date-time is more than half a second after the end of the segment
    // before. A failure just before a keyframe leaves a shorter gap, which
    // is no time hole; how many there are depends on the encoder's output.
    let mut gaps = 0;
    let mut previous_end_ms: Option<i64> = None;
    for seg in &pl.segments {
        let start_ms = seg.program_date_time.map(|d| d.timestamp_millis()).or(previous_end_ms);
        if seg.discontinuity
            && let (Some(start), Some(end)) = (start_ms, previous_end_ms)
            && start - end > 500
        {
            gaps += 1;
        }
        previous_end_ms = start_ms.map(|s| s + (f64::from(seg.duration) * 1000.0).round() as i64);
    }
    let holes = holes.lock().expect("holes").clone();
    assert!(gaps >= 2, "{gaps} holes in {} segments", pl.segments.len());
    assert_eq!(holes.len(), gaps, "one time-hole per hole: {holes:?}");
    assert!(holes.iter().all(|&(_, size)| size > 500), "{holes:?}");
    // Continuous timestamps: each segment starts where the previous ended.
    let stamps: Vec<u64> = c
        .buffers
        .lock()
        .expect("buffers")
        .iter()
        .filter_map(|(pts, _)| *pts)
        .collect();
    let durations: Vec<u64> = pl
        .segments
        .iter()
        .map(|s| (f64::from(s.duration) * 1e9).round() as u64)
        .collect();
    for i in 1..stamps.len() {
        let step = stamps[i] - stamps[i - 1];
        assert!(
            step.abs_diff(durations[i - 1]) < 2_000_000,
            "jump of {step} ns after segment {}",
            i - 1
        );
    }
    assert!(c.bytes.lock().expect("bytes").clone() == ring_bytes_from(&ring, 0));
}

/// The reader only reads: it plays a ring from a read-only mount.
#[test]
fn plays_from_a_read_only_mount() {
    let input = test_stream(8);
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    record_file(&input, 65536, &ring, &format!("segment-duration={}", 2 * SECOND));
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).expect("mkdir");
    let bind = Command::new("mount").arg("--bind").arg(&ring).arg(&ro).status();
    if !bind.is_ok_and(|s| s.success()) {
        eprintln!("\n!!!!!!!! SKIPPED: cannot bind-mount (needs root) !!!!!!!!\n");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(ro.clone());
    let remount = Command::new("mount")
        .args(["-o", "remount,ro,bind"])
        .arg(&ro)
        .status()
        .expect("remount");
    assert!(remount.success());
    assert!(
        std::fs::write(ro.join("probe"), b"x").is_err(),
        "the mount must be read-only"
    );
    let c = collector(&format!("location={} start-position=oldest", ro.display()));
    c.pipeline.set_state(gst::State::Playing).expect("play");
    wait_for_eos(&c.pipeline, Duration::from_secs(30)).expect("plays to EOS");
    c.pipeline.set_state(gst::State::Null).expect("stop");
    assert!(c.bytes.lock().expect("bytes").clone() == ring_bytes_from(&ring, 0));
}

/// `playbin uri=streambuffer:///path/to/ring` plays a ring through
/// `streambuffersrc` (what `gst-play-1.0 streambuffer:///...` does), the
/// URI's query sets where it starts, and a seek through playbin lands
/// where asked; the element gives its URI back. A URI it does not
/// understand is refused.
#[test]
fn playbin_plays_streambuffer_uris_and_seeks() {
    use gststreambuffer::streambuffersrc::StreamBufferSrcExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring with space");
    run_to_eos(
        &format!(
            "filesrc location={} ! streambuffersink segment-duration=4000000000 location=\"{}\"",
            common::inputs::Input::H264Aac.path().display(),
            ring.display()
        ),
        Duration::from_secs(60),
    )
    .expect("record");
    let uri = format!(
        "streambuffer://{}?start-position=oldest",
        ring.display().to_string().replace(' ', "%20")
    );
    let playbin = gst::ElementFactory::make("playbin")
        .property("uri", &uri)
        .property(
            "video-sink",
            gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .build()
                .expect("fakesink"),
        )
        .property(
            "audio-sink",
            gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .build()
                .expect("fakesink"),
        )
        .build()
        .expect("playbin");
    playbin.set_state(gst::State::Paused).expect("pause");
    let (result, ..) = playbin.state(gst::ClockTime::from_seconds(20));
    result.expect("prerolled");
    let src = playbin.property::<gst::Element>("source");
    assert_eq!(
        src.factory().map(|f| f.name().to_string()).as_deref(),
        Some("streambuffersrc")
    );
    assert_eq!(
        src.dynamic_cast_ref::<gst::URIHandler>()
            .and_then(|h| h.uri())
            .as_deref(),
        Some(uri.as_str())
    );
    // The typed API on the element playbin made.
    let stats = src.source_stats();
    assert!(stats.get::<u64>("bytes-out").is_ok_and(|b| b > 0), "{stats}");
    let position = src.date_time_to_position(
        &src.position_to_date_time(gst::ClockTime::from_seconds(6))
            .expect("a date-time at 6 s"),
    );
    assert!(
        position.is_some_and(|p| p.nseconds().abs_diff(6 * SECOND) < 50_000_000),
        "round trip: {position:?}"
    );
    playbin
        .seek_simple(
            gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
            gst::ClockTime::from_seconds(8),
        )
        .expect("seek through playbin");
    let (result, ..) = playbin.state(gst::ClockTime::from_seconds(20));
    result.expect("prerolled after the seek");
    let at = playbin.query_position::<gst::ClockTime>().expect("position");
    assert!(
        at.nseconds().abs_diff(8 * SECOND) < SECOND,
        "at {at} after a seek to 8 s"
    );
    playbin.set_state(gst::State::Playing).expect("play");
    wait_for_eos(
        playbin.downcast_ref::<gst::Pipeline>().expect("pipeline"),
        Duration::from_secs(30),
    )
    .expect("EOS");
    playbin.set_state(gst::State::Null).expect("stop");

    let handler = gst::ElementFactory::make("streambuffersrc").build().expect("src");
    let handler = handler.dynamic_cast::<gst::URIHandler>().expect("a URI handler");
    assert!(handler.set_uri("streambuffer:///r?rate=2").is_err());
    assert!(handler.set_uri("streambuffer:///r?start-delay=30000000000").is_ok());
    assert_eq!(
        handler.uri().as_deref(),
        Some("streambuffer:///r?start-position=live&start-delay=30000000000")
    );
}
