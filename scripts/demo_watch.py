"""What scripts/demo shows while the streamer runs: where everything is, then a line each time
what is in view changes ("head 0.98 at (812, 430)") and the speed every few seconds.

    python3 scripts/demo_watch.py --pid PID [--connect tcp://127.0.0.1:5556] [--viewer URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from streamer.client import DetectionMessage, ResultSubscriber, StatusMessage


def detections(msg: DetectionMessage) -> str:
    """The present regions, strongest first: ``head 0.98 at (812, 430)``."""
    present = sorted((c for c in msg.classes.values() if c.present), key=lambda c: -c.score)
    if not present:
        return "nothing in view"
    return " · ".join(f"{c.name} {c.score:.2f}" + (f" at ({c.peak[0]}, {c.peak[1]})" if c.peak else "")
                      for c in present)


def speed(status: dict) -> str:
    lat = status.get("latency_ms") or {}
    p50 = lat.get("p50")
    return (f"[{status.get('fps', 0):.1f} fps, latency p50 "
            f"{'-' if p50 is None else f'{p50:.1f}'} ms, dropped {status.get('dropped', 0)}]")


def alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch(endpoint: str, pid: int | None, out=sys.stdout, status_every: float = 5.0,
          idle_timeout: float | None = None, steady: int = 3) -> int:
    """Print changes until the streamer exits (or ``idle_timeout`` s of silence); lines printed."""
    printed, last_present, last_status, started = 0, None, 0.0, time.monotonic()
    candidate, seen = None, 0  # a change is printed once it holds for ``steady`` frames
    last_msg = time.monotonic()
    with ResultSubscriber(endpoint, topics=("det", "status")) as sub:
        while alive(pid):
            msg = sub.recv(timeout=0.5)
            now = time.monotonic()
            if msg is None:
                if idle_timeout is not None and now - last_msg > idle_timeout:
                    break
                continue
            last_msg = now
            if isinstance(msg, DetectionMessage):
                present = frozenset(n for n, c in msg.classes.items() if c.present)
                candidate, seen = present, (seen + 1 if present == candidate else 1)
                if present != last_present and (seen >= steady or last_present is None):
                    last_present = present
                    print(f"{now - started:6.1f} s  frame {msg.seq:<6} {detections(msg)}",
                          file=out, flush=True)
                    printed += 1
            elif isinstance(msg, StatusMessage) and now - last_status >= status_every:
                last_status = now
                print(f"{now - started:6.1f} s  {speed(msg.status)}", file=out, flush=True)
                printed += 1
    return printed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pid", type=int, help="stop when this process (the streamer) exits")
    ap.add_argument("--connect", default="tcp://127.0.0.1:5556")
    ap.add_argument("--metrics", default="http://127.0.0.1:9108/metrics")
    ap.add_argument("--viewer", help="the live viewer's URL, if it runs")
    args = ap.parse_args()
    print(f"results  {args.connect}   (another terminal: streamer tap)")
    print(f"metrics  {args.metrics}")
    print(f"viewer   {args.viewer}   <- open this in a browser" if args.viewer else
          "viewer   off (pip install 'sonostream[viewer]' and pass --view-port 8090)")
    print("what is in view, as it changes (region, score, peak in screen pixels):", flush=True)
    try:
        watch(args.connect, args.pid)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
