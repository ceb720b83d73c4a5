// SPDX-License-Identifier: MPL-2.0
//! Answering one request: the file opened beneath a root without following
//! a link (on a blocking thread), its validators, the range, and a body
//! that streams it in blocks, giving up on a client that stops reading.

use std::convert::Infallible;
use std::io::{self, SeekFrom};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use super::Shared;
use super::live::{self, HintedPart};
use super::request::{Refusal, RingFile, Target, cache_control, content_type, parse_path, parse_range};
use super::window::{self, Window};
use crate::layout::progress::Progress;
use crate::layout::{PLAYLIST_MAX_BYTES, PLAYLIST_NAME, PROGRESS_NAME, WallTime, segment_file_name};
use crate::platform;

/// A response body.
pub type Body = BoxBody<Bytes, io::Error>;

/// Bytes read from a file at a time.
const BLOCK: usize = 256 * 1024;
/// A client that takes no block for this long is dropped.
const SLOW_CLIENT: Duration = Duration::from_secs(30);

/// Answers `request` from the rings under the roots.
pub async fn handle(request: Request<Incoming>, shared: &Arc<Shared>) -> Response<Body> {
    let roots = shared.roots.as_slice();
    let method = request.method().clone();
    if method == Method::OPTIONS {
        return with_cors(empty(StatusCode::NO_CONTENT));
    }
    if method != Method::GET && method != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET, HEAD and OPTIONS");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, OPTIONS"));
        return with_cors(response);
    }
    let target = match parse_path(request.uri().path()) {
        Ok(target) => target,
        Err(Refusal::Malformed(why)) => return with_cors(text(StatusCode::BAD_REQUEST, why)),
        Err(Refusal::NotFound(why)) => return with_cors(text(StatusCode::NOT_FOUND, why)),
    };
    if target.name == PLAYLIST_NAME {
        match window::parse_query(request.uri().query()) {
            Ok(Window::Whole) => {
                if let Some(response) = live_response(shared, &target, request.uri().query()).await {
                    return with_cors(response);
                }
            }
            Ok(asked) => return with_cors(window_response(shared, target, asked).await),
            Err(why) => return with_cors(text(StatusCode::BAD_REQUEST, why)),
        }
    }
    let header_text = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut range = header_text(header::RANGE);
    let if_none_match = header_text(header::IF_NONE_MATCH);
    // An open-ended range on the segment being written is a preload hint's
    // request: it gets the part starting there once the part is complete.
    if let (RingFile::Segment(sequence), Some(from)) = (target.file, range.as_deref().and_then(open_ended)) {
        match hinted_part(shared, &target, sequence, from).await {
            Ok(Some(len)) => range = Some(format!("bytes={from}-{}", from + len.saturating_sub(1))),
            Ok(None) => {}
            Err(response) => return with_cors(response),
        }
    }
    let head = method == Method::HEAD;
    if let RingFile::Archived(_) = target.file {
        #[cfg(feature = "archive")]
        return with_cors(super::archived::response(shared, target, head, range, if_none_match).await);
        #[cfg(not(feature = "archive"))]
        return with_cors(text(StatusCode::NOT_FOUND, "this build has no archive tier"));
    }
    let roots = roots.to_vec();
    let opened = tokio::task::spawn_blocking(move || open(&roots, &target)).await;
    let Ok(Some((file, served))) = opened else {
        return with_cors(text(StatusCode::NOT_FOUND, "no ring under the roots has that file"));
    };
    with_cors(ranged_response(&served, head, range, if_none_match, |first, len| {
        stream_file(file, first, len)
    }))
}

/// The start of an open-ended range (`bytes=X-`).
fn open_ended(range: &str) -> Option<u64> {
    range
        .trim()
        .strip_prefix("bytes=")?
        .strip_suffix('-')?
        .trim()
        .parse()
        .ok()
}

/// The first root holding the ring `dirs` names (it has a playlist), and
/// the ring's path.
pub(super) fn ring_of(roots: &[PathBuf], dirs: &[&str]) -> Option<(PathBuf, PathBuf)> {
    let root = roots
        .iter()
        .find(|root| platform::open_beneath(root, dirs, PLAYLIST_NAME).is_ok())?;
    Some((root.clone(), dirs.iter().fold(root.clone(), |p, d| p.join(d))))
}

/// Waits for the part of segment `sequence` starting at `from` to be
/// complete (woken by the writer): its length; `None` when the segment is
/// not being written (its bytes are served as they are); 503 if the part
/// does not come within three part targets and a second.
async fn hinted_part(
    shared: &Arc<Shared>,
    target: &Target,
    sequence: crate::layout::SegmentNumber,
    from: u64,
) -> Result<Option<u64>, Response<Body>> {
    let deadline = Instant::now() + Duration::from_nanos(3 * shared.part_target_ns) + Duration::from_secs(1);
    loop {
        let state = with_ring_parts(shared, target, move |root, dirs, parts, part_target_ns| {
            live::hinted_part(root, dirs, parts, sequence, from, part_target_ns).ok()
        })
        .await;
        let Some((ring, state)) = state else {
            return Ok(None);
        };
        match state {
            HintedPart::Ready(len) => return Ok(Some(len)),
            HintedPart::NotLive => return Ok(None),
            HintedPart::Pending => {}
        }
        if !wait_for_writer(shared, &ring, deadline).await {
            return Err(text(StatusCode::SERVICE_UNAVAILABLE, "the part did not come in time"));
        }
    }
}

/// Runs `op` on a blocking thread with the ring `target` names (its root,
/// its directories, its parts cut so far, the part target); `None` if no
/// root has that ring or `op` gives nothing. Also returns the ring's path.
async fn with_ring_parts<T: Send + 'static>(
    shared: &Arc<Shared>,
    target: &Target,
    op: impl FnOnce(&std::path::Path, &[&str], &mut live::RingParts, u64) -> Option<T> + Send + 'static,
) -> Option<(PathBuf, T)> {
    let (shared, dirs) = (Arc::clone(shared), target.dirs.clone());
    tokio::task::spawn_blocking(move || {
        let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
        let (root, ring) = ring_of(&shared.roots, &dirs)?;
        let parts = shared.parts_of(&ring);
        let mut parts = parts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let value = op(&root, &dirs, &mut parts, shared.part_target_ns)?;
        Some((ring, value))
    })
    .await
    .ok()
    .flatten()
}

/// Waits until the writer of the ring in `ring` writes (a second at most,
/// in case a wake-up was missed); `false` once `deadline` has passed.
async fn wait_for_writer(shared: &Arc<Shared>, ring: &std::path::Path, deadline: Instant) -> bool {
    let now = Instant::now();
    if now >= deadline {
        return false;
    }
    let notify = shared.watch(ring);
    let _ = tokio::time::timeout((deadline - now).min(Duration::from_secs(1)), notify.notified()).await;
    true
}

/// `_HLS_msn` and `_HLS_part` of a blocking playlist reload, if asked.
fn blocking_reload(query: Option<&str>) -> Result<Option<(u64, Option<u64>)>, &'static str> {
    let (mut msn, mut part) = (None, None);
    for pair in query.unwrap_or("").split('&') {
        match pair.split_once('=') {
            Some(("_HLS_msn", v)) => msn = Some(v.parse::<u64>().map_err(|_| "_HLS_msn is not a number")?),
            Some(("_HLS_part", v)) => part = Some(v.parse::<u64>().map_err(|_| "_HLS_part is not a number")?),
            _ => {}
        }
    }
    match (msn, part) {
        (None, Some(_)) => Err("_HLS_part without _HLS_msn"),
        (msn, part) => Ok(msn.map(|m| (m, part))),
    }
}

/// The live playlist with parts of the ring `target` names, once it holds
/// what a blocking reload asks for (RFC 8216bis 6.2.5.2: 400 past the next
/// two segments, 503 after three target durations); `None` for a ring that
/// has ended (its file is served as it is) or no ring at all.
async fn live_response(shared: &Arc<Shared>, target: &Target, query: Option<&str>) -> Option<Response<Body>> {
    let asked = match blocking_reload(query) {
        Ok(asked) => asked,
        Err(why) => return Some(text(StatusCode::BAD_REQUEST, why)),
    };
    let started = Instant::now();
    loop {
        let rendered = with_ring_parts(shared, target, |root, dirs, parts, part_target_ns| {
            live::live_playlist(root, dirs, parts, part_target_ns).ok()
        })
        .await;
        let (ring, live) = rendered?;
        if live.ended {
            return None;
        }
        let Some((msn, _)) = asked.filter(|&(msn, part)| !live.holds(msn, part)) else {
            return Some(playlist_text(live.text, "public, max-age=1"));
        };
        if msn > live.last_complete.map_or(0, |s| s.get()) + 2 {
            return Some(text(
                StatusCode::BAD_REQUEST,
                "_HLS_msn is more than two segments ahead",
            ));
        }
        let deadline = started + Duration::from_secs(3 * live.target_duration_s);
        if !wait_for_writer(shared, &ring, deadline).await {
            return Some(text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the part asked for did not come in time",
            ));
        }
    }
}

/// A playlist answer.
fn playlist_text(playlist: String, cache: &'static str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(playlist))
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.apple.mpegurl"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// The playlist of window `asked` of the ring `target` names, reaching
/// into the ring's archive for what is older than the ring.
async fn window_response(shared: &Arc<Shared>, target: Target, asked: Window) -> Response<Body> {
    let shared = Arc::clone(shared);
    let rendered = tokio::task::spawn_blocking(move || {
        let dirs: Vec<&str> = target.dirs.iter().map(String::as_str).collect();
        let (root, ring) = ring_of(&shared.roots, &dirs)?;
        let raw = platform::open_beneath(&root, &dirs, PLAYLIST_NAME)
            .and_then(|f| platform::read_to_end_bounded(f, PLAYLIST_MAX_BYTES))
            .ok()?;
        let listing = crate::layout::playlist::parse(&String::from_utf8_lossy(&raw));
        let now = WallTime::now();
        let archived = match window::archive_span(&listing, asked, now) {
            #[cfg(feature = "archive")]
            Some((from, to)) => match shared.archives.segments(&ring, from, to) {
                Ok(archived) => archived,
                Err(why) => return Some(Err((StatusCode::BAD_GATEWAY, why))),
            },
            _ => {
                let _ = &ring;
                Vec::new()
            }
        };
        Some(window::render(&listing, archived, asked, now).map_err(|why| (StatusCode::NOT_FOUND, why)))
    })
    .await;
    match rendered {
        Ok(Some(Ok(playlist))) => {
            // A finished window never changes.
            let cache = if playlist.contains("#EXT-X-ENDLIST") {
                "public, max-age=3600"
            } else {
                "public, max-age=1"
            };
            playlist_text(playlist, cache)
        }
        Ok(Some(Err((status, why)))) => text(status, &why),
        _ => text(StatusCode::NOT_FOUND, "no ring under the roots has that file"),
    }
}

/// What the headers of a file served need.
pub(super) struct Served {
    pub(super) file: RingFile,
    /// The bytes served (a segment being written: as far as is new).
    pub(super) len: u64,
    pub(super) etag: String,
    /// A segment (or its index) that is complete.
    pub(super) complete: bool,
}

/// Opens `target` in the first root that has it; `None` if none does (or
/// a link, a non-regular file or an unreadable one is in the way).
fn open(roots: &[PathBuf], target: &Target) -> Option<(std::fs::File, Served)> {
    let dirs: Vec<&str> = target.dirs.iter().map(String::as_str).collect();
    roots.iter().find_map(|root| {
        let file = platform::open_beneath(root, &dirs, &target.name).ok()?;
        // A segment being sent is leased, as a reader's (see `ring::lease`).
        if let RingFile::Segment(_) = target.file {
            let _ = crate::ring::lease::take(&file);
        }
        let meta = file.metadata().ok()?;
        // Complete once the writer has begun the next one (rotation is the
        // only time a segment's name appears): one open, not a read of the
        // playlist, which for weeks of window is megabytes.
        let complete = match target.file {
            RingFile::Playlist | RingFile::Archived(_) => false,
            RingFile::Segment(sequence) | RingFile::Index(sequence) => {
                platform::open_beneath(root, &dirs, &segment_file_name(sequence.next())).is_ok()
            }
        };
        // A segment being written over an evicted one's file: only what the
        // progress record says is new (nothing, if it cannot be read).
        let len = match target.file {
            RingFile::Segment(sequence) if !complete => match platform::open_beneath(root, &dirs, PROGRESS_NAME) {
                Ok(record) => {
                    Progress::read_opened(Ok(record)).map_or(0, |record| Progress::limit(record, sequence, meta.len()))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => meta.len(),
                Err(_) => 0,
            },
            _ => meta.len(),
        };
        Some((
            file,
            Served {
                file: target.file,
                len,
                etag: etag(&meta, len),
                complete,
            },
        ))
    })
}

/// A strong validator from what changes when the file does: its length,
/// modification time and identity.
fn etag(meta: &std::fs::Metadata, len: u64) -> String {
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    #[cfg(unix)]
    let id = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let id = 0u64;
    format!("\"{len:x}-{modified:x}-{id:x}\"")
}

/// The answer for a file of `served.len` bytes: 304 if the client has it,
/// else the range asked for (or all of it), its bytes from `body`.
pub(super) fn ranged_response(
    opened: &Served,
    head: bool,
    range: Option<String>,
    if_none_match: Option<String>,
    body: impl FnOnce(u64, u64) -> Body,
) -> Response<Body> {
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, content_type(opened.file))
        .header(header::CACHE_CONTROL, cache_control(opened.file, opened.complete))
        .header(header::ETAG, &opened.etag)
        .header(header::ACCEPT_RANGES, "bytes");
    if if_none_match.is_some_and(|tags| tags.split(',').any(|t| t.trim() == opened.etag || t.trim() == "*")) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(empty_body())
            .unwrap_or_else(|_| server_error());
    }
    let (status, first, len) = match parse_range(range.as_deref(), opened.len) {
        Ok(None) => (StatusCode::OK, 0, opened.len),
        Ok(Some((first, last))) => {
            // A segment still being written has no complete length yet.
            let total = match opened.file {
                RingFile::Segment(_) if !opened.complete => "*".to_owned(),
                _ => opened.len.to_string(),
            };
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {first}-{last}/{total}"));
            (StatusCode::PARTIAL_CONTENT, first, last - first + 1)
        }
        Err(()) => {
            return builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{}", opened.len))
                .body(empty_body())
                .unwrap_or_else(|_| server_error());
        }
    };
    let body = if head { empty_body() } else { body(first, len) };
    builder
        .status(status)
        .header(header::CONTENT_LENGTH, len)
        .body(body)
        .unwrap_or_else(|_| server_error())
}

/// `len` bytes of `file` from `first`, read in blocks as the client takes
/// them (two ahead at most).
fn stream_file(file: std::fs::File, first: u64, len: u64) -> Body {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(2);
    tokio::spawn(async move {
        let mut file = tokio::fs::File::from_std(file);
        if let Err(e) = file.seek(SeekFrom::Start(first)).await {
            let _ = tx.send(Err(e)).await;
            return;
        }
        let mut left = len;
        while left > 0 {
            let want = usize::try_from(left).map_or(BLOCK, |l| l.min(BLOCK));
            let mut block = vec![0u8; want];
            let block = match file.read(&mut block).await {
                Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank")),
                Ok(n) => {
                    block.truncate(n);
                    left -= n as u64;
                    Ok(Bytes::from(block))
                }
                Err(e) => Err(e),
            };
            if !send_block(&tx, block).await {
                return;
            }
        }
    });
    ChannelBody::boxed_from(rx)
}

/// Sends `block` to the body's channel: `false` if it was an error, or the
/// client went away or took nothing for [`SLOW_CLIENT`] (stop reading).
pub(super) async fn send_block(tx: &mpsc::Sender<io::Result<Bytes>>, block: io::Result<Bytes>) -> bool {
    let failed = block.is_err();
    matches!(tokio::time::timeout(SLOW_CLIENT, tx.send(block)).await, Ok(Ok(()))) && !failed
}

/// A body fed by a channel.
pub(super) struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl ChannelBody {
    pub(super) fn boxed_from(rx: mpsc::Receiver<io::Result<Bytes>>) -> Body {
        ChannelBody { rx }.boxed()
    }
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx.poll_recv(cx).map(|block| block.map(|b| b.map(Frame::data)))
    }
}

fn empty_body() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(empty_body());
    *response.status_mut() = status;
    response
}

/// A short plain-text answer saying why.
pub(super) fn text(status: StatusCode, why: &str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(format!("{why}\n")))
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn server_error() -> Response<Body> {
    empty(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Lets browser players (hls.js) on any origin read it, ranges included.
fn with_cors(mut response: Response<Body>) -> Response<Body> {
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Range, If-None-Match"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Content-Length, Content-Range, ETag"),
    );
    response
}
