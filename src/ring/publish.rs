// SPDX-License-Identifier: MPL-2.0
//! Finishing segments and publishing them: each joins the window (with its
//! place in the discontinuity sequence), is appended to the journal, and the
//! playlist is rewritten, atomically, for readers and HLS clients (at most
//! every [`REWRITE_INTERVAL`] while segments come faster than that).

use std::io;
use std::time::{Duration, Instant};

use super::{CloseError, Current, Entry, Ring, SegmentStart, WriteFailure};
use crate::layout::index::Keyframe;
use crate::layout::playlist::{self, PlaylistHeader, SegmentKeyframes, target_duration_s};
use crate::layout::{IFRAME_PLAYLIST_NAME, MULTIVARIANT_PLAYLIST_NAME, PLAYLIST_NAME, RingTime, SegmentInfo};
use crate::layout::{SegmentNumber, segment_file_name};

/// The least wall-clock time between two rewrites of the playlists for
/// finished segments. A rewrite makes a new file for each playlist (an inode
/// created, the old one freed), which costs more than writing a segment's
/// packets when the input comes far faster than real time (a recording
/// ingested from a file, a backlog after a stall): segments finished less
/// than this after a rewrite are published together, at the first flush
/// after it (every 200 ms of media: a few milliseconds at such speeds), at
/// the end, or at a pause. A live stream finishes a segment at most every
/// 100 ms (the shortest segment duration), so its segments are published
/// as they finish. The journal still records each segment at once.
pub(super) const REWRITE_INTERVAL: Duration = Duration::from_millis(50);

/// What the ring last published, and the rule that keeps its target
/// duration: the playlists' text (a buffer reused at every rotation) and
/// `EXT-X-TARGETDURATION`.
#[derive(Debug)]
pub(super) struct Playlists {
    /// Fixed when the playlist is first published (after the first segment,
    /// so a stream's long GOPs set it), never lowered, and raised only when
    /// an EXTINF would round above it, which RFC 8216 forbids outright while
    /// a changed target is only discouraged.
    target_duration_s: u64,
    /// The text being written (media or I-frame playlist).
    text: String,
    /// The multivariant playlist as last written.
    multivariant: String,
    /// The playlists on disk are the ended ones of the window as it is:
    /// closing the ring again has nothing to publish.
    pub(super) ended_current: bool,
    /// When the playlists were last written (or a write was tried).
    written_at: Option<Instant>,
    /// The window changed since: the playlists on disk are behind it until
    /// the next rewrite (see [`REWRITE_INTERVAL`]).
    behind: bool,
    /// The oldest segment the media playlist on disk lists: while it is
    /// behind, a file it lists is not released before it is rewritten.
    oldest_listed: Option<SegmentNumber>,
}

impl Playlists {
    /// Before anything is published: the target that `segment_duration_ns`
    /// asks for.
    pub(super) fn new(segment_duration_ns: u64) -> Self {
        Playlists {
            target_duration_s: target_duration_s(segment_duration_ns),
            text: String::new(),
            multivariant: String::new(),
            ended_current: false,
            written_at: None,
            behind: false,
            oldest_listed: None,
        }
    }

    /// Segments joined or left the window: the playlists on disk are behind it.
    pub(super) fn window_changed(&mut self) {
        self.ended_current = false;
        self.behind = true;
    }

    /// What was published went with a directory that is gone.
    pub(super) fn nothing_on_disk(&mut self) {
        self.window_changed();
        self.oldest_listed = None;
    }

    /// Whether the playlists on disk still list segment `sequence` and
    /// are behind the window: its file must stay until they are rewritten.
    pub(super) fn behind_listing(&self, sequence: SegmentNumber) -> bool {
        self.behind && self.oldest_listed.is_some_and(|oldest| sequence >= oldest)
    }

    /// A segment of `duration_ns` joins the window; whether the target had
    /// to be raised for it (`published`: a playlist was written before).
    fn admit(&mut self, duration_ns: u64, published: bool) -> bool {
        let rounded = target_duration_s(duration_ns);
        let raised = rounded > self.target_duration_s && published;
        self.target_duration_s = self.target_duration_s.max(rounded);
        raised
    }
}

impl Ring {
    /// Closes the open segment, which lasted `duration_ns`, adds it to the
    /// window, applies retention and republishes the playlist. On failure the
    /// segment stays open with its data pending.
    pub fn finish_segment(&mut self, duration_ns: u64) -> Result<(), WriteFailure> {
        self.finish_segment_as(duration_ns, false)
    }

    /// [`Self::finish_segment`] for the last segment of a recording: the
    /// playlist it publishes is already the ended one, so that [`Self::close`]
    /// after it writes nothing more (each playlist written is a new file).
    pub fn finish_last_segment(&mut self, duration_ns: u64) -> Result<(), WriteFailure> {
        self.finish_segment_as(duration_ns, true)
    }

    fn finish_segment_as(&mut self, duration_ns: u64, ended: bool) -> Result<(), WriteFailure> {
        if self.current.is_none() {
            return Ok(());
        }
        self.flush()?;
        if let Some(cur) = self.current.as_mut()
            && let Err(e) = cur.writer.check_alive()
        {
            return Err(WriteFailure::new(cur.writer.path().to_owned(), e, false));
        }
        let Some(Current {
            mut writer,
            start,
            keyframes,
            first_keyframe,
            ..
        }) = self.current.take()
        else {
            return Ok(());
        };
        let indexed = (keyframes, first_keyframe);
        self.spare_buffers = writer.take_buffers();
        let sequence = writer.sequence();
        let path = writer.path().to_owned();
        let flushed = writer.flushed();
        let bytes = match writer.close(self.config.sync_on_rotate) {
            Ok(bytes) => bytes,
            Err(e) => {
                // The data was written but not made durable (or, in a
                // reused file, the old content could not be cut off, and
                // the progress record goes on hiding it); it stays in the
                // ring, the failure is still reported.
                self.commit_segment(sequence, duration_ns, start, flushed, indexed, ended);
                return Err(match e {
                    CloseError::Sync(e) => WriteFailure::unsynced(path, e),
                    CloseError::CutToLength(e) => WriteFailure::new(path, e, false),
                });
            }
        };
        self.reuse.segment_closed(sequence, &mut self.stats);
        if bytes == 0 {
            self.delete_file(&segment_file_name(sequence));
            return Ok(());
        }
        self.commit_segment(sequence, duration_ns, start, bytes, indexed, ended);
        Ok(())
    }

    /// Finishes the open segment (if any) and marks the playlist as ended.
    /// Closing again (a stop after EOS) rewrites nothing that is current.
    pub fn close(&mut self, duration_ns: u64) -> Result<(), WriteFailure> {
        self.finish_last_segment(duration_ns)?;
        // No client loads the playlist again to find them missing.
        self.release_retired(0);
        self.reuse.discard_spare(&self.handle);
        if !self.entries.is_empty() && !self.playlists.ended_current {
            self.rewrite_playlists(true);
        }
        Ok(())
    }

    /// Publishes segment `sequence` (`indexed`: its keyframes and the
    /// number of its first), in a playlist marked as ended if `ended`.
    pub(super) fn commit_segment(
        &mut self,
        sequence: SegmentNumber,
        duration_ns: u64,
        start: SegmentStart,
        bytes: u64,
        indexed: (Vec<Keyframe>, u64),
        ended: bool,
    ) {
        let info = SegmentInfo {
            sequence,
            duration_ns,
            bytes,
            program_date_time: start.program_date_time,
            discontinuity: start.discontinuity,
            independent: start.independent,
        };
        self.ring_time_end = start.ring_time.saturating_add(duration_ns);
        // Queued before it is journaled: after a crash, a journaled segment
        // is in the queue or archived (see `archive_queue`).
        if let Some(queue) = &self.archive {
            queue.enqueue(&self.handle, &info);
        }
        // The journal and the playlist are metadata: failing to update them
        // loses no media, and both are rewritten whole at the next chance.
        self.journal.record(&info);
        self.push_entry(info, indexed.0, indexed.1, start.head_bytes);
        self.enforce_retention_at_rotation();
        self.bytes_since_space_check = 0;
        if self
            .journal
            .refresh(&self.handle, self.entries.iter().map(|e| &e.info))
            .is_err()
        {
            self.stats.metadata_write_errors += 1;
        }
        self.publish(ended);
    }

    /// Rewrites the playlists now: segments left the window (recovery,
    /// a full disk), which readers must not be sent to.
    pub(super) fn playlist_after_change(&mut self) {
        self.rewrite_playlists(false);
    }

    /// Publishes the window as it is now, unless the playlists were
    /// written less than [`REWRITE_INTERVAL`] ago: then they stay behind,
    /// for [`Self::publish_if_due`]. An ended playlist is written at once.
    fn publish(&mut self, ended: bool) {
        let recent = || {
            self.playlists
                .written_at
                .is_some_and(|at| at.elapsed() < REWRITE_INTERVAL)
        };
        // Not behind: written since the window changed (a file it listed
        // was about to be released).
        if !ended && (!self.playlists.behind || recent()) {
            return;
        }
        self.rewrite_playlists(ended);
    }

    /// Rewrites playlists that are behind the window once
    /// [`REWRITE_INTERVAL`] has passed since they were last written.
    pub fn publish_if_due(&mut self) {
        if self.playlists.behind
            && self
                .playlists
                .written_at
                .is_none_or(|at| at.elapsed() >= REWRITE_INTERVAL)
        {
            self.rewrite_playlists(false);
        }
    }

    /// When the playlists, behind the window, are due to be rewritten.
    #[must_use]
    pub fn playlists_due(&self) -> Option<Instant> {
        let written_at = self.playlists.written_at?;
        self.playlists.behind.then(|| written_at + REWRITE_INTERVAL)
    }

    /// Rewrites playlists that are behind the window now, whenever they
    /// were last written: the input paused.
    pub fn publish_pending(&mut self) {
        if self.playlists.behind {
            self.rewrite_playlists(false);
        }
    }

    /// Rewrites the playlists now: the only way they are written. A
    /// failure is counted and tried again when the window next changes.
    pub(super) fn rewrite_playlists(&mut self, ended: bool) {
        self.playlists.written_at = Some(Instant::now());
        self.playlists.behind = false;
        if self.write_playlist(ended).is_err() {
            self.stats.metadata_write_errors += 1;
        }
    }

    pub(super) fn push_entry(
        &mut self,
        info: SegmentInfo,
        keyframes: Vec<Keyframe>,
        first_keyframe: u64,
        head_bytes: u32,
    ) {
        let base = self
            .entries
            .back()
            .map_or(self.evicted_discontinuity_sequence, |e| e.discontinuity_sequence);
        let discontinuity_sequence = base + u64::from(info.discontinuity);
        self.playlists.window_changed();
        self.window.duration_ns += info.duration_ns;
        self.window.bytes += info.bytes;
        if self.playlists.admit(info.duration_ns, self.stats.playlist_writes > 0) {
            self.stats.target_duration_raises += 1;
        }
        self.entries.push_back(Entry {
            info,
            discontinuity_sequence,
            keyframes,
            first_keyframe,
            head_bytes,
        });
    }

    fn write_playlist(&mut self, ended: bool) -> io::Result<()> {
        let mut skip = match self.config.playlist_length {
            0 => 0,
            n => self.entries.len().saturating_sub(n as usize),
        };
        // The first entry is where a client that starts at the oldest
        // content starts: never a forced cut if a segment after it starts
        // at a random-access point. This only ever moves the head forward.
        if let Some(first) = self.entries.range(skip..).position(|e| e.info.independent) {
            skip += first;
        }
        let Some(first) = self.entries.get(skip) else {
            return Ok(());
        };
        let header = PlaylistHeader {
            target_duration_s: self.playlists.target_duration_s,
            discontinuity_sequence: first.discontinuity_sequence - u64::from(first.info.discontinuity),
            ended,
            vod: false,
            start_offset_ns: None,
        };
        playlist::render(
            &mut self.playlists.text,
            header,
            self.entries.range(skip..).map(|e| &e.info),
        );
        self.handle.replace_atomically(
            PLAYLIST_NAME,
            self.playlists.text.as_bytes(),
            self.config.sync_on_rotate,
        )?;
        self.stats.playlist_writes += 1;
        self.playlists.oldest_listed = Some(first.info.sequence);
        self.playlists.ended_current = false;
        if self.config.iframe_playlist {
            self.write_iframe_playlists(skip, header)?;
        }
        self.playlists.ended_current = ended;
        Ok(())
    }

    /// The I-frame playlist of the entries from `skip` on, and the
    /// multivariant playlist when what it says changed.
    fn write_iframe_playlists(&mut self, skip: usize, header: PlaylistHeader) -> io::Result<()> {
        let starts: Vec<RingTime> = self.segments_in_time().map(|(_, start)| start).collect();
        let listed = self
            .entries
            .range(skip..)
            .zip(&starts[skip..])
            .map(|(e, &start)| SegmentKeyframes {
                info: &e.info,
                start,
                head_bytes: e.head_bytes,
                keyframes: &e.keyframes,
                first_number: e.first_keyframe,
            });
        playlist::render_iframes(&mut self.playlists.text, header, listed);
        self.handle.replace_atomically(
            IFRAME_PLAYLIST_NAME,
            self.playlists.text.as_bytes(),
            self.config.sync_on_rotate,
        )?;
        // Peak bit rates: of a segment, and of one keyframe over its time.
        let rate = |bytes: u64, ns: u64| bytes.saturating_mul(8_000_000_000) / ns.max(1);
        let window = self.entries.range(skip..);
        let bandwidth = window
            .clone()
            .map(|e| rate(e.info.bytes, e.info.duration_ns))
            .max()
            .unwrap_or(0);
        let iframe_bandwidth = window
            .flat_map(|e| {
                e.keyframes
                    .windows(2)
                    .map(|w| rate(u64::from(w[0].size), w[1].ring_time.saturating_since(w[0].ring_time)))
            })
            .max()
            .unwrap_or(bandwidth);
        let mut text = String::new();
        playlist::render_multivariant(
            &mut text,
            PLAYLIST_NAME,
            bandwidth,
            IFRAME_PLAYLIST_NAME,
            iframe_bandwidth,
        );
        if text != self.playlists.multivariant {
            self.handle
                .replace_atomically(MULTIVARIANT_PLAYLIST_NAME, text.as_bytes(), self.config.sync_on_rotate)?;
            self.playlists.multivariant = text;
        }
        Ok(())
    }
}
