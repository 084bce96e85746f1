"""What the per-frame screen checks cost on the hot path, side by side in one run: the same
1080p screen frames through two Preprocessors (searches inline, as the pipeline's search thread
would run them), one with the checks (edge watch, frozen, Doppler, annotation fill) and one with
each replaced by a no-op, frames interleaved so that both meet the same machine load.

    python benchmarks/screen_checks_cost.py [--frames 300]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from engines.simulator import LiveFeed
from streamer.config import PreprocessConfig
from streamer.frames import Frame
from streamer.preprocess import Preprocessor
from tests.screens import ANNOTATIONS, HospitalScreen, ScreenSpec


def without_checks(pre: Preprocessor) -> Preprocessor:
    pre.frozen = lambda small: False
    pre.doppler = lambda roi, crop: False
    pre.annotations.fill_in = lambda small, crop: None  # never filled
    due = pre.tracker.due
    pre.tracker.due = lambda image=None: due(None)  # the edge watch reads no pixels
    return pre


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=300)
    args = ap.parse_args(argv)
    screen = HospitalScreen(LiveFeed(seed=11), ScreenSpec(annotations=ANNOTATIONS, doppler=True))
    frames = [screen.frame(i).image for i in range(args.frames)]
    config = PreprocessConfig(representation="polar")
    runs = {"with checks": Preprocessor(config, 224),
            "without": without_checks(Preprocessor(config, 224))}
    served = {name: [] for name in runs}
    for pre in runs.values():  # searches apart from the served frames, as in the pipeline
        pre.request_search = lambda image, detect, fit, pre=pre: pre.search(image, detect, fit)
    for i, image in enumerate(frames):
        for name, pre in runs.items():
            t0 = time.perf_counter_ns()
            pre.process(Frame(i, image))
            served[name].append((time.perf_counter_ns() - t0) / 1e6)
    for name, ms in served.items():
        ms = np.array(ms[60:])  # settled frames
        print(f"{name}: preprocess p50 {np.median(ms):.3f} ms, mean {ms.mean():.3f} ms "
              f"(searches included, inline)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
