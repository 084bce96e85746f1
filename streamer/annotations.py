"""Annotations on the fan (calipers and their dotted lines, typed text, arrows: thin white or
coloured marks the scanner draws over the image) found and masked out of the model's input.

A mark never changes while the image under it does, so it is a mark-like pixel (near white, or
coloured) that holds its value between two looks frames apart, while the speckle around it
moves. The mask is taken to the model's input grid (through
the crop's own resampling) and filled there, per frame, from the nearest pixel that is no mark:
a copy of a few hundred bytes on the hot path.
"""

from __future__ import annotations

import cv2
import numpy as np

from streamer.crop import Crop, PolarCrop

MARK_WHITE = 200  # a white or light mark's grey level (typed text, arrows, white calipers)
MARK_CHROMA = 60  # max - min over B, G, R of a coloured mark (grey echo has none)
MARK_STILL = 4  # grey levels a mark's pixel may change between looks (capture noise)
MAX_MARKS = 0.05  # a larger share of the crop is no annotation: no new mask
STILL_CROP = 0.9  # a crop this still between looks is a frozen image: nothing to tell marks by

Fill = tuple[np.ndarray, np.ndarray]  # (marked, nearest clean) flat indices on the input grid


def mark_like(pixels: np.ndarray) -> np.ndarray:
    """bool: near-white or coloured pixels (what stays still among them is a mark: speckle as
    bright as a mark moves with the image)."""
    grey = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
    marks = grey >= MARK_WHITE
    if pixels.ndim == 3:
        b, g, r = cv2.split(pixels)
        marks |= cv2.subtract(cv2.max(cv2.max(b, g), r), cv2.min(cv2.min(b, g), r)) >= MARK_CHROMA
    return marks


def fill_table(mask: np.ndarray) -> Fill | None:
    """For each marked pixel of a model-input mask, the flat index of the nearest unmarked one."""
    if not mask.any() or mask.all():
        return None
    _, labels = cv2.distanceTransformWithLabels(mask.astype(np.uint8), cv2.DIST_L2, 3,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    clean = np.flatnonzero(~mask.ravel())  # label k is the k-th unmarked pixel in raster order
    marked = np.flatnonzero(mask.ravel())
    return marked, clean[labels.ravel()[marked] - 1]


class AnnotationFinder:
    """Compares each look's crop with the previous look's (same crop) and keeps the marks that
    stayed; ``fill_in`` fills them on a frame cropped by that same crop. The table travels with
    its crop in one attribute, so a frame served while a look runs never gets another crop's."""

    def __init__(self):
        self._crop: Crop | None = None
        self._previous: np.ndarray | None = None
        self._marks: np.ndarray | None = None  # mark_like of the previous look's crop
        self._fill: tuple[Crop, Fill] | None = None  # the table and the crop it was made for
        self.marked = 0  # model-input pixels masked

    def fill_in(self, small: np.ndarray, crop: Crop) -> None:
        """Fill the marks on a model-input image [h, w] of ``crop`` (nothing for another crop)."""
        made = self._fill
        if made is not None and made[0] == crop:
            flat = small.reshape(-1)
            flat[made[1][0]] = flat[made[1][1]]

    def look(self, image: np.ndarray, crop: Crop) -> None:
        pixels = image[crop.y : crop.y + crop.h, crop.x : crop.x + crop.w]
        previous, previous_marks = self._previous, self._marks
        same = crop == self._crop and previous is not None and previous.shape == pixels.shape
        self._crop, self._previous, self._marks = crop, pixels.copy(), mark_like(pixels)
        if not same:
            self._fill, self.marked = None, 0
            return
        change = cv2.absdiff(pixels, previous)
        if change.ndim == 3:
            change = cv2.max(cv2.max(change[:, :, 0], change[:, :, 1]), change[:, :, 2])
        still = change <= MARK_STILL
        if np.count_nonzero(still) > STILL_CROP * still.size:
            return  # the image did not move (frozen): keep what was found before
        marks = self._marks & previous_marks & still
        if np.count_nonzero(marks) > MAX_MARKS * marks.size:
            return  # not annotations: keep what was found before
        fill = fill_table(_on_input_grid(marks, crop))
        self._fill, self.marked = (None, 0) if fill is None else ((crop, fill), len(fill[0]))


def _on_input_grid(marks: np.ndarray, crop: Crop) -> np.ndarray:
    """The model-input pixels a mark touches (through the crop's own resampling)."""
    m = marks.astype(np.uint8) * 255
    if isinstance(crop, PolarCrop):
        return crop.polar.to_polar(m) > 0
    return cv2.resize(m, (crop.size, crop.size), interpolation=cv2.INTER_AREA) > 0
