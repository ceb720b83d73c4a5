//! The HLS media playlist (RFC 8216) that makes the ring playable by any HLS
//! client, and the atomic file replacement that keeps readers from ever
//! seeing half of it.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::Path;

use super::segment::{SegmentInfo, file_name};
use crate::platform;

/// Name of the playlist inside the ring directory.
pub const PLAYLIST_NAME: &str = "index.m3u8";

/// What goes into the header of the playlist.
#[derive(Debug, Clone, Copy)]
pub struct PlaylistHeader {
    /// EXT-X-TARGETDURATION in whole seconds.
    pub target_duration_s: u64,
    /// EXT-X-DISCONTINUITY-SEQUENCE: discontinuities before the first entry.
    pub discontinuity_sequence: u64,
    /// Write EXT-X-ENDLIST: no segment will be added any more.
    pub ended: bool,
}

/// Renders the playlist for `entries` (oldest first) into `out`.
///
/// The cost is proportional to the number of entries, which the caller bounds
/// with `playlist-length`.
pub fn render<'a>(out: &mut String, header: PlaylistHeader, entries: impl Iterator<Item = &'a SegmentInfo>) {
    out.clear();
    let mut entries = entries.peekable();
    let media_sequence = entries.peek().map_or(0, |s| s.sequence);
    // Infallible: fmt::Write for String never fails.
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{}\n#EXT-X-DISCONTINUITY-SEQUENCE:{}\n",
        header.target_duration_s, media_sequence, header.discontinuity_sequence
    );
    let mut previous_end_ms: Option<i64> = None;
    for s in entries {
        if s.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        // Date-time on the first entry and wherever the wall clock does not
        // simply continue from the previous segment.
        let duration_ms = i64::try_from(s.duration_ns / 1_000_000).unwrap_or(i64::MAX);
        if s.discontinuity || previous_end_ms.is_none_or(|end| (end - s.program_date_time_ms).abs() > 1) {
            let _ = writeln!(
                out,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                Rfc3339Millis(s.program_date_time_ms)
            );
        }
        previous_end_ms = Some(s.program_date_time_ms.saturating_add(duration_ms));
        let _ = write!(
            out,
            "#EXTINF:{}.{:03},\n{}\n",
            s.duration_ns / 1_000_000_000,
            (s.duration_ns / 1_000_000) % 1000,
            file_name(s.sequence)
        );
    }
    if header.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
}

/// Replaces `dir/name` with `contents` so that a concurrent reader sees either
/// the old or the new file, never a mix: write a temporary file beside it,
/// then put it in place of the original ([`platform::replace`]).
pub fn replace_atomically(dir: &Path, name: &str, contents: &[u8], sync: bool) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    // A leftover from a crash is ours; a symbolic link planted there is
    // removed as a link, never followed.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = platform::create_new(&tmp)?;
    f.write_all(contents)?;
    if sync {
        f.sync_data()?;
    }
    drop(f);
    platform::replace(&tmp, &dir.join(name))?;
    if sync {
        platform::sync_dir(dir)?;
    }
    Ok(())
}

/// Formats milliseconds since the Unix epoch as `YYYY-MM-DDThh:mm:ss.sssZ`.
pub struct Rfc3339Millis(pub i64);

impl std::fmt::Display for Rfc3339Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.rem_euclid(1000);
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), using
/// the well-known era-based algorithm (eras of 400 years = 146097 days).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(sequence: u64, duration_ns: u64, pdt: i64, discontinuity: bool) -> SegmentInfo {
        SegmentInfo {
            sequence,
            duration_ns,
            bytes: 188,
            program_date_time_ms: pdt,
            discontinuity,
        }
    }

    #[test]
    fn formats_dates() {
        assert_eq!(Rfc3339Millis(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Rfc3339Millis(951_782_400_123).to_string(), "2000-02-29T00:00:00.123Z");
        assert_eq!(Rfc3339Millis(1_795_833_785_007).to_string(), "2026-11-28T02:43:05.007Z");
        assert_eq!(Rfc3339Millis(-1).to_string(), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn renders_a_valid_live_playlist() {
        let t0 = 1_700_000_000_000;
        let segs = [
            seg(7, 6_006_000_000, t0, false),
            seg(8, 5_994_000_000, t0 + 6006, false),
            seg(9, 2_000_000_000, t0 + 99_000, true),
        ];
        let mut out = String::new();
        render(
            &mut out,
            PlaylistHeader {
                target_duration_s: 7,
                discontinuity_sequence: 3,
                ended: false,
            },
            segs.iter(),
        );
        let parsed = m3u8_rs::parse_media_playlist_res(out.as_bytes()).expect("parses");
        assert_eq!(parsed.media_sequence, 7);
        assert_eq!(parsed.discontinuity_sequence, 3);
        assert_eq!(parsed.target_duration, 7);
        assert!(!parsed.end_list);
        assert_eq!(parsed.segments.len(), 3);
        assert_eq!(parsed.segments[0].uri, "segment-000000000007.ts");
        assert!((parsed.segments[1].duration - 5.994).abs() < 1e-6);
        assert!(parsed.segments[2].discontinuity);
        assert!(parsed.segments[0].program_date_time.is_some());
        assert!(
            parsed.segments[1].program_date_time.is_none(),
            "continuous wall clock needs no tag"
        );
        assert!(parsed.segments[2].program_date_time.is_some());
        render(
            &mut out,
            PlaylistHeader {
                target_duration_s: 7,
                discontinuity_sequence: 0,
                ended: true,
            },
            segs.iter(),
        );
        assert!(
            m3u8_rs::parse_media_playlist_res(out.as_bytes())
                .expect("parses")
                .end_list
        );
    }

    #[test]
    fn a_directory_in_the_way_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("p.m3u8").join("inner")).expect("mkdir");
        assert!(replace_atomically(dir.path(), "p.m3u8", b"x", false).is_err());
        assert!(dir.path().join("p.m3u8").join("inner").is_dir());
    }

    #[test]
    fn replaces_atomically_without_following_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        replace_atomically(dir.path(), "p.m3u8", b"one", false).expect("write");
        replace_atomically(dir.path(), "p.m3u8", b"two", true).expect("write");
        assert_eq!(std::fs::read(dir.path().join("p.m3u8")).expect("read"), b"two");
        replace_atomically(dir.path(), "p.m3u8", b"two and a half", false).expect("write");
        assert_eq!(
            std::fs::read(dir.path().join("p.m3u8")).expect("read"),
            b"two and a half"
        );
        // Nothing is left beside it: not the temporary, not the old file.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["p.m3u8"]);
        #[cfg(unix)]
        {
            let victim = dir.path().join("victim");
            std::fs::write(&victim, b"keep").expect("write");
            std::os::unix::fs::symlink(&victim, dir.path().join(".p.m3u8.tmp")).expect("symlink");
            replace_atomically(dir.path(), "p.m3u8", b"three", false).expect("write");
            assert_eq!(std::fs::read(&victim).expect("read"), b"keep");
        }
    }
}
