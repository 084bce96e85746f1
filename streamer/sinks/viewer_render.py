"""What the live viewer shows of one result: a downscaled JPEG of the frame, one RGBA heat-map
overlay per present class (its fixed colour, warped from the model's grid onto the frame), and
peaks, boxes and scores in display pixels. Pure numpy/OpenCV, so it is tested without a browser."""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import lru_cache

import cv2
import numpy as np

from streamer.frames import FrameResult

# One fixed colour per region (Okabe-Ito, colour-blind safe); other names take the spare ones.
CLASS_COLOURS = {
    "head": "#E69F00", "spine": "#56B4E9", "thorax": "#009E73", "abdomen": "#F0E442",
    "limbs": "#0072B2", "placenta": "#D55E00", "background": "#999999",
}
SPARE_COLOURS = ("#CC79A7", "#FFFFFF", "#8C564B", "#17BECF")
OVERLAY_ALPHA = 0.55  # opacity of a class's overlay where its map is at its peak
# PNG's "up" filter alone, not the adaptive choice among all five: a smooth overlay comes out as
# small, in a third of the time (0.9 vs 2.6 ms for a 480x270 one); OpenCV < 4.11 lacks the flag
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1] + (
    [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP] if hasattr(cv2, "IMWRITE_PNG_FILTER") else [])


def class_colour(name: str, index: int) -> str:
    return CLASS_COLOURS.get(name.lower(), SPARE_COLOURS[index % len(SPARE_COLOURS)])


def colour_rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def display_size(shape: tuple[int, int], max_width: int) -> tuple[int, int, float]:
    """(width, height, scale) of the downscaled frame (never upscaled)."""
    h, w = shape
    scale = min(1.0, max_width / w)
    return max(1, round(w * scale)), max(1, round(h * scale)), scale


def _model_coords(crop, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Source pixels → model-input coordinates (u across, v down) and the model grid's size."""
    polar = getattr(crop, "polar", None)
    if polar is not None:
        u, v = polar.image_to_polar(xs - crop.x, ys - crop.y)
        return u, v, polar.width, polar.height
    return (xs - crop.x) * crop.size / crop.w, (ys - crop.y) * crop.size / crop.h, crop.size, crop.size


@lru_cache(maxsize=8)
def warp_tables(crop, size: tuple[int, int], scale: float, grid: tuple[int, int]):
    """cv2.remap tables: for each display pixel, where it lies on a class map of shape ``grid``."""
    w, h = size
    xs = (np.arange(w, dtype=np.float64)[None, :] + 0.5) / scale
    ys = (np.arange(h, dtype=np.float64)[:, None] + 0.5) / scale
    xs, ys = np.broadcast_to(xs, (h, w)), np.broadcast_to(ys, (h, w))
    u, v, gw, gh = _model_coords(crop, xs, ys)
    map_x = (u * grid[1] / gw - 0.5).astype(np.float32)
    map_y = (v * grid[0] / gh - 0.5).astype(np.float32)
    return map_x, map_y


def overlay_rgba(class_map: np.ndarray, crop, size: tuple[int, int], scale: float,
                 colour: str) -> np.ndarray:
    """An RGBA image of the display size: ``colour`` with opacity following the map (uint8)."""
    map_x, map_y = warp_tables(crop, size, scale, class_map.shape)
    warped = cv2.remap(class_map, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                       borderValue=0)
    rgba = np.empty((size[1], size[0], 4), np.uint8)
    rgba[..., :3] = colour_rgb(colour)
    rgba[..., 3] = (warped.astype(np.float32) * OVERLAY_ALPHA).astype(np.uint8)
    return rgba


def _b64(ext: str, image: np.ndarray, params: list[int]) -> str:
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise ValueError(f"cannot encode {ext}")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def frame_jpeg(image: np.ndarray, size: tuple[int, int], quality: int) -> bytes:
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("cannot encode the frame as JPEG")
    return buf.tobytes()


def render(result: FrameResult, threshold_for: Callable[[str], float | None], *, max_width: int = 480,
           quality: int = 70) -> tuple[dict, bytes]:
    """The viewer's message for one result (JSON-ready) and the frame's JPEG bytes."""
    w, h, scale = display_size(result.frame_shape, max_width)
    jpeg = frame_jpeg(result.image, (w, h), quality) if result.image is not None else b""
    classes = []
    for i, c in enumerate(result.classes):
        colour = class_colour(c.name, i)
        entry = {"name": c.name, "score": round(float(c.score), 4), "present": bool(c.present),
                 "threshold": threshold_for(c.name), "colour": colour, "peak": None, "box": None,
                 "overlay": None}
        if c.present and c.peak is not None:
            entry["peak"] = [round(c.peak[0] * scale, 1), round(c.peak[1] * scale, 1)]
            entry["peak_src"] = list(c.peak)
        if c.present and c.box is not None:
            entry["box"] = [round(v * scale, 1) for v in c.box]
        if c.present and result.maps is not None and result.crop is not None:
            rgba = overlay_rgba(result.maps[i], result.crop, (w, h), scale, colour)
            entry["overlay"] = _b64(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA), PNG_PARAMS)
        classes.append(entry)
    message = {"stream": result.stream, "seq": int(result.seq), "width": w, "height": h,
               "source": [int(result.frame_shape[1]), int(result.frame_shape[0])],
               "jpeg": base64.b64encode(jpeg).decode("ascii"), "classes": classes,
               "latency_ms": result.timing.latency_ms()}
    return message, jpeg


# -- where the page puts each region's label (the twin of placeLabels in viewer_page.html) -------
# A label goes just above its box's top edge, or just below its bottom edge when there is no
# room; when that place is taken by an earlier label (or lies off the canvas) it moves sideways
# or a row further out, to the nearest free place. It never covers its own box or an earlier
# label; covering another box costs as much as moving two label heights further out. Pure
# arithmetic, so the page and Python give the same places (the viewer tests compare the two).

Rect = tuple[float, float, float, float]  # x0, y0, x1, y1


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _clamp(v: float, lo: float, hi: float) -> float:
    return max(lo, min(v, hi))


def _label_xs(anchor: Rect, w: float, width: float, placed: list[Rect], gap: float) -> list[float]:
    """Left edges to try: the box's left or right edge, or beside an earlier label."""
    xs = [anchor[0], anchor[2] - w]
    for p in placed:
        xs += [p[2] + gap, p[0] - gap - w]
    return sorted({_clamp(x, 0.0, max(0.0, width - w)) for x in xs})


def label_candidates(anchor: Rect, size: tuple[float, float], bounds: tuple[float, float],
                     placed: list[Rect], gap: float = 2.0) -> list[tuple[float, float, float]]:
    """(cost, x, y) of each place on the canvas, nearest first: x, y the label's top-left corner,
    cost its distance from just above the box's left end (below costs half a label height more)."""
    (w, h), (width, height) = size, bounds
    found = []
    for x in _label_xs(anchor, w, width, placed, gap):
        for k in range(int(height / (h + gap)) + 1):  # as Math.floor in the page
            for side, y in ((0, anchor[1] - gap - h - k * (h + gap)), (1, anchor[3] + gap + k * (h + gap))):
                if 0 <= y <= height - h:
                    found.append((k * (h + gap) + abs(x - anchor[0]) + side * h / 2, k, side, x, y))
    return [(cost, x, y) for cost, _, _, x, y in sorted(found)]


def _pick(cands: list, size: tuple[float, float], placed: list[Rect], others: list[Rect]):
    """The cheapest place clear of earlier labels, each other box it covers costing 2 heights."""
    w, h = size
    best, best_cost = None, 0.0
    for cost, x, y in cands:
        rect = (x, y, x + w, y + h)
        if any(_overlap(rect, p) for p in placed):
            continue
        cost += 2 * h * sum(_overlap(rect, o) for o in others)
        if best is None or cost < best_cost:
            best, best_cost = (x, y), cost
    return best


def place_labels(anchors: list[Rect], sizes: list[tuple[float, float]], bounds: tuple[float, float],
                 gap: float = 2.0) -> list[tuple[float, float]]:
    """The top-left corner of each label, in order (earlier labels keep the better places).
    ``anchors``: each label's box (x0, y0, x1, y1), or a small square round its peak marker;
    ``sizes``: (width, height); ``bounds``: the canvas (width, height). With no free place at all
    (a box as tall as the canvas), the label sits inside its box's top-left corner."""
    placed: list[Rect] = []
    out = []
    for i, (anchor, size) in enumerate(zip(anchors, sizes, strict=True)):
        others = [a for j, a in enumerate(anchors) if j != i]
        cands = label_candidates(anchor, size, bounds, placed, gap)
        pick = _pick(cands, size, placed, others) or (anchor[0] + gap, anchor[1] + gap)
        placed.append((pick[0], pick[1], pick[0] + size[0], pick[1] + size[1]))
        out.append(pick)
    return out
