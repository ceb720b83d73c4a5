// SPDX-License-Identifier: MPL-2.0
//! Recordings cut out of the ring: content files and reference directories.
// Real kernel behaviour (tmpfs, FIFOs, signals, gst-launch-1.0 children):
// these tests run on Unix.
#![cfg(unix)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::{
    PACKET,
    media::{
        ffmpeg_decode, ffprobe_duration, ffprobe_frame_pts_ns, ffprobe_key_frames, packet_at, pcr_of, pid, test_stream,
    },
    pipelines::{Feeder, launch, lock_events, recording_kind, run_to_eos, watch},
    processes::Tmpfs,
    rings::{IndexRecord, index_records, playlist, ring_files, segments},
    wait_until,
};
use gst::prelude::*;

/// Record 60 s; at 40 s start a content recording reaching back 20 s, stop
/// it at 50 s: about 30 s, starting with PAT, PMT and a keyframe, decodable,
/// and byte for byte what the ring holds for that range.
#[test]
fn content_recording_reaches_back_into_the_ring() {
    content_recording_reaches_back("max-duration=0", 20);
}

/// The same, reaching back 10 s, with a 34 s window that has been evicting
/// for a while at 40 s: the segment open when the recording starts is
/// written over an evicted segment's file, and the recording takes its new
/// packets only, not the old ones after them.
#[test]
fn content_recording_reaches_back_into_reused_files() {
    content_recording_reaches_back("max-duration=34000000000", 10);
}

fn content_recording_reaches_back(retention: &str, back_s: i64) {
    let reusing = retention != "max-duration=0";
    let data = std::fs::read(test_stream(60)).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let rec = dir.path().join("rec.ts");
    let at50 = packet_at(&data, 50) * PACKET;
    let mut f = Feeder::new(&ring, &format!("segment-duration=2000000000 {retention}"));
    let messages = watch(&f.pipeline, "sink");
    // Up to about 40 s: just after the first segment begun from 39 s on.
    let mut at40 = packet_at(&data, 39) * PACKET;
    f.feed(&data[..at40]);
    let stat = |f: &Feeder, name: &str| {
        f.sink
            .property::<gst::Structure>("stats")
            .get::<u64>(name)
            .expect("stat")
    };
    let before = stat(&f, "segments-created");
    while stat(&f, "segments-created") == before {
        f.feed(&data[at40..at40 + 10 * PACKET]);
        at40 += 10 * PACKET;
    }
    assert_eq!(stat(&f, "segments-reused") > 0, reusing);
    if reusing {
        // The open segment has just begun over a whole evicted segment's
        // file: old packets follow its new ones (none written yet). The
        // progress record (sequence, bytes, check: little-endian u64s)
        // says where.
        let raw = std::fs::read(ring.join("ring.progress")).expect("progress record");
        let word = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let open = segments(&ring).last().expect("open segment").clone();
        assert!(open.ends_with(format!("segment-{:012}.ts", word(0))), "{open:?}");
        let len = std::fs::metadata(&open).expect("stat").len();
        assert!(word(1) < len, "{} new bytes of {len}", word(1));
    }
    let id = f.start(&rec, "content", -back_s);
    assert_ne!(id, 0);
    f.feed(&data[at40..at50]);
    assert!(f.stop(id, 0));
    f.feed(&data[at50..]);
    f.finish();

    let recorded = std::fs::read(&rec).expect("recording");
    assert_eq!(pid(&recorded), 0, "starts with a PAT");
    assert_eq!(ffprobe_key_frames(&rec, 1), vec![true], "starts with a keyframe");
    ffmpeg_decode(&rec).expect("decodes");
    let seconds = ffprobe_duration(&rec);
    let expected = (10 + back_s) as f64;
    assert!(
        (expected - 2.0..=expected + 2.5).contains(&seconds),
        "{seconds} s recorded for 40-{back_s} .. 50"
    );
    // Byte for byte the ring's content from the start segment on.
    let files = ring_files(&ring);
    let start = files
        .iter()
        .position(|(_, d)| d.len() <= recorded.len() && recorded.starts_with(d))
        .expect("start segment");
    let ring_bytes: Vec<u8> = files[start..].iter().flat_map(|(_, d)| d.clone()).collect();
    assert!(
        ring_bytes.starts_with(&recorded),
        "the recording is the ring's bytes for the range"
    );
    let m = lock_events(&messages);
    assert!(m.messages.iter().any(|n| n == "streambuffer-recording-started"));
    assert!(m.messages.iter().any(|n| n == "streambuffer-recording-stopped"));
}

/// A reference recording made while the ring keeps evicting: hard links (no
/// copy), and after the ring deleted its own copies the recording still
/// plays to the end.
#[test]
fn reference_recording_outlives_eviction() {
    let data = std::fs::read(test_stream(60)).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let rec = dir.path().join("rec");
    let (at20, at40) = (packet_at(&data, 20) * PACKET, packet_at(&data, 40) * PACKET);
    let mut f = Feeder::new(&ring, "segment-duration=2000000000 max-duration=8000000000");
    f.feed(&data[..at20]);
    let id = f.start(&rec, "reference", -6);
    assert_ne!(id, 0);
    // The history is linked at once: same inodes as the ring's files.
    let linked: Vec<_> = std::fs::read_dir(&rec).expect("dir").filter_map(Result::ok).collect();
    assert!(linked.len() >= 3, "{} segments linked", linked.len());
    for l in &linked {
        let ours = std::fs::metadata(l.path()).expect("stat");
        let ring_copy = std::fs::metadata(ring.join(l.file_name())).expect("ring copy");
        assert_eq!(
            ours.ino(),
            ring_copy.ino(),
            "{:?} is a hard link, not a copy",
            l.file_name()
        );
    }
    f.feed(&data[at20..at40]);
    assert!(f.stop(id, 0));
    f.feed(&data[at40..]);
    f.finish();
    // The ring has long deleted those segments; the recording has them.
    for l in std::fs::read_dir(&rec).expect("dir").filter_map(Result::ok) {
        if l.file_name() != "index.m3u8" {
            assert!(
                !ring.join(l.file_name()).exists(),
                "ring still holds {:?}",
                l.file_name()
            );
        }
    }
    let pl = playlist(&rec);
    assert!(pl.end_list);
    let listed: f64 = pl.segments.iter().map(|s| f64::from(s.duration)).sum();
    assert!((24.0..=30.0).contains(&listed), "{listed} s in the recording");
    ffmpeg_decode(&rec.join("index.m3u8")).expect("the recording plays");
    let text = std::fs::read_to_string(rec.join("index.m3u8")).expect("playlist");
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD"));
    // streambuffersrc plays the recording's directory to EOS, byte for byte.
    let out = dir.path().join("played.ts");
    run_to_eos(
        &format!(
            "streambuffersrc location={} start-position=oldest ! filesink location={}",
            rec.display(),
            out.display()
        ),
        Duration::from_secs(60),
    )
    .expect("streambuffersrc plays the recording");
    let expected: Vec<u8> = ring_files(&rec).into_iter().flat_map(|(_, d)| d).collect();
    assert!(std::fs::read(&out).expect("played") == expected);
}

/// Recordings read the ring the sink holds open, not whatever its path
/// names: with the ring directory moved away and another directory put in
/// its place (holding files with the ring's names), a reference recording
/// links the ring's own segments and a content recording copies the ring's
/// own bytes; nothing of the planted files gets into either.
#[test]
fn recordings_read_the_ring_not_what_its_path_names() {
    let data = std::fs::read(test_stream(30)).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let moved = dir.path().join("ring.moved");
    let (reference, content) = (dir.path().join("ref"), dir.path().join("rec.ts"));
    let mut f = Feeder::new(&ring, "segment-duration=2000000000 max-duration=0");
    f.feed(&data[..packet_at(&data, 20) * PACKET]);
    std::fs::rename(&ring, &moved).expect("move the ring away");
    std::fs::create_dir(&ring).expect("another directory at its path");
    let planted = vec![0x47u8; 100 * PACKET];
    for entry in std::fs::read_dir(&moved).expect("moved ring").filter_map(Result::ok) {
        std::fs::write(ring.join(entry.file_name()), &planted).expect("plant");
    }
    let ref_id = f.start(&reference, "reference", -8);
    let content_id = f.start(&content, "content", -8);
    assert!(
        ref_id != 0 && content_id != 0,
        "recordings refused: {ref_id} {content_id}"
    );
    let linked: Vec<_> = std::fs::read_dir(&reference)
        .expect("reference recording")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".ts"))
        .collect();
    assert!(linked.len() >= 3, "{} segments linked", linked.len());
    for l in &linked {
        let ours = std::fs::metadata(l.path()).expect("stat");
        let ring_own = std::fs::metadata(moved.join(l.file_name())).expect("the ring's own file");
        let planted_file = std::fs::metadata(ring.join(l.file_name())).expect("planted file");
        assert_eq!(
            ours.ino(),
            ring_own.ino(),
            "{:?} links the ring's own file",
            l.file_name()
        );
        assert_ne!(
            ours.ino(),
            planted_file.ino(),
            "{:?} links a planted file",
            l.file_name()
        );
    }
    assert!(f.stop(ref_id, 0) && f.stop(content_id, 0));
    f.finish();
    let recorded = std::fs::read(&content).expect("content recording");
    assert_eq!(pid(&recorded), 0, "starts with a PAT");
    let ring_bytes: Vec<u8> = ring_files(&moved).into_iter().flat_map(|(_, d)| d).collect();
    let head = &recorded[..recorded.len().min(64 * PACKET)];
    assert!(
        ring_bytes.windows(head.len()).any(|w| w == head),
        "the content recording starts with the ring's own bytes"
    );
    assert!(
        !recorded.windows(planted.len()).any(|w| w == planted.as_slice()),
        "the content recording holds a planted file"
    );
    ffmpeg_decode(&content).expect("the content recording decodes");
}

/// Disk full during a content recording: write-failure names the recording,
/// the ring keeps going; once space is back the recording resumes at a
/// segment start (write-failure-clear) and the file decodes.
#[test]
fn recording_disk_full_does_not_disturb_the_ring() {
    let Some(fs) = Tmpfs::mount("2M") else { return };
    let data = std::fs::read(test_stream(60)).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let rec = fs.path().join("rec.ts");
    let mut f = Feeder::new(
        &ring,
        "segment-duration=2000000000 max-duration=0 retry-interval=200000000",
    );
    let events = watch(&f.pipeline, "sink");
    let cut = |s| packet_at(&data, s) * PACKET;
    f.feed(&data[..cut(10)]);
    let id = f.start(&rec, "content", 0);
    assert_ne!(id, 0);
    let ballast = fs.fill();
    f.feed(&data[cut(10)..cut(30)]);
    // Signals are emitted just after the buffer's counters are published.
    assert!(
        wait_until(Duration::from_secs(10), || !lock_events(&events).failures.is_empty()),
        "no write-failure"
    );
    std::fs::remove_file(&ballast).expect("free the space");
    std::thread::sleep(Duration::from_millis(300));
    f.feed(&data[cut(30)..cut(50)]);
    assert!(f.stop(id, 0));
    f.feed(&data[cut(50)..]);
    f.finish();
    let e = lock_events(&events);
    assert_eq!(e.failures.len(), 1, "{:?}", e.failures);
    assert!(
        e.failures[0].1.contains(&format!("recording {id}")),
        "{}",
        e.failures[0].1
    );
    assert_eq!(e.failures[0].0, "no-space-left");
    assert_eq!(e.clears.len(), 1, "the recording resumed");
    assert!(e.clears[0].0 > 0, "dropped bytes are reported");
    assert!(!e.messages.iter().any(|m| m.starts_with("ERROR")));
    drop(e);
    let listed: f64 = playlist(&ring).segments.iter().map(|s| f64::from(s.duration)).sum();
    assert!(listed > 55.0, "the ring recorded everything: {listed} s");
    assert_eq!(pid(&std::fs::read(&rec).expect("recording")), 0);
    ffmpeg_decode(&rec).expect("the recording decodes across its hole");
}

/// Two recordings overlapping in time.
#[test]
fn overlapping_recordings() {
    let data = std::fs::read(test_stream(60)).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let cut = |s| packet_at(&data, s) * PACKET;
    let mut f = Feeder::new(&ring, "segment-duration=2000000000 max-duration=0");
    f.feed(&data[..cut(30)]);
    let a = f.start(&dir.path().join("a.ts"), "content", -10);
    f.feed(&data[cut(30)..cut(35)]);
    let b = f.start(&dir.path().join("b"), "reference", 0);
    f.feed(&data[cut(35)..cut(45)]);
    assert!(f.stop(a, 0));
    f.feed(&data[cut(45)..cut(55)]);
    assert!(f.stop(b, 0));
    assert!(!f.stop(a, 0), "a is no longer running");
    f.feed(&data[cut(55)..]);
    f.finish();
    assert!(a != 0 && b != 0 && a != b);
    let da = ffprobe_duration(&dir.path().join("a.ts"));
    assert!((24.0..=28.5).contains(&da), "a (20 s .. 45 s): {da} s");
    ffmpeg_decode(&dir.path().join("a.ts")).expect("a decodes");
    let listed: f64 = playlist(&dir.path().join("b"))
        .segments
        .iter()
        .map(|s| f64::from(s.duration))
        .sum();
    assert!((18.0..=24.0).contains(&listed), "b: {listed} s");
    ffmpeg_decode(&dir.path().join("b").join("index.m3u8")).expect("b plays");
}

/// An existing file is never clobbered: the recording is refused.
#[test]
fn existing_files_are_not_clobbered() {
    let data = std::fs::read(test_stream(8)).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let taken = dir.path().join("taken.ts");
    std::fs::write(&taken, b"keep me").expect("write");
    let mut f = Feeder::new(&ring, "segment-duration=2000000000");
    f.feed(&data);
    assert_eq!(f.start(&taken, "content", -4), 0, "refused");
    f.finish();
    assert_eq!(std::fs::read(&taken).expect("read"), b"keep me");
}

/// Stopping in the past: the content ends at the first segment start at or
/// after the stop point; a reference recording drops the later segments.
#[test]
fn stop_offset_in_the_past() {
    let data = std::fs::read(test_stream(60)).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let cut = |s| packet_at(&data, s) * PACKET;
    let mut f = Feeder::new(&ring, "segment-duration=2000000000 max-duration=0");
    f.feed(&data[..cut(30)]);
    let content = f.start(&dir.path().join("c.ts"), "content", -10);
    let reference = f.start(&dir.path().join("r"), "reference", -10);
    f.feed(&data[cut(30)..cut(50)]);
    assert!(f.stop(content, -10));
    assert!(f.stop(reference, -10));
    f.feed(&data[cut(50)..]);
    f.finish();
    // Both cover about 20 s .. 40 s.
    let c = ffprobe_duration(&dir.path().join("c.ts"));
    assert!((18.0..=22.5).contains(&c), "content: {c} s");
    ffmpeg_decode(&dir.path().join("c.ts")).expect("content decodes");
    let r: f64 = playlist(&dir.path().join("r"))
        .segments
        .iter()
        .map(|s| f64::from(s.duration))
        .sum();
    assert!((18.0..=22.5).contains(&r), "reference: {r} s");
}

/// ffmpeg's H.264+AAC (a keyframe a second, 12 s) fed up to 10.5 s into a
/// ring of 6 s segments: the second segment is open, half a second past
/// its fifth keyframe.
struct Fed10s {
    data: Vec<u8>,
    dir: tempfile::TempDir,
    f: Feeder,
    /// Where in `data` feeding stopped.
    cut: usize,
}

/// Byte offset in `data` of the first packet whose PCR is `seconds` past
/// the first.
fn offset_at(data: &[u8], seconds: f64) -> usize {
    let first = data.chunks(PACKET).find_map(pcr_of).expect("a PCR");
    data.chunks(PACKET)
        .position(|p| pcr_of(p).is_some_and(|v| (v - first) as f64 >= seconds * 27e6))
        .expect("long enough")
        * PACKET
}

fn fed_10_5_seconds() -> Fed10s {
    let data = std::fs::read(common::inputs::Input::H264Aac.path()).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let mut f = Feeder::new(&ring, "segment-duration=6000000000 max-duration=0");
    let cut = offset_at(&data, 10.5);
    f.feed(&data[..cut]);
    Fed10s { data, dir, f, cut }
}

/// Content recordings start at the keyframe at or before their start, not
/// at a segment start: with 6 s segments and a keyframe a second (ffmpeg's
/// H.264+AAC, 12 s), a recording started at 10.5 s reaching back 3 s holds
/// 7 s .. 12 s, and one started "now" at 10.5 s holds 10 s .. 12 s instead
/// of waiting for the next segment; each starts with PAT, PMT and a
/// keyframe and decodes.
#[test]
fn content_recordings_start_at_a_keyframe() {
    let mut fed = fed_10_5_seconds();
    let back = fed.dir.path().join("back.ts");
    let now = fed.dir.path().join("now.ts");
    let back_id = fed.f.start(&back, "content", -3);
    let now_id = fed.f.start(&now, "content", 0);
    fed.f.feed(&fed.data[fed.cut..]);
    assert!(fed.f.stop(back_id, 0) && fed.f.stop(now_id, 0));
    fed.f.finish();
    for (path, seconds) in [(&back, 5.0), (&now, 2.0)] {
        let recorded = std::fs::read(path).expect("recording");
        assert_eq!(pid(&recorded), 0, "{}: starts with a PAT", path.display());
        assert_eq!(
            ffprobe_key_frames(path, 1),
            vec![true],
            "{}: starts with a keyframe",
            path.display()
        );
        ffmpeg_decode(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let duration = ffprobe_duration(path);
        assert!(
            (duration - seconds).abs() <= 0.6,
            "{}: {duration} s recorded, {seconds} s expected",
            path.display()
        );
    }
}

/// A content recording stopped in the past ends just before the first
/// keyframe at or after the stop (6 s segments, a keyframe a second): from
/// 7 s, stopped at 12 s less 1.5 s, it holds 7 s .. 11 s.
#[test]
fn content_recordings_stop_before_a_keyframe() {
    let mut fed = fed_10_5_seconds();
    let path = fed.dir.path().join("rec.ts");
    let id = fed.f.start(&path, "content", -3);
    fed.f.feed(&fed.data[fed.cut..]);
    assert!(fed.f.stop(id, -1));
    fed.f.finish();
    ffmpeg_decode(&path).expect("decodes");
    let duration = ffprobe_duration(&path);
    assert!((duration - 4.0).abs() <= 0.6, "{duration} s recorded, 4 s expected");
}

/// A reference recording keeps whole segments (and their keyframe indexes)
/// and says where it starts: started at 10.5 s reaching back 3 s, with 6 s
/// segments, its VOD playlist has EXT-X-START:TIME-OFFSET=1.5,PRECISE=YES
/// (m3u8-rs reads it), and `streambuffersrc` on the recording shows first
/// the frame 1.5 s into the first segment, decoded from the keyframe
/// before it; ffmpeg plays it too.
#[test]
fn a_reference_recording_starts_where_it_was_asked_to() {
    let mut fed = fed_10_5_seconds();
    let rec = fed.dir.path().join("rec");
    let id = fed.f.start(&rec, "reference", -3);
    fed.f.feed(&fed.data[fed.cut..]);
    assert!(fed.f.stop(id, 0));
    fed.f.finish();
    let pl = playlist(&rec);
    let start = pl.start.expect("EXT-X-START");
    assert!((start.time_offset - 1.5).abs() < 0.05, "{start:?}");
    assert_eq!(start.precise, Some(true));
    ffmpeg_decode(&rec.join("index.m3u8")).expect("ffmpeg plays it");

    let name = pl.segments[0].uri.clone();
    let seq: u64 = name[8..20].parse().expect("sequence");
    let records = index_records(&rec, seq);
    let expected = records[1].presentation_ns() + 1_500_000_000;
    let pipeline = launch(&format!(
        "streambuffersrc location={} ! tsdemux ! h264parse ! avdec_h264 ! appsink name=out sync=false",
        rec.display()
    ));
    let sink = pipeline
        .by_name("out")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .expect("appsink");
    pipeline.set_state(gst::State::Paused).expect("pause");
    let sample = sink
        .try_pull_preroll(gst::ClockTime::from_seconds(10))
        .expect("a frame");
    let pts = sample.buffer().and_then(|b| b.pts()).expect("pts").nseconds();
    let _ = pipeline.set_state(gst::State::Null);
    assert!(
        pts.abs_diff(expected) < 40_000_000,
        "first frame at {pts}, expected {expected}"
    );
}

/// A 30 s H.264 test pattern, 25 fps, a keyframe every second (no B-frames).
fn one_second_gops(dir: &std::path::Path) -> Vec<u8> {
    let path = dir.join("input.ts");
    run_to_eos(
        &format!(
            "videotestsrc num-buffers=750 pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 ! \
             x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast bitrate=600 ! \
             mpegtsmux ! filesink location={}",
            path.display()
        ),
        Duration::from_secs(120),
    )
    .expect("generate input");
    std::fs::read(path).expect("read input")
}

/// The sink's recording messages, as they are posted.
fn recording_messages(pipeline: &gst::Pipeline) -> std::sync::Arc<std::sync::Mutex<Vec<gst::Structure>>> {
    let found: std::sync::Arc<std::sync::Mutex<Vec<gst::Structure>>> = Default::default();
    let sink = found.clone();
    pipeline.bus().expect("bus").set_sync_handler(move |_, msg| {
        if let gst::MessageView::Element(e) = msg.view()
            && let Some(s) = e.structure()
            && s.name().starts_with("streambuffer-recording-")
        {
            sink.lock().expect("lock").push(s.to_owned());
        }
        gst::BusSyncReply::Pass
    });
    found
}

/// A GDateTime for ms since the epoch (UTC).
fn date(ms: i64) -> gst::glib::DateTime {
    gst::glib::DateTime::from_unix_utc(ms.div_euclid(1000))
        .and_then(|d| d.add(gst::glib::TimeSpan::from_milliseconds(ms.rem_euclid(1000))))
        .expect("date")
}

/// A message's date-time field in ms since the epoch.
fn field_ms(s: &gst::Structure, field: &str) -> i64 {
    let d = s
        .get::<gst::DateTime>(field)
        .unwrap_or_else(|e| panic!("{field} in {s}: {e}"))
        .to_g_date_time()
        .expect("a full date-time");
    d.to_unix() * 1000 + i64::from(d.microsecond() / 1000)
}

/// Recordings started and stopped in the past, now and in the future, by
/// offset and by date-time, hold exactly the range their messages report:
/// a content recording starts at the keyframe at or before its start and
/// ends just before the first keyframe at or after its stop; its
/// `start-time` / `stop-time` are those keyframes' positions on the
/// ring's timeline (as `streambuffersrc` reports them) and its date-times
/// their dates in the keyframe index; its decoded frames run from the
/// first to the frame before the second, none missing. Future starts are
/// scheduled (a `-scheduled` message now, `-started` when it comes); a
/// scheduled reference recording keeps whole segments and says where it
/// starts and stops.
#[test]
fn recordings_hold_the_range_they_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = one_second_gops(dir.path());
    let ring = dir.path().join("ring");
    let mut f = Feeder::new(&ring, "segment-duration=6000000000 max-duration=0");
    let messages = recording_messages(&f.pipeline);
    let at = |seconds: f64| offset_at(&data, seconds);
    f.feed(&data[..at(10.5)]);
    // The recorder's wall clock at a second of the stream, from an index
    // record (ring time 0 is the first keyframe, at the stream's start).
    let k = index_records(&ring, 1)[1];
    let wall_of = |seconds: f64| k.wall_ms + ((seconds * 1e9 - k.ring_time_ns as f64) / 1e6) as i64;
    let path = |name: &str| dir.path().join(name).display().to_string();
    let content = recording_kind("content");
    let start_at = |name: &str, seconds: f64| {
        f.sink
            .emit_by_name::<u32>("start-recording-at", &[&path(name), &content, &date(wall_of(seconds))])
    };
    // (name, requested start and stop in stream seconds)
    let a = start_at("a.ts", 7.4); // past, by date
    let b = f.start(std::path::Path::new(&path("b.ts")), "content", 0); // now
    let c = f
        .sink
        .emit_by_name::<u32>("start-recording", &[&path("c.ts"), &content, &2_300_000_000i64]); // future, by offset
    let d = start_at("d.ts", 14.6); // future, by date
    let e = f.sink.emit_by_name::<u32>(
        "start-recording",
        &[&path("e"), &recording_kind("reference"), &3_700_000_000i64],
    ); // reference, future
    assert!(
        [a, b, c, d, e].iter().all(|&id| id != 0),
        "refused: {a} {b} {c} {d} {e}"
    );
    let names = |kind: &str| -> Vec<u32> {
        let m = messages.lock().expect("lock");
        m.iter()
            .filter(|s| s.name().as_str() == format!("streambuffer-recording-{kind}"))
            .map(|s| s.get::<u32>("id").expect("id"))
            .collect()
    };
    assert_eq!(names("scheduled"), vec![c, d, e]);
    assert_eq!(names("started"), vec![a, b], "only the past and present began");
    f.feed(&data[at(10.5)..at(16.5)]);
    assert_eq!(names("started"), vec![a, b, c, d, e], "the scheduled recordings began");
    assert!(f.sink.emit_by_name::<bool>("stop-recording", &[&a, &-1_300_000_000i64])); // past, by offset (15.2)
    assert!(f.stop(b, 0)); // now (16.5)
    assert!(
        f.sink
            .emit_by_name::<bool>("stop-recording-at", &[&c, &date(wall_of(21.4))])
    ); // future, by date
    assert!(f.sink.emit_by_name::<bool>("stop-recording", &[&d, &2_300_000_000i64])); // future, by offset (18.8)
    assert!(f.sink.emit_by_name::<bool>("stop-recording", &[&e, &9_000_000_000i64])); // future (25.5)
    f.feed(&data[at(16.5)..]);
    f.finish();

    // Every keyframe the ring indexed, in order.
    let keyframes: Vec<IndexRecord> = (0..5)
        .flat_map(|seq| index_records(&ring, seq).into_iter().skip(1))
        .collect();
    let at_or_before = |ms: i64| {
        *keyframes
            .iter()
            .rev()
            .find(|k| k.wall_ms <= ms)
            .expect("keyframe before")
    };
    let at_or_after = |ms: i64| *keyframes.iter().find(|k| k.wall_ms >= ms).expect("keyframe after");
    // Stream PTS to ring presentation time: the first keyframe of the ring.
    let pts_offset =
        ffprobe_frame_pts_ns(&ring.join("segment-000000000000.ts"))[0] as i64 - keyframes[0].presentation_ns() as i64;
    let m = messages.lock().expect("lock").clone();
    let stopped = |id: u32| {
        m.iter()
            .find(|s| s.name() == "streambuffer-recording-stopped" && s.get::<u32>("id") == Ok(id))
            .unwrap_or_else(|| panic!("no stop message for {id}"))
            .clone()
    };
    for (id, name, from, to) in [
        (a, "a.ts", 7.4, 15.2),
        (b, "b.ts", 10.5, 16.5),
        (c, "c.ts", 12.8, 21.4),
        (d, "d.ts", 14.6, 18.8),
    ] {
        let s = stopped(id);
        assert_eq!(s.get::<&str>("status"), Ok("ok"), "{s}");
        let (first, last) = (at_or_before(wall_of(from)), at_or_after(wall_of(to)));
        let (start, stop) = (
            s.get::<u64>("start-time").expect("start"),
            s.get::<u64>("stop-time").expect("stop"),
        );
        assert!(
            start.abs_diff(first.presentation_ns()) < 1_000_000,
            "{name}: starts at {start}, keyframe {first:?}"
        );
        assert!(
            stop.abs_diff(last.presentation_ns()) < 1_000_000,
            "{name}: stops at {stop}, keyframe {last:?}"
        );
        assert_eq!(field_ms(&s, "start-date-time"), first.wall_ms, "{name}");
        assert_eq!(field_ms(&s, "stop-date-time"), last.wall_ms, "{name}");
        let frames = ffprobe_frame_pts_ns(&dir.path().join(name));
        let shown = |pts: u64| (pts as i64 - pts_offset) as u64;
        let (lo, hi) = (
            shown(*frames.iter().min().expect("frames")),
            shown(*frames.iter().max().expect("frames")),
        );
        assert!(
            lo.abs_diff(start) < 2_000_000,
            "{name}: first frame at {lo}, reported {start}"
        );
        assert!(
            (hi + 40_000_000).abs_diff(stop) < 2_000_000,
            "{name}: last frame at {hi}, reported stop {stop}"
        );
        assert_eq!(
            frames.len() as u64,
            (stop - start + 20_000_000) / 40_000_000,
            "{name}: frames missing"
        );
        ffmpeg_decode(&dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // The reference recording: whole segments 2 to 4 (12 s .. 30 s), its
    // playlist starting where it was asked to (14.2 s).
    let s = stopped(e);
    let pl = playlist(&dir.path().join("e"));
    let first_seq: u64 = pl.segments[0].uri[8..20].parse().expect("sequence");
    assert_eq!((first_seq, pl.segments.len()), (2, 3), "{pl:?}");
    let seg_start = index_records(&ring, 2)[0];
    let offset = pl.start.expect("EXT-X-START").time_offset as f64;
    let start = s.get::<u64>("start-time").expect("start");
    // Positions are presentation times: ring time plus the stream's delay.
    let delay = (keyframes[0].presentation_ns() - keyframes[0].ring_time_ns) as f64;
    let reported_offset = (start as f64 - delay - seg_start.ring_time_ns as f64) / 1e9;
    assert!(
        (offset - reported_offset).abs() < 0.05,
        "EXT-X-START {offset} s, reported {reported_offset} s"
    );
    assert!((offset - 2.2).abs() < 0.3, "EXT-X-START {offset} s");
    let end: f64 = pl.segments.iter().map(|s| f64::from(s.duration)).sum::<f64>() + seg_start.ring_time_ns as f64 / 1e9;
    let stop = (s.get::<u64>("stop-time").expect("stop") as f64 - delay) / 1e9;
    assert!(
        (stop - end).abs() < 0.05,
        "reference stops at {stop} s, its segments end at {end} s"
    );
    ffmpeg_decode(&dir.path().join("e").join("index.m3u8")).expect("reference plays");
}
