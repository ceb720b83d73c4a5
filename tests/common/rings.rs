// SPDX-License-Identifier: MPL-2.0
//! What is on disk in a ring: segments, the playlist, the keyframe index
//! (decoded here independently of the crate), the input found in the ring.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use super::inputs::Input;
use super::media::{pid, test_stream};
use super::pipelines::run_to_eos;
use super::{PACKET, SECOND};

/// PID of null packets, the stuffing that aligns segments.
const NULL_PID: u16 = 0x1FFF;

/// Segment files of a ring, in sequence order.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read ring dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "ts"))
        .collect();
    v.sort();
    v
}

/// Checks the invariants every segment must satisfy on disk.
pub fn assert_segment_well_formed(path: &Path) {
    let data = std::fs::read(path).expect("read segment");
    assert!(!data.is_empty(), "{} is empty", path.display());
    assert_eq!(data.len() % PACKET, 0, "{} is not packet-aligned", path.display());
    for (i, p) in data.chunks(PACKET).enumerate() {
        assert_eq!(p[0], 0x47, "{}: packet {i} lacks the sync byte", path.display());
    }
    assert_eq!(pid(&data), 0, "{} does not start with a PAT", path.display());
}

/// Every segment's name and content, in sequence order.
pub fn ring_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    segments(dir)
        .iter()
        .map(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            (name, std::fs::read(p).expect("read segment"))
        })
        .collect()
}

/// Parses the ring's playlist with an independent HLS parser.
pub fn playlist(dir: &Path) -> m3u8_rs::MediaPlaylist {
    let text = std::fs::read(dir.join("index.m3u8")).expect("read playlist");
    m3u8_rs::parse_media_playlist_res(&text).unwrap_or_else(|e| panic!("playlist does not parse: {e:?}"))
}

/// The PIDs of the PAT and of the PMTs the input's first PAT lists.
fn psi_pids(input: &[u8]) -> Vec<u16> {
    let mut pids = vec![0];
    let Some(pat) = input.chunks(PACKET).find(|p| pid(p) == 0 && p[1] & 0x40 != 0) else {
        return pids;
    };
    // After the header and any adaptation field: the pointer field.
    let payload = if pat[3] & 0x20 != 0 { 5 + usize::from(pat[4]) } else { 4 };
    let Some(section) = pat
        .get(payload)
        .and_then(|pointer| pat.get(payload + 1 + usize::from(*pointer)..))
    else {
        return pids;
    };
    let length = section
        .get(1..3)
        .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]]) & 0x0fff));
    // Programs from byte 8 to the CRC; program 0 names the NIT.
    let programs = section.get(8..(3 + length).saturating_sub(4)).unwrap_or(&[]);
    for entry in programs.chunks_exact(4) {
        if entry[..2] != [0, 0] {
            pids.push(u16::from_be_bytes([entry[2], entry[3]]) & 0x1fff);
        }
    }
    pids
}

/// The ring holds every input packet in order, plus one PAT/PMT copy at the
/// head of each segment and the null packets after it that align the
/// segment (fewer than eight). Input before the first keyframe is the only
/// loss.
pub fn assert_input_in_ring(input: &[u8], ring: &[u8]) {
    let psi = psi_pids(input);
    let first_ring_data = ring
        .chunks(PACKET)
        .find(|p| pid(p) != 0 && pid(p) != NULL_PID && !input[..PACKET * 2].chunks(PACKET).any(|t| t == *p))
        .expect("data packet");
    let start = input
        .chunks(PACKET)
        .position(|p| p == first_ring_data)
        .expect("ring data comes from input");
    let mut expected = input.chunks(PACKET).skip(start);
    let mut i = 0;
    let packets: Vec<&[u8]> = ring.chunks(PACKET).collect();
    while i < packets.len() {
        let next = expected.next();
        if next == Some(packets[i]) {
            i += 1;
            continue;
        }
        // Only an inserted PAT/PMT copy may differ from the input order.
        assert!(
            psi.contains(&pid(packets[i])),
            "unexpected packet {i} in the ring (pid {:#x})",
            pid(packets[i])
        );
        let mut n = next;
        while psi.contains(&pid(packets[i])) {
            if n == Some(packets[i]) {
                n = expected.next();
            }
            i += 1;
        }
        let stuffing = packets[i..]
            .iter()
            .take_while(|p| pid(p) == NULL_PID && n != Some(**p))
            .count();
        assert!(stuffing < 8, "{stuffing} null packets at packet {i}");
        i += stuffing;
        assert_eq!(n, Some(packets[i]), "ring diverges from input at packet {i}");
        i += 1;
    }
    assert!(expected.next().is_none(), "the ring lost the end of the input");
}

/// Entries in the ring's playlist right now (0 while there is none).
pub fn playlist_entries(ring: &Path) -> usize {
    std::fs::read(ring.join("index.m3u8"))
        .ok()
        .and_then(|t| m3u8_rs::parse_media_playlist_res(&t).ok())
        .map_or(0, |p| p.segments.len())
}

/// Asserts that the ring at `ring` holds every packet of the test stream
/// of `seconds` (see [`assert_input_in_ring`]).
pub fn assert_ring_holds_test_stream(ring: &Path, seconds: u32) {
    let recorded: Vec<u8> = ring_files(ring).into_iter().flat_map(|(_, d)| d).collect();
    assert_input_in_ring(&std::fs::read(test_stream(seconds)).expect("input"), &recorded);
}

/// One record of a segment's keyframe index, decoded here independently
/// of the crate (the format the README documents: 40-byte little-endian
/// records, CRC-32/MPEG-2 of the first 36 bytes last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexRecord {
    pub offset: u64,
    pub ring_time_ns: u64,
    pub wall_ms: i64,
    pub size: u32,
    pub presentation_delay_90k: i32,
}

impl IndexRecord {
    /// Ring time plus the presentation delay: when a player shows it.
    pub fn presentation_ns(&self) -> u64 {
        self.ring_time_ns
            .saturating_add_signed(i64::from(self.presentation_delay_90k) * 100_000 / 9)
    }
}

/// The records of `segment-N.idx` in `ring` (the start record first); the
/// test fails on a record whose check does not hold.
pub fn index_records(ring: &Path, sequence: u64) -> Vec<IndexRecord> {
    let raw = std::fs::read(ring.join(format!("segment-{sequence:012}.idx"))).expect("read index");
    assert_eq!(raw.len() % 40, 0, "index of {sequence} is not whole records");
    raw.chunks_exact(40)
        .map(|r| {
            let crc = crc32_mpeg2(&r[..36]);
            assert_eq!(crc.to_le_bytes(), r[36..40], "index of {sequence}: bad check");
            let u64_at = |i: usize| u64::from_le_bytes(r[i..i + 8].try_into().expect("8 bytes"));
            IndexRecord {
                offset: u64_at(0),
                ring_time_ns: u64_at(8),
                wall_ms: i64::from_le_bytes(r[16..24].try_into().expect("8 bytes")),
                size: u32::from_le_bytes(r[24..28].try_into().expect("4 bytes")),
                presentation_delay_90k: i32::from_le_bytes(r[28..32].try_into().expect("4 bytes")),
            }
        })
        .collect()
}

/// Every keyframe record of the ring's segments (the start records left
/// out), in order, with its segment's sequence number.
pub fn ring_keyframes(ring: &Path) -> Vec<(u64, IndexRecord)> {
    let mut seqs: Vec<u64> = segments(ring)
        .iter()
        .filter_map(|p| p.file_name()?.to_str()?.get(8..20)?.parse().ok())
        .collect();
    seqs.sort_unstable();
    seqs.iter()
        .flat_map(|&s| index_records(ring, s).into_iter().skip(1).map(move |k| (s, k)))
        .collect()
}

/// CRC-32/MPEG-2 (polynomial 0x04C11DB7, no reflection, initial all ones).
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The ring `cell` holds: recorded once per test binary by the pipeline
/// description `pipeline` gives for its directory (run to EOS), then
/// shared by every test of the binary.
pub fn ring_recorded_once(
    cell: &'static OnceLock<(tempfile::TempDir, PathBuf)>,
    pipeline: impl FnOnce(&Path) -> String,
) -> &'static Path {
    &cell
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let ring = dir.path().join("ring");
            run_to_eos(&pipeline(&ring), Duration::from_secs(60)).expect("record");
            (dir, ring)
        })
        .1
}

/// A finished ring of the 90 s H.264 + AAC input holding its last 60 s in
/// 6 s segments, recorded once per test binary.
pub fn finished_minutes_ring() -> &'static Path {
    static RING: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    ring_recorded_once(&RING, |ring| {
        format!(
            "filesrc location={} ! streambuffersink location={} segment-duration={} max-duration={}",
            Input::Minutes.path().display(),
            ring.display(),
            6 * SECOND,
            60 * SECOND
        )
    })
}
