#!/usr/bin/env python3
# SPDX-License-Identifier: MPL-2.0
"""What an application does with a time-shifted live URI through playbin:
play, pause 20 s, resume, seek back 30 s, 8x forward to live, -8x back.

    timeshift_playbin.py URI PLAY_SECONDS STOP_FILE

After the last step it plays on (recording on) until STOP_FILE exists.

Prints one line per step, `step name k=v ...` (positions and the live edge
in seconds from the SEEKING query, video frames decoded so far), and
`message name fields` for the source's element messages; tests/timeshift.rs
checks them. Exits 0 after the last step, 1 on an ERROR.
"""
import os
import sys
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

SECOND = Gst.SECOND


def say(text):
    print(text, flush=True)


class Viewer:
    def __init__(self, uri):
        self.playbin = Gst.ElementFactory.make("playbin")
        self.playbin.props.uri = uri
        self.frames = 0
        video = Gst.ElementFactory.make("fakesink")
        video.props.sync = True
        video.props.signal_handoffs = True
        video.connect("handoff", self.on_frame)
        audio = Gst.ElementFactory.make("fakesink")
        audio.props.sync = True
        self.playbin.props.video_sink = video
        self.playbin.props.audio_sink = audio
        self.bus = self.playbin.get_bus()

    def on_frame(self, _sink, _buffer, _pad):
        self.frames += 1

    def pump(self, seconds):
        """Handles the bus for `seconds`; an ERROR ends the program."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            msg = self.bus.timed_pop(int(min(left, 0.1) * SECOND))
            if msg is None:
                continue
            if msg.type == Gst.MessageType.ERROR:
                err, debug = msg.parse_error()
                say(f"error {err.message} {debug}")
                self.playbin.set_state(Gst.State.NULL)
                sys.exit(1)
            if msg.type == Gst.MessageType.BUFFERING:
                say(f"buffering {msg.parse_buffering()}")
            if msg.type == Gst.MessageType.ELEMENT and msg.get_structure().get_name().startswith("streambuffer-"):
                say(f"message {msg.get_structure().to_string()}")

    def position(self):
        ok, pos = self.playbin.query_position(Gst.Format.TIME)
        return pos / SECOND if ok else -1.0

    def live(self):
        query = Gst.Query.new_seeking(Gst.Format.TIME)
        if not self.playbin.query(query):
            return -1.0
        _fmt, seekable, _start, end = query.parse_seeking()
        return end / SECOND if seekable else -1.0

    def step(self, name):
        say(f"step {name} position={self.position():.2f} live={self.live():.2f} frames={self.frames}")

    def wait_playing(self, limit):
        end = time.monotonic() + limit
        while time.monotonic() < end:
            self.pump(0.2)
            _ret, state, _pending = self.playbin.get_state(0)
            if state == Gst.State.PLAYING and self.position() >= 0:
                return True
        return False

    def seek(self, rate, position):
        flags = Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT
        if rate > 0:
            ok = self.playbin.seek(rate, Gst.Format.TIME, flags, Gst.SeekType.SET, int(position * SECOND),
                                   Gst.SeekType.NONE, -1)
        else:
            ok = self.playbin.seek(rate, Gst.Format.TIME, flags, Gst.SeekType.SET, 0,
                                   Gst.SeekType.SET, int(position * SECOND))
        say(f"seek rate={rate} to={position:.2f} accepted={ok}")


def main():
    uri, play_seconds, stop_file = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    Gst.init(None)
    viewer = Viewer(uri)
    viewer.playbin.set_state(Gst.State.PLAYING)
    if not viewer.wait_playing(30):
        say("error not playing after 30 s")
        sys.exit(1)
    viewer.step("started")
    viewer.pump(play_seconds)
    viewer.step("played")
    viewer.playbin.set_state(Gst.State.PAUSED)
    viewer.pump(1)
    viewer.step("paused")
    viewer.pump(19)
    viewer.step("still-paused")
    viewer.playbin.set_state(Gst.State.PLAYING)
    viewer.pump(2)
    viewer.step("resumed")
    viewer.seek(1.0, viewer.position() - 30)
    viewer.pump(2)
    viewer.step("back-30")
    viewer.seek(8.0, viewer.position())
    viewer.pump(0.5)
    viewer.step("fast-forward")
    end = time.monotonic() + 20
    while time.monotonic() < end and viewer.live() - viewer.position() > 3:
        viewer.pump(0.5)
    viewer.pump(2)
    viewer.step("at-live")
    viewer.seek(-8.0, viewer.position())
    viewer.pump(0.5)
    viewer.step("rewind")
    viewer.pump(3)
    viewer.step("rewound")
    viewer.seek(1.0, viewer.position())
    viewer.pump(1)
    viewer.step("done")
    end = time.monotonic() + 120
    while time.monotonic() < end and not os.path.exists(stop_file):
        viewer.pump(0.2)
    viewer.step("stopping")
    viewer.playbin.set_state(Gst.State.NULL)


if __name__ == "__main__":
    main()
