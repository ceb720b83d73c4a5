// SPDX-License-Identifier: MPL-2.0
//! Program Specific Information: the PAT and PMT sections (ISO/IEC 13818-1, 2.4.4).
//!
//! The sink keeps the latest PAT and PMT *packets* verbatim so that it can put
//! them at the head of every segment, making each segment decodable on its own.
//! Sections are parsed only to learn which PIDs carry the video and the PCR.

use super::crc::crc32_mpeg2;
use super::packet::{PACKET_SIZE, Packet, Pid};

/// Largest PSI section: 1021 bytes of section_length plus the 3-byte header.
const MAX_SECTION: usize = 1024;

/// Video coding of an elementary stream, as far as random-access detection cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Mpeg2,
    H264,
    H265,
    /// A video stream type whose bitstream this crate does not parse.
    Other,
}

/// What an elementary stream carries, from its PMT stream_type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Video(VideoCodec),
    Audio,
    Other,
}

impl StreamKind {
    #[must_use]
    pub fn from_stream_type(stream_type: u8) -> Self {
        match stream_type {
            0x01 | 0x02 => StreamKind::Video(VideoCodec::Mpeg2),
            0x1B => StreamKind::Video(VideoCodec::H264),
            0x24 => StreamKind::Video(VideoCodec::H265),
            0x10 | 0x20 | 0x42 | 0xD1 | 0xEA => StreamKind::Video(VideoCodec::Other),
            0x03 | 0x04 | 0x0F | 0x11 | 0x1C | 0x81 | 0x87 => StreamKind::Audio,
            _ => StreamKind::Other,
        }
    }
}

/// A program of the multiplex, as the PAT and its PMT number it (1-65535;
/// the PAT's entry 0 names the network information table, not a program).
/// Its own type, so that it is never taken for a PID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProgramNumber(u16);

impl ProgramNumber {
    #[must_use]
    pub const fn new(value: u16) -> ProgramNumber {
        ProgramNumber(value)
    }
}

impl std::fmt::Display for ProgramNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One entry of the PAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramEntry {
    pub program_number: ProgramNumber,
    pub pmt_pid: Pid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pat {
    pub transport_stream_id: u16,
    pub version: u8,
    /// Programs in PAT order; program_number 0 (the network PID) is left out.
    pub programs: Vec<ProgramEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementaryStream {
    pub stream_type: u8,
    pub pid: Pid,
}

impl ElementaryStream {
    #[must_use]
    pub fn kind(&self) -> StreamKind {
        StreamKind::from_stream_type(self.stream_type)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pmt {
    pub program_number: ProgramNumber,
    pub version: u8,
    pub pcr_pid: Pid,
    pub streams: Vec<ElementaryStream>,
    /// PIDs named by CA descriptors (the ECM streams of a scrambled
    /// program), from the program and the elementary-stream loops.
    pub ca_pids: Vec<Pid>,
}

impl Pmt {
    /// The first video stream, which is the one segments are cut on.
    #[must_use]
    pub fn video(&self) -> Option<(Pid, VideoCodec)> {
        self.streams.iter().find_map(|es| match es.kind() {
            StreamKind::Video(codec) => Some((es.pid, codec)),
            _ => None,
        })
    }
}

/// Checks the long-form section header and CRC; returns (table_id_extension,
/// version, body between the header and the CRC).
fn long_section(section: &[u8], table_id: u8) -> Option<(u16, u8, &[u8])> {
    if section.len() < 12 || section[0] != table_id || section[1] & 0x80 == 0 {
        return None;
    }
    let len = usize::from(section[1] & 0x0F) << 8 | usize::from(section[2]);
    let section = section.get(..3 + len)?;
    if len < 9 || crc32_mpeg2(section) != 0 {
        return None;
    }
    // current_next_indicator = 0 announces a future table; ignore it.
    if section[5] & 0x01 == 0 {
        return None;
    }
    let ext = u16::from_be_bytes([section[3], section[4]]);
    let version = (section[5] >> 1) & 0x1F;
    Some((ext, version, &section[8..section.len() - 4]))
}

/// Parses a complete PAT section (table_id 0).
#[must_use]
pub fn parse_pat(section: &[u8]) -> Option<Pat> {
    let (transport_stream_id, version, body) = long_section(section, 0x00)?;
    let programs = body
        .chunks_exact(4)
        .map(|e| ProgramEntry {
            program_number: ProgramNumber(u16::from_be_bytes([e[0], e[1]])),
            pmt_pid: Pid::new(u16::from_be_bytes([e[2], e[3]])),
        })
        .filter(|e| e.program_number.0 != 0)
        .collect();
    Some(Pat {
        transport_stream_id,
        version,
        programs,
    })
}

/// Parses a complete PMT section (table_id 2).
#[must_use]
pub fn parse_pmt(section: &[u8]) -> Option<Pmt> {
    let (program_number, version, body) = long_section(section, 0x02)?;
    if body.len() < 4 {
        return None;
    }
    let pcr_pid = Pid::new(u16::from_be_bytes([body[0], body[1]]));
    let info_len = usize::from(u16::from_be_bytes([body[2], body[3]]) & 0x0FFF);
    let mut ca_pids: Vec<Pid> = ca_descriptor_pids(body.get(4..4 + info_len)?).collect();
    let mut rest = body.get(4 + info_len..)?;
    let mut streams = Vec::new();
    while rest.len() >= 5 {
        let stream_type = rest[0];
        let pid = Pid::new(u16::from_be_bytes([rest[1], rest[2]]));
        let es_len = usize::from(u16::from_be_bytes([rest[3], rest[4]]) & 0x0FFF);
        streams.push(ElementaryStream { stream_type, pid });
        ca_pids.extend(ca_descriptor_pids(rest.get(5..5 + es_len)?));
        rest = rest.get(5 + es_len..)?;
    }
    Some(Pmt {
        program_number: ProgramNumber(program_number),
        version,
        pcr_pid,
        streams,
        ca_pids,
    })
}

/// Parses a complete CAT section (table_id 1, on PID 1): the PIDs its CA
/// descriptors name (the EMM streams a descrambler needs).
#[must_use]
pub fn parse_cat(section: &[u8]) -> Option<Vec<Pid>> {
    let (_, _, body) = long_section(section, 0x01)?;
    Some(ca_descriptor_pids(body).collect())
}

/// The CA_PID of every CA descriptor (tag 9: CA_system_ID, then 3 reserved
/// bits and 13 bits of PID) in a descriptor loop; a truncated descriptor
/// ends the loop.
fn ca_descriptor_pids(mut descriptors: &[u8]) -> impl Iterator<Item = Pid> + '_ {
    std::iter::from_fn(move || {
        loop {
            let (&[tag, len], rest) = descriptors.split_first_chunk::<2>()?;
            let body = rest.get(..usize::from(len))?;
            descriptors = &rest[usize::from(len)..];
            if tag == 0x09 && body.len() >= 4 {
                return Some(Pid::new(u16::from_be_bytes([body[2], body[3]])));
            }
        }
    })
}

/// Reassembles one PSI section from the packets of a PID and keeps those
/// packets, so the section can be replayed verbatim at a segment start.
///
/// Only sections that begin in a packet with payload_unit_start are collected;
/// a section that arrives without its start is skipped until the next one.
#[derive(Debug, Default)]
pub struct SectionAssembler {
    packets: Vec<[u8; PACKET_SIZE]>,
    data: Vec<u8>,
    collecting: bool,
}

/// A complete section and the packets that carried it.
pub struct Section<'a> {
    pub bytes: &'a [u8],
    pub packets: &'a [[u8; PACKET_SIZE]],
}

impl SectionAssembler {
    /// Adds a packet of this PID; returns the section once it is complete.
    pub fn push(&mut self, packet: &Packet<'_>) -> Option<Section<'_>> {
        let payload = packet.payload();
        if packet.payload_unit_start() {
            let pointer = usize::from(*payload.first()?);
            let start = payload.get(1 + pointer..)?;
            self.packets.clear();
            self.data.clear();
            self.data.extend_from_slice(start);
            self.collecting = true;
        } else if self.collecting {
            self.data.extend_from_slice(payload);
        } else {
            return None;
        }
        self.packets.push(*packet.bytes());
        if self.data.len() < 3 {
            return None;
        }
        let len = 3 + (usize::from(self.data[1] & 0x0F) << 8 | usize::from(self.data[2]));
        if len > MAX_SECTION || self.data[0] == 0xFF {
            self.collecting = false;
            return None;
        }
        if self.data.len() < len {
            return None;
        }
        self.collecting = false;
        Some(Section {
            bytes: &self.data[..len],
            packets: &self.packets,
        })
    }

    /// Drops a half-assembled section (after a continuity error).
    pub fn reset(&mut self) {
        self.collecting = false;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ts::packet::tests::PacketBuilder;

    /// Wraps a section body into a complete long-form section with its CRC.
    pub(crate) fn section(table_id: u8, ext: u16, version: u8, body: &[u8]) -> Vec<u8> {
        let len = 5 + body.len() + 4;
        let mut s = vec![
            table_id,
            0xB0 | (len >> 8) as u8,
            len as u8,
            (ext >> 8) as u8,
            ext as u8,
            0xC1 | (version << 1),
            0,
            0,
        ];
        s.extend_from_slice(body);
        let crc = crc32_mpeg2(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        s
    }

    pub(crate) fn pat_section(program: u16, pmt_pid: u16) -> Vec<u8> {
        let mut body = vec![0, 0, 0xE0, 0x10]; // network PID entry, ignored
        body.extend_from_slice(&program.to_be_bytes());
        body.extend_from_slice(&(0xE000 | pmt_pid).to_be_bytes());
        section(0x00, 1, 0, &body)
    }

    pub(crate) fn pmt_section(program: u16, pcr_pid: u16, streams: &[(u8, u16)]) -> Vec<u8> {
        let mut body = (0xE000 | pcr_pid).to_be_bytes().to_vec();
        body.extend_from_slice(&[0xF0, 0x00]);
        for &(st, pid) in streams {
            body.push(st);
            body.extend_from_slice(&(0xE000 | pid).to_be_bytes());
            body.extend_from_slice(&[0xF0, 0x00]);
        }
        section(0x02, program, 0, &body)
    }

    pub(crate) fn psi_packet(pid: u16, section: &[u8], cc: u8) -> [u8; PACKET_SIZE] {
        let mut b = PacketBuilder::new(pid);
        b.pusi = true;
        b.cc = cc;
        b.payload = std::iter::once(0u8).chain(section.iter().copied()).collect();
        b.payload.resize(PACKET_SIZE - 4, 0xFF);
        b.build()
    }

    #[test]
    fn parses_pat_and_pmt() {
        let pat = parse_pat(&pat_section(1, 0x100)).expect("pat");
        assert_eq!(
            pat.programs,
            vec![ProgramEntry {
                program_number: ProgramNumber::new(1),
                pmt_pid: Pid::new(0x100)
            }]
        );
        let pmt = parse_pmt(&pmt_section(1, 0x101, &[(0x0F, 0x102), (0x1B, 0x101)])).expect("pmt");
        assert_eq!(pmt.pcr_pid, Pid::new(0x101));
        assert_eq!(pmt.video(), Some((Pid::new(0x101), VideoCodec::H264)));
    }

    #[test]
    fn rejects_bad_crc() {
        let mut s = pat_section(1, 0x100);
        s[9] ^= 1;
        assert!(parse_pat(&s).is_none());
    }

    #[test]
    fn assembles_section_spanning_packets() {
        let streams: Vec<(u8, u16)> = (0..60).map(|i| (0x0F, 0x200 + i)).collect();
        let sec = pmt_section(1, 0x200, &streams);
        assert!(sec.len() > 184);
        let mut first = PacketBuilder::new(0x100);
        first.pusi = true;
        first.payload = std::iter::once(0).chain(sec[..183].iter().copied()).collect();
        let mut second = PacketBuilder::new(0x100);
        second.cc = 1;
        second.payload = sec[183..].to_vec();
        second.payload.resize(184, 0xFF);
        let (a, b) = (first.build(), second.build());
        let mut asm = SectionAssembler::default();
        assert!(asm.push(&Packet::new(&a).expect("packet")).is_none());
        let done = asm.push(&Packet::new(&b).expect("packet")).expect("complete");
        assert_eq!(done.packets.len(), 2);
        assert_eq!(parse_pmt(done.bytes).expect("pmt").streams.len(), 60);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The section parsers never panic, whatever the bytes.
        #[test]
        fn parsers_never_panic(data in prop::collection::vec(any::<u8>(), 0..1100)) {
            let _ = parse_pat(&data);
            let _ = parse_pmt(&data);
            let _ = parse_cat(&data);
        }

        /// Nor does the assembler, fed arbitrary packets of one PID.
        #[test]
        fn assembler_never_panics(packets in prop::collection::vec(prop::collection::vec(any::<u8>(), PACKET_SIZE), 1..20)) {
            let mut asm = SectionAssembler::default();
            for mut p in packets {
                p[0] = 0x47;
                if let Some(packet) = Packet::new(&p)
                    && let Some(section) = asm.push(&packet)
                {
                    let _ = parse_pmt(section.bytes);
                }
            }
        }
    }
}
