// SPDX-License-Identifier: MPL-2.0
//! One segment file of the ring: its name, what is known about it, and the
//! buffered writer that fills it.

use std::fmt;
use std::fs::File;
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::layout::SegmentNumber;
use crate::layout::segment_file_name;
use crate::platform::{self, DirHandle};
use crate::ts::PACKET_SIZE;

use super::reservation::Reservation;

/// Pending bytes are written out each time they reach past a multiple of
/// this file offset, exactly up to that multiple; what follows stays
/// pending (the rest of a packet cut there too). Each write then fills one
/// aligned stretch of the file, which the kernel caches in large pages
/// (ext4 gives a write its pages in sizes up to the write's length, aligned
/// to the file offset), from input still in the CPU cache: 64 KiB input
/// buffers are written one or two at a time while hot instead of sixteen at
/// a time a megabyte later (docs/performance.md, 2026-12-06 fifth).
pub const WRITE_BLOCK: usize = 128 * 1024;
/// Capacity of the block small runs are copied into; reaching it also
/// writes everything pending. So that the copy and the kernel's read of it
/// stay in the CPU cache: with 1316-byte buffers a 1 MiB block cost more in
/// cache misses than the extra system calls. Borrowed runs this large are
/// not copied: they are written from the caller's memory at once.
pub const COPY_BLOCK: usize = 256 * 1024;
/// Bytes go into the page cache fastest from an address congruent to their
/// file offset modulo this: the kernel's copy costs 20 to 25 % more when
/// source and destination are not aligned alike (docs/performance.md). A
/// copied run is placed so in the copy block (at most this many bytes of
/// padding there, never written); input written from where it lies is
/// asked for in memory aligned to this by the element, and each segment
/// laid out by [`stuffing_packets`].
pub const WRITE_ALIGNMENT: usize = 32;

/// How many null packets ([`crate::ts::NULL_PACKET`]) to write before a
/// packet at `stream_offset` in the stream of packets received, which would
/// otherwise go to file offset `file_offset`, so that it goes to an offset
/// congruent to its stream offset modulo [`WRITE_ALIGNMENT`]. Input read in
/// blocks of a multiple of that into memory aligned to it (a file, with the
/// memory the element asks for) lies at addresses congruent to its stream
/// offsets, so every packet of the segment that is written from where it
/// lies is then copied at full speed. A packet moves the offset by
/// 188 = 4 * 47 bytes: there is a count below 8 when the two offsets are a
/// multiple of four bytes apart, and none otherwise (0 then).
#[must_use]
pub fn stuffing_packets(stream_offset: u64, file_offset: u64) -> usize {
    let alignment = WRITE_ALIGNMENT as u64;
    let gap = stream_offset.wrapping_sub(file_offset) % alignment;
    (0..WRITE_ALIGNMENT / 4)
        .find(|&k| (k as u64 * PACKET_SIZE as u64) % alignment == gap)
        .unwrap_or(0)
}
/// Bytes written between two checks that the file was not deleted.
const ALIVE_CHECK_INTERVAL: u64 = 4 * 1024 * 1024;
/// Input bytes owned elsewhere (a GStreamer buffer, say) that a segment may
/// keep a reference to until they are written instead of copying them.
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Whole packets handed to a writer: borrowed for the call only (copied if
/// not written at once), or a range of shared input, kept by reference until
/// written. Whether input may be shared is decided once, where it enters
/// (the element: large buffers that no pool waits for); every range of it
/// is then kept, whatever its size.
#[derive(Clone)]
pub struct Chunk<'a> {
    bytes: &'a [u8],
    shared: Option<(&'a SharedBytes, Range<usize>)>,
}

impl<'a> Chunk<'a> {
    /// Bytes the writer copies if it cannot write them at once.
    #[must_use]
    pub fn borrowed(bytes: &'a [u8]) -> Self {
        Chunk { bytes, shared: None }
    }

    /// `range` of `input`, which the writer may keep; `None` if the range
    /// does not lie inside it.
    #[must_use]
    pub fn shared(input: &'a SharedBytes, range: Range<usize>) -> Option<Self> {
        let bytes = (**input).as_ref().get(range.clone())?;
        Some(Chunk {
            bytes,
            shared: Some((input, range)),
        })
    }

    #[must_use]
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// One stretch of pending bytes, in file order.
enum Piece {
    /// A range of the writer's copy block.
    Copied(Range<usize>),
    /// A range of shared input, kept alive until written.
    Shared(SharedBytes, Range<usize>),
}

/// Bytes accepted for a segment and not yet written: borrowed runs copied
/// into one block, shared runs by reference. Its allocations outlive the
/// segment (see [`SegmentWriter::take_buffers`]), so rotating segments does
/// not fault in a fresh megabyte each time.
#[derive(Default)]
pub struct PendingWrites {
    block: Vec<u8>,
    pieces: Vec<Piece>,
    len: usize,
}

impl PendingWrites {
    /// Whether `chunk` would take the copy block past [`COPY_BLOCK`]: time
    /// to write everything pending first.
    fn would_overflow(&self, chunk: &Chunk<'_>) -> bool {
        chunk.shared.is_none() && self.block.len() + chunk.bytes.len() > COPY_BLOCK
    }

    /// Adds `chunk`, which goes to the file at `file_offset`.
    fn push(&mut self, chunk: Chunk<'_>, file_offset: u64) {
        let data = chunk.bytes;
        self.len += data.len();
        if let Some((input, range)) = chunk.shared {
            self.pieces.push(Piece::Shared(Arc::clone(input), range));
            return;
        }
        if self.block.capacity() == 0 {
            // Room for the padding too: the block never moves once made.
            self.block.reserve_exact(COPY_BLOCK + WRITE_ALIGNMENT);
        }
        if let Some(Piece::Copied(range)) = self.pieces.last_mut()
            && range.end == self.block.len()
        {
            // Right after the last copied run in the file as in the block.
            self.block.extend_from_slice(data);
            range.end = self.block.len();
            return;
        }
        // Truncating the offset keeps its remainder modulo the alignment.
        let address = self.block.as_ptr() as usize + self.block.len();
        let padding = (file_offset as usize).wrapping_sub(address) % WRITE_ALIGNMENT;
        self.block.resize(self.block.len() + padding, 0);
        let start = self.block.len();
        self.block.extend_from_slice(data);
        self.pieces.push(Piece::Copied(start..self.block.len()));
    }

    /// The pending bytes in order.
    fn slices(&self) -> impl Iterator<Item = &[u8]> {
        self.pieces.iter().map(|piece| match piece {
            Piece::Copied(range) => &self.block[range.clone()],
            Piece::Shared(shared, range) => &shared.as_ref().as_ref()[range.clone()],
        })
    }

    /// Forgets the first `n` pending bytes (written). Copied runs still
    /// pending move to the front of the copy block, by a multiple of
    /// [`WRITE_ALIGNMENT`] so that each keeps its alignment.
    fn consume_front(&mut self, n: usize) {
        if n >= self.len {
            self.clear();
            return;
        }
        self.len -= n;
        let mut left = n;
        let mut written = 0;
        for piece in &mut self.pieces {
            let range = match piece {
                Piece::Copied(range) | Piece::Shared(_, range) => range,
            };
            if left < range.len() {
                range.start += left;
                break;
            }
            left -= range.len();
            written += 1;
        }
        self.pieces.drain(..written);
        let first_copied = self.pieces.iter().find_map(|piece| match piece {
            Piece::Copied(range) => Some(range.start),
            Piece::Shared(..) => None,
        });
        let Some(start) = first_copied else {
            self.block.clear();
            return;
        };
        let shift = start - start % WRITE_ALIGNMENT;
        if shift == 0 {
            return;
        }
        self.block.drain(..shift);
        for piece in &mut self.pieces {
            if let Piece::Copied(range) = piece {
                *range = range.start - shift..range.end - shift;
            }
        }
    }

    fn clear(&mut self) {
        self.block.clear();
        self.pieces.clear();
        self.len = 0;
    }
}

/// The segment being written: a file plus the bytes waiting to go into it.
///
/// Only whole packets are ever accepted, and a failed write is undone (the
/// file is cut back to its last whole packet and the cursor rewound), so
/// after a flush or a failure the file on disk ends on a packet boundary.
/// Between writes it may end inside a packet, cut at a [`WRITE_BLOCK`]
/// boundary: readers take whole packets only, and that packet's rest comes
/// with the next write. Data that could not be
/// written stays pending: the caller either retries ([`Self::flush`]) or
/// gives it up ([`Self::discard_pending`]).
pub struct SegmentWriter {
    sequence: SegmentNumber,
    path: PathBuf,
    file: File,
    pending: PendingWrites,
    /// Bytes of whole packets known to be in the file.
    flushed: u64,
    /// `flushed` when the file was last checked to still be linked.
    checked_alive_at: u64,
    /// Length of a reused file's old content: past `flushed`, up to here,
    /// the file holds an evicted segment's packets until it is cut to length.
    stale_end: u64,
    /// Bytes of the first pending packet already in the file past
    /// `flushed`: a write that ends on a [`WRITE_BLOCK`] boundary may end
    /// inside a packet, which stays pending until it is in the file whole.
    /// Always less than a packet.
    ahead: usize,
    /// Disk blocks reserved ahead of the writes (see [`super::reservation`]).
    reservation: Reservation,
}

impl fmt::Debug for SegmentWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentWriter")
            .field("path", &self.path)
            .field("flushed", &self.flushed)
            .field("pending", &self.pending.len)
            .finish_non_exhaustive()
    }
}

impl SegmentWriter {
    /// Creates the segment file; fails if anything already exists at its
    /// path. On success the writer takes over `buffers` (emptied, capacity kept).
    pub fn create(dir: &DirHandle, sequence: SegmentNumber, buffers: &mut PendingWrites) -> io::Result<Self> {
        let name = segment_file_name(sequence);
        let file = dir.create_new(&name)?;
        let path = dir.path().join(name);
        Ok(Self::reuse(
            sequence,
            path,
            file,
            0,
            dir.reserves_blocks_ahead(),
            buffers,
        ))
    }

    /// Writes segment `sequence` over `file`, an evicted segment's file
    /// already renamed to `path` and `stale_end` bytes long (0: a new file;
    /// see [`super::reuse`]); it is cut to length when closed. With
    /// `reserve_ahead`, blocks past the old content are reserved ahead of
    /// the writes (see [`super::reservation`]).
    pub fn reuse(
        sequence: SegmentNumber,
        path: PathBuf,
        file: File,
        stale_end: u64,
        reserve_ahead: bool,
        buffers: &mut PendingWrites,
    ) -> Self {
        let mut pending = std::mem::take(buffers);
        pending.clear();
        SegmentWriter {
            sequence,
            path,
            file,
            pending,
            flushed: 0,
            checked_alive_at: 0,
            stale_end,
            ahead: 0,
            reservation: Reservation::new(reserve_ahead, stale_end),
        }
    }

    /// Bytes the file occupies: what was accepted, or a reused file's old
    /// length while that is more.
    #[must_use]
    pub fn disk_len(&self) -> u64 {
        self.len().max(self.stale_end)
    }

    /// Whether the file still holds old content past what was written.
    #[must_use]
    pub fn has_stale_tail(&self) -> bool {
        self.stale_end > self.flushed
    }

    #[must_use]
    pub fn sequence(&self) -> SegmentNumber {
        self.sequence
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes accepted so far, flushed or not.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.flushed + self.pending.len as u64
    }

    /// Bytes known to be in the file.
    #[must_use]
    pub fn flushed(&self) -> u64 {
        self.flushed
    }

    /// Bytes accepted but not yet in the file.
    #[must_use]
    pub fn pending(&self) -> u64 {
        self.pending.len as u64
    }

    /// Appends whole packets. On error the packets are kept pending.
    pub fn write(&mut self, chunk: Chunk<'_>) -> io::Result<()> {
        let data = chunk.bytes();
        debug_assert_eq!(data.len() % PACKET_SIZE, 0);
        if chunk.shared.is_none() && data.len() >= COPY_BLOCK {
            // Too large to copy: from the caller's memory to the file
            // together with whatever is pending, in one vectored write.
            let result = self.write_pending_through(self.pending.len, data);
            if result.is_err() {
                self.push_pending(chunk);
            }
            return result;
        }
        if self.pending.would_overflow(&chunk)
            && let Err(e) = self.flush()
        {
            self.push_pending(chunk);
            return Err(e);
        }
        self.push_pending(chunk);
        let end = self.len();
        let boundary = end - end % WRITE_BLOCK as u64;
        if boundary <= self.flushed + self.ahead as u64 {
            return Ok(());
        }
        self.write_pending_through((boundary - self.flushed) as usize, &[])
    }

    fn push_pending(&mut self, chunk: Chunk<'_>) {
        let file_offset = self.len();
        self.pending.push(chunk, file_offset);
    }

    /// Writes the pending bytes not yet in the file up to `through` (of
    /// all pending), then `extra` (only with `through` all of them),
    /// completely, with vectored writes. The packets now whole in the file
    /// stop being pending; a packet cut at `through` stays pending, its
    /// head counted in `ahead`. On error the file is cut back to its last
    /// whole packet and every pending byte stays pending.
    fn write_pending_through(&mut self, through: usize, extra: &[u8]) -> io::Result<()> {
        debug_assert!(through <= self.pending.len && (extra.is_empty() || through == self.pending.len));
        let end = through + extra.len();
        self.reservation.reserve_to(&self.file, self.flushed + end as u64);
        let mut at = self.ahead;
        while at < end {
            let slices = byte_window(self.pending.slices().chain(std::iter::once(extra)), at, through, end);
            match self.file.write_vectored(&slices) {
                Ok(0) => {
                    self.rewind();
                    return Err(io::Error::from(io::ErrorKind::WriteZero));
                }
                Ok(n) => at += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.rewind();
                    return Err(e);
                }
            }
        }
        // Pending bytes start on a packet boundary, and `extra` is whole packets.
        let whole = through - through % PACKET_SIZE;
        self.pending.consume_front(whole);
        self.ahead = through - whole;
        self.flushed += (whole + extra.len()) as u64;
        // Written into a file someone deleted, data would vanish silently;
        // one fstat per few MiB notices it without costing the write path.
        if self.flushed >= self.checked_alive_at + ALIVE_CHECK_INTERVAL {
            self.check_alive()?;
        }
        Ok(())
    }

    /// The segment is expected to grow about `bytes` long (the one before
    /// it did): see [`Reservation::expect_length`].
    pub fn expect_length(&mut self, bytes: u64) {
        self.reservation.expect_length(bytes);
    }

    /// Where reserving blocks stops (see [`Self::expect_length`]).
    #[cfg(test)]
    pub(super) fn reservation_limit(&self) -> Option<u64> {
        self.reservation.limit()
    }

    /// Whether blocks are reserved past what was written: the file is to be
    /// cut to its length to release them.
    #[must_use]
    pub fn reserved_past_end(&self) -> bool {
        self.reservation.past(self.flushed)
    }

    /// The file was cut to `len` bytes: nothing is reserved past it.
    fn cut_to(&mut self, len: u64) {
        self.flushed = len;
        self.ahead = 0;
        self.stale_end = 0;
        self.reservation.cut_to(len);
    }

    /// Hands pending bytes to the operating system; on error they stay
    /// pending and the file is back at its last good length.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.len > 0 {
            self.write_pending_through(self.pending.len, &[])?;
        }
        Ok(())
    }

    /// Fails if the file has been deleted from the ring directory.
    pub fn check_alive(&mut self) -> io::Result<()> {
        self.checked_alive_at = self.flushed;
        if platform::is_unlinked(&self.file) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the segment file was deleted while being written",
            ));
        }
        Ok(())
    }

    /// Gives up the pending bytes; returns how many there were.
    pub fn discard_pending(&mut self) -> u64 {
        let n = self.pending.len as u64;
        self.pending.clear();
        if self.ahead > 0 {
            // The head of a packet given up: no torn packet stays on disk.
            self.rewind();
        }
        n
    }

    /// Hands back the pending-bytes allocations for the next segment's
    /// writer. Call after a successful [`Self::flush`] or
    /// [`Self::discard_pending`]: anything still pending is dropped.
    pub fn take_buffers(&mut self) -> PendingWrites {
        let mut buffers = std::mem::take(&mut self.pending);
        buffers.clear();
        buffers
    }

    /// Cuts the file back to `len` bytes (a packet boundary, at most
    /// [`Self::flushed`]); pending bytes must have been discarded.
    pub fn truncate(&mut self, len: u64) -> io::Result<()> {
        debug_assert!(self.pending.len == 0 && len <= self.flushed && len.is_multiple_of(PACKET_SIZE as u64));
        self.file.set_len(len)?;
        self.cut_to(len);
        self.file.seek(SeekFrom::Start(len))?;
        Ok(())
    }

    /// After a failed write: part of the data may have reached the file. Cut
    /// it back so that no torn packet stays on disk, and rewind the cursor so
    /// the next write leaves no hole. If even that fails, the caller abandons
    /// the segment (which removes a file it cannot trust).
    fn rewind(&mut self) {
        if self.file.set_len(self.flushed).is_ok() {
            self.cut_to(self.flushed);
        }
        let _ = self.file.seek(SeekFrom::Start(self.flushed));
        // The next write starts at the first pending byte again.
        self.ahead = 0;
    }

    /// Cuts a reused file's old content and unused reserved blocks off and
    /// closes the file; with `sync`, makes it durable first. Call
    /// [`Self::flush`] first: pending bytes are not written here. Returns
    /// the segment's length.
    pub fn close(self, sync: bool) -> Result<u64, CloseError> {
        debug_assert!(self.pending.len == 0, "close with pending bytes");
        if self.has_stale_tail() || self.reserved_past_end() {
            self.file.set_len(self.flushed).map_err(CloseError::CutToLength)?;
        }
        if sync {
            self.file.sync_data().map_err(CloseError::Sync)?;
        }
        Ok(self.flushed)
    }
}

/// Why closing a segment failed; its data was written either way.
#[derive(Debug)]
pub enum CloseError {
    /// A reused file's old content, or blocks reserved past its end, could
    /// not be cut off.
    CutToLength(io::Error),
    /// The segment could not be made durable.
    Sync(io::Error),
}

/// Bytes `from..to` of the pending bytes (the first `pending` of `slices`)
/// followed by the last slice, as I/O slices: what a write still has to
/// hand over after the kernel took `from` bytes. No slice is ever empty.
fn byte_window<'a>(slices: impl Iterator<Item = &'a [u8]>, from: usize, pending: usize, to: usize) -> Vec<IoSlice<'a>> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut pending_left = pending;
    let mut slices = slices.peekable();
    while let Some(s) = slices.next() {
        // Pending slices are cut at `pending`; the last one is `extra`.
        let s = if slices.peek().is_some() {
            let s = &s[..s.len().min(pending_left)];
            pending_left -= s.len();
            s
        } else {
            s
        };
        let (start, end) = (at, at + s.len());
        at = end;
        if end <= from || start >= to {
            continue;
        }
        let lo = from.saturating_sub(start);
        let hi = s.len() - end.saturating_sub(to);
        if lo < hi {
            out.push(IoSlice::new(&s[lo..hi]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` packets whose bytes say where they are, so misordering shows.
    fn packets(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let mut p = [seed.wrapping_add(i as u8); PACKET_SIZE];
                p[0] = 0x47;
                p
            })
            .collect()
    }

    fn create(dir: &Path, sequence: SegmentNumber) -> SegmentWriter {
        let dir = DirHandle::open(dir).expect("open dir");
        let dir = &dir;
        SegmentWriter::create(dir, sequence, &mut PendingWrites::default()).expect("create")
    }

    #[test]
    fn writer_gathers_small_writes_until_flushed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = create(dir.path(), SegmentNumber::new(1));
        let (a, b) = (packets(7, 1), packets(WRITE_BLOCK / PACKET_SIZE - 8, 2));
        w.write(Chunk::borrowed(&a)).expect("write");
        w.write(Chunk::borrowed(&b)).expect("write");
        assert_eq!(
            std::fs::metadata(w.path()).expect("stat").len(),
            0,
            "nothing written yet"
        );
        let total = (a.len() + b.len()) as u64;
        assert_eq!(w.len(), total);
        let path = w.path().to_owned();
        w.flush().expect("flush");
        assert_eq!(w.close(false).expect("close"), total);
        assert_eq!(std::fs::read(&path).expect("read"), [a, b].concat());
        assert!(
            SegmentWriter::create(
                &DirHandle::open(dir.path()).expect("open dir"),
                SegmentNumber::new(1),
                &mut PendingWrites::default()
            )
            .is_err(),
            "never clobbers"
        );
    }

    #[test]
    fn writer_keeps_large_shared_runs_by_reference_and_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = create(dir.path(), SegmentNumber::new(1));
        let input: Arc<Vec<u8>> = Arc::new(packets(400, 10));
        let shared: SharedBytes = input.clone();
        let small = packets(3, 100);
        let bytes = (*shared).as_ref();
        let (head, tail) = bytes.split_at(PACKET_SIZE * 150);
        let part = |range: Range<usize>| Chunk::shared(&shared, range).expect("inside the input");
        let split = head.len();
        w.write(part(0..split)).expect("write");
        w.write(Chunk::borrowed(&small)).expect("write");
        w.write(part(split..split + PACKET_SIZE)).expect("write");
        w.write(part(split + PACKET_SIZE..bytes.len())).expect("write");
        // Held, not copied: the writer owns references to the input.
        assert_eq!(
            Arc::strong_count(&input),
            5,
            "every shared range kept by reference, small ones too"
        );
        w.flush().expect("flush");
        assert_eq!(Arc::strong_count(&input), 2, "released once written");
        let path = w.path().to_owned();
        assert_eq!(w.close(false).expect("close"), (PACKET_SIZE * 403) as u64);
        assert_eq!(std::fs::read(&path).expect("read"), [head, &small, tail].concat());
    }

    #[test]
    fn shared_chunks_lie_inside_their_input() {
        let shared: SharedBytes = Arc::new(packets(2, 0));
        let len = 2 * PACKET_SIZE;
        assert!(Chunk::shared(&shared, 0..len + 1).is_none());
        assert!(Chunk::shared(&shared, len..len + 1).is_none());
        let inside = Chunk::shared(&shared, PACKET_SIZE..len).expect("inside");
        assert_eq!(inside.bytes(), &(*shared).as_ref()[PACKET_SIZE..]);
    }

    #[test]
    fn a_borrowed_run_too_large_to_copy_is_written_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = create(dir.path(), SegmentNumber::new(1));
        let small = packets(2, 1);
        let big = packets(COPY_BLOCK / PACKET_SIZE + 1, 2);
        w.write(Chunk::borrowed(&small)).expect("write");
        w.write(Chunk::borrowed(&big)).expect("write");
        assert_eq!(w.pending(), 0);
        assert_eq!(w.flushed(), (small.len() + big.len()) as u64);
        assert_eq!(std::fs::read(w.path()).expect("read"), [small, big].concat());
    }

    /// The file's length after each write: what was written of it.
    fn file_len(w: &SegmentWriter) -> u64 {
        std::fs::metadata(w.path()).expect("stat").len()
    }

    /// Flushes and closes `w`, checks that the flush left nothing pending
    /// and the length `close` reports against the file's, and returns what
    /// the file holds.
    fn finish(mut w: SegmentWriter) -> Vec<u8> {
        w.flush().expect("flush");
        assert_eq!(w.pending(), 0, "the flush wrote everything");
        let path = w.path().to_owned();
        let len = w.close(false).expect("close");
        let data = std::fs::read(&path).expect("read");
        assert_eq!(len, data.len() as u64, "close reports the file's length");
        data
    }

    #[test]
    fn writes_end_on_block_boundaries_and_keep_the_cut_packet_pending() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = create(dir.path(), SegmentNumber::new(1));
        // 64 KiB-sized shared input, its whole packets as the element hands
        // them over; a copied run now and then, as the aligner's carries.
        let input: SharedBytes = Arc::new(packets(348, 9));
        let carry = packets(1, 200);
        let mut expected = Vec::new();
        for i in 0..9 {
            w.write(Chunk::shared(&input, 0..348 * PACKET_SIZE).expect("inside"))
                .expect("write");
            expected.extend_from_slice((*input).as_ref());
            if i % 2 == 0 {
                w.write(Chunk::borrowed(&carry)).expect("write");
                expected.extend_from_slice(&carry);
            }
            let block = WRITE_BLOCK as u64;
            let in_file = file_len(&w);
            assert_eq!(
                in_file,
                w.len() / block * block,
                "written up to the last block boundary"
            );
            assert!(w.flushed().is_multiple_of(PACKET_SIZE as u64));
            assert!(w.flushed() <= in_file && in_file < w.flushed() + PACKET_SIZE as u64);
            assert_eq!(w.pending(), w.len() - w.flushed(), "the cut packet stays pending");
            assert_eq!(
                std::fs::read(w.path()).expect("read"),
                expected[..in_file as usize],
                "what is in the file is the input, in order"
            );
        }
        assert!(file_len(&w) > 2 * WRITE_BLOCK as u64, "several blocks were written");
        assert_eq!(finish(w), expected);
    }

    #[test]
    fn copied_runs_stay_aligned_after_a_block_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = create(dir.path(), SegmentNumber::new(1));
        // 1316-byte input, all copied, past a block boundary.
        let mut expected = Vec::new();
        let mut i = 0u8;
        while file_len(&w) == 0 {
            let run = packets(7, i);
            w.write(Chunk::borrowed(&run)).expect("write");
            expected.extend_from_slice(&run);
            i = i.wrapping_add(7);
        }
        assert!(w.pending() > 0, "the packet cut at the boundary stays");
        let mut file_offset = w.flushed() as usize;
        for piece in &w.pending.pieces {
            let Piece::Copied(range) = piece else {
                panic!("only copied runs here")
            };
            let address = w.pending.block.as_ptr() as usize + range.start;
            assert_eq!(address % WRITE_ALIGNMENT, file_offset % WRITE_ALIGNMENT);
            file_offset += range.len();
        }
        assert!(w.pending.block.len() < WRITE_BLOCK, "what was written left the block");
        assert_eq!(finish(w), expected);
    }

    #[test]
    fn a_packet_cut_at_a_block_boundary_is_not_left_torn_when_given_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = create(dir.path(), SegmentNumber::new(1));
        let input: SharedBytes = Arc::new(packets(WRITE_BLOCK / PACKET_SIZE + 3, 4));
        w.write(Chunk::shared(&input, 0..(*input).as_ref().len()).expect("inside"))
            .expect("write");
        assert!(!file_len(&w).is_multiple_of(PACKET_SIZE as u64), "a packet was cut");
        let pending = w.pending();
        assert_eq!(w.discard_pending(), pending);
        assert_eq!(file_len(&w), w.flushed(), "its head was cut off");
        let path = w.path().to_owned();
        let flushed = w.flushed();
        assert_eq!(w.close(false).expect("close"), flushed);
        assert_eq!(
            std::fs::read(&path).expect("read"),
            (*input).as_ref()[..flushed as usize]
        );
    }

    /// Unix only: elsewhere an open file cannot be deleted.
    #[cfg(unix)]
    #[test]
    fn a_file_deleted_while_written_is_noticed_within_a_few_mib() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = create(dir.path(), SegmentNumber::new(1));
        std::fs::remove_file(w.path()).expect("delete");
        let input: SharedBytes = Arc::new(packets(348, 5));
        let mut written = 0u64;
        let error = loop {
            match w.write(Chunk::shared(&input, 0..348 * PACKET_SIZE).expect("inside")) {
                Ok(()) => written += 348 * PACKET_SIZE as u64,
                Err(e) => break e,
            }
            assert!(written <= 2 * ALIVE_CHECK_INTERVAL, "never noticed");
        };
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }

    /// Blocks reserved ahead never show in the file's size, and none are
    /// left past the end once the segment is closed. The writer is told to
    /// reserve whatever the filesystem (ext4, tmpfs and XFS all can), so
    /// the test checks the reservation wherever it runs.
    #[cfg(target_os = "linux")]
    #[test]
    fn blocks_reserved_ahead_are_invisible_and_released_at_close() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let handle = DirHandle::open(dir.path()).expect("open dir");
        let name = segment_file_name(SegmentNumber::new(1));
        let file = handle.create_new(&name).expect("create");
        let mut buffers = PendingWrites::default();
        let mut w = SegmentWriter::reuse(
            SegmentNumber::new(1),
            dir.path().join(name),
            file,
            0,
            true,
            &mut buffers,
        );
        let data = packets(WRITE_BLOCK / PACKET_SIZE + 1, 3);
        w.write(Chunk::borrowed(&data)).expect("write");
        w.flush().expect("flush");
        let open = std::fs::metadata(w.path()).expect("metadata");
        assert_eq!(open.len(), data.len() as u64, "the reservation changed the size");
        assert!(
            open.blocks() * 512 >= crate::ring::reservation::STEP,
            "{} bytes of blocks for a {} byte file: nothing reserved ahead",
            open.blocks() * 512,
            open.len()
        );
        assert!(w.reserved_past_end());
        let path = w.path().to_owned();
        assert_eq!(w.close(false).expect("close"), data.len() as u64);
        let closed = std::fs::metadata(&path).expect("metadata");
        assert_eq!(closed.len(), data.len() as u64);
        let page_rounded = data.len().div_ceil(4096) as u64 * 4096;
        assert!(
            closed.blocks() * 512 <= page_rounded,
            "{} bytes of blocks left for {} bytes",
            closed.blocks() * 512,
            closed.len()
        );
        assert_eq!(std::fs::read(&path).expect("read"), data);
    }

    /// With an expected length, the blocks are reserved at the first write
    /// up to 1/16 short of it and no further, so a segment that grows that
    /// long ends with nothing reserved past its end: closing it needs no cut.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_segment_of_its_expected_length_closes_with_nothing_to_cut() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let handle = DirHandle::open(dir.path()).expect("open dir");
        let name = segment_file_name(SegmentNumber::new(1));
        let file = handle.create_new(&name).expect("create");
        let mut buffers = PendingWrites::default();
        let mut w = SegmentWriter::reuse(
            SegmentNumber::new(1),
            dir.path().join(name),
            file,
            0,
            true,
            &mut buffers,
        );
        let data = packets(6400, 5);
        let expected = data.len() as u64;
        w.expect_length(expected);
        let limit = (expected - expected / 16) & !4095;
        let (head, tail) = data.split_at(PACKET_SIZE * 100);
        w.write(Chunk::borrowed(head)).expect("write");
        w.flush().expect("flush");
        let reserved = std::fs::metadata(w.path()).expect("metadata").blocks() * 512;
        assert!(
            (limit..=limit + 4096).contains(&reserved),
            "{reserved} bytes of blocks after the first write; expected {limit}, 1/16 short of {expected}"
        );
        assert!(w.reserved_past_end());
        w.write(Chunk::borrowed(tail)).expect("write");
        w.flush().expect("flush");
        assert!(!w.reserved_past_end(), "blocks reserved past the expected length");
        let path = w.path().to_owned();
        assert_eq!(w.close(false).expect("close"), expected);
        let closed = std::fs::metadata(&path).expect("metadata");
        assert!(closed.blocks() * 512 <= expected.div_ceil(4096) * 4096);
        assert_eq!(std::fs::read(&path).expect("read"), data);
    }

    #[test]
    fn buffers_pass_from_one_segment_to_the_next() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spare = PendingWrites::default();
        let mut w = SegmentWriter::create(
            &DirHandle::open(dir.path()).expect("open dir"),
            SegmentNumber::new(1),
            &mut spare,
        )
        .expect("create");
        w.write(Chunk::borrowed(&packets(7, 1))).expect("write");
        w.flush().expect("flush");
        let mut spare = w.take_buffers();
        assert!(spare.block.capacity() >= COPY_BLOCK);
        let w2 = SegmentWriter::create(
            &DirHandle::open(dir.path()).expect("open dir"),
            SegmentNumber::new(2),
            &mut spare,
        )
        .expect("create");
        assert!(w2.pending.block.capacity() >= COPY_BLOCK, "the block is reused");
        assert_eq!(w2.pending(), 0);
    }

    #[test]
    fn copied_runs_lie_in_the_block_aligned_like_their_file_offsets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = create(dir.path(), SegmentNumber::new(1));
        let input: SharedBytes = Arc::new(packets(3, 1));
        let mut expected = Vec::new();
        // Copied runs, one after a shared run, so that each starts the
        // block anew at a file offset that is no multiple of the alignment.
        for (i, count) in [1, 2, 5].into_iter().enumerate() {
            let copied = packets(count, i as u8 + 2);
            w.write(Chunk::borrowed(&copied)).expect("write");
            w.write(Chunk::shared(&input, 0..3 * PACKET_SIZE).expect("inside"))
                .expect("write");
            expected.extend_from_slice(&copied);
            expected.extend_from_slice((*input).as_ref());
        }
        let mut file_offset = 0;
        let mut copied_runs = 0;
        for piece in &w.pending.pieces {
            match piece {
                Piece::Copied(range) => {
                    let address = w.pending.block.as_ptr() as usize + range.start;
                    assert_eq!(address % WRITE_ALIGNMENT, file_offset % WRITE_ALIGNMENT);
                    file_offset += range.len();
                    copied_runs += 1;
                }
                Piece::Shared(_, range) => file_offset += range.len(),
            }
        }
        assert_eq!((copied_runs, file_offset), (3, expected.len()));
        let path = w.path().to_owned();
        w.flush().expect("flush");
        assert_eq!(w.close(false).expect("close"), expected.len() as u64);
        assert_eq!(
            std::fs::read(&path).expect("read"),
            expected,
            "the padding is not written"
        );
    }

    #[test]
    fn stuffing_aligns_a_packet_like_its_stream_offset_when_any_count_can() {
        let alignment = WRITE_ALIGNMENT as u64;
        for stream_offset in 0..4 * alignment {
            for file_offset in (0..4 * alignment).step_by(4) {
                let k = stuffing_packets(stream_offset, file_offset);
                assert!(k < WRITE_ALIGNMENT / 4);
                let lands = file_offset + (k * PACKET_SIZE) as u64;
                // File offsets are whole packets, multiples of four bytes.
                if stream_offset.is_multiple_of(4) {
                    assert_eq!(
                        stream_offset.wrapping_sub(lands) % alignment,
                        0,
                        "{stream_offset} {file_offset}"
                    );
                } else {
                    assert_eq!(k, 0, "{stream_offset} {file_offset}: no count aligns it");
                }
            }
        }
    }
}
