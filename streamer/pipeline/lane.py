"""One stream's share of a pipeline: its source thread, preprocess thread and fan search, the
slots between them, its postprocessor and publish stage, its counters and status. A pipeline has
one lane per stream and one inference worker that serves them all."""

from __future__ import annotations

import threading
import time

from streamer.config import Config
from streamer.metrics import PipelineMetrics
from streamer.pipeline.accounting import Accounting, Run
from streamer.pipeline.fan_search import FanSearches
from streamer.pipeline.preprocess_worker import PreprocessWorker
from streamer.pipeline.slots import FrameSlot
from streamer.pipeline.source_reader import SourceReader
from streamer.pipeline.stages import Stages
from streamer.pipeline.stream_log import mark


class Lane:
    """A stream's workers and state; ``suffix`` names its threads apart from other streams'."""

    def __init__(self, config: Config, source, stages: Stages, metrics: PipelineMetrics,
                 stop: threading.Event, prepared_cond: threading.Condition, max_batch: int,
                 searches: FanSearches, suffix: str = ""):
        self.config, self.source, self.stages, self.metrics = config, source, stages, metrics
        self.stream, self.suffix = config.publish.stream, suffix
        self.latency = stages.publish.latency
        self.accounting = Accounting(metrics)
        self.run = Run(config, self.accounting, stop)
        self.live = bool(getattr(source, "live", True))
        pc = config.pipeline
        queue = 1 if self.live else pc.queue_size
        self.prepares_in_worker = pc.preprocess_in_inference and not pc.preprocess_in_source
        if pc.preprocess_in_source:
            self.frames = None
            self.prepared = FrameSlot(queue, lossless=not self.live, cond=prepared_cond)
        elif self.prepares_in_worker:  # raw frames to the inference worker, preprocessed there
            self.frames = self.prepared = FrameSlot(1 if self.live else max(queue, max_batch),
                                                    lossless=not self.live, cond=prepared_cond)
        else:  # a preprocess thread of its own between two slots
            self.frames = FrameSlot(queue, lossless=not self.live)
            self.prepared = FrameSlot(1 if self.live else max(queue, max_batch), lossless=True,
                                      cond=prepared_cond)
        self.source_done, self.preprocess_done = threading.Event(), threading.Event()
        self.inference_done = threading.Event()  # set when the pipeline's inference worker ends
        self.preprocess = PreprocessWorker(
            self.run, stages.preprocess, self.frames, self.prepared, self.source_done,
            self.inference_done, self.inference_done if self.prepares_in_worker
            else self.preprocess_done)
        self.reader = SourceReader(self.run, source, metrics, self.preprocess.hand_on,
                                   self.source_done)
        self.fan_search = searches.add(stages.preprocess, self.stream if suffix else None)
        self.fps = 0.0
        self._last_report = (0.0, 0)

    @property
    def upstream_done(self) -> threading.Event:
        """Set once nothing more will come into the prepared slot."""
        return self.preprocess_done if self.has_preprocess_thread else self.source_done

    @property
    def has_preprocess_thread(self) -> bool:
        return self.frames is not None and not self.prepares_in_worker

    def finished(self) -> bool:
        return self.upstream_done.is_set() and not len(self.prepared)

    def start(self, started_at: float) -> list[threading.Thread]:
        """The frame threads, started (the source is already open)."""
        self._last_report = (started_at, 0)
        loops = [("source", self.reader.loop)]
        if self.has_preprocess_thread:
            loops.append(("preprocess", self.preprocess.loop))
        threads = []
        for name, target in loops:
            thread = threading.Thread(target=self._marked, args=(target,), daemon=True,
                                      name=f"streamer-{name}{self.suffix}")
            thread.start()
            threads.append(thread)
        return threads

    def _marked(self, loop) -> None:
        mark(self.stream if self.suffix else None)  # several streams: log lines name theirs
        loop()

    def settle(self) -> int:
        """Frames still waiting when the pipeline stops were never processed: counted dropped."""
        leftover = self.prepared.drain() + (self.frames.drain() if self.has_preprocess_thread
                                            else [])
        if leftover:
            self.accounting.add("dropped", len(leftover))
        return len(leftover)

    def status(self, backend, started_at: float, state: str) -> dict:
        return {
            "stream": self.stream,
            "state": state,
            "uptime_s": round(time.monotonic() - started_at, 3),
            "fps": round(self.fps, 2),
            **self.accounting.snapshot(),
            "source": self.reader.status(),
            "backend": backend.describe(),
            "latency_ms": {"p50": self.latency.recent_ms(50), "p99": self.latency.recent_ms(99)},
            "queues": self.queues(),
            "fan_searches": self.fan_search.searches,
            **self.stages.preprocess.screen_status(),
            **({} if self.stages.publish.coverage is None
               else {"exam": self.stages.publish.coverage.status()}),
        }

    def queues(self) -> dict[str, int]:
        return {**({"input": len(self.frames)} if self.frames is not None else {}),
                **({"prepared": len(self.prepared)} if self.prepared is not self.frames else {}),
                "fan_search": len(self.fan_search)}

    def report(self, now: float, backend, started_at: float, state: str) -> None:
        """fps, gauges and the status message (the pipeline calls it every status interval)."""
        last_t, last_n = self._last_report
        n = self.accounting.snapshot()["processed"]
        self.fps = (n - last_n) / max(now - last_t, 1e-9)
        self._last_report = (now, n)
        self.metrics.set_fps(self.fps)
        self.metrics.set_backend_up(getattr(backend, "up", True))
        self.metrics.set_backend_model_changed(getattr(backend, "model_changed", False))
        for queue, depth in self.queues().items():
            self.metrics.set_queue_depth(queue, depth)
        self.stages.publish.status(self.status(backend, started_at, state))
