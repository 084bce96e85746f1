"""Where the fan is on a screen: where the screen moves (:class:`ScreenMotion`), or on a
still screen the largest bright, speckled, fan-shaped region (:func:`find_fan`)."""

from __future__ import annotations

import logging
from collections import deque

import cv2
import numpy as np

from streamer.config import PreprocessConfig
from streamer.crop import Rect
from streamer.frames import InvalidFrame

log = logging.getLogger(__name__)

MOTION_STEP = 6  # grey levels a shrunk pixel changes between looks to count as live image
MOTION_MEMORY = 4  # looks a pixel stays live evidence after it last changed
MIN_MOTION = 0.002  # live pixels, as a fraction of the screen, below which the screen is still
MIN_FAN = 0.002  # the smallest fan, as a fraction of the shrunk screen
MAX_ELONGATION = 4.0  # a component longer than this many times its width is a bar, not a fan
MIN_FILL = 0.25  # a fan covers at least this fraction of its bounding rectangle


def grey_of(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    raise InvalidFrame(f"frame must be grey [h,w] or BGR [h,w,3], got shape {image.shape}")


def _speckled(grey: np.ndarray, rect: Rect, bright: float, min_step: float = 3.0) -> bool:
    """Ultrasound has speckle: neighbouring bright pixels differ. Flat UI bars and panels (even
    with text on them) mostly do not."""
    x, y, w, h = rect
    patch = grey[y : y + h : 3, x : x + w].astype(np.int16)
    steps = np.abs(np.diff(patch, axis=1))[patch[:, 1:] > bright]
    return steps.size >= 100 and float(np.median(steps)) >= min_step


def _fan_shaped(w: int, h: int, area: int) -> bool:
    """Not a bar (the grey-scale bar, a UI strip) and not a thin outline."""
    return max(w, h) <= MAX_ELONGATION * min(w, h) and area >= MIN_FILL * w * h


def find_fan(image: np.ndarray, threshold: int = 8, scale: int = 4) -> Rect | None:
    """The fan's rectangle on one still screen: the largest bright, speckled, fan-shaped region,
    grown to the black image area around it where the screen has one (a scanner pastes its whole
    image, the fan nearly filling it, onto a lighter UI background).

    Coarse on a copy shrunk ``scale`` times (opening removes thin UI text), then refined at full
    resolution so the edges are pixel-accurate.
    """
    grey = grey_of(image)
    small = _shrunk(grey, scale)
    bg = _background(small)
    fan = _fan_component(grey, small, bg + threshold, scale)
    return None if fan is None else _fan_rect(grey, small, fan, bg, threshold, scale)


def _shrunk(grey: np.ndarray, scale: int) -> np.ndarray:
    H, W = grey.shape
    return cv2.resize(grey, (max(1, W // scale), max(1, H // scale)), interpolation=cv2.INTER_AREA)


def _background(small: np.ndarray) -> float:
    return float(np.median(small[::2, ::2]))  # the UI background covers most of a screen


def _fan_rect(grey, small, region: np.ndarray, bg: float, threshold: int, scale: int) -> Rect:
    """The full-resolution rectangle of a fan region found on the shrunk screen, grown to the
    black image area around it where the screen has one."""
    dark = bg / 2 if bg >= threshold else -1.0  # an image area darker than the UI, if any
    region = _grow_into_dark(region, small, dark) if dark > 0 else region
    return _refine(grey, region, scale, bg + threshold, dark)


def _components(mask: np.ndarray):
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    order = sorted(range(1, count), key=lambda i: -stats[i, cv2.CC_STAT_AREA])
    return count, labels, stats, order


def _fan_component(grey, small, bright: float, scale: int) -> np.ndarray | None:
    mask = (small > bright).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    count, labels, stats, order = _components(mask)
    for i in order[:4]:
        x, y, w, h, area = (int(v) for v in stats[i])
        if area < MIN_FAN * small.size:
            break
        if _fan_shaped(w, h, area) and _speckled(grey, (x * scale, y * scale, w * scale, h * scale),
                                                 bright):
            return _merge_inside(labels, stats, i, count)
    return None


def _merge_inside(labels: np.ndarray, stats: np.ndarray, main: int, count: int,
                  least: float = 0.02) -> np.ndarray:
    """The main component plus sizeable pieces inside its box (dark fluid can split a fan)."""
    x, y, w, h, area = stats[main]
    keep = labels == main
    for j in range(1, count):
        jx, jy, jw, jh, jarea = stats[j]
        inside = jx >= x - 2 and jy >= y - 2 and jx + jw <= x + w + 2 and jy + jh <= y + h + 2
        if j != main and inside and jarea >= least * area:
            keep |= labels == j
    return keep.astype(np.uint8)


def _grow_into_dark(fan: np.ndarray, small: np.ndarray, dark: float) -> np.ndarray:
    """The connected dark-or-fan area holding the fan (the scanner's image rectangle)."""
    area = ((small < dark) | (fan > 0)).astype(np.uint8)
    _, labels = cv2.connectedComponents(area, connectivity=8)
    ids, counts = np.unique(labels[fan > 0], return_counts=True)
    return (labels == ids[np.argmax(counts)]).astype(np.uint8)


def _refine(grey: np.ndarray, coarse: np.ndarray, scale: int, bright: float, dark: float) -> Rect:
    """Full-resolution box of the coarse region: the largest component of bright-or-dark pixels
    near it plus sizeable pieces that are not thin (a frame drawn round the image, a tick mark:
    their area is a few times their bounding box's half-perimeter)."""
    x, y, w, h = cv2.boundingRect(coarse)
    m = 2
    cx0, cy0 = max(0, x - m), max(0, y - m)
    cx1, cy1 = min(coarse.shape[1], x + w + m), min(coarse.shape[0], y + h + m)
    near = cv2.dilate(coarse, np.ones((3, 3), np.uint8))[cy0:cy1, cx0:cx1]
    near = cv2.resize(near, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    window = grey[cy0 * scale : cy1 * scale, cx0 * scale : cx1 * scale]
    near = near[: window.shape[0], : window.shape[1]]
    fine = (((window > bright) | (window < dark)) & (near > 0)).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(fine, connectivity=8)
    if count < 2:
        return x * scale, y * scale, w * scale, h * scale
    area = stats[:, cv2.CC_STAT_AREA]
    main = 1 + int(np.argmax(area[1:]))
    parts = [stats[j] for j in range(1, count) if j == main or (
        area[j] >= 0.005 * area[main]
        and area[j] >= 4 * (stats[j, cv2.CC_STAT_WIDTH] + stats[j, cv2.CC_STAT_HEIGHT]))]
    x0 = min(p[0] for p in parts)
    y0 = min(p[1] for p in parts)
    x1 = max(p[0] + p[2] for p in parts)
    y1 = max(p[1] + p[3] for p in parts)
    ox, oy = cx0 * scale, cy0 * scale
    return int(ox + x0), int(oy + y0), int(x1 - x0), int(y1 - y0)


class ScreenMotion:
    """Where the screen changes between looks, on a copy shrunk ``scale`` times: a pixel that
    changed by MOTION_STEP stays live evidence for MOTION_MEMORY looks. Text, marks, bars, panels
    and a frozen second view never change; the live fan does, all of it within a few looks (dark
    fluid moves with the probe)."""

    def __init__(self, scale: int, keep: int = 3):
        self.scale, self.keep = scale, keep  # keep: how many looks' changes ``recent`` holds
        self.reset()

    def reset(self) -> None:
        self.previous: np.ndarray | None = None
        self.live: np.ndarray | None = None  # uint8 looks left as evidence, per shrunk pixel
        self.recent: deque[np.ndarray] = deque(maxlen=self.keep)  # the last looks' changes alone

    def add(self, grey: np.ndarray) -> None:
        small = _shrunk(grey, self.scale)
        if self.previous is None or self.previous.shape != small.shape:
            self.previous, self.live = small, np.zeros(small.shape, np.uint8)
            return
        moved = cv2.absdiff(small, self.previous) >= MOTION_STEP
        self.live = cv2.subtract(self.live, 1)
        self.live[moved] = MOTION_MEMORY
        self.previous = small
        self.recent.append(moved)

    def moving(self) -> bool:
        return self.live is not None and np.count_nonzero(self.live) >= MIN_MOTION * self.live.size

    def fan(self) -> np.ndarray | None:
        """The largest fan-shaped live region (plus live pieces inside it) as a shrunk uint8
        mask; None when nothing fan-shaped moves."""
        if not self.moving():
            return None
        mask = (self.live > 0).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        count, labels, stats, order = _components(mask)
        for i in order[:4]:
            x, y, w, h, area = (int(v) for v in stats[i])
            if area < MIN_FAN * mask.size:
                break
            if _fan_shaped(w, h, area):
                return _merge_inside(labels, stats, i, count, 0.005)
        return None


def live_rect(grey: np.ndarray, small: np.ndarray, live: np.ndarray, config: PreprocessConfig
              ) -> Rect:
    """The full-resolution rectangle of a live region found on the shrunk screen, grown to the
    black image area around it as :func:`find_fan` grows a bright one."""
    return _fan_rect(grey, small, live, _background(small), config.threshold, config.detect_scale)
