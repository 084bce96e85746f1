"""Scanner screen → model input: find the ultrasound fan, crop its bounding rectangle, grey,
resize (INTER_AREA, as the training images were made) and scale to float32 [0, 1].

With ``polar`` on, a curvilinear sector is instead resampled to polar (beam-space) form, as the
paper trained (`engines.polar`). The crop geometry travels with the tensor so postprocess can map
peaks and boxes back to source pixels.

Per frame only the crop is touched: in polar mode shrunk by the model's own anti-aliasing filter
(its input recipe: 2×2 halvings of the BGR crop, greyed after, for the default model; INTER_AREA
for older ones) and remapped with tables built once per sector; plain crops are greyed and shrunk
with INTER_AREA. The filter is always the training images' own: filters that differ from it
changed a model's probabilities by up to 0.44 (`benchmarks/filter_check.py`). Finding the fan and
fitting the sector (:class:`FanTracker`) run apart from the served frames wherever the caller
lets them (the pipeline: on their own thread).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from engines.input_recipe import SONOSTREAM, InputRecipe
from engines.polar import PolarMap, estimate_geometry
from streamer.config import PreprocessConfig
from streamer.frames import Frame, InvalidFrame
from streamer.source_grid import LinearGrid, PolarGrid

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

    def points_to_source(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`to_source` for arrays of points."""
        return self.x + u * (self.w / self.size), self.y + v * (self.h / self.size)

    def boxes_to_source(self, boxes: np.ndarray) -> np.ndarray:
        """:meth:`box_to_source` for boxes [N, 4] at once."""
        x0, y0 = self.points_to_source(boxes[:, 0], boxes[:, 1])
        x1, y1 = self.points_to_source(boxes[:, 2], boxes[:, 3])
        return np.stack([x0, y0, x1, y1], axis=1)

    def source_grid(self, cells: int):
        """Tables that map a cells×cells grid's peaks and boxes to source pixels, built on first
        use and kept with the crop (a crop lives as long as its fan geometry)."""
        grids = self.__dict__.setdefault("_grids", {})  # not a field: no part of eq or replace
        if cells not in grids:
            grids[cells] = self._grid_type(self, cells)
        return grids[cells]

    _grid_type = LinearGrid


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

    def points_to_source(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.polar.polar_to_image(u, v)
        return self.x + x, self.y + y

    def boxes_to_source(self, boxes: np.ndarray) -> np.ndarray:
        return self.polar.boxes_to_image(boxes) + np.array([self.x, self.y, self.x, self.y], float)

    _grid_type = PolarGrid


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

    def resting(self) -> bool:
        """True while the fit has given up on this fan (no sector): the frame counts towards a
        fresh try, and no evidence is wanted until then."""
        if self.map is not None or self.frames <= FIT_FRAMES:
            return False
        self.frames += 1
        if self.frames > FIT_FRAMES + self.retry_after:
            self.seen, self.frames = None, 0
        return True

    def _fit(self, k: int) -> None:
        g = estimate_geometry(self.seen)
        if g is not None:
            g = dataclasses.replace(g, apex=(g.apex[0] * k, g.apex[1] * k), r_min=g.r_min * k,
                                    r_max=g.r_max * k)
            self.map = self.recipe.polar_map(g, self.size)
            log.info("polar resampling after %d frame(s): apex (%.0f, %.0f), radius %.0f-%.0f px, "
                     "beams %.1f° to %.1f°", self.frames, *g.apex, g.r_min, g.r_max,
                     math.degrees(g.angle_min), math.degrees(g.angle_max))
        elif self.frames + FIT_EVERY > FIT_FRAMES:
            log.warning("the fan is not a curvilinear sector; cropping without polar resampling")


@dataclass(frozen=True)
class Geometry:
    """Where the model input comes from on frames of one size: the source rectangle and, in polar
    mode, the sector's map (its resampling tables built when the geometry is made)."""

    shape: tuple[int, int]  # the frame's (height, width)
    crop: Crop


class FanTracker:
    """Finds the fan and fits its sector on its own cadence: the fan is looked for again after
    1, 2, 4 ... 64 frames of a new frame size, then every ``redetect_every`` frames; while a
    sector is being fitted, every frame is evidence. ``due`` runs on the hot path and only counts;
    ``look`` does the work and may run on another thread (the caller serialises looks)."""

    def __init__(self, config: PreprocessConfig, size: int, tolerance: int,
                 recipe: InputRecipe = SONOSTREAM):
        self.config, self.size, self.tolerance, self.recipe = config, size, tolerance, recipe
        self.reset()

    def reset(self) -> None:
        """A fresh start (a new frame size): nothing known, the fast start-up schedule again."""
        self.roi: Rect | None = None
        self.detections = 0
        self._since = 0
        self._seen: np.ndarray | None = None  # fading max of the screens detection looked at
        self.fitter = SectorFitter(self.size, self.config.threshold, self.config.redetect_every or 150,
                                   self.recipe)
        self._fitting = self.config.representation == "polar"

    def due(self) -> tuple[bool, bool] | None:
        """Called once per served frame: (detect, fit) when a look is due, else None."""
        self._since += 1
        every = self.config.redetect_every
        if every and self.detections < WARMUP_DETECTIONS:  # look again after 1, 2, 4, 8... frames
            every = min(every, 1 << self.detections)
        auto = self.config.mode == "auto"
        detect = auto and ((bool(every) and self._since >= every)
                           or (self.roi is None and self._since >= 15))  # none yet: retry soon
        fit = (self._fitting and self.fitter.map is None and (self.roi is not None or not auto)
               and not self.fitter.resting())
        if detect:
            self._since = 0
        return (detect, fit) if detect or fit else None

    def look(self, image: np.ndarray, detect: bool, fit: bool) -> Geometry:
        """Search for the fan (detect) and feed the sector fit (fit) on this frame."""
        H, W = image.shape[:2]
        if detect:
            self._detect(image)
        x, y, w, h = rect = self._rect(W, H)
        pmap = None
        if self._fitting and (self.roi is not None or self.config.mode != "auto"):
            pmap = self.fitter.map if not fit and self.fitter.rect == rect else self.fitter(
                rect, _grey(image[y : y + h, x : x + w]))
        if pmap is not None:
            pmap.prepare(h, w)  # the resampling tables, built here rather than on a served frame
            return Geometry((H, W), PolarCrop(x, y, w, h, self.size, pmap))
        return Geometry((H, W), Crop(x, y, w, h, self.size))

    def _rect(self, W: int, H: int) -> Rect:
        mode = self.config.mode
        if mode == "roi":
            x, y, w, h = self.config.roi
            if x + w > W or y + h > H:
                raise InvalidFrame(f"configured roi {self.config.roi} lies outside the {W}x{H} frame")
            return x, y, w, h
        if mode == "full" or self.roi is None:
            return 0, 0, W, H
        return self.roi

    def _detect(self, image: np.ndarray) -> None:
        """Find the fan on the recent screens, not this one alone: acoustic shadows and fluid can
        blacken half a fan in one frame. Each look keeps the brighter of this screen and half of
        what was seen before, so a fan that moved fades out of it within a few looks."""
        self.detections += 1
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
        if self.roi is None or _moved(found, self.roi, self.tolerance):
            log.info("ultrasound fan at x=%d y=%d w=%d h=%d", *found)
            self.roi = found


class Preprocessor:
    """Stage: Frame → Prepared (model tensor + crop geometry).

    The hot path (``process``) crops the frame by the current :class:`Geometry`, greys and
    resamples the crop with precomputed tables: no work on the whole frame. Finding the fan and
    fitting the sector happen in ``search``: inline on a frame of a new size (start-up, or the
    source changed its frame size: nothing valid to serve otherwise, and the fast start-up
    schedule begins again), otherwise wherever ``request_search`` sends it: inline by default,
    on a background thread in the pipeline, so a served frame never waits for a search.

    A frame that carries the scanner's own scan area (a DICOM ultrasound region) is cropped by
    it, with no search. A model's input recipe (the paper's release: polar frames cut to an
    aspect ratio, min-max scaling) shapes every geometry in ``model_crop`` and the scaling.
    """

    def __init__(self, config: PreprocessConfig, input_size: int, tolerance: int = 3,
                 recipe: InputRecipe = SONOSTREAM):
        self.config, self.recipe = config, recipe
        self.size = input_size
        self.tracker = FanTracker(config, input_size, tolerance, recipe)
        self.geometry: Geometry | None = None
        self._area, self._area_geometry = None, None  # the source's scan area and its geometry
        self.request_search = self.search  # (image, detect, fit) → None; the pipeline may replace
        self._lock = threading.Lock()  # one search at a time; a new frame size waits for it

    @classmethod
    def for_model(cls, config: PreprocessConfig, info) -> Preprocessor:
        """Frames as a model (its ModelInfo) takes them: its representation where the config says
        "model", its input size and its input recipe (crop, anti-aliasing shrink, scaling)."""
        if config.representation == "model":
            config = dataclasses.replace(config, representation=info.representation)
        return cls(config, info.input_size, recipe=info.recipe)

    @property
    def roi(self) -> Rect | None:
        """The fan's rectangle as last found (None: not found, or not looked for)."""
        return self.tracker.roi

    def process(self, frame: Frame) -> Prepared:
        image = frame.image
        if image.ndim not in (2, 3) or image.shape[0] < 2 or image.shape[1] < 2:
            raise InvalidFrame(f"frame {frame.seq} has unusable shape {image.shape}")
        if frame.area is not None and self.config.mode == "auto":  # the scanner's own crop
            return self._prepare(image, self._area_crop(frame.area, image))
        geometry = self.geometry
        if geometry is None or geometry.shape != image.shape[:2]:
            geometry = self._restart(image)
        else:
            due = self.tracker.due()
            if due is not None:  # inline, this frame is served with the result; else not
                self.request_search(image, *due)
                geometry = self.geometry
        return self._prepare(image, geometry.crop)

    def search(self, image: np.ndarray, detect: bool = True, fit: bool = True) -> None:
        """Look for the fan / feed the sector fit on this frame; the next frames use the result
        (a search on a frame of another size than the current one is void)."""
        with self._lock:
            current = self.geometry
            if current is not None and current.shape != image.shape[:2]:
                return
            self.geometry = self._model_geometry(self.tracker.look(image, detect, fit))

    def _restart(self, image: np.ndarray) -> Geometry:
        with self._lock:
            if self.geometry is not None:
                log.info("frame size changed to %dx%d: looking for the fan again",
                         image.shape[1], image.shape[0])
            self.tracker.reset()
            auto = self.config.mode == "auto"
            self.geometry = g = self._model_geometry(self.tracker.look(image, auto, True))
            return g

    def _area_crop(self, area, image: np.ndarray) -> Crop:
        """The crop of a source's scan area (its tables made once per area and frame size)."""
        H, W = image.shape[:2]
        g = self._area_geometry
        if area is not self._area or g is None or g.shape != (H, W):
            x, y, w, h = area.rect
            if x + w > W or y + h > H:
                raise InvalidFrame(f"scan area {area.rect} lies outside the {W}x{H} frame")
            crop = Crop(x, y, w, h, self.size)
            if self.config.representation == "polar" and area.sector is not None:
                pmap = self.recipe.polar_map(area.sector, self.size)
                pmap.prepare(h, w)
                crop = PolarCrop(x, y, w, h, self.size, pmap)
            g = Geometry((H, W), self.model_crop(crop))
            self._area, self._area_geometry = area, g
        return g.crop

    def _model_geometry(self, g: Geometry) -> Geometry:
        return dataclasses.replace(g, crop=self.model_crop(g.crop))

    def model_crop(self, crop: Crop) -> Crop:
        """The model's crop recipe on a plain crop (the release's aspect ratio; a polar crop was
        cut to it in its sector geometry already)."""
        if isinstance(crop, PolarCrop):
            return crop
        cx, cy, w, h = self.recipe.crop_rect((0, 0, crop.w, crop.h))
        return Crop(crop.x + cx, crop.y + cy, w, h, crop.size)

    def _prepare(self, image: np.ndarray, crop: Crop) -> Prepared:
        roi = image[crop.y : crop.y + crop.h, crop.x : crop.x + crop.w]
        if isinstance(crop, PolarCrop):  # BGR as it is: the model's shrink decides when to grey
            bgr = roi.ndim == 3 and roi.shape[2] == 3
            small = crop.polar.to_polar(roi if bgr else _grey(roi))
        else:
            small = cv2.resize(_grey(roi), (self.size, self.size), interpolation=cv2.INTER_AREA)
        out = np.empty((1, 1, self.size, self.size), np.float32)  # the tensor may outlive this call
        self.recipe.to_input(small, out[0, 0])  # v / 255, or the release's min-max
        return Prepared(out, crop)
