// SPDX-License-Identifier: MPL-2.0
//! The write-failure contract: episodes, edge-triggered like the COM events
//! they mirror (one failure when writes start failing, none while they keep
//! failing, one clear when a write succeeds again), and their counters.
//! What the segmenter does on each outcome is in `segmenter/failure.rs`;
//! this module depends on nothing of the recorder.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ring::WriteFailure;

/// What the clear event reports about the episode that ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpisodeSummary {
    pub dropped_bytes: u64,
    /// Media time not recorded; `None` when it cannot be known.
    pub dropped_duration_ns: Option<u64>,
    /// Wall-clock time from the first failure to the successful write.
    pub failure_duration: Duration,
}

/// Counters for the `stats` property.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FailureStats {
    /// Failed write attempts (each retry that fails counts).
    pub write_failures: u64,
    /// Episodes: a failure followed, eventually, by a clear.
    pub episodes: u64,
    pub dropped_bytes: u64,
    pub dropped_duration_ns: u64,
    /// Total wall-clock time spent in finished episodes.
    pub failing_time: Duration,
    /// Text of the last failure (shared: the stats are copied often).
    pub last_error: Option<Arc<str>>,
    pub failing: bool,
}

/// What ends a failure episode: a success of the operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Writes failed: input is dropped (or held) until a write succeeds.
    Write,
    /// Only making finished segments durable failed: nothing is dropped,
    /// and a segment synced without error ends it (a sync that works means
    /// writes work too).
    Sync,
}

#[derive(Debug)]
struct Episode {
    probe: Probe,
    started: Instant,
    /// Timeline position from which media was lost, if any was.
    lost_from_ns: Option<u64>,
    dropped_bytes: u64,
    retry_at: Instant,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct WriteHealth {
    episode: Option<Episode>,
    stats: FailureStats,
}

impl WriteHealth {
    /// Whether writes are failing: input is being dropped (or held) until
    /// a retry works. A sync-only episode is not that.
    #[must_use]
    pub fn is_failing(&self) -> bool {
        self.episode.as_ref().is_some_and(|e| e.probe == Probe::Write)
    }

    /// Whether a retry may be attempted now (always, when not failing).
    #[must_use]
    pub fn retry_due(&self, now: Instant) -> bool {
        !self.is_failing() || self.episode.as_ref().is_none_or(|e| now >= e.retry_at)
    }

    /// Records a failed write. Returns `true` when it starts an episode, i.e.
    /// when the `write-failure` event must fire.
    #[must_use]
    pub fn on_failure(&mut self, failure: &WriteFailure, now: Instant, retry_interval: Duration) -> bool {
        self.stats.write_failures += 1;
        self.stats.last_error = Some(failure.to_string().into());
        self.stats.failing = true;
        let probe = if failure.unsynced { Probe::Sync } else { Probe::Write };
        match &mut self.episode {
            Some(e) => {
                e.retry_at = now + retry_interval;
                // Writes failing as well: now input is being dropped.
                if probe == Probe::Write {
                    e.probe = Probe::Write;
                }
                false
            }
            None => {
                self.episode = Some(Episode {
                    probe,
                    started: now,
                    lost_from_ns: None,
                    dropped_bytes: 0,
                    retry_at: now + retry_interval,
                });
                self.stats.episodes += 1;
                true
            }
        }
    }

    /// Media from timeline position `from_ns` on is being dropped.
    pub fn losing_from(&mut self, from_ns: u64) {
        if let Some(e) = &mut self.episode {
            e.lost_from_ns.get_or_insert(from_ns);
        }
    }

    /// Bytes given up during the current episode.
    pub fn drop_bytes(&mut self, n: u64) {
        if let Some(e) = &mut self.episode {
            e.dropped_bytes += n;
            self.stats.dropped_bytes += n;
        }
    }

    /// `probe` succeeded at timeline position `position_ns`. Returns the
    /// summary when this ends an episode, i.e. when the clear event must
    /// fire: a write ends an episode of failed writes, a sync any episode.
    #[must_use]
    pub fn on_success(&mut self, probe: Probe, now: Instant, position_ns: u64) -> Option<EpisodeSummary> {
        if self.episode.as_ref()?.probe == Probe::Sync && probe == Probe::Write {
            return None;
        }
        let e = self.episode.take()?;
        let failure_duration = now.saturating_duration_since(e.started);
        let dropped_duration_ns = match e.lost_from_ns {
            Some(from) => Some(position_ns.saturating_sub(from)),
            None if e.dropped_bytes == 0 => Some(0),
            None => None,
        };
        self.stats.failing = false;
        self.stats.failing_time += failure_duration;
        self.stats.dropped_duration_ns += dropped_duration_ns.unwrap_or(0);
        Some(EpisodeSummary {
            dropped_bytes: e.dropped_bytes,
            dropped_duration_ns,
            failure_duration,
        })
    }

    /// Counters of finished episodes, and when the running one started (its
    /// time is added by whoever reads them, so that copying the counters
    /// does not need the clock).
    #[must_use]
    pub fn stats_parts(&self) -> (FailureStats, Option<Instant>) {
        (self.stats.clone(), self.episode.as_ref().map(|e| e.started))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn failure() -> WriteFailure {
        WriteFailure::new(
            "/ring/segment-000000000001.ts".into(),
            io::Error::from(io::ErrorKind::StorageFull),
            false,
        )
    }

    #[test]
    fn one_failure_one_clear_per_episode() {
        let t0 = Instant::now();
        let retry = Duration::from_secs(1);
        let mut h = WriteHealth::default();
        assert!(
            h.on_success(Probe::Write, t0, 0).is_none(),
            "no clear without a failure"
        );
        assert!(h.on_failure(&failure(), t0, retry));
        h.losing_from(1_000);
        h.drop_bytes(188);
        assert!(!h.retry_due(t0 + Duration::from_millis(500)));
        assert!(
            !h.on_failure(&failure(), t0 + retry, retry),
            "still failing: no new event"
        );
        h.drop_bytes(376);
        let s = h.on_success(Probe::Write, t0 + 3 * retry, 5_000).expect("clear");
        assert_eq!(s.dropped_bytes, 564);
        assert_eq!(s.dropped_duration_ns, Some(4_000));
        assert_eq!(s.failure_duration, 3 * retry);
        assert!(
            h.on_success(Probe::Write, t0 + 4 * retry, 6_000).is_none(),
            "one clear only"
        );
        let (stats, running) = h.stats_parts();
        assert_eq!(running, None);
        assert_eq!((stats.write_failures, stats.episodes, stats.dropped_bytes), (2, 1, 564));
        assert!(!stats.failing);
    }

    #[test]
    fn nothing_dropped_means_zero_duration() {
        let t0 = Instant::now();
        let mut h = WriteHealth::default();
        assert!(h.on_failure(&failure(), t0, Duration::from_secs(1)));
        let s = h.on_success(Probe::Write, t0, 10).expect("clear");
        assert_eq!((s.dropped_bytes, s.dropped_duration_ns), (0, Some(0)));
    }
}
