// SPDX-License-Identifier: MPL-2.0
//! Helpers shared by the integration tests: real pipelines, real files.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

pub mod browser;
pub mod inputs;
pub mod media;
pub mod pipelines;
pub mod processes;
pub mod rings;
pub mod s3;

pub const SECOND: u64 = 1_000_000_000;

pub const PACKET: usize = 188;

/// Initialises GStreamer once and registers the plugin from this build.
pub fn init() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        gst::init().expect("gst::init");
        gststreambuffer::plugin_register_static().expect("register plugin");
    });
}

/// Directory holding the built `libgststreambuffer` shared library.
pub fn plugin_dir() -> PathBuf {
    // target/<profile>/deps/<test binary> -> target/<profile>
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent().and_then(Path::parent).expect("target dir").to_owned()
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// No extra environment for [`gst_launch`], [`run_bounded`], [`record_in_process`].
pub const NO_ENV: &[(&str, &str)] = &[];
