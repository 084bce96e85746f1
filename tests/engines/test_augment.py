"""Photometric augmentation: each frame redrawn in its own display settings, anatomy and field kept."""

import numpy as np
import pytest
import torch

from engines.augment import photometric
from engines.training import TrainConfig, Trainer


def _frames(n=4, size=48):
    """Frames with a dark disc on a mid-grey ramp, and a field of view (0 outside) like a polar frame."""
    yy, xx = np.mgrid[:size, :size]
    base = (60 + 120 * xx / size).astype(np.uint8)
    base[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 5) ** 2] = 15
    base[:, :4] = 0
    return np.repeat(base[None], n, axis=0)


def test_strength_zero_is_an_unchanged_copy():
    x = _frames()
    out = photometric(x, np.random.default_rng(0), 0.0)
    assert out is not x and np.array_equal(out, x)


def test_each_frame_gets_its_own_look_and_the_field_of_view_is_kept():
    x = _frames(8)
    out = photometric(x, np.random.default_rng(1), 1.0)
    assert out.shape == x.shape and out.dtype == np.uint8
    assert (out[:, :, :4] == 0).all()  # outside the field stays black
    assert all(not np.array_equal(o, x[0]) for o in out)
    assert len({o.tobytes() for o in out}) == len(out)  # identical inputs, eight different looks
    assert np.array_equal(photometric(x, np.random.default_rng(1), 1.0), out)  # the rng decides


def test_the_anatomy_stays_where_it_was():
    """A display change, not a geometric one: the dark disc is still the darkest region."""
    x = _frames(16)
    for o in photometric(x, np.random.default_rng(2), 1.0):
        disc, ramp = o[20:28, 20:28].mean(), o[4:12, 30:44].mean()
        assert disc < ramp


def test_strength_scales_how_far_frames_move():
    x = _frames(32)
    change = {s: np.abs(photometric(x, np.random.default_rng(3), s).astype(float) - x).mean()
              for s in (0.2, 1.0)}
    assert 0 < change[0.2] < change[1.0]


@pytest.mark.parametrize("strength", [-0.1, 1.5])
def test_a_strength_outside_zero_to_one_is_refused(strength):
    with pytest.raises(ValueError, match="strength"):
        photometric(_frames(), np.random.default_rng(0), strength)
    with pytest.raises(ValueError, match="augment"):
        TrainConfig(data="sim:n=4", val="sim:n=4", out="x", augment=strength)


def test_the_trainer_feeds_augmented_frames_only_when_asked(tmp_path):
    def first_batch(augment):
        cfg = TrainConfig(data="sim:n=8,seed=1", val="sim:n=4,seed=2", out=str(tmp_path / str(augment)),
                          epochs=1, batch_size=8, input_size=64, progress=False, balanced=False,
                          hflip=False, augment=augment)
        trainer = Trainer(cfg, None, None)
        order = np.random.default_rng(cfg.seed).permutation(8)  # the trainer's own first draw
        x, _ = next(trainer._batches())
        return x, torch.from_numpy(trainer.train_x[order]).float().div(255).unsqueeze(1)
    plain, raw = first_batch(0.0)
    assert torch.equal(plain, raw)
    augmented, raw = first_batch(1.0)
    assert augmented.shape == raw.shape and (augmented - raw).abs().mean() > 0.01
