"""Peaks and boxes found on a cells×cells grid over the model input, mapped to source pixels by
tables built once per crop, so a frame's postprocess maps each class with a few list lookups
instead of numpy calls on six-element arrays.

A peak sits at a cell's centre, a box's edges on cell edges: the tables hold every cell centre's
source pixel (truncated, as the peaks are published) and, per cell edge, what the box formula
needs (plain crops: the edge's source coordinate; polar crops: the beam angle's sine and cosine
and the depth's radius). The values equal ``Crop.points_to_source`` / ``boxes_to_source`` of the
same model coordinates.
"""

from __future__ import annotations

import numpy as np


class LinearGrid:
    """A plain crop: model input → source pixels is a scale and an offset per axis."""

    def __init__(self, crop, cells: int):
        k = crop.size / cells
        centre = (np.arange(cells) + 0.5) * k
        cx, cy = crop.points_to_source(centre, centre)
        self.peak_x, self.peak_y = cx.astype(np.int64).tolist(), cy.astype(np.int64).tolist()
        edge = np.arange(cells + 1) * k
        ex, ey = crop.points_to_source(edge, edge)
        self.edge_x, self.edge_y = ex.tolist(), ey.tolist()

    def peak(self, u: int, v: int) -> tuple[int, int]:
        return self.peak_x[u], self.peak_y[v]

    def box(self, u0: int, v0: int, u1: int, v1: int) -> tuple[int, int, int, int]:
        ex, ey = self.edge_x, self.edge_y
        return round(ex[u0]), round(ey[v0]), round(ex[u1]), round(ey[v1])


class PolarGrid:
    """A polar crop: columns are beam angles, rows depths; a polar box is an annular sector
    whose bounding box follows ``PolarMap.boxes_to_image``'s closed form."""

    def __init__(self, crop, cells: int):
        k = crop.size / cells
        centre = (np.arange(cells) + 0.5) * k
        u, v = np.meshgrid(centre, centre)  # [row v, column u]
        px, py = crop.points_to_source(u, v)
        self.peaks = [list(zip(r, c, strict=True)) for r, c in
                      zip(px.astype(np.int64).tolist(), py.astype(np.int64).tolist(), strict=True)]
        pm, g = crop.polar, crop.polar.geometry
        edge = np.arange(cells + 1) * k
        angle = g.angle_min + edge * ((g.angle_max - g.angle_min) / pm.width)
        self.angle, self.sin, self.cos = angle.tolist(), np.sin(angle).tolist(), np.cos(angle).tolist()
        self.radius = (g.r_min + edge * ((g.r_max - g.r_min) / pm.height)).tolist()
        self.apex, self.origin = g.apex, (crop.x, crop.y)

    def peak(self, u: int, v: int) -> tuple[int, int]:
        return self.peaks[v][u]

    def box(self, u0: int, v0: int, u1: int, v1: int) -> tuple[int, int, int, int]:
        s0, s1, c0, c1 = self.sin[u0], self.sin[u1], self.cos[u0], self.cos[u1]
        r0, r1 = self.radius[v0], self.radius[v1]
        a0, a1 = self.angle[u0], self.angle[u1]
        lowest = c0 if a0 > 0 else (c1 if a1 < 0 else 1.0)  # the outer arc's point nearest down
        (ax, ay), (x, y) = self.apex, self.origin  # summed in boxes_to_source's order
        return (round(ax + s0 * (r1 if s0 < 0 else r0) + x), round(ay + r0 * min(c0, c1) + y),
                round(ax + s1 * (r1 if s1 > 0 else r0) + x), round(ay + r1 * lowest + y))
