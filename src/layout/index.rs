// SPDX-License-Identifier: MPL-2.0
//! The keyframe index: one file per segment, `segment-NNNNNNNNNNNN.idx`
//! next to `segment-NNNNNNNNNNNN.ts`. The first record is the segment's
//! start: offset 0, the ring time and wall-clock time of its first packet,
//! and as size the bytes of the tables (PAT, PMTs) at its head. Each later
//! record is a random-access point of the segment's cut stream, in stream
//! order (a segment that starts at one has it right after the tables).
//!
//! A record is 40 bytes, little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | byte offset of the access unit's first packet in the segment |
//! | 8..16 | ring time in ns (the program clock's): the same for every reader, across restarts |
//! | 16..24 | wall-clock time, ms since the Unix epoch |
//! | 24..28 | bytes from this access unit to the next one on the cut stream (0: unknown) |
//! | 28..32 | presentation delay: the access unit's PTS minus the program clock at it, 90 kHz ticks, signed |
//! | 32..36 | the keyframe's number: keyframes the ring indexed before it (the start record: before the segment's first), which numbers the I-frame playlist's entries across restarts |
//! | 36..40 | CRC-32/MPEG-2 of bytes 0..36 |
//!
//! Ring time runs on the program clock (PCR), on which a multiplexer sends
//! a frame some time before it is presented (ffmpeg: 0.7 s). A player
//! fed from a keyframe's ring time shows it at ring time plus that delay:
//! its *presentation time*, which is what a seek aims at.
//!
//! The writer appends a record once the access unit after the keyframe has
//! started (so its size is known), and the last one when the segment ends.
//! Appends are not synchronised with the segment's data: a record may
//! describe bytes not yet on disk, and after a crash the file may end in a
//! torn record. So readers take records only while each is whole, checks
//! out, and moves forward (offset and ring time) and lies within the data
//! they can read; the sink's adoption cuts the file to those records.

use std::fs::File;
use std::io;

use super::time::{PresentationTime, RingTime, WallTime};
use crate::platform;
use crate::ts::crc::crc32_mpeg2;
use crate::ts::timeline::Ticks90k;

/// Size of one record.
pub const RECORD_SIZE: usize = 40;

/// An index larger than this is not one the sink wrote: a keyframe every
/// 40 ms for the longest segment (a day) is 2.16 million records, 69 MB.
pub const INDEX_MAX_BYTES: u64 = 96 * 1024 * 1024;

/// One random-access point of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyframe {
    /// Byte offset of its first packet in the segment file.
    pub offset: u64,
    /// Position of the content on the ring's one timeline.
    pub ring_time: RingTime,
    /// When the sink received it (the epoch: not known).
    pub wall_time: WallTime,
    /// Bytes from its first packet to the next access unit's on the cut
    /// stream (the keyframe and what is multiplexed with it); 0 = unknown.
    pub size: u32,
    /// Its PTS minus the program clock at it, in 90 kHz ticks.
    pub presentation_delay: Ticks90k,
    /// Keyframes the ring indexed before it (the start record: before the
    /// segment's first keyframe); counts on from the newest adopted
    /// segment's after a restart, wrapping at 2^32.
    pub number: u32,
}

/// The bytes before `keyframe`, of a segment whose start record is `start`,
/// that a reader entering at it sends first: the tables at the head
/// (`start.size`). Before the segment's first keyframe, when no more than
/// the stuffing that aligns the segment lies between (fewer than eight null
/// packets, see `ring::stuffing_packets`), all of it: a segment entered at
/// its first keyframe is then read as it is on disk.
#[must_use]
pub fn head_before(start: &Keyframe, keyframe: &Keyframe) -> u64 {
    let tables = u64::from(start.size).min(keyframe.offset);
    let gap = keyframe.offset - tables;
    if keyframe.number == start.number && gap < 8 * crate::ts::PACKET_SIZE as u64 {
        keyframe.offset
    } else {
        tables
    }
}

impl Keyframe {
    /// The record's 32 bytes.
    #[must_use]
    pub fn to_record(self) -> [u8; RECORD_SIZE] {
        let mut r = [0u8; RECORD_SIZE];
        r[0..8].copy_from_slice(&self.offset.to_le_bytes());
        r[8..16].copy_from_slice(&self.ring_time.ns().to_le_bytes());
        r[16..24].copy_from_slice(&self.wall_time.ms().to_le_bytes());
        r[24..28].copy_from_slice(&self.size.to_le_bytes());
        r[28..32].copy_from_slice(&self.presentation_delay.ticks().to_le_bytes());
        r[32..36].copy_from_slice(&self.number.to_le_bytes());
        let check = crc32_mpeg2(&r[..36]);
        r[36..40].copy_from_slice(&check.to_le_bytes());
        r
    }

    /// When a player fed from this keyframe's ring time shows it.
    #[must_use]
    pub fn presentation_time(&self) -> PresentationTime {
        self.ring_time.presented_after(self.presentation_delay)
    }

    /// Decodes one record; `None` if its check fails.
    #[must_use]
    pub fn from_record(r: &[u8; RECORD_SIZE]) -> Option<Keyframe> {
        let word = |i: usize| u64::from_le_bytes(r[i..i + 8].try_into().unwrap_or([0; 8]));
        let check = u32::from_le_bytes([r[36], r[37], r[38], r[39]]);
        (crc32_mpeg2(&r[..36]) == check).then(|| Keyframe {
            offset: word(0),
            ring_time: RingTime::from_ns(word(8)),
            wall_time: WallTime::from_ms(i64::from_le_bytes(r[16..24].try_into().unwrap_or([0; 8]))),
            size: u32::from_le_bytes([r[24], r[25], r[26], r[27]]),
            presentation_delay: Ticks90k::new(i32::from_le_bytes([r[28], r[29], r[30], r[31]])),
            number: u32::from_le_bytes([r[32], r[33], r[34], r[35]]),
        })
    }
}

/// What an index file says about its segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentIndex {
    /// The first record: offset 0, the segment's ring time and wall clock.
    pub start: Keyframe,
    /// Its random-access points, in order.
    pub keyframes: Vec<Keyframe>,
}

impl SegmentIndex {
    /// Records it holds, the start included.
    #[must_use]
    pub fn records(&self) -> usize {
        1 + self.keyframes.len()
    }
}

/// What an index file's bytes describe, for a segment of which `data_len`
/// bytes can be read: `None` without a valid start record (offset 0),
/// else the records up to the first that is torn, fails its check, does
/// not move forward (offset and ring time) or points past the data.
#[must_use]
pub fn parse(raw: &[u8], data_len: u64) -> Option<SegmentIndex> {
    let mut records = raw
        .chunks_exact(RECORD_SIZE)
        .map(|c| c.try_into().ok().and_then(Keyframe::from_record));
    let start = records.next().flatten().filter(|s| s.offset == 0)?;
    let mut keyframes: Vec<Keyframe> = Vec::new();
    for record in records {
        let Some(record) = record else { break };
        let previous = keyframes.last().unwrap_or(&start);
        // A keyframe may share the start's offset: a segment without tables.
        // Presentation times are not checked: a stream with odd PTS values
        // still has its keyframes where they are, and lookups by
        // presentation time then pick some keyframe near the target.
        let forward =
            (record.offset > previous.offset || keyframes.is_empty()) && record.ring_time >= previous.ring_time;
        if !forward || record.offset >= data_len {
            break;
        }
        keyframes.push(record);
    }
    Some(SegmentIndex { start, keyframes })
}

/// Reads the index file `file` (opened by the caller, no link followed) of
/// a segment of which `data_len` bytes can be read; `None` if it cannot be
/// read, is larger than [`INDEX_MAX_BYTES`] or has no valid start record.
#[must_use]
pub fn read_opened(file: io::Result<File>, data_len: u64) -> Option<SegmentIndex> {
    let raw = platform::read_to_end_bounded(file.ok()?, INDEX_MAX_BYTES).ok()?;
    parse(&raw, data_len)
}

/// The start record of the index file `file` (opened by the caller, no
/// link followed): a segment's ring time and wall clock, reading one
/// record instead of the whole index.
#[must_use]
pub fn read_start(file: io::Result<File>) -> Option<Keyframe> {
    let mut record = [0u8; RECORD_SIZE];
    io::Read::read_exact(&mut file.ok()?, &mut record).ok()?;
    Keyframe::from_record(&record).filter(|k| k.offset == 0)
}

/// The last keyframe presented at or before `t` (a binary search: the
/// presentation times of a valid index only grow).
#[must_use]
pub fn at_or_before(keyframes: &[Keyframe], t: PresentationTime) -> Option<&Keyframe> {
    let after = keyframes.partition_point(|k| k.presentation_time() <= t);
    after.checked_sub(1).and_then(|i| keyframes.get(i))
}

/// The first keyframe presented at or after `t` (a binary search).
#[must_use]
pub fn at_or_after(keyframes: &[Keyframe], t: PresentationTime) -> Option<&Keyframe> {
    let at = keyframes.partition_point(|k| k.presentation_time() < t);
    keyframes.get(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kf(offset: u64, t: u64) -> Keyframe {
        Keyframe {
            offset,
            ring_time: RingTime::from_ns(t),
            wall_time: WallTime::from_ms(1_700_000_000_000).after(t),
            size: 4 * 188,
            presentation_delay: Ticks90k::ZERO,
            number: 0,
        }
    }

    fn keyframes(raw: &[u8], len: u64) -> Vec<Keyframe> {
        parse(raw, len).expect("start record").keyframes
    }

    /// A reader entering at a segment's first keyframe reads the tables and
    /// the stuffing after them as they are; at a later one, or after more
    /// than stuffing (a forced cut's first keyframe), only the tables.
    #[test]
    fn the_head_before_a_keyframe_is_the_tables_or_all_of_a_stuffed_start() {
        let start = Keyframe {
            size: 376,
            number: 7,
            ..kf(0, 10)
        };
        let at = |offset: u64, number: u32| Keyframe {
            number,
            ..kf(offset, 20)
        };
        assert_eq!(head_before(&start, &at(376, 7)), 376);
        assert_eq!(head_before(&start, &at(376 + 7 * 188, 7)), 376 + 7 * 188);
        assert_eq!(
            head_before(&start, &at(376 + 8 * 188, 7)),
            376,
            "more than stuffing before it"
        );
        assert_eq!(head_before(&start, &at(376 + 3 * 188, 8)), 376, "a later keyframe");
        let rebuilt = Keyframe {
            size: 376 + 3 * 188,
            ..start
        };
        assert_eq!(head_before(&rebuilt, &at(376 + 3 * 188, 7)), 376 + 3 * 188);
    }

    #[test]
    fn records_round_trip_and_bad_ones_end_the_index() {
        let start = kf(0, 10);
        let frames = [kf(376, 10), kf(940, 20), kf(1880, 30)];
        let mut raw: Vec<u8> = std::iter::once(&start)
            .chain(&frames)
            .flat_map(|k| k.to_record())
            .collect();
        let index = parse(&raw, 10_000).expect("index");
        assert_eq!((index.start, index.keyframes.as_slice()), (start, &frames[..]));
        // Past the data that can be read.
        assert_eq!(keyframes(&raw, 1880), frames[..2].to_vec());
        // A torn last record.
        assert_eq!(keyframes(&raw[..RECORD_SIZE * 4 - 5], 10_000), frames[..2].to_vec());
        // A flipped bit.
        raw[2 * RECORD_SIZE + 3] ^= 1;
        assert_eq!(keyframes(&raw, 10_000), frames[..1].to_vec());
        // Going backwards.
        let back: Vec<u8> = [kf(0, 10), kf(376, 20), kf(376, 30)]
            .iter()
            .flat_map(|k| k.to_record())
            .collect();
        assert_eq!(keyframes(&back, 10_000).len(), 1);
        // No start record: not an index.
        assert_eq!(parse(&frames[0].to_record(), 10_000), None);
        assert_eq!(parse(&[], 10_000), None);
        // A keyframe at offset 0 (no tables) follows the start.
        let bare: Vec<u8> = [kf(0, 10), kf(0, 10)].iter().flat_map(|k| k.to_record()).collect();
        assert_eq!(keyframes(&bare, 10_000).len(), 1);
    }

    #[test]
    fn lookups_pick_the_keyframe_before_or_after() {
        let frames = [kf(0, 10), kf(940, 20), kf(1880, 30)];
        assert_eq!(at_or_before(&frames, PresentationTime::from_ns(5)), None);
        assert_eq!(
            at_or_before(&frames, PresentationTime::from_ns(10)).map(|k| k.offset),
            Some(0)
        );
        assert_eq!(
            at_or_before(&frames, PresentationTime::from_ns(20)).map(|k| k.offset),
            Some(940)
        );
        assert_eq!(
            at_or_before(&frames, PresentationTime::from_ns(29)).map(|k| k.offset),
            Some(940)
        );
        assert_eq!(
            at_or_before(&frames, PresentationTime::from_ns(99)).map(|k| k.offset),
            Some(1880)
        );
        assert_eq!(
            at_or_after(&frames, PresentationTime::from_ns(11)).map(|k| k.offset),
            Some(940)
        );
        assert_eq!(
            at_or_after(&frames, PresentationTime::from_ns(30)).map(|k| k.offset),
            Some(1880)
        );
        assert_eq!(at_or_after(&frames, PresentationTime::from_ns(31)), None);
        assert_eq!(at_or_before(&[], PresentationTime::from_ns(1)), None);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes parse without panicking into records that move forward
        /// and lie within the data.
        #[test]
        fn parse_never_panics(raw in prop::collection::vec(any::<u8>(), 0..400), len in any::<u64>()) {
            if let Some(index) = parse(&raw, len) {
                for w in index.keyframes.windows(2) {
                    prop_assert!(w[1].offset > w[0].offset);
                }
                prop_assert!(index.keyframes.iter().all(|k| k.offset < len));
            }
        }
    }
}
