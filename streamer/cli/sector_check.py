"""Whether a fitted sector holds on a recorded screen: the same sector over CONFIRM_FRAMES
settled frames, and no live image just outside its edges (a fit made while part of the fan was
dark is short)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

CONFIRM_FRAMES = 30  # settled frames after the fit that must show the same sector
CONFIRM_PX = 3.0  # how far the sector's outline or crop may move and still be the same (px)
# -- the live image just outside the fitted edges: a fit that left part of the fan out ---------
EDGE_POINTS = 60  # pixels read along each edge (far arc, near arc, both sides)
EDGE_STEP = 16  # grey levels a pixel changes between frames to count as live
OUTSIDE_LIVE = 0.1  # live fraction of an edge's outside band above which the fit is short


@dataclasses.dataclass(frozen=True)
class Fitted:
    """A settled sector in source-frame pixels, with the rectangle it is cropped from."""

    roi: tuple[int, int, int, int]  # x, y, w, h
    apex: tuple[float, float]
    r_min: float
    r_max: float
    angle_min: float  # radians from straight down, + towards +x
    angle_max: float
    fit: float
    frames: int  # frames read when it settled

    @classmethod
    def of(cls, crop, fit: float, frames: int) -> Fitted:
        """The sector of a polar crop, cropped as the tracker crops it: the fitted sector's own
        rectangle, clipped to the frame, so the profile's polar frames hold the whole fan."""
        g = crop.polar.geometry
        return cls((crop.x, crop.y, crop.w, crop.h), (crop.x + g.apex[0], crop.y + g.apex[1]),
                   g.r_min, g.r_max, g.angle_min, g.angle_max, float(fit), frames)

    def point(self, a: float, r: float) -> tuple[float, float]:
        return self.apex[0] + r * math.sin(a), self.apex[1] + r * math.cos(a)

    def moved(self, other: Fitted) -> float:
        """How far (px) the outline (corners, far arc's middle) or the crop's edges moved."""
        mid = (self.angle_min + self.angle_max) / 2, (other.angle_min + other.angle_max) / 2
        ours = [self.point(a, r) for a in (self.angle_min, self.angle_max) for r in (self.r_min,
                                                                                     self.r_max)]
        theirs = [other.point(a, r) for a in (other.angle_min, other.angle_max)
                  for r in (other.r_min, other.r_max)]
        ours.append(self.point(mid[0], self.r_max))
        theirs.append(other.point(mid[1], other.r_max))
        points = max(math.dist(p, q) for p, q in zip(ours, theirs, strict=True))
        return max(points, *(abs(a - b) for a, b in zip(self.roi, other.roi, strict=True)))

    def outside(self, shape: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(ys, xs) per edge (far arc, near arc where it is long enough to read, both sides):
        pixels just outside it in the frame, background while the fit holds the whole fan."""
        span, depth = self.angle_max - self.angle_min, self.r_max - self.r_min
        margin = max(6.0, 0.03 * depth)
        t = np.linspace(0.05, 0.95, EDGE_POINTS)
        da = margin / self.r_max
        edges = [(self.angle_min + t * span, np.full_like(t, self.r_max + margin))]
        if self.r_min * span > 4 * margin:
            edges.append((self.angle_min + t * span, np.full_like(t, self.r_min - margin)))
        edges += [(np.full_like(t, side), self.r_min + t * depth)
                  for side in (self.angle_min - da, self.angle_max + da)]
        out = []
        for a, r in edges:
            xs = np.floor(self.apex[0] + r * np.sin(a)).astype(np.int64)
            ys = np.floor(self.apex[1] + r * np.cos(a)).astype(np.int64)
            ok = (xs >= 0) & (xs < shape[1]) & (ys >= 0) & (ys < shape[0])
            if np.count_nonzero(ok) >= EDGE_POINTS // 4:  # an edge mostly off the frame: unread
                out.append((ys[ok], xs[ok]))
        return out

    def sector(self) -> tuple[float, ...]:
        """The config's sector: apex x, y, radii, angles in degrees, rounded to 0.1."""
        return tuple(round(v, 1) for v in (*self.apex, self.r_min, self.r_max,
                                           math.degrees(self.angle_min),
                                           math.degrees(self.angle_max)))


class Motion:
    """Where the screen changed (EDGE_STEP grey levels between consecutive frames, full
    resolution) since the start or the last layout change the tracker noticed: the live image."""

    def __init__(self):
        self.previous: np.ndarray | None = None
        self.changed: np.ndarray | None = None  # bool [H, W]

    def reset(self) -> None:
        """A new layout: where the old one's fan moved says nothing of the new one's."""
        if self.changed is not None:
            self.changed[:] = False

    def add(self, image: np.ndarray) -> None:
        import cv2

        plane = np.ascontiguousarray(image if image.ndim == 2 else image[:, :, 1])  # green:
        if self.previous is None or self.previous.shape != plane.shape:  # a grey image's grey
            self.changed = np.zeros(plane.shape, bool)
        else:
            self.changed |= cv2.absdiff(plane, self.previous) >= EDGE_STEP
        self.previous = plane

    def live(self, ys: np.ndarray, xs: np.ndarray) -> float:
        """The fraction of these pixels that changed."""
        if self.changed is None or ys.size == 0:
            return 0.0
        return float(np.mean(self.changed[ys, xs]))


class Confirmation:
    """Whether a settled sector holds: the same sector on CONFIRM_FRAMES settled frames (frames
    where the tracker is looking again pause the count), and the band just outside each of its
    edges still since the clip began or the layout last changed (live where the fan reaches
    beyond a fit made while part of it was dark)."""

    def __init__(self, fitted: Fitted, shape: tuple[int, int]):
        self.fitted, self.held = fitted, 0
        self.edges = fitted.outside(shape)
        self.outside_live = 0.0  # the live fraction of the liveliest edge's outside band
        self.short = False  # the live image reached beyond the fit when last judged

    def add(self, motion: Motion) -> bool:
        """One more settled frame with this sector: True once it holds."""
        self.held += 1
        if self.held < CONFIRM_FRAMES:
            return False
        self.outside_live = max((motion.live(ys, xs) for ys, xs in self.edges), default=0.0)
        self.short = self.outside_live > OUTSIDE_LIVE
        return not self.short
