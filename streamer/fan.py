"""Finding the ultrasound fan on a scanner screen and fitting its sector.

A real screen carries more than the fan: a body mark and measurement boxes inside the image area,
calipers, text and arrows on the image, a grey-scale bar, a black or a grey UI, a second (frozen)
view. What sets the live image apart from all of them is that it changes from frame to frame, so
the evidence for the fan is where the screen *moves*; brightness is the fallback only while the
screen has not moved (a still image, the first frame of a stream). A fan found from brightness
alone is never reported as settled.

Searches (:meth:`FanTracker.look`) run off the served frames; the per-frame work on the hot path
is :meth:`FanTracker.due` (counting) and :class:`EdgeWatch` (a few hundred pixel reads that notice
a depth or zoom change at once instead of at the next periodic search).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from engines.input_recipe import SONOSTREAM, InputRecipe
from engines.polar import PolarMap, SectorGeometry, estimate_geometry
from streamer.config import PreprocessConfig
from streamer.crop import Crop, FanReport, PolarCrop, Rect
from streamer.frames import InvalidFrame

log = logging.getLogger(__name__)

# -- when to look ------------------------------------------------------------------------------
WARMUP_DETECTIONS = 7  # after a new frame size or layout: looks after 1, 2, 4 ... 64 frames
RETRY_WITHOUT_FAN = 15  # frames between looks while no fan has been found at all
# -- motion evidence (on the screen shrunk detect_scale times) ---------------------------------
MOTION_STEP = 6  # grey levels a shrunk pixel changes between looks to count as live image
MOTION_MEMORY = 4  # looks a pixel stays live evidence after it last changed
MIN_MOTION = 0.002  # live pixels, as a fraction of the screen, below which the screen is still
# -- a fitted fan that no longer reaches its arc (a depth change shrank it about its apex) -----
WATCH_LOOK_EVERY = 4  # frames between looks at a fitted live fan
ARC_LOOKS = 3  # looks (12 frames) the live image must stay off the arc band to count as shrunk
ARC_BAND = (0.15, 0.02)  # the band inside the fitted arc, from/to these fractions of the depth
ARC_BEAMS = 16  # beams the band is cut into; in ordinary sweeps some beam's image moves in it
# -- fan shape ---------------------------------------------------------------------------------
MIN_FAN = 0.002  # the smallest fan, as a fraction of the shrunk screen
MAX_ELONGATION = 4.0  # a component longer than this many times its width is a bar, not a fan
MIN_FILL = 0.25  # a fan covers at least this fraction of its bounding rectangle
SEARCH_MARGIN = 0.03  # the sector is fitted in the found rectangle grown by this much of the screen
# -- sector fit (on the crop subsampled to about FIT_SIDE) -------------------------------------
FIT_SIDE = 400
FIT_EVERY = 3  # frames between fit attempts while the sector is not known
FIT_FRAMES = 90  # frames of evidence before concluding the fan is no sector (a linear probe)
FIT_STEP = 16  # grey levels a full-resolution pixel changes between frames to count as live
MIN_FIT_QUALITY = 0.6  # intersection over union of the fitted sector and the live evidence
# ... or, for a fan much of which is dark fluid (little of it live yet), the same sector on two
# attempts in a row with almost all the live evidence inside it
MIN_FIT_PRECISION = 0.98
# B-mode sectors of curvilinear and phased probes are symmetric about the probe's axis (straight
# down on a scanner's screen); a lopsided fit was made on part of the fan
MAX_ASYMMETRY = math.radians(3.0)


def grey_of(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    raise InvalidFrame(f"frame must be grey [h,w] or BGR [h,w,3], got shape {image.shape}")


# -- finding the fan ---------------------------------------------------------------------------
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

    def __init__(self, scale: int):
        self.scale = scale
        self.reset()

    def reset(self) -> None:
        self.previous: np.ndarray | None = None
        self.live: np.ndarray | None = None  # uint8 looks left as evidence, per shrunk pixel
        self.recent: deque[np.ndarray] = deque(maxlen=ARC_LOOKS)  # the last looks' changes alone

    def add(self, grey: np.ndarray) -> None:
        H, W = grey.shape
        s = self.scale
        small = cv2.resize(grey, (max(1, W // s), max(1, H // s)), interpolation=cv2.INTER_AREA)
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


# -- fitting the sector ------------------------------------------------------------------------
def sector_mask(g: SectorGeometry, shape: tuple[int, int]) -> np.ndarray:
    """bool [h, w]: the pixels whose centres lie in the sector."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    dx, dy = xs + 0.5 - g.apex[0], ys + 0.5 - g.apex[1]
    r, a = np.hypot(dx, dy), np.arctan2(dx, dy)
    return (r >= g.r_min) & (r <= g.r_max) & (a >= g.angle_min) & (a <= g.angle_max)


def fit_quality(g: SectorGeometry, evidence: np.ndarray) -> tuple[float, float]:
    """(intersection over union, precision) of the sector and the evidence (a mask on the
    sector's grid): how much of both they share, and how much of the evidence lies inside."""
    inside = sector_mask(g, evidence.shape)
    both, union = np.count_nonzero(inside & evidence), np.count_nonzero(inside | evidence)
    return (both / union if union else 0.0), both / max(np.count_nonzero(evidence), 1)


def _same_sector(a: SectorGeometry, b: SectorGeometry) -> bool:
    """Two fits of one sector: apex and radii within 2% of its radius, angles within 1°."""
    tol = 0.02 * max(a.r_max, b.r_max)
    return (max(abs(a.apex[0] - b.apex[0]), abs(a.apex[1] - b.apex[1]), abs(a.r_min - b.r_min),
                abs(a.r_max - b.r_max)) <= tol
            and max(abs(a.angle_min - b.angle_min), abs(a.angle_max - b.angle_max))
            <= math.radians(1.0))


class SectorFitter:
    """The polar map of the fan's sector, fitted once per fan position on the union of the fan
    pixels seen so far: one frame can hide much of the fan (acoustic shadow, fluid), a few frames
    of a moving probe do not. The evidence is the pixels that changed between frames (static
    marks, boxes and text beside the sector are never evidence), or, on a screen that has not
    moved, the pixels brighter than the background. A fit is kept when it explains the evidence
    (MIN_FIT_QUALITY, or MIN_FIT_PRECISION on two attempts that agree) and is symmetric
    (MAX_ASYMMETRY). The mask is subsampled (nearest, so edges are not blurred outwards): on a
    1080p screen's fan a fit takes 7 ms instead of 80, within 2 px of the full-resolution fit.
    """

    def __init__(self, size: int, threshold: int, retry_after: int = 150,
                 recipe: InputRecipe = SONOSTREAM):
        self.size, self.threshold, self.retry_after = size, threshold, retry_after
        self.recipe = recipe  # the model's: the release crops its polar frames to a ratio
        self.rect: Rect | None = None
        self.map: PolarMap | None = None
        self.quality: float | None = None
        self.frames = 0
        self.need_motion = False  # the screen moves: fit only on live evidence
        self._clear()

    def _clear(self) -> None:
        self.bright = self.live = self.previous = None
        self._tried: SectorGeometry | None = None  # the last attempt's sector
        self.frames = 0

    def __call__(self, rect: Rect, grey: np.ndarray) -> PolarMap | None:
        if rect != self.rect:
            self.rect, self.map, self.quality = rect, None, None
            self._clear()
        if self.map is not None:
            return self.map
        self.frames += 1
        if self.frames > FIT_FRAMES:  # no sector here: plain crops, and a fresh look later
            if self.frames > FIT_FRAMES + self.retry_after:
                self._clear()
            return None
        k = max(1, int(np.ceil(max(grey.shape) / FIT_SIDE)))
        sub = grey[::k, ::k]
        bg = float(np.median(grey[[0, 0, -1, -1], [0, -1, 0, -1]]))  # the corners lie outside
        bright = sub > bg + self.threshold
        self.bright = bright if self.bright is None else self.bright | bright
        if self.previous is not None and self.previous.shape == sub.shape:
            moved = cv2.absdiff(sub, self.previous) >= FIT_STEP
            self.live = moved if self.live is None else self.live | moved
        self.previous = sub.copy()
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
            self._clear()
        return True

    def evidence(self) -> np.ndarray | None:
        """The live pixels once the screen has moved enough to show a fan; the bright ones before."""
        live = self.live
        if live is not None and np.count_nonzero(live) >= 0.05 * live.size:
            return live
        return None if self.need_motion else self.bright

    def _fit(self, k: int) -> None:
        evidence = self.evidence()
        g = None if evidence is None else estimate_geometry(evidence)
        if g is None:
            if self.frames + FIT_EVERY > FIT_FRAMES:
                log.warning("the fan is not a curvilinear sector; cropping without polar resampling")
            return
        if abs(g.angle_min + g.angle_max) > MAX_ASYMMETRY:  # it saw part of the fan
            log.debug("sector fit %.1f° to %.1f° is lopsided; gathering more frames",
                      math.degrees(g.angle_min), math.degrees(g.angle_max))
            self._tried = None
            return
        quality, precision = fit_quality(g, evidence)
        held, self._tried = self._tried is not None and _same_sector(g, self._tried), g
        if quality < MIN_FIT_QUALITY and not (held and precision >= MIN_FIT_PRECISION):
            log.debug("sector fit explains %.2f of the fan; gathering more frames", quality)
            return
        g = dataclasses.replace(g, apex=(g.apex[0] * k, g.apex[1] * k), r_min=g.r_min * k,
                                r_max=g.r_max * k)
        self.map, self.quality = self.recipe.polar_map(g, self.size), quality
        log.info("polar resampling after %d frame(s): apex (%.0f, %.0f), radius %.0f-%.0f px, "
                 "beams %.1f° to %.1f°, fit %.2f", self.frames, *g.apex, g.r_min, g.r_max,
                 math.degrees(g.angle_min), math.degrees(g.angle_max), quality)


# -- noticing a layout change on every frame ---------------------------------------------------
WATCH_POINTS = 48  # pixels read per band (just inside the edge, just outside it, the middle)
WATCH_STEP = 16  # grey levels a watched pixel changes between frames to count as live
WATCH_FRAMES = 5  # frames the bands' live fractions are averaged over
GREW = 0.25  # live fraction just outside the fitted edge that means the fan now reaches there
SHRANK = 0.25  # live fraction just inside the edge, relative to the middle's, meaning it left


class EdgeWatch:
    """Reads WATCH_POINTS pixels per band on every frame: just outside each fitted edge (the far
    arc, the left and the right side: background, never live unless the fan grew or moved over
    it, or the fit fell short of a far field that was dark when it was made), just inside the
    edges, and the sector's middle (live while the probe scans; when the middle lives and the
    edges do not, the fan shrank or moved away from them). A frozen screen says nothing."""

    def __init__(self, g: SectorGeometry, origin: tuple[int, int], shape: tuple[int, int]):
        ox, oy = origin
        span, depth = g.angle_max - g.angle_min, g.r_max - g.r_min
        margin = max(6.0, 0.03 * depth)
        t = np.linspace(0.1, 0.9, WATCH_POINTS // 3)

        def edges(out: float) -> list[list]:
            da = out * margin / g.r_max  # the angle that is ``margin`` pixels at the far edge
            arc = [(g.angle_min + s * span, g.r_max + out * margin) for s in t]
            left = [(g.angle_min - da, g.r_min + s * depth) for s in t]
            right = [(g.angle_max + da, g.r_min + s * depth) for s in t]
            return [arc, left, right]

        middle = [(g.angle_min + a * span, g.r_min + r * depth) for a in (0.3, 0.5, 0.7)
                  for r in np.linspace(0.2, 0.8, WATCH_POINTS // 3)]
        inside = [p for edge in edges(-1.0) for p in edge]
        self.bands = [self._pixels(pts, g, ox, oy, shape)
                      for pts in (*edges(1.0), inside, middle)]
        self.previous: list[np.ndarray] | None = None
        self.history: list[tuple[float, ...]] = []

    @staticmethod
    def _pixels(points, g: SectorGeometry, ox: int, oy: int, shape) -> tuple[np.ndarray, np.ndarray]:
        a = np.array([p[0] for p in points])
        r = np.array([p[1] for p in points])
        x = np.floor(ox + g.apex[0] + r * np.sin(a)).astype(np.int64)
        y = np.floor(oy + g.apex[1] + r * np.cos(a)).astype(np.int64)
        ok = (x >= 0) & (x < shape[1]) & (y >= 0) & (y < shape[0])
        return y[ok], x[ok]

    def changed(self, image: np.ndarray) -> bool:
        """True when the fan no longer sits where it was fitted (after WATCH_FRAMES of evidence)."""
        plane = image if image.ndim == 2 else image[:, :, 1]  # green: the grey of a grey image
        values = [plane[ys, xs].astype(np.int16) for ys, xs in self.bands]
        previous, self.previous = self.previous, values
        if previous is None:
            return False
        self.history.append(tuple(
            float(np.mean(np.abs(v - p) >= WATCH_STEP)) if v.size else 0.0
            for v, p in zip(values, previous, strict=True)))
        if len(self.history) < WATCH_FRAMES:
            return False
        del self.history[:-WATCH_FRAMES]
        *outside, inside, middle = np.mean(self.history, axis=0)
        return bool(max(outside) >= GREW or (middle > 0.1 and inside < SHRANK * middle))


@dataclass(frozen=True)
class Geometry:
    """Where the model input comes from on frames of one size: the source rectangle and, in polar
    mode, the sector's map (its resampling tables built when the geometry is made), and how it
    was found."""

    shape: tuple[int, int]  # the frame's (height, width)
    crop: Crop
    report: FanReport


class FanTracker:
    """Finds the fan and fits its sector on its own cadence: the fan is looked for again after
    1, 2, 4 ... 64 frames of a new frame size or layout, then every ``redetect_every`` frames;
    while a sector is being fitted, every frame is evidence. ``due`` runs on the hot path and
    only counts and reads the watched edge pixels; ``look`` does the work and may run on another
    thread (the caller serialises looks).

    Two rectangles: ``roi``, the fan as last found (a plain crop's rectangle), and ``search``,
    where the sector is fitted: the live fan grown by SEARCH_MARGIN, kept while the fan found
    stays inside it so that the fit's evidence is not thrown away at every look. While a new fit
    gathers evidence, the last fitted sector is still served, marked unsettled."""

    def __init__(self, config: PreprocessConfig, size: int, tolerance: int,
                 recipe: InputRecipe = SONOSTREAM):
        self.config, self.size, self.tolerance, self.recipe = config, size, tolerance, recipe
        self.reset()

    def reset(self) -> None:
        """A fresh start (a new frame size): nothing known, the fast start-up schedule again."""
        self.roi: Rect | None = None
        self.search: Rect | None = None
        self.from_motion = False  # the roi was found where the screen moves
        self.relayouts = 0  # layout changes the edge watch noticed
        self._relayout = False  # one noticed on the hot path, for the next look to act on
        # the last fitted sector: its crop, map, fit quality, and the fitter's map it came from
        self._last: tuple[Rect, PolarMap, float | None, PolarMap | None] | None = None
        self._start_over()

    def _start_over(self) -> None:
        """Forget the evidence and the fit (a new frame size or layout); the last sector is
        served, marked unsettled, until the fan is fitted again."""
        self.detections = 0
        self._since = 0
        self._seen: np.ndarray | None = None  # fading max of the screens detection looked at
        self.motion = ScreenMotion(self.config.detect_scale)
        self._new_fitter()
        self.layout_changed = False

    def _new_fitter(self) -> None:
        self.fitter = SectorFitter(self.size, self.config.threshold,
                                   self.config.redetect_every or 150, self.recipe)
        self.fitter.need_motion = self.from_motion
        self.watch: EdgeWatch | None = None

    @property
    def _fitting(self) -> bool:
        return self.config.representation == "polar"

    def due(self, image: np.ndarray | None = None) -> tuple[bool, bool] | None:
        """Called once per served frame: (detect, fit) when a look is due, else None."""
        self._since += 1
        watch = self.watch
        if image is not None and watch is not None and watch.changed(image):
            self.watch, self._relayout = None, True
            self._since = 1 << 30  # look now
        every = self.config.redetect_every
        if every and self.detections < WARMUP_DETECTIONS:  # look again after 1, 2, 4, 8... frames
            every = min(every, 1 << self.detections)
        if self.watch is not None:  # a fitted live fan: does it still reach its arc?
            every = min(every or WATCH_LOOK_EVERY, WATCH_LOOK_EVERY)
        auto = self.config.mode == "auto"
        detect = auto and ((bool(every) and self._since >= every)
                           or (self.roi is None and self._since >= RETRY_WITHOUT_FAN))
        fit = (self._fitting and self.fitter.map is None and (self.roi is not None or not auto)
               and self.config.sector is None and not self.fitter.resting())
        if detect:
            self._since = 0
        return (detect, fit) if detect or fit else None

    def look(self, image: np.ndarray, detect: bool, fit: bool) -> Geometry:
        """Search for the fan (detect) and feed the sector fit (fit) on this frame."""
        H, W = image.shape[:2]
        if self._relayout:
            log.info("the fan's edges moved (a depth or zoom change?): looking for the fan again")
            self._relayout = False
            self.relayouts += 1
            self._start_over()
            self.layout_changed = True
        if detect:
            self._detect(image)
        fixed = self.config.sector_geometry()
        if fixed is not None and self._fitting:  # a scanner profile: nothing to fit
            x, y, w, h = self._rect(W, H)
            if self._last is None:
                self._last = ((x, y, w, h), self.recipe.polar_map(fixed, self.size), None, None)
                self._last[1].prepare(h, w)
            return Geometry((H, W), PolarCrop(x, y, w, h, self.size, self._last[1]),
                            FanReport("roi"))
        if self._fitting and (self.roi is not None or self.config.mode != "auto"):
            x, y, w, h = rect = self.search or self._rect(W, H)
            pmap = self.fitter.map if not fit and self.fitter.rect == rect else self.fitter(
                rect, grey_of(image[y : y + h, x : x + w]))
            if pmap is not None:
                if self._last is None or self._last[3] is not pmap:
                    self._last = (*self._sector_crop(rect, pmap, (H, W)), self.fitter.quality,
                                  pmap)
                (x, y, w, h), served = self._last[:2]
                if self.watch is None and self.from_motion:
                    self.watch = EdgeWatch(served.geometry, (x, y), (H, W))
                return Geometry((H, W), PolarCrop(x, y, w, h, self.size, served),
                                self._report("polar", self.fitter.quality))
            if self._last is not None:  # the last sector until the new one is fitted
                (x, y, w, h), pmap, quality, _ = self._last
                return Geometry((H, W), PolarCrop(x, y, w, h, self.size, pmap),
                                FanReport("polar", quality, settled=False))
        return Geometry((H, W), Crop(*self._rect(W, H), self.size), self._report("sector"))

    def _report(self, mode: str, quality: float | None = None) -> FanReport:
        if self.config.mode != "auto":
            return FanReport(self.config.mode if mode == "sector" else mode, quality)
        if self.roi is None:
            return FanReport("full", None, settled=False)
        settled = self.from_motion and not self.layout_changed and (
            mode == "polar" or not self._fitting or self.fitter.resting())
        return FanReport(mode, quality, settled)

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
        """Find the fan where the screen moves. Until it has moved, on the recent screens'
        brightness (acoustic shadows and fluid can blacken half a fan in one frame: each look
        keeps the brighter of this screen and half of what was seen before, so a fan that moved
        fades out of it within a few looks); once it has, a still screen (frozen) says nothing."""
        self.detections += 1
        grey = grey_of(image)
        self.motion.add(grey)
        live = self.motion.fan()
        if self.watch is not None and self._arc_left():
            self._relayout = True  # acted on at the next look (the next frame)
            return
        if live is not None:
            if self.watch is not None:  # fitted: only a fan that left the fit is news
                x, y, w, h = cv2.boundingRect(live)
                s = self.config.detect_scale
                margin = SEARCH_MARGIN * max(grey.shape)
                if _inside((x * s, y * s, w * s, h * s), self._covered(margin)):
                    self.layout_changed = False
                    return
            self._found(_refined(grey, self.motion.previous, live, self.config), True, grey.shape)
            return
        if self.from_motion:
            return
        if self._seen is None or self._seen.shape != grey.shape:
            self._seen = grey.copy()
        else:
            np.maximum(self._seen >> 1, grey, out=self._seen)
        found = find_fan(self._seen, self.config.threshold, self.config.detect_scale)
        if found is None:
            if self.roi is None:
                log.warning("no ultrasound fan found in the frame; using the whole frame")
            return
        self._found(found, False, grey.shape)

    def _found(self, rect: Rect, from_motion: bool, shape: tuple[int, int]) -> None:
        """A fan found: a new search rectangle (and a new fit) when it is the first found where
        the screen moves, or it left the search rectangle, or fills much less of it."""
        first_motion = from_motion and not self.from_motion
        if first_motion or self.roi is None or _moved(rect, self.roi, self.tolerance):
            log.info("ultrasound fan at x=%d y=%d w=%d h=%d%s", *rect,
                     "" if from_motion else " (from brightness: the screen has not moved yet)")
        self.roi = rect
        margin = SEARCH_MARGIN * max(shape) if from_motion else 0
        search = self.search
        if from_motion:  # the live part of a fan can be smaller than the fan (shadow, fluid)
            renew = first_motion or search is None or not _inside(rect, self._covered(margin))
        else:
            renew = search is None or _moved(rect, search, self.tolerance)
        if renew:
            self.search, self.from_motion = _grown(rect, margin, shape), from_motion
            self._new_fitter()  # evidence from brightness can hold marks beside the fan
        if from_motion:
            self.layout_changed = False


    def _arc_left(self) -> bool:
        """No beam's image moved near the fitted far arc for ARC_LOOKS looks while the sector's
        middle did: the fan ends short of its arc (a depth change shrank it about its apex, so
        its sides stayed where they were). In ordinary sweeps dark far fields keep some beams
        still there for a while, never all of them; a frozen screen moves nowhere."""
        recent, pmap = self.motion.recent, self.fitter.map
        if pmap is None or len(recent) < ARC_LOOKS:
            return False
        moved = np.logical_or.reduce(list(recent))
        g, (x, y, _, _), s = pmap.geometry, self.search, self.config.detect_scale
        ys, xs = np.nonzero(moved)
        dx, dy = (xs + 0.5) * s - (x + g.apex[0]), (ys + 0.5) * s - (y + g.apex[1])
        depth = (np.hypot(dx, dy) - g.r_min) / (g.r_max - g.r_min)
        beam = np.floor((np.arctan2(dx, dy) - g.angle_min) / (g.angle_max - g.angle_min)
                        * ARC_BEAMS).astype(np.int64)
        inside = (beam >= 0) & (beam < ARC_BEAMS)
        near_arc = inside & (depth > 1 - ARC_BAND[0]) & (depth < 1 - ARC_BAND[1])
        middle = inside & (depth > 0.2) & (depth < 0.6)
        return np.count_nonzero(middle) >= ARC_BEAMS * 4 and not near_arc.any()

    def _covered(self, margin: float) -> Rect:
        """What the current fit explains: the fitted sector's rectangle grown by ``margin``, or
        the search rectangle while nothing is fitted."""
        pmap, (x, y, _, _) = self.fitter.map, self.search
        if pmap is None:
            return self.search
        x0, y0, x1, y1 = pmap.box_to_image((0, 0, pmap.width, pmap.height))
        return (int(x + x0 - margin), int(y + y0 - margin), int(x1 - x0 + 2 * margin),
                int(y1 - y0 + 2 * margin))

    def _sector_crop(self, rect: Rect, pmap: PolarMap, shape: tuple[int, int]
                     ) -> tuple[Rect, PolarMap]:
        """The fitted sector's own bounding rectangle (clipped to the frame) and its map there:
        the search rectangle it was fitted in can cut off part of it (a side whose image was
        dark while the fan was found), which the crop would serve as black."""
        x, y, _, _ = rect
        bx0, by0, bx1, by1 = pmap.box_to_image((0, 0, pmap.width, pmap.height))
        x0, y0 = max(0, int(math.floor(x + bx0))), max(0, int(math.floor(y + by0)))
        x1, y1 = min(shape[1], int(math.ceil(x + bx1))), min(shape[0], int(math.ceil(y + by1)))
        g = pmap.geometry
        moved = dataclasses.replace(g, apex=(g.apex[0] + x - x0, g.apex[1] + y - y0))
        served = PolarMap(moved, (pmap.height, pmap.width), shrink=pmap.method)  # as fitted
        served.prepare(y1 - y0, x1 - x0)  # the resampling tables, built here, not on a frame
        return (x0, y0, x1 - x0, y1 - y0), served


def _refined(grey: np.ndarray, small: np.ndarray, live: np.ndarray, config: PreprocessConfig
             ) -> Rect:
    """The full-resolution rectangle of a live region found on the shrunk screen, grown to the
    black image area around it as :func:`find_fan` grows a bright one."""
    bg = float(np.median(small[::2, ::2]))
    dark = bg / 2 if bg >= config.threshold else -1.0
    region = _grow_into_dark(live, small, dark) if dark > 0 else live
    return _refine(grey, region, config.detect_scale, bg + config.threshold, dark)


def _grown(rect: Rect, margin: float, shape: tuple[int, int]) -> Rect:
    x, y, w, h = rect
    m = int(round(margin))
    x0, y0 = max(0, x - m), max(0, y - m)
    x1, y1 = min(shape[1], x + w + m), min(shape[0], y + h + m)
    return x0, y0, x1 - x0, y1 - y0


def _moved(a: Rect, b: Rect, tolerance: float) -> bool:
    """An edge of ``a`` lies more than ``tolerance`` pixels from that of ``b``."""
    (ax, ay, aw, ah), (bx, by, bw, bh) = a, b
    return any(abs(p - q) > tolerance for p, q in
               ((ax, bx), (ay, by), (ax + aw, bx + bw), (ay + ah, by + bh)))


def _inside(a: Rect, b: Rect) -> bool:
    return a[0] >= b[0] and a[1] >= b[1] and a[0] + a[2] <= b[0] + b[2] and a[1] + a[3] <= b[1] + b[3]
