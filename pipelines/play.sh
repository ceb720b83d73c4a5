#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Shows: the ring is plain HLS. Plays DIR/index.m3u8 with playbin, live while
# it is being recorded (from the live edge) or finished (from the start).
#   pipelines/play.sh [DIR]
# Without a display or sound card: VIDEO_SINK=fakesink AUDIO_SINK=fakesink.
set -euo pipefail
dir=${1:-/tmp/streambuffer/ch1}
exec gst-launch-1.0 playbin uri="file://$(realpath "$dir")/index.m3u8" \
  video-sink="${VIDEO_SINK:-autovideosink}" audio-sink="${AUDIO_SINK:-autoaudiosink}"
