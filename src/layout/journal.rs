//! The journal's text format: a header line, then one line per completed
//! segment, `sequence duration_ns bytes pdt_ms discontinuity`, in decimal,
//! separated by single spaces. Lines starting with `#` are comments.
//!
//! Lines are appended, so after a crash the last one may be torn; and the
//! file may be anything at all. A line that does not parse is skipped (the
//! segment is then recovered from its file, as for an unjournaled one).

use std::path::Path;

use super::{JOURNAL_NAME, SegmentInfo};

/// First line of every journal: says what the file is and its version.
pub const HEADER: &str = "# streambuffer ring journal v1: sequence duration_ns bytes pdt_ms discontinuity\n";

/// The journal line for a completed segment, newline included.
#[must_use]
pub fn format_line(s: &SegmentInfo) -> String {
    format!(
        "{} {} {} {} {}\n",
        s.sequence,
        s.duration_ns,
        s.bytes,
        s.program_date_time_ms,
        u8::from(s.discontinuity)
    )
}

/// Parses one line; `None` for anything but exactly five valid fields.
#[must_use]
pub fn parse_line(line: &str) -> Option<SegmentInfo> {
    let mut f = line.split_ascii_whitespace();
    let info = SegmentInfo {
        sequence: f.next()?.parse().ok()?,
        duration_ns: f.next()?.parse().ok()?,
        bytes: f.next()?.parse().ok()?,
        program_date_time_ms: f.next()?.parse().ok()?,
        discontinuity: f.next()? == "1",
    };
    f.next().is_none().then_some(info)
}

/// Reads the journal in `dir`. A missing journal is empty; a torn or
/// foreign line is skipped.
#[must_use]
pub fn read(dir: &Path) -> Vec<SegmentInfo> {
    let Ok(text) = std::fs::read_to_string(dir.join(JOURNAL_NAME)) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(parse_line)
        .collect()
}
