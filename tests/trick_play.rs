// SPDX-License-Identifier: MPL-2.0
//! Trick play on `streambuffersrc`: slow motion, fast-forward and rewind,
//! measured on `streambuffersrc ! tsdemux ! h264parse ! avdec_h264 !
//! fakesink sync=true` (and `decodebin`), on a 60 s window of 1 s GOPs
//! (ffmpeg's H.264 and AAC), finished and live. Wall times are compared
//! with what the rate says (within 20 %, plus a little start-up): the
//! rate is what is being tested, in real time.
// Real pipelines in real time, a writer in another process.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::inputs::Input;
use common::{
    media::{ffmpeg_decode, ffprobe_frame_count, ffprobe_key_frames},
    pipelines::{launch, run_to_eos, stat_u64},
    plugin_dir,
    rings::{
        IndexRecord, finished_minutes_ring, index_records, playlist_entries, ring_keyframes, ring_recorded_once,
        segments,
    },
    wait_until,
};
use gst::prelude::*;

const SECOND: u64 = 1_000_000_000;

/// These tests play in real time and measure it: one at a time, so that
/// two do not share the machine's two cores.
static REAL_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    REAL_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
const FRAME: u64 = 40_000_000;
const H264: &str = "tsdemux ! h264parse ! avdec_h264";
/// Audio and video, as every channel has: the audio branch decodes into
/// a synchronised sink of its own (`aout`), video goes on to `out`.
const AV_H264: &str = "tsdemux name=d d. ! queue ! aacparse ! avdec_aac ! fakesink name=aout sync=true \
    d. ! queue ! h264parse ! avdec_h264";
const AV_DECODEBIN: &str = "tsdemux name=d d. ! queue ! aacparse ! decodebin ! fakesink name=aout sync=true \
    d. ! queue ! h264parse ! decodebin";

/// The video-only chain of a test, or its audio+video twin.
fn chain(video_only: &'static str, audio: bool) -> &'static str {
    match (video_only, audio) {
        (_, false) => video_only,
        ("decodebin", true) => AV_DECODEBIN,
        (_, true) => AV_H264,
    }
}

/// Every keyframe of the ring's window, from its index files.
fn keyframes(ring: &Path) -> Vec<IndexRecord> {
    ring_keyframes(ring).into_iter().map(|(_, k)| k).collect()
}

/// What a played range showed.
#[derive(Debug, Default)]
struct Played {
    /// From PLAYING to EOS (or to the end of the watch).
    wall: Duration,
    /// Timestamps of the decoded frames, in the order shown.
    frames: Vec<u64>,
    /// Answers to position queries, every 100 ms.
    positions: Vec<u64>,
    /// `streambuffer-rate-changed`: (old, new, reason).
    rate_changes: Vec<(f64, f64, String)>,
    /// What `streambuffersrc` read since the seek (its `bytes-out`).
    bytes_out: u64,
    /// Flush events that reached the sink after the seek.
    flushes: usize,
    eos: bool,
}

/// A player: `streambuffersrc` on `ring` from its oldest content through
/// `chain` into a synchronised fakesink, paused.
struct Player {
    pipeline: gst::Pipeline,
    /// `bytes-out` when the last seek was made.
    bytes_at_seek: std::cell::Cell<u64>,
    frames: Arc<Mutex<Vec<u64>>>,
    flushes: Arc<Mutex<usize>>,
    /// SEGMENT events that reached the video sink: (rate, start).
    segments: Arc<Mutex<Vec<(f64, u64)>>>,
    messages: Arc<Mutex<Vec<gst::Structure>>>,
}

impl Player {
    fn new(ring: &Path, chain: &str) -> Player {
        let pipeline = launch(&format!(
            "streambuffersrc name=src location={} start-position=oldest ! {chain} ! fakesink name=out sync=true",
            ring.display()
        ));
        let frames: Arc<Mutex<Vec<u64>>> = Arc::default();
        let flushes: Arc<Mutex<usize>> = Arc::default();
        let segments: Arc<Mutex<Vec<(f64, u64)>>> = Arc::default();
        let pad = pipeline
            .by_name("out")
            .and_then(|s| s.static_pad("sink"))
            .expect("sink pad");
        let (f, n, g) = (frames.clone(), flushes.clone(), segments.clone());
        pad.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_FLUSH | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| {
                if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                    f.lock().expect("lock").push(pts.nseconds());
                } else if let Some(e) = info.event() {
                    match e.view() {
                        gst::EventView::FlushStart(_) => *n.lock().expect("lock") += 1,
                        gst::EventView::Segment(segment) => {
                            if let Some(t) = segment.segment().downcast_ref::<gst::ClockTime>() {
                                let start = t.start().map_or(0, gst::ClockTime::nseconds);
                                g.lock().expect("lock").push((t.rate(), start));
                            }
                        }
                        _ => {}
                    }
                }
                gst::PadProbeReturn::Ok
            },
        );
        let messages: Arc<Mutex<Vec<gst::Structure>>> = Arc::default();
        let m = messages.clone();
        pipeline.bus().expect("bus").set_sync_handler(move |_, msg| {
            if let gst::MessageView::Element(e) = msg.view()
                && let Some(s) = e.structure()
            {
                m.lock().expect("lock").push(s.to_owned());
            }
            gst::BusSyncReply::Pass
        });
        pipeline.set_state(gst::State::Paused).expect("pause");
        let (result, ..) = pipeline.state(gst::ClockTime::from_seconds(20));
        result.expect("prerolled");
        Player {
            pipeline,
            bytes_at_seek: std::cell::Cell::new(0),
            frames,
            flushes,
            segments,
            messages,
        }
    }

    /// The seekable window (presentation times).
    fn window(&self) -> (u64, u64) {
        let mut q = gst::query::Seeking::new(gst::Format::Time);
        assert!(self.pipeline.query(&mut q), "seeking query");
        match q.result() {
            (true, gst::GenericFormattedValue::Time(Some(s)), gst::GenericFormattedValue::Time(Some(e))) => {
                (s.nseconds(), e.nseconds())
            }
            other => panic!("not seekable: {other:?}"),
        }
    }

    fn seek(&self, rate: f64, flags: gst::SeekFlags, start: Option<u64>, stop: Option<u64>) -> bool {
        let at = |t: Option<u64>| match t {
            Some(t) => (gst::SeekType::Set, gst::ClockTime::from_nseconds(t)),
            None => (gst::SeekType::None, gst::ClockTime::ZERO),
        };
        let ((start_type, start), (stop_type, stop)) = (at(start), at(stop));
        self.bytes_at_seek.set(self.bytes_out());
        self.pipeline
            .seek(rate, gst::SeekFlags::FLUSH | flags, start_type, start, stop_type, stop)
            .is_ok()
    }

    /// Plays until EOS or `until` says so (checked every 100 ms, given the
    /// time since PLAYING and what was shown), at most `limit`.
    fn play(&self, limit: Duration, until: impl Fn(Duration, &[u64], &[gst::Structure]) -> bool) -> Played {
        self.frames.lock().expect("lock").clear();
        *self.flushes.lock().expect("lock") = 0;
        let start = Instant::now();
        self.pipeline.set_state(gst::State::Playing).expect("play");
        let bus = self.pipeline.bus().expect("bus");
        let mut played = Played::default();
        while start.elapsed() < limit {
            if let Some(msg) = bus.timed_pop_filtered(
                gst::ClockTime::from_mseconds(100),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            ) {
                if let gst::MessageView::Error(e) = msg.view() {
                    panic!("error: {} ({:?})", e.error(), e.debug());
                }
                played.eos = true;
                break;
            }
            if let Some(p) = self.pipeline.query_position::<gst::ClockTime>() {
                played.positions.push(p.nseconds());
            }
            // Copies: `until` may seek, which posts messages.
            let frames = self.frames.lock().expect("lock").clone();
            let messages = self.messages.lock().expect("lock").clone();
            if until(start.elapsed(), &frames, &messages) {
                break;
            }
        }
        played.wall = start.elapsed();
        played.frames = self.frames.lock().expect("lock").clone();
        played.flushes = *self.flushes.lock().expect("lock");
        played.rate_changes = self.rate_changes();
        played.bytes_out = self.bytes_out() - self.bytes_at_seek.get();
        played
    }

    fn bytes_out(&self) -> u64 {
        let src = self.pipeline.by_name("src").expect("src");
        stat_u64(&src.property::<gst::Structure>("stats"), "bytes-out")
    }

    fn rate_changes(&self) -> Vec<(f64, f64, String)> {
        self.messages
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s.name() == "streambuffer-rate-changed")
            .map(|s| {
                (
                    s.get::<f64>("old-rate").expect("old-rate"),
                    s.get::<f64>("new-rate").expect("new-rate"),
                    s.get::<String>("reason").expect("reason"),
                )
            })
            .collect()
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// `wall` is what crossing `content` at `rate` takes, within 20 % (and
/// half a second of start-up).
fn assert_paced(what: &str, wall: Duration, content_ns: u64, rate: f64) {
    let expected = content_ns as f64 / 1e9 / rate.abs();
    let wall = wall.as_secs_f64();
    assert!(
        wall >= expected * 0.8 && wall <= expected * 1.2 + 0.5,
        "{what}: {wall:.2} s of wall time for {:.1} s of content at {rate}x ({expected:.2} s expected)",
        content_ns as f64 / 1e9
    );
}

/// Every frame from `from` to `to`, in order, none missing.
fn assert_every_frame(what: &str, frames: &[u64], from: u64, to: u64) {
    assert!(
        frames.is_sorted() && frames.windows(2).all(|w| w[0] < w[1]),
        "{what}: frames out of order"
    );
    let first = *frames.first().expect("frames");
    let last = *frames.last().expect("frames");
    assert!(
        first.abs_diff(from) <= FRAME,
        "{what}: first frame at {first}, expected {from}"
    );
    assert!(
        last + FRAME >= to.saturating_sub(FRAME),
        "{what}: last frame at {last}, expected about {to}"
    );
    let gaps = frames.windows(2).filter(|w| w[1] - w[0] > FRAME + FRAME / 2).count();
    assert_eq!(gaps, 0, "{what}: frames missing");
}

/// Only keyframes, in the direction of `rate`, each one of the index's;
/// with `every`, all the index has in between.
fn assert_keyframes_only(what: &str, frames: &[u64], index: &[IndexRecord], rate: f64, every: bool) {
    assert!(frames.len() >= 2, "{what}: {} frames", frames.len());
    let presented: Vec<u64> = index.iter().map(IndexRecord::presentation_ns).collect();
    for &f in frames {
        assert!(
            presented.iter().any(|&k| k.abs_diff(f) <= 2_000_000),
            "{what}: frame at {f} is not a keyframe"
        );
    }
    let ordered = if rate > 0.0 {
        frames.windows(2).all(|w| w[0] < w[1])
    } else {
        frames.windows(2).all(|w| w[0] > w[1])
    };
    assert!(ordered, "{what}: keyframes out of order: {frames:?}");
    if every {
        let (lo, hi) = (
            *frames.iter().min().expect("frames"),
            *frames.iter().max().expect("frames"),
        );
        let expected = presented
            .iter()
            .filter(|&&k| k + 2_000_000 >= lo && k <= hi + 2_000_000)
            .count();
        assert_eq!(
            frames.len(),
            expected,
            "{what}: keyframes missing between {lo} and {hi}"
        );
    }
}

/// Positions move the way the rate says and end near the last frame.
fn assert_positions(what: &str, played: &Played, rate: f64) {
    let p = &played.positions;
    assert!(p.len() >= 3, "{what}: {} position answers", p.len());
    let (first, last) = (p[0], p[p.len() - 1]);
    if rate > 0.0 {
        assert!(last > first, "{what}: position went from {first} to {last}");
    } else {
        assert!(
            last < first,
            "{what}: position went from {first} to {last} going backward"
        );
    }
    let moved = first.abs_diff(last) as f64 / 1e9;
    let expected = (played.wall.as_secs_f64() - 0.3).max(0.0) * rate.abs();
    assert!(
        moved >= expected * 0.6,
        "{what}: position moved {moved:.1} s in {:.1} s at {rate}x",
        played.wall.as_secs_f64()
    );
}

/// Slow motion and fast-forward with every frame: 0.25x, 0.5x, 2x, 4x over
/// part of the window (the slow ones a short part: they take longer than
/// it lasts), every frame decoded in order, at the rate; the rate-changed
/// message for each.
#[test]
fn every_frame_at_slow_and_fast_rates() {
    every_frame_at_slow_and_fast_rates_in(false);
}

/// The same with an audio branch beside the video: every channel has audio.
#[test]
fn every_frame_at_slow_and_fast_rates_with_audio() {
    every_frame_at_slow_and_fast_rates_in(true);
}

fn every_frame_at_slow_and_fast_rates_in(audio: bool) {
    let _serial = one_at_a_time();
    let ring = finished_minutes_ring();
    for (rate, seconds) in [(0.25, 2), (0.5, 3), (2.0, 16), (4.0, 24)] {
        let player = Player::new(ring, chain(H264, audio));
        let (start, _) = player.window();
        let (from, to) = (start + 10 * SECOND, start + (10 + seconds) * SECOND);
        assert!(
            player.seek(rate, gst::SeekFlags::ACCURATE, Some(from), Some(to)),
            "seek at {rate}"
        );
        let played = player.play(Duration::from_secs(40), |_, _, _| false);
        let what = format!("{rate}x");
        assert!(played.eos, "{what}: no EOS at the segment's stop");
        assert_paced(&what, played.wall, to - from, rate);
        assert_every_frame(&what, &played.frames, from, to);
        assert_positions(&what, &played, rate);
        assert_eq!(played.rate_changes, vec![(1.0, rate, "seek".into())], "{what}");
    }
}

/// Keyframes only, forward: with TRICKMODE_KEY_UNITS at 2x, and at 8x,
/// 16x, 32x, 64x without it: only keyframes are decoded, in order, every
/// one up to 6x and a set number a second above (8 by default); the
/// window is crossed in window / rate; the source read only the
/// keyframes' bytes (and the tables before each), a small share of the
/// window's. decodebin plays 16x too.
#[test]
fn keyframes_only_forward() {
    keyframes_only_forward_in(false);
}

/// The same with an audio branch beside the video: every channel has audio.
#[test]
fn keyframes_only_forward_with_audio() {
    keyframes_only_forward_in(true);
}

fn keyframes_only_forward_in(audio: bool) {
    let _serial = one_at_a_time();
    let ring = finished_minutes_ring();
    let index = keyframes(ring);
    let window_bytes: u64 = segments(ring)
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    let cases = [
        (2.0, gst::SeekFlags::TRICKMODE_KEY_UNITS, H264, 20),
        (8.0, gst::SeekFlags::empty(), H264, 60),
        (16.0, gst::SeekFlags::empty(), "decodebin", 60),
        (32.0, gst::SeekFlags::empty(), H264, 60),
        (64.0, gst::SeekFlags::empty(), H264, 60),
    ];
    for (rate, flags, chain_of, seconds) in cases {
        let player = Player::new(ring, chain(chain_of, audio));
        let (start, end) = player.window();
        let to = (start + seconds * SECOND).min(end);
        assert!(player.seek(rate, flags, Some(start), Some(to)), "seek at {rate}");
        let played = player.play(Duration::from_secs(40), |_, _, _| false);
        let what = format!("{rate}x keyframes ({})", chain(chain_of, audio));
        assert!(played.eos, "{what}: no EOS");
        assert_paced(&what, played.wall, to - start, rate);
        assert_keyframes_only(&what, &played.frames, &index, rate, rate <= 6.0);
        if rate > 6.0 {
            // trick-frame-rate 8: about 8 keyframes a second of wall time.
            let per_second = played.frames.len() as f64 / played.wall.as_secs_f64();
            assert!(
                (4.0..=12.0).contains(&per_second),
                "{what}: {per_second:.1} keyframes a second"
            );
        }
        // Only keyframes were read: their bytes and a head each.
        let shown: u64 = index
            .iter()
            .filter(|k| {
                played
                    .frames
                    .iter()
                    .any(|&f| f.abs_diff(k.presentation_ns()) <= 2_000_000)
            })
            .map(|k| u64::from(k.size) + 2 * 188 * 2)
            .sum();
        // (Up to two more may be read than shown: one prerolled before
        // the play, one past the stop.)
        let largest = index.iter().map(|k| u64::from(k.size) + 2 * 188 * 2).max().unwrap_or(0);
        assert!(
            played.bytes_out <= shown + 2 * largest && played.bytes_out * 5 < window_bytes,
            "{what}: read {} bytes; the keyframes shown hold {shown}, the window {window_bytes}",
            played.bytes_out
        );
        assert_positions(&what, &played, rate);
        assert_eq!(played.rate_changes, vec![(1.0, rate, "seek".into())], "{what}");
    }
}

/// Rewind: -1x to -64x, keyframes only, from the end of the window (or a
/// seek's stop) back to the oldest content, EOS there; positions fall;
/// decodebin rewinds too.
#[test]
fn rewind_to_the_oldest_content() {
    rewind_to_the_oldest_content_in(false);
}

/// The same with an audio branch beside the video: every channel has audio.
#[test]
fn rewind_to_the_oldest_content_with_audio() {
    rewind_to_the_oldest_content_in(true);
}

fn rewind_to_the_oldest_content_in(audio: bool) {
    let _serial = one_at_a_time();
    let ring = finished_minutes_ring();
    let index = keyframes(ring);
    let oldest = index.first().expect("keyframes").presentation_ns();
    for (rate, chain_of, seconds) in [
        (-1.0, H264, 6),
        (-2.0, H264, 16),
        (-4.0, H264, 30),
        (-8.0, "decodebin", 60),
        (-16.0, H264, 60),
        (-32.0, H264, 60),
        (-64.0, H264, 60),
    ] {
        let player = Player::new(ring, chain(chain_of, audio));
        let (start, end) = player.window();
        let from = (start + seconds * SECOND).min(end);
        assert!(
            player.seek(rate, gst::SeekFlags::empty(), Some(start), Some(from)),
            "seek at {rate}"
        );
        let played = player.play(Duration::from_secs(40), |_, _, _| false);
        let what = format!("{rate}x ({})", chain(chain_of, audio));
        assert!(played.eos, "{what}: no EOS at the oldest content");
        assert_paced(&what, played.wall, from - start, rate);
        assert_keyframes_only(&what, &played.frames, &index, rate, rate.abs() <= 6.0);
        let last = *played.frames.last().expect("frames");
        assert!(
            last.abs_diff(oldest) <= 2_000_000,
            "{what}: ended at {last}, the oldest keyframe is at {oldest}"
        );
        assert_positions(&what, &played, rate);
        assert_eq!(played.rate_changes, vec![(1.0, rate, "seek".into())], "{what}");
    }
}

/// A rate trick play does not take (1000, -1000, 0.05, -0.05), sent to the
/// pipeline or to the source itself, is refused before anything is
/// flushed, and playback goes on as it was; an instant rate
/// change between rates that play every frame is taken without a flush
/// (and its message posted), one into keyframes-only is refused.
#[test]
fn refusals_and_instant_rate_changes_flush_nothing() {
    refusals_and_instant_rate_changes_flush_nothing_in(false);
}

/// The same with an audio branch beside the video: every channel has audio.
#[test]
fn refusals_and_instant_rate_changes_flush_nothing_with_audio() {
    refusals_and_instant_rate_changes_flush_nothing_in(true);
}

fn refusals_and_instant_rate_changes_flush_nothing_in(audio: bool) {
    let _serial = one_at_a_time();
    let ring = finished_minutes_ring();
    let player = Player::new(ring, chain(H264, audio));
    let (start, _) = player.window();
    assert!(player.seek(1.0, gst::SeekFlags::ACCURATE, Some(start + 5 * SECOND), None));
    let frames = player.frames.clone();
    let pipeline = player.pipeline.clone();
    let flushes_before = Arc::new(Mutex::new(None::<usize>));
    let fb = flushes_before.clone();
    let flush_count = player.flushes.clone();
    let refused = Arc::new(Mutex::new(Vec::new()));
    let r = refused.clone();
    let played = player.play(Duration::from_secs(20), move |t, shown, _| {
        if t > Duration::from_secs(1) && fb.lock().expect("lock").is_none() {
            *fb.lock().expect("lock") = Some(*flush_count.lock().expect("lock"));
            // Sent to the pipeline (through the sinks, upstream) and to
            // the source element itself.
            let src = pipeline.by_name("src").expect("src");
            let targets = [pipeline.clone().upcast::<gst::Element>(), src];
            for (target, rate) in targets
                .iter()
                .flat_map(|t| [1000.0, -1000.0, 0.05, -0.05].map(|r| (t, r)))
            {
                let ok = target
                    .seek(
                        rate,
                        gst::SeekFlags::FLUSH,
                        gst::SeekType::Set,
                        gst::ClockTime::from_seconds(1),
                        gst::SeekType::None,
                        gst::ClockTime::NONE,
                    )
                    .is_ok();
                r.lock().expect("lock").push((rate, ok, shown.len()));
            }
            let instant = |rate: f64| {
                pipeline
                    .seek(
                        rate,
                        gst::SeekFlags::INSTANT_RATE_CHANGE,
                        gst::SeekType::None,
                        gst::ClockTime::ZERO,
                        gst::SeekType::None,
                        gst::ClockTime::NONE,
                    )
                    .is_ok()
            };
            r.lock().expect("lock").push((2.0, instant(2.0), shown.len()));
            r.lock().expect("lock").push((8.0, instant(8.0), shown.len()));
        }
        t > Duration::from_secs(4)
    });
    let refused = refused.lock().expect("lock").clone();
    let taken: Vec<(f64, bool)> = refused.iter().map(|&(r, ok, _)| (r, ok)).collect();
    let mut expected: Vec<(f64, bool)> = [1000.0, -1000.0, 0.05, -0.05]
        .repeat(2)
        .into_iter()
        .map(|r| (r, false))
        .collect();
    expected.extend([(2.0, true), (8.0, false)]);
    assert_eq!(taken, expected);
    assert_eq!(
        played.flushes,
        flushes_before.lock().expect("lock").unwrap_or(usize::MAX),
        "a refused seek or an instant rate change flushed"
    );
    // Playback went on, and at 2x after the change: about 1 s at 1x then
    // 3 s at 2x, 7 s of content in 4 s.
    let shown = frames.lock().expect("lock").clone();
    assert_every_frame("through the refusals", &shown, shown[0], *shown.last().expect("frames"));
    let content = (shown.last().expect("frames") - shown[0]) as f64 / 1e9;
    assert!((5.0..=8.5).contains(&content), "{content:.1} s of content shown in 4 s");
    assert_eq!(
        played.rate_changes,
        vec![(1.0, 2.0, "seek".into())],
        "only the instant rate change changed the rate"
    );
    // The flush count above means something: a seek that is taken flushes.
    let counted = *player.flushes.lock().expect("lock");
    assert!(player.seek(1.0, gst::SeekFlags::ACCURATE, Some(start + 5 * SECOND), None));
    assert!(
        wait_until(Duration::from_secs(5), || *player.flushes.lock().expect("lock")
            > counted),
        "a flushing seek was not seen flushing"
    );
}

/// A live ring (a writer in another process: the first 60 s of the input at
/// once, then the rest in real time): fast-forward from the oldest content
/// reaches the live edge and plays on at 1.0 with every frame (no stall, no
/// EOS), saying so in a rate-changed message; 2x with every frame too; a
/// rewind from the live edge ends at the oldest content.
#[test]
fn live_ring_fast_forward_reaches_live_and_rewind_reaches_the_start() {
    live_ring_fast_forward_reaches_live_and_rewind_reaches_the_start_in(false);
}

/// The same with an audio branch beside the video: every channel has audio.
#[test]
fn live_ring_fast_forward_reaches_live_and_rewind_reaches_the_start_with_audio() {
    live_ring_fast_forward_reaches_live_and_rewind_reaches_the_start_in(true);
}

fn live_ring_fast_forward_reaches_live_and_rewind_reaches_the_start_in(audio: bool) {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let mut writer = std::process::Command::new("gst-launch-1.0")
        .args(["-q", "filesrc"])
        .arg(format!("location={}", Input::Minutes.path().display()))
        .args(["!", "tsparse", "set-timestamps=true", "!", "identity", "sync=true"])
        .arg(format!("ts-offset=-{}", 60 * SECOND))
        .args(["!", "streambuffersink"])
        .arg(format!("location={}", ring.display()))
        .arg(format!("segment-duration={}", 6 * SECOND))
        .env("GST_PLUGIN_PATH", plugin_dir())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("writer");
    assert!(
        wait_until(Duration::from_secs(30), || playlist_entries(&ring) >= 9),
        "the writer did not fill the window"
    );
    let live_edge = |played: &[gst::Structure]| {
        played.iter().any(|s| {
            s.name() == "streambuffer-rate-changed" && s.get::<String>("reason").is_ok_and(|r| r == "live-edge")
        })
    };
    for (rate, flags) in [
        (8.0, gst::SeekFlags::empty()),
        (16.0, gst::SeekFlags::TRICKMODE_KEY_UNITS),
    ] {
        let player = Player::new(&ring, chain(H264, audio));
        let (start, _) = player.window();
        assert!(player.seek(rate, flags, Some(start), None));
        // Until 3 s after the live edge was reached.
        let reached: Arc<Mutex<Option<Duration>>> = Arc::default();
        let r = reached.clone();
        let played = player.play(Duration::from_secs(30), move |t, _, messages| {
            let mut r = r.lock().expect("lock");
            if r.is_none() && live_edge(messages) {
                *r = Some(t);
            }
            r.is_some_and(|at| t > at + Duration::from_secs(3))
        });
        let what = format!("live {rate}x");
        let at = reached
            .lock()
            .expect("lock")
            .unwrap_or_else(|| panic!("{what}: the live edge was not reached"));
        assert!(!played.eos, "{what}: EOS at the live edge");
        assert_eq!(
            played.rate_changes,
            vec![(1.0, rate, "seek".into()), (rate, 1.0, "live-edge".into())],
            "{what}"
        );
        // After the live edge every frame, at 1x: the last 2.5 s.
        let tail: Vec<u64> = played.frames.iter().rev().take(60).rev().copied().collect();
        assert_every_frame(
            &format!("{what} after the live edge"),
            &tail,
            tail[0],
            *tail.last().expect("frames"),
        );
        assert!(at < Duration::from_secs(15), "{what}: {at:?} to reach the live edge");
    }
    // Every frame at 2x from 6 s behind: the live edge in about 6 s.
    let player = Player::new(&ring, chain(H264, audio));
    let (_, end) = player.window();
    assert!(player.seek(2.0, gst::SeekFlags::ACCURATE, Some(end - 6 * SECOND), None));
    let played = player.play(Duration::from_secs(30), move |t, _, messages| {
        live_edge(messages) && t > Duration::from_secs(9)
    });
    assert!(!played.eos);
    assert_eq!(
        played.rate_changes.last().map(|c| (c.1, c.2.as_str())),
        Some((1.0, "live-edge"))
    );
    // The return to 1.0 is a flushing seek to the position shown: the
    // frame on screen then may be shown once more, never one skipped.
    let mut frames = played.frames.clone();
    frames.dedup();
    let back = frames.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(back <= 1, "live 2x: frames went back {back} times");
    frames.sort_unstable();
    frames.dedup();
    assert_every_frame("live 2x", &frames, frames[0], *frames.last().expect("frames"));
    // Rewind from the live edge at -16x: back to the oldest content, EOS.
    let player = Player::new(&ring, chain(H264, audio));
    let (start, end) = player.window();
    assert!(player.seek(-16.0, gst::SeekFlags::empty(), Some(start), Some(end)));
    let played = player.play(Duration::from_secs(30), |_, _, _| false);
    assert!(played.eos, "live -16x: no EOS at the oldest content");
    assert_keyframes_only("live -16x", &played.frames, &keyframes(&ring), -16.0, false);
    let _ = writer.kill();
    let _ = writer.wait();
}

/// HLS trick play: the sink publishes iframes.m3u8 and master.m3u8 by
/// default; m3u8-rs reads both, and every I-frame's byte range, with its
/// EXT-X-MAP in front, decodes to exactly one frame, a keyframe (ffprobe).
/// With `iframe-playlist=false` neither is written.
#[test]
fn iframe_playlist_entries_decode_to_one_frame_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let record = |ring: &Path, extra: &str| {
        run_to_eos(
            &format!(
                "filesrc location={} ! streambuffersink location={} segment-duration={} {extra}",
                Input::H264Aac.path().display(),
                ring.display(),
                4 * SECOND
            ),
            Duration::from_secs(60),
        )
        .expect("record");
    };
    record(&ring, "");
    let text = std::fs::read_to_string(ring.join("iframes.m3u8")).expect("iframes.m3u8");
    let iframes = m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("I-frame playlist parses");
    assert!(iframes.i_frames_only && iframes.end_list, "{text}");
    let master_text = std::fs::read_to_string(ring.join("master.m3u8")).expect("master.m3u8");
    let master = m3u8_rs::parse_master_playlist_res(master_text.as_bytes()).expect("multivariant playlist parses");
    assert!(
        master.variants.iter().any(|v| v.is_i_frame && v.uri == "iframes.m3u8"),
        "{master_text}"
    );
    assert!(
        master.variants.iter().any(|v| !v.is_i_frame && v.uri == "index.m3u8"),
        "{master_text}"
    );
    // A keyframe a second for 12 s.
    assert!(
        (11..=13).contains(&iframes.segments.len()),
        "{} I-frames",
        iframes.segments.len()
    );
    let mut map: Option<Vec<u8>> = None;
    for (n, segment) in iframes.segments.iter().enumerate() {
        let file = std::fs::read(ring.join(&segment.uri)).expect("segment");
        let cut = |r: &m3u8_rs::ByteRange| {
            let from = r.offset.expect("offset") as usize;
            file[from..from + r.length as usize].to_vec()
        };
        if let Some(m) = &segment.map {
            map = Some(cut(m.byte_range.as_ref().expect("map byte range")));
        }
        let mut piece = map.clone().expect("a map before the first I-frame");
        piece.extend(cut(segment.byte_range.as_ref().expect("byte range")));
        let path = dir.path().join(format!("iframe-{n}.ts"));
        std::fs::write(&path, &piece).expect("write");
        assert_eq!(
            ffprobe_frame_count(&path, "v:0"),
            1,
            "I-frame {n} ({}) decodes to one frame",
            segment.uri
        );
        assert_eq!(ffprobe_key_frames(&path, 1), vec![true], "I-frame {n} is a keyframe");
    }
    let off = dir.path().join("off");
    record(&off, "iframe-playlist=false");
    assert!(off.join("index.m3u8").exists());
    assert!(!off.join("iframes.m3u8").exists() && !off.join("master.m3u8").exists());
}

/// A finished ring recorded from GStreamer's own `mpegtsmux` (H.264 and
/// AAC, both 12 s, 4 s segments): its first frame is presented a little
/// after 0. (Audio that went on past the last video frame by more than a
/// `queue` holds would stall an accurate seek to that frame in any
/// queue-linked tsdemux pipeline: the decoder gives its last frame at EOS.)
fn mpegtsmux_ring() -> &'static Path {
    static RING: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    ring_recorded_once(&RING, |ring| {
        format!(
            "videotestsrc num-buffers=300 ! video/x-raw,width=320,height=240,framerate=25/1 ! \
             x264enc key-int-max=25 speed-preset=ultrafast ! queue ! mpegtsmux name=m ! \
             streambuffersink location={} segment-duration={} \
             audiotestsrc num-buffers=300 samplesperbuffer=1920 ! audio/x-raw,rate=48000 ! \
             avenc_aac ! queue ! m.",
            ring.display(),
            4 * SECOND
        )
    })
}

/// The SEGMENT events that reached the video sink since `from` (an index
/// into the player's list).
fn segments_since(player: &Player, from: usize) -> Vec<(f64, u64)> {
    player.segments.lock().expect("lock")[from..].to_vec()
}

/// An ACCURATE flushing seek starts its segment exactly where it was asked
/// (GStreamer's seeking contract; tsdemux and hlsdemux do the same), at the
/// window's edge (the oldest segment's start: 0 on a ring recorded from
/// the start, before its first frame is presented), at the first frame, in
/// the middle and at the last frame, on rings from ffmpeg's muxer and from
/// `mpegtsmux`, video alone and with audio; the first frame shown is then
/// the target's (or the first one, at the edge). A target before the
/// window is taken as its edge.
#[test]
fn accurate_seeks_start_their_segment_at_the_target() {
    let _serial = one_at_a_time();
    for (ring, name) in [
        (finished_minutes_ring(), "ffmpeg ring"),
        (mpegtsmux_ring(), "mpegtsmux ring"),
    ] {
        for audio in [false, true] {
            let player = Player::new(ring, chain(H264, audio));
            let (start, end) = player.window();
            let first_frame = *player.frames.lock().expect("lock").first().expect("prerolled");
            // The window's edge on the ring's timeline: the oldest
            // segment's start (its first frame is presented a little later).
            let oldest = segments(ring)
                .iter()
                .filter_map(|p| p.file_name()?.to_str()?.get(8..20)?.parse::<u64>().ok())
                .min()
                .expect("segments");
            let edge = index_records(ring, oldest)[0].ring_time_ns;
            // Before the window (the ffmpeg ring starts 30 s in): taken as
            // its edge, as documented.
            if edge > 0 {
                let seen = player.segments.lock().expect("lock").len();
                assert!(player.seek(1.0, gst::SeekFlags::ACCURATE, Some(0), None));
                let (result, ..) = player.pipeline.state(gst::ClockTime::from_seconds(20));
                result.expect("prerolled");
                assert_eq!(
                    segments_since(&player, seen),
                    vec![(1.0, edge)],
                    "{name}: before the window"
                );
            }
            // The last frame: played from the last keyframe to the end.
            let last_frame = {
                let last_keyframe = keyframes(ring).last().expect("keyframes").presentation_ns();
                let tail = Player::new(ring, chain(H264, audio));
                assert!(tail.seek(1.0, gst::SeekFlags::ACCURATE, Some(last_keyframe), None));
                let played = tail.play(Duration::from_secs(20), |_, _, _| false);
                assert!(played.eos, "{name}: no EOS after the last keyframe");
                *played.frames.last().expect("frames after the last keyframe")
            };
            assert!(
                last_frame < end,
                "{name}: the last frame at {last_frame}, the window ends at {end}"
            );
            for target in [edge, start, (start + end) / 2, last_frame] {
                let what = format!("{name}, audio {audio}: ACCURATE seek to {target}");
                let (seen, frames_before) = (
                    player.segments.lock().expect("lock").len(),
                    player.frames.lock().expect("lock").len(),
                );
                assert!(player.seek(1.0, gst::SeekFlags::ACCURATE, Some(target), None), "{what}");
                let (result, ..) = player.pipeline.state(gst::ClockTime::from_seconds(20));
                result.unwrap_or_else(|_| panic!("{what}: no preroll"));
                let segments = segments_since(&player, seen);
                assert_eq!(segments, vec![(1.0, target)], "{what}: the new segment");
                let shown = player.frames.lock().expect("lock")[frames_before..].to_vec();
                let first = *shown.first().unwrap_or_else(|| {
                    panic!(
                        "{what}: nothing prerolled; window {start}..{end}, frames {:?}",
                        player.frames.lock().expect("lock")
                    )
                });
                if target <= start {
                    assert_eq!(first, first_frame, "{what}: the first frame is the ring's first");
                } else {
                    assert!(
                        first + FRAME > target && first <= target + FRAME,
                        "{what}: first frame shown at {first}"
                    );
                }
            }
        }
    }
}

/// `streambuffer-rate-changed` is posted exactly once for every change of
/// rate, whatever made it: flushing seeks (every frame, keyframes only,
/// backward) and back to 1.0 from each, instant rate changes both ways,
/// seeks sent to the source element itself; a seek at the same rate posts
/// nothing. (The live edge's own change is in the live-ring test.)
#[test]
fn rate_changed_is_posted_once_for_every_change() {
    let _serial = one_at_a_time();
    let ring = finished_minutes_ring();
    for audio in [false, true] {
        let player = Player::new(ring, chain(H264, audio));
        let (start, _) = player.window();
        player.pipeline.set_state(gst::State::Playing).expect("play");
        let src = player.pipeline.by_name("src").expect("src");
        let pipeline = player.pipeline.clone().upcast::<gst::Element>();
        let flushing = |to: &gst::Element, rate: f64, flags: gst::SeekFlags| {
            let at = player
                .pipeline
                .query_position::<gst::ClockTime>()
                .unwrap_or(gst::ClockTime::from_nseconds(start + 10 * SECOND));
            let (start_type, start, stop_type, stop) = if rate > 0.0 {
                (gst::SeekType::Set, at, gst::SeekType::None, gst::ClockTime::NONE)
            } else {
                (gst::SeekType::Set, gst::ClockTime::ZERO, gst::SeekType::Set, Some(at))
            };
            to.seek(rate, gst::SeekFlags::FLUSH | flags, start_type, start, stop_type, stop)
                .is_ok()
        };
        let instant = |rate: f64| {
            pipeline
                .seek(
                    rate,
                    gst::SeekFlags::INSTANT_RATE_CHANGE,
                    gst::SeekType::None,
                    gst::ClockTime::ZERO,
                    gst::SeekType::None,
                    gst::ClockTime::NONE,
                )
                .is_ok()
        };
        type Step<'a> = (&'static str, Box<dyn Fn() -> bool + 'a>);
        let steps: Vec<Step<'_>> = vec![
            (
                "flushing 2x",
                Box::new(|| flushing(&pipeline, 2.0, gst::SeekFlags::empty())),
            ),
            (
                "flushing back to 1x",
                Box::new(|| flushing(&pipeline, 1.0, gst::SeekFlags::ACCURATE)),
            ),
            (
                "1x again",
                Box::new(|| flushing(&pipeline, 1.0, gst::SeekFlags::ACCURATE)),
            ),
            ("instant 2x", Box::new(|| instant(2.0))),
            ("instant back to 1x", Box::new(|| instant(1.0))),
            (
                "8x keyframes",
                Box::new(|| flushing(&pipeline, 8.0, gst::SeekFlags::empty())),
            ),
            (
                "back to 1x from 8x",
                Box::new(|| flushing(&pipeline, 1.0, gst::SeekFlags::ACCURATE)),
            ),
            ("-4x", Box::new(|| flushing(&pipeline, -4.0, gst::SeekFlags::empty()))),
            (
                "back to 1x from -4x",
                Box::new(|| flushing(&pipeline, 1.0, gst::SeekFlags::ACCURATE)),
            ),
            (
                "2x sent to the source",
                Box::new(|| flushing(&src, 2.0, gst::SeekFlags::empty())),
            ),
            (
                "back to 1x sent to the source",
                Box::new(|| flushing(&src, 1.0, gst::SeekFlags::ACCURATE)),
            ),
        ];
        for (what, step) in &steps {
            std::thread::sleep(Duration::from_millis(700));
            assert!(step(), "audio {audio}: {what} refused");
        }
        std::thread::sleep(Duration::from_millis(500));
        let seek = |old: f64, new: f64| (old, new, "seek".to_string());
        assert_eq!(
            player.rate_changes(),
            vec![
                seek(1.0, 2.0),
                seek(2.0, 1.0),
                seek(1.0, 2.0),
                seek(2.0, 1.0),
                seek(1.0, 8.0),
                seek(8.0, 1.0),
                seek(1.0, -4.0),
                seek(-4.0, 1.0),
                seek(1.0, 2.0),
                seek(2.0, 1.0),
            ],
            "audio {audio}"
        );
        let bus = player.pipeline.bus().expect("bus");
        assert!(
            bus.pop_filtered(&[gst::MessageType::Error]).is_none(),
            "audio {audio}: an error"
        );
    }
}

/// `pipelines/dvr.py` (PyGObject), headless, driven through stdin: it
/// records a test pattern and plays it time-shifted; each command does what
/// it says, and what it prints says so: positions, rates, date-times and
/// the elements' messages.
#[test]
fn dvr_app_follows_its_commands() {
    let _serial = one_at_a_time();
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/dvr.py");
    let mut child = std::process::Command::new("/usr/bin/python3")
        .arg(&script)
        .args(["--headless", "--ring"])
        .arg(dir.path().join("ring"))
        .arg("--recordings")
        .arg(dir.path())
        .env("GST_PLUGIN_PATH", plugin_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("dvr.py");
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let out = child.stdout.take().expect("stdout");
    let l = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            l.lock().expect("lock").push(line);
        }
    });
    let mut stdin = child.stdin.take().expect("stdin");
    let mut send = |command: &str| {
        writeln!(stdin, "{command}").expect("send");
        stdin.flush().expect("flush");
    };
    // The index of the first line from `from` on that `f` accepts.
    let expect = |from: usize, what: &str, f: &dyn Fn(&str) -> bool| -> usize {
        let mut found = None;
        wait_until(Duration::from_secs(20), || {
            found = lines
                .lock()
                .expect("lock")
                .iter()
                .skip(from)
                .position(|l| f(l))
                .map(|i| i + from);
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no line {what}:\n{}", lines.lock().expect("lock").join("\n")))
    };
    // position=<s> rate=<r> date-time=<ISO>, from status lines after `from`.
    let status = |from: usize| -> Vec<(f64, f64, String)> {
        lines
            .lock()
            .expect("lock")
            .iter()
            .skip(from)
            .filter_map(|l| {
                let mut f = l.strip_prefix("position=")?.split(' ');
                let position = f.next()?.parse().ok()?;
                let rate = f.next()?.strip_prefix("rate=")?.parse().ok()?;
                Some((position, rate, f.next()?.strip_prefix("date-time=")?.to_owned()))
            })
            .collect()
    };
    expect(0, "playing", &|l| l == "playing");
    let at = expect(0, "with a position", &|l| l.starts_with("position="));
    std::thread::sleep(Duration::from_secs(8));

    send("w");
    let at = expect(at, "rewinding", &|l| {
        l.contains("streambuffer-rate-changed") && l.contains("new-rate=(double)-2")
    });
    std::thread::sleep(Duration::from_secs(3));
    let back: Vec<f64> = status(at).iter().filter(|s| s.1 == -2.0).map(|s| s.0).collect();
    assert!(
        back.len() >= 2 && back.windows(2).all(|w| w[1] < w[0]),
        "rewinding: {back:?}"
    );

    send("s");
    let at = expect(at, "slow motion", &|l| l.contains("new-rate=(double)0.5"));
    std::thread::sleep(Duration::from_secs(3));
    let slow: Vec<f64> = status(at).iter().filter(|s| s.1 == 0.5).map(|s| s.0).collect();
    assert!(slow.len() >= 2, "slow motion: {slow:?}");
    let pace = (slow[slow.len() - 1] - slow[0]) / (slow.len() - 1) as f64;
    assert!((0.3..=0.7).contains(&pace), "slow motion moves {pace:.2} s a second");

    send("F");
    let at = expect(at, "fast-forward", &|l| l.contains("new-rate=(double)2"));
    // Behind live, 2x catches up, then plays on at 1x at the live edge.
    let at = expect(at, "the live edge", &|l| l.contains("reason=(string)live-edge"));

    send("b");
    let at = expect(at, "back 10 s", &|l| {
        l.starts_with("seek rate=1 ") && l.ends_with(" ok")
    });
    // A wall-clock time 5 s ago: playback goes there (the date-time shown
    // is that of the content received then).
    let target = chrono_like_utc(std::time::SystemTime::now() - Duration::from_secs(5));
    send(&format!("t {}", target.0));
    // From the line after the last seek's: that one would match too.
    let at = expect(at + 1, "jump to a date-time", &|l| {
        l.starts_with("seek rate=1 ") && l.ends_with(" ok")
    });
    let after = status(at);
    let shown = after.first().map(|s| s.2.clone()).unwrap_or_else(|| {
        std::thread::sleep(Duration::from_secs(2));
        status(at).first().map(|s| s.2.clone()).unwrap_or_default()
    });
    // (Across midnight too.)
    let off_by = (seconds_of_day(&shown) - target.1 + 43_200.0).rem_euclid(86_400.0) - 43_200.0;
    assert!(
        off_by.abs() <= 3.0,
        "jumped to {} (content of {shown}):\n{}",
        target.0,
        lines.lock().expect("lock").join("\n")
    );

    send("r");
    expect(at, "recording started", &|l| {
        l.contains("streambuffer-recording-started")
    });
    std::thread::sleep(Duration::from_secs(3));
    send("x");
    let stopped = expect(at, "recording stopped", &|l| {
        l.contains("streambuffer-recording-stopped") && l.contains("status=(string)ok")
    });
    let line = lines.lock().expect("lock")[stopped].clone();
    let location = line
        .split("location=(string)")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .expect("location");
    ffmpeg_decode(Path::new(location)).expect("the recording decodes");

    send("p");
    let at = expect(at, "paused", &|l| l == "paused");
    std::thread::sleep(Duration::from_secs(3));
    let held: Vec<f64> = status(at + 1).iter().map(|s| s.0).collect();
    assert!(
        held.windows(2).all(|w| (w[1] - w[0]).abs() < 0.05),
        "paused, positions moved: {held:?}"
    );
    send("p");
    expect(at, "playing again", &|l| l == "playing");
    send("q");
    let exited = wait_until(Duration::from_secs(15), || matches!(child.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = child.kill();
    }
    let status_code = child.wait().expect("wait");
    let _ = reader.join();
    assert!(exited && status_code.success(), "dvr.py did not quit cleanly");
    assert_eq!(lines.lock().expect("lock").last().map(String::as_str), Some("bye"));
}

/// `time` as HH:MM:SS (UTC) and as seconds of the day.
fn chrono_like_utc(time: std::time::SystemTime) -> (String, f64) {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let of_day = secs % 86_400;
    (
        format!("{:02}:{:02}:{:02}", of_day / 3600, of_day / 60 % 60, of_day % 60),
        of_day as f64,
    )
}

/// Seconds of the day of an ISO 8601 date-time in UTC (`...THH:MM:SS.fffZ`).
fn seconds_of_day(iso: &str) -> f64 {
    let time = iso.split('T').nth(1).unwrap_or("").trim_end_matches('Z');
    let mut parts = time.split(':').map(|p| p.parse::<f64>().unwrap_or(f64::NAN));
    let (h, m, s) = (
        parts.next().unwrap_or(f64::NAN),
        parts.next().unwrap_or(f64::NAN),
        parts.next().unwrap_or(f64::NAN),
    );
    h * 3600.0 + m * 60.0 + s
}
