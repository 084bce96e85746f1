"""Where the model input comes from on a source frame: a rectangle resized to the model's input
(:class:`Crop`) or a sector resampled to polar form (:class:`PolarCrop`), with the maps from model
coordinates back to source pixels. Shared by preprocess, postprocess and the sinks, so it sits
below all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.polar import PolarMap
from streamer.source_grid import LinearGrid, PolarGrid

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


@dataclass(frozen=True)
class FanReport:
    """How the crop of a result was found, as the ``fan`` object of a ``det`` message says it.

    mode: "polar" (a fitted sector resampled), "sector" (a found fan's rectangle), "roi" (the
    configured rectangle), "area" (the scanner's own scan area), "full" (no fan found: the whole
    frame). fit: how well the fitted sector explains the live image (IoU, 0..1; None without a
    fit). settled: False while the fan is being looked for again (start, a layout change, no
    fan), so results made meanwhile are marked rather than passed off."""

    mode: str
    fit: float | None = None
    settled: bool = True

    def to_dict(self) -> dict:
        return {"mode": self.mode, "fit": None if self.fit is None else round(self.fit, 3),
                "settled": self.settled}
