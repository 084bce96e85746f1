"""When to look for the fan, what a look does, and the geometry the served frames are cropped by."""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

from engines.input_recipe import SONOSTREAM, InputRecipe
from engines.polar import PolarMap
from streamer.config import PreprocessConfig
from streamer.crop import Crop, FanReport, PolarCrop, Rect
from streamer.fan.find import ScreenMotion, find_fan, grey_of, live_rect
from streamer.fan.fit import SectorFitter
from streamer.fan.watch import EdgeWatch
from streamer.frames import InvalidFrame

log = logging.getLogger(__name__)

WARMUP_DETECTIONS = 7  # after a new frame size or layout: looks after 1, 2, 4 ... 64 frames
RETRY_WITHOUT_FAN = 15  # frames between looks while no fan has been found at all
WATCH_LOOK_EVERY = 4  # frames between looks at a fitted live fan
ARC_LOOKS = 3  # looks (12 frames) the live image must stay off the arc band to count as shrunk
ARC_BAND = (0.15, 0.02)  # the band inside the fitted arc, from/to these fractions of the depth
ARC_BEAMS = 16  # beams the band is cut into; in ordinary sweeps some beam's image moves in it
SEARCH_MARGIN = 0.03  # the sector is fitted in the found rectangle grown by this much of the screen


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
                 recipe: InputRecipe = SONOSTREAM, quiet: bool = False):
        self.config, self.size, self.tolerance, self.recipe = config, size, tolerance, recipe
        self.quiet = quiet  # what it finds is logged at debug level (sizes cycling: one per frame)
        self.reset()

    def reset(self) -> None:
        """A fresh start (a new frame size): nothing known, the fast start-up schedule again."""
        self.roi: Rect | None = None
        self.search: Rect | None = None
        self.from_motion = False  # the roi was found where the screen moves
        self.relayouts = 0  # layout changes the edge watch noticed
        self._relayout = False  # one noticed on the hot path, for the next look to act on
        self._resumed = False  # frames of this size back after a while: the next look checks
        # the last fitted sector: its crop, map, fit quality, and the fitter's map it came from
        self._last: tuple[Rect, PolarMap, float | None, PolarMap | None] | None = None
        self._start_over()

    def _start_over(self) -> None:
        """Forget the evidence and the fit (a new frame size or layout); the last sector is
        served, marked unsettled, until the fan is fitted again."""
        self.detections = 0
        self._since = 0
        self._seen: np.ndarray | None = None  # fading max of the screens detection looked at
        self.motion = ScreenMotion(self.config.detect_scale, ARC_LOOKS)
        self._new_fitter()
        self.layout_changed = False

    def _new_fitter(self) -> None:
        self.fitter = SectorFitter(self.size, self.config.threshold,
                                   self.config.redetect_every or 150, self.recipe)
        self.fitter.need_motion, self.fitter.quiet = self.from_motion, self.quiet
        self.watch: EdgeWatch | None = None

    def _log(self, level: int, msg: str, *args) -> None:
        log.log(logging.DEBUG if self.quiet else level, msg, *args)

    def resume(self) -> bool:
        """Frames of this size are back after a while away (the hot path calls this before
        ``due``): the screen may have changed meanwhile, so the fan is looked at at once, on
        fresh evidence, and its results are unsettled until a look at the moving screen
        confirms it. False when the fan is not looked at again (a configured roi, the full
        frame, or detection once and no fitted fan to watch)."""
        if self.config.mode != "auto" or (not self.config.redetect_every and self.watch is None):
            return False
        self._resumed, self._since = True, 1 << 30
        if self.watch is not None:
            self.watch.restart()
        return True

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
        if self._resumed:  # the evidence gathered before is stale; the fit, if any, is kept
            self._resumed, self.detections, self.layout_changed = False, 0, True
            self.motion.reset()
            if self.fitter.map is None:
                self._new_fitter()
        if self._relayout:
            self._log(logging.INFO,
                      "the fan's edges moved (a depth or zoom change?): looking for the fan again")
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
            self._found(live_rect(grey, self.motion.previous, live, self.config), True, grey.shape)
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
                self._log(logging.WARNING, "no ultrasound fan found in the frame; using the whole "
                          "frame")
            return
        self._found(found, False, grey.shape)

    def _found(self, rect: Rect, from_motion: bool, shape: tuple[int, int]) -> None:
        """A fan found: a new search rectangle (and a new fit) when it is the first found where
        the screen moves, or it left the search rectangle, or fills much less of it."""
        first_motion = from_motion and not self.from_motion
        if first_motion or self.roi is None or _moved(rect, self.roi, self.tolerance):
            self._log(logging.INFO, "ultrasound fan at x=%d y=%d w=%d h=%d%s", *rect,
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
        if self.fitter.map is None:
            return self.search
        x0, y0, x1, y1 = _sector_box(self.search, self.fitter.map)
        return (int(x0 - margin), int(y0 - margin), int(x1 - x0 + 2 * margin),
                int(y1 - y0 + 2 * margin))

    def _sector_crop(self, rect: Rect, pmap: PolarMap, shape: tuple[int, int]
                     ) -> tuple[Rect, PolarMap]:
        """The fitted sector's own bounding rectangle (clipped to the frame) and its map there:
        the search rectangle it was fitted in can cut off part of it (a side whose image was
        dark while the fan was found), which the crop would serve as black."""
        x, y, _, _ = rect
        bx0, by0, bx1, by1 = _sector_box(rect, pmap)
        x0, y0 = max(0, math.floor(bx0)), max(0, math.floor(by0))
        x1, y1 = min(shape[1], math.ceil(bx1)), min(shape[0], math.ceil(by1))
        g = pmap.geometry
        moved = dataclasses.replace(g, apex=(g.apex[0] + x - x0, g.apex[1] + y - y0))
        served = PolarMap(moved, (pmap.height, pmap.width), shrink=pmap.method)  # as fitted
        served.prepare(y1 - y0, x1 - x0)  # the resampling tables, built here, not on a frame
        return (x0, y0, x1 - x0, y1 - y0), served


def _sector_box(rect: Rect, pmap: PolarMap) -> tuple[float, float, float, float]:
    """The bounding box (x0, y0, x1, y1), in frame pixels, of a sector fitted in ``rect``."""
    x0, y0, x1, y1 = pmap.box_to_image((0, 0, pmap.width, pmap.height))
    return rect[0] + x0, rect[1] + y0, rect[0] + x1, rect[1] + y1


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
