// SPDX-License-Identifier: MPL-2.0
//! Recovers whole 188-byte packets from a byte stream cut anywhere.
//!
//! Input arrives in buffers of any size (1316 bytes from `udpsrc`, 4096 or 65536
//! from `filesrc`, one byte in hostile tests), may carry 192-byte M2TS or 204-byte
//! Reed-Solomon framing, and may contain garbage. The aligner locks onto the
//! packet grid only after [`LOCK_PACKETS`] consecutive packet-spaced sync bytes,
//! so a stray 0x47 in garbage cannot make it emit a misaligned packet, and it
//! never emits a partial packet.
//!
//! Aligned 188-byte input is passed through as borrowed runs of many packets, so
//! the common case costs no copy and one callback per buffer. Each run comes
//! with where it lies in the input, if it does (a packet split across two
//! inputs is put together in the aligner's own buffer): a caller that holds
//! on to its input can then keep runs by reference instead of copying them.

use super::packet::{PACKET_SIZE, SYNC_BYTE};

/// Number of consecutive sync bytes, one packet apart, required to (re)lock.
pub const LOCK_PACKETS: usize = 4;

/// Framing of the input. The output is always 188-byte packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketSize {
    /// Plain transport stream.
    Ts188,
    /// Blu-ray/M2TS: a 4-byte arrival timestamp before each packet.
    M2ts192,
    /// DVB with 16 bytes of Reed-Solomon parity after each packet.
    Rs204,
}

impl PacketSize {
    const ALL: [PacketSize; 3] = [PacketSize::Ts188, PacketSize::M2ts192, PacketSize::Rs204];

    /// Distance between two sync bytes in the input.
    #[must_use]
    pub const fn stride(self) -> usize {
        match self {
            PacketSize::Ts188 => 188,
            PacketSize::M2ts192 => 192,
            PacketSize::Rs204 => 204,
        }
    }
}

/// Counters describing what the aligner had to do.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AlignerStats {
    /// Whole packets emitted.
    pub packets: u64,
    /// Times the sync byte was missing where the packet grid said it must be.
    pub sync_losses: u64,
    /// Input bytes discarded: garbage, framing of broken packets, truncated tails.
    pub dropped_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lock {
    Hunting,
    Locked(PacketSize),
}

/// See the module documentation.
#[derive(Debug)]
pub struct PacketAligner {
    lock: Lock,
    /// Bytes held back between calls: a partial packet while locked, or a
    /// window of undecided bytes while hunting. Never more than a lock window.
    carry: Vec<u8>,
    stats: AlignerStats,
}

impl Default for PacketAligner {
    fn default() -> Self {
        Self::new()
    }
}

/// Bytes needed after a candidate sync byte to confirm a lock at any size.
const LOCK_WINDOW: usize = (LOCK_PACKETS - 1) * 204 + 1;

impl PacketAligner {
    #[must_use]
    pub fn new() -> Self {
        PacketAligner {
            lock: Lock::Hunting,
            carry: Vec::with_capacity(2 * LOCK_WINDOW),
            stats: AlignerStats::default(),
        }
    }

    #[must_use]
    pub fn stats(&self) -> AlignerStats {
        self.stats
    }

    /// The input framing currently locked onto, if any.
    #[cfg(test)]
    #[must_use]
    pub fn packet_size(&self) -> Option<PacketSize> {
        match self.lock {
            Lock::Hunting => None,
            Lock::Locked(size) => Some(size),
        }
    }

    /// Forgets held-back bytes and the lock (after a flush): the next input may
    /// start anywhere. Discarded bytes are counted as dropped.
    pub fn reset(&mut self) {
        self.stats.dropped_bytes += self.carry.len() as u64;
        self.carry.clear();
        self.lock = Lock::Hunting;
    }

    /// Feeds `data`; calls `emit` with runs of whole 188-byte packets, in order,
    /// and the offset of each run in `data` when it is a slice of it (`None`
    /// when it was assembled in the aligner's buffer). Every run's length is a
    /// non-zero multiple of [`PACKET_SIZE`] and every run starts with a sync byte.
    pub fn push(&mut self, data: &[u8], mut emit: impl FnMut(&[u8], Option<usize>)) {
        let input_len = data.len();
        let mut data = data;
        // First drain the carry, borrowing only as many new bytes as needed so
        // that the rest of `data` can be processed in place (zero copy).
        while !self.carry.is_empty() && !data.is_empty() {
            match self.lock {
                Lock::Locked(size) => {
                    let take = (size.stride() - self.carry.len()).min(data.len());
                    self.carry.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.carry.len() == size.stride() {
                        let carry = std::mem::take(&mut self.carry);
                        let used = self.process(&carry, None, &mut emit);
                        self.carry = carry;
                        self.carry.drain(..used);
                    }
                }
                Lock::Hunting => {
                    let take = LOCK_WINDOW.min(data.len());
                    self.carry.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    let carry = std::mem::take(&mut self.carry);
                    let used = self.process(&carry, None, &mut emit);
                    self.carry = carry;
                    self.carry.drain(..used);
                }
            }
        }
        if self.carry.is_empty() {
            let used = self.process(data, Some(input_len - data.len()), &mut emit);
            self.carry.extend_from_slice(&data[used..]);
        }
    }

    /// Declares the end of the stream: whatever is held back cannot become a
    /// whole packet any more and is counted as dropped.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8], Option<usize>)) {
        // A locked carry shorter than a packet is a truncated tail. A hunting
        // carry may still hold a valid run too short to confirm a lock at the
        // full window; accept it if every packet in it is sync-spaced.
        if let Lock::Locked(size) = self.lock
            && size != PacketSize::Ts188
            && self.carry.len() >= PACKET_SIZE
            && self.carry[0] == SYNC_BYTE
        {
            // The last M2TS/RS packet is whole without the framing after it.
            emit(&self.carry[..PACKET_SIZE], None);
            self.stats.packets += 1;
            self.stats.dropped_bytes += (self.carry.len() - PACKET_SIZE) as u64;
            self.carry.clear();
        } else if self.lock == Lock::Hunting && self.carry.len() >= PACKET_SIZE {
            let carry = std::mem::take(&mut self.carry);
            let used = self.process_tail(&carry, &mut emit);
            self.stats.dropped_bytes += (carry.len() - used) as u64;
        } else {
            self.stats.dropped_bytes += self.carry.len() as u64;
            self.carry.clear();
        }
    }

    /// At end of stream only: emits a short run of 188-byte packets found at the
    /// start of `buf` that was too short to lock on the usual window.
    fn process_tail(&mut self, buf: &[u8], mut emit: impl FnMut(&[u8], Option<usize>)) -> usize {
        let Some(start) = buf.iter().position(|&b| b == SYNC_BYTE) else {
            return 0;
        };
        let mut end = start;
        while end + PACKET_SIZE <= buf.len() && buf[end] == SYNC_BYTE {
            end += PACKET_SIZE;
        }
        // Need at least two sync bytes to trust it, or the packet to fill the tail.
        if end - start >= 2 * PACKET_SIZE || (end > start && end == buf.len()) {
            self.stats.dropped_bytes += start as u64;
            self.stats.packets += ((end - start) / PACKET_SIZE) as u64;
            emit(&buf[start..end], None);
            end
        } else {
            0
        }
    }

    /// Processes `buf` as far as it can; returns how many bytes were consumed.
    /// Unconsumed bytes must be offered again, with more input appended.
    /// `base`: where `buf` starts in the pushed input, if it is part of it.
    fn process(&mut self, buf: &[u8], base: Option<usize>, emit: &mut impl FnMut(&[u8], Option<usize>)) -> usize {
        let at = |offset: usize| base.map(|b| b + offset);
        let mut pos = 0;
        loop {
            match self.lock {
                Lock::Locked(size) => {
                    let stride = size.stride();
                    let run_start = pos;
                    let packets = sync_run(&buf[pos..], size);
                    pos += packets * stride;
                    self.stats.packets += packets as u64;
                    if stride == PACKET_SIZE {
                        if packets > 0 {
                            emit(&buf[run_start..pos], at(run_start));
                        }
                    } else {
                        for start in (run_start..pos).step_by(stride) {
                            emit(&buf[start..start + PACKET_SIZE], at(start));
                        }
                    }
                    if pos + stride <= buf.len() {
                        // A whole packet's worth of bytes without a sync byte.
                        self.stats.sync_losses += 1;
                        self.lock = Lock::Hunting;
                        continue;
                    }
                    // Not enough for a packet; but if what is there already
                    // lacks the sync byte, do not wait to find out.
                    if pos < buf.len() && buf[pos] != SYNC_BYTE {
                        self.stats.sync_losses += 1;
                        self.lock = Lock::Hunting;
                        continue;
                    }
                    return pos;
                }
                Lock::Hunting => match find_lock(&buf[pos..]) {
                    Search::Locked { offset, size } => {
                        // Packets are framed from their sync byte, so the M2TS
                        // arrival timestamp before the very first one counts here.
                        self.stats.dropped_bytes += offset as u64;
                        pos += offset;
                        self.lock = Lock::Locked(size);
                    }
                    Search::NeedMore { keep_from } => {
                        self.stats.dropped_bytes += keep_from as u64;
                        return pos + keep_from;
                    }
                },
            }
        }
    }
}

/// How many whole packets of `size` follow each other at the start of `buf`
/// with their sync byte in place. A loop of its own: this is the aligner's
/// whole cost on clean input.
fn sync_run(buf: &[u8], size: PacketSize) -> usize {
    match size {
        PacketSize::Ts188 => sync_run_of::<{ PacketSize::Ts188.stride() }>(buf),
        PacketSize::M2ts192 => sync_run_of::<{ PacketSize::M2ts192.stride() }>(buf),
        PacketSize::Rs204 => sync_run_of::<{ PacketSize::Rs204.stride() }>(buf),
    }
}

/// [`sync_run`] for one stride, known when compiled so that no index needs
/// a bounds check. Four packets a step, one branch for the four: the sync
/// bytes of a clean stream are all there.
fn sync_run_of<const STRIDE: usize>(buf: &[u8]) -> usize {
    let mut count = 0;
    for g in buf.chunks_exact(4 * STRIDE) {
        let lost =
            (g[0] ^ SYNC_BYTE) | (g[STRIDE] ^ SYNC_BYTE) | (g[2 * STRIDE] ^ SYNC_BYTE) | (g[3 * STRIDE] ^ SYNC_BYTE);
        if lost != 0 {
            break;
        }
        count += 4;
    }
    let rest = &buf[count * STRIDE..];
    count + rest.chunks_exact(STRIDE).take_while(|p| p[0] == SYNC_BYTE).count()
}

enum Search {
    /// A lock at `offset` with the given framing.
    Locked { offset: usize, size: PacketSize },
    /// No lock yet; bytes before `keep_from` can never start one.
    NeedMore { keep_from: usize },
}

fn find_lock(buf: &[u8]) -> Search {
    let mut from = 0;
    while let Some(rel) = buf[from..].iter().position(|&b| b == SYNC_BYTE) {
        let i = from + rel;
        let mut undecided = false;
        for size in PacketSize::ALL {
            let stride = size.stride();
            let last = i + (LOCK_PACKETS - 1) * stride;
            if last >= buf.len() {
                // Cannot tell yet; fail fast if an available position disproves it.
                if (1..LOCK_PACKETS)
                    .map(|k| i + k * stride)
                    .take_while(|&p| p < buf.len())
                    .all(|p| buf[p] == SYNC_BYTE)
                {
                    undecided = true;
                }
                continue;
            }
            if (1..LOCK_PACKETS).all(|k| buf[i + k * stride] == SYNC_BYTE) {
                if undecided {
                    // A smaller framing is still possible; wait for it.
                    return Search::NeedMore { keep_from: i };
                }
                return Search::Locked { offset: i, size };
            }
        }
        if undecided {
            return Search::NeedMore { keep_from: i };
        }
        from = i + 1;
    }
    Search::NeedMore { keep_from: buf.len() }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(super) fn stream(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let mut p = [0u8; PACKET_SIZE];
                p[0] = SYNC_BYTE;
                p[1] = (i >> 8) as u8 & 0x1F;
                p[2] = i as u8;
                for (j, b) in p.iter_mut().enumerate().skip(4) {
                    *b = (i * 7 + j) as u8 | 1; // never 0x47 at a packet start
                }
                p
            })
            .collect()
    }

    fn run(chunks: &[&[u8]]) -> (Vec<u8>, AlignerStats) {
        let mut a = PacketAligner::new();
        let mut out = Vec::new();
        for c in chunks {
            a.push(c, |run, offset| {
                assert_eq!(run.len() % PACKET_SIZE, 0);
                assert_eq!(run[0], SYNC_BYTE);
                if let Some(o) = offset {
                    assert_eq!(c.get(o..o + run.len()), Some(run), "run not at offset {o} of the input");
                }
                out.extend_from_slice(run);
            });
        }
        a.finish(|run, _| out.extend_from_slice(run));
        (out, a.stats())
    }

    #[test]
    fn runs_say_where_they_lie_in_the_input() {
        let data = stream(20);
        let mut a = PacketAligner::new();
        let mut origins = Vec::new();
        // The 5th packet is split across the two inputs.
        let (first, second) = data.split_at(4 * PACKET_SIZE + 100);
        for c in [first, second] {
            a.push(c, |run, offset| origins.push((run.len() / PACKET_SIZE, offset)));
        }
        assert_eq!(
            origins,
            [(4, Some(0)), (1, None), (15, Some(PACKET_SIZE - 100))],
            "whole runs in place, the split packet assembled"
        );
    }

    #[test]
    fn aligned_input_passes_through() {
        let s = stream(50);
        let (out, stats) = run(&[&s]);
        assert!(out == s);
        assert_eq!(stats.packets, 50);
        assert_eq!(stats.dropped_bytes, 0);
        assert_eq!(stats.sync_losses, 0);
    }

    #[test]
    fn any_chunking_gives_identical_output() {
        let s = stream(40);
        for size in [1, 2, 7, 187, 188, 189, 376, 1316, 4096] {
            let chunks: Vec<&[u8]> = s.chunks(size).collect();
            let (out, stats) = run(&chunks);
            assert!(out == s, "chunk size {size}: {} bytes out", out.len());
            assert_eq!(stats.dropped_bytes, 0, "chunk size {size}");
        }
    }

    #[test]
    fn garbage_is_skipped_and_counted() {
        let s = stream(30);
        let mut input = vec![0x47, 1, 2, 0x47, 9];
        input.extend_from_slice(&s[..10 * PACKET_SIZE]);
        input.extend_from_slice(&[0xAA; 77]);
        input.extend_from_slice(&s[10 * PACKET_SIZE..]);
        for size in [1, 13, 188, 1316, 1 << 16] {
            let chunks: Vec<&[u8]> = input.chunks(size).collect();
            let (out, stats) = run(&chunks);
            assert!(out == s, "chunk size {size}: {} bytes out", out.len());
            assert_eq!(stats.dropped_bytes, 5 + 77, "chunk size {size}");
            assert_eq!(stats.sync_losses, 1, "chunk size {size}");
        }
    }

    #[test]
    fn m2ts_and_rs_framing_are_reduced_to_188() {
        let s = stream(20);
        for (size, extra) in [(PacketSize::M2ts192, 4), (PacketSize::Rs204, 16)] {
            let mut input = Vec::new();
            for p in s.chunks(PACKET_SIZE) {
                if size == PacketSize::M2ts192 {
                    input.extend_from_slice(&[0x12, 0x34, 0x56, 0x78][..extra]);
                    input.extend_from_slice(p);
                } else {
                    input.extend_from_slice(p);
                    input.extend_from_slice(&[0x33; 16]);
                }
            }
            for chunk in [1, 100, 192, 204, 5000] {
                let chunks: Vec<&[u8]> = input.chunks(chunk).collect();
                let mut a = PacketAligner::new();
                let mut out = Vec::new();
                for c in chunks {
                    a.push(c, |run, _| out.extend_from_slice(run));
                }
                a.finish(|run, _| out.extend_from_slice(run));
                assert_eq!(a.packet_size(), Some(size));
                assert!(out == s, "{size:?} chunk {chunk}: {} bytes out", out.len());
                // Only the first packet's 4-byte arrival timestamp precedes a sync byte.
                let expected_drop = if size == PacketSize::M2ts192 { 4 } else { 0 };
                assert_eq!(a.stats().dropped_bytes, expected_drop, "{size:?} chunk {chunk}");
            }
        }
    }

    #[test]
    fn truncated_tail_is_dropped_not_emitted() {
        let s = stream(10);
        let (out, stats) = run(&[&s[..s.len() - 100]]);
        assert_eq!(out, s[..9 * PACKET_SIZE]);
        assert_eq!(stats.dropped_bytes, 88);
    }

    #[test]
    fn short_stream_is_emitted_at_finish() {
        let s = stream(2);
        let (out, _) = run(&[&s]);
        assert!(out == s);
    }

    #[test]
    fn single_stray_sync_byte_in_garbage_does_not_lock() {
        let mut input = vec![0u8; 1000];
        input[10] = SYNC_BYTE;
        input[198] = SYNC_BYTE; // two in a row at 188 spacing is still not enough
        let (out, stats) = run(&[&input]);
        assert!(out.is_empty());
        assert_eq!(stats.dropped_bytes, 1000);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// The unit tests' stream, with a `seed` so different cases differ.
    fn valid_stream(n: usize, seed: u8) -> Vec<u8> {
        let mut s = super::tests::stream(n);
        for p in s.chunks_mut(PACKET_SIZE) {
            p[3] = p[3].wrapping_add(seed) | 1; // never a sync byte
        }
        s
    }

    fn align(chunks: impl Iterator<Item = Vec<u8>>) -> (Vec<u8>, AlignerStats) {
        let mut a = PacketAligner::new();
        let mut out = Vec::new();
        for c in chunks {
            a.push(&c, |run, _| {
                assert!(run.len() % PACKET_SIZE == 0 && run[0] == SYNC_BYTE);
                out.extend_from_slice(run);
            });
        }
        a.finish(|run, _| out.extend_from_slice(run));
        (out, a.stats())
    }

    /// Splits `data` at the given (sorted, deduplicated) cut points.
    fn split(data: &[u8], mut cuts: Vec<usize>) -> Vec<Vec<u8>> {
        cuts.retain(|&c| c < data.len());
        cuts.sort_unstable();
        cuts.dedup();
        let mut out = Vec::new();
        let mut from = 0;
        for c in cuts.into_iter().chain(std::iter::once(data.len())) {
            out.push(data[from..c].to_vec());
            from = c;
        }
        out
    }

    proptest! {
        /// Arbitrary chunking of a valid stream gives exactly the stream.
        #[test]
        fn chunking_is_invisible(n in 1usize..40, seed in any::<u8>(), cuts in prop::collection::vec(0usize..8000, 0..60)) {
            let s = valid_stream(n, seed);
            let (out, stats) = align(split(&s, cuts).into_iter());
            prop_assert!(out == s);
            prop_assert_eq!(stats.dropped_bytes, 0);
        }

        /// Garbage anywhere never produces a misaligned or partial packet,
        /// and every input byte is either emitted or counted as dropped.
        #[test]
        fn arbitrary_bytes_are_emitted_or_counted(data in prop::collection::vec(any::<u8>(), 0..4000), cuts in prop::collection::vec(0usize..4000, 0..20)) {
            let (out, stats) = align(split(&data, cuts).into_iter());
            prop_assert_eq!(out.len() % PACKET_SIZE, 0);
            prop_assert!(out.len() as u64 + stats.dropped_bytes <= data.len() as u64);
        }

        /// A valid stream with garbage inserted: the same chunking-independent
        /// output whichever way it is cut.
        #[test]
        fn resync_is_chunking_independent(n in 8usize..30, at in 1usize..7, junk in prop::collection::vec(any::<u8>(), 1..300), cuts in prop::collection::vec(0usize..8000, 0..40)) {
            let s = valid_stream(n, 7);
            let mut input = s[..at * PACKET_SIZE].to_vec();
            input.extend_from_slice(&junk);
            input.extend_from_slice(&s[at * PACKET_SIZE..]);
            let (whole, _) = align(std::iter::once(input.clone()));
            let (chunked, _) = align(split(&input, cuts).into_iter());
            prop_assert!(whole == chunked);
        }
    }
}
