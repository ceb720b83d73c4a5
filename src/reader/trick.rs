// SPDX-License-Identifier: MPL-2.0
//! Trick play from the keyframe index: fast-forward and rewind read only the
//! keyframes, one at a time, each as a small self-contained piece of
//! transport stream.
//!
//! A piece is the tables at the head of the keyframe's segment (PAT, PMTs),
//! a packet with the program clock at the keyframe (from its PTS and the
//! presentation delay in the index), and the packets of the keyframe's
//! access unit (the index gives its offset and size) on the keyframe's
//! PID; the other PIDs' packets interleaved with it (audio) are left out,
//! as trick play shows no audio.
//! A demuxer that is told of the discontinuity before each piece decodes it
//! on its own, in any order. Nothing between two keyframes is read.

use std::io::{self, Read, Seek, SeekFrom};

use super::{ReadLocation, RingReader};
use crate::layout::SegmentNumber;
use crate::layout::index::{self, Keyframe};
use crate::layout::{PresentationTime, RingTime, segment_file_name};
use crate::platform;
use crate::ts::packet::{PAT_PID, Pid, pcr_packet};
use crate::ts::psi::{SectionAssembler, parse_pat, parse_pmt};
use crate::ts::{PACKET_SIZE, Packet};

/// Which way trick play walks through the keyframes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

/// One keyframe, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyframePiece {
    /// The head's tables, then the keyframe's packets on its PID.
    pub data: Vec<u8>,
    /// Ring time of the keyframe: the timestamp of the buffer carrying it
    /// (the demuxer adds the stream's presentation delay, as for the
    /// first buffer of a segment).
    pub ring_time: RingTime,
    /// When the keyframe is presented.
    pub presentation_time: PresentationTime,
    /// Bytes read from the segment file for it.
    pub bytes_read: u64,
}

/// The result of [`RingReader::read_keyframe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrickOutcome {
    Keyframe(KeyframePiece),
    /// No keyframe further that way: the live edge (or a finished ring's
    /// end) going forward, the oldest content going backward.
    Edge,
}

/// A keyframe found: its segment, the segment's start record, the keyframe.
type Found = (SegmentNumber, Keyframe, Keyframe);

/// Most bytes one keyframe may take: an index record with a larger size
/// is not believed.
const MAX_KEYFRAME_BYTES: u64 = 64 * 1024 * 1024;

impl RingReader {
    /// Reads the keyframe nearest presentation time `from` going
    /// `direction`, about `min_step_ns` beyond it at least (0: `from`
    /// itself may be the one), from the keyframe index. When a step of
    /// more than 1 ns goes past the newest (oldest) keyframe, that one is
    /// read, so that a walk ends on it. Segments without a usable index
    /// are passed over. Going forward, a keyframe whose bytes are not all
    /// in the file yet is not there yet.
    pub fn read_keyframe(
        &mut self,
        from: PresentationTime,
        direction: Direction,
        min_step_ns: u64,
    ) -> io::Result<TrickOutcome> {
        self.refresh()?;
        // Keyframes a GOP apart are not exactly a GOP apart in presentation
        // time: a step is taken with a tenth's slack, so that "every
        // second" does not become "every other second".
        let step = if min_step_ns > 1 {
            min_step_ns - min_step_ns / 10
        } else {
            min_step_ns
        };
        let found = match direction {
            Direction::Forward => self.keyframe_at_or_after(from.saturating_add(step)).or_else(|| {
                // A step past the newest keyframe: the newest, if beyond `from`.
                let newest = self.keyframe_at_or_before(PresentationTime::MAX)?;
                (step > 1 && newest.2.presentation_time() > from).then_some(newest)
            }),
            Direction::Backward => from
                .checked_sub(step)
                .and_then(|t| self.keyframe_at_or_before(t))
                .or_else(|| {
                    // A step past the oldest keyframe: the oldest, if before `from`.
                    let oldest = self.keyframe_at_or_after(PresentationTime::ZERO)?;
                    (step > 1 && oldest.2.presentation_time() < from).then_some(oldest)
                }),
        };
        let Some((seq, start, keyframe)) = found else {
            return Ok(TrickOutcome::Edge);
        };
        match self.keyframe_piece(seq, &start, &keyframe) {
            Ok(Some(piece)) => {
                self.delivered += piece.bytes_read;
                self.trick_position = Some(piece.presentation_time);
                Ok(TrickOutcome::Keyframe(piece))
            }
            // Not all written yet (the newest keyframe of the open segment).
            Ok(None) => Ok(TrickOutcome::Edge),
            Err(e) => {
                let path = self.catalog.dir().join(segment_file_name(seq));
                self.events.push(super::ReaderEvent::ReadFailure {
                    path,
                    error: e.to_string(),
                });
                Ok(TrickOutcome::Edge)
            }
        }
    }

    /// Where (segment, offset) the first keyframe presented at or after
    /// `t` is, or else the newest keyframe: where an export ends.
    pub(crate) fn keyframe_location_at_or_after(&self, t: PresentationTime) -> Option<ReadLocation> {
        self.keyframe_at_or_after(t)
            .or_else(|| self.keyframe_at_or_before(PresentationTime::MAX))
            .map(|(sequence, _, k)| ReadLocation {
                sequence,
                offset: k.offset,
            })
    }

    /// The first keyframe presented at or after `target`.
    fn keyframe_at_or_after(&self, target: PresentationTime) -> Option<Found> {
        let candidates = self.candidates();
        let ring_target = self.ring_time_of(target);
        let at = candidates
            .iter()
            .rposition(|&(_, start)| start <= ring_target)
            .unwrap_or(0);
        candidates[at..].iter().find_map(|&(seq, _)| {
            let index = self.segment_index(seq)?;
            let k = *index::at_or_after(&index.keyframes, target)?;
            Some((seq, index.start, k))
        })
    }

    /// The last keyframe presented at or before `target`.
    fn keyframe_at_or_before(&self, target: PresentationTime) -> Option<Found> {
        let candidates = self.candidates();
        let ring_target = self.ring_time_of(target);
        let at = candidates.iter().rposition(|&(_, start)| start <= ring_target)?;
        candidates[..=at].iter().rev().find_map(|&(seq, _)| {
            let index = self.segment_index(seq)?;
            let k = *index::at_or_before(&index.keyframes, target)?;
            Some((seq, index.start, k))
        })
    }

    /// The piece for `keyframe` of segment `seq` (whose index starts with
    /// `start`); `None` if its bytes are not all in the file yet.
    fn keyframe_piece(
        &self,
        seq: SegmentNumber,
        start: &Keyframe,
        keyframe: &Keyframe,
    ) -> io::Result<Option<KeyframePiece>> {
        let size = u64::from(keyframe.size);
        let Some(end) = keyframe.offset.checked_add(size).filter(|_| size <= MAX_KEYFRAME_BYTES) else {
            return Ok(None);
        };
        let head_len = u64::from(start.size).min(keyframe.offset) / PACKET_SIZE as u64 * PACKET_SIZE as u64;
        // From the archive, the two ranges only (an archived segment is
        // whole); from the ring, once they are written.
        let (head, unit) = if let Some(head) = self.catalog.archived_range(seq, 0, head_len) {
            let unit = self
                .catalog
                .archived_range(seq, keyframe.offset, size)
                .ok_or_else(|| io::Error::other("left the archive"))??;
            (head?, unit)
        } else {
            let mut file = platform::open_read_only(&self.catalog.dir().join(segment_file_name(seq)))?;
            if end > self.catalog.content_len(&file, seq)? {
                return Ok(None);
            }
            let mut head = vec![0u8; usize::try_from(head_len).map_err(io::Error::other)?];
            file.read_exact(&mut head)?;
            let mut unit = vec![0u8; usize::try_from(size).map_err(io::Error::other)?];
            file.seek(SeekFrom::Start(keyframe.offset))?;
            file.read_exact(&mut unit)?;
            (head, unit)
        };
        if unit.len() as u64 != size || head.len() as u64 != head_len {
            return Ok(None);
        }
        let bytes_read = head_len + size;
        let Some(pid) = unit.get(..PACKET_SIZE).and_then(Packet::new).map(|p| p.pid()) else {
            return Ok(None);
        };
        // The clock at the keyframe, from its PTS and presentation delay,
        // in a packet of its own before it: the piece may hold no PCR of
        // its own, and without one a demuxer cannot time it.
        let pts = Packet::new(&unit[..PACKET_SIZE]).and_then(|p| p.pes_pts());
        let clock = pcr_pid(&head).zip(pts).map(|(pcr_pid, pts)| {
            let base = pts.wrapping_sub_signed(i64::from(keyframe.presentation_delay.ticks())) & ((1 << 33) - 1);
            pcr_packet(pcr_pid, base)
        });
        let mut data = head;
        if let Some(clock) = clock {
            data.extend_from_slice(&clock);
        }
        for packet in unit.chunks_exact(PACKET_SIZE) {
            if Packet::new(packet).is_some_and(|p| p.pid() == pid) {
                data.extend_from_slice(packet);
            }
        }
        Ok(Some(KeyframePiece {
            data,
            ring_time: keyframe.ring_time,
            presentation_time: keyframe.presentation_time(),
            bytes_read,
        }))
    }
}

/// The PCR PID of the first PMT among `head`'s packets (the tables at a
/// segment's head: a PAT, then the PMTs).
fn pcr_pid(head: &[u8]) -> Option<Pid> {
    let packets = || head.chunks_exact(PACKET_SIZE).filter_map(Packet::new);
    let mut pat = SectionAssembler::default();
    let pmt_pid = packets().filter(|p| p.pid() == PAT_PID).find_map(|p| {
        let section = pat.push(&p)?;
        Some(parse_pat(section.bytes)?.programs.first()?.pmt_pid)
    })?;
    let mut pmt = SectionAssembler::default();
    packets().filter(|p| p.pid() == pmt_pid).find_map(|p| {
        let section = pmt.push(&p)?;
        Some(parse_pmt(section.bytes)?.pcr_pid)
    })
}

/// The slowest and fastest rates played, either way (the Windows engine
/// takes |rate| >= 0.1 too).
pub const MIN_RATE: f64 = 0.1;
pub const MAX_RATE: f64 = 64.0;
/// Forward up to this rate every frame is sent (the Windows engine's
/// default `maxFullFrameRate`).
pub const MAX_ALL_FRAMES_RATE: f64 = 4.0;
/// Up to this rate every keyframe is sent (its `maxNonSkippingRate`);
/// above it keyframes are skipped so that a set number is shown per second.
pub const MAX_NON_SKIPPING_RATE: f64 = 6.0;

/// How the source produces data at a rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Playback {
    /// Every byte, in order; downstream plays it at `rate` (1.0, slow
    /// motion, or fast up to [`MAX_ALL_FRAMES_RATE`]).
    AllFrames { rate: f64 },
    /// Keyframes only, one piece per buffer, `step_ns` of presentation
    /// time apart at least (0: every keyframe).
    Keyframes {
        rate: f64,
        direction: Direction,
        step_ns: u64,
    },
}

impl Playback {
    /// How to play at `rate`: keyframes only backward, above
    /// [`MAX_ALL_FRAMES_RATE`], or when asked (`key_units`, the seek's
    /// `TRICKMODE_KEY_UNITS`); every frame otherwise. Above
    /// [`MAX_NON_SKIPPING_RATE`] at most `frames_per_second` keyframes are
    /// shown per second (0: all). An error says why a rate is refused.
    pub fn choose(rate: f64, key_units: bool, frames_per_second: u32) -> Result<Playback, String> {
        let speed = rate.abs();
        if !(MIN_RATE..=MAX_RATE).contains(&speed) {
            return Err(format!(
                "rate {rate} is outside what trick play takes ({MIN_RATE} to {MAX_RATE}, either way)"
            ));
        }
        if rate > 0.0 && rate <= MAX_ALL_FRAMES_RATE && !key_units {
            return Ok(Playback::AllFrames { rate });
        }
        let step_ns = if speed > MAX_NON_SKIPPING_RATE && frames_per_second > 0 {
            // Content seconds per shown frame, in ns.
            (speed * 1e9 / f64::from(frames_per_second)) as u64
        } else {
            0
        };
        let direction = if rate > 0.0 {
            Direction::Forward
        } else {
            Direction::Backward
        };
        Ok(Playback::Keyframes {
            rate,
            direction,
            step_ns,
        })
    }

    #[must_use]
    pub fn rate(&self) -> f64 {
        match *self {
            Playback::AllFrames { rate } | Playback::Keyframes { rate, .. } => rate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::tests::{SECOND, config, marked, start};
    use crate::ring::{Ring, SegmentStart};

    /// Three 2 s segments of 40 packets, a keyframe every 10 packets
    /// (0.5 s), 10 packets long; segment n's packets are marked 10 + n.
    fn indexed_ring(dir: &std::path::Path) -> Ring {
        let mut ring = Ring::open(config(dir)).expect("open");
        for n in 0..3u64 {
            ring.begin_segment(SegmentStart {
                ring_time: RingTime::from_ns(n * 2 * SECOND),
                ..start(false)
            })
            .expect("begin");
            ring.write(&marked(10 + n as u8, 40)).expect("write");
            for i in 0..4u64 {
                ring.add_keyframe(&Keyframe {
                    offset: i * 10 * PACKET_SIZE as u64,
                    ring_time: RingTime::from_ns(n * 2 * SECOND + i * SECOND / 2),
                    wall_time: crate::layout::WallTime::from_ms(1_700_000_000_000),
                    size: 10 * PACKET_SIZE as u32,
                    presentation_delay: crate::ts::timeline::Ticks90k::ZERO,
                    number: 0,
                });
            }
            ring.finish_segment(2 * SECOND).expect("finish");
        }
        // Finished faster than the playlists are rewritten: as the sink's
        // clock does a moment later.
        ring.publish_pending();
        ring
    }

    /// Walks `direction` from `from` in steps of `step`; the keyframes'
    /// presentation times in ms and the bytes read.
    fn walk(dir: &std::path::Path, from: u64, direction: Direction, step: u64) -> (Vec<u64>, u64) {
        let mut reader = RingReader::new(dir);
        let (mut at, mut first, mut shown, mut bytes) = (PresentationTime::from_ns(from), true, Vec::new(), 0);
        while let TrickOutcome::Keyframe(piece) = reader
            .read_keyframe(at, direction, if first { 0 } else { step.max(1) })
            .expect("read")
        {
            assert_eq!(
                piece.data.len(),
                10 * PACKET_SIZE,
                "the keyframe's packets, nothing else"
            );
            assert!(piece.data.chunks(PACKET_SIZE).all(|p| p[1] == piece.data[1]));
            shown.push(piece.presentation_time.ns() / 1_000_000);
            bytes += piece.bytes_read;
            at = piece.presentation_time;
            first = false;
        }
        (shown, bytes)
    }

    #[test]
    fn walks_keyframes_both_ways_and_ends_on_the_last() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _ring = indexed_ring(dir.path());
        let every: Vec<u64> = (0..12).map(|i| i * 500).collect();
        let (forward, bytes) = walk(dir.path(), 0, Direction::Forward, 0);
        assert_eq!(forward, every);
        assert_eq!(bytes, 12 * 10 * PACKET_SIZE as u64, "only the keyframes were read");
        let (backward, _) = walk(dir.path(), 6 * SECOND, Direction::Backward, 0);
        assert_eq!(backward, every.iter().rev().copied().collect::<Vec<_>>());
        // Skipping 1.5 s at a time: the walk still ends on the last keyframe.
        assert_eq!(
            walk(dir.path(), 0, Direction::Forward, 3 * SECOND / 2).0,
            vec![0, 1500, 3000, 4500, 5500]
        );
        assert_eq!(
            walk(dir.path(), 5_700_000_000, Direction::Backward, 3 * SECOND / 2).0,
            vec![5500, 4000, 2500, 1000, 0]
        );
        // From between keyframes: the next one that way.
        assert_eq!(walk(dir.path(), 1_200_000_000, Direction::Forward, 0).0[0], 1500);
        assert_eq!(walk(dir.path(), 1_200_000_000, Direction::Backward, 0).0[0], 1000);
    }

    #[test]
    fn rates_choose_the_way_frames_are_sent() {
        assert_eq!(Playback::choose(1.0, false, 8), Ok(Playback::AllFrames { rate: 1.0 }));
        assert_eq!(Playback::choose(0.25, false, 8), Ok(Playback::AllFrames { rate: 0.25 }));
        assert_eq!(Playback::choose(4.0, false, 8), Ok(Playback::AllFrames { rate: 4.0 }));
        let keyframes = |rate, step_ns| Playback::Keyframes {
            rate,
            direction: if rate > 0.0 {
                Direction::Forward
            } else {
                Direction::Backward
            },
            step_ns,
        };
        assert_eq!(Playback::choose(2.0, true, 8), Ok(keyframes(2.0, 0)));
        assert_eq!(Playback::choose(5.0, false, 8), Ok(keyframes(5.0, 0)));
        assert_eq!(Playback::choose(6.0, false, 8), Ok(keyframes(6.0, 0)));
        assert_eq!(Playback::choose(64.0, false, 8), Ok(keyframes(64.0, 8_000_000_000)));
        assert_eq!(Playback::choose(64.0, false, 0), Ok(keyframes(64.0, 0)));
        assert_eq!(Playback::choose(-1.0, false, 8), Ok(keyframes(-1.0, 0)));
        assert_eq!(Playback::choose(-16.0, false, 8), Ok(keyframes(-16.0, 2_000_000_000)));
        for refused in [0.05, -0.05, 65.0, -100.0, f64::NAN] {
            assert!(Playback::choose(refused, false, 8).is_err(), "{refused}");
        }
    }
}
