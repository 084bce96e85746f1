import numpy as np
import pytest

from streamer.config import PostprocessConfig
from streamer.postprocess import Localisation, Postprocessor, localise, maps_uint8, probabilities
from streamer.preprocess import Crop

CROP = Crop(x=100, y=50, w=800, h=400, size=200)  # 4 source px per input px across, 2 down


def test_peak_and_box_land_on_source_pixels():
    m = np.zeros((10, 10), np.float32)  # one map cell = 20 input px = 80 x 40 source px
    m[3:5, 6] = 1.0  # a blob at cells x=6, y=3..4
    where = localise(m, CROP, fraction=0.5)
    px, py = where.peak
    assert 100 + 6 * 80 <= px < 100 + 7 * 80 and 50 + 3 * 40 <= py < 50 + 5 * 40
    x0, y0, x1, y1 = where.box
    assert abs(x0 - (100 + 6 * 80)) <= 45 and abs(x1 - (100 + 7 * 80)) <= 45
    assert abs(y0 - (50 + 3 * 40)) <= 25 and abs(y1 - (50 + 5 * 40)) <= 25


def test_box_is_the_component_holding_the_peak():
    m = np.zeros((10, 10), np.float32)
    m[1, 1] = 1.0
    m[8, 8] = 0.9  # a second, weaker blob far away stays out of the box
    x0, y0, x1, y1 = localise(m, CROP).box
    assert x1 < 100 + 4 * 80 and y1 < 50 + 4 * 40


def test_no_box_without_a_positive_peak():
    assert localise(-np.ones((7, 7), np.float32), CROP).box is None


def test_sigmoid_and_softmax():
    s = np.array([0.0, 2.0, -2.0])
    np.testing.assert_allclose(probabilities(s, "sigmoid"), 1 / (1 + np.exp(-s)))
    p = probabilities(s, "softmax")
    assert p.sum() == pytest.approx(1.0) and p.argmax() == 1
    with pytest.raises(ValueError):
        probabilities(s, "relu")


def test_hysteresis_on_a_scripted_sequence():
    cfg = PostprocessConfig(threshold=0.6, hysteresis=0.2)
    post = Postprocessor(("head",), "sigmoid", cfg)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    seq = [0.5, 0.65, 0.5, 0.45, 0.39, 0.55, 0.61]
    want = [False, True, True, True, False, False, True]
    maps = np.zeros((1, 4, 4), np.float32)
    got = [post.process(np.array([logit(p)]), maps, CROP)[0][0].present for p in seq]
    assert got == want


def test_smoothing_damps_a_one_frame_spike():
    post = Postprocessor(("head",), "sigmoid", PostprocessConfig(smoothing=0.8))
    maps = np.zeros((1, 4, 4), np.float32)
    flags = [post.process(np.array([s]), maps, CROP)[0][0].present for s in (-3, -3, 5, -3)]
    assert flags == [False, False, False, False]


def test_per_class_thresholds_softmax_with_background():
    classes = ("head", "spine", "background")
    cfg = PostprocessConfig(thresholds={"spine": 0.2})
    post = Postprocessor(classes, "softmax", cfg)
    maps = np.random.default_rng(0).random((3, 7, 7)).astype(np.float32)
    results, u8 = post.process(np.array([0.0, 0.5, 0.9]), maps, CROP)
    assert [r.name for r in results] == list(classes)
    assert sum(r.score for r in results) == pytest.approx(1.0)
    assert [r.present for r in results] == [False, True, False]
    assert u8.dtype == np.uint8 and u8.shape == (3, 7, 7) and (u8.max(axis=(1, 2)) == 255).all()
    assert all(r.peak is not None and r.box is not None for r in results[:2])
    assert results[2].peak is None and results[2].box is None  # background names no place


def test_maps_uint8_handles_negative_and_flat_maps():
    m = np.stack([-np.ones((2, 2)), np.zeros((2, 2)), np.array([[0, 1], [2, 4]])]).astype(np.float32)
    u8 = maps_uint8(m)
    assert u8[0].max() == 0 and u8[1].max() == 0 and u8[2, 1, 1] == 255 and u8[2, 1, 0] == 128


def test_no_maps_when_disabled():
    post = Postprocessor(("head",), "sigmoid", PostprocessConfig(maps=False))
    assert post.process(np.zeros(1), np.zeros((1, 3, 3), np.float32), CROP)[1] is None


def test_polar_maps_localise_on_the_sector():
    import math

    from engines.localisation import locate
    from engines.polar import PolarMap, SectorGeometry
    from streamer.preprocess import PolarCrop

    pm = PolarMap(SectorGeometry((300, -40), 60, 500, -math.radians(40), math.radians(40)), 200)
    crop = PolarCrop(10, 20, 600, 480, 200, pm)
    m = np.zeros((10, 10), np.float32)
    m[4:6, 4:6] = 1.0  # the middle of the polar image: straight below the apex
    where = localise(m, crop)
    (u, v), _ = locate(m, 200)
    px, py = pm.polar_to_image(u, v)
    assert where.peak == (int(10 + px), int(20 + py))
    assert abs(where.peak[0] - 310) <= 20 and abs(where.peak[1] - (-20 + 280)) <= 25
    x0, y0, x1, y1 = pm.box_to_image((80, 80, 120, 120))  # the box must bound the annular sector
    assert where.box == (round(10 + x0), round(20 + y0), round(10 + x1), round(20 + y1))


def _one_map_reference(class_map, size, fraction=0.5):
    """The documented rule, one map at a time: 4 grid cells per map cell, the peak, and the
    connected region above ``fraction`` of the way from max(min, 0) to the peak that holds it."""
    import cv2

    grid = min(size, 4 * max(class_map.shape))
    k = size / grid
    up = cv2.resize(class_map, (grid, grid), interpolation=cv2.INTER_LINEAR)
    v, u = np.unravel_index(int(np.argmax(up)), up.shape)
    top, low = float(up[v, u]), max(float(up.min()), 0.0)
    if not top > 0 or top - low <= 1e-12 * max(abs(top), 1.0):
        return ((u + 0.5) * k, (v + 0.5) * k), None
    _, labels, stats, _ = cv2.connectedComponentsWithStats(
        (up >= low + fraction * (top - low)).astype(np.uint8), connectivity=8)
    bx, by, bw, bh, _ = stats[labels[v, u]]
    return ((u + 0.5) * k, (v + 0.5) * k), (bx * k, by * k, (bx + bw) * k, (by + bh) * k)


@pytest.mark.parametrize("classes", [1, 3, 6, 7])
def test_all_classes_at_once_match_one_map_at_a_time(classes):
    import cv2

    from engines.localisation import locate_all

    rng = np.random.default_rng(classes)
    for trial in range(40):
        h = int(rng.integers(3, 20))
        maps = rng.normal(size=(h, h, classes)).astype(np.float32)
        maps = cv2.GaussianBlur(maps, (5, 5), 1.2).reshape(h, h, classes).transpose(2, 0, 1)
        maps = np.ascontiguousarray(maps)
        maps[0] -= 5 * (trial % 5 == 0)  # no positive peak: no box
        maps[-1] = 0.5 if trial % 7 == 0 else maps[-1]  # flat: no box
        peaks, boxes, has_box = locate_all(maps, 224, 0.5)
        for i in range(classes):
            peak, box = _one_map_reference(maps[i], 224)
            assert tuple(peaks[i]) == pytest.approx(peak)
            assert has_box[i] == (box is not None)
            if box is not None:
                assert tuple(boxes[i]) == pytest.approx(box)


def test_a_map_of_nan_gives_no_peak_and_no_box_and_a_partly_nan_map_ignores_the_nans():
    """A model that emits NaN must not publish a peak somewhere on the screen."""
    empty = np.full((10, 10), np.nan, np.float32)
    assert localise(empty, CROP) == Localisation(None, None)
    post = Postprocessor(("head", "spine"), "sigmoid", PostprocessConfig(maps=False))
    blob = np.zeros((10, 10), np.float32)
    blob[1, 1], blob[6, 6] = np.nan, 1.0
    (head, spine), _ = post.process(np.zeros(2), np.stack([empty, blob]), CROP)
    assert (head.peak, head.box) == (None, None)
    assert spine.peak == localise(np.where(np.isnan(blob), 0, blob), CROP).peak  # the 1.0, not the NaN
