// SPDX-License-Identifier: MPL-2.0
//! The sink's archive tier: the uploader while the sink runs, and its
//! counters once it stopped. Without the cargo feature `archive` there is
//! never an uploader (the sink refuses to start with an archive-location).

use std::sync::Arc;

use gst::glib;
use gst::prelude::*;

use super::CAT;
use crate::archive::{ArchiveConfig, ArchiveEvent, ArchiveStats};
use crate::recorder::recording::ArchiveReach;
use crate::ring::ArchiveQueue;
use crate::streambuffersink::report::{Outcome, archive_report};

#[cfg(feature = "archive")]
pub(super) type Running = crate::archive::Uploader;
#[cfg(not(feature = "archive"))]
pub(super) type Running = std::convert::Infallible;

/// How long stopping waits for uploads to empty the archive queue (what is
/// left goes at the next start).
#[cfg(feature = "archive")]
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Default)]
pub(super) struct ArchiveTier {
    running: Option<Running>,
    stopped: Option<ArchiveStats>,
}

impl ArchiveTier {
    /// Starts uploading `queue` to the archive `config` describes.
    #[cfg(feature = "archive")]
    pub(super) fn start(
        &mut self,
        config: &ArchiveConfig,
        queue: Arc<ArchiveQueue>,
        report: Box<dyn Fn(ArchiveEvent) + Send>,
    ) -> Result<(), String> {
        self.running = Some(crate::archive::Uploader::start(config, queue, report)?);
        self.stopped = None;
        Ok(())
    }

    #[cfg(not(feature = "archive"))]
    pub(super) fn start(
        &mut self,
        _config: &ArchiveConfig,
        _queue: Arc<ArchiveQueue>,
        _report: Box<dyn Fn(ArchiveEvent) + Send>,
    ) -> Result<(), String> {
        Err("this build of streambuffer has no archive tier (cargo feature 'archive')".into())
    }

    /// The uploader, to stop it outside the element's lock.
    pub(super) fn take_running(&mut self) -> Option<Running> {
        self.running.take()
    }

    /// What the stopped uploader did.
    pub(super) fn stopped(&mut self, stats: ArchiveStats) {
        self.stopped = Some(stats);
    }

    /// The archive's counters (`None`: no archive since the sink started).
    pub(super) fn stats(&self) -> Option<ArchiveStats> {
        #[cfg(feature = "archive")]
        if let Some(running) = &self.running {
            return Some(running.stats());
        }
        self.stopped
    }
}

/// What recordings reaching back past the ring of `ring` use to take
/// segments from its archive.
#[cfg(feature = "archive")]
pub(super) fn reach(
    config: &ArchiveConfig,
    ring: &std::path::Path,
    queue: Arc<ArchiveQueue>,
) -> Result<Box<dyn ArchiveReach>, String> {
    Ok(Box::new(crate::archive::Restorer::start(config, ring, Some(queue))?))
}

#[cfg(not(feature = "archive"))]
pub(super) fn reach(
    _config: &ArchiveConfig,
    _ring: &std::path::Path,
    _queue: Arc<ArchiveQueue>,
) -> Result<Box<dyn ArchiveReach>, String> {
    Err("this build of streambuffer has no archive tier (cargo feature 'archive')".into())
}

/// Stops the uploader (after uploads that go through within a few
/// seconds) and returns what it did.
#[cfg(feature = "archive")]
pub(super) fn stop(mut uploader: Running) -> ArchiveStats {
    uploader.stop(DRAIN);
    uploader.stats()
}

#[cfg(not(feature = "archive"))]
pub(super) fn stop(uploader: Running) -> ArchiveStats {
    match uploader {}
}

/// What the uploader calls with each event (on its thread): the element's
/// log line, signal and message, while the element exists.
pub(super) fn reporter(
    element: glib::WeakRef<crate::streambuffersink::StreamBufferSink>,
) -> Box<dyn Fn(ArchiveEvent) + Send> {
    Box::new(move |event| {
        let Some(element) = element.upgrade() else { return };
        let report = archive_report(event);
        gst::log_with_level!(CAT, report.level, obj = element, "{}", report.log);
        if let Some((signal, args)) = &report.signal {
            element.emit_by_name_with_values(signal, args);
        }
        if let Outcome::Message(structure) = report.outcome {
            let _ = element.post_message(gst::message::Element::builder(structure).src(&element).build());
        }
    })
}
