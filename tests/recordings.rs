//! Recordings cut out of the ring: content files and reference directories.
// Real kernel behaviour (tmpfs, FIFOs, signals, gst-launch-1.0 children):
// these tests run on Unix.
#![cfg(unix)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::*;
use gst::prelude::*;

/// Packet index at which the stream's PCR passes `seconds` after its first PCR.
fn packet_at(data: &[u8], seconds: u64) -> usize {
    let first = data.chunks(PACKET).find_map(pcr_of).expect("a PCR");
    data.chunks(PACKET)
        .position(|p| pcr_of(p).is_some_and(|v| v - first >= seconds * 27_000_000))
        .expect("stream long enough")
}

/// A sink fed through appsrc, so the test decides when each part arrives.
struct Feeder {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    sink: gst::Element,
    pushed: u64,
}

impl Feeder {
    fn new(ring: &std::path::Path, props: &str) -> Feeder {
        let (pipeline, src) = appsrc_sink(ring, props);
        let sink = pipeline.by_name("sink").expect("sink");
        pipeline.set_state(gst::State::Playing).expect("play");
        Feeder {
            pipeline,
            src,
            sink,
            pushed: 0,
        }
    }

    /// Pushes `data` and waits until the sink has processed all of it.
    fn feed(&mut self, data: &[u8]) {
        for c in data.chunks(65536) {
            self.src.push_buffer(gst::Buffer::from_slice(c.to_vec())).expect("push");
        }
        self.pushed += data.len() as u64;
        let sink = self.sink.clone();
        let pushed = self.pushed;
        assert!(
            wait_until(Duration::from_secs(60), || sink
                .property::<gst::Structure>("stats")
                .get::<u64>("bytes-in")
                .is_ok_and(|b| b == pushed)),
            "sink did not process the data"
        );
    }

    fn start(&self, location: &std::path::Path, kind: &str, offset_s: i64) -> u32 {
        let kind_value = recording_kind(kind);
        self.sink.emit_by_name::<u32>(
            "start-recording",
            &[
                &location.display().to_string(),
                &kind_value,
                &(offset_s * 1_000_000_000),
            ],
        )
    }

    fn stop(&self, id: u32, offset_s: i64) -> bool {
        self.sink
            .emit_by_name::<bool>("stop-recording", &[&id, &(offset_s * 1_000_000_000)])
    }

    fn finish(self) {
        self.src.end_of_stream().expect("eos");
        wait_for_eos(&self.pipeline, Duration::from_secs(60)).expect("EOS");
        self.pipeline.set_state(gst::State::Null).expect("stop");
    }
}

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
    ring: std::path::PathBuf,
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
    Fed10s {
        data,
        dir,
        ring,
        f,
        cut,
    }
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

/// `start-recording-at` and `stop-recording-at` take date-times on the
/// recorder's wall clock (the one in the keyframe index): started at the
/// date of 7.5 s and stopped at the date of 10.5 s, a content recording
/// holds 7 s .. 11 s. A start or stop in the future is refused (0 /
/// FALSE, with a WARNING), never taken as "now".
#[test]
fn recordings_by_date_time_and_future_refusals() {
    let mut fed = fed_10_5_seconds();
    let at = |seconds: f64| offset_at(&fed.data, seconds);
    // The wall clock of the keyframe at 10 s, from the open segment's index.
    let k10 = *index_records(&fed.ring, 1).last().expect("keyframe");
    let wall_of = |seconds: f64| k10.wall_ms + ((seconds - 10.0) * 1000.0) as i64;
    let date = |ms: i64| {
        gst::glib::DateTime::from_unix_utc(ms.div_euclid(1000))
            .and_then(|d| d.add(gst::glib::TimeSpan::from_milliseconds(ms.rem_euclid(1000))))
            .expect("date")
    };
    let path = fed.dir.path().join("by-date.ts");
    let kind = recording_kind("content");
    let id = fed.f.sink.emit_by_name::<u32>(
        "start-recording-at",
        &[&path.display().to_string(), &kind, &date(wall_of(7.5))],
    );
    assert_ne!(id, 0, "refused");
    let bus = fed.f.pipeline.bus().expect("bus");
    let future = fed.f.sink.emit_by_name::<u32>(
        "start-recording-at",
        &[
            &fed.dir.path().join("future.ts").display().to_string(),
            &kind,
            &date(wall_of(70.0)),
        ],
    );
    assert_eq!(future, 0, "a start in the future was taken");
    assert_eq!(
        fed.f.start(&fed.dir.path().join("plus.ts"), "content", 5),
        0,
        "a positive offset was taken"
    );
    assert!(!fed.dir.path().join("future.ts").exists() && !fed.dir.path().join("plus.ts").exists());
    fed.f.feed(&fed.data[fed.cut..at(11.9)]);
    assert!(
        !fed.f
            .sink
            .emit_by_name::<bool>("stop-recording-at", &[&id, &date(wall_of(70.0))]),
        "a stop in the future"
    );
    assert!(
        fed.f
            .sink
            .emit_by_name::<bool>("stop-recording-at", &[&id, &date(wall_of(10.5))])
    );
    let warnings: Vec<String> = std::iter::from_fn(|| bus.pop())
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            _ => None,
        })
        .collect();
    assert!(
        warnings.iter().filter(|w| w.contains("future")).count() >= 3,
        "{warnings:?}"
    );
    fed.f.feed(&fed.data[at(11.9)..]);
    fed.f.finish();
    ffmpeg_decode(&path).expect("decodes");
    let duration = ffprobe_duration(&path);
    assert!((duration - 4.0).abs() <= 0.6, "{duration} s recorded, 4 s expected");
}
