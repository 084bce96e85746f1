"""The pipeline put together: one lane per stream (source, preprocess and fan search threads, the
slots between them, postprocess and publish), one inference worker and one backend serving all
of them, wired in :meth:`Pipeline.compose`; start, stop, wait, close and the status messages."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping

from engines.ood import load as load_ood
from streamer.config import Config
from streamer.coverage import ExamCoverage
from streamer.metrics import LatencyRecord, PipelineMetrics
from streamer.pipeline.fan_search import FanSearches
from streamer.pipeline.inference_worker import InferenceWorker
from streamer.pipeline.lane import Lane
from streamer.pipeline.slots import SlotGroup
from streamer.pipeline.stages import InferenceStage, PublishStage, Stages
from streamer.postprocess import Postprocessor
from streamer.preprocess import Preprocessor

log = logging.getLogger(__name__)


class Pipeline:
    """Owns the threads; build it with :func:`build_pipeline`, then start/stop/wait/close. The
    first stream's parts (``stages``, ``accounting``, ``reader``...) are also the pipeline's own
    attributes, as a single-stream pipeline has always had them."""

    def __init__(self, config: Config, streams: list[tuple[str, object, Stages, PipelineMetrics]],
                 backend, metrics: PipelineMetrics):
        self.config, self.backend, self.metrics = config, backend, metrics
        self.stop_event = threading.Event()
        self.done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started_at = 0.0
        self._next_report = 0.0
        self._closed = False
        self._opencv_threads: int | None = None  # OpenCV's own before start(), to restore
        self.compose(streams)

    def compose(self, streams) -> None:
        """Each stream: source ─▶ [input slot ─▶ preprocess] ─▶ prepared slot; a live source keeps
        one frame per slot (the latest wins), a file every frame (lossless). All prepared slots
        share one condition: the inference worker waits on all of them and takes a micro-batch
        in turn across the streams with frames waiting, up to max_batch. One live stream has one
        frame waiting at most (latency mode, batch 1); several live streams batch together."""
        pc = self.config.pipeline
        many = len(streams) > 1
        live = bool(getattr(streams[0][1], "live", True))
        self.max_batch = pc.max_batch if many or not live else 1
        cond = threading.Condition()
        self.searches = FanSearches(self.stop_event, pc.fan_search_share)
        self.lanes = [Lane(self._lane_config(name), source, stages, metrics, self.stop_event,
                           cond, self.max_batch, self.searches, f".{name}" if many else "")
                      for name, source, stages, metrics in streams]
        self.group = SlotGroup([lane.prepared for lane in self.lanes], cond)
        self.inference = InferenceWorker(self.lanes, self.group, self.lanes[0].stages.infer,
                                         self.max_batch, self.stop_event, self.done,
                                         self._maybe_report, inference_workers(
                                             pc.inference_workers, self.backend, many))
        self._report_lock = threading.Lock()
        first = self.lanes[0]
        self.lane, self.stream, self.source = first, first.stream, first.source
        self.stages, self.accounting, self.run = first.stages, first.accounting, first.run
        self.latency, self.reader, self.preprocess = first.latency, first.reader, first.preprocess
        self.frames, self.prepared, self.fan_search = first.frames, first.prepared, first.fan_search

    def _lane_config(self, name: str) -> Config:
        if name == self.config.publish.stream:
            return self.config
        return dataclasses.replace(self.config,
                                   publish=dataclasses.replace(self.config.publish, stream=name))

    @property
    def source_state(self):
        return self.reader.state

    @property
    def batch_sizes(self) -> dict[int, int]:
        return self.inference.batch_sizes

    @property
    def streams(self) -> dict[str, Lane]:
        return {lane.stream: lane for lane in self.lanes}

    # -- control --------------------------------------------------------------------------
    def start(self) -> Pipeline:
        """Open every source (a live source that is not there yet is retried in the background);
        one that cannot open at all is an error naming its stream, the others closed again."""
        self._started_at = time.monotonic()
        self._next_report = self._started_at + self.config.publish.status_interval_s
        opened = []
        for lane in self.lanes:
            try:
                lane.reader.open(first=True)
            except Exception as exc:
                exc.stream = lane.stream  # which of several streams did not open
                for other in opened:
                    _close_quietly(other.source)
                raise
            opened.append(lane)
        self.searches.start()
        if len(self.lanes) > 1:  # the streams' own threads spread the work over the cores
            self._opencv_threads = _set_opencv_threads(1)
        for lane in self.lanes:
            self._threads += lane.start(self._started_at)
        workers = self.inference.workers
        for i in range(workers):
            thread = threading.Thread(target=self.inference.loop, daemon=True,
                                      name="streamer-inference" + (f"-{i}" if workers > 1 else ""))
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self.stop_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once every processed frame is published (every source ended, or stop())."""
        return self.done.wait(timeout)

    def close(self) -> dict:
        """Stop, join the threads, settle the accounting, close sinks and backend; the counts
        (summed over the streams: each stream's are in ``streams[name].accounting``)."""
        if not self._closed:
            self._closed = True
            self.stop()
            deadline = time.monotonic() + self.config.pipeline.stop_timeout_s
            for thread in self._threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            self.searches.join(max(0.0, deadline - time.monotonic()))
            stuck = [t.name for t in self._threads if t.is_alive()]
            if stuck:
                log.error("threads still running at shutdown: %s", ", ".join(stuck))
            self._settle()
            if self._opencv_threads is not None:
                _set_opencv_threads(self._opencv_threads)
            for lane in self.lanes:
                lane.stages.publish.status(self._lane_status(lane, "stopped"))
            for closer in [*(s.close for s in self._sinks()), self.backend.close]:
                try:
                    closer()
                except Exception as exc:
                    log.warning("error while closing: %s", exc)
        return self.counts()

    def counts(self) -> dict:
        """Frame counts summed over the streams."""
        total = dict.fromkeys(("captured", "processed", "dropped", "invalid"), 0)
        for lane in self.lanes:
            for outcome, n in lane.accounting.snapshot().items():
                total[outcome] += n
        return total

    def _sinks(self) -> list:
        """Every sink once (streams share the ZMQ and record sinks)."""
        seen, sinks = set(), []
        for lane in self.lanes:
            for sink in lane.stages.publish.sinks:
                if id(sink) not in seen:
                    seen.add(id(sink))
                    sinks.append(sink)
        return sinks

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _settle(self) -> None:
        for lane in self.lanes:
            lane.settle()
            if not lane.accounting.balanced():
                log.error("frame accounting of stream %s does not balance: %s", lane.stream,
                          lane.accounting.snapshot())

    # -- status ---------------------------------------------------------------------------
    def _state(self) -> str:
        return "stopping" if self.stop_event.is_set() else "running"

    def _lane_status(self, lane: Lane, state: str | None = None) -> dict:
        return lane.status(self.backend, self._started_at, state or self._state())

    def status(self, state: str | None = None) -> dict:
        """The first stream's status (a single-stream pipeline's only one)."""
        return self._lane_status(self.lane, state)

    def statuses(self) -> dict[str, dict]:
        """Every stream's status, by name."""
        return {lane.stream: self._lane_status(lane) for lane in self.lanes}

    def _maybe_report(self) -> None:
        """Between batches, at most every status_interval_s: each stream's fps, gauges and
        status message."""
        now = time.monotonic()
        if now < self._next_report or not self._report_lock.acquire(blocking=False):
            return  # not yet, or another inference worker is reporting
        try:
            for lane in self.lanes:
                lane.report(now, self.backend, self._started_at, self._state())
            self._next_report = now + self.config.publish.status_interval_s
        finally:
            self._report_lock.release()


def inference_workers(configured: int, backend, many: bool) -> int:
    """How many threads call the model: as configured (0: 2 for several streams, else 1), for
    a backend that takes calls side by side (ONNX Runtime on a CPU; ``concurrent`` says so for
    others); one otherwise."""
    wanted = configured or (2 if many else 1)
    options = getattr(backend, "options", None)
    concurrent = getattr(backend, "concurrent", None)
    if concurrent is None:
        concurrent = (getattr(backend, "name", "") == "onnxruntime"
                      and getattr(options, "device", "cpu") == "cpu")
    if wanted > 1 and not concurrent:
        if configured > 1:
            log.warning("[pipeline] inference_workers = %d: the %s backend takes one call at a "
                        "time; using 1", configured, getattr(backend, "name", "?"))
        return 1
    return wanted


def _set_opencv_threads(n: int) -> int:
    """OpenCV's threads for each call (remap, resize): the previous count."""
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(n)
    return before


def _close_quietly(source) -> None:
    try:
        source.close()
    except Exception as exc:
        log.warning("error closing a source: %s", exc)


def _stages(config: Config, backend, infer: InferenceStage, sinks: list, ood,
            metrics: PipelineMetrics) -> Stages:
    info = backend.info
    return Stages(
        preprocess=Preprocessor.for_model(config.preprocess, info),
        infer=infer,
        postprocess=Postprocessor(info.classes, info.activation, config.postprocess, ood=ood),
        publish=PublishStage(list(sinks), metrics, LatencyRecord(),
                             ExamCoverage(info.classes, exam=config.publish.exam or None,
                                          on_seen=metrics.count_seen)),
    )


def build_pipeline(config: Config, source, backend, sinks: list,
                   metrics: PipelineMetrics | None = None,
                   stream_sinks: Mapping[str, list] | None = None) -> Pipeline:
    """Wire the stages for an opened backend, (not yet opened) sources and opened sinks.

    ``source``: one source (the stream ``config.publish.stream``), or ``{name: source}`` for
    several streams in one pipeline, each with its own preprocessing (fan tracking),
    postprocessing (smoothing), counters and status, all publishing to ``sinks`` under their own
    names and counted in one metrics registry; ``stream_sinks`` adds sinks to one stream only.
    """
    sources = dict(source) if isinstance(source, Mapping) else {config.publish.stream: source}
    if not sources:
        raise ValueError("a pipeline needs at least one source")
    metrics = metrics or PipelineMetrics(next(iter(sources)))
    desc = backend.describe()
    metrics.set_model(str(desc.get("model", "?")), str(desc.get("backend", "?")),
                      str(desc.get("precision", backend.info.precision)))
    infer = InferenceStage(backend)
    ood = load_ood(getattr(backend, "model_path", None))
    streams = []
    for name, src in sources.items():
        m = metrics if name == metrics.stream else metrics.for_stream(name)
        m.set_source_up(False)
        extra = list((stream_sinks or {}).get(name, ()))
        streams.append((name, src, _stages(config, backend, infer, [*sinks, *extra], ood, m), m))
    return Pipeline(config, streams, backend, metrics)
