"""The stages that know nothing of threads: inference (one backend call per batch) and publish
(every sink, the metrics, the latency record). Preprocessor and Postprocessor live beside them in
streamer/preprocess.py and streamer/postprocess.py."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from streamer.coverage import ExamCoverage
from streamer.frames import FrameResult
from streamer.metrics import LatencyRecord, PipelineMetrics
from streamer.postprocess import Postprocessor
from streamer.preprocess import Prepared, Preprocessor
from streamer.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)


class InferenceStage:
    """Stage: Prepared tensors → Inference (one backend object, one call per batch)."""

    def __init__(self, backend):
        self.backend = backend

    def process(self, prepared: Prepared | list[Prepared]):
        if isinstance(prepared, Prepared):
            return self.backend.infer(prepared.tensor)
        if len(prepared) == 1:
            return self.backend.infer(prepared[0].tensor)
        return self.backend.infer(np.concatenate([p.tensor for p in prepared]))


class PublishStage:
    """Stage: a finished FrameResult → every sink, the metrics and the latency record."""

    def __init__(self, sinks: list, metrics: PipelineMetrics, latency: LatencyRecord,
                 coverage: ExamCoverage | None = None):
        self.sinks, self.metrics, self.latency = sinks, metrics, latency
        self.coverage = coverage  # the exam's checklist; each result is told its exam
        self._errors = RateLimitedLog(logger=log)

    def process(self, result: FrameResult) -> None:
        if self.coverage is not None:
            result.exam = self.coverage.update(result)
        result.timing.publish = time.monotonic_ns()
        for sink in self.sinks:
            try:
                sink.publish(result)
            except Exception as exc:
                self._errors(logging.ERROR, "sink %s failed to publish: %s", type(sink).__name__, exc)
        self.metrics.observe(result.timing)
        if result.familiar is False:
            self.metrics.count_ood()
        self.latency.add(result.timing)

    def status(self, status: dict) -> None:
        for sink in self.sinks:
            try:
                sink.publish_status(status)
            except Exception as exc:
                self._errors(logging.ERROR, "sink %s failed to publish status: %s",
                             type(sink).__name__, exc)


@dataclass
class Stages:
    preprocess: Preprocessor
    infer: InferenceStage
    postprocess: Postprocessor
    publish: PublishStage
