// SPDX-License-Identifier: MPL-2.0
//! `ArchiveStore`: the bucket, as blocking calls for the uploader's thread
//! (and the readers'), through `object_store`'s S3 client on a
//! current-thread tokio runtime owned by the store: nothing of it runs on
//! a streaming thread.
//!
//! Credentials come from where AWS tools look: the `AWS_*` environment
//! variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, ...), else the profile `AWS_PROFILE` (or `default`)
//! of the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, or
//! `~/.aws/credentials`), else the instance's metadata service.
//!
//! Over TLS the payload is sent unsigned (`UNSIGNED-PAYLOAD`), over plain
//! HTTP it is signed; `AWS_UNSIGNED_PAYLOAD` overrides either.
//!
//! Only plain PUTs of whole objects (multipart, in 16 MiB parts, above
//! 64 MiB), GETs (ranged), HEAD, LIST and batch DELETE are used: nothing a
//! particular server is lenient about (conditional PUTs, tiny parts).

use std::time::Duration;

use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore as _, ObjectStoreExt as _,
    PutMultipartOptions, PutOptions, RetryConfig,
};

use super::ArchiveConfig;

/// Objects larger than this go up in parts.
const MULTIPART_ABOVE: u64 = 64 * 1024 * 1024;
/// Size of each part (S3 wants at least 5 MiB but for the last).
const PART_BYTES: usize = 16 * 1024 * 1024;
/// A request that takes longer fails (and is retried later): long enough
/// for a 16 MiB part or a 15 MB segment over a 5 Mbit/s uplink; it also
/// bounds how long stopping the sink waits for a request in flight.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Requests [`ArchiveStore::get_each`] has in flight at once.
const CONCURRENT_GETS: usize = 16;

/// A failed request to the bucket, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StoreError {
    fn cancelled() -> StoreError {
        StoreError("cancelled: the sink is stopping".into())
    }
}

impl From<object_store::Error> for StoreError {
    fn from(e: object_store::Error) -> Self {
        // object_store's messages nest their sources; keep them all.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            let s_text = s.to_string();
            if !text.contains(&s_text) {
                text.push_str(": ");
                text.push_str(&s_text);
            }
            source = s.source();
        }
        StoreError(text)
    }
}

/// Why [`ArchiveStore::put_file`] failed.
#[derive(Debug)]
pub enum PutError {
    /// The bucket failed (retried later).
    Store(StoreError),
    /// The file could not be read (or was shorter than said).
    Read,
}

/// The content type and cache policy of an object, from its name: what HLS
/// players and a CDN in front of the bucket need (playlists change,
/// segments and indexes never do).
fn attributes_of(name: &str) -> Attributes {
    let (content_type, cache_control) = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("m3u8") => ("application/vnd.apple.mpegurl", "max-age=1"),
        Some("ts") => ("video/mp2t", "max-age=31536000, immutable"),
        _ => ("application/octet-stream", "max-age=31536000, immutable"),
    };
    Attributes::from_iter([
        (Attribute::ContentType, content_type),
        (Attribute::CacheControl, cache_control),
    ])
}

/// Cuts the store's requests short from another thread: a stopping sink
/// does not wait for a server that hangs.
#[derive(Debug, Default)]
pub struct Cancel {
    cancelled: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Cancel {
    /// Every request in flight and every later one fails at once.
    pub fn cancel(&self) {
        self.cancelled.store(true, std::sync::atomic::Ordering::Release);
        self.notify.notify_waiters();
    }

    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct ArchiveStore {
    store: AmazonS3,
    runtime: tokio::runtime::Runtime,
    cancel: std::sync::Arc<Cancel>,
    /// Keys start with it (empty, or ending in `/`).
    prefix: String,
}

impl ArchiveStore {
    /// A client for `config`'s bucket. Fails only on what can be told
    /// without a request (a malformed endpoint); a bucket that is missing
    /// or refuses the credentials shows at the first request.
    pub fn new(config: &ArchiveConfig) -> Result<ArchiveStore, String> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.location.bucket)
            .with_virtual_hosted_style_request(!config.path_style)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 2,
                retry_timeout: Duration::from_secs(20),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(REQUEST_TIMEOUT)
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_allow_http(config.endpoint.as_deref().is_some_and(|e| e.starts_with("http://"))),
            );
        if let Some(endpoint) = &config.endpoint {
            super::check_endpoint(endpoint)?;
            builder = builder.with_endpoint(endpoint);
        }
        let region = config
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".to_owned());
        builder = builder.with_region(region);
        // Over TLS the payload is not hashed into the signature (the SHA-256
        // of every segment was two thirds of the uploader's CPU): TLS
        // protects it, as the AWS SDKs reason. Over plain HTTP the
        // signature is all that does. AWS_UNSIGNED_PAYLOAD decides if set.
        if config.endpoint.as_deref().is_none_or(|e| e.starts_with("https://"))
            && std::env::var_os("AWS_UNSIGNED_PAYLOAD").is_none()
        {
            builder = builder.with_unsigned_payload(true);
        }
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
            && let Some(profile) = profile_credentials()
        {
            builder = builder
                .with_access_key_id(profile.access_key_id)
                .with_secret_access_key(profile.secret_access_key);
            if let Some(token) = profile.session_token {
                builder = builder.with_token(token);
            }
        }
        let store = builder
            .build()
            .map_err(|e| format!("archive {}: {}", config.location, StoreError::from(e)))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the archive's runtime: {e}"))?;
        let prefix = if config.location.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", config.location.prefix)
        };
        Ok(ArchiveStore {
            store,
            runtime,
            cancel: std::sync::Arc::default(),
            prefix,
        })
    }

    /// What cuts this store's requests short.
    #[must_use]
    pub fn cancel_handle(&self) -> std::sync::Arc<Cancel> {
        self.cancel.clone()
    }

    /// Runs `request` to its end, or until [`Cancel::cancel`]: `None` then.
    fn run<T>(&self, request: impl std::future::Future<Output = T>) -> Option<T> {
        self.runtime.block_on(async {
            let cancelled = self.cancel.notify.notified();
            let mut cancelled = std::pin::pin!(cancelled);
            cancelled.as_mut().enable();
            if self.cancel.is_cancelled() {
                return None;
            }
            match futures_util::future::select(std::pin::pin!(request), cancelled).await {
                futures_util::future::Either::Left((done, _)) => Some(done),
                futures_util::future::Either::Right(_) => None,
            }
        })
    }

    /// The key of `name` (relative to the prefix).
    fn path(&self, name: &str) -> Path {
        Path::from(format!("{}{name}", self.prefix))
    }

    /// Puts `bytes` at `name`, whole: readers see the old object or the
    /// new one, never part of it (see [`attributes_of`] for its headers).
    pub fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let path = self.path(name);
        let options = PutOptions {
            attributes: attributes_of(name),
            ..PutOptions::default()
        };
        self.run(self.store.put_opts(&path, bytes.into(), options))
            .ok_or_else(StoreError::cancelled)??;
        Ok(())
    }

    /// Puts the first `len` bytes of `file` at `name`, whole, as
    /// [`Self::put`] does; above 64 MiB in parts read one at a time, so
    /// that a long segment never sits in memory whole.
    pub fn put_file(&self, name: &str, file: &std::fs::File, len: u64) -> Result<(), PutError> {
        let read = |offset: u64, n: u64| -> Result<Vec<u8>, PutError> {
            let mut buf = vec![0u8; usize::try_from(n).map_err(|_| PutError::Read)?];
            let mut filled = 0;
            while filled < buf.len() {
                match crate::platform::read_at(file, &mut buf[filled..], offset + filled as u64) {
                    Ok(0) | Err(_) => return Err(PutError::Read),
                    Ok(k) => filled += k,
                }
            }
            Ok(buf)
        };
        if len <= MULTIPART_ABOVE {
            return self.put(name, read(0, len)?).map_err(PutError::Store);
        }
        let path = self.path(name);
        let options = PutMultipartOptions {
            attributes: attributes_of(name),
            ..PutMultipartOptions::default()
        };
        self.run(async {
            let mut upload = self
                .store
                .put_multipart_opts(&path, options)
                .await
                .map_err(|e| PutError::Store(e.into()))?;
            let mut offset = 0;
            while offset < len {
                let n = (len - offset).min(PART_BYTES as u64);
                let sent = match read(offset, n) {
                    Ok(part) => upload
                        .put_part(part.into())
                        .await
                        .map_err(|e| PutError::Store(e.into())),
                    Err(e) => Err(e),
                };
                if let Err(e) = sent {
                    let _ = upload.abort().await;
                    return Err(e);
                }
                offset += n;
            }
            upload
                .complete()
                .await
                .map(|_| ())
                .map_err(|e| PutError::Store(e.into()))
        })
        .unwrap_or_else(|| Err(PutError::Store(StoreError::cancelled())))
    }

    /// The object at `name`; `None` if there is none.
    pub fn get(&self, name: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(name);
        self.run(async {
            match self.store.get(&path).await {
                Ok(got) => {
                    if got.meta.size > max_bytes {
                        return Err(StoreError(format!(
                            "{name}: {} bytes, more than expected",
                            got.meta.size
                        )));
                    }
                    Ok(Some(got.bytes().await?.to_vec()))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
        .unwrap_or_else(|| Err(StoreError::cancelled()))
    }

    /// The objects at `names`, each as [`Self::get`] gives it, fetched
    /// [`CONCURRENT_GETS`] at a time: reading an archive's hundreds of hour
    /// playlists one by one would take seconds over a real network.
    pub fn get_each(&self, names: &[String], max_bytes: u64) -> Vec<Result<Option<Vec<u8>>, StoreError>> {
        let fetches = futures_util::stream::iter(names.iter().map(|name| {
            let path = self.path(name);
            async move {
                match self.store.get(&path).await {
                    Ok(got) if got.meta.size > max_bytes => Err(StoreError(format!(
                        "{name}: {} bytes, more than expected",
                        got.meta.size
                    ))),
                    Ok(got) => Ok(Some(got.bytes().await?.to_vec())),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
        }))
        .buffered(CONCURRENT_GETS)
        .collect::<Vec<_>>();
        self.run(fetches)
            .unwrap_or_else(|| names.iter().map(|_| Err(StoreError::cancelled())).collect())
    }

    /// Writes bytes `from .. until` (to its end if `None`) of the object
    /// at `name` into `file` at the same offsets, as they arrive (never
    /// whole in memory), telling `progress` how far the file is written
    /// after each piece; returns the object's size, `None` if there is no
    /// object.
    pub fn get_into(
        &self,
        name: &str,
        max_bytes: u64,
        (from, until): (u64, Option<u64>),
        file: &mut std::fs::File,
        mut progress: impl FnMut(u64),
    ) -> Result<Option<u64>, StoreError> {
        use std::io::{Seek as _, SeekFrom, Write as _};
        let path = self.path(name);
        let range = match (from, until) {
            (0, None) => None,
            (from, None) => Some(GetRange::Offset(from)),
            (from, Some(until)) => Some(GetRange::Bounded(from..until)),
        };
        let options = GetOptions {
            range,
            ..GetOptions::default()
        };
        self.run(async {
            let got = match self.store.get_opts(&path, options).await {
                Ok(got) => got,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let size = got.meta.size;
            if size > max_bytes {
                return Err(StoreError(format!("{name}: {size} bytes, more than expected")));
            }
            let keep = |e: std::io::Error| StoreError(format!("cannot keep {name}: {e}"));
            let std::ops::Range { start, end } = got.range.clone();
            file.seek(SeekFrom::Start(start)).map_err(keep)?;
            let mut stream = got.into_stream();
            let mut at = start;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                at = at.saturating_add(chunk.len() as u64);
                if at > end {
                    return Err(StoreError(format!("{name}: more bytes than asked for")));
                }
                file.write_all(&chunk).map_err(keep)?;
                progress(at);
            }
            if at != end {
                return Err(StoreError(format!("{name}: {} of {} bytes", at - start, end - start)));
            }
            Ok(Some(size))
        })
        .unwrap_or_else(|| Err(StoreError::cancelled()))
    }

    /// `len` bytes of the object at `name` from `offset` (a ranged GET);
    /// `None` if there is no object.
    pub fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(name);
        let end = offset
            .checked_add(len)
            .ok_or_else(|| StoreError(format!("{name}: no such range")))?;
        self.run(async {
            match self.store.get_range(&path, offset..end).await {
                Ok(bytes) => Ok(Some(bytes.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
        .unwrap_or_else(|| Err(StoreError::cancelled()))
    }

    /// The size of the object at `name`; `None` if there is none.
    pub fn size_of(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let path = self.path(name);
        match self.run(self.store.head(&path)).ok_or_else(StoreError::cancelled)? {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The folders directly under `folder` ("" for the prefix), by name.
    pub fn folders(&self, folder: &str) -> Result<Vec<String>, StoreError> {
        let listed = self.list(folder)?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect())
    }

    /// The objects directly in `folder`: name and size.
    pub fn objects(&self, folder: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let listed = self.list(folder)?;
        Ok(listed
            .objects
            .iter()
            .filter_map(|o| o.location.filename().map(|n| (n.to_owned(), o.size)))
            .collect())
    }

    fn list(&self, folder: &str) -> Result<object_store::ListResult, StoreError> {
        let prefix = match (self.prefix.is_empty(), folder.is_empty()) {
            (true, true) => None,
            _ => Some(Path::from(format!("{}{folder}", self.prefix))),
        };
        Ok(self
            .run(self.store.list_with_delimiter(prefix.as_ref()))
            .ok_or_else(StoreError::cancelled)??)
    }

    /// Deletes `names` (relative to the prefix) in batches; returns how
    /// many went. One already gone counts as deleted.
    pub fn delete(&self, names: &[String]) -> Result<u64, StoreError> {
        if names.is_empty() {
            return Ok(0);
        }
        let paths: Vec<object_store::Result<Path>> = names.iter().map(|n| Ok(self.path(n))).collect();
        self.run(async {
            let deleted = self
                .store
                .delete_stream(futures_util::stream::iter(paths).boxed())
                .try_fold(0u64, |n, _| async move { Ok(n + 1) })
                .await;
            match deleted {
                Ok(n) => Ok(n),
                Err(e) => Err(e.into()),
            }
        })
        .unwrap_or_else(|| Err(StoreError::cancelled()))
    }
}

/// Keys of a profile in the shared credentials file.
struct ProfileCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

/// The profile `AWS_PROFILE` (or `default`) of the shared credentials
/// file, if it has both keys.
fn profile_credentials() -> Option<ProfileCredentials> {
    let path = match std::env::var_os("AWS_SHARED_CREDENTIALS_FILE") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?)
            .join(".aws")
            .join("credentials"),
    };
    let text = std::fs::read_to_string(path).ok()?;
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_owned());
    parse_profile(&text, &profile)
}

/// The keys of `[profile]` in an INI-style credentials file.
fn parse_profile(text: &str, profile: &str) -> Option<ProfileCredentials> {
    let mut in_profile = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
        } else if in_profile && let Some((key, value)) = line.split_once('=') {
            let value = Some(value.trim().to_owned());
            match key.trim() {
                "aws_access_key_id" => id = value,
                "aws_secret_access_key" => secret = value,
                "aws_session_token" => token = value,
                _ => {}
            }
        }
    }
    Some(ProfileCredentials {
        access_key_id: id?,
        secret_access_key: secret?,
        session_token: token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_read_from_the_credentials_file() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key=B\n\n[other]\naws_access_key_id=C\naws_secret_access_key = D\naws_session_token = T\n";
        let d = parse_profile(text, "default").expect("default");
        assert_eq!((d.access_key_id.as_str(), d.secret_access_key.as_str()), ("A", "B"));
        assert!(d.session_token.is_none());
        let o = parse_profile(text, "other").expect("other");
        assert_eq!((o.access_key_id.as_str(), o.session_token.as_deref()), ("C", Some("T")));
        assert!(parse_profile(text, "missing").is_none());
        assert!(parse_profile("[x]\naws_access_key_id=A\n", "x").is_none());
    }
}
