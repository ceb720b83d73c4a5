// SPDX-License-Identifier: MPL-2.0
//! The playlist is played back, live, while the sink is still recording.
// Real kernel behaviour (tmpfs, FIFOs, signals, gst-launch-1.0 children):
// these tests run on Unix.
#![cfg(unix)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{
    SECOND, init,
    pipelines::first_error,
    rings::{assert_segment_well_formed, playlist, playlist_entries, segments},
    wait_until,
};
use gst::prelude::*;

#[test]
fn ffmpeg_reads_the_playlist_while_recording() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 ! \
         x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast ! mpegtsmux ! \
         streambuffersink name=sink location={} segment-duration={} max-duration={}",
        ring.display(),
        SECOND,
        20 * SECOND
    ))
    .expect("parse")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    pipeline.set_state(gst::State::Playing).expect("play");
    assert!(
        wait_until(Duration::from_secs(30), || playlist_entries(&ring) >= 3),
        "no live playlist appeared"
    );
    let text = std::fs::read(ring.join("index.m3u8")).expect("read");
    let live = m3u8_rs::parse_media_playlist_res(&text).expect("parse");
    assert!(!live.end_list, "a live playlist must not be ended");

    // ffmpeg starts near the live edge and must wait for new segments.
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(ring.join("index.m3u8"))
        .args(["-t", "4", "-f", "framecrc", "-"])
        .output()
        .expect("run ffmpeg");
    let bus = pipeline.bus().expect("bus");
    let error = first_error(&bus);
    pipeline.set_state(gst::State::Null).expect("stop");
    assert_eq!(error, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffmpeg complained: {stderr}"
    );
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count();
    assert!(frames >= 90, "ffmpeg decoded only {frames} frames of 4 s live");

    // Stopping without EOS still leaves a finished ring.
    let pl = playlist(&ring);
    assert!(pl.end_list);
    for s in segments(&ring) {
        assert_segment_well_formed(&s);
    }
}
