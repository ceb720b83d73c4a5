#!/usr/bin/env python3
# SPDX-License-Identifier: MPL-2.0
"""Benchmarks streambuffersink against filesink, multifilesink, splitmuxsink
and hlssink2 on the same input, interleaved, and prints Markdown tables.

Run it through scripts/bench.sh, which builds the plugin and sets the paths.
Timing and rusage come from os.wait4 on each gst-launch-1.0 child: wall time,
user+sys CPU and peak RSS of exactly that process.
"""
import datetime
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time

RUNS = int(os.environ.get("BENCH_RUNS", "7"))
# BENCH_SINKS=streambuffersink (comma-separated): only those sinks and
# filesink, and only the throughput table; more runs of fewer sinks give
# tighter ratios on a noisy machine. BENCH_SINKS=archive: only the archive
# tables; BENCH_SINKS=origin: only the origin's; BENCH_SINKS=leases: only
# the sink with 4 leasing readers.
ONLY = [n for n in os.environ.get("BENCH_SINKS", "").split(",") if n]
CACHE = os.environ.get("BENCH_CACHE", os.path.expanduser("~/.cache/streambuffer-bench"))
OUT = os.environ.get("BENCH_OUT", os.path.join(CACHE, "out"))
INPUT = os.path.join(CACHE, "input-20mbit.ts")
UNBOUNDED_QUEUE = "queue max-size-buffers=0 max-size-bytes=0 max-size-time=0"
# splitmuxsink/hlssink2 sometimes deadlock at EOS on this input; such a run
# is killed, reported and left out of the medians.
HANG_TIMEOUT = 40
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def make_input():
    """>= 150 MB of 20 Mbit/s H.264 in MPEG-TS, generated once and cached."""
    if os.path.exists(INPUT) and os.path.getsize(INPUT) >= 150_000_000:
        return
    os.makedirs(CACHE, exist_ok=True)
    print(f"generating {INPUT} (once)", file=sys.stderr)
    tmp = INPUT + ".tmp"
    sh(["gst-launch-1.0", "-q", "videotestsrc", "pattern=snow", "num-buffers=1650", "!",
        "video/x-raw,width=1280,height=720,framerate=25/1", "!",
        "x264enc", "bitrate=20000", "speed-preset=ultrafast", "key-int-max=50", "vbv-buf-capacity=1000", "!",
        "mpegtsmux", "!", "filesink", f"location={tmp}"])
    os.rename(tmp, INPUT)


SHORT_INPUT = os.path.join(CACHE, "input-short.ts")
SHORT_PACKETS = 10_000


def make_short_input():
    """The input's first 10,000 packets (1.9 MB): a run on it is mostly the
    process's start and end (loading the plugins, creating the outputs)."""
    with open(INPUT, "rb") as f:
        head = f.read(SHORT_PACKETS * 188)
    with open(SHORT_INPUT, "wb") as f:
        f.write(head)


def sinks(out):
    """The contenders: gst-launch-1.0 pipeline tails, given an empty output dir."""
    return {
        "fakesink": "fakesink sync=false",
        "filesink": f"filesink location={out}/out.ts",
        "multifilesink": f"multifilesink next-file=max-size max-file-size=15000000 location={out}/seg%05d.ts",
        # splitmuxsink and hlssink2 (which wraps it) deadlock on this input when
        # fed straight from tsdemux ! h264parse, or through a bounded queue:
        # they need an unbounded queue (a thread, and memory).
        "splitmuxsink": f"tsdemux ! h264parse ! {UNBOUNDED_QUEUE} ! splitmuxsink muxer-factory=mpegtsmux max-size-time=6000000000 "
                        f"location={out}/seg%05d.ts",
        "hlssink2": f"tsdemux ! h264parse ! {UNBOUNDED_QUEUE} ! hlssink2 target-duration=6 max-files=1000 playlist-length=0 "
                    f"location={out}/seg%05d.ts playlist-location={out}/p.m3u8",
        "streambuffersink": f"streambuffersink location={out}/ring segment-duration=6000000000 "
                            f"max-duration=30000000000",
        # What a user would reach for instead, outside GStreamer: ffmpeg's
        # own HLS and segment muxers with the same 6 s segments and 30 s
        # window, copying the stream (they read the file themselves, so the
        # blocksize does not apply to them).
        "ffmpeg -f hls": f"ffmpeg -v error -nostdin -i {INPUT} -c copy -f hls -hls_time 6 -hls_list_size 5 "
                         f"-hls_flags delete_segments {out}/p.m3u8",
        "ffmpeg -f segment": f"ffmpeg -v error -nostdin -i {INPUT} -c copy -f segment -segment_time 6 -segment_wrap 5 "
                             f"{out}/seg%03d.ts",
        # Filling a 1 h window (the input is 68 s): nothing is evicted; the
        # difference to the row above is what rotating costs or saves (the
        # kernel frees an evicted segment's page cache in unlink, or a
        # reused file keeps it; filesink deletes nothing).
        "streambuffersink (filling a 1 h window)": f"streambuffersink location={out}/ring segment-duration=6000000000 "
                                                   f"max-duration=3600000000000",
    }


def attach_readers(ring, count, sink_done, readers):
    """Starts `count` streambuffersrc processes following `ring` from its
    oldest segment (each leasing the segment it reads) once its first
    segment is published, unless the sink has ended first (`sink_done`;
    the sink process is reaped by os.wait4 alone)."""
    playlist = os.path.join(ring, "index.m3u8")
    while not os.path.exists(playlist):
        if sink_done.is_set():
            return
        time.sleep(0.002)
    for _ in range(count):
        readers.append(subprocess.Popen(
            ["timeout", str(HANG_TIMEOUT), "gst-launch-1.0", "-q", "streambuffersrc", f"location={ring}",
             "start-position=oldest", "!", "fakesink", "sync=false"], stdout=subprocess.DEVNULL))


# Enough for a run's page cache (170 MB) and a sink's own memory.
WARM_MB = 600


def warm_free_memory():
    """Touches WARM_MB of memory and frees it, so that every run starts
    with the same supply of free memory the machine has just used.

    On a virtual machine with free page reporting (Firecracker here, with
    page_reporting_order=11) memory that stayed free for about 2 s goes back
    to the host, and whoever touches it next pays for the host to fault it
    in again, as its own CPU time. Without this a run's CPU depended on how
    much its predecessor had freed just before (its output, deleted by the
    clean-up, and its heap): behind a heavy run it was cheap, behind a run
    that wrote little or hung it was dear. Measured here, 64 KiB buffers,
    8 rounds: the standard deviation of the filling sink's CPU went from 19
    to 2.3 ms, filesink's from 6.8 to 5.0 ms. On a machine without it this
    costs about 0.4 s a run and changes nothing.

    In a process of its own: a child forked from this one would inherit
    its peak RSS, and report it as the run's."""
    subprocess.run([sys.executable, "-c", WARM_CODE, str(WARM_MB << 20)], check=True)


WARM_CODE = """
import mmap, sys
size = int(sys.argv[1])
block = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for offset in range(0, size, mmap.PAGESIZE):
    block[offset] = 1
"""


def run_once(pipeline, readers=0):
    """One run of `pipeline` (gst-launch-1.0 or ffmpeg) from clean: its wall
    time, CPU and peak RSS; None if it hung. `readers`: that many leasing
    streambuffersrc processes follow the ring it writes at OUT/ring (their
    CPU is theirs, not counted)."""
    out = OUT
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    # Start every run with no dirty data of earlier runs (splitmuxsink and
    # hlssink2 leave hundreds of MB): its writeback would otherwise compete
    # with whichever sink runs next.
    os.sync()
    warm_free_memory()
    if pipeline.startswith("ffmpeg "):
        argv = ["timeout", str(HANG_TIMEOUT)] + pipeline.split()
    else:
        argv = ["timeout", str(HANG_TIMEOUT), "gst-launch-1.0", "-q"] + pipeline.split()
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    attached, sink_done = [], threading.Event()
    if readers:
        watcher = threading.Thread(target=attach_readers,
                                   args=(os.path.join(out, "ring"), readers, sink_done, attached))
        watcher.start()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    sink_done.set()
    if readers:
        watcher.join()
        for r in attached:
            r.wait()
        if len(attached) < readers:
            print(f"only {len(attached)} of {readers} readers attached before the end: {pipeline}", file=sys.stderr)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 124:
        print(f"hung (killed after {HANG_TIMEOUT} s): {pipeline}", file=sys.stderr)
        return None
    if status != 0:
        raise SystemExit(f"pipeline failed ({status}): {pipeline}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0


def round_order(names, r):
    """The order of round `r`: a shuffle seeded by the round, the same in
    every run of the script. Rotating the list each round, as this did
    before, kept every sink behind the same neighbour (streambuffersink
    always ran right after hlssink2, filesink after fakesink), and on a
    virtual machine that reports freed memory to its host what ran just
    before moves a run's CPU: pages the previous run freed and the host took
    back are faulted in again by the next one, at its cost. Shuffled, each
    sink follows a different one from round to round."""
    order = list(names)
    random.Random(r).shuffle(order)
    return order


def paired_cpu_ratio(runs, base_runs):
    """Median over rounds of each round's CPU ratio to the base's.

    The load of a shared machine drifts over minutes: runs of one round share
    it, so their ratio is steadier than the ratio of two medians."""
    return statistics.median(a[1] / b[1] for a, b in zip(runs, base_runs) if a is not None and b is not None)


def throughput_table():
    size_mb = os.path.getsize(INPUT) / 1e6
    lines = []
    for bs in (1316, 65536):
        names = [n for n in sinks(OUT) if n in ONLY or n == "filesink"] if ONLY else list(sinks(OUT))
        results = {n: [] for n in names}
        # The same two sinks on the short input, in the same rounds: what a
        # run costs whatever its length (start, end), so that the cost per
        # byte beyond it can be told apart.
        short_names = [n for n in ("filesink", "streambuffersink") if n in names]
        short = {n: [] for n in short_names}
        for r in range(RUNS):  # interleaved: every sink once a round
            for n in round_order(names, r):
                tail = sinks(OUT)[n]
                command = tail if tail.startswith("ffmpeg ") else f"filesrc location={INPUT} blocksize={bs} ! {tail}"
                results[n].append(run_once(command))
            for n in short_names:
                short[n].append(run_once(f"filesrc location={SHORT_INPUT} blocksize={bs} ! {sinks(OUT)[n]}"))
        hung = {n: sum(r is None for r in results[n]) for n in names}
        ok = {n: [r for r in results[n] if r is not None] for n in names}
        med = {n: tuple(statistics.median(r[i] for r in ok[n]) for i in range(3)) if ok[n] else None for n in names}
        lines.append(f"\n**blocksize={bs}** ({size_mb:.0f} MB input, {RUNS} interleaved rounds, order shuffled each round)\n")
        fw, fc, _ = med["filesink"]
        lines.append("| sink | wall s | CPU s | MB/s | peak RSS MiB | wall / filesink | CPU / filesink "
                     "| CPU / filesink, paired rounds |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for n in names:
            if med[n] is None:
                lines.append(f"| `{n}` | hung in all {RUNS} runs | | | | | | |")
                continue
            w, c, r = med[n]
            rc = paired_cpu_ratio(results[n], results["filesink"])
            note = f" ({hung[n]} of {RUNS} runs hung, left out)" if hung[n] else ""
            lines.append(f"| `{n}`{note} | {w:.3f} | {c:.3f} | {size_mb / w:.0f} | {r:.1f} | {w / fw:.2f} | {c / fc:.2f} "
                         f"| {rc:.2f} |")
        if len(short_names) == 2 and med["streambuffersink"] is not None:
            lines.append("\n" + per_byte_line(results, short, size_mb))
        for other in ("splitmuxsink", "hlssink2", "ffmpeg -f hls", "ffmpeg -f segment"):
            if med.get(other) is None or med.get("streambuffersink") is None:
                continue
            sw, sc, _ = med["streambuffersink"]
            ow, oc, _ = med[other]
            rc = paired_cpu_ratio(results["streambuffersink"], results[other])
            lines.append(f"\nstreambuffersink / {other}: wall {sw / ow:.2f}, CPU {sc / oc:.2f} (paired rounds: {rc:.2f})")
    return "\n".join(lines)


def per_byte_line(results, short, size_mb):
    """The fixed cost of a run (the short input's CPU) and the CPU per byte
    beyond it, streambuffersink against filesink: medians, and the median
    over rounds of each round's ratio."""
    def cpu(runs):
        return [r[1] if r is not None else None for r in runs]
    fs_full, sb_full = cpu(results["filesink"]), cpu(results["streambuffersink"])
    fs_short, sb_short = cpu(short["filesink"]), cpu(short["streambuffersink"])
    rounds = [(a, b, c, d) for a, b, c, d in zip(fs_full, sb_full, fs_short, sb_short) if None not in (a, b, c, d)]
    med = [statistics.median(x[i] for x in rounds) for i in range(4)]
    ratio = (med[1] - med[3]) / (med[0] - med[2])
    paired = statistics.median((b - d) / (a - c) for a, b, c, d in rounds)
    short_mb = SHORT_PACKETS * 188 / 1e6
    return (f"Fixed cost of a run ({short_mb:.1f} MB input: start, end): `filesink` {med[2] * 1000:.1f} ms, "
            f"`streambuffersink` {med[3] * 1000:.1f} ms CPU. Beyond it, per byte of the other "
            f"{size_mb - short_mb:.0f} MB: `streambuffersink` / `filesink` {ratio:.2f} (paired rounds: {paired:.2f}).")


def leases_table():
    """The sink's CPU with 4 leasing streambuffersrc readers (other
    processes) following its ring, against the sink alone and filesink, in
    interleaved rounds: leases must not cost the writer."""
    size_mb = os.path.getsize(INPUT) / 1e6
    sink = sinks(OUT)["streambuffersink"]
    contenders = {
        "filesink": (f"filesrc location={INPUT} blocksize=65536 ! {sinks(OUT)['filesink']}", 0),
        "streambuffersink": (f"filesrc location={INPUT} blocksize=65536 ! {sink}", 0),
        "streambuffersink, 4 leasing readers": (f"filesrc location={INPUT} blocksize=65536 ! {sink}", 4),
    }
    names = list(contenders)
    results = {n: [] for n in names}
    for r in range(RUNS):
        for n in round_order(names, r):
            command, readers = contenders[n]
            results[n].append(run_once(command, readers))
    lines = [f"{size_mb:.0f} MB input, 64 KiB buffers, 30 s window rotating, {RUNS} interleaved rounds\n",
             "| sink | CPU s | CPU / filesink, paired rounds | CPU / sink alone, paired rounds |", "|---|---|---|---|"]
    for n in names:
        ok = [x for x in results[n] if x is not None]
        cpu = statistics.median(x[1] for x in ok) if ok else float("nan")
        lines.append(f"| `{n}` | {cpu:.3f} | {paired_cpu_ratio(results[n], results['filesink']):.2f} "
                     f"| {paired_cpu_ratio(results[n], results['streambuffersink']):.2f} |")
    return "\n".join(lines)


def fanout_table():
    """N sinks in one process, fed by a tee: per-channel CPU must stay flat."""
    lines = ["| sinks | wall s | CPU s | CPU per sink s | peak RSS MiB |", "|---|---|---|---|---|"]
    for n in (1, 4, 16):
        branches = " ".join(
            f"t. ! queue max-size-buffers=64 ! streambuffersink location={OUT}/ring{i} segment-duration=6000000000 "
            f"max-duration=30000000000" for i in range(n))
        runs = [r for r in (run_once(f"filesrc location={INPUT} blocksize=65536 num-buffers=800 ! tee name=t {branches}")
                for _ in range(max(3, RUNS // 2))) if r is not None]
        w, c, r = (statistics.median(x[i] for x in runs) for i in range(3))
        lines.append(f"| {n} | {w:.3f} | {c:.3f} | {c / n:.3f} | {r:.1f} |")
    return "\n".join(lines)


def window_rss_table():
    """Peak RSS with a 1-minute and a 24-hour max-duration on the same input."""
    lines = ["| max-duration | peak RSS MiB |", "|---|---|"]
    for label, ns in (("1 min", 60_000_000_000), ("24 h", 86_400_000_000_000)):
        runs = [run_once(f"filesrc location={INPUT} blocksize=65536 ! streambuffersink location={OUT}/ring "
                         f"segment-duration=1000000000 max-duration={ns}") for _ in range(3)]
        runs = [r for r in runs if r is not None]
        lines.append(f"| {label} | {statistics.median(r[2] for r in runs):.1f} |")
    return "\n".join(lines)


def ring_table(bench_ring):
    """One rotation with 10 vs 10,000 segments in the window (library level)."""
    lines = ["| window segments | playlist-length | rotation median us | p90 us | RSS KiB |", "|---|---|---|---|---|"]
    for window in (10, 10_000):
        for pl in (10, 0):
            out = subprocess.run([bench_ring, os.path.join(OUT, "bench-ring"), str(window), str(pl), "300"],
                                 check=True, capture_output=True, text=True).stdout.strip()
            f = dict(kv.split("=") for kv in out.split())
            lines.append(f"| {f['window']} | {pl} | {f['rotation-median-us']} | {f['rotation-p90-us']} | {f['rss-kib']} |")
    return "\n".join(lines)


def live_lag_table(live_lag):
    """A reader at the live edge: time from the sink receiving each packet
    to the reader producing it (same process, real-time input)."""
    lines = ["| input | packets | lag median ms | lag p95 ms | PLAYING to first buffer ms |", "|---|---|---|---|---|"]
    for kbit in (2000, 20000):
        out = subprocess.run([live_lag, os.path.join(OUT, "live-lag"), "20", str(kbit)],
                             check=True, capture_output=True, text=True).stdout.strip()
        f = dict(kv.split("=") for kv in out.split())
        lines.append(f"| {kbit // 1000} Mbit/s | {f['packets']} | {f['lag-median-ms']} | {f['lag-p95-ms']} "
                     f"| {f['first-buffer-ms']} |")
    return "\n".join(lines)


def seek_table(examples, ring, count, heading):
    """`count` flushing seeks across `ring`'s window, each mode a row."""
    rows = [f"| {heading} | seeks | seek to first buffer median ms | p95 ms |", "|---|---|---|---|"]
    out = subprocess.run([os.path.join(examples, "seek_latency"), ring, str(count)],
                         check=True, capture_output=True, text=True).stdout
    for line in out.strip().splitlines():
        f = dict(kv.split("=") for kv in line.split())
        flags = {"key-unit": "FLUSH, KEY_UNIT, SNAP_BEFORE", "accurate": "FLUSH, ACCURATE"}[f["mode"]]
        rows.append(f"| {flags} | {f['seeks']} | {f['median-ms']} | {f['p95-ms']} |")
    return rows


def read_cost_table(examples, ring, rounds, label):
    """Reading `ring` to EOS against reading the input with filesrc."""
    out = subprocess.run([os.path.join(examples, "read_cost"), ring, INPUT, str(rounds)],
                         check=True, capture_output=True, text=True).stdout.strip()
    f = dict(kv.split("=") for kv in out.split())
    return ["| reading the input to EOS, into fakesink | CPU ms (median) |", "|---|---|",
            f"| `filesrc blocksize=65536` | {f['file-cpu-ms']} |",
            f"| {label} | {f['ring-cpu-ms']} |",
            f"| ratio (median of {f['rounds']} paired rounds) | {f['ratio']}x |"]


def playback_tables(examples):
    """A finished ring of the whole input (6 s segments): flushing seeks to
    the first parsed buffer, and what reading it costs against filesrc."""
    ring = os.path.join(CACHE, "playback-ring")
    shutil.rmtree(ring, ignore_errors=True)
    sh(["gst-launch-1.0", "-q", "filesrc", f"location={INPUT}", "blocksize=65536", "!", "streambuffersink",
        f"location={ring}", "segment-duration=6000000000", "max-duration=0"])
    seeks = seek_table(examples, ring, 50, "seek flags")
    cost = read_cost_table(examples, ring, max(15, RUNS * 2), "`streambuffersrc` (the ring of it)")
    out = subprocess.run([os.path.join(examples, "trick_cost"), ring, "5"],
                         check=True, capture_output=True, text=True).stdout
    trick = ["| rate (streambuffersrc ! fakesink sync=false, the whole window) | CPU ms per s of content | KiB read per s of content |",
             "|---|---|---|"]
    for line in out.strip().splitlines():
        f = dict(kv.split("=") for kv in line.split())
        mode = "every frame" if f["rate"] == "1" else "keyframes only"
        trick.append(f"| {float(f['rate']):g}x ({mode}) | {f['cpu-ms-per-content-s']} | {f['kib-per-content-s']} |")
    shutil.rmtree(ring, ignore_errors=True)
    return "\n".join(seeks) + "\n\n" + "\n".join(cost) + "\n\n" + "\n".join(trick)


def s3_server(root):
    """s3s-fs (scripts/setup.sh --tests installs it) on a free loopback port."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exe = shutil.which("s3s-fs") or os.path.expanduser("~/.cargo/bin/s3s-fs")
    proc = subprocess.Popen([exe, "--host", "127.0.0.1", "--port", str(port), "--access-key", "bench",
                             "--secret-key", "bench-secret", root], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret")
    return proc, f"http://127.0.0.1:{port}"


def archive_tables(examples):
    """The archive tier on loopback (s3s-fs): the sink's CPU with an archive
    against without, and the upload lag of a live recording."""
    store = os.path.join(CACHE, "s3")
    shutil.rmtree(store, ignore_errors=True)
    os.makedirs(os.path.join(store, "bench"))
    server, endpoint = s3_server(store)
    try:
        archive = f"archive-location=s3://bench/lag archive-endpoint={endpoint} archive-path-style=true"
        out = subprocess.run([os.path.join(examples, "archive_cost"), INPUT, os.path.join(OUT, "cost"), endpoint,
                              "bench", str(RUNS)], check=True, capture_output=True, text=True).stdout.strip()
        f = dict(kv.split("=") for kv in out.split())
        cpu = ["| blocksize=65536, filling a 1 h window, to EOS and stopped | CPU ms (median) "
               "| CPU / filesink (median of paired rounds) |", "|---|---|---|",
               f"| `filesink` | {f['filesink-cpu-ms']} | 1.00 |",
               f"| `streambuffersink` | {f['sink-cpu-ms']} | {f['sink-ratio']} |",
               f"| `streambuffersink` with an archive, whole process | {f['archived-cpu-ms']} | {f['archived-ratio']} |",
               f"| the same without its uploader thread ({f['uploader-cpu-ms']} ms) | | "
               f"{f['archived-without-uploader-ratio']} |"]
        # Upload lag: a live 2 Mbit/s recording of 2 s segments; each
        # segment from its listing in the ring's playlist to its object
        # being whole in the bucket's storage.
        ring = os.path.join(OUT, "lag-ring")
        shutil.rmtree(ring, ignore_errors=True)
        seconds = 60
        writer = subprocess.Popen(
            ["gst-launch-1.0", "-q", "-e", "videotestsrc", "is-live=true", f"num-buffers={seconds * 25}", "!",
             "video/x-raw,width=640,height=360,framerate=25/1", "!", "x264enc", "tune=zerolatency", "bitrate=2000",
             "speed-preset=ultrafast", "key-int-max=25", "!", "mpegtsmux", "!", "streambuffersink",
             f"location={ring}", "segment-duration=2000000000"] + archive.split(),
            stdout=subprocess.DEVNULL)
        listed, archived = {}, {}
        objects = os.path.join(store, "bench", "lag")
        deadline = time.perf_counter() + seconds + 60
        while time.perf_counter() < deadline:
            now = time.perf_counter()
            try:
                for line in open(os.path.join(ring, "index.m3u8")):
                    if line.startswith("segment-"):
                        listed.setdefault(line.strip(), now)
            except OSError:
                pass
            for hour, _, files in os.walk(objects):
                for f in files:
                    if f.endswith(".ts"):
                        name = "segment-" + f.split("-", 1)[1]
                        local = os.path.join(ring, name)
                        if name not in archived and os.path.exists(local) and \
                                os.path.getsize(os.path.join(hour, f)) == os.path.getsize(local):
                            archived[name] = now
            if writer.poll() is not None and len(archived) >= len(listed):
                break
            time.sleep(0.005)
        writer.wait()
        lags = sorted((archived[n] - listed[n]) * 1000 for n in listed if n in archived)
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else float("nan")
        lag = ["| live 2 Mbit/s, 2 s segments | segments | upload lag median ms | p99 ms |", "|---|---|---|---|",
               f"| segment listed in the ring -> whole object in the bucket | {len(lags)} of {len(listed)} "
               f"| {statistics.median(lags):.0f} | {p99:.0f} |"]
        return "\n".join(cpu) + "\n\n" + "\n".join(lag) + "\n\n" + archive_playback_tables(examples, endpoint)
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(store, ignore_errors=True)


def archive_playback_tables(examples, endpoint):
    """The whole input recorded into a 12 s ring with an archive, so that
    nearly all of it is only in the bucket: flushing seeks across the
    window (into the archive) and reading it all at 1x, the fetcher's
    thread and its HTTP included, against filesrc."""
    ring = os.path.join(OUT, "archived-ring")
    shutil.rmtree(ring, ignore_errors=True)
    sh(["gst-launch-1.0", "-q", "filesrc", f"location={INPUT}", "blocksize=65536", "!", "streambuffersink",
        f"location={ring}", "segment-duration=6000000000", "max-duration=12000000000",
        "archive-location=s3://bench/playback", f"archive-endpoint={endpoint}", "archive-path-style=true"])
    local = sum(1 for n in os.listdir(ring) if n.startswith("segment-") and n.endswith(".ts"))
    seeks = seek_table(examples, ring, 20,
                       f"seek flags (ring of {local} local segments, the rest in the archive)")
    cost = read_cost_table(examples, ring, max(5, RUNS),
                           "`streambuffersrc`, all but 12 s from the archive (fetching included)")
    shutil.rmtree(ring, ignore_errors=True)
    return "\n".join(seeks) + "\n\n" + "\n".join(cost)


def origin_table(examples):
    """`streambuffer serve` under load on loopback: 500 clients for 10 s, each
    on a keep-alive connection. Half poll a finished ring's playlist every
    200 ms and fetch one of its segments after every fourth poll; the other
    half play a live ring (H.264 and AAC, 2 s segments, 1 s parts) as
    low-latency players do: a blocking reload for the next part, and that
    part (a byte range) after every fourth. A blocking reload's time
    includes waiting for its part to be written."""
    root = os.path.join(OUT, "origin")
    ring = os.path.join(root, "ch1")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    sh(["gst-launch-1.0", "-q", "filesrc", f"location={INPUT}", "!", "streambuffersink",
        f"location={ring}", "segment-duration=2000000000"])
    writer = subprocess.Popen(
        ["gst-launch-1.0", "-q", "-e", "videotestsrc", "is-live=true", "pattern=ball", "!",
         "video/x-raw,width=320,height=240,framerate=25/1", "!", "x264enc", "tune=zerolatency", "key-int-max=25",
         "speed-preset=ultrafast", "bitrate=600", "!", "queue", "!", "mpegtsmux", "name=m", "!", "streambuffersink",
         f"location={os.path.join(root, 'live')}", "segment-duration=2000000000", "audiotestsrc", "is-live=true",
         "!", "audio/x-raw,rate=48000", "!", "avenc_aac", "!", "queue", "!", "m."],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(6)
        tool = os.path.join(os.path.dirname(examples), "streambuffer")
        out = subprocess.run([os.path.join(examples, "origin_load"), tool, root, "ch1", "500", "10", "live"],
                             check=True, capture_output=True, text=True).stdout.strip()
    finally:
        writer.kill()
        writer.wait()
    f = dict(kv.split("=") for kv in out.split())
    return "\n".join([
        "| clients | requests | errors | playlist p50 / p99 ms | segment (2 s, 5 MB) p50 / p99 ms "
        "| blocking reloads | blocking reload p50 / p99 ms | part p50 / p99 ms | MB served "
        "| server CPU s | server peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {f['clients']} | {f['requests']} | {f['errors']} | {f['playlist-p50-ms']} / {f['playlist-p99-ms']} "
        f"| {f['segment-p50-ms']} / {f['segment-p99-ms']} | {f['blocking']} "
        f"| {f['blocking-p50-ms']} / {f['blocking-p99-ms']} | {f['part-p50-ms']} / {f['part-p99-ms']} "
        f"| {f['segment-mb']} | {f['server-cpu-s']} | {f['server-rss-mb']} |"])


def low_latency_table(examples):
    """Latency through the origin: a live writer (H.264 with a keyframe a
    second and AAC, 4 s segments) served by `streambuffer serve` (1 s
    parts), played by hls.js in headless Chromium for 30 s, with its
    low-latency mode on (parts, blocking reloads) and off (whole segments).
    Arrival: from the sink receiving a part's (or segment's) last byte,
    by its EXT-X-PROGRAM-DATE-TIME, to the player having it; behind: from
    the content shown being received to it being shown."""
    root = os.path.join(OUT, "ll")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    ring = os.path.join(root, "ch1")
    writer = subprocess.Popen(
        ["gst-launch-1.0", "-q", "-e", "videotestsrc", "is-live=true", "num-buffers=2500", "pattern=ball", "!",
         "video/x-raw,width=640,height=360,framerate=25/1", "!", "x264enc", "tune=zerolatency", "key-int-max=25",
         "speed-preset=ultrafast", "bitrate=2000", "!", "queue", "!", "mpegtsmux", "name=m", "!", "streambuffersink",
         f"location={ring}", "segment-duration=4000000000", "audiotestsrc", "is-live=true", "!",
         "audio/x-raw,rate=48000", "!", "avenc_aac", "!", "queue", "!", "m."],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tool = os.path.join(os.path.dirname(examples), "streambuffer")
    server = subprocess.Popen([tool, "serve", "--listen", "127.0.0.1:0", root], stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip().removeprefix("listening on ").rstrip("/") + "/ch1/index.m3u8"
        time.sleep(10)
        script = os.path.join(ROOT, "tests", "web", "hlsjs-play.mjs")
        lines = ["| hls.js | arrival median / p95 s | behind live median / p95 s | parts loaded | errors |",
                 "|---|---|---|---|---|"]
        for mode, env in (("low-latency mode (parts)", "1"), ("without (whole segments)", "0")):
            played = subprocess.run(["node", script, root, url, "30"], capture_output=True, text=True,
                                    env={**os.environ, "HLSJS_LOW_LATENCY": env})
            if played.returncode != 0:
                raise SystemExit(f"hls.js ({mode}) failed: {played.stderr.strip()}")
            out = played.stdout
            f = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
            lines.append(f"| {mode} | {f.get('arrival-median')} / {f.get('arrival-p95')} "
                         f"| {f.get('behind-median')} / {f.get('behind-p95')} | {f.get('parts-loaded')} "
                         f"| {f.get('errors')} |")
        return "\n".join(lines)
    finally:
        server.kill()
        writer.kill()
        server.wait()
        writer.wait()


def main():
    make_input()
    make_short_input()
    bench_ring = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/examples/bench_ring")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"Measured {datetime.date.today()} on {platform.node()}: {os.cpu_count()} cores ({cpu}), "
          f"{platform.system()} {platform.release()}, GStreamer "
          f"{subprocess.run(['gst-launch-1.0', '--version'], capture_output=True, text=True).stdout.split()[2]}.\n")
    if ONLY == ["origin"]:
        print("### The HTTP origin under load (loopback)\n\n" + origin_table(os.path.dirname(bench_ring)))
        print("\n### Low-Latency HLS through the origin\n\n" + low_latency_table(os.path.dirname(bench_ring)))
        return
    if ONLY == ["leases"]:
        print("### The sink with leasing readers\n\n" + leases_table())
        return
    if ONLY == ["archive"]:
        print("### The archive tier (S3 on loopback: s3s-fs)\n\n" + archive_tables(os.path.dirname(bench_ring)))
        return
    print("### Throughput against the other sinks\n" + throughput_table())
    if ONLY:
        shutil.rmtree(OUT, ignore_errors=True)
        return
    print("\n### The sink with leasing readers\n\n" + leases_table())
    print("\n### Many channels in one process (tee to N sinks, 52 MB each)\n\n" + fanout_table())
    print("\n### Memory against window length\n\n" + window_rss_table())
    print("\n### Rotation cost against window length (library, no pipeline)\n\n" + ring_table(bench_ring))
    live_lag = os.path.join(os.path.dirname(bench_ring), "live_lag")
    print("\n### Live-edge lag (streambuffersrc following the sink)\n\n" + live_lag_table(live_lag))
    print("\n### Playback of a finished ring (warm page cache)\n\n" + playback_tables(os.path.dirname(bench_ring)))
    print("\n### The archive tier (S3 on loopback: s3s-fs)\n\n" + archive_tables(os.path.dirname(bench_ring)))
    print("\n### The HTTP origin under load (loopback)\n\n" + origin_table(os.path.dirname(bench_ring)))
    print("\n### Low-Latency HLS through the origin\n\n" + low_latency_table(os.path.dirname(bench_ring)))
    shutil.rmtree(OUT, ignore_errors=True)


if __name__ == "__main__":
    main()
