#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Shows: recording raw TS from the network, as a set-top box or logger would:
# 1316-byte datagrams, no timestamps, no caps beyond "this is MPEG-TS".
#   pipelines/record-udp.sh [DIR] [ADDRESS] [PORT]
# ADDRESS may be a multicast group (e.g. 239.255.0.1); the default is
# 127.0.0.1:5004, fed by a local test sender started by this script (set
# SENDER=0 to record an existing stream instead).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/env.sh"
dir=${1:-/tmp/streambuffer/udp}
address=${2:-127.0.0.1}
port=${3:-5004}
if [ "${SENDER:-1}" = 1 ]; then
  gst-launch-1.0 -q videotestsrc is-live=true ! video/x-raw,width=640,height=360,framerate=25/1 ! \
    timeoverlay ! x264enc tune=zerolatency key-int-max=50 ! mpegtsmux alignment=7 ! \
    udpsink host="$address" port="$port" &
  sender=$!
  trap 'kill $sender 2>/dev/null' EXIT
fi
echo "recording udp://$address:$port into $dir"
gst-launch-1.0 -e udpsrc address="$address" port="$port" caps="video/mpegts,systemstream=true" ! \
  streambuffersink location="$dir" segment-duration=6000000000 max-duration=600000000000
