#!/usr/bin/python3
# SPDX-License-Identifier: MPL-2.0
# Shows: an application (Python, PyGObject) hearing the sink's COM-style
# events: write-failure (a GError) and write-failure-clear (bytes and ns
# dropped), encryption-on/off, and the same events as bus messages.
#
#   pipelines/write-failure-monitor.py RING_DIR [SECONDS] [--live]
#
# Needs python3-gi and gir1.2-gstreamer-1.0 (scripts/setup.sh installs them)
# and the plugin on GST_PLUGIN_PATH (e.g. target/release). Provoke failures by
# filling the disk under RING_DIR, or with a file size limit:
#   bash -c "trap '' XFSZ; ulimit -f 200; exec pipelines/write-failure-monitor.py /tmp/ring 10"
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def main(argv):
    if len(argv) < 2:
        print("usage: write-failure-monitor.py RING_DIR [SECONDS] [--live]", file=sys.stderr)
        return 2
    ring = argv[1]
    live = "--live" in argv[2:]
    seconds = next((int(a) for a in argv[2:] if a.isdigit()), 20)
    Gst.init(None)
    pipeline = Gst.parse_launch(
        f"videotestsrc is-live={str(live).lower()} num-buffers={seconds * 25} pattern=snow ! "
        "video/x-raw,width=320,height=240,framerate=25/1 ! "
        "x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast bitrate=1500 ! mpegtsmux ! "
        f'streambuffersink name=sink location="{ring}" segment-duration=4000000000 max-duration=0 '
        "retry-interval=10000000"
    )
    sink = pipeline.get_by_name("sink")

    # Emitted from the streaming thread: keep handlers short.
    def on_failure(_sink, error):
        domain = error.domain  # PyGObject gives the quark as its string
        code = Gst.ResourceError(error.code).value_nick if domain == "gst-resource-error-quark" else error.code
        print(f"write-failure: domain={domain} code={code} message={error.message}", flush=True)

    def on_clear(_sink, dropped_bytes, dropped_ns):
        duration = "unknown" if dropped_ns == Gst.CLOCK_TIME_NONE else f"{dropped_ns}ns"
        print(f"write-failure-clear: dropped-bytes={dropped_bytes} dropped-duration={duration}", flush=True)

    sink.connect("write-failure", on_failure)
    sink.connect("write-failure-clear", on_clear)
    sink.connect("encryption-on", lambda _s: print("encryption-on", flush=True))
    sink.connect("encryption-off", lambda _s: print("encryption-off", flush=True))

    pipeline.set_state(Gst.State.PLAYING)
    bus = pipeline.get_bus()
    status = 0
    while True:
        msg = bus.timed_pop(Gst.CLOCK_TIME_NONE)
        if msg.type == Gst.MessageType.ELEMENT:
            s = msg.get_structure()
            if s is not None and s.get_name().startswith("streambuffer-"):
                print(f"message: {s.to_string()}", flush=True)
        elif msg.type == Gst.MessageType.EOS:
            break
        elif msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            print(f"ERROR: {err.message} ({debug})", file=sys.stderr)
            status = 1
            break
    print(f"stats: {sink.get_property('stats').to_string()}", flush=True)
    pipeline.set_state(Gst.State.NULL)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
