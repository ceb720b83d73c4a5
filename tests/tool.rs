// SPDX-License-Identifier: MPL-2.0
//! The `streambuffer` command-line tool on real rings: `info`, `export` and
//! `check`, on a finished ring and on one a writer is recording.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::inputs::Input;
use common::{
    media::{ffmpeg_decode, ffprobe_frame_pts_ns},
    pipelines::run_to_eos,
    processes::spawn_live_writer,
    rings::{playlist_entries, ring_keyframes},
    wait_until,
};

const SECOND: u64 = 1_000_000_000;

/// The tool, as cargo built it for these tests.
fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_streambuffer"))
        .args(args)
        .output()
        .expect("run streambuffer")
}

/// `streambuffer export RING --from FROM --to TO OUT`, dates in ms since the epoch.
fn run_export(ring: &str, from_ms: i64, to_ms: i64, out: &Path) -> Output {
    tool(&[
        "export",
        ring,
        "--from",
        &rfc3339(from_ms),
        "--to",
        &rfc3339(to_ms),
        out.to_str().expect("utf-8"),
    ])
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A JSON document's field, read by Python's json module (an independent
/// parser: the tool writes its JSON by hand).
fn json_field(json: &str, field: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            &format!("import json,sys; v=json.load(sys.stdin)[{field:?}]; print(json.dumps(v))"),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(json.as_bytes())?;
            c.wait_with_output()
        })
        .expect("python3");
    assert!(out.status.success(), "not JSON: {json}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// ms since the epoch as RFC 3339 UTC.
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let (h, m, s) = (
        secs.rem_euclid(86_400) / 3600,
        secs.rem_euclid(3600) / 60,
        secs.rem_euclid(60),
    );
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{:03}Z", ms.rem_euclid(1000))
}

fn finished_ring(dir: &Path) -> PathBuf {
    let ring = dir.join("ring");
    run_to_eos(
        &format!(
            "filesrc location={} ! streambuffersink location={} segment-duration={}",
            Input::H264Aac.path().display(),
            ring.display(),
            4 * SECOND
        ),
        Duration::from_secs(60),
    )
    .expect("record");
    ring
}

/// An export holds exactly the keyframe range asked for: from the keyframe
/// at or before `from` to the frame before the first keyframe at or after
/// `to`, every frame decoded.
fn assert_export_holds(ring: &Path, out: &Path, from_ms: i64, to_ms: i64) {
    let keys = ring_keyframes(ring);
    let first = keys
        .iter()
        .rev()
        .find(|(_, k)| k.wall_ms <= from_ms)
        .expect("a keyframe before")
        .1;
    let stop = keys
        .iter()
        .find(|(_, k)| k.wall_ms >= to_ms)
        .expect("a keyframe after")
        .1;
    // Stream PTS to presentation time: the ring's first keyframe.
    let first_segment = ring.join(format!("segment-{:012}.ts", keys[0].0));
    let offset = ffprobe_frame_pts_ns(&first_segment)[0] as i64 - keys[0].1.presentation_ns() as i64;
    let frames = ffprobe_frame_pts_ns(out);
    assert!(!frames.is_empty(), "nothing decoded from {}", out.display());
    let shown = |pts: u64| (pts as i64 - offset) as u64;
    let (lo, hi) = (
        shown(*frames.iter().min().expect("frames")),
        shown(*frames.iter().max().expect("frames")),
    );
    assert!(
        lo.abs_diff(first.presentation_ns()) < 2_000_000,
        "starts at {lo}, keyframe at {}",
        first.presentation_ns()
    );
    assert!(
        (hi + 40_000_000).abs_diff(stop.presentation_ns()) < 2_000_000,
        "ends at {hi}, next keyframe at {}",
        stop.presentation_ns()
    );
    let expected = (stop.presentation_ns() - first.presentation_ns() + 20_000_000) / 40_000_000;
    assert_eq!(frames.len() as u64, expected, "frames missing");
    ffmpeg_decode(out).expect("the export decodes");
}

/// On a finished ring: `info` (text and JSON) says what it holds, `check`
/// passes, `export` writes exactly the range asked for and refuses one
/// outside the window without writing anything; a planted bad segment
/// makes `check` fail and name it.
#[test]
fn info_export_and_check_on_a_finished_ring() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = finished_ring(dir.path());
    let r = ring.to_str().expect("utf-8");

    let info = tool(&["info", r]);
    assert!(info.status.success(), "{}", text(&info));
    let t = text(&info);
    assert!(
        t.contains("finished (EXT-X-ENDLIST)") && t.contains("3 listed") && t.contains("holes:           0"),
        "{t}"
    );
    let json = tool(&["info", r, "--json"]);
    let j = String::from_utf8_lossy(&json.stdout).into_owned();
    assert_eq!(json_field(&j, "finished"), "true");
    assert_eq!(json_field(&j, "segments"), "3");
    assert_eq!(json_field(&j, "holes"), "[]");

    let check = tool(&["check", r]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(text(&check).contains("3 segment(s) checked, 0 problem(s)"));

    let keys = ring_keyframes(&ring);
    let (from_ms, to_ms) = (keys[2].1.wall_ms + 500, keys[8].1.wall_ms + 500);
    let out = dir.path().join("export.ts");
    let export = run_export(r, from_ms, to_ms, &out);
    assert!(export.status.success(), "{}", text(&export));
    assert_export_holds(&ring, &out, from_ms, to_ms);

    let outside = dir.path().join("outside.ts");
    let refused = run_export(r, keys[0].1.wall_ms - 3_600_000, from_ms, &outside);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused).contains("outside the ring's window"),
        "{}",
        text(&refused)
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("outside"))
        .collect();
    assert!(leftovers.is_empty(), "a refused export left {leftovers:?}");
    assert_eq!(tool(&["export", r]).status.code(), Some(2), "bad usage");

    // A planted bad segment: the middle one loses its last 100 bytes.
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).expect("mkdir");
    for e in std::fs::read_dir(&ring).expect("ring").flatten() {
        std::fs::copy(e.path(), bad.join(e.file_name())).expect("copy");
    }
    let victim = bad.join(format!("segment-{:012}.ts", keys[0].0 + 1));
    let len = std::fs::metadata(&victim).expect("segment").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .and_then(|f| f.set_len(len - 100))
        .expect("truncate");
    let check = tool(&["check", bad.to_str().expect("utf-8")]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    let t = text(&check);
    let name = victim.file_name().expect("name").to_string_lossy().into_owned();
    assert!(
        t.contains(&format!("{name}: ")) && t.contains("whole number of packets"),
        "{t}"
    );
}

/// On a ring a writer is recording: `info` says so, `check` passes while it
/// writes, and `export` of a range in the window is exact.
#[test]
fn info_export_and_check_while_recording() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let mut writer = spawn_live_writer(&ring, 2 * SECOND, 40, "");
    assert!(
        wait_until(Duration::from_secs(30), || playlist_entries(&ring) >= 5),
        "the writer did not record"
    );
    let r = ring.to_str().expect("utf-8");
    let info = tool(&["info", r]);
    assert!(text(&info).contains("live: a writer is recording"), "{}", text(&info));
    let json = tool(&["info", r, "--json"]);
    assert_eq!(
        json_field(&String::from_utf8_lossy(&json.stdout), "writer-running"),
        "true"
    );
    let check = tool(&["check", r]);
    assert!(check.status.success(), "{}", text(&check));

    let keys = ring_keyframes(&ring);
    let (from_ms, to_ms) = (keys[1].1.wall_ms + 300, keys[5].1.wall_ms + 300);
    let out = dir.path().join("live-export.ts");
    let export = run_export(r, from_ms, to_ms, &out);
    assert!(export.status.success(), "{}", text(&export));
    assert_export_holds(&ring, &out, from_ms, to_ms);
    let _ = writer.kill();
    let _ = writer.wait();
    let info = tool(&["info", r]);
    assert!(text(&info).contains("no writer running"), "{}", text(&info));
}
