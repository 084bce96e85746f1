"""maps.png as people read it: a legend on top, and one colour scale per frame so a class the
model does not see is drawn cold next to one it does."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np

from engines.report_grid import LEGEND_H, TILE, write_grid


def test_grid_has_a_legend_and_a_shared_scale_per_frame(tmp_path):
    image = np.full((64, 64), 60, np.uint8)
    maps = np.zeros((2, 8, 8), np.float32)
    maps[0, 2:6, 2:6] = 10.0  # the class in view: strong
    maps[1, 2:6, 2:6] = 0.5  # a class not in view: weak, but on its own scale it would look hot
    sample = SimpleNamespace(labels=[1, 0], boxes={"head": (16, 16, 48, 48)})
    path = write_grid(tmp_path / "maps.png", [(image, sample, {"cam": maps})],
                      np.array([[0.97, 0.02]]), ["head", "spine"])
    grid = cv2.imread(str(path))
    assert grid.shape == (LEGEND_H + TILE, 3 * TILE, 3)
    assert grid[:LEGEND_H].max() > 200  # the legend is drawn

    def hot(col: int) -> float:  # red minus blue in the middle of a class's tile
        t = grid[LEGEND_H + TILE // 2 - 10:LEGEND_H + TILE // 2 + 10, col * TILE + TILE // 2 - 10:
                 col * TILE + TILE // 2 + 10].astype(float)
        return float((t[..., 2] - t[..., 0]).mean())
    assert hot(1) > 30 and hot(2) < -10  # head hot, spine cold
