"""Simulator styles: the wide training randomisation, the second renderer, the kept classic style."""

from __future__ import annotations

import numpy as np
import pytest

from engines.simulator import LiveFeed, ScannerSimulator, SimConfig, anatomy
from engines.simulator.render import STYLES


def _stats(style: str, n: int = 40):
    sim = ScannerSimulator(SimConfig(seed=3, style=style))
    means, grads = [], []
    for i in range(n):
        f = sim.frame(i)
        inside = f.image[f.fan_mask].astype(np.float32)
        means.append(inside.mean())
        img = f.image.astype(np.float32)
        grads.append(np.abs(np.diff(img, axis=1))[f.fan_mask[:, 1:] & f.fan_mask[:, :-1]].mean())
    means = np.array(means)
    return means, np.array(grads) / means  # brightness, roughness (relative edge strength)


def test_training_style_varies_brightness_and_texture_more_than_classic():
    wide_m, wide_g = _stats("train")
    old_m, old_g = _stats("classic")
    assert wide_m.std() > 1.3 * old_m.std()  # gain, dynamic range, TGC
    # speckle size, PSF blur, noise: smoother and rougher frames than the classic style has
    assert wide_g.min() < 0.5 * old_g.min() and wide_g.max() > 1.1 * old_g.max()


def test_scatter_renderer_is_deterministic_labelled_and_black_outside_the_fan():
    sim = ScannerSimulator(SimConfig(seed=4, style="scatter"))
    a, b = sim.frame(5), sim.frame(5)
    np.testing.assert_array_equal(a.image, b.image)
    for i in range(6):
        f = sim.frame(i)
        assert f.image[~f.fan_mask].max() == 0
        assert f.image[f.fan_mask].std() > 5
        for x0, y0, x1, y1 in f.boxes.values():
            assert 0 <= x0 < x1 <= f.image.shape[1] and 0 <= y0 < y1 <= f.image.shape[0]
        assert int(f.labels.sum()) == len(f.boxes)


def test_scatter_differs_from_the_training_renderer_on_the_same_scene_draws():
    # same seed and index, same random stream for the scene: only the imaging chain differs
    train = ScannerSimulator(SimConfig(seed=9, style="train")).frame(2).image
    scatter = ScannerSimulator(SimConfig(seed=9, style="scatter")).frame(2).image
    assert not np.array_equal(train, scatter)


def test_styles_are_validated_and_live_feeds_refuse_the_test_renderer():
    assert {"train", "heldout", "scatter", "classic"} <= set(STYLES)
    with pytest.raises(ValueError, match="style"):
        SimConfig(style="cartoon")
    with pytest.raises(ValueError, match="scatter"):
        LiveFeed(style="scatter")


def test_vary_changes_outlines_within_the_placement_radius():
    rng = np.random.default_rng(0)
    part = anatomy.head(rng, lambda v: v, 40.0)
    assert anatomy.vary(part, rng, 0.0) is part
    varied = anatomy.vary(part, np.random.default_rng(1), 1.0)
    pts = np.concatenate([p for pr in varied.prims for p in pr.polys])
    orig = np.concatenate([p for pr in part.prims for p in pr.polys])
    assert not np.allclose(pts, orig)
    assert np.hypot(*pts.T).max() <= varied.radius


def test_speckle_texture_count_defaults_to_the_styles_own_and_can_be_raised():
    """The speckle bank holds a few textures (cell size, statistics) per data set; ``speckles``
    draws from more, and leaves every frame as it was when it names the style's own count."""
    from engines.datasets import open_dataset

    for style, own in (("train", 12), ("classic", 6)):
        default = ScannerSimulator(SimConfig(seed=2, style=style))
        named = ScannerSimulator(SimConfig(seed=2, style=style, speckles=own))
        assert default.bank.slots == own
        for i in range(3):
            np.testing.assert_array_equal(default.frame(i).image, named.frame(i).image)
    many = ScannerSimulator(SimConfig(seed=2, style="train", speckles=64))
    for i in range(120):
        many.frame(i)
    used = many.bank._fields  # the textures the frames drew from
    assert len(used) > 12
    cells = {float(np.abs(np.diff(f, axis=0)).mean()) for f in used.values()}
    assert len(cells) == len(used)  # each a texture of its own
    assert open_dataset("sim:n=2,seed=2,style=classic+train,speckles=64").sims[1].bank.slots == 64


@pytest.mark.parametrize("bad", [-1, 2000, True, 2.5, "64"])
def test_speckle_texture_count_is_validated(bad):
    with pytest.raises(ValueError, match="speckles"):
        SimConfig(speckles=bad)


def test_slanted_placentas_are_opt_in_and_turned_about_their_middle():
    """``slant`` turns a share of the placentas to cross the fan at a slant, as a live sweep shows
    them (a band concentric with the uterus): 0, the default, leaves every frame as it was, since
    every data set and record is made from those frames; 1 turns each placenta by 0.2-0.8 rad
    about the middle of its band, which stays where it was."""
    from engines.datasets import open_dataset
    from engines.simulator.anatomy import Placed

    default, flat = ScannerSimulator(SimConfig(seed=51, style="classic")), \
        ScannerSimulator(SimConfig(seed=51, style="classic", slant=0.0))
    slanted = ScannerSimulator(SimConfig(seed=51, style="classic", slant=1.0))
    turns = []
    for i in range(40):
        np.testing.assert_array_equal(default.frame(i).image, flat.frame(i).image)
        frame, placed = slanted._draw(i, frozenset())
        for p in placed:
            if p.part.name != "placenta":
                continue
            m = p.m
            assert m[0, 0] == pytest.approx(m[1, 1]) and m[0, 1] == pytest.approx(-m[1, 0])
            assert m[0, 0] ** 2 + m[1, 0] ** 2 == pytest.approx(1.0)  # a turn, no scaling
            turns.append(abs(float(np.arctan2(m[1, 0], m[0, 0]))))
            fx, fy = np.linalg.solve(np.eye(2) - m[:, :2], m[:, 2])  # the point the turn keeps
            mask, ox, oy = Placed(p.part, np.array([[1.0, 0, 0], [0, 1.0, 0]])).footprint()
            assert mask[int(round(fy)) - oy, int(round(fx)) - ox] > 0  # on the band itself
            assert ("placenta" in frame.boxes) == bool(frame.labels[5])
    assert turns and all(0.2 <= t <= 0.8 for t in turns)
    assert open_dataset("sim:n=2,seed=2,style=classic+train,slant=0.5").sims[1].config.slant == 0.5


@pytest.mark.parametrize("bad", [-0.1, 1.5, True, "0.5", None])
def test_the_slanted_share_is_validated(bad):
    with pytest.raises(ValueError, match="slant"):
        SimConfig(slant=bad)
