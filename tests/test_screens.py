"""The realistic scanner-screen generator (tests/screens.py): what its users rely on."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from engines.classes import REGIONS
from engines.simulator import LiveFeed
from tests.screens import ANNOTATIONS, HospitalScreen, ScreenSpec, main, write_video

ON_FAN = ("calipers", "text", "arrow")


@pytest.fixture(scope="module")
def feed():
    return LiveFeed(seed=11)


def truth_mask(g, shape) -> np.ndarray:
    """uint8 mask of the pixels whose centres lie in sector g (computed here, from the view)."""
    H, W = shape
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32) + 0.5
    dx, dy = xs - g.apex[0], ys - g.apex[1]
    r, a = np.hypot(dx, dy), np.arctan2(dx, dy)
    inside = (r >= g.r_min) & (r <= g.r_max) & (a >= g.angle_min) & (a <= g.angle_max)
    return inside.astype(np.uint8)


def grow(mask: np.ndarray, px: int) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask, k) > 0


def shrink(mask: np.ndarray, px: int) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.erode(mask, k, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0


def rect_mask(shape, rects) -> np.ndarray:
    m = np.zeros(shape, bool)
    for x, y, w, h in rects:
        m[max(y, 0):y + h, max(x, 0):x + w] = True
    return m


def expected_fan(feed, view, shape, image=None) -> np.ndarray:
    """The feed's fan image warped onto the screen by the mapping the view's sector implies."""
    fg = feed.geom
    g = view.sector
    s = g.r_max / fg.r1
    ax, ay = fg.apex[0] + 0.5, fg.apex[1] + 0.5  # the simulator draws with centres at integers
    ox, oy = g.apex[0] - s * ax, g.apex[1] - s * ay
    m = np.array([[s, 0, ox + 0.5 * s - 0.5], [0, s, oy + 0.5 * s - 0.5]])
    src = feed.fan_frame_at(view.source_frame).image if image is None else image
    interp = cv2.INTER_NEAREST if src.dtype == bool else cv2.INTER_LINEAR
    return cv2.warpAffine(src.astype(np.uint8), m, shape[::-1], flags=interp)


def check_view_content(feed, shown, view, area, tol=1):
    """Inside the sector the screen carries the feed's fan (grey, as warped); the view's rect is
    the visible sector's bounding rectangle."""
    img = shown.image
    shape = img.shape[:2]
    fg = feed.geom
    g = view.sector
    s = g.r_max / fg.r1
    assert g.r_min == pytest.approx(s * fg.r0, rel=1e-9)
    assert g.angle_min == pytest.approx(-fg.half_angle) and g.angle_max == pytest.approx(fg.half_angle)
    in_area = rect_mask(shape, [area])
    truth = truth_mask(g, shape) & in_area
    inner = shrink(truth.astype(np.uint8), 3)
    if shown.annotation_mask is not None:
        inner &= ~grow(shown.annotation_mask.astype(np.uint8), 2)
    assert inner.sum() > 1000
    exp = expected_fan(feed, view, shape)
    grey = img[..., 0].astype(int)
    assert np.array_equal(img[..., 0][inner], img[..., 2][inner])  # grey: no colour
    assert np.abs(grey[inner] - exp[inner]).max() <= tol
    # the fan's own mask, warped, agrees with the sector to a native pixel at its edges
    fan = expected_fan(feed, view, shape, feed.fan_frame_at(0).fan_mask) > 0
    diff = (fan & in_area) ^ (truth > 0)
    px = math.ceil(s) + 1
    assert not (diff & shrink(truth.astype(np.uint8), px)).any()
    assert not (diff & ~grow(truth.astype(np.uint8), px) & in_area).any()
    ys, xs = np.nonzero(truth)
    x, y, w, h = view.rect
    assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return truth


@pytest.mark.parametrize("ui", ["grey", "black"])
def test_sector_geometry_matches_the_drawn_fan(feed, ui):
    screen = HospitalScreen(feed, ScreenSpec(ui=ui, seed=4))
    for i in (0, 17):
        shown = screen.frame(i)
        assert shown.image.shape == (1080, 1920, 3) and shown.image.dtype == np.uint8
        (view,) = shown.views
        assert view.live and view.source_frame == i and not shown.frozen
        truth = check_view_content(feed, shown, view, screen.image_area)
        # the sector is the feed's fan at ~75-80% of the screen height, in the image area
        assert 0.72 * 1080 <= feed.size[0] * view.sector.r_max / feed.geom.r1 <= 0.81 * 1080
        # the image area beyond the sector is black, but for the depth scale and the mark
        fur = screen.furniture(i)
        assert {"depth0", "mark0"} <= set(fur)
        bleed = math.ceil(view.sector.r_max / feed.geom.r1) + 2  # the native fan's raster edge
        outside = (rect_mask(truth.shape, [screen.image_area]) & ~grow(truth, bleed)
                   & ~rect_mask(truth.shape, [fur["depth0"], fur["mark0"]]))
        assert shown.image[outside].max() <= 4
        assert shown.annotation_mask is None and not shown.doppler


def test_labels_and_boxes_are_the_feeds_in_screen_pixels(feed):
    screen = HospitalScreen(feed, ScreenSpec(width=1280, height=720, seed=1))
    fg = feed.geom
    for i in (0, 40, 90):
        fr = feed.fan_frame_at(i)
        view = screen.frame(i).views[0]
        np.testing.assert_array_equal(view.labels, fr.labels)
        assert view.labels.dtype == np.float32 and view.labels.shape == (len(REGIONS),)
        s = view.sector.r_max / fg.r1
        ox = view.sector.apex[0] - s * (fg.apex[0] + 0.5)
        oy = view.sector.apex[1] - s * (fg.apex[1] + 0.5)
        assert set(view.boxes) == set(fr.boxes)
        x, y, w, h = view.rect
        for k, (x0, y0, x1, y1) in fr.boxes.items():
            want = (s * x0 + ox, s * y0 + oy, s * x1 + ox, s * y1 + oy)
            got = view.boxes[k]
            clipped = (max(want[0], x), max(want[1], y), min(want[2], x + w), min(want[3], y + h))
            assert got == pytest.approx(clipped, abs=1e-6)


@pytest.mark.parametrize("seed,ui,dual", [(0, "grey", False), (1, "black", False),
                                          (2, "grey", True), (3, "black", True)])
def test_bodymark_and_resultbox_lie_outside_the_sector(feed, seed, ui, dual):
    base = ScreenSpec(ui=ui, dual=dual, seed=seed)
    plain = HospitalScreen(feed, base)
    marked = HospitalScreen(feed, ScreenSpec(ui=ui, dual=dual, seed=seed,
                                             annotations=("bodymark", "resultbox")))
    a, b = plain.frame(5), marked.frame(5)
    fur = marked.furniture(5)
    assert {"bodymark", "resultbox"} <= set(fur)
    shape = a.image.shape[:2]
    sectors = np.zeros(shape, np.uint8)
    for v in b.views:
        sectors |= truth_mask(v.sector, shape)
    area = rect_mask(shape, [marked.image_area])
    for name in ("bodymark", "resultbox"):
        x, y, w, h = fur[name]
        box = rect_mask(shape, [fur[name]])
        assert (box <= area).all(), name  # inside the image area
        assert not (box & grow(sectors, 2)).any(), name  # outside every sector
        if name == "bodymark":
            assert 70 <= w <= 110 and w == h
        else:
            assert 30 <= h <= 130 and w > h
        near = [min(x - marked.image_area[0], marked.image_area[0] + marked.image_area[2] - x - w),
                min(y - marked.image_area[1], marked.image_area[1] + marked.image_area[3] - y - h)]
        assert min(near) < 0.2 * marked.image_area[3]  # by the area's edge
    changed = np.any(a.image != b.image, axis=2)
    assert changed.sum() > 500
    assert (changed <= rect_mask(shape, [fur["bodymark"], fur["resultbox"]])).all()
    assert b.annotation_mask is None  # not on the fan


@pytest.mark.parametrize("seed", [0, 7])
def test_on_fan_annotations_lie_in_the_sector_and_stay_put(feed, seed):
    changes = ((30, 0.5, 0.0, 0.0),)
    plain = HospitalScreen(feed, ScreenSpec(seed=seed, changes=changes))
    marked = HospitalScreen(feed, ScreenSpec(seed=seed, changes=changes, annotations=ON_FAN))
    masks = []
    for i in (0, 9, 30, 31):
        a, b = plain.frame(i), marked.frame(i)
        mask = b.annotation_mask
        assert mask is not None and mask.dtype == bool and mask.shape == (1080, 1920)
        truth = truth_mask(b.views[0].sector, mask.shape) > 0
        assert (mask <= (truth & rect_mask(mask.shape, [marked.image_area]))).all()
        changed = np.any(a.image != b.image, axis=2)
        assert (changed <= mask).all() and changed.sum() > 0.5 * mask.sum()
        # the three are drawn: colour (calipers), white, and some pixels of each
        assert mask.sum() > 600
        masks.append(mask)
        check_view_content(feed, b, b.views[0], marked.image_area)
    assert np.array_equal(masks[0], masks[1]) and np.array_equal(masks[2], masks[3])
    assert not np.array_equal(masks[1], masks[2])  # the sector halved: they moved inside it


def test_calipers_text_and_arrow_look_right(feed):
    s = HospitalScreen(feed, ScreenSpec(seed=3, annotations=("calipers",)))
    shown = s.frame(0)
    hsv = cv2.cvtColor(shown.image, cv2.COLOR_BGR2HSV)
    px = hsv[shown.annotation_mask]
    hue = px[px[:, 1] > 150, 0]  # yellow (~30) or green (~60), saturated
    assert len(hue) > 100 and (np.all(np.abs(hue - 30) < 8) or np.all(np.abs(hue - 60) < 12))
    n, _ = cv2.connectedComponents(shown.annotation_mask.astype(np.uint8))
    assert n - 1 >= 10  # two markers, a label and a dotted line's dots
    for name in ("text", "arrow"):
        shown = HospitalScreen(feed, ScreenSpec(seed=3, annotations=(name,))).frame(0)
        ys, xs = np.nonzero(shown.annotation_mask)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        if name == "text":
            assert 18 <= h <= 40 and w > h
        else:
            assert 55 <= math.hypot(h, w) <= 110
        full = shown.annotation_mask & np.all(shown.image >= 200, axis=2)
        assert full.sum() > 0.3 * shown.annotation_mask.sum()  # white or yellow ink
        assert np.all(shown.image[full][:, 2] >= 200)


def test_frozen_frames_repeat_the_first_frame_exactly(feed):
    screen = HospitalScreen(feed, ScreenSpec(freeze=(3, 7), jpeg=60, annotations=("calipers",),
                                             width=960, height=540))
    first = screen.frame(3)
    assert not first.frozen and first.views[0].live
    for i in (6, 4, 5):
        shown = screen.frame(i)
        assert shown.frozen and np.array_equal(shown.image, first.image)
        assert all(not v.live and v.source_frame == 3 for v in shown.views)
        assert np.array_equal(shown.annotation_mask, first.annotation_mask)
    after = screen.frame(7)
    assert not after.frozen and after.views[0].live and after.views[0].source_frame == 7
    assert not np.array_equal(after.image, first.image)
    assert not np.array_equal(screen.frame(2).image, first.image)


def test_dual_view_shows_a_frozen_image_beside_the_live_one(feed):
    screen = HospitalScreen(feed, ScreenSpec(dual=True, frozen_at=40, seed=6))
    a, b = screen.frame(0), screen.frame(12)
    for shown in (a, b):
        live, frozen = shown.views
        assert live.live and not frozen.live and frozen.source_frame == 40
        assert live.rect[0] + live.rect[2] <= frozen.rect[0]  # side by side, the live one left, no overlap
        ax, ay, aw, ah = screen.image_area
        for x, y, w, h in (live.rect, frozen.rect):
            assert ax <= x and x + w <= ax + aw and ay <= y and y + h <= ay + ah
        check_view_content(feed, shown, frozen, screen.image_area)
        check_view_content(feed, shown, live, screen.image_area)
    x, y, w, h = a.views[1].rect
    assert np.array_equal(a.image[y:y + h, x:x + w], b.image[y:y + h, x:x + w])
    x, y, w, h = a.views[0].rect
    assert not np.array_equal(a.image[y:y + h, x:x + w], b.image[y:y + h, x:x + w])
    np.testing.assert_array_equal(a.views[1].labels, feed.fan_frame_at(40).labels)


def test_changes_scale_the_sector_about_its_apex_and_move_it(feed):
    H = 720
    spec = ScreenSpec(width=1280, height=H, changes=((8, 1.5, 0.1, -0.1), (4, 0.5, 0.0, 0.0)))
    assert spec.changes[0][0] == 4  # kept in frame order
    screen = HospitalScreen(feed, spec)
    g0, g1, g2 = (screen.frame(i).views[0].sector for i in (3, 4, 8))
    assert g1.apex == pytest.approx(g0.apex)
    assert (g1.r_min, g1.r_max) == pytest.approx((g0.r_min / 2, g0.r_max / 2))
    assert (g1.angle_min, g1.angle_max) == (g0.angle_min, g0.angle_max)
    assert g2.apex == pytest.approx((g0.apex[0] + 0.1 * H, g0.apex[1] - 0.1 * H))
    assert (g2.r_min, g2.r_max) == pytest.approx((g0.r_min * 1.5, g0.r_max * 1.5))
    r0, r1, r2 = (screen.frame(i).views[0].rect for i in (3, 4, 9))
    assert r1[2] < 0.55 * r0[2] and r1[3] < 0.6 * r0[3]
    ax, ay, aw, ah = screen.image_area
    x, y, w, h = r2  # the zoomed sector is clipped to the image area (its far arc, here)
    assert g2.apex[1] + g2.r_max > ay + ah
    assert ax <= x and ay <= y and x + w <= ax + aw and y + h == ay + ah
    for i in (4, 9):
        shown = screen.frame(i)
        check_view_content(feed, shown, shown.views[0], screen.image_area)
    assert screen.frame(30).views[0].sector == g2


def test_ui_colours(feed):
    black = HospitalScreen(feed, ScreenSpec(ui="black", seed=2)).frame(0).image
    assert np.median(black) <= 6
    screen = HospitalScreen(feed, ScreenSpec(ui="grey", seed=2))
    grey = screen.frame(0).image
    ui = ~rect_mask(grey.shape[:2], [screen.image_area])
    assert 40 <= np.median(grey[ui]) <= 70
    ax, ay, aw, ah = screen.image_area
    assert np.median(grey[ay:ay + ah, ax:ax + aw]) <= 4  # the image area is black
    assert np.median(black[ui]) <= 6 and black[ui].max() > 200  # text on black


def test_greybar_is_a_full_ramp(feed):
    screen = HospitalScreen(feed, ScreenSpec(seed=5))
    img = screen.frame(0).image
    x, y, w, h = screen.furniture(0)["greybar"]
    assert 22 <= w <= 30 and 240 <= h <= 270
    assert not rect_mask(img.shape[:2], [screen.image_area])[y:y + h, x:x + w].any()
    col = img[y:y + h, x + w // 2, 1].astype(int)
    assert col[0] == 255 and col[-1] == 0 and np.all(np.diff(col) <= 0)
    assert np.all(img[y:y + h, x:x + w] == img[y:y + h, x:x + 1])  # rows are flat
    assert "greybar" not in HospitalScreen(feed, ScreenSpec(seed=5, greybar=False)).furniture(0)


def test_doppler_colour_lies_inside_the_sector_only(feed):
    plain = HospitalScreen(feed, ScreenSpec(seed=8)).frame(2)
    screen = HospitalScreen(feed, ScreenSpec(seed=8, doppler=True))
    area = rect_mask((1080, 1920), [screen.image_area])
    hsv = cv2.cvtColor(plain.image, cv2.COLOR_BGR2HSV)
    assert not ((hsv[..., 1] > 100) & area).any()  # B-mode: no colour
    flows = []
    for i in (2, 9):
        shown = screen.frame(i)
        assert shown.doppler
        hsv = cv2.cvtColor(shown.image, cv2.COLOR_BGR2HSV)
        coloured = (hsv[..., 1] > 100) & (hsv[..., 2] > 60) & area
        truth = truth_mask(shown.views[0].sector, coloured.shape)
        assert (coloured <= grow(truth, 1)).all()
        assert coloured.sum() > 0.01 * truth.sum()
        red = coloured & (shown.image[..., 2] > 100) & (shown.image[..., 0] == 0)
        blue = coloured & (shown.image[..., 0] > 100) & (shown.image[..., 2] == 0)
        assert red.sum() > 50 and blue.sum() > 50
        flows.append(coloured)
    assert not np.array_equal(*flows)  # the flow pulses
    assert "colourbar" in screen.furniture(0)


def test_frames_are_deterministic_in_any_order(feed):
    spec = ScreenSpec(seed=9, annotations=ANNOTATIONS, doppler=True, dual=True, jpeg=30,
                      freeze=(5, 8), changes=((4, 0.8, 0.0, 0.0),), width=800, height=600)
    one, two = HospitalScreen(feed, spec), HospitalScreen(LiveFeed(seed=11), spec)
    order = [7, 1, 5, 0, 4, 6]
    firsts = {i: one.frame(i) for i in order}
    for i in sorted(order):
        b = two.frame(i)
        a = firsts[i]
        assert np.array_equal(a.image, b.image) and a.frozen == b.frozen
        assert [v.sector for v in a.views] == [v.sector for v in b.views]
        assert np.array_equal(a.annotation_mask, b.annotation_mask)
    other = HospitalScreen(feed, ScreenSpec(seed=10, annotations=ANNOTATIONS, width=800,
                                            height=600))
    assert not np.array_equal(other.frame(0).image, one.frame(0).image)


def test_jpeg_capture_is_close_but_lossy(feed):
    a = HospitalScreen(feed, ScreenSpec(width=640, height=480, seed=1)).frame(3).image
    b = HospitalScreen(feed, ScreenSpec(width=640, height=480, seed=1, jpeg=15)).frame(3).image
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() > 20 and diff.mean() < 6


def test_small_and_large_screens_render(feed):
    for w, h in ((320, 240), (3840, 2160)):
        spec = ScreenSpec(width=w, height=h, annotations=ANNOTATIONS, doppler=True, dual=True)
        shown = HospitalScreen(feed, spec).frame(1)
        assert shown.image.shape == (h, w, 3) and len(shown.views) == 2


@pytest.mark.parametrize("bad", [
    {"width": 100}, {"height": 4000}, {"width": 1920.0}, {"ui": "white"},
    {"annotations": ("bodymark", "logo")}, {"annotations": "text"}, {"jpeg": 101},
    {"jpeg": -1}, {"freeze": (5, 5)}, {"freeze": (-1, 4)}, {"frozen_at": -2},
    {"changes": ((3, 0.3, 0.0, 0.0),)}, {"changes": ((3, 3.5, 0.0, 0.0),)},
    {"changes": ((3, 1.0, 2.0, 0.0),)}, {"changes": ((3, 1.0, 0.0),)},
    {"changes": ((3, 1.0, 0.0, 0.0), (3, 0.5, 0.0, 0.0))}, {"dual": "yes"},
    {"changes": ((-1, 1.0, 0.0, 0.0),)}, {"changes": ((3, float("nan"), 0.0, 0.0),)},
])
def test_bad_specs_are_refused(bad):
    with pytest.raises(ValueError):
        ScreenSpec(**bad)


def test_bad_frames_and_lost_sectors_are_refused(feed):
    with pytest.raises(ValueError, match="out of the image area"):
        HospitalScreen(feed, ScreenSpec(changes=((5, 1.0, 1.0, 0.0),)))
    with pytest.raises(ValueError):
        HospitalScreen(feed, ScreenSpec(width=640, height=480)).frame(-1)


def test_write_video_writes_a_readable_mp4(feed, tmp_path):
    path = tmp_path / "screen.mp4"
    screen = HospitalScreen(feed, ScreenSpec(width=320, height=240, annotations=("text",)))
    write_video(screen, range(4, 9), str(path), fps=25.0)
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    assert len(frames) == 5 and frames[0].shape == (240, 320, 3)
    ref = screen.frame(4).image.astype(int)
    assert np.abs(frames[0].astype(int) - ref).mean() < 12  # the same picture, compressed


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli.mp4"
    assert main([str(out), "--frames", "3", "--seed", "11", "--ui", "black",
                 "--annotations", "bodymark,resultbox,calipers", "--doppler", "--dual",
                 "--freeze", "1:3", "--change", "2:0.8:0:0", "--jpeg", "12",
                 "--width", "320", "--height", "240"]) == 0
    assert out.stat().st_size > 0
    capsys.readouterr()
    for bad in (["--jpeg", "101"], ["--annotations", "logo"], ["--change", "2:0.8"],
                ["--width", "big"], ["--freeze", "4:2"]):
        with pytest.raises(SystemExit) as e:
            main([str(out), "--frames", "2", *bad])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error" in err
