// SPDX-License-Identifier: MPL-2.0
//! Low-Latency HLS from the TS ring (RFC 8216bis): the live playlist as
//! the ring writes it, plus the parts of its last few segments and of the
//! segment being written (byte ranges of the segment files, cut by
//! [`PartCutter`]), a preload hint for the next part, and the server
//! control that lets players block on the next part. Players that do not
//! know LL-HLS read the same segments as before and skip the new tags.
//!
//! Reads files only (blocking: call it off the async threads); keeps, per
//! ring, the cutters of recent segments so that each byte is scanned once.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

use super::parts::{KeyframeAt, Part, PartCutter};
use super::window::dated;
use crate::layout::index;
use crate::layout::progress::Progress;
use crate::layout::{
    PLAYLIST_MAX_BYTES, PLAYLIST_NAME, PROGRESS_NAME, SegmentNumber, segment_file_name, segment_index_name,
};
use crate::platform;

/// Target durations back from the end whose segments list their parts
/// (RFC 8216bis: parts older than three target durations may go).
const PARTS_KEPT_TARGETS: u64 = 3;
/// Bytes read at a time while cutting parts.
const READ_BLOCK: usize = 1024 * 1024;

/// The cutters of one ring's recent segments.
#[derive(Debug, Default)]
pub struct RingParts {
    cutters: BTreeMap<SegmentNumber, PartCutter>,
}

impl RingParts {
    /// The cutter of segment `sequence`: a new one expects keyframes at
    /// the interval the segment before showed.
    fn cutter(&mut self, sequence: SegmentNumber, part_target_ns: u64) -> &mut PartCutter {
        let before = sequence
            .get()
            .checked_sub(1)
            .and_then(|n| self.cutters.get(&SegmentNumber::new(n)))
            .map(PartCutter::following);
        self.cutters
            .entry(sequence)
            .or_insert_with(|| before.unwrap_or_else(|| PartCutter::new(part_target_ns)))
    }
}

/// A live playlist with parts, and what it holds.
#[derive(Debug, Clone)]
pub struct LivePlaylist {
    pub text: String,
    /// The newest complete segment.
    pub last_complete: Option<SegmentNumber>,
    /// The segment being written and how many of its parts are complete.
    pub open: Option<(SegmentNumber, usize)>,
    pub ended: bool,
    pub target_duration_s: u64,
}

impl LivePlaylist {
    /// Whether it holds segment `msn` complete or, with `part`, that part
    /// of it (the blocking reload's `_HLS_msn` and `_HLS_part`).
    #[must_use]
    pub fn holds(&self, msn: u64, part: Option<u64>) -> bool {
        if self.last_complete.is_some_and(|s| s.get() >= msn) {
            return true;
        }
        match (part, self.open) {
            (Some(part), Some((open, parts))) => open.get() == msn && (parts as u64) > part,
            _ => false,
        }
    }
}

/// Seconds with three decimals, as playlists write durations.
fn seconds(ns: u64) -> String {
    format!("{}.{:03}", ns / 1_000_000_000, ns / 1_000_000 % 1000)
}

fn part_line(out: &mut String, sequence: SegmentNumber, part: &Part) {
    let _ = writeln!(
        out,
        "#EXT-X-PART:DURATION={},URI=\"{}\",BYTERANGE=\"{}@{}\"{}",
        seconds(part.duration_ns),
        segment_file_name(sequence),
        part.len,
        part.offset,
        if part.independent { ",INDEPENDENT=YES" } else { "" }
    );
}

/// The value of tag `tag` (`#EXT-X-…:`) in a playlist's text.
fn tag_value(text: &str, tag: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(tag))
        .and_then(|v| v.trim().parse().ok())
}

/// Reads the ring `dirs` under `root` and renders its live playlist with
/// parts of `part_target_ns` at most; `None` if it has no playlist.
///
/// # Errors
/// The playlist cannot be read.
pub fn live_playlist(
    root: &Path,
    dirs: &[&str],
    parts: &mut RingParts,
    part_target_ns: u64,
) -> io::Result<LivePlaylist> {
    let raw = platform::read_to_end_bounded(platform::open_beneath(root, dirs, PLAYLIST_NAME)?, PLAYLIST_MAX_BYTES)?;
    let text = String::from_utf8_lossy(&raw);
    let listing = crate::layout::playlist::parse(&text);
    let entries = dated(&listing);
    let target_duration_s = tag_value(&text, "#EXT-X-TARGETDURATION:").unwrap_or(1).max(1);
    let discontinuities = tag_value(&text, "#EXT-X-DISCONTINUITY-SEQUENCE:").unwrap_or(0);

    // The segments whose parts are listed: back three target durations.
    let mut recent = Vec::new();
    let mut span = 0u64;
    for e in entries.iter().rev() {
        if span >= PARTS_KEPT_TARGETS * target_duration_s * 1_000_000_000 {
            break;
        }
        span += e.duration_ns;
        recent.push(e.sequence);
    }
    let open = match entries.last() {
        Some(last) if !listing.ended => Some(last.sequence.next()),
        _ => None,
    };
    parts.cutters.retain(|s, _| recent.contains(s) || Some(*s) == open);
    let mut recent_parts: BTreeMap<SegmentNumber, Vec<Part>> = BTreeMap::new();
    for e in entries.iter().filter(|e| recent.contains(&e.sequence)) {
        let cutter = parts.cutter(e.sequence, part_target_ns);
        // Complete: its file is as long as its content.
        if cut(root, dirs, e.sequence, cutter, None).is_ok() {
            recent_parts.insert(e.sequence, cutter.finish(e.duration_ns));
        }
    }
    let mut open_parts = None;
    if let Some(sequence) = open {
        let cutter = parts.cutter(sequence, part_target_ns);
        let progress = platform::open_beneath(root, dirs, PROGRESS_NAME);
        let record = match progress {
            Ok(file) => Progress::read_opened(Ok(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        };
        if let Ok(record) = record
            && cut(root, dirs, sequence, cutter, Some(record)).is_ok()
        {
            open_parts = Some((sequence, cutter.parts().to_vec(), cutter.next_part_offset()));
        }
    }

    let mut out = String::new();
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:{target_duration_s}\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={}\n#EXT-X-PART-INF:PART-TARGET={}\n\
         #EXT-X-MEDIA-SEQUENCE:{}\n#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuities}\n",
        seconds(3 * part_target_ns),
        seconds(part_target_ns),
        entries.first().map_or(0, |e| e.sequence.get()),
    );
    for e in &entries {
        if e.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", e.program_date_time);
        for part in recent_parts.get(&e.sequence).into_iter().flatten() {
            part_line(&mut out, e.sequence, part);
        }
        let _ = writeln!(
            out,
            "#EXTINF:{},\n{}",
            seconds(e.duration_ns),
            segment_file_name(e.sequence)
        );
    }
    if let Some((sequence, parts, next)) = &open_parts {
        if let Some(last) = entries.last() {
            let _ = writeln!(
                out,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                last.program_date_time.after(last.duration_ns)
            );
        }
        for part in parts {
            part_line(&mut out, *sequence, part);
        }
        let _ = writeln!(
            out,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\",BYTERANGE-START={next}",
            segment_file_name(*sequence)
        );
    }
    if listing.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    Ok(LivePlaylist {
        text: out,
        last_complete: entries.last().map(|e| e.sequence),
        open: open_parts.map(|(s, p, _)| (s, p.len())),
        ended: listing.ended,
        target_duration_s,
    })
}

/// What a request for the part of segment `sequence` that starts at byte
/// `offset` (a preload hint's `BYTERANGE-START`) can be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HintedPart {
    /// That part is complete: this many bytes.
    Ready(u64),
    /// It is being written.
    Pending,
    /// The segment is complete, or no part starts there: the bytes as they are.
    NotLive,
}

/// Where the part of segment `sequence` starting at `offset` stands.
///
/// # Errors
/// The segment cannot be read.
pub fn hinted_part(
    root: &Path,
    dirs: &[&str],
    parts: &mut RingParts,
    sequence: SegmentNumber,
    offset: u64,
    part_target_ns: u64,
) -> io::Result<HintedPart> {
    if platform::open_beneath(root, dirs, &segment_file_name(sequence.next())).is_ok() {
        return Ok(HintedPart::NotLive);
    }
    let record = match platform::open_beneath(root, dirs, PROGRESS_NAME) {
        Ok(file) => Progress::read_opened(Ok(file))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let cutter = parts.cutter(sequence, part_target_ns);
    cut(root, dirs, sequence, cutter, Some(record))?;
    if let Some(part) = cutter.parts().iter().find(|p| p.offset == offset) {
        return Ok(HintedPart::Ready(part.len));
    }
    Ok(if offset == cutter.next_part_offset() {
        HintedPart::Pending
    } else {
        HintedPart::NotLive
    })
}

/// Feeds `cutter` what segment `sequence` holds past what it was fed:
/// up to the file's end (complete), or (`progress`: the ring's progress
/// record, being written) as far as the record allows.
fn cut(
    root: &Path,
    dirs: &[&str],
    sequence: SegmentNumber,
    cutter: &mut PartCutter,
    progress: Option<Option<Progress>>,
) -> io::Result<()> {
    let file = platform::open_beneath(root, dirs, &segment_file_name(sequence))?;
    let len = file.metadata()?.len();
    let readable = match progress {
        Some(record) => Progress::limit(record, sequence, len),
        None => len,
    };
    if readable < cutter.fed() {
        // The writer cut the segment back (a write failure abandons the
        // segment at its last complete frame): its parts are cut again,
        // so that none lies past its end.
        *cutter = PartCutter::following(cutter);
    }
    if cutter.fed() >= readable {
        return Ok(());
    }
    // Each keyframe's offset and its time from the segment's start.
    let keyframes: Vec<KeyframeAt> = platform::open_beneath(root, dirs, &segment_index_name(sequence))
        .ok()
        .and_then(|f| index::read_opened(Ok(f), readable))
        .map(|i| {
            i.keyframes
                .iter()
                .map(|k| (k.offset, k.ring_time.saturating_since(i.start.ring_time)))
                .collect()
        })
        .unwrap_or_default();
    let mut buf = vec![0u8; READ_BLOCK];
    while cutter.fed() < readable {
        let want = usize::try_from(readable - cutter.fed()).map_or(READ_BLOCK, |n| n.min(READ_BLOCK));
        let n = platform::read_at(&file, &mut buf[..want], cutter.fed())?;
        if n == 0 || cutter.feed(&buf[..n], &keyframes) == 0 {
            break;
        }
    }
    Ok(())
}
