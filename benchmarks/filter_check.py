"""How much does the polar preprocessing filter cost, and how much does the model care? The
model's own filter as the live path runs it (its recipe's shrink) against the other anti-aliasing
shrinks (INTER_AREA to the sampling step, the older models'; 2×2 halvings, the newer ones') and
fused single-remap variants straight from the BGR crop to the model grid (plain bilinear, and 2×2
/ 3×3 supersampled then averaged): CPU time per frame, mean pixel difference and the largest
change in any class probability of the model.

    python benchmarks/filter_check.py [--frames 60] [--model M.onnx]
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2
import numpy as np

from engines.backends import BackendOptions, create_backend
from engines.defaults import default_onnx
from engines.polar import PolarMap
from engines.scoring import probabilities
from engines.simulator import LiveFeed
from streamer.config import PreprocessConfig
from streamer.frames import Frame
from streamer.preprocess import Preprocessor


def fused(pm, crop, ss: int):
    """One remap from the BGR crop to an ss× finer grid, averaged down, then greyed."""
    u = (np.arange(pm.width * ss) + 0.5) / ss
    v = (np.arange(pm.height * ss) + 0.5) / ss
    x, y = pm.polar_to_image(u[None, :], v[:, None])
    m1, m2 = cv2.convertMaps((x - 0.5).astype(np.float32), (y - 0.5).astype(np.float32), cv2.CV_16SC2)

    def run(image):
        r = cv2.remap(image[crop.y : crop.y + crop.h, crop.x : crop.x + crop.w], m1, m2,
                      cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        if ss > 1:
            r = cv2.resize(r, (pm.width, pm.height), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(r, cv2.COLOR_BGR2GRAY)
    return run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--model", default=None, help="ONNX model (default: the bundled one)")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    with create_backend("onnxruntime", args.model or default_onnx(), BackendOptions(threads=1)) as backend:
        info = backend.info
        pre = Preprocessor.for_model(PreprocessConfig(), info)
        feed = LiveFeed(seed=11)
        screens = [feed.frame_at(i).image for i in range(0, 4 * (args.frames + 20), 4)]
        for i, s in enumerate(screens[:20]):  # find the fan, fit the sector
            crop = pre.process(Frame(i, s)).crop
        pm = crop.polar

        def shrink(method):
            other = PolarMap(pm.geometry, (pm.height, pm.width), shrink=method)

            def run(image):
                return other.to_polar(cv2.cvtColor(image[crop.y : crop.y + crop.h,
                                                         crop.x : crop.x + crop.w], cv2.COLOR_BGR2GRAY))
            return run

        def own(image):  # the live path's own call (a halving shrink greys after shrinking)
            return np.rint(pre.process(Frame(0, image)).tensor[0, 0] * 255).astype(np.uint8)

        def probs(small):
            return probabilities(backend.infer((small / np.float32(255))[None, None].astype(
                np.float32)).scores[0], info.activation)

        frames = screens[20:]
        reference = [own(s) for s in frames]
        ref_probs = [probs(r) for r in reference]
        variants = {f"the model's own ({pm.method}, live path)": own,
                    "grey, INTER_AREA shrink, remap": shrink("area"),
                    "grey, 2x2 halvings, remap": shrink("halving"), "fused remap": fused(pm, crop, 1),
                    "fused remap 2x2 supersampled": fused(pm, crop, 2),
                    "fused remap 3x3 supersampled": fused(pm, crop, 3)}
        print(f"{len(frames)} frames, crop {crop.w}x{crop.h}, model grid {pm.width}x{pm.height}, "
              f"model {args.model or default_onnx()} (shrink: {info.recipe.shrink})")
        for name, fn in variants.items():
            start = time.thread_time()
            outs = [fn(s) for s in frames]
            cpu_ms = (time.thread_time() - start) / len(frames) * 1e3
            px = np.mean([np.abs(o.astype(int) - r).mean() for o, r in zip(outs, reference, strict=True)])
            dp = max(float(np.abs(probs(o) - rp).max()) for o, rp in zip(outs, ref_probs, strict=True))
            print(f"{name:<34} CPU {cpu_ms:6.3f} ms/frame  mean |pixel diff| {px:5.2f}  "
                  f"max |probability change| {dp:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
