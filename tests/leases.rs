// SPDX-License-Identifier: MPL-2.0
//! Leases across processes: a slow `streambuffersrc` in a `gst-launch-1.0`
//! of its own holds the segment it reads, and the writer (another process)
//! defers evicting it within `lease-max-duration`; `kill -9` of the reader
//! releases it at once; past the limit the writer evicts anyway and the
//! reader is told (`streambuffer-stale-file-deleted`); a full disk evicts a
//! leased segment anyway, and says so.
// flock and signals: these tests run on Unix.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::processes::spawn_live_writer;
use common::rings::playlist;
use common::{SECOND, plugin_dir, wait_until};

/// A reader from the oldest segment that takes a buffer every ten seconds
/// (a viewer far slower than live), its messages in `log`.
fn spawn_slow_reader(ring: &Path, log: &Path) -> Child {
    Command::new("gst-launch-1.0")
        .env("GST_PLUGIN_PATH", plugin_dir())
        .args(["-m"])
        .args(
            format!(
                "streambuffersrc location={} start-position=oldest ! identity sleep-time=10000000 ! fakesink",
                ring.display()
            )
            .split_whitespace(),
        )
        .stdout(std::fs::File::create(log).expect("log"))
        .stderr(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0")
}

/// The first segment the playlist of `ring` lists.
fn first_listed(ring: &Path) -> PathBuf {
    ring.join(&playlist(ring).segments.first().expect("a segment").uri)
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_slow_readers_lease_holds_its_segment_until_it_dies_or_the_limit() {
    common::init();
    let dir = tempfile::tempdir().expect("tempdir");

    // Within the limit: 3 s of window, a minute of leases.
    let ring = dir.path().join("held");
    let writer = spawn_live_writer(
        &ring,
        SECOND,
        120,
        &format!("max-duration={} lease-max-duration={}", 3 * SECOND, 60 * SECOND),
    );
    assert!(
        wait_until(Duration::from_secs(30), || ring.join("index.m3u8").exists()
            && playlist(&ring).segments.len() >= 3),
        "the writer writes"
    );
    let mut reader = spawn_slow_reader(&ring, &dir.path().join("held.log"));
    std::thread::sleep(Duration::from_secs(3));
    let held = first_listed(&ring);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(first_listed(&ring), held, "the reader's segment is held");
    let listed = playlist(&ring).segments.len();
    assert!(listed >= 8, "the window grew past 3 s for the lease: {listed} segments");
    assert!(reader.try_wait().expect("reader").is_none(), "the reader reads");
    // kill -9: the kernel drops the lease; the next rotation evicts.
    let _ = Command::new("kill").args(["-9", &reader.id().to_string()]).status();
    let _ = reader.wait();
    assert!(
        wait_until(Duration::from_secs(10), || !held.exists()
            && playlist(&ring).segments.len() <= 4),
        "released at once: {} segments",
        playlist(&ring).segments.len()
    );
    stop(writer);

    // Past the limit (4 s held back at most): evicted anyway, the reader told.
    let ring = dir.path().join("capped");
    let writer = spawn_live_writer(
        &ring,
        SECOND,
        120,
        &format!("max-duration={} lease-max-duration={}", 3 * SECOND, 4 * SECOND),
    );
    assert!(
        wait_until(Duration::from_secs(30), || ring.join("index.m3u8").exists()
            && playlist(&ring).segments.len() >= 3),
        "the writer writes"
    );
    let log = dir.path().join("capped.log");
    let reader = spawn_slow_reader(&ring, &log);
    std::thread::sleep(Duration::from_secs(2));
    let held = first_listed(&ring);
    let mut most = 0;
    assert!(
        wait_until(Duration::from_secs(30), || {
            most = most.max(playlist(&ring).segments.len());
            !held.exists()
        }),
        "evicted past the limit"
    );
    // 3 s of window, 4 s held back, the segment being looked at.
    assert!(most <= 9, "held back no more than the limit allows: {most} segments");
    assert!(
        wait_until(Duration::from_secs(40), || std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains("streambuffer-stale-file-deleted"))),
        "the reader is told: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    stop(reader);
    stop(writer);
}

/// A full disk does not wait for leases: the oldest segment, leased by a
/// slow reader in another process (and well within the lease limit), is
/// evicted first to make room, the sink reports it
/// (`streambuffer-evicted-under-pressure`), nothing is lost, and the reader
/// is told (`streambuffer-stale-file-deleted`).
#[test]
fn a_full_disk_evicts_a_leased_segment_first_and_says_so() {
    use common::pipelines::{launch, lock_events, stat_u64, stats, watch};
    use gst::prelude::*;
    common::init();
    let Some(fs) = common::processes::Tmpfs::mount("12M") else {
        return;
    };
    let ring = fs.path().join("ring");
    let pipeline = launch(&format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 ! \
         x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast bitrate=800 ! mpegtsmux ! \
         streambuffersink name=sink location={} segment-duration={SECOND} max-duration={} \
         lease-max-duration={} retry-interval={}",
        ring.display(),
        600 * SECOND,
        600 * SECOND,
        SECOND / 5
    ));
    let events = watch(&pipeline, "sink");
    pipeline.set_state(gst::State::Playing).expect("play");
    assert!(
        wait_until(Duration::from_secs(30), || ring.join("index.m3u8").exists()
            && playlist(&ring).segments.len() >= 3),
        "the writer writes"
    );
    // The reader's log off the full filesystem.
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("reader.log");
    let reader = spawn_slow_reader(&ring, &log);
    std::thread::sleep(Duration::from_secs(2));
    let held = first_listed(&ring);
    // The reader's shared lock: an exclusive one cannot be had.
    assert!(
        wait_until(Duration::from_secs(10), || std::fs::File::open(&held)
            .is_ok_and(|f| matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)))),
        "the reader holds no lease on {}",
        held.display()
    );
    let _ballast = fs.fill();
    let under_pressure = || {
        lock_events(&events)
            .messages
            .iter()
            .any(|m| m == "streambuffer-evicted-under-pressure")
    };
    assert!(
        wait_until(Duration::from_secs(30), || under_pressure() && !held.exists()),
        "the leased oldest segment was not evicted for the full disk ({} exists: {})",
        held.display(),
        held.exists()
    );
    assert!(
        wait_until(Duration::from_secs(40), || std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains("streambuffer-stale-file-deleted"))),
        "the reader is told: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let counters = stats(&pipeline, "sink");
    stop(reader);
    pipeline.set_state(gst::State::Null).expect("stop");
    assert!(stat_u64(&counters, "evicted-under-pressure") >= 1, "{counters:?}");
    let e = lock_events(&events);
    assert!(
        e.failures.is_empty(),
        "eviction made room, nothing was lost: {:?}",
        e.failures
    );
}
