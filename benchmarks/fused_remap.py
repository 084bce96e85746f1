"""Would a fused remap make preprocessing cheaper? The shipped polar input (the fitted sector's
row bands halved twice as BGR, greyed, then remapped: engines.polar.PolarMap.to_polar) against
one remap straight from the BGR crop at the polar grid (no anti-aliasing shrink), then greyed:
the "cheaper fused remap" a retrained model could take.

Both are timed in thread CPU per 1080p frame, on cold frames (a new 6 MB frame buffer every call,
as a capture card's frames arrive: 128 buffers, about 800 MB, cycled) and on a warm one (the same
buffer every call), side by side, twice over; with the whole hot-path preprocessing
(``Preprocessor.process`` without its background looks) on the same cold frames. The fused
input's mean absolute difference from the shipped one says how far a model trained on one is
from the other (speckle aliased, not shrunk).

    PYTHONPATH=. python3 benchmarks/fused_remap.py --out benchmarks/results/fused_remap/2026-12-05-cpu2.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from json_record import emit
from serial_floor import settled_preprocessor

from engines.backends import BackendOptions, create_backend
from engines.defaults import default_onnx
from engines.polar import PolarMap
from engines.simulator import LiveFeed, ReplayFeed
from streamer.bench.machine import describe
from streamer.frames import Frame

SCREENS = 16  # distinct simulated screens
COPIES = 8  # buffers of each: 128 frames of 6.2 MB, far beyond any cache


def fused_maps(pmap: PolarMap) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point remap tables that sample the unshrunk crop at the centre of every polar
    pixel (the grid ``to_polar`` samples after its shrink, here at full resolution)."""
    u = (np.arange(pmap.width) + 0.5)[None, :]
    v = (np.arange(pmap.height) + 0.5)[:, None]
    x, y = pmap.polar_to_image(u, v)
    return cv2.convertMaps((x - 0.5).astype(np.float32), (y - 0.5).astype(np.float32),
                           cv2.CV_16SC2)


def fused_polar(crop_bgr: np.ndarray, maps: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """One remap of the BGR crop to the polar grid, greyed after (on 3 × 224² pixels)."""
    small = cv2.remap(crop_bgr, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small


def cpu_ms(fn, frames: list, calls: int) -> dict:
    spent = []
    for i in range(calls):
        frame = frames[i % len(frames)]
        t0 = time.thread_time()
        fn(frame)
        spent.append(time.thread_time() - t0)
    ms = np.asarray(spent) * 1e3
    return {"mean_ms": round(float(ms.mean()), 4), "p50_ms": round(float(np.median(ms)), 4)}


def measure(onnx: Path, calls: int, rounds: int) -> dict:
    cv2.setNumThreads(1)
    feed = ReplayFeed(LiveFeed(seed=0, width=1920, height=1080), SCREENS)
    screens = [feed.next().image for _ in range(SCREENS)]
    cold = [s.copy() for _ in range(COPIES) for s in screens]
    with create_backend("onnxruntime", onnx, BackendOptions(threads=1)) as backend:
        pre = settled_preprocessor(backend.info, screens)
    crop = pre.state.geometry.crop
    maps = fused_maps(crop.polar)

    def roi(image):
        return image[crop.y : crop.y + crop.h, crop.x : crop.x + crop.w]

    ways = {"shipped: halve bands, grey, remap": lambda f: crop.polar.to_polar(roi(f)),
            "fused: one remap of the BGR crop, grey": lambda f: fused_polar(roi(f), maps),
            "whole preprocess (hot path)": lambda f: pre.process(Frame(0, f))}
    runs = []
    for r in range(rounds):
        for name, fn in ways.items():
            for kind, frames in (("cold", cold), ("warm", screens[:1])):
                if kind == "warm" and name.startswith("whole"):
                    continue
                runs.append({"round": r + 1, "way": name, "frames": kind,
                             **cpu_ms(fn, frames, calls)})
    diff = [float(np.abs(fused_polar(roi(s), maps).astype(np.int16)
                         - crop.polar.to_polar(roi(s)).astype(np.int16)).mean()) for s in screens]
    return {"benchmark": "fused_remap", "date": time.strftime("%Y-%m-%d"), "machine": describe(),
            "model": onnx.name, "frame": [1080, 1920], "crop": [crop.w, crop.h],
            "input_size": crop.size, "halvings": crop.polar.halvings, "calls": calls,
            "cold_buffers": len(cold), "runs": runs,
            "input_mean_abs_difference_grey_levels": round(float(np.mean(diff)), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--model", type=Path, default=default_onnx())
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    emit(measure(args.model, args.calls, args.rounds), args.out)


if __name__ == "__main__":
    main()
