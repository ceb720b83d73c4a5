// SPDX-License-Identifier: MPL-2.0
//! What reads the disk treats everything there as hostile: `streambuffersrc`
//! and the sink's adoption of an existing ring, against FIFOs, links,
//! hostile playlists and journals, foreign files, immutable files and real
//! read errors (the `LD_PRELOAD` fault shim). Every test is bounded in time.
// Real kernel behaviour (tmpfs, FIFOs, signals, gst-launch-1.0 children):
// these tests run on Unix.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    NO_ENV, SECOND,
    media::{ffmpeg_decode, test_stream},
    pipelines::{first_error, launch, on_each_buffer, record_file, stat_u64, wait_for_eos},
    plugin_dir,
    processes::{fault_env, gst_launch, record_in_process, run_bounded},
    rings::{assert_segment_well_formed, crc32_mpeg2, playlist, segments},
};
use gst::prelude::*;

const SEG: u64 = SECOND;
const PLAY_TIMEOUT: Duration = Duration::from_secs(60);

/// A finished ring of about 2 s segments (the test stream's GOP) in `dir`.
fn finished_ring(dir: &Path, seconds: u32) -> Vec<PathBuf> {
    record_file(
        &test_stream(seconds),
        65536,
        dir,
        &format!("segment-duration={SEG} max-duration=0"),
    );
    let segs = segments(dir);
    assert!(segs.len() >= 5, "{} segments", segs.len());
    segs
}

fn concat(files: &[PathBuf]) -> Vec<u8> {
    files
        .iter()
        .flat_map(|f| std::fs::read(f).expect("read segment"))
        .collect()
}

/// What a reader of a ring produced.
struct Played {
    result: Result<(), String>,
    bytes: Vec<u8>,
    messages: Vec<gst::Structure>,
}

impl Played {
    fn named(&self, name: &str) -> Vec<&gst::Structure> {
        self.messages.iter().filter(|m| m.name() == name).collect()
    }
}

/// Plays `ring` from its oldest content into an appsink, in this process.
fn play(ring: &Path) -> Played {
    let pipeline = launch(&format!(
        "streambuffersrc name=src location={} start-position=oldest poll-interval=20000000 ! appsink name=out sync=false",
        ring.display()
    ));
    let bytes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let b = bytes.clone();
    on_each_buffer(&pipeline, "out", move |_, data| {
        b.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(data);
    });
    let bus = pipeline.bus().expect("bus");
    let result = match pipeline.set_state(gst::State::Playing) {
        Err(_) => (
            Err(first_error(&bus).unwrap_or_else(|| "state change failed".into())),
            Vec::new(),
        ),
        Ok(_) => collect_until_end(&bus),
    };
    let mut messages = result.1;
    pipeline.set_state(gst::State::Null).expect("stop");
    while let Some(msg) = bus.pop() {
        if let gst::MessageView::Element(e) = msg.view() {
            messages.extend(e.structure().map(ToOwned::to_owned));
        }
    }
    let bytes = std::mem::take(&mut *bytes.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    Played {
        result: result.0,
        bytes,
        messages,
    }
}

/// Waits for EOS or ERROR, keeping the element messages seen meanwhile.
fn collect_until_end(bus: &gst::Bus) -> (Result<(), String>, Vec<gst::Structure>) {
    let mut messages = Vec::new();
    let deadline = std::time::Instant::now() + PLAY_TIMEOUT;
    while std::time::Instant::now() < deadline {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => return (Ok(()), messages),
            gst::MessageView::Error(e) => return (Err(format!("{} ({:?})", e.error(), e.debug())), messages),
            gst::MessageView::Element(e) => messages.extend(e.structure().map(ToOwned::to_owned)),
            _ => {}
        }
    }
    (Err("timeout".into()), messages)
}

fn rewrite_playlist(ring: &Path, edit: impl FnOnce(&str) -> String) {
    let path = ring.join("index.m3u8");
    let text = std::fs::read_to_string(&path).expect("playlist");
    std::fs::write(&path, edit(&text)).expect("rewrite playlist");
}

fn seg_name(path: &Path) -> String {
    path.file_name().and_then(|n| n.to_str()).expect("name").to_owned()
}

/// Removes the entries of `names` (and their tags) from a playlist.
fn without_entries(text: &str, names: &[String]) -> String {
    let mut out = Vec::new();
    let mut pending = Vec::new();
    for line in text.lines() {
        if line.starts_with("#EXTINF") || line.starts_with("#EXT-X-PROGRAM-DATE-TIME") || line == "#EXT-X-DISCONTINUITY"
        {
            pending.push(line);
        } else if names.iter().any(|n| n == line) {
            pending.clear();
        } else {
            out.append(&mut pending);
            out.push(line);
        }
    }
    out.join("\n") + "\n"
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// decodebin's typefind asks whether the source seeks in BYTES: the answer
/// is an honest no (TIME: yes), and the ring decodes to the end.
#[test]
fn decodebin_plays_a_ring_and_bytes_queries_are_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    finished_ring(dir.path(), 10);
    let pipeline = launch(&format!(
        "streambuffersrc name=src location={} start-position=oldest ! decodebin ! fakesink name=out",
        dir.path().display()
    ));
    pipeline.set_state(gst::State::Paused).expect("pause");
    let (_, state, _) = pipeline.state(gst::ClockTime::from_seconds(30));
    assert_eq!(state, gst::State::Paused, "decodebin prerolls");
    let src = pipeline.by_name("src").expect("src");
    let mut bytes = gst::query::Seeking::new(gst::Format::Bytes);
    assert!(src.query(&mut bytes), "a BYTES seeking query is answered");
    assert!(!bytes.result().0, "not seekable in bytes");
    let mut time = gst::query::Seeking::new(gst::Format::Time);
    assert!(src.query(&mut time));
    assert!(time.result().0, "seekable in time");
    let mut dur = gst::query::Duration::new(gst::Format::Bytes);
    let _ = src.query(&mut dur); // answered or refused, never a panic
    pipeline.set_state(gst::State::Playing).expect("play");
    let ended = wait_for_eos(&pipeline, PLAY_TIMEOUT);
    pipeline.set_state(gst::State::Null).expect("stop");
    ended.expect("decodebin plays the ring to EOS");
}

/// Two consecutive segments and their playlist entries deleted: the reader
/// plays every other segment, byte for byte, to EOS, and says which were
/// skipped in one message.
#[test]
fn a_gap_in_the_sequence_numbers_is_followed_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segs = finished_ring(dir.path(), 20);
    let gone = [segs[2].clone(), segs[3].clone()];
    rewrite_playlist(dir.path(), |t| {
        without_entries(t, &[seg_name(&gone[0]), seg_name(&gone[1])])
    });
    for f in &gone {
        std::fs::remove_file(f).expect("remove");
    }
    let rest: Vec<PathBuf> = segs.iter().filter(|s| !gone.contains(s)).cloned().collect();
    let played = play(dir.path());
    played.result.as_ref().expect("EOS, no error");
    assert!(
        played.bytes == concat(&rest),
        "played {} bytes, the ring lists {}",
        played.bytes.len(),
        concat(&rest).len()
    );
    let stale = played.named("streambuffer-stale-file-deleted");
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert_eq!(stale[0].get::<u64>("sequence"), Ok(2));
    assert_eq!(stale[0].get::<u64>("last-sequence"), Ok(3));
}

/// An EXTINF of u64::MAX ns (and other absurd values) is refused like a
/// malformed entry: no panic, the rest of the ring plays.
#[test]
fn absurd_durations_in_the_playlist_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segs = finished_ring(dir.path(), 12);
    rewrite_playlist(dir.path(), |t| {
        let first = t.lines().find(|l| l.starts_with("#EXTINF:")).expect("an entry");
        t.replacen(first, "#EXTINF:18446744073.709551615,", 1)
    });
    for _ in 0..3 {
        let played = play(dir.path());
        played.result.as_ref().expect("EOS, no error");
        assert!(
            played.bytes == concat(&segs[1..]),
            "the refused entry is skipped, the rest plays"
        );
    }
}

/// A FIFO or a link where the playlist should be fails the state change at
/// once with a clear error; nothing is read from `/dev/zero`.
#[test]
fn a_fifo_or_link_as_playlist_fails_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    finished_ring(dir.path(), 10);
    let playlist = dir.path().join("index.m3u8");
    std::fs::remove_file(&playlist).expect("remove");
    mkfifo(&playlist);
    let started = std::time::Instant::now();
    let played = play(dir.path());
    let err = played.result.expect_err("a FIFO is not a playlist");
    assert!(err.contains("not a regular file"), "{err}");
    std::fs::remove_file(&playlist).expect("remove fifo");
    std::os::unix::fs::symlink("/dev/zero", &playlist).expect("symlink");
    let played = play(dir.path());
    let err = played.result.expect_err("a link is not followed");
    assert!(err.contains("playlist"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "no hang: {:?}",
        started.elapsed()
    );
}

/// A FIFO at the progress record, and a FIFO, a link and a directory in
/// place of listed segments: playback never blocks, every unusable entry is
/// reported and skipped, everything else plays.
#[test]
fn fifos_links_and_directories_in_the_ring_are_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segs = finished_ring(dir.path(), 20);
    mkfifo(&dir.path().join("ring.progress"));
    let outside = tempfile::tempdir().expect("tempdir");
    let planted = [&segs[1], &segs[3], &segs[4]];
    for (i, s) in planted.iter().enumerate() {
        let moved = outside.path().join(seg_name(s));
        std::fs::rename(s, &moved).expect("move away");
        match i {
            0 => mkfifo(s),
            1 => std::os::unix::fs::symlink(&moved, s).expect("symlink"),
            _ => std::fs::create_dir(s).expect("mkdir"),
        }
    }
    let rest: Vec<PathBuf> = segs.iter().filter(|s| !planted.contains(s)).cloned().collect();
    let started = std::time::Instant::now();
    let played = play(dir.path());
    played.result.as_ref().expect("EOS, no error");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(played.bytes == concat(&rest), "every readable segment plays");
    let failures: Vec<String> = played
        .named("streambuffer-read-failure")
        .iter()
        .filter_map(|m| m.get::<String>("location").ok())
        .collect();
    for s in planted {
        assert!(
            failures.iter().any(|f| f == &s.display().to_string()),
            "{s:?} not reported: {failures:?}"
        );
    }
    assert!(
        played.named("streambuffer-stale-file-deleted").is_empty(),
        "nothing was deleted"
    );
}

/// A playlist listing 100,000 segments that are gone, then the real ones:
/// one message for the whole run, and the rest plays.
#[test]
fn a_long_run_of_missing_segments_is_one_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segs = finished_ring(dir.path(), 10);
    const MISSING: u64 = 100_000;
    let mut text = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:0\n");
    for n in 0..MISSING {
        text.push_str(&format!("#EXTINF:2.000,\nsegment-{n:012}.ts\n"));
    }
    let mut moved = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        let to = dir.path().join(format!("segment-{:012}.ts", MISSING + i as u64));
        std::fs::rename(s, &to).expect("renumber");
        text.push_str(&format!("#EXTINF:2.000,\n{}\n", seg_name(&to)));
        moved.push(to);
    }
    text.push_str("#EXT-X-ENDLIST\n");
    std::fs::write(dir.path().join("index.m3u8"), text).expect("playlist");
    let played = play(dir.path());
    played.result.as_ref().expect("EOS, no error");
    assert!(played.bytes == concat(&moved));
    let stale = played.named("streambuffer-stale-file-deleted");
    assert_eq!(stale.len(), 1, "one message for the run, not {}", stale.len());
    assert_eq!(stale[0].get::<u64>("sequence"), Ok(0));
    assert_eq!(stale[0].get::<u64>("last-sequence"), Ok(MISSING - 1));
}

/// Real read errors (EIO from the shim) on one segment, in a reader in
/// another process: a passing error is retried and nothing is lost; a
/// lasting one is reported, the segment skipped with a time hole, and the
/// rest plays; no ERROR either way.
#[test]
fn read_errors_are_retried_then_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segs = finished_ring(dir.path(), 12);
    let out = tempfile::tempdir().expect("tempdir");
    for (count, lost) in [("2", false), ("1000000", true)] {
        let file = out.path().join(format!("out-{count}.ts"));
        let env = fault_env(
            dir.path(),
            "segment-000000000002.ts",
            "pread,read",
            &[("FAULT_COUNT", count)],
        );
        let (exited, ok, text) = gst_launch(
            &format!(
                "-m streambuffersrc location={} start-position=oldest ! filesink location={}",
                dir.path().display(),
                file.display()
            ),
            &env,
            Duration::from_secs(60),
        );
        assert!(exited && ok, "no hang, no ERROR: {text}");
        let failures = text.matches("streambuffer-read-failure").count();
        let played = std::fs::read(&file).expect("output");
        if lost {
            assert_eq!(failures, 3, "one message per failed attempt: {text}");
            assert!(text.contains("streambuffer-time-hole"), "{text}");
            let rest: Vec<PathBuf> = segs.iter().filter(|s| s != &&segs[2]).cloned().collect();
            assert!(
                played == concat(&rest),
                "the unreadable segment is skipped, the rest plays"
            );
        } else {
            assert_eq!(failures, 2, "{text}");
            assert!(played == concat(&segs), "retried: nothing lost");
        }
    }
}

fn is_regular(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

/// FIFOs at the journal and at the progress record do not hang READY->PAUSED:
/// the sink starts, records, and replaces them with files of its own.
#[test]
fn fifos_at_the_journal_and_progress_record_do_not_hang_the_sink() {
    let dir = tempfile::tempdir().expect("tempdir");
    mkfifo(&dir.path().join("ring.journal"));
    mkfifo(&dir.path().join("ring.progress"));
    let (ok, text) = record_in_process(
        dir.path(),
        12,
        &format!("segment-duration={SEG} max-duration=4000000000"),
        NO_ENV,
    );
    assert!(ok, "{text}");
    assert!(is_regular(&dir.path().join("ring.journal")));
    let progress = dir.path().join("ring.progress");
    assert!(!progress.exists() || is_regular(&progress), "the FIFO was replaced");
    assert!(playlist(dir.path()).end_list);
}

/// Journal lines the sink could not have written (a duration of u64::MAX,
/// a date in year -292275055) are dropped and counted; their segments are
/// recovered from their files, and the playlist and window stay sane.
#[test]
fn implausible_journal_lines_are_dropped_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    finished_ring(dir.path(), 12);
    let journal = dir.path().join("ring.journal");
    let text = std::fs::read_to_string(&journal).expect("journal");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let entries: Vec<usize> = (0..lines.len()).filter(|&i| !lines[i].starts_with('#')).collect();
    assert!(entries.len() >= 3);
    let mut f: Vec<String> = lines[entries[1]].split(' ').map(str::to_owned).collect();
    f[1] = u64::MAX.to_string();
    lines[entries[1]] = f.join(" ");
    let mut f: Vec<String> = lines[entries[2]].split(' ').map(str::to_owned).collect();
    f[3] = i64::MIN.to_string();
    lines[entries[2]] = f.join(" ");
    std::fs::write(&journal, lines.join("\n") + "\n").expect("journal");
    let stats = record_file(
        &test_stream(6),
        65536,
        dir.path(),
        &format!("segment-duration={SEG} max-duration=5000000000"),
    );
    assert_eq!(stat_u64(&stats, "journal-lines-rejected"), 2);
    let pl = playlist(dir.path());
    let text = std::fs::read_to_string(dir.path().join("index.m3u8")).expect("playlist");
    assert!(!text.contains("18446744073") && !text.contains("-2922"), "{text}");
    for s in &pl.segments {
        assert!(f64::from(s.duration) <= pl.target_duration as f64 + 0.5, "{text}");
    }
    assert!(pl.segments.len() <= 6, "a 5 s window of 2 s segments: {text}");
}

/// A planted segment with the last sequence number a name can hold: the sink
/// refuses to start, naming it, and never writes a 13-digit name.
#[test]
fn the_last_sequence_number_planted_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let planted = dir.path().join("segment-999999999999.ts");
    std::fs::write(&planted, [0x47u8; 188]).expect("plant");
    let (ok, text) = record_in_process(dir.path(), 4, "", NO_ENV);
    assert!(!ok, "must not start: {text}");
    assert!(text.contains("segment-999999999999.ts"), "{text}");
    for s in segments(dir.path()) {
        assert_eq!(seg_name(&s).len(), "segment-000000000000.ts".len(), "{s:?}");
    }
}

/// Removes the immutable flag again whatever happens to the test.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Option<Immutable> {
        let ok = std::process::Command::new("chattr")
            .arg("+i")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Immutable(path.to_owned()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// A file named like a segment that is not MPEG-TS (it even starts with
/// 0x47), and a real segment the sink cannot open for writing (chattr +i):
/// both are left out of the ring, untouched and named in a WARNING, and the
/// sink records.
#[test]
fn foreign_and_immutable_files_are_left_out_with_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segs = finished_ring(dir.path(), 12);
    let foreign = dir.path().join("segment-000000000050.ts");
    let mut junk = vec![0x47u8; 188 * 20];
    junk[188 * 3] = b'x';
    std::fs::write(&foreign, &junk).expect("plant");
    let locked = dir.path().join("segment-000000000051.ts");
    std::fs::copy(&segs[1], &locked).expect("copy");
    let Some(_guard) = Immutable::set(&locked) else {
        panic!("chattr +i is not available here: the test cannot run")
    };
    let (ok, text) = record_in_process(dir.path(), 6, &format!("segment-duration={SEG} max-duration=0"), NO_ENV);
    assert!(ok, "{text}");
    for f in [&foreign, &locked] {
        assert!(
            text.lines()
                .any(|l| l.contains("WARNING") || l.contains("Not adopting"))
                && text.contains(&seg_name(f)),
            "{f:?} not named in a warning: {text}"
        );
    }
    assert_eq!(std::fs::read(&foreign).expect("read"), junk, "left untouched");
    let listed: Vec<String> = playlist(dir.path()).segments.iter().map(|s| s.uri.clone()).collect();
    assert!(
        !listed.contains(&seg_name(&foreign)) && !listed.contains(&seg_name(&locked)),
        "{listed:?}"
    );
    assert!(
        listed.iter().any(|u| u.as_str() > "segment-000000000051.ts"),
        "recording went on: {listed:?}"
    );
}

/// A hard link planted at the progress record: the sink creates its record
/// anew, and the file the link shares stays as it was.
#[test]
fn a_hard_link_at_the_progress_record_is_not_written_through() {
    let dir = tempfile::tempdir().expect("tempdir");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious contents that must not change").expect("victim");
    let ring = dir.path().join("ring");
    std::fs::create_dir(&ring).expect("mkdir");
    std::fs::hard_link(&victim, ring.join("ring.progress")).expect("link");
    let stats = record_file(
        &test_stream(16),
        65536,
        &ring,
        &format!("segment-duration={SEG} max-duration=4000000000"),
    );
    assert!(stat_u64(&stats, "segments-reused") > 0, "the record was used");
    assert_eq!(
        std::fs::read(&victim).expect("victim"),
        b"precious contents that must not change"
    );
}

/// `write-failure-mode=error` after writes start failing (EIO from the shim):
/// the sink stops with an ERROR and leaves a closed ring (ENDLIST), whose
/// every segment is listed, whole packets and decodable.
#[test]
fn error_mode_closes_its_ring() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = fault_env(dir.path(), "segment-000000000003.ts", "write,writev", &[]);
    let (ok, text) = record_in_process(
        dir.path(),
        12,
        &format!("segment-duration={SEG} max-duration=0 write-failure-mode=error"),
        &env,
    );
    assert!(!ok && text.contains("ERROR"), "{text}");
    let pl = playlist(dir.path());
    assert!(pl.end_list, "a stopped sink closes its ring");
    let listed: Vec<String> = pl.segments.iter().map(|s| s.uri.clone()).collect();
    for s in segments(dir.path()) {
        assert!(
            listed.contains(&seg_name(&s)),
            "{s:?} is on disk but not listed: {listed:?}"
        );
        assert_segment_well_formed(&s);
        ffmpeg_decode(&s).unwrap_or_else(|e| panic!("{}: {e}", s.display()));
    }
}

/// A segment no one may read (`chmod 000`), played by an unprivileged
/// reader (root would read it anyway): reported with the OS error, skipped,
/// and the rest plays.
#[test]
fn a_segment_the_reader_may_not_read_is_skipped() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let segs = finished_ring(&ring, 12);
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).expect("mkdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    std::fs::set_permissions(&segs[2], std::fs::Permissions::from_mode(0o000)).expect("chmod 000");
    // The plugin as built may sit where `nobody` cannot read it: a copy.
    let plugins = scratch.join("plugins");
    std::fs::create_dir(&plugins).expect("mkdir");
    std::fs::copy(
        plugin_dir().join("libgststreambuffer.so"),
        plugins.join("libgststreambuffer.so"),
    )
    .expect("copy the plugin");
    std::fs::set_permissions(&plugins, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = scratch.join("out.ts");
    let (exited, ok, text) = run_bounded(
        "setpriv",
        &format!(
            "--reuid=65534 --regid=65534 --clear-groups -- gst-launch-1.0 -m streambuffersrc location={} \
             start-position=oldest ! filesink location={}",
            ring.display(),
            out.display()
        ),
        &[
            ("GST_PLUGIN_PATH", plugins.to_str().expect("path")),
            ("GST_REGISTRY", scratch.join("registry.bin").to_str().expect("path")),
            ("HOME", scratch.to_str().expect("path")),
        ],
        Duration::from_secs(60),
    );
    assert!(exited && ok, "no hang, no ERROR: {text}");
    assert!(
        text.contains("streambuffer-read-failure") && text.contains("Permission\\ denied"),
        "{text}"
    );
    let rest: Vec<PathBuf> = segs.iter().filter(|s| s != &&segs[2]).cloned().collect();
    assert!(std::fs::read(&out).expect("output") == concat(&rest));
}

/// Planted or damaged keyframe indexes: garbage, a FIFO, a link to
/// `/dev/zero`, records with a valid check pointing past the data, and a
/// deleted one. None hangs, crashes or misleads the source: it plays the
/// whole ring from its oldest segment, byte for byte, entering segments
/// without a usable index at their start.
#[test]
fn planted_and_damaged_indexes_are_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    let segs = finished_ring(&ring, 14);
    let idx = |i: usize| segs[i].with_extension("idx");
    std::fs::write(idx(0), vec![0x5A; 4000]).expect("garbage");
    std::fs::remove_file(idx(1)).expect("rm");
    mkfifo(&idx(1));
    std::fs::remove_file(idx(2)).expect("rm");
    std::os::unix::fs::symlink("/dev/zero", idx(2)).expect("symlink");
    // A start record and a keyframe 1 GB in: checks hold, offsets do not.
    let record = |offset: u64| {
        let mut r = [0u8; 40];
        r[0..8].copy_from_slice(&offset.to_le_bytes());
        r[16..24].copy_from_slice(&1_700_000_000_000i64.to_le_bytes());
        let crc = crc32_mpeg2(&r[..36]);
        r[36..40].copy_from_slice(&crc.to_le_bytes());
        r
    };
    let planted: Vec<u8> = [record(0), record(1 << 30)].concat();
    std::fs::write(idx(3), planted).expect("plant");
    std::fs::remove_file(idx(4)).expect("rm");
    let played = play(&ring);
    assert!(played.result.is_ok(), "{:?}", played.result);
    let expected = concat(&segs);
    assert!(
        played.bytes == expected,
        "{} bytes played, {} in the ring",
        played.bytes.len(),
        expected.len()
    );
}
