"""benchmarks/fused_remap.py: the fused remap it times samples the same polar grid as the
shipped input, so its cost and its difference from the shipped input are measured on equal
terms."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from engines.input_recipe import SONOSTREAM
from engines.polar import SectorGeometry

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import fused_remap  # noqa: E402


def _smooth_crop(h: int = 830, w: int = 860) -> np.ndarray:
    """BGR waves 64 px long, 100 grey levels high (up to ~10 grey levels a pixel)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    grey = 128 + 100 * np.sin(2 * math.pi * x / 64) * np.cos(2 * math.pi * y / 64)
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


def test_the_fused_remap_samples_the_shipped_polar_grid():
    crop = _smooth_crop()
    pmap = SONOSTREAM.polar_map(SectorGeometry((430, -60), 80, 860, -0.6, 0.6), 224)
    assert pmap.halvings == 2  # the shipped input shrinks this crop: the two paths differ
    shipped = pmap.to_polar(crop).astype(np.int16)
    fused = fused_remap.fused_polar(crop, fused_remap.fused_maps(pmap)).astype(np.int16)
    assert fused.shape == shipped.shape == (224, 224)
    # nothing to alias here, so the two differ only by the shipped path's filtering: its 4×4
    # box shrink flattens the waves by 1.3% (sin(π/16) / (4 sin(π/64)) per axis, 1.3 grey levels
    # at a crest), its bilinear samples 4 px apart miss a crest by up to 0.5, and it rounds three
    # times: 1.5 grey levels on average here. Sampling half a pixel off gives 3.4, x and y swapped 62.
    assert np.abs(fused - shipped).mean() < 2.5
