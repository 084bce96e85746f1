"""Noticing on every frame that the fan no longer sits where its sector was fitted."""

from __future__ import annotations

import logging

import numpy as np

from engines.polar import SectorGeometry

log = logging.getLogger(__name__)


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
        self.restart()

    def restart(self) -> None:
        """Forget the frames read so far (the next frame is not the one after the last read)."""
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
