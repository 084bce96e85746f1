"""The OOD signal on the wire: det ood/familiar, the unfamiliar-frames counter, tap, and the
bundled model's statistics."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from prometheus_client import generate_latest

from engines import ood
from engines.backends.base import Inference
from streamer import protocol as p
from streamer.cli.tap_cmd import describe
from streamer.frames import ClassResult, FrameResult, Timing
from streamer.metrics import PipelineMetrics
from tests.streamer.conftest import FakeBackend, FakeSink, FakeSource
from tests.streamer.test_pipeline import config


@dataclass
class FeatureBackend(FakeBackend):
    """FakeBackend that also outputs pooled features: typical ones, or far-off from frame ``odd``."""

    odd: int = 10**9
    frames: int = 0  # frames seen so far (micro-batches may bring several in one call)

    def infer(self, batch: np.ndarray) -> Inference:
        out = super().infer(batch)
        index = self.frames + np.arange(batch.shape[0])
        self.frames += batch.shape[0]
        f = np.where((index >= self.odd)[:, None], 30.0, 1.0).astype(np.float32).repeat(4, 1)
        return Inference(out.scores, out.maps, f)


def stats() -> ood.OodModel:
    rng = np.random.default_rng(0)
    return ood.fit("mahalanobis", rng.normal(size=(500, 6)), rng.normal(1.0, 0.5, (500, 4)))


def run_with(backend, n=12):
    from streamer.pipeline import build_pipeline

    metrics = PipelineMetrics("t")
    sink = FakeSink()
    pipe = build_pipeline(config(), FakeSource(live=False, count=n), backend, [sink], metrics)
    pipe.stages.postprocess.ood = stats()
    pipe.start()
    assert pipe.wait(10)
    pipe.close()
    return sink.results, metrics


def counter(metrics) -> float:
    text = generate_latest(metrics.registry).decode()
    line = next(ln for ln in text.splitlines() if ln.startswith("streamer_ood_frames_total{"))
    return float(line.rsplit(" ", 1)[1])


def test_every_det_carries_ood_and_unfamiliar_frames_are_counted():
    results, metrics = run_with(FeatureBackend(odd=8), n=12)
    assert len(results) == 12
    assert all(r.ood is not None and isinstance(r.familiar, bool) for r in results)
    assert [r.familiar for r in results[:6]] == [True] * 6  # features at the fitted mean
    assert [r.familiar for r in results[-4:]] == [False] * 4 and results[-1].ood == 1.0
    assert counter(metrics) == sum(not r.familiar for r in results) == 4


def test_without_statistics_or_features_ood_is_null_and_nothing_counted():
    results, metrics = run_with(FakeBackend(), n=5)  # has no features output
    assert all(r.ood is None and r.familiar is None for r in results)
    assert counter(metrics) == 0


def _result(ood_value, familiar):
    timing = Timing(capture=1, preprocess_end=2, inference_start=2, inference_end=3,
                    postprocess_end=4, publish=5)
    classes = (ClassResult("head", 0.97, True, (1, 2), None),)
    return FrameResult("us0", 7, None, (720, 1280), classes, timing, None, ood=ood_value,
                       familiar=familiar)


def test_det_message_fields_and_tap_line():
    topic, body = p.encode_result(_result(0.99876, False))
    d = json.loads(body)
    assert d["ood"] == 0.9988 and d["familiar"] is False
    msg = p.decode_message([topic, body])
    assert msg.ood == 0.9988 and msg.familiar is False
    assert "UNFAMILIAR ood 1.00" in describe(msg)
    msg = p.decode_message(p.encode_result(_result(0.31, True)))
    assert "ood 0.31" in describe(msg) and "UNFAMILIAR" not in describe(msg)
    d = json.loads(p.encode_result(_result(None, None))[1])
    assert d["ood"] is None and d["familiar"] is None
    assert "ood" not in describe(p.decode_message(p.encode_result(_result(None, None))))


def test_bundled_model_carries_ood_statistics():
    from engines.defaults import default_onnx

    m = ood.load(default_onnx())
    assert m is not None and m.needs_features and m.n >= 1000
    assert 0.9 <= m.limit < 1.0


def test_tap_line_says_a_screen_the_engine_could_not_read_as_live():
    import dataclasses

    from streamer.crop import Crop, FanReport

    live = dataclasses.replace(_result(None, None), fan=FanReport("polar", 0.9),
                               crop=Crop(10, 20, 300, 200, 224))
    d = json.loads(p.encode_result(live)[1])
    assert d["fan"] == {"mode": "polar", "fit": 0.9, "settled": True, "rect": [10, 20, 300, 200]}
    line = describe(p.decode_message(p.encode_result(live)))
    assert not any(w in line for w in ("FROZEN", "DOPPLER", "UNSETTLED"))
    for change, word in ((dict(frozen=True), "FROZEN"), (dict(doppler=True), "DOPPLER"),
                         (dict(fan=FanReport("full", None, settled=False)), "FAN UNSETTLED")):
        line = describe(p.decode_message(p.encode_result(dataclasses.replace(live, **change))))
        assert line.startswith("us0 #7  " + word) and "head 0.97" in line
