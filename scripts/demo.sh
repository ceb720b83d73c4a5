#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# The main job in one command: records a test stream into a ring and shows it.
#
#   scripts/demo.sh [DIR]
#
# Encodes 60 s of H.264 test video to MPEG-TS (faster than real time), records
# it with streambuffersink into DIR (default: a new temporary directory) with
# 2 s segments and a 20 s window, then lists the ring, prints the playlist and
# checks with ffprobe that the window plays.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
source "$root/scripts/env.sh"

dir=${1:-$(mktemp -d)/ring}
echo "== Recording 60 s of test video into $dir (2 s segments, 20 s window)"
gst-launch-1.0 -q videotestsrc num-buffers=1500 pattern=smpte ! \
  video/x-raw,width=640,height=360,framerate=25/1 ! \
  x264enc tune=zerolatency key-int-max=50 speed-preset=ultrafast ! mpegtsmux ! \
  streambuffersink location="$dir" segment-duration=2000000000 max-duration=20000000000

echo "== The ring"
ls -l "$dir"
echo "== index.m3u8"
cat "$dir/index.m3u8"
echo "== ffprobe on the playlist"
ffprobe -v error -show_entries format=duration:stream=codec_name,width,height -of default=nw=1 "$dir/index.m3u8"
echo "== Play it with: GST_PLUGIN_PATH=${CARGO_TARGET_DIR:-$root/target}/release gst-play-1.0 $dir/index.m3u8  (or ffplay $dir/index.m3u8)"
