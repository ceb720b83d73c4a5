// SPDX-License-Identifier: MPL-2.0
//! Per-packet analysis: everything the ring needs to know about a packet,
//! computed from its header and, for the video stream, the first bytes of each
//! access unit.

use super::packet::{NULL_PID, PACKET_SIZE, PAT_PID, Packet, Pid};
use super::psi::{Pat, Pmt, ProgramNumber, SectionAssembler, StreamKind, parse_pat, parse_pmt};
use super::random_access::{RandomAccessDetector, Verdict};
use super::timeline::Pcr;

/// Consecutive packets needed to change the scrambled/clear state, so that
/// one odd packet does not toggle it.
pub const SCRAMBLING_HYSTERESIS: u32 = 16;

/// Where a packet stands with respect to access units on the cut PID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Not the start of an access unit, nor the packet that resolved one.
    Inside,
    /// This packet starts an access unit; the verdict may still be pending.
    Start(Verdict),
    /// This packet settled the verdict on the access unit started earlier.
    Resolved(Verdict),
}

/// What the ring needs to know about one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketClass {
    pub unit: Unit,
    /// A PCR on the program's PCR PID, with its discontinuity_indicator.
    pub pcr: Option<(Pcr, bool)>,
    /// `Some(true)` when the program just became scrambled, `Some(false)`
    /// when it became clear again.
    pub scrambling_changed: Option<bool>,
}

/// For each continuity counter, the four that follow it, a nibble each, the
/// first in the lowest: what four packets in a row on one PID carry.
const NEXT_FOUR_COUNTERS: [u32; 16] = {
    let mut table = [0; 16];
    let mut c = 0;
    while c < 16 {
        let mut k = 0;
        while k < 4 {
            table[c] |= (((c + 1 + k) & 0x0F) as u32) << (4 * k);
            k += 1;
        }
        c += 1;
    }
    table
};

/// Counters mirroring what the analyzer saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AnalyzerStats {
    pub continuity_errors: u64,
    pub transport_errors: u64,
    pub scrambled_packets: u64,
    pub random_access_points: u64,
}

/// Another program's PMT: its PID, the section being assembled there and
/// the packets of the latest complete one.
struct OtherPmt {
    pid: Pid,
    asm: SectionAssembler,
    packets: Vec<[u8; PACKET_SIZE]>,
}

/// See the module documentation.
pub struct StreamAnalyzer {
    program: Option<ProgramNumber>,
    pat_asm: SectionAssembler,
    pmt_asm: SectionAssembler,
    pat: Option<Pat>,
    pmt: Option<Pmt>,
    pmt_pid: Option<Pid>,
    pat_packets: Vec<[u8; PACKET_SIZE]>,
    pmt_packets: Vec<[u8; PACKET_SIZE]>,
    pcr_pid: Option<Pid>,
    /// The other programs' PMTs, in PAT order: each segment head carries
    /// them too, so that every program of a multiplex starts with its table.
    other_pmts: Vec<OtherPmt>,
    /// Bit per PID: the PMT PID of another program (for `skip_plain`).
    other_pmt_pids: Box<[u64; 128]>,
    /// PID whose unit starts are cut points, with its detector if it is video.
    cut_pid: Option<Pid>,
    detector: Option<RandomAccessDetector>,
    /// Last continuity counter per PID; 0xFF = none seen yet.
    last_cc: Box<[u8; 8192]>,
    scrambled: bool,
    scrambling_run: u32,
    stats: AnalyzerStats,
}

impl StreamAnalyzer {
    /// `program`: the program_number to follow, or `None` for the first in the PAT.
    #[must_use]
    pub fn new(program: Option<ProgramNumber>) -> Self {
        StreamAnalyzer {
            program,
            pat_asm: SectionAssembler::default(),
            pmt_asm: SectionAssembler::default(),
            pat: None,
            pmt: None,
            pmt_pid: None,
            pat_packets: Vec::new(),
            pmt_packets: Vec::new(),
            pcr_pid: None,
            other_pmts: Vec::new(),
            other_pmt_pids: Box::new([0; 128]),
            cut_pid: None,
            detector: None,
            last_cc: Box::new([0xFF; 8192]),
            scrambled: false,
            scrambling_run: 0,
            stats: AnalyzerStats::default(),
        }
    }

    #[must_use]
    pub fn stats(&self) -> AnalyzerStats {
        self.stats
    }

    #[must_use]
    pub fn pmt(&self) -> Option<&Pmt> {
        self.pmt.as_ref()
    }

    #[must_use]
    pub fn is_scrambled(&self) -> bool {
        self.scrambled
    }

    /// The latest PAT and PMT packets, verbatim, to start a segment with:
    /// the PAT, the followed program's PMT, then every other program's
    /// latest PMT in PAT order. Empty until the tables have been seen.
    pub fn table_packets(&self) -> impl Iterator<Item = &[u8; PACKET_SIZE]> {
        self.pat_packets
            .iter()
            .chain(self.pmt_packets.iter())
            .chain(self.other_pmts.iter().flat_map(|o| o.packets.iter()))
    }

    fn is_other_pmt_pid(&self, pid: Pid) -> bool {
        self.other_pmt_pids[pid.index() / 64] & (1 << (pid.index() % 64)) != 0
    }

    /// Forgets continuity state (after a flush or a gap in the input), so the
    /// next packets are not counted as continuity errors.
    pub fn reset_continuity(&mut self) {
        self.last_cc.fill(0xFF);
        self.pat_asm.reset();
        self.pmt_asm.reset();
        for other in &mut self.other_pmts {
            other.asm.reset();
        }
    }

    /// Analyzes one packet.
    pub fn analyze(&mut self, p: &Packet<'_>) -> PacketClass {
        let mut class = PacketClass {
            unit: Unit::Inside,
            pcr: None,
            scrambling_changed: None,
        };
        let pid = p.pid();
        if pid == NULL_PID {
            return class;
        }
        if p.transport_error() {
            // The header itself may be wrong: count it, trust nothing in it.
            self.stats.transport_errors += 1;
            return class;
        }
        self.check_continuity(p, pid);

        if let Some(pcr) = p.pcr() {
            if self.pcr_pid.is_none() && self.pmt.is_none() {
                self.pcr_pid = Some(pid);
            }
            if self.pcr_pid == Some(pid) {
                class.pcr = Some((Pcr::from_ticks(pcr), p.discontinuity_indicator()));
            }
        }

        if pid == PAT_PID {
            self.on_pat_packet(p);
            return class;
        }
        if Some(pid) == self.pmt_pid {
            self.on_pmt_packet(p);
            return class;
        }
        if self.is_other_pmt_pid(pid) {
            if let Some(other) = self.other_pmts.iter_mut().find(|o| o.pid == pid)
                && let Some(section) = other.asm.push(p)
                && parse_pmt(section.bytes).is_some()
            {
                other.packets.clear();
                other.packets.extend_from_slice(section.packets);
            }
            return class;
        }
        if p.has_payload() && pid.value() >= 0x20 {
            class.scrambling_changed = self.track_scrambling(p.scrambling_control() != 0);
        }
        class.unit = self.classify_unit(p, pid);
        if matches!(
            class.unit,
            Unit::Start(Verdict::RandomAccess) | Unit::Resolved(Verdict::RandomAccess)
        ) {
            self.stats.random_access_points += 1;
        }
        class
    }

    /// Counts the leading packets of `run` (whole packets, at most `max`)
    /// that need nothing beyond continuity counting, and counts them: clear,
    /// payload-only packets that start no unit and carry no table, on a PID
    /// whose current unit is already settled. That is nearly every packet of
    /// a stream, and the one loop here costs a few instructions each where
    /// [`Self::analyze`] costs a few dozen. The first packet that needs more
    /// ends the count and is left for `analyze`; every packet counted here
    /// leaves the analyzer exactly as `analyze` would have, and `analyze`
    /// would have classified it [`Unit::Inside`] with nothing else to report.
    pub fn skip_plain(&mut self, run: &[u8], max: usize) -> usize {
        // Clear packets would move a scrambled program towards clear.
        if self.scrambled {
            return 0;
        }
        let pmt_pid = self.pmt_pid.map_or(u32::MAX, u32::from);
        // Packets of a unit still being scanned feed the detector.
        let scanning_pid = match (self.cut_pid, &self.detector) {
            (Some(pid), Some(d)) if d.verdict() == Verdict::Undecided => u32::from(pid),
            _ => u32::MAX,
        };
        let run = &run[..run.len().min(max.saturating_mul(PACKET_SIZE))];
        let total = run.len() / PACKET_SIZE;
        let mut elementary = false;
        let mut errors = 0;
        // The PID of the previous packet and its counter stay in registers:
        // runs of one PID are the rule, so the checks on a PID and the
        // counter table are only touched when it changes. `same` is the
        // previous packet's header without its counter: a packet that
        // matches it is plain for the same reasons and needs only the
        // counter check.
        let mut pid = u32::MAX;
        // u32::MAX matches no header with its counter masked out.
        let mut same = u32::MAX;
        let mut last_cc = 0u8;
        // Index of the next packet to examine: when the loop ends, how many
        // packets were counted (the one that ended it is not).
        let mut i = 0;
        while i < total {
            // Four packets at once where they continue the current PID with
            // the counter advancing by one each, as nearly all do: each
            // header against the current one without its counter, the four
            // counters against the four expected, one branch. Anything else
            // (a duplicate, a counter error, another PID, a flag) is left to
            // the packet-by-packet path below, which decides it as before.
            if same != u32::MAX
                && let Some(group) = run
                    .get(i * PACKET_SIZE..(i + 4) * PACKET_SIZE)
                    .and_then(|g| <&[u8; 4 * PACKET_SIZE]>::try_from(g).ok())
            {
                // The header's bits that differ from `same`: its counter alone
                // when nothing else changed.
                let x = |k: usize| {
                    let at = k * PACKET_SIZE;
                    u32::from_be_bytes([group[at], group[at + 1], group[at + 2], group[at + 3]]) ^ same
                };
                let (x0, x1, x2, x3) = (x(0), x(1), x(2), x(3));
                let other_bits = (x0 | x1 | x2 | x3) & !0x0F;
                let counters = x0 | x1 << 4 | x2 << 8 | x3 << 12;
                if other_bits | (counters ^ NEXT_FOUR_COUNTERS[usize::from(last_cc & 0x0F)]) == 0 {
                    last_cc = (x3 & 0x0F) as u8;
                    i += 4;
                    continue;
                }
            }
            let at = i * PACKET_SIZE;
            let header = u32::from_be_bytes([run[at], run[at + 1], run[at + 2], run[at + 3]]);
            let cc = (header & 0x0F) as u8;
            if header & !0x0F == same {
                // Accepts the counter repeated (a duplicate packet) or advanced by one.
                errors += u64::from(cc.wrapping_sub(last_cc) & 0x0F > 1);
                last_cc = cc;
                i += 1;
                continue;
            }
            // Sync byte; no transport error, no unit start; clear; payload
            // without adaptation field (so no PCR and no discontinuity flag).
            if header & 0xFF_C0_00_F0 != 0x47_00_00_10 {
                break;
            }
            if pid != u32::MAX {
                self.last_cc[pid as usize] = last_cc;
                pid = u32::MAX;
                same = u32::MAX;
            }
            let packet_pid = (header >> 8) & 0x1FFF;
            if packet_pid == u32::from(NULL_PID) {
                i += 1;
                continue;
            }
            if packet_pid == u32::from(PAT_PID)
                || packet_pid == pmt_pid
                || packet_pid == scanning_pid
                || self.other_pmt_pids[(packet_pid / 64) as usize] & (1 << (packet_pid % 64)) != 0
            {
                break;
            }
            let stored = self.last_cc[packet_pid as usize];
            errors += u64::from(stored != 0xFF && cc.wrapping_sub(stored) & 0x0F > 1);
            pid = packet_pid;
            same = header & !0x0F;
            last_cc = cc;
            elementary |= pid >= 0x20;
            i += 1;
        }
        if pid != u32::MAX {
            self.last_cc[pid as usize] = last_cc;
        }
        self.stats.continuity_errors += errors;
        if elementary {
            // What a clear packet does to the scrambling hysteresis.
            self.scrambling_run = 0;
        }
        i
    }

    fn classify_unit(&mut self, p: &Packet<'_>, pid: Pid) -> Unit {
        match self.cut_pid {
            Some(cut) if cut != pid => return Unit::Inside,
            None if !p.payload_unit_start() || pid.value() < 0x20 => return Unit::Inside,
            // Without a PMT only the multiplexer's flag can be trusted; the
            // recorder's forced cut covers streams that never send tables.
            None => {
                return Unit::Start(if p.random_access_indicator() {
                    Verdict::RandomAccess
                } else {
                    Verdict::NotRandomAccess
                });
            }
            Some(_) => {}
        }
        let Some(detector) = self.detector.as_mut() else {
            // A program without video: every PES start is a cut point.
            return if p.payload_unit_start() {
                Unit::Start(Verdict::RandomAccess)
            } else {
                Unit::Inside
            };
        };
        if p.scrambling_control() != 0 {
            // Scrambled payload cannot be parsed; only the multiplexer's flag counts.
            return if p.payload_unit_start() {
                Unit::Start(if p.random_access_indicator() {
                    Verdict::RandomAccess
                } else {
                    Verdict::NotRandomAccess
                })
            } else {
                Unit::Inside
            };
        }
        if p.payload_unit_start() {
            let v = detector.start(p.payload());
            if p.random_access_indicator() {
                return Unit::Start(Verdict::RandomAccess);
            }
            return Unit::Start(v);
        }
        if detector.verdict() == Verdict::Undecided {
            let v = detector.feed(p.payload());
            if v != Verdict::Undecided {
                return Unit::Resolved(v);
            }
        }
        Unit::Inside
    }

    fn check_continuity(&mut self, p: &Packet<'_>, pid: Pid) {
        let slot = &mut self.last_cc[pid.index()];
        let cc = p.continuity_counter();
        if !p.has_payload() {
            return; // the counter only advances with payload
        }
        if *slot != 0xFF && !p.discontinuity_indicator() && cc != (*slot + 1) & 0x0F && cc != *slot {
            self.stats.continuity_errors += 1;
            if pid == PAT_PID {
                self.pat_asm.reset();
            } else if Some(pid) == self.pmt_pid {
                self.pmt_asm.reset();
            }
        }
        *slot = cc;
    }

    fn track_scrambling(&mut self, scrambled: bool) -> Option<bool> {
        if scrambled {
            self.stats.scrambled_packets += 1;
        }
        if scrambled == self.scrambled {
            self.scrambling_run = 0;
            return None;
        }
        self.scrambling_run += 1;
        if self.scrambling_run < SCRAMBLING_HYSTERESIS {
            return None;
        }
        self.scrambling_run = 0;
        self.scrambled = scrambled;
        Some(scrambled)
    }

    fn on_pat_packet(&mut self, p: &Packet<'_>) {
        let Some(section) = self.pat_asm.push(p) else {
            return;
        };
        let Some(pat) = parse_pat(section.bytes) else {
            return;
        };
        self.pat_packets.clear();
        self.pat_packets.extend_from_slice(section.packets);
        let entry = pat
            .programs
            .iter()
            .find(|e| self.program.is_none_or(|n| n == e.program_number))
            .copied();
        let new_pid = entry.map(|e| e.pmt_pid);
        if new_pid != self.pmt_pid {
            self.pmt_pid = new_pid;
            self.pmt = None;
            self.pmt_packets.clear();
            self.pmt_asm = SectionAssembler::default();
        }
        // The other programs, in PAT order; a PMT already seen is kept.
        let others: Vec<Pid> = pat
            .programs
            .iter()
            .map(|e| e.pmt_pid)
            .filter(|&pid| Some(pid) != new_pid && pid != PAT_PID && pid != NULL_PID)
            .collect();
        if others.iter().ne(self.other_pmts.iter().map(|o| &o.pid)) {
            let mut previous = std::mem::take(&mut self.other_pmts);
            self.other_pmt_pids.fill(0);
            for pid in others {
                let kept = previous
                    .iter()
                    .position(|o| o.pid == pid)
                    .map(|i| previous.swap_remove(i));
                self.other_pmts.push(kept.unwrap_or(OtherPmt {
                    pid,
                    asm: SectionAssembler::default(),
                    packets: Vec::new(),
                }));
                self.other_pmt_pids[pid.index() / 64] |= 1 << (pid.index() % 64);
            }
        }
        self.pat = Some(pat);
    }

    fn on_pmt_packet(&mut self, p: &Packet<'_>) {
        let Some(section) = self.pmt_asm.push(p) else {
            return;
        };
        let Some(pmt) = parse_pmt(section.bytes) else {
            return;
        };
        if self.program.is_some_and(|n| n != pmt.program_number) {
            return;
        }
        self.pmt_packets.clear();
        self.pmt_packets.extend_from_slice(section.packets);
        if self.pmt.as_ref() == Some(&pmt) {
            return;
        }
        self.pcr_pid = Some(pmt.pcr_pid);
        match pmt.video() {
            Some((pid, codec)) => {
                if self.cut_pid != Some(pid) || self.detector.as_ref().map(|d| d.codec()) != Some(codec) {
                    self.detector = Some(RandomAccessDetector::new(codec));
                }
                self.cut_pid = Some(pid);
            }
            None => {
                self.detector = None;
                self.cut_pid = pmt
                    .streams
                    .iter()
                    .find(|es| es.kind() == StreamKind::Audio)
                    .or_else(|| pmt.streams.first())
                    .map(|es| es.pid);
            }
        }
        self.pmt = Some(pmt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::packet::tests::PacketBuilder;
    use crate::ts::psi::tests::{pat_section, pmt_section, psi_packet};
    use crate::ts::random_access::tests::{H264_IDR, H264_P, pes};

    fn analyze_all(a: &mut StreamAnalyzer, packets: &[[u8; PACKET_SIZE]]) -> Vec<PacketClass> {
        packets
            .iter()
            .map(|b| a.analyze(&Packet::new(b).expect("packet")))
            .collect()
    }

    fn video(pusi: bool, cc: u8, payload: &[u8], rai: bool) -> [u8; PACKET_SIZE] {
        let mut b = PacketBuilder::new(0x101);
        b.pusi = pusi;
        b.cc = cc;
        b.rai = rai;
        b.payload = payload.to_vec();
        b.build()
    }

    fn tables() -> Vec<[u8; PACKET_SIZE]> {
        vec![
            psi_packet(0, &pat_section(1, 0x100), 0),
            psi_packet(0x100, &pmt_section(1, 0x101, &[(0x1B, 0x101), (0x0F, 0x102)]), 0),
        ]
    }

    #[test]
    fn finds_keyframes_from_the_elementary_stream() {
        let mut a = StreamAnalyzer::new(None);
        let mut packets = tables();
        packets.push(video(true, 0, &pes(H264_IDR), false));
        packets.push(video(false, 1, &[0; 50], false));
        packets.push(video(true, 2, &pes(H264_P), false));
        let classes = analyze_all(&mut a, &packets);
        assert_eq!(classes[2].unit, Unit::Start(Verdict::RandomAccess));
        assert_eq!(classes[3].unit, Unit::Inside);
        assert_eq!(classes[4].unit, Unit::Start(Verdict::NotRandomAccess));
        assert_eq!(a.table_packets().count(), 2);
        assert_eq!(a.stats().continuity_errors, 0);
    }

    #[test]
    fn random_access_indicator_wins() {
        let mut a = StreamAnalyzer::new(None);
        let mut packets = tables();
        packets.push(video(true, 0, &pes(H264_P), true));
        let classes = analyze_all(&mut a, &packets);
        assert_eq!(classes[2].unit, Unit::Start(Verdict::RandomAccess));
    }

    #[test]
    fn verdict_resolved_in_a_later_packet() {
        let mut a = StreamAnalyzer::new(None);
        let es = pes(H264_IDR);
        let mut packets = tables();
        packets.push(video(true, 0, &es[..16], false)); // cut inside the AUD
        packets.push(video(false, 1, &es[16..], false));
        let classes = analyze_all(&mut a, &packets);
        assert_eq!(classes[2].unit, Unit::Start(Verdict::Undecided));
        assert_eq!(classes[3].unit, Unit::Resolved(Verdict::RandomAccess));
    }

    #[test]
    fn counts_continuity_errors() {
        let mut a = StreamAnalyzer::new(None);
        let mut packets = tables();
        packets.push(video(false, 0, &[1], false));
        packets.push(video(false, 1, &[1], false));
        packets.push(video(false, 1, &[1], false)); // duplicate: allowed
        packets.push(video(false, 5, &[1], false)); // jump
        analyze_all(&mut a, &packets);
        assert_eq!(a.stats().continuity_errors, 1);
    }

    #[test]
    fn scrambling_toggles_with_hysteresis() {
        let mut a = StreamAnalyzer::new(None);
        analyze_all(&mut a, &tables());
        let mut changes = Vec::new();
        let mut cc = 0u8;
        let mut feed = |a: &mut StreamAnalyzer, scrambled: bool, n: usize| {
            for _ in 0..n {
                let mut b = PacketBuilder::new(0x102);
                b.cc = cc;
                cc = (cc + 1) & 0x0F;
                b.scrambling = if scrambled { 2 } else { 0 };
                b.payload = vec![0xAB; 184];
                if let Some(c) = a.analyze(&Packet::new(&b.build()).expect("packet")).scrambling_changed {
                    changes.push(c);
                }
            }
        };
        feed(&mut a, true, 3); // a few odd packets: no change
        feed(&mut a, false, 10);
        feed(&mut a, true, 100);
        feed(&mut a, false, 100);
        assert_eq!(changes, vec![true, false]);
    }

    #[test]
    fn audio_only_program_cuts_on_any_pes_start() {
        let mut a = StreamAnalyzer::new(None);
        let mut packets = vec![
            psi_packet(0, &pat_section(1, 0x100), 0),
            psi_packet(0x100, &pmt_section(1, 0x102, &[(0x0F, 0x102)]), 0),
        ];
        let mut b = PacketBuilder::new(0x102);
        b.pusi = true;
        b.payload = vec![0, 0, 1, 0xC0, 0, 0];
        packets.push(b.build());
        let classes = analyze_all(&mut a, &packets);
        assert_eq!(classes[2].unit, Unit::Start(Verdict::RandomAccess));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::ts::packet::tests::PacketBuilder;
    use crate::ts::psi::tests::{pat_section, pmt_section, psi_packet};
    use crate::ts::random_access::tests::{H264_IDR, H264_P, pes};
    use proptest::prelude::*;

    /// A packet of a small program (PAT, PMT 0x100, video 0x101, audio
    /// 0x102, nulls) chosen by `kind`, with a counter that is right when
    /// `in_order` and `byte` otherwise.
    fn program_packet(kind: u8, byte: u8, in_order: bool, next_cc: &mut [u8; 8192]) -> [u8; PACKET_SIZE] {
        let (pid, pusi, payload, scrambling, pcr) = match kind {
            0 => (0, true, Vec::new(), 0, None),
            1 => (0x100, true, Vec::new(), 0, None),
            2 => (0x101, true, pes(H264_IDR), 0, None),
            3 => (0x101, true, pes(H264_P), 0, None),
            // A PES whose first packet holds no picture yet: undecided.
            4 => (0x101, true, pes(&[]), 0, None),
            5 => (0x101, false, vec![byte; 184], 0, Some(u64::from(byte) * 1000)),
            6 => (0x102, false, vec![byte; 184], 0, None),
            7 => (0x1FFF, false, vec![0xFF; 184], 0, None),
            8 => (0x101, false, vec![byte; 184], 2, None),
            // Continuations that settle an undecided unit either way.
            9 => (
                0x101,
                false,
                H264_IDR.iter().copied().cycle().take(184).collect(),
                0,
                None,
            ),
            10 => (
                0x101,
                false,
                H264_P.iter().copied().cycle().take(184).collect(),
                0,
                None,
            ),
            _ => (0x101, false, vec![byte; 184], 0, None),
        };
        let slot = &mut next_cc[usize::from(pid)];
        let cc = if in_order { *slot } else { byte & 0x0F };
        *slot = (cc + 1) & 0x0F;
        match kind {
            0 => psi_packet(0, &pat_section(1, 0x100), cc),
            1 => psi_packet(0x100, &pmt_section(1, 0x101, &[(0x1B, 0x101), (0x0F, 0x102)]), cc),
            _ => {
                let mut b = PacketBuilder::new(pid);
                b.pusi = pusi;
                b.cc = cc;
                b.scrambling = scrambling;
                b.pcr = pcr;
                b.payload = payload;
                b.build()
            }
        }
    }

    proptest! {
        /// Arbitrary packets (sync byte aside) never panic the analyzer.
        #[test]
        fn never_panics(packets in prop::collection::vec(prop::collection::vec(any::<u8>(), PACKET_SIZE), 1..64), pids in prop::collection::vec(prop_oneof![Just(0u16), Just(0x100), Just(0x101), any::<u16>()], 64)) {
            let mut a = StreamAnalyzer::new(None);
            for (mut p, pid) in packets.into_iter().zip(pids) {
                p[0] = 0x47;
                p[1] = (p[1] & 0xE0) | ((pid >> 8) as u8 & 0x1F);
                p[2] = pid as u8;
                if let Some(packet) = Packet::new(&p) {
                    let _ = a.analyze(&packet);
                }
            }
        }

        /// Skipping plain packets changes nothing: every packet `skip_plain`
        /// counts is one `analyze` would have called inside with nothing to
        /// report, the packets after it are classified the same, and the
        /// counters agree.
        #[test]
        fn skip_plain_agrees_with_analyze(
            choices in prop::collection::vec((0u8..14, any::<u8>(), prop::bool::weighted(0.9), 1usize..24), 1..60),
            max in 1usize..40,
        ) {
            // Runs of one kind, so that scrambling lasts long enough to switch.
            let mut next_cc = [0u8; 8192];
            let stream: Vec<u8> = choices
                .iter()
                .flat_map(|&(kind, byte, in_order, run)| std::iter::repeat_n((kind, byte, in_order), run))
                .flat_map(|(kind, byte, in_order)| program_packet(kind, byte, in_order, &mut next_cc))
                .collect();
            let mut reference = StreamAnalyzer::new(None);
            let mut skipping = StreamAnalyzer::new(None);
            let mut at = 0;
            while at < stream.len() {
                let skipped = skipping.skip_plain(&stream[at..], max);
                prop_assert!(skipped <= max);
                for _ in 0..skipped {
                    let packet = Packet::new(&stream[at..at + PACKET_SIZE]).expect("packet");
                    let class = reference.analyze(&packet);
                    prop_assert_eq!(class, PacketClass { unit: Unit::Inside, pcr: None, scrambling_changed: None });
                    at += PACKET_SIZE;
                }
                if at < stream.len() {
                    let packet = Packet::new(&stream[at..at + PACKET_SIZE]).expect("packet");
                    prop_assert_eq!(skipping.analyze(&packet), reference.analyze(&packet));
                    at += PACKET_SIZE;
                }
                prop_assert_eq!(skipping.stats(), reference.stats());
                prop_assert_eq!(skipping.is_scrambled(), reference.is_scrambled());
            }
        }

        /// The skip does happen on an ordinary stream: it is not a test that
        /// passes because nothing is ever skipped.
        #[test]
        fn skip_plain_skips_continuation_packets(count in 1usize..50) {
            let mut next_cc = [0u8; 8192];
            let mut a = StreamAnalyzer::new(None);
            for kind in [0, 1, 2] {
                let p = program_packet(kind, 0, true, &mut next_cc);
                let _ = a.analyze(&Packet::new(&p).expect("packet"));
            }
            let run: Vec<u8> = (0..count).flat_map(|i| program_packet(if i % 3 == 0 { 6 } else { 11 }, 7, true, &mut next_cc)).collect();
            prop_assert_eq!(a.skip_plain(&run, usize::MAX), count);
            prop_assert_eq!(a.stats().continuity_errors, 0);
        }
    }
}
