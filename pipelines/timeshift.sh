#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Shows: time-shift. One process records a live test stream (with the clock
# burnt in) into a ring; a second process watches it N seconds behind live.
# Pause/seek in the second one without disturbing the recording.
#   pipelines/timeshift.sh [DIR] [DELAY_SECONDS]
# Needs a display for autovideosink (set SINK=fakesink to run headless).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/env.sh"
dir=${1:-/tmp/streambuffer/timeshift}
delay=${2:-10}
sink=${SINK:-autovideosink}

gst-launch-1.0 -q -e videotestsrc is-live=true ! video/x-raw,width=640,height=360,framerate=25/1 ! \
  clockoverlay time-format="%H:%M:%S" ! x264enc tune=zerolatency key-int-max=25 speed-preset=veryfast ! \
  mpegtsmux ! streambuffersink location="$dir" segment-duration=1000000000 max-duration=600000000000 &
writer=$!
trap 'kill -INT $writer 2>/dev/null; wait $writer 2>/dev/null' EXIT
echo "recording into $dir; playback starts once $delay s are buffered"
sleep $((delay + 1))
gst-launch-1.0 streambuffersrc location="$dir" start-position=live start-delay=$((delay * 1000000000)) ! \
  tsdemux ! h264parse ! avdec_h264 ! videoconvert ! "$sink"
