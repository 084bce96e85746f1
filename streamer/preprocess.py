"""Scanner screen → model input: find the ultrasound fan, crop its bounding rectangle, grey,
resize (INTER_AREA, as the training images were made) and scale to float32 [0, 1].

With ``polar`` on, a curvilinear sector is instead resampled to polar (beam-space) form, as the
paper trained (`engines.polar`). The crop geometry travels with the tensor so postprocess can map
peaks and boxes back to source pixels.

Per frame only the crop is touched: in polar mode shrunk by the model's own anti-aliasing filter
(its input recipe: 2×2 halvings of the BGR crop, greyed after, for the default model; INTER_AREA
for older ones) and remapped with tables built once per sector; plain crops are greyed and shrunk
with INTER_AREA. The filter is always the training images' own: filters that differ from it
changed a model's probabilities by up to 0.44 (`benchmarks/filter_check.py`). Finding the fan and
fitting the sector (:class:`FanTracker`) run apart from the served frames wherever the caller
lets them (the pipeline: on their own thread).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from engines.input_recipe import SONOSTREAM, InputRecipe
from streamer.annotations import AnnotationFinder
from streamer.config import PreprocessConfig
from streamer.crop import Crop, FanReport, PolarCrop, Rect
from streamer.fan import FanTracker, Geometry, find_fan, grey_of
from streamer.frames import Frame, InvalidFrame
from streamer.screen_checks import DopplerCheck, FreezeCheck

log = logging.getLogger(__name__)
__all__ = ["Crop", "PolarCrop", "Prepared", "Preprocessor", "find_fan"]


@dataclass
class Prepared:
    tensor: np.ndarray  # float32 [1, 1, S, S] in [0, 1]
    crop: Crop
    fan: FanReport = FanReport("full")  # how the crop was found (the det message says so)
    frozen: bool = False  # the image has not changed for FROZEN_FRAMES frames
    doppler: bool = False  # colour (flow) pixels inside the crop


class Preprocessor:
    """Stage: Frame → Prepared (model tensor + crop geometry).

    The hot path (``process``) crops the frame by the current :class:`Geometry`, greys and
    resamples the crop with precomputed tables: no work on the whole frame. Finding the fan and
    fitting the sector happen in ``search``: inline on a frame of a new size (start-up, or the
    source changed its frame size: nothing valid to serve otherwise, and the fast start-up
    schedule begins again), otherwise wherever ``request_search`` sends it: inline by default,
    on a background thread in the pipeline, so a served frame never waits for a search.

    A frame that carries the scanner's own scan area (a DICOM ultrasound region) is cropped by
    it, with no search. A model's input recipe (the paper's release: polar frames cut to an
    aspect ratio, min-max scaling) shapes every geometry in ``model_crop`` and the scaling.
    """

    def __init__(self, config: PreprocessConfig, input_size: int, tolerance: int = 3,
                 recipe: InputRecipe = SONOSTREAM):
        self.config, self.recipe = config, recipe
        self.size = input_size
        self.tracker = FanTracker(config, input_size, tolerance, recipe)
        self.geometry: Geometry | None = None
        self._area, self._area_geometry = None, None  # the source's scan area and its geometry
        self.request_search = self.search  # (image, detect, fit) → None; the pipeline may replace
        self._lock = threading.Lock()  # one search at a time; a new frame size waits for it
        self.frozen, self.doppler = FreezeCheck(), DopplerCheck()
        self.annotations = AnnotationFinder()
        self.last: Prepared | None = None  # the latest frame's, for the status message

    @classmethod
    def for_model(cls, config: PreprocessConfig, info) -> Preprocessor:
        """Frames as a model (its ModelInfo) takes them: its representation where the config says
        "model", its input size and its input recipe (crop, anti-aliasing shrink, scaling)."""
        if config.representation == "model":
            config = dataclasses.replace(config, representation=info.representation)
        return cls(config, info.input_size, recipe=info.recipe)

    @property
    def roi(self) -> Rect | None:
        """The fan's rectangle as last found (None: not found, or not looked for)."""
        return self.tracker.roi

    def process(self, frame: Frame) -> Prepared:
        image = frame.image
        if image.ndim not in (2, 3) or image.shape[0] < 2 or image.shape[1] < 2:
            raise InvalidFrame(f"frame {frame.seq} has unusable shape {image.shape}")
        if frame.area is not None and self.config.mode == "auto":  # the scanner's own crop
            return self._prepare(image, self._area_geometry_of(frame.area, image))
        geometry = self.geometry
        if geometry is None or geometry.shape != image.shape[:2]:
            geometry = self._restart(image)
        else:
            due = self.tracker.due(image)
            if due is not None:  # inline, this frame is served with the result; else not
                self.request_search(image, *due)
                geometry = self.geometry
        return self._prepare(image, geometry)

    def search(self, image: np.ndarray, detect: bool = True, fit: bool = True) -> None:
        """Look for the fan / feed the sector fit on this frame; the next frames use the result
        (a search on a frame of another size than the current one is void)."""
        with self._lock:
            current = self.geometry
            if current is not None and current.shape != image.shape[:2]:
                return
            self.geometry = g = self._model_geometry(self.tracker.look(image, detect, fit))
            if detect:  # a look apart from the last: marks stay still, the image moves
                self.annotations.look(image, g.crop)

    def _restart(self, image: np.ndarray) -> Geometry:
        with self._lock:
            if self.geometry is not None:
                log.info("frame size changed to %dx%d: looking for the fan again",
                         image.shape[1], image.shape[0])
            self.tracker.reset()
            auto = self.config.mode == "auto"
            self.geometry = g = self._model_geometry(self.tracker.look(image, auto, True))
            return g

    def _area_geometry_of(self, area, image: np.ndarray) -> Geometry:
        """The geometry of a source's scan area (its tables made once per area and frame size)."""
        H, W = image.shape[:2]
        g = self._area_geometry
        if area is not self._area or g is None or g.shape != (H, W):
            x, y, w, h = area.rect
            if x + w > W or y + h > H:
                raise InvalidFrame(f"scan area {area.rect} lies outside the {W}x{H} frame")
            crop = Crop(x, y, w, h, self.size)
            if self.config.representation == "polar" and area.sector is not None:
                pmap = self.recipe.polar_map(area.sector, self.size)
                pmap.prepare(h, w)
                crop = PolarCrop(x, y, w, h, self.size, pmap)
            g = Geometry((H, W), self.model_crop(crop), FanReport("area"))
            self._area, self._area_geometry = area, g
        return g

    def _model_geometry(self, g: Geometry) -> Geometry:
        return dataclasses.replace(g, crop=self.model_crop(g.crop))

    def model_crop(self, crop: Crop) -> Crop:
        """The model's crop recipe on a plain crop (the release's aspect ratio; a polar crop was
        cut to it in its sector geometry already)."""
        if isinstance(crop, PolarCrop):
            return crop
        cx, cy, w, h = self.recipe.crop_rect((0, 0, crop.w, crop.h))
        return Crop(crop.x + cx, crop.y + cy, w, h, crop.size)

    def _prepare(self, image: np.ndarray, geometry: Geometry) -> Prepared:
        crop = geometry.crop
        roi = image[crop.y : crop.y + crop.h, crop.x : crop.x + crop.w]
        if isinstance(crop, PolarCrop):  # BGR as it is: the model's shrink decides when to grey
            bgr = roi.ndim == 3 and roi.shape[2] == 3
            small = crop.polar.to_polar(roi if bgr else grey_of(roi))
        else:
            small = cv2.resize(grey_of(roi), (self.size, self.size), interpolation=cv2.INTER_AREA)
        self.annotations.fill_in(small, crop)  # marks on the fan, filled from their surroundings
        out = np.empty((1, 1, self.size, self.size), np.float32)  # the tensor may outlive this call
        self.recipe.to_input(small, out[0, 0])  # v / 255, or the release's min-max
        self.last = p = Prepared(out, crop, geometry.report, self.frozen(small),
                                 self.doppler(roi, crop))
        return p

    def screen_status(self) -> dict:
        """What the status message says of the screen: how the fan was found, frozen, Doppler,
        and how often a layout change was noticed."""
        last = self.last
        return {"fan": None if last is None else {**last.fan.to_dict(),
                                                  "relayouts": self.tracker.relayouts},
                "frozen": bool(last and last.frozen), "doppler": bool(last and last.doppler)}
