// SPDX-License-Identifier: MPL-2.0
//! What a request to the origin asks for, read strictly: a path is a ring
//! directory (plain names, relative to a root) and one of the ring's own
//! files; anything else is refused before the file system is touched. The
//! byte range asked for, and how each file is typed and cached.
//!
//! A ring's archived segments are `RING/archive/HOUR/NAME`, the hour's
//! folder and the object's name in the bucket (window playlists name them
//! so); `archive` is therefore never taken for a ring inside a ring.

use crate::layout::archive::{Hour, object_name, parse_object_name};
use crate::layout::{
    IFRAME_PLAYLIST_NAME, MULTIVARIANT_PLAYLIST_NAME, PLAYLIST_NAME, SegmentInfo, SegmentNumber,
    parse_segment_file_name,
};

/// Longest request path read.
const PATH_MAX_BYTES: usize = 1024;
/// Most directories between a root and a ring.
const DEPTH_MAX: usize = 16;

/// A file of a ring that the origin serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingFile {
    /// `index.m3u8`, `iframes.m3u8` or `master.m3u8`.
    Playlist,
    /// A segment's data.
    Segment(SegmentNumber),
    /// A segment's keyframe index.
    Index(SegmentNumber),
    /// A segment of the ring's archive, in this hour's folder.
    Archived(Hour),
}

/// The folder under a ring that names its archive's segments.
const ARCHIVE_FOLDER: &str = "archive";

/// The URI, relative to the ring's playlist, of an archived segment.
#[must_use]
pub fn archived_uri(info: &SegmentInfo) -> String {
    format!(
        "{ARCHIVE_FOLDER}/{}/{}",
        Hour::of(info.program_date_time).folder(),
        object_name(info)
    )
}

/// A file asked for: the ring's directory (names below a root) and the
/// file's name in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub dirs: Vec<String>,
    pub name: String,
    pub file: RingFile,
}

/// Why a request is not answered with a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the path is not one a client should send.
    Malformed(&'static str),
    /// 404, with the reason.
    NotFound(&'static str),
}

/// Reads a request path (`/ch1/index.m3u8`, `/news/ch2/segment-…ts`).
///
/// # Errors
/// Traversal (`..`, `.`, encoded or not), hidden names, empty names,
/// separators or NUL inside a name, bad percent-encoding and overlong
/// paths are malformed; a name that is not a ring file's is not found.
pub fn parse_path(path: &str) -> Result<Target, Refusal> {
    if path.len() > PATH_MAX_BYTES {
        return Err(Refusal::Malformed("the path is too long"));
    }
    let rest = path
        .strip_prefix('/')
        .ok_or(Refusal::Malformed("the path is not absolute"))?;
    let mut names = rest
        .split('/')
        .map(decode_name)
        .collect::<Result<Vec<String>, Refusal>>()?;
    let name = names.pop().ok_or(Refusal::Malformed("no file named"))?;
    if names.is_empty() {
        return Err(Refusal::NotFound("a file of a ring is /RING/FILE"));
    }
    if names.len() > DEPTH_MAX {
        return Err(Refusal::Malformed("the path is too deep"));
    }
    if let [.., ring, archive, folder] = names.as_slice()
        && archive == ARCHIVE_FOLDER
        && !ring.is_empty()
        && let Some(hour) = Hour::parse_folder(folder)
    {
        if !name.ends_with(".ts") || parse_object_name(hour, &name).is_none() {
            return Err(Refusal::NotFound("not a segment the archive has"));
        }
        names.truncate(names.len() - 2);
        return Ok(Target {
            dirs: names,
            name: hour.key(&name),
            file: RingFile::Archived(hour),
        });
    }
    let file = ring_file(&name).ok_or(Refusal::NotFound("not a file a ring serves"))?;
    Ok(Target {
        dirs: names,
        name,
        file,
    })
}

/// One path component, percent-decoded; refused if it could name anything
/// but an entry of the directory it is in.
fn decode_name(raw: &str) -> Result<String, Refusal> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut input = raw.bytes();
    while let Some(b) = input.next() {
        if b == b'%' {
            let hex = |d: Option<u8>| d.and_then(|d| char::from(d).to_digit(16));
            let (Some(hi), Some(lo)) = (hex(input.next()), hex(input.next())) else {
                return Err(Refusal::Malformed("bad percent-encoding"));
            };
            bytes.push(u8::try_from(hi * 16 + lo).map_err(|_| Refusal::Malformed("bad percent-encoding"))?);
        } else {
            bytes.push(b);
        }
    }
    let name = String::from_utf8(bytes).map_err(|_| Refusal::Malformed("a name is not UTF-8"))?;
    if name.is_empty() || name.starts_with('.') {
        return Err(Refusal::Malformed("empty, hidden or relative names are refused"));
    }
    if name.contains(['/', '\\', '\0', ':']) {
        return Err(Refusal::Malformed("a name holds a separator"));
    }
    Ok(name)
}

/// What `name` is among a ring's files, if it is one the origin serves.
#[must_use]
pub fn ring_file(name: &str) -> Option<RingFile> {
    if [PLAYLIST_NAME, IFRAME_PLAYLIST_NAME, MULTIVARIANT_PLAYLIST_NAME].contains(&name) {
        return Some(RingFile::Playlist);
    }
    if let Some(sequence) = parse_segment_file_name(name) {
        return Some(RingFile::Segment(sequence));
    }
    let stem = name.strip_suffix(".idx")?;
    parse_segment_file_name(&format!("{stem}.ts")).map(RingFile::Index)
}

/// The bytes a `Range` header asks for of a `len`-byte file (RFC 9110,
/// 14.1.2): `Ok(None)` to send it whole (no header, or several ranges,
/// which a server may ignore), `Ok(Some((first, last)))` inclusive.
///
/// # Errors
/// A range that starts at or past the end (416).
pub fn parse_range(header: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ok(None);
    };
    let number = |s: &str| s.trim().parse::<u64>().ok();
    let range = match (first.trim().is_empty(), number(first), number(last)) {
        // The last `n` bytes.
        (true, _, Some(n)) if n > 0 => Some((len.saturating_sub(n), len.checked_sub(1).ok_or(())?)),
        (true, _, _) => return Err(()),
        (false, Some(a), None) if last.trim().is_empty() => Some((a, len.saturating_sub(1))),
        (false, Some(a), Some(b)) if a <= b => Some((a, b.min(len.saturating_sub(1)))),
        _ => return Ok(None),
    };
    match range {
        Some((a, _)) if a >= len => Err(()),
        other => Ok(other),
    }
}

/// The `Content-Type` of a ring file.
#[must_use]
pub fn content_type(file: RingFile) -> &'static str {
    match file {
        RingFile::Playlist => "application/vnd.apple.mpegurl",
        RingFile::Segment(_) | RingFile::Archived(_) => "video/mp2t",
        RingFile::Index(_) => "application/octet-stream",
    }
}

/// The `Cache-Control` of a ring file: a complete segment (or its index)
/// never changes under its name (a reused file gets a new name): a CDN
/// keeps it; the one being written, and playlists, only briefly.
#[must_use]
pub fn cache_control(file: RingFile, complete: bool) -> &'static str {
    match file {
        RingFile::Segment(_) | RingFile::Index(_) if complete => "public, max-age=31536000, immutable",
        RingFile::Archived(_) => "public, max-age=31536000, immutable",
        RingFile::Playlist => "public, max-age=1",
        _ => "no-cache",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_files_are_found_and_nothing_else() {
        let t = parse_path("/news/ch1/segment-000000000041.ts").expect("a segment");
        assert_eq!(t.dirs, ["news", "ch1"]);
        assert_eq!(t.file, RingFile::Segment(SegmentNumber::new(41)));
        let t = parse_path("/my%20ring/index.m3u8").expect("a playlist");
        assert_eq!((t.dirs[0].as_str(), t.file), ("my ring", RingFile::Playlist));
        assert_eq!(
            parse_path("/ch1/segment-000000000041.idx").map(|t| t.file),
            Ok(RingFile::Index(SegmentNumber::new(41)))
        );
        // An archived segment: the ring, and the object's key in the bucket.
        let t = parse_path("/news/ch1/archive/2026-12-05T06/060102003-000000000041.ts").expect("archived");
        assert_eq!(t.dirs, ["news", "ch1"]);
        assert_eq!(t.name, "2026-12-05T06/060102003-000000000041.ts");
        let hour = Hour::parse_folder("2026-12-05T06").expect("hour");
        assert_eq!(t.file, RingFile::Archived(hour));
        let info = SegmentInfo {
            sequence: SegmentNumber::new(41),
            duration_ns: 2_000_000_000,
            bytes: 0,
            program_date_time: crate::layout::WallTime::parse_rfc3339("2026-12-05T06:01:02.003Z").expect("date"),
            discontinuity: false,
            independent: true,
        };
        assert_eq!(archived_uri(&info), "archive/2026-12-05T06/060102003-000000000041.ts");
        for missing in [
            "/index.m3u8",
            "/ch1/ring.journal",
            "/ch1/archive-queue",
            "/ch1/x.ts",
            "/archive/2026-12-05T06/060102003-000000000041.ts",
            "/ch1/archive/2026-12-05T06/070102003-000000000041.ts",
            "/ch1/archive/2026-12-05T06/060102003-000000000041.idx",
            "/ch1/archive/2026-12-05T06/index.m3u8",
        ] {
            assert!(matches!(parse_path(missing), Err(Refusal::NotFound(_))), "{missing}");
        }
        for bad in [
            "/../etc/passwd",
            "/ch1/../../etc/index.m3u8",
            "/%2e%2e/index.m3u8",
            "/ch1%2f..%2f../index.m3u8",
            "/./ch1/index.m3u8",
            "//etc/index.m3u8",
            "/ch1//index.m3u8",
            "/.hidden/index.m3u8",
            "/ch1%00/index.m3u8",
            "/c%zz/index.m3u8",
            "/c%ff/index.m3u8",
            "/..\\../index.m3u8",
            "/C:/index.m3u8",
            "ch1/index.m3u8",
        ] {
            assert!(matches!(parse_path(bad), Err(Refusal::Malformed(_))), "{bad}");
        }
        assert!(matches!(
            parse_path(&format!("/{}/index.m3u8", "a".repeat(2000))),
            Err(Refusal::Malformed(_))
        ));
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range(None, 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=90-500"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=-500"), 100), Ok(Some((0, 99))));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=-0"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=9-1"), 100), Ok(None));
        assert_eq!(parse_range(Some("items=0-1"), 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-0"), 0), Err(()));
    }
}
