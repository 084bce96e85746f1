"""Scanner screen → model input: find the ultrasound fan, crop its bounding rectangle, grey,
resize (INTER_AREA, as the training images were made) and scale to float32 [0, 1].

With ``polar`` on, a curvilinear sector is instead resampled to polar (beam-space) form, as the
paper trained (`engines.polar`). The crop geometry travels with the tensor so postprocess can map
peaks and boxes back to source pixels.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import cv2
import numpy as np

from engines.input_recipe import SONOSTREAM, InputRecipe
from engines.polar import PolarMap, estimate_geometry
from streamer.config import PreprocessConfig
from streamer.frames import Frame, InvalidFrame

log = logging.getLogger(__name__)
Rect = tuple[int, int, int, int]  # x, y, w, h


@dataclass(frozen=True)
class Crop:
    """The source rectangle (x, y, w, h) that was resized to ``size``×``size``."""

    x: int
    y: int
    w: int
    h: int
    size: int

    def to_source(self, u: float, v: float) -> tuple[float, float]:
        """Model-input coordinates (continuous, pixel edges at integers) → source pixels."""
        return self.x + u * self.w / self.size, self.y + v * self.h / self.size

    def box_to_source(self, box) -> tuple[float, float, float, float]:
        """Model-input box (x0, y0, x1, y1) → source pixels."""
        (x0, y0), (x1, y1) = self.to_source(box[0], box[1]), self.to_source(box[2], box[3])
        return x0, y0, x1, y1


@dataclass(frozen=True)
class PolarCrop(Crop):
    """A crop resampled to polar form: model input (angle across, depth down) → sector pixels
    within the crop → source pixels."""

    polar: PolarMap | None = None

    def to_source(self, u: float, v: float) -> tuple[float, float]:
        x, y = self.polar.polar_to_image(u, v)
        return self.x + float(x), self.y + float(y)

    def box_to_source(self, box) -> tuple[float, float, float, float]:
        """A polar box is an annular sector in the image: its bounding box, in source pixels."""
        x0, y0, x1, y1 = self.polar.box_to_image(box)
        return self.x + x0, self.y + y0, self.x + x1, self.y + y1


@dataclass
class Prepared:
    tensor: np.ndarray  # float32 [1, 1, S, S] in [0, 1]
    crop: Crop


def _grey(image: np.ndarray) -> np.ndarray:
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


def find_fan(image: np.ndarray, threshold: int = 8, scale: int = 4) -> Rect | None:
    """The fan's rectangle on a scanner screen: the largest bright, speckled region, grown to the
    black image area around it where the screen has one (a scanner pastes its whole image, the
    fan nearly filling it, onto a lighter UI background).

    Coarse on a copy shrunk ``scale`` times (opening removes thin UI text), then refined at full
    resolution so the edges are pixel-accurate.
    """
    grey = _grey(image)
    H, W = grey.shape
    small = cv2.resize(grey, (max(1, W // scale), max(1, H // scale)), interpolation=cv2.INTER_AREA)
    bg = float(np.median(small[::2, ::2]))  # the UI background covers most of a screen
    bright = bg + threshold
    fan = _fan_component(grey, small, bright, scale)
    if fan is None:
        return None
    dark = bg / 2 if bg >= threshold else -1.0  # an image area darker than the UI, if any
    region = _grow_into_dark(fan, small, dark) if dark > 0 else fan
    return _refine(grey, region, scale, bright, dark)


def _fan_component(grey, small, bright: float, scale: int) -> np.ndarray | None:
    mask = (small > bright).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    order = sorted(range(1, count), key=lambda i: -stats[i, cv2.CC_STAT_AREA])
    for i in order[:4]:
        x, y, w, h, area = (int(v) for v in stats[i])
        if area < 0.002 * small.size:
            break
        if _speckled(grey, (x * scale, y * scale, w * scale, h * scale), bright):
            return _merge_inside(labels, stats, i, count)
    return None


def _merge_inside(labels: np.ndarray, stats: np.ndarray, main: int, count: int) -> np.ndarray:
    """The main component plus sizeable pieces inside its box (dark fluid can split a fan)."""
    x, y, w, h, area = stats[main]
    keep = labels == main
    for j in range(1, count):
        jx, jy, jw, jh, jarea = stats[j]
        inside = jx >= x - 2 and jy >= y - 2 and jx + jw <= x + w + 2 and jy + jh <= y + h + 2
        if j != main and inside and jarea >= 0.02 * area:
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
    H, W = grey.shape
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
    main = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    big = stats[main, cv2.CC_STAT_AREA]
    parts = [stats[j] for j in range(1, count) if j == main or (
        stats[j, 4] >= 0.005 * big and stats[j, 4] >= 4 * (stats[j, 2] + stats[j, 3]))]
    x0 = min(p[0] for p in parts)
    y0 = min(p[1] for p in parts)
    x1 = max(p[0] + p[2] for p in parts)
    y1 = max(p[1] + p[3] for p in parts)
    ox, oy = cx0 * scale, cy0 * scale
    return int(ox + x0), int(oy + y0), int(x1 - x0), int(y1 - y0)


def _moved(a: Rect, b: Rect, tolerance: int) -> bool:
    return any(abs(p - q) > tolerance for p, q in zip(a, b, strict=True))


WARMUP_DETECTIONS = 7  # the fan is looked for again after 1, 2, 4 ... 64 frames, then periodically
FIT_SIDE = 400  # the sector is fitted on a fan mask subsampled to about this size
FIT_EVERY = 5  # frames between fit attempts while the sector is not known
FIT_FRAMES = 90  # frames of evidence before concluding the fan is no sector (a linear probe)


class SectorFitter:
    """The polar map of the fan's sector, fitted once per fan position on the union of the fan
    pixels seen so far: one frame can hide much of the fan (acoustic shadow, fluid), a few frames
    of a moving probe do not. The mask is subsampled (nearest, so edges are not blurred outwards):
    on a 1080p screen's fan a fit takes 7 ms instead of 80, within 2 px of the full-resolution fit.
    """

    def __init__(self, size: int, threshold: int, retry_after: int = 150,
                 recipe: InputRecipe = SONOSTREAM):
        self.size, self.threshold, self.retry_after = size, threshold, retry_after
        self.recipe = recipe  # the model's: the release crops its polar frames to a ratio
        self.rect: Rect | None = None
        self.map: PolarMap | None = None
        self.seen: np.ndarray | None = None
        self.frames = 0

    def __call__(self, rect: Rect, grey: np.ndarray) -> PolarMap | None:
        if rect != self.rect:
            self.rect, self.map, self.seen, self.frames = rect, None, None, 0
        if self.map is not None:
            return self.map
        self.frames += 1
        if self.frames > FIT_FRAMES:  # no sector here: plain crops, and a fresh look later
            if self.frames > FIT_FRAMES + self.retry_after:
                self.seen, self.frames = None, 0
            return None
        k = max(1, int(np.ceil(max(grey.shape) / FIT_SIDE)))
        bg = float(np.median(grey[[0, 0, -1, -1], [0, -1, 0, -1]]))  # the corners lie outside
        mask = (grey > bg + self.threshold)[::k, ::k]
        self.seen = mask if self.seen is None else self.seen | mask
        if self.frames % FIT_EVERY == 1:
            self._fit(k)
        return self.map

    def _fit(self, k: int) -> None:
        g = estimate_geometry(self.seen)
        if g is not None:
            g = dataclasses.replace(g, apex=(g.apex[0] * k, g.apex[1] * k), r_min=g.r_min * k,
                                    r_max=g.r_max * k)
            self.map = PolarMap(self.recipe.polar_geometry(g), self.size)
            log.info("polar resampling after %d frame(s): %s", self.frames, g)
        elif self.frames + FIT_EVERY > FIT_FRAMES:
            log.warning("the fan is not a curvilinear sector; cropping without polar resampling")


class Preprocessor:
    """Stage: Frame → Prepared (model tensor + crop geometry)."""

    def __init__(self, config: PreprocessConfig, input_size: int, tolerance: int = 3,
                 recipe: InputRecipe = SONOSTREAM):
        self.config, self.recipe = config, recipe
        self.size = input_size
        self.tolerance = tolerance
        self.roi: Rect | None = None
        self._since_detect = 0
        self._tried = False
        self._detections = 0
        self._seen: np.ndarray | None = None  # fading max of the screens detection looked at
        self._out = np.empty((1, 1, input_size, input_size), np.float32)
        self._fitter = SectorFitter(input_size, config.threshold, config.redetect_every or 150,
                                    recipe)
        self._area, self._area_map = None, None  # the source's scan area and its polar map

    def process(self, frame: Frame) -> Prepared:
        image = frame.image
        if image.ndim not in (2, 3) or image.shape[0] < 2 or image.shape[1] < 2:
            raise InvalidFrame(f"frame {frame.seq} has unusable shape {image.shape}")
        area = frame.area if self.config.mode == "auto" else None  # the scanner's own crop
        x, y, w, h = self._roi(image) if area is None else self._area_rect(area, image)
        grey = _grey(image[y : y + h, x : x + w])
        pmap = None
        if self.config.representation == "polar":
            pmap = self._polar((x, y, w, h), grey) if area is None else self._area_polar(area)
        if pmap is None:
            cx, cy, w, h = self.recipe.crop_rect((0, 0, w, h))  # the recipe's aspect, if any
            small = cv2.resize(grey[cy : cy + h, cx : cx + w], (self.size, self.size),
                               interpolation=cv2.INTER_AREA)
            crop = Crop(x + cx, y + cy, w, h, self.size)
        else:
            small, crop = pmap.to_polar(grey), PolarCrop(x, y, w, h, self.size, pmap)
        out = np.empty_like(self._out)  # fresh: the tensor may outlive this call
        self.recipe.to_input(small, out[0, 0])  # v / 255, or the release's min-max
        return Prepared(out, crop)

    @staticmethod
    def _area_rect(area, image: np.ndarray) -> Rect:
        x, y, w, h = area.rect
        if x + w > image.shape[1] or y + h > image.shape[0]:
            raise InvalidFrame(f"scan area {area.rect} lies outside the {image.shape[1]}x"
                               f"{image.shape[0]} frame")
        return x, y, w, h

    def _area_polar(self, area) -> PolarMap | None:
        """The polar map of the source's sector (made once per scan area; None: plain crop)."""
        if area is not self._area:
            self._area = area
            self._area_map = (None if area.sector is None else
                              PolarMap(self.recipe.polar_geometry(area.sector), self.size))
        return self._area_map

    def _polar(self, rect: Rect, grey: np.ndarray) -> PolarMap | None:
        """The sector's polar map; None (a plain crop) until it is known, or when the fan is no
        sector (e.g. a linear probe)."""
        if self.config.mode == "auto" and self.roi is None:
            return None  # no fan found: no sector to fit
        return self._fitter(rect, grey)

    def _roi(self, image: np.ndarray) -> Rect:
        H, W = image.shape[:2]
        mode = self.config.mode
        if mode == "full":
            return 0, 0, W, H
        if mode == "roi":
            x, y, w, h = self.config.roi
            if x + w > W or y + h > H:
                raise InvalidFrame(f"configured roi {self.config.roi} lies outside the {W}x{H} frame")
            return x, y, w, h
        self._since_detect += 1
        every = self.config.redetect_every
        if every and self._detections < WARMUP_DETECTIONS:  # look again after 1, 2, 4, 8... frames
            every = min(every, 1 << self._detections)
        due = bool(every) and self._since_detect >= every
        retry = self.roi is None and self._since_detect >= 15  # nothing found yet: try again soon
        if not self._tried or due or retry or (self.roi is not None and not self._fits(W, H)):
            self._detect(image)
        return self.roi or (0, 0, W, H)

    def _fits(self, W: int, H: int) -> bool:  # a smaller frame arrived: the old roi is void
        x, y, w, h = self.roi
        return x + w <= W and y + h <= H

    def _detect(self, image: np.ndarray) -> None:
        """Find the fan on the recent screens, not this one alone: acoustic shadows and fluid can
        blacken half a fan in one frame. Each look keeps the brighter of this screen and half of
        what was seen before, so a fan that moved fades out of it within a few looks."""
        self._since_detect, self._tried = 0, True
        self._detections += 1
        grey = _grey(image)
        if self._seen is None or self._seen.shape != grey.shape:
            self._seen = grey.copy()
        else:
            np.maximum(self._seen >> 1, grey, out=self._seen)
        found = find_fan(self._seen, self.config.threshold, self.config.detect_scale)
        if found is None:
            if self.roi is None:
                log.warning("no ultrasound fan found in the frame; using the whole frame")
            return
        if self.roi is None or not self._fits(*image.shape[1::-1]) or _moved(found, self.roi, self.tolerance):
            log.info("ultrasound fan at x=%d y=%d w=%d h=%d", *found)
            self.roi = found
