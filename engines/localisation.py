"""From a class map to a peak and a box in image pixels (shared by evaluation and the streamer)."""

from __future__ import annotations

import math

import cv2
import numpy as np

DEFAULT_BOX_FRACTION = 0.5


def upsample(class_map: np.ndarray, width: int, height: int) -> np.ndarray:
    """A [h, w] map resized to [height, width], each cell's value at its centre (bilinear)."""
    return cv2.resize(class_map.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def locate(class_map: np.ndarray, size: int, fraction: float = DEFAULT_BOX_FRACTION):
    """Peak (x, y) and box (x0, y0, x1, y1) of a [h, w] map over a size×size image, in pixels.

    The map is upsampled to a grid of 4 cells per map cell (finer adds nothing but time); the box
    is the connected region holding the peak that lies above ``fraction`` of the way from
    max(min, 0) to the peak. A map whose peak is not positive, or a flat map, has no box.
    """
    h, w = class_map.shape
    grid = min(size, 4 * max(h, w))
    k = size / grid
    up = cv2.resize(np.asarray(class_map, np.float32), (grid, grid), interpolation=cv2.INTER_LINEAR)
    v, u = np.unravel_index(int(np.argmax(up)), up.shape)
    peak_xy = ((u + 0.5) * k, (v + 0.5) * k)
    top, low = float(up[v, u]), max(float(up.min()), 0.0)
    if not math.isfinite(top) or top <= 0 or top - low <= 1e-12 * max(abs(top), 1.0):
        return peak_xy, None
    mask = (up >= low + fraction * (top - low)).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    bx, by, bw, bh, _ = stats[labels[v, u]]
    return peak_xy, (bx * k, by * k, (bx + bw) * k, (by + bh) * k)


def iou(a, b) -> float:
    if a is None or b is None:
        return 0.0
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def inside(point: tuple[int, int], b) -> bool:
    return b[0] <= point[0] < b[2] and b[1] <= point[1] < b[3]
