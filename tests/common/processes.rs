// SPDX-License-Identifier: MPL-2.0
//! Other processes and real faults: gst-launch-1.0 bounded in time, a
//! writer in another process, the LD_PRELOAD fault shim, a size-limited
//! tmpfs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::media::test_stream;
use super::plugin_dir;

/// A size-limited tmpfs mounted for one test: real ENOSPC from the kernel.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "8M"). Returns `None`, after saying so
    /// loudly, where mounting is impossible (not root, no tmpfs support).
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::piped())
            .output();
        match status {
            Ok(out) if out.status.success() => Some(Tmpfs { dir }),
            Ok(out) => {
                eprintln!(
                    "\n!!!!!!!! SKIPPED: cannot mount a tmpfs ({}); this test needs root !!!!!!!!\n",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("\n!!!!!!!! SKIPPED: cannot run mount ({e}) !!!!!!!!\n");
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the filesystem with a ballast file until the kernel says ENOSPC.
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.path().join("ballast");
        let mut f = std::fs::File::create(&path).expect("create ballast");
        for chunk in [1 << 20, 4096, 512] {
            let block = vec![0xA5u8; chunk];
            while f.write_all(&block).is_ok() {}
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// The environment that makes the fault shim fail `calls` on files of
/// `dir` whose name contains `matching`, plus `extra` settings
/// (`FAULT_COUNT`, `FAULT_SHORT`, `FAULT_LOG`, ...; see the C file).
pub fn fault_env(
    dir: &Path,
    matching: &str,
    calls: &str,
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("LD_PRELOAD", fault_shim().display().to_string()),
        ("FAULT_DIR", dir.display().to_string()),
        ("FAULT_MATCH", matching.to_owned()),
        ("FAULT_CALLS", calls.to_owned()),
    ];
    env.extend(extra.iter().map(|&(k, v)| (k, v.to_owned())));
    env
}

/// The `LD_PRELOAD` fault shim (`tests/shim/faults.c`), built once per test
/// binary with `cc`. See the C file for the environment it reads.
pub fn fault_shim() -> PathBuf {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/shim/faults.c");
        // Built under a name of this process's, then renamed over the one
        // shim file: test binaries never see a half-written library, and
        // runs do not leave one file each behind.
        let out = plugin_dir().join("faults.so");
        let building = plugin_dir().join(format!(".faults-{}.so", std::process::id()));
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
            .arg(&building)
            .arg(&src)
            .arg("-ldl")
            .status()
            .expect("run cc");
        assert!(status.success(), "building the fault shim failed");
        std::fs::rename(&building, &out).expect("install the fault shim");
        out
    })
    .clone()
}

/// Runs `gst-launch-1.0 ARGS` in another process with this build's plugin
/// and `env`, killed after `timeout`; returns (exited in time, success,
/// stdout + stderr).
pub fn gst_launch<V: AsRef<std::ffi::OsStr>>(args: &str, env: &[(&str, V)], timeout: Duration) -> (bool, bool, String) {
    run_bounded("gst-launch-1.0", args, env, timeout)
}

/// Runs `program ARGS` with this build's plugin on `GST_PLUGIN_PATH` and
/// `env`, killed after `timeout`; returns (exited in time, success,
/// stdout + stderr).
pub fn run_bounded<V: AsRef<std::ffi::OsStr>>(
    program: &str,
    args: &str,
    env: &[(&str, V)],
    timeout: Duration,
) -> (bool, bool, String) {
    let mut cmd = Command::new(program);
    cmd.env("GST_PLUGIN_PATH", plugin_dir())
        .args(args.split_whitespace())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn gst-launch-1.0");
    let start = std::time::Instant::now();
    let exited = loop {
        if child.try_wait().ok().flatten().is_some() {
            break true;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("wait");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (exited, exited && out.status.success(), text)
}

/// Records `seconds` of the test stream into `ring` with `gst-launch-1.0 -m`
/// in another process (bounded: a hang fails the test); returns (success,
/// output with every message).
pub fn record_in_process<V: AsRef<std::ffi::OsStr>>(
    ring: &Path,
    seconds: u32,
    props: &str,
    env: &[(&str, V)],
) -> (bool, String) {
    let (exited, ok, text) = gst_launch(
        &format!(
            "-m filesrc location={} ! streambuffersink location={} {props}",
            test_stream(seconds).display(),
            ring.display()
        ),
        env,
        Duration::from_secs(60),
    );
    assert!(exited, "the sink hung: {text}");
    (ok, text)
}

/// A writer in another process: `seconds` of a live 25 fps H.264 test
/// pattern (x264, a keyframe every second) through mpegtsmux into a ring of
/// `segment_ns` segments at `ring`, with `extra` sink properties.
pub fn spawn_live_writer(ring: &Path, segment_ns: u64, seconds: u32, extra: &str) -> std::process::Child {
    Command::new("gst-launch-1.0")
        .env("GST_PLUGIN_PATH", plugin_dir())
        .args(["-q", "-e"])
        .args(
            format!(
                "videotestsrc is-live=true num-buffers={} pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 ! \
                 x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast bitrate=800 ! mpegtsmux ! \
                 streambuffersink segment-duration={segment_ns} {extra}",
                seconds * 25,
            )
            .split_whitespace(),
        )
        .arg(format!("location={}", ring.display()))
        .spawn()
        .expect("spawn writer")
}

/// A free UDP port on loopback (bound, then released for the receiver).
pub fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr").port()
}

/// Kills a child process when dropped: a failing test leaves none behind.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
