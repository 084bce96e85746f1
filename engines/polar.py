"""Sector ↔ polar (beam-space) resampling: depth runs down the rows, beam angle across.

The paper trained on this representation. Image coordinates are continuous with pixel edges at
integers (pixel (i, j) covers [j, j+1) × [i, i+1)), as in `streamer.preprocess.Crop`; angles are
radians from straight down, positive towards +x. No torch here: the streamer imports it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


@dataclass(frozen=True)
class SectorGeometry:
    """A curvilinear probe's sector: apex (may lie above the image), radii and beam angles."""

    apex: tuple[float, float]
    r_min: float
    r_max: float
    angle_min: float
    angle_max: float

    def __post_init__(self):
        object.__setattr__(self, "apex", (float(self.apex[0]), float(self.apex[1])))
        for name in ("r_min", "r_max", "angle_min", "angle_max"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if not all(map(math.isfinite, (*self.apex, self.r_min, self.r_max, self.angle_min,
                                       self.angle_max))):
            raise ValueError(f"sector geometry must be finite: {self}")
        if not 0 <= self.r_min < self.r_max:
            raise ValueError(f"sector radii must satisfy 0 <= r_min < r_max, got {self.r_min}, "
                             f"{self.r_max}")
        if not -math.pi / 2 < self.angle_min < self.angle_max < math.pi / 2:
            raise ValueError(f"sector angles must satisfy -pi/2 < angle_min < angle_max < pi/2, "
                             f"got {self.angle_min}, {self.angle_max}")


def estimate_geometry(image: np.ndarray, threshold: int = 8) -> SectorGeometry | None:
    """Fit the sector of a fan mask (bool) or grey image (fan: pixels above ``threshold``).

    Fluid is as dark as the background and can cut into the fan's outline, so each side edge is
    the convex-hull edge that the most rows' outermost fan pixels touch, refined by a line fit
    to those pixels; the apex is the two lines' intersection; the radii come from each angle
    bin's nearest and farthest fan pixel. None when there is no sizeable fan or it is not a
    sector (parallel sides, or a straight far edge: a linear probe): crop plainly instead.
    """
    mask = _fan_mask(image, threshold)
    if mask is None:
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    left = np.argmax(mask[rows] > 0, axis=1).astype(np.float64)
    right = mask.shape[1] - 1 - np.argmax(mask[rows, ::-1] > 0, axis=1).astype(np.float64)
    hull = cv2.approxPolyDP(cv2.convexHull(cv2.findNonZero(mask)), 1.5, True).reshape(-1, 2)
    lines = []
    for xs, sign, edge in ((left, -1, 0.0), (right, 1, 1.0)):  # pixel edge: left 0, right +1
        near = _side_support(hull.astype(np.float64), rows, xs, sign)
        if near is None or near.sum() < 8:
            return None
        pts = np.stack([xs[near] + edge, rows[near] + 0.5], axis=1).astype(np.float32)
        vx, vy, x0, y0 = cv2.fitLine(pts, cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
        lines.append((-vx, -vy, x0, y0) if vy < 0 else (vx, vy, x0, y0))  # direction: down
    (lvx, lvy, lx, ly), (rvx, rvy, rx, ry) = lines
    a_min, a_max = math.atan2(lvx, lvy), math.atan2(rvx, rvy)
    if a_max - a_min < math.radians(5):
        return None  # parallel sides: a linear probe
    s = ((rx - lx) * -rvy + rvx * (ry - ly)) / (lvx * -rvy + rvx * lvy)  # l + s·dl = r + t·dr
    apex = (float(lx + s * lvx), float(ly + s * lvy))
    radii = _radii(mask, apex, a_min, a_max)
    if radii is None or not -math.pi / 2 < a_min < a_max < math.pi / 2:
        return None
    return SectorGeometry(apex, max(radii[0], 0.0), radii[1], a_min, a_max)


def _side_support(hull: np.ndarray, rows, xs, sign: int, tol: float = 1.5):
    """Rows whose outermost pixel lies on the best-supported hull edge of one side (sign -1:
    left, edges leaning out going down; +1: right)."""
    best, best_n = None, 0
    for p, q in zip(hull, np.roll(hull, -1, axis=0), strict=True):
        d = q - p if q[1] > p[1] else p - q
        n = np.hypot(*d)
        if n < 4 or not 0.03 < sign * d[0] / n < 0.997:
            continue
        dist = np.abs((xs - p[0]) * d[1] - (rows - p[1]) * d[0]) / n
        on = dist <= tol
        if on.sum() > best_n:
            best, best_n = on, int(on.sum())
    return best


def _fan_mask(image: np.ndarray, threshold: int) -> np.ndarray | None:
    """The fan's sizeable regions (dark fluid can split it), small holes closed; None if tiny."""
    m = image.astype(np.uint8) if image.dtype == bool else (image > threshold).astype(np.uint8)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    area = stats[1:, cv2.CC_STAT_AREA]
    if count < 2 or area.max() < 400:
        return None
    keep = np.flatnonzero(area >= max(0.02 * area.max(), 50)) + 1
    return np.isin(labels, keep).astype(np.uint8)


def _radii(mask: np.ndarray, apex, a_min: float, a_max: float, bins: int = 48, tol: float = 1.5):
    """(r_min, r_max) from the nearest/farthest fan pixel per angle bin (a high quantile: fluid
    hides parts of the edges); None when the far edge fits a straight line better than an arc."""
    ys, xs = np.nonzero(mask)
    dx, dy = xs + 0.5 - apex[0], ys + 0.5 - apex[1]
    r, a = np.hypot(dx, dy), np.arctan2(dx, dy)
    span = a_max - a_min
    k = np.floor((a - a_min - 0.1 * span) / (0.8 * span) * bins).astype(np.int64)
    ok = np.flatnonzero((k >= 0) & (k < bins))
    if ok.size < 100:
        return None
    order = ok[np.lexsort((r[ok], k[ok]))]  # by bin, then radius
    kb = k[order]
    first = order[np.r_[True, kb[1:] != kb[:-1]]]
    last = order[np.r_[kb[1:] != kb[:-1], True]]
    r_min = float(np.quantile(r[first], 0.1)) - 0.5  # to the pixel edges
    r_max = float(np.quantile(r[last], 0.9)) + 0.5
    if r_max - r_min < 8 or (_straight(ys[last] + 1.0, r[last] + 0.5, r_max, 0.9, tol)
                             and not _clipped_sector(ys[first], r[first], r_min, tol)):
        return None
    return r_min, r_max


def _straight(y: np.ndarray, r: np.ndarray, radius: float, q: float, tol: float) -> bool:
    """An edge (one pixel per angle bin) that a horizontal line fits better than an arc."""
    flat = np.sum(np.abs(y - np.quantile(y, q)) <= tol)
    return flat > np.sum(np.abs(r - radius) <= tol)


def _clipped_sector(y_near: np.ndarray, r_near: np.ndarray, r_min: float, tol: float) -> bool:
    """A straight far edge with an arc for the near edge: a sector cut off by the bottom of the
    scanner's image area (a zoomed view); a linear probe's trapezoid is straight at both ends."""
    arc = np.sum(np.abs(r_near - r_min - 0.5) <= 2 * tol)
    return arc >= 0.6 * len(r_near) and not _straight(y_near, r_near, r_min + 0.5, 0.1, tol)


def box_outline(box: Box, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Points along a box's four sides, n + 1 per side: its image under a curved map is bounded
    by the image of its outline."""
    a0, b0, a1, b1 = box
    t = np.linspace(0.0, 1.0, n + 1)
    along_a, along_b = a0 + (a1 - a0) * t, b0 + (b1 - b0) * t
    a = np.concatenate([along_a, along_a, np.full(n + 1, a0), np.full(n + 1, a1)])
    b = np.concatenate([np.full(n + 1, b0), np.full(n + 1, b1), along_b, along_b])
    return a, b


def read_bands(m1: np.ndarray, height: int, width: int, bands: int = 4
               ) -> tuple[tuple[int, int, int, int], ...]:
    """Row bands (y0, y1, x0, x1) of a [height, width] image that cover every pixel a bilinear
    remap by the fixed-point map ``m1`` reads (each sample and its right and lower neighbours).
    A sector fills about half of its bounding rectangle; 4 bands (fewest calls) cover ~56%."""
    xy = m1.reshape(-1, 2).astype(np.int64)
    needed = np.zeros((height, width), bool)
    for dx in (0, 1):
        for dy in (0, 1):
            x, y = xy[:, 0] + dx, xy[:, 1] + dy
            inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
            needed[y[inside], x[inside]] = True
    out = []
    edges = np.linspace(0, height, bands + 1).round().astype(int)
    for y0, y1 in zip(edges[:-1], edges[1:], strict=True):
        cols = np.flatnonzero(needed[y0:y1].any(axis=0))
        if len(cols):
            out.append((int(y0), int(y1), int(cols[0]), int(cols[-1]) + 1))
    return tuple(out)


def halve_bands(image: np.ndarray, levels: int, size: tuple[int, int], bands, out=None) -> np.ndarray:
    """``levels`` halvings (INTER_LINEAR at exactly 1/2: OpenCV's 2×2 block mean) of the bands
    only, into an image of ``size`` whose other pixels are left as they are (unread by the remap
    the bands were made for). Each block mean depends on its own block only, so a band gives the
    pixels the whole image's halvings would."""
    f = 1 << levels
    out = np.empty(size + image.shape[2:], image.dtype) if out is None else out
    for y0, y1, x0, x1 in bands:
        part = image[y0 * f : y1 * f, x0 * f : x1 * f]
        for _ in range(levels):
            part = cv2.resize(part, (part.shape[1] // 2, part.shape[0] // 2),
                              interpolation=cv2.INTER_LINEAR)
        out[y0:y1, x0:x1] = part
    return out


SHRINKS = ("area", "halving")  # how to_polar anti-aliases a finely sampled sector


class PolarMap:
    """Precomputed sector→polar resampling to ``out_size`` ((height, width) or an int).

    Polar coordinates (u, v): u across (angle_min at 0 → angle_max at width), v down (r_min at
    0 → r_max at height), pixel edges at integers. Where the sector is sampled more than 1.5×
    coarser than the image, ``to_polar`` first shrinks the image so speckle does not alias, then
    remaps (INTER_LINEAR). ``shrink`` is the model's choice (its input recipe): "area" shrinks
    to the sampling step with INTER_AREA (the older models'), "halving" averages 2×2 blocks until
    the step is at most 1.5 (exact box filters OpenCV runs ~30× faster than a fractional area
    resize: the shrink that makes the live path cheap), and only over the row bands of the crop
    the remap reads (about half of it: the corners beside the sector are never halved).
    """

    def __init__(self, geometry: SectorGeometry, out_size: int | tuple[int, int],
                 antialias: bool = True, shrink: str = "area"):
        if shrink not in SHRINKS:
            raise ValueError(f"polar shrink must be one of {SHRINKS}, got {shrink!r}")
        self.geometry = g = geometry
        self.height, self.width = (out_size, out_size) if np.isscalar(out_size) else out_size
        arc = g.r_max * (g.angle_max - g.angle_min)
        step = min(arc / self.width, (g.r_max - g.r_min) / self.height)
        self.shrink = step if antialias and step > 1.5 else 1.0
        self.method = shrink
        self.halvings = (math.ceil(math.log2(self.shrink / 1.5))
                         if shrink == "halving" and self.shrink > 1.5 else 0)
        u = (np.arange(self.width) + 0.5)[None, :]
        v = (np.arange(self.height) + 0.5)[:, None]
        self._x, self._y = self.polar_to_image(u, v)
        self._tables: dict[tuple[int, int], tuple] = {}  # (h, w) → m1, m2, sh, sw, levels, bands

    def _table(self, h: int, w: int):
        """Remap tables for [h, w] images, the shrunk size, the halvings that give it (no more
        than the image allows) and the row bands of the shrunk image the remap reads."""
        key = (h, w)
        if key not in self._tables:
            levels = min(self.halvings, min(h, w).bit_length() - 1)
            if self.method == "halving":
                sh, sw = h >> levels, w >> levels  # each halving drops an odd last row / column
                sx = sy = 1 / (1 << levels)
            else:
                sh, sw = max(1, round(h / self.shrink)), max(1, round(w / self.shrink))
                sx, sy = sw / w, sh / h
            fx, fy = (self._x * sx - 0.5).astype(np.float32), (self._y * sy - 0.5).astype(np.float32)
            m1, m2 = cv2.convertMaps(fx, fy, cv2.CV_16SC2)
            bands = read_bands(m1, sh, sw) if self.method == "halving" and levels else ()
            self._tables[key] = (m1, m2, sh, sw, levels, bands)
        return self._tables[key]

    def prepare(self, h: int, w: int) -> None:
        """Build the tables for [h, w] images now (they are otherwise built on first use)."""
        self._table(h, w)

    def to_polar(self, image: np.ndarray) -> np.ndarray:
        """The sector image (grey, or BGR [h, w, 3]) resampled to grey [height, width] (outside the
        image: 0). The shrink decides where BGR is greyed: "area" greys first (as its models were
        trained), "halving" after shrinking (the same values to rounding, on a quarter of the
        pixels per halving)."""
        h, w = image.shape[:2]
        m1, m2, sh, sw, levels, bands = self._table(h, w)
        if self.method == "area" and image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if self.method == "halving" and levels:
            image = halve_bands(image, levels, (sh, sw), bands)
        elif (sh, sw) != (h, w):
            image = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return cv2.remap(image, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def polar_to_image(self, u, v):
        g = self.geometry
        a = g.angle_min + np.asarray(u, np.float64) / self.width * (g.angle_max - g.angle_min)
        r = g.r_min + np.asarray(v, np.float64) / self.height * (g.r_max - g.r_min)
        return g.apex[0] + r * np.sin(a), g.apex[1] + r * np.cos(a)

    def image_to_polar(self, x, y):
        g = self.geometry
        dx, dy = np.asarray(x, np.float64) - g.apex[0], np.asarray(y, np.float64) - g.apex[1]
        u = (np.arctan2(dx, dy) - g.angle_min) / (g.angle_max - g.angle_min) * self.width
        v = (np.hypot(dx, dy) - g.r_min) / (g.r_max - g.r_min) * self.height
        return u, v

    def box_to_image(self, box: Box, n: int = 32) -> Box:
        """Image bounding box of a polar box (an annular sector in the image)."""
        u0, _, u1, v1 = box
        u, v = box_outline(box, n)
        down, _ = self.image_to_polar(self.geometry.apex[0], self.geometry.apex[1] + 1.0)
        if u0 < down < u1:  # the outer arc's lowest point lies between the samples
            u, v = np.append(u, down), np.append(v, v1)
        x, y = self.polar_to_image(u, v)
        return float(x.min()), float(y.min()), float(x.max()), float(y.max())

    def boxes_to_image(self, boxes: np.ndarray) -> np.ndarray:
        """:meth:`box_to_image` for polar boxes [N, 4] at once, in closed form: an annular
        sector's x extremes lie at its angular edges, its lowest point on the outer arc at the
        angle nearest straight down, its highest at the inner arc's outermost corner."""
        g = self.geometry
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        span = (g.angle_max - g.angle_min) / self.width
        depth = (g.r_max - g.r_min) / self.height
        a0, a1 = g.angle_min + b[:, 0] * span, g.angle_min + b[:, 2] * span
        r0, r1 = g.r_min + b[:, 1] * depth, g.r_min + b[:, 3] * depth
        s0, s1 = np.sin(a0), np.sin(a1)
        out = np.empty((len(b), 4))
        out[:, 0] = g.apex[0] + s0 * np.where(s0 < 0, r1, r0)
        out[:, 2] = g.apex[0] + s1 * np.where(s1 > 0, r1, r0)
        out[:, 1] = g.apex[1] + r0 * np.minimum(np.cos(a0), np.cos(a1))
        out[:, 3] = g.apex[1] + r1 * np.cos(np.maximum(a0, np.minimum(a1, 0.0)))  # nearest down
        return out

    def box_to_polar(self, box: Box, n: int = 32, clip: bool = True) -> Box:
        """Polar bounding box of an image box's region (clipped to the polar frame)."""
        x0, y0, x1, y1 = box
        x, y = box_outline(box, n)
        ax, ay = self.geometry.apex  # the box's point nearest the apex sets its smallest depth
        x, y = np.append(x, min(max(ax, x0), x1)), np.append(y, min(max(ay, y0), y1))
        u, v = self.image_to_polar(x, y)
        out = (float(u.min()), float(v.min()), float(u.max()), float(v.max()))
        if not clip:
            return out
        return (min(max(out[0], 0.0), self.width), min(max(out[1], 0.0), self.height),
                min(max(out[2], 0.0), self.width), min(max(out[3], 0.0), self.height))
