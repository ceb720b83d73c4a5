// SPDX-License-Identifier: MPL-2.0
//! `streambuffer check RING`: is every listed segment what the sink writes,
//! and do the journal, the indexes and the playlist agree?
//!
//! For each segment the playlist lists: the file exists and is a whole
//! number of packets, each starting with the sync byte; it starts with a
//! PAT, then the PMT it names, and (unless the playlist marks a forced cut)
//! a random-access point right after the tables, as its index's first
//! keyframe says; the index's start follows the segment before in ring
//! time; the journal lists it with the same duration. Then the ring's
//! archive, if it has one (`check_archive`). Problems are printed one per
//! line; the exit status says whether there were any.

use std::io::{self, Read, Write};
use std::path::Path;

use super::info::listing;
use crate::layout::{JOURNAL_NAME, segment_file_name, segment_index_name};
use crate::layout::{index, journal};
use crate::platform;
use crate::ts::packet::NULL_PID;
use crate::ts::psi::{SectionAssembler, parse_pat};
use crate::ts::{PACKET_SIZE, PAT_PID, Packet, SYNC_BYTE};

/// Ring time may drift from the playlist's millisecond durations by this
/// much per segment before the index and the playlist are said to disagree.
const TOLERANCE_NS: u64 = 1_000_000_000;

/// Runs the check, printing problems to `out`; whether there were none.
pub(super) fn run(ring: &Path, out: &mut impl Write) -> Result<bool, String> {
    if !ring.is_dir() {
        return Err(format!("'{}' is not a ring directory", ring.display()));
    }
    let listing = listing(ring)?;
    let journal = platform::open_read_only(&ring.join(JOURNAL_NAME))
        .and_then(|f| platform::read_to_end_bounded(f, 64 * 1024 * 1024))
        .map(|raw| journal::parse(&raw));
    let mut problems = Vec::new();
    if listing.rejected > 0 {
        problems.push(format!(
            "the playlist has {} entries that are not ring segments",
            listing.rejected
        ));
    }
    let journal = match journal {
        Ok(j) => Some(j),
        Err(e) if e.kind() == io::ErrorKind::NotFound && listing.ended => None, // a recording: no journal
        Err(e) => {
            problems.push(format!("{JOURNAL_NAME}: {e}"));
            None
        }
    };
    let mut previous_end: Option<crate::layout::RingTime> = None;
    for entry in &listing.entries {
        let name = segment_file_name(entry.sequence);
        let mut say = |what: String| problems.push(format!("{name}: {what}"));
        let data = match platform::open_read_only(&ring.join(&name)).and_then(|mut f| {
            let mut v = Vec::new();
            f.read_to_end(&mut v).map(|_| v)
        }) {
            Ok(d) => d,
            Err(e) => {
                say(format!("cannot be read: {e}"));
                continue;
            }
        };
        if data.is_empty() || data.len() % PACKET_SIZE != 0 {
            say(format!("{} bytes: not a whole number of packets", data.len()));
        }
        if let Some(i) = data.chunks(PACKET_SIZE).position(|p| p[0] != SYNC_BYTE) {
            say(format!("packet {i} does not start with the sync byte"));
        }
        let head = check_head(&data);
        if let Err(why) = &head {
            say(why.clone());
        }
        match index::read_opened(
            platform::open_read_only(&ring.join(segment_index_name(entry.sequence))),
            data.len() as u64,
        ) {
            Some(idx) => {
                if entry.independent
                    && let Ok(head_len) = head
                    && idx.keyframes.first().is_none_or(|k| k.offset != head_len)
                {
                    say(format!(
                        "no random-access point right after its tables and their stuffing (byte {head_len}): its index's first keyframe is at {:?}",
                        idx.keyframes.first().map(|k| k.offset)
                    ));
                }
                if let Some(end) = previous_end
                    && !entry.discontinuity
                    && idx.start.ring_time.ns().abs_diff(end.ns()) > TOLERANCE_NS
                {
                    say(format!(
                        "its index starts at ring time {} ns, the segment before ends at {} ns",
                        idx.start.ring_time.ns(),
                        end.ns()
                    ));
                }
                previous_end = Some(idx.start.ring_time.saturating_add(entry.duration_ns));
            }
            None if listing.ended && journal.is_none() => previous_end = None, // a recording without indexes
            None => {
                say("no valid keyframe index".into());
                previous_end = None;
            }
        }
        if let Some(j) = &journal {
            match j.segments.iter().find(|s| s.sequence == entry.sequence) {
                Some(s) if s.duration_ns.abs_diff(entry.duration_ns) > 1_000_000 => say(format!(
                    "the journal says {} ns, the playlist {} ns",
                    s.duration_ns, entry.duration_ns
                )),
                Some(s) if s.bytes != data.len() as u64 => {
                    say(format!(
                        "the journal says {} bytes, the file has {}",
                        s.bytes,
                        data.len()
                    ));
                }
                Some(_) => {}
                None => say("not in the journal".into()),
            }
        }
    }
    let write = |out: &mut dyn Write, line: &str| writeln!(out, "{line}").map_err(|e| e.to_string());
    for p in &problems {
        write(out, p)?;
    }
    write(
        out,
        &format!(
            "{} segment(s) checked, {} problem(s)",
            listing.entries.len(),
            problems.len()
        ),
    )?;
    let archive_fine = check_archive(ring, out)?;
    Ok(problems.is_empty() && archive_fine)
}

/// Checks the ring's archive, if it has one and this build reads archives;
/// whether nothing was wrong.
fn check_archive(ring: &Path, out: &mut impl Write) -> Result<bool, String> {
    let mut say = |line: &str| writeln!(out, "{line}").map_err(|e| e.to_string());
    #[cfg(feature = "archive")]
    {
        let Some(opened) = crate::archive::catalog::open(ring) else {
            return Ok(true);
        };
        let (config, store) = opened?;
        let found = super::check_archive::run(&store, check_head)?;
        for p in &found.problems {
            say(&format!("archive {p}"))?;
        }
        say(&format!(
            "archive {}: {} segment(s) in {} hour(s) checked, {} problem(s)",
            config.location,
            found.segments,
            found.hours,
            found.problems.len()
        ))?;
        Ok(found.problems.is_empty())
    }
    #[cfg(not(feature = "archive"))]
    {
        let description = ring
            .join(crate::layout::archive::QUEUE_DIR_NAME)
            .join(crate::layout::archive::DESCRIPTION_NAME);
        if description.exists() {
            say("archive: not checked (this build does not read archives)")?;
        }
        Ok(true)
    }
}

/// The segment starts with a PAT, then the PMTs it names; returns the
/// bytes of those tables and the stuffing after them (where the
/// random-access point should follow).
fn check_head(data: &[u8]) -> Result<u64, String> {
    let packets: Vec<Packet<'_>> = data.chunks_exact(PACKET_SIZE).filter_map(Packet::new).collect();
    let mut pat = SectionAssembler::default();
    let mut pmt_pids = None;
    for (i, p) in packets.iter().enumerate() {
        if p.pid() != PAT_PID {
            return Err(format!("packet {i} (PID {:#x}) comes before a whole PAT", p.pid()));
        }
        if let Some(section) = pat.push(p) {
            pmt_pids = parse_pat(section.bytes).map(|pat| pat.programs.iter().map(|e| e.pmt_pid).collect::<Vec<_>>());
            break;
        }
    }
    let pmt_pids = pmt_pids
        .filter(|p| !p.is_empty())
        .ok_or("it does not start with a PAT naming a program")?;
    // The head: the PAT and PMT packets before anything else.
    let head = packets
        .iter()
        .take_while(|p| p.pid() == PAT_PID || pmt_pids.contains(&p.pid()))
        .count();
    if !packets[..head].iter().any(|p| p.pid() == pmt_pids[0]) {
        return Err(format!("its PAT is not followed by the PMT (PID {:#x})", pmt_pids[0]));
    }
    // Then the null packets that align the segment's copies (design.md,
    // "Aligned copies").
    let stuffing = packets[head..].iter().take_while(|p| p.pid() == NULL_PID).count();
    Ok(((head + stuffing) * PACKET_SIZE) as u64)
}
