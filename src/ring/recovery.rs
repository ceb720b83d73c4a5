// SPDX-License-Identifier: MPL-2.0
//! Adoption of the ring an earlier writer left in the directory, after a
//! restart or a crash, and recovery from the directory vanishing under a
//! running ring.
//!
//! Journaled segments whose files are still there at the recorded size are
//! taken as they are. A segment missing from the journal (the one that was
//! open when that writer stopped) may end in a torn packet or frame: it is
//! cut back to its last whole packet and complete frame, and its duration is
//! estimated from the first and last PCR it holds (reading only its head and
//! tail).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use super::journal;
use super::{Ring, RingError, RingStats, Window, acquire_lock};
use crate::layout::SegmentNumber;
use crate::layout::journal::JournalContents;
use crate::layout::progress::Progress;
use crate::layout::{
    MAX_SEGMENT_DURATION_NS, PROGRESS_NAME, SegmentInfo, WallTime, parse_segment_file_name, segment_file_name,
};
use crate::platform::DirHandle;
use crate::ts::analyzer::Unit;
use crate::ts::timeline::{DEFAULT_BITRATE, PCR_HZ, Pcr};
use crate::ts::{PACKET_SIZE, Packet, Pid, SYNC_BYTE, StreamAnalyzer};

/// How much of the head and of the tail is searched for a PCR.
const SCAN_BYTES: u64 = 2 * 1024 * 1024;

/// What is left of a torn segment after trimming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    pub bytes: u64,
    pub duration_ns: u64,
    /// Bytes cut off the end.
    pub trimmed: u64,
}

/// What adoption makes of a segment file missing from the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Trimmed to what is usable.
    Usable(Recovered),
    /// The writer's own, with nothing complete in it: to be deleted.
    Empty,
    /// Not whole MPEG-TS packets: not the writer's, left alone.
    Foreign,
}

/// Trims the segment `file` (open for reading and writing) to whole
/// packets, then back to the start of its last (incomplete) video access
/// unit, and estimates its duration.
pub fn recover_segment(mut file: File) -> io::Result<Recovery> {
    let len = file.metadata()?.len();
    let whole = len - len % PACKET_SIZE as u64;
    let mut first = [0u8; 1];
    let starts_in_sync = file.read(&mut first)? == 1 && first[0] == SYNC_BYTE;
    if whole == 0 {
        // Created and torn before its first packet was whole, or foreign.
        return Ok(if len == 0 || starts_in_sync {
            Recovery::Empty
        } else {
            Recovery::Foreign
        });
    }
    let head = read_range(&mut file, 0, SCAN_BYTES.min(whole))?;
    let tail_start = whole.saturating_sub(SCAN_BYTES).max(SCAN_BYTES.min(whole));
    let tail = read_range(&mut file, tail_start, whole - tail_start)?;
    // The writer only ever writes whole packets: a file whose scanned packets
    // are not all in sync is someone else's, even if it starts with 0x47.
    let in_sync = |buf: &[u8]| buf.chunks(PACKET_SIZE).all(|p| p[0] == SYNC_BYTE);
    if !in_sync(&head) || !in_sync(&tail) {
        return Ok(Recovery::Foreign);
    }
    // The writer died in the middle of some frame: keep only complete ones.
    // A file small enough to fit the head has no separate tail.
    let (last_region, last_start) = if tail.is_empty() {
        (&head, 0)
    } else {
        (&tail, tail_start)
    };
    let keep = match last_unit_start(&head, last_region, last_start) {
        Some(offset) => offset,
        None => whole,
    };
    if keep == 0 {
        return Ok(Recovery::Empty);
    }
    // Even at its length: that also releases the blocks the writer had
    // reserved past its end (see `reservation`).
    file.set_len(keep)?;
    let (head, tail) = if keep < whole {
        let head = read_range(&mut file, 0, SCAN_BYTES.min(keep))?;
        let tail_start = keep.saturating_sub(SCAN_BYTES).max(SCAN_BYTES.min(keep));
        (head, read_range(&mut file, tail_start, keep - tail_start)?)
    } else {
        (head, tail)
    };
    let duration_ns = match pcr_span(&head, &tail) {
        Some(ticks) => u64::try_from(u128::from(ticks) * 1_000_000_000 / u128::from(PCR_HZ)).unwrap_or(u64::MAX),
        None => u64::try_from(u128::from(keep) * 8 * 1_000_000_000 / u128::from(DEFAULT_BITRATE)).unwrap_or(u64::MAX),
    };
    Ok(Recovery::Usable(Recovered {
        bytes: keep,
        duration_ns,
        trimmed: len - keep,
    }))
}

/// File offset of the last access-unit start on the program's video PID
/// (from the PMT in `head`): where the incomplete frame begins. 0 when that
/// is the segment's first frame (nothing complete), `None` when unknown.
fn last_unit_start(head: &[u8], tail: &[u8], tail_start: u64) -> Option<u64> {
    let mut analyzer = StreamAnalyzer::new(None);
    let mut first_unit = None;
    for (i, p) in head.chunks_exact(PACKET_SIZE).filter_map(Packet::new).enumerate() {
        let class = analyzer.analyze(&p);
        if first_unit.is_none() && matches!(class.unit, Unit::Start(_)) {
            first_unit = Some((i * PACKET_SIZE) as u64);
        }
    }
    let (video, _) = analyzer.pmt()?.video()?;
    let last = tail
        .chunks_exact(PACKET_SIZE)
        .enumerate()
        .rev()
        .filter_map(|(i, b)| Packet::new(b).map(|p| (i, p)))
        .find(|(_, p)| p.pid() == video && p.payload_unit_start())
        .map(|(i, _)| tail_start + (i * PACKET_SIZE) as u64)?;
    match first_unit {
        // The only frame the file starts is the one the writer died in:
        // nothing complete to keep.
        Some(first) if last <= first => Some(0),
        Some(_) => Some(last),
        None => None,
    }
}

fn read_range(file: &mut File, start: u64, len: u64) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    file.take(len).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Ticks between the first PCR in `head` and the last one (on the same PID)
/// in `tail`, or in `head` when the file is small enough to have no tail.
fn pcr_span(head: &[u8], tail: &[u8]) -> Option<u64> {
    let pcrs = |buf: &[u8]| -> Vec<(Pid, u64)> {
        buf.chunks_exact(PACKET_SIZE)
            .filter_map(Packet::new)
            .filter_map(|p| p.pcr().map(|pcr| (p.pid(), pcr)))
            .collect()
    };
    let head_pcrs = pcrs(head);
    let &(pid, first) = head_pcrs.first()?;
    let last = pcrs(tail)
        .into_iter()
        .rev()
        .chain(head_pcrs.iter().copied().rev())
        .find(|&(p, _)| p == pid)
        .map(|(_, v)| v)?;
    Some(Pcr::from_ticks(last).ticks_since(Pcr::from_ticks(first)))
}

impl Ring {
    /// Takes the segments adoption found into the window, oldest first.
    pub(super) fn take_in(&mut self, adopted: Vec<SegmentInfo>, recovered: &[SegmentNumber]) {
        for info in adopted {
            // A journaled segment was queued before it was journaled; one
            // recovered from its file (open when the last writer stopped)
            // was never queued.
            if let Some(queue) = &self.archive
                && recovered.contains(&info.sequence)
            {
                queue.enqueue(&self.handle, &info);
            }
            // Each adopted segment's index is made to agree with its data;
            // ring time goes on from where the adopted segments end, and
            // keyframe numbers from where they left off.
            let index = super::index::adopt_index(&self.handle, &info, self.ring_time_end, self.keyframes_total as u32);
            self.ring_time_end = index.start.ring_time.saturating_add(info.duration_ns);
            let numbered = u64::from(index.start.number);
            let first = numbered.max(self.keyframes_total);
            self.keyframes_total = first + index.keyframes.len() as u64;
            let keyframes = if self.config.iframe_playlist {
                index.keyframes
            } else {
                Vec::new()
            };
            self.push_entry(info, keyframes, first, index.start.size);
        }
        if !self.entries.is_empty() {
            self.enforce_retention();
            self.playlist_after_change();
        }
    }

    /// The path no longer names the ring directory. If nothing is there any
    /// more (deleted, unmounted), a directory is created again, locked, and
    /// the segments that went with the old one are forgotten. Anything else
    /// there (a link, another directory) is not the ring's: an error, and
    /// nothing in it is touched.
    pub(super) fn recreate_directory(&mut self) -> io::Result<()> {
        let path = self.config.dir.clone();
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            _ => {
                return Err(io::Error::other(format!(
                    "'{}' no longer names the ring directory: it was replaced by another file, directory or link",
                    path.display()
                )));
            }
        }
        std::fs::create_dir_all(&path)?;
        let handle = DirHandle::open(&path)?;
        self.lock = acquire_lock(&handle).map_err(|e| match e {
            RingError::Io { source, .. } => source,
            other => io::Error::other(other.to_string()),
        })?;
        self.handle = handle;
        // Whatever was published went with the old directory.
        self.playlists.nothing_on_disk();
        while let Some(e) = self.entries.front() {
            if self.handle.entry(&segment_file_name(e.info.sequence)).is_ok() {
                break;
            }
            let Some(e) = self.entries.pop_front() else { break };
            self.window.duration_ns -= e.info.duration_ns;
            self.window.bytes -= e.info.bytes;
            self.evicted_discontinuity_sequence = e.discontinuity_sequence;
        }
        let handle = &self.handle;
        self.entries
            .retain(|e| handle.entry(&segment_file_name(e.info.sequence)).is_ok());
        self.window = Window {
            duration_ns: self.entries.iter().map(|e| e.info.duration_ns).sum(),
            bytes: self.entries.iter().map(|e| e.info.bytes).sum(),
        };
        self.undeleted.clear();
        self.journal.mark_stale();
        self.stats.directory_recreated += 1;
        Ok(())
    }
}

/// Highest segment sequence number among the files in `dir`.
pub(super) fn highest_sequence_on_disk(dir: &DirHandle) -> Option<SegmentNumber> {
    dir.names()
        .ok()?
        .iter()
        .filter_map(|name| parse_segment_file_name(name))
        .max()
}

/// What adoption found in the directory.
#[derive(Debug, Default)]
pub(super) struct Adoption {
    /// Segments taken into the ring, oldest first.
    pub(super) segments: Vec<SegmentInfo>,
    /// Those of them recovered from their file, not from the journal.
    pub(super) recovered: Vec<SegmentNumber>,
    /// Files left out of the ring, each with the reason, for a warning.
    pub(super) left_out: Vec<String>,
}

/// Collects the segments an earlier writer left: journal entries whose files
/// still exist (at the recorded size), then files missing from the journal,
/// i.e. the segment that was open when that writer stopped, trimmed to whole
/// packets (and, for a reused file, first to what the progress record says
/// was new). The first segment written after adoption is a discontinuity.
///
/// Nothing found there is trusted: journal lines with values the sink could
/// not have written are dropped (and counted), a file that is not whole
/// MPEG-TS packets or that cannot be opened for writing is left out of the
/// ring, named in [`Adoption::left_out`], and never deleted.
pub(super) fn adopt(dir: &DirHandle, stats: &mut RingStats) -> io::Result<Adoption> {
    let mut adoption = Adoption::default();
    // An unreadable record (say, emptied by a power cut) could be about
    // any segment: no unjournaled file is trusted beyond it then.
    let progress = Progress::read_opened(dir.open_read_only(PROGRESS_NAME));
    let mut on_disk: Vec<(SegmentNumber, u64)> = Vec::new();
    for name in dir.names()? {
        let Some(seq) = parse_segment_file_name(&name) else {
            continue;
        };
        // Only regular files are ours; a link or directory with our name is left alone.
        if let Ok(entry) = dir.entry(&name)
            && entry.is_file
        {
            on_disk.push((seq, entry.len));
        }
    }
    on_disk.sort_unstable();
    let journal = match journal::read(dir) {
        Ok(j) => j,
        Err(e) => {
            adoption
                .left_out
                .push(format!("the journal ({e}): every segment is recovered from its file"));
            JournalContents::default()
        }
    };
    stats.journal_lines_rejected = journal.rejected_lines;
    let mut journal = journal.segments;
    journal.sort_by_key(|s| s.sequence);
    for (seq, len) in on_disk {
        let name = segment_file_name(seq);
        if let Ok(i) = journal.binary_search_by_key(&seq, |s| s.sequence)
            && journal[i].bytes == len
        {
            adoption.segments.push(journal[i].clone());
            continue;
        }
        match recover_unjournaled(dir, &name, seq, len, &progress, stats) {
            Ok(Some(info)) => {
                adoption.recovered.push(info.sequence);
                adoption.segments.push(info);
            }
            Ok(None) => {}
            Err(why) => adoption
                .left_out
                .push(format!("'{}': {why}", dir.path().join(&name).display())),
        }
    }
    stats.adopted_segments = adoption.segments.len() as u64;
    Ok(adoption)
}

/// Recovers segment `seq`, a file of `len` bytes missing from the journal.
/// `Ok(None)`: nothing usable, deleted. `Err`: left alone, and why.
fn recover_unjournaled(
    dir: &DirHandle,
    name: &str,
    seq: SegmentNumber,
    len: u64,
    progress: &io::Result<Option<Progress>>,
    stats: &mut RingStats,
) -> Result<Option<SegmentInfo>, String> {
    let new_content = match progress {
        Ok(record) => Progress::limit(*record, seq, len),
        Err(_) => 0,
    };
    let cannot_write = |e: io::Error| format!("cannot be opened for writing ({e}); left out of the ring");
    let file = dir.open_existing(name).map_err(cannot_write)?;
    if new_content < len {
        file.set_len(new_content).map_err(cannot_write)?;
        stats.adopted_trimmed_bytes += len - new_content;
    }
    let modified = file.metadata().and_then(|m| m.modified());
    // The wall clock the writer read at the segment's start, from its
    // index; the file's time is when it was last written, which after a
    // crash (trimmed, or written on after) says little about its start.
    let indexed_start = crate::layout::index::read_start(dir.open_read_only(&crate::layout::segment_index_name(seq)))
        .map(|start| start.wall_time);
    match recover_segment(file).map_err(cannot_write)? {
        Recovery::Usable(r) => {
            stats.adopted_trimmed_bytes += r.trimmed;
            let mtime = WallTime::from_ms(
                modified
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            );
            let duration_ms = i64::try_from(r.duration_ns / 1_000_000).unwrap_or(0);
            let start = indexed_start.unwrap_or(WallTime::from_ms(mtime.ms().saturating_sub(duration_ms)));
            Ok(Some(SegmentInfo {
                sequence: seq,
                duration_ns: r.duration_ns.min(MAX_SEGMENT_DURATION_NS),
                bytes: r.bytes,
                program_date_time: start.clamp(WallTime::EPOCH, WallTime::MAX),
                discontinuity: true,
                independent: true,
            }))
        }
        Recovery::Empty => {
            let _ = dir.remove(&crate::layout::segment_index_name(seq));
            let _ = dir.remove(name);
            Ok(None)
        }
        Recovery::Foreign => Err("not MPEG-TS written by streambuffersink; left out of the ring".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::packet::tests::PacketBuilder;

    /// 100 packets of one PID with no video, a PCR every 10 packets, 100 ms
    /// apart: 900 ms from the first PCR to the last.
    fn pcr_packets() -> Vec<u8> {
        let mut data = Vec::new();
        for i in 0..100u64 {
            let mut b = PacketBuilder::new(0x100);
            b.cc = i as u8 & 0xF;
            if i % 10 == 0 {
                b.pcr = Some(i / 10 * PCR_HZ / 10);
            }
            b.payload = vec![0; 100];
            data.extend_from_slice(&b.build());
        }
        data
    }

    #[test]
    fn trims_torn_tail_and_measures_pcr_span() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seg.ts");
        let mut data = pcr_packets();
        data.extend_from_slice(&[0x47, 1, 2, 3]);
        std::fs::write(&path, &data).expect("write");
        let Recovery::Usable(r) =
            recover_segment(crate::platform::open_existing(&path).expect("open")).expect("recover")
        else {
            panic!("not usable")
        };
        assert_eq!(r.bytes, 100 * PACKET_SIZE as u64);
        assert_eq!(r.trimmed, 4);
        assert_eq!(r.duration_ns, 900_000_000);
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), r.bytes);
    }

    /// Blocks the writer had reserved past the end of the segment it was
    /// writing are released, even when nothing of its content is cut.
    #[cfg(target_os = "linux")]
    #[test]
    fn blocks_reserved_past_the_end_are_released() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seg.ts");
        let data = pcr_packets();
        std::fs::write(&path, &data).expect("write");
        let file = crate::platform::open_existing(&path).expect("open");
        crate::platform::reserve_blocks(&file, 0, 4 << 20).expect("reserve");
        assert!(file.metadata().expect("stat").blocks() * 512 >= 4 << 20);
        let Recovery::Usable(r) = recover_segment(file).expect("recover") else {
            panic!("not usable")
        };
        assert_eq!(r.bytes, data.len() as u64);
        let after = std::fs::metadata(&path).expect("stat");
        assert_eq!(after.len(), r.bytes);
        assert!(
            after.blocks() * 512 <= r.bytes.div_ceil(4096) * 4096,
            "{} bytes of blocks left for {} bytes",
            after.blocks() * 512,
            r.bytes
        );
        assert_eq!(std::fs::read(&path).expect("read"), data);
    }

    #[test]
    fn small_torn_segment_is_cut_back_to_its_last_complete_frame() {
        use crate::ts::psi::tests::{pat_section, pmt_section, psi_packet};
        use crate::ts::random_access::tests::{H264_IDR, H264_P, pes};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seg.ts");
        let mut data = Vec::new();
        data.extend_from_slice(&psi_packet(0, &pat_section(1, 0x100), 0));
        data.extend_from_slice(&psi_packet(0x100, &pmt_section(1, 0x101, &[(0x1B, 0x101)]), 0));
        for (i, es) in [H264_IDR, H264_P, H264_P].iter().enumerate() {
            let mut b = PacketBuilder::new(0x101);
            b.pusi = true;
            b.cc = (2 * i) as u8;
            b.pcr = Some(i as u64 * PCR_HZ / 25);
            b.payload = pes(es);
            data.extend_from_slice(&b.build());
            let mut more = PacketBuilder::new(0x101);
            more.cc = (2 * i + 1) as u8;
            more.payload = vec![0x42; 184];
            data.extend_from_slice(&more.build());
        }
        let last_frame_start = (2 + 4) * PACKET_SIZE as u64;
        std::fs::write(&path, &data[..data.len() - 50]).expect("write");
        let Recovery::Usable(r) =
            recover_segment(crate::platform::open_existing(&path).expect("open")).expect("recover")
        else {
            panic!("not usable")
        };
        assert_eq!(r.bytes, last_frame_start, "the frame the writer died in is dropped");
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), last_frame_start);
    }

    #[test]
    fn unusable_file_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seg.ts");
        std::fs::write(&path, [0x47u8; 100]).expect("write");
        assert_eq!(
            recover_segment(crate::platform::open_existing(&path).expect("open")).expect("recover"),
            Recovery::Empty
        );
    }

    #[test]
    fn foreign_files_are_recognised_and_left_as_they_are() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seg.ts");
        // Starts like a packet, then is not one.
        let mut data = vec![0x47u8; 10 * PACKET_SIZE];
        data[3 * PACKET_SIZE] = b'x';
        for foreign in [data, b"#!/bin/sh\necho not a segment\n".repeat(20)] {
            std::fs::write(&path, &foreign).expect("write");
            assert_eq!(
                recover_segment(crate::platform::open_existing(&path).expect("open")).expect("recover"),
                Recovery::Foreign
            );
            assert_eq!(std::fs::read(&path).expect("read"), foreign, "left untouched");
        }
    }
}
