import math

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


@pytest.mark.parametrize("antialias", [True, False])
def test_a_dot_lands_in_its_polar_cell(antialias):
    import cv2

    pm = PolarMap(GEOM, (64, 96), antialias=antialias)
    for row, col in ((40, 30), (10, 80), (60, 5)):
        image = np.zeros((360, 480), np.uint8)
        x, y = pm.polar_to_image(col + 0.5, row + 0.5)
        cv2.circle(image, (round((x - 0.5) * 16), round((y - 0.5) * 16)), 48, 255, -1, cv2.LINE_AA, 4)
        polar = pm.to_polar(image).astype(np.float64)
        assert polar.shape == (64, 96) and pm.to_polar(image).dtype == np.uint8
        rows, cols = np.indices(polar.shape)
        r, c = (rows * polar).sum() / polar.sum(), (cols * polar).sum() / polar.sum()
        assert abs(r - row) < 0.5 and abs(c - col) < 0.5


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
