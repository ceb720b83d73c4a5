// SPDX-License-Identifier: MPL-2.0
//! The ring's archive tier through the origin: a window reaching back past
//! the ring lists the archive's segments first (from its hour playlists),
//! and the origin serves them from the bucket, ranged and streamed, so a
//! player or CDN needs no access to the bucket. The ring's sink left the
//! archive's description in the ring; a client for it is made once per
//! ring (and again after a minute, in case the ring was set up afresh).
//!
//! A bucket that cannot be read is a 502 naming why, never a playlist
//! without the archive's part: a CDN would keep that catch-up playlist.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;

use super::request::Target;
use super::respond::{Body, ChannelBody, Served, ranged_response, ring_of, send_block, text};
use crate::archive::ArchiveStore;
use crate::layout::{SegmentInfo, WallTime};

/// Bytes fetched from the bucket at a time.
const BLOCK: u64 = 4 * 1024 * 1024;
/// A ring's archive client is made again after this.
const STORE_TTL: Duration = Duration::from_secs(60);
/// The largest archived segment served (as the archive's readers).
const OBJECT_MAX_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// The archive clients of the rings served so far.
#[derive(Default)]
pub(super) struct Archives {
    stores: Mutex<HashMap<PathBuf, (Instant, Arc<ArchiveStore>)>>,
}

impl Archives {
    /// The archive of the ring in `ring`: `None` if its sink recorded none.
    ///
    /// # Errors
    /// A description that cannot be used, said as the tool says it.
    pub(super) fn store_of(&self, ring: &Path) -> Option<Result<Arc<ArchiveStore>, String>> {
        {
            let stores = self.stores.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((made, store)) = stores.get(ring)
                && made.elapsed() < STORE_TTL
            {
                return Some(Ok(Arc::clone(store)));
            }
        }
        let store = match crate::archive::catalog::open(ring)? {
            Ok((_, store)) => Arc::new(store),
            Err(e) => return Some(Err(e)),
        };
        let mut stores = self.stores.lock().unwrap_or_else(PoisonError::into_inner);
        stores.insert(ring.to_path_buf(), (Instant::now(), Arc::clone(&store)));
        Some(Ok(store))
    }

    /// The archived segments of the ring in `ring` overlapping `from` ..
    /// `to`, oldest first; none if the ring has no archive. Blocks.
    ///
    /// # Errors
    /// The archive cannot be read: why.
    pub(super) fn segments(&self, ring: &Path, from: WallTime, to: WallTime) -> Result<Vec<SegmentInfo>, String> {
        let Some(store) = self.store_of(ring) else {
            return Ok(Vec::new());
        };
        let store = store?;
        crate::archive::catalog::segments_between(&store, from, to)
            .map(|found| found.into_iter().map(|a| a.info).collect())
            .map_err(|e| format!("the ring's archive cannot be read: {e}"))
    }
}

/// The archived segment `target` names (its key in `target.name`), from
/// the bucket of the ring it is under.
pub(super) async fn response(
    shared: &Arc<super::Shared>,
    target: Target,
    head: bool,
    range: Option<String>,
    if_none_match: Option<String>,
) -> Response<Body> {
    let found = {
        let shared = Arc::clone(shared);
        let key = target.name.clone();
        let dirs = target.dirs.clone();
        tokio::task::spawn_blocking(move || {
            let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
            let Some((_, ring)) = ring_of(&shared.roots, &dirs) else {
                return Err((
                    StatusCode::NOT_FOUND,
                    "no ring under the roots has that file".to_owned(),
                ));
            };
            let store = match shared.archives.store_of(&ring) {
                None => return Err((StatusCode::NOT_FOUND, "the ring has no archive".to_owned())),
                Some(Err(e)) => return Err((StatusCode::BAD_GATEWAY, e)),
                Some(Ok(store)) => store,
            };
            match store.size_of(&key) {
                Ok(Some(len)) if len <= OBJECT_MAX_BYTES => Ok((store, len)),
                Ok(Some(_)) => Err((StatusCode::BAD_GATEWAY, "the archived segment is too large".to_owned())),
                Ok(None) => Err((
                    StatusCode::NOT_FOUND,
                    "the archive does not have that segment".to_owned(),
                )),
                Err(e) => Err((
                    StatusCode::BAD_GATEWAY,
                    format!("the ring's archive cannot be read: {e}"),
                )),
            }
        })
        .await
    };
    let (store, len) = match found {
        Ok(Ok(found)) => found,
        Ok(Err((status, why))) => return text(status, &why),
        Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"),
    };
    // An archived object never changes under its name (its start and number).
    let etag = format!("\"{len:x}-{}\"", target.name.replace('/', "-"));
    let served = Served {
        file: target.file,
        len,
        etag,
        complete: true,
    };
    ranged_response(&served, head, range, if_none_match, |first, len| {
        stream_object(store, target.name, first, len)
    })
}

/// `len` bytes of the object at `key` from `first`, fetched in blocks as
/// the client takes them.
fn stream_object(store: Arc<ArchiveStore>, key: String, first: u64, len: u64) -> Body {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(2);
    tokio::spawn(async move {
        let end = first.saturating_add(len);
        let mut at = first;
        while at < end {
            let want = (end - at).min(BLOCK);
            let (store, key) = (Arc::clone(&store), key.clone());
            let got = tokio::task::spawn_blocking(move || store.get_range(&key, at, want)).await;
            let block = match got {
                Ok(Ok(Some(bytes))) if bytes.len() as u64 == want => Ok(Bytes::from(bytes)),
                Ok(Ok(_)) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the archived segment changed",
                )),
                Ok(Err(e)) => Err(io::Error::other(e.0)),
                Err(e) => Err(io::Error::other(e)),
            };
            if !send_block(&tx, block).await {
                return;
            }
            at += want;
        }
    });
    ChannelBody::boxed_from(rx)
}
