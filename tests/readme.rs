// SPDX-License-Identifier: MPL-2.0
//! Every command the README tells a user to run, run as it is shown there:
//! the quick start's demo and its closing `gst-play-1.0` line, the
//! recording and playback commands (read out of README.md itself, with a
//! temporary directory for `/var/buffer/ch1` and a fakesink where a window
//! would open), and the scripts of `pipelines/`. `gst-play-1.0
//! streambuffer://` is driven through its keys in `gst_play.rs`,
//! `pipelines/dvr.py` in `trick_play.rs`, the `streambuffer` tool in
//! `tool.rs`.
// Shell scripts, process groups and signals.
#![cfg(unix)]

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{plugin_dir, rings::playlist_entries, wait_until};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The commands of README.md's `sh` code blocks, continuation lines
/// joined, comments cut.
fn readme_commands() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut current = String::new();
    for line in text.lines() {
        if let Some(lang) = line.strip_prefix("```") {
            in_sh = !in_sh && lang.trim() == "sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let line = line.split(" #").next().unwrap_or("").trim_end();
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                if !current.trim().is_empty() {
                    commands.push(current.split_whitespace().collect::<Vec<_>>().join(" "));
                }
                current.clear();
            }
        }
    }
    commands
}

/// The README's command that starts with `prefix`.
fn readme_command(prefix: &str) -> String {
    readme_commands()
        .into_iter()
        .find(|c| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("README.md shows no command starting with '{prefix}'"))
}

/// Runs `command` with bash in a process group of its own (so that an
/// interrupt reaches all it started), the plugin of this build found.
fn spawn_shell(command: &str, env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new("bash");
    cmd.args(["-c", command])
        .env("GST_PLUGIN_PATH", plugin_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // Ctrl-C as in a terminal: a test run in the background inherits SIGINT
    // ignored, and gst-play-1.0 (which has no handler of its own) would not
    // stop.
    // SAFETY: signal() is async-signal-safe, called between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("bash")
}

/// Ctrl-C to the whole process group, as a user stops it.
fn interrupt(child: &Child) {
    let _ = Command::new("kill")
        .args(["-INT", "--", &format!("-{}", child.id())])
        .status();
}

/// Waits for `child` at most `limit` (then kills its group) and returns
/// what it printed; `None` if it had to be killed.
fn finish(mut child: Child, limit: Duration) -> (Option<std::process::ExitStatus>, String) {
    let start = Instant::now();
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if start.elapsed() > limit {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out: Output = child.wait_with_output().unwrap_or_else(|_| Output {
        status: std::process::ExitStatus::default(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (status, text)
}

/// A ring directory that is finished and plays: its playlist ends with
/// `EXT-X-ENDLIST` and ffprobe finds H.264 in it.
fn assert_finished_ring(ring: &Path, what: &str) {
    let text = std::fs::read_to_string(ring.join("index.m3u8")).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(text.contains("#EXT-X-ENDLIST"), "{what}: not finished:\n{text}");
    assert!(playlist_entries(ring) >= 1, "{what}: no segment");
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0"])
        .arg(ring.join("index.m3u8"))
        .output()
        .expect("ffprobe");
    assert!(
        String::from_utf8_lossy(&probe.stdout).contains("h264"),
        "{what}: ffprobe finds no H.264: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
}

/// The quick start's recording command, then its time-shifted playback
/// command, as README.md shows them: the recording (live, endless) is
/// stopped with Ctrl-C once a segment is out, which leaves a finished ring;
/// the playback plays it to its end.
#[test]
fn quick_start_recording_and_playback_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ch1");
    let ring_path = ring.display().to_string();
    let record = readme_command("gst-launch-1.0 videotestsrc").replace("/var/buffer/ch1", &ring_path);
    assert!(record.contains("streambuffersink"), "{record}");
    let recorder = spawn_shell(&format!("exec {record}"), &[]);
    let published = wait_until(Duration::from_secs(60), || playlist_entries(&ring) >= 1);
    interrupt(&recorder);
    let (status, output) = finish(recorder, Duration::from_secs(20));
    assert!(
        published,
        "the recording command published no segment in 60 s: {output}"
    );
    assert!(
        status.is_some(),
        "the recording command did not stop on Ctrl-C: {output}"
    );
    assert_finished_ring(&ring, "the quick start's ring");

    let play = readme_command("gst-launch-1.0 streambuffersrc")
        .replace("/var/buffer/ch1", &ring_path)
        .replace("autovideosink", "fakesink");
    let (status, output) = finish(spawn_shell(&play, &[]), Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()) && output.contains("Got EOS"),
        "{play}: {status:?}\n{output}"
    );
}

/// `scripts/demo.sh DIR`, the quick start's first command: it records,
/// lists the ring, prints the playlist and ffprobe's view; its closing line
/// names a `gst-play-1.0` command, which is installed and plays the ring
/// (headless here) to its end.
#[test]
fn demo_script_and_its_closing_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let (status, output) = finish(
        spawn_shell(
            &format!(
                "exec '{}' '{}'",
                repo().join("scripts/demo.sh").display(),
                ring.display()
            ),
            &[],
        ),
        Duration::from_secs(900),
    );
    assert!(status.is_some_and(|s| s.success()), "demo.sh failed: {output}");
    for expected in ["== The ring", "#EXTM3U", "codec_name=h264", "width=640"] {
        assert!(output.contains(expected), "demo.sh did not show '{expected}': {output}");
    }
    assert_finished_ring(&ring, "the demo's ring");
    let line = output
        .lines()
        .find_map(|l| l.split_once("Play it with: ").map(|(_, c)| c.to_owned()))
        .unwrap_or_else(|| panic!("no closing line: {output}"));
    let command = line.split("  (or").next().unwrap_or(&line).trim().to_owned();
    assert!(command.contains("gst-play-1.0"), "{command}");
    let headless = format!("{command} --videosink=fakesink --audiosink=fakesink --no-interactive");
    let (status, output) = finish(spawn_shell(&headless, &[]), Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()) && output.contains("Reached end of play list"),
        "{headless}: {status:?}\n{output}"
    );
}

fn pipeline(name: &str) -> PathBuf {
    repo().join("pipelines").join(name)
}

/// `pipelines/record-test-stream.sh DIR SECONDS` records a finished ring;
/// `pipelines/play.sh DIR` plays it with playbin to its end (its sinks
/// set to fakesink, as the script allows for machines without a display).
#[test]
fn record_test_stream_then_play_scripts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ch1");
    let (status, output) = finish(
        spawn_shell(
            &format!(
                "exec '{}' '{}' 8",
                pipeline("record-test-stream.sh").display(),
                ring.display()
            ),
            &[],
        ),
        Duration::from_secs(600),
    );
    assert!(status.is_some_and(|s| s.success()), "record-test-stream.sh: {output}");
    assert_finished_ring(&ring, "record-test-stream.sh");
    let (status, output) = finish(
        spawn_shell(
            &format!("exec '{}' '{}'", pipeline("play.sh").display(), ring.display()),
            &[("VIDEO_SINK", "fakesink"), ("AUDIO_SINK", "fakesink")],
        ),
        Duration::from_secs(60),
    );
    assert!(
        status.is_some_and(|s| s.success()) && output.contains("Got EOS"),
        "play.sh: {status:?}\n{output}"
    );
}

/// `pipelines/record-udp.sh DIR ADDRESS PORT` with its own test sender
/// records from UDP until Ctrl-C, which leaves a finished ring.
#[test]
fn record_udp_script() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("udp");
    let port = common::processes::free_udp_port();
    let child = spawn_shell(
        &format!(
            "exec '{}' '{}' 127.0.0.1 {port}",
            pipeline("record-udp.sh").display(),
            ring.display()
        ),
        &[],
    );
    let published = wait_until(Duration::from_secs(600), || playlist_entries(&ring) >= 1);
    interrupt(&child);
    let (status, output) = finish(child, Duration::from_secs(20));
    assert!(published, "record-udp.sh published no segment: {output}");
    assert!(status.is_some(), "record-udp.sh did not stop on Ctrl-C: {output}");
    assert_finished_ring(&ring, "record-udp.sh");
}

/// `pipelines/timeshift.sh DIR DELAY` (with `SINK=fakesink`, as it says
/// for machines without a display) records and plays 2 s behind live
/// until Ctrl-C; the playback reaches PLAYING without an error.
#[test]
fn timeshift_script() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("timeshift");
    let child = spawn_shell(
        &format!("exec '{}' '{}' 2", pipeline("timeshift.sh").display(), ring.display()),
        &[("SINK", "fakesink")],
    );
    // The playback starts once 2 s are buffered (after the release build).
    let started = wait_until(Duration::from_secs(600), || playlist_entries(&ring) >= 4);
    std::thread::sleep(Duration::from_secs(4));
    interrupt(&child);
    let (status, output) = finish(child, Duration::from_secs(20));
    assert!(started, "timeshift.sh recorded nothing: {output}");
    assert!(status.is_some(), "timeshift.sh did not stop on Ctrl-C: {output}");
    assert!(
        output.contains("Setting pipeline to PLAYING") && !output.contains("ERROR"),
        "timeshift.sh's playback: {output}"
    );
    assert_finished_ring(&ring, "timeshift.sh");
}

/// The quick start's time-shift in one command, `gst-play-1.0
/// 'streambuffer+udp://0.0.0.0:5000...'`, with a live sender on its port (a
/// free one here) and fakesinks where windows would open: it plays, and
/// stops on Ctrl-C.
#[test]
fn quick_start_time_shift_command() {
    let port = common::processes::free_udp_port();
    let command = readme_command("gst-play-1.0 'streambuffer+udp://")
        .replace(":5000", &format!(":{port}"))
        .replace(
            "gst-play-1.0",
            "gst-play-1.0 --videosink='fakesink sync=true' --audiosink='fakesink sync=true'",
        );
    let sender = spawn_shell(
        &format!(
            "exec gst-launch-1.0 -q videotestsrc is-live=true ! x264enc tune=zerolatency key-int-max=25 ! \
             mpegtsmux name=m ! udpsink host=127.0.0.1 port={port} audiotestsrc is-live=true ! avenc_aac ! m."
        ),
        &[],
    );
    let player = spawn_shell(&format!("exec {command}"), &[]);
    std::thread::sleep(Duration::from_secs(10));
    interrupt(&player);
    let (status, output) = finish(player, Duration::from_secs(20));
    interrupt(&sender);
    let _ = finish(sender, Duration::from_secs(10));
    assert!(status.is_some(), "{command} did not stop on Ctrl-C: {output}");
    assert!(
        output.contains(" / 0:00:") && !output.contains("ERROR"),
        "{command} did not play: {output}"
    );
}

#[test]
fn readme_commands_are_found() {
    let commands = readme_commands();
    assert!(
        commands.iter().any(|c| c.starts_with("scripts/demo.sh"))
            && commands.iter().any(|c| c.starts_with("gst-launch-1.0 videotestsrc"))
            && commands.iter().any(|c| c.starts_with("gst-launch-1.0 streambuffersrc"))
            && commands
                .iter()
                .any(|c| c.starts_with("gst-play-1.0 'streambuffer+udp://")),
        "{commands:?}"
    );
}
