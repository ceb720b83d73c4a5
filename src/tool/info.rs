// SPDX-License-Identifier: MPL-2.0
//! `streambuffer info RING [--json]`.

use std::io::{self, Write};
use std::path::Path;

use super::date;
use crate::layout::SegmentNumber;
use crate::layout::playlist::{self, Listing};
use crate::layout::{LOCK_NAME, PLAYLIST_MAX_BYTES, PLAYLIST_NAME, WallTime, segment_file_name};
use crate::platform;
use crate::reader::{RingReader, SeekWindow};

/// A hole: content never recorded, between two listed segments.
struct Hole {
    after_sequence: SegmentNumber,
    from: WallTime,
    duration_ms: i64,
}

/// What `info` says about a ring.
struct Info {
    finished: bool,
    writer_running: Option<bool>,
    segments: usize,
    first_sequence: Option<SegmentNumber>,
    last_sequence: Option<SegmentNumber>,
    window: Option<SeekWindow>,
    window_dates: (Option<WallTime>, Option<WallTime>),
    holes: Vec<Hole>,
    bytes_on_disk: u64,
    /// Segment files with more than one name: shared with reference recordings.
    linked: Vec<String>,
    /// The archive's summary, if the ring has one.
    archive: Option<String>,
}

pub(super) fn run(ring: &Path, json: bool, out: &mut impl Write) -> Result<(), String> {
    let info = gather(ring)?;
    let written = if json {
        print_json(ring, &info, out)
    } else {
        print_text(ring, &info, out)
    };
    written.map_err(|e| e.to_string())
}

/// The ring's playlist, read as readers do (bounded, no link followed).
pub(super) fn listing(ring: &Path) -> Result<Listing, String> {
    let path = ring.join(PLAYLIST_NAME);
    let file = platform::open_read_only(&path).map_err(|e| format!("cannot open '{}': {e}", path.display()))?;
    let raw = platform::read_to_end_bounded(file, PLAYLIST_MAX_BYTES)
        .map_err(|e| format!("cannot read '{}': {e}", path.display()))?;
    Ok(playlist::parse(&String::from_utf8_lossy(&raw)))
}

fn gather(ring: &Path) -> Result<Info, String> {
    if !ring.is_dir() {
        return Err(format!("'{}' is not a ring directory", ring.display()));
    }
    let listing = listing(ring)?;
    let mut reader = RingReader::new(ring);
    reader
        .refresh()
        .map_err(|e| format!("cannot read the ring in '{}': {e}", ring.display()))?;
    let window = reader.window();
    let window_dates = window.map_or((None, None), |w| {
        (
            reader.date_at_position(w.start),
            reader.date_at_position(w.end.saturating_sub(1)),
        )
    });
    // Holes: where a segment's date-time is later than the end of the one
    // before by more than half a second.
    let mut holes = Vec::new();
    let mut previous: Option<(SegmentNumber, WallTime)> = None;
    let mut date: Option<WallTime> = None;
    for e in &listing.entries {
        let start = e.program_date_time.or(date);
        if let (Some((seq, end)), Some(start)) = (previous, start)
            && start.ms_since(end) > 500
        {
            holes.push(Hole {
                after_sequence: seq,
                from: end,
                duration_ms: start.ms_since(end),
            });
        }
        date = start.map(|s| s.after(e.duration_ns));
        previous = date.map(|end| (e.sequence, end));
    }
    let (mut bytes_on_disk, mut linked) = (0, Vec::new());
    if let Ok(entries) = std::fs::read_dir(ring) {
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            bytes_on_disk += meta.len();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".ts") && platform::link_count(&meta).is_some_and(|n| n > 1) {
                linked.push(name);
            }
        }
    }
    linked.sort();
    Ok(Info {
        finished: listing.ended,
        writer_running: writer_running(ring),
        segments: listing.entries.len(),
        first_sequence: listing.entries.first().map(|e| e.sequence),
        last_sequence: listing.entries.last().map(|e| e.sequence),
        window,
        window_dates,
        holes,
        bytes_on_disk,
        linked,
        archive: archive_line(ring),
    })
}

/// Whether a writer holds the ring's lock: a shared lock is tried and
/// released at once (a writer starting in that instant would be refused
/// and say so). `None` where it cannot be told.
fn writer_running(ring: &Path) -> Option<bool> {
    let file = platform::open_read_only(&ring.join(LOCK_NAME)).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Some(false)
        }
        Err(std::fs::TryLockError::WouldBlock) => Some(true),
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

fn seconds(ns: u64) -> String {
    format!("{}.{:03}", ns / 1_000_000_000, ns / 1_000_000 % 1000)
}

/// The archive's summary line, if the ring has one (and this build reads
/// archives).
fn archive_line(ring: &Path) -> Option<String> {
    #[cfg(feature = "archive")]
    {
        let (config, store) = match crate::archive::catalog::open(ring)? {
            Ok(archive) => archive,
            Err(e) => return Some(format!("unreadable ({e})")),
        };
        Some(match crate::archive::catalog::summary(&store) {
            Ok(s) => format!(
                "{}: {} segment(s) in {} hour(s), {} .. {}, {} s, {} hole(s)",
                config.location,
                s.segments,
                s.hours,
                s.first.map_or_else(|| "?".into(), date),
                s.end.map_or_else(|| "?".into(), date),
                seconds(s.duration_ns),
                s.holes
            ),
            Err(e) => format!("{}: cannot be read ({e})", config.location),
        })
    }
    #[cfg(not(feature = "archive"))]
    {
        ring.join(crate::layout::archive::QUEUE_DIR_NAME)
            .exists()
            .then(|| "configured (this build does not read archives)".to_owned())
    }
}

fn print_text(ring: &Path, info: &Info, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "ring:            {}", ring.display())?;
    let state = match (info.finished, info.writer_running) {
        (true, _) => "finished (EXT-X-ENDLIST)",
        (false, Some(true)) => "live: a writer is recording",
        (false, Some(false)) => "no writer running (stopped or crashed; a writer adopts it)",
        (false, None) => "live or stopped (the lock cannot be tested)",
    };
    writeln!(out, "state:           {state}")?;
    match (info.first_sequence, info.last_sequence) {
        (Some(first), Some(last)) => writeln!(
            out,
            "segments:        {} listed ({} .. {})",
            info.segments,
            segment_file_name(first),
            segment_file_name(last)
        )?,
        _ => writeln!(out, "segments:        none listed")?,
    }
    if let Some(SeekWindow { start, end }) = info.window {
        writeln!(
            out,
            "window:          {} s .. {} s of ring time ({} s)",
            seconds(start.ns()),
            seconds(end.ns()),
            seconds(end.saturating_since(start))
        )?;
    }
    let when = |d: Option<WallTime>| d.map_or_else(|| "unknown".to_owned(), date);
    writeln!(
        out,
        "wall-clock:      {} .. {}",
        when(info.window_dates.0),
        when(info.window_dates.1)
    )?;
    writeln!(out, "holes:           {}", info.holes.len())?;
    for h in &info.holes {
        writeln!(
            out,
            "  after {}: {} for {} s",
            segment_file_name(h.after_sequence),
            date(h.from),
            seconds(u64::try_from(h.duration_ms).unwrap_or(0) * 1_000_000)
        )?;
    }
    writeln!(out, "size on disk:    {} bytes", info.bytes_on_disk)?;
    if let Some(line) = &info.archive {
        writeln!(out, "archive:         {line}")?;
    }
    writeln!(
        out,
        "recordings:      {} segment(s) shared with reference recordings{}",
        info.linked.len(),
        if info.linked.is_empty() {
            String::new()
        } else {
            format!(": {}", info.linked.join(", "))
        }
    )
}

/// A JSON string literal.
fn string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn print_json(ring: &Path, info: &Info, out: &mut impl Write) -> io::Result<()> {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "null".into());
    let holes: Vec<String> = info
        .holes
        .iter()
        .map(|h| {
            format!(
                "{{\"after-sequence\":{},\"from\":{},\"duration-ms\":{}}}",
                h.after_sequence,
                string(&date(h.from)),
                h.duration_ms
            )
        })
        .collect();
    let linked: Vec<String> = info.linked.iter().map(|n| string(n)).collect();
    writeln!(
        out,
        "{{\"ring\":{},\"finished\":{},\"writer-running\":{},\"segments\":{},\"first-sequence\":{},\"last-sequence\":{},\
         \"window-start-ns\":{},\"window-end-ns\":{},\"window-start\":{},\"window-end\":{},\"holes\":[{}],\
         \"bytes-on-disk\":{},\"linked-segments\":[{}],\"archive\":{}}}",
        string(&ring.display().to_string()),
        info.finished,
        opt(info.writer_running.map(|b| b.to_string())),
        info.segments,
        opt(info.first_sequence.map(|s| s.to_string())),
        opt(info.last_sequence.map(|s| s.to_string())),
        opt(info.window.map(|w| w.start.ns().to_string())),
        opt(info.window.map(|w| w.end.ns().to_string())),
        opt(info.window_dates.0.map(|d| string(&date(d)))),
        opt(info.window_dates.1.map(|d| string(&date(d)))),
        holes.join(","),
        info.bytes_on_disk,
        linked.join(","),
        opt(info.archive.as_deref().map(string))
    )
}
