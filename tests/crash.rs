// SPDX-License-Identifier: MPL-2.0
//! Crashes and hostile directories: SIGKILL at random moments, planted
//! symbolic links, file modes.
// Real kernel behaviour (tmpfs, FIFOs, signals, gst-launch-1.0 children):
// these tests run on Unix.
#![cfg(unix)]

mod common;

use std::process::{Child, Command};
use std::time::Duration;

use common::{
    PACKET, SECOND,
    media::{ffmpeg_decode, pcr_of, pid},
    pipelines::{element_messages, eos_and_wait, launch, lock_events, watch},
    plugin_dir,
    processes::spawn_live_writer,
    rings::{assert_segment_well_formed, playlist, playlist_entries, segments},
    wait_until,
};

/// A live recorder of 1 s segments in another process; `source_props` go
/// to videotestsrc, `window` is the sink's `max-duration`.
fn spawn_writer(ring: &std::path::Path, source_props: &str, window: u64) -> Child {
    Command::new("gst-launch-1.0")
        .env("GST_PLUGIN_PATH", plugin_dir())
        .args(["-q", "-e", "videotestsrc", "is-live=true", "pattern=ball"])
        .args(source_props.split_whitespace())
        .args(
            "! video/x-raw,width=320,height=240,framerate=25/1 ! \
             x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast bitrate=800 ! mpegtsmux ! \
             streambuffersink segment-duration=1000000000"
                .split_whitespace(),
        )
        .arg(format!("max-duration={window}"))
        .arg(format!("location={}", ring.display()))
        .spawn()
        .expect("spawn writer")
}

/// SIGKILL the recording process 20 times at pseudo-random moments: every
/// restart adopts the ring, torn tails are trimmed, the playlist stays valid
/// and everything plays.
#[test]
fn sigkill_at_random_moments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let mut rng = 0x9E37_79B9u32;
    for round in 0..20 {
        let mut child = spawn_writer(&ring, "", 0);
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        // Between 0.3 s and 2.8 s: before, during and after rotations.
        std::thread::sleep(Duration::from_millis(300 + u64::from(rng % 2500)));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().expect("wait");
        assert!(!status.success(), "round {round}: the writer was not killed");
    }
    // A last, orderly run.
    let mut child = spawn_writer(&ring, "num-buffers=75", 0);
    let status = child.wait().expect("wait");
    assert!(status.success());

    let segs = segments(&ring);
    assert!(segs.len() >= 15, "{} segments after 21 runs", segs.len());
    for s in &segs {
        assert_segment_well_formed(s);
        ffmpeg_decode(s).unwrap_or_else(|e| panic!("{}: {e}", s.display()));
    }
    let pl = playlist(&ring);
    assert!(pl.end_list);
    let listed: Vec<String> = pl.segments.iter().map(|s| s.uri.clone()).collect();
    let on_disk: Vec<String> = segs
        .iter()
        .map(|p| p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned())
        .collect();
    assert_eq!(listed, on_disk, "the playlist lists exactly the segments on disk");
    let mut numbers: Vec<u64> = on_disk.iter().filter_map(|n| n[8..20].parse().ok()).collect();
    let sorted = numbers.clone();
    numbers.dedup();
    assert_eq!(numbers, sorted, "sequence numbers only grow");
    assert!(
        pl.segments.iter().filter(|s| s.discontinuity).count() >= 10,
        "restarts are discontinuities"
    );
    ffmpeg_decode(&ring.join("index.m3u8")).expect("the adopted ring plays");
}

/// SIGKILL a recorder with a 4 s window, so that it writes over evicted
/// segments' files, at moments that fall inside such segments; after each
/// kill a short orderly run adopts the ring. No segment keeps an evicted
/// segment's packets after its own: in every one, each PID's continuity
/// counter steps by one and the PCR only rises, by less than a second.
#[test]
fn sigkill_while_reusing_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let window = 4 * SECOND;
    let mut rng = 0x2545_F491u32;
    let mut checked = 0;
    for round in 0..8 {
        let mut child = spawn_writer(&ring, "", window);
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        // Past the first window, then anywhere within a segment.
        std::thread::sleep(Duration::from_millis(5500 + u64::from(rng % 1000)));
        let _ = child.kill(); // SIGKILL
        assert!(!child.wait().expect("wait").success(), "round {round}: not killed");
        let status = spawn_writer(&ring, "num-buffers=5", window).wait().expect("wait");
        assert!(status.success(), "round {round}: the adopting run failed");
        for s in segments(&ring) {
            assert_segment_well_formed(&s);
            assert_one_continuous_run(&s);
            checked += 1;
        }
    }
    assert!(checked >= 8 * 4, "{checked} segments checked");
    let reused = std::fs::read(ring.join("ring.progress")).map_or(0, |r| r.len());
    assert_eq!(reused, 24, "the writers reused files (a progress record exists)");
}

/// Asserts `path` holds one uninterrupted run of the stream: per PID, the
/// continuity counter of each packet with payload follows the previous one,
/// and PCRs rise by less than a second.
fn assert_one_continuous_run(path: &std::path::Path) {
    let data = std::fs::read(path).expect("read");
    let mut cc = std::collections::HashMap::new();
    let mut last_pcr = None;
    for (i, p) in data.chunks(PACKET).enumerate() {
        // A null packet's counter means nothing (ISO/IEC 13818-1).
        if p[3] & 0x10 != 0 && pid(p) != 0x1FFF {
            let counter = p[3] & 0x0F;
            if let Some(prev) = cc.insert(pid(p), counter) {
                assert_eq!(
                    counter,
                    (prev + 1) & 0x0F,
                    "{}: packet {i} breaks the continuity",
                    path.display()
                );
            }
        }
        if let Some(pcr) = pcr_of(p) {
            if let Some(prev) = last_pcr {
                assert!(
                    pcr > prev && pcr - prev < 27_000_000,
                    "{}: packet {i}: PCR {prev} -> {pcr}",
                    path.display()
                );
            }
            last_pcr = Some(pcr);
        }
    }
}

/// A symbolic link planted where the next segment will go is refused (a
/// write failure, then recording goes on) and never written through.
#[test]
fn planted_symlink_is_never_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious").expect("victim");
    let pipeline = launch(&format!(
        "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=25/1 ! \
         x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast ! mpegtsmux ! \
         streambuffersink name=sink location={} segment-duration={} retry-interval={}",
        ring.display(),
        SECOND,
        SECOND / 10
    ));
    let events = watch(&pipeline, "sink");
    gst::prelude::ElementExt::set_state(&pipeline, gst::State::Playing).expect("play");
    assert!(wait_until(Duration::from_secs(30), || segments(&ring).len() >= 2));
    let newest: u64 = segments(&ring)
        .iter()
        .filter_map(|p| p.file_name()?.to_str()?.get(8..20)?.parse().ok())
        .max()
        .expect("a segment");
    for seq in newest + 1..newest + 4 {
        std::os::unix::fs::symlink(&victim, ring.join(format!("segment-{seq:012}.ts"))).expect("plant");
    }
    assert!(
        wait_until(Duration::from_secs(30), || !lock_events(&events).clears.is_empty()),
        "no failure/clear around the planted links: {:?}",
        lock_events(&events)
    );
    eos_and_wait(&pipeline, Duration::from_secs(30)).expect("EOS");
    gst::prelude::ElementExt::set_state(&pipeline, gst::State::Null).expect("stop");
    assert_eq!(std::fs::read(&victim).expect("victim"), b"precious");
    for seq in newest + 1..newest + 4 {
        let p = ring.join(format!("segment-{seq:012}.ts"));
        assert!(
            std::fs::symlink_metadata(&p).expect("link").file_type().is_symlink(),
            "{} replaced",
            p.display()
        );
    }
    let e = lock_events(&events);
    assert_eq!(
        e.failures.first().map(|f| f.0.as_str()),
        Some("open-write"),
        "{:?}",
        e.failures
    );
    assert!(
        !playlist(&ring)
            .segments
            .iter()
            .any(|s| s.uri.contains(&format!("{:012}", newest + 1)))
    );
}

/// Files are created with mode 0644 minus the umask.
#[test]
fn files_respect_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let status = Command::new("bash")
        .args([
            "-c",
            &format!(
                "umask 027; exec gst-launch-1.0 -q videotestsrc num-buffers=60 ! x264enc ! mpegtsmux ! \
                 streambuffersink location={} segment-duration=1000000000",
                ring.display()
            ),
        ])
        .env("GST_PLUGIN_PATH", plugin_dir())
        .status()
        .expect("run");
    assert!(status.success());
    for entry in std::fs::read_dir(&ring).expect("dir") {
        let entry = entry.expect("entry");
        let mode = entry.metadata().expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{}", entry.path().display());
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// A writer killed (SIGKILL) in the middle of a segment and restarted 3 s
/// later: the recovered segment's EXT-X-PROGRAM-DATE-TIME comes from its
/// index (when it was recorded, not when the file was last touched), so
/// it and the first new segment's bracket the outage; a reader following
/// the ring live meanwhile reports the outage as a time hole.
#[test]
fn after_a_crash_the_date_times_bracket_the_outage() {
    use gst::prelude::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let mut first = spawn_live_writer(&ring, 2 * SECOND, 60, "max-duration=0");
    assert!(
        wait_until(Duration::from_secs(30), || playlist_entries(&ring) >= 2),
        "writer did not start"
    );
    let reader = launch(&format!(
        "streambuffersrc location={} start-position=live ! fakesink",
        ring.display()
    ));
    let bus = reader.bus().expect("bus");
    reader.set_state(gst::State::Playing).expect("play");
    std::thread::sleep(Duration::from_millis(3000));
    first.kill().expect("SIGKILL");
    let killed_ms = now_ms();
    let _ = first.wait();
    std::thread::sleep(Duration::from_secs(3));
    let restarted_ms = now_ms();
    let mut second = spawn_live_writer(&ring, 2 * SECOND, 6, "max-duration=0");
    assert!(second.wait().expect("second writer").success());
    let holes = element_messages(&bus, "streambuffer-time-hole");
    let _ = reader.set_state(gst::State::Null);

    let pl = playlist(&ring);
    let new = pl
        .segments
        .iter()
        .rposition(|s| s.discontinuity)
        .expect("the restart's discontinuity");
    let (recovered, first_new) = (&pl.segments[new - 1], &pl.segments[new]);
    let pdt = |s: &m3u8_rs::MediaSegment| s.program_date_time.expect("PDT").timestamp_millis();
    let recovered_end = pdt(recovered) + (f64::from(recovered.duration) * 1000.0) as i64;
    assert!(
        recovered_end <= killed_ms + 500 && recovered_end >= killed_ms - 3000,
        "recovered segment ends at {recovered_end}, killed at {killed_ms}"
    );
    assert!(
        pdt(first_new) >= restarted_ms && pdt(first_new) <= restarted_ms + 5000,
        "first new segment at {}, restarted at {restarted_ms}",
        pdt(first_new)
    );
    let outage = pdt(first_new) - recovered_end;
    assert!(outage >= 2500, "outage of {outage} ms");
    let sizes: Vec<u64> = holes.iter().filter_map(|s| s.get::<u64>("size-ms").ok()).collect();
    assert!(
        sizes.iter().any(|&ms| (ms as i64 - outage).abs() <= 200),
        "time holes {sizes:?} for an outage of {outage} ms"
    );
}
