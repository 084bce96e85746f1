import cv2
import numpy as np
import pytest

from engines.classes import REGIONS
from engines.simulator import LiveFeed, ScannerSimulator, ScreenRenderer, SimConfig


@pytest.fixture(scope="module")
def sim():
    return ScannerSimulator(SimConfig(seed=3))


@pytest.fixture(scope="module")
def frames(sim):
    return [sim.frame(i) for i in range(150)]


@pytest.fixture(scope="module")
def classic_frames():
    sim = ScannerSimulator(SimConfig(seed=3, style="classic"))
    return [sim.frame(i) for i in range(60)]


def test_config_is_validated():
    assert SimConfig().size == (360, 480)
    for bad in ({"style": "test"}, {"size": (10, 10)}, {"size": "big"}, {"seed": -1}):
        with pytest.raises(ValueError):
            SimConfig(**bad)


def test_frames_are_deterministic_and_order_independent(sim):
    a = sim.frame(7)
    other = ScannerSimulator(SimConfig(seed=3))
    other.frame(99)
    b = other.frame(7)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert a.boxes == b.boxes
    assert not np.array_equal(a.image, ScannerSimulator(SimConfig(seed=4)).frame(7).image)


def test_frame_contract(frames):
    for f in frames[:20]:
        assert f.image.dtype == np.uint8 and f.image.shape == (360, 480)
        assert f.fan_mask.dtype == bool and f.fan_mask.shape == (360, 480)
        assert f.labels.dtype == np.float32 and f.labels.shape == (len(REGIONS),)
        assert set(f.boxes) == {c for c, v in zip(REGIONS, f.labels, strict=True) if v == 1}
        assert f.image[~f.fan_mask].max() == 0  # black outside the fan
        for x0, y0, x1, y1 in f.boxes.values():
            assert 0 <= x0 < x1 <= 480 and 0 <= y0 < y1 <= 360


def test_class_balance_empty_frames_and_cooccurrence(frames):
    lab = np.stack([f.labels for f in frames])
    freq = lab.mean(0)
    assert np.all((freq > 0.22) & (freq < 0.5)), freq
    empty = (lab.sum(1) == 0).mean()
    assert 0.04 < empty < 0.22, empty
    assert (lab.sum(1) >= 3).mean() > 0.1


@pytest.mark.parametrize("style, p", [("classic", 4), ("train", 14)])
def test_boxes_are_tight_around_what_is_drawn(style, p):
    # p: how far a structure's echoes spread past its footprint (the PSF blur: the training
    # style's widest lateral blur has a sigma of 6.4 pixels)
    sim = ScannerSimulator(SimConfig(seed=3, style=style))
    checked = 0
    for f in (sim.frame(i) for i in range(40)):
        for name, (x0, y0, x1, y1) in f.boxes.items():
            hidden = sim._render(f.index, frozenset({name}))
            assert np.array_equal(hidden.labels, f.labels)  # hiding only changes pixels
            diff = np.abs(f.image.astype(int) - hidden.image) > 0
            ys, xs = np.nonzero(diff)
            assert len(ys) > 0, name
            inside = (xs >= x0 - p) & (xs < x1 + p) & (ys >= y0 - p) & (ys < y1 + p)
            # outside its box a structure only changes what lies deeper (its acoustic shadow)
            assert (ys[~inside] >= y0).mean() > 0.99 if (~inside).any() else True, name
            brighter = f.image[ys, xs] > hidden.image[ys, xs]  # echoes, not shadow
            assert inside[brighter].mean() > 0.95, name
            # the structure reaches every side of its box
            xi, yi = xs[inside], ys[inside]
            assert xi.min() <= x0 + p and xi.max() >= x1 - 1 - p, name
            assert yi.min() <= y0 + p and yi.max() >= y1 - 1 - p, name
            checked += 1
    assert checked > 30


def test_structures_differ_from_background(classic_frames, frames):
    # bone echoes (skull, vertebrae, femur) are far brighter than the fan's median; in the wide
    # training style too, if less (low gain, haze and noise are part of it)
    for f in frames[:60]:
        med = np.median(f.image[f.fan_mask])
        for name in ("head", "spine", "limbs"):
            if name in f.boxes:
                x0, y0, x1, y1 = (int(round(v)) for v in f.boxes[name])
                assert np.percentile(f.image[y0:y1, x0:x1], 98) > med + 10, name
    for f in classic_frames:
        med = np.median(f.image[f.fan_mask])
        for name in ("head", "spine", "limbs"):
            if name in f.boxes:
                x0, y0, x1, y1 = (int(round(v)) for v in f.boxes[name])
                assert np.percentile(f.image[y0:y1, x0:x1], 98) > med + 30, name
        if "abdomen" in f.boxes:  # the anechoic stomach bubble
            x0, y0, x1, y1 = (int(round(v)) for v in f.boxes["abdomen"])
            crop = f.image[y0:y1, x0:x1][f.fan_mask[y0:y1, x0:x1]]
            assert np.percentile(crop, 2) < 25


def test_heldout_style_differs(classic_frames):
    frames = classic_frames
    held = ScannerSimulator(SimConfig(seed=3, style="heldout"))
    hf = [held.frame(i) for i in range(30)]
    train_angle = max(f.geometry.half_angle for f in frames if f.geometry.kind == "curvilinear")
    assert min(f.geometry.half_angle for f in hf) > train_angle
    med_t = np.mean([np.median(f.image[f.fan_mask]) for f in frames[:30]])
    med_h = np.mean([np.median(f.image[f.fan_mask]) for f in hf])
    assert med_h - med_t > 20


def test_training_image_is_the_resized_fan(sim):
    f = sim.frame(11)
    img, labels, boxes = sim.training_image(11, input_size=128)
    assert img.shape == (128, 128) and img.dtype == np.uint8
    assert np.array_equal(img, cv2.resize(f.image, (128, 128), interpolation=cv2.INTER_AREA))
    assert np.array_equal(labels, f.labels)
    for k, (x0, y0, x1, y1) in boxes.items():
        assert np.allclose((x0, y0, x1, y1), np.array(f.boxes[k]) * ([128 / 480, 128 / 360] * 2))


def test_screen_places_the_fan_at_its_roi(sim):
    r = ScreenRenderer(1920, 1080, seed=1)
    a, b = sim.frame(2), sim.frame(3)
    sa, sb = r.render(a, 5), r.render(b, 5)
    x, y, w, h = sa.fan_roi
    assert sa.image.shape == (1080, 1920, 3) and sa.image.dtype == np.uint8
    assert 0 <= x and x + w <= 1920 and 0 <= y and y + h <= 1080 and w > 480
    outside = np.ones((1080, 1920), bool)
    outside[y:y + h, x:x + w] = False
    assert np.array_equal(sa.image[outside], sb.image[outside])  # UI does not depend on the fan
    assert sa.image[outside].max() > 150  # there is text on it
    crop = cv2.cvtColor(sa.image[y:y + h, x:x + w], cv2.COLOR_BGR2GRAY)
    crop = cv2.resize(crop, (224, 224), interpolation=cv2.INTER_AREA)
    ref, _, _ = sim.training_image(2)
    assert np.abs(crop.astype(int) - ref).mean() < 3
    for k, (x0, y0, x1, y1) in sa.boxes.items():
        assert x <= x0 < x1 <= x + w and y <= y0 < y1 <= y + h, k
    assert np.array_equal(sa.labels, a.labels)
    native = ScreenRenderer(960, 540, fan_scale=1.0).render(a, 0)
    assert native.fan_roi[2:] == (480, 360)


def test_live_feed_is_coherent_and_sweeps():
    feed = LiveFeed(seed=2, fps=30.0, width=1280, height=720)
    f0, f1, f150 = feed.frame_at(0), feed.frame_at(1), feed.frame_at(150)
    x, y, w, h = f0.fan_roi

    def fan(f):
        return f.image[y:y + h, x:x + w, 0].astype(float)

    near, far = np.abs(fan(f0) - fan(f1)).mean(), np.abs(fan(f0) - fan(f150)).mean()
    assert near * 3 < far, (near, far)
    labels = {tuple(feed.fan_frame_at(s).labels) for s in range(0, 30 * 40, 30)}
    assert len(labels) >= 4
    again = LiveFeed(seed=2, fps=30.0, width=1280, height=720)
    assert np.array_equal(again.next().image, f0.image)
    assert np.array_equal(again.next().image, f1.image)
    assert np.array_equal(again.frame_at(150).image, f150.image)
