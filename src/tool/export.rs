// SPDX-License-Identifier: MPL-2.0
//! `streambuffer export RING --from DATE-TIME --to DATE-TIME OUT.ts`: the
//! compliance logger's daily job.
//!
//! The range is found on the wall clock of the keyframe index, as
//! `date-time-to-position` does; the file starts with the tables and the
//! keyframe at or before `--from` and ends just before the first keyframe at
//! or after `--to` (or before the newest keyframe when there is none yet),
//! so that it decodes from its first byte to its last. It is written under a
//! temporary name next to `OUT.ts` and renamed only when complete: a failed
//! export (a segment deleted under it, a read error) leaves nothing.

use std::io::{self, IsTerminal, Write};
use std::path::Path;

use super::date;
use crate::layout::{PresentationTime, WallTime};
use crate::platform;
use crate::reader::{ReadLocation, ReadOutcome, ReaderEvent, RingReader, Snap};
use crate::ts::PACKET_SIZE;

pub(super) fn run(
    ring: &Path,
    from_date: WallTime,
    to_date: WallTime,
    out: &Path,
    progress: bool,
) -> Result<(), String> {
    if !ring.is_dir() {
        return Err(format!("'{}' is not a ring directory", ring.display()));
    }
    let mut reader = RingReader::new(ring);
    reader
        .refresh()
        .map_err(|e| format!("cannot read the ring in '{}': {e}", ring.display()))?;
    #[cfg(feature = "archive")]
    if reader.position_at_date(from_date).is_none()
        && let Some(archive) = crate::archive::catalog::open(ring)
    {
        return from_archive(ring, archive?, from_date, to_date, out, progress);
    }
    let outside = |which: &str, asked: WallTime, reader: &mut RingReader| {
        let window = reader.window().map(|w| {
            let first = reader.date_at_position(w.start).map_or_else(|| "?".into(), date);
            let last = reader
                .date_at_position(w.end.saturating_sub(1))
                .map_or_else(|| "?".into(), date);
            format!("{first} .. {last}")
        });
        format!(
            "--{which} {} is outside the ring's window ({}): nothing written",
            date(asked),
            window.unwrap_or_else(|| "empty".into())
        )
    };
    let from = reader
        .position_at_date(from_date)
        .ok_or_else(|| outside("from", from_date, &mut reader))?;
    let to = reader
        .position_at_date(to_date)
        .ok_or_else(|| outside("to", to_date, &mut reader))?;
    // Where the file ends: before the first keyframe at or after `to`.
    let stop = reader.keyframe_location_at_or_after(to);
    let landed = reader
        .seek_to(from, Snap::Before)
        .map_err(|e| e.to_string())?
        .ok_or("the ring holds nothing to export")?;
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file = tempfile_in(dir, out)?;
    let result = copy(&mut reader, &mut file.1, stop, landed, to, progress);
    match result.and_then(|bytes| file.1.sync_all().map(|()| bytes).map_err(|e| e.to_string())) {
        Ok(bytes) => {
            std::fs::rename(&file.0, out).map_err(|e| {
                let _ = std::fs::remove_file(&file.0);
                format!("cannot name '{}': {e}", out.display())
            })?;
            if progress {
                eprintln!();
            }
            eprintln!(
                "exported {bytes} bytes: {} .. {} into {}",
                date(from_date),
                date(to_date),
                out.display()
            );
            Ok(())
        }
        Err(why) => {
            let _ = std::fs::remove_file(&file.0);
            Err(format!("{why}; nothing written"))
        }
    }
}

/// Exports a range that starts before the ring's window: the segments of
/// the range, from the archive and the ring, are put together as a
/// finished ring in a directory next to `out`, which is exported as any
/// ring (same bytes, same keyframes), then removed.
#[cfg(feature = "archive")]
fn from_archive(
    ring: &Path,
    (config, store): (crate::archive::ArchiveConfig, crate::archive::ArchiveStore),
    from: WallTime,
    to: WallTime,
    out: &Path,
    progress: bool,
) -> Result<(), String> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = out
        .file_name()
        .map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
    let staging = dir.join(format!(".{name}.{}.archive", std::process::id()));
    std::fs::create_dir(&staging).map_err(|e| format!("cannot create '{}': {e}", staging.display()))?;
    let result = crate::archive::catalog::materialize(&store, ring, from, to, &staging).and_then(|fetched| {
        eprintln!("{fetched} segment(s) from the archive {}", config.location);
        run(&staging, from, to, out, progress)
    });
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// A new file next to `out` (never over anything), with its path.
fn tempfile_in(dir: &Path, out: &Path) -> Result<(std::path::PathBuf, std::fs::File), String> {
    let name = out
        .file_name()
        .map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
    for n in 0..100 {
        let path = dir.join(format!(".{name}.{}.{n}.partial", std::process::id()));
        match platform::create_new(&path) {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create a file in '{}': {e}", dir.display())),
        }
    }
    Err(format!("cannot create a file in '{}'", dir.display()))
}

/// Copies from where the reader stands up to `stop` (segment, offset), or
/// to the end of what is written; returns the bytes written.
fn copy(
    reader: &mut RingReader,
    out: &mut impl Write,
    stop: Option<ReadLocation>,
    from: PresentationTime,
    to: PresentationTime,
    progress: bool,
) -> Result<u64, String> {
    let mut buf = vec![0u8; 512 * PACKET_SIZE];
    let mut written = 0u64;
    let mut waits = 0;
    loop {
        let mut want = buf.len();
        if let (Some(at), Some(stop)) = (reader.read_location(), stop) {
            if at.sequence > stop.sequence || at.sequence == stop.sequence && at.offset >= stop.offset {
                break;
            }
            if at.sequence == stop.sequence {
                want = want.min(usize::try_from(stop.offset - at.offset).unwrap_or(want));
            }
        }
        let outcome = reader.read(&mut buf[..want]).map_err(|e| e.to_string())?;
        for event in reader.take_events() {
            match event {
                ReaderEvent::ContentBecomingStale { .. } => {}
                ReaderEvent::StaleFileDeleted { first, .. } => {
                    return Err(format!("segment {first} was deleted while it was being exported"));
                }
                ReaderEvent::TimeHole { offset_ms, size_ms } => {
                    return Err(format!(
                        "the range has a hole ({size_ms} ms at {offset_ms} ms of ring time)"
                    ));
                }
                ReaderEvent::ReadFailure { path, error } => {
                    return Err(format!("cannot read '{}': {error}", path.display()));
                }
            }
        }
        match outcome {
            ReadOutcome::Data { mut len, .. } => {
                // A read that went on into the stop's segment (one read
                // holds bytes of one segment, ending at the reader's new
                // offset) keeps only what is before the stop.
                let mut done = false;
                if let (Some(at), Some(stop)) = (reader.read_location(), stop)
                    && at.sequence == stop.sequence
                    && at.offset > stop.offset
                {
                    len = len.saturating_sub(usize::try_from(at.offset - stop.offset).unwrap_or(len));
                    done = true;
                }
                out.write_all(&buf[..len]).map_err(|e| format!("cannot write: {e}"))?;
                written += len as u64;
                waits = 0;
                if progress && let Some(p) = reader.position() {
                    let share = p.saturating_since(from) as f64 / to.saturating_since(from).max(1) as f64;
                    eprint!("\r{:5.1} %", (share * 100.0).min(100.0));
                }
                if done {
                    break;
                }
            }
            ReadOutcome::Eos => break,
            // The end of what is written: with no keyframe after `to` yet,
            // the file ends here; else the writer is about to add it.
            ReadOutcome::Wait if stop.is_none() => break,
            ReadOutcome::Wait => {
                waits += 1;
                if waits > 100 {
                    return Err("the ring stopped growing before the range was written".into());
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
    if !io::stderr().is_terminal() && progress {
        eprintln!();
    }
    Ok(written)
}
