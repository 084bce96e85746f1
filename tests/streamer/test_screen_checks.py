import cv2
import numpy as np

from engines.polar import PolarMap, SectorGeometry
from streamer.crop import Crop, PolarCrop
from streamer.screen_checks import (
    DOPPLER_FRACTION,
    DOPPLER_STRIDE,
    FROZEN_FRAMES,
    FROZEN_STEP,
    DopplerCheck,
    FreezeCheck,
)

rng = np.random.default_rng(0)


def speckle(seed: int, size: int = 224) -> np.ndarray:
    return np.clip(np.random.default_rng(seed).rayleigh(40, (size, size)) + 20, 0, 255).astype(np.uint8)


def test_a_frozen_image_is_flagged_from_its_sixth_repeat_and_a_change_clears_it():
    check = FreezeCheck()
    image = speckle(1)
    flags = [check(image.copy()) for _ in range(FROZEN_FRAMES + 3)]
    # the first frame has nothing to compare with; the next FROZEN_FRAMES - 1 repeats are not yet
    assert flags == [False] * FROZEN_FRAMES + [True] * 3
    assert check(speckle(2)) is False  # the image moved: live again at once
    assert check(speckle(2)) is False


def test_capture_noise_on_a_frozen_image_is_still_frozen_but_live_speckle_never_is():
    check = FreezeCheck()
    image = speckle(1).astype(np.int16)
    noisy = [np.clip(image + rng.integers(-1, 2, image.shape), 0, 255).astype(np.uint8)
             for _ in range(FROZEN_FRAMES + 1)]  # ±1 grey level: mean change 2/3 < FROZEN_STEP
    assert [check(n) for n in noisy][-1] is True
    live = FreezeCheck()
    assert not any(live(speckle(s)) for s in range(40))


def test_a_slow_scanner_captured_fast_is_not_frozen():
    """A 20 Hz image captured at 60 fps shows every picture three times: never flagged."""
    check = FreezeCheck()
    flags = [check(speckle(i // 3)) for i in range(60)]
    assert not any(flags)


def test_frozen_threshold_sits_between_noise_and_a_small_change():
    check = FreezeCheck()
    base = speckle(1)
    shifted = np.clip(base.astype(np.int16) + 2, 0, 255).astype(np.uint8)  # 2 levels brighter
    assert cv2.norm(shifted, base, cv2.NORM_L1) / base.size > FROZEN_STEP
    assert not any(check(shifted if i % 2 else base) for i in range(20))


def _polar_crop(h: int = 400, w: int = 600) -> PolarCrop:
    g = SectorGeometry((w / 2, -20), 40, h - 10, -0.6, 0.6)
    return PolarCrop(0, 0, w, h, 64, PolarMap(g, 64))


def _grey_bgr(h: int = 400, w: int = 600) -> np.ndarray:
    grey = np.clip(np.random.default_rng(3).rayleigh(40, (h, w)) + 20, 0, 255).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def test_doppler_colour_inside_the_fan_is_flagged():
    crop = _polar_crop()
    image = _grey_bgr()
    check = DopplerCheck()
    assert check(image, crop) is False and check(image[:, :, 0], crop) is False  # grey, 2-D
    flow = image.copy()
    for (x, y), colour in (((280, 200), (0, 0, 230)), ((330, 230), (230, 60, 0))):
        cv2.circle(flow, (x, y), 28, colour, -1)  # red and blue blobs, about 1.5% of the sector
    assert check(flow, crop) is True


def test_thin_coloured_marks_and_colour_outside_the_sector_are_not_doppler():
    crop = _polar_crop()
    marks = _grey_bgr()
    yellow = (0, 230, 230)
    for x in range(200, 420, 7):  # a caliper's dotted line and two crosses
        cv2.circle(marks, (x, 250), 1, yellow, -1)
    for cx in (200, 420):
        cv2.line(marks, (cx - 8, 250), (cx + 8, 250), yellow, 2)
        cv2.line(marks, (cx, 242), (cx, 258), yellow, 2)
    cv2.putText(marks, "HEAD", (250, 150), cv2.FONT_HERSHEY_SIMPLEX, 0.9, yellow, 2)
    assert DopplerCheck()(marks, crop) is False
    corner = _grey_bgr()
    corner[330:400, 0:70] = (0, 0, 230)  # a coloured UI patch in the crop's corner, off the sector
    inside = DopplerCheck()._inside_of(crop, corner[::DOPPLER_STRIDE, ::DOPPLER_STRIDE].shape[:2])
    assert not inside[330 // DOPPLER_STRIDE:, : 70 // DOPPLER_STRIDE].any()
    coloured = 70 * 70 / DOPPLER_STRIDE**2
    assert coloured > DOPPLER_FRACTION * inside.sum()  # it would count if it were inside
    assert DopplerCheck()(corner, crop) is False
    assert DopplerCheck()(corner, Crop(0, 0, 600, 400, 64)) is True  # a plain crop: all of it
