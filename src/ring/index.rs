// SPDX-License-Identifier: MPL-2.0
//! The ring's side of the keyframe index (the format is in
//! [`crate::layout::index`]): writing each segment's index as the segment
//! is written, and after a restart making every adopted segment's index
//! agree with its data, recovering a missing one by scanning the segment.

use std::fs::File;
use std::io;

use crate::layout::SegmentNumber;
use crate::layout::index::{self, Keyframe, RECORD_SIZE, SegmentIndex};
use crate::layout::{RingTime, SegmentInfo, segment_file_name, segment_index_name};
use crate::platform::{self, DirHandle};
use crate::ts::analyzer::Unit;
use crate::ts::random_access::Verdict;
use crate::ts::timeline::{PCR_HZ, Pcr, Ticks90k, presentation_delay};
use crate::ts::{PACKET_SIZE, Packet, StreamAnalyzer};

/// Appends the records of the open segment's index. A record that cannot be
/// written is lost (the next one goes where it would have gone); the media
/// is never held up for the index.
#[derive(Debug)]
pub(super) struct IndexWriter {
    file: Option<File>,
    len: u64,
}

impl IndexWriter {
    /// Creates the index of segment `sequence` as a new file. One left at
    /// its name (by a ring recorded there before) is removed, not emptied:
    /// a file emptied by `ftruncate` is written back by ext4 when it is
    /// closed (its `auto_da_alloc` guard for files replaced by truncation),
    /// which put a block allocation and a disk request on the streaming
    /// thread at every rotation.
    pub(super) fn create(dir: &DirHandle, sequence: SegmentNumber) -> io::Result<IndexWriter> {
        let file = dir.create_anew(&segment_index_name(sequence))?;
        Ok(IndexWriter {
            file: Some(file),
            len: 0,
        })
    }

    /// A writer that writes nothing: the index could not be created.
    pub(super) fn none() -> IndexWriter {
        IndexWriter { file: None, len: 0 }
    }

    /// Appends one record.
    pub(super) fn append(&mut self, keyframe: &Keyframe) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Err(io::Error::other("no index file"));
        };
        platform::write_all_at(file, &keyframe.to_record(), self.len)?;
        self.len += RECORD_SIZE as u64;
        Ok(())
    }
}

/// Reads the index of segment `sequence` (`data_len` bytes of data), if it
/// has a valid one.
fn read(dir: &DirHandle, sequence: SegmentNumber, data_len: u64) -> Option<SegmentIndex> {
    index::read_opened(dir.open_read_only(&segment_index_name(sequence)), data_len)
}

/// Makes the index of an adopted segment agree with its data: cut to its
/// valid records, or made anew by scanning the segment when it has none or
/// one whose start does not follow `ring_end` (the previous segment's
/// end); a new one numbers its keyframes from `next_number`. Returns the
/// index (its start: the segment's start in ring time).
pub(super) fn adopt_index(dir: &DirHandle, info: &SegmentInfo, ring_end: RingTime, next_number: u32) -> SegmentIndex {
    let existing = read(dir, info.sequence, info.bytes).filter(|i| i.start.ring_time >= ring_end);
    // An index with keyframes is kept, cut to them. One with only its start
    // record (the writer died before the first keyframe's record, which is
    // written when the next access unit starts) keeps its start and has its
    // keyframes found again.
    if let Some(index) = existing.as_ref().filter(|i| !i.keyframes.is_empty()) {
        let valid = (index.records() * RECORD_SIZE) as u64;
        if dir
            .entry(&segment_index_name(info.sequence))
            .is_ok_and(|e| e.len != valid)
            && let Ok(file) = dir.open_existing(&segment_index_name(info.sequence))
        {
            let _ = file.set_len(valid);
        }
        return index.clone();
    }
    let mut start = existing.map_or(
        Keyframe {
            offset: 0,
            ring_time: ring_end,
            wall_time: info.program_date_time,
            size: 0,
            presentation_delay: Ticks90k::ZERO,
            number: next_number,
        },
        |i| i.start,
    );
    // Numbers go on from the segments before (a start record written
    // before they were adopted may say less).
    start.number = start.number.max(next_number);
    let keyframes = dir
        .open_read_only(&segment_file_name(info.sequence))
        .and_then(|f| scan_keyframes(&f, info.bytes, &start))
        .unwrap_or_default();
    // The head before the first keyframe: the tables, in a segment that
    // starts at one (unless the start record said).
    if start.size == 0 {
        start.size = keyframes.first().map_or(0, |k| u32::try_from(k.offset).unwrap_or(0));
    }
    if let Ok(mut writer) = IndexWriter::create(dir, info.sequence) {
        for k in std::iter::once(&start).chain(&keyframes) {
            if writer.append(k).is_err() {
                break;
            }
        }
    }
    SegmentIndex { start, keyframes }
}

/// The random-access points of a segment's first `len` bytes, found the way
/// the recorder finds them, timed by the PCR from `start`'s ring and wall
/// time. Sizes run to the next access unit on the cut stream.
pub(super) fn scan_keyframes(file: &File, len: u64, start: &Keyframe) -> io::Result<Vec<Keyframe>> {
    let mut analyzer = StreamAnalyzer::new(None);
    let mut keyframes: Vec<Keyframe> = Vec::new();
    let mut first_pcr: Option<Pcr> = None;
    let mut now_ns = 0u64;
    let mut last_pcr: Option<Pcr> = None;
    // The unit being received: its offset, time, presentation delay, and
    // whether it is a keyframe.
    let mut unit: Option<(u64, u64, Ticks90k, bool)> = None;
    let finish = |unit: Option<(u64, u64, Ticks90k, bool)>, end: u64, keyframes: &mut Vec<Keyframe>| {
        if let Some((offset, t, delay, true)) = unit {
            keyframes.push(Keyframe {
                offset,
                ring_time: start.ring_time.saturating_add(t),
                wall_time: start.wall_time.after(t),
                size: u32::try_from(end - offset).unwrap_or(u32::MAX),
                presentation_delay: delay,
                number: start.number.wrapping_add(u32::try_from(keyframes.len()).unwrap_or(0)),
            });
        }
    };
    let mut buf = vec![0u8; 1024 * PACKET_SIZE];
    let mut at = 0u64;
    while at < len {
        let want = usize::try_from((len - at).min(buf.len() as u64)).unwrap_or(buf.len());
        let n = platform::read_at(file, &mut buf[..want], at)?;
        if n < PACKET_SIZE {
            break;
        }
        for (i, bytes) in buf[..n - n % PACKET_SIZE].chunks_exact(PACKET_SIZE).enumerate() {
            let offset = at + (i * PACKET_SIZE) as u64;
            let Some(packet) = Packet::new(bytes) else { continue };
            let class = analyzer.analyze(&packet);
            if let Some((pcr, _)) = class.pcr {
                let first = *first_pcr.get_or_insert(pcr);
                now_ns = pcr.ticks_since(first).saturating_mul(1_000_000_000) / PCR_HZ;
                last_pcr = Some(pcr);
            }
            match class.unit {
                Unit::Start(v) => {
                    finish(unit.take(), offset, &mut keyframes);
                    let delay = presentation_delay(packet.pes_pts(), last_pcr);
                    unit = Some((offset, now_ns, delay, v == Verdict::RandomAccess));
                }
                Unit::Resolved(Verdict::RandomAccess) => {
                    if let Some(u) = &mut unit {
                        u.3 = true;
                    }
                }
                _ => {}
            }
        }
        at += (n - n % PACKET_SIZE) as u64;
    }
    finish(unit.take(), at, &mut keyframes);
    // The same rules a reader applies.
    keyframes.dedup_by(|b, a| b.offset <= a.offset);
    Ok(keyframes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_left_at_the_name_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let handle = DirHandle::open(dir.path()).expect("open dir");
        let sequence = SegmentNumber::new(7);
        let path = dir.path().join(segment_index_name(sequence));
        // A stale index from an earlier ring, with a second link to it.
        std::fs::write(&path, vec![1u8; 3 * RECORD_SIZE]).expect("write");
        let other = dir.path().join("kept");
        std::fs::hard_link(&path, &other).expect("link");
        let writer = IndexWriter::create(&handle, sequence).expect("create");
        assert!(writer.file.is_some());
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), 0, "a new, empty index");
        assert_eq!(
            std::fs::read(&other).expect("read").len(),
            3 * RECORD_SIZE,
            "the old file itself was not emptied"
        );
    }
}
