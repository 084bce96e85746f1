"""The pipeline put together: the workers, the slots between them and one Run they share, wired
in :meth:`Pipeline.compose`; start, stop, wait, close and the status message."""

from __future__ import annotations

import logging
import threading
import time

from engines.ood import load as load_ood
from streamer.config import Config
from streamer.metrics import LatencyRecord, PipelineMetrics
from streamer.pipeline.accounting import Accounting, Run
from streamer.pipeline.inference_worker import InferenceWorker
from streamer.pipeline.preprocess_worker import FanSearch, PreprocessWorker
from streamer.pipeline.slots import FrameSlot
from streamer.pipeline.source_reader import SourceReader
from streamer.pipeline.stages import InferenceStage, PublishStage, Stages
from streamer.postprocess import Postprocessor
from streamer.preprocess import Preprocessor

log = logging.getLogger(__name__)


class Pipeline:
    """Owns the threads; build it with :func:`build_pipeline`, then start/stop/wait/close."""

    def __init__(self, config: Config, source, backend, stages: Stages, metrics: PipelineMetrics):
        self.config, self.source, self.backend = config, source, backend
        self.stages, self.metrics = stages, metrics
        self.stream = config.publish.stream
        self.latency = stages.publish.latency
        self.accounting = Accounting(metrics)
        self.run = Run(config, self.accounting)
        self._threads: list[threading.Thread] = []
        self._started_at = 0.0
        self._fps = 0.0
        self._last_report = (0.0, 0)
        self._closed = False
        self.compose()

    def compose(self) -> None:
        """source ─▶ [input slot ─▶ preprocess] ─▶ prepared slot ─▶ inference + publish; a live
        source keeps one frame per slot (the latest wins), a file every frame (lossless)."""
        live = bool(getattr(self.source, "live", True))
        pc = self.config.pipeline
        self.max_batch = 1 if live else pc.max_batch
        queue = 1 if live else pc.queue_size
        inline = pc.preprocess_in_source
        if inline:
            self.frames, self.prepared = None, FrameSlot(queue, lossless=not live)
        else:  # a preprocess thread of its own between two slots
            self.frames = FrameSlot(queue, lossless=not live)
            self.prepared = FrameSlot(1 if live else max(queue, self.max_batch), lossless=True)
        source_done, preprocess_done, inference_done = (threading.Event() for _ in range(3))
        self.preprocess = PreprocessWorker(self.run, self.stages.preprocess, self.frames,
                                           self.prepared, source_done, inference_done,
                                           preprocess_done)
        self.reader = SourceReader(self.run, self.source, self.metrics, self.preprocess.hand_on,
                                   source_done)
        self.inference = InferenceWorker(self.run, self.stages, self.prepared, self.max_batch,
                                         source_done if inline else preprocess_done,
                                         inference_done, self.stream, self._maybe_report)
        self.fan_search = FanSearch(self.stages.preprocess, self.run.stop)

    @property
    def source_state(self):
        return self.reader.state

    @property
    def batch_sizes(self) -> dict[int, int]:
        return self.inference.batch_sizes

    # -- control --------------------------------------------------------------------------
    def start(self) -> Pipeline:
        """Open the source (a live source that is not there yet is retried in the background)."""
        self._started_at = time.monotonic()
        self._last_report = (self._started_at, 0)
        self.reader.open(first=True)
        self.fan_search.start()
        loops = [("source", self.reader.loop), ("inference", self.inference.loop)]
        if self.frames is not None:
            loops.insert(1, ("preprocess", self.preprocess.loop))
        for name, target in loops:
            thread = threading.Thread(target=target, name=f"streamer-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self.run.stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once every processed frame is published (the source ended or stop() was called)."""
        return self.inference.done.wait(timeout)

    def close(self) -> dict:
        """Stop, join the threads, settle the accounting, close sinks and backend; the counts."""
        if not self._closed:
            self._closed = True
            self.stop()
            deadline = time.monotonic() + self.config.pipeline.stop_timeout_s
            for thread in self._threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            self.fan_search.join(max(0.0, deadline - time.monotonic()))
            stuck = [t.name for t in self._threads if t.is_alive()]
            if stuck:
                log.error("threads still running at shutdown: %s", ", ".join(stuck))
            self._settle()
            self.stages.publish.status(self.status(state="stopped"))
            for closer in [*(s.close for s in self.stages.publish.sinks), self.backend.close]:
                try:
                    closer()
                except Exception as exc:
                    log.warning("error while closing: %s", exc)
        return self.accounting.snapshot()

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _settle(self) -> None:
        """Frames still waiting when the pipeline stops were never processed: dropped."""
        leftover = self.prepared.drain() + (self.frames.drain() if self.frames else [])
        if leftover:
            self.accounting.add("dropped", len(leftover))
        if not self.accounting.balanced():
            log.error("frame accounting does not balance: %s", self.accounting.snapshot())

    # -- status ---------------------------------------------------------------------------
    def status(self, state: str | None = None) -> dict:
        return {
            "stream": self.stream,
            "state": state or ("stopping" if self.run.stop.is_set() else "running"),
            "uptime_s": round(time.monotonic() - self._started_at, 3),
            "fps": round(self._fps, 2),
            **self.accounting.snapshot(),
            "source": self.reader.status(),
            "backend": self.backend.describe(),
            "latency_ms": {"p50": self.latency.recent_ms(50), "p99": self.latency.recent_ms(99)},
            "queues": self._queues(),
            "fan_searches": self.fan_search.searches,
            **self.stages.preprocess.screen_status(),
        }

    def _queues(self) -> dict[str, int]:
        return {**({"input": len(self.frames)} if self.frames else {}),
                "prepared": len(self.prepared), "fan_search": len(self.fan_search)}

    def _maybe_report(self) -> None:
        """Between batches, at most every status_interval_s: fps, gauges and the status message."""
        now = time.monotonic()
        last_t, last_n = self._last_report
        if now - last_t < self.config.publish.status_interval_s:
            return
        n = self.accounting.snapshot()["processed"]
        self._fps = (n - last_n) / (now - last_t)
        self._last_report = (now, n)
        self.metrics.set_fps(self._fps)
        self.metrics.set_backend_up(getattr(self.backend, "up", True))
        self.metrics.set_backend_model_changed(getattr(self.backend, "model_changed", False))
        for queue, depth in self._queues().items():
            self.metrics.set_queue_depth(queue, depth)
        self.stages.publish.status(self.status())


def build_pipeline(config: Config, source, backend, sinks: list, metrics: PipelineMetrics | None = None
                   ) -> Pipeline:
    """Wire the stages for an opened backend, a (not yet opened) source and opened sinks."""
    info = backend.info
    metrics = metrics or PipelineMetrics(config.publish.stream)
    desc = backend.describe()
    metrics.set_model(str(desc.get("model", "?")), str(desc.get("backend", "?")),
                      str(desc.get("precision", info.precision)))
    metrics.set_source_up(False)
    stages = Stages(
        preprocess=Preprocessor.for_model(config.preprocess, info),
        infer=InferenceStage(backend),
        postprocess=Postprocessor(info.classes, info.activation, config.postprocess,
                                  ood=load_ood(getattr(backend, "model_path", None))),
        publish=PublishStage(list(sinks), metrics, LatencyRecord()),
    )
    return Pipeline(config, source, backend, stages, metrics)
