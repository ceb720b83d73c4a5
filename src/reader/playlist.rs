//! Reads back the ring's playlist. The file is treated as untrusted input:
//! only entries naming a segment file of the ring itself (exactly
//! `segment-NNNNNNNNNNNN.ts`, no directory part) are accepted, so a playlist
//! cannot make the reader open anything outside the ring directory.

use crate::ring::segment::parse_file_name;

/// One accepted playlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub sequence: u64,
    pub duration_ns: u64,
    /// Explicit `EXT-X-PROGRAM-DATE-TIME`, milliseconds since the epoch.
    pub program_date_time_ms: Option<i64>,
    pub discontinuity: bool,
}

/// What the playlist says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub entries: Vec<Entry>,
    /// `EXT-X-ENDLIST`: the writer has finished.
    pub ended: bool,
    /// Entries refused because their URI was not a ring segment.
    pub rejected: usize,
}

/// Parses playlist text; never fails, malformed lines are ignored.
#[must_use]
pub fn parse(text: &str) -> Listing {
    let mut listing = Listing::default();
    let mut duration_ns = None;
    let mut pdt = None;
    let mut discontinuity = false;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("#EXTINF:") {
            duration_ns = parse_seconds(rest.split(',').next().unwrap_or(""));
        } else if let Some(rest) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = parse_rfc3339_ms(rest);
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if line == "#EXT-X-ENDLIST" {
            listing.ended = true;
        } else if !line.is_empty() && !line.starts_with('#') {
            match (parse_file_name(line), duration_ns.take()) {
                (Some(sequence), Some(duration_ns)) => listing.entries.push(Entry {
                    sequence,
                    duration_ns,
                    program_date_time_ms: pdt.take(),
                    discontinuity: std::mem::take(&mut discontinuity),
                }),
                _ => {
                    listing.rejected += 1;
                    pdt = None;
                    discontinuity = false;
                }
            }
        }
    }
    listing
}

/// "6.006" -> 6_006_000_000 ns, without going through floating point.
fn parse_seconds(s: &str) -> Option<u64> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = int.parse().ok()?;
    let mut frac_ns = 0u64;
    for (i, d) in frac.bytes().take(9).enumerate() {
        frac_ns += u64::from(d - b'0') * 10u64.pow(8 - i as u32);
    }
    whole.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}

/// Parses `YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm)` into milliseconds since the epoch.
fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes().all(|b| b.is_ascii_digit()).then(|| t.parse().ok()).flatten()
    };
    let (y, mo, d, h, mi, sec) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    let mut rest = s.get(19..)?;
    let mut ms = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let f = &frac[..digits];
        ms = f
            .bytes()
            .take(3)
            .enumerate()
            .map(|(i, b)| i64::from(b - b'0') * 10i64.pow(2 - i as u32))
            .sum();
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" | "" => 0,
        o if o.len() == 6 => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let hh: i64 = o.get(1..3)?.parse().ok()?;
            let mm: i64 = o.get(4..6)?.parse().ok()?;
            sign * (hh * 60 + mm)
        }
        _ => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + ms)
}

/// Proleptic Gregorian date to days since 1970-01-01 (inverse of the
/// writer's civil_from_days).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::playlist::{PlaylistHeader, Rfc3339Millis, render};
    use crate::ring::segment::SegmentInfo;

    #[test]
    fn round_trips_the_writers_playlist() {
        let segs: Vec<SegmentInfo> = (5..9)
            .map(|i| SegmentInfo {
                sequence: i,
                duration_ns: 6_006_000_000,
                bytes: 1,
                program_date_time_ms: 1_795_833_785_007 + (i as i64 - 5) * 6006,
                discontinuity: i == 7,
            })
            .collect();
        let mut text = String::new();
        render(
            &mut text,
            PlaylistHeader {
                target_duration_s: 7,
                discontinuity_sequence: 0,
                ended: true,
            },
            segs.iter(),
        );
        let l = parse(&text);
        assert!(l.ended);
        assert_eq!(l.rejected, 0);
        assert_eq!(l.entries.len(), 4);
        assert_eq!(l.entries[0].sequence, 5);
        assert_eq!(l.entries[0].duration_ns, 6_006_000_000);
        assert_eq!(l.entries[0].program_date_time_ms, Some(1_795_833_785_007));
        assert!(l.entries[2].discontinuity);
        assert_eq!(l.entries[2].program_date_time_ms, Some(1_795_833_785_007 + 2 * 6006));
    }

    #[test]
    fn refuses_entries_outside_the_ring() {
        let text = "#EXTM3U\n#EXTINF:1.0,\n../etc/passwd\n#EXTINF:1.0,\n/abs/segment-000000000001.ts\n\
                    #EXTINF:1.0,\nsub/segment-000000000001.ts\n#EXTINF:1.0,\nhttp://x/segment-000000000001.ts\n\
                    #EXTINF:1.0,\nsegment-000000000002.ts\n";
        let l = parse(text);
        assert_eq!(l.rejected, 4);
        assert_eq!(l.entries.len(), 1);
        assert_eq!(l.entries[0].sequence, 2);
    }

    #[test]
    fn parses_dates_both_ways() {
        for ms in [0, 951_782_400_123, 1_795_833_785_007] {
            assert_eq!(parse_rfc3339_ms(&Rfc3339Millis(ms).to_string()), Some(ms));
        }
        assert_eq!(parse_rfc3339_ms("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339_ms("garbage"), None);
        assert_eq!(parse_seconds("2.5"), Some(2_500_000_000));
        assert_eq!(parse_seconds("-1"), None);
    }
}
