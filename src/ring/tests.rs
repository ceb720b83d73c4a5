// SPDX-License-Identifier: MPL-2.0
//! Tests of the ring as a whole; the helpers are shared with the reader's tests.

use std::time::Instant;

use super::*;
use crate::layout::SegmentNumber;
use crate::layout::progress::Progress;
use crate::layout::{PLAYLIST_NAME, PROGRESS_NAME, RingTime, WallTime};

pub(crate) const SECOND: u64 = 1_000_000_000;

pub(crate) fn config(dir: &Path) -> RingConfig {
    RingConfig {
        dir: dir.to_owned(),
        retention: Retention {
            max_duration_ns: 10 * SECOND,
            ..Default::default()
        },
        playlist_length: 0,
        segment_duration_ns: 2 * SECOND,
        sync_on_rotate: false,
        reuse_evicted: true,
        extra_segments: 0,
        iframe_playlist: false,
        archive_hold_limit: None,
        lease_limit: LeaseLimit::OFF,
    }
}

pub(crate) fn start(discontinuity: bool) -> SegmentStart {
    SegmentStart {
        ring_time: RingTime::ZERO,
        program_date_time: WallTime::from_ms(1_700_000_000_000),
        discontinuity,
        independent: true,
        head_bytes: 0,
    }
}

const PKT: [u8; 188] = {
    let mut p = [0u8; 188];
    p[0] = 0x47;
    p
};

#[test]
fn rotates_evicts_and_publishes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ring = Ring::open(config(dir.path())).expect("open");
    for _ in 0..8 {
        ring.begin_segment(start(false)).expect("begin");
        ring.write(&PKT).expect("write");
        ring.finish_segment(2 * SECOND).expect("finish");
    }
    let seqs: Vec<u64> = ring.segments().map(|s| s.sequence.get()).collect();
    assert_eq!(seqs, vec![3, 4, 5, 6, 7]);
    assert_eq!(ring.stats().segments_deleted, 3);
    assert!(!dir.path().join(segment_file_name(SegmentNumber::new(2))).exists());
    assert!(dir.path().join(segment_file_name(SegmentNumber::new(3))).exists());
    let text = std::fs::read_to_string(dir.path().join(PLAYLIST_NAME)).expect("playlist");
    let pl = m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("parses");
    assert_eq!(pl.media_sequence, 3);
    assert_eq!(pl.segments.len(), 5);
}

/// A new segment, new file or reused, expects the length of the one
/// before it (its blocks are reserved up to 1/16 short of that); the first
/// expects none.
#[test]
fn each_segment_expects_the_length_of_the_one_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ring = Ring::open(config(dir.path())).expect("open");
    let limit = |ring: &Ring| ring.current.as_ref().map(|c| c.writer.reservation_limit());
    let mut expected = None;
    for packets in [1000usize, 3000, 500, 2000, 2000, 2000, 2000, 2000] {
        ring.begin_segment(start(false)).expect("begin");
        assert_eq!(limit(&ring), Some(expected));
        for _ in 0..packets {
            ring.write(&PKT).expect("write");
        }
        ring.finish_segment(2 * SECOND).expect("finish");
        let bytes = (packets * PKT.len()) as u64;
        expected = Some((bytes - bytes / 16) & !4095);
    }
    assert!(ring.stats().segments_reused > 0, "no reused file was checked");
}

/// The target duration is set by the first published playlist and raised
/// (counted) only for a segment that would round above it.
#[test]
fn target_duration_rises_only_when_it_must_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ring = Ring::open(config(dir.path())).expect("open");
    let target = || playlist_target(dir.path());
    for (duration, expected, raises) in [(10 * SECOND, 10, 0), (2 * SECOND, 10, 0), (12 * SECOND, 12, 1)] {
        ring.begin_segment(start(false)).expect("begin");
        ring.write(&PKT).expect("write");
        ring.finish_segment(duration).expect("finish");
        assert_eq!(target(), expected);
        assert_eq!(ring.stats().target_duration_raises, raises);
    }
}

/// The playlist's media sequence and number of entries (m3u8-rs).
fn playlist_head(dir: &Path) -> (u64, usize) {
    let text = std::fs::read_to_string(dir.join(PLAYLIST_NAME)).expect("playlist");
    let pl = m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("parses");
    (pl.media_sequence, pl.segments.len())
}

fn playlist_target(dir: &Path) -> u64 {
    let text = std::fs::read_to_string(dir.join(PLAYLIST_NAME)).expect("playlist");
    m3u8_rs::parse_media_playlist_res(text.as_bytes())
        .expect("parses")
        .target_duration
}

/// The playlist never starts with a forced cut's segment while a later
/// one starts at a random-access point; with none, it lists what it has.
#[test]
fn the_playlist_does_not_start_at_a_forced_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ring = Ring::open(config(dir.path())).expect("open");
    let mut add = |independent: bool| {
        ring.begin_segment(SegmentStart {
            independent,
            ..start(false)
        })
        .expect("begin");
        ring.write(&PKT).expect("write");
        ring.finish_segment(SECOND).expect("finish");
        // Segments finished in a burst: published together, at once here.
        ring.publish_pending();
    };
    add(false);
    add(false);
    assert_eq!(playlist_head(dir.path()), (0, 2), "nothing better to offer");
    add(true);
    add(false);
    assert_eq!(
        playlist_head(dir.path()),
        (2, 2),
        "starts at the first random-access point"
    );
    assert_eq!(ring.segments().len(), 4, "the forced ones stay in the ring");
}

/// Segments finished less than `REWRITE_INTERVAL` apart (input far faster
/// than real time) are published together: after each, the playlist lists
/// every finished segment or the ring says when it will; once that time
/// has come, the next flush writes them all in one rewrite.
#[test]
fn segments_finished_in_a_burst_are_published_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(dir.path());
    config.retention = Retention::default();
    let mut ring = Ring::open(config).expect("open");
    let mut burst_began = None;
    for finished in 1..=5 {
        ring.begin_segment(start(false)).expect("begin");
        ring.write(&PKT).expect("write");
        ring.finish_segment(2 * SECOND).expect("finish");
        let began = *burst_began.get_or_insert_with(Instant::now);
        let (_, listed) = playlist_head(dir.path());
        match ring.playlists_due() {
            None => assert_eq!(listed, finished, "published: all of them"),
            Some(due) => {
                assert!(listed < finished, "behind, and says so");
                assert!(
                    due <= Instant::now() + publish::REWRITE_INTERVAL,
                    "due within the interval"
                );
            }
        }
        if began.elapsed() < publish::REWRITE_INTERVAL {
            assert_eq!(
                ring.stats().playlist_writes,
                1,
                "the burst's first segment only, so far"
            );
        }
    }
    ring.begin_segment(start(false)).expect("begin");
    ring.write(&PKT).expect("write");
    if let Some(due) = ring.playlists_due() {
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    ring.flush().expect("flush");
    assert_eq!(playlist_head(dir.path()), (0, 5), "the next flush published the rest");
    assert_eq!(ring.playlists_due(), None);
}

/// While the playlist is behind the window, no file it lists is deleted
/// or reused: with no extra segments kept, a burst of rotations rewrites
/// it before each file goes, and every entry it lists is there to fetch.
#[test]
fn a_playlist_behind_the_window_lists_no_released_file() {
    for reuse_evicted in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = config(dir.path());
        config.retention.max_duration_ns = 4 * SECOND;
        config.reuse_evicted = reuse_evicted;
        let mut ring = Ring::open(config).expect("open");
        for _ in 0..12 {
            ring.begin_segment(start(false)).expect("begin");
            ring.write(&PKT).expect("write");
            ring.finish_segment(2 * SECOND).expect("finish");
            let text = std::fs::read_to_string(dir.path().join(PLAYLIST_NAME)).expect("playlist");
            let listed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("parses");
            for entry in &listed.segments {
                assert!(
                    dir.path().join(&entry.uri).exists(),
                    "{} is listed but gone (reuse {reuse_evicted})",
                    entry.uri
                );
            }
        }
        assert!(ring.stats().segments_deleted >= 9);
    }
}

/// With `extra_segments` 1 an evicted segment leaves the playlist at once
/// and its file one rotation later; the kept file counts in `max-size`
/// (so the window holds one segment fewer), and closing the ring deletes it.
#[test]
fn evicted_files_outlive_the_playlist_by_extra_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(dir.path());
    config.extra_segments = 1;
    config.reuse_evicted = false;
    let mut ring = Ring::open(config).expect("open");
    let listed = || {
        let text = std::fs::read_to_string(dir.path().join(PLAYLIST_NAME)).expect("playlist");
        m3u8_rs::parse_media_playlist_res(text.as_bytes())
            .expect("parses")
            .media_sequence
    };
    for _ in 0..7 {
        ring.begin_segment(start(false)).expect("begin");
        ring.write(&PKT).expect("write");
        ring.finish_segment(2 * SECOND).expect("finish");
    }
    // 10 s of 2 s segments: 0 and 1 were evicted; 1 is kept one rotation.
    assert_eq!(listed(), 2);
    assert!(!dir.path().join(segment_file_name(SegmentNumber::new(0))).exists());
    assert!(dir.path().join(segment_file_name(SegmentNumber::new(1))).exists());
    assert_eq!(ring.window().bytes, 6 * 188, "the kept file counts");
    ring.close(0).expect("close");
    assert!(!dir.path().join(segment_file_name(SegmentNumber::new(1))).exists());

    // max-size of 6 packets: five listed segments and the kept one.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = super::tests::config(dir.path());
    config.retention = Retention {
        max_size: 6 * 188,
        ..Default::default()
    };
    config.extra_segments = 1;
    let mut ring = Ring::open(config).expect("open");
    for _ in 0..9 {
        ring.begin_segment(start(false)).expect("begin");
        ring.write(&PKT).expect("write");
        ring.finish_segment(2 * SECOND).expect("finish");
        assert!(ring.window().bytes <= 6 * 188, "{:?}", ring.window());
    }
    let files = (0..9)
        .filter(|n| dir.path().join(segment_file_name(SegmentNumber::new(*n))).exists())
        .count();
    assert_eq!(files, 6);
    assert_eq!(ring.segments().len(), 5);

    // A failed write for lack of space frees the kept file first.
    let freed = ring.evict_under_pressure(1);
    assert_eq!(freed, 188);
    assert_eq!(ring.segments().len(), 5, "the window is untouched");
}

/// Whole packets whose every byte after the sync byte is `marker`, so
/// that bytes of one segment found in another show.
pub(crate) fn marked(marker: u8, packets: usize) -> Vec<u8> {
    let mut p = [marker; 188];
    p[0] = 0x47;
    p.repeat(packets)
}

/// Writes segments 0.. of 2 s until `sequence` is open with `packets`
/// written (and flushed); segment n is `marked(n, 4000 - 100 * n)`, so
/// each is shorter than the one whose file it reuses.
pub(crate) fn ring_at(dir: &Path, config: RingConfig, sequence: u64, packets: usize) -> Ring {
    let mut ring = Ring::open(config).expect("open");
    for n in 0..sequence {
        ring.begin_segment(start(false)).expect("begin");
        ring.write(&marked(n as u8, 4000 - 100 * n as usize)).expect("write");
        ring.finish_segment(2 * SECOND).expect("finish");
    }
    ring.begin_segment(start(false)).expect("begin");
    ring.write(&marked(sequence as u8, packets)).expect("write");
    ring.flush().expect("flush");
    assert!(dir.join(segment_file_name(SegmentNumber::new(sequence))).exists());
    ring
}

#[test]
fn evicted_files_are_reused_and_cut_to_length() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 10 s window of 2 s segments: from the 6th on, each evicts one.
    let mut ring = ring_at(dir.path(), config(dir.path()), 9, 10);
    let open = dir.path().join(segment_file_name(SegmentNumber::new(9)));
    // Segment 9 is written over segment 3's file: old packets follow
    // the 10 new ones, and the progress record says where they start.
    let on_disk = std::fs::read(&open).expect("read");
    assert_eq!(on_disk.len(), (4000 - 300) * 188);
    assert_eq!(&on_disk[..10 * 188], &marked(9, 10)[..]);
    assert_eq!(on_disk[10 * 188 + 1], 3);
    // max-size counts what the file occupies, old packets included.
    let listed: u64 = ring.segments().map(|s| s.bytes).sum();
    assert_eq!(ring.window().bytes, listed + on_disk.len() as u64);
    assert_eq!(
        Progress::read_in(dir.path()).expect("record"),
        Some(Progress {
            sequence: SegmentNumber::new(9),
            bytes: 10 * 188
        })
    );
    ring.finish_segment(2 * SECOND).expect("finish");
    ring.close(0).expect("close");
    assert_eq!(ring.stats().segments_reused, 4);
    assert_eq!(ring.stats().segments_deleted, 5);
    // Every segment holds exactly its own packets, and nothing is left over.
    for n in 5..=8 {
        let data = std::fs::read(dir.path().join(segment_file_name(SegmentNumber::new(n)))).expect("read");
        assert_eq!(data, marked(n as u8, 4000 - 100 * n as usize), "segment {n}");
    }
    assert_eq!(std::fs::read(&open).expect("read"), marked(9, 10));
    assert!(!dir.path().join(SPARE_NAME).exists());
    let listed: Vec<u64> = ring.segments().map(|s| s.sequence.get()).collect();
    assert_eq!(listed, vec![5, 6, 7, 8, 9]);
}

#[test]
fn no_reuse_when_disabled_or_syncing() {
    for (reuse_evicted, sync_on_rotate) in [(false, false), (true, true)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring = ring_at(
            dir.path(),
            RingConfig {
                reuse_evicted,
                extra_segments: 0,
                iframe_playlist: false,
                archive_hold_limit: None,
                lease_limit: LeaseLimit::OFF,
                sync_on_rotate,
                ..config(dir.path())
            },
            9,
            10,
        );
        assert_eq!(ring.stats().segments_reused, 0);
        let len = std::fs::metadata(dir.path().join(segment_file_name(SegmentNumber::new(9))))
            .expect("stat")
            .len();
        assert_eq!(len, 10 * 188);
    }
}

#[test]
fn a_linked_segment_is_deleted_not_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kept = tempfile::tempdir().expect("tempdir");
    let mut ring = Ring::open(config(dir.path())).expect("open");
    for n in 0..6u8 {
        if n == 5 {
            // A reference recording holds segment 0 by a hard link.
            std::fs::hard_link(
                dir.path().join(segment_file_name(SegmentNumber::new(0))),
                kept.path().join("0.ts"),
            )
            .expect("link");
        }
        ring.begin_segment(start(false)).expect("begin");
        ring.write(&marked(n, 50)).expect("write");
        ring.finish_segment(2 * SECOND).expect("finish");
    }
    ring.begin_segment(start(false)).expect("begin");
    ring.write(&marked(6, 10)).expect("write");
    ring.finish_segment(2 * SECOND).expect("finish");
    assert_eq!(ring.stats().segments_reused, 0);
    assert_eq!(std::fs::read(kept.path().join("0.ts")).expect("read"), marked(0, 50));
    assert!(!dir.path().join(segment_file_name(SegmentNumber::new(0))).exists());
}

#[test]
fn crash_in_a_reused_file_adopts_only_new_packets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = ring_at(dir.path(), config(dir.path()), 9, 10);
    // The writer dies: nothing is closed or cut.
    drop(ring);
    let path = dir.path().join(segment_file_name(SegmentNumber::new(9)));
    assert!(std::fs::metadata(&path).expect("stat").len() > 10 * 188);
    let ring = Ring::open(config(dir.path())).expect("reopen");
    assert_eq!(std::fs::read(&path).expect("read"), marked(9, 10));
    let last = ring.segments().next_back().expect("adopted");
    assert_eq!((last.sequence.get(), last.bytes), (9, 10 * 188));
    assert_eq!(ring.stats().adopted_trimmed_bytes, (4000 - 300 - 10) * 188);
}

#[test]
fn unreadable_progress_record_drops_the_unjournaled_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(ring_at(dir.path(), config(dir.path()), 9, 10));
    // As a power cut can leave it: created, never written back.
    std::fs::write(dir.path().join(PROGRESS_NAME), b"").expect("empty record");
    let ring = Ring::open(config(dir.path())).expect("reopen");
    let adopted: Vec<u64> = ring.segments().map(|s| s.sequence.get()).collect();
    assert_eq!(adopted, vec![4, 5, 6, 7, 8]);
    assert!(!dir.path().join(segment_file_name(SegmentNumber::new(9))).exists());
}

#[test]
fn second_writer_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _ring = Ring::open(config(dir.path())).expect("open");
    match Ring::open(config(dir.path())) {
        Err(RingError::Locked(_)) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("second writer accepted"),
    }
}

#[test]
fn file_is_not_a_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").expect("write");
    assert!(matches!(Ring::open(config(&file)), Err(RingError::NotADirectory(_))));
}

#[test]
fn restart_adopts_and_trims_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut ring = Ring::open(config(dir.path())).expect("open");
        for _ in 0..3 {
            ring.begin_segment(start(false)).expect("begin");
            ring.write(&PKT).expect("write");
            ring.finish_segment(2 * SECOND).expect("finish");
        }
        ring.begin_segment(start(false)).expect("begin");
        ring.write(&[PKT, PKT].concat()).expect("write");
        // Simulate a crash: the open segment's buffer reaches disk torn.
        let cur = ring.current.take().expect("open segment");
        let path = cur.writer.path().to_owned();
        drop(cur);
        std::fs::write(&path, [&PKT[..], &PKT[..], &PKT[..100]].concat()).expect("torn file");
    }
    let mut ring = Ring::open(config(dir.path())).expect("reopen");
    let seqs: Vec<u64> = ring.segments().map(|s| s.sequence.get()).collect();
    assert_eq!(seqs, vec![0, 1, 2, 3]);
    assert_eq!(ring.stats().adopted_segments, 4);
    assert_eq!(ring.stats().adopted_trimmed_bytes, 100);
    assert_eq!(
        std::fs::metadata(dir.path().join(segment_file_name(SegmentNumber::new(3))))
            .expect("stat")
            .len(),
        376
    );
    ring.begin_segment(start(true)).expect("begin");
    assert_eq!(
        ring.current_path()
            .map(|p| p.ends_with(segment_file_name(SegmentNumber::new(4)))),
        Some(true)
    );
}

/// A segment that cannot be deleted (immutable: unlink fails with EPERM) is
/// counted in the window's bytes until a later segment deletes it.
#[test]
fn undeletable_segments_count_until_deleted() {
    let chattr = |flag: &str, path: &Path| {
        let ok = std::process::Command::new("chattr")
            .arg(flag)
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "chattr {flag} {} (needs root and a filesystem with attributes)",
            path.display()
        );
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ring = Ring::open(RingConfig {
        reuse_evicted: false,
        extra_segments: 0,
        iframe_playlist: false,
        archive_hold_limit: None,
        lease_limit: LeaseLimit::OFF,
        ..config(dir.path())
    })
    .expect("open");
    for n in 0..5u8 {
        ring.begin_segment(start(false)).expect("begin");
        ring.write(&marked(n, 10)).expect("write");
        ring.finish_segment(2 * SECOND).expect("finish");
    }
    let oldest = dir.path().join(segment_file_name(SegmentNumber::new(0)));
    chattr("+i", &oldest);
    ring.begin_segment(start(false)).expect("begin");
    ring.write(&marked(5, 10)).expect("write");
    ring.finish_segment(2 * SECOND).expect("finish");
    let listed: u64 = ring.segments().map(|s| s.bytes).sum();
    assert_eq!(ring.stats().undeleted_files, 1);
    assert_eq!(
        ring.window().bytes,
        listed + 10 * 188,
        "the undeleted file still counts"
    );
    chattr("-i", &oldest);
    ring.begin_segment(start(false)).expect("begin");
    assert_eq!(ring.stats().undeleted_files, 0);
    assert!(!oldest.exists());
}

/// The ring directory is swapped for a link to another directory while
/// recording: nothing there is replaced, deleted or reused; new segments
/// fail until the link is gone, then the directory is made anew.
#[cfg(unix)]
#[test]
fn a_ring_directory_swapped_for_a_link_is_never_written_through() {
    let root = tempfile::tempdir().expect("tempdir");
    let (path, moved, other) = (
        root.path().join("ring"),
        root.path().join("moved"),
        root.path().join("other"),
    );
    std::fs::create_dir(&other).expect("mkdir");
    let precious: Vec<(String, Vec<u8>)> = [
        PLAYLIST_NAME.to_owned(),
        segment_file_name(SegmentNumber::new(0)),
        segment_file_name(SegmentNumber::new(7)),
    ]
    .into_iter()
    .map(|name| (name.clone(), format!("precious {name}").into_bytes()))
    .collect();
    for (name, data) in &precious {
        std::fs::write(other.join(name), data).expect("write");
    }
    let mut ring = ring_at(&path, config(&path), 6, 10);
    std::fs::rename(&path, &moved).expect("move the ring away");
    std::os::unix::fs::symlink(&other, &path).expect("plant a link");
    // The open segment finishes into the directory it was opened in; every
    // rotation after that (eviction, reuse, playlist) stays there too.
    ring.finish_segment(2 * SECOND).expect("finish");
    for _ in 0..3 {
        assert!(
            ring.begin_segment(start(false)).is_err(),
            "the path names another directory"
        );
    }
    let mut names: Vec<String> = std::fs::read_dir(&other)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected: Vec<String> = precious.iter().map(|(n, _)| n.clone()).collect();
    expected.sort();
    assert_eq!(names, expected, "nothing added to or taken from the other directory");
    for (name, data) in &precious {
        assert_eq!(
            &std::fs::read(other.join(name)).expect("read"),
            data,
            "{name} untouched"
        );
    }
    assert!(
        moved.join(PLAYLIST_NAME).exists(),
        "the ring went on in its own directory"
    );
    std::fs::remove_file(&path).expect("remove the link");
    ring.begin_segment(start(true)).expect("a directory made anew");
    assert_eq!(ring.stats().directory_recreated, 1);
    assert!(path.is_dir() && !path.is_symlink());
}

/// Adoption makes every index agree with its segment: one with a torn or
/// garbage tail is cut to its valid records, a missing one is rebuilt by
/// scanning the segment (the same keyframes at the same offsets, ring time
/// from the segment before), and ring time goes on from the adopted end.
#[test]
fn adoption_repairs_and_rebuilds_keyframe_indexes() {
    use crate::layout::index::{RECORD_SIZE, read_opened};
    use crate::layout::segment_index_name;
    use crate::ts::packet::tests::PacketBuilder;
    use crate::ts::psi::tests::{pat_section, pmt_section, psi_packet};
    use crate::ts::random_access::tests::{H264_IDR, H264_P};

    let dir = tempfile::tempdir().expect("tempdir");
    // Two segments of 2 s, a keyframe every second, PCR on every frame.
    let frame = |n: u64, key: bool, cc: &mut u8| {
        let mut out = Vec::new();
        let mut b = PacketBuilder::new(0x101);
        b.pusi = true;
        b.cc = *cc;
        *cc = (*cc + 1) & 0xF;
        b.pcr = Some(27_000_000 + n * 27_000_000 / 25);
        // PES with a PTS 0.1 s after the PCR.
        let pts = 90_000 + n * 90_000 / 25 + 9_000;
        b.payload = vec![
            0,
            0,
            1,
            0xE0,
            0,
            0,
            0x80,
            0x80,
            5,
            0x21 | ((pts >> 29) & 0x0E) as u8,
            (pts >> 22) as u8,
            0x01 | ((pts >> 14) & 0xFE) as u8,
            (pts >> 7) as u8,
            0x01 | ((pts << 1) & 0xFE) as u8,
        ];
        b.payload.extend_from_slice(if key { H264_IDR } else { H264_P });
        b.payload.resize(150, 0x11);
        out.extend_from_slice(&b.build());
        out
    };
    let mut ring = Ring::open(config(dir.path())).expect("open");
    let mut cc = 0;
    let mut ring_time = RingTime::ZERO;
    for seg in 0..2u64 {
        ring.begin_segment(SegmentStart {
            ring_time,
            ..start(false)
        })
        .expect("begin");
        let mut data = psi_packet(0, &pat_section(1, 0x100), 0).to_vec();
        data.extend_from_slice(&psi_packet(0x100, &pmt_section(1, 0x101, &[(0x1B, 0x101)]), 0));
        for f in 0..50 {
            data.extend(frame(seg * 50 + f, f % 25 == 0, &mut cc));
        }
        ring.write(&data).expect("write");
        ring.finish_segment(2 * SECOND).expect("finish");
        ring_time = ring_time.saturating_add(2 * SECOND);
    }
    drop(ring);
    let idx = |seq: u64| dir.path().join(segment_index_name(SegmentNumber::new(seq)));
    // Segment 0 had no index written (the ring API alone writes none):
    // adoption builds both; then damage one and delete the other.
    drop(Ring::open(config(dir.path())).expect("adopt"));
    let read = |seq: u64| read_opened(crate::platform::open_read_only(&idx(seq)), u64::MAX).expect("an index");
    let (built0, built1) = (read(0), read(1));
    assert_eq!(built0.start.ring_time, RingTime::ZERO);
    assert_eq!(
        built1.start.ring_time,
        RingTime::from_ns(2 * SECOND),
        "ring time from the segment before"
    );
    let offsets: Vec<u64> = built0.keyframes.iter().map(|k| k.offset).collect();
    assert_eq!(
        offsets,
        vec![2 * 188, (2 + 25) * 188],
        "the keyframes, after the tables"
    );
    assert_eq!(built0.start.size, 2 * 188, "the head before the first keyframe");
    assert_eq!(
        built0.keyframes[1]
            .ring_time
            .saturating_since(built0.keyframes[0].ring_time),
        SECOND
    );
    assert_eq!(
        built0.keyframes[0].presentation_delay,
        crate::ts::timeline::Ticks90k::new(9_000),
        "PTS 0.1 s after the PCR"
    );
    let mut damaged = std::fs::read(idx(0)).expect("read");
    damaged.extend_from_slice(&[0xAB; RECORD_SIZE + 7]);
    std::fs::write(idx(0), &damaged).expect("damage");
    std::fs::remove_file(idx(1)).expect("delete");
    let ring = Ring::open(config(dir.path())).expect("adopt again");
    assert_eq!(
        std::fs::read(idx(0)).expect("read").len(),
        3 * RECORD_SIZE,
        "cut to its records"
    );
    assert_eq!(read(0), built0);
    assert_eq!(read(1), built1, "rebuilt the same");
    assert_eq!(ring.ring_time_end(), RingTime::from_ns(4 * SECOND));
}

/// Ring time and date-times map both ways across a hole: three 2 s
/// segments, the third received 60 s after the second ended (a restart).
/// Dates in the hole go to the next segment's start; dates before the
/// oldest to its start; times in the open segment follow its date-time.
#[test]
fn ring_time_and_dates_map_across_a_hole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ring = Ring::open(config(dir.path())).expect("open");
    let t0 = 1_700_000_000_000;
    let at = |ms: i64| WallTime::from_ms(t0 + ms);
    let rt = RingTime::from_ns;
    for (n, date) in [(0u64, at(0)), (1, at(2_000)), (2, at(64_000)), (3, at(66_000))] {
        let s = SegmentStart {
            ring_time: rt(n * 2 * SECOND),
            program_date_time: date,
            ..start(false)
        };
        ring.begin_segment(s).expect("begin");
        ring.write(&PKT).expect("write");
        if n < 3 {
            ring.finish_segment(2 * SECOND).expect("finish");
        }
    }
    let starts: Vec<RingTime> = ring.segments_in_time().map(|(_, s)| s).collect();
    assert_eq!(starts, vec![rt(0), rt(2 * SECOND), rt(4 * SECOND)]);
    assert_eq!(ring.date_at(rt(SECOND)), Some(at(1_000)));
    assert_eq!(ring.date_at(rt(5 * SECOND)), Some(at(65_000)));
    assert_eq!(ring.date_at(rt(7 * SECOND)), Some(at(67_000)), "in the open segment");
    assert_eq!(ring.ring_time_at(at(3_500)), rt(3_500_000_000));
    assert_eq!(ring.ring_time_at(at(30_000)), rt(4 * SECOND), "in the hole");
    assert_eq!(ring.ring_time_at(at(-5_000)), rt(0), "before the oldest");
    assert_eq!(ring.ring_time_at(at(66_500)), rt(6_500_000_000), "in the open segment");
}

/// With `iframe_playlist`, each rotation publishes iframes.m3u8 (a byte
/// range per keyframe after the segment's tables, the tables as
/// EXT-X-MAP, durations to the next keyframe, numbered by keyframe so
/// that the numbers stay as the window slides) and master.m3u8 naming it
/// and index.m3u8; m3u8-rs reads both.
#[test]
fn iframe_and_multivariant_playlists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ring = Ring::open(RingConfig {
        iframe_playlist: true,
        archive_hold_limit: None,
        lease_limit: LeaseLimit::OFF,
        retention: Retention {
            max_duration_ns: 4 * SECOND,
            ..Default::default()
        },
        ..config(dir.path())
    })
    .expect("open");
    for n in 0..4u64 {
        ring.begin_segment(SegmentStart {
            ring_time: RingTime::from_ns(n * 2 * SECOND),
            head_bytes: 2 * 188,
            ..start(false)
        })
        .expect("begin");
        ring.write(&marked(n as u8, 42)).expect("write");
        for i in 0..2u64 {
            ring.add_keyframe(&crate::layout::index::Keyframe {
                offset: (2 + 20 * i) * 188,
                ring_time: RingTime::from_ns(n * 2 * SECOND + i * SECOND),
                wall_time: WallTime::from_ms(1_700_000_000_000),
                size: 5 * 188,
                presentation_delay: crate::ts::timeline::Ticks90k::ZERO,
                number: 0,
            });
        }
        ring.finish_segment(2 * SECOND).expect("finish");
    }
    let text = std::fs::read_to_string(dir.path().join("iframes.m3u8")).expect("iframes.m3u8");
    let iframes = m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("parses");
    assert!(iframes.i_frames_only, "{text}");
    // Segments 2 and 3 in the window: keyframes 4 to 7.
    assert_eq!(iframes.media_sequence, 4, "{text}");
    let ranges: Vec<(String, u64, Option<u64>)> = iframes
        .segments
        .iter()
        .map(|s| {
            let r = s.byte_range.as_ref().expect("byte range");
            (s.uri.clone(), r.length, r.offset)
        })
        .collect();
    assert_eq!(
        ranges,
        vec![
            (segment_file_name(SegmentNumber::new(2)), 940, Some(376)),
            (segment_file_name(SegmentNumber::new(2)), 940, Some(4136)),
            (segment_file_name(SegmentNumber::new(3)), 940, Some(376)),
            (segment_file_name(SegmentNumber::new(3)), 940, Some(4136)),
        ]
    );
    assert!(iframes.segments.iter().all(|s| (s.duration - 1.0).abs() < 0.001));
    let maps: Vec<String> = iframes
        .segments
        .iter()
        .filter_map(|s| s.map.as_ref())
        .map(|m| format!("{}@{:?}", m.uri, m.byte_range.as_ref().map(|r| (r.length, r.offset))))
        .collect();
    assert_eq!(
        maps,
        vec![
            format!("{}@Some((376, Some(0)))", segment_file_name(SegmentNumber::new(2))),
            format!("{}@Some((376, Some(0)))", segment_file_name(SegmentNumber::new(3))),
        ]
    );
    let text = std::fs::read_to_string(dir.path().join("master.m3u8")).expect("master.m3u8");
    let master = m3u8_rs::parse_master_playlist_res(text.as_bytes()).expect("parses");
    let normal: Vec<&str> = master
        .variants
        .iter()
        .filter(|v| !v.is_i_frame)
        .map(|v| v.uri.as_str())
        .collect();
    let trick: Vec<&str> = master
        .variants
        .iter()
        .filter(|v| v.is_i_frame)
        .map(|v| v.uri.as_str())
        .collect();
    assert_eq!((normal, trick), (vec!["index.m3u8"], vec!["iframes.m3u8"]), "{text}");
    assert!(master.variants.iter().all(|v| v.bandwidth > 0));
}

/// A reader's lease on the oldest segment defers its eviction (and so the
/// newer ones') while what is held back stays within the lease limit; past
/// it the segment is evicted anyway (counted), deleted rather than written
/// over; a lease dropped lets the ring evict at the next rotation.
#[cfg(unix)]
#[test]
fn leases_defer_eviction_within_their_limit() {
    let add = |ring: &mut Ring| {
        ring.begin_segment(start(false)).expect("begin");
        ring.write(&PKT).expect("write");
        ring.finish_segment(2 * SECOND).expect("finish");
    };
    let leased_config = |dir: &Path| RingConfig {
        lease_limit: LeaseLimit {
            max_duration_ns: 6 * SECOND,
            max_bytes: 1 << 20,
        },
        ..config(dir)
    };
    let first = segment_file_name(SegmentNumber::new(0));

    let dir = tempfile::tempdir().expect("tempdir");
    let mut ring = Ring::open(leased_config(dir.path())).expect("open");
    add(&mut ring);
    let reader = std::fs::File::open(dir.path().join(&first)).expect("open");
    assert!(lease::take(&reader));
    // 10 s window of 2 s segments: 8 segments hold back 3 (6 s).
    for _ in 1..8 {
        add(&mut ring);
    }
    assert!(dir.path().join(&first).exists(), "held by the lease");
    assert_eq!(ring.segments().len(), 8);
    assert_eq!((ring.stats().leased_segments, ring.stats().leased_bytes), (3, 3 * 188));
    assert_eq!(ring.stats().lease_overruns, 0);
    // A ninth would hold back 8 s: evicted anyway, and not reused.
    add(&mut ring);
    assert!(!dir.path().join(&first).exists(), "past the limit");
    assert_eq!(ring.stats().lease_overruns, 1);
    assert_eq!(ring.segments().len(), 5);
    assert_eq!(ring.stats().leased_segments, 0);
    let mut still = Vec::new();
    std::io::Read::read_to_end(&mut &reader, &mut still).expect("read");
    assert_eq!(still, PKT, "the reader still has its segment's bytes");

    // A lease dropped: evicted at the next rotation.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ring = Ring::open(leased_config(dir.path())).expect("open");
    add(&mut ring);
    let reader = std::fs::File::open(dir.path().join(&first)).expect("open");
    assert!(lease::take(&reader));
    for _ in 1..7 {
        add(&mut ring);
    }
    assert_eq!(ring.segments().len(), 7);
    drop(reader);
    add(&mut ring);
    assert_eq!(ring.segments().len(), 5);
    assert!(!dir.path().join(&first).exists());
    assert_eq!(ring.stats().lease_overruns, 0);

    // Leases off: the ring evicts as before.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ring = Ring::open(config(dir.path())).expect("open");
    add(&mut ring);
    let reader = std::fs::File::open(dir.path().join(&first)).expect("open");
    assert!(lease::take(&reader));
    for _ in 1..7 {
        add(&mut ring);
    }
    assert_eq!(ring.segments().len(), 5);
}
