import numpy as np
import pytest

from streamer.config import PreprocessConfig
from streamer.frames import Frame, InvalidFrame
from streamer.preprocess import Crop, Preprocessor, find_fan
from tests.streamer.conftest import make_screen


def test_fan_found_on_a_screen_with_ui_text(screen):
    image, (x, y, w, h) = screen
    fx, fy, fw, fh = find_fan(image)
    assert abs(fx - x) <= 3 and abs(fy - y) <= 3
    assert abs(fx + fw - x - w) <= 3 and abs(fy + fh - y - h) <= 3


def test_fan_found_elsewhere_and_grey_input():
    image, (x, y, w, h) = make_screen(seed=1, apex=(700, 300), r0=40, r1=600, half_deg=45)
    fx, fy, fw, fh = find_fan(image[:, :, 0].copy())
    assert max(abs(fx - x), abs(fy - y), abs(fw - w), abs(fh - h)) <= 3


def test_blank_screen_has_no_fan():
    assert find_fan(np.full((1080, 1920, 3), 10, np.uint8)) is None


def test_tensor_is_the_crop_resized_and_scaled(screen):
    import cv2

    image, (x, y, w, h) = screen
    pre = Preprocessor(PreprocessConfig(), input_size=224)
    out = pre.process(Frame(0, image))
    assert out.tensor.shape == (1, 1, 224, 224) and out.tensor.dtype == np.float32
    assert abs(out.crop.x - x) <= 3 and abs(out.crop.w - w) <= 3 and out.crop.size == 224
    c = out.crop
    ref = cv2.resize(cv2.cvtColor(image[c.y:c.y + c.h, c.x:c.x + c.w], cv2.COLOR_BGR2GRAY),
                     (224, 224), interpolation=cv2.INTER_AREA) / 255.0
    np.testing.assert_allclose(out.tensor[0, 0], ref, atol=1e-6)
    # the fan is remembered: a second frame is not re-detected
    assert pre.process(Frame(1, image)).crop == out.crop


def test_configured_roi_and_full_frame(screen):
    image, _ = screen
    pre = Preprocessor(PreprocessConfig(roi=(100, 50, 400, 300)), input_size=64)
    assert pre.process(Frame(0, image)).crop == Crop(100, 50, 400, 300, 64)
    full = Preprocessor(PreprocessConfig(mode="full"), input_size=64)
    assert full.process(Frame(0, image)).crop == Crop(0, 0, 1920, 1080, 64)
    with pytest.raises(InvalidFrame, match="outside"):
        Preprocessor(PreprocessConfig(roi=(1800, 0, 400, 300)), 64).process(Frame(0, image))


def test_redetects_when_the_fan_moves():
    a, _ = make_screen()
    b, (x, y, w, h) = make_screen(apex=(1100, 150))
    pre = Preprocessor(PreprocessConfig(redetect_every=2), input_size=64)
    pre.process(Frame(0, a))
    crops = [pre.process(Frame(i, b)).crop for i in range(1, 17)]  # the old fan fades in a few looks
    assert any(abs(c.x - x) > 3 for c in crops[:2])
    assert all(abs(c.x - x) <= 3 and abs(c.y - y) <= 3 for c in crops[-4:])


def test_fan_is_found_on_recent_screens_when_shadows_hide_part_of_it():
    """The simulated sweep (seed 11) starts on a frame whose shadows split the fan: that frame
    alone gives a piece of it; a few looks at the moving probe give all of it."""
    from engines.simulator import LiveFeed
    from streamer.preprocess import find_fan

    feed = LiveFeed(seed=11)
    x, y, w, h = feed.frame_at(0).fan_roi
    assert abs(find_fan(feed.frame_at(0).image)[2] - w) > 100
    pre = Preprocessor(PreprocessConfig(), input_size=64)
    crops = [pre.process(Frame(i, feed.frame_at(i).image)).crop for i in range(0, 32)]
    last = crops[-1]
    assert max(abs(last.x - x), abs(last.y - y), abs(last.w - w), abs(last.h - h)) <= 3


def test_crop_maps_input_pixels_to_source():
    crop = Crop(100, 50, 400, 200, 100)
    assert crop.to_source(0, 0) == (100, 50)
    assert crop.to_source(100, 100) == (500, 250)
    assert crop.to_source(50, 25) == (300, 100)


def test_polar_mode_resamples_the_sector_and_maps_back(screen):
    import math

    import cv2

    from streamer.preprocess import PolarCrop

    image, (x, y, w, h) = screen  # make_screen: apex (960, 120), r0 60, r1 820, ±38°
    pre = Preprocessor(PreprocessConfig(representation="polar"), input_size=64)
    out = pre.process(Frame(0, image))
    crop = out.crop
    assert isinstance(crop, PolarCrop) and out.tensor.shape == (1, 1, 64, 64)
    g = crop.polar.geometry
    assert abs(crop.x + g.apex[0] - 960.5) < 3 and abs(crop.y + g.apex[1] - 120.5) < 3
    # fitted on a subsampled mask (7 ms instead of 80): within 2 px of the full-resolution fit
    assert abs(g.r_min - 60) < 3 and abs(g.r_max - 820) < 5
    assert abs(math.degrees(g.angle_max) - 38) < 1 and abs(math.degrees(g.angle_min) + 38) < 1
    grey = cv2.cvtColor(image[crop.y:crop.y + crop.h, crop.x:crop.x + crop.w], cv2.COLOR_BGR2GRAY)
    np.testing.assert_allclose(out.tensor[0, 0], crop.polar.to_polar(grey) / 255.0, atol=1e-6)
    sx, sy = crop.to_source(32, 64)  # bottom centre of the polar image: the sector's deepest point
    assert abs(sx - 960.5) < 3 and abs(sy - 940.5) < 5  # depth: as r_max above
    bx0, by0, bx1, by1 = crop.box_to_source((0, 0, 64, 64))  # the whole polar image: the fan
    assert max(abs(bx0 - x), abs(by0 - y), abs(bx1 - x - w), abs(by1 - y - h)) < 5  # as above
    assert pre.process(Frame(1, image)).crop.polar is crop.polar  # fitted once per fan position


def test_a_look_that_finds_the_fan_where_it_was_keeps_its_crop_and_tables(screen):
    """The crop carries the tables postprocess maps peaks and boxes through (~0.5 ms of Python
    to build at 1080p, on the inference thread) and the Doppler check's fan mask: the looks
    every few frames that find the same fan must not make them anew."""
    image, _ = screen
    pre = Preprocessor(PreprocessConfig(representation="polar"), input_size=64)
    first = pre.process(Frame(0, image)).crop
    grid = first.source_grid(8)
    for detect, fit in ((True, False), (True, True), (False, True)):
        pre.search(image, detect, fit)
    out = pre.process(Frame(1, image))
    assert out.crop is first and out.crop.source_grid(8) is grid


def test_polar_mode_falls_back_to_a_plain_crop():
    rng = np.random.default_rng(0)
    image = np.zeros((120, 160), np.uint8)
    image[20:100, 30:130] = rng.integers(40, 200, (80, 100))  # a linear probe's rectangle
    out = Preprocessor(PreprocessConfig(mode="full", representation="polar"), 64).process(Frame(0, image))
    assert out.crop == Crop(0, 0, 160, 120, 64)
    blank = Preprocessor(PreprocessConfig(representation="polar"), 64).process(Frame(0, np.zeros((90, 90), np.uint8)))
    assert blank.crop == Crop(0, 0, 90, 90, 64)  # no fan found: no sector either


def test_plain_crop_maps_boxes_by_corners():
    assert Crop(100, 50, 400, 200, 100).box_to_source((0, 0, 50, 25)) == (100, 50, 300, 100)


def test_sector_is_fitted_on_the_fan_seen_over_several_frames(screen):
    """Shadows hide half the fan in every frame; the union of a few frames shows it whole."""
    import cv2

    from streamer.fan import FIT_EVERY, SectorFitter

    image, (x, y, w, h) = screen
    grey = cv2.cvtColor(image[y:y + h, x:x + w], cv2.COLOR_BGR2GRAY)
    left, right = grey.copy(), grey.copy()
    left[:, : w // 2] = 0
    right[:, w // 2 :] = 0
    alone = SectorFitter(64, 8)
    assert all(alone((x, y, w, h), left) is None for _ in range(2 * FIT_EVERY + 1))
    fitter = SectorFitter(64, 8)
    frames = [left if i % 2 else right for i in range(2 * FIT_EVERY + 1)]
    maps = [fitter((x, y, w, h), f) for f in frames]
    assert maps[0] is None and maps[-1] is not None
    assert abs(x + maps[-1].geometry.apex[0] - 960.5) < 3  # make_screen's apex


def _chain(model, frames, representation):
    """Preprocess → model → postprocess in one thread (searches inline), a result per frame."""
    from engines.backends import create_backend
    from streamer.config import PostprocessConfig
    from streamer.postprocess import Postprocessor

    with create_backend("onnxruntime", model) as backend:
        info = backend.info
        pre = Preprocessor(PreprocessConfig(representation=representation), info.input_size)
        post = Postprocessor(info.classes, info.activation, PostprocessConfig())
        out = []
        for i, image in enumerate(frames):
            prepared = pre.process(Frame(i, image))
            o = backend.infer(prepared.tensor)
            classes, _ = post.process(o.scores[0], o.maps[0], prepared.crop)
            crop = prepared.crop
            polar = crop.polar.geometry if getattr(crop, "polar", None) else None
            out.append(((crop.x, crop.y, crop.w, crop.h, polar), pre.tracker.detections,
                        [(round(c.score, 6), c.peak, c.box) for c in classes]))
        return out


@pytest.mark.parametrize("representation", ["sector", "polar"])
def test_frame_size_change_gives_what_a_fresh_run_gives(random_onnx, representation):
    """A larger frame mid-stream (and then a smaller one) is searched anew, with the fast
    start-up schedule again: its outputs equal a fresh run's on the same frames."""
    from engines.simulator import LiveFeed

    def frames(w, h, seed, n):
        feed = LiveFeed(seed=seed, width=w, height=h)
        return [feed.frame_at(i).image for i in range(0, 3 * n, 3)]

    small, large, smaller = frames(960, 540, 1, 4), frames(1280, 720, 2, 9), frames(800, 450, 3, 5)
    stream = _chain(random_onnx, small + large + smaller, representation)
    fresh_large = _chain(random_onnx, large, representation)
    fresh_smaller = _chain(random_onnx, smaller, representation)
    assert stream[4:13] == fresh_large  # the same crops, searches (counted) and outputs
    assert stream[13:] == fresh_smaller
    assert stream[3][0] != stream[4][0]  # the crop did change with the frame


def test_no_sector_means_no_more_fitting_work_until_a_fresh_try():
    """A linear probe's rectangle: once the fit gives up, frames ask for no more fitting (each
    would grey the crop again) until ``retry_after`` frames later."""
    from streamer.fan import FIT_FRAMES

    rng = np.random.default_rng(0)
    image = np.zeros((120, 160), np.uint8)
    image[20:100, 30:130] = rng.integers(40, 200, (80, 100))
    pre = Preprocessor(PreprocessConfig(mode="full", representation="polar", redetect_every=50), 64)
    fits = []
    pre.request_search = lambda img, detect, fit: (fits.append(fit), pre.search(img, detect, fit))
    for i in range(FIT_FRAMES + 40):
        pre.process(Frame(i, image))
    assert FIT_FRAMES - 5 <= sum(fits) <= FIT_FRAMES  # then resting (retry_after = 50)
    for i in range(60):  # retry_after (50) frames later it tries afresh
        pre.process(Frame(i, image))
    assert sum(fits) > FIT_FRAMES
