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

Each frame size keeps its own fan (:class:`ScreenState`, the last MAX_SIZES sizes): a source that
changes its frame size, even on every frame, is served as each size's frames alone would be.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import cv2
import numpy as np

from engines.input_recipe import SONOSTREAM, InputRecipe
from streamer.annotations import AnnotationFinder
from streamer.config import PreprocessConfig
from streamer.crop import Crop, FanReport, PolarCrop, Rect
from streamer.fan import FanTracker, Geometry, find_fan, grey_of
from streamer.frames import Frame, InvalidFrame
from streamer.ratelimit import RateLimitedLog
from streamer.screen_checks import DopplerCheck, FreezeCheck

log = logging.getLogger(__name__)
__all__ = ["Crop", "PolarCrop", "Prepared", "Preprocessor", "ScreenState", "find_fan"]

MAX_SIZES = 4  # frame sizes whose fans are kept (a source cycling through more cannot grow it)
RESUME_AFTER = 30  # frames of other sizes after which a size's fan is confirmed again


@dataclass
class Prepared:
    tensor: np.ndarray  # float32 [1, 1, S, S] in [0, 1]
    crop: Crop
    fan: FanReport = FanReport("full")  # how the crop was found (the det message says so)
    frozen: bool = False  # the image has not changed for FROZEN_FRAMES frames
    doppler: bool = False  # colour (flow) pixels inside the crop


@dataclass(eq=False)
class ScreenState:
    """What is known of the frames of one size: the fan (its tracker, with the motion evidence),
    the geometry served, the marks found on the fan and the screen checks' history."""

    tracker: FanTracker
    geometry: Geometry | None = None  # None until the first look on a frame of this size
    annotations: AnnotationFinder = field(default_factory=AnnotationFinder)
    frozen: FreezeCheck = field(default_factory=FreezeCheck)
    doppler: DopplerCheck = field(default_factory=DopplerCheck)
    served: int = 0  # the preprocessor's frame count when a frame of this size was last served


class _OfSize:
    """A Preprocessor attribute that is the current frame size's (the latest frame's)."""

    def __set_name__(self, owner, name: str):
        self.name = name

    def __get__(self, pre, owner=None):
        return self if pre is None else getattr(pre.state, self.name)

    def __set__(self, pre, value) -> None:
        setattr(pre.state, self.name, value)


class Preprocessor:
    """Stage: Frame → Prepared (model tensor + crop geometry).

    The hot path (``process``) crops the frame by the current :class:`Geometry`, greys and
    resamples the crop with precomputed tables: no work on the whole frame. Finding the fan and
    fitting the sector happen in ``search``: inline on a frame of a size not kept (start-up, or
    the source changed to a new frame size: nothing valid to serve otherwise, and the fast
    start-up schedule begins for it), otherwise wherever ``request_search`` sends it: inline by default,
    on a background thread in the pipeline, so a served frame never waits for a search.

    A frame of a size seen lately (one of the last MAX_SIZES) resumes that size's own state: its
    fan, evidence, marks and checks, so that sizes in turn give what each size alone gives; one
    away for over RESUME_AFTER frames has its fan confirmed by a look before it is settled again.
    A frame that carries the scanner's own scan area (a DICOM ultrasound region) is cropped by
    it, with no search. A model's input recipe (the paper's release: polar frames cut to an
    aspect ratio, min-max scaling) shapes every geometry in ``model_crop`` and the scaling.
    """

    def __init__(self, config: PreprocessConfig, input_size: int, tolerance: int = 3,
                 recipe: InputRecipe = SONOSTREAM):
        self.config, self.recipe = config, recipe
        self.size, self.tolerance = input_size, tolerance
        self.state = ScreenState(FanTracker(config, input_size, tolerance, recipe))  # the first
        self._states: OrderedDict[tuple[int, int], ScreenState] = OrderedDict()  # (H, W) → state
        self.served = 0  # frames served
        self._area, self._area_geometry = None, None  # the source's scan area and its geometry
        self.request_search = self.search  # (image, detect, fit) → None; the pipeline may replace
        self._lock = threading.Lock()  # one search at a time; a new frame size waits for it
        self.last: Prepared | None = None  # the latest frame's, for the status message
        self._size_log = RateLimitedLog(logger=log)

    tracker, geometry, annotations, frozen, doppler = (_OfSize() for _ in range(5))

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

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """The frame sizes (width, height) whose fans are kept, the latest used last."""
        return [(w, h) for h, w in list(self._states)]

    def process(self, frame: Frame) -> Prepared:
        image = frame.image
        if image.ndim not in (2, 3) or image.shape[0] < 2 or image.shape[1] < 2:
            raise InvalidFrame(f"frame {frame.seq} has unusable shape {image.shape}")
        self.served += 1
        if frame.area is not None and self.config.mode == "auto":  # the scanner's own crop
            return self._prepare(image, self._area_geometry_of(frame.area, image), self.state)
        state = self._states.get(image.shape[:2])
        if state is None:
            state = self._restart(image)
        else:
            self._states.move_to_end(image.shape[:2])
            self.state = state
            if self.served - state.served > RESUME_AFTER:
                self._resume(state, image)
            due = state.tracker.due(image)
            if due is not None:  # inline, this frame is served with the result; else not
                self.request_search(image, *due)
        state.served = self.served
        return self._prepare(image, state.geometry, state)

    def search(self, image: np.ndarray, detect: bool = True, fit: bool = True) -> None:
        """Look for the fan / feed the sector fit on this frame; the next frames of its size use
        the result (a search on a frame of a size no longer kept is void)."""
        with self._lock:
            state = self._states.get(image.shape[:2])
            if state is None:
                return
            g = self._model_geometry(state.tracker.look(image, detect, fit))
            old = state.geometry
            if old is not None and g.crop == old.crop:  # the same fan: its tables are kept
                g = dataclasses.replace(g, crop=old.crop)
            state.geometry = g
            if detect:  # a look apart from the last: marks stay still, the image moves
                state.annotations.look(image, g.crop)

    def _resume(self, state: ScreenState, image: np.ndarray) -> None:
        """A size back after a while: its fan is kept, served unsettled until a look confirms it."""
        if state.tracker.resume():
            self._size_log(logging.INFO, "frame size changed back to %dx%d: its fan kept, "
                           "confirming it", image.shape[1], image.shape[0])
            g = state.geometry
            state.geometry = dataclasses.replace(
                g, report=dataclasses.replace(g.report, settled=False))

    def _restart(self, image: np.ndarray) -> ScreenState:
        """A frame of a size not kept: a fresh state for it, searched inline (nothing valid to
        serve otherwise), in place of the least recently used size when MAX_SIZES are kept."""
        with self._lock:
            H, W = shape = image.shape[:2]
            states = self._states
            state = self.state
            if state.geometry is not None:  # the first state is the first size's; not any more
                oldest = next(iter(states.values())) if len(states) >= MAX_SIZES else None
                # sizes in turn faster than they are kept: what each fresh search finds is
                # logged at debug level only (it would be a few lines per frame)
                quiet = oldest is not None and self.served - oldest.served <= RESUME_AFTER
                state = ScreenState(FanTracker(self.config, self.size, self.tolerance, self.recipe,
                                               quiet=quiet))
                self._size_log(logging.INFO, "frame size changed to %dx%d: looking for the fan "
                               "again", W, H)
            auto = self.config.mode == "auto"
            state.geometry = self._model_geometry(state.tracker.look(image, auto, True))
            states[shape] = state
            while len(states) > MAX_SIZES:
                states.popitem(last=False)
            self.state = state
            return state

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

    def _prepare(self, image: np.ndarray, geometry: Geometry, state: ScreenState) -> Prepared:
        crop = geometry.crop
        roi = image[crop.y : crop.y + crop.h, crop.x : crop.x + crop.w]
        if isinstance(crop, PolarCrop):  # BGR as it is: the model's shrink decides when to grey
            bgr = roi.ndim == 3 and roi.shape[2] == 3
            small = crop.polar.to_polar(roi if bgr else grey_of(roi))
        else:
            small = cv2.resize(grey_of(roi), (self.size, self.size), interpolation=cv2.INTER_AREA)
        state.annotations.fill_in(small, crop)  # marks on the fan, filled from their surroundings
        out = np.empty((1, 1, self.size, self.size), np.float32)  # the tensor may outlive this call
        self.recipe.to_input(small, out[0, 0])  # v / 255, or the release's min-max
        self.last = p = Prepared(out, crop, geometry.report, state.frozen(small),
                                 state.doppler(roi, crop))
        return p

    def screen_status(self) -> dict:
        """What the status message says of the screen: how the fan was found, frozen, Doppler,
        and how often a layout change was noticed (on the frame sizes kept)."""
        last = self.last
        relayouts = sum(s.tracker.relayouts for s in list(self._states.values()))
        return {"fan": None if last is None else {**last.fan.to_dict(), "relayouts": relayouts},
                "frozen": bool(last and last.frozen), "doppler": bool(last and last.doppler)}
