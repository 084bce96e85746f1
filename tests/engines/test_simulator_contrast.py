"""ScannerSimulator.contrast: how much each labelled part changes its rendered frame."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engines.classes import REGIONS
from engines.simulator import ScannerSimulator, SimConfig, scanner


@pytest.mark.parametrize("style", ["classic", "scatter"])
def test_contrast_is_given_for_the_labelled_parts_and_leaves_the_frames_alone(style):
    sim = ScannerSimulator(SimConfig(seed=5, style=style))
    before = [sim.frame(i) for i in range(6)]
    seen = 0
    for f in before:
        c = sim.contrast(f.index)
        assert set(c) == {name for name, y in zip(REGIONS, f.labels, strict=True) if y}
        assert all(np.isfinite(v) and v >= 0 for v in c.values())
        seen += len(c)
    assert seen > 3
    fresh = ScannerSimulator(SimConfig(seed=5, style=style))
    for f in before:  # neither this simulator's frames nor a fresh one's have moved
        for g in (sim.frame(f.index), fresh.frame(f.index)):
            assert np.array_equal(g.image, f.image) and np.array_equal(g.labels, f.labels)
            assert g.boxes == f.boxes


def test_hiding_a_part_changes_only_its_own_pixels_and_shadow():
    # the measure rests on this: leaving a part out makes every random draw all the same
    sim = ScannerSimulator(SimConfig(seed=5, style="classic"))
    checked = 0
    for i in range(6):
        f = sim.frame(i)
        for name, (x0, y0, x1, y1) in f.boxes.items():
            changed = f.image != sim._render(i, frozenset({name})).image
            ys, xs = np.nonzero(changed)
            assert len(ys) > 0
            # outside the part's box and not beneath it (its shadow): a redrawn frame would
            # change nearly every pixel of the fan there
            away = ((ys < y0 - 6) | (xs < x0 - 30) | (xs > x1 + 30)) & (ys < y1)
            assert away.sum() < 0.01 * f.fan_mask.sum(), name
            checked += 1
    assert checked > 3


def test_classic_fetal_parts_have_clear_contrast():
    sim = ScannerSimulator(SimConfig(seed=5, style="classic"))
    values = [v for i in range(8) for k, v in sim.contrast(i).items() if k != "placenta"]
    assert len(values) >= 5
    assert min(values) > 0.5 and np.median(values) > 1.0, values


def test_a_part_the_rendering_does_not_show_has_zero_contrast(monkeypatch):
    sim = ScannerSimulator(SimConfig(seed=5, style="classic"))
    labelled = [i for i in range(10) if sim.frame(i).labels.any()][:3]
    original = scanner.sample_look

    def no_gain(rng, style, slots):  # the same draws, every grey level clipped to black
        return dataclasses.replace(original(rng, style, slots), gain_db=-400.0)

    monkeypatch.setattr(scanner, "sample_look", no_gain)
    for i in labelled:
        assert sim.frame(i).image.max() == 0
        c = sim.contrast(i)
        assert c and all(v == 0.0 for v in c.values()), c
