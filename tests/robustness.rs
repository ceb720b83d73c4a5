// SPDX-License-Identifier: MPL-2.0
//! Hostile input: whatever a multicast group or a tuner sends, the sink
//! never panics, never posts an ERROR for bad input, never writes a
//! misaligned packet, and its counters say what happened.
// Real kernel behaviour (tmpfs, FIFOs, signals, gst-launch-1.0 children):
// these tests run on Unix.
#![cfg(unix)]

mod common;

use std::time::Duration;

use common::{
    PACKET, init,
    media::{ffmpeg_decode, pcr_of, pid, test_stream},
    pipelines::{appsrc_sink, record_file, run_to_eos, stat_u64, stats, wait_for_eos},
    rings::{playlist, ring_files, segments},
};
use gst::prelude::*;

const PROPS: &str = "segment-duration=2000000000 max-duration=0";

/// Records `data` pushed through appsrc in `chunks`-sized buffers (optionally
/// switching caps) and returns the ring's stats at EOS.
fn record_bytes(data: &[u8], chunk: usize, ring: &std::path::Path, props: &str) -> gst::Structure {
    let (pipeline, src) = appsrc_sink(ring, props);
    src.set_caps(Some(
        &gst::Caps::builder("video/mpegts").field("systemstream", true).build(),
    ));
    pipeline.set_state(gst::State::Playing).expect("play");
    for c in data.chunks(chunk.max(1)) {
        src.push_buffer(gst::Buffer::from_slice(c.to_vec())).expect("push");
    }
    src.end_of_stream().expect("eos");
    wait_for_eos(&pipeline, Duration::from_secs(120)).expect("EOS, never an ERROR, for bad input");
    let s = stats(&pipeline, "sink");
    pipeline.set_state(gst::State::Null).expect("stop");
    s
}

fn assert_ring_aligned(ring: &std::path::Path) {
    for s in segments(ring) {
        let d = std::fs::read(&s).expect("read");
        assert_eq!(d.len() % PACKET, 0, "{} misaligned", s.display());
        assert!(
            d.chunks(PACKET).all(|p| p[0] == 0x47),
            "{} has a packet without sync",
            s.display()
        );
    }
}

fn xorshift(state: &mut u32) -> u32 {
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    *state
}

#[test]
fn random_bytes_only() {
    let mut rng = 0x1234_5678;
    let data: Vec<u8> = (0..2_000_000).map(|_| xorshift(&mut rng) as u8).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let s = record_bytes(&data, 1316, &ring, PROPS);
    assert_ring_aligned(&ring);
    let dropped = stat_u64(&s, "dropped-bytes");
    let packets = stat_u64(&s, "packets");
    assert_eq!(
        dropped + packets * PACKET as u64,
        data.len() as u64,
        "every byte is accounted for"
    );
    assert!(
        dropped > data.len() as u64 * 9 / 10,
        "random bytes are dropped: {dropped}"
    );
}

#[test]
fn every_nth_byte_flipped() {
    let mut data = std::fs::read(test_stream(12)).expect("read");
    for i in (500..data.len()).step_by(5000) {
        data[i] ^= 0xFF;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let s = record_bytes(&data, 4096, &ring, PROPS);
    assert_ring_aligned(&ring);
    // Flipped sync bytes are resynchronised, flipped headers break continuity.
    assert!(stat_u64(&s, "sync-losses") + stat_u64(&s, "continuity-errors") + stat_u64(&s, "transport-errors") > 0);
    assert!(segments(&ring).len() >= 3, "recording goes on");
}

#[test]
fn truncated_final_packet() {
    let data = std::fs::read(test_stream(8)).expect("read");
    let cut = &data[..data.len() - 100];
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let s = record_bytes(cut, 1316, &ring, PROPS);
    assert_ring_aligned(&ring);
    assert_eq!(stat_u64(&s, "dropped-bytes"), (PACKET - 100) as u64);
}

#[test]
fn rs_coded_204_byte_packets() {
    let clean = std::fs::read(test_stream(8)).expect("read");
    let mut rs = Vec::new();
    for p in clean.chunks(PACKET) {
        rs.extend_from_slice(p);
        rs.extend_from_slice(&[0x5A; 16]);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    record_bytes(&clean, 65536, &dir.path().join("a"), PROPS);
    let s = record_bytes(&rs, 65536, &dir.path().join("b"), PROPS);
    assert_eq!(stat_u64(&s, "dropped-bytes"), 0);
    assert!(ring_files(&dir.path().join("a")) == ring_files(&dir.path().join("b")));
}

#[test]
fn packet_size_changes_mid_way() {
    let clean = std::fs::read(test_stream(8)).expect("read");
    let half = clean.len() / PACKET / 2;
    let mut mixed = clean[..half * PACKET].to_vec();
    for p in clean[half * PACKET..].chunks(PACKET) {
        mixed.extend_from_slice(&[1, 2, 3, 4]);
        mixed.extend_from_slice(p);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = record_bytes(&mixed, 1316, &dir.path().join("ring"), PROPS);
    assert_ring_aligned(&dir.path().join("ring"));
    assert_eq!(stat_u64(&s, "sync-losses"), 1);
    // Every packet came through; only M2TS framing bytes were discarded.
    assert_eq!(stat_u64(&s, "packets"), (clean.len() / PACKET) as u64);
}

#[test]
fn no_tables_for_a_long_time_then_tables() {
    let clean = std::fs::read(test_stream(20)).expect("read");
    let half = clean.len() / PACKET / 2;
    let stripped: Vec<u8> = clean
        .chunks(PACKET)
        .enumerate()
        .filter(|(i, p)| *i >= half || !matches!(pid(p), 0 | 0x20))
        .flat_map(|(_, p)| p.to_vec())
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let s = record_bytes(&stripped, 65536, &ring, PROPS);
    assert_ring_aligned(&ring);
    // Without tables only the multiplexer's random-access flag marks cut
    // points (and nothing to put at a segment's head); once the tables come,
    // every segment starts with them again.
    let files = ring_files(&ring);
    assert!(files.len() >= 5, "{} segments", files.len());
    assert_ne!(pid(&files[0].1[..PACKET]), 0, "no PAT was known yet");
    let last = &files.last().expect("segment").1;
    assert_eq!((pid(&last[..PACKET]), pid(&last[PACKET..])), (0, 0x20));
    assert_eq!(stat_u64(&s, "packets"), (stripped.len() / PACKET) as u64);
}

#[test]
fn pcr_wrap_around_is_continuous() {
    // Shift every PCR so that the stream starts 10 s before the 33-bit wrap.
    let mut data = std::fs::read(test_stream(12)).expect("read");
    let modulus: u64 = (1 << 33) * 300;
    let first = data.chunks(PACKET).find_map(pcr_of).expect("a PCR");
    let target = modulus - 10 * 27_000_000;
    for p in data.chunks_mut(PACKET) {
        if let Some(v) = pcr_of(p) {
            set_pcr(p, (v - first + target) % modulus);
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let s = record_bytes(&data, 65536, &ring, PROPS);
    assert_eq!(stat_u64(&s, "discontinuities"), 0, "the wrap is not a jump");
    let listed: f64 = playlist(&ring).segments.iter().map(|s| f64::from(s.duration)).sum();
    assert!((listed - 12.0).abs() < 0.5, "{listed} s listed for 12 s of video");
}

#[test]
fn pcr_jumping_back_marks_one_discontinuity() {
    let one = std::fs::read(test_stream(8)).expect("read");
    let twice = [one.clone(), one].concat();
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let s = record_bytes(&twice, 65536, &ring, PROPS);
    assert!(stat_u64(&s, "discontinuities") >= 1);
    let pl = playlist(&ring);
    assert_eq!(pl.segments.iter().filter(|s| s.discontinuity).count(), 1);
    let listed: f64 = pl.segments.iter().map(|s| f64::from(s.duration)).sum();
    assert!((listed - 16.0).abs() < 1.0, "the jump is not counted as time: {listed}");
    for seg in segments(&ring) {
        ffmpeg_decode(&seg).unwrap_or_else(|e| panic!("{}: {e}", seg.display()));
    }
}

#[test]
fn no_pcr_at_all() {
    let mut data = std::fs::read(test_stream(8)).expect("read");
    for p in data.chunks_mut(PACKET) {
        if pcr_of(p).is_some() {
            p[5] &= !0x10; // clear PCR_flag; the six bytes become stuffing
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    // No PCR and no timestamps (filesrc): time comes from the byte count at
    // the default 8 Mbit/s, so 8 s of this 0.6 Mbit/s stream "last" 0.6 s.
    let input = dir.path().join("no-pcr.ts");
    std::fs::write(&input, &data).expect("write");
    let s = record_file(&input, 1316, &ring, "segment-duration=100000000 max-duration=0");
    assert_ring_aligned(&ring);
    assert_ne!(s.get::<&str>("clock-source").expect("field"), "pcr");
    assert!(
        segments(&ring).len() >= 2,
        "time must advance without a PCR: {} segments",
        segments(&ring).len()
    );
}

#[test]
fn radio_without_video() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("radio.ts");
    run_to_eos(
        &format!(
            "audiotestsrc num-buffers=500 ! audio/x-raw,rate=48000,channels=2 ! lamemp3enc ! mpegaudioparse ! mpegtsmux ! \
             filesink location={}",
            input.display()
        ),
        Duration::from_secs(60),
    )
    .expect("encode radio");
    let ring = dir.path().join("ring");
    let s = record_file(&input, 4096, &ring, PROPS);
    assert_ring_aligned(&ring);
    assert_eq!(stat_u64(&s, "forced-cuts"), 0, "audio PES starts are cut points");
    let segs = segments(&ring);
    assert!(segs.len() >= 3, "{} segments from ~10 s of audio", segs.len());
    for seg in &segs {
        ffmpeg_decode(seg).unwrap_or_else(|e| panic!("{}: {e}", seg.display()));
    }
}

#[test]
fn zero_one_byte_and_huge_buffers() {
    let data = std::fs::read(test_stream(8)).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = dir.path().join("ref");
    record_bytes(&data, 65536, &reference, PROPS);
    // Zero-length buffers between one-byte buffers.
    let ring = dir.path().join("tiny");
    let (pipeline, src) = appsrc_sink(&ring, PROPS);
    pipeline.set_state(gst::State::Playing).expect("play");
    for (i, b) in data.iter().enumerate() {
        if i % 1000 == 0 {
            src.push_buffer(gst::Buffer::new()).expect("push empty");
        }
        src.push_buffer(gst::Buffer::from_slice(vec![*b])).expect("push");
    }
    src.end_of_stream().expect("eos");
    wait_for_eos(&pipeline, Duration::from_secs(300)).expect("EOS");
    pipeline.set_state(gst::State::Null).expect("stop");
    assert!(
        ring_files(&ring) == ring_files(&reference),
        "one-byte buffers change nothing"
    );
    // One 64 MiB buffer: the stream repeated (a PCR jump between copies).
    let mut big = Vec::with_capacity(64 << 20);
    while big.len() + data.len() <= 64 << 20 {
        big.extend_from_slice(&data);
    }
    big.resize(64 << 20, 0xFF);
    let huge = dir.path().join("huge");
    let s = record_bytes(&big, 64 << 20, &huge, PROPS);
    assert_ring_aligned(&huge);
    assert_eq!(stat_u64(&s, "buffers"), 1);
}

#[test]
fn caps_change_between_188_and_192() {
    let clean = std::fs::read(test_stream(8)).expect("read");
    let half = clean.len() / PACKET / 2 * PACKET;
    let mut m2ts = Vec::new();
    for p in clean[half..].chunks(PACKET) {
        m2ts.extend_from_slice(&[0, 0, 0, 0]);
        m2ts.extend_from_slice(p);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let (pipeline, src) = appsrc_sink(&ring, PROPS);
    let caps = |size: i32| {
        gst::Caps::builder("video/mpegts")
            .field("systemstream", true)
            .field("packetsize", size)
            .build()
    };
    src.set_caps(Some(&caps(188)));
    pipeline.set_state(gst::State::Playing).expect("play");
    for c in clean[..half].chunks(1316) {
        src.push_buffer(gst::Buffer::from_slice(c.to_vec())).expect("push");
    }
    src.set_caps(Some(&caps(192)));
    for c in m2ts.chunks(1344) {
        src.push_buffer(gst::Buffer::from_slice(c.to_vec())).expect("push");
    }
    src.end_of_stream().expect("eos");
    wait_for_eos(&pipeline, Duration::from_secs(60)).expect("EOS");
    let s = stats(&pipeline, "sink");
    pipeline.set_state(gst::State::Null).expect("stop");
    assert_ring_aligned(&ring);
    assert_eq!(stat_u64(&s, "packets"), (clean.len() / PACKET) as u64);
}

fn set_pcr(p: &mut [u8], v: u64) {
    let (base, ext) = (v / 300, v % 300);
    p[6] = (base >> 25) as u8;
    p[7] = (base >> 17) as u8;
    p[8] = (base >> 9) as u8;
    p[9] = (base >> 1) as u8;
    p[10] = ((base & 1) << 7) as u8 | 0x7E | (ext >> 8) as u8;
    p[11] = ext as u8;
}

/// ES loop entries (stream_type, pid) of the PMT carried by `packet`.
fn pmt_streams(packet: &[u8]) -> Vec<(u8, u16)> {
    let payload = if packet[3] & 0x20 != 0 {
        &packet[5 + usize::from(packet[4])..]
    } else {
        &packet[4..]
    };
    let section = &payload[1 + usize::from(payload[0])..];
    let len = usize::from(section[1] & 0x0F) << 8 | usize::from(section[2]);
    let info = usize::from(section[10] & 0x0F) << 8 | usize::from(section[11]);
    let mut rest = &section[12 + info..3 + len - 4];
    let mut out = Vec::new();
    while rest.len() >= 5 {
        out.push((rest[0], u16::from(rest[1] & 0x1F) << 8 | u16::from(rest[2])));
        let es = usize::from(rest[3] & 0x0F) << 8 | usize::from(rest[4]);
        rest = &rest[(5 + es).min(rest.len())..];
    }
    out
}

/// The PMT changes mid-stream (an audio stream appears, with new PIDs): the
/// next segment starts with the new tables.
#[test]
fn pmt_change_mid_stream() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let b = dir.path().join("b.ts");
    run_to_eos(
        &format!(
            "videotestsrc num-buffers=200 ! video/x-raw,width=320,height=240,framerate=25/1 ! \
             x264enc tune=zerolatency key-int-max=50 speed-preset=ultrafast ! mux. \
             audiotestsrc num-buffers=400 ! lamemp3enc ! mpegaudioparse ! mux. \
             mpegtsmux name=mux ! filesink location={}",
            b.display()
        ),
        Duration::from_secs(60),
    )
    .expect("encode B");
    let a = std::fs::read(test_stream(8)).expect("read A");
    let joined = [a, std::fs::read(&b).expect("read B")].concat();
    let ring = dir.path().join("ring");
    record_bytes(&joined, 65536, &ring, PROPS);
    assert_ring_aligned(&ring);
    let files = ring_files(&ring);
    let pids = |d: &[u8]| d.chunks(PACKET).take(3).map(pid).collect::<Vec<_>>();
    let head_pmt = |d: &[u8]| {
        let p = d
            .chunks(PACKET)
            .take(3)
            .find(|p| pid(p) == 0x20)
            .unwrap_or_else(|| panic!("no PMT at the head: {:?}", pids(d)));
        pmt_streams(p)
    };
    let first_pmt = head_pmt(&files[0].1);
    let last_pmt = head_pmt(&files.last().expect("segment").1);
    assert_eq!(first_pmt.len(), 1, "{first_pmt:?}");
    assert_eq!(
        last_pmt.len(),
        2,
        "the new PMT heads the segments after the change: {last_pmt:?}"
    );
    for (_, d) in &files {
        assert_eq!(pid(d), 0, "every segment starts with a PAT");
    }
    let last = dir.path().join("last.ts");
    std::fs::write(&last, &files.last().expect("segment").1).expect("write");
    ffmpeg_decode(&last).expect("the segment after the change decodes");
}

/// A PAT whose PMT never comes: nothing breaks, segments start with the PAT.
#[test]
fn pat_without_pmt() {
    let clean = std::fs::read(test_stream(8)).expect("read");
    let no_pmt: Vec<u8> = clean
        .chunks(PACKET)
        .filter(|p| pid(p) != 0x20)
        .flat_map(|p| p.to_vec())
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let s = record_bytes(&no_pmt, 1316, &ring, PROPS);
    assert_ring_aligned(&ring);
    assert!(segments(&ring).len() >= 2);
    assert_eq!(stat_u64(&s, "packets"), (no_pmt.len() / PACKET) as u64);
}
