// SPDX-License-Identifier: MPL-2.0
//! Tests of the recorder on generated streams, without a pipeline.

use super::segmenter::FORCED_CUT_FACTOR;
use super::*;
use crate::layout::{SegmentInfo, SegmentNumber};
use crate::ring::{LeaseLimit, Retention, RingConfig};
use crate::ts::packet::tests::PacketBuilder;
use crate::ts::psi::tests::{pat_section, pmt_section, psi_packet};
use crate::ts::random_access::tests::{H264_IDR, H264_P, pes};
use crate::ts::timeline::PCR_HZ;
use crate::ts::{PACKET_SIZE, Packet};

const SECOND: u64 = 1_000_000_000;

/// A host with a manual clock; `wait` advances it and succeeds `max_waits` times.
pub(crate) struct TestHost {
    pub now: Instant,
    pub events: Vec<RecorderEvent>,
    pub waits: u32,
    pub max_waits: u32,
    /// When the recorder last asked for [`Recorder::publish_pending`].
    pub publish_due: Option<Instant>,
}

impl TestHost {
    pub(crate) fn new() -> Self {
        TestHost {
            now: Instant::now(),
            events: Vec::new(),
            waits: 0,
            max_waits: u32::MAX,
            publish_due: None,
        }
    }
}

impl Host for TestHost {
    fn now(&self) -> Instant {
        self.now
    }

    fn wait(&mut self, timeout: Duration) -> bool {
        self.waits += 1;
        self.now += timeout;
        self.waits <= self.max_waits
    }

    fn event(&mut self, event: RecorderEvent) {
        self.events.push(event);
    }

    fn publish_at(&mut self, due: Instant) {
        self.publish_due = Some(due);
    }
}

/// A synthetic 25 fps program: PAT+PMT every 10 frames, 3 packets per
/// frame, a keyframe every `gop` frames, PCR on every frame.
struct Stream {
    gop: u32,
    frame: u32,
    pcr_base: u64,
    cc: [u8; 3],
    /// Split the keyframe's start code across its first two packets.
    split_keyframe: bool,
    scrambled: bool,
    with_pcr: bool,
    /// Keyframes come this many frames earlier than every `gop` after the
    /// first (a short first GOP, as open-GOP encoders make).
    key_offset: u32,
}

impl Stream {
    fn new(gop: u32) -> Self {
        Stream {
            gop,
            frame: 0,
            pcr_base: PCR_HZ,
            cc: [0; 3],
            split_keyframe: false,
            scrambled: false,
            with_pcr: true,
            key_offset: 0,
        }
    }

    fn next_frame(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.frame.is_multiple_of(10) {
            out.extend_from_slice(&psi_packet(0, &pat_section(1, 0x100), self.cc[0]));
            out.extend_from_slice(&psi_packet(0x100, &pmt_section(1, 0x101, &[(0x1B, 0x101)]), self.cc[1]));
            self.cc[0] = (self.cc[0] + 1) & 0xF;
            self.cc[1] = (self.cc[1] + 1) & 0xF;
        }
        let key = self.frame == 0 || (self.frame + self.key_offset).is_multiple_of(self.gop);
        let mut es = pes(if key { H264_IDR } else { H264_P });
        // A PTS 0.1 s after the frame's PCR, as a multiplexer sends it.
        let pts = self.pcr_base / 300 + u64::from(self.frame) * 3600 + 9000;
        es[9..14].copy_from_slice(&[
            0x21 | ((pts >> 29) & 0x0E) as u8,
            (pts >> 22) as u8,
            0x01 | ((pts >> 14) & 0xFE) as u8,
            (pts >> 7) as u8,
            0x01 | ((pts << 1) & 0xFE) as u8,
        ]);
        let cut = if key && self.split_keyframe { 16 } else { es.len() };
        let mut first = es[..cut].to_vec();
        first.resize(if cut < es.len() { cut } else { 150 }, 0x11);
        let mut payloads = vec![first, es[cut..].to_vec(), vec![0x22; 184]];
        payloads.retain(|p| !p.is_empty());
        while payloads.len() < 3 {
            payloads.push(vec![0x33; 184]);
        }
        for (i, payload) in payloads.into_iter().enumerate() {
            let mut b = PacketBuilder::new(0x101);
            b.pusi = i == 0;
            b.cc = self.cc[2];
            self.cc[2] = (self.cc[2] + 1) & 0xF;
            b.scrambling = if self.scrambled { 2 } else { 0 };
            if i == 0 && self.with_pcr {
                b.pcr = Some(self.pcr_base + u64::from(self.frame) * PCR_HZ / 25);
            }
            b.payload = payload;
            out.extend_from_slice(&b.build());
        }
        self.frame += 1;
        out
    }

    fn frames(&mut self, n: u32) -> Vec<u8> {
        (0..n).flat_map(|_| self.next_frame()).collect()
    }
}

fn recorder(dir: &std::path::Path, segment: u64) -> Recorder {
    recorder_keeping(dir, segment, Retention::default())
}

fn recorder_keeping(dir: &std::path::Path, segment: u64, retention: Retention) -> Recorder {
    let ring = Ring::open(RingConfig {
        dir: dir.to_owned(),
        retention,
        playlist_length: 0,
        segment_duration_ns: segment,
        sync_on_rotate: false,
        reuse_evicted: true,
        extra_segments: 0,
        iframe_playlist: false,
        archive_hold_limit: None,
        lease_limit: LeaseLimit::OFF,
    })
    .expect("open ring");
    Recorder::new(
        ring,
        RecorderConfig {
            segment_duration_ns: segment,
            program: None,
            failure_mode: FailureMode::Drop,
            retry_interval: Duration::from_secs(1),
        },
        &[],
    )
}

fn segment_files(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "ts"))
        .collect();
    names.sort();
    names.iter().map(|p| std::fs::read(p).expect("read")).collect()
}

fn pid(p: &[u8]) -> u16 {
    u16::from(p[1] & 0x1F) << 8 | u16::from(p[2])
}

/// Every segment: PAT, PMT, the stuffing that aligns it (null packets),
/// then the keyframe's first packet.
fn assert_segments_start_decodable(files: &[Vec<u8>]) {
    for (i, f) in files.iter().enumerate() {
        assert_eq!(f.len() % PACKET_SIZE, 0);
        let mut pkts: Vec<&[u8]> = f.chunks(PACKET_SIZE).collect();
        let stuffing = pkts[2..].iter().take_while(|p| pid(p) == 0x1FFF).count();
        assert!(stuffing < crate::ring::WRITE_ALIGNMENT / 4, "segment {i}");
        pkts.drain(2..2 + stuffing);
        assert_eq!(
            (pid(pkts[0]), pid(pkts[1]), pid(pkts[2])),
            (0, 0x100, 0x101),
            "segment {i}"
        );
        let p = Packet::new(pkts[2]).expect("packet");
        assert!(p.payload_unit_start(), "segment {i} does not start at a PES");
        // The start code may straddle into the next packet of the PES.
        let mut es = p.payload().to_vec();
        es.extend_from_slice(Packet::new(pkts[3]).expect("packet").payload());
        assert!(
            es.windows(4).any(|w| w == [0, 0, 1, 0x67]),
            "segment {i} does not start at a keyframe"
        );
    }
}

#[test]
fn cuts_at_keyframes_after_the_duration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rec = recorder(dir.path(), 2 * SECOND);
    let mut host = TestHost::new();
    let mut s = Stream::new(25); // 1 s GOP
    rec.push(&s.frames(250), None, &mut host).expect("push"); // 10 s
    rec.finish(&mut host, true).expect("finish");
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 5);
    assert_segments_start_decodable(&files);
    let durations: Vec<u64> = rec.ring().segments().map(|s| s.duration_ns).collect();
    assert_eq!(&durations[..4], &[2 * SECOND; 4]);
}

#[test]
fn keyframe_detected_across_packets_still_cuts_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rec = recorder(dir.path(), 2 * SECOND);
    let mut host = TestHost::new();
    let mut s = Stream::new(25);
    s.split_keyframe = true;
    let data = s.frames(250);
    for chunk in data.chunks(1000) {
        rec.push(chunk, None, &mut host).expect("push");
    }
    rec.finish(&mut host, true).expect("finish");
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 5);
    assert_segments_start_decodable(&files);
    // Nothing lost or duplicated beyond the PAT/PMT heads.
    let total: usize = files.iter().map(Vec::len).sum();
    assert_eq!(total, data.len() + 4 * 2 * PACKET_SIZE);
}

#[test]
fn pcr_jump_starts_a_discontinuous_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rec = recorder(dir.path(), 2 * SECOND);
    let mut host = TestHost::new();
    let mut s = Stream::new(25);
    rec.push(&s.frames(110), None, &mut host).expect("push");
    s.pcr_base = 3600 * PCR_HZ; // encoder restart: the clock jumps an hour
    rec.push(&s.frames(140), None, &mut host).expect("push");
    rec.finish(&mut host, true).expect("finish");
    let segs: Vec<_> = rec.ring().segments().cloned().collect();
    let flagged: Vec<u64> = segs
        .iter()
        .filter(|s| s.discontinuity)
        .map(|s| s.sequence.get())
        .collect();
    assert_eq!(flagged.len(), 1, "{segs:?}");
    let text = std::fs::read_to_string(dir.path().join("index.m3u8")).expect("playlist");
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
    // The hour is not counted as recorded time.
    let total: u64 = segs.iter().map(|s| s.duration_ns).sum();
    assert!(total < 11 * SECOND, "window of {total} ns");
    assert_segments_start_decodable(&segment_files(dir.path()));
}

/// A first GOP a little shorter than the rest (1.84 s, then 2 s, with 2 s
/// segments, as x265's open GOP makes): it gets a segment of its own rather
/// than a 3.84 s one, and `EXT-X-TARGETDURATION` stays 2.
#[test]
fn a_short_first_gop_does_not_raise_the_target_duration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rec = recorder(dir.path(), 2 * SECOND);
    let mut host = TestHost::new();
    let mut s = Stream::new(50);
    s.key_offset = 4; // keyframes at frames 0, 46, 96, 146, ...
    rec.push(&s.frames(500), None, &mut host).expect("push"); // 20 s
    rec.finish(&mut host, true).expect("finish");
    let durations: Vec<u64> = rec.ring().segments().map(|s| s.duration_ns).collect();
    assert_eq!(durations[0], 46 * SECOND / 25, "{durations:?}");
    assert!(durations.iter().all(|&d| d <= 2 * SECOND), "{durations:?}");
    let text = std::fs::read_to_string(dir.path().join(crate::layout::PLAYLIST_NAME)).expect("playlist");
    assert!(text.contains("#EXT-X-TARGETDURATION:2\n"), "{text}");
    assert_segments_start_decodable(&segment_files(dir.path()));
}

/// A GOP five times longer than the segment duration (x264's default of 250
/// frames with 2 s segments): every segment is one whole GOP, starts on its
/// keyframe, and none is forced.
#[test]
fn long_gops_are_never_cut_inside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rec = recorder(dir.path(), 2 * SECOND);
    let mut host = TestHost::new();
    let mut s = Stream::new(250); // 10 s GOP
    rec.push(&s.frames(1000), None, &mut host).expect("push"); // 40 s
    rec.finish(&mut host, true).expect("finish");
    assert_eq!(rec.stats().forced_cuts, 0, "{:?}", rec.stats());
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 4, "one segment per GOP");
    assert_segments_start_decodable(&files);
    let durations: Vec<u64> = rec.ring().segments().map(|s| s.duration_ns).collect();
    assert_eq!(&durations[..3], &[10 * SECOND; 3]);
}

/// Keyframes that stop being found (scrambled from the middle on): segments
/// stay bounded, at a few times the longest GOP seen.
#[test]
fn keyframes_that_vanish_still_give_bounded_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rec = recorder(dir.path(), SECOND);
    let mut host = TestHost::new();
    let mut s = Stream::new(50); // 2 s GOP
    rec.push(&s.frames(250), None, &mut host).expect("push"); // 10 s in the clear
    s.scrambled = true;
    rec.push(&s.frames(1000), None, &mut host).expect("push"); // 40 s scrambled
    rec.finish(&mut host, true).expect("finish");
    assert!(rec.stats().forced_cuts >= 5, "{:?}", rec.stats());
    let longest = rec.ring().segments().map(|s| s.duration_ns).max().unwrap_or(0);
    assert!(
        longest <= FORCED_CUT_FACTOR * 2 * SECOND + SECOND / 25,
        "segment of {longest} ns"
    );
    // Each forced cut's segment is marked, and only those: the segments
    // of the clear part start at keyframes.
    let forced = rec.ring().segments().filter(|s| !s.independent).count() as u64;
    assert_eq!(forced, rec.stats().forced_cuts);
    assert!(rec.ring().segments().next().is_some_and(|s| s.independent));
    let journal = std::fs::read_to_string(dir.path().join(crate::layout::JOURNAL_NAME)).expect("journal");
    assert_eq!(journal.matches(" forced\n").count() as u64, forced, "{journal}");
}

#[test]
fn unparseable_keyframes_still_give_bounded_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rec = recorder(dir.path(), SECOND);
    let mut host = TestHost::new();
    let mut s = Stream::new(25);
    s.scrambled = true; // no RAI and scrambled payload: no keyframe can be found
    rec.push(&s.frames(500), None, &mut host).expect("push"); // 20 s
    rec.finish(&mut host, true).expect("finish");
    assert!(rec.stats().forced_cuts >= 5, "{:?}", rec.stats());
    let longest = rec.ring().segments().map(|s| s.duration_ns).max().unwrap_or(0);
    assert!(
        longest <= FORCED_CUT_FACTOR * SECOND + SECOND / 25,
        "segment of {longest} ns"
    );
    assert_eq!(host.events, vec![RecorderEvent::Scrambling(true)]);
}

#[test]
fn without_any_clock_the_byte_count_drives_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rec = recorder(dir.path(), SECOND / 10);
    let mut host = TestHost::new();
    let mut s = Stream::new(5);
    s.with_pcr = false;
    let data = s.frames(1000);
    rec.push(&data, None, &mut host).expect("push");
    rec.finish(&mut host, true).expect("finish");
    assert_eq!(rec.clock_source(), ClockSource::ByteRate);
    let segs: Vec<_> = rec.ring().segments().cloned().collect();
    // About 600 kB at 8 Mbit/s: 0.6 s, six 0.1 s segments.
    assert!(segs.len() >= 5, "{} segments", segs.len());
    // Every byte counts at the default 8 Mbit/s.
    let total: u64 = segs.iter().map(|s| s.duration_ns).sum();
    let expected = data.len() as u64 * 8 * SECOND / crate::ts::timeline::DEFAULT_BITRATE;
    assert!(total.abs_diff(expected) < SECOND / 100, "{total} vs {expected}");
    assert_segments_start_decodable(&segment_files(dir.path()));
}

/// The keyframe index of each segment: a start record at the segment's
/// ring time, then one record per keyframe, pointing at the keyframe's
/// first packet, timed 1 s apart, sized to the next frame; ring time is
/// one timeline across segments and goes on after a restart.
#[test]
fn every_keyframe_is_indexed_and_ring_time_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let check = |expected_start: u64| -> u64 {
        let mut ring_time = expected_start;
        let mut seqs: Vec<SegmentNumber> = std::fs::read_dir(dir.path())
            .expect("read dir")
            .filter_map(|e| crate::layout::parse_segment_file_name(e.ok()?.file_name().to_str()?))
            .collect();
        seqs.sort_unstable();
        let listed: Vec<(SegmentNumber, u64)> = Ring::open(crate::ring::tests::config(dir.path()))
            .map(|r| r.segments().map(|s| (s.sequence, s.duration_ns)).collect())
            .expect("reopen");
        for (seq, duration) in listed {
            let data = std::fs::read(dir.path().join(crate::layout::segment_file_name(seq))).expect("segment");
            let file = crate::platform::open_read_only(&dir.path().join(crate::layout::segment_index_name(seq)));
            let index = crate::layout::index::read_opened(file, data.len() as u64).expect("index");
            if index.start.ring_time.ns() < expected_start {
                continue; // from the run before
            }
            assert_eq!(index.start.ring_time.ns(), ring_time, "segment {seq}");
            assert!(!index.keyframes.is_empty(), "segment {seq}");
            assert_eq!(
                index.keyframes.len() as u64,
                duration.div_ceil(SECOND),
                "segment {seq}: a keyframe a second: {:?}",
                index.keyframes
            );
            for (i, k) in index.keyframes.iter().enumerate() {
                let p = &data[k.offset as usize..k.offset as usize + 188];
                assert_eq!(
                    (p[1] & 0x40, crate::ts::Packet::new(p).map(|p| p.pid())),
                    (0x40, Some(crate::ts::Pid::new(0x101)))
                );
                assert_eq!(k.size, 3 * 188, "segment {seq}: {k:?}");
                assert_eq!(
                    k.ring_time.ns(),
                    index.start.ring_time.ns() + i as u64 * SECOND,
                    "segment {seq}"
                );
            }
            ring_time += duration;
        }
        ring_time
    };
    let mut host = TestHost::new();
    let mut rec = recorder(dir.path(), 2 * SECOND);
    let mut s = Stream::new(25); // a keyframe every second
    rec.push(&s.frames(25 * 10), None, &mut host).expect("push");
    rec.finish(&mut host, true).expect("finish");
    drop(rec);
    let end = check(0);
    assert!(end >= 8 * SECOND, "{end}");
    assert!(end <= 10 * SECOND, "{end}");
    // A restart: ring time goes on from the adopted segments' end.
    let mut rec = recorder(dir.path(), 2 * SECOND);
    let mut s = Stream::new(25);
    rec.push(&s.frames(25 * 6), None, &mut host).expect("push");
    rec.finish(&mut host, true).expect("finish");
    drop(rec);
    check(end);
}

/// An archive that is a finished ring's directory, answering only when the
/// test lets it (`held`), so that the ring can move on meanwhile.
struct FakeArchive {
    whole: std::path::PathBuf,
    restore: std::path::PathBuf,
    held: std::sync::Arc<std::sync::atomic::AtomicBool>,
    asked: std::sync::Arc<std::sync::Mutex<Vec<recording::RestoreRequest>>>,
    pending: Vec<recording::RestoreRequest>,
}

impl FakeArchive {
    fn answer(&self, request: &recording::RestoreRequest) -> recording::Restored {
        // The writer's journal, each segment placed by its index.
        let journal = std::fs::read(self.whole.join(crate::layout::JOURNAL_NAME)).expect("journal");
        let older: Vec<(SegmentInfo, crate::layout::RingTime)> = crate::layout::journal::parse(&journal)
            .segments
            .into_iter()
            .filter(|info| info.sequence < request.before)
            .map(|info| {
                let index = self.whole.join(crate::layout::segment_index_name(info.sequence));
                let start = crate::layout::index::read_start(crate::platform::open_read_only(&index)).expect("index");
                (info, start.ring_time)
            })
            .collect();
        let recording::ReachTarget::RingTime(target) = request.target else {
            panic!("only offsets here");
        };
        let from = older.iter().rposition(|(_, start)| *start <= target).unwrap_or(0);
        std::fs::create_dir_all(&self.restore).expect("restore dir");
        let segments = older[from..]
            .iter()
            .map(|(info, start)| {
                for name in [
                    crate::layout::segment_file_name(info.sequence),
                    crate::layout::segment_index_name(info.sequence),
                ] {
                    std::fs::copy(self.whole.join(&name), self.restore.join(&name)).expect("copy");
                }
                recording::RestoredSegment {
                    info: info.clone(),
                    start: *start,
                }
            })
            .collect();
        recording::Restored {
            recording: request.recording,
            dir: self.restore.clone(),
            result: Ok((segments, target)),
        }
    }
}

impl recording::ArchiveReach for FakeArchive {
    fn request(&mut self, request: recording::RestoreRequest) {
        self.asked.lock().expect("lock").push(request.clone());
        self.pending.push(request);
    }

    fn poll(&mut self) -> Option<recording::Restored> {
        if self.held.load(std::sync::atomic::Ordering::SeqCst) || self.pending.is_empty() {
            return None;
        }
        let request = self.pending.remove(0);
        Some(self.answer(&request))
    }

    fn wait(&mut self, _timeout: Duration) -> Option<recording::Restored> {
        self.held.store(false, std::sync::atomic::Ordering::SeqCst);
        self.poll()
    }
}

/// A content recording reaching 15 s back into a 4 s ring begins once the
/// archive answered; the ring evicted more meanwhile, so the archive is
/// asked again for those; the recording is then byte for byte the one a
/// ring that kept everything makes from the same stream.
#[test]
fn a_recording_reaching_past_the_ring_asks_the_archive_until_it_has_caught_up() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = tempfile::tempdir().expect("tempdir");
    let (whole_dir, short_dir) = (tmp.path().join("whole"), tmp.path().join("short"));
    std::fs::create_dir_all(&whole_dir).expect("dir");
    std::fs::create_dir_all(&short_dir).expect("dir");
    let mut host = TestHost::new();
    let mut whole = recorder(&whole_dir, 2 * SECOND);
    let four_seconds = Retention {
        max_duration_ns: 4 * SECOND,
        ..Retention::default()
    };
    let mut short = recorder_keeping(&short_dir, 2 * SECOND, four_seconds);
    let held = std::sync::Arc::new(AtomicBool::new(true));
    let asked = std::sync::Arc::default();
    short.reach_archive(Box::new(FakeArchive {
        whole: whole_dir.clone(),
        restore: short_dir.join("restore-1"),
        held: held.clone(),
        asked: std::sync::Arc::clone(&asked),
        pending: Vec::new(),
    }));
    let mut s = Stream::new(25);
    let mut feed = |frames: u32, host: &mut TestHost, short: &mut Recorder, whole: &mut Recorder| {
        let data = s.frames(frames);
        short.push(&data, None, host).expect("push");
        whole.push(&data, None, host).expect("push");
    };
    feed(25 * 20, &mut host, &mut short, &mut whole);
    let back = RecordingRequest::Offset(-15 * SECOND as i64);
    let rec_short = tmp.path().join("short.ts");
    let rec_whole = tmp.path().join("whole.ts");
    let id = short
        .start_recording(&rec_short, RecordingKind::Content, back, &mut host)
        .expect("start");
    let id_whole = whole
        .start_recording(&rec_whole, RecordingKind::Content, back, &mut host)
        .expect("start");
    let started = |host: &TestHost, id: u32| {
        host.events
            .iter()
            .filter(|e| matches!(e, RecorderEvent::RecordingStarted { id: i, .. } if *i == id))
            .count()
    };
    // Asked once; nothing begins while the archive has not answered, and
    // the ring moves on.
    assert_eq!(asked.lock().expect("lock").len(), 1);
    let first_before = asked.lock().expect("lock")[0].before;
    host.events.clear();
    feed(25 * 6, &mut host, &mut short, &mut whole);
    assert_eq!(started(&host, id), 0);
    assert!(
        short
            .ring()
            .oldest_segment()
            .is_some_and(|(oldest, ..)| oldest > first_before)
    );
    // Answered: asked again for what the ring evicted meanwhile, then begun.
    held.store(false, Ordering::SeqCst);
    feed(25, &mut host, &mut short, &mut whole);
    feed(25, &mut host, &mut short, &mut whole);
    let asked_for: Vec<_> = asked.lock().expect("lock").iter().map(|r| r.before).collect();
    assert_eq!(asked_for.len(), 2, "{asked_for:?}");
    assert!(asked_for[1] > asked_for[0], "{asked_for:?}");
    assert_eq!(started(&host, id), 1);
    // The ring's oldest segment when first asked was evicted meanwhile: it
    // came from the archive.
    assert!(
        short_dir
            .join("restore-1")
            .join(crate::layout::segment_file_name(first_before))
            .exists()
    );
    feed(25 * 2, &mut host, &mut short, &mut whole);
    assert!(short.stop_recording(id, RecordingRequest::Offset(0), &mut host));
    assert!(whole.stop_recording(id_whole, RecordingRequest::Offset(0), &mut host));
    feed(25 * 3, &mut host, &mut short, &mut whole);
    short.finish(&mut host, true).expect("finish");
    whole.finish(&mut host, true).expect("finish");
    let summaries: Vec<_> = host
        .events
        .iter()
        .filter_map(|e| match e {
            RecorderEvent::RecordingStopped(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(summaries.len(), 2, "{summaries:?}");
    assert!(summaries.iter().all(|s| s.error.is_none()), "{summaries:?}");
    let short_summary = summaries
        .iter()
        .find(|s| s.id == id && s.location == rec_short)
        .expect("short");
    assert!(short_summary.archived_segments >= 6, "{short_summary:?}");
    let (a, b) = (
        std::fs::read(&rec_short).expect("rec"),
        std::fs::read(&rec_whole).expect("rec"),
    );
    assert!(b.len() > 100_000, "{} bytes", b.len());
    assert!(
        a == b,
        "{} bytes from the archive and the ring, {} from the whole ring",
        a.len(),
        b.len()
    );
    assert!(!short_dir.join("restore-1").exists(), "removed once finished");
}

/// Each segment's first packet lands at a file offset congruent to its
/// offset in the stream, after null packets that follow the tables: input
/// read in aligned blocks is then copied from aligned memory. The layout
/// depends on the stream only, not on how it was cut into buffers or
/// whether they were kept or copied. The head a reader sends before a
/// later keyframe is the tables; every packet is there once.
#[test]
fn segments_are_laid_out_by_stream_offset_whatever_the_chunking() {
    // GOPs of 13 frames: segments of 2 s are not all a multiple of eight
    // packets (32 bytes) long, so that they need different stuffing.
    let data = Stream::new(13).frames(250);
    let tables = 2 * PACKET_SIZE;
    let record = |chunk: usize, shared: bool| {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rec = recorder(dir.path(), 2 * SECOND);
        let mut host = TestHost::new();
        for part in data.chunks(chunk) {
            if shared {
                let input: crate::ring::SharedBytes = std::sync::Arc::new(part.to_vec());
                rec.push_shared(input, None, &mut host).expect("push");
            } else {
                rec.push(part, None, &mut host).expect("push");
            }
        }
        rec.finish(&mut host, true).expect("finish");
        let heads: Vec<(u64, u64)> = rec
            .ring()
            .segments()
            .map(|info| {
                let name = crate::layout::segment_index_name(info.sequence);
                let file = crate::platform::open_read_only(&dir.path().join(name));
                let index = crate::layout::index::read_opened(file, info.bytes).expect("index");
                (u64::from(index.start.size), index.keyframes[0].offset)
            })
            .collect();
        (segment_files(dir.path()), heads)
    };
    let (files, heads) = record(1000, false);
    assert!(files.len() >= 4, "{} segments", files.len());
    let stuffing: Vec<usize> = files
        .iter()
        .map(|f| f[tables..].chunks(PACKET_SIZE).take_while(|p| pid(p) == 0x1FFF).count())
        .collect();
    let written: usize = files
        .iter()
        .zip(&stuffing)
        .map(|(f, n)| f.len() - tables - n * PACKET_SIZE)
        .sum();
    // The packets before the first keyframe are received but not written.
    let mut stream_offset = data.len() - written;
    for (i, ((f, &nulls), &head)) in files.iter().zip(&stuffing).zip(&heads).enumerate() {
        assert!(
            nulls < crate::ring::WRITE_ALIGNMENT / 4,
            "segment {i}: {nulls} null packets"
        );
        let first = tables + nulls * PACKET_SIZE;
        assert_eq!(
            head,
            (tables as u64, first as u64),
            "segment {i}: head (the tables) and first keyframe"
        );
        assert_eq!(
            stream_offset.wrapping_sub(first) % crate::ring::WRITE_ALIGNMENT,
            0,
            "segment {i}"
        );
        assert_eq!(
            &f[first..],
            &data[stream_offset..stream_offset + f.len() - first],
            "segment {i}"
        );
        stream_offset += f.len() - first;
    }
    assert_eq!(stream_offset, data.len());
    assert!(
        stuffing.iter().any(|&n| n > 0),
        "no segment needed stuffing: the test proves nothing"
    );
    for (chunk, shared) in [
        (7, false),
        (188 * 7, false),
        (65536, false),
        (65536, true),
        (100_000, true),
    ] {
        assert!(
            record(chunk, shared) == (files.clone(), heads.clone()),
            "chunks of {chunk} bytes, shared: {shared}"
        );
    }
}
