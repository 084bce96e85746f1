"""Frames lost inside ZeroMQ and results lost by `--record`, measured on the real `streamer run`:

- gaps: 1080p BGR frames published at 300 fps (pre-rendered, so the sender keeps the rate) to
  `streamer run --source zmq:...`; sent against the run's summary (captured, dropped, gaps).
  The sender is an XPUB that starts only once the run's subscription has reached it, so no frame
  is lost to ZeroMQ's slow joiner and every frame sent is one the run could have received.
- fifo: `streamer run --record FIFO` on the live simulated scanner (30 fps) while a reader takes
  the FIFO's first seconds and then stops reading (keeping it open); det messages a subscriber
  received against the frames the run captured and dropped.
- full: `streamer run --record /dev/full` (every write fails with ENOSPC): exit status and what
  the run says about it.

    PYTHONPATH=. .venv/bin/python benchmarks/record_and_gaps.py --out /tmp/record_and_gaps.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zmq

from streamer.client import DetectionMessage, ResultSubscriber
from streamer.protocol import encode_frame

ROOT = Path(__file__).resolve().parents[1]
STREAMER = [sys.executable, "-m", "streamer"]
COUNTS = re.compile(r"frames: captured (\d+), processed (\d+), dropped (\d+), invalid (\d+)")
GAPS = re.compile(r"(\d+) of the dropped never arrived")


def counts(text: str) -> dict:
    m = COUNTS.search(text)
    if not m:
        return {}
    out = dict(zip(("captured", "processed", "dropped", "invalid"), map(int, m.groups()), strict=True))
    gaps = GAPS.search(text)
    return {**out, "gaps": int(gaps.group(1)) if gaps else 0}


def start_run(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*STREAMER, "run", "--metrics-port", "0", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def finish(proc: subprocess.Popen, timeout: float = 60.0) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def gaps_case(seconds: float, fps: float) -> dict:
    from engines.simulator import LiveFeed

    feed = LiveFeed(seed=0, fps=fps, width=1920, height=1080, style="classic")
    images = [feed.next().image for _ in range(8)]
    sock = zmq.Context.instance().socket(zmq.XPUB)
    sock.setsockopt(zmq.SNDHWM, 4)  # as streamer simulate
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    proc = start_run("--source", f"zmq:{endpoint},timeout=30", "--publish", "tcp://127.0.0.1:*")
    if not sock.poll(60_000, zmq.POLLIN):
        raise RuntimeError("the run never subscribed")
    sock.recv()  # its subscription: from here on every frame can reach it
    sent, start = 0, time.monotonic()
    period = 1.0 / fps
    while sent < int(seconds * fps):
        due = start + sent * period
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        sock.send_multipart(encode_frame(images[sent % len(images)], sent, time.monotonic_ns()),
                            copy=False)
        sent += 1
    elapsed = time.monotonic() - start
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc)
    sock.close(linger=0)
    return {"sent": sent, "send_fps": round(sent / elapsed, 1), "exit": code, **counts(out)}


def fifo_case(seconds: float, read_s: float) -> dict:
    tmp = Path(tempfile.mkdtemp())
    fifo = tmp / "results.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    read = {"bytes": 0, "lines": 0}
    stop_reading = threading.Event()

    def take():
        while not stop_reading.wait(0.02):
            try:
                data = os.read(reader, 1 << 16)
            except BlockingIOError:
                continue
            read["bytes"] += len(data)
            read["lines"] += data.count(b"\n")

    publish = "tcp://127.0.0.1:5599"
    proc = start_run("--source", "sim", "--publish", publish, "--record", str(fifo),
                     "--duration", str(seconds))
    got = 0
    threading.Thread(target=take, daemon=True).start()
    with ResultSubscriber(publish) as sub:
        t_first = None
        deadline = time.monotonic() + seconds + 60
        while proc.poll() is None and time.monotonic() < deadline:
            msg = sub.recv(0.2)
            if isinstance(msg, DetectionMessage):
                got += 1
                t_first = t_first or time.monotonic()
            if t_first and time.monotonic() - t_first > read_s:
                stop_reading.set()  # the reader stops, keeping the FIFO open
            if t_first and time.monotonic() - t_first > seconds + 5 and proc.poll() is None:
                break  # a run stuck on the FIFO: let its writes fail so it can exit
    stop_reading.set()
    os.close(reader)
    code, out, err = finish(proc)
    lost = re.search(r"record: (\d+) of (\d+) results not recorded", out + err)
    return {"seconds": seconds, "reader_read_s": read_s, "det_received": got,
            "record_lines_read": read["lines"], "exit": code, **counts(out),
            **({"record_lost": int(lost.group(1))} if lost else {})}


def full_case(frames: int) -> dict:
    proc = start_run("--source", "sim:realtime=0,width=640,height=360", "--publish",
                     "tcp://127.0.0.1:*", "--max-frames", str(frames), "--record", "/dev/full")
    code, out, err = finish(proc)
    lost = re.search(r"record: (\d+) of (\d+) results not recorded", out + err)
    return {"frames": frames, "exit": code, **counts(out),
            "error_log_lines": sum(" ERROR " in line for line in err.splitlines()),
            "record_lost": int(lost.group(1)) if lost else None,
            "stderr_tail": err.strip().splitlines()[-2:]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0, help="sending time of the gaps case")
    p.add_argument("--fps", type=float, default=300.0)
    p.add_argument("--fifo-seconds", type=float, default=10.0)
    p.add_argument("--out", help="write the JSON here")
    args = p.parse_args()
    np.random.seed(0)
    report = {"gaps": gaps_case(args.seconds, args.fps), "fifo": fifo_case(args.fifo_seconds, 1.0),
              "full": full_case(60), "load_at_end": os.getloadavg()[0]}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
