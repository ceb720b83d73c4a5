//! The journal's text format: a header line, then one line per completed
//! segment, `sequence duration_ns bytes pdt_ms discontinuity`, in decimal,
//! separated by single spaces. Lines starting with `#` are comments.
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

/// Parses one line; `None` for anything but exactly five fields holding
/// plausible values.
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
