"""The inference thread: a micro-batch of whatever is waiting (up to max_batch), one model call,
then postprocess and publish each frame in the same thread (no hop)."""

from __future__ import annotations

import logging
import threading
import time

from streamer.frames import Frame, FrameResult, Timing
from streamer.pipeline.accounting import Run
from streamer.pipeline.slots import POLL_S, FrameSlot
from streamer.pipeline.stages import Stages

log = logging.getLogger(__name__)


class InferenceWorker:
    def __init__(self, run: Run, stages: Stages, prepared: FrameSlot, max_batch: int,
                 upstream_done: threading.Event, done: threading.Event, stream: str, on_idle):
        self.run, self.stages, self.prepared = run, stages, prepared
        self.max_batch, self.upstream_done, self.done = max_batch, upstream_done, done
        self.stream, self.on_idle = stream, on_idle  # on_idle: between batches (status report)
        self.batch_sizes: dict[int, int] = {}  # batch size → model calls

    def loop(self) -> None:
        try:
            while not self.run.stop.is_set():
                items = self.prepared.get_many(self.max_batch, POLL_S)
                if items:
                    self.infer_batch(items)
                elif self.upstream_done.is_set() and not len(self.prepared):
                    break
                self.on_idle()
        finally:
            self.done.set()

    def infer_batch(self, items: list) -> None:
        start = time.monotonic_ns()
        for _, _, timing in items:
            timing.inference_start = start
        try:
            out = self.stages.infer.process([prepared for _, prepared, _ in items])
        except Exception as exc:
            if len(items) == 1:
                self.run.failed(items[0][0], exc)
                return
            for item in items:  # which frame the model cannot take: one at a time
                self.infer_batch([item])
            return
        end = time.monotonic_ns()
        self.batch_sizes[len(items)] = self.batch_sizes.get(len(items), 0) + 1
        for i, (frame, prepared, timing) in enumerate(items):
            timing.inference_end = end
            features = None if out.features is None else out.features[i]
            result = self.run.guarded(frame, self._postprocess, frame, prepared, timing,
                                      out.scores[i], out.maps[i], features)
            if result is not None:
                self._publish(frame, result)
        limit = self.run.config.pipeline.max_frames
        if limit and self.run.accounting.snapshot()["processed"] >= limit:
            self.run.stop.set()

    def _publish(self, frame: Frame, result: FrameResult) -> None:
        self.run.accounting.add("processed")
        try:
            self.stages.publish.process(result)
        except Exception as exc:  # the sinks guard themselves; this is the metrics
            self.run.invalid_log(logging.ERROR, "recording frame %s failed: %s", frame.seq, exc,
                                 exc_info=True)

    def _postprocess(self, frame: Frame, prepared, timing: Timing, scores, maps,
                     features=None) -> FrameResult:
        classes, maps8 = self.stages.postprocess.process(scores, maps, prepared.crop)
        ood, familiar = self.stages.postprocess.familiarity(scores, features)
        timing.postprocess_end = time.monotonic_ns()
        return FrameResult(self.stream, frame.seq, frame.t_source_ns, tuple(frame.image.shape[:2]),
                           classes, timing, maps8,
                           mm_per_px=frame.area.mm_per_px if frame.area is not None else None,
                           image=frame.image, crop=prepared.crop, ood=ood, familiar=familiar,
                           fan=prepared.fan, frozen=prepared.frozen, doppler=prepared.doppler)
