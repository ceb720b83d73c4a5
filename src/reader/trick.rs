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

use super::RingReader;
use crate::layout::index::{self, Keyframe};
use crate::layout::segment_file_name;
use crate::platform;
use crate::ts::packet::pcr_packet;
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
    pub ring_time_ns: u64,
    /// When the keyframe is presented.
    pub presentation_ns: u64,
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

/// Most bytes one keyframe may take: an index record with a larger size
/// is not believed.
const MAX_KEYFRAME_BYTES: u64 = 64 * 1024 * 1024;

impl RingReader {
    /// Reads the keyframe nearest presentation time `from` going
    /// `direction`, about `min_step_ns` away from it at least (strictly
    /// beyond it when 0), from the keyframe index. Segments without a usable index
    /// are passed over. Going forward, a keyframe whose bytes are not all
    /// in the file yet is not there yet.
    pub fn read_keyframe(&mut self, from: u64, direction: Direction, min_step_ns: u64) -> io::Result<TrickOutcome> {
        self.refresh()?;
        // Keyframes a GOP apart are not exactly a GOP apart in presentation
        // time: a step is taken with a tenth's slack, so that "every
        // second" does not become "every other second".
        let min_step_ns = min_step_ns - min_step_ns / 10;
        let candidates = self.candidates();
        let found = match direction {
            Direction::Forward => {
                let target = from.saturating_add(min_step_ns.max(1));
                let at = candidates.iter().rposition(|&(_, start)| start <= target).unwrap_or(0);
                candidates[at..].iter().find_map(|&(seq, _)| {
                    let index = self.segment_index(seq)?;
                    let k = *index::at_or_after(&index.keyframes, target)?;
                    Some((seq, index.start, k))
                })
            }
            Direction::Backward => {
                let target = from.saturating_sub(min_step_ns.max(1));
                let at = candidates.iter().rposition(|&(_, start)| start <= target);
                let Some(at) = at else { return Ok(TrickOutcome::Edge) };
                candidates[..=at].iter().rev().find_map(|&(seq, _)| {
                    let index = self.segment_index(seq)?;
                    let k = *index::at_or_before(&index.keyframes, target)?;
                    Some((seq, index.start, k))
                })
            }
        };
        let Some((seq, start, keyframe)) = found else {
            // A skipping step went past the end: the keyframe at the end
            // is still shown, so that the walk ends there.
            return if min_step_ns > 1 {
                self.read_keyframe(from, direction, 0)
            } else {
                Ok(TrickOutcome::Edge)
            };
        };
        match self.keyframe_piece(seq, &start, &keyframe) {
            Ok(Some(piece)) => {
                self.delivered += piece.bytes_read;
                self.trick_position_ns = Some(piece.presentation_ns);
                Ok(TrickOutcome::Keyframe(piece))
            }
            // Not all written yet (the newest keyframe of the open segment).
            Ok(None) => Ok(TrickOutcome::Edge),
            Err(e) => {
                let path = self.dir.join(segment_file_name(seq));
                self.events.push(super::ReaderEvent::ReadFailure {
                    path,
                    error: e.to_string(),
                });
                Ok(TrickOutcome::Edge)
            }
        }
    }

    /// The piece for `keyframe` of segment `seq` (whose index starts with
    /// `start`); `None` if its bytes are not all in the file yet.
    fn keyframe_piece(&self, seq: u64, start: &Keyframe, keyframe: &Keyframe) -> io::Result<Option<KeyframePiece>> {
        let mut file = platform::open_read_only(&self.dir.join(segment_file_name(seq)))?;
        let len = self.content_len(&file, seq)?;
        let size = u64::from(keyframe.size);
        let end = keyframe.offset.checked_add(size).filter(|_| size <= MAX_KEYFRAME_BYTES);
        let Some(end) = end.filter(|&end| end <= len) else {
            return Ok(None);
        };
        let head_len = u64::from(start.size).min(keyframe.offset) / PACKET_SIZE as u64 * PACKET_SIZE as u64;
        let mut head = vec![0u8; usize::try_from(head_len).map_err(io::Error::other)?];
        file.read_exact(&mut head)?;
        let mut unit = vec![0u8; usize::try_from(end - keyframe.offset).map_err(io::Error::other)?];
        file.seek(SeekFrom::Start(keyframe.offset))?;
        file.read_exact(&mut unit)?;
        let bytes_read = head_len + size;
        let Some(pid) = unit.get(..PACKET_SIZE).and_then(Packet::new).map(|p| p.pid()) else {
            return Ok(None);
        };
        // The clock at the keyframe, from its PTS and presentation delay,
        // in a packet of its own before it: the piece may hold no PCR of
        // its own, and without one a demuxer cannot time it.
        let pts = Packet::new(&unit[..PACKET_SIZE]).and_then(|p| p.pes_pts());
        let clock = pcr_pid(&head).zip(pts).map(|(pcr_pid, pts)| {
            let base = pts.wrapping_sub_signed(i64::from(keyframe.presentation_delay_90k)) & ((1 << 33) - 1);
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
            ring_time_ns: keyframe.ring_time_ns,
            presentation_ns: keyframe.presentation_ns(),
            bytes_read,
        }))
    }
}

/// The PCR PID of the first PMT among `head`'s packets (the tables at a
/// segment's head: a PAT, then the PMTs).
fn pcr_pid(head: &[u8]) -> Option<u16> {
    let packets = || head.chunks_exact(PACKET_SIZE).filter_map(Packet::new);
    let mut pat = SectionAssembler::default();
    let pmt_pid = packets().filter(|p| p.pid() == 0).find_map(|p| {
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
