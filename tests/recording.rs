// SPDX-License-Identifier: MPL-2.0
//! streambuffersink records real encoded video into a ring of playable segments.
// Real kernel behaviour (tmpfs, FIFOs, signals, gst-launch-1.0 children):
// these tests run on Unix.
#![cfg(unix)]

mod common;

use std::time::Duration;

use common::{
    PACKET, SECOND, init,
    inputs::Input,
    media::{ffmpeg_decode, ffprobe_duration, ffprobe_key_frames, test_stream, tsdemux_frames},
    pipelines::{
        appsrc_sink, first_error, record_file, run_pipeline_to_eos, run_to_eos, stat_u64, stats, wait_for_eos,
    },
    plugin_dir,
    rings::{assert_input_in_ring, assert_segment_well_formed, playlist, playlist_entries, ring_files, segments},
    wait_until,
};
use gst::prelude::*;

/// 60 s of video, 2 s segments, 10 s window: about five decodable segments
/// whose playlist durations add up to the content.
#[test]
fn sixty_seconds_into_a_ten_second_window() {
    let input = test_stream(60);
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let stats = record_file(
        &input,
        65536,
        &ring,
        &format!("segment-duration={} max-duration={}", 2 * SECOND, 10 * SECOND),
    );
    let segs = segments(&ring);
    assert!(
        (5..=6).contains(&segs.len()),
        "expected about 5 segments, found {}",
        segs.len()
    );
    for s in &segs {
        assert_segment_well_formed(s);
        let frames = tsdemux_frames(s).unwrap_or_else(|e| panic!("{}: tsdemux: {e}", s.display()));
        assert!(frames >= 40, "{}: only {frames} frames", s.display());
        ffmpeg_decode(s).unwrap_or_else(|e| panic!("{}: ffmpeg: {e}", s.display()));
        assert_eq!(
            ffprobe_key_frames(s, 1),
            vec![true],
            "{} does not start with a keyframe",
            s.display()
        );
    }
    let pl = playlist(&ring);
    assert!(pl.end_list, "EOS must write EXT-X-ENDLIST");
    assert_eq!(pl.segments.len(), segs.len());
    let listed: f64 = pl.segments.iter().map(|s| f64::from(s.duration)).sum();
    // The decodable duration of the whole window, measured independently.
    let probed = ffprobe_duration(&ring.join("index.m3u8"));
    assert!(
        (listed - probed).abs() <= 2.0,
        "playlist says {listed} s, ffprobe says {probed} s"
    );
    assert!(
        (10.0..=14.0).contains(&listed),
        "window of {listed} s for max-duration 10 s"
    );
    assert!(stat_u64(&stats, "segments-deleted") >= 20);
    assert_eq!(stat_u64(&stats, "sync-losses"), 0);
    assert_eq!(stat_u64(&stats, "continuity-errors"), 0);
    assert_eq!(stats.get::<&str>("clock-source").expect("clock-source"), "pcr");
    ffmpeg_decode(&ring.join("index.m3u8")).expect("playlist plays");
}

/// Any input chunking (filesrc cut anywhere, even mid-packet) gives the same
/// segments, byte for byte.
#[test]
fn chunking_does_not_change_a_byte() {
    let input = test_stream(8);
    let dir = tempfile::tempdir().expect("tempdir");
    let props = format!("segment-duration={} max-duration=0", 2 * SECOND);
    let reference_dir = dir.path().join("ref");
    record_file(&input, 188 * 7, &reference_dir, &props);
    let reference = ring_files(&reference_dir);
    assert!(reference.len() >= 3, "only {} segments", reference.len());
    for blocksize in [1, 7, 187, 189, 1316, 65536] {
        let ring = dir.path().join(format!("bs{blocksize}"));
        let stats = record_file(&input, blocksize, &ring, &props);
        let files = ring_files(&ring);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        let ref_names: Vec<&str> = reference.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ref_names, "blocksize {blocksize}");
        for ((name, a), (_, b)) in files.iter().zip(&reference) {
            assert!(
                a == b,
                "blocksize {blocksize}: {name} differs ({} vs {} bytes)",
                a.len(),
                b.len()
            );
        }
        assert_eq!(stat_u64(&stats, "dropped-bytes"), 0, "blocksize {blocksize}");
    }
    // Nothing of the input was lost: every input packet is in the ring, in order.
    let input_bytes = std::fs::read(&input).expect("read input");
    let recorded: Vec<u8> = reference.iter().flat_map(|(_, d)| d.clone()).collect();
    assert_input_in_ring(&input_bytes, &recorded);
}

/// Garbage between packets is skipped, counted, and never reaches the disk.
#[test]
fn garbage_is_skipped_and_counted() {
    let input = test_stream(8);
    let clean = std::fs::read(&input).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dirty = Vec::new();
    let mut garbage_bytes = 0u64;
    let mut injections = 0u64;
    let mut rng = 0x2545F491u32;
    for (i, p) in clean.chunks(PACKET).enumerate() {
        if i % 500 == 250 {
            let n = 1 + (rng % 300) as usize;
            for _ in 0..n {
                rng ^= rng << 13;
                rng ^= rng >> 17;
                rng ^= rng << 5;
                // Never a sync byte, so a lock cannot be faked by chance.
                dirty.push(if rng as u8 == 0x47 { 0x48 } else { rng as u8 });
            }
            garbage_bytes += n as u64;
            injections += 1;
        }
        dirty.extend_from_slice(p);
    }
    let dirty_path = dir.path().join("dirty.ts");
    std::fs::write(&dirty_path, &dirty).expect("write");
    let props = format!("segment-duration={} max-duration=0", 2 * SECOND);
    record_file(&input, 4096, &dir.path().join("clean"), &props);
    let stats = record_file(&dirty_path, 4096, &dir.path().join("dirty"), &props);
    assert!(injections >= 3);
    assert_eq!(stat_u64(&stats, "dropped-bytes"), garbage_bytes);
    assert_eq!(stat_u64(&stats, "sync-losses"), injections);
    let a = ring_files(&dir.path().join("clean"));
    let b = ring_files(&dir.path().join("dirty"));
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{name} differs between clean and dirty input");
    }
}

/// 192-byte M2TS input is written as 188-byte packets.
#[test]
fn m2ts_input_is_written_as_188_byte_packets() {
    let input = test_stream(8);
    let clean = std::fs::read(&input).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut m2ts = Vec::new();
    for (i, p) in clean.chunks(PACKET).enumerate() {
        m2ts.extend_from_slice(&(i as u32 * 1000).to_be_bytes());
        m2ts.extend_from_slice(p);
    }
    let path = dir.path().join("in.m2ts");
    std::fs::write(&path, &m2ts).expect("write");
    let props = format!("segment-duration={} max-duration=0", 2 * SECOND);
    record_file(&input, 65536, &dir.path().join("ts"), &props);
    record_file(&path, 65536, &dir.path().join("m2ts"), &props);
    let a = ring_files(&dir.path().join("ts"));
    let b = ring_files(&dir.path().join("m2ts"));
    assert!(!a.is_empty());
    assert!(a == b, "M2TS input recorded differently from the same TS");
}

/// Restarting on an existing ring adopts it: old segments kept, numbering
/// continued, the junction marked as a discontinuity.
#[test]
fn restart_adopts_the_existing_ring() {
    let input = test_stream(8);
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let props = format!("segment-duration={} max-duration=0", 2 * SECOND);
    record_file(&input, 65536, &ring, &props);
    let first = segments(&ring);
    let first_count = first.len();
    let stats = record_file(&input, 65536, &ring, &props);
    assert_eq!(stat_u64(&stats, "adopted-segments"), first_count as u64);
    let all = segments(&ring);
    assert_eq!(all.len(), 2 * first_count);
    assert_eq!(&all[..first_count], &first[..], "old segments kept");
    let pl = playlist(&ring);
    assert_eq!(pl.segments.len(), 2 * first_count);
    assert!(pl.segments[first_count].discontinuity, "junction not marked");
    assert_eq!(pl.segments.iter().filter(|s| s.discontinuity).count(), 1);
    assert_eq!(pl.discontinuity_sequence, 0);
    for s in &all {
        assert_segment_well_formed(s);
    }
    ffmpeg_decode(&ring.join("index.m3u8")).expect("adopted ring plays");
}

/// A crash leaves a torn segment: the next start trims it to whole packets
/// and to its last complete frame.
#[test]
fn restart_trims_a_torn_tail() {
    let input = test_stream(8);
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let props = format!("segment-duration={} max-duration=0", 2 * SECOND);
    record_file(&input, 65536, &ring, &props);
    // What a crash mid-write leaves: a newer segment, not in the journal, torn.
    let last = segments(&ring).pop().expect("segments");
    let mut torn = std::fs::read(&last).expect("read");
    torn.truncate(torn.len() / 2 / PACKET * PACKET + 77);
    let torn_path = ring.join("segment-000000000099.ts");
    std::fs::write(&torn_path, &torn).expect("write");
    let stats = record_file(&input, 65536, &ring, &props);
    assert!(stat_u64(&stats, "adopted-segments") >= 1);
    // Cut back to whole packets, and further to the last complete frame.
    let len = std::fs::metadata(&torn_path).expect("torn segment kept").len() as usize;
    assert!(len > 0 && len <= torn.len() - 77, "{len} bytes kept of {}", torn.len());
    assert_eq!(len % PACKET, 0);
    ffmpeg_decode(&torn_path).expect("the trimmed segment decodes cleanly");
    assert!(
        segments(&ring).iter().any(|p| p.ends_with("segment-000000000100.ts")),
        "numbering continues after 99"
    );
    for s in segments(&ring) {
        assert_segment_well_formed(&s);
    }
}

/// A second sink on the same directory is refused, in-process and from
/// another process, with a clear error.
#[test]
fn second_writer_on_a_directory_is_refused() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let live = |name: &str| {
        gst::parse::launch(&format!(
            "videotestsrc is-live=true ! video/x-raw,width=160,height=120 ! x264enc tune=zerolatency ! mpegtsmux ! \
             streambuffersink name={name} location={}",
            ring.display()
        ))
        .expect("parse")
        .downcast::<gst::Pipeline>()
        .expect("pipeline")
    };
    let first = live("a");
    first.set_state(gst::State::Playing).expect("first writer starts");
    let _ = first.state(gst::ClockTime::from_seconds(10));
    let second = live("b");
    let bus = second.bus().expect("bus");
    assert!(
        second.set_state(gst::State::Playing).is_err(),
        "second writer must be refused"
    );
    let err = first_error(&bus).expect("an ERROR message");
    assert!(err.contains("already in use"), "unclear error: {err}");
    second.set_state(gst::State::Null).expect("null");

    let out = std::process::Command::new("gst-launch-1.0")
        .env("GST_PLUGIN_PATH", plugin_dir())
        .args([
            "-q",
            "videotestsrc",
            "num-buffers=10",
            "!",
            "x264enc",
            "!",
            "mpegtsmux",
            "!",
            "streambuffersink",
        ])
        .arg(format!("location={}", ring.display()))
        .output()
        .expect("run gst-launch-1.0");
    assert!(!out.status.success(), "second process must fail");
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("already in use"),
        "unclear error from the second process: {text}"
    );
    first.set_state(gst::State::Null).expect("null");
}

/// A location that cannot be a directory fails READY->PAUSED with a clear
/// resource error.
#[test]
fn unusable_location_fails_the_state_change() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").expect("write");
    for (location, expect) in [(file.clone(), "not a directory"), (file.join("sub"), "Not a directory")] {
        let pipeline = gst::parse::launch(&format!("fakesrc ! streambuffersink location={}", location.display()))
            .expect("parse")
            .downcast::<gst::Pipeline>()
            .expect("pipeline");
        let bus = pipeline.bus().expect("bus");
        assert!(pipeline.set_state(gst::State::Paused).is_err());
        let msg = bus
            .timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error])
            .expect("error message");
        let gst::MessageView::Error(e) = msg.view() else {
            unreachable!()
        };
        assert!(
            e.error().matches(gst::ResourceError::OpenWrite),
            "wrong domain: {:?}",
            e.error()
        );
        assert!(e.error().message().contains(expect), "unclear: {}", e.error().message());
        pipeline.set_state(gst::State::Null).expect("null");
    }
    let pipeline = gst::parse::launch("fakesrc ! streambuffersink").expect("parse");
    assert!(pipeline.set_state(gst::State::Paused).is_err(), "no location must fail");
    pipeline.set_state(gst::State::Null).expect("null");
}

/// NULL -> PLAYING -> NULL, several times on the same element.
#[test]
fn repeated_state_changes() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=100 ! video/x-raw,width=160,height=120,framerate=25/1 ! \
         x264enc tune=zerolatency key-int-max=25 ! mpegtsmux ! streambuffersink name=sink location={} \
         segment-duration={}",
        ring.display(),
        SECOND
    ))
    .expect("parse")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    for round in 1..=3 {
        run_pipeline_to_eos(&pipeline, Duration::from_secs(60)).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let pl = playlist(&ring);
        assert!(pl.end_list);
        assert_eq!(
            pl.segments.iter().filter(|s| s.discontinuity).count(),
            round - 1,
            "round {round}"
        );
    }
    for s in segments(&ring) {
        assert_segment_well_formed(&s);
    }
    // After stopping, the counters of the finished recording stay readable.
    let stats = pipeline
        .by_name("sink")
        .expect("sink")
        .property::<gst::Structure>("stats");
    assert_eq!(stats.get::<bool>("running"), Ok(false));
    assert!(stat_u64(&stats, "segments-created") > 0);
}

/// Raw TS as it comes from a UDP socket: 1316-byte buffers, no timestamps.
#[test]
fn udp_style_buffers_without_timestamps() {
    init();
    let input = std::fs::read(test_stream(8)).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src caps=video/mpegts,systemstream=true,packetsize=188 ! streambuffersink name=sink location={} segment-duration={}",
        ring.display(),
        2 * SECOND
    ))
    .expect("parse")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    let src = pipeline
        .by_name("src")
        .expect("src")
        .downcast::<gst_app::AppSrc>()
        .expect("appsrc");
    pipeline.set_state(gst::State::Playing).expect("play");
    for chunk in input.chunks(1316) {
        src.push_buffer(gst::Buffer::from_slice(chunk.to_vec())).expect("push");
    }
    src.end_of_stream().expect("eos");
    let bus = pipeline.bus().expect("bus");
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS");
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
    let stats = stats(&pipeline, "sink");
    pipeline.set_state(gst::State::Null).expect("null");
    assert_eq!(stats.get::<&str>("clock-source").expect("field"), "pcr");
    assert_eq!(stat_u64(&stats, "buffers"), input.len().div_ceil(1316) as u64);
    let segs = segments(&ring);
    assert!(segs.len() >= 3);
    for s in &segs {
        assert_segment_well_formed(s);
        tsdemux_frames(s).unwrap_or_else(|e| panic!("{}: {e}", s.display()));
    }
}

/// Segments finished in a burst (input far faster than real time) are
/// published together, and those of the burst's end even when no more
/// input comes: no EOS, the pipeline left playing, the sink's clock
/// rewrites the playlist a moment later and it lists every finished one.
#[test]
fn a_burst_of_segments_is_published_when_the_input_stops() {
    init();
    let input = std::fs::read(Input::H264Aac.path()).expect("input");
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let (pipeline, src) = appsrc_sink(&ring, &format!("segment-duration={SECOND}"));
    pipeline.set_state(gst::State::Playing).expect("play");
    for chunk in input.chunks(65536) {
        src.push_buffer(gst::Buffer::from_slice(chunk.to_vec())).expect("push");
    }
    let sink_stat = |field: &str| stat_u64(&stats(&pipeline, "sink"), field);
    assert!(
        wait_until(Duration::from_secs(60), || sink_stat("bytes-in") == input.len() as u64),
        "the sink took the whole input"
    );
    // The last segment stays open: nothing after it says where it ends.
    let finished = sink_stat("segments-created") - 1;
    assert!(finished >= 8, "12 s in 1 s segments: {finished} finished");
    let listed = wait_until(Duration::from_secs(10), || playlist_entries(&ring) == finished as usize);
    let (writes, entries) = (sink_stat("playlist-writes"), playlist_entries(&ring));
    pipeline.set_state(gst::State::Null).expect("null");
    assert!(
        listed,
        "{entries} of {finished} finished segments listed after {writes} playlist writes"
    );
}

/// GStreamer's own player plays the finished ring through its playlist.
#[test]
fn playbin_plays_the_finished_ring() {
    let input = test_stream(12);
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    record_file(&input, 65536, &ring, &format!("segment-duration={}", 2 * SECOND));
    let uri = format!("file://{}", ring.join("index.m3u8").display());
    let pipeline = gst::ElementFactory::make("playbin")
        .property("uri", &uri)
        .build()
        .expect("playbin");
    let vsink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .build()
        .expect("fakesink");
    let frames = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let frames = frames.clone();
        vsink
            .static_pad("sink")
            .expect("pad")
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                frames.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
    }
    pipeline.set_property("video-sink", &vsink);
    let pipeline = pipeline.downcast::<gst::Pipeline>().expect("pipeline");
    run_pipeline_to_eos(&pipeline, Duration::from_secs(120)).expect("playbin plays the ring");
    let n = frames.load(std::sync::atomic::Ordering::Relaxed);
    let listed: f64 = playlist(&ring).segments.iter().map(|s| f64::from(s.duration)).sum();
    assert!(
        (n as f64 - listed * 25.0).abs() <= 2.0,
        "{n} frames decoded for {listed} s"
    );
}

/// Raw TS from a real UDP socket on loopback.
#[test]
fn records_from_udpsrc() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("free port");
    let port = socket.local_addr().expect("addr").port();
    drop(socket);
    let recorder = gst::parse::launch(&format!(
        "udpsrc address=127.0.0.1 port={port} caps=video/mpegts,systemstream=true ! \
         streambuffersink name=sink location={} segment-duration={}",
        ring.display(),
        SECOND
    ))
    .expect("parse")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    recorder.set_state(gst::State::Playing).expect("record");
    let sender = format!(
        "videotestsrc is-live=true num-buffers=125 ! video/x-raw,width=320,height=240,framerate=25/1 ! \
         x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast ! mpegtsmux alignment=7 ! \
         udpsink host=127.0.0.1 port={port}"
    );
    run_to_eos(&sender, Duration::from_secs(60)).expect("send");
    std::thread::sleep(Duration::from_millis(300));
    let stats = stats(&recorder, "sink");
    recorder.set_state(gst::State::Null).expect("stop");
    assert_eq!(stat_u64(&stats, "dropped-bytes"), 0);
    assert_eq!(stat_u64(&stats, "sync-losses"), 0);
    let segs = segments(&ring);
    assert!(segs.len() >= 3, "{} segments from 5 s of 1 s segments", segs.len());
    for s in &segs {
        assert_segment_well_formed(s);
        tsdemux_frames(s).unwrap_or_else(|e| panic!("{}: {e}", s.display()));
    }
}

/// A flushing seek upstream: the recording continues in a new segment that
/// starts at a keyframe and is marked as a discontinuity.
#[test]
fn flushing_seek_starts_a_discontinuous_segment() {
    init();
    let input = test_stream(12);
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} blocksize=1316 ! identity name=pace sleep-time=10000 ! streambuffersink name=sink location={} segment-duration={}",
        input.display(),
        ring.display(),
        2 * SECOND
    ))
    .expect("parse")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    pipeline.set_state(gst::State::Playing).expect("play");
    let _ = pipeline.state(gst::ClockTime::from_seconds(10));
    // Let a few segments be written, then jump back to the start of the file.
    let start = std::time::Instant::now();
    while segments(&ring).len() < 3 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let pace = pipeline.by_name("pace").expect("identity");
    pace.set_property("sleep-time", 0u32);
    pipeline
        .seek_simple(gst::SeekFlags::FLUSH, gst::format::Bytes::ZERO)
        .expect("byte seek");
    let bus = pipeline.bus().expect("bus");
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS");
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
    let stats = stats(&pipeline, "sink");
    pipeline.set_state(gst::State::Null).expect("stop");
    assert!(stat_u64(&stats, "discontinuities") >= 1);
    let pl = playlist(&ring);
    assert_eq!(pl.segments.iter().filter(|s| s.discontinuity).count(), 1);
    for s in segments(&ring) {
        assert_segment_well_formed(&s);
        assert_eq!(
            ffprobe_key_frames(&s, 1),
            vec![true],
            "{} does not start with a keyframe",
            s.display()
        );
    }
}

/// `max-size` bounds the bytes on disk; eviction is oldest first.
#[test]
fn max_size_bounds_the_ring() {
    let input = test_stream(60);
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let max_size: u64 = 400_000;
    let stats = record_file(
        &input,
        65536,
        &ring,
        &format!("segment-duration={} max-duration=0 max-size={max_size}", 2 * SECOND),
    );
    let sizes: Vec<u64> = segments(&ring)
        .iter()
        .map(|p| std::fs::metadata(p).expect("stat").len())
        .collect();
    let total: u64 = sizes.iter().sum();
    assert!(total <= max_size, "{total} bytes on disk for max-size {max_size}");
    assert!(total + sizes[0] > max_size / 2, "evicted far too much: {total}");
    assert!(stat_u64(&stats, "evicted-max-size") > 0);
    assert_eq!(stat_u64(&stats, "evicted-max-duration"), 0);
    let pl = playlist(&ring);
    let names: Vec<String> = segments(&ring)
        .iter()
        .map(|p| p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned())
        .collect();
    let listed: Vec<String> = pl.segments.iter().map(|s| s.uri.clone()).collect();
    assert_eq!(listed, names, "playlist lists exactly the segments on disk");
}

/// `stats` read between buffers counts every buffer so far, though the copy
/// the streaming thread refreshes is only renewed every few buffers.
#[test]
fn stats_are_current_between_buffers() {
    let input = std::fs::read(test_stream(4)).expect("input");
    let dir = tempfile::tempdir().expect("tempdir");
    let (pipeline, src) = appsrc_sink(&dir.path().join("ring"), "");
    pipeline.set_state(gst::State::Playing).expect("play");
    let mut pushed = 0u64;
    // Small buffers (copied) and one large one (kept by reference).
    for size in [1316, 1316, 1316, 65536] {
        let chunk = &input[pushed as usize..pushed as usize + size];
        src.push_buffer(gst::Buffer::from_slice(chunk.to_vec())).expect("push");
        pushed += size as u64;
        let counted = || stat_u64(&stats(&pipeline, "sink"), "bytes-in") == pushed;
        assert!(
            wait_until(Duration::from_secs(10), counted),
            "bytes-in {} after pushing {pushed}",
            stat_u64(&stats(&pipeline, "sink"), "bytes-in")
        );
    }
    src.end_of_stream().expect("eos");
    wait_for_eos(&pipeline, Duration::from_secs(10)).expect("EOS");
    pipeline.set_state(gst::State::Null).expect("stop");
}
