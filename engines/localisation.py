"""From a class map to a peak and a box in image pixels (shared by evaluation and the streamer)."""

from __future__ import annotations

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
    peaks, boxes, has_box = locate_all(np.asarray(class_map)[None], size, fraction)
    peak = (float(peaks[0, 0]), float(peaks[0, 1]))
    return peak, (tuple(float(v) for v in boxes[0]) if has_box[0] else None)


def locate_all(maps: np.ndarray, size: int, fraction: float = DEFAULT_BOX_FRACTION):
    """:func:`locate` for every class map [C, h, w] at once, in a handful of OpenCV and numpy
    calls: peaks [C, 2], boxes [C, 4] and has_box [C] (False: the row of boxes is meaningless).

    One resize upsamples all maps (as channels); the C threshold masks are laid side by side,
    one empty column apart, so one connected-components pass labels them all.
    """
    maps = np.asarray(maps, np.float32)
    c, h, w = maps.shape
    grid = min(size, 4 * max(h, w))
    k = size / grid
    up = cv2.resize(np.ascontiguousarray(maps.transpose(1, 2, 0)), (grid, grid),
                    interpolation=cv2.INTER_LINEAR).reshape(grid, grid, c)
    up = np.ascontiguousarray(up.transpose(0, 2, 1))  # [grid rows, C, grid columns]: the tiles
    flat = up.transpose(1, 0, 2).reshape(c, grid * grid)
    at = np.argmax(flat, axis=1)
    v, u = np.divmod(at, grid)
    classes = np.arange(c)
    top, low = flat[classes, at], np.maximum(flat.min(axis=1), 0.0)
    peaks = np.stack([(u + 0.5) * k, (v + 0.5) * k], axis=1)
    with np.errstate(invalid="ignore"):
        has_box = np.isfinite(top) & (top > 0) & (top - low > 1e-12 * np.maximum(np.abs(top), 1.0))
        level = (low + fraction * (top - low)).astype(np.float32)
        tiles = np.zeros((grid, c, grid + 1), np.uint8)
        np.greater_equal(up, level[None, :, None], out=tiles[:, :, :grid], casting="unsafe")
    _, labels, stats, _ = cv2.connectedComponentsWithStats(tiles.reshape(grid, c * (grid + 1)),
                                                           connectivity=8)
    bx, by, bw, bh = stats[labels[v, classes * (grid + 1) + u], :4].T.astype(np.float64)
    bx -= classes * (grid + 1)
    boxes = np.stack([bx * k, by * k, (bx + bw) * k, (by + bh) * k], axis=1)
    return peaks, boxes, has_box


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
