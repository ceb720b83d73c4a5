// SPDX-License-Identifier: MPL-2.0
//! `streambuffer serve`: an HTTP origin for the rings under some roots,
//! read-only, for players and a CDN in front (feature `serve`: the tool
//! links it, the plugin's shared library does not).
//!
//! - here: the server: a tokio runtime of its own, HTTP/1.1 through hyper,
//!   limits on connections, header size and the time a client takes to
//!   send its request;
//! - `request`: what a request asks for, read strictly (no path leaves a
//!   root), ranges, content types and caching;
//! - `respond`: the answer: the file opened without following links,
//!   validators, ranges, a streamed body;
//! - `window`: the playlist of a window asked for (`?start=&end=`,
//!   `?delay=`);
//! - `archived`: the ring's archive tier: its segments in windows reaching
//!   past the ring, served from the bucket;
//! - `live`, `parts`: Low-Latency HLS: the live playlist with the parts
//!   of the segment being written, cut from its bytes.
//!
//! File reads run on tokio's blocking pool, capped, never on the threads
//! that serve connections.

#[cfg(feature = "archive")]
mod archived;
mod live;
mod parts;
mod request;
mod respond;
mod window;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 4096;
/// Threads reading files at once.
const MAX_BLOCKING: usize = 64;
/// A client must send its request's headers within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a request's headers may take (hyper's smallest buffer).
const HEADER_BYTES: usize = 16 * 1024;
/// Most headers in a request.
const MAX_HEADERS: usize = 64;

/// What every request shares: the roots, the parts cut so far of each
/// live ring, and a watch on each ring someone waits on.
pub(super) struct Shared {
    pub(super) roots: Vec<PathBuf>,
    /// Low-Latency HLS parts are at most this long.
    pub(super) part_target_ns: u64,
    parts: Mutex<HashMap<PathBuf, Arc<Mutex<live::RingParts>>>>,
    watches: Mutex<HashMap<PathBuf, Arc<Notify>>>,
    #[cfg(feature = "archive")]
    archives: archived::Archives,
}

impl Shared {
    /// The parts cut so far of the ring in `ring`.
    pub(super) fn parts_of(&self, ring: &Path) -> Arc<Mutex<live::RingParts>> {
        let mut all = self.parts.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(all.entry(ring.to_path_buf()).or_default())
    }

    /// Notified whenever the writer of the ring in `ring` writes (a watch
    /// on its directory, begun at the first wait).
    pub(super) fn watch(&self, ring: &Path) -> Arc<Notify> {
        let mut all = self.watches.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(notify) = all.get(ring) {
            return Arc::clone(notify);
        }
        let notify = Arc::new(Notify::new());
        let weak = Arc::downgrade(&notify);
        // Without a watch, waiters still look again every second.
        let _ = crate::platform::watch_dir(ring, move || match weak.upgrade() {
            Some(notify) => {
                notify.notify_waiters();
                true
            }
            None => false,
        });
        all.insert(ring.to_path_buf(), Arc::clone(&notify));
        notify
    }
}

/// Serves the rings under `roots` on `listen` until the process ends, with
/// Low-Latency HLS parts of at most `part_target_ns`; `ready` is told the
/// address bound (port 0 picks a free one).
///
/// # Errors
/// A root that is not a directory, or an address that cannot be bound.
pub fn serve(
    listen: SocketAddr,
    roots: Vec<PathBuf>,
    part_target_ns: u64,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), String> {
    if roots.is_empty() {
        return Err("no root to serve".into());
    }
    for root in &roots {
        if !root.is_dir() {
            return Err(format!("'{}' is not a directory", root.display()));
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(MAX_BLOCKING)
        .enable_io()
        .enable_time()
        .thread_name("streambuffer-serve")
        .build()
        .map_err(|e| format!("cannot start the server's runtime: {e}"))?;
    let shared = Arc::new(Shared {
        roots,
        part_target_ns,
        parts: Mutex::default(),
        watches: Mutex::default(),
        #[cfg(feature = "archive")]
        archives: archived::Archives::default(),
    });
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        ready(listener.local_addr().map_err(|e| e.to_string())?);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return Ok(());
            };
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, say: wait a little, never spin.
                    eprintln!("streambuffer serve: accepting: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let _slot = slot;
                let service = service_fn(move |request| {
                    let shared = Arc::clone(&shared);
                    async move { Ok::<_, std::convert::Infallible>(respond::handle(request, &shared).await) }
                });
                let _ = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(HEADER_BYTES)
                    .max_headers(MAX_HEADERS)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
