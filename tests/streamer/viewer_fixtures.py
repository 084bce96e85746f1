"""A synthetic result the viewer can draw: a grey frame, a present head with its map's peak at a
known place, an absent spine; used by the viewer tests with and without a browser."""

from __future__ import annotations

import time

import numpy as np

from streamer.frames import ClassResult, FrameResult, Timing
from streamer.preprocess import Crop

SHAPE = (300, 400)  # source frame (h, w)
CROP = Crop(x=100, y=50, w=200, h=200, size=224)
PEAK = (150, 100)  # source pixels: the head map's peak (crop-relative (50, 50) of 200 → 56 of 224)


def viewer_result(seq: int = 0, stream: str = "us0") -> FrameResult:
    image = np.full(SHAPE, 90, np.uint8)
    maps = np.zeros((2, 28, 28), np.uint8)
    gy, gx = np.mgrid[0:28, 0:28]
    cx = cy = (50 / 200) * 28  # the head's peak on the 28×28 map grid
    maps[0] = (255 * np.exp(-((gx + 0.5 - cx) ** 2 + (gy + 0.5 - cy) ** 2) / 8.0)).astype(np.uint8)
    classes = (ClassResult("head", 0.93, True, PEAK, (125, 75, 175, 125)),
               ClassResult("spine", 0.12, False, None, None))
    t = time.monotonic_ns()
    return FrameResult(stream, seq, None, SHAPE, classes, Timing(t, t + 1, t + 1, t + 2, t + 3, t + 4),
                       maps, image=image, crop=CROP)
