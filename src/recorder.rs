//! The recorder: turns a byte stream into segments of the ring.
//!
//! It aligns packets, analyses each one, keeps the media timeline and decides
//! where segments are cut: at the first random-access point at or after
//! `segment-duration`, with the current PAT and PMT written first so that
//! every segment decodes on its own. It owns no GStreamer object, so the whole
//! recording logic is testable on plain bytes.

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::ring::{Ring, SegmentStart};
use crate::ts::analyzer::{AnalyzerStats, Unit};
use crate::ts::random_access::Verdict;
use crate::ts::timeline::{ClockSource, Step};
use crate::ts::{AlignerStats, PACKET_SIZE, Packet, PacketAligner, StreamAnalyzer, Timeline};

/// A segment is cut at the next packet, random-access point or not, once it
/// is this many times longer than `segment-duration`. This bounds segments
/// of streams whose keyframes cannot be found (scrambled video without
/// random_access_indicator, an unknown codec).
pub const FORCED_CUT_FACTOR: u64 = 3;

/// Packets held while the verdict on an access unit is pending; past this the
/// unit is taken as not random-access.
const MAX_HOLD: usize = 1024 * PACKET_SIZE;

/// Settings the recorder needs beyond the ring's.
#[derive(Debug, Clone, Copy)]
pub struct RecorderConfig {
    pub segment_duration_ns: u64,
    /// program_number to follow; `None` = the first program in the PAT.
    pub program: Option<u16>,
}

/// Things that happened that the element reports to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecorderEvent {
    /// The program's elementary streams became scrambled (`true`) or clear.
    Scrambling(bool),
}

/// Counters for the `stats` property.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecorderStats {
    pub buffers: u64,
    pub bytes_in: u64,
    /// Packets received before the first random-access point, not written.
    pub packets_before_random_access: u64,
    pub discontinuities: u64,
    pub forced_cuts: u64,
}

/// Accumulates packets and segment decisions; see the module documentation.
pub struct Recorder {
    aligner: PacketAligner,
    core: Core,
}

struct Core {
    config: RecorderConfig,
    ring: Ring,
    analyzer: StreamAnalyzer,
    timeline: Timeline,
    /// Timeline position where the open segment started.
    segment_start_ns: u64,
    /// Timeline position of the first packet, before any segment exists.
    first_packet_ns: Option<u64>,
    /// Packets of a due access unit whose verdict is pending.
    hold: Vec<u8>,
    holding: bool,
    /// Cut at the next random-access point regardless of duration.
    cut_asap: bool,
    /// The next segment gets EXT-X-DISCONTINUITY.
    pending_discontinuity: bool,
    /// Wall clock (ms since epoch) at timeline position `anchor.1`.
    anchor: Option<(i64, u64)>,
    stats: RecorderStats,
    events: Vec<RecorderEvent>,
    error: Option<io::Error>,
}

impl Recorder {
    /// A recorder writing into `ring`. If the ring already holds segments
    /// (adopted after a restart), the first new segment is a discontinuity.
    #[must_use]
    pub fn new(ring: Ring, config: RecorderConfig) -> Self {
        let adopted = ring.segments().len() > 0;
        Recorder {
            aligner: PacketAligner::new(),
            core: Core {
                config,
                ring,
                analyzer: StreamAnalyzer::new(config.program),
                timeline: Timeline::new(),
                segment_start_ns: 0,
                first_packet_ns: None,
                hold: Vec::new(),
                holding: false,
                cut_asap: false,
                pending_discontinuity: adopted,
                anchor: None,
                stats: RecorderStats::default(),
                events: Vec::new(),
                error: None,
            },
        }
    }

    #[must_use]
    pub fn ring(&self) -> &Ring {
        &self.core.ring
    }

    #[must_use]
    pub fn stats(&self) -> RecorderStats {
        self.core.stats
    }

    #[must_use]
    pub fn aligner_stats(&self) -> AlignerStats {
        self.aligner.stats()
    }

    #[must_use]
    pub fn analyzer_stats(&self) -> AnalyzerStats {
        self.core.analyzer.stats()
    }

    #[must_use]
    pub fn clock_source(&self) -> ClockSource {
        self.core.timeline.source()
    }

    /// Media time recorded so far, jumps excluded.
    #[must_use]
    pub fn position_ns(&self) -> u64 {
        self.core.timeline.position_ns()
    }

    /// Events since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<RecorderEvent> {
        std::mem::take(&mut self.core.events)
    }

    /// Feeds one input buffer. `buffer_time_ns` is its timestamp, if it has one.
    pub fn push(&mut self, data: &[u8], buffer_time_ns: Option<u64>) -> io::Result<()> {
        let core = &mut self.core;
        core.stats.buffers += 1;
        core.stats.bytes_in += data.len() as u64;
        if let Some(t) = buffer_time_ns
            && core.timeline.on_buffer_time(t) == Step::Jump
        {
            core.on_jump();
        }
        self.aligner.push(data, |run| core.consume(run));
        core.take_error()
    }

    /// The input was flushed: whatever comes next is unrelated to what came
    /// before. Held-back bytes are dropped (and counted by the aligner).
    pub fn flush(&mut self) -> io::Result<()> {
        self.aligner.reset();
        let core = &mut self.core;
        core.release_hold();
        core.analyzer.reset_continuity();
        core.timeline.rebase();
        core.on_jump();
        core.take_error()
    }

    /// End of stream: writes what is held, closes the last segment and marks
    /// the playlist as ended.
    pub fn finish(&mut self) -> io::Result<()> {
        let core = &mut self.core;
        self.aligner.finish(|run| core.consume(run));
        core.release_hold();
        core.take_error()?;
        let duration = core
            .timeline
            .end_position_ns()
            .saturating_sub(core.segment_start_ns);
        core.ring.close(duration)
    }
}

impl Core {
    fn take_error(&mut self) -> io::Result<()> {
        self.error.take().map_or(Ok(()), Err)
    }

    fn on_jump(&mut self) {
        self.stats.discontinuities += 1;
        self.pending_discontinuity = true;
        self.cut_asap = true;
        self.anchor = None;
    }

    /// Handles a run of whole packets from the aligner.
    fn consume(&mut self, run: &[u8]) {
        // `from` is the start of the part of `run` not yet written or held.
        let mut from = 0;
        for (i, bytes) in run.chunks_exact(PACKET_SIZE).enumerate() {
            let at = i * PACKET_SIZE;
            let Some(packet) = Packet::new(bytes) else {
                continue;
            };
            self.timeline.on_packet();
            let class = self.analyzer.analyze(&packet);
            if let Some((pcr, discontinuity)) = class.pcr
                && self.timeline.on_pcr(pcr, discontinuity) == Step::Jump
            {
                self.on_jump();
            }
            if let Some(scrambled) = class.scrambling_changed {
                self.events.push(RecorderEvent::Scrambling(scrambled));
            }
            if self.first_packet_ns.is_none() {
                self.first_packet_ns = Some(self.timeline.position_ns());
            }

            if self.holding {
                self.hold.extend_from_slice(bytes);
                from = at + PACKET_SIZE;
                match class.unit {
                    Unit::Resolved(v) => self.resolve_hold(v == Verdict::RandomAccess),
                    Unit::Start(v) => {
                        // A new unit began before the previous one was settled:
                        // the previous one was not a random-access point.
                        let len = self.hold.len() - PACKET_SIZE;
                        self.hold.truncate(len);
                        self.resolve_hold(false);
                        self.on_unit_start(v, bytes);
                    }
                    Unit::Inside if self.hold.len() >= MAX_HOLD => self.resolve_hold(false),
                    Unit::Inside => {}
                }
                continue;
            }

            let due = self.cut_due();
            let forced = self.forced_cut_due();
            match class.unit {
                Unit::Start(v) if due && v != Verdict::NotRandomAccess || forced => {
                    self.write(&run[from..at]);
                    from = at;
                    if v == Verdict::Undecided && !forced {
                        self.hold.extend_from_slice(bytes);
                        self.holding = true;
                        from = at + PACKET_SIZE;
                    } else {
                        if forced && v != Verdict::RandomAccess {
                            self.stats.forced_cuts += 1;
                        }
                        self.cut();
                    }
                }
                _ if forced => {
                    self.write(&run[from..at]);
                    from = at;
                    self.stats.forced_cuts += 1;
                    self.cut();
                }
                _ => {}
            }
        }
        if !self.holding {
            self.write(&run[from..]);
        }
    }

    /// Handles a unit start that arrived while resolving a hold.
    fn on_unit_start(&mut self, v: Verdict, bytes: &[u8]) {
        if self.cut_due() && v != Verdict::NotRandomAccess {
            if v == Verdict::Undecided {
                self.hold.extend_from_slice(bytes);
                self.holding = true;
                return;
            }
            self.cut();
        }
        self.write(bytes);
    }

    fn resolve_hold(&mut self, random_access: bool) {
        self.holding = false;
        if random_access {
            self.cut();
        }
        let hold = std::mem::take(&mut self.hold);
        self.write(&hold);
        self.hold = hold;
        self.hold.clear();
    }

    /// Writes out held packets without deciding anything (flush, EOS).
    fn release_hold(&mut self) {
        if self.holding {
            self.resolve_hold(false);
        }
    }

    /// A random-access point here would start a new segment.
    fn cut_due(&self) -> bool {
        if !self.ring.is_segment_open() {
            return true;
        }
        self.cut_asap
            || self.timeline.position_ns() - self.segment_start_ns
                >= self.config.segment_duration_ns
    }

    /// No random-access point came for too long: cut anyway.
    fn forced_cut_due(&self) -> bool {
        let limit = self
            .config
            .segment_duration_ns
            .saturating_mul(FORCED_CUT_FACTOR);
        let now = self.timeline.position_ns();
        if self.ring.is_segment_open() {
            now - self.segment_start_ns >= limit
        } else {
            self.first_packet_ns
                .is_some_and(|first| now - first >= limit)
        }
    }

    /// Closes the open segment (if any) and opens the next one, starting
    /// with the latest PAT and PMT.
    fn cut(&mut self) {
        let now = self.timeline.position_ns();
        if self.ring.is_segment_open()
            && let Err(e) = self.ring.finish_segment(now - self.segment_start_ns)
        {
            self.error.get_or_insert(e);
        }
        let wall_now = wall_clock_ms();
        let &mut (anchor_ms, anchor_ns) = self.anchor.get_or_insert((wall_now, now));
        let start = SegmentStart {
            program_date_time_ms: anchor_ms
                + i64::try_from((now - anchor_ns) / 1_000_000).unwrap_or(0),
            discontinuity: self.pending_discontinuity,
        };
        if let Err(e) = self.ring.begin_segment(start) {
            self.error.get_or_insert(e);
            return;
        }
        self.segment_start_ns = now;
        self.pending_discontinuity = false;
        self.cut_asap = false;
        let tables: Vec<u8> = self.analyzer.table_packets().flatten().copied().collect();
        self.write(&tables);
    }

    fn write(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if !self.ring.is_segment_open() {
            self.stats.packets_before_random_access += (data.len() / PACKET_SIZE) as u64;
            return;
        }
        if let Err(e) = self.ring.write(data) {
            self.error.get_or_insert(e);
        }
    }
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{Retention, RingConfig};
    use crate::ts::packet::tests::PacketBuilder;
    use crate::ts::psi::tests::{pat_section, pmt_section, psi_packet};
    use crate::ts::random_access::tests::{H264_IDR, H264_P, pes};
    use crate::ts::timeline::PCR_HZ;

    const SECOND: u64 = 1_000_000_000;

    /// A synthetic 25 fps program: PAT+PMT every 10 frames, 3 packets per
    /// frame, a keyframe every `gop` frames, PCR on every frame.
    struct Stream {
        gop: u32,
        frame: u32,
        pcr_base: u64,
        cc: [u8; 3],
        /// Split the keyframe's start code across its first two packets.
        split_keyframe: bool,
        scrambled: bool,
        with_pcr: bool,
    }

    impl Stream {
        fn new(gop: u32) -> Self {
            Stream {
                gop,
                frame: 0,
                pcr_base: PCR_HZ,
                cc: [0; 3],
                split_keyframe: false,
                scrambled: false,
                with_pcr: true,
            }
        }

        fn next_frame(&mut self) -> Vec<u8> {
            let mut out = Vec::new();
            if self.frame.is_multiple_of(10) {
                out.extend_from_slice(&psi_packet(0, &pat_section(1, 0x100), self.cc[0]));
                out.extend_from_slice(&psi_packet(
                    0x100,
                    &pmt_section(1, 0x101, &[(0x1B, 0x101)]),
                    self.cc[1],
                ));
                self.cc[0] = (self.cc[0] + 1) & 0xF;
                self.cc[1] = (self.cc[1] + 1) & 0xF;
            }
            let key = self.frame.is_multiple_of(self.gop);
            let es = pes(if key { H264_IDR } else { H264_P });
            let cut = if key && self.split_keyframe {
                16
            } else {
                es.len()
            };
            let mut first = es[..cut].to_vec();
            first.resize(if cut < es.len() { cut } else { 150 }, 0x11);
            let mut payloads = vec![first, es[cut..].to_vec(), vec![0x22; 184]];
            payloads.retain(|p| !p.is_empty());
            while payloads.len() < 3 {
                payloads.push(vec![0x33; 184]);
            }
            for (i, payload) in payloads.into_iter().enumerate() {
                let mut b = PacketBuilder::new(0x101);
                b.pusi = i == 0;
                b.cc = self.cc[2];
                self.cc[2] = (self.cc[2] + 1) & 0xF;
                b.scrambling = if self.scrambled { 2 } else { 0 };
                if i == 0 && self.with_pcr {
                    b.pcr = Some(self.pcr_base + u64::from(self.frame) * PCR_HZ / 25);
                }
                b.payload = payload;
                out.extend_from_slice(&b.build());
            }
            self.frame += 1;
            out
        }

        fn frames(&mut self, n: u32) -> Vec<u8> {
            (0..n).flat_map(|_| self.next_frame()).collect()
        }
    }

    fn recorder(dir: &std::path::Path, segment: u64) -> Recorder {
        let ring = Ring::open(RingConfig {
            dir: dir.to_owned(),
            retention: Retention::default(),
            playlist_length: 0,
            segment_duration_ns: segment,
            sync_on_rotate: false,
        })
        .expect("open ring");
        Recorder::new(
            ring,
            RecorderConfig {
                segment_duration_ns: segment,
                program: None,
            },
        )
    }

    fn segment_files(dir: &std::path::Path) -> Vec<Vec<u8>> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "ts"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read(p).expect("read"))
            .collect()
    }

    fn pid(p: &[u8]) -> u16 {
        u16::from(p[1] & 0x1F) << 8 | u16::from(p[2])
    }

    /// Every segment: PAT, PMT, then the keyframe's first packet.
    fn assert_segments_start_decodable(files: &[Vec<u8>]) {
        for (i, f) in files.iter().enumerate() {
            assert_eq!(f.len() % PACKET_SIZE, 0);
            let pkts: Vec<&[u8]> = f.chunks(PACKET_SIZE).collect();
            assert_eq!(
                (pid(pkts[0]), pid(pkts[1]), pid(pkts[2])),
                (0, 0x100, 0x101),
                "segment {i}"
            );
            let p = Packet::new(pkts[2]).expect("packet");
            assert!(
                p.payload_unit_start(),
                "segment {i} does not start at a PES"
            );
            // The start code may straddle into the next packet of the PES.
            let mut es = p.payload().to_vec();
            es.extend_from_slice(Packet::new(pkts[3]).expect("packet").payload());
            assert!(
                es.windows(4).any(|w| w == [0, 0, 1, 0x67]),
                "segment {i} does not start at a keyframe"
            );
        }
    }

    #[test]
    fn cuts_at_keyframes_after_the_duration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rec = recorder(dir.path(), 2 * SECOND);
        let mut s = Stream::new(25); // 1 s GOP
        rec.push(&s.frames(250), None).expect("push"); // 10 s
        rec.finish().expect("finish");
        let files = segment_files(dir.path());
        assert_eq!(files.len(), 5);
        assert_segments_start_decodable(&files);
        let durations: Vec<u64> = rec.ring().segments().map(|s| s.duration_ns).collect();
        assert_eq!(&durations[..4], &[2 * SECOND; 4]);
    }

    #[test]
    fn keyframe_detected_across_packets_still_cuts_before_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rec = recorder(dir.path(), 2 * SECOND);
        let mut s = Stream::new(25);
        s.split_keyframe = true;
        let data = s.frames(250);
        for chunk in data.chunks(1000) {
            rec.push(chunk, None).expect("push");
        }
        rec.finish().expect("finish");
        let files = segment_files(dir.path());
        assert_eq!(files.len(), 5);
        assert_segments_start_decodable(&files);
        // Nothing lost or duplicated beyond the PAT/PMT heads.
        let total: usize = files.iter().map(Vec::len).sum();
        assert_eq!(total, data.len() + 4 * 2 * PACKET_SIZE);
    }

    #[test]
    fn pcr_jump_starts_a_discontinuous_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rec = recorder(dir.path(), 2 * SECOND);
        let mut s = Stream::new(25);
        rec.push(&s.frames(110), None).expect("push");
        s.pcr_base = 3600 * PCR_HZ; // encoder restart: the clock jumps an hour
        rec.push(&s.frames(140), None).expect("push");
        rec.finish().expect("finish");
        let segs: Vec<_> = rec.ring().segments().cloned().collect();
        let flagged: Vec<u64> = segs
            .iter()
            .filter(|s| s.discontinuity)
            .map(|s| s.sequence)
            .collect();
        assert_eq!(flagged.len(), 1, "{segs:?}");
        let text = std::fs::read_to_string(dir.path().join("index.m3u8")).expect("playlist");
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
        // The hour is not counted as recorded time.
        let total: u64 = segs.iter().map(|s| s.duration_ns).sum();
        assert!(total < 11 * SECOND, "window of {total} ns");
        assert_segments_start_decodable(&segment_files(dir.path()));
    }

    #[test]
    fn unparseable_keyframes_still_give_bounded_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rec = recorder(dir.path(), SECOND);
        let mut s = Stream::new(25);
        s.scrambled = true; // no RAI and scrambled payload: no keyframe can be found
        rec.push(&s.frames(500), None).expect("push"); // 20 s
        rec.finish().expect("finish");
        assert!(rec.stats().forced_cuts >= 5, "{:?}", rec.stats());
        let longest = rec
            .ring()
            .segments()
            .map(|s| s.duration_ns)
            .max()
            .unwrap_or(0);
        assert!(
            longest <= FORCED_CUT_FACTOR * SECOND + SECOND / 25,
            "segment of {longest} ns"
        );
        assert_eq!(rec.take_events(), vec![RecorderEvent::Scrambling(true)]);
    }

    #[test]
    fn without_any_clock_the_byte_count_drives_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rec = recorder(dir.path(), SECOND / 10);
        let mut s = Stream::new(5);
        s.with_pcr = false;
        let data = s.frames(1000);
        rec.push(&data, None).expect("push");
        rec.finish().expect("finish");
        assert_eq!(rec.clock_source(), ClockSource::ByteRate);
        let segs: Vec<_> = rec.ring().segments().cloned().collect();
        // About 600 kB at 8 Mbit/s: 0.6 s, six 0.1 s segments.
        assert!(segs.len() >= 5, "{} segments", segs.len());
        // Every byte counts at the default 8 Mbit/s.
        let total: u64 = segs.iter().map(|s| s.duration_ns).sum();
        let expected = data.len() as u64 * 8 * SECOND / crate::ts::timeline::DEFAULT_BITRATE;
        assert!(
            total.abs_diff(expected) < SECOND / 100,
            "{total} vs {expected}"
        );
        assert_segments_start_decodable(&segment_files(dir.path()));
    }
}
