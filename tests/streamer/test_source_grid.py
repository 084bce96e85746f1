"""The per-crop tables postprocess maps peaks and boxes with must give what the crop's own
mapping gives for the same model coordinates: every cell centre, every box of cell edges."""

import math

import numpy as np
import pytest

from engines.polar import PolarMap, SectorGeometry
from streamer.preprocess import Crop, PolarCrop

CELLS = 56


def _crops():
    yield Crop(x=100, y=50, w=813, h=407, size=224)
    for lo, hi in ((-40, 40), (-50, 10), (5, 35), (-35, -5)):  # across, left, right of straight down
        pm = PolarMap(SectorGeometry((300.3, -40.7), 60, 500, math.radians(lo), math.radians(hi)), 224)
        yield PolarCrop(10, 20, 600, 480, 224, pm)


@pytest.mark.parametrize("crop", list(_crops()), ids=lambda c: type(c).__name__)
def test_grid_peaks_equal_the_crop_mapping_of_every_cell_centre(crop):
    grid = crop.source_grid(CELLS)
    k = crop.size / CELLS
    u, v = np.meshgrid(np.arange(CELLS), np.arange(CELLS))
    px, py = crop.points_to_source((u.ravel() + 0.5) * k, (v.ravel() + 0.5) * k)
    want = list(zip(px.astype(np.int64).tolist(), py.astype(np.int64).tolist(), strict=True))
    assert [grid.peak(a, b) for a, b in zip(u.ravel(), v.ravel(), strict=True)] == want


@pytest.mark.parametrize("crop", list(_crops()), ids=lambda c: type(c).__name__)
def test_grid_boxes_equal_the_crop_mapping_of_cell_edge_boxes(crop):
    grid = crop.source_grid(CELLS)
    rng = np.random.default_rng(0)
    a = rng.integers(0, CELLS + 1, size=(3000, 4))
    cells = np.stack([np.minimum(a[:, 0], a[:, 2]), np.minimum(a[:, 1], a[:, 3]),
                      np.maximum(a[:, 0], a[:, 2]), np.maximum(a[:, 1], a[:, 3])], axis=1)
    cells = np.concatenate([cells, [[0, 0, CELLS, CELLS], [CELLS // 2, 0, CELLS // 2 + 1, 3]]])
    want = np.round(crop.boxes_to_source(cells * (crop.size / CELLS))).astype(np.int64).tolist()
    assert [list(grid.box(*b)) for b in cells.tolist()] == want


def test_a_crop_keeps_its_tables_and_a_new_crop_builds_its_own():
    crop = Crop(x=0, y=0, w=400, h=200, size=100)
    assert crop.source_grid(20) is crop.source_grid(20)
    moved = Crop(x=10, y=0, w=400, h=200, size=100)
    x, y = crop.source_grid(20).peak(3, 4)
    assert moved.source_grid(20).peak(3, 4) == (x + 10, y)
    assert crop == Crop(x=0, y=0, w=400, h=200, size=100)  # the tables are no part of equality
