"""What flows through the pipeline: frames in, results out, and the source/sink errors."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np


class InvalidFrame(Exception):
    """A source received input it cannot use (counted as invalid; the pipeline goes on)."""


class SourceLost(Exception):
    """A live source went away (device unplugged, publisher gone); the pipeline retries it."""


class SourceEnded(Exception):
    """A finite source (a file) has no more frames."""


@dataclass
class Frame:
    seq: int
    image: np.ndarray  # uint8 [H, W] grey or [H, W, 3] BGR
    t_capture_ns: int = field(default_factory=time.monotonic_ns)  # monotonic, when grabbed
    t_source_ns: int | None = None  # the source's own timestamp (wire header t_ns), if any


@dataclass(frozen=True)
class ClassResult:
    name: str
    score: float  # after sigmoid/softmax
    present: bool
    peak: tuple[int, int] | None  # [x, y] in source-frame pixels
    box: tuple[int, int, int, int] | None  # [x0, y0, x1, y1] in source-frame pixels


STAGES = ("capture_to_publish", "preprocess", "inference", "postprocess", "publish")


@dataclass
class Timing:
    """Monotonic ns stamps of one frame's way through the pipeline."""

    capture: int
    preprocess_end: int = 0
    inference_start: int = 0
    inference_end: int = 0
    postprocess_end: int = 0
    publish: int = 0

    def stage_seconds(self) -> dict[str, float]:
        return {
            "capture_to_publish": (self.publish - self.capture) / 1e9,
            "preprocess": (self.preprocess_end - self.capture) / 1e9,
            "inference": (self.inference_end - self.inference_start) / 1e9,
            "postprocess": (self.postprocess_end - self.inference_end) / 1e9,
            "publish": (self.publish - self.postprocess_end) / 1e9,
        }

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
    ood: float | None = None  # calibrated out-of-distribution score (engines.ood); None: no statistics
    familiar: bool | None = None  # False when ood reached the model's limit
