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
            entry["overlay"] = _b64(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA),
                                    [cv2.IMWRITE_PNG_COMPRESSION, 1])
        classes.append(entry)
    message = {"stream": result.stream, "seq": int(result.seq), "width": w, "height": h,
               "source": [int(result.frame_shape[1]), int(result.frame_shape[0])],
               "jpeg": base64.b64encode(jpeg).decode("ascii"), "classes": classes,
               "latency_ms": result.timing.latency_ms()}
    return message, jpeg
