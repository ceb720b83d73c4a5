// SPDX-License-Identifier: MPL-2.0
//! hls.js in headless Chromium (`tests/web/hlsjs-play.mjs`), and what it
//! reports.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::NO_ENV;
use super::processes::run_bounded;

/// What `tests/web/hlsjs-play.mjs` printed: its `key=value` lines (errors
/// under `error`, joined).
pub struct PageReport(HashMap<String, String>);

impl PageReport {
    pub fn get(&self, key: &str) -> &str {
        self.0.get(key).map_or("", String::as_str)
    }
    pub fn number(&self, key: &str) -> f64 {
        self.get(key).parse().unwrap_or(f64::NAN)
    }
}

impl std::fmt::Debug for PageReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<_> = self.0.iter().collect();
        keys.sort();
        f.debug_map().entries(keys).finish()
    }
}

/// Plays `playlist` (a path inside `root`, or an http:// URL) with hls.js
/// for up to `seconds`.
pub fn hlsjs_play(root: &Path, playlist: &str, seconds: u32) -> PageReport {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web/hlsjs-play.mjs");
    let (exited, ok, out) = run_bounded(
        "node",
        &format!("{} {} {playlist} {seconds}", script.display(), root.display()),
        NO_ENV,
        Duration::from_secs(u64::from(seconds) + 90),
    );
    assert!(exited && ok, "hls.js driver failed (run scripts/setup.sh?): {out}");
    let mut map = HashMap::new();
    for line in out.lines() {
        if let Some((k, v)) = line.split_once('=') {
            map.entry(k.to_owned())
                .and_modify(|old: &mut String| {
                    old.push_str("; ");
                    old.push_str(v);
                })
                .or_insert_with(|| v.to_owned());
        }
    }
    PageReport(map)
}
