// SPDX-License-Identifier: MPL-2.0
//! A real S3-protocol server for the archive's tests: `s3s-fs` (installed
//! by `scripts/setup.sh --tests`), on 127.0.0.1 at a free port, storing
//! each object as a plain file under its root (`<root>/<bucket>/<key>`),
//! which the tests read back without going through the server.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::wait_until;

/// The keys the keyed servers accept.
pub const ACCESS_KEY: &str = "streambuffer-test";
pub const SECRET_KEY: &str = "streambuffer-test-secret";

/// See the module documentation. Stopped when dropped.
pub struct S3Server {
    root: tempfile::TempDir,
    port: u16,
    keyed: bool,
    child: Option<Child>,
}

fn s3s_fs() -> PathBuf {
    let installed = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cargo/bin/s3s-fs"))
        .filter(|p| p.exists());
    installed.unwrap_or_else(|| PathBuf::from("s3s-fs"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl S3Server {
    /// Starts a server that checks signatures with [`ACCESS_KEY`] and
    /// [`SECRET_KEY`], with the bucket `bucket`.
    pub fn start(bucket: &str) -> S3Server {
        let mut server = S3Server {
            root: tempfile::tempdir().expect("tempdir"),
            port: free_port(),
            keyed: true,
            child: None,
        };
        std::fs::create_dir(server.root.path().join(bucket)).expect("bucket");
        server.restart();
        server
    }

    /// A second server on the same storage that serves anyone, unsigned:
    /// a public bucket, as HLS players (or a CDN) read it.
    pub fn public_reader(&self) -> S3Server {
        let mut reader = S3Server {
            root: tempfile::tempdir().expect("tempdir"),
            port: free_port(),
            keyed: false,
            child: None,
        };
        reader.spawn(self.root.path());
        reader
    }

    fn spawn(&mut self, root: &Path) {
        let mut cmd = Command::new(s3s_fs());
        cmd.args(["--host", "127.0.0.1", "--port", &self.port.to_string()]);
        if self.keyed {
            cmd.args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY]);
        }
        let child = cmd
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs not found: run scripts/setup.sh --tests (cargo install s3s-fs)");
        self.child = Some(child);
        let port = self.port;
        assert!(
            wait_until(Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", port))
                .is_ok()),
            "s3s-fs did not start listening"
        );
    }

    /// Starts it again (same port, same objects) after [`Self::stop`].
    pub fn restart(&mut self) {
        let root = self.root.path().to_owned();
        self.spawn(&root);
    }

    /// Stops it (killed: as a server that went away).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a sink needs to sign requests to it.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
        ]
    }

    /// Sink properties for an archive at `s3://bucket/prefix` on it.
    pub fn sink_props(&self, bucket: &str, prefix: &str) -> String {
        archive_props(&self.endpoint(), bucket, prefix)
    }

    /// Where the object `key` of `bucket` is stored.
    pub fn object(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.path().join(bucket).join(key)
    }

    /// Every key under `prefix/` in `bucket`, sorted.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else if let Ok(rel) = path.strip_prefix(base) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        let base = self.root.path().join(bucket);
        let mut keys = Vec::new();
        walk(&base.join(prefix), &base, &mut keys);
        keys.sort();
        keys
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sink properties for an archive at `s3://bucket/prefix` on the server
/// at `endpoint`.
fn archive_props(endpoint: &str, bucket: &str, prefix: &str) -> String {
    format!("archive-location=s3://{bucket}/{prefix} archive-endpoint={endpoint} archive-path-style=true")
}

/// A slow network between a sink and a server: a TCP proxy on 127.0.0.1
/// that passes each direction on in `chunk`-byte pieces, sleeping `pause`
/// after each, and counts the bytes the server sends. Stops accepting when
/// dropped.
pub struct SlowProxy {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    from_server: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl SlowProxy {
    pub fn start(upstream: &str, chunk: usize, pause: Duration) -> SlowProxy {
        use std::io::{Read as _, Write as _};
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let stopping = stop.clone();
        let from_server = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = from_server.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                let (Ok(client), Ok(server)) = (client, TcpStream::connect(&upstream)) else {
                    continue;
                };
                for (mut from, mut to, count) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                        None,
                    ),
                    (server, client, Some(counted.clone())),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = vec![0; chunk];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            if let Some(count) = &count {
                                count.fetch_add(n as u64, Ordering::Relaxed);
                            }
                            std::thread::sleep(pause);
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        SlowProxy {
            port,
            stop,
            from_server,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sink properties for an archive at `s3://bucket/prefix` through it.
    pub fn sink_props(&self, bucket: &str, prefix: &str) -> String {
        archive_props(&self.endpoint(), bucket, prefix)
    }

    /// Bytes the server has sent through it so far.
    pub fn bytes_from_server(&self) -> u64 {
        self.from_server.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
