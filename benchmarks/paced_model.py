"""The model alone and the postprocess stage, called back to back and once per frame interval:
how much an idle machine between live frames slows each call (cold caches, sleeping threads),
for each ONNX Runtime thread count and spin setting.

    python benchmarks/paced_model.py [--fps 30] [--calls 120] [--model M.onnx]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from engines.backends import BackendOptions, create_backend
from engines.defaults import default_onnx
from streamer.config import PostprocessConfig
from streamer.postprocess import Postprocessor
from streamer.preprocess import Crop


def timed(backend, post, x, crop, calls: int, gap: float) -> tuple[float, float]:
    """Median ms of inference and of postprocess over ``calls`` calls, ``gap`` s apart."""
    infer, postprocess = [], []
    for _ in range(calls):
        if gap:
            time.sleep(gap)
        t0 = time.perf_counter()
        out = backend.infer(x)
        t1 = time.perf_counter()
        post.process(out.scores[0], out.maps[0], crop)
        infer.append(t1 - t0)
        postprocess.append(time.perf_counter() - t1)
    return float(np.median(infer)) * 1e3, float(np.median(postprocess)) * 1e3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--calls", type=int, default=120)
    ap.add_argument("--model", default=None)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    x = np.random.default_rng(0).rayleigh(0.25, (1, 1, 224, 224)).clip(0, 1).astype(np.float32)
    crop = Crop(400, 100, 1100, 850, 224)
    print(f"{'threads':>7} {'spin':>5}  back to back: infer / post ms   at {args.fps:g} fps: infer / post ms")
    for threads in (1, 2):
        for spin in (False, True):
            options = BackendOptions(threads=threads, spin=spin)
            with create_backend("onnxruntime", args.model or default_onnx(), options) as backend:
                post = Postprocessor(backend.info.classes, backend.info.activation, PostprocessConfig())
                timed(backend, post, x, crop, 20, 0.0)  # warm-up
                b_inf, b_post = timed(backend, post, x, crop, args.calls, 0.0)
                p_inf, p_post = timed(backend, post, x, crop, args.calls, 1.0 / args.fps)
            print(f"{threads:>7} {spin!s:>5}  {b_inf:13.2f} / {b_post:5.3f}{'':14}{p_inf:6.2f} / {p_post:5.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
