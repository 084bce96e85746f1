"""From a class map to a peak and a box in image pixels (shared by evaluation and the streamer)."""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_BOX_FRACTION = 0.5


def upsample(class_map: np.ndarray, width: int, height: int) -> np.ndarray:
    """A [h, w] map resized to [height, width], each cell's value at its centre (bilinear)."""
    return cv2.resize(class_map.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def peak(class_map: np.ndarray, width: int, height: int) -> tuple[int, int]:
    """(x, y) of the map's maximum in a [height, width] image."""
    up = upsample(class_map, width, height)
    y, x = np.unravel_index(int(np.argmax(up)), up.shape)
    return int(x), int(y)


def box(class_map: np.ndarray, width: int, height: int,
        fraction: float = DEFAULT_BOX_FRACTION) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1) of the region around the peak above fraction·peak.

    The map is shifted so its minimum is 0 first (CAM maps can be negative); a flat map has no box.
    """
    up = upsample(class_map, width, height)
    lo, hi = float(up.min()), float(up.max())
    if hi - lo <= 1e-12:
        return None
    mask = ((up - lo) >= fraction * (hi - lo)).astype(np.uint8)
    _, labels = cv2.connectedComponents(mask, connectivity=8)
    py, px = np.unravel_index(int(np.argmax(up)), up.shape)
    ys, xs = np.nonzero(labels == labels[py, px])
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


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
