// SPDX-License-Identifier: MPL-2.0
//! `streambuffersrc` reaching back into the ring's archive: the archive
//! the ring's sink described (`archive-queue/archive.conf`), listed and
//! fetched by an [`crate::archive::ArchiveFetcher`] on its own thread.
//! An archive that cannot be reached is a warning: the ring plays alone.

use std::path::Path;
#[cfg(feature = "archive")]
use std::time::Duration;

use gst::subclass::prelude::*;

use super::{CAT, StreamBufferSrc};
use crate::reader::RingReader;

/// How long starting waits for the archive's first listing.
#[cfg(feature = "archive")]
const FIRST_LISTING: Duration = Duration::from_secs(15);

impl StreamBufferSrc {
    /// Makes `reader`'s window reach into the archive of the ring in
    /// `dir`, if it has one.
    pub(super) fn reach_into_archive(&self, dir: &Path, reader: &mut RingReader) {
        #[cfg(feature = "archive")]
        {
            let Some(opened) = crate::archive::catalog::open(dir) else {
                return;
            };
            let started = opened.and_then(|(config, store)| {
                let fetcher = crate::archive::ArchiveFetcher::start(store)?;
                fetcher
                    .wait_listed(FIRST_LISTING)
                    .map_err(|e| format!("{}: {e}", config.location))?;
                Ok(fetcher)
            });
            match started {
                Ok(fetcher) => {
                    gst::info!(CAT, imp = self, "the window reaches into the archive");
                    reader.set_archive(Box::new(fetcher));
                }
                Err(e) => gst::element_imp_warning!(
                    self,
                    gst::ResourceError::OpenRead,
                    ("The ring's archive cannot be read; playing the ring alone"),
                    ["{}", e]
                ),
            }
        }
        #[cfg(not(feature = "archive"))]
        {
            let _ = reader;
            if dir
                .join(crate::layout::archive::QUEUE_DIR_NAME)
                .join(crate::layout::archive::DESCRIPTION_NAME)
                .exists()
            {
                gst::info!(
                    CAT,
                    imp = self,
                    "this build does not read archives; playing the ring alone"
                );
            }
        }
    }
}
