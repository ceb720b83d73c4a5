// SPDX-License-Identifier: MPL-2.0
//! The write-failure contract with real kernel errors: ENOSPC on a full
//! tmpfs, EFBIG from RLIMIT_FSIZE, a ring directory deleted under the sink.
// Real kernel behaviour (tmpfs, FIFOs, signals, gst-launch-1.0 children):
// these tests run on Unix.
#![cfg(unix)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{
    NO_ENV, PACKET, SECOND,
    media::{ffmpeg_decode, pid, test_stream},
    pipelines::{eos_and_wait, launch, lock_events, recording_kind, stat_u64, stats, wait_for_eos, watch},
    plugin_dir,
    processes::{Tmpfs, fault_env, gst_launch, record_in_process, run_bounded},
    rings::{
        assert_input_in_ring, assert_ring_holds_test_stream, assert_segment_well_formed, playlist, playlist_entries,
        ring_files, segments,
    },
    wait_until,
};
use gst::prelude::*;

const LIVE_SOURCE: &str = "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 ! \
     x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast bitrate=1000 ! mpegtsmux";

fn assert_ring_playable(ring: &std::path::Path) {
    let segs = segments(ring);
    assert!(!segs.is_empty(), "no segments in {}", ring.display());
    for s in &segs {
        assert_segment_well_formed(s);
        ffmpeg_decode(s).unwrap_or_else(|e| panic!("{}: {e}", s.display()));
    }
    ffmpeg_decode(&ring.join("index.m3u8")).expect("the playlist plays through the hole");
}

fn first_segment_has_data(ring: &std::path::Path) -> bool {
    segments(ring)
        .first()
        .is_some_and(|s| std::fs::metadata(s).is_ok_and(|m| m.len() > 64 * 1024))
}

/// Disk full while recording live, in the default `drop` mode: exactly one
/// failure, no ERROR, exactly one clear once space is back, and a ring that
/// plays through the hole. One long segment, so that the ring has nothing of
/// its own to evict and the failure is real.
#[test]
fn enospc_on_a_full_tmpfs_drops_then_clears() {
    let Some(fs) = Tmpfs::mount("12M") else { return };
    let ring = fs.path().join("ring");
    let pipeline = launch(&format!(
        "{LIVE_SOURCE} ! streambuffersink name=sink location={} segment-duration={} retry-interval={}",
        ring.display(),
        60 * SECOND,
        SECOND / 5
    ));
    let events = watch(&pipeline, "sink");
    pipeline.set_state(gst::State::Playing).expect("play");
    assert!(
        wait_until(Duration::from_secs(30), || first_segment_has_data(&ring)),
        "recording did not start"
    );

    let ballast = fs.fill();
    let failed = || !lock_events(&events).failures.is_empty();
    assert!(
        wait_until(Duration::from_secs(60), failed),
        "no write-failure on a full disk"
    );
    // Failing for a while (many retries) must not repeat the event.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lock_events(&events).failures.len(), 1);
    assert!(lock_events(&events).clears.is_empty());

    std::fs::remove_file(&ballast).expect("remove ballast");
    let cleared = || !lock_events(&events).clears.is_empty();
    assert!(
        wait_until(Duration::from_secs(30), cleared),
        "no write-failure-clear after space came back"
    );
    std::thread::sleep(Duration::from_secs(3));
    eos_and_wait(&pipeline, Duration::from_secs(30)).expect("EOS without error");
    let stats = stats(&pipeline, "sink");
    pipeline.set_state(gst::State::Null).expect("stop");

    let e = lock_events(&events);
    assert_eq!(e.failures.len(), 1, "{:?}", e.failures);
    assert_eq!(e.failures[0].0, "no-space-left", "{:?}", e.failures);
    let named = e.failures[0].1.contains(&ring.display().to_string());
    assert!(named, "the message names the file: {}", e.failures[0].1);
    assert_eq!(e.clears.len(), 1);
    assert!(e.clears[0].0 > 0, "dropped bytes must be counted");
    assert!(
        e.clears[0].1 > 0 && e.clears[0].1 != u64::MAX,
        "dropped duration: {}",
        e.clears[0].1
    );
    assert!(!e.messages.iter().any(|m| m.starts_with("ERROR")), "{:?}", e.messages);
    assert_eq!(
        e.messages.iter().filter(|m| *m == "streambuffer-write-failure").count(),
        1
    );
    assert_eq!(
        e.messages
            .iter()
            .filter(|m| *m == "streambuffer-write-failure-clear")
            .count(),
        1
    );
    assert_eq!(stat_u64(&stats, "failure-episodes"), 1);
    assert!(stat_u64(&stats, "write-failures") >= 2, "retries are counted");
    assert!(stat_u64(&stats, "write-dropped-bytes") > 0);
    assert!(stats.get::<&str>("last-error").is_ok_and(|s| !s.is_empty()));
    drop(e);

    let pl = playlist(&ring);
    assert!(pl.segments.len() >= 2, "the part before the fault and the part after");
    assert!(
        pl.segments.iter().any(|s| s.discontinuity),
        "the hole is marked with EXT-X-DISCONTINUITY"
    );
    assert_ring_playable(&ring);
}

/// Disk full with segments of its own to spare: the ring evicts its oldest
/// segments to make room, says so, and no data is lost.
#[test]
fn enospc_is_first_answered_by_evicting_own_segments() {
    let Some(fs) = Tmpfs::mount("12M") else { return };
    let ring = fs.path().join("ring");
    let pipeline = launch(&format!(
        "{LIVE_SOURCE} ! streambuffersink name=sink location={} segment-duration={} retry-interval={}",
        ring.display(),
        SECOND,
        SECOND / 5
    ));
    let events = watch(&pipeline, "sink");
    pipeline.set_state(gst::State::Playing).expect("play");
    assert!(
        wait_until(Duration::from_secs(30), || playlist_entries(&ring) >= 4),
        "recording did not start"
    );
    let _ballast = fs.fill();
    let evicted = || {
        lock_events(&events)
            .messages
            .iter()
            .any(|m| m == "streambuffer-evicted-under-pressure")
    };
    assert!(
        wait_until(Duration::from_secs(30), evicted),
        "no eviction under pressure"
    );
    let stats = stats(&pipeline, "sink");
    eos_and_wait(&pipeline, Duration::from_secs(30)).expect("EOS without error");
    pipeline.set_state(gst::State::Null).expect("stop");
    assert!(stat_u64(&stats, "evicted-under-pressure") >= 1);
    let e = lock_events(&events);
    assert!(
        e.failures.is_empty(),
        "eviction made room, nothing was lost: {:?}",
        e.failures
    );
}

/// EFBIG from a file size limit (RLIMIT_FSIZE, SIGXFSZ ignored) in a child
/// process: reported as NO_SPACE_LEFT, recording goes on in new segments.
#[test]
fn efbig_from_a_file_size_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let limit_kib = 200;
    let script = format!(
        "trap '' XFSZ; ulimit -f {limit_kib}; exec gst-launch-1.0 -m -e \
         videotestsrc num-buffers=500 pattern=snow ! video/x-raw,width=320,height=240,framerate=25/1 ! \
         x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast bitrate=1500 ! mpegtsmux ! \
         streambuffersink location={} segment-duration={} max-duration=0 retry-interval={}",
        ring.display(),
        4 * SECOND,
        SECOND / 100
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .env("GST_PLUGIN_PATH", plugin_dir())
        .output()
        .expect("run gst-launch-1.0");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pipeline failed: {stderr}\n{stdout}");
    assert!(!stdout.contains("ERROR"), "{stdout}");
    let failure = stdout
        .lines()
        .find(|l| l.contains("streambuffer-write-failure,"))
        .unwrap_or_else(|| panic!("no write-failure message: {stdout}"));
    assert!(failure.contains("kind=(string)no-space-left"), "{failure}");
    assert!(failure.replace("\\ ", " ").contains("File too large"), "{failure}");
    assert!(stdout.contains("streambuffer-write-failure-clear"), "{stdout}");
    for s in segments(&ring) {
        let len = std::fs::metadata(&s).expect("stat").len();
        assert!(len <= limit_kib * 1024, "{} is {len} bytes", s.display());
        assert_segment_well_formed(&s);
        // Cut back to a complete frame: decodes without a complaint.
        ffmpeg_decode(&s).unwrap_or_else(|e| panic!("{}: {e}", s.display()));
    }
    assert!(segments(&ring).len() >= 3);
}

/// The ring directory is deleted while recording: a failure, then a clear
/// once the sink has created its directory and a segment again.
#[test]
fn directory_removed_mid_recording_is_recreated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let pipeline = launch(&format!(
        "{LIVE_SOURCE} ! streambuffersink name=sink location={} segment-duration={} retry-interval={}",
        ring.display(),
        SECOND,
        SECOND / 5
    ));
    let events = watch(&pipeline, "sink");
    pipeline.set_state(gst::State::Playing).expect("play");
    assert!(
        wait_until(Duration::from_secs(30), || playlist_entries(&ring) >= 2),
        "recording did not start"
    );
    std::fs::remove_dir_all(&ring).expect("remove the ring directory");
    assert!(
        wait_until(Duration::from_secs(30), || !lock_events(&events).clears.is_empty()),
        "no clear after the directory vanished: {:?}",
        lock_events(&events)
    );
    assert!(
        wait_until(Duration::from_secs(30), || playlist_entries(&ring) >= 2),
        "recording did not resume"
    );
    eos_and_wait(&pipeline, Duration::from_secs(30)).expect("EOS without error");
    let stats = stats(&pipeline, "sink");
    pipeline.set_state(gst::State::Null).expect("stop");
    let e = lock_events(&events);
    assert_eq!(e.failures.len(), 1, "{:?}", e.failures);
    assert_eq!(e.clears.len(), 1);
    assert_eq!(
        e.sequence[..2],
        ["write-failure".to_string(), "write-failure-clear".to_string()]
    );
    assert!(e.clears[0].0 > 0, "the deleted data is counted as dropped");
    drop(e);
    assert!(stat_u64(&stats, "directory-recreated") >= 1);
    assert!(ring.join(".streambuffer.lock").exists(), "the lock is taken again");
    assert_ring_playable(&ring);
}

/// Pacing for file input: ~1316-byte buffers every 4 ms, so a 20 s file
/// takes a few seconds and a fault can be injected while it records.
fn paced_file(input: &std::path::Path) -> String {
    paced_file_in_blocks(input, 1316, 4000)
}

fn paced_file_in_blocks(input: &std::path::Path, blocksize: usize, sleep_us: u32) -> String {
    format!(
        "filesrc location={} blocksize={blocksize} ! identity sleep-time={sleep_us}",
        input.display()
    )
}

/// `block` mode: the streaming thread waits out a full disk and no byte of
/// the input is lost.
#[test]
fn block_mode_loses_no_byte() {
    block_mode_loses_no_byte_of(&paced_file);
}

/// The same with buffers large enough that the sink keeps references to
/// them instead of copying: what is pending when the disk fills is still
/// written, in order, once it has room.
#[test]
fn block_mode_loses_no_byte_of_buffers_kept_by_reference() {
    block_mode_loses_no_byte_of(&|input| paced_file_in_blocks(input, 32 * 1024, 100_000));
}

fn block_mode_loses_no_byte_of(source: &dyn Fn(&std::path::Path) -> String) {
    let Some(fs) = Tmpfs::mount("8M") else { return };
    let input = test_stream(20);
    let ring = fs.path().join("ring");
    // One long segment: nothing the ring could evict to make room.
    let pipeline = launch(&format!(
        "{} ! streambuffersink name=sink location={} segment-duration={} write-failure-mode=block retry-interval={}",
        source(&input),
        ring.display(),
        60 * SECOND,
        SECOND / 10
    ));
    let events = watch(&pipeline, "sink");
    pipeline.set_state(gst::State::Playing).expect("play");
    assert!(
        wait_until(Duration::from_secs(30), || segments(&ring)
            .first()
            .is_some_and(|s| std::fs::metadata(s).is_ok_and(|m| m.len() > 0))),
        "recording did not start"
    );
    let ballast = fs.fill();
    assert!(
        wait_until(Duration::from_secs(60), || !lock_events(&events).failures.is_empty()),
        "no write-failure on a full disk"
    );
    std::thread::sleep(Duration::from_secs(1));
    std::fs::remove_file(&ballast).expect("remove ballast");
    wait_for_eos(&pipeline, Duration::from_secs(120)).expect("EOS without error");
    pipeline.set_state(gst::State::Null).expect("stop");
    let e = lock_events(&events);
    assert_eq!(e.failures.len(), 1);
    assert_eq!(e.clears, vec![(0, 0)], "block mode drops nothing");
    drop(e);
    let recorded: Vec<u8> = ring_files(&ring).into_iter().flat_map(|(_, d)| d).collect();
    assert_input_in_ring(&std::fs::read(&input).expect("read input"), &recorded);
}

/// `block` mode: a state change to NULL while blocked returns promptly.
#[test]
fn block_mode_state_change_while_blocked() {
    let Some(fs) = Tmpfs::mount("8M") else { return };
    let input = test_stream(20);
    let ring = fs.path().join("ring");
    let pipeline = launch(&format!(
        "{} ! streambuffersink name=sink location={} segment-duration={} write-failure-mode=block",
        paced_file(&input),
        ring.display(),
        60 * SECOND
    ));
    let events = watch(&pipeline, "sink");
    pipeline.set_state(gst::State::Playing).expect("play");
    assert!(
        wait_until(Duration::from_secs(30), || segments(&ring)
            .first()
            .is_some_and(|s| std::fs::metadata(s).is_ok_and(|m| m.len() > 0))),
        "recording did not start"
    );
    let _ballast = fs.fill();
    assert!(wait_until(Duration::from_secs(60), || !lock_events(&events)
        .failures
        .is_empty()));
    // While the streaming thread waits for the disk, the application's calls
    // answer at once: a property change and the recording signals are
    // refused with a warning. Deadlock detectors, not speed tests.
    let sink = pipeline.by_name("sink").expect("sink");
    let (tx, rx) = std::sync::mpsc::channel();
    let s = sink.clone();
    let rec = fs.path().join("rec.ts");
    std::thread::spawn(move || {
        s.set_property("max-size", 1_000_000u64);
        let id = s.emit_by_name::<u32>(
            "start-recording",
            &[&rec.display().to_string(), &recording_kind("content"), &0i64],
        );
        let stopped = s.emit_by_name::<bool>("stop-recording", &[&1u32, &0i64]);
        let _ = tx.send((s.property::<u64>("max-size"), id, stopped));
    });
    let (max_size, id, stopped) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("property and recording signals wait for the failing disk");
    assert_eq!((max_size, id, stopped), (0, 0, false), "refused while running");
    let warned = pipeline.bus().is_some_and(|bus| {
        std::iter::from_fn(|| bus.pop())
            .any(|m| matches!(m.view(), gst::MessageView::Warning(w) if w.error().to_string().contains("failing disk")))
    });
    assert!(warned, "the refusal says why");
    let (tx, rx) = std::sync::mpsc::channel();
    let p = pipeline.clone();
    std::thread::spawn(move || {
        let _ = tx.send(p.set_state(gst::State::Null));
    });
    let result = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("set_state(NULL) hung while blocked");
    assert!(result.is_ok());
    for s in segments(&ring) {
        assert_eq!(std::fs::metadata(&s).expect("stat").len() % PACKET as u64, 0);
    }
}

/// `error` mode behaves like filesink: ERROR NO_SPACE_LEFT, after write-failure.
#[test]
fn error_mode_stops_with_no_space_left() {
    let Some(fs) = Tmpfs::mount("4M") else { return };
    let ring = fs.path().join("ring");
    std::fs::create_dir(&ring).expect("mkdir");
    let _ballast = fs.fill();
    let pipeline = launch(&format!(
        "videotestsrc num-buffers=250 ! video/x-raw,width=320,height=240 ! x264enc speed-preset=ultrafast ! mpegtsmux ! \
         streambuffersink name=sink location={} write-failure-mode=error",
        ring.display()
    ));
    let events = watch(&pipeline, "sink");
    pipeline.set_state(gst::State::Playing).expect("play");
    let err = wait_for_eos(&pipeline, Duration::from_secs(60)).expect_err("must stop with an error");
    pipeline.set_state(gst::State::Null).expect("stop");
    assert!(err.contains("No space left") || err.contains("space"), "{err}");
    let e = lock_events(&events);
    assert_eq!(e.failures.len(), 1);
    assert_eq!(e.failures[0].0, "no-space-left");
    assert_eq!(
        e.sequence.first().map(String::as_str),
        Some("write-failure"),
        "{:?}",
        e.sequence
    );
    assert!(
        e.sequence.get(1).is_some_and(|s| s.starts_with("ERROR")),
        "{:?}",
        e.sequence
    );
    let error_domain_ok = pipeline
        .bus()
        .map(|_| e.messages.iter().any(|m| m.starts_with("ERROR")))
        .unwrap_or(false);
    assert!(error_domain_ok);
}

/// Scrambled packets in the middle of a stream: exactly one encryption-on
/// and one encryption-off, each with its element message.
#[test]
fn scrambled_input_toggles_encryption_once() {
    let input = std::fs::read(test_stream(12)).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut data = input.clone();
    let packets = data.len() / PACKET;
    let (from, to) = (packets / 3, 2 * packets / 3);
    let mut scrambled = 0;
    for p in data.chunks_mut(PACKET).take(to).skip(from) {
        // Elementary-stream packets with payload: set transport_scrambling_control.
        if pid(p) >= 0x40 && p[3] & 0x10 != 0 {
            p[3] = (p[3] & 0x3F) | 0x80;
            scrambled += 1;
        }
    }
    assert!(scrambled > 100);
    let path = dir.path().join("scrambled.ts");
    std::fs::write(&path, &data).expect("write");
    let pipeline = launch(&format!(
        "filesrc location={} ! streambuffersink name=sink location={}",
        path.display(),
        dir.path().join("ring").display()
    ));
    let events = watch(&pipeline, "sink");
    pipeline.set_state(gst::State::Playing).expect("play");
    wait_for_eos(&pipeline, Duration::from_secs(60)).expect("EOS");
    let stats = stats(&pipeline, "sink");
    pipeline.set_state(gst::State::Null).expect("stop");
    let e = lock_events(&events);
    assert_eq!(e.encryption, vec![true, false]);
    assert_eq!(
        e.messages.iter().filter(|m| *m == "streambuffer-encryption-on").count(),
        1
    );
    assert_eq!(
        e.messages
            .iter()
            .filter(|m| *m == "streambuffer-encryption-off")
            .count(),
        1
    );
    assert_eq!(stat_u64(&stats, "scrambled-packets"), scrambled);
}

/// Runs `command` under a 200 KiB file size limit (SIGXFSZ ignored) and
/// returns what it printed.
fn run_with_file_limit(command: &str) -> String {
    let out = Command::new("bash")
        .args(["-c", &format!("trap '' XFSZ; ulimit -f 200; exec {command}")])
        .env("GST_PLUGIN_PATH", plugin_dir())
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{command} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn assert_monitor_output(stdout: &str, code: &str) {
    let failure = stdout
        .lines()
        .find(|l| l.starts_with("write-failure:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(failure.contains(code), "{failure}");
    assert!(failure.contains("File too large"), "{failure}");
    let clear = stdout
        .lines()
        .find(|l| l.starts_with("write-failure-clear:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let bytes: u64 = clear
        .split("dropped-bytes=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{clear}"));
    assert!(bytes > 0, "{clear}");
    assert!(stdout.contains("message: streambuffer-write-failure,"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("stats: streambuffer-stats")),
        "{stdout}"
    );
}

/// The Rust example application prints the signals it receives.
#[test]
fn rust_example_prints_the_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = plugin_dir().join("examples").join("write_failure_monitor");
    assert!(exe.exists(), "{} not built (cargo test builds examples)", exe.display());
    let stdout = run_with_file_limit(&format!("{} {} 8", exe.display(), dir.path().join("ring").display()));
    assert_monitor_output(&stdout, "code=NoSpaceLeft");
}

/// The Python (PyGObject) script in pipelines/ prints the signals it receives.
#[test]
fn python_script_prints_the_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/write-failure-monitor.py");
    let stdout = run_with_file_limit(&format!(
        "/usr/bin/python3 {} {} 8",
        script.display(),
        dir.path().join("ring").display()
    ));
    assert_monitor_output(&stdout, "code=no-space-left");
}

/// Persistent EIO from `fdatasync` with `sync-on-rotate` while writes work
/// (the fault shim): one failure, no clear (the probe tests the sync, and
/// it keeps failing), nothing dropped. A passing one: one failure, one
/// clear with nothing dropped.
#[test]
fn failing_sync_is_one_episode_and_drops_nothing() {
    for (count, clears) in [("1000000", 0), ("1", 1)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = fault_env(dir.path(), "segment-", "fdatasync", &[("FAULT_COUNT", count)]);
        let (ok, text) = record_in_process(
            dir.path(),
            16,
            &format!("segment-duration={SECOND} sync-on-rotate=true max-duration=0"),
            &env,
        );
        assert!(ok, "no ERROR in drop mode: {text}");
        assert_eq!(
            text.matches("streambuffer-write-failure, ").count(),
            1,
            "one episode: {text}"
        );
        assert_eq!(
            text.matches("streambuffer-write-failure-clear, ").count(),
            clears,
            "{text}"
        );
        if clears == 1 {
            assert!(text.contains("dropped-bytes=(guint64)0"), "{text}");
        }
        assert_ring_holds_test_stream(dir.path(), 16);
    }
}

/// Writes, cutting back and deleting all fail on one segment (the fault
/// shim, twice each): the failed segment's file cannot be deleted at first,
/// is deleted once writes work again, and the ring ends with every file on
/// disk listed, whole packets and decodable. One failure, one clear.
#[test]
fn files_that_cannot_be_deleted_are_deleted_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("faults.log");
    let ring = dir.path().join("ring");
    let env = fault_env(
        &ring,
        "segment-000000000002.ts",
        "writev,ftruncate,unlink",
        &[("FAULT_COUNT", "2"), ("FAULT_LOG", &log.display().to_string())],
    );
    // Paced (2 ms a 4 KiB buffer), so that the retry interval passes while
    // the stream still runs.
    let (exited, ok, text) = gst_launch(
        &format!(
            "-m filesrc location={} blocksize=4096 ! identity sleep-time=2000 ! streambuffersink location={} \
             segment-duration={SECOND} max-duration=0 retry-interval=10000000",
            test_stream(16).display(),
            ring.display()
        ),
        &env,
        Duration::from_secs(60),
    );
    assert!(exited && ok, "no hang, no ERROR in drop mode: {text}");
    let injected = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(injected.contains("unlink"), "a deletion failed: {injected}");
    assert_eq!(text.matches("streambuffer-write-failure, ").count(), 1, "{text}");
    assert_eq!(text.matches("streambuffer-write-failure-clear, ").count(), 1, "{text}");
    assert!(
        !ring.join("segment-000000000002.ts").exists(),
        "deleted once writes worked"
    );
    let listed: Vec<String> = playlist(&ring).segments.iter().map(|s| s.uri.clone()).collect();
    for s in segments(&ring) {
        let name = s.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        assert!(listed.contains(&name), "{name} is on disk but not listed: {listed:?}");
        assert_segment_well_formed(&s);
    }
    ffmpeg_decode(&ring.join("index.m3u8")).expect("the ring plays");
}

/// Every write to a segment writes only half of what was asked (the fault
/// shim's short writes): no failure, nothing lost, byte for byte.
#[test]
fn short_writes_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("faults.log");
    let ring = dir.path().join("ring");
    let env = fault_env(
        &ring,
        "segment-",
        "write,writev",
        &[("FAULT_SHORT", "1"), ("FAULT_LOG", &log.display().to_string())],
    );
    let (ok, text) = record_in_process(&ring, 12, &format!("segment-duration={SECOND} max-duration=0"), &env);
    assert!(ok, "{text}");
    assert!(
        std::fs::read_to_string(&log).is_ok_and(|l| l.lines().count() > 10),
        "short writes were made"
    );
    assert!(!text.contains("streambuffer-write-failure"), "{text}");
    assert_ring_holds_test_stream(&ring, 12);
}

/// Linking an evicted file to its new segment name fails (EIO from the
/// shim on `linkat`): the segment gets a new file instead; no failure, and
/// the ring stays whole.
#[test]
fn a_failing_link_falls_back_to_a_new_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("faults.log");
    let ring = dir.path().join("ring");
    let env = fault_env(
        &ring,
        "segment-",
        "linkat",
        &[("FAULT_LOG", &log.display().to_string())],
    );
    let (ok, text) = record_in_process(
        &ring,
        20,
        &format!("segment-duration={SECOND} max-duration=4000000000"),
        &env,
    );
    assert!(ok, "{text}");
    assert!(
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("linkat")),
        "reusing a file was tried and failed"
    );
    assert!(!text.contains("streambuffer-write-failure"), "{text}");
    assert!(!ring.join(".reusable-segment").exists());
    let listed: Vec<String> = playlist(&ring).segments.iter().map(|s| s.uri.clone()).collect();
    for s in segments(&ring) {
        let name = s.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        assert!(listed.contains(&name), "{name} not listed: {listed:?}");
        assert_segment_well_formed(&s);
        ffmpeg_decode(&s).unwrap_or_else(|e| panic!("{}: {e}", s.display()));
    }
}

/// RLIMIT_NOFILE (with `prlimit`): at the lowest limit where the pipeline
/// still starts, the sink cannot create its segments (EMFILE). One
/// failure, no ERROR in drop mode, no crash, and nothing torn or unlisted
/// left in the ring. The limit is searched for, since how many descriptors
/// GStreamer itself holds differs between machines.
#[test]
fn too_many_open_files_is_one_failure_and_no_error() {
    let input = test_stream(12);
    for limit in 8..64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring = dir.path().join("ring");
        let (exited, ok, text) = run_bounded(
            "prlimit",
            &format!(
                "--nofile={limit}:{limit} gst-launch-1.0 -m filesrc location={} ! streambuffersink location={} \
                 segment-duration={SECOND} max-duration=0",
                input.display(),
                ring.display()
            ),
            NO_ENV,
            Duration::from_secs(60),
        );
        assert!(exited, "hung with {limit} descriptors: {text}");
        let failures = text.matches("streambuffer-write-failure, ").count();
        if !ok || failures == 0 {
            // Too few for GStreamer to start at all, or enough for everything.
            assert!(failures == 0 || ok, "{text}");
            continue;
        }
        assert_eq!(failures, 1, "one episode: {text}");
        assert!(text.contains("Too\\ many\\ open\\ files"), "{text}");
        assert!(!text.contains("ERROR"), "{text}");
        let listed: Vec<String> = if ring.join("index.m3u8").exists() {
            playlist(&ring).segments.iter().map(|s| s.uri.clone()).collect()
        } else {
            Vec::new()
        };
        for s in segments(&ring) {
            let name = s.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            assert!(listed.contains(&name), "{name} on disk but not listed");
            assert_segment_well_formed(&s);
        }
        return;
    }
    panic!("no descriptor limit made segment creation fail");
}
