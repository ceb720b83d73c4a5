// SPDX-License-Identifier: MPL-2.0
//! Decides whether a video PES starts at a random-access point, from the
//! elementary stream itself, when the multiplexer did not set the adaptation
//! field's random_access_indicator.
//!
//! Only the start of each access unit is scanned: the parameter sets and the
//! first slice header come first, so the verdict is normally reached within the
//! first packet and the rest of the picture is never looked at. Start codes may
//! straddle packets; the scanner keeps its state between packets.

use super::psi::VideoCodec;

/// Bytes of elementary stream examined per access unit before giving up.
/// Parameter sets and SEI precede the first slice and are far smaller.
const SCAN_LIMIT: usize = 64 * 1024;

/// The decision about the access unit that started with the last PES.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// More bytes of this PES are needed.
    Undecided,
    RandomAccess,
    NotRandomAccess,
}

/// Scans the start of each video PES for a random-access point.
#[derive(Debug)]
pub struct RandomAccessDetector {
    codec: VideoCodec,
    verdict: Verdict,
    /// PES header bytes still to skip before elementary-stream data starts.
    header: PesHeader,
    /// Consecutive zero bytes seen (capped at 2) for start-code detection.
    zeros: u8,
    /// The previous bytes were 00 00 01: the next byte is a NAL or start-code value.
    after_prefix: bool,
    scanned: usize,
}

#[derive(Debug, Clone, Copy)]
enum PesHeader {
    /// Collecting the 9 fixed bytes; holds how many and the header_data_length.
    Fixed {
        seen: u8,
        data_len: u8,
    },
    /// Skipping this many more optional header bytes.
    Skip(usize),
    Done,
}

impl RandomAccessDetector {
    #[must_use]
    pub fn new(codec: VideoCodec) -> Self {
        RandomAccessDetector {
            codec,
            verdict: Verdict::NotRandomAccess,
            header: PesHeader::Done,
            zeros: 0,
            after_prefix: false,
            scanned: 0,
        }
    }

    #[must_use]
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    #[must_use]
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// A new PES starts with this payload (the packet had payload_unit_start).
    pub fn start(&mut self, payload: &[u8]) -> Verdict {
        self.header = PesHeader::Fixed { seen: 0, data_len: 0 };
        self.zeros = 0;
        self.after_prefix = false;
        self.scanned = 0;
        self.verdict = if self.codec == VideoCodec::Other {
            // No parser for this codec: every picture start is a cut point.
            Verdict::RandomAccess
        } else {
            Verdict::Undecided
        };
        self.feed(payload)
    }

    /// More payload of the current PES.
    pub fn feed(&mut self, mut payload: &[u8]) -> Verdict {
        if self.verdict != Verdict::Undecided {
            return self.verdict;
        }
        payload = self.skip_header(payload);
        for &b in payload {
            if self.after_prefix {
                self.after_prefix = false;
                if let Some(v) = self.classify(b) {
                    self.verdict = v;
                    return v;
                }
            }
            if b == 0 {
                self.zeros = (self.zeros + 1).min(2);
            } else {
                self.after_prefix = b == 1 && self.zeros == 2;
                self.zeros = 0;
            }
        }
        self.scanned += payload.len();
        if self.scanned > SCAN_LIMIT {
            self.verdict = Verdict::NotRandomAccess;
        }
        self.verdict
    }

    fn skip_header<'a>(&mut self, mut payload: &'a [u8]) -> &'a [u8] {
        loop {
            match self.header {
                PesHeader::Done => return payload,
                PesHeader::Skip(n) => {
                    let k = n.min(payload.len());
                    payload = &payload[k..];
                    self.header = if n == k {
                        PesHeader::Done
                    } else {
                        PesHeader::Skip(n - k)
                    };
                    if n != k {
                        return payload;
                    }
                }
                PesHeader::Fixed { seen, data_len } => {
                    let Some((&b, rest)) = payload.split_first() else {
                        return payload;
                    };
                    payload = rest;
                    let ok = match seen {
                        0 | 1 => b == 0,
                        2 => b == 1,
                        3 => (0xE0..=0xEF).contains(&b) || b == 0xFD,
                        _ => true,
                    };
                    if !ok {
                        // Not a video PES header: nothing to find in this unit.
                        self.verdict = Verdict::NotRandomAccess;
                        self.header = PesHeader::Done;
                        return &[];
                    }
                    let data_len = if seen == 8 { b } else { data_len };
                    self.header = if seen == 8 {
                        PesHeader::Skip(usize::from(data_len))
                    } else {
                        PesHeader::Fixed {
                            seen: seen + 1,
                            data_len,
                        }
                    };
                }
            }
        }
    }

    /// Classifies the byte after a 00 00 01 prefix; `None` = keep scanning.
    fn classify(&self, b: u8) -> Option<Verdict> {
        match self.codec {
            VideoCodec::H264 => match b & 0x1F {
                5 | 7 => Some(Verdict::RandomAccess), // IDR slice, SPS
                1..=4 => Some(Verdict::NotRandomAccess),
                _ => None,
            },
            VideoCodec::H265 => match (b >> 1) & 0x3F {
                16..=23 => Some(Verdict::RandomAccess), // IRAP: BLA, IDR, CRA
                0..=15 | 24..=31 => Some(Verdict::NotRandomAccess),
                _ => None,
            },
            VideoCodec::Mpeg2 => match b {
                0xB3 => Some(Verdict::RandomAccess),    // sequence header
                0x00 => Some(Verdict::NotRandomAccess), // picture without one
                _ => None,
            },
            VideoCodec::Other => Some(Verdict::RandomAccess),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn pes(es: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1];
        v.extend_from_slice(es);
        v
    }

    pub(crate) const H264_IDR: &[u8] = &[
        0, 0, 0, 1, 9, 0xF0, 0, 0, 0, 1, 0x67, 0x64, 0, 0x1F, 0, 0, 1, 0x68, 0xEE, 0, 0, 1, 0x65, 0x88,
    ];
    pub(crate) const H264_P: &[u8] = &[0, 0, 0, 1, 9, 0x30, 0, 0, 0, 1, 0x41, 0x9A, 0x00];

    fn verdict_chunked(codec: VideoCodec, data: &[u8], chunk: usize) -> Verdict {
        let mut d = RandomAccessDetector::new(codec);
        let mut chunks = data.chunks(chunk);
        let mut v = d.start(chunks.next().unwrap_or(&[]));
        for c in chunks {
            v = d.feed(c);
        }
        v
    }

    #[test]
    fn h264_idr_and_p() {
        for chunk in 1..=30 {
            assert_eq!(
                verdict_chunked(VideoCodec::H264, &pes(H264_IDR), chunk),
                Verdict::RandomAccess
            );
            assert_eq!(
                verdict_chunked(VideoCodec::H264, &pes(H264_P), chunk),
                Verdict::NotRandomAccess
            );
        }
    }

    #[test]
    fn h264_idr_after_large_sei_straddling_packets() {
        let mut es = vec![0, 0, 0, 1, 9, 0xF0, 0, 0, 1, 6];
        es.extend(std::iter::repeat_n(0x55, 700));
        es.extend_from_slice(&[0, 0, 1, 0x65, 0x88]);
        for chunk in [1, 2, 3, 184, 183] {
            assert_eq!(
                verdict_chunked(VideoCodec::H264, &pes(&es), chunk),
                Verdict::RandomAccess
            );
        }
    }

    #[test]
    fn h265_irap_and_trail() {
        let cra = [0, 0, 1, 0x46, 0x01, 0, 0, 1, 0x2A, 0x01]; // AUD(35) then CRA(21)
        let trail = [0, 0, 1, 0x46, 0x01, 0, 0, 1, 0x02, 0x01]; // AUD then TRAIL_R(1)
        assert_eq!(verdict_chunked(VideoCodec::H265, &pes(&cra), 3), Verdict::RandomAccess);
        assert_eq!(
            verdict_chunked(VideoCodec::H265, &pes(&trail), 3),
            Verdict::NotRandomAccess
        );
    }

    #[test]
    fn mpeg2_sequence_header() {
        let seq = [0, 0, 1, 0xB3, 0x2D, 0, 0, 1, 0xB8, 0, 0, 1, 0x00];
        let pic = [0, 0, 1, 0x00, 0x10, 0x08];
        assert_eq!(verdict_chunked(VideoCodec::Mpeg2, &pes(&seq), 2), Verdict::RandomAccess);
        assert_eq!(
            verdict_chunked(VideoCodec::Mpeg2, &pes(&pic), 2),
            Verdict::NotRandomAccess
        );
    }

    #[test]
    fn non_pes_payload_is_not_random_access() {
        assert_eq!(
            verdict_chunked(VideoCodec::H264, &[1, 2, 3, 0, 0, 1, 0x65], 100),
            Verdict::NotRandomAccess
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn verdict(codec: VideoCodec, chunks: &[&[u8]]) -> Verdict {
        let mut d = RandomAccessDetector::new(codec);
        let mut v = d.start(chunks.first().copied().unwrap_or(&[]));
        for c in &chunks[1..] {
            v = d.feed(c);
        }
        v
    }

    proptest! {
        /// The verdict does not depend on where the PES is cut into packets,
        /// and arbitrary bytes never panic.
        #[test]
        fn verdict_is_chunking_independent(body in prop::collection::vec(prop_oneof![Just(0u8), Just(1u8), any::<u8>()], 0..600), cut in 0usize..600, codec in 0u8..3) {
            let codec = [VideoCodec::H264, VideoCodec::H265, VideoCodec::Mpeg2][codec as usize];
            let data = tests::pes(&body);
            let cut = cut.min(data.len());
            let whole = verdict(codec, &[&data]);
            let split = verdict(codec, &[&data[..cut], &data[cut..]]);
            prop_assert_eq!(whole, split);
        }
    }
}
