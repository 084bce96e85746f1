import math

import cv2
import numpy as np
import pytest

from engines.polar import PolarMap, SectorGeometry, estimate_geometry
from engines.simulator import ScannerSimulator, SimConfig

GEOM = SectorGeometry((240.0, -30.0), 40.0, 380.0, math.radians(-35), math.radians(35))


def _frames(kind: str, style: str = "train", count: int = 4):
    sim = ScannerSimulator(SimConfig(seed=0, style=style))
    out = [f for f in (sim.frame(i) for i in range(40)) if f.geometry.kind == kind]
    return out[:count]


@pytest.mark.parametrize("style", ["train", "heldout"])
def test_geometry_of_simulated_sectors(style):
    for f in _frames("curvilinear", style):
        g = f.geometry
        for source in (f.fan_mask, f.image):
            e = estimate_geometry(source)
            assert e is not None
            # the simulator draws with pixel centres at integers; we put pixel edges there
            assert np.allclose(e.apex, (g.apex[0] + 0.5, g.apex[1] + 0.5), atol=3)
            assert abs(e.r_min - g.r0) < 3 and abs(e.r_max - g.r1) < 4
            assert abs(math.degrees(e.angle_min + g.half_angle)) < 1
            assert abs(math.degrees(e.angle_max - g.half_angle)) < 1


def test_linear_probes_have_no_sector():
    frames = _frames("linear", count=6)
    assert {f.geometry.apex is None for f in frames} == {True, False}  # rectangles, trapezoids
    for f in frames:
        assert estimate_geometry(f.fan_mask) is None and estimate_geometry(f.image) is None
    assert estimate_geometry(np.zeros((100, 100), np.uint8)) is None


def test_geometry_is_validated():
    with pytest.raises(ValueError):
        SectorGeometry((0, 0), 50, 40, -0.5, 0.5)
    with pytest.raises(ValueError):
        SectorGeometry((0, 0), 10, 40, 0.5, -0.5)
    with pytest.raises(ValueError):
        SectorGeometry((0, float("nan")), 10, 40, -0.5, 0.5)


def test_point_round_trip():
    pm = PolarMap(GEOM, (100, 150))
    u, v = np.meshgrid(np.linspace(0, 150, 31), np.linspace(0, 100, 21))
    x, y = pm.polar_to_image(u, v)
    u2, v2 = pm.image_to_polar(x, y)
    assert np.abs(u2 - u).max() < 1e-6 and np.abs(v2 - v).max() < 1e-6
    x2, y2 = pm.polar_to_image(u2, v2)
    assert np.hypot(x2 - x, y2 - y).max() < 1e-6
    assert np.allclose(pm.polar_to_image(75, 0), (240, 10))  # top centre: apex + r_min down


@pytest.mark.parametrize("antialias,shrink", [(True, "area"), (False, "area"), (True, "halving")])
def test_a_dot_lands_in_its_polar_cell(antialias, shrink):
    import cv2

    pm = PolarMap(GEOM, (64, 96), antialias=antialias, shrink=shrink)
    for row, col in ((40, 30), (10, 80), (60, 5)):
        image = np.zeros((360, 480), np.uint8)
        x, y = pm.polar_to_image(col + 0.5, row + 0.5)
        cv2.circle(image, (round((x - 0.5) * 16), round((y - 0.5) * 16)), 48, 255, -1, cv2.LINE_AA, 4)
        polar = pm.to_polar(image).astype(np.float64)
        assert polar.shape == (64, 96) and pm.to_polar(image).dtype == np.uint8
        rows, cols = np.indices(polar.shape)
        r, c = (rows * polar).sum() / polar.sum(), (cols * polar).sum() / polar.sum()
        assert abs(r - row) < 0.5 and abs(c - col) < 0.5


def test_halving_shrinks_until_the_sampling_step_is_at_most_1_5():
    pm = PolarMap(GEOM, (64, 96), shrink="halving")
    assert pm.shrink > 3  # this sector is sampled ~5 px apart at 64x96
    assert pm.halvings == math.ceil(math.log2(pm.shrink / 1.5)) and pm.shrink / 2**pm.halvings <= 1.5
    assert PolarMap(GEOM, (400, 800), shrink="halving").halvings == 0  # finer than the image
    with pytest.raises(ValueError, match="shrink"):
        PolarMap(GEOM, 64, shrink="lanczos")


@pytest.mark.parametrize("shrink", ["area", "halving"])
def test_speckle_finer_than_the_polar_grid_does_not_alias(shrink):
    """One-pixel stripes average out to grey; point sampling (no anti-aliasing) would keep their
    full contrast as beats across the frame."""
    image = np.zeros((360, 480), np.uint8)
    image[:, ::2] = 200
    inside = slice(8, -8)
    plain = PolarMap(GEOM, (64, 96), antialias=False).to_polar(image)[inside, inside]
    smooth = PolarMap(GEOM, (64, 96), shrink=shrink).to_polar(image)[inside, inside]
    assert plain.std() > 40
    assert smooth.std() < 8 and abs(float(smooth.mean()) - 100) < 8


def test_halving_greys_a_colour_crop_after_shrinking_with_the_grey_crops_values():
    import cv2

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (360, 480), dtype=np.uint8)
    pm = PolarMap(GEOM, (64, 96), shrink="halving")
    as_bgr = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    assert np.array_equal(pm.to_polar(as_bgr), pm.to_polar(grey))  # a grey screen: identical
    colour = rng.integers(0, 256, (360, 480, 3), dtype=np.uint8)
    diff = pm.to_polar(colour).astype(int) - pm.to_polar(cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY))
    assert np.abs(diff).max() <= 2  # rounding only


def test_area_shrink_greys_a_colour_crop_first_as_its_older_models_were_trained():
    import cv2

    colour = np.random.default_rng(1).integers(0, 256, (360, 480, 3), dtype=np.uint8)
    pm = PolarMap(GEOM, (64, 96))
    assert pm.method == "area" and pm.shrink > 1.5
    assert np.array_equal(pm.to_polar(colour), pm.to_polar(cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)))


def test_boxes_map_both_ways():
    pm = PolarMap(GEOM, 224)
    for b in ((200, 100, 260, 160), (60, 150, 140, 250), (230, 20, 300, 60)):
        p = pm.box_to_polar(b)
        back = pm.box_to_image(p)
        assert back[0] <= b[0] + 1e-6 and back[1] <= b[1] + 1e-6
        assert back[2] >= b[2] - 1e-6 and back[3] >= b[3] - 1e-6
    # a polar box straddling the centre line: the outer arc's lowest point bounds it
    x0, y0, x1, y1 = pm.box_to_image((100, 0, 124, 224))
    assert abs(y1 - (GEOM.apex[1] + GEOM.r_max)) < 1e-6
    assert pm.box_to_polar((-50, -50, 600, 600)) == (0.0, 0.0, 224.0, 224.0)  # clipped


def test_boxes_in_closed_form_match_the_sampled_outline():
    """Many polar boxes at once (the streamer's postprocess) give the sampled outline's bounds,
    for sectors left of, across and right of straight down."""
    rng = np.random.default_rng(0)
    for a0, a1 in ((-0.9, -0.2), (-0.5, 0.6), (0.1, 0.8)):
        pm = PolarMap(SectorGeometry((300.0, -40.0), 50.0, 500.0, a0, a1), (96, 128))
        boxes = np.sort(rng.uniform(0, 1, (50, 2, 2)), axis=1) * [128, 96]
        boxes = boxes.transpose(0, 2, 1).reshape(50, 4)[:, [0, 2, 1, 3]]  # x0, y0, x1, y1
        closed = pm.boxes_to_image(boxes)
        for box, got in zip(boxes, closed, strict=True):
            assert tuple(got) == pytest.approx(pm.box_to_image(tuple(box), n=400), abs=0.05)


def _halved_whole(image: np.ndarray, levels: int) -> np.ndarray:
    for _ in range(levels):
        h, w = image.shape[0] // 2, image.shape[1] // 2
        image = cv2.resize(image[: 2 * h, : 2 * w], (w, h), interpolation=cv2.INTER_LINEAR)
    return image


@pytest.mark.parametrize("trial", range(6))
def test_halving_only_the_bands_the_remap_reads_gives_the_whole_images_polar_frame(trial):
    """The pixels outside the bands are never read: filled with 0 or 255, the polar frame is the
    one the whole crop's halvings give."""
    from engines.polar import halve_bands

    rng = np.random.default_rng(trial)
    h, w = int(rng.integers(400, 1000)), int(rng.integers(500, 1300))
    half = math.radians(rng.uniform(15, 60))
    apex = (w * rng.uniform(0.35, 0.65), -rng.uniform(0, 150))
    off = math.radians(rng.uniform(-10, 10))
    g = SectorGeometry(apex, rng.uniform(10, 120), h - apex[1] - rng.uniform(0, 60), off - half, off + half)
    pm = PolarMap(g, int(rng.choice([224, 96])), shrink="halving")
    image = rng.integers(0, 256, (h, w, 3) if trial % 2 else (h, w), dtype=np.uint8)
    m1, m2, sh, sw, levels, bands = pm._table(h, w)
    assert levels >= 1
    whole = _halved_whole(image, levels)
    if whole.ndim == 3:
        whole = cv2.cvtColor(whole, cv2.COLOR_BGR2GRAY)
    want = cv2.remap(whole, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    assert np.array_equal(pm.to_polar(image), want)
    for fill in (0, 255):
        small = halve_bands(image, levels, (sh, sw), bands,
                            out=np.full((sh, sw, *image.shape[2:]), fill, np.uint8))
        if small.ndim == 3:
            small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        assert np.array_equal(cv2.remap(small, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT), want)
