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

    Resizes upsample the maps four at a time (as channels); the C threshold masks are laid side
    by side, one empty column apart, so one connected-components pass labels them all.
    """
    maps = np.asarray(maps, np.float32)
    c, h, w = maps.shape
    grid = min(size, 4 * max(h, w))
    k = size / grid
    # resized 4 classes at a time: OpenCV's 4-channel path rounds exactly as its 1-channel one
    # (2, 5, 6... channels differ in the last bit), so a class's peak is the one locate() finds
    chunks = -(-c // 4)
    padded = np.zeros((4 * chunks, h, w), np.float32)
    padded[:c] = maps
    src = np.ascontiguousarray(padded.reshape(chunks, 4, h, w).transpose(0, 2, 3, 1))
    tiles = np.empty((grid, 4 * chunks, grid + 1), np.float32)  # [rows, class, columns + spacer]
    for j in range(chunks):
        up = cv2.resize(src[j], (grid, grid), interpolation=cv2.INTER_LINEAR)
        tiles[:, 4 * j : 4 * j + 4, :grid] = up.transpose(0, 2, 1)
    tiles = tiles[:, :c]
    tiles[:, :, grid] = tiles[:, :, grid - 1]  # a copy: changes no minimum, wins no argmax
    by_class = tiles.transpose(1, 0, 2).reshape(c, -1)
    at = np.argmax(by_class, axis=1)
    classes = np.arange(c)
    top, low = by_class[classes, at], np.maximum(by_class.min(axis=1), 0.0)
    v, u = np.divmod(at, grid + 1)
    with np.errstate(invalid="ignore"):
        has_box = np.isfinite(top) & (top > 0) & (top - low > 1e-12 * np.maximum(np.abs(top), 1.0))
        mask = (tiles >= (low + fraction * (top - low)).astype(np.float32)[:, None]).view(np.uint8)
    mask[:, :, grid] = 0  # the spacer keeps each class's components apart
    # Grana's block-based labelling: the same components, its statistics about 3× faster here
    _, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
        mask.reshape(grid, c * (grid + 1)), 8, cv2.CV_32S, cv2.CCL_BBDT)
    column = classes * (grid + 1)
    boxes = stats[labels[v, column + u], :4].astype(np.float64)
    boxes[:, 0] -= column
    boxes[:, 2:] += boxes[:, :2]
    boxes *= k
    peaks = (np.stack([u, v], axis=1) + 0.5) * k
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
