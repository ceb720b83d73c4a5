// SPDX-License-Identifier: MPL-2.0
//! `streambuffer://` URIs, so that `playbin` and `gst-play-1.0` open a ring
//! with time-shift: `streambuffer:///var/buffer/ch1?start-position=live&start-delay=30000000000`.
//!
//! The path is the ring (or recording) directory, percent-encoded; the query
//! sets `start-position` (`live` or `oldest`), `start-delay` (ns) and
//! `archive` (`true` or `false`), as the properties of the same names. Anything else is refused: a URI that
//! says more than the element understands is not silently half-obeyed.

use std::path::PathBuf;

use super::StartPosition;

/// The URI scheme `streambuffersrc` handles.
pub const SCHEME: &str = "streambuffer";

/// What a `streambuffer://` URI says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingUri {
    pub location: PathBuf,
    pub start_position: Option<StartPosition>,
    pub start_delay_ns: Option<u64>,
    pub archive: Option<bool>,
}

impl RingUri {
    /// Parses `uri`; the error says what is wrong with it.
    pub fn parse(uri: &str) -> Result<RingUri, String> {
        let (scheme, rest) = uri.split_once("://").ok_or_else(|| format!("'{uri}' is not a URI"))?;
        if !scheme.eq_ignore_ascii_case(SCHEME) {
            return Err(format!("'{uri}' is not a {SCHEME}:// URI"));
        }
        let (authority_path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let path = match authority_path.find('/') {
            Some(0) => authority_path,
            Some(i) if authority_path[..i].eq_ignore_ascii_case("localhost") => &authority_path[i..],
            _ => {
                return Err(format!(
                    "'{uri}' names no local directory (streambuffer:///path/to/ring)"
                ));
            }
        };
        let location =
            percent_decode(path).ok_or_else(|| format!("'{uri}': the path is not valid percent-encoded UTF-8"))?;
        if location == "/" {
            return Err(format!("'{uri}' names no ring directory"));
        }
        let mut parsed = RingUri {
            location: PathBuf::from(location),
            start_position: None,
            start_delay_ns: None,
            archive: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "start-position" => {
                    parsed.start_position = Some(match value {
                        "live" => StartPosition::Live,
                        "oldest" => StartPosition::Oldest,
                        _ => return Err(format!("start-position '{value}': live or oldest")),
                    });
                }
                "start-delay" => {
                    parsed.start_delay_ns = Some(
                        value
                            .parse()
                            .map_err(|_| format!("start-delay '{value}': a number of nanoseconds"))?,
                    );
                }
                "archive" => {
                    parsed.archive = Some(match value {
                        "true" => true,
                        "false" => false,
                        _ => return Err(format!("archive '{value}': true or false")),
                    });
                }
                _ => {
                    return Err(format!(
                        "unknown URI parameter '{key}' (start-position, start-delay, archive)"
                    ));
                }
            }
        }
        Ok(parsed)
    }

    /// The URI that says this.
    #[must_use]
    pub fn to_uri(&self) -> String {
        let mut uri = format!("{SCHEME}://");
        let path = self.location.to_string_lossy();
        if !path.starts_with('/') {
            uri.push('/');
        }
        uri.push_str(&percent_encode(&path));
        let mut query = Vec::new();
        if let Some(p) = self.start_position {
            query.push(format!(
                "start-position={}",
                match p {
                    StartPosition::Live => "live",
                    StartPosition::Oldest => "oldest",
                }
            ));
        }
        if let Some(d) = self.start_delay_ns {
            query.push(format!("start-delay={d}"));
        }
        if let Some(a) = self.archive {
            query.push(format!("archive={a}"));
        }
        if !query.is_empty() {
            uri.push('?');
            uri.push_str(&query.join("&"));
        }
        uri
    }
}

/// `s` with every byte but letters, digits and `/-._~` as a `%XX` escape.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%XX` escapes decoded; `None` for a bad escape or bytes that are not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_back() {
        let uri = RingUri::parse(
            "streambuffer:///var/buffer/ch%201?start-position=live&start-delay=30000000000&archive=false",
        )
        .expect("parses");
        assert_eq!(
            uri,
            RingUri {
                location: PathBuf::from("/var/buffer/ch 1"),
                start_position: Some(StartPosition::Live),
                start_delay_ns: Some(30_000_000_000),
                archive: Some(false),
            }
        );
        assert_eq!(
            uri.to_uri(),
            "streambuffer:///var/buffer/ch%201?start-position=live&start-delay=30000000000&archive=false"
        );
        assert_eq!(RingUri::parse(&uri.to_uri()), Ok(uri));
        let plain = RingUri::parse("STREAMBUFFER://localhost/r").expect("parses");
        assert_eq!(
            (plain.location, plain.start_position, plain.start_delay_ns),
            (PathBuf::from("/r"), None, None)
        );
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for bad in [
            "file:///var/ring",
            "streambuffer://host/var/ring",
            "streambuffer:///",
            "streambuffer:///r?start-position=middle",
            "streambuffer:///r?start-delay=soon",
            "streambuffer:///r?rate=2",
            "streambuffer:///r?archive=yes",
            "streambuffer:///r%ZZ",
            "streambuffer:///r%FF",
            "/var/ring",
        ] {
            assert!(RingUri::parse(bad).is_err(), "{bad}");
        }
    }
}
