#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Shows: the basic use. Records a live test stream (real time) into a ring.
#   pipelines/record-test-stream.sh [DIR] [SECONDS]
# DIR (default /tmp/streambuffer/ch1) gets 6 s segments, a 30 min window and
# index.m3u8; stop with Ctrl-C or wait SECONDS (default: run until stopped).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/env.sh"
dir=${1:-/tmp/streambuffer/ch1}
seconds=${2:-0}
buffers=-1
[ "$seconds" -gt 0 ] && buffers=$((seconds * 25))
echo "recording into $dir (play it with pipelines/play.sh $dir)"
exec gst-launch-1.0 -e videotestsrc is-live=true num-buffers="$buffers" ! \
  video/x-raw,width=1280,height=720,framerate=25/1 ! timeoverlay ! \
  x264enc tune=zerolatency key-int-max=50 speed-preset=veryfast ! mpegtsmux ! \
  streambuffersink location="$dir" segment-duration=6000000000 max-duration=1800000000000
