// SPDX-License-Identifier: MPL-2.0
//! Keeps some programs of a multiplex and drops the others (the sink's
//! `programs` property): a DVB multiplex carries 5-10 channels, and a ring
//! per channel is what a DVR keeps.
//!
//! A packet is kept when its PID is one a kept program uses: its PMT, the
//! PCR, elementary-stream and ECM PIDs its PMT lists, the EMM PIDs the CAT
//! lists, and every PID below 0x20 (the CAT, NIT, SDT, EIT, TDT and the
//! other service information the multiplex shares). A PID that a kept and
//! a dropped program share is therefore kept. Null packets are dropped.
//!
//! The PAT is rewritten: each PAT section is replaced by one that lists
//! only the kept programs (and the network PID entry), with the original's
//! transport_stream_id, version and section numbers and a new CRC, carried
//! on packets of its own with their own continuity counter. The stream
//! analyzer downstream sees only the rewritten PAT, so segment heads carry
//! it too.
//!
//! Until the first PAT has been seen nothing but PIDs below 0x20 is known
//! to belong to a kept program, so other packets are dropped; likewise a
//! kept program's streams until its PMT has been seen.

use super::crc::crc32_mpeg2;
use super::packet::{NULL_PID, PACKET_SIZE, PAT_PID, Packet, Pid};
use super::psi::{ProgramNumber, SectionAssembler, parse_cat, parse_pat, parse_pmt};

/// PID of the Conditional Access Table.
const CAT_PID: Pid = Pid::new(0x0001);

/// PIDs below this carry service information shared by the multiplex.
const FIRST_PROGRAM_PID: u16 = 0x20;

/// The PIDs a kept program uses, from its latest PMT.
struct KeptPmt {
    pid: Pid,
    asm: SectionAssembler,
    uses: Vec<Pid>,
}

/// Counters for the sink's `stats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProgramFilterStats {
    /// Packets dropped: other programs' PIDs, null packets, and kept
    /// programs' streams before their PMT was seen.
    pub dropped_packets: u64,
    /// PAT sections rewritten.
    pub rewritten_pats: u64,
}

/// See the module documentation.
pub struct ProgramFilter {
    /// The program numbers to keep, as configured (non-empty).
    programs: Vec<ProgramNumber>,
    pat_asm: SectionAssembler,
    /// The latest PAT section (before rewriting), to notice a change.
    pat_section: Vec<u8>,
    /// Continuity counter of the next rewritten PAT packet.
    pat_cc: u8,
    /// The kept programs' PMTs, in PAT order.
    pmts: Vec<KeptPmt>,
    /// A PMT PID the PAT's program 0 entry names (the NIT), if any.
    network_pid: Option<Pid>,
    cat_asm: SectionAssembler,
    /// EMM PIDs from the latest CAT.
    emm_pids: Vec<Pid>,
    /// Bit per PID: kept.
    kept: Box<[u64; 128]>,
    /// Configured programs the latest PAT does not list, once per PAT
    /// change, for the element to warn about.
    missing: Option<Vec<ProgramNumber>>,
    stats: ProgramFilterStats,
}

impl ProgramFilter {
    /// A filter keeping `programs` (program_number values); `None` for an
    /// empty list, which means "keep everything" and needs no filter.
    #[must_use]
    pub fn new(programs: &[ProgramNumber]) -> Option<Self> {
        if programs.is_empty() {
            return None;
        }
        let mut filter = ProgramFilter {
            programs: programs.to_vec(),
            pat_asm: SectionAssembler::default(),
            pat_section: Vec::new(),
            pat_cc: 0,
            pmts: Vec::new(),
            network_pid: None,
            cat_asm: SectionAssembler::default(),
            emm_pids: Vec::new(),
            kept: Box::new([0; 128]),
            missing: None,
            stats: ProgramFilterStats::default(),
        };
        filter.rebuild_kept();
        Some(filter)
    }

    #[must_use]
    pub fn stats(&self) -> ProgramFilterStats {
        self.stats
    }

    /// The configured programs the latest PAT did not list, once after each
    /// PAT change that leaves some out (`None` otherwise).
    pub fn take_missing(&mut self) -> Option<Vec<ProgramNumber>> {
        self.missing.take()
    }

    /// Forgets half-assembled sections (after a flush or a gap in the input).
    pub fn reset(&mut self) {
        self.pat_asm.reset();
        self.cat_asm.reset();
        for pmt in &mut self.pmts {
            pmt.asm.reset();
        }
    }

    fn is_kept(&self, pid: Pid) -> bool {
        self.kept[pid.index() / 64] & (1 << (pid.index() % 64)) != 0
    }

    /// Appends to `out` the packets of `run` (whole packets) that are kept,
    /// with each completed PAT section replaced by its rewritten form.
    pub fn filter(&mut self, run: &[u8], out: &mut Vec<u8>) {
        for bytes in run.chunks_exact(PACKET_SIZE) {
            let Some(packet) = Packet::new(bytes) else {
                continue;
            };
            let pid = packet.pid();
            if packet.transport_error() {
                // The PID itself may be wrong: keep the packet only where
                // the PID says it belongs, as any packet.
                if pid != PAT_PID && self.is_kept(pid) {
                    out.extend_from_slice(bytes);
                } else {
                    self.stats.dropped_packets += 1;
                }
                continue;
            }
            match pid {
                PAT_PID => self.on_pat_packet(&packet, out),
                CAT_PID => {
                    if let Some(section) = self.cat_asm.push(&packet)
                        && let Some(emm) = parse_cat(section.bytes)
                        && emm != self.emm_pids
                    {
                        self.emm_pids = emm;
                        self.rebuild_kept();
                    }
                    out.extend_from_slice(bytes);
                }
                _ => {
                    if let Some(i) = self.pmts.iter().position(|p| p.pid == pid) {
                        self.on_pmt_packet(i, &packet);
                    }
                    if self.is_kept(pid) {
                        out.extend_from_slice(bytes);
                    } else {
                        self.stats.dropped_packets += 1;
                    }
                }
            }
        }
    }

    fn on_pat_packet(&mut self, packet: &Packet<'_>, out: &mut Vec<u8>) {
        let Some(section) = self.pat_asm.push(packet) else {
            return;
        };
        let Some(pat) = parse_pat(section.bytes) else {
            return;
        };
        let Some(rewritten) = rewrite_pat_section(section.bytes, &self.programs) else {
            return;
        };
        if section.bytes != self.pat_section.as_slice() {
            self.pat_section = section.bytes.to_vec();
            let missing: Vec<ProgramNumber> = self
                .programs
                .iter()
                .copied()
                .filter(|n| pat.programs.iter().all(|e| e.program_number != *n))
                .collect();
            self.missing = (!missing.is_empty()).then_some(missing);
            self.network_pid = network_pid(section.bytes);
            let mut previous = std::mem::take(&mut self.pmts);
            for entry in pat
                .programs
                .iter()
                .filter(|e| self.programs.contains(&e.program_number))
            {
                let kept = previous
                    .iter()
                    .position(|p| p.pid == entry.pmt_pid)
                    .map(|i| previous.swap_remove(i));
                self.pmts.push(kept.unwrap_or(KeptPmt {
                    pid: entry.pmt_pid,
                    asm: SectionAssembler::default(),
                    uses: Vec::new(),
                }));
            }
            self.rebuild_kept();
        }
        self.stats.rewritten_pats += 1;
        packetize(PAT_PID, &rewritten, &mut self.pat_cc, out);
    }

    fn on_pmt_packet(&mut self, i: usize, packet: &Packet<'_>) {
        let pmt = &mut self.pmts[i];
        let Some(section) = pmt.asm.push(packet) else {
            return;
        };
        let Some(parsed) = parse_pmt(section.bytes) else {
            return;
        };
        let mut uses: Vec<Pid> = std::iter::once(parsed.pcr_pid)
            .chain(parsed.streams.iter().map(|es| es.pid))
            .chain(parsed.ca_pids.iter().copied())
            .collect();
        uses.sort_unstable();
        uses.dedup();
        if uses != pmt.uses {
            pmt.uses = uses;
            self.rebuild_kept();
        }
    }

    fn rebuild_kept(&mut self) {
        self.kept.fill(0);
        let shared = (0..FIRST_PROGRAM_PID).map(Pid::new).filter(|&p| p != PAT_PID);
        let pids = shared
            .chain(self.network_pid)
            .chain(self.emm_pids.iter().copied())
            .chain(
                self.pmts
                    .iter()
                    .flat_map(|p| std::iter::once(p.pid).chain(p.uses.iter().copied())),
            );
        for pid in pids.filter(|&p| p != NULL_PID && p != PAT_PID) {
            self.kept[pid.index() / 64] |= 1 << (pid.index() % 64);
        }
    }
}

/// The PID the network entry (program_number 0) of a valid PAT section names.
fn network_pid(section: &[u8]) -> Option<Pid> {
    let len = usize::from(*section.get(1)? & 0x0F) << 8 | usize::from(*section.get(2)?);
    section
        .get(8..(3 + len).checked_sub(4)?)?
        .chunks_exact(4)
        .find(|e| e[0] == 0 && e[1] == 0)
        .map(|e| Pid::new(u16::from_be_bytes([e[2], e[3]])))
}

/// The PAT section `section` (already validated by `parse_pat`) listing only
/// the network entry and `programs`, with a new CRC; its header (table id,
/// transport_stream_id, version, section numbers) is kept.
#[must_use]
fn rewrite_pat_section(section: &[u8], programs: &[ProgramNumber]) -> Option<Vec<u8>> {
    let len = usize::from(*section.get(1)? & 0x0F) << 8 | usize::from(*section.get(2)?);
    let entries = section.get(8..(3 + len).checked_sub(4)?)?;
    let mut out = section.get(..8)?.to_vec();
    for e in entries.chunks_exact(4) {
        let number = u16::from_be_bytes([e[0], e[1]]);
        if number == 0 || programs.contains(&ProgramNumber::new(number)) {
            out.extend_from_slice(e);
        }
    }
    // section_length counts the bytes after it: 5 header bytes, the
    // entries and the CRC. It only shrinks, so it fits its 12 bits.
    let new_len = out.len() - 3 + 4;
    out[1] = (out[1] & 0xF0) | ((new_len >> 8) as u8 & 0x0F);
    out[2] = new_len as u8;
    let crc = crc32_mpeg2(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    Some(out)
}

/// Appends `section` to `out` as packets of `pid`: payload only, a pointer
/// field in the first, stuffing bytes (0xFF) after the section.
fn packetize(pid: Pid, section: &[u8], cc: &mut u8, out: &mut Vec<u8>) {
    let mut payload = Vec::with_capacity(section.len() + 1);
    payload.push(0); // pointer_field: the section starts right after it
    payload.extend_from_slice(section);
    for (i, chunk) in payload.chunks(PACKET_SIZE - 4).enumerate() {
        let pusi = if i == 0 { 0x40 } else { 0 };
        let [high, low] = pid.value().to_be_bytes();
        out.extend_from_slice(&[0x47, pusi | high & 0x1F, low, 0x10 | *cc]);
        out.extend_from_slice(chunk);
        out.resize(out.len() + (PACKET_SIZE - 4 - chunk.len()), 0xFF);
        *cc = (*cc + 1) & 0x0F;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::packet::tests::PacketBuilder;
    use crate::ts::psi::tests::{pmt_section, psi_packet, section};

    /// A PAT with the network entry and programs (number, PMT PID).
    fn pat(programs: &[(u16, u16)], version: u8) -> Vec<u8> {
        let mut body = vec![0, 0, 0xE0, 0x10];
        for &(n, pid) in programs {
            body.extend_from_slice(&n.to_be_bytes());
            body.extend_from_slice(&(0xE000 | pid).to_be_bytes());
        }
        section(0x00, 7, version, &body)
    }

    fn numbered(numbers: &[u16]) -> Vec<ProgramNumber> {
        numbers.iter().copied().map(ProgramNumber::new).collect()
    }

    fn media(pid: u16) -> [u8; PACKET_SIZE] {
        let mut b = PacketBuilder::new(pid);
        b.payload = vec![0xAB; 184];
        b.build()
    }

    fn pids(out: &[u8]) -> Vec<u16> {
        out.chunks(PACKET_SIZE)
            .map(|p| u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]))
            .collect()
    }

    fn two_programs() -> Vec<[u8; PACKET_SIZE]> {
        vec![
            psi_packet(0, &pat(&[(1, 0x100), (2, 0x200)], 3), 0),
            psi_packet(0x100, &pmt_section(1, 0x101, &[(0x1B, 0x101), (0x0F, 0x102)]), 0),
            psi_packet(0x200, &pmt_section(2, 0x201, &[(0x1B, 0x201), (0x0F, 0x900)]), 0),
            media(0x101),
            media(0x102),
            media(0x201),
            media(0x900),
            media(0x12),
            media(NULL_PID.value()),
        ]
    }

    #[test]
    fn keeps_one_program_and_rewrites_the_pat() {
        let mut f = ProgramFilter::new(&numbered(&[1])).expect("filter");
        let mut out = Vec::new();
        for p in two_programs() {
            f.filter(&p, &mut out);
        }
        assert_eq!(pids(&out), vec![0, 0x100, 0x101, 0x102, 0x12]);
        // The rewritten PAT: valid (CRC checked), same id and version, one program.
        let packet = Packet::new(&out[..PACKET_SIZE]).expect("packet");
        let mut asm = SectionAssembler::default();
        let s = asm.push(&packet).expect("section");
        let parsed = parse_pat(s.bytes).expect("valid PAT");
        assert_eq!((parsed.transport_stream_id, parsed.version), (7, 3));
        assert_eq!(parsed.programs.len(), 1);
        assert_eq!(parsed.programs[0].program_number, ProgramNumber::new(1));
        assert_eq!(network_pid(s.bytes), Some(Pid::new(0x10)));
        assert_eq!(f.stats().dropped_packets, 4); // PMT 0x200, 0x201, 0x900, null
        assert_eq!(f.take_missing(), None);
    }

    #[test]
    fn a_pid_two_programs_share_is_kept() {
        // Program 2 uses program 1's audio PID 0x102 too.
        let mut f = ProgramFilter::new(&numbered(&[2])).expect("filter");
        let mut out = Vec::new();
        let packets = [
            psi_packet(0, &pat(&[(1, 0x100), (2, 0x200)], 0), 0),
            psi_packet(0x100, &pmt_section(1, 0x101, &[(0x1B, 0x101), (0x0F, 0x102)]), 0),
            psi_packet(0x200, &pmt_section(2, 0x201, &[(0x1B, 0x201), (0x0F, 0x102)]), 0),
            media(0x101),
            media(0x102),
            media(0x201),
        ];
        for p in packets {
            f.filter(&p, &mut out);
        }
        assert_eq!(pids(&out), vec![0, 0x200, 0x102, 0x201]);
    }

    #[test]
    fn streams_before_their_pmt_are_dropped_and_a_missing_program_is_reported() {
        let mut f = ProgramFilter::new(&numbered(&[1, 5])).expect("filter");
        let mut out = Vec::new();
        f.filter(&media(0x101), &mut out);
        assert!(out.is_empty(), "nothing known before the PAT");
        f.filter(&psi_packet(0, &pat(&[(1, 0x100)], 0), 0), &mut out);
        assert_eq!(f.take_missing(), Some(numbered(&[5])));
        assert_eq!(f.take_missing(), None, "once per PAT change");
        f.filter(&psi_packet(0, &pat(&[(1, 0x100)], 0), 1), &mut out);
        assert_eq!(f.take_missing(), None, "the same PAT again");
        f.filter(&media(0x101), &mut out);
        f.filter(
            &psi_packet(0x100, &pmt_section(1, 0x101, &[(0x1B, 0x101)]), 0),
            &mut out,
        );
        f.filter(&media(0x101), &mut out);
        assert_eq!(pids(&out), vec![0, 0, 0x100, 0x101]);
        // The rewritten PATs count on: 0, 1.
        assert_eq!(out[3] & 0x0F, 0);
        assert_eq!(out[PACKET_SIZE + 3] & 0x0F, 1);
    }

    #[test]
    fn ecm_and_emm_pids_are_kept() {
        let mut f = ProgramFilter::new(&numbered(&[1])).expect("filter");
        let mut out = Vec::new();
        // PMT with a CA descriptor (ECM on 0x150) in the program loop.
        let body = [
            0xE1, 0x01, 0xF0, 0x06, 0x09, 0x04, 0x0B, 0x00, 0xE1, 0x50, 0x1B, 0xE1, 0x01, 0xF0, 0x00,
        ];
        // CAT with an EMM on 0x160.
        let cat = section(0x01, 0xFFFF, 0, &[0x09, 0x04, 0x0B, 0x00, 0xE1, 0x60]);
        let packets = [
            psi_packet(0, &pat(&[(1, 0x100)], 0), 0),
            psi_packet(1, &cat, 0),
            psi_packet(0x100, &section(0x02, 1, 0, &body), 0),
            media(0x150),
            media(0x160),
            media(0x170),
        ];
        for p in packets {
            f.filter(&p, &mut out);
        }
        assert_eq!(pids(&out), vec![0, 1, 0x100, 0x150, 0x160]);
    }

    #[test]
    fn a_pat_over_two_packets_is_rewritten_into_one() {
        let programs: Vec<(u16, u16)> = (1..=60).map(|n| (n, 0x100 + n)).collect();
        let sec = pat(&programs, 0);
        assert!(sec.len() > 183);
        let mut first = PacketBuilder::new(0);
        first.pusi = true;
        first.payload = std::iter::once(0).chain(sec[..183].iter().copied()).collect();
        let mut second = PacketBuilder::new(0);
        second.cc = 1;
        second.payload = sec[183..].to_vec();
        second.payload.resize(184, 0xFF);
        let mut f = ProgramFilter::new(&numbered(&[60])).expect("filter");
        let mut out = Vec::new();
        f.filter(&first.build(), &mut out);
        assert!(out.is_empty());
        f.filter(&second.build(), &mut out);
        assert_eq!(out.len(), PACKET_SIZE);
        let mut asm = SectionAssembler::default();
        let s = asm.push(&Packet::new(&out).expect("packet")).expect("section");
        let parsed = parse_pat(s.bytes).expect("valid");
        assert_eq!(parsed.programs[0].program_number, ProgramNumber::new(60));
        assert_eq!(parsed.programs[0].pmt_pid, Pid::new(0x100 + 60));
    }

    #[test]
    fn an_empty_list_needs_no_filter() {
        assert!(ProgramFilter::new(&[]).is_none());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Arbitrary packets never panic the filter, and what it emits is
        /// whole packets.
        #[test]
        fn never_panics(packets in prop::collection::vec(prop::collection::vec(any::<u8>(), PACKET_SIZE), 1..40)) {
            let mut f = ProgramFilter::new(&[ProgramNumber::new(1), ProgramNumber::new(2)]).expect("filter");
            let mut out = Vec::new();
            for mut p in packets {
                p[0] = 0x47;
                f.filter(&p, &mut out);
            }
            prop_assert_eq!(out.len() % PACKET_SIZE, 0);
        }
    }
}
