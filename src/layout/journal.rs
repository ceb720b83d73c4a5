// SPDX-License-Identifier: MPL-2.0
//! The journal's text format: a header line, then one line per completed
//! segment, `sequence duration_ns bytes pdt_ms discontinuity`, in decimal,
//! separated by single spaces, with a sixth field `forced` for a segment
//! that does not start at a random-access point (lines of earlier versions
//! have five fields: every segment was then independent). Lines starting
//! with `#` are comments.
//!
//! Lines are appended, so after a crash the last one may be torn; and the
//! file may be anything at all. A line that does not parse, or whose values
//! the sink could not have written ([`SegmentInfo::is_plausible`]), is
//! skipped and counted (the segment is then recovered from its file, as for
//! an unjournaled one).

use super::SegmentInfo;

/// What a journal holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JournalContents {
    pub segments: Vec<SegmentInfo>,
    /// Lines that are not comments and were refused.
    pub rejected_lines: u64,
}

/// First line of every journal: says what the file is and its version.
pub const HEADER: &str = "# streambuffer ring journal v1: sequence duration_ns bytes pdt_ms discontinuity [forced]\n";

/// The journal line for a completed segment, newline included.
#[must_use]
pub fn format_line(s: &SegmentInfo) -> String {
    format!(
        "{} {} {} {} {}{}\n",
        s.sequence,
        s.duration_ns,
        s.bytes,
        s.program_date_time.ms(),
        u8::from(s.discontinuity),
        if s.independent { "" } else { " forced" }
    )
}

/// Parses one line; `None` for anything but five fields holding plausible
/// values, optionally followed by `forced`.
#[must_use]
pub fn parse_line(line: &str) -> Option<SegmentInfo> {
    let mut f = line.split_ascii_whitespace();
    let info = SegmentInfo {
        sequence: f.next()?.parse().ok()?,
        duration_ns: f.next()?.parse().ok()?,
        bytes: f.next()?.parse().ok()?,
        program_date_time: super::WallTime::from_ms(f.next()?.parse().ok()?),
        discontinuity: f.next()? == "1",
        independent: true,
    };
    let info = match f.next() {
        None => info,
        Some("forced") => SegmentInfo {
            independent: false,
            ..info
        },
        Some(_) => return None,
    };
    (f.next().is_none() && info.is_plausible()).then_some(info)
}

/// Parses a journal's bytes: every line that is not a comment, blank or
/// refused.
#[must_use]
pub fn parse(raw: &[u8]) -> JournalContents {
    let mut contents = JournalContents::default();
    for line in String::from_utf8_lossy(raw).lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Some(info) => contents.segments.push(info),
            None => contents.rejected_lines += 1,
        }
    }
    contents
}
