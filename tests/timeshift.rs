// SPDX-License-Identifier: MPL-2.0
//! Time-shift of a live URI in one element, `streambuffertimeshiftsrc`
//! (`streambuffer+udp://...`): playbin from Python as an application drives
//! it, its URI and properties, what it says when the input cannot be
//! recorded, and its temporary ring. (gst-play-1.0 through its keys:
//! tests/gst_play.rs.)
#![cfg(unix)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::inputs::Input;
use common::processes::{Reaped, free_udp_port, gst_launch};
use common::rings::{assert_input_in_ring, segments};
use common::{SECOND, init, plugin_dir, wait_until};
use gst::prelude::*;

/// Sends the 90 s H.264 + AAC input in real time to 127.0.0.1:`port` (7
/// packets a datagram), writing what it sends to `sent` too.
fn udp_sender(port: u16, sent: &Path) -> Reaped {
    Reaped(
        Command::new("gst-launch-1.0")
            .args(["-q", "filesrc"])
            .arg(format!("location={}", Input::Minutes.path().display()))
            .args("! tsparse set-timestamps=true alignment=7 ! identity sync=true ! tee name=t t. ! queue ! udpsink host=127.0.0.1 sync=false".split(' '))
            .arg(format!("port={port}"))
            .args(["t.", "!", "queue", "!", "filesink"])
            .arg(format!("location={}", sent.display()))
            .stdout(Stdio::null())
            .spawn()
            .expect("sender"),
    )
}

/// One `step NAME position=P live=L frames=F` line of the Python driver.
#[derive(Debug, Clone, Copy)]
struct Step {
    position: f64,
    live: f64,
    frames: f64,
}

impl Step {
    fn behind(&self) -> f64 {
        self.live - self.position
    }
}

fn step(output: &str, name: &str) -> Step {
    let line = output
        .lines()
        .find(|l| l.starts_with(&format!("step {name} ")))
        .unwrap_or_else(|| panic!("no step {name} in: {output}"));
    let field = |key: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in '{line}'"))
    };
    Step {
        position: field("position"),
        live: field("live"),
        frames: field("frames"),
    }
}

/// playbin with `streambuffer+udp://` from Python (PyGObject), as an
/// application drives it: pause 20 s (the recording goes on: resume plays
/// 20 s behind live), seek back 30 s, 8x forward until live (the source
/// goes back to 1x there), -8x back. The sender sends throughout, and the
/// ring (at a given location, so that it stays) holds every packet it sent.
/// Video frames are decoded in each phase, none while paused; no BUFFERING
/// message is posted for a ring that is simply behind.
#[test]
fn playbin_from_python_pauses_seeks_and_plays_fast_on_a_live_udp_uri() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let sent = dir.path().join("sent.ts");
    let stop = dir.path().join("stop");
    let port = free_udp_port();
    let mut sender = udp_sender(port, &sent);
    let uri = format!(
        "streambuffer+udp://127.0.0.1:{port}#location={}&segment-duration={SECOND}",
        ring.display()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/timeshift_playbin.py");
    let viewer = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(&uri)
        .arg("32")
        .arg(&stop)
        .env("GST_PLUGIN_PATH", plugin_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs the viewer");
    // The sender ends after its 90 s; the viewer, recording, a second later.
    assert!(
        wait_until(Duration::from_secs(150), || matches!(sender.0.try_wait(), Ok(Some(_)))),
        "the sender did not finish"
    );
    std::thread::sleep(Duration::from_secs(2));
    std::fs::write(&stop, b"").expect("stop file");
    let watchdog = {
        let pid = viewer.id();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(60));
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        })
    };
    let out = viewer.wait_with_output().expect("viewer output");
    drop(watchdog);
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the viewer failed: {output}");

    let started = step(&output, "started");
    assert!(
        started.behind() < 3.0,
        "started {:.1} s behind live: {output}",
        started.behind()
    );
    let (played, paused, still) = (
        step(&output, "played"),
        step(&output, "paused"),
        step(&output, "still-paused"),
    );
    assert!(
        played.frames >= started.frames + 25.0 * 25.0,
        "32 s of play decoded too few frames: {output}"
    );
    assert_eq!(paused.frames, still.frames, "frames decoded while paused: {output}");
    assert!(
        still.live >= paused.live + 15.0,
        "the live edge did not move while paused: {output}"
    );
    let resumed = step(&output, "resumed");
    assert!(
        (18.0..24.0).contains(&resumed.behind()),
        "{:.1} s behind live after a 20 s pause: {output}",
        resumed.behind()
    );
    let back = step(&output, "back-30");
    assert!(
        (back.position - (resumed.position - 28.0)).abs() < 3.0,
        "30 s back from {:.1} went to {:.1}: {output}",
        resumed.position,
        back.position
    );
    assert!(
        back.frames > resumed.frames + 25.0,
        "no frames after seeking back: {output}"
    );
    let at_live = step(&output, "at-live");
    assert!(at_live.behind() < 5.0, "8x did not reach live: {output}");
    assert!(output.contains("new-rate=(double)8"), "no rate change to 8x: {output}");
    assert!(
        output.contains("new-rate=(double)1, reason=(string)live-edge"),
        "8x did not go back to 1x at the live edge: {output}"
    );
    let (rewind, rewound) = (step(&output, "rewind"), step(&output, "rewound"));
    assert!(
        rewound.position < rewind.position - 8.0,
        "-8x for 3 s went from {:.1} to {:.1}: {output}",
        rewind.position,
        rewound.position
    );
    assert!(rewound.frames > rewind.frames, "no keyframes shown at -8x: {output}");
    let done = step(&output, "stopping");
    assert!(
        done.frames > rewound.frames + 25.0,
        "no frames after the rewind: {output}"
    );
    assert!(!output.contains("buffering"), "BUFFERING posted: {output}");

    let sent = std::fs::read(&sent).expect("sent bytes");
    let recorded: Vec<u8> = segments(&ring)
        .iter()
        .flat_map(|s| std::fs::read(s).expect("segment"))
        .collect();
    assert!(!recorded.is_empty(), "the ring at {} is empty", ring.display());
    assert_input_in_ring(&sent, &recorded);
}

/// The URI's fragment sets properties as gst-launch-1.0 would read them;
/// anything wrong in it (unknown or read-only property, bad value, out of
/// range, a URI not wrapped) is refused and changes nothing.
#[test]
fn the_uri_sets_properties_and_refuses_what_is_wrong() {
    init();
    let element = gst::Element::make_from_uri(
        gst::URIType::Src,
        "streambuffer+udp://127.0.0.1:5000#max-duration=60000000000&write-failure-mode=block&location=/var/tv/ch%201&trick-frame-rate=4",
        None,
    )
    .expect("playbin's lookup finds the element");
    assert_eq!(
        element.factory().map(|f| f.name()).as_deref(),
        Some("streambuffertimeshiftsrc")
    );
    assert_eq!(element.property::<u64>("max-duration"), 60 * SECOND);
    // Its own default: the first picture waits for the first segment.
    assert_eq!(element.property::<u64>("segment-duration"), 2 * SECOND);
    assert_eq!(
        element.property::<Option<String>>("location").as_deref(),
        Some("/var/tv/ch 1")
    );
    assert_eq!(element.property::<u32>("trick-frame-rate"), 4);
    assert_eq!(
        element.property::<Option<String>>("uri").as_deref(),
        Some("udp://127.0.0.1:5000")
    );
    let mode = element.property_value("write-failure-mode");
    assert_eq!(
        gst::prelude::GstValueExt::serialize(&mode)
            .expect("serialises")
            .as_str(),
        "block"
    );
    let handler = element.dynamic_cast_ref::<gst::URIHandler>().expect("a URI handler");
    for bad in [
        "streambuffer+udp://127.0.0.1:5001#no-such-property=1",
        "streambuffer+udp://127.0.0.1:5001#stats=x",
        "streambuffer+udp://127.0.0.1:5001#max-duration=soon",
        "streambuffer+udp://127.0.0.1:5001#segment-duration=1",
        "streambuffer+udp://127.0.0.1:5001#write-failure-mode=sometimes",
        "streambuffer+file:///tmp/x.ts",
        "udp://127.0.0.1:5001",
    ] {
        assert!(handler.set_uri(bad).is_err(), "{bad} accepted");
    }
    assert_eq!(handler.uri().as_deref(), Some("streambuffer+udp://127.0.0.1:5000"));
    assert_eq!(element.property::<u64>("max-duration"), 60 * SECOND);
}

/// An input that cannot be recorded is an ERROR at once naming it, not a
/// pipeline waiting for good: an HTTP server that is not there, a UDP port
/// taken by another process, and no URI at all.
#[test]
fn an_input_that_cannot_be_recorded_is_an_error_at_once() {
    init();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let (exited, ok, out) = gst_launch(
        &format!("streambuffertimeshiftsrc uri=http://127.0.0.1:{closed}/live.ts ! fakesink"),
        common::NO_ENV,
        Duration::from_secs(30),
    );
    assert!(exited && !ok, "{out}");
    assert!(
        out.contains("Recording 'http://127.0.0.1:") && out.contains("nothing was recorded"),
        "{out}"
    );
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let (exited, ok, out) = gst_launch(
        &format!("streambuffertimeshiftsrc uri=udp://127.0.0.1:{port}?reuse=false ! fakesink"),
        common::NO_ENV,
        Duration::from_secs(30),
    );
    assert!(exited && !ok, "{out}");
    assert!(out.contains(&format!("Cannot record 'udp://127.0.0.1:{port}")), "{out}");
    let (exited, ok, out) = gst_launch(
        "streambuffertimeshiftsrc ! fakesink",
        common::NO_ENV,
        Duration::from_secs(30),
    );
    assert!(exited && !ok && out.contains("No live URI to time-shift"), "{out}");
}

/// Without a location the ring is a private directory under $TMPDIR,
/// removed when playback stops; one a killed process left is removed by the
/// next start.
#[test]
fn the_temporary_ring_goes_at_stop_and_after_a_kill() {
    init();
    let tmp = tempfile::tempdir().expect("tempdir");
    let sent = tmp.path().join("sent.ts");
    let port = free_udp_port();
    let _sender = udp_sender(port, &sent);
    let temporary_rings = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(tmp.path())
            .expect("read tmp")
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("streambuffer-timeshift-"))
            })
            .collect()
    };
    let spawn = |buffers: u32| {
        Command::new("gst-launch-1.0")
            .args(["-q", "streambuffertimeshiftsrc"])
            .arg(format!("uri=udp://127.0.0.1:{port}"))
            .arg(format!("segment-duration={SECOND}"))
            .args(["!", "fakesink", "sync=true"])
            .arg(format!("num-buffers={buffers}"))
            .env("GST_PLUGIN_PATH", plugin_dir())
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("gst-launch-1.0")
    };
    let mut killed = Reaped(spawn(1_000_000));
    assert!(
        wait_until(Duration::from_secs(20), || temporary_rings()
            .iter()
            .any(|r| r.join("ring/index.m3u8").is_file())),
        "no temporary ring with a segment appeared"
    );
    let _ = killed.0.kill();
    let _ = killed.0.wait();
    let left = temporary_rings();
    assert_eq!(left.len(), 1, "{left:?}");
    // num-buffers: the viewer plays ten blocks (about 6 s), then EOS.
    let mut finishing = Reaped(spawn(10));
    assert!(
        wait_until(Duration::from_secs(20), || !left[0].exists()),
        "the killed process's ring was not removed at the next start"
    );
    assert!(
        wait_until(Duration::from_secs(40), || matches!(
            finishing.0.try_wait(),
            Ok(Some(_))
        )),
        "the second viewer did not finish"
    );
    assert!(
        temporary_rings().is_empty(),
        "a temporary ring is left after stop: {:?}",
        temporary_rings()
    );
}

/// RTP (MP2T payload, depayloaded on the way in) into a ring at a given
/// location: played through `tsdemux` until 50 video frames are out, and
/// the ring stays after stop, a ring like any other.
#[test]
fn rtp_into_a_given_location_plays_and_the_ring_stays() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let port = free_udp_port();
    let _sender = Reaped(
        Command::new("gst-launch-1.0")
            .args(
                format!(
                    "-q videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=25/1 ! \
                     x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast ! mpegtsmux name=m ! \
                     rtpmp2tpay ! udpsink host=127.0.0.1 port={port} audiotestsrc is-live=true ! avenc_aac ! m."
                )
                .split_whitespace(),
            )
            .stdout(Stdio::null())
            .spawn()
            .expect("sender"),
    );
    let (exited, ok, out) = gst_launch(
        &format!(
            "streambuffertimeshiftsrc uri=rtp://127.0.0.1:{port} location={} segment-duration={SECOND} ! \
             tsdemux ! h264parse ! fakesink sync=true num-buffers=50",
            ring.display()
        ),
        common::NO_ENV,
        Duration::from_secs(40),
    );
    assert!(exited && ok && out.contains("Got EOS"), "{out}");
    let kept = segments(&ring);
    assert!(!kept.is_empty(), "no segment kept in {}", ring.display());
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0"])
        .arg(ring.join("index.m3u8"))
        .output()
        .expect("ffprobe");
    let codecs = String::from_utf8_lossy(&probe.stdout);
    assert!(
        codecs.contains("h264") && codecs.contains("aac"),
        "ffprobe on the kept ring: {codecs}"
    );
}

/// A pause longer than the window (12 s on 4 s, leases off): on resume the
/// viewer jumps to the oldest content and is told, as the Windows engine
/// does (`streambuffer-stale-file-deleted` on the application's bus), and
/// the recording never stopped (its stats count no write failure).
#[test]
fn a_pause_outliving_the_window_jumps_and_says_so() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_udp_port();
    let _sender = udp_sender(port, &dir.path().join("sent.ts"));
    let pipeline = common::pipelines::launch(&format!(
        "streambuffertimeshiftsrc name=ts uri=udp://127.0.0.1:{port} segment-duration={SECOND} max-duration={} \
         lease-max-duration=0 ! tsdemux ! h264parse ! fakesink sync=true",
        4 * SECOND
    ));
    let messages = common::pipelines::collect_messages(&pipeline);
    pipeline.set_state(gst::State::Playing).expect("play");
    let bus = pipeline.bus().expect("bus");
    let playing = bus.timed_pop_filtered(gst::ClockTime::from_seconds(30), &[gst::MessageType::AsyncDone]);
    assert!(playing.is_some(), "did not preroll");
    std::thread::sleep(Duration::from_secs(2));
    pipeline.set_state(gst::State::Paused).expect("pause");
    std::thread::sleep(Duration::from_secs(12));
    pipeline.set_state(gst::State::Playing).expect("resume");
    let told = wait_until(Duration::from_secs(10), || {
        messages
            .lock()
            .expect("lock")
            .iter()
            .any(|s| s.name() == "streambuffer-stale-file-deleted")
    });
    let timeshift = pipeline.by_name("ts").expect("ts");
    let recorder = timeshift.property::<gst::Structure>("recorder-stats");
    let reader = timeshift.property::<gst::Structure>("stats");
    pipeline.set_state(gst::State::Null).expect("stop");
    assert!(told, "no stale-file-deleted: {:?}", messages.lock().expect("lock"));
    assert_eq!(recorder.get::<u64>("write-failures").ok(), Some(0), "{recorder:?}");
    assert!(
        recorder.get::<u64>("segments-deleted").unwrap_or(0) >= 5,
        "{recorder:?}"
    );
    let lag = reader.get::<i64>("lag").unwrap_or(-1);
    assert!(
        (0..6 * SECOND as i64).contains(&lag),
        "{:.1} s behind live after the jump, in a 4 s window: {reader:?}",
        lag as f64 / 1e9
    );
}

/// An HTTP server that sends 5 s of the input in real time on each
/// connection, then resets it (a live source dropping); returns its port
/// and the count of connections so far.
fn dropping_http_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    let data = std::fs::read(Input::Minutes.path()).expect("input");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let data = data.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: video/mp2t\r\n\r\n");
                // 11,280 bytes every 100 ms: about the input's rate.
                let chunk = 188 * 60;
                let mut offset = (n * 50 * chunk) % (data.len() - 50 * chunk);
                for _ in 0..50 {
                    if stream.write_all(&data[offset..offset + chunk]).is_err() {
                        return;
                    }
                    offset += chunk;
                    std::thread::sleep(Duration::from_millis(100));
                }
                // SO_LINGER 0: close sends a reset, as a dropped source does.
                let linger = libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                };
                // SAFETY: a valid socket and a linger struct of the size given.
                unsafe {
                    libc::setsockopt(
                        std::os::fd::AsRawFd::as_raw_fd(&stream),
                        libc::SOL_SOCKET,
                        libc::SO_LINGER,
                        std::ptr::from_ref(&linger).cast(),
                        std::mem::size_of::<libc::linger>() as libc::socklen_t,
                    );
                }
            });
        }
    });
    (port, connections)
}

/// A live HTTP input that drops every 5 s: each drop is a WARNING naming the
/// input, the input is opened again, playback never stops (no ERROR, no
/// EOS), and the ring goes on recording across the drops.
#[test]
fn a_dropping_http_input_is_reopened_and_recording_goes_on() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let (port, connections) = dropping_http_server();
    let (exited, _, out) = gst_launch(
        &format!(
            "-m streambuffertimeshiftsrc uri=http://127.0.0.1:{port}/live.ts location={} segment-duration={SECOND} ! \
             tsdemux ! h264parse ! fakesink sync=true",
            ring.display()
        ),
        common::NO_ENV,
        Duration::from_secs(18),
    );
    assert!(!exited, "playback ended: {out}");
    assert!(
        out.contains(&format!(
            "The live input 'http://127.0.0.1:{port}/live.ts' failed, retrying"
        )),
        "no warning for the drops: {out}"
    );
    assert!(!out.contains("ERROR") && !out.contains("Got EOS"), "{out}");
    assert!(
        connections.load(std::sync::atomic::Ordering::SeqCst) >= 3,
        "the input was not opened again"
    );
    let recorded: f64 = common::rings::playlist(&ring)
        .segments
        .iter()
        .map(|s| f64::from(s.duration))
        .sum();
    assert!(recorded > 9.0, "{recorded:.1} s recorded across the drops");
}

/// Stopped and started again, the element records and plays again (its
/// writer moves to a new recording pipeline; a given ring is adopted).
#[test]
fn it_plays_again_after_a_stop() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let port = free_udp_port();
    let _sender = udp_sender(port, &dir.path().join("sent.ts"));
    let pipeline = common::pipelines::launch(&format!(
        "streambuffertimeshiftsrc uri=udp://127.0.0.1:{port} location={} segment-duration={SECOND} ! \
         fakesink name=out sync=true",
        ring.display()
    ));
    let out = pipeline.by_name("out").expect("out");
    // No demuxer: gst-launch's delayed link to a demuxer's pad is made once.
    for round in 0..2 {
        pipeline.set_state(gst::State::Playing).expect("play");
        let bus = pipeline.bus().expect("bus");
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::AsyncDone, gst::MessageType::Error],
        );
        assert!(
            matches!(msg.as_ref().map(|m| m.view()), Some(gst::MessageView::AsyncDone(_))),
            "round {round}: {msg:?}"
        );
        assert!(
            wait_until(Duration::from_secs(10), || out
                .property::<Option<gst::Sample>>("last-sample")
                .is_some()),
            "round {round}: nothing played"
        );
        pipeline.set_state(gst::State::Null).expect("stop");
    }
    assert!(segments(&ring).len() >= 2, "{:?}", segments(&ring));
}
