// SPDX-License-Identifier: MPL-2.0
//! Time-shift playback on the keyframe index, with real decoders: seeks
//! land where their flags say, every reader sees one timeline, and a live
//! start begins at the newest keyframe.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    PACKET, SECOND,
    media::pid,
    pipelines::{launch, on_each_buffer, record_file, wait_for_eos},
    processes::spawn_live_writer,
    rings::{IndexRecord, index_records, playlist, playlist_entries, ring_keyframes, segments},
    wait_until,
};
use gst::prelude::*;

/// 36 s of H.264 (1 s GOP) and AAC from ffmpeg's muxer, recorded into 6 s
/// segments, once per test binary.
fn ring_of_6s_segments() -> PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in.ts");
        let status = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=25:duration=36",
            ])
            .args(["-f", "lavfi", "-i", "sine=duration=36"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "25",
                "-c:a",
                "aac",
                "-f",
                "mpegts",
            ])
            .arg(&input)
            .status()
            .expect("run ffmpeg");
        assert!(status.success());
        record_file(
            &input,
            65536,
            &dir.path().join("ring"),
            &format!("segment-duration={} max-duration=0", 6 * SECOND),
        );
        dir
    });
    dir.path().join("ring")
}

/// Every keyframe of the ring, by its index files, in order.
fn keyframes(ring: &Path) -> Vec<IndexRecord> {
    ring_keyframes(ring).into_iter().map(|(_, k)| k).collect()
}

/// A paused decoding pipeline on `ring` whose appsink prerolls on the
/// first frame after each flushing seek.
struct Decoder {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
}

impl Decoder {
    fn new(ring: &Path) -> Decoder {
        let pipeline = launch(&format!(
            "streambuffersrc location={} start-position=oldest ! tsdemux ! h264parse ! avdec_h264 ! appsink name=out sync=false",
            ring.display()
        ));
        let sink = pipeline
            .by_name("out")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .expect("appsink");
        pipeline.set_state(gst::State::Paused).expect("pause");
        let (result, ..) = pipeline.state(gst::ClockTime::from_seconds(10));
        result.expect("prerolled");
        Decoder { pipeline, sink }
    }

    /// Seeks to `target` with `flags` and returns the first decoded frame:
    /// (presentation time, is a keyframe).
    fn first_frame_after_seek(&self, target: u64, flags: gst::SeekFlags) -> (u64, bool) {
        self.pipeline
            .seek_simple(gst::SeekFlags::FLUSH | flags, gst::ClockTime::from_nseconds(target))
            .expect("seek accepted");
        let (result, ..) = self.pipeline.state(gst::ClockTime::from_seconds(10));
        result.expect("prerolled after the seek");
        let sample = self
            .sink
            .try_pull_preroll(gst::ClockTime::from_seconds(10))
            .expect("preroll sample");
        let buffer = sample.buffer().expect("buffer");
        let pts = buffer.pts().expect("pts").nseconds();
        (pts, !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT))
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// One frame at 25 fps.
const FRAME: u64 = 40_000_000;

/// 30 targets inside segments: ACCURATE shows the target's frame first
/// (within one frame); KEY_UNIT shows the keyframe SNAP_BEFORE (default),
/// SNAP_AFTER or SNAP_NEAREST picks, as the index lists them.
#[test]
fn seeks_land_where_their_flags_say() {
    let ring = ring_of_6s_segments();
    let keys = keyframes(&ring);
    assert!(keys.len() >= 30, "{} keyframes", keys.len());
    let first = keys[0].presentation_ns();
    let last = keys[keys.len() - 1].presentation_ns();
    let decoder = Decoder::new(&ring);
    for i in 0..30u64 {
        // Spread over the ring, off the keyframe grid (7/13 s steps).
        let target = first + SECOND / 10 + i * (last - first - SECOND) / 30 + (i * 7 % 13) * SECOND / 13;
        let before = keys
            .iter()
            .rev()
            .find(|k| k.presentation_ns() <= target)
            .expect("before");
        let after = keys.iter().find(|k| k.presentation_ns() >= target).expect("after");
        let nearest = if target - before.presentation_ns() <= after.presentation_ns() - target {
            before
        } else {
            after
        };

        let (pts, _) = decoder.first_frame_after_seek(target, gst::SeekFlags::ACCURATE);
        assert!(
            pts >= target.saturating_sub(FRAME / 2) && pts < target + FRAME,
            "ACCURATE seek to {target}: first frame at {pts}"
        );
        for (flags, expected, what) in [
            (gst::SeekFlags::KEY_UNIT, before, "KEY_UNIT"),
            (
                gst::SeekFlags::KEY_UNIT | gst::SeekFlags::SNAP_BEFORE,
                before,
                "SNAP_BEFORE",
            ),
            (
                gst::SeekFlags::KEY_UNIT | gst::SeekFlags::SNAP_AFTER,
                after,
                "SNAP_AFTER",
            ),
            (
                gst::SeekFlags::KEY_UNIT | gst::SeekFlags::SNAP_NEAREST,
                nearest,
                "SNAP_NEAREST",
            ),
        ] {
            let (pts, key) = decoder.first_frame_after_seek(target, flags);
            let want = expected.presentation_ns();
            assert!(
                key && pts.abs_diff(want) < FRAME / 4,
                "{what} seek to {target}: first frame at {pts} (keyframe: {key}), the index says {want}"
            );
        }
    }
}

/// A seek at a rate trick play does not take (100x) is refused before
/// anything is flushed: the pipeline goes on where it was.
#[test]
fn an_unsupported_seek_is_refused_without_flushing() {
    let ring = ring_of_6s_segments();
    let decoder = Decoder::new(&ring);
    let (before, _) = decoder.first_frame_after_seek(10 * SECOND, gst::SeekFlags::ACCURATE);
    let refused = decoder.pipeline.seek(
        100.0,
        gst::SeekFlags::FLUSH,
        gst::SeekType::Set,
        gst::ClockTime::from_seconds(20),
        gst::SeekType::None,
        gst::ClockTime::NONE,
    );
    assert!(refused.is_err(), "rate 100 accepted");
    // No flush, so no new preroll, and the last frame is still the one the
    // first seek showed.
    assert!(
        decoder.sink.try_pull_preroll(gst::ClockTime::from_seconds(1)).is_none(),
        "the refused seek prerolled again"
    );
    let last = decoder
        .sink
        .property::<Option<gst::Sample>>("last-sample")
        .expect("last sample");
    let pts = last.buffer().and_then(|b| b.pts()).expect("pts").nseconds();
    assert_eq!(pts, before, "the refused seek flushed");
}

/// Buffers (ring-time stamp, first packets) a reader produced at segment
/// and keyframe starts.
type Stamps = std::sync::Arc<std::sync::Mutex<Vec<(u64, Vec<u8>)>>>;

fn stamping_reader(ring: &Path, props: &str) -> (gst::Pipeline, Stamps) {
    let pipeline = launch(&format!(
        "streambuffersrc name=src location={} {props} ! appsink name=out sync=false",
        ring.display()
    ));
    let stamps: Stamps = Default::default();
    let s = stamps.clone();
    on_each_buffer(&pipeline, "out", move |buffer, data| {
        if let Some(pts) = buffer.pts() {
            s.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((pts.nseconds(), data[..data.len().min(8 * PACKET)].to_vec()));
        }
    });
    (pipeline, stamps)
}

/// Two readers started 8 s apart on a live ring whose window slides: each
/// starts at its own oldest segment, and every segment both read carries
/// the same timestamp from both.
#[test]
fn readers_started_apart_share_one_timeline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let mut writer = spawn_live_writer(&ring, SECOND, 24, &format!("max-duration={}", 4 * SECOND));
    assert!(
        wait_until(Duration::from_secs(30), || playlist_entries(&ring) >= 3),
        "writer did not start"
    );
    let (a, stamps_a) = stamping_reader(&ring, "start-position=oldest");
    a.set_state(gst::State::Playing).expect("play a");
    std::thread::sleep(Duration::from_secs(8));
    let (b, stamps_b) = stamping_reader(&ring, "start-position=oldest");
    b.set_state(gst::State::Playing).expect("play b");
    std::thread::sleep(Duration::from_secs(8));
    let _ = a.set_state(gst::State::Null);
    let _ = b.set_state(gst::State::Null);
    let _ = writer.kill();
    let _ = writer.wait();
    let a = stamps_a.lock().expect("a").clone();
    let b = stamps_b.lock().expect("b").clone();
    assert!(a[0].0 < b[0].0, "b started later: {} / {}", a[0].0, b[0].0);
    let mut common = 0;
    for (pts_b, bytes_b) in &b[1..] {
        if let Some((pts_a, _)) = a.iter().find(|(_, bytes)| bytes == bytes_b) {
            assert_eq!(pts_a, pts_b, "the same bytes at two times");
            common += 1;
        }
    }
    assert!(common >= 4, "only {common} segments read by both");
}

/// A live start begins at the newest keyframe (here, at most a second
/// behind the live edge), not at the head of the segment being written
/// (up to `segment-duration`, 6 s, behind).
#[test]
fn a_live_start_begins_at_the_newest_keyframe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let mut writer = spawn_live_writer(&ring, 6 * SECOND, 30, "max-duration=0");
    // Past the middle of the second segment: its head is seconds behind.
    assert!(
        wait_until(Duration::from_secs(30), || playlist_entries(&ring) >= 1),
        "writer did not start"
    );
    std::thread::sleep(Duration::from_secs(4));
    let newest_before = keyframes_now(&ring).last().copied().expect("keyframes");
    let (reader, stamps) = stamping_reader(&ring, "start-position=live");
    reader.set_state(gst::State::Playing).expect("play");
    assert!(
        wait_until(Duration::from_secs(10), || !stamps.lock().expect("stamps").is_empty()),
        "no buffer"
    );
    let newest_after = keyframes_now(&ring).last().copied().expect("keyframes");
    let stats = reader.by_name("src").expect("src").property::<gst::Structure>("stats");
    let _ = reader.set_state(gst::State::Null);
    let lag = stats.get::<i64>("lag").expect("lag");
    assert!(
        (0..3_000_000_000).contains(&lag),
        "lag behind the live edge {lag}: {stats:?}"
    );
    assert_eq!(stats.get::<i64>("current-segment").expect("current"), 1, "{stats:?}");
    let _ = writer.kill();
    let _ = writer.wait();
    let first = stamps.lock().expect("stamps")[0].0;
    let open_segment_start = index_records(&ring, 1)[0].ring_time_ns;
    // The newest keyframe whose bytes are on disk: the one indexed last,
    // or the one before while the sink still holds its bytes (it writes
    // what it buffers every 200 ms of media).
    assert!(
        first + 1_100_000_000 >= newest_before.ring_time_ns && first <= newest_after.ring_time_ns,
        "started at {first}, newest keyframe {} .. {}",
        newest_before.ring_time_ns,
        newest_after.ring_time_ns
    );
    assert!(
        first >= open_segment_start + 2 * SECOND,
        "started at {first}, its segment at {open_segment_start}"
    );
}

/// Keyframes of every segment file there is now (the one being written
/// included, as far as its index goes).
fn keyframes_now(ring: &Path) -> Vec<IndexRecord> {
    keyframes(ring)
}

/// The date-time of a position and the position of a date-time, through
/// the action signals of a started source.
fn position_of(src: &gst::Element, ms: i64) -> i64 {
    let date = gst::glib::DateTime::from_unix_utc(ms.div_euclid(1000))
        .and_then(|d| d.add(gst::glib::TimeSpan::from_milliseconds(ms.rem_euclid(1000))))
        .expect("date");
    src.emit_by_name::<i64>("date-time-to-position", &[&date])
}

fn date_of(src: &gst::Element, position: i64) -> Option<i64> {
    let date = src.emit_by_name::<Option<gst::glib::DateTime>>("position-to-date-time", &[&position])?;
    Some(date.to_unix() * 1000 + i64::from(date.microsecond() / 1000))
}

/// `date-time-to-position` and `position-to-date-time` round-trip, agree
/// with the playlist's EXT-X-PROGRAM-DATE-TIME at every segment start (the
/// content received then is presented after its keyframe's delay), and
/// answer -1 / NULL outside the window.
#[test]
fn wall_clock_addressing_round_trips_and_agrees_with_the_playlist() {
    let ring = ring_of_6s_segments();
    let pipeline = launch(&format!(
        "streambuffersrc name=src location={} start-position=oldest ! fakesink",
        ring.display()
    ));
    pipeline.set_state(gst::State::Paused).expect("pause");
    let _ = pipeline.state(gst::ClockTime::from_seconds(10));
    let src = pipeline.by_name("src").expect("src");
    let pl = playlist(&ring);
    let first_pdt = pl.segments[0].program_date_time.expect("PDT").timestamp_millis();
    let mut pdt = first_pdt;
    for (i, s) in pl.segments.iter().enumerate() {
        let records = index_records(&ring, i as u64);
        let start = records[0];
        assert_eq!(
            start.wall_ms, pdt,
            "segment {i}: index and playlist disagree on its date-time"
        );
        let delay = records[1].presentation_ns() - records[1].ring_time_ns;
        let position = position_of(&src, pdt + 1);
        let expected = (start.ring_time_ns + delay + 1_000_000) as i64;
        assert!(
            position.abs_diff(expected) <= 1_000_000,
            "segment {i}: {position} for {expected}"
        );
        pdt += (f64::from(s.duration) * 1000.0).round() as i64;
    }
    let keys = keyframes(&ring);
    for k in keys.iter().step_by(5) {
        for extra in [0, 123_000_000] {
            let position = (k.presentation_ns() + extra) as i64;
            let date = date_of(&src, position).expect("a date inside the window");
            assert_eq!(date, k.wall_ms + extra as i64 / 1_000_000, "date of {position}");
            let back = position_of(&src, date);
            assert!(back.abs_diff(position) <= 1_000_000, "{position} -> {date} -> {back}");
        }
    }
    assert_eq!(position_of(&src, first_pdt - 60_000), -1, "before the window");
    assert_eq!(position_of(&src, pdt + 60_000), -1, "after the window");
    assert_eq!(date_of(&src, -5), None);
    let _ = pipeline.set_state(gst::State::Null);
}

/// On a live ring, the live edge (the end of the SEEKING range) has the
/// wall clock's date-time, within a second.
#[test]
fn the_live_edge_is_now() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let mut writer = spawn_live_writer(&ring, 2 * SECOND, 20, "max-duration=0");
    assert!(
        wait_until(Duration::from_secs(30), || playlist_entries(&ring) >= 2),
        "writer did not start"
    );
    let pipeline = launch(&format!(
        "streambuffersrc name=src location={} start-position=live ! fakesink",
        ring.display()
    ));
    pipeline.set_state(gst::State::Paused).expect("pause");
    let _ = pipeline.state(gst::ClockTime::from_seconds(10));
    let src = pipeline.by_name("src").expect("src");
    let mut seeking = gst::query::Seeking::new(gst::Format::Time);
    assert!(src.query(&mut seeking), "SEEKING answered");
    let (_, _, edge) = seeking.result();
    let edge = match edge {
        gst::GenericFormattedValue::Time(Some(t)) => t.nseconds(),
        other => panic!("live edge {other:?}"),
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let date = date_of(&src, edge as i64).expect("date of the live edge");
    let _ = pipeline.set_state(gst::State::Null);
    let _ = writer.kill();
    let _ = writer.wait();
    assert!(
        (now_ms - date).abs() <= 1000,
        "live edge received at {date}, now {now_ms}"
    );
}

/// A finished ring (ENDLIST) has no live edge: with the default
/// `start-position=live` it plays from its first keyframe to the end.
#[test]
fn a_finished_ring_plays_from_its_start_by_default() {
    let ring = ring_of_6s_segments();
    let (pipeline, stamps) = stamping_reader(&ring, "");
    pipeline.set_state(gst::State::Playing).expect("play");
    wait_for_eos(&pipeline, Duration::from_secs(30)).expect("EOS");
    // The source's counters at the end: every byte and segment.
    let src = pipeline.by_name("src").expect("src");
    let stats = src.property::<gst::Structure>("stats");
    let _ = pipeline.set_state(gst::State::Null);
    let stamps = stamps.lock().expect("stamps");
    assert_eq!(stamps[0].0, keyframes(&ring)[0].ring_time_ns, "started elsewhere");
    assert_eq!(stamps.len(), segments(&ring).len(), "every segment played");
    let on_disk: u64 = segments(&ring)
        .iter()
        .map(|p| std::fs::metadata(p).expect("size").len())
        .sum();
    // Between the first segment's tables and its first keyframe lies only
    // the stuffing that aligns the segment (null packets): read as it is.
    let records = index_records(&ring, 0);
    let (tables, keyframe) = (records[0].size as usize, records[1].offset as usize);
    let first = std::fs::read(&segments(&ring)[0]).expect("first segment");
    assert!(
        first[tables..keyframe].chunks(PACKET).all(|p| pid(p) == 0x1FFF),
        "only stuffing before the first keyframe"
    );
    assert_eq!(stats.get::<u64>("bytes-out").expect("bytes-out"), on_disk, "{stats:?}");
    assert_eq!(
        stats.get::<u64>("segments-read").expect("segments-read"),
        segments(&ring).len() as u64
    );
    assert!(stats.get::<u64>("buffers-out").expect("buffers-out") >= stamps.len() as u64);
    assert_eq!(stats.get::<u64>("time-holes").expect("holes"), 0);
    // Nothing is being read any more: no segment, no position, no lag.
    assert_eq!(stats.get::<i64>("current-segment").expect("current"), -1, "{stats:?}");
    assert_eq!(stats.get::<i64>("lag").expect("lag"), -1, "{stats:?}");
}
