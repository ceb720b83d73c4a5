// SPDX-License-Identifier: MPL-2.0
//! CRC-32/MPEG-2, the checksum that ends every PSI section.
//!
//! PAT and PMT are checked before they are trusted: a corrupted PMT would make
//! the sink look for keyframes on the wrong PID for the rest of the stream.

const fn make_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static TABLE: [u32; 256] = make_table();

/// CRC-32/MPEG-2 of `data`. A whole section including its CRC yields 0.
#[must_use]
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xFFFF_FFFF, |crc, &b| {
        (crc << 8) ^ TABLE[usize::from((crc >> 24) as u8 ^ b)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        // The catalogued check value of CRC-32/MPEG-2 for "123456789".
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
    }

    #[test]
    fn section_with_its_crc_checks_to_zero() {
        let mut data = b"any section body".to_vec();
        let crc = crc32_mpeg2(&data);
        data.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(crc32_mpeg2(&data), 0);
    }
}
