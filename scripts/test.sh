#!/usr/bin/env bash
# Runs every test: unit tests of the pure-Rust core and integration tests with
# real GStreamer pipelines, real files, ffmpeg/ffprobe as independent checks.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
cd "$root"
# The integration tests load the cdylib from target/debug in child processes.
cargo build --all-targets
cargo test --all-targets -- --test-threads="${TEST_THREADS:-2}"
