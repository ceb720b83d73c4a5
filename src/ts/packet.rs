// SPDX-License-Identifier: MPL-2.0
//! A read-only view of one 188-byte transport packet (ISO/IEC 13818-1, 2.4.3.2).

/// Every transport packet begins with this byte.
pub const SYNC_BYTE: u8 = 0x47;
/// Size of a transport packet as written to disk. 192- and 204-byte input is
/// reduced to this size by [`crate::ts::PacketAligner`].
pub const PACKET_SIZE: usize = 188;
/// A packet identifier: which elementary stream or table of the multiplex a
/// packet carries (13 bits). Its own type, so that it is never taken for a
/// program number, which is also a `u16` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pid(u16);

impl Pid {
    /// The highest PID, that of null (stuffing) packets.
    pub const MAX: u16 = 0x1FFF;

    /// The PID of the 13 low bits of `value` (the rest are flags on the wire).
    #[must_use]
    pub const fn new(value: u16) -> Pid {
        Pid(value & Self::MAX)
    }

    #[must_use]
    pub const fn value(self) -> u16 {
        self.0
    }

    /// As an index into a table of every PID.
    #[must_use]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl From<Pid> for u16 {
    fn from(pid: Pid) -> u16 {
        pid.0
    }
}

impl From<Pid> for u32 {
    fn from(pid: Pid) -> u32 {
        u32::from(pid.0)
    }
}

impl std::fmt::LowerHex for Pid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::LowerHex::fmt(&self.0, f)
    }
}

impl std::fmt::Display for Pid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#06x}", self.0)
    }
}

/// PID of the Program Association Table.
pub const PAT_PID: Pid = Pid(0x0000);
/// PID of null (stuffing) packets.
pub const NULL_PID: Pid = Pid(Pid::MAX);
/// A null packet: payload only, stuffing bytes. Demultiplexers drop null
/// packets unread (their continuity counter is not checked), so a writer may
/// put them anywhere between packets; the ring uses them to place a segment's
/// packets at file offsets that copy fastest.
pub const NULL_PACKET: [u8; PACKET_SIZE] = {
    let mut packet = [0xFF; PACKET_SIZE];
    packet[0] = SYNC_BYTE;
    packet[1] = (Pid::MAX >> 8) as u8;
    packet[2] = (Pid::MAX & 0xFF) as u8;
    packet[3] = 0x10;
    packet
};

/// A borrowed, validated transport packet.
///
/// Construction checks the length and the sync byte, so every accessor can index
/// without further checks. A malformed adaptation field length is reported as
/// "no payload" rather than a panic: broadcast input is hostile by default.
#[derive(Clone, Copy)]
pub struct Packet<'a>(&'a [u8; PACKET_SIZE]);

impl<'a> Packet<'a> {
    /// Wraps `bytes` if it is exactly one packet starting with the sync byte.
    #[must_use]
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        let arr: &'a [u8; PACKET_SIZE] = bytes.try_into().ok()?;
        (arr[0] == SYNC_BYTE).then_some(Packet(arr))
    }

    /// The raw 188 bytes.
    #[must_use]
    pub fn bytes(&self) -> &'a [u8; PACKET_SIZE] {
        self.0
    }

    #[must_use]
    pub fn transport_error(&self) -> bool {
        self.0[1] & 0x80 != 0
    }

    /// payload_unit_start_indicator: a PES packet or PSI section starts here.
    #[must_use]
    pub fn payload_unit_start(&self) -> bool {
        self.0[1] & 0x40 != 0
    }

    #[must_use]
    pub fn pid(&self) -> Pid {
        Pid(u16::from(self.0[1] & 0x1F) << 8 | u16::from(self.0[2]))
    }

    /// transport_scrambling_control: 0 means clear, anything else scrambled.
    #[must_use]
    pub fn scrambling_control(&self) -> u8 {
        self.0[3] >> 6
    }

    #[must_use]
    pub fn has_adaptation_field(&self) -> bool {
        self.0[3] & 0x20 != 0
    }

    #[must_use]
    pub fn has_payload(&self) -> bool {
        self.0[3] & 0x10 != 0
    }

    #[must_use]
    pub fn continuity_counter(&self) -> u8 {
        self.0[3] & 0x0F
    }

    /// The adaptation field after its length byte, if present and well-formed.
    fn adaptation_field(&self) -> Option<&'a [u8]> {
        if !self.has_adaptation_field() {
            return None;
        }
        let len = usize::from(self.0[4]);
        if len == 0 || 5 + len > PACKET_SIZE {
            return None;
        }
        Some(&self.0[5..5 + len])
    }

    #[must_use]
    pub fn discontinuity_indicator(&self) -> bool {
        self.adaptation_field().is_some_and(|af| af[0] & 0x80 != 0)
    }

    #[must_use]
    pub fn random_access_indicator(&self) -> bool {
        self.adaptation_field().is_some_and(|af| af[0] & 0x40 != 0)
    }

    /// The program clock reference in 27 MHz ticks (base x 300 + extension).
    #[must_use]
    pub fn pcr(&self) -> Option<u64> {
        let af = self.adaptation_field()?;
        if af[0] & 0x10 == 0 || af.len() < 7 {
            return None;
        }
        let base = u64::from(af[1]) << 25
            | u64::from(af[2]) << 17
            | u64::from(af[3]) << 9
            | u64::from(af[4]) << 1
            | u64::from(af[5]) >> 7;
        let ext = u64::from(af[5] & 0x01) << 8 | u64::from(af[6]);
        Some(base * 300 + ext)
    }

    /// The PTS (90 kHz, 33 bits) of the PES packet that starts here, if
    /// this packet starts one that has a PTS.
    #[must_use]
    pub fn pes_pts(&self) -> Option<u64> {
        if !self.payload_unit_start() {
            return None;
        }
        let p = self.payload();
        // packet_start_code_prefix, stream_id, length, flags, header length,
        // then the PTS if PTS_DTS_flags has its high bit.
        if p.len() < 14 || p[..3] != [0, 0, 1] || p[7] & 0x80 == 0 {
            return None;
        }
        let b = |i: usize| u64::from(p[i]);
        Some((b(9) >> 1 & 0x07) << 30 | b(10) << 22 | (b(11) >> 1) << 15 | b(12) << 7 | b(13) >> 1)
    }

    /// The payload bytes, or an empty slice if there are none (or the
    /// adaptation field claims to fill more than the packet).
    #[must_use]
    pub fn payload(&self) -> &'a [u8] {
        if !self.has_payload() {
            return &[];
        }
        let start = if self.has_adaptation_field() {
            5 + usize::from(self.0[4])
        } else {
            4
        };
        self.0.get(start..).unwrap_or(&[])
    }
}

/// A packet that only carries a program clock reference: PID `pid`, PCR
/// base `base_90k` (33 bits, extension 0), flagged as a discontinuity (the
/// clock restarts here) and without payload, so it takes no continuity
/// count. Used where data is sent out of its order (trick play) and the
/// receiver must learn the clock again.
#[must_use]
pub fn pcr_packet(pid: Pid, base_90k: u64) -> [u8; PACKET_SIZE] {
    let mut p = [0xFFu8; PACKET_SIZE];
    let base = base_90k & ((1 << 33) - 1);
    let [high, low] = pid.value().to_be_bytes();
    p[..4].copy_from_slice(&[SYNC_BYTE, high & 0x1F, low, 0x20]);
    // adaptation_field_length: the rest of the packet; flags:
    // discontinuity_indicator and PCR_flag.
    p[4] = 183;
    p[5] = 0x80 | 0x10;
    p[6] = (base >> 25) as u8;
    p[7] = (base >> 17) as u8;
    p[8] = (base >> 9) as u8;
    p[9] = (base >> 1) as u8;
    p[10] = ((base & 1) << 7) as u8 | 0x7E;
    p[11] = 0;
    p
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_pcr_packet_reads_back() {
        let bytes = pcr_packet(Pid::new(0x100), (1 << 33) - 3);
        let p = Packet::new(&bytes).expect("packet");
        assert_eq!(p.pid(), Pid::new(0x100));
        assert!(p.discontinuity_indicator() && !p.has_payload() && !p.payload_unit_start());
        assert_eq!(p.pcr(), Some(((1 << 33) - 3) * 300));
    }

    /// Builds a packet for tests: header fields, optional PCR/RAI, payload.
    pub(crate) struct PacketBuilder {
        pub pid: u16,
        pub pusi: bool,
        pub cc: u8,
        pub scrambling: u8,
        pub pcr: Option<u64>,
        pub rai: bool,
        pub discontinuity: bool,
        pub payload: Vec<u8>,
    }

    impl PacketBuilder {
        pub(crate) fn new(pid: u16) -> Self {
            PacketBuilder {
                pid,
                pusi: false,
                cc: 0,
                scrambling: 0,
                pcr: None,
                rai: false,
                discontinuity: false,
                payload: Vec::new(),
            }
        }

        pub(crate) fn build(&self) -> [u8; PACKET_SIZE] {
            let mut p = [0xFFu8; PACKET_SIZE];
            p[0] = SYNC_BYTE;
            p[1] = (u8::from(self.pusi) << 6) | ((self.pid >> 8) as u8 & 0x1F);
            p[2] = self.pid as u8;
            let mut af = Vec::new();
            if self.pcr.is_some() || self.rai || self.discontinuity {
                let mut flags = 0u8;
                if self.discontinuity {
                    flags |= 0x80;
                }
                if self.rai {
                    flags |= 0x40;
                }
                af.push(flags);
                if let Some(pcr) = self.pcr {
                    af[0] |= 0x10;
                    let base = pcr / 300;
                    let ext = pcr % 300;
                    af.extend_from_slice(&[
                        (base >> 25) as u8,
                        (base >> 17) as u8,
                        (base >> 9) as u8,
                        (base >> 1) as u8,
                        ((base & 1) << 7) as u8 | 0x7E | (ext >> 8) as u8,
                        ext as u8,
                    ]);
                }
            }
            let room = PACKET_SIZE - 4;
            let payload_len = self
                .payload
                .len()
                .min(room - if af.is_empty() { 0 } else { af.len() + 1 });
            let needs_af = !af.is_empty() || payload_len < room;
            let mut pos = 4;
            if needs_af {
                let af_len = room - payload_len - 1;
                p[4] = af_len as u8;
                if af_len > 0 {
                    if af.is_empty() {
                        af.push(0);
                    }
                    p[5..5 + af.len()].copy_from_slice(&af);
                }
                pos = 5 + af_len;
            }
            let afc = match (needs_af, payload_len > 0 || !needs_af) {
                (true, true) => 0x30,
                (true, false) => 0x20,
                (false, _) => 0x10,
            };
            p[3] = (self.scrambling << 6) | afc | (self.cc & 0x0F);
            p[pos..pos + payload_len].copy_from_slice(&self.payload[..payload_len]);
            p
        }
    }

    #[test]
    fn header_fields_round_trip() {
        let mut b = PacketBuilder::new(0x1234 & 0x1FFF);
        b.pusi = true;
        b.cc = 7;
        b.scrambling = 2;
        b.pcr = Some(((1u64 << 33) - 5) * 300 + 299);
        b.rai = true;
        b.payload = vec![1, 2, 3];
        let bytes = b.build();
        let p = Packet::new(&bytes).expect("valid packet");
        assert_eq!(p.pid(), Pid::new(0x1234));
        assert!(p.payload_unit_start());
        assert_eq!(p.continuity_counter(), 7);
        assert_eq!(p.scrambling_control(), 2);
        assert!(p.random_access_indicator());
        assert!(!p.discontinuity_indicator());
        assert_eq!(p.pcr(), Some(((1u64 << 33) - 5) * 300 + 299));
        assert_eq!(p.payload(), &[1, 2, 3]);
    }

    #[test]
    fn rejects_wrong_length_and_sync() {
        assert!(Packet::new(&[0x47; 187]).is_none());
        let mut bytes = [0u8; PACKET_SIZE];
        assert!(Packet::new(&bytes).is_none());
        bytes[0] = SYNC_BYTE;
        assert!(Packet::new(&bytes).is_some());
    }

    #[test]
    fn oversized_adaptation_field_yields_no_payload() {
        let mut bytes = [0u8; PACKET_SIZE];
        bytes[0] = SYNC_BYTE;
        bytes[3] = 0x30;
        bytes[4] = 200;
        let p = Packet::new(&bytes).expect("valid packet");
        assert!(p.payload().is_empty());
        assert_eq!(p.pcr(), None);
    }
}
