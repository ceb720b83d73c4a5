// SPDX-License-Identifier: MPL-2.0
//! The archive tier against a real S3-protocol server (`s3s-fs`, started
//! here on 127.0.0.1 at a free port): what goes up, byte for byte; that
//! players play it from the bucket; outages, wrong credentials, a missing
//! bucket, SIGKILL, the hold limit and retention. Every sink runs in a
//! `gst-launch-1.0` process of its own, with the credentials in its
//! environment, as a deployment would run it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::pipelines::{PlayFor, playbin_buffers};
use common::rings::playlist;
use common::s3::S3Server;
use common::{SECOND, plugin_dir, wait_until};
use gst::prelude::*;

const BUCKET: &str = "tv-archive";

/// A live writer of H.264 and AAC (`seconds` of each) into `ring`, with
/// `props` on the sink and `env`, its messages (`-m`) in `log`.
fn spawn_writer(ring: &Path, seconds: u32, props: &str, env: &[(&str, String)], log: &Path) -> Child {
    let desc = format!(
        "-e -m videotestsrc is-live=true num-buffers={} pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 ! \
         x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast bitrate=600 ! queue ! mpegtsmux name=m ! \
         streambuffersink name=sink location={} {props} \
         audiotestsrc is-live=true num-buffers={} samplesperbuffer=1024 ! audio/x-raw,rate=48000 ! avenc_aac ! queue ! m.",
        seconds * 25,
        ring.display(),
        seconds * 48000 / 1024,
    );
    let out = std::fs::File::create(log).expect("log");
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.env("GST_PLUGIN_PATH", plugin_dir())
        .args(desc.split_whitespace())
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("gst-launch-1.0")
}

/// Waits for `child` (bounded: a hang fails); returns its output.
fn finish(mut child: Child, log: &Path) -> String {
    let exited = wait_until(Duration::from_secs(90), || child.try_wait().ok().flatten().is_some());
    if !exited {
        let _ = child.kill();
    }
    let status = child.wait().expect("wait");
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(exited, "the writer hung: {text}");
    assert!(status.success(), "the writer failed: {text}");
    assert!(!text.contains("ERROR"), "an ERROR was posted: {text}");
    text
}

fn record(ring: &Path, seconds: u32, props: &str, env: &[(&str, String)]) -> String {
    let log = ring.with_extension("log");
    finish(spawn_writer(ring, seconds, props, env, &log), &log)
}

/// Element messages named `name` in gst-launch -m output.
fn messages<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let needle = format!("(element): {name}, ");
    text.lines().filter(|l| l.contains(&needle)).collect()
}

/// The segment keys of the archive (data objects), sorted by time.
fn archived_segments(server: &S3Server, prefix: &str) -> Vec<String> {
    server
        .keys(BUCKET, prefix)
        .into_iter()
        .filter(|k| k.ends_with(".ts"))
        .collect()
}

/// The segment number in an archive key (`.../hhmmssmmm-NNNNNNNNNNNN.ts`).
fn number_of(key: &str) -> u64 {
    let name = key.rsplit('/').next().expect("name");
    name.trim_end_matches(".ts")
        .split_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .expect("segment number")
}

fn queued(ring: &Path) -> usize {
    std::fs::read_dir(ring.join("archive-queue"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".info"))
                .count()
        })
        .unwrap_or(0)
}

/// Every segment the ring lists is in the archive with the same bytes (and
/// its index with the same bytes); returns the archived keys.
fn assert_ring_archived(server: &S3Server, prefix: &str, ring: &Path) -> Vec<String> {
    let archived = archived_segments(server, prefix);
    let listed = playlist(ring);
    assert!(!listed.segments.is_empty(), "the ring is empty");
    for entry in &listed.segments {
        let local = ring.join(&entry.uri);
        let number: u64 = entry
            .uri
            .trim_start_matches("segment-")
            .trim_end_matches(".ts")
            .parse()
            .expect("n");
        let key = archived
            .iter()
            .find(|k| number_of(k) == number)
            .unwrap_or_else(|| panic!("segment {number} is not in the archive: {archived:?}"));
        let remote = std::fs::read(server.object(BUCKET, key)).expect("object");
        assert!(
            std::fs::read(&local).expect("segment") == remote,
            "{key} differs from {}",
            local.display()
        );
        let index_key = key.replace(".ts", ".idx");
        let local_index = local.with_extension("idx");
        if local_index.exists() {
            assert_eq!(
                std::fs::read(&local_index).expect("index"),
                std::fs::read(server.object(BUCKET, &index_key)).expect("index object"),
                "{index_key}"
            );
        }
    }
    archived
}

/// The hour playlists of the archive, parsed by m3u8-rs.
fn hour_playlists(server: &S3Server, prefix: &str) -> Vec<(PathBuf, m3u8_rs::MediaPlaylist)> {
    server
        .keys(BUCKET, prefix)
        .into_iter()
        .filter(|k| k.ends_with("/index.m3u8"))
        .map(|k| {
            let path = server.object(BUCKET, &k);
            let bytes = std::fs::read(&path).expect("playlist");
            let parsed = m3u8_rs::parse_media_playlist_res(&bytes).expect("a media playlist");
            (path, parsed)
        })
        .collect()
}

#[test]
fn the_archive_holds_every_segment_byte_for_byte_and_players_play_it_from_the_bucket() {
    let server = S3Server::start(BUCKET);
    let tmp = tempfile::tempdir().expect("tmp");
    let ring = tmp.path().join("ring");
    let props = format!("segment-duration={} {}", 2 * SECOND, server.sink_props(BUCKET, "ch1"));
    let out = record(&ring, 12, &props, &server.env());
    assert!(messages(&out, "streambuffer-archive-failure").is_empty(), "{out}");
    let archived = assert_ring_archived(&server, "ch1", &ring);
    assert_eq!(archived.len(), playlist(&ring).segments.len());
    assert_eq!(queued(&ring), 0, "the queue is empty once archived");

    // The hour's playlist lists them all, each with its date-time, ended.
    let hours = hour_playlists(&server, "ch1");
    assert!(!hours.is_empty());
    let listed: usize = hours.iter().map(|(_, p)| p.segments.len()).sum();
    assert_eq!(listed, archived.len());
    for (path, p) in &hours {
        assert!(
            p.end_list,
            "{} has no EXT-X-ENDLIST after the recording ended",
            path.display()
        );
        assert!(p.segments.iter().all(|s| s.program_date_time.is_some()));
    }
    let window = std::fs::read(server.object(BUCKET, "ch1/archive.m3u8")).expect("window playlist");
    let window = m3u8_rs::parse_media_playlist_res(&window).expect("window playlist parses");
    assert_eq!(window.segments.len(), archived.len());

    // Straight from the bucket (public, unsigned), as a CDN would serve it.
    let reader = server.public_reader();
    let hour = hours[0].0.parent().and_then(|p| p.file_name()).expect("hour");
    let uri = format!(
        "{}/{BUCKET}/ch1/{}/index.m3u8",
        reader.endpoint(),
        hour.to_string_lossy()
    );
    let (video, audio) =
        playbin_buffers(&uri, PlayFor::Eos(Duration::from_secs(60))).expect("playbin plays the archive");
    assert!(video >= 200, "video frames: {video}");
    assert!(audio >= 300, "audio frames: {audio}");
    let window_uri = format!("{}/{BUCKET}/ch1/archive.m3u8", reader.endpoint());
    let (video, audio) = playbin_buffers(&window_uri, PlayFor::Eos(Duration::from_secs(60))).expect("window plays");
    assert!(video >= 200 && audio >= 300, "{video} {audio}");
}

#[test]
fn an_outage_is_one_failure_and_one_clear_and_loses_nothing() {
    let mut server = S3Server::start(BUCKET);
    let tmp = tempfile::tempdir().expect("tmp");
    let ring = tmp.path().join("ring");
    let log = tmp.path().join("writer.log");
    let props = format!("segment-duration={SECOND} {}", server.sink_props(BUCKET, "ch2"));
    let writer = spawn_writer(&ring, 20, &props, &server.env(), &log);
    assert!(
        wait_until(Duration::from_secs(30), || archived_segments(&server, "ch2").len() >= 2),
        "nothing was archived"
    );
    server.stop();
    assert!(
        wait_until(Duration::from_secs(30), || queued(&ring) >= 3),
        "segments did not queue up while the server was down"
    );
    server.restart();
    let out = finish(writer, &log);
    let failures = messages(&out, "streambuffer-archive-failure");
    let clears = messages(&out, "streambuffer-archive-failure-clear");
    assert_eq!(failures.len(), 1, "one failure per outage: {failures:?}");
    assert_eq!(clears.len(), 1, "one clear per outage: {clears:?}");
    assert!(failures[0].contains("waiting=(guint64)"), "{}", failures[0]);
    assert!(messages(&out, "streambuffer-archive-hole").is_empty(), "{out}");
    let archived = assert_ring_archived(&server, "ch2", &ring);
    let numbers: Vec<u64> = archived.iter().map(|k| number_of(k)).collect();
    let expected: Vec<u64> = (0..numbers.len() as u64).collect();
    assert_eq!(numbers, expected, "every segment, once, in order");
    assert_eq!(queued(&ring), 0);
}

#[test]
fn wrong_credentials_and_a_missing_bucket_are_reported_and_the_ring_is_unaffected() {
    let server = S3Server::start(BUCKET);
    let tmp = tempfile::tempdir().expect("tmp");
    for (name, props, env, expected) in [
        (
            "wrong-key",
            server.sink_props(BUCKET, "ch3"),
            vec![
                ("AWS_ACCESS_KEY_ID", "someone-else".to_owned()),
                ("AWS_SECRET_ACCESS_KEY", "wrong".to_owned()),
            ],
            "403",
        ),
        (
            "no-bucket",
            server.sink_props("no-such-bucket", "ch3"),
            server.env(),
            "404",
        ),
    ] {
        let ring = tmp.path().join(name);
        let out = record(&ring, 6, &format!("segment-duration={SECOND} {props}"), &env);
        let failures = messages(&out, "streambuffer-archive-failure");
        assert_eq!(failures.len(), 1, "{name}: {out}");
        assert!(failures[0].contains(expected), "{name}: {}", failures[0]);
        assert!(messages(&out, "streambuffer-archive-failure-clear").is_empty());
        // The local ring is whole and ended; what could not go up waits.
        let listed = playlist(&ring);
        assert!(listed.end_list && listed.segments.len() >= 5, "{name}: {listed:?}");
        assert_eq!(queued(&ring), listed.segments.len(), "{name}: all wait for the archive");
    }
    assert!(archived_segments(&server, "ch3").is_empty());
}

#[test]
fn a_writer_killed_during_uploads_completes_the_archive_when_restarted() {
    let mut server = S3Server::start(BUCKET);
    let tmp = tempfile::tempdir().expect("tmp");
    let ring = tmp.path().join("ring");
    let log = tmp.path().join("first.log");
    let props = format!("segment-duration={SECOND} {}", server.sink_props(BUCKET, "ch4"));
    let mut first = spawn_writer(&ring, 60, &props, &server.env(), &log);
    assert!(wait_until(Duration::from_secs(30), || archived_segments(
        &server, "ch4"
    )
    .len()
        >= 2));
    server.stop();
    assert!(wait_until(Duration::from_secs(30), || queued(&ring) >= 3));
    // SIGKILL: no EOS, no stop, a segment half written, uploads pending.
    first.kill().expect("kill -9");
    first.wait().expect("reaped");
    server.restart();
    record(&ring, 4, &props, &server.env());
    let archived = assert_ring_archived(&server, "ch4", &ring);
    let numbers: Vec<u64> = archived.iter().map(|k| number_of(k)).collect();
    let expected: Vec<u64> = (0..numbers.len() as u64).collect();
    assert_eq!(numbers, expected, "every segment of both runs, once");
    assert_eq!(queued(&ring), 0);
}

#[test]
fn evicted_segments_are_held_until_archived_and_past_the_hold_limit_become_counted_holes() {
    // The server is down while the ring (a 3 s window) evicts: the queue
    // holds the evicted segments; when it is back, all of them go up.
    let mut server = S3Server::start(BUCKET);
    let tmp = tempfile::tempdir().expect("tmp");
    let ring = tmp.path().join("held");
    let log = tmp.path().join("held.log");
    server.stop();
    let props = format!(
        "segment-duration={SECOND} max-duration={} {}",
        3 * SECOND,
        server.sink_props(BUCKET, "ch5")
    );
    let writer = spawn_writer(&ring, 16, &props, &server.env(), &log);
    assert!(wait_until(Duration::from_secs(30), || queued(&ring) >= 8));
    assert!(playlist(&ring).segments.len() <= 5, "the ring evicted on as usual");
    server.restart();
    let out = finish(writer, &log);
    assert!(messages(&out, "streambuffer-archive-hole").is_empty(), "{out}");
    let numbers: Vec<u64> = archived_segments(&server, "ch5").iter().map(|k| number_of(k)).collect();
    let last = playlist(&ring)
        .segments
        .last()
        .map(|s| s.uri.clone())
        .expect("segments");
    let last: u64 = last
        .trim_start_matches("segment-")
        .trim_end_matches(".ts")
        .parse()
        .expect("n");
    assert_eq!(
        numbers,
        (0..=last).collect::<Vec<u64>>(),
        "evicted segments were archived too"
    );
    assert_eq!(queued(&ring), 0);
    let files = std::fs::read_dir(&ring).expect("ring").flatten().count();
    assert!(files < 20, "held files were deleted once archived ({files} files)");

    // A hold limit of one byte: evicted segments are let go, each a hole,
    // reported and counted; the ring records on.
    let ring = tmp.path().join("holes");
    server.stop();
    let out = record(&ring, 8, &format!("{props} archive-hold-size=1"), &server.env());
    let holes = messages(&out, "streambuffer-archive-hole");
    assert!(holes.len() >= 2, "{out}");
    assert!(
        holes.iter().all(|h| h.contains("reason=(string)hold-limit")),
        "{holes:?}"
    );
    assert!(
        holes
            .last()
            .is_some_and(|h| h.contains(&format!("holes=(guint64){}", holes.len())))
    );
    let listed = playlist(&ring);
    assert!(listed.end_list && !listed.segments.is_empty());
    assert!(
        queued(&ring) <= listed.segments.len() + 1,
        "only what the ring keeps waits"
    );
}

#[test]
fn the_archive_window_slides() {
    let server = S3Server::start(BUCKET);
    let tmp = tempfile::tempdir().expect("tmp");
    let ring = tmp.path().join("ring");
    let props = format!(
        "segment-duration={SECOND} archive-max-duration={} {}",
        4 * SECOND,
        server.sink_props(BUCKET, "ch6")
    );
    record(&ring, 14, &props, &server.env());
    let archived = archived_segments(&server, "ch6");
    let created = playlist(&ring).segments.len();
    assert!(created >= 12, "{created}");
    assert!(
        (3..=8).contains(&archived.len()),
        "about 4 s of 1 s segments stay: {archived:?}"
    );
    assert!(number_of(&archived[0]) >= 5, "the oldest went: {archived:?}");
    // Indexes went with their segments; playlists list only what is there.
    let indexes = server
        .keys(BUCKET, "ch6")
        .iter()
        .filter(|k| k.ends_with(".idx"))
        .count();
    assert_eq!(indexes, archived.len());
    for (path, p) in hour_playlists(&server, "ch6") {
        let dir = path.parent().expect("hour");
        for s in &p.segments {
            assert!(dir.join(&s.uri).exists(), "{} lists deleted {}", path.display(), s.uri);
        }
    }
}

#[test]
fn a_slow_server_does_not_slow_recording() {
    // About 80 KB/s each way, the stream's own rate: uploads lag behind,
    // recording does not notice.
    let server = S3Server::start(BUCKET);
    let proxy = common::s3::SlowProxy::start(&server.endpoint(), 8192, Duration::from_millis(100));
    let tmp = tempfile::tempdir().expect("tmp");
    let ring = tmp.path().join("ring");
    let props = format!("segment-duration={SECOND} {}", proxy.sink_props(BUCKET, "ch7"));
    let out = record(&ring, 10, &props, &server.env());
    assert!(messages(&out, "streambuffer-write-failure").is_empty(), "{out}");
    let listed = playlist(&ring);
    assert!(listed.end_list && listed.segments.len() >= 9, "{listed:?}");
    // Every frame recorded, audio and video, played through playbin.
    let uri = format!("streambuffer://{}", ring.display());
    let (video, audio) = playbin_buffers(&uri, PlayFor::Eos(Duration::from_secs(60))).expect("the ring plays");
    assert!(video >= 240 && audio >= 440, "video {video}, audio {audio}");
    // What went up is whole; what did not is still queued, nothing lost.
    let archived = archived_segments(&server, "ch7");
    assert!(!archived.is_empty(), "nothing went up");
    for key in &archived {
        let local = ring.join(format!("segment-{:012}.ts", number_of(key)));
        assert_eq!(
            std::fs::read(server.object(BUCKET, key)).expect("object"),
            std::fs::read(&local).expect("segment"),
            "{key}"
        );
    }
    assert_eq!(archived.len() + queued(&ring), listed.segments.len());
}

/// `streambuffer ARGS` with `env`; returns (success, stdout + stderr).
fn tool(args: &[&str], env: &[(&str, String)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_streambuffer"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("streambuffer");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// One live input (H.264 and AAC, `frames` video frames at 25/s), two
/// sinks: `short`, a ring with a 3 s window and the archive `archive_props`
/// say, and `whole`, a ring that keeps everything; 1 s segments. Returns their directories (in `tmp`).
fn record_short_and_whole(server: &S3Server, archive_props: &str, tmp: &Path, frames: u32) -> (PathBuf, PathBuf) {
    let (short, whole) = (tmp.join("short"), tmp.join("whole"));
    let log = tmp.join("tee.log");
    let desc = format!(
        "-e videotestsrc is-live=true num-buffers={frames} pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 ! \
         x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast bitrate=600 ! queue ! mpegtsmux name=m ! tee name=t \
         t. ! queue ! streambuffersink location={} segment-duration={SECOND} max-duration={} {} \
         t. ! queue ! streambuffersink location={} segment-duration={SECOND} max-duration=0 \
         audiotestsrc is-live=true num-buffers={} samplesperbuffer=1024 ! audio/x-raw,rate=48000 ! avenc_aac ! queue ! m.",
        short.display(),
        3 * SECOND,
        archive_props,
        whole.display(),
        frames * 48000 / 1024 / 25,
    );
    let out = std::fs::File::create(&log).expect("log");
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.env("GST_PLUGIN_PATH", plugin_dir())
        .args(desc.split_whitespace())
        .stdout(out.try_clone().expect("log"))
        .stderr(out);
    for (k, v) in server.env() {
        cmd.env(k, v);
    }
    finish(cmd.spawn().expect("gst-launch-1.0"), &log);
    assert!(playlist(&short).segments.len() <= 5, "the short ring evicted");
    (short, whole)
}

#[test]
fn export_from_the_archive_gives_the_bytes_the_ring_would_have() {
    // A range long gone from the short ring exports from its archive to
    // the same bytes as from the ring that kept everything.
    let server = S3Server::start(BUCKET);
    let tmp = tempfile::tempdir().expect("tmp");
    let (short, whole) = record_short_and_whole(&server, &server.sink_props(BUCKET, "ch8"), tmp.path(), 350);
    let listed = playlist(&whole);
    // From half a second after segment 2 starts to half a second after
    // segment 7 does: mid-GOP at both ends, long evicted from `short`.
    // The playlist dates its first entry; the others follow by duration.
    let first: jiff::Timestamp = listed.segments[0]
        .program_date_time
        .expect("date-time")
        .to_rfc3339()
        .parse()
        .expect("RFC 3339");
    let date = |n: usize| {
        let before: f64 = listed.segments[..n].iter().map(|s| f64::from(s.duration)).sum();
        (first + jiff::SignedDuration::from_secs_f64(before + 0.5)).to_string()
    };
    let (from, to) = (date(2), date(7));
    let (a, b) = (tmp.path().join("a.ts"), tmp.path().join("b.ts"));
    let (ok, text) = tool(
        &[
            "export",
            &short.to_string_lossy(),
            "--from",
            &from,
            "--to",
            &to,
            &a.to_string_lossy(),
        ],
        &server.env(),
    );
    assert!(ok, "{text}");
    assert!(text.contains("from the archive"), "{text}");
    let (ok, text) = tool(
        &[
            "export",
            &whole.to_string_lossy(),
            "--from",
            &from,
            "--to",
            &to,
            &b.to_string_lossy(),
        ],
        &[],
    );
    assert!(ok, "{text}");
    let (a, b) = (std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));
    assert!(a.len() > 100_000, "{} bytes", a.len());
    assert!(
        a == b,
        "the archive's export ({} bytes) differs from the ring's ({} bytes)",
        a.len(),
        b.len()
    );
    // No staging directory is left behind.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("tmp")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".archive"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // info names the archive and what it holds.
    let (ok, text) = tool(&["info", &short.to_string_lossy()], &server.env());
    assert!(ok, "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("archive:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("s3://tv-archive/ch8") && line.contains(&format!("{} segment(s)", listed.segments.len())),
        "{line}"
    );
    assert!(line.contains("0 hole(s)"), "{line}");
}

#[test]
fn hostile_objects_in_the_bucket_are_refused_not_followed() {
    let server = S3Server::start(BUCKET);
    let tmp = tempfile::tempdir().expect("tmp");
    let ring = tmp.path().join("ring");
    let props = format!(
        "segment-duration={SECOND} max-duration={} {}",
        2 * SECOND,
        server.sink_props(BUCKET, "ch9")
    );
    record(&ring, 8, &props, &server.env());
    let hours = hour_playlists(&server, "ch9");
    let (playlist_path, _) = &hours[0];
    let hour_dir = playlist_path.parent().expect("hour").to_owned();
    let original = std::fs::read_to_string(playlist_path).expect("playlist");
    // Names reaching out of the archive, absurd durations, a huge claim:
    // none of it is taken; segments the playlist no longer names are gone
    // from the reader's view, not replaced by anything else.
    let hostile = original
        .replacen("#EXTINF:", "#EXTINF:99999999999,\n../../../etc/passwd\n#EXTINF:", 1)
        .replacen(".ts\n", ".ts\n#EXTINF:1,\n/absolute/path.ts\n", 1);
    std::fs::write(playlist_path, &hostile).expect("plant playlist");
    // And a segment object that is not MPEG-TS at all.
    let first_segment = std::fs::read_dir(&hour_dir)
        .expect("hour")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ts"))
        .min()
        .expect("a segment");
    std::fs::write(&first_segment, vec![0xAB; 10_000]).expect("plant segment");
    let (ok, text) = tool(&["info", &ring.to_string_lossy()], &server.env());
    assert!(ok, "{text}");
    assert!(text.contains("archive:"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    // An export of the archived range: refused or written, never a panic,
    // and never a file that does not start with a TS packet.
    let listed: jiff::Timestamp = text
        .lines()
        .find(|l| l.starts_with("archive:"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|range| range.split(" .. ").next())
        .expect("the archive's first date")
        .parse()
        .expect("RFC 3339");
    let out = tmp.path().join("out.ts");
    let (from, to) = (
        listed.to_string(),
        (listed + jiff::SignedDuration::from_secs(4)).to_string(),
    );
    let (ok, text) = tool(
        &[
            "export",
            &ring.to_string_lossy(),
            "--from",
            &from,
            "--to",
            &to,
            &out.to_string_lossy(),
        ],
        &server.env(),
    );
    assert!(!text.contains("panicked"), "{text}");
    if ok {
        let bytes = std::fs::read(&out).expect("exported");
        assert!(!bytes.is_empty() && bytes[0] == 0x47, "{text}");
    } else {
        assert!(text.contains("streambuffer:"), "a reason is given: {text}");
        assert!(!out.exists(), "nothing written on failure");
    }
    // check names what is wrong.
    let (ok, text) = tool(&["check", &ring.to_string_lossy()], &server.env());
    assert!(!ok, "{text}");
    assert!(text.contains("are not segments of this hour"), "{text}");
    assert!(text.contains("in no playlist"), "{text}");
    // streambuffersrc plays what there is to its end: no ERROR, no hang.
    let _one_at_a_time = credentials_in_process(&server);
    let counts = common::pipelines::launch_counting(
        &format!(
            "streambuffersrc location={} start-position=oldest ! tsdemux ! h264parse ! avdec_h264 ! fakesink name=video",
            ring.display()
        ),
        &["video"],
        PlayFor::Eos(Duration::from_secs(60)),
    )
    .expect("plays to its end");
    assert!(counts[0] >= 100, "video frames: {counts:?}");
}

#[test]
fn a_segment_larger_than_64_mib_goes_up_in_parts_and_whole() {
    // 72 MB of 60 Mbit/s H.264 in one segment (segment-duration 1 h):
    // above the single-PUT limit, so a multipart upload of 16 MiB parts.
    common::init();
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("big.ts");
    common::pipelines::run_to_eos(
        &format!(
            "videotestsrc num-buffers=250 pattern=snow ! video/x-raw,width=1280,height=720,framerate=25/1 ! \
             x264enc bitrate=240000 speed-preset=ultrafast key-int-max=250 vbv-buf-capacity=1000 ! mpegtsmux ! \
             filesink location={}",
            input.display()
        ),
        Duration::from_secs(180),
    )
    .expect("generate input");
    let size = std::fs::metadata(&input).expect("input").len();
    assert!(
        size > 64 * 1024 * 1024 + 1_000_000,
        "input of {size} bytes is not above 64 MiB"
    );
    let server = S3Server::start(BUCKET);
    let ring = tmp.path().join("ring");
    // In this process, so that the pipeline stays up after EOS until the
    // upload is done: the single segment closes at EOS, and a stop drains
    // for 5 s only, which a loaded machine may need more than for 72 MB.
    let _one_at_a_time = credentials_in_process(&server);
    let pipeline = common::pipelines::launch(&format!(
        "filesrc location={} ! streambuffersink location={} segment-duration={} max-duration=0 {}",
        input.display(),
        ring.display(),
        3600 * SECOND,
        server.sink_props(BUCKET, "big")
    ));
    let seen = common::pipelines::collect_messages(&pipeline);
    pipeline.set_state(gst::State::Playing).expect("play");
    common::pipelines::wait_for_eos(&pipeline, Duration::from_secs(120)).expect("EOS");
    assert!(
        wait_until(Duration::from_secs(90), || !archived_segments(&server, "big")
            .is_empty()),
        "the segment was not archived"
    );
    pipeline.set_state(gst::State::Null).expect("stop");
    let failures: Vec<_> = seen
        .lock()
        .expect("lock")
        .iter()
        .filter(|m| m.name() == "streambuffer-archive-failure")
        .cloned()
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    let archived = assert_ring_archived(&server, "big", &ring);
    assert_eq!(archived.len(), 1, "one segment: {archived:?}");
    let object = std::fs::metadata(server.object(BUCKET, &archived[0]))
        .expect("object")
        .len();
    assert!(object > 64 * 1024 * 1024, "{object} bytes");
}

#[test]
fn a_hanging_server_does_not_hold_the_sink_at_stop() {
    // The proxy passes one 64-byte piece a minute: every request hangs.
    // Stopping waits the 5 s drain, then cuts the request short; what was
    // not archived stays queued for the next start, and no outage is
    // reported for the cut.
    let server = S3Server::start(BUCKET);
    let proxy = common::s3::SlowProxy::start(&server.endpoint(), 64, Duration::from_secs(60));
    let tmp = tempfile::tempdir().expect("tmp");
    let ring = tmp.path().join("ring");
    let props = format!("segment-duration={SECOND} {}", proxy.sink_props(BUCKET, "ch10"));
    let started = std::time::Instant::now();
    let out = record(&ring, 4, &props, &server.env());
    let took = started.elapsed();
    // A bound that only catches the hang (requests time out after 30 s).
    assert!(took < Duration::from_secs(25), "stopping took {took:?}: {out}");
    assert!(messages(&out, "streambuffer-archive-failure-clear").is_empty(), "{out}");
    let listed = playlist(&ring);
    assert!(listed.end_list && listed.segments.len() >= 3, "{listed:?}");
    assert_eq!(queued(&ring), listed.segments.len(), "all still queued");
    assert!(archived_segments(&server, "ch10").is_empty());
}

/// Gives this process the test server's credentials, for the elements
/// that read the archive here (as a deployment gives a player's process).
/// Sets the credentials for readers in this process, and holds the other
/// in-process tests off until the returned guard drops: archive caches are
/// named by the process, and a test checking that its reader's cache went
/// must not see another test's.
fn credentials_in_process(server: &S3Server) -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    static SET: std::sync::Once = std::sync::Once::new();
    SET.call_once(|| {
        for (key, value) in server.env() {
            // SAFETY: every server of these tests takes the same keys, set
            // once, before any test of this binary starts GStreamer here
            // (each in-process test calls this first), so nothing reads
            // the environment while it changes.
            unsafe { std::env::set_var(key, value) };
        }
    });
    guard
}

/// A paused player of `ring` from its oldest content (`streambuffersrc`,
/// `tsdemux`, H.264 and AAC decoded into synchronised fakesinks).
fn paused_player(ring: &Path) -> gst::Pipeline {
    let pipeline = common::pipelines::launch(&format!(
        "streambuffersrc name=src location={} start-position=oldest ! tsdemux name=d \
         d. ! queue ! h264parse ! avdec_h264 ! fakesink name=video sync=true \
         d. ! queue ! aacparse ! avdec_aac ! fakesink name=audio sync=true",
        ring.display()
    ));
    pipeline.set_state(gst::State::Paused).expect("pause");
    let (result, ..) = pipeline.state(gst::ClockTime::from_seconds(30));
    result.expect("prerolled");
    pipeline
}

/// The seekable window of a player.
fn window_of(pipeline: &gst::Pipeline) -> (u64, u64) {
    let mut q = gst::query::Seeking::new(gst::Format::Time);
    assert!(pipeline.query(&mut q), "seeking query");
    match q.result() {
        (true, gst::GenericFormattedValue::Time(Some(s)), gst::GenericFormattedValue::Time(Some(e))) => {
            (s.nseconds(), e.nseconds())
        }
        other => panic!("not seekable: {other:?}"),
    }
}

/// Seeks (flushing, `flags`) to `target`, waits for preroll; returns the
/// timestamp of the video frame shown.
fn frame_after_seek(pipeline: &gst::Pipeline, flags: gst::SeekFlags, target: u64) -> u64 {
    pipeline
        .seek_simple(gst::SeekFlags::FLUSH | flags, gst::ClockTime::from_nseconds(target))
        .expect("seek");
    let (result, ..) = pipeline.state(gst::ClockTime::from_seconds(30));
    result.expect("prerolled after the seek");
    let sample = pipeline
        .by_name("video")
        .expect("video sink")
        .property::<Option<gst::Sample>>("last-sample")
        .expect("a frame after the seek");
    sample.buffer().and_then(|b| b.pts()).expect("a timestamp").nseconds()
}

/// Plays `pipeline` (already seeked) to EOS, bounded; the video frames' timestamps.
fn frames_to_eos(pipeline: &gst::Pipeline) -> Vec<u64> {
    let frames = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = frames.clone();
    pipeline
        .by_name("video")
        .and_then(|v| v.static_pad("sink"))
        .expect("video pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                seen.lock().expect("lock").push(pts.nseconds());
            }
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).expect("play");
    common::pipelines::wait_for_eos(pipeline, Duration::from_secs(60)).expect("plays to EOS");
    frames.lock().expect("lock").to_vec()
}

/// Content the ring has evicted plays from the archive, as one timeline
/// with what the ring still holds: `streambuffersrc` gives the same bytes,
/// window, seeks, date-times and trick play on a 3 s ring with an archive
/// as on a ring that kept everything, and trick play fetches keyframes
/// only (ranged GETs), not whole segments. playbin plays it by URI.
#[test]
fn the_source_plays_the_archive_and_the_ring_as_one_timeline() {
    let server = S3Server::start(BUCKET);
    let _one_at_a_time = credentials_in_process(&server);
    common::init();
    let proxy = common::s3::SlowProxy::start(&server.endpoint(), 64 * 1024, Duration::ZERO);
    let tmp = tempfile::tempdir().expect("tmp");
    let archive = proxy.sink_props(BUCKET, "ch9");
    let (short, whole) = record_short_and_whole(&server, &archive, tmp.path(), 400);
    let archived = archived_segments(&server, "ch9");
    let archived_bytes: u64 = archived
        .iter()
        .map(|k| std::fs::metadata(server.object(BUCKET, k)).expect("object").len())
        .sum();
    assert!(archived.len() >= 14, "{archived:?}");

    // The same bytes from the oldest content to the end.
    let bytes_of = |ring: &Path, name: &str| {
        let out = tmp.path().join(name);
        common::pipelines::run_to_eos(
            &format!(
                "streambuffersrc location={} start-position=oldest ! filesink location={}",
                ring.display(),
                out.display()
            ),
            Duration::from_secs(60),
        )
        .expect("plays to EOS");
        std::fs::read(out).expect("output")
    };
    let (from_archive, from_whole) = (bytes_of(&short, "short.ts"), bytes_of(&whole, "whole.ts"));
    assert!(from_whole.len() > 500_000, "{} bytes", from_whole.len());
    assert!(
        from_archive == from_whole,
        "archive and ring gave {} bytes, the whole ring {}",
        from_archive.len(),
        from_whole.len()
    );

    // The same window, seeks and date-times.
    let (a, b) = (paused_player(&short), paused_player(&whole));
    let (wa, wb) = (window_of(&a), window_of(&b));
    assert!(
        wa.0.abs_diff(wb.0) <= 5_000_000 && wa.1.abs_diff(wb.1) <= 5_000_000,
        "window {wa:?}, the whole ring's {wb:?}"
    );
    for target in [wb.0 + 2_300_000_000, wb.0 + 5_500_000_000, wb.1 - 1_200_000_000] {
        for flags in [gst::SeekFlags::KEY_UNIT, gst::SeekFlags::ACCURATE] {
            let (fa, fb) = (frame_after_seek(&a, flags, target), frame_after_seek(&b, flags, target));
            assert!(
                fa.abs_diff(fb) <= 5_000_000,
                "{flags:?} seek to {target}: frame {fa}, the whole ring's {fb}"
            );
        }
    }
    // Each sink dates its ring from the wall clock when its first segment
    // opened, so the two rings' dates differ by whatever separated the two
    // sinks then (tens of ms on a loaded machine). So each ring is asked
    // with its own date for a position, in the archive's part (3 s in) and
    // in the ring's (1 s before the end): the answers must agree.
    let (src_a, src_b) = (a.by_name("src").expect("src"), b.by_name("src").expect("src"));
    for position in [wb.0 + 3_000_000_000, wb.1 - 1_000_000_000] {
        let [pa, pb] = [&src_a, &src_b].map(|src| {
            let date = src
                .emit_by_name::<Option<gst::glib::DateTime>>("position-to-date-time", &[&(position as i64)])
                .unwrap_or_else(|| panic!("no date for position {position}"));
            src.emit_by_name::<i64>("date-time-to-position", &[&date])
        });
        assert!(
            pa >= 0 && pa.abs_diff(pb) <= 5_000_000,
            "the date of position {position} maps back to {pa}, in the whole ring to {pb}"
        );
    }

    // Rewind at 4x, keyframes only, from 9 s into the window to its start:
    // the same frames, and far fewer bytes fetched than the archive holds.
    let rewind = |p: &gst::Pipeline| {
        p.seek(
            -4.0,
            gst::SeekFlags::FLUSH | gst::SeekFlags::TRICKMODE_KEY_UNITS,
            gst::SeekType::Set,
            gst::ClockTime::ZERO,
            gst::SeekType::Set,
            gst::ClockTime::from_nseconds(wb.0 + 9 * SECOND),
        )
        .expect("rewind");
        frames_to_eos(p)
    };
    let fetched_before = proxy.bytes_from_server();
    let (ra, rb) = (rewind(&a), rewind(&b));
    let fetched = proxy.bytes_from_server() - fetched_before;
    assert!(ra.len() >= 8, "{ra:?}");
    assert_eq!(ra, rb, "rewind from the archive and from the whole ring");
    assert!(
        fetched < archived_bytes / 3,
        "trick play fetched {fetched} bytes of an archive of {archived_bytes}"
    );
    for p in [&a, &b] {
        p.set_state(gst::State::Null).expect("stop");
    }

    // playbin, by URI, every frame of both kinds.
    let uri = |ring: &Path| format!("streambuffer://{}?start-position=oldest", ring.display());
    let (va, aa) = playbin_buffers(&uri(&short), PlayFor::Eos(Duration::from_secs(60))).expect("playbin");
    let (vb, ab) = playbin_buffers(&uri(&whole), PlayFor::Eos(Duration::from_secs(60))).expect("playbin");
    assert!(vb >= 390 && ab >= 500, "{vb} {ab}");
    assert_eq!((va, aa), (vb, ab), "frames played from the archive and ring");
    // Its cache went with it.
    let pid = std::process::id();
    let caches: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .expect("temp dir")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("streambuffer-archive-{pid}-"))
        })
        .collect();
    assert!(caches.is_empty(), "{caches:?}");
}

/// A viewer paused on a live ring for longer than the ring keeps (3 s)
/// resumes where it paused: the segments the writer evicted meanwhile
/// come from the archive, frame after frame, with no stale-file report;
/// the viewer then plays on to the end of the recording.
#[test]
fn a_viewer_paused_past_the_rings_window_resumes_from_the_archive() {
    let server = S3Server::start(BUCKET);
    let _one_at_a_time = credentials_in_process(&server);
    common::init();
    let tmp = tempfile::tempdir().expect("tmp");
    let ring = tmp.path().join("ring");
    let log = tmp.path().join("writer.log");
    // Without leases: the paused viewer's segment leaves the ring.
    let props = format!(
        "segment-duration={SECOND} max-duration={} lease-max-duration=0 {}",
        3 * SECOND,
        server.sink_props(BUCKET, "ch10")
    );
    let writer = spawn_writer(&ring, 24, &props, &server.env(), &log);
    assert!(
        wait_until(Duration::from_secs(30), || ring.join("index.m3u8").exists()),
        "the writer published nothing"
    );
    let player = paused_player(&ring);
    let messages = common::pipelines::collect_messages(&player);
    let frames = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = frames.clone();
    player
        .by_name("video")
        .and_then(|v| v.static_pad("sink"))
        .expect("video pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                seen.lock().expect("lock").push(pts.nseconds());
            }
            gst::PadProbeReturn::Ok
        });
    player.set_state(gst::State::Playing).expect("play");
    std::thread::sleep(Duration::from_secs(3));
    player.set_state(gst::State::Paused).expect("pause");
    std::thread::sleep(Duration::from_secs(8));
    player.set_state(gst::State::Playing).expect("resume");
    finish(writer, &log);
    common::pipelines::wait_for_eos(&player, Duration::from_secs(60)).expect("plays to the end");
    player.set_state(gst::State::Null).expect("stop");
    let reports: Vec<_> = messages
        .lock()
        .expect("lock")
        .iter()
        .filter(|s| {
            [
                "streambuffer-stale-file-deleted",
                "streambuffer-time-hole",
                "streambuffer-read-failure",
            ]
            .contains(&s.name().as_str())
        })
        .cloned()
        .collect();
    assert!(reports.is_empty(), "{reports:?}");
    let frames = frames.lock().expect("lock").to_vec();
    // (A frame read at the live edge, at the start of a segment being
    // written, may repeat the timestamp of the one before: a known
    // live-edge effect, not the archive's.)
    let gaps: Vec<(u64, u64)> = frames
        .windows(2)
        .filter(|w| w[1] < w[0] || w[1] - w[0] > 100_000_000)
        .map(|w| (w[0], w[1]))
        .collect();
    assert!(gaps.is_empty(), "frames out of order or missing: {gaps:?}");
    let played = frames.last().expect("frames") - frames.first().expect("frames");
    assert!(played >= 18 * SECOND, "played {played} ns of 24 s");
    assert!(playlist(&ring).segments.len() <= 5, "the ring evicted");
}

/// A ring whose archive cannot be reached plays alone: `streambuffersrc`
/// says so in a WARNING (never an ERROR) and plays the ring to its end.
#[test]
fn an_unreachable_archive_is_a_warning_and_the_ring_plays_alone() {
    let mut server = S3Server::start(BUCKET);
    let _one_at_a_time = credentials_in_process(&server);
    common::init();
    let tmp = tempfile::tempdir().expect("tmp");
    let ring = tmp.path().join("ring");
    let props = format!(
        "segment-duration={SECOND} max-duration={} {}",
        4 * SECOND,
        server.sink_props(BUCKET, "ch11")
    );
    record(&ring, 8, &props, &server.env());
    server.stop();
    let pipeline = common::pipelines::launch(&format!(
        "streambuffersrc location={} start-position=oldest ! tsdemux name=d \
         d. ! queue ! h264parse ! avdec_h264 ! fakesink name=video \
         d. ! queue ! aacparse ! avdec_aac ! fakesink name=audio",
        ring.display()
    ));
    let warnings = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = warnings.clone();
    pipeline.bus().expect("bus").set_sync_handler(move |_, msg| {
        if let gst::MessageView::Warning(w) = msg.view() {
            kept.lock().expect("lock").push(w.error().to_string());
        }
        gst::BusSyncReply::Pass
    });
    let counts = common::pipelines::count_buffers(
        &pipeline,
        &[
            pipeline.by_name("video").expect("video"),
            pipeline.by_name("audio").expect("audio"),
        ],
        PlayFor::Eos(Duration::from_secs(60)),
    );
    let _ = pipeline.set_state(gst::State::Null);
    let (video, audio) = match counts.expect("plays the ring alone to its end")[..] {
        [v, a] => (v, a),
        _ => unreachable!(),
    };
    let warnings = warnings.lock().expect("lock").to_vec();
    assert!(warnings.len() == 1 && warnings[0].contains("archive"), "{warnings:?}");
    // The ring's 4 to 5 s, every frame of both kinds; not a moment of what
    // only the archive holds.
    assert!((100..=130).contains(&video), "video frames: {video}");
    assert!(audio >= 180, "audio frames: {audio}");
}

/// `streambuffer check` checks the archive too: a whole one passes; a
/// listed segment missing from the bucket, a torn one, a missing index and
/// an object no playlist lists are each one line, and the exit status is 1.
#[test]
fn check_finds_what_is_wrong_in_the_archive() {
    let server = S3Server::start(BUCKET);
    let tmp = tempfile::tempdir().expect("tmp");
    let ring = tmp.path().join("ring");
    let props = format!("segment-duration={SECOND} {}", server.sink_props(BUCKET, "ch12"));
    record(&ring, 8, &props, &server.env());
    let ring_arg = ring.to_string_lossy().into_owned();
    let (ok, text) = tool(&["check", &ring_arg], &server.env());
    assert!(ok, "{text}");
    let summary = text
        .lines()
        .find(|l| l.starts_with("archive s3://tv-archive/ch12:"))
        .unwrap_or_else(|| panic!("{text}"));
    let segments = archived_segments(&server, "ch12");
    assert!(
        summary.contains(&format!("{} segment(s)", segments.len())) && summary.ends_with(" 0 problem(s)"),
        "{summary}"
    );

    // Damage: one segment gone, one torn, one index gone, one stray object.
    assert!(segments.len() >= 6, "{segments:?}");
    let (gone, torn, unindexed) = (&segments[2], &segments[3], &segments[4]);
    std::fs::remove_file(server.object(BUCKET, gone)).expect("remove");
    let torn_path = server.object(BUCKET, torn);
    let len = std::fs::metadata(&torn_path).expect("torn").len();
    let file = std::fs::OpenOptions::new().write(true).open(&torn_path).expect("open");
    file.set_len(len - 100).expect("truncate");
    std::fs::remove_file(server.object(BUCKET, &unindexed.replace(".ts", ".idx"))).expect("remove index");
    let folder = Path::new(&segments[0]).parent().expect("hour folder");
    let stray = folder.join("000000000-999999999999.ts").to_string_lossy().into_owned();
    std::fs::copy(server.object(BUCKET, &segments[1]), server.object(BUCKET, &stray)).expect("stray");
    let (ok, text) = tool(&["check", &ring_arg], &server.env());
    assert!(!ok, "{text}");
    // Problems name keys below the prefix.
    let problems: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("archive ") && !l.starts_with("archive s3://"))
        .collect();
    let says = |key: &str, what: &str| {
        let key = key.trim_start_matches("ch12/");
        problems.iter().any(|l| l.contains(key) && l.contains(what))
    };
    assert!(says(gone, "not in the bucket"), "{problems:?}");
    assert!(says(torn, "not a whole number of packets"), "{problems:?}");
    assert!(says(&unindexed.replace(".ts", ".idx"), "missing"), "{problems:?}");
    assert!(says(&stray, "in no playlist"), "{problems:?}");
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(text.contains(" 4 problem(s)"), "{text}");
}

/// Recordings reaching back past a 6 s ring take the older part from its
/// archive: a content recording 40 s back and a reference recording from
/// a date 30 s back hold the same bytes (and segments) as the same
/// recordings on a ring that kept everything, fed the same stream at the
/// same time, and play with video and audio (playbin, `streambuffer://`).
#[test]
fn recordings_reaching_past_the_ring_take_the_archives_segments() {
    use common::media::packet_at;
    use common::pipelines::{Feeder, collect_messages};
    let server = S3Server::start(BUCKET);
    let _one_at_a_time = credentials_in_process(&server);
    common::init();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = std::fs::read(common::inputs::Input::Minutes.path()).expect("input");
    let (at60, at70) = (
        packet_at(&data, 60) * common::PACKET,
        packet_at(&data, 70) * common::PACKET,
    );
    let segments = format!("segment-duration={}", 2 * SECOND);
    let (short_ring, whole_ring) = (tmp.path().join("short"), tmp.path().join("whole"));
    let archive = server.sink_props(BUCKET, "ch11");
    let mut short = Feeder::new(
        &short_ring,
        &format!("{segments} max-duration={} {archive}", 6 * SECOND),
    );
    let mut whole = Feeder::new(&whole_ring, &format!("{segments} max-duration=0"));
    let (short_said, whole_said) = (collect_messages(&short.pipeline), collect_messages(&whole.pipeline));
    // Fed in turns, so that both sinks' wall clocks agree within a chunk.
    let feed_both = |short: &mut Feeder, whole: &mut Feeder, range: std::ops::Range<usize>| {
        for chunk in data[range].chunks(128 * 1024) {
            short.feed(chunk);
            whole.feed(chunk);
        }
    };
    feed_both(&mut short, &mut whole, 0..at60);
    assert!(playlist(&short_ring).segments.len() <= 4, "the short ring evicted");

    let rec = |name: &str| tmp.path().join(name);
    let content = (
        short.start(&rec("short.ts"), "content", -40),
        whole.start(&rec("whole.ts"), "content", -40),
    );
    assert!(content.0 != 0 && content.1 != 0, "{content:?}");
    // A date 30 s back: 10.5 s after the whole ring's content recording
    // starts (half a second after a keyframe, with one a second).
    let started = whole_said
        .lock()
        .expect("lock")
        .iter()
        .find(|s| s.name() == "streambuffer-recording-started")
        .and_then(|s| s.get::<gst::DateTime>("start-date-time").ok())
        .expect("the whole ring's content recording started");
    let date = started
        .to_g_date_time()
        .expect("date")
        .add(gst::glib::TimeSpan::from_milliseconds(10_500))
        .expect("date");
    let reference = {
        use gststreambuffer::streambuffersink::{RecordingKind, StreamBufferSinkExt};
        let start = |f: &Feeder, name: &str| {
            f.sink
                .start_recording_at(&rec(name), RecordingKind::Reference, &date)
                .expect("a reference recording")
        };
        (start(&short, "short-ref"), start(&whole, "whole-ref"))
    };
    feed_both(&mut short, &mut whole, at60..at70);
    for (f, ids) in [(&short, (content.0, reference.0)), (&whole, (content.1, reference.1))] {
        assert!(f.stop(ids.0, 0) && f.stop(ids.1, 0));
    }
    feed_both(&mut short, &mut whole, at70..data.len());
    short.finish();
    whole.finish();

    let stopped = |said: &std::sync::Arc<std::sync::Mutex<Vec<gst::Structure>>>, id: u32| {
        said.lock()
            .expect("lock")
            .iter()
            .find(|s| s.name() == "streambuffer-recording-stopped" && s.get::<u32>("id").ok() == Some(id))
            .cloned()
            .unwrap_or_else(|| panic!("recording {id} stopped"))
    };
    for (said, id, from_archive) in [
        (&short_said, content.0, true),
        (&short_said, reference.0, true),
        (&whole_said, content.1, false),
        (&whole_said, reference.1, false),
    ] {
        let s = stopped(said, id);
        assert_eq!(s.get::<String>("status").ok().as_deref(), Some("ok"), "{s:?}");
        let archived = s.get::<u64>("archived-segments").expect("archived-segments");
        assert_eq!(archived > 0, from_archive, "{s:?}");
    }
    let content_short = std::fs::read(rec("short.ts")).expect("recording");
    let content_whole = std::fs::read(rec("whole.ts")).expect("recording");
    assert!(content_whole.len() > 1_000_000, "{} bytes", content_whole.len());
    assert!(
        content_short == content_whole,
        "from the archive {} bytes, from the whole ring {}",
        content_short.len(),
        content_whole.len()
    );
    let names = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("recording directory")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".ts") || n.ends_with(".idx"))
            .collect();
        names.sort();
        names
    };
    let (short_ref, whole_ref) = (rec("short-ref"), rec("whole-ref"));
    assert!(names(&whole_ref).len() >= 2 * 8, "{:?}", names(&whole_ref));
    assert_eq!(names(&short_ref), names(&whole_ref));
    for name in names(&whole_ref) {
        let (a, b) = (
            std::fs::read(short_ref.join(&name)).expect("file"),
            std::fs::read(whole_ref.join(&name)).expect("file"),
        );
        if name.ends_with(".ts") {
            assert!(a == b, "{name} differs");
        } else {
            // Indexes: the same keyframes at the same offsets and ring
            // times (bytes 0..16 of each 40-byte record); the wall clocks
            // of two sinks differ.
            let keys = |raw: &[u8]| raw.chunks(40).map(|r| r[..16].to_vec()).collect::<Vec<_>>();
            assert!(a.len() == b.len() && keys(&a) == keys(&b), "{name} differs");
        }
    }
    // Nothing fetched for them is left in the ring.
    let leftovers: Vec<_> = std::fs::read_dir(short_ring.join("archive-queue"))
        .expect("queue")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n.to_string_lossy().starts_with("restore-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Both play with video and audio, the content file from 30 s of content.
    let (video, audio) = playbin_buffers(
        &format!("file://{}", rec("short.ts").display()),
        PlayFor::Eos(Duration::from_secs(60)),
    )
    .expect("playbin plays the content recording");
    assert!(
        video >= 25 * 45 && audio >= 45 * 40,
        "{video} video and {audio} audio buffers"
    );
    let (video, audio) = playbin_buffers(
        &format!("streambuffer://{}", short_ref.display()),
        PlayFor::Eos(Duration::from_secs(60)),
    )
    .expect("playbin plays the reference recording");
    assert!(
        video >= 25 * 30 && audio >= 30 * 40,
        "{video} video and {audio} audio buffers"
    );
}

/// `streambuffer keep` makes a recording in the bucket: a VOD playlist of
/// the archived segments of a range, which players play from the bucket;
/// the archive's window slides past them and retention spares them (and
/// `check` accepts them) until the playlist is deleted. Names in use, and
/// names that are not plain names, are refused.
#[test]
fn a_kept_recording_outlives_the_archive_window() {
    let server = S3Server::start(BUCKET);
    let tmp = tempfile::tempdir().expect("tmp");
    let ring = tmp.path().join("ring");
    let ring_arg = ring.to_string_lossy().into_owned();
    let props = format!(
        "segment-duration={SECOND} archive-max-duration={} {}",
        6 * SECOND,
        server.sink_props(BUCKET, "ch12")
    );
    let log = tmp.path().join("writer.log");
    let writer = spawn_writer(&ring, 20, &props, &server.env(), &log);
    // The first two archived segments' date-times, as the hour playlist says.
    let mut dates: Vec<String> = Vec::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            dates = hour_playlists(&server, "ch12")
                .iter()
                .flat_map(|(path, _)| {
                    std::fs::read_to_string(path)
                        .unwrap_or_default()
                        .lines()
                        .filter_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:").map(str::to_owned))
                        .collect::<Vec<_>>()
                })
                .collect();
            dates.len() >= 2
        }),
        "two segments archived"
    );
    let (ok, out) = tool(
        &["keep", &ring_arg, "--from", &dates[0], "--to", &dates[1], "goal"],
        &server.env(),
    );
    assert!(ok, "{out}");
    assert!(out.contains("kept 2 segment(s)"), "{out}");
    let (ok, out) = tool(
        &["keep", &ring_arg, "--from", &dates[0], "--to", &dates[1], "goal"],
        &server.env(),
    );
    assert!(!ok && out.contains("already keeps"), "{out}");
    let (ok, out) = tool(
        &["keep", &ring_arg, "--from", &dates[0], "--to", &dates[1], "../goal"],
        &server.env(),
    );
    assert!(!ok && out.contains("cannot name a recording"), "{out}");
    finish(writer, &log);

    // The window slid past them; they are still there, named by the
    // recording, which plays from the bucket.
    let kept_path = server.object(BUCKET, "ch12/recordings/goal.m3u8");
    let kept = m3u8_rs::parse_media_playlist_res(&std::fs::read(&kept_path).expect("kept playlist")).expect("parses");
    assert!(kept.end_list && kept.segments.len() == 2, "{kept:?}");
    let kept_numbers: Vec<u64> = kept.segments.iter().map(|s| number_of(&s.uri)).collect();
    let archived = archived_segments(&server, "ch12");
    let window: Vec<u64> = hour_playlists(&server, "ch12")
        .iter()
        .flat_map(|(_, p)| p.segments.iter().map(|s| number_of(&s.uri)).collect::<Vec<_>>())
        .collect();
    assert!(
        window.iter().all(|n| *n > kept_numbers[1]) && window.len() <= 10,
        "the window slid past the kept segments: {window:?}, kept {kept_numbers:?}"
    );
    for s in &kept.segments {
        let object = kept_path.parent().expect("folder").join(&s.uri);
        assert!(object.exists(), "{} was deleted", s.uri);
        assert!(
            object.with_extension("idx").exists(),
            "the index of {} was deleted",
            s.uri
        );
    }
    assert!(archived.len() < 18, "retention deleted the rest: {archived:?}");
    let (ok, out) = tool(&["check", &ring_arg], &server.env());
    assert!(ok, "{out}");
    let reader = server.public_reader();
    let uri = format!("{}/{BUCKET}/ch12/recordings/goal.m3u8", reader.endpoint());
    let (video, audio) =
        playbin_buffers(&uri, PlayFor::Eos(Duration::from_secs(60))).expect("playbin plays the kept recording");
    assert!(video >= 40 && audio >= 60, "{video} video and {audio} audio buffers");

    // A kept segment gone is a problem `check` names.
    let first = kept_path.parent().expect("folder").join(&kept.segments[0].uri);
    let saved = std::fs::read(&first).expect("segment");
    std::fs::remove_file(&first).expect("remove");
    let (ok, out) = tool(&["check", &ring_arg], &server.env());
    assert!(!ok && out.contains("a kept recording names it"), "{out}");
    std::fs::write(&first, saved).expect("restore");

    // Without the recording, retention has them at the next run.
    std::fs::remove_file(&kept_path).expect("delete the recording");
    record(&ring, 3, &props, &server.env());
    for s in &kept.segments {
        assert!(
            !kept_path.parent().expect("folder").join(&s.uri).exists(),
            "{} stayed",
            s.uri
        );
    }
}
