#!/usr/bin/env python3
# SPDX-License-Identifier: MPL-2.0
"""A small DVR: records a source into a ring with streambuffersink and plays it
back through streambuffersrc, time-shifted, with trick play, driven by
one-letter commands on stdin.

    dvr.py [--ring DIR] [--udp ADDRESS:PORT] [--headless] [--recordings DIR]

Source: a live test pattern (H.264 in MPEG-TS), or MPEG-TS from a UDP
address. Playback: a window, or a synchronised fakesink with --headless.

Commands (one per line):
    p          pause / resume
    b / f      back / forward 10 s
    F          fast-forward, cycling 2x 4x 8x 16x 32x 64x
    w          rewind, cycling -2x -4x -8x -16x -32x -64x
    s          slow motion, cycling 0.5x 0.25x
    n          normal speed (1x) where playback is
    l          jump to live
    t WHEN     jump to a wall-clock time: HH:MM:SS (UTC, today) or an ISO 8601 date-time
    r          start a content recording of the last 10 s and on
    x          stop the recording
    q          quit

Every second it prints `position=<s> rate=<r> date-time=<ISO>` (the date-time
at which the content shown was received), and `message: <structure>` for
each element message of the sink and the source.
"""
import argparse
import datetime
import os
import sys
import tempfile

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

FAST = [2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
SLOW = [0.5, 0.25]


def say(text):
    print(text, flush=True)


class Dvr:
    def __init__(self, args):
        self.ring = args.ring or os.path.join(tempfile.mkdtemp(prefix="dvr-"), "ring")
        self.recordings = args.recordings or os.path.dirname(self.ring)
        if args.udp:
            host, port = args.udp.rsplit(":", 1)
            source = f"udpsrc address={host} port={port} caps=video/mpegts,systemstream=true"
        else:
            source = ("videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 ! "
                      "timeoverlay ! x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast bitrate=800 ! "
                      "mpegtsmux")
        self.writer = Gst.parse_launch(
            f"{source} ! streambuffersink name=sink location={self.ring} segment-duration=2000000000 "
            f"max-duration=600000000000")
        self.sink = self.writer.get_by_name("sink")
        video_sink = "fakesink sync=true" if args.headless else "autovideosink"
        self.player = Gst.parse_launch(
            f"streambuffersrc name=src location={self.ring} start-position=live ! decodebin name=dec "
            f"dec. ! queue ! videoconvert ! {video_sink}")
        self.src = self.player.get_by_name("src")
        self.rate = 1.0
        self.paused = False
        self.recording = None
        self.loop = GLib.MainLoop()
        for pipeline in (self.writer, self.player):
            bus = pipeline.get_bus()
            bus.add_signal_watch()
            bus.connect("message", self.on_message)

    def on_message(self, _bus, msg):
        if msg.type == Gst.MessageType.ELEMENT and msg.src in (self.sink, self.src):
            s = msg.get_structure()
            say(f"message: {s.to_string()}")
            if s.get_name() == "streambuffer-rate-changed":
                self.rate = s.get_value("new-rate")
        elif msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            say(f"error: {err.message} ({debug})")
            self.loop.quit()
        elif msg.type == Gst.MessageType.EOS and msg.src == self.player:
            say("end of content: playing on from the oldest content")
            self.seek(1.0, self.window()[0])

    def window(self):
        q = Gst.Query.new_seeking(Gst.Format.TIME)
        if self.player.query(q):
            _, _, start, end = q.parse_seeking()
            return start, end
        return 0, 0

    def position(self):
        ok, pos = self.player.query_position(Gst.Format.TIME)
        return pos if ok else None

    def seek(self, rate, position):
        start, end = self.window()
        position = max(start, min(position, end))
        flags = Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT
        if rate < 0:
            ok = self.player.seek(rate, Gst.Format.TIME, flags, Gst.SeekType.SET, 0, Gst.SeekType.SET, position)
        else:
            # No stop (a rewind's stays otherwise).
            ok = self.player.seek(rate, Gst.Format.TIME, flags, Gst.SeekType.SET, position, Gst.SeekType.SET, -1)
        if ok:
            # A flushing seek completes once the sinks have prerolled from
            # the new position; until then a position query still answers
            # with the old one, so what is printed next would be stale.
            self.player.get_state(5 * Gst.SECOND)
        say(f"seek rate={rate:g} to={position / Gst.SECOND:.1f} {'ok' if ok else 'refused'}")
        if ok:
            self.rate = rate
        return ok

    def date_at(self, position):
        date = self.src.emit("position-to-date-time", position)
        return date.format_iso8601() if date else "unknown"

    def status(self):
        pos = self.position()
        if pos is not None:
            say(f"position={pos / Gst.SECOND:.2f} rate={self.rate:g} date-time={self.date_at(pos)}")
        return True

    def next_rate(self, rates):
        if self.rate in rates:
            return rates[(rates.index(self.rate) + 1) % len(rates)]
        return rates[0]

    def command(self, line):
        word, _, arg = line.strip().partition(" ")
        pos = self.position() or 0
        say(f"command: {line.strip()}")
        if word == "p":
            self.paused = not self.paused
            self.player.set_state(Gst.State.PAUSED if self.paused else Gst.State.PLAYING)
            say("paused" if self.paused else "playing")
        elif word in ("b", "f"):
            self.seek(self.rate if self.rate > 0 else 1.0, pos + (10 if word == "f" else -10) * Gst.SECOND)
        elif word == "F":
            self.seek(self.next_rate(FAST), pos)
        elif word == "w":
            self.seek(self.next_rate([-r for r in FAST]), pos)
        elif word == "s":
            self.seek(self.next_rate(SLOW), pos)
        elif word == "n":
            self.seek(1.0, pos)
        elif word == "l":
            self.seek(1.0, self.window()[1])
        elif word == "t":
            self.jump_to_date(arg)
        elif word == "r":
            if self.recording is None:
                path = os.path.join(self.recordings, f"recording-{datetime.datetime.now():%H%M%S}.ts")
                # GstStreamBufferRecordingKind: 0 is "content".
                rid = self.sink.emit("start-recording", path, 0, -10 * Gst.SECOND)
                if rid:
                    self.recording = rid
                    say(f"recording id={rid} location={path}")
        elif word == "x":
            if self.recording is not None:
                self.sink.emit("stop-recording", self.recording, 0)
                say(f"stopping recording id={self.recording}")
                self.recording = None
        elif word == "q":
            self.loop.quit()
        else:
            say(f"unknown command {word!r}: p b f F w s n l t r x q")

    def jump_to_date(self, text):
        try:
            if len(text) <= 8:
                today = datetime.datetime.now(datetime.timezone.utc).date()
                when = datetime.datetime.combine(today, datetime.time.fromisoformat(text), datetime.timezone.utc)
            else:
                when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            say(f"not a date-time: {text!r}")
            return
        date = GLib.DateTime.new_from_unix_utc(int(when.timestamp())).add(
            int(round(when.timestamp() % 1 * 1e6)))
        position = self.src.emit("date-time-to-position", date)
        if position < 0:
            say(f"{text}: not in the ring")
            return
        self.seek(1.0, position)

    def on_stdin(self, channel, condition):
        if condition & GLib.IO_HUP and not condition & GLib.IO_IN:
            self.loop.quit()
            return False
        line = channel.readline()
        if not line:
            self.loop.quit()
            return False
        if line.strip():
            self.command(line)
        return True

    def run(self):
        say(f"ring: {self.ring}")
        self.writer.set_state(Gst.State.PLAYING)
        # The player starts once the ring has a segment to play.
        GLib.timeout_add(2500, self.start_player)
        channel = GLib.IOChannel.unix_new(sys.stdin.fileno())
        GLib.io_add_watch(channel, GLib.PRIORITY_DEFAULT, GLib.IO_IN | GLib.IO_HUP, self.on_stdin)
        GLib.timeout_add_seconds(1, self.status)
        try:
            self.loop.run()
        finally:
            self.player.set_state(Gst.State.NULL)
            self.writer.send_event(Gst.Event.new_eos())
            self.writer.get_bus().timed_pop_filtered(5 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
            self.writer.set_state(Gst.State.NULL)
        say("bye")

    def start_player(self):
        self.player.set_state(Gst.State.PLAYING)
        say("playing")
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ring", help="ring directory (default: a new temporary one)")
    parser.add_argument("--udp", help="record MPEG-TS from ADDRESS:PORT instead of a test pattern")
    parser.add_argument("--headless", action="store_true", help="no window: play into a synchronised fakesink")
    parser.add_argument("--recordings", help="where recordings go (default: next to the ring)")
    args = parser.parse_args()
    Gst.init(None)
    Dvr(args).run()


if __name__ == "__main__":
    main()
