// SPDX-License-Identifier: MPL-2.0
//! `streambuffer serve`, the HTTP origin, started here on 127.0.0.1 at a
//! free port: what it serves (bytes, types, ranges, validators, caching,
//! CORS), what it refuses (traversal however encoded, links out of the
//! root, hostile files, methods, oversized and idle requests), and that
//! players (playbin through hlsdemux, ffmpeg) play a ring through it.
// Symbolic links and FIFOs: these tests run on Unix.
#![cfg(unix)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::inputs::Input;
use common::pipelines::{PlayFor, playbin_buffers, run_to_eos};
use common::s3::S3Server;

/// A running `streambuffer serve`, stopped when dropped.
struct Origin {
    child: Child,
    addr: SocketAddr,
}

impl Origin {
    fn start(roots: &[&Path]) -> Origin {
        Origin::start_with(roots, &[])
    }

    /// Started with `env` (an archive's credentials, say).
    fn start_with(roots: &[&Path], env: &[(&str, String)]) -> Origin {
        let mut child = Command::new(env!("CARGO_BIN_EXE_streambuffer"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(roots)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("streambuffer serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the address line");
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|a| a.strip_suffix('/'))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("not an address line: {line:?}"));
        Origin { child, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends `request` (a method and a path as sent, unnormalised) with
    /// `headers`; returns the status, headers (lower-case names) and body.
    fn ask(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, HashMap<String, String>, Vec<u8>) {
        ask_at(self.addr, method, path, headers)
    }
}

/// [`Origin::ask`] of the origin at `addr`.
fn ask_at(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, HashMap<String, String>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, raw[split + 4..].to_vec())
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A finished ring of H.264 and AAC (ffmpeg's, 12 s, 2 s segments) at
/// `root/name`.
fn ring_under(root: &Path, name: &str) -> std::path::PathBuf {
    let ring = root.join(name);
    run_to_eos(
        &format!(
            "filesrc location={} ! streambuffersink location={} segment-duration=2000000000",
            Input::H264Aac.path().display(),
            ring.display()
        ),
        Duration::from_secs(60),
    )
    .expect("records");
    ring
}

fn first_segment(ring: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(ring)
        .expect("ring")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("segment-") && n.ends_with(".ts"))
        .collect();
    names.sort();
    names.remove(0)
}

#[test]
fn serves_ring_files_with_types_ranges_validators_caching_and_cors() {
    common::init();
    let root = tempfile::tempdir().expect("root");
    let ring = ring_under(root.path(), "ch1");
    let origin = Origin::start(&[root.path()]);

    let (status, h, body) = origin.ask("GET", "/ch1/index.m3u8", &[]);
    assert_eq!(status, 200);
    assert_eq!(h["content-type"], "application/vnd.apple.mpegurl");
    assert_eq!(h["cache-control"], "public, max-age=1");
    assert_eq!(h["access-control-allow-origin"], "*");
    assert_eq!(body, std::fs::read(ring.join("index.m3u8")).expect("playlist"));

    let name = first_segment(&ring);
    let data = std::fs::read(ring.join(&name)).expect("segment");
    let path = format!("/ch1/{name}");
    let (status, h, body) = origin.ask("GET", &path, &[]);
    assert_eq!((status, h["content-type"].as_str()), (200, "video/mp2t"));
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    assert!(body == data, "{} bytes served of {}", body.len(), data.len());
    let etag = h["etag"].clone();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let index = name.replace(".ts", ".idx");
    let (status, h, body) = origin.ask("GET", &format!("/ch1/{index}"), &[]);
    assert_eq!((status, h["content-type"].as_str()), (200, "application/octet-stream"));
    assert_eq!(body, std::fs::read(ring.join(&index)).expect("index"));

    let (status, h, body) = origin.ask("HEAD", &path, &[]);
    assert_eq!(
        (status, h["content-length"].clone(), body.len()),
        (200, data.len().to_string(), 0)
    );
    let (status, h, body) = origin.ask("GET", &path, &[("Range", "bytes=188-375")]);
    assert_eq!(
        (status, h["content-range"].clone()),
        (206, format!("bytes 188-375/{}", data.len()))
    );
    assert_eq!(body, data[188..376]);
    let (status, _, body) = origin.ask("GET", &path, &[("Range", "bytes=-188")]);
    assert_eq!((status, body.as_slice()), (206, &data[data.len() - 188..]));
    let (status, h, _) = origin.ask("GET", &path, &[("Range", &format!("bytes={}-", data.len()))]);
    assert_eq!(
        (status, h["content-range"].clone()),
        (416, format!("bytes */{}", data.len()))
    );
    let (status, _, body) = origin.ask("GET", &path, &[("If-None-Match", &etag)]);
    assert_eq!((status, body.len()), (304, 0));

    // A segment the playlist does not list yet (being written) is not
    // cached as immutable.
    std::fs::copy(ring.join(&name), ring.join("segment-000000999999.ts")).expect("copy");
    let (status, h, _) = origin.ask("GET", "/ch1/segment-000000999999.ts", &[]);
    assert_eq!((status, h["cache-control"].as_str()), (200, "no-cache"));

    let (status, h, _) = origin.ask("OPTIONS", "/ch1/index.m3u8", &[("Origin", "https://player.example")]);
    assert_eq!(status, 204);
    assert!(h["access-control-allow-headers"].contains("Range"), "{h:?}");
    let (status, h, _) = origin.ask("POST", "/ch1/index.m3u8", &[]);
    assert_eq!((status, h["allow"].as_str()), (405, "GET, HEAD, OPTIONS"));
}

#[test]
fn nothing_outside_the_rings_is_served_and_hostile_files_are_refused() {
    common::init();
    let root = tempfile::tempdir().expect("root");
    let outside = tempfile::tempdir().expect("outside");
    let ring = ring_under(root.path(), "ch1");
    // A ring outside the root, reachable only through a link in it.
    let secret = ring_under(outside.path(), "secret");
    std::os::unix::fs::symlink(&secret, root.path().join("linked")).expect("symlink");
    // Links and a FIFO where a ring's files go.
    std::os::unix::fs::symlink("/etc/passwd", ring.join("segment-000000888888.ts")).expect("symlink");
    std::os::unix::fs::symlink("/dev/zero", ring.join("segment-000000888889.ts")).expect("symlink");
    let fifo = ring.join("segment-000000888890.ts");
    assert!(
        Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success(),
        "mkfifo"
    );
    let origin = Origin::start(&[root.path()]);
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for path in [
        "/../etc/passwd",
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/ch1/../../etc/passwd",
        "/ch1/..%2f..%2fetc%2fpasswd",
        "//etc/passwd",
        "/%2fetc/passwd",
        "/ch1/%00index.m3u8",
        "/linked/index.m3u8",
        "/ch1/segment-000000888888.ts",
        "/ch1/segment-000000888889.ts",
        "/ch1/segment-000000888890.ts",
        "/ch1/ring.journal",
        "/ch1",
        "/",
    ] {
        let started = Instant::now();
        let (status, _, body) = origin.ask("GET", path, &[]);
        assert!(status == 400 || status == 404, "{path}: {status}");
        assert!(
            passwd.is_empty() || !String::from_utf8_lossy(&body).contains(&passwd[..passwd.len().min(20)]),
            "{path} served /etc/passwd"
        );
        // A bound that only catches a hang (a FIFO opened for reading).
        assert!(started.elapsed() < Duration::from_secs(20), "{path} hung");
    }
    // Too many headers, and a client that sends nothing: refused, closed.
    let many: Vec<(String, String)> = (0..100).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, _, _) = origin.ask("GET", "/ch1/index.m3u8", &many);
    assert_eq!(status, 431);
    let mut idle = TcpStream::connect(origin.addr).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = idle.read(&mut buf).unwrap_or(0);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(25), "an idle client was kept {waited:?}");
    assert!(
        n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
        "{n}"
    );
    // Still serving after all that.
    let (status, _, _) = origin.ask("GET", "/ch1/index.m3u8", &[]);
    assert_eq!(status, 200);
}

#[test]
fn players_play_a_ring_through_the_origin() {
    common::init();
    let root = tempfile::tempdir().expect("root");
    ring_under(root.path(), "news");
    let origin = Origin::start(&[root.path()]);
    let url = origin.url("/news/index.m3u8");
    let (video, audio) = playbin_buffers(&url, PlayFor::Eos(Duration::from_secs(60))).expect("playbin plays it");
    assert!(
        video >= 25 * 10 && audio >= 40 * 10,
        "{video} video and {audio} audio buffers"
    );
    let (video, audio) = ffprobe_frames(&url);
    assert!(
        video >= 25 * 10 && audio >= 40 * 10,
        "{video} video, {audio} audio frames"
    );
}

/// The video and audio frames ffprobe decodes from `url`.
fn ffprobe_frames(url: &str) -> (u64, u64) {
    ffprobe_frames_for(url, None)
}

/// [`ffprobe_frames`], of the first `seconds` only (a live playlist).
fn ffprobe_frames_for(url: &str, seconds: Option<u32>) -> (u64, u64) {
    let mut command = Command::new("ffprobe");
    if let Some(seconds) = seconds {
        command.args(["-read_intervals", &format!("%+{seconds}")]);
    }
    let out = command
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_type,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(url)
        .output()
        .expect("ffprobe");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let frames = |kind: &str| -> u64 {
        text.lines()
            .filter_map(|l| l.split_once(','))
            .filter(|(k, _)| *k == kind)
            .filter_map(|(_, n)| n.trim().parse::<u64>().ok())
            .sum()
    };
    (frames("video"), frames("audio"))
}

/// Windows on request: a catch-up range is a VOD playlist that plays; a
/// start-over of a finished ring ends and plays in ffmpeg, playbin and
/// hls.js; out-of-window requests get 404 with
/// the ring's window, malformed ones 400.
#[test]
fn windows_by_date_and_delay() {
    common::init();
    let root = tempfile::tempdir().expect("root");
    let ring = ring_under(root.path(), "ch1");
    let origin = Origin::start(&[root.path()]);
    let text = std::fs::read_to_string(ring.join("index.m3u8")).expect("playlist");
    let first = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
        .expect("a date-time");
    let t0 = gst::glib::DateTime::from_iso8601(first, None).expect("date");
    let at = |ms: i64| {
        t0.add(gst::glib::TimeSpan::from_milliseconds(ms))
            .and_then(|t| t.to_utc())
            .and_then(|t| t.format("%Y-%m-%dT%H:%M:%S.%fZ"))
            .expect("date")
            .to_string()
    };
    let listed = |body: &[u8]| {
        m3u8_rs::parse_media_playlist_res(body)
            .map(|p| (p.segments.len(), p.end_list))
            .unwrap_or_else(|e| panic!("not a playlist: {e:?}"))
    };
    // The first second, once it is past (the ring was recorded faster
    // than real time: its later date-times are still to come).
    let past = t0.add(gst::glib::TimeSpan::from_seconds(1)).expect("date");
    assert!(
        common::wait_until(Duration::from_secs(5), || gst::glib::DateTime::now_utc()
            .is_ok_and(|now| now > past)),
        "the clock moves"
    );
    let catch_up = format!("/ch1/index.m3u8?start={}&end={}", at(100), at(900));
    let (status, h, body) = origin.ask("GET", &catch_up, &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(h["content-type"], "application/vnd.apple.mpegurl");
    assert_eq!(listed(&body), (1, true));
    assert!(String::from_utf8_lossy(&body).contains("#EXT-X-PLAYLIST-TYPE:VOD"));
    let (video, audio) = playbin_buffers(&origin.url(&catch_up), PlayFor::Eos(Duration::from_secs(60)))
        .expect("playbin plays the window");
    assert!(video >= 25 && audio >= 40, "{video} video and {audio} audio buffers");
    // Start-over from 4.5 s: the rest of the ring, ended; ffmpeg and hls.js
    // play it.
    let start_over = format!("/ch1/index.m3u8?start={}", at(4500));
    let (status, _, body) = origin.ask("GET", &start_over, &[]);
    assert_eq!(status, 200);
    let (entries, ended) = listed(&body);
    assert!(ended && (3..=5).contains(&entries), "{entries} entries");
    let (video, audio) = ffprobe_frames(&origin.url(&start_over));
    assert!(
        video >= 25 * 6 && audio >= 40 * 6,
        "{video} video, {audio} audio frames"
    );
    let (video, audio) = playbin_buffers(&origin.url(&start_over), PlayFor::Eos(Duration::from_secs(60)))
        .expect("playbin plays the start-over window");
    assert!(
        video >= 25 * 6 && audio >= 40 * 6,
        "{video} video and {audio} audio buffers"
    );
    let report = common::browser::hlsjs_play(root.path(), &origin.url(&start_over), 8);
    assert_eq!(report.get("fatal-errors"), "0", "{report:?}");
    assert!(report.number("video-frames") >= 100.0, "{report:?}");
    assert!(report.number("audio-bytes") > 0.0, "{report:?}");
    // Outside, and malformed.
    let (status, _, body) = origin.ask("GET", "/ch1/index.m3u8?delay=3600", &[]);
    assert_eq!(status, 404);
    assert!(
        String::from_utf8_lossy(&body).contains("the ring holds"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, _, _) = origin.ask(
        "GET",
        "/ch1/index.m3u8?start=2020-01-01T00:00:00Z&end=2020-01-01T01:00:00Z",
        &[],
    );
    assert_eq!(status, 404);
    for bad in [
        "delay=soon",
        "start=yesterday",
        "start=2026-12-05T06:00:00Z&delay=3",
        "end=2026-12-05T06:00:00Z",
    ] {
        let (status, _, _) = origin.ask("GET", &format!("/ch1/index.m3u8?{bad}"), &[]);
        assert_eq!(status, 400, "{bad}");
    }
}

/// A live writer of H.264 (a keyframe a second) and AAC into `ring`, for
/// `seconds`, with 2 s segments unless `props` (more sink properties) say
/// otherwise, with `env`.
fn spawn_live_writer(ring: &Path, seconds: u32, props: &str, env: &[(&str, String)]) -> Child {
    live_writer(ring, Some(seconds), props, env, "-q")
        .stdout(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0")
}

/// The live writer's command: `seconds` of it (`None`: until stopped),
/// gst-launch-1.0's `flag` (`-q`, or `-m` for its messages).
fn live_writer(ring: &Path, seconds: Option<u32>, props: &str, env: &[(&str, String)], flag: &str) -> Command {
    let (video, audio) = seconds.map_or((String::new(), String::new()), |s| {
        (
            format!("num-buffers={}", s * 25),
            format!("num-buffers={}", s * 48000 / 1024),
        )
    });
    let mut command = Command::new("gst-launch-1.0");
    command
        .env("GST_PLUGIN_PATH", common::plugin_dir())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args([flag, "-e"])
        .args(
            format!(
                "videotestsrc is-live=true {video} pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 ! \
                 x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast bitrate=600 ! queue ! mpegtsmux name=m ! \
                 streambuffersink segment-duration=2000000000 location={} {props} \
                 audiotestsrc is-live=true {audio} samplesperbuffer=1024 ! audio/x-raw,rate=48000 ! avenc_aac ! \
                 queue ! m.",
                ring.display(),
            )
            .split_whitespace(),
        );
    command
}

/// The `KEY=value` attributes of a playlist tag line.
fn attributes(line: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = line.split_once(':').map_or("", |(_, r)| r);
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
        } else {
            after.split_once(',').map_or((after, ""), |(v, n)| (v, n))
        };
        out.insert(key.trim_start_matches(',').to_owned(), value.to_owned());
        rest = next.trim_start_matches(',');
    }
    out
}

/// Low-Latency HLS from a live ring: parts of the segment being written
/// (byte ranges within the part target, independent at keyframes), a
/// preload hint whose request gets the whole part once it is written,
/// server control; a blocking reload answers once the part asked for exists, 400 past the next two segments, 503 when the writer
/// has stopped; hls.js (low-latency mode) plays through the origin, loading
/// parts, and reports how far behind live it is (measured in
/// `scripts/bench.sh`, printed here).
#[test]
fn low_latency_hls_from_a_live_ring() {
    common::init();
    let root = tempfile::tempdir().expect("root");
    let ring = root.path().join("ch1");
    let mut writer = spawn_live_writer(&ring, 120, "", &[]);
    let origin = Origin::start(&[root.path()]);
    let playlist = |query: &str| {
        let (status, h, body) = origin.ask("GET", &format!("/ch1/index.m3u8{query}"), &[]);
        (status, h, String::from_utf8_lossy(&body).into_owned())
    };
    assert!(
        common::wait_until(Duration::from_secs(30), || playlist("").2.matches("#EXTINF").count()
            >= 3),
        "three segments"
    );
    let (status, h, text) = playlist("");
    assert_eq!(
        (status, h["content-type"].as_str()),
        (200, "application/vnd.apple.mpegurl")
    );
    assert!(
        text.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=3.000"),
        "{text}"
    );
    assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=1.000"), "{text}");
    // Every part within the target, whole packets, independent ones at a
    // keyframe; the hint names the next bytes of the segment being written.
    let parts: Vec<HashMap<String, String>> = text
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .map(attributes)
        .collect();
    assert!(parts.len() >= 6, "{text}");
    for p in &parts {
        let duration: f64 = p["DURATION"].parse().expect("duration");
        assert!(duration > 0.0 && duration <= 1.0, "{p:?}");
        let (len, offset) = p["BYTERANGE"].split_once('@').expect("len@offset");
        let (len, offset): (u64, u64) = (len.parse().expect("len"), offset.parse().expect("offset"));
        assert_eq!((len % 188, offset % 188), (0, 0), "{p:?}");
        let data = std::fs::read(ring.join(&p["URI"])).expect("segment");
        assert!(offset + len <= data.len() as u64, "{p:?}");
        if p.get("INDEPENDENT").map(String::as_str) == Some("YES") {
            let first = &data[offset as usize..offset as usize + 188];
            assert_eq!(first[0], 0x47, "{p:?}");
        }
    }
    assert!(
        parts.iter().filter(|p| p.contains_key("INDEPENDENT")).count() >= 3,
        "{text}"
    );
    let hint = text
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:"))
        .map(attributes)
        .expect("a preload hint");
    assert_eq!(hint["TYPE"], "PART");
    let open_msn: u64 = hint["URI"]
        .trim_start_matches("segment-")
        .trim_end_matches(".ts")
        .parse()
        .expect("a segment");
    let open_parts = parts.iter().filter(|p| p["URI"] == hint["URI"]).count();

    // A blocking reload for the next part: answered once it is there.
    let (status, _, blocked) = playlist(&format!("?_HLS_msn={open_msn}&_HLS_part={open_parts}"));
    assert_eq!(status, 200);
    let now_parts = blocked
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:") && l.contains(&hint["URI"]))
        .count();
    let completed = blocked.contains(&format!("\n{}\n", hint["URI"]));
    assert!(now_parts > open_parts || completed, "{blocked}");
    // The preload hint's request: the part starting there, once complete.
    let (_, _, text) = playlist("");
    let hint = text
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:"))
        .map(attributes)
        .expect("a preload hint");
    let start = &hint["BYTERANGE-START"];
    let (status, h, body) = origin.ask(
        "GET",
        &format!("/ch1/{}", hint["URI"]),
        &[("Range", &format!("bytes={start}-"))],
    );
    assert_eq!(status, 206);
    let (_, _, after) = playlist("");
    let part = after
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .map(attributes)
        .find(|p| p["URI"] == hint["URI"] && p["BYTERANGE"].ends_with(&format!("@{start}")))
        .unwrap_or_else(|| panic!("the hinted part is listed: {after}"));
    let len: usize = part["BYTERANGE"]
        .split_once('@')
        .and_then(|(l, _)| l.parse().ok())
        .expect("len");
    assert_eq!(body.len(), len, "{h:?}");
    assert!(h["content-range"].starts_with(&format!("bytes {start}-")), "{h:?}");
    let data = std::fs::read(ring.join(&hint["URI"])).expect("segment");
    let from: usize = start.parse().expect("start");
    assert!(body == data[from..from + len], "the part's bytes");

    let (status, _, _) = playlist(&format!("?_HLS_msn={}", open_msn + 5));
    assert_eq!(status, 400);

    // hls.js in low-latency mode, through the origin.
    let report = common::browser::hlsjs_play(root.path(), &origin.url("/ch1/index.m3u8"), 15);
    eprintln!("hls.js through the origin: {report:?}");
    assert_eq!(report.get("fatal-errors"), "0", "{report:?}");
    assert!(report.number("video-frames") >= 100.0, "{report:?}");
    assert!(report.number("audio-bytes") > 0.0, "{report:?}");
    assert!(report.number("parts-loaded") >= 5.0, "{report:?}");

    // A delayed live playlist: 6 s behind, growing; playbin, ffmpeg and
    // hls.js play it.
    let (status, _, delayed) = playlist("?delay=6");
    assert_eq!(status, 200, "{delayed}");
    assert!(
        !delayed.contains("#EXT-X-ENDLIST") && !delayed.contains("#EXT-X-PART"),
        "{delayed}"
    );
    let delay_url = origin.url("/ch1/index.m3u8?delay=6");
    let (video, audio) =
        playbin_buffers(&delay_url, PlayFor::Time(Duration::from_secs(4))).expect("playbin plays the delay");
    assert!(video >= 25 && audio >= 40, "{video} video and {audio} audio buffers");
    let (video, audio) = ffprobe_frames_for(&delay_url, Some(3));
    assert!(video >= 25 && audio >= 40, "{video} video, {audio} audio frames");
    let report = common::browser::hlsjs_play(root.path(), &delay_url, 6);
    assert_eq!(report.get("fatal-errors"), "0", "{report:?}");
    assert!(report.number("video-frames") >= 50.0, "{report:?}");
    assert!(report.number("audio-bytes") > 0.0, "{report:?}");
    let (status, _, _) = playlist("?_HLS_part=1");
    assert_eq!(status, 400);

    // The writer gone (killed: no EXT-X-ENDLIST), a part that never comes:
    // 503 after three target durations (a bound that only catches a hang).
    let _ = writer.kill();
    let _ = writer.wait();
    let (_, _, text) = playlist("");
    let last_msn = text
        .lines()
        .filter(|l| l.starts_with("segment-"))
        .filter_map(|l| {
            l.trim_start_matches("segment-")
                .trim_end_matches(".ts")
                .parse::<u64>()
                .ok()
        })
        .max()
        .expect("segments");
    let started = Instant::now();
    let (status, _, _) = playlist(&format!("?_HLS_msn={}", last_msn + 2));
    assert_eq!(status, 503);
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
}

/// The date-time now, as a window's query takes it.
fn utc_now() -> String {
    gst::glib::DateTime::now_utc()
        .and_then(|t| t.format("%Y-%m-%dT%H:%M:%S.%fZ"))
        .expect("date")
        .to_string()
}

/// A window reaching back past the ring: the archive's segments first, then
/// the ring's; the origin serves the archive's from the bucket, byte for
/// byte and by range; playbin (hlsdemux2 where this GStreamer has it) and
/// ffmpeg play the window with audio and video. With the bucket gone,
/// such a window is a 502 naming why (never a playlist without its
/// beginning), the ring's own playlist is still served, and once the
/// bucket is back the window is too.
#[test]
fn windows_reach_into_the_archive_and_an_unreachable_bucket_is_a_clear_502() {
    common::init();
    const BUCKET: &str = "tv-archive";
    let mut server = S3Server::start(BUCKET);
    let root = tempfile::tempdir().expect("root");
    let ring = root.path().join("ch1");
    let before = utc_now();
    // 12 s into a ring of 3 s (1 s segments); the archive gets every one.
    let props = format!(
        "segment-duration=1000000000 max-duration=3000000000 {}",
        server.sink_props(BUCKET, "ch1")
    );
    let mut writer = spawn_live_writer(&ring, 12, &props, &server.env());
    assert!(
        common::wait_until(Duration::from_secs(90), || writer.try_wait().ok().flatten().is_some()),
        "the writer ends"
    );
    assert!(writer.wait().expect("writer").success(), "the writer succeeded");
    let after = utc_now();
    assert!(common::rings::playlist(&ring).segments.len() <= 5, "the ring evicted");
    let origin = Origin::start_with(&[root.path()], &server.env());
    let window = format!("/ch1/index.m3u8?start={before}&end={after}");
    let (status, h, body) = origin.ask("GET", &window, &[]);
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 200, "{text}");
    assert_eq!(h["cache-control"], "public, max-age=3600", "{text}");
    let uris: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let archived: Vec<&str> = uris.iter().copied().filter(|u| u.starts_with("archive/")).collect();
    assert!(archived.len() >= 6, "{text}");
    assert!(uris.len() > archived.len(), "the ring's segments follow: {text}");
    assert!(
        uris[..archived.len()].iter().all(|u| u.starts_with("archive/")),
        "the archive's first: {text}"
    );
    assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
    // An archived segment through the origin is the bucket's object.
    let key = archived[1].trim_start_matches("archive/");
    let stored = std::fs::read(server.object(BUCKET, &format!("ch1/{key}"))).expect("in the bucket");
    let (status, h, body) = origin.ask("GET", &format!("/ch1/{}", archived[1]), &[]);
    assert_eq!(status, 200);
    assert!(body == stored, "the archived segment's bytes");
    assert_eq!(
        (h["content-type"].as_str(), h["cache-control"].as_str()),
        ("video/mp2t", "public, max-age=31536000, immutable")
    );
    let (status, h, body) = origin.ask("GET", &format!("/ch1/{}", archived[1]), &[("Range", "bytes=188-375")]);
    assert_eq!(status, 206);
    assert_eq!(h["content-range"], format!("bytes 188-375/{}", stored.len()));
    assert!(body == stored[188..376], "the range's bytes");
    let etag = h["etag"].clone();
    let (status, _, _) = origin.ask("GET", &format!("/ch1/{}", archived[1]), &[("If-None-Match", &etag)]);
    assert_eq!(status, 304);
    let (status, _, _) = origin.ask("GET", "/ch1/archive/2020-01-01T00/000000000-000000000001.ts", &[]);
    assert_eq!(status, 404);

    // Players: GStreamer picks hlsdemux2 over hlsdemux where it has it.
    let rank = |name: &str| gst::ElementFactory::find(name).map(|f| gst::prelude::PluginFeatureExtManual::rank(&f));
    if let Some(two) = rank("hlsdemux2") {
        assert!(rank("hlsdemux").is_none_or(|one| two > one), "playbin picks hlsdemux2");
    }
    let (video, audio) =
        playbin_buffers(&origin.url(&window), PlayFor::Eos(Duration::from_secs(60))).expect("playbin plays it");
    assert!(
        video >= 25 * 10 && audio >= 40 * 10,
        "{video} video and {audio} audio buffers"
    );
    let (video, audio) = ffprobe_frames(&origin.url(&window));
    assert!(
        video >= 25 * 10 && audio >= 40 * 10,
        "{video} video, {audio} audio frames"
    );

    // The bucket gone: the window says why, the ring is still served.
    server.stop();
    let (status, h, body) = origin.ask("GET", &window, &[]);
    let why = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 502, "{why}");
    assert!(why.contains("archive cannot be read"), "{why}");
    assert!(!h.contains_key("cache-control"), "{h:?}");
    let (status, _, _) = origin.ask("GET", &format!("/ch1/{}", archived[2]), &[]);
    assert_eq!(status, 502);
    let (status, _, _) = origin.ask("GET", "/ch1/index.m3u8", &[]);
    assert_eq!(status, 200);
    server.restart();
    let (status, _, again) = origin.ask("GET", &window, &[]);
    assert_eq!(status, 200);
    assert!(again == text.as_bytes(), "the same window once the bucket is back");
}

/// What a client polling the live playlist saw that a consistent origin
/// never shows.
#[derive(Default)]
struct Polled {
    playlists: usize,
    faults: Vec<String>,
}

/// Polls the live playlist of `ring` (at `path` on `origin`) every 100 ms
/// while `run` is set, and `pause` is not: each must parse, its media
/// sequence never goes back, a segment once listed keeps its duration, and
/// every part lies within the segment's bytes as they are then.
fn poll_live(
    addr: SocketAddr,
    path: String,
    ring: std::path::PathBuf,
    run: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pause: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Polled> {
    use std::sync::atomic::Ordering;
    std::thread::spawn(move || {
        let mut polled = Polled::default();
        let mut last_sequence = 0u64;
        let mut durations: HashMap<String, f32> = HashMap::new();
        while run.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
            if pause.load(Ordering::SeqCst) {
                continue;
            }
            let (status, _, body) = ask_at(addr, "GET", &path, &[]);
            if status == 404 {
                continue; // not written yet
            }
            let text = String::from_utf8_lossy(&body).into_owned();
            let Ok(parsed) = m3u8_rs::parse_media_playlist_res(&body) else {
                polled.faults.push(format!("{status}: not a playlist: {text}"));
                continue;
            };
            polled.playlists += 1;
            if parsed.media_sequence < last_sequence {
                polled.faults.push(format!("the media sequence went back: {text}"));
            }
            last_sequence = parsed.media_sequence;
            for s in &parsed.segments {
                let was = *durations.entry(s.uri.clone()).or_insert(s.duration);
                if (was - s.duration).abs() > 0.001 {
                    polled
                        .faults
                        .push(format!("{} was {was} s, now {} s", s.uri, s.duration));
                }
            }
            // Parts past the end of their segment as it is now, in this
            // playlist and again in the next (a segment cut back between
            // the two requests is not the origin's fault).
            let past_end = |text: &str| -> Vec<HashMap<String, String>> {
                text.lines()
                    .filter(|l| l.starts_with("#EXT-X-PART:"))
                    .map(attributes)
                    .filter(|part| {
                        let (len, offset) = part["BYTERANGE"].split_once('@').unwrap_or(("0", "0"));
                        let end = len.parse::<u64>().unwrap_or(0) + offset.parse::<u64>().unwrap_or(0);
                        end > std::fs::metadata(ring.join(&part["URI"])).map_or(0, |m| m.len())
                    })
                    .collect()
            };
            if !past_end(&text).is_empty() {
                let (_, _, again) = ask_at(addr, "GET", &path, &[]);
                let again = String::from_utf8_lossy(&again).into_owned();
                for part in past_end(&again) {
                    polled
                        .faults
                        .push(format!("a part past the end of its segment: {part:?}"));
                }
            }
        }
        polled
    })
}

/// The origin while the writer fails and restarts: the writer's disk fails
/// for 3 s (ENOSPC from the kernel, through the fault shim: the sink posts
/// `write-failure`, drops, then `write-failure-clear`), then it is killed
/// mid-segment and started again on the same ring. A client polling the
/// live playlist throughout sees playlists that parse, a media sequence
/// that never goes back, segments that keep their durations and parts
/// within the bytes written; blocking reloads during the failure answer
/// (200 or 503) instead of hanging; the server stays up, and players play
/// the whole ring through it once it has ended.
#[test]
fn a_failing_and_restarted_writer_leaves_clients_consistent_playlists() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    common::init();
    let root = tempfile::tempdir().expect("root");
    let ring = root.path().join("ch1");
    let faults = common::processes::fault_env(
        root.path(),
        "segment-",
        "write,writev,pwrite",
        &[
            ("FAULT_ERRNO", "28"),
            ("FAULT_AFTER_MS", "6000"),
            ("FAULT_FOR_MS", "3000"),
        ],
    );
    let origin = Origin::start(&[root.path()]);
    let (run, pause) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicBool::new(false)));
    let poller = poll_live(
        origin.addr,
        "/ch1/index.m3u8".into(),
        ring.clone(),
        Arc::clone(&run),
        Arc::clone(&pause),
    );
    let log = root.path().join("writer.log");
    let mut writer = live_writer(&ring, None, "retry-interval=200000000", &faults, "-m")
        .stdout(std::fs::File::create(&log).expect("log"))
        .stderr(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0");
    // During the failure: blocking reloads for what is not written answer.
    std::thread::sleep(Duration::from_secs(7));
    let (_, _, text) = origin.ask("GET", "/ch1/index.m3u8", &[]);
    let next = m3u8_rs::parse_media_playlist_res(&text)
        .map(|p| p.media_sequence + p.segments.len() as u64)
        .expect("a playlist");
    let started = Instant::now();
    let (status, _, _) = origin.ask("GET", &format!("/ch1/index.m3u8?_HLS_msn={next}"), &[]);
    assert!(status == 200 || status == 503, "{status}");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    std::thread::sleep(Duration::from_secs(5));
    let reported = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        reported.contains("streambuffer-write-failure,") && reported.contains("streambuffer-write-failure-clear"),
        "the sink failed and recovered: {reported}"
    );

    // Killed mid-segment, started again on the same ring (no faults now).
    std::thread::sleep(Duration::from_millis(900));
    pause.store(true, Ordering::SeqCst);
    let _ = writer.kill();
    let _ = writer.wait();
    let before = common::rings::playlist(&ring).segments.len();
    let mut writer = spawn_live_writer(&ring, 8, "", &[]);
    assert!(
        common::wait_until(Duration::from_secs(30), || common::rings::playlist(&ring)
            .segments
            .len()
            > before),
        "the restarted writer writes"
    );
    pause.store(false, Ordering::SeqCst);
    assert!(
        common::wait_until(Duration::from_secs(60), || writer.try_wait().ok().flatten().is_some()),
        "the writer ends"
    );
    std::thread::sleep(Duration::from_millis(500));
    run.store(false, Ordering::SeqCst);
    let polled = poller.join().expect("the poller");
    assert!(polled.playlists >= 50, "{} playlists polled", polled.playlists);
    assert!(polled.faults.is_empty(), "{:#?}", polled.faults);

    // The server is up, the ring ended: players play all of it.
    let (status, _, body) = origin.ask("GET", "/ch1/index.m3u8", &[]);
    assert_eq!(status, 200);
    let listed = m3u8_rs::parse_media_playlist_res(&body).expect("a playlist");
    assert!(listed.end_list, "the ring ended");
    assert!(
        listed.segments.iter().filter(|s| s.discontinuity).count() >= 2,
        "the hole and the restart are marked"
    );
    let (video, audio) = playbin_buffers(&origin.url("/ch1/index.m3u8"), PlayFor::Eos(Duration::from_secs(60)))
        .expect("playbin plays it");
    assert!(
        video >= 25 * 15 && audio >= 40 * 15,
        "{video} video and {audio} audio buffers"
    );
}
