"""A kept frame's pictures: the source frame cropped to the fan rectangle, and the same with one
region's class map (its viewer colour, opacity following the map), box and peak drawn."""

from __future__ import annotations

import cv2
import numpy as np

from streamer.crop import Crop
from streamer.frames import FrameResult
from streamer.sinks.viewer_render import OVERLAY_ALPHA, class_colour, colour_rgb

STEP = 4  # source pixels between the points where the map is looked up


def fan_rect(image: np.ndarray, crop: Crop) -> tuple[int, int, int, int]:
    """The crop's rectangle clipped to the frame: x0, y0, x1, y1."""
    h, w = image.shape[:2]
    x0, y0 = min(max(0, crop.x), w - 1), min(max(0, crop.y), h - 1)
    return x0, y0, max(x0 + 1, min(w, crop.x + crop.w)), max(y0 + 1, min(h, crop.y + crop.h))


def fan_crop(result: FrameResult) -> np.ndarray:
    """The source frame's fan rectangle (grey or BGR, as the source gave it), a copy."""
    x0, y0, x1, y1 = fan_rect(result.image, result.crop)
    return np.ascontiguousarray(result.image[y0:y1, x0:x1])


def _map_on_crop(class_map: np.ndarray, crop: Crop, rect) -> np.ndarray:
    """The class map (model grid) resampled onto the pixels of ``rect`` (float32 0..1): looked up
    every STEP pixels through the crop's geometry, then resized (a map has a few dozen cells)."""
    x0, y0, x1, y1 = rect
    w, h = x1 - x0, y1 - y0
    gw_px, gh_px = max(2, -(-w // STEP)), max(2, -(-h // STEP))
    xs = x0 + (np.arange(gw_px, dtype=np.float64)[None, :] + 0.5) * (w / gw_px)
    ys = y0 + (np.arange(gh_px, dtype=np.float64)[:, None] + 0.5) * (h / gh_px)
    xs, ys = np.broadcast_to(xs, (gh_px, gw_px)), np.broadcast_to(ys, (gh_px, gw_px))
    polar = getattr(crop, "polar", None)
    if polar is not None:
        u, v = polar.image_to_polar(xs - crop.x, ys - crop.y)
        gw, gh = polar.width, polar.height
    else:
        u, v = (xs - crop.x) * crop.size / crop.w, (ys - crop.y) * crop.size / crop.h
        gw = gh = crop.size
    rows, cols = class_map.shape
    map_x = (u * cols / gw - 0.5).astype(np.float32)
    map_y = (v * rows / gh - 0.5).astype(np.float32)
    coarse = cv2.remap(class_map.astype(np.float32) / 255, map_x, map_y, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)


def region_overlay(result: FrameResult, index: int) -> np.ndarray:
    """The fan crop (BGR) with class ``index``'s map, box, peak and score drawn."""
    rect = fan_rect(result.image, result.crop)
    x0, y0 = rect[:2]
    base = fan_crop(result)
    out = cv2.cvtColor(base, cv2.COLOR_GRAY2BGR) if base.ndim == 2 else base.copy()
    c = result.classes[index]
    r, g, b = colour_rgb(class_colour(c.name, index))
    colour = (b, g, r)
    if result.maps is not None:
        alpha = _map_on_crop(result.maps[index], result.crop, rect) * OVERLAY_ALPHA
        tint = np.empty_like(out)
        tint[:] = colour
        out = cv2.blendLinear(out, tint, 1 - alpha, alpha)
    thick = max(1, round(max(out.shape[:2]) / 400))
    if c.box is not None:
        cv2.rectangle(out, (round(c.box[0] - x0), round(c.box[1] - y0)),
                      (round(c.box[2] - x0), round(c.box[3] - y0)), colour, thick, cv2.LINE_AA)
    if c.peak is not None:
        cv2.drawMarker(out, (round(c.peak[0] - x0), round(c.peak[1] - y0)), colour,
                       cv2.MARKER_CROSS, 12 * thick, 2 * thick, cv2.LINE_AA)
    cv2.putText(out, f"{c.name} {c.score:.2f}", (6 * thick, 18 * thick), cv2.FONT_HERSHEY_SIMPLEX,
                0.5 * thick, colour, thick, cv2.LINE_AA)
    return out
