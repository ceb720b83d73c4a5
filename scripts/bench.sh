#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Benchmarks streambuffersink against filesink, multifilesink, splitmuxsink,
# hlssink2, and ffmpeg's hls and segment muxers (same input, same filesystem,
# interleaved runs), and measures the live-edge lag of streambuffersrc, the
# archive tier and the HTTP origin under load; prints
# Markdown tables for docs/performance.md (the README keeps a summary). Takes several minutes; not part of the tests.
#   scripts/bench.sh                 # BENCH_RUNS=7 by default (the issue asks >= 5)
#   BENCH_RUNS=15 BENCH_SINKS=fakesink,streambuffersink scripts/bench.sh
#                                    # only those and filesink, throughput only
# The input (>= 150 MB of 20 Mbit/s H.264 TS) is generated once into
# ~/.cache/streambuffer-bench (BENCH_CACHE), outputs go to $BENCH_CACHE/out.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# --tests: the archive and origin tables use the tests' S3 server and hls.js.
"$root/scripts/setup.sh" --tests
source "$root/scripts/env.sh"
(cd "$root" && cargo build --release --quiet --example bench_ring --example live_lag --example seek_latency --example read_cost --example trick_cost --example archive_cost --example origin_load --bin streambuffer)
exec python3 "$root/scripts/bench.py" "${CARGO_TARGET_DIR:-$root/target}/release/examples/bench_ring"
