"""The fan's sector fitted on the pixels that change from frame to frame (:class:`SectorFitter`)
and how well a sector explains them."""

from __future__ import annotations

import dataclasses
import logging
import math

import cv2
import numpy as np

from engines.input_recipe import SONOSTREAM, InputRecipe
from engines.polar import PolarMap, SectorGeometry, estimate_geometry
from streamer.crop import Rect

log = logging.getLogger(__name__)

FIT_SIDE = 400  # the sector is fitted on the crop subsampled to about this size
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
        self.quiet = False  # log what it finds at debug level only
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
                log.log(logging.DEBUG if self.quiet else logging.WARNING,
                        "the fan is not a curvilinear sector; cropping without polar resampling")
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
        log.log(logging.DEBUG if self.quiet else logging.INFO,
                "polar resampling after %d frame(s): apex (%.0f, %.0f), radius %.0f-%.0f px, "
                "beams %.1f° to %.1f°, fit %.2f", self.frames, *g.apex, g.r_min, g.r_max,
                math.degrees(g.angle_min), math.degrees(g.angle_max), quality)
