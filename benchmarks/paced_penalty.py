"""Why a call after an idle gap is slower: the model alone called back to back, and once per
30 fps frame interval with each candidate cure between the calls, side by side, twice over.

    python benchmarks/paced_penalty.py [--calls 150] [--threads 1] [--json benchmarks/results/paced_penalty.json]

Ways of waiting for the next frame, each followed by one timed call:

- ``back to back``: no wait (the bound);
- ``sleep``: time.sleep, as a live pipeline's threads wait (the core idles);
- ``busy wait``: a Python loop on the clock (the core never idles, the thread never yields);
- ``sleep, then 2 ms busy``: sleep, and wake 2 ms early to spin (the core awake just before);
- ``sleep, preprocess first``: sleep, then the frame's own preprocessing in the same thread (what
  ``[pipeline] preprocess_in_inference`` does);
- ``sleep, 6 MB touched``: sleep, then a 1080p frame copied (a source's work evicting caches);
- ``sleep, no halt``: sleep with /dev/cpu_dma_latency held at 0 (the kernel polls instead of
  halting an idle CPU; root only, else left out);
- ``sleep, ORT spin``: sleep, with ONNX Runtime's threads spinning (``[model] spin``; with 1
  intra-op thread there is no pool to spin).

Every row records the load average: on a shared machine compare rows of one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.backends import BackendOptions, create_backend  # noqa: E402
from engines.defaults import default_onnx  # noqa: E402
from engines.simulator import LiveFeed, ReplayFeed  # noqa: E402
from streamer.config import PreprocessConfig  # noqa: E402
from streamer.frames import Frame  # noqa: E402
from streamer.preprocess import Preprocessor  # noqa: E402

FPS = 30.0


def _busy(seconds: float) -> None:
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


class NoHalt:
    """/dev/cpu_dma_latency held at 0 µs while open (PM QoS: idle CPUs poll, never halt)."""

    def __enter__(self):
        self.fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
        os.write(self.fd, struct.pack("i", 0))
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def waits(screens: list, pre: Preprocessor) -> dict:
    """name → (wait before the call, input maker): each returns the tensor to infer."""
    big = screens[0].copy()

    def preprocessed(i):
        return pre.process(Frame(i, screens[i % len(screens)])).tensor

    interval = 1.0 / FPS
    return {
        "back to back": (lambda: None, None),
        "sleep": (lambda: time.sleep(interval), None),
        "busy wait": (lambda: _busy(interval), None),
        "sleep, then 2 ms busy": (lambda: (time.sleep(interval - 0.002), _busy(0.002)), None),
        "sleep, preprocess first": (lambda: time.sleep(interval), preprocessed),
        "sleep, 6 MB touched": (lambda: (time.sleep(interval), big.copy()), None),
    }


def timed(backend, x, calls: int, wait, make=None) -> float:
    """Median ms of ``calls`` model calls, each after ``wait()`` (and ``make(i)`` untimed)."""
    out = []
    for i in range(calls):
        wait()
        tensor = x if make is None else make(i)
        t0 = time.perf_counter()
        backend.infer(tensor)
        out.append(time.perf_counter() - t0)
    return round(float(np.median(out)) * 1e3, 4)


def measure(calls: int, threads: int, model) -> list[dict]:
    cv2.setNumThreads(1)
    feed = ReplayFeed(LiveFeed(seed=0), 16)
    screens = [feed.next().image for _ in range(16)]
    x = np.random.default_rng(0).rayleigh(0.25, (1, 1, 224, 224)).clip(0, 1).astype(np.float32)
    rows = []
    for spin in (False, True):
        with create_backend("onnxruntime", model, BackendOptions(threads=threads, spin=spin)) as b:
            pre = Preprocessor.for_model(PreprocessConfig(), b.info)
            for i in range(80):  # past the start-up fan searches
                pre.process(Frame(i, screens[i % 16]))
            pre.request_search = lambda *a: None  # the hot path only
            timed(b, x, 20, lambda: None)
            cases = waits(screens, pre) if not spin else {
                "sleep, ORT spin": (lambda: time.sleep(1 / FPS), None)}
            for name, (wait, make) in cases.items():
                rows.append({"wait": name, "p50_ms": timed(b, x, calls, wait, make),
                             "load": [round(v, 2) for v in os.getloadavg()]})
            if not spin and os.access("/dev/cpu_dma_latency", os.W_OK):
                with NoHalt():
                    rows.append({"wait": "sleep, no halt", "load": [round(v, 2) for v in os.getloadavg()],
                                 "p50_ms": timed(b, x, calls, lambda: time.sleep(1 / FPS))})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=150)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model", default=None)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    rounds = [measure(args.calls, args.threads, args.model or default_onnx())
              for _ in range(args.rounds)]
    print(f"model alone, {args.threads} intra-op thread(s), p50 ms per round "
          f"(load average per row in the JSON)")
    for i, row in enumerate(rounds[0]):
        print(f"  {row['wait']:<26}" + "".join(f"{r[i]['p50_ms']:9.3f}" for r in rounds))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"threads": args.threads, "calls": args.calls,
                                         "fps": FPS, "rounds": rounds}, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
