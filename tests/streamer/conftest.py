"""Streamer fixtures: one random ONNX model per session, a synthetic scanner screen, and fake
sources, sinks and backends with the real interfaces' methods."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from engines.backends.base import Inference
from engines.model_info import ModelInfo
from streamer.frames import Frame, FrameResult, InvalidFrame, SourceEnded, SourceLost


@pytest.fixture(scope="session")
def random_onnx(tmp_path_factory):
    """The compact architecture with random weights, exported once per test session."""
    import torch

    from engines.export import export_onnx
    from engines.model import ModelConfig, SPNModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("streamer_model") / "compact.onnx"
    return export_onnx(SPNModel(ModelConfig(arch="compact")).eval(), path)


def make_screen(seed: int = 0, size=(1080, 1920), apex=(960, 120), r0=60, r1=820,
                half_deg=38) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A BGR scanner screen: a curvilinear speckle fan on a dark background with white UI text
    and a flat grey panel; returns the image and the fan's true bounding rectangle (x, y, w, h)."""
    rng = np.random.default_rng(seed)
    H, W = size
    mask = np.zeros((H, W), np.uint8)
    cv2.ellipse(mask, apex, (r1, r1), 0, 90 - half_deg, 90 + half_deg, 255, -1)
    cv2.circle(mask, apex, r0, 0, -1)
    speckle = np.clip(rng.rayleigh(45, (H, W)) + 25, 0, 255).astype(np.uint8)
    grey = np.full((H, W), 12, np.uint8)
    grey[mask > 0] = speckle[mask > 0]
    screen = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    for i, text in enumerate(("GE Voluson  FR 30Hz", "MI 0.9  TIb 0.3", "Abdomen C1-5-D", "14 cm")):
        cv2.putText(screen, text, (40, 60 + 50 * i), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (255, 255, 255), 2)
    cv2.putText(screen, "12:31:08  PATIENT ID 0042", (1450, 1040), cv2.FONT_HERSHEY_SIMPLEX, 0.9,
                (230, 230, 230), 2)
    cv2.rectangle(screen, (1700, 200), (1880, 700), (90, 90, 90), -1)  # a flat UI panel
    return screen, cv2.boundingRect(mask)


@dataclass
class FakeBackend:
    """The Backend interface with a fixed output; ``delay`` makes it deliberately slow;
    ``batches`` holds the size of every batch it was called with."""

    classes: tuple = ("head", "spine", "thorax", "abdomen", "limbs", "placenta")
    activation: str = "sigmoid"
    input_size: int = 64
    delay: float = 0.0
    map_size: int = 8

    def __post_init__(self):
        self.info = ModelInfo(self.classes, self.activation, self.input_size, arch="fake")
        self.calls = 0
        self.batches: list[int] = []

    def open(self):
        return self

    def infer(self, batch: np.ndarray) -> Inference:
        assert batch.dtype == np.float32 and batch.shape[1:] == (1, self.input_size, self.input_size)
        self.calls += 1
        self.batches.append(batch.shape[0])
        if self.delay:
            time.sleep(self.delay)
        c, b = len(self.classes), batch.shape[0]
        scores = np.linspace(-2, 2, c, dtype=np.float32)[None].repeat(b, 0)
        maps = np.zeros((b, c, self.map_size, self.map_size), np.float32)
        maps[:, :, 2, 3] = 1.0
        return Inference(scores, maps)

    def describe(self) -> dict:
        return {"backend": "fake", "model": "fake.onnx", "precision": "fp32"}

    def close(self):
        pass


class FakeSource:
    """A scripted source: ``script`` items are 'frame', 'invalid', 'lost', or 'end'; after the
    script it ends (finite) or keeps producing frames (``forever``). ``period`` paces reads."""

    kind = "fake"

    def __init__(self, live: bool, script=(), count: int = 0, period: float = 0.0,
                 forever: bool = False, shape=(120, 160), fail_opens: int = 0):
        self.live = live
        self.script = list(script) + ["frame"] * count
        self.period, self.forever, self.shape = period, forever, shape
        self.fail_opens = fail_opens
        self.open_times: list[float] = []
        self.seq = 0
        self.closed = 0
        self.lock = threading.Lock()

    def open(self):
        self.open_times.append(time.monotonic())
        if self.fail_opens > 0:
            self.fail_opens -= 1
            raise SourceLost("fake device not there")
        return self

    def read(self, timeout: float):
        if self.period:
            time.sleep(min(self.period, timeout))
        item = self.script.pop(0) if self.script else ("frame" if self.forever else "end")
        if item == "end":
            raise SourceEnded("fake source ended")
        if item == "lost":
            raise SourceLost("fake device unplugged")
        if item == "invalid":
            raise InvalidFrame("fake garbage")
        if item == "none":
            return None
        self.seq += 1
        image = np.full(self.shape, self.seq % 255, np.uint8)
        return Frame(self.seq, image)

    def close(self):
        self.closed += 1

    def describe(self) -> dict:
        return {"kind": self.kind, "live": self.live}


class FakeSink:
    def __init__(self, delay: float = 0.0):
        self.results: list[FrameResult] = []
        self.statuses: list[dict] = []
        self.delay = delay
        self.opened = self.closed = False

    def open(self):
        self.opened = True
        return self

    def publish(self, result: FrameResult) -> None:
        if self.delay:
            time.sleep(self.delay)
        self.results.append(result)

    def publish_status(self, status: dict) -> None:
        self.statuses.append(status)

    def close(self):
        self.closed = True


@pytest.fixture
def screen():
    return make_screen()


@pytest.fixture
def kept_metrics(monkeypatch):
    """Every PipelineMetrics a run makes, kept for the test to read after the run."""
    import streamer.metrics

    made = []

    class Kept(streamer.metrics.PipelineMetrics):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(streamer.metrics, "PipelineMetrics", Kept)
    return made
