// SPDX-License-Identifier: MPL-2.0
//! `gst-play-1.0 streambuffer:///RING` as a new user drives it: through its
//! keys (`d` reverses, `+`/`-` change the rate, `t` the trick mode, space
//! pauses, the arrows seek), in a pseudo-terminal (`script`), with
//! synchronised fakesinks for audio and video. What it prints (positions,
//! "Paused", errors, GLib criticals) is what is checked. Rings of H.264 and
//! AAC: every channel has audio.
// gst-play-1.0 and script(1) from util-linux.
#![cfg(unix)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::inputs::Input;
use common::processes::{Reaped as Writer, free_udp_port};
use common::{SECOND, init, plugin_dir, rings::finished_minutes_ring, rings::playlist_entries, wait_until};

/// Players in real time: one at a time.
static REAL_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    REAL_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One line of gst-play's status: position and duration (s), paused.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Status {
    position: f64,
    duration: Option<f64>,
    paused: bool,
}

/// `H:MM:SS.d` in seconds.
fn clock(text: &str) -> Option<f64> {
    let mut parts = text.trim().split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}

/// The status lines of gst-play's output, in order.
fn statuses(output: &str) -> Vec<Status> {
    output
        .split(['\r', '\n'])
        .filter_map(|line| {
            let (position, rest) = line.split_once(" / ")?;
            let position = clock(position)?;
            let duration = rest.split_whitespace().next().and_then(clock);
            Some(Status {
                position,
                duration,
                paused: rest.contains("Paused"),
            })
        })
        .collect()
}

/// gst-play-1.0 in a pseudo-terminal, its keys written to it.
struct GstPlay {
    child: Child,
    keys: ChildStdin,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl GstPlay {
    fn start(uri: &str) -> GstPlay {
        GstPlay::start_with(uri, "fakesink sync=true")
    }

    /// gst-play-1.0 playing `uri` into `videosink` (a bin description).
    fn start_with(uri: &str, videosink: &str) -> GstPlay {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("gst-play.log");
        let command = format!("gst-play-1.0 --videosink='{videosink}' --audiosink='fakesink sync=true' '{uri}'");
        let mut child = Command::new("script")
            .args(["-q", "-f", "-e", "-c", &command])
            .arg(&log)
            .env("GST_PLUGIN_PATH", plugin_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("script(1) runs gst-play-1.0");
        let keys = child.stdin.take().expect("stdin");
        GstPlay {
            child,
            keys,
            log,
            _dir: dir,
        }
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    fn statuses(&self) -> Vec<Status> {
        statuses(&self.output())
    }

    fn key(&mut self, key: &str) {
        self.keys.write_all(key.as_bytes()).expect("key");
        self.keys.flush().expect("flush");
    }

    /// Waits (at most `limit`) until `cond` holds for the statuses so far.
    fn wait_for(&self, limit: Duration, cond: impl Fn(&[Status]) -> bool) -> bool {
        wait_until(limit, || cond(&self.statuses()))
    }

    /// The statuses printed during the next `span`.
    fn watch(&self, span: Duration) -> Vec<Status> {
        let from = self.statuses().len();
        std::thread::sleep(span);
        self.statuses().split_off(from)
    }

    fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Quits (`q`) and returns everything it printed.
    fn quit(mut self) -> String {
        let _ = self.keys.write_all(b"q");
        let _ = self.keys.flush();
        let start = Instant::now();
        while !self.has_exited() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.output()
    }
}

impl Drop for GstPlay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Positions moved the way `rate` says: by about `rate` times the span
/// they cover (half of it at least, twice at most, and at least 0.5 s).
fn assert_moves(what: &str, seen: &[Status], rate: f64) {
    assert!(seen.len() >= 5, "{what}: {} status lines: frozen?", seen.len());
    let (first, last) = (seen[0].position, seen[seen.len() - 1].position);
    let span = seen.len() as f64 * 0.1;
    let moved = last - first;
    let expected = rate * span;
    assert!(
        moved.signum() == rate.signum() && moved.abs() >= 0.5 && moved.abs() >= expected.abs() * 0.4,
        "{what}: position went from {first:.1} to {last:.1} in about {span:.1} s at {rate}x"
    );
    assert!(
        moved.abs() <= expected.abs() * 2.0 + 2.0,
        "{what}: position jumped from {first:.1} to {last:.1} in about {span:.1} s at {rate}x"
    );
    // No single step jumps: at most twice what the rate allows in the
    // 100 ms between two lines, plus a second (keyframes a second apart).
    for w in seen.windows(2) {
        let step = (w[1].position - w[0].position).abs();
        assert!(
            step <= rate.abs() * 0.2 + 1.1,
            "{what}: a jump from {:.1} to {:.1}",
            w[0].position,
            w[1].position
        );
    }
}

/// GLib criticals and warnings of GStreamer in what gst-play printed.
fn criticals(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|l| l.contains("CRITICAL") || l.contains("GStreamer-WARNING"))
        .map(str::to_owned)
        .collect()
}

/// A live ring written by another process: the 90 s H.264 + AAC input,
/// its first `ahead` s at once, then the rest in real time, `window` s
/// kept in 2 s segments.
fn live_writer(ring: &Path, ahead: u64, window: u64) -> Child {
    Command::new("gst-launch-1.0")
        .args(["-q", "filesrc"])
        .arg(format!("location={}", Input::Minutes.path().display()))
        .args(["!", "tsparse", "set-timestamps=true", "!", "identity", "sync=true"])
        .arg(format!("ts-offset=-{}", ahead * SECOND))
        .args(["!", "streambuffersink"])
        .arg(format!("location={}", ring.display()))
        .arg(format!("segment-duration={}", 2 * SECOND))
        .arg(format!("max-duration={}", window * SECOND))
        // The window passes a paused viewer here, as without leases (which
        // tests/leases.rs tests): the viewer jumps and is told.
        .arg("lease-max-duration=0")
        .env("GST_PLUGIN_PATH", plugin_dir())
        .stdout(Stdio::null())
        .spawn()
        .expect("writer")
}

/// Presses `key` `times` times, `gap` apart.
fn press(play: &mut GstPlay, key: &str, times: usize, gap: Duration) {
    for _ in 0..times {
        play.key(key);
        std::thread::sleep(gap);
    }
}

/// gst-play's keys: `+` adds 0.1 to the rate below 2x and 0.5 below 4x
/// (so 1x to 2x is ten presses, 2x to 4x four more, and gst-play then asks
/// 4.000000000000001), `t` cycles through its trick modes (the third press
/// is key units), `d` flips the direction.
const PLUS_1X_TO_2X: usize = 10;
const PLUS_2X_TO_4X: usize = 4;
const T_TO_KEY_UNITS: usize = 3;
const T_KEY_UNITS_TO_NONE: usize = 2;

/// Trick play with audio through playbin, as gst-play's keys make it: `d`
/// rewinds at -1x, `t` switches the rewind to keyframes only, `d` goes
/// forward on keyframes only, `+` to 2x and on to 4x (keyframes only),
/// `t` back to every frame; the position moves the way each rate says and
/// never freezes. (Before GAPs came with the keyframes, the first rewind
/// froze it for good.)
#[test]
fn trick_play_with_audio_through_its_keys() {
    let _serial = one_at_a_time();
    init();
    let ring = finished_minutes_ring();
    let mut play = GstPlay::start(&format!("streambuffer://{}", ring.display()));
    assert!(
        play.wait_for(Duration::from_secs(20), |s| s.len() > 10),
        "gst-play did not play: {}",
        play.output()
    );
    // About 15 s further (the right arrow seeks 8 % of the duration, 90 s):
    // room to rewind, and to go forward at 4x without reaching the end.
    press(&mut play, "\x1b[C", 2, Duration::from_millis(500));
    std::thread::sleep(Duration::from_secs(1));
    let settle = Duration::from_millis(800);
    let look = Duration::from_secs(3);
    play.key("d");
    std::thread::sleep(settle);
    assert_moves("rewind at -1x", &play.watch(look), -1.0);
    press(&mut play, "t", T_TO_KEY_UNITS, Duration::from_millis(300));
    std::thread::sleep(settle);
    assert_moves("rewind at -1x, keyframes only", &play.watch(look), -1.0);
    play.key("d");
    std::thread::sleep(settle);
    assert_moves("forward at 1x, keyframes only", &play.watch(look), 1.0);
    press(&mut play, "+", PLUS_1X_TO_2X, Duration::from_millis(150));
    std::thread::sleep(settle);
    assert_moves("forward at 2x, keyframes only", &play.watch(look), 2.0);
    press(&mut play, "+", PLUS_2X_TO_4X, Duration::from_millis(150));
    std::thread::sleep(settle);
    assert_moves("forward at 4x, keyframes only", &play.watch(look), 4.0);
    press(&mut play, "t", T_KEY_UNITS_TO_NONE, Duration::from_millis(300));
    std::thread::sleep(settle);
    assert_moves(
        "forward at 4x, every frame",
        &play.watch(Duration::from_millis(1500)),
        4.0,
    );
    let output = play.quit();
    assert!(criticals(&output).is_empty(), "{:?}", criticals(&output));
    assert!(!output.contains("ERROR"), "{output}");
}

/// On a live ring from its oldest content: `+` up to 4x (keyframes only)
/// moves the position at about 4x, it does not jump to the live edge;
/// `-` back to 2x and `t` to key units, the same at 2x; then `+` pressed
/// 18 times 0.3 s apart, racing the source's own return to 1x at the live
/// edge: no GLib critical, and playback goes on.
#[test]
fn live_ring_fast_forward_through_its_keys() {
    let _serial = one_at_a_time();
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let _writer = Writer(live_writer(&ring, 60, 40));
    assert!(
        wait_until(Duration::from_secs(30), || playlist_entries(&ring) >= 15),
        "the writer did not fill the window"
    );
    let uri = format!("streambuffer://{}?start-position=oldest", ring.display());
    let mut play = GstPlay::start(&uri);
    assert!(
        play.wait_for(Duration::from_secs(20), |s| s.len() > 10),
        "gst-play did not play: {}",
        play.output()
    );
    let lag = |s: &Status| s.duration.map_or(0.0, |d| d - s.position);
    let start_lag = lag(play.statuses().last().expect("status"));
    assert!(
        start_lag > 25.0,
        "started {start_lag:.1} s behind live, not at the oldest content"
    );
    let settle = Duration::from_millis(800);
    press(
        &mut play,
        "+",
        PLUS_1X_TO_2X + PLUS_2X_TO_4X,
        Duration::from_millis(150),
    );
    std::thread::sleep(settle);
    let seen = play.watch(Duration::from_secs(3));
    assert_moves("live 4x from the oldest content", &seen, 4.0);
    assert!(
        seen.iter().all(|s| lag(s) > 2.0),
        "live 4x reached the live edge at once: {seen:?}"
    );
    press(&mut play, "-", PLUS_2X_TO_4X, Duration::from_millis(150));
    press(&mut play, "t", T_TO_KEY_UNITS, Duration::from_millis(300));
    std::thread::sleep(settle);
    let seen = play.watch(Duration::from_secs(2));
    assert_moves("live 2x, keyframes only", &seen, 2.0);
    press(&mut play, "t", T_KEY_UNITS_TO_NONE, Duration::from_millis(300));
    // The race: rate changes while the source goes back to 1x at the edge.
    press(&mut play, "+", 18, Duration::from_millis(300));
    std::thread::sleep(Duration::from_secs(3));
    let seen = play.watch(Duration::from_secs(2));
    assert!(
        seen.len() >= 5 && seen.last().map(|s| s.position) > seen.first().map(|s| s.position),
        "playback did not go on after the rate changes: {seen:?}"
    );
    let output = play.quit();
    assert!(criticals(&output).is_empty(), "{:?}", criticals(&output));
}

/// A pause that outlives the window (20 s on a 12 s window): on resume the
/// source skips the deleted segments, and the position shown follows the
/// jump (inside the window, not the paused one); a press of the left arrow
/// then moves back, not forward.
#[test]
fn pause_outliving_the_window_through_its_keys() {
    let _serial = one_at_a_time();
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let _writer = Writer(live_writer(&ring, 14, 12));
    assert!(
        wait_until(Duration::from_secs(30), || playlist_entries(&ring) >= 5),
        "the writer did not fill the window"
    );
    let uri = format!("streambuffer://{}?start-position=oldest", ring.display());
    let mut play = GstPlay::start(&uri);
    assert!(
        play.wait_for(Duration::from_secs(20), |s| s.len() > 10),
        "gst-play did not play: {}",
        play.output()
    );
    play.key(" ");
    assert!(
        play.wait_for(Duration::from_secs(5), |s| s.last().is_some_and(|s| s.paused)),
        "did not pause"
    );
    std::thread::sleep(Duration::from_secs(20));
    play.key(" ");
    std::thread::sleep(Duration::from_secs(3));
    let seen = play.watch(Duration::from_secs(2));
    let last = *seen.last().expect("statuses after resuming");
    let duration = last.duration.expect("a duration (the live edge)");
    let behind = duration - last.position;
    assert!(
        behind <= 12.0 + 4.0,
        "{behind:.1} s behind live in a window of 12 s after the pause: the position did not follow the jump"
    );
    // Left: 1 s back (gst-play's -1 %, at least a second). Playback is at
    // the window's oldest content, which slides by a segment (2 s) at a
    // time: the seek lands there at most a segment ahead, never on the
    // paused position's timeline 20 s on.
    play.key("\x1b[D");
    std::thread::sleep(Duration::from_millis(1500));
    let after = *play.statuses().last().expect("status");
    assert!(
        after.position < last.position + 3.5,
        "the left arrow moved from {:.1} to {:.1}",
        last.position,
        after.position
    );
    let output = play.quit();
    assert!(criticals(&output).is_empty(), "{:?}", criticals(&output));
}

/// The number of video frames a `multifilesink location=DIR/frame-%06d`
/// has written (it keeps the last few files; their numbers count on).
fn frames_written(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.strip_prefix("frame-")?.parse::<u64>().ok())
                .map(|n| n + 1)
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Time-shift of a live UDP stream from ffmpeg in one command,
/// `gst-play-1.0 streambuffer+udp://...`, through its keys: space pauses
/// (the recording goes on: on resume playback is as far behind live as the
/// pause lasted), the left arrow seeks back, `+` to 2x and `-` back to 1x
/// change the rate, 2x catches up with live and playback goes on at 1x
/// there. Video frames are decoded throughout
/// (none while paused).
#[test]
fn live_udp_time_shift_through_its_keys() {
    let _serial = one_at_a_time();
    init();
    let port = free_udp_port();
    let _sender = Writer(
        Command::new("ffmpeg")
            .args(["-v", "error", "-re", "-i"])
            .arg(Input::Minutes.path())
            .args(["-c", "copy", "-f", "mpegts"])
            .arg(format!("udp://127.0.0.1:{port}?pkt_size=1316"))
            .stdin(Stdio::null())
            .spawn()
            .expect("ffmpeg sends"),
    );
    let frames = tempfile::tempdir().expect("tempdir");
    let videosink = format!(
        "videoconvert ! videoscale ! video/x-raw,width=16,height=16 ! multifilesink sync=true max-files=3 location={}/frame-%06d",
        frames.path().display()
    );
    let uri = format!("streambuffer+udp://127.0.0.1:{port}#segment-duration={SECOND}");
    let mut play = GstPlay::start_with(&uri, &videosink);
    assert!(
        play.wait_for(Duration::from_secs(20), |s| s.len() > 20),
        "gst-play did not play: {}",
        play.output()
    );
    let lag = |s: &Status| s.duration.map_or(f64::NAN, |d| d - s.position);
    let start = *play.statuses().last().expect("status");
    assert!(lag(&start) < 3.0, "started {:.1} s behind live: {start:?}", lag(&start));
    let decoded = frames_written(frames.path());
    assert!(decoded > 25, "{decoded} frames decoded in the first 2 s");

    play.key(" ");
    assert!(
        play.wait_for(Duration::from_secs(5), |s| s.last().is_some_and(|s| s.paused)),
        "did not pause"
    );
    std::thread::sleep(Duration::from_secs(1));
    let paused_frames = frames_written(frames.path());
    std::thread::sleep(Duration::from_secs(9));
    assert_eq!(
        frames_written(frames.path()),
        paused_frames,
        "frames shown while paused"
    );
    play.key(" ");
    std::thread::sleep(Duration::from_secs(2));
    let seen = play.watch(Duration::from_secs(2));
    assert_moves("resumed", &seen, 1.0);
    let behind = lag(seen.last().expect("status"));
    assert!(
        (8.0..14.0).contains(&behind),
        "{behind:.1} s behind live after a 10 s pause: the recording did not go on, or playback jumped"
    );

    // Left: a second back each (gst-play's -1 % of the window, at least a
    // second); five presses in about 1.5 s.
    let before = seen.last().expect("status").position;
    press(&mut play, "\x1b[D", 5, Duration::from_millis(200));
    std::thread::sleep(Duration::from_millis(500));
    let after = play.statuses().last().expect("status").position;
    assert!(
        after < before - 2.0,
        "five presses of the left arrow moved from {before:.1} to {after:.1}"
    );

    press(&mut play, "+", PLUS_1X_TO_2X, Duration::from_millis(150));
    std::thread::sleep(Duration::from_millis(800));
    let seen = play.watch(Duration::from_secs(3));
    assert_moves("catching up at 2x", &seen, 2.0);
    press(&mut play, "-", PLUS_1X_TO_2X, Duration::from_millis(150));
    std::thread::sleep(Duration::from_millis(800));
    let seen = play.watch(Duration::from_secs(2));
    assert_moves("back to 1x behind live", &seen, 1.0);
    assert!(seen.iter().all(|s| lag(s) > 4.0), "1x reached live at once: {seen:?}");
    press(&mut play, "+", PLUS_1X_TO_2X, Duration::from_millis(150));
    assert!(
        play.wait_for(Duration::from_secs(30), |s| s.last().is_some_and(|s| lag(s) < 4.0)),
        "2x did not reach live: {:?}",
        play.statuses().last()
    );
    std::thread::sleep(Duration::from_secs(2));
    let seen = play.watch(Duration::from_secs(3));
    assert_moves("at live", &seen, 1.0);
    assert!(seen.iter().all(|s| lag(s) < 5.0), "fell behind live again: {seen:?}");
    assert!(
        frames_written(frames.path()) > paused_frames + 100,
        "too few frames decoded after the pause"
    );
    let output = play.quit();
    assert!(criticals(&output).is_empty(), "{:?}", criticals(&output));
}

/// Nothing playable (a playlist of one segment of random bytes, a
/// playlist of random bytes, an empty directory, /etc): gst-play says what
/// is wrong at once instead of "Prerolling..." for good.
#[test]
fn nothing_playable_is_an_error_at_once() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let random = |n: usize| -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let garbage_segment = dir.path().join("garbage-segment");
    std::fs::create_dir(&garbage_segment).expect("mkdir");
    std::fs::write(garbage_segment.join("segment-000000000000.ts"), random(188 * 1000)).expect("write");
    std::fs::write(
        garbage_segment.join("index.m3u8"),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:4.0,\nsegment-000000000000.ts\n#EXT-X-ENDLIST\n",
    )
    .expect("write");
    let garbage_playlist = dir.path().join("garbage-playlist");
    std::fs::create_dir(&garbage_playlist).expect("mkdir");
    std::fs::write(garbage_playlist.join("index.m3u8"), random(3000)).expect("write");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let cases = [
        (garbage_segment, "holds an MPEG-TS program"),
        (garbage_playlist, "is not an HLS playlist"),
        (empty, "holds no index.m3u8"),
        (PathBuf::from("/etc"), "holds no index.m3u8"),
    ];
    for (path, says) in cases {
        let mut play = GstPlay::start(&format!("streambuffer://{}", path.display()));
        let start = Instant::now();
        while !play.has_exited() && start.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let output = play.output();
        assert!(
            play.has_exited(),
            "{}: gst-play still running after 15 s: {output}",
            path.display()
        );
        assert!(
            output.contains("ERROR") && output.contains(says),
            "{}: no error saying '{says}': {output}",
            path.display()
        );
    }
}

#[test]
fn status_lines_parse() {
    let out = "Prerolling...\r0:00:02.9 / 0:00:40.3       \r0:00:03.0 / 0:00:40.3 Paused\r\n1:02:03.5 / 99:99:99.9";
    assert_eq!(
        statuses(out),
        vec![
            Status {
                position: 2.9,
                duration: Some(40.3),
                paused: false
            },
            Status {
                position: 3.0,
                duration: Some(40.3),
                paused: true
            },
            Status {
                position: 3723.5,
                duration: Some(99.0 * 3600.0 + 99.0 * 60.0 + 99.9),
                paused: false
            },
        ]
    );
}
