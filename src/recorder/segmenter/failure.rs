// SPDX-License-Identifier: MPL-2.0
//! What the segmenter does when the ring succeeds or fails: feeds
//! [`WriteHealth`] the outcome, reports the events it decides on, and
//! applies the failure mode (drop the open segment, block and retry, or
//! halt).

use super::Segmenter;
use crate::recorder::health::Probe;
use crate::recorder::{FailureMode, Host, PushError, RecorderEvent};
use crate::ring::{Ring, WriteFailure};

/// Whether the segmenter goes on processing input.
#[derive(Debug)]
pub(in crate::recorder) enum Halt {
    Running,
    /// A blocked write was cancelled: stop processing the current input.
    Cancelled,
    /// `error` mode: the failure that ended the recording, for good.
    Fatal(WriteFailure),
}

impl Halt {
    /// What a call into the recorder returns: an error once `error` mode
    /// stopped it, for good.
    pub(super) fn result(&self) -> Result<(), PushError> {
        match self {
            Halt::Fatal(f) => Err(fatal_error(f)),
            Halt::Running | Halt::Cancelled => Ok(()),
        }
    }
}

/// A copy of the failure that stopped the recorder. Out of line: every
/// call checks for it, and the check alone is what the common path pays.
#[cold]
fn fatal_error(f: &WriteFailure) -> PushError {
    PushError::Fatal(WriteFailure::new(f.path.clone(), clone_io_error(&f.source), false))
}

/// `io::Error` is not `Clone`; keep the kind, the OS code and the text.
fn clone_io_error(e: &std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(e.kind(), e.to_string()),
    }
}

impl Segmenter {
    /// A write worked.
    pub(in crate::recorder) fn on_success(&mut self, host: &mut dyn Host) {
        self.on_probe(Probe::Write, host);
    }

    /// A segment was finished: with `sync-on-rotate`, it was made durable.
    pub(in crate::recorder) fn on_finished(&mut self, host: &mut dyn Host) {
        if self.ring.syncs_segments() {
            self.on_probe(Probe::Sync, host);
        }
    }

    fn on_probe(&mut self, probe: Probe, host: &mut dyn Host) {
        self.report_pressure(host);
        if let Some(summary) = self.health.on_success(probe, host.now(), self.timeline.position_ns()) {
            self.ring.set_evict_under_pressure(true);
            host.event(RecorderEvent::WriteFailureClear(summary));
        }
    }

    /// Reports the segments the ring evicted to make room, once each.
    pub(in crate::recorder) fn report_pressure(&mut self, host: &mut dyn Host) {
        let evicted = self.ring.take_pressure_evictions();
        if evicted.segments > 0 {
            host.event(RecorderEvent::EvictedUnderPressure {
                segments: evicted.segments,
                bytes: evicted.bytes,
            });
        }
    }

    /// A ring operation failed (after the ring's own eviction retry). Applies
    /// the failure mode; `retry` repeats the operation in `block` mode.
    pub(in crate::recorder) fn on_failure(
        &mut self,
        failure: WriteFailure,
        host: &mut dyn Host,
        mut retry: impl FnMut(&mut Ring) -> Result<(), WriteFailure>,
    ) {
        self.report_pressure(host);
        let now = host.now();
        if self.health.on_failure(&failure, now, self.config.retry_interval) {
            if !failure.unsynced {
                self.ring.set_evict_under_pressure(false);
            }
            host.event(RecorderEvent::WriteFailure {
                kind: failure.kind,
                message: failure.to_string(),
                path: failure.path.clone(),
            });
        }
        if failure.unsynced && self.config.failure_mode != FailureMode::Error {
            // The data is in the ring: nothing to drop, hold or retry. The
            // episode ends when a later segment syncs.
            return;
        }
        // A deleted segment file cannot be retried into: handle it as a drop.
        let vanished = failure.source.kind() == std::io::ErrorKind::NotFound;
        match self.config.failure_mode {
            FailureMode::Error => self.halt = Halt::Fatal(failure),
            FailureMode::Block if !vanished => loop {
                if !host.wait(self.config.retry_interval) {
                    self.halt = Halt::Cancelled;
                    return;
                }
                match retry(&mut self.ring) {
                    Ok(()) => {
                        self.on_success(host);
                        return;
                    }
                    Err(f) => {
                        self.report_pressure(host);
                        let _ = self.health.on_failure(&f, host.now(), self.config.retry_interval);
                    }
                }
            },
            FailureMode::Block | FailureMode::Drop => self.drop_segment(),
        }
    }

    /// `drop` mode: give up the open segment's pending data (keeping what
    /// reached the disk) and drop input until the next retry.
    fn drop_segment(&mut self) {
        let position = self.timeline.position_ns();
        let was_open = self.ring.is_segment_open();
        let (dropped, kept_until_ns) = self.abandon_segment();
        self.health.losing_from(if was_open { kept_until_ns } else { position });
        self.health.drop_bytes(dropped);
        self.cuts.dropped_at(position);
    }

    /// Gives up the open segment, keeping what reached the disk up to the
    /// last access unit that starts there: the kept part then ends on a
    /// complete frame. Returns the bytes dropped and the timeline position
    /// up to which the segment was kept.
    fn abandon_segment(&mut self) -> (u64, u64) {
        let flushed = self.ring.flushed_bytes();
        let first = self.unit_starts.front().map(|&(offset, _)| offset);
        let (keep, kept_until_ns) = self
            .unit_starts
            .iter()
            .rev()
            .find(|&&(offset, _)| offset <= flushed && Some(offset) != first)
            .copied()
            .unwrap_or((0, self.cuts.segment_start_ns()));
        let dropped = self
            .ring
            .abandon_segment(keep, kept_until_ns - self.cuts.segment_start_ns());
        self.unit_starts.clear();
        (dropped, kept_until_ns)
    }

    /// `error` mode stopped the recording and the sink stops: the failed
    /// segment is given up (its complete frames kept) and the ring closed,
    /// so that readers see a finished ring rather than one that looks live
    /// for ever.
    pub(in crate::recorder) fn close_after_fatal(&mut self) {
        self.abandon_segment();
        let _ = self.ring.close(0);
    }
}
