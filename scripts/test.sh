#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Runs every test: unit tests of the pure-Rust core and integration tests with
# real GStreamer pipelines, real files, ffmpeg/ffprobe as independent checks.
# Tests that need root (tmpfs mounts for real ENOSPC) say SKIPPED loudly
# when run without it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" --tests
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
cd "$root"
# The integration tests load the cdylib and run the examples from target/debug.
cargo build --all-targets
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# --no-fail-fast: every test binary runs, so the closing line counts them all.
cargo test --no-fail-fast --lib --tests -- --test-threads="${TEST_THREADS:-2}" 2>&1 | tee "$log" || status=$?
# The documentation's examples (the typed API) compile and run.
cargo test --doc 2>&1 | tee -a "$log" || status=$?
# One closing line for the whole run.
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
