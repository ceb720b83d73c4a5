// SPDX-License-Identifier: MPL-2.0
//! The plugin is found through the normal registry, in a separate process.
// Real kernel behaviour (tmpfs, FIFOs, signals, gst-launch-1.0 children):
// these tests run on Unix.
#![cfg(unix)]

mod common;

use std::process::Command;

/// What gst-inspect-1.0 says of `element`, found through a fresh registry
/// and GST_PLUGIN_PATH.
fn inspect(element: &str) -> String {
    let registry = tempfile::NamedTempFile::new().expect("temp registry");
    let mut cmd = Command::new("gst-inspect-1.0");
    cmd.arg(element)
        .env("GST_PLUGIN_PATH", common::plugin_dir())
        .env("GST_REGISTRY", registry.path());
    stdout_of(cmd)
}

/// What `cmd` prints, once it succeeded.
fn stdout_of(mut cmd: Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn gst_inspect_finds_the_element_via_gst_plugin_path() {
    let text = inspect("streambuffersink");
    for expected in [
        "Stream Buffer Sink",
        "Sink/File",
        "video/mpegts",
        "libgststreambuffer",
        "location",
        "segment-duration",
        "max-duration",
        "max-size",
        "min-free-space",
        "playlist-length",
        "program-number",
        "sync-on-rotate",
        "stats",
        "encryption-on",
        "encryption-off",
        "write-failure",
        "write-failure-clear",
        "write-failure-mode",
        "retry-interval",
    ] {
        assert!(text.contains(expected), "gst-inspect-1.0 output lacks '{expected}'");
    }
    // `sync` defaults to false: a recorder must not wait for the clock.
    let sync = text
        .split("sync                :")
        .nth(1)
        .expect("sync property listed");
    assert!(
        sync.lines().take(3).any(|l| l.contains("Default: false")),
        "sync must default to false"
    );
}

/// Loading the plugin does not load libgio (and the libmount, libblkid
/// and libselinux it links): the library answers glib-rs's two questions
/// about GIO's interfaces itself (build.rs, src/platform/gio_types.rs). A
/// dependency that brings libgio back fails here, not silently in the
/// start-up cost of every process that loads the plugin.
#[cfg(target_os = "linux")]
#[test]
fn the_plugin_library_does_not_need_libgio() {
    let library = common::plugin_dir().join("libgststreambuffer.so");
    let mut readelf = Command::new("readelf");
    readelf.args(["--dynamic", "--wide"]).arg(&library);
    let dynamic = stdout_of(readelf);
    let needed: Vec<&str> = dynamic.lines().filter(|l| l.contains("(NEEDED)")).collect();
    assert!(
        needed.iter().any(|l| l.contains("libgstreamer-1.0")),
        "no NEEDED entries read from {}: {dynamic}",
        library.display()
    );
    assert!(
        !needed.iter().any(|l| l.contains("libgio-2.0")),
        "the plugin links libgio again: {needed:#?}"
    );
    // And it loads and registers its elements without it.
    assert!(inspect("streambuffersink").contains("Stream Buffer Sink"));
}

#[test]
fn gst_inspect_finds_the_source() {
    let text = inspect("streambuffersrc");
    for expected in [
        "Stream Buffer Source",
        "Source/File",
        "packetsize: 188",
        "start-position",
        "start-delay",
        "poll-interval",
    ] {
        assert!(text.contains(expected), "gst-inspect-1.0 output lacks '{expected}'");
    }
}

/// The time-shift element in a fresh registry: its URI schemes (how playbin
/// finds it), and the sink's and the source's properties it passes on.
#[test]
fn gst_inspect_finds_the_time_shift_element() {
    let text = inspect("streambuffertimeshiftsrc");
    for expected in [
        "Stream Buffer Time-shift Source",
        "Source/Network",
        "streambuffer+udp",
        "streambuffer+rtp",
        "streambuffer+http",
        "uri ",
        "location",
        "recorder-stats",
        "max-duration",
        "write-failure-mode",
        "lease-max-duration",
        "trick-frame-rate",
        "stats",
    ] {
        assert!(text.contains(expected), "gst-inspect-1.0 output lacks '{expected}'");
    }
    assert!(
        !text.contains("start-position"),
        "the start is the live edge, not a property"
    );
}

#[test]
fn out_of_range_values_are_refused_with_a_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (prop, value) in [
        ("segment-duration", "0"),
        ("max-duration", "18446744073709551615"),
        ("program-number", "70000"),
    ] {
        let out = Command::new("gst-launch-1.0")
            .env("GST_PLUGIN_PATH", common::plugin_dir())
            .args(["fakesrc", "num-buffers=1", "!", "streambuffersink"])
            .arg(format!("location={}", dir.path().join("ring").display()))
            .arg(format!("{prop}={value}"))
            .output()
            .expect("run gst-launch-1.0");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("out of range for property '{prop}'")),
            "{prop}={value} was not refused: {stderr}"
        );
    }
}

/// A `programs` list that is not one is refused, on stderr, and the sink
/// records every program as if it had not been set.
#[test]
fn bad_program_lists_are_refused_with_a_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    for value in ["abc", "1,1", "0", "70000"] {
        let out = Command::new("gst-launch-1.0")
            .env("GST_PLUGIN_PATH", common::plugin_dir())
            .args(["fakesrc", "num-buffers=1", "!", "streambuffersink"])
            .arg(format!("location={}", dir.path().join("ring").display()))
            .arg(format!("programs={value}"))
            .output()
            .expect("run gst-launch-1.0");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("Refusing programs"),
            "programs={value} was not refused: {stderr}"
        );
    }
}

#[test]
fn empty_location_is_refused() {
    common::init();
    use gst::prelude::*;
    let sink = gst::ElementFactory::make("streambuffersink").build().expect("element");
    sink.set_property("location", "/tmp/somewhere");
    sink.set_property("location", "");
    assert_eq!(
        sink.property::<Option<String>>("location").as_deref(),
        Some("/tmp/somewhere")
    );
}

/// Upstream is asked for memory aligned to 32 bytes, which the segments'
/// layout relies on for aligned copies (design.md, "Aligned copies").
#[test]
fn upstream_is_asked_for_aligned_memory() {
    common::init();
    use gst::prelude::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = gst::ElementFactory::make("streambuffersink").build().expect("element");
    sink.set_property("location", dir.path().join("ring").to_str().expect("path"));
    sink.set_state(gst::State::Paused).expect("start");
    let pad = sink.static_pad("sink").expect("sink pad");
    let caps = gst::Caps::builder("video/mpegts").field("systemstream", true).build();
    let mut query = gst::query::Allocation::new(Some(&caps), false);
    assert!(pad.query(&mut query), "the sink answers the allocation query");
    let aligns: Vec<usize> = query.allocation_params().map(|(_, p)| p.align()).collect();
    let _ = sink.set_state(gst::State::Null);
    assert_eq!(aligns, vec![31], "allocation params");
}
