"""Per-frame checks of what the screen shows, cheap enough for the hot path: is the image frozen
(the sonographer pressed Freeze: the same picture frame after frame), and does it carry colour
Doppler (flow colours inside the fan, which the grey-scale model was never trained on)?"""

from __future__ import annotations

import cv2
import numpy as np

from streamer.crop import Crop, PolarCrop

# A live image changes between frames: speckle decorrelates as the probe or the tissue moves
# (a live sweep's model input changes by 10-30 grey levels on average between frames); a frozen
# one changes only by the capture's noise and compression (under one grey level on average).
FROZEN_STEP = 1.0  # mean absolute change of the model input (grey levels) below which it is still
# A scanner's own frame rate can be below the capture's (a 20 Hz image captured at 60 fps repeats
# each picture three times): only a longer run of unchanged frames is a frozen screen.
FROZEN_FRAMES = 6
# Colour Doppler paints flow in saturated reds and blues over a sizeable part of its box; grey
# echo has no colour (JPEG's chroma noise gives a few levels) and coloured calipers or text
# are thin, so the strided samples rarely land on them.
DOPPLER_CHROMA = 48  # max - min over B, G, R of a coloured pixel
DOPPLER_STRIDE = 8  # sample every 8th pixel of every 8th row of the crop
DOPPLER_FRACTION = 0.01  # of the samples inside the sector


class FreezeCheck:
    """True once the model input has not changed for FROZEN_FRAMES consecutive frames."""

    def __init__(self):
        self.previous: np.ndarray | None = None
        self.still = 0

    def __call__(self, small: np.ndarray) -> bool:
        previous, self.previous = self.previous, small
        if previous is None or previous.shape != small.shape:
            self.still = 0
            return False
        change = float(cv2.norm(small, previous, cv2.NORM_L1)) / small.size
        self.still = self.still + 1 if change < FROZEN_STEP else 0
        return self.still >= FROZEN_FRAMES


class DopplerCheck:
    """True when more than DOPPLER_FRACTION of strided samples inside the fan are coloured."""

    def __init__(self):
        self._crop: Crop | None = None
        self._inside: np.ndarray | None = None  # bool mask of the strided samples in the sector

    def __call__(self, roi: np.ndarray, crop: Crop) -> bool:
        if roi.ndim != 3 or roi.shape[2] != 3:
            return False
        b, g, r = cv2.split(np.ascontiguousarray(roi[::DOPPLER_STRIDE, ::DOPPLER_STRIDE]))
        chroma = cv2.subtract(cv2.max(cv2.max(b, g), r), cv2.min(cv2.min(b, g), r))
        coloured = chroma >= DOPPLER_CHROMA
        inside = self._inside_of(crop, chroma.shape)
        n = int(np.count_nonzero(inside)) if inside is not None else chroma.size
        if inside is not None:
            coloured &= inside
        return bool(n > 0 and np.count_nonzero(coloured) > DOPPLER_FRACTION * n)

    def _inside_of(self, crop: Crop, shape: tuple[int, int]) -> np.ndarray | None:
        """The samples inside a polar crop's sector (None for a plain crop: all of it)."""
        if not isinstance(crop, PolarCrop):
            return None
        if crop is not self._crop or self._inside is None or self._inside.shape != shape:
            ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]] * DOPPLER_STRIDE + 0.5
            u, v = crop.polar.image_to_polar(xs, ys)
            self._inside = (u >= 0) & (u < crop.polar.width) & (v >= 0) & (v < crop.polar.height)
            self._crop = crop
        return self._inside
