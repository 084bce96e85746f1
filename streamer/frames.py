"""What flows through the pipeline: frames in, results out, and the source/sink errors."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from engines.dicom import ScanArea
    from streamer.crop import Crop, FanReport


class InvalidFrame(Exception):
    """A source received input it cannot use (counted as invalid; the pipeline goes on)."""


class SourceLost(Exception):
    """A live source went away (device unplugged, publisher gone); the pipeline retries it."""


class SourceEnded(Exception):
    """A finite source (a file) has no more frames; ``complete`` is False when it ended early
    (fewer frames than its container says: truncated or corrupt), which is a failure."""

    def __init__(self, message: str = "", complete: bool = True):
        super().__init__(message)
        self.complete = complete


@dataclass
class Frame:
    seq: int
    image: np.ndarray  # uint8 [H, W] grey or [H, W, 3] BGR
    t_capture_ns: int = field(default_factory=time.monotonic_ns)  # monotonic, when grabbed
    t_source_ns: int | None = None  # the source's own timestamp (wire header t_ns), if any
    area: ScanArea | None = None  # where the scanner says its image lies (DICOM regions), if known


@dataclass(frozen=True)
class ClassResult:
    name: str
    score: float  # after sigmoid/softmax
    present: bool
    peak: tuple[int, int] | None  # [x, y] in source-frame pixels
    box: tuple[int, int, int, int] | None  # [x0, y0, x1, y1] in source-frame pixels


# capture_to_publish and the parts that add up to it, in the order a frame meets them
PARTS = ("queue_source", "preprocess", "queue_prepared", "inference", "postprocess", "publish")
STAGES = ("capture_to_publish", *PARTS)


@dataclass
class Timing:
    """Monotonic ns stamps of one frame's way through the pipeline, one per hand-off, so the
    parts (waits included) add up to capture→publish exactly."""

    capture: int
    preprocess_start: int = 0  # taken off the source's hand-off
    preprocess_end: int = 0
    inference_start: int = 0  # taken off the prepared queue and into the model
    inference_end: int = 0
    postprocess_end: int = 0
    publish: int = 0  # the moment the sinks are handed the result

    def stage_seconds(self) -> dict[str, float]:
        stamps = (self.capture, self.preprocess_start, self.preprocess_end, self.inference_start,
                  self.inference_end, self.postprocess_end, self.publish)
        out = {"capture_to_publish": (self.publish - self.capture) / 1e9}
        for name, a, b in zip(PARTS, stamps[:-1], stamps[1:], strict=True):
            out[name] = (b - a) / 1e9
        return out

    def latency_ms(self) -> dict[str, float]:
        return {k: round(v * 1e3, 3) for k, v in self.stage_seconds().items()}


@dataclass
class FrameResult:
    stream: str
    seq: int
    t_source_ns: int | None
    frame_shape: tuple[int, int]  # source frame (height, width)
    classes: tuple[ClassResult, ...]
    timing: Timing
    maps: np.ndarray | None = None  # uint8 [C, h, w], 0..255 scaled per class
    mm_per_px: tuple[float, float] | None = None  # (x, y) from the scanner's calibration, if any
    # For live displays, never on the wire: the source frame (a reference, not a copy) and the
    # source rectangle the model saw (where the maps lie on the frame).
    image: np.ndarray | None = None
    crop: Crop | None = None
    ood: float | None = None  # calibrated out-of-distribution score (engines.ood); None: no statistics
    familiar: bool | None = None  # False when ood reached the model's limit
    fan: FanReport | None = None  # how the crop was found (mode, fit quality, settled)
    frozen: bool = False  # the screen has shown the same image for several frames
    doppler: bool = False  # colour Doppler inside the fan
    exam: str | None = None  # the exam it belongs to (streamer.coverage), where one is kept
