// SPDX-License-Identifier: MPL-2.0
//! Partial segments for Low-Latency HLS, cut from a TS segment's bytes as
//! they are written: byte ranges of whole packets, each within the part
//! target. A part begins at each keyframe the index names, so that players
//! can start there (`INDEPENDENT=YES`), and the interval between keyframes
//! is split evenly into as few parts as fit the target with room for its
//! jitter (a keyframe interval of exactly the target, measured on the
//! program clock, is often a few packets longer). RFC 8216bis allows
//! MPEG-TS parts.

use crate::ts::PACKET_SIZE;
use crate::ts::packet::Packet;
use crate::ts::timeline::{PCR_HZ, Pcr};

/// The longest interval between PCRs (ISO/IEC 13818-1: 100 ms).
const MAX_PCR_INTERVAL_NS: u64 = 100_000_000;

fn ticks_to_ns(ticks: u64) -> u64 {
    u64::try_from(u128::from(ticks) * 1_000_000_000 / u128::from(PCR_HZ)).unwrap_or(u64::MAX)
}

/// One partial segment: bytes `offset .. offset + len` of its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub offset: u64,
    pub len: u64,
    pub duration_ns: u64,
    /// It starts at a keyframe (or at the segment's start).
    pub independent: bool,
}

/// A keyframe of the segment: its offset, and its time from the segment's
/// start (ring time, from the keyframe index: exact).
pub type KeyframeAt = (u64, u64);

/// The parts of one segment, cut as its bytes are fed in order. Times are
/// from the segment's start: a keyframe's from the index, elsewhere the
/// program clock's advance since the segment's first PCR.
#[derive(Debug, Clone)]
pub struct PartCutter {
    target_ns: u64,
    /// A part ends at a keyframe, or at a packet this far from its start
    /// at most (see [`Self::part_ns`]).
    cut_ns: u64,
    /// Completed parts.
    parts: Vec<Part>,
    /// The part being cut: its first byte, time, and whether it is
    /// independent.
    start: u64,
    start_ns: u64,
    start_independent: bool,
    /// The segment's first PCR and the newest one.
    first_pcr: Option<Pcr>,
    last_pcr: Option<Pcr>,
    /// The newest keyframe's time, and the interval between the last two
    /// (from the segment before, at first).
    last_keyframe_ns: Option<u64>,
    gop_ns: Option<u64>,
    /// Bytes fed so far (whole packets).
    fed: u64,
}

impl PartCutter {
    /// A cutter of parts of at most `target_ns`.
    #[must_use]
    pub fn new(target_ns: u64) -> Self {
        PartCutter {
            target_ns,
            cut_ns: target_ns.saturating_sub(MAX_PCR_INTERVAL_NS).max(target_ns / 2),
            parts: Vec::new(),
            start: 0,
            start_ns: 0,
            start_independent: true,
            first_pcr: None,
            last_pcr: None,
            last_keyframe_ns: None,
            gop_ns: None,
            fed: 0,
        }
    }

    /// A cutter for the segment after the one `previous` cut: it expects
    /// keyframes at the interval seen there.
    #[must_use]
    pub fn following(previous: &PartCutter) -> Self {
        PartCutter {
            gop_ns: previous.gop_ns,
            ..PartCutter::new(previous.target_ns)
        }
    }

    /// Bytes fed so far: where the next feed goes on.
    #[must_use]
    pub fn fed(&self) -> u64 {
        self.fed
    }

    /// The completed parts.
    #[must_use]
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Where the part being cut starts.
    #[must_use]
    pub fn next_part_offset(&self) -> u64 {
        self.start
    }

    /// How long a part runs before it ends between keyframes: the
    /// keyframe interval split evenly into as few parts as keep each within
    /// the target, allowing for the interval's jitter (a PCR interval), so
    /// that no part ends just before a keyframe; before the interval is
    /// known, the target less that jitter.
    fn part_ns(&self) -> u64 {
        match self.gop_ns {
            Some(gop) if gop > 0 => {
                let n = gop.saturating_add(MAX_PCR_INTERVAL_NS).div_ceil(self.target_ns).max(1);
                (gop / n).min(self.cut_ns)
            }
            _ => self.cut_ns,
        }
    }

    /// Feeds the segment's next bytes (from [`Self::fed`]; whole packets,
    /// a trailing partial packet is left for the next call: the returned
    /// count says how many were taken). `keyframes`: the segment's
    /// keyframes, ascending.
    pub fn feed(&mut self, bytes: &[u8], keyframes: &[KeyframeAt]) -> usize {
        let mut taken = 0;
        for chunk in bytes.chunks_exact(PACKET_SIZE) {
            let offset = self.fed;
            if let Some(pcr) = Packet::new(chunk).and_then(|p| p.pcr()).map(Pcr::from_ticks) {
                self.first_pcr.get_or_insert(pcr);
                self.last_pcr = Some(pcr);
            }
            let keyframe = keyframes
                .binary_search_by_key(&offset, |k| k.0)
                .ok()
                .map(|i| keyframes[i].1);
            let clock_ns = match (self.first_pcr, self.last_pcr) {
                (Some(first), Some(last)) => ticks_to_ns(last.ticks_since(first)),
                _ => 0,
            };
            let now_ns = keyframe.unwrap_or(clock_ns);
            if let Some(k) = keyframe {
                if let Some(before) = self.last_keyframe_ns.filter(|b| k > *b) {
                    self.gop_ns = Some(k - before);
                }
                self.last_keyframe_ns = Some(k);
            }
            if offset > self.start {
                let elapsed = now_ns.saturating_sub(self.start_ns);
                let time_cut = elapsed >= self.part_ns();
                // A keyframe right after the tables that head the
                // segment (no time between) leaves them in its part.
                if keyframe.is_some() && elapsed == 0 {
                    self.start_independent = true;
                } else if keyframe.is_some() || time_cut {
                    self.parts.push(Part {
                        offset: self.start,
                        len: offset - self.start,
                        duration_ns: elapsed,
                        independent: self.start_independent,
                    });
                    self.start = offset;
                    self.start_ns = now_ns;
                    self.start_independent = keyframe.is_some();
                }
            } else if keyframe.is_some() {
                self.start_independent = true;
            }
            self.fed += PACKET_SIZE as u64;
            taken += PACKET_SIZE;
        }
        taken
    }

    /// The parts of the segment once complete, `duration_ns` long: the last
    /// one runs to its end and lasts what the others leave.
    #[must_use]
    pub fn finish(&self, duration_ns: u64) -> Vec<Part> {
        let mut parts = self.parts.clone();
        if self.fed > self.start {
            parts.push(Part {
                offset: self.start,
                len: self.fed - self.start,
                duration_ns: duration_ns.saturating_sub(self.start_ns),
                independent: self.start_independent,
            });
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::packet::tests::PacketBuilder;

    /// `seconds` of packets, 25 a second, a PCR on each; keyframes every
    /// `gop` seconds: (bytes, keyframe offsets).
    fn stream(seconds: u64, gop: u64) -> (Vec<u8>, Vec<KeyframeAt>) {
        let mut out = Vec::new();
        let mut keyframes = Vec::new();
        for n in 0..seconds * 25 {
            if n % (25 * gop) == 0 {
                keyframes.push((out.len() as u64, n * 40_000_000));
            }
            let mut b = PacketBuilder::new(0x100);
            b.pcr = Some(PCR_HZ + n * PCR_HZ / 25);
            out.extend_from_slice(&b.build());
        }
        (out, keyframes)
    }

    #[test]
    fn parts_are_at_most_the_target_and_start_at_keyframes() {
        let (bytes, keyframes) = stream(6, 2);
        let mut cutter = PartCutter::new(1_000_000_000);
        // Fed in pieces cut anywhere, as a file grows.
        let mut at = 0;
        for piece in bytes.chunks(1000) {
            at += piece.len();
            let fed = usize::try_from(cutter.fed()).expect("fits");
            cutter.feed(&bytes[fed..at], &keyframes);
        }
        let parts = cutter.finish(6_000_000_000);
        // With a PCR every 40 ms: before the keyframe interval is known,
        // parts of 0.92 s and a short one before the keyframe; then each
        // 2 s interval in three.
        let shape: Vec<(u64, bool)> = parts
            .iter()
            .map(|p| (p.duration_ns / 1_000_000, p.independent))
            .collect();
        assert_eq!(
            shape,
            [
                (920, true),
                (920, false),
                (160, false),
                (680, true),
                (680, false),
                (640, false),
                (680, true),
                (680, false),
                (640, false)
            ]
        );
        assert!(parts.iter().all(|p| p.duration_ns <= 1_000_000_000));
        // Contiguous, whole packets, covering the segment.
        let mut next = 0;
        for p in &parts {
            assert_eq!(p.offset, next);
            assert_eq!(p.len % PACKET_SIZE as u64, 0);
            next += p.len;
        }
        assert_eq!(next, bytes.len() as u64);
    }

    #[test]
    fn with_a_keyframe_every_target_each_interval_is_two_parts() {
        // Two segments of 4 s, a keyframe a second, 1 s parts: the first
        // segment learns the interval (its first part ends just before the
        // second keyframe); from then on each interval is two parts, none
        // longer than the target however the interval jitters.
        let (bytes, keyframes) = stream(4, 1);
        let mut first = PartCutter::new(1_000_000_000);
        first.feed(&bytes, &keyframes);
        let parts = first.finish(4_000_000_000);
        let shape: Vec<(u64, bool)> = parts
            .iter()
            .map(|p| (p.duration_ns / 1_000_000, p.independent))
            .collect();
        assert_eq!(
            shape,
            [
                (920, true),
                (80, false),
                (520, true),
                (480, false),
                (520, true),
                (480, false),
                (520, true),
                (480, false)
            ]
        );
        let mut second = PartCutter::following(&first);
        second.feed(&bytes, &keyframes);
        let parts = second.finish(4_000_000_000);
        let shape: Vec<(u64, bool)> = parts
            .iter()
            .map(|p| (p.duration_ns / 1_000_000, p.independent))
            .collect();
        assert_eq!(shape, [(520, true), (480, false)].repeat(4));
    }

    #[test]
    fn the_tables_before_the_first_keyframe_are_in_its_part() {
        let (mut bytes, keyframes) = stream(2, 1);
        // Two packets of tables (no PCR) in front: keyframes move by them.
        let mut tables = PacketBuilder::new(0).build().to_vec();
        tables.extend_from_slice(&PacketBuilder::new(0x1000).build());
        tables.append(&mut bytes);
        let shift = 2 * PACKET_SIZE as u64;
        let keyframes: Vec<KeyframeAt> = keyframes.iter().map(|&(o, t)| (o + shift, t)).collect();
        let mut cutter = PartCutter::new(1_000_000_000);
        cutter.feed(&tables, &keyframes);
        let parts = cutter.finish(2_000_000_000);
        assert_eq!(parts[0].offset, 0);
        assert!(parts[0].independent && parts[0].duration_ns > 0, "{parts:?}");
        assert!(parts.iter().all(|p| p.duration_ns > 0), "{parts:?}");
    }

    #[test]
    fn a_keyframe_begins_a_part() {
        // Keyframes at 0 and 1.6 s with a 1 s target: parts 0-0.92,
        // 0.92-1.6 (the keyframe), then halves of the 1.6 s interval.
        let (bytes, _) = stream(3, 100);
        let keyframes = [(0, 0), (40 * PACKET_SIZE as u64, 1_600_000_000)];
        let mut cutter = PartCutter::new(1_000_000_000);
        cutter.feed(&bytes, &keyframes);
        let parts = cutter.finish(3_000_000_000);
        let shape: Vec<(u64, bool)> = parts
            .iter()
            .map(|p| (p.duration_ns / 1_000_000, p.independent))
            .collect();
        assert_eq!(shape, [(920, true), (680, false), (800, true), (600, false)]);
        // Not yet complete: only the parts that ended.
        let mut partial = PartCutter::new(1_000_000_000);
        let taken = partial.feed(&bytes[..30 * PACKET_SIZE + 17], &keyframes);
        assert_eq!(taken, 30 * PACKET_SIZE);
        assert_eq!(partial.parts().len(), 1);
        assert_eq!(partial.next_part_offset(), 23 * PACKET_SIZE as u64);
    }
}
