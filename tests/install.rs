// SPDX-License-Identifier: MPL-2.0
//! Installing the plugin as users do: `cargo cinstall` into a prefix, and
//! `scripts/install.sh` (and its `--uninstall`), each checked by
//! `gst-inspect-1.0` in a separate process that finds both elements there
//! and nowhere else.
#![cfg(unix)]

use std::path::Path;
use std::process::Command;

/// `gst-inspect-1.0 ELEMENT` with only `plugins` on the plugin path (and a
/// registry of its own): whether it found the element, and its output.
fn inspect(plugins: &Path, element: &str, registry: &Path) -> (bool, String) {
    let out = Command::new("gst-inspect-1.0")
        .arg(element)
        .env("GST_PLUGIN_PATH", plugins)
        .env("GST_REGISTRY", registry)
        .output()
        .expect("gst-inspect-1.0");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A target directory of these tests' own (the one `cargo test` uses may
/// be locked while the tests run), kept between runs so that a build
/// there is incremental.
fn target_dir() -> std::path::PathBuf {
    manifest_dir().join("target/install-test")
}

/// `cargo cinstall --prefix=P` puts the plugin in P/lib/gstreamer-1.0 with
/// its .pc file, and gst-inspect-1.0 finds both elements with
/// GST_PLUGIN_PATH=P/lib/gstreamer-1.0. (cargo-c is installed by
/// scripts/setup.sh; without it the test fails, it is not skipped.)
#[test]
fn cargo_cinstall_into_a_prefix() {
    let prefix = tempfile::tempdir().expect("tempdir");
    let status = Command::new("cargo")
        .args(["cinstall", "--release"])
        .arg(format!("--prefix={}", prefix.path().display()))
        .arg(format!("--libdir={}", prefix.path().join("lib").display()))
        .env("CARGO_TARGET_DIR", target_dir())
        .current_dir(manifest_dir())
        .status()
        .expect("cargo cinstall (scripts/setup.sh installs cargo-c)");
    assert!(status.success(), "cargo cinstall failed");
    let plugins = prefix.path().join("lib/gstreamer-1.0");
    assert!(
        plugins.join("libgststreambuffer.so").is_file(),
        "no plugin in {}",
        plugins.display()
    );
    let pc = std::fs::read_to_string(prefix.path().join("lib/pkgconfig/gststreambuffer.pc")).expect(".pc file");
    assert!(pc.contains("gstreamer-1.0"), "{pc}");
    let registry = prefix.path().join("registry.bin");
    for element in ["streambuffersink", "streambuffersrc"] {
        let (found, text) = inspect(&plugins, element, &registry);
        assert!(found && text.contains(element), "{element} not found: {text}");
    }
}

/// `scripts/install.sh --prefix P` installs the plugin and the tool there
/// (gst-inspect-1.0 finds the elements, the tool runs); `--uninstall`
/// removes exactly that, and gst-inspect-1.0 then finds nothing.
#[test]
fn install_script_installs_and_uninstalls() {
    let prefix = tempfile::tempdir().expect("tempdir");
    let script = manifest_dir().join("scripts/install.sh");
    let run = |args: &[&str]| {
        let out = Command::new("bash")
            .arg(&script)
            .args(args)
            .arg("--prefix")
            .arg(prefix.path())
            .env("CARGO_TARGET_DIR", target_dir())
            .output()
            .expect("install.sh");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "install.sh {args:?}: {text}");
        text
    };
    let text = run(&[]);
    let plugins = prefix.path().join("lib/gstreamer-1.0");
    let registry = prefix.path().join("registry.bin");
    let (found, inspected) = inspect(&plugins, "streambuffersrc", &registry);
    assert!(found, "not found after install: {text}\n{inspected}");
    let tool = prefix.path().join("bin/streambuffer");
    let help = Command::new(&tool).arg("--help").output().expect("the installed tool");
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("streambuffer export"));

    let text = run(&["--uninstall"]);
    assert!(text.contains("removed"), "{text}");
    assert!(!tool.exists(), "the tool is still there");
    let left: Vec<_> = std::fs::read_dir(&plugins)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", plugins.display());
    let _ = std::fs::remove_file(&registry);
    let (found, _) = inspect(&plugins, "streambuffersrc", &registry);
    assert!(!found, "still found after --uninstall");
}
