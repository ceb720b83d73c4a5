// SPDX-License-Identifier: MPL-2.0
//! `streambuffer+SCHEME://` URIs: a live URI wrapped for time-shift, so that
//! `gst-play-1.0 streambuffer+udp://239.0.0.1:5000` and `playbin` get a
//! pausable, seekable live stream.
//!
//! Everything after `streambuffer+` up to a `#` is the live URI, handed to
//! `urisourcebin` untouched (its own query included). The fragment, which no
//! live URI needs (it is never sent to a server), carries the element's
//! properties: `#location=/var/tv/ch1&max-duration=3600000000000`. A value is
//! percent-decoded and read as the property's type reads it in
//! `gst-launch-1.0` (numbers, `true`/`false`, enum nicks).

use crate::streambuffersrc::uri::{percent_decode, percent_encode};

/// The prefix that marks a wrapped live URI.
pub const PREFIX: &str = "streambuffer+";

/// The live schemes wrapped: those whose GStreamer source is live and
/// carries MPEG-TS (RTP with MP2T payload is depayloaded).
pub const LIVE_SCHEMES: [&str; 6] = ["udp", "rtp", "srt", "rist", "http", "https"];

/// What a `streambuffer+SCHEME://` URI says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeshiftUri {
    /// The live URI, `SCHEME://...`.
    pub live: String,
    /// Property names and values of the fragment, in order.
    pub properties: Vec<(String, String)>,
}

impl TimeshiftUri {
    /// Parses `uri`; the error says what is wrong with it. Property names
    /// are not checked here: the element knows its properties.
    pub fn parse(uri: &str) -> Result<TimeshiftUri, String> {
        let head = uri.get(..PREFIX.len()).unwrap_or("");
        if !head.eq_ignore_ascii_case(PREFIX) {
            return Err(format!("'{uri}' is not a {PREFIX}SCHEME:// URI"));
        }
        let rest = &uri[PREFIX.len()..];
        let (live, fragment) = rest.split_once('#').unwrap_or((rest, ""));
        let scheme = live.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme {
            Some(s) if LIVE_SCHEMES.contains(&s.as_str()) => {}
            _ => {
                return Err(format!(
                    "'{uri}': the live URI must be one of {}",
                    LIVE_SCHEMES.map(|s| format!("{s}://")).join(", ")
                ));
            }
        }
        let mut properties = Vec::new();
        for pair in fragment.split('&').filter(|p| !p.is_empty()) {
            let Some((name, value)) = pair.split_once('=') else {
                return Err(format!("'{pair}' in '{uri}' is not name=value"));
            };
            let value =
                percent_decode(value).ok_or_else(|| format!("'{pair}' in '{uri}': not valid percent-encoded UTF-8"))?;
            properties.push((name.to_owned(), value));
        }
        Ok(TimeshiftUri {
            live: live.to_owned(),
            properties,
        })
    }

    /// The URI that says this.
    #[must_use]
    pub fn to_uri(&self) -> String {
        let mut uri = format!("{PREFIX}{}", self.live);
        for (i, (name, value)) in self.properties.iter().enumerate() {
            uri.push(if i == 0 { '#' } else { '&' });
            uri.push_str(name);
            uri.push('=');
            uri.push_str(&percent_encode(value));
        }
        uri
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_back() {
        let uri = TimeshiftUri::parse(
            "streambuffer+udp://127.0.0.1:5000?buffer-size=1000#location=/var/tv/ch%201&max-duration=60000000000",
        )
        .expect("parses");
        assert_eq!(uri.live, "udp://127.0.0.1:5000?buffer-size=1000");
        assert_eq!(
            uri.properties,
            vec![
                ("location".to_owned(), "/var/tv/ch 1".to_owned()),
                ("max-duration".to_owned(), "60000000000".to_owned())
            ]
        );
        assert_eq!(TimeshiftUri::parse(&uri.to_uri()), Ok(uri));
        let plain = TimeshiftUri::parse("StreamBuffer+HTTPS://example.com/live.ts").expect("parses");
        assert_eq!(
            (plain.live.as_str(), plain.properties.len()),
            ("HTTPS://example.com/live.ts", 0)
        );
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for bad in [
            "udp://127.0.0.1:5000",
            "streambuffer:///var/ring",
            "streambuffer+file:///tmp/a.ts",
            "streambuffer+udp:/127.0.0.1",
            "streambuffer+udp://127.0.0.1:5000#max-duration",
            "streambuffer+udp://127.0.0.1:5000#location=%FF",
            "streambuffer+",
        ] {
            assert!(TimeshiftUri::parse(bad).is_err(), "{bad}");
        }
    }
}
